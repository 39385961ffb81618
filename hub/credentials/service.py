"""Issuing, revoking and serving credentials (services flush, never commit).

``CredentialKit`` bundles what signing and verifying need (settings, issuer key, context
loader); build it once per process with ``kit_from_settings``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from consent import Allowed
from hub.config import Settings
from hub.credentials import dataintegrity, export, ob2, statuslist, vcjwt
from hub.credentials.contexts import ContextLoader
from hub.credentials.keys import CredentialKeys, IssuerKey, KeyFormatError, load_credential_keys
from hub.credentials.models import HeldCredential, IssuedCredential
from hub.credentials.trust import KeyFetcher, TrustedIssuers, TrustFileError, http_fetch
from hub.credentials.verify import ResolvedKey, Resolver, VerificationResult, issuer_id_of, verify_credential
from hub.frameworks.service import find_items
from hub.records.models import Activity, Badge, SkillAssessment

Format = Literal["ldp", "jwt"]
CLR_SECTIONS = ("badges", "skills", "activities")
EMBEDDED_KINDS = ("OpenBadgeCredential", "AchievementCredential")


class CredentialsNotConfigured(ValueError):
    pass


@dataclass(frozen=True)
class CredentialKit:
    settings: Settings
    keys: CredentialKeys
    loader: ContextLoader
    issuers: TrustedIssuers = field(default_factory=TrustedIssuers.empty)
    fetch: KeyFetcher | None = http_fetch  # only for key URLs the operator allowed (trust.py)
    hosted_fetch: ob2.HostedFetcher | None = ob2.http_fetch_hosted  # only on allowed hosted_origins (ob2.py)

    @property
    def key(self) -> IssuerKey:
        """The Ed25519 key: Data Integrity proofs, and the issuer's identifiers."""
        return self.keys.ed25519

    @property
    def base(self) -> str:
        return self.settings.issuer.rstrip("/")

    def sign(self, credential: dict[str, Any], fmt: Format, now: datetime) -> dict[str, Any] | str:
        if fmt == "jwt":
            # OB 3.0 §8.2.4.1: RS256 by default (KINFOLIO_CREDENTIAL_JWT_ALG selects Ed25519).
            return vcjwt.sign(credential, self.keys.jwt_signer)
        return dataintegrity.sign(credential, private_key=self.key.private,
                                  verification_method=self.key.verification_method, loader=self.loader, created=now)


def kit_from_settings(settings: Settings) -> CredentialKit:
    if settings.jsonld_contexts_dir is None:
        raise CredentialsNotConfigured(
            "KINFOLIO_JSONLD_CONTEXTS_DIR is not set (a directory of JSON-LD contexts with contexts-index.json)"
        )
    if not settings.jsonld_contexts_dir.is_dir():
        raise CredentialsNotConfigured(f"KINFOLIO_JSONLD_CONTEXTS_DIR {settings.jsonld_contexts_dir} is not a directory")
    try:
        keys = load_credential_keys(settings)
        issuers = TrustedIssuers.load(settings.trusted_issuers_file,
                                       allow_http_loopback=settings.hosted_allow_http_loopback)
    except (KeyFormatError, TrustFileError) as exc:
        raise CredentialsNotConfigured(str(exc)) from exc
    return CredentialKit(settings=settings, keys=keys, loader=ContextLoader(settings.jsonld_contexts_dir),
                         issuers=issuers)


# -- status lists ------------------------------------------------------------------------------


async def signed_status_list(session: AsyncSession, kit: CredentialKit, list_number: int, now: datetime) -> dict[str, Any] | None:
    if not await statuslist.list_exists(session, list_number):
        return None
    revoked = await statuslist.revoked_indexes(session, list_number)
    unsigned = statuslist.list_credential(kit.base, kit.key.issuer_id, list_number, revoked, now)
    signed = kit.sign(unsigned, "ldp", now)
    assert isinstance(signed, dict)
    return signed


def resolver_for(session: AsyncSession, kit: CredentialKit, now: datetime,
                 trusted: Sequence[ResolvedKey] = ()) -> Resolver:
    """Keys: this hub's (current and previous), did:key, ``trusted``, the operator's trusted issuers.
    Status lists: this hub's, read from the database."""
    prefix = statuslist.list_url(kit.base, 0)[:-1]

    async def status_lists(url: str) -> dict[str, Any] | None:
        if not url.startswith(prefix) or not url[len(prefix):].isdigit():
            return None
        return await signed_status_list(session, kit, int(url[len(prefix):]), now)

    return Resolver(own_keys=kit.keys, trusted=trusted, status_lists=status_lists, issuers=kit.issuers,
                    fetch=kit.fetch, hosted=kit.hosted_fetch)


async def verify(session: AsyncSession, kit: CredentialKit, data: dict[str, Any] | str, now: datetime,
                 trusted: Sequence[ResolvedKey] = ()) -> VerificationResult:
    """The library entry point the CLI, ``verifyCredential`` and imports call: OB 2.0 assertions
    (signed or hosted, ``hub.credentials.ob2``), OB 3.0 / CLR 2.0 credentials (Data Integrity or VC-JWT)."""
    resolver = resolver_for(session, kit, now, trusted)
    assertion = ob2.assertion_of(data)
    if assertion is not None:
        return await ob2.verify_assertion(data if isinstance(data, str) else None, assertion, resolver, now)
    return await verify_credential(data, loader=kit.loader, resolver=resolver, now=now)


# -- issuing -------------------------------------------------------------------------------------


async def _issued_for_badge(session: AsyncSession, badge: Badge) -> IssuedCredential:
    found = (await session.execute(select(IssuedCredential).where(IssuedCredential.badge_id == badge.id))).scalar_one_or_none()
    if found is not None:
        return found
    list_number, index = await statuslist.allocate_slot(session)
    issued = IssuedCredential(id=uuid.uuid4(), learner_id=badge.learner_id, badge_id=badge.id,
                              kind="OpenBadgeCredential", status_list=list_number, status_index=index)
    session.add(issued)
    await session.flush()
    return issued


async def badge_credential(session: AsyncSession, kit: CredentialKit, badge: Badge, now: datetime,
                           fmt: Format = "ldp", subject_id: str | None = None) -> dict[str, Any] | str:
    """The badge as a signed OpenBadgeCredential; the same credential id on every export.
    ``subject_id``: the learner as the reader knows them (a provider's pairwise id)."""
    issued = await _issued_for_badge(session, badge)
    unsigned = export.badge_credential(badge, credential_id=issued.id, learner_id=badge.learner_id,
                                       issuer=kit.key.issuer_summary(), status=statuslist.status_entry(kit.base, issued),
                                       subject_id=subject_id)
    return kit.sign(unsigned, fmt, now)


def not_a_held_mirror() -> Any:
    """Badges the hub re-issues as its own credentials: not the mirrors of imported credentials.

    An imported credential is exported as itself (held, proof untouched); re-issuing its mirror
    badge too would put it in a CLR or bundle twice, and a re-import would then hold a second copy
    under the hub's issuer (OB 3.0 Host: no duplication on round trip)."""
    from hub.credentials.badges import SOURCE_PREFIX  # badges -> importer -> service: import late

    return ~Badge.source_id.startswith(SOURCE_PREFIX, autoescape=True)


async def learner_badges(session: AsyncSession, learner_id: UUID, view: ClrView | None = None) -> list[Badge]:
    rows = await session.execute(select(Badge).where(*_entry_clauses(Badge, Badge.awarded_at, "badges", learner_id, view),
                                                     not_a_held_mirror())
                                 .order_by(Badge.awarded_at, Badge.id))
    return list(rows.scalars())


@dataclass(frozen=True)
class ClrView:
    """A provider's consented view of a learner's record (the Host API's fresh ClrCredential).

    ``decisions``: the sections the live grants let this provider read, each with its decision
    (``read_own`` and the data window apply exactly as on GraphQL); ``subject_id``: the learner
    as this provider knows them (pairwise); ``credential_id``: stable per learner and provider,
    so a receiver replaces the previous copy by OB 3.0's equality rule (newer ``validFrom``).
    """

    provider_id: UUID
    decisions: dict[str, Allowed]
    subject_id: str
    credential_id: UUID


def clr_view_id(kit: CredentialKit, learner_id: UUID, provider_id: UUID) -> UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{kit.base}/ims/clr/v2p0/record/{provider_id}/{learner_id}")


def _entry_clauses(model: Any, date_column: Any, section: str, learner_id: UUID, view: ClrView | None) -> list[Any]:
    clauses = [model.learner_id == learner_id]
    if view is None:
        return clauses
    decision = view.decisions[section]
    clauses += [model.deleted_at.is_(None), model.hidden_at.is_(None)]
    if decision.own_only:  # read_own: only what this provider contributed
        clauses.append(model.provider_id == view.provider_id)
    if decision.data_from is not None:
        clauses.append(date_column >= decision.data_from)
    return clauses


def _held_clauses(learner_id: UUID, view: ClrView | None) -> list[Any]:
    clauses = [HeldCredential.learner_id == learner_id]
    if view is not None:
        decision = view.decisions["badges"]
        if decision.own_only:
            clauses.append(HeldCredential.imported_by_provider_id == view.provider_id)
        if decision.data_from is not None:
            clauses.append(HeldCredential.valid_from >= decision.data_from)
    return clauses


async def clr_has_content(session: AsyncSession, learner_id: UUID, view: ClrView) -> bool:
    """Whether the view's CLR would embed anything (``ClrSubject.verifiableCredential`` needs one)."""
    def probes(section: str) -> list[Any]:
        if section == "badges":
            return [select(Badge.id).where(*_entry_clauses(Badge, Badge.awarded_at, "badges", learner_id, view),
                                           not_a_held_mirror()),
                    select(HeldCredential.id).where(*_held_clauses(learner_id, view), HeldCredential.format == "ldp",
                                                    HeldCredential.kind.in_(EMBEDDED_KINDS))]
        if section == "skills":
            return [select(SkillAssessment.id).where(
                *_entry_clauses(SkillAssessment, SkillAssessment.assessed_at, "skills", learner_id, view))]
        return [select(Activity.id).where(*_entry_clauses(Activity, Activity.timestamp, "activities", learner_id, view))]

    for section in view.decisions:
        for probe in probes(section):
            if (await session.execute(probe.limit(1))).first() is not None:
                return True
    return False


async def _issued_clr(session: AsyncSession, learner_id: UUID, credential_id: UUID | None) -> IssuedCredential:
    """A fresh status slot per export, or the one stable row of a view's CLR."""
    if credential_id is not None:
        found = await session.get(IssuedCredential, credential_id)
        if found is not None:
            return found
    list_number, index = await statuslist.allocate_slot(session)
    issued = IssuedCredential(id=credential_id or uuid.uuid4(), learner_id=learner_id, kind="ClrCredential",
                              status_list=list_number, status_index=index)
    session.add(issued)
    await session.flush()
    return issued


async def clr_credential(session: AsyncSession, kit: CredentialKit, learner_id: UUID, now: datetime,
                         sections: Sequence[str] = CLR_SECTIONS, fmt: Format = "ldp",
                         view: ClrView | None = None, counts: dict[str, int] | None = None) -> dict[str, Any] | str:
    """The learner's record (or the chosen sections) as one signed ClrCredential.

    Embedded credentials are always Data Integrity secured JSON-LD (a CLR embeds objects);
    credentials the learner imported are embedded as received, their proofs untouched.
    With a ``view`` (a provider's consented view) only the view's sections are included, read
    under its decisions, with the provider's pairwise subject id and a stable credential id.
    ``counts`` (when given) receives the entries disclosed per section.
    """
    counts = counts if counts is not None else {}
    if view is not None:
        sections = tuple(s for s in CLR_SECTIONS if s in view.decisions)
    unknown = set(sections) - set(CLR_SECTIONS)
    if unknown or not sections:
        raise ValueError(f"sections must be among {', '.join(CLR_SECTIONS)}; got {', '.join(sorted(unknown)) or 'none'}")
    subject_id = view.subject_id if view is not None else None
    issuer = kit.key.issuer_summary()
    embedded: list[Any] = []
    achievements: list[dict[str, Any]] = []
    badge_achievement_ids: dict[int, str] = {}
    badges: list[Badge] = []
    skill_defs: list[dict[str, Any]] = []
    if "badges" in sections:
        badges = await learner_badges(session, learner_id, view)
        for badge in badges:
            signed = await badge_credential(session, kit, badge, now, "ldp", subject_id=subject_id)
            assert isinstance(signed, dict)
            embedded.append(signed)
            achievement = signed["credentialSubject"]["achievement"]
            badge_achievement_ids[badge.id] = achievement["id"]
            achievements.append(achievement)
        held = await session.execute(select(HeldCredential).where(*_held_clauses(learner_id, view))
                                     .order_by(HeldCredential.id))
        for row in held.scalars():
            embedded.extend(embeddable(row))
        counts["badges"] = len(embedded)
    if "skills" in sections:
        rows = (await session.execute(select(SkillAssessment).where(
            *_entry_clauses(SkillAssessment, SkillAssessment.assessed_at, "skills", learner_id, view)))).scalars()
        assessments = list(rows)
        counts["skills"] = len(assessments)
        keys = sorted({(r.framework_uri, r.skill_code) for r in assessments if r.framework_uri and r.skill_code})
        items = await find_items(session, keys)  # type: ignore[arg-type]
        for achievement, extra in export.skill_achievements(assessments, items):
            skill_defs.append(achievement)
            achievements.append(achievement)
            valid_from = export.iso(now)
            unsigned = export.achievement_credential(achievement, extra, learner_id=learner_id, issuer=issuer,
                                                     valid_from=datetime.fromisoformat(valid_from), status=None,
                                                     subject_id=subject_id)
            embedded.append(kit.sign(unsigned, "ldp", now))
    if "activities" in sections:
        where = _entry_clauses(Activity, Activity.timestamp, "activities", learner_id, view)
        summaries = await activity_summaries(session, learner_id, where)
        counts["activities"] = sum(summary.count for summary in summaries)
        for achievement, extra in export.activity_achievements(summaries):
            achievements.append(achievement)
            unsigned = export.achievement_credential(achievement, extra, learner_id=learner_id, issuer=issuer,
                                                     valid_from=now, status=None, subject_id=subject_id)
            embedded.append(kit.sign(unsigned, "ldp", now))
    # OB 3.0 equality: one copy per (issuer.id, id); the hub's fresh signature comes first.
    seen: set[tuple[str | None, Any]] = set()
    unique = []
    for item in embedded:
        identity = (issuer_id_of(item), item.get("id"))
        if identity not in seen:
            seen.add(identity)
            unique.append(item)
    embedded = unique
    issued = await _issued_clr(session, learner_id, view.credential_id if view is not None else None)
    unsigned = export.clr_credential(
        credential_id=issued.id, learner_id=learner_id, issuer=issuer, now=now, credentials=embedded,
        achievements=achievements, association=export.associations(badges, skill_defs, badge_achievement_ids),
        status=statuslist.status_entry(kit.base, issued), subject_id=subject_id,
    )
    return kit.sign(unsigned, fmt, now)


async def activity_summaries(session: AsyncSession, learner_id: UUID,
                             where: Sequence[Any] | None = None) -> list[export.ActivitySummary]:
    """One row per xAPI object, aggregated by the database: a learner may have millions of activities."""
    completed = or_(Activity.result_completion.is_(True), Activity.verb_id.like("%/completed"))
    rows = await session.execute(
        select(Activity.object_id, func.max(Activity.object_name), func.count(), func.max(Activity.result_score_scaled),
               func.max(case((completed, 1), else_=0)), func.min(Activity.timestamp), func.max(Activity.timestamp))
        .where(*(where if where is not None else [Activity.learner_id == learner_id])).group_by(Activity.object_id)
    )
    return [export.ActivitySummary(object_id=r[0], name=r[1], count=r[2], best_scaled=r[3], completed=bool(r[4]),
                                   first=r[5], last=r[6]) for r in rows]


def embeddable(row: HeldCredential) -> list[dict[str, Any]]:
    """Achievement credentials a held credential contributes to a CLR (JSON-LD form only)."""
    if row.format != "ldp":
        return []
    types = row.document.get("type", [])
    types = [types] if isinstance(types, str) else types
    # A held CLR's achievement credentials were imported as held credentials of their own.
    if set(EMBEDDED_KINDS) & set(types):
        return [row.document]
    return []


async def revoke_badge(session: AsyncSession, badge_id: int, now: datetime, reason: str | None = None) -> bool:
    """Revoke the badge's credential: its bit in the revocation list is set from now on."""
    badge = await session.get(Badge, badge_id)
    if badge is None:
        raise LookupError(f"no badge {badge_id}")
    issued = await _issued_for_badge(session, badge)
    return await statuslist.revoke(session, issued.id, now=now, reason=reason)
