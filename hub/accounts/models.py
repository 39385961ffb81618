"""Family-account sign-in support: throttling events, password resets and the mail outbox.

.. pii: email addresses (throttle keys, outbox recipients) and the text of outgoing mail.
   Retention: throttle events older than the lockout window and used/expired reset tokens may be
   purged at any time; the outbox is a development/hand-off queue, not an archive.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, BigIntPK, UTCDateTime, utcnow


class RateEvent(Base):
    """One counted event (a failed sign-in, a client registration) for a throttle bucket."""

    __tablename__ = "rate_event"
    __table_args__ = (Index("ix_rate_event_bucket_key_at", "bucket", "key", "at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    bucket: Mapped[str] = mapped_column(String(40))  # login | register
    key: Mapped[str] = mapped_column(String(320))  # normalised email, or source address
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PasswordReset(Base):
    """A single-use password-reset token; only its SHA-256 digest is stored."""

    __tablename__ = "password_reset"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    guardian_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("guardian.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OutboxMessage(Base):
    """Mail waiting to be sent. Development has no mail server: messages are also logged."""

    __tablename__ = "outbox_message"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LearnerAccount(Base):
    """A learner's own sign-in (13+: their record and disclosure log; 18+: their sharing page too).

    Created by a guardian with an invitation link (only the SHA-256 digest of the link's token is
    stored); the learner chooses the password, so no guardian ever knows it. Emails are unique
    across guardians and learner accounts (one sign-in form for both).

    .. pii: the learner's email address. Retention: until the learner's record is deleted.
    """

    __tablename__ = "learner_account"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    learner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learner.id", ondelete="CASCADE"), unique=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    invite_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    invite_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
