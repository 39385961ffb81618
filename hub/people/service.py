"""Guardians and learners. Adds and flushes; never commits."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.people.models import Guardian, Learner, LearnerGuardian


class AlreadyExists(ValueError):
    pass


async def create_guardian(*, session: AsyncSession, email: str, display_name: str) -> Guardian:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise ValueError(f"{email!r} is not an email address")
    if (await session.execute(select(Guardian.id).where(Guardian.email == email))).first():
        raise AlreadyExists(f"a guardian with email {email} already exists")
    guardian = Guardian(email=email, display_name=display_name.strip())
    session.add(guardian)
    await session.flush()
    return guardian


async def create_learner(
    *, session: AsyncSession, given_name: str, family_name: str, date_of_birth: date, guardian_ids: list[UUID], today: date
) -> Learner:
    if date_of_birth > today:
        raise ValueError("date of birth is in the future")
    if not guardian_ids:
        raise ValueError("a learner needs at least one guardian")
    learner = Learner(given_name=given_name.strip(), family_name=family_name.strip(), date_of_birth=date_of_birth)
    session.add(learner)
    await session.flush()
    for guardian_id in guardian_ids:
        if await session.get(Guardian, guardian_id) is None:
            raise LookupError(f"no guardian {guardian_id}")
        session.add(LearnerGuardian(learner_id=learner.id, guardian_id=guardian_id))
    await session.flush()
    return learner


async def get_guardian_by_email(*, session: AsyncSession, email: str) -> Guardian | None:
    return (await session.execute(select(Guardian).where(Guardian.email == email.strip().lower()))).scalar_one_or_none()
