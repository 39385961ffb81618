"""Who may see and manage which learner's record in the family portal.

Every portal page asks ``access_to`` first. A learner the signed-in person has no link to is
*not found* (the same answer as an id that does not exist, so ids cannot be probed); what a
linked person may do follows the age rules of ``consent.control``:

- a guardian sees and manages the record of a learner under the age of majority; once the
  learner is of age, control (and the record) pass to the learner;
- a learner with their own sign-in sees their record and disclosure log from the learner-view
  age (13) and manages sharing from the age of majority (18).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from consent.control import Control, Controller, ControlPolicy, control_of
from hub.accounts.models import LearnerAccount
from hub.grants.family import Actor
from hub.people.models import Guardian, Learner, LearnerGuardian


class NotFound(LookupError):
    """No such learner for this person (whether or not it exists)."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in person: a guardian or a learner with their own account."""

    guardian: Guardian | None = None
    learner_account: LearnerAccount | None = None

    @property
    def name(self) -> str:
        return self.guardian.display_name if self.guardian else "you"

    @property
    def actor(self) -> Actor:
        return Actor.guardian(self.guardian.id) if self.guardian else Actor.learner()


@dataclass(frozen=True)
class LearnerAccess:
    learner: Learner
    control: Control
    may_view: bool  # the record and export
    may_view_log: bool  # the disclosure history
    may_manage: bool  # sharing, requests, deletion
    is_self: bool  # the learner looking at their own record
    why_not: str  # shown when a page is refused


def _decide(learner: Learner, viewer: Viewer, today: date, policy: ControlPolicy) -> LearnerAccess:
    control = control_of(learner.date_of_birth, today, policy)
    adult = control.controller is Controller.LEARNER
    if viewer.guardian is not None:
        why = f"{learner.given_name} is {control.age}: the record is theirs now, and only they can open it." if adult else ""
        return LearnerAccess(learner, control, not adult, not adult, not adult, False, why)
    if control.learner_sees_record:
        why = "" if adult else f"Your family manages sharing until you are {policy.adult_age}."
    else:
        why = f"You can see your record from the age of {policy.learner_view_age}."
    return LearnerAccess(learner, control, control.learner_sees_record, control.learner_sees_log, adult, True, why)


async def visible_learners(
    *, session: AsyncSession, viewer: Viewer, today: date, policy: ControlPolicy
) -> list[LearnerAccess]:
    if viewer.guardian is not None:
        learners = (await session.execute(
            select(Learner).join(LearnerGuardian, LearnerGuardian.learner_id == Learner.id)
            .where(LearnerGuardian.guardian_id == viewer.guardian.id).order_by(Learner.given_name, Learner.id)
        )).scalars()
    elif viewer.learner_account is not None:
        own = await session.get(Learner, viewer.learner_account.learner_id)
        learners = [own] if own is not None else []
    else:
        learners = []
    return [_decide(learner, viewer, today, policy) for learner in learners]


async def access_to(
    *, session: AsyncSession, viewer: Viewer, learner_id: UUID, today: date, policy: ControlPolicy
) -> LearnerAccess:
    """This person's access to this learner; ``NotFound`` unless they are linked."""
    if viewer.guardian is not None:
        linked = (await session.execute(select(LearnerGuardian.id).where(
            LearnerGuardian.learner_id == learner_id, LearnerGuardian.guardian_id == viewer.guardian.id
        ))).first()
    else:
        linked = viewer.learner_account is not None and viewer.learner_account.learner_id == learner_id
    learner = await session.get(Learner, learner_id) if linked else None
    if learner is None:
        raise NotFound("no such learner")
    return _decide(learner, viewer, today, policy)
