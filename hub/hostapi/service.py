"""What the Host API reads and writes (services flush, never commit).

``getCredentials`` lists, for one learner and as far as one consent decision allows:

1. the learner's badges, each as the hub-signed ``OpenBadgeCredential`` (same credential id on every
   call, ``hub.credentials.service.badge_credential``), oldest award first; then
2. the credentials the learner holds (imported, kept whole), in import order: JSON-LD ones in
   ``credential``, VC-JWT ones in ``compactJwsString`` (OB 3.0 §6.2.1 GetOpenBadgeCredentialsResponse).

The OB binding lists OB credentials (badges and held ``OpenBadgeCredential`` /
``AchievementCredential``). The CLR binding lists, first, the learner's current record as a
freshly generated, signed ``ClrCredential`` (``hub.credentials.service.ClrView``: only the
sections this provider's live grants let it read, its pairwise subject id, a stable id per
learner and provider, ``validFrom`` now; left out when it would embed nothing, as
``ClrSubject.verifiableCredential`` needs one), then the held ``ClrCredential`` s.
Offset paging walks the concatenation of the two lists with one ``OFFSET/LIMIT`` per table.
Credentials the hub signs name the learner by the reader's pairwise id, never the hub's own id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from consent import Allowed
from hub.credentials.models import HeldCredential
from hub.credentials.service import ClrView, CredentialKit, badge_credential, clr_credential, clr_has_content, not_a_held_mirror
from hub.records import service as record_service
from hub.records.models import Badge
from schemas import records as record_schemas

Binding = Literal["ob", "clr"]
HELD_KINDS: dict[Binding, tuple[str, ...]] = {
    "ob": ("OpenBadgeCredential", "AchievementCredential"),
    "clr": ("ClrCredential",),
}
# The one profile entry each provider keeps through PUT /profile (updated in place on re-send).
PROFILE_SOURCE_ID = "ims-host-api-profile"


@dataclass
class CredentialPage:
    total: int
    credential: list[dict[str, Any]] = field(default_factory=list)
    compact_jws: list[str] = field(default_factory=list)
    # Entries the fresh ClrCredential on this page disclosed, per section (for the log).
    record_counts: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.credential) + len(self.compact_jws)


def _badge_filter(access: Allowed, learner_id: UUID, provider_id: UUID, since: datetime | None) -> list[Any]:
    clauses = [Badge.learner_id == learner_id, Badge.deleted_at.is_(None), Badge.hidden_at.is_(None),
               # A badge mirroring a held credential: the held credential itself is listed instead.
               not_a_held_mirror()]
    if access.own_only:  # read_own: only what this provider contributed
        clauses.append(Badge.provider_id == provider_id)
    if access.data_from is not None:
        clauses.append(Badge.awarded_at >= access.data_from)
    if since is not None:
        clauses.append(Badge.awarded_at >= since)
    return clauses


def _held_filter(binding: Binding, access: Allowed, learner_id: UUID, provider_id: UUID,
                 since: datetime | None) -> list[Any]:
    clauses = [HeldCredential.learner_id == learner_id, HeldCredential.kind.in_(HELD_KINDS[binding]),
               HeldCredential.format.in_(("ldp", "jwt"))]
    if access.own_only:
        clauses.append(HeldCredential.imported_by_provider_id == provider_id)
    if access.data_from is not None:
        clauses.append(HeldCredential.valid_from >= access.data_from)
    if since is not None:
        clauses.append(HeldCredential.valid_from >= since)
    return clauses


async def list_credentials(
    *, session: AsyncSession, kit: CredentialKit, binding: Binding, access: Allowed, learner_id: UUID,
    provider_id: UUID, limit: int, offset: int, since: datetime | None, now: datetime, subject_id: str,
    view: ClrView | None = None,
) -> CredentialPage:
    held_where = _held_filter(binding, access, learner_id, provider_id, since)
    badge_where = _badge_filter(access, learner_id, provider_id, since) if binding == "ob" else None
    if badge_where is not None:
        leading = (await session.execute(select(func.count()).select_from(Badge).where(*badge_where))).scalar_one()
    else:  # CLR: the fresh record, when it has something to say (and is not filtered out by since)
        leading = int(view is not None and (since is None or since <= now) and
                      await clr_has_content(session, learner_id, view))
    held_total = (await session.execute(select(func.count()).select_from(HeldCredential).where(*held_where))).scalar_one()
    page = CredentialPage(total=leading + held_total)
    if badge_where is not None and offset < leading:
        badges = (await session.execute(select(Badge).where(*badge_where).order_by(Badge.awarded_at, Badge.id)
                                        .offset(offset).limit(limit))).scalars()
        for badge in badges:
            signed = await badge_credential(session, kit, badge, now, "ldp", subject_id=subject_id)
            assert isinstance(signed, dict)
            page.credential.append(signed)
    elif view is not None and offset < leading:
        fresh = await clr_credential(session, kit, learner_id, now, view=view, counts=page.record_counts)
        assert isinstance(fresh, dict)
        page.credential.append(fresh)
    remaining = limit - page.count
    if remaining > 0:
        held_offset = max(0, offset - leading)
        rows = (await session.execute(select(HeldCredential).where(*held_where).order_by(HeldCredential.id)
                                      .offset(held_offset).limit(remaining))).scalars()
        for row in rows:
            if row.format == "jwt" and row.compact_jws:
                page.compact_jws.append(row.compact_jws)
            else:
                page.credential.append(row.document)
    return page


# -- profile -------------------------------------------------------------------------------------


async def latest_profile(*, session: AsyncSession, access: Allowed, learner_id: UUID,
                         provider_id: UUID) -> record_schemas.ProfileCreate | None:
    """The newest profile statement this provider may read (``read_own`` and windows applied)."""
    spec = record_service.page_query(access, section="profile", reader_provider_id=provider_id, first=1)
    page = await record_service.list_entries(session=session, access=access, learner_id=learner_id, spec=spec)
    return page.entries[0].value if page.entries else None


def profile_document(subject_id: str, statement: record_schemas.ProfileCreate | None) -> dict[str, Any]:
    """An OB 3.0 / CLR 2.0 ``Profile`` (§B.2.x): ``id`` and ``type`` required. The learner is
    identified by this provider's pairwise id; pronouns and languages are Kinfolio extensions
    (the Profile class allows additional properties)."""
    doc: dict[str, Any] = {"id": subject_id, "type": "Profile"}
    if statement is not None:
        if statement.preferred_name is not None:
            doc["name"] = statement.preferred_name
        if statement.pronouns is not None:
            doc["pronouns"] = statement.pronouns
        if statement.languages:
            doc["languages"] = [lang.model_dump(exclude_none=True) for lang in statement.languages]
    return doc


def profile_statement(doc: Any, now: datetime) -> record_schemas.ProfileCreate:
    """A PUT Profile as a profile statement; ``ValueError`` (pydantic's included) when unusable."""
    if not isinstance(doc, dict):
        raise ValueError("the body must be a Profile JSON object")
    types = doc.get("type")
    if (types if isinstance(types, list) else [types]).count("Profile") != 1:
        raise ValueError("type must be (or include) \"Profile\"")
    languages = doc.get("languages", [])
    if isinstance(languages, list):
        languages = [{"tag": lang} if isinstance(lang, str) else lang for lang in languages]
    return record_schemas.ProfileCreate.model_validate({
        "source_id": PROFILE_SOURCE_ID, "as_of": now, "preferred_name": doc.get("name"),
        "pronouns": doc.get("pronouns"), "languages": languages,
    })
