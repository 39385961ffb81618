"""``importCredentials``: a provider hands the hub verifiable credentials it holds for a learner.

Each item is an OB 2.0 signed assertion (compact JWS), an OB 3.0 / CLR 2.0 credential as JSON-LD
text (Data Integrity proof) or a compact JWS (VC-JWT). The consent gate is the one every import
goes through: ``ProviderAccess.authorize(learner, "badges", contribute)``, decided once for the
call before any item is read (a refused provider learns nothing about its input), and again by
``import_credential`` itself.

Per item, in its own savepoint (one bad item never sinks the others): verify, hold the document
whole (``hub.credentials.importer``: dedup by issuer.id + id, a newer ``validFrom`` replaces), then
write or update the badge entry that shows it (``hub.credentials.badges``). A credential that does
not verify is ``REFUSED`` with the verifier's reasons; nothing about it is stored.
"""

from __future__ import annotations

from enum import Enum
from uuid import UUID

import strawberry
from sqlalchemy.exc import IntegrityError
from strawberry.types import Info

from hub.credentials.badges import NoBadge, badge_entry
from hub.credentials.importer import ImportOutcome, ImportRefused, import_credential
from hub.credentials.routes import credential_kit
from hub.credentials.service import CredentialsNotConfigured
from hub.graphql.context import Context
from hub.graphql.errors import ErrorCode, api_error, bad_input
from hub.records import service as record_service
from hub.records.crypto import UnreadableData

MAX_ITEM_CHARS = 1_000_000  # one credential (a CLR with its embedded credentials included)
MAX_CALL_CHARS = 5_000_000  # all items of one call
MAX_ITEMS = 100


@strawberry.enum(description="What happened to one imported credential.")
class CredentialImportOutcome(Enum):
    CREATED = "created"
    REPLACED = "replaced"  # same issuer.id + id, newer validFrom
    UNCHANGED = "unchanged"
    KEPT_NEWER = "kept_newer"  # the held one has a newer validFrom; nothing changed
    REFUSED = "refused"  # did not verify (or is not a credential); nothing stored


@strawberry.type(description="One item of importCredentials, in input order.")
class CredentialImportItem:
    index: int
    outcome: CredentialImportOutcome
    reasons: list[str] = strawberry.field(description="Why it was refused (the verifier's failed checks), or why "
                                                      "no badge entry shows it.")
    kind: str | None = None
    issuer_id: str | None = None
    credential_id: str | None = None
    included: int = strawberry.field(default=0, description="Credentials held from inside a CLR.")
    badge_source_ids: list[str] = strawberry.field(
        default_factory=list, description="sourceIds of the `badges` entries showing it (and a CLR's achievements).")


@strawberry.type(description="What importCredentials did.")
class CredentialImportResult:
    received: int
    created: int
    replaced: int
    unchanged: int
    kept_newer: int
    refused: int
    results: list[CredentialImportItem]


def check_sizes(credentials: list[str]) -> None:
    if not credentials:
        raise bad_input("credentials is empty", argument="credentials")
    if len(credentials) > MAX_ITEMS:
        raise bad_input(f"credentials holds {len(credentials)} items; the limit per call is {MAX_ITEMS}",
                        argument="credentials")
    too_long = [i for i, c in enumerate(credentials) if len(c) > MAX_ITEM_CHARS]
    if too_long:
        raise bad_input(f"credentials {too_long[:10]} are longer than {MAX_ITEM_CHARS} characters; nothing was stored",
                        argument="credentials")
    if sum(map(len, credentials)) > MAX_CALL_CHARS:
        raise bad_input(f"credentials total more than {MAX_CALL_CHARS} characters; split the call",
                        argument="credentials")


async def import_credentials(info: Info[Context, None], learner_id: UUID, credentials: list[str],
                             allowed: object) -> CredentialImportResult:
    """``learner_id`` is resolved and ``allowed`` decided by the caller (schema.py's consent helpers)."""
    ctx = info.context
    try:
        kit = credential_kit(ctx.request)
    except CredentialsNotConfigured as exc:
        raise api_error(ErrorCode.NOT_CONFIGURED, f"credential import is not configured on this hub: {exc}") from None
    trusted = getattr(ctx.request.app.state, "credential_trusted_keys", ())
    results: list[CredentialImportItem] = []
    async with ctx.db() as session:
        for index, raw in enumerate(credentials):
            try:
                async with session.begin_nested():
                    outcome = await import_credential(session, kit, learner_id, raw, now=ctx.access.now,
                                                      access=ctx.access, trusted=trusted)
                    item = _item(index, outcome)
                    for held in [outcome, *outcome.included]:
                        await _show_as_badge(ctx, session, learner_id, held, allowed, item)
            except ImportRefused as exc:
                failures = exc.verification.failures() if exc.verification is not None else []
                item = CredentialImportItem(index=index, outcome=CredentialImportOutcome.REFUSED,
                                            reasons=[f"{c.name}: {c.detail}" for c in failures] or [str(exc)])
            except RecursionError:
                item = CredentialImportItem(index=index, outcome=CredentialImportOutcome.REFUSED,
                                            reasons=["nested too deeply"])
            except IntegrityError:
                raise api_error(ErrorCode.CONFLICT, "a concurrent request stored some of these credentials; retry") from None
            except UnreadableData:
                raise api_error(ErrorCode.DATA_UNREADABLE, "stored badges failed an integrity check") from None
            results.append(item)
    count = {o: sum(1 for r in results if r.outcome is o) for o in CredentialImportOutcome}
    return CredentialImportResult(
        received=len(credentials), created=count[CredentialImportOutcome.CREATED],
        replaced=count[CredentialImportOutcome.REPLACED], unchanged=count[CredentialImportOutcome.UNCHANGED],
        kept_newer=count[CredentialImportOutcome.KEPT_NEWER], refused=count[CredentialImportOutcome.REFUSED],
        results=results,
    )


def _item(index: int, outcome: ImportOutcome) -> CredentialImportItem:
    return CredentialImportItem(index=index, outcome=CredentialImportOutcome(outcome.outcome), reasons=[],
                                kind=outcome.kind, issuer_id=outcome.issuer_id, credential_id=outcome.credential_id,
                                included=len(outcome.included))


async def _show_as_badge(ctx: Context, session, learner_id: UUID, held: ImportOutcome, allowed: object,  # type: ignore[no-untyped-def]
                         item: CredentialImportItem) -> None:
    if held.outcome == "kept_newer" or held.document is None:
        return  # the newer credential already held keeps its badge as it is
    try:
        entry = badge_entry(held.document, kind=held.kind, issuer_id=held.issuer_id, credential_id=held.credential_id)
    except NoBadge as exc:
        if held.kind != "ClrCredential":
            item.reasons.append(str(exc))
        return
    await record_service.contribute_entries(
        session=session, access=allowed, section="badges", learner_id=learner_id,  # type: ignore[arg-type]
        provider_id=ctx.token.provider_id, entries=[entry], now=ctx.access.now, data_keys=ctx.data_keys,
    )
    item.badge_source_ids.append(entry.source_id)

