"""Who controls a record, by age: the day before and on the 13th and 18th birthdays."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from consent.control import (
    ActorKind,
    ControlPolicy,
    Controller,
    age_on,
    approvals_needed,
    control_of,
    may_manage_consent,
)

POLICY = ControlPolicy()
BORN = date(2010, 6, 15)


@pytest.mark.parametrize(
    ("day", "age", "controller", "learner_sees"),
    [
        (date(2023, 6, 14), 12, Controller.GUARDIANS, False),
        (date(2023, 6, 15), 13, Controller.GUARDIANS, True),
        (date(2028, 6, 14), 17, Controller.GUARDIANS, True),
        (date(2028, 6, 15), 18, Controller.LEARNER, True),
    ],
    ids=["day before 13", "13th birthday", "day before 18", "18th birthday"],
)
def test_control_follows_birthdays(day, age, controller, learner_sees):  # type: ignore[no-untyped-def]
    control = control_of(BORN, day, POLICY)
    assert (control.age, control.controller, control.learner_sees_record, control.learner_sees_log) == (
        age, controller, learner_sees, learner_sees,
    )


@pytest.mark.parametrize(
    ("day", "actor", "is_guardian", "allowed", "reason"),
    [
        (date(2028, 6, 14), ActorKind.GUARDIAN, True, True, "a guardian of a learner under the age of majority"),
        (date(2028, 6, 15), ActorKind.GUARDIAN, True, False, "the learner is 18; control has passed to the learner"),
        (date(2028, 6, 14), ActorKind.LEARNER, False, False, "the learner is 17; guardians control the record until 18"),
        (date(2028, 6, 15), ActorKind.LEARNER, False, True, "the learner is of age and controls the record"),
        (date(2020, 1, 1), ActorKind.GUARDIAN, False, False, "not a guardian of this learner"),
    ],
    ids=["guardian at 17", "guardian at 18", "learner at 17", "learner at 18", "stranger"],
)
def test_who_may_manage_consent(day, actor, is_guardian, allowed, reason):  # type: ignore[no-untyped-def]
    decision = may_manage_consent(actor=actor, is_guardian_of_learner=is_guardian, date_of_birth=BORN, today=day, policy=POLICY)
    assert (bool(decision), decision.reason) == (allowed, reason)


def test_leap_day_birthday_counts_from_first_of_march():
    born = date(2008, 2, 29)
    assert age_on(born, date(2026, 2, 28)) == 17
    assert age_on(born, date(2026, 3, 1)) == 18


def test_jurisdiction_policy_is_configurable():
    policy = ControlPolicy(learner_view_age=16, adult_age=16)
    assert control_of(BORN, BORN + timedelta(days=365 * 16 + 4), policy).controller is Controller.LEARNER
    with pytest.raises(ValueError):
        ControlPolicy(learner_view_age=19, adult_age=18)


@pytest.mark.parametrize(
    ("sensitive", "guardians", "controller", "all_for_sensitive", "needed"),
    [
        (False, 2, Controller.GUARDIANS, True, 1),
        (True, 2, Controller.GUARDIANS, False, 1),
        (True, 2, Controller.GUARDIANS, True, 2),
        (True, 2, Controller.LEARNER, True, 1),
    ],
)
def test_approvals_needed(sensitive, guardians, controller, all_for_sensitive, needed):  # type: ignore[no-untyped-def]
    policy = ControlPolicy(all_guardians_for_sensitive=all_for_sensitive)
    assert approvals_needed(sensitive=sensitive, guardian_count=guardians, controller=controller, policy=policy) == needed
