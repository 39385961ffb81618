"""Learners, guardians (family accounts) and the link between them.

.. pii: names, email addresses and dates of birth. Retention: until the family deletes the
   account or the learner's record (issue: family portal); nothing here is sent to providers
   in this slice.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow


class Guardian(Base):
    """A family account: a parent or carer who controls one or more learners' records."""

    __tablename__ = "guardian"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    # Sign-in arrives with the OAuth/family-accounts issue; the column exists so it is additive.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Learner(Base):
    """The person a record is about. ``date_of_birth`` drives age-based control rules."""

    __tablename__ = "learner"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    given_name: Mapped[str] = mapped_column(String(200))
    family_name: Mapped[str] = mapped_column(String(200))
    date_of_birth: Mapped[date] = mapped_column(Date())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LearnerGuardian(Base):
    __tablename__ = "learner_guardian"
    __table_args__ = (UniqueConstraint("learner_id", "guardian_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    learner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learner.id", ondelete="CASCADE"), index=True)
    guardian_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("guardian.id", ondelete="CASCADE"), index=True)
    relationship: Mapped[str] = mapped_column(String(50), default="guardian")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
