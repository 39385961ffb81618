"""Who controls a learner's record, from the learner's age and a jurisdiction policy.

Defaults follow US law as the common case and are settings, not code:

- under 13 (COPPA, 16 CFR §312.5): guardians only; any provider needs a guardian's consent;
- 13 to 17: guardians decide; the learner can see the whole record and the disclosure log;
- 18 and over (FERPA's "eligible student", 34 CFR §99.5(a)): control passes to the learner, and
  guardians keep only what the learner shares with them.

Pure: the caller passes the date of birth, today's date and the acting party.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class Controller(StrEnum):
    GUARDIANS = "guardians"
    LEARNER = "learner"


class ActorKind(StrEnum):
    GUARDIAN = "guardian"
    LEARNER = "learner"


@dataclass(frozen=True, slots=True)
class ControlPolicy:
    name: str = "us-default (COPPA under 13, FERPA eligible student at 18)"
    learner_view_age: int = 13
    adult_age: int = 18
    # With several guardians, any one may grant or revoke; this makes grants of sensitive sections
    # need every guardian's approval.
    all_guardians_for_sensitive: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.learner_view_age <= self.adult_age:
            raise ValueError("learner_view_age must be positive and not above adult_age")


@dataclass(frozen=True, slots=True)
class Control:
    age: int
    controller: Controller
    learner_sees_record: bool
    learner_sees_log: bool


def age_on(date_of_birth: date, day: date) -> int:
    """Completed years on ``day``; someone born on 29 February turns a year older on 1 March."""
    years = day.year - date_of_birth.year
    if (day.month, day.day) < (date_of_birth.month, date_of_birth.day):
        years -= 1
    return years


def control_of(date_of_birth: date, today: date, policy: ControlPolicy) -> Control:
    age = age_on(date_of_birth, today)
    adult = age >= policy.adult_age
    sees = age >= policy.learner_view_age
    return Control(
        age=age,
        controller=Controller.LEARNER if adult else Controller.GUARDIANS,
        learner_sees_record=sees,
        learner_sees_log=sees,
    )


@dataclass(frozen=True, slots=True)
class ControlDecision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def may_manage_consent(
    *, actor: ActorKind, is_guardian_of_learner: bool, date_of_birth: date, today: date, policy: ControlPolicy
) -> ControlDecision:
    """May this actor grant, revoke or decide access requests for this learner today?"""
    control = control_of(date_of_birth, today, policy)
    if actor is ActorKind.LEARNER:
        if control.controller is Controller.LEARNER:
            return ControlDecision(True, "the learner is of age and controls the record")
        return ControlDecision(False, f"the learner is {control.age}; guardians control the record until {policy.adult_age}")
    if not is_guardian_of_learner:
        return ControlDecision(False, "not a guardian of this learner")
    if control.controller is Controller.LEARNER:
        return ControlDecision(False, f"the learner is {control.age}; control has passed to the learner")
    return ControlDecision(True, "a guardian of a learner under the age of majority")


def approvals_needed(*, sensitive: bool, guardian_count: int, controller: Controller, policy: ControlPolicy) -> int:
    """How many distinct controllers must approve a grant before it takes effect."""
    if controller is Controller.LEARNER:
        return 1
    if sensitive and policy.all_guardians_for_sensitive:
        return max(guardian_count, 1)
    return 1
