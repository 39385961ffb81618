"""Importing credentials into a learner's record: OB 2.0 signed and hosted assertions, OB 3.0 / CLR 2.0
credentials as JSON-LD (Data Integrity) or compact JWS (VC-JWT).

- The proof is verified first; a credential that does not verify is refused with the reasons.
  A hosted OB 2.0 assertion is held as served by its issuer (``hub.credentials.ob2``).
- The credential is kept whole (``HeldCredential.document``, plus the token for VC-JWT):
  a Host must not lose data (OB 3.0 §7.x Host requirements).
- Deduplication is OB 3.0's credential equality rule (Appendix "Verifiable Credential
  equality"): same ``issuer.id`` and same credential ``id`` is the same credential; the one with
  the newer ``validFrom`` replaces the other.
- A CLR is held as itself and its achievement credentials are also held one by one (each
  deduplicated), so a re-import of an exported CLR adds nothing twice.
- A family imports as a guardian of the learner; a provider only through
  ``ProviderAccess.authorize(learner, "badges", contribute)`` — the consent gate the API uses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from consent import Action
from hub.credentials import vcjwt
from hub.credentials.models import HeldCredential
from hub.credentials.service import CredentialKit, verify
from hub.credentials.verify import ResolvedKey, VerificationResult, issuer_id_of, load_input, parse_time
from hub.grants.enforce import ProviderAccess

SECTION = "badges"
KIND_ORDER = ("ClrCredential", "OpenBadgeCredential", "AchievementCredential", "EndorsementCredential")


class ImportRefused(ValueError):
    def __init__(self, message: str, verification: VerificationResult | None = None) -> None:
        super().__init__(message)
        self.verification = verification


@dataclass
class ImportOutcome:
    outcome: str  # created | replaced | unchanged | kept_newer
    kind: str
    issuer_id: str
    credential_id: str
    verification: VerificationResult | None = None
    included: list[ImportOutcome] = field(default_factory=list)
    document: dict[str, Any] | None = None  # the credential as held (the OB 2.0 assertion, the VC)


def identity_hash(issuer_id: str, credential_id: str) -> str:
    return hashlib.sha256(f"{issuer_id}\n{credential_id}".encode()).hexdigest()


def _types(doc: dict[str, Any]) -> list[str]:
    value = doc.get("type")
    return [value] if isinstance(value, str) else [t for t in value if isinstance(t, str)] if isinstance(value, list) else []


async def _require_guardian(session: AsyncSession, kit: CredentialKit, guardian_id: UUID, learner_id: UUID,
                            now: datetime) -> None:
    """The same age rules as every family action: a guardian decides only while they control the record."""
    from hub.config import control_policy
    from hub.grants.family import Actor, NotPermitted, require_control

    try:
        await require_control(session=session, actor=Actor.guardian(guardian_id), learner_id=learner_id, today=now,
                              policy=control_policy(kit.settings))
    except NotPermitted as exc:
        raise LookupError(f"not permitted: {exc}") from None


async def import_credential(
    session: AsyncSession, kit: CredentialKit, learner_id: UUID, raw: str | bytes | dict[str, Any], *,
    now: datetime, guardian_id: UUID | None = None, access: ProviderAccess | None = None,
    trusted: Sequence[ResolvedKey] = (),
) -> ImportOutcome:
    """Verify and hold one credential for ``learner_id``; ``ImportRefused`` says why not."""
    if (guardian_id is None) == (access is None):
        raise ValueError("an import is made either by a guardian or through a provider's consented access")
    if access is not None:
        # The consent gate, exactly as for the GraphQL contributions: decided and logged.
        await access.authorize(learner_id, SECTION, Action.CONTRIBUTE)
    else:
        assert guardian_id is not None
        await _require_guardian(session, kit, guardian_id, learner_id, now)

    try:
        data = raw if isinstance(raw, dict) else load_input(raw)
    except ValueError as exc:
        raise ImportRefused(str(exc)) from exc

    if isinstance(data, str):
        try:
            vcjwt.unverified_parts(data)
        except vcjwt.JwtError as exc:
            raise ImportRefused(str(exc)) from exc
    result = await verify(session, kit, data, now, trusted)
    if not result.ok or result.credential is None:
        raise ImportRefused(_reasons(result), result)
    credential = result.credential
    if result.format == "ob2":  # OB 2.0 signed or hosted (hub.credentials.ob2); held as verified
        return _counted(access, learner_id, await _hold(
            session, learner_id, credential, issuer=result.issuer_id, kind="Assertion", fmt="ob2",
            token=result.compact_jws, valid_from=parse_time(credential.get("issuedOn")), now=now,
            guardian_id=guardian_id, access=access, result=result))
    types = _types(credential)
    kind = next((k for k in KIND_ORDER if k in types), types[-1] if types else "VerifiableCredential")
    outcome = await _hold(session, learner_id, credential, issuer=issuer_id_of(credential), kind=kind,
                          fmt=result.format, token=result.compact_jws, now=now,
                          valid_from=parse_time(credential.get("validFrom", credential.get("issuanceDate"))),
                          guardian_id=guardian_id, access=access, result=result)
    if kind == "ClrCredential":
        subject = credential.get("credentialSubject")
        inner = subject.get("verifiableCredential", []) if isinstance(subject, dict) else []
        for item in inner if isinstance(inner, list) else [inner]:
            if not isinstance(item, dict):
                continue  # embedded credentials were verified with the CLR above
            item_types = _types(item)
            outcome.included.append(await _hold(
                session, learner_id, item, issuer=issuer_id_of(item),
                kind=next((k for k in KIND_ORDER if k in item_types), "VerifiableCredential"), fmt="ldp", token=None,
                valid_from=parse_time(item.get("validFrom")), now=now, guardian_id=guardian_id, access=access,
                result=None,
            ))
    return _counted(access, learner_id, outcome)


def _counted(access: ProviderAccess | None, learner_id: UUID, outcome: ImportOutcome) -> ImportOutcome:
    # One entry on the allowed decision's log event per credential actually held (not for refusals).
    if access is not None:
        access.disclosed(learner_id, SECTION, Action.CONTRIBUTE, 1)
    return outcome


def _reasons(result: VerificationResult) -> str:
    failures = result.failures()
    if not failures:
        return "the credential carries no verifiable proof"
    return "; ".join(f"{c.name}: {c.detail}" for c in failures)


async def _hold(
    session: AsyncSession, learner_id: UUID, document: dict[str, Any], *, issuer: str | None, kind: str, fmt: str,
    token: str | None, valid_from: datetime | None, now: datetime, guardian_id: UUID | None,
    access: ProviderAccess | None, result: VerificationResult | None,
) -> ImportOutcome:
    credential_id = document.get("id")
    if not isinstance(issuer, str) or not isinstance(credential_id, str):
        raise ImportRefused("the credential needs an issuer id and an id (OB 3.0 credential equality)", result)
    key = identity_hash(issuer, credential_id)
    existing = (await session.execute(select(HeldCredential).where(
        HeldCredential.learner_id == learner_id, HeldCredential.identity_hash == key))).scalar_one_or_none()
    if existing is None:
        session.add(HeldCredential(
            learner_id=learner_id, identity_hash=key, issuer_id=issuer, credential_id=credential_id, kind=kind,
            format=fmt, valid_from=valid_from, document=document, compact_jws=token,
            imported_by_provider_id=access.provider_id if access else None, imported_by_guardian_id=guardian_id,
            imported_at=now, updated_at=now,
        ))
        outcome = "created"
    elif valid_from is not None and (existing.valid_from is None or valid_from > existing.valid_from):
        existing.document, existing.compact_jws, existing.format = document, token, fmt
        existing.valid_from, existing.kind, existing.updated_at = valid_from, kind, now
        outcome = "replaced"
    elif existing.valid_from is not None and (valid_from is None or valid_from < existing.valid_from):
        outcome = "kept_newer"
    else:
        outcome = "unchanged"
    await session.flush()
    return ImportOutcome(outcome, kind, issuer, credential_id, result, document=document)
