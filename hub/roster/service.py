"""Roster writes made by a trusted operator job (``kinfolio sync run`` of a roster connector).

Adds and flushes; never commits. These are hub-internal: they create or match learners, link the
provider's own ids to them (``hub.links``) and invite guardians. They never create a grant and
never write record data: records still go through the public API, under consent.

Matching rule (documented in connectors/README.md), in order:

1. an existing link (provider, "oneroster", sourcedId) -> that learner;
2. otherwise a learner with the **same date of birth**, the **same given and family name**
   (trimmed, case-folded) **and** a guardian whose e-mail equals (case-insensitively) the e-mail of
   one of the student's roster agents (parent/guardian/relative). Exactly one such learner ->
   linked; more than one -> ambiguous, nothing created (reported);
3. otherwise a new learner (only with a date of birth: age-based consent rules need one).

Nothing is matched on a name alone, on another provider's links, or on a learner's own e-mail.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import OutboxMessage
from hub.links.models import LearnerLink
from hub.links.service import link_learner
from hub.people.models import Guardian, Learner, LearnerGuardian
from hub.roster.models import GuardianInvitation

log = logging.getLogger(__name__)

INVITATION_TTL = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class RosterStudent:
    sourced_id: str
    given_name: str
    family_name: str
    date_of_birth: date | None
    agent_emails: Sequence[str]  # parents/guardians with an e-mail, lower-cased


@dataclass(frozen=True, slots=True)
class StudentOutcome:
    status: str  # linked | matched | created | no_birth_date | ambiguous
    learner_id: UUID | None
    invitations: int = 0


def _fold(value: str) -> str:
    return " ".join(value.split()).casefold()


async def _linked(session: AsyncSession, provider_id: UUID, sourced_id: str) -> UUID | None:
    return (
        await session.execute(
            select(LearnerLink.learner_id).where(
                LearnerLink.provider_id == provider_id, LearnerLink.system == "oneroster",
                LearnerLink.external_id == sourced_id,
            )
        )
    ).scalar_one_or_none()


async def _candidates(session: AsyncSession, student: RosterStudent) -> list[UUID]:
    if student.date_of_birth is None or not student.agent_emails:
        return []
    rows = (
        await session.execute(
            select(Learner.id, Learner.given_name, Learner.family_name)
            .join(LearnerGuardian, LearnerGuardian.learner_id == Learner.id)
            .join(Guardian, Guardian.id == LearnerGuardian.guardian_id)
            .where(Learner.date_of_birth == student.date_of_birth, func.lower(Guardian.email).in_(list(student.agent_emails)))
        )
    ).all()
    return sorted(
        {r.id for r in rows if _fold(r.given_name) == _fold(student.given_name) and _fold(r.family_name) == _fold(student.family_name)},
        key=str,
    )


async def upsert_student(
    *, session: AsyncSession, provider_id: UUID, student: RosterStudent, base_url: str, now: datetime
) -> StudentOutcome:
    """Link (or create) the learner for one roster student and invite its parents (idempotent)."""
    learner_id = await _linked(session, provider_id, student.sourced_id)
    status = "linked"
    if learner_id is None:
        found = await _candidates(session, student)
        if len(found) > 1:
            return StudentOutcome("ambiguous", None)
        if found:
            learner_id, status = found[0], "matched"
        elif student.date_of_birth is None:
            return StudentOutcome("no_birth_date", None)
        else:
            if student.date_of_birth > now.date():
                return StudentOutcome("no_birth_date", None)
            learner = Learner(given_name=student.given_name.strip(), family_name=student.family_name.strip(),
                              date_of_birth=student.date_of_birth)
            session.add(learner)
            await session.flush()
            learner_id, status = learner.id, "created"
        await link_learner(session=session, provider_id=provider_id, system="oneroster", external_id=student.sourced_id,
                           learner_id=learner_id, origin="roster")
    invited = 0
    for email in dict.fromkeys(student.agent_emails):
        if await invite_guardian(session=session, provider_id=provider_id, learner_id=learner_id, email=email,
                                 learner_name=student.given_name, base_url=base_url, now=now):
            invited += 1
    return StudentOutcome(status, learner_id, invited)


async def invite_guardian(
    *, session: AsyncSession, provider_id: UUID, learner_id: UUID, email: str, learner_name: str, base_url: str, now: datetime
) -> bool:
    """Queue one invitation mail unless this address was invited for, or already guards, the learner."""
    email = email.strip().lower()
    if (await session.execute(select(GuardianInvitation.token_hash).where(
            GuardianInvitation.learner_id == learner_id, GuardianInvitation.email == email))).first():
        return False
    if (await session.execute(
        select(LearnerGuardian.id).join(Guardian, Guardian.id == LearnerGuardian.guardian_id).where(
            LearnerGuardian.learner_id == learner_id, func.lower(Guardian.email) == email)
    )).first():
        return False
    token = secrets.token_urlsafe(32)
    session.add(GuardianInvitation(token_hash=hashlib.sha256(token.encode()).hexdigest(), learner_id=learner_id,
                                   provider_id=provider_id, email=email, created_at=now, expires_at=now + INVITATION_TTL))
    link = f"{base_url.rstrip('/')}/family/invitations/{token}"
    body = (
        f"Hello,\n\nYour school's system lists you as a parent or guardian of {learner_name}.\n"
        f"Kinfolio keeps {learner_name}'s learning record; nothing is shared with anyone until you decide.\n"
        f"To accept and review what may be shared, open this link within {INVITATION_TTL.days} days:\n\n{link}\n\n"
        "If this is not you, ignore this message.\n"
    )
    session.add(OutboxMessage(to_address=email, subject="You are invited to your child's Kinfolio record", body=body, created_at=now))
    # No mail server in development: the outbox row and this log line are the delivery.
    log.info("outbox: guardian invitation to %s", email)
    await session.flush()
    return True


@dataclass(frozen=True, slots=True)
class InvitationView:
    state: str  # open | used | expired | unknown
    email: str | None = None
    learner_id: UUID | None = None
    learner_name: str | None = None
    provider_name: str | None = None


async def invitation_view(*, session: AsyncSession, token: str, now: datetime) -> InvitationView:
    """What an invitation link stands for, for the page that accepts it (hub/web/invitations.py)."""
    from hub.providers.models import Provider

    if not token or len(token) > 100:
        return InvitationView("unknown")
    row = await session.get(GuardianInvitation, hashlib.sha256(token.encode()).hexdigest())
    if row is None:
        return InvitationView("unknown")
    state = "used" if row.accepted_at is not None else "expired" if row.expires_at <= now else "open"
    learner = await session.get(Learner, row.learner_id)
    provider = await session.get(Provider, row.provider_id)
    return InvitationView(state, row.email, row.learner_id, learner.given_name if learner else None,
                          provider.name if provider else None)


async def accept_invitation(*, session: AsyncSession, token: str, guardian_id: UUID, now: datetime) -> UUID | None:
    """A signed-in guardian accepts: they become a guardian of the learner. No grant is made."""
    if not token or len(token) > 100:
        return None
    row = await session.get(GuardianInvitation, hashlib.sha256(token.encode()).hexdigest())
    guardian = await session.get(Guardian, guardian_id)
    if row is None or guardian is None or row.accepted_at is not None or row.expires_at <= now:
        return None
    if guardian.email.lower() != row.email:
        return None  # an invitation is for the address it was sent to
    row.accepted_at = now
    if not (await session.execute(select(LearnerGuardian.id).where(
            LearnerGuardian.learner_id == row.learner_id, LearnerGuardian.guardian_id == guardian_id))).first():
        session.add(LearnerGuardian(learner_id=row.learner_id, guardian_id=guardian_id))
    await session.flush()
    return row.learner_id
