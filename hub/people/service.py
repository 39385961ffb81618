"""Guardians and learners. Adds and flushes; never commits."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from consent import Allowed

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


async def date_of_birth(*, session: AsyncSession, access: Allowed, learner_id: UUID) -> date | None:
    """The learner's date of birth, under a ``profile.birthdate:read`` decision (``access``)."""
    del access  # proof of a decision, as in hub.records.service
    return (await session.execute(select(Learner.date_of_birth).where(Learner.id == learner_id))).scalar_one_or_none()


async def delete_learner(*, session: AsyncSession, learner_id: UUID) -> bool:
    """Delete a learner and their whole record; returns False when there is no such learner.

    The learner's data key is destroyed first and explicitly (crypto-shredding): from then on the
    sealed fields of the sensitive sections cannot be decrypted from any copy, including backups,
    once the KEK that wrapped the key in those backups is retired (see README, "Encryption at rest").
    The change feed's rows have no foreign key (see ``RecordChange``) and are deleted here;
    everything else of the record goes by ON DELETE CASCADE.
    """
    from hub.records.keys import destroy_data_key
    from hub.records.models import RecordChange

    if await session.get(Learner, learner_id) is None:
        return False
    await destroy_data_key(session=session, learner_id=learner_id)
    await session.execute(delete(Learner).where(Learner.id == learner_id))
    # After the learner: a concurrent write holding the learner row (its entries' foreign keys)
    # makes the delete above wait for its commit, so this statement sees that write's changes too.
    await session.execute(delete(RecordChange).where(RecordChange.learner_id == learner_id))
    return True
