"""Issuing, revoking and serving credentials (services flush, never commit).

``CredentialKit`` bundles what signing and verifying need (settings, issuer key, context
loader); build it once per process with ``kit_from_settings``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.config import Settings
from hub.credentials import dataintegrity, export, statuslist, vcjwt
from hub.credentials.contexts import ContextLoader
from hub.credentials.keys import IssuerKey, load_issuer_key
from hub.credentials.models import HeldCredential, IssuedCredential
from hub.credentials.verify import ResolvedKey, Resolver, VerificationResult, issuer_id_of, verify_credential
from hub.frameworks.service import find_items
from hub.records.models import Activity, Badge, SkillAssessment

Format = Literal["ldp", "jwt"]
CLR_SECTIONS = ("badges", "skills", "activities")


class CredentialsNotConfigured(ValueError):
    pass


@dataclass(frozen=True)
class CredentialKit:
    settings: Settings
    key: IssuerKey
    loader: ContextLoader

    @property
    def base(self) -> str:
        return self.settings.issuer.rstrip("/")

    def sign(self, credential: dict[str, Any], fmt: Format, now: datetime) -> dict[str, Any] | str:
        if fmt == "jwt":
            return vcjwt.sign(credential, self.key)
        return dataintegrity.sign(credential, private_key=self.key.private,
                                  verification_method=self.key.verification_method, loader=self.loader, created=now)


def kit_from_settings(settings: Settings) -> CredentialKit:
    if settings.jsonld_contexts_dir is None:
        raise CredentialsNotConfigured(
            "KINFOLIO_JSONLD_CONTEXTS_DIR is not set (a directory of JSON-LD contexts with contexts-index.json)"
        )
    if not settings.jsonld_contexts_dir.is_dir():
        raise CredentialsNotConfigured(f"KINFOLIO_JSONLD_CONTEXTS_DIR {settings.jsonld_contexts_dir} is not a directory")
    return CredentialKit(settings=settings, key=load_issuer_key(settings),
                         loader=ContextLoader(settings.jsonld_contexts_dir))


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
    """Keys: this hub's, did:key, ``trusted``. Status lists: this hub's, read from the database."""
    prefix = statuslist.list_url(kit.base, 0)[:-1]

    async def status_lists(url: str) -> dict[str, Any] | None:
        if not url.startswith(prefix) or not url[len(prefix):].isdigit():
            return None
        return await signed_status_list(session, kit, int(url[len(prefix):]), now)

    return Resolver(own=kit.key, trusted=trusted, status_lists=status_lists)


async def verify(session: AsyncSession, kit: CredentialKit, data: dict[str, Any] | str, now: datetime,
                 trusted: Sequence[ResolvedKey] = ()) -> VerificationResult:
    """The library entry point the CLI (and later the API) calls."""
    return await verify_credential(data, loader=kit.loader, resolver=resolver_for(session, kit, now, trusted), now=now)


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
                           fmt: Format = "ldp") -> dict[str, Any] | str:
    """The badge as a signed OpenBadgeCredential; the same credential id on every export."""
    issued = await _issued_for_badge(session, badge)
    unsigned = export.badge_credential(badge, credential_id=issued.id, learner_id=badge.learner_id,
                                       issuer=kit.key.issuer_summary(), status=statuslist.status_entry(kit.base, issued))
    return kit.sign(unsigned, fmt, now)


async def learner_badges(session: AsyncSession, learner_id: UUID) -> list[Badge]:
    rows = await session.execute(select(Badge).where(Badge.learner_id == learner_id).order_by(Badge.awarded_at, Badge.id))
    return list(rows.scalars())


async def clr_credential(session: AsyncSession, kit: CredentialKit, learner_id: UUID, now: datetime,
                         sections: Sequence[str] = CLR_SECTIONS, fmt: Format = "ldp") -> dict[str, Any] | str:
    """The learner's record (or the chosen sections) as one signed ClrCredential.

    Embedded credentials are always Data Integrity secured JSON-LD (a CLR embeds objects);
    credentials the learner imported are embedded as received, their proofs untouched.
    """
    unknown = set(sections) - set(CLR_SECTIONS)
    if unknown or not sections:
        raise ValueError(f"sections must be among {', '.join(CLR_SECTIONS)}; got {', '.join(sorted(unknown)) or 'none'}")
    issuer = kit.key.issuer_summary()
    embedded: list[Any] = []
    achievements: list[dict[str, Any]] = []
    badge_achievement_ids: dict[int, str] = {}
    badges: list[Badge] = []
    skill_defs: list[dict[str, Any]] = []
    if "badges" in sections:
        badges = await learner_badges(session, learner_id)
        for badge in badges:
            signed = await badge_credential(session, kit, badge, now, "ldp")
            assert isinstance(signed, dict)
            embedded.append(signed)
            achievement = signed["credentialSubject"]["achievement"]
            badge_achievement_ids[badge.id] = achievement["id"]
            achievements.append(achievement)
        held = await session.execute(
            select(HeldCredential).where(HeldCredential.learner_id == learner_id).order_by(HeldCredential.id))
        for row in held.scalars():
            embedded.extend(embeddable(row))
    if "skills" in sections:
        rows = list((await session.execute(select(SkillAssessment).where(SkillAssessment.learner_id == learner_id))).scalars())
        keys = sorted({(r.framework_uri, r.skill_code) for r in rows if r.framework_uri and r.skill_code})
        items = await find_items(session, keys)  # type: ignore[arg-type]
        for achievement, extra in export.skill_achievements(rows, items):
            skill_defs.append(achievement)
            achievements.append(achievement)
            valid_from = export.iso(now)
            unsigned = export.achievement_credential(achievement, extra, learner_id=learner_id, issuer=issuer,
                                                     valid_from=datetime.fromisoformat(valid_from), status=None)
            embedded.append(kit.sign(unsigned, "ldp", now))
    if "activities" in sections:
        for achievement, extra in export.activity_achievements(await activity_summaries(session, learner_id)):
            achievements.append(achievement)
            unsigned = export.achievement_credential(achievement, extra, learner_id=learner_id, issuer=issuer,
                                                     valid_from=now, status=None)
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
    list_number, index = await statuslist.allocate_slot(session)
    issued = IssuedCredential(id=uuid.uuid4(), learner_id=learner_id, kind="ClrCredential",
                              status_list=list_number, status_index=index)
    session.add(issued)
    await session.flush()
    unsigned = export.clr_credential(
        credential_id=issued.id, learner_id=learner_id, issuer=issuer, now=now, credentials=embedded,
        achievements=achievements, association=export.associations(badges, skill_defs, badge_achievement_ids),
        status=statuslist.status_entry(kit.base, issued),
    )
    return kit.sign(unsigned, fmt, now)


async def activity_summaries(session: AsyncSession, learner_id: UUID) -> list[export.ActivitySummary]:
    """One row per xAPI object, aggregated by the database: a learner may have millions of activities."""
    completed = or_(Activity.result_completion.is_(True), Activity.verb_id.like("%/completed"))
    rows = await session.execute(
        select(Activity.object_id, func.max(Activity.object_name), func.count(), func.max(Activity.result_score_scaled),
               func.max(case((completed, 1), else_=0)), func.min(Activity.timestamp), func.max(Activity.timestamp))
        .where(Activity.learner_id == learner_id).group_by(Activity.object_id)
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
    if "OpenBadgeCredential" in types or "AchievementCredential" in types:
        return [row.document]
    return []


async def revoke_badge(session: AsyncSession, badge_id: int, now: datetime, reason: str | None = None) -> bool:
    """Revoke the badge's credential: its bit in the revocation list is set from now on."""
    badge = await session.get(Badge, badge_id)
    if badge is None:
        raise LookupError(f"no badge {badge_id}")
    issued = await _issued_for_badge(session, badge)
    return await statuslist.revoke(session, issued.id, now=now, reason=reason)
