"""Linking source-system learner ids to learners, and answering a provider's lookups.

Adds and flushes; never commits.

Matching rule (documented in connectors/README.md): a source identifier matches a learner only
through an exact (provider, system, external id) link. Nothing is matched on names, e-mail
addresses across providers or dates of birth: an identifier without a link is *unknown* and the
record is held back, never guessed.

What a lookup reveals: ``linked`` with the provider's pairwise id only while the provider holds
a live grant for the learner (the same rule, ``consent.has_live_grant``, that makes a learner
visible in ``learners``); ``consent_required`` when the provider's own identifier is linked but
no grant is live (the provider made or was given that link, so this says nothing new about the
learner and carries no learner id); ``unknown`` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from consent import has_live_grant
from hub.grants.models import LearnerPseudonym
from hub.grants.service import grants_between
from hub.links.models import LearnerLink

SYSTEMS = ("xapi", "oneroster")
ORIGINS = ("family", "operator", "roster")


class LinkConflict(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class LinkAnswer:
    external_id: str
    status: str  # linked | consent_required | unknown
    pseudonym: str | None = None


async def link_learner(
    *, session: AsyncSession, provider_id: UUID, system: str, external_id: str, learner_id: UUID, origin: str
) -> tuple[LearnerLink, bool]:
    """Link (provider, system, external id) to a learner. Idempotent; refuses to re-point a link."""
    if system not in SYSTEMS:
        raise ValueError(f"system must be one of: {', '.join(SYSTEMS)}")
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of: {', '.join(ORIGINS)}")
    external_id = external_id.strip()
    if not external_id or len(external_id) > 500:
        raise ValueError("external id must be 1-500 characters")
    existing = (
        await session.execute(
            select(LearnerLink).where(
                LearnerLink.provider_id == provider_id,
                LearnerLink.system == system,
                LearnerLink.external_id == external_id,
            )
        )
    ).scalar_one_or_none()
    if existing is not None:
        if existing.learner_id != learner_id:
            raise LinkConflict(f"{system} id {external_id!r} is already linked to another learner for this provider")
        return existing, False
    link = LearnerLink(
        provider_id=provider_id, system=system, external_id=external_id, learner_id=learner_id, origin=origin
    )
    session.add(link)
    await session.flush()
    return link, True


async def lookup_links(
    *, session: AsyncSession, provider_id: UUID, system: str, external_ids: Sequence[str], at: datetime
) -> list[LinkAnswer]:
    wanted = list(dict.fromkeys(external_ids))
    rows = (
        await session.execute(
            select(LearnerLink.external_id, LearnerLink.learner_id).where(
                LearnerLink.provider_id == provider_id,
                LearnerLink.system == system,
                LearnerLink.external_id.in_(wanted),
            )
        )
    ).all()
    learner_of = {row.external_id: row.learner_id for row in rows}
    live: dict[UUID, bool] = {}
    for learner_id in set(learner_of.values()):
        live[learner_id] = has_live_grant(
            await grants_between(session=session, provider_id=provider_id, learner_id=learner_id), at
        )
    pseudonyms: dict[UUID, str] = {}
    visible = [lid for lid, ok in live.items() if ok]
    if visible:
        result = await session.execute(
            select(LearnerPseudonym.learner_id, LearnerPseudonym.pseudonym).where(
                LearnerPseudonym.provider_id == provider_id, LearnerPseudonym.learner_id.in_(visible)
            )
        )
        pseudonyms = {row.learner_id: row.pseudonym for row in result}
    answers = []
    for external_id in wanted:
        learner_id = learner_of.get(external_id)
        if learner_id is None:
            answers.append(LinkAnswer(external_id, "unknown"))
        elif learner_id in pseudonyms:
            answers.append(LinkAnswer(external_id, "linked", pseudonyms[learner_id]))
        else:
            answers.append(LinkAnswer(external_id, "consent_required"))
    return answers
