"""Credentials the hub issued (with their status-list slot) and credentials a learner holds.

.. pii: ``HeldCredential.document`` is a credential about a child, kept whole as received.
   Retention: until the family deletes it or the record.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, BigIntPK, UTCDateTime, utcnow


class IssuedCredential(Base):
    """A credential the hub signed: its id, what it is about, and its Bitstring Status List slot.

    The id is stable per badge (re-exports re-sign the same credential, so receivers dedupe it
    by the spec's equality rule); ``revoked_at`` sets the slot's bit in the revocation list.
    """

    __tablename__ = "issued_credential"
    __table_args__ = (
        UniqueConstraint("status_list", "status_index"),
        Index("ix_issued_credential_learner", "learner_id", "issued_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    learner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learner.id", ondelete="CASCADE"))
    # One credential per badge; SET NULL keeps the (revocable) status slot if the row goes.
    badge_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), ForeignKey("badge.id", ondelete="SET NULL"), unique=True
    )
    kind: Mapped[str] = mapped_column(String(40))  # OpenBadgeCredential | ClrCredential
    status_list: Mapped[int] = mapped_column(Integer())
    status_index: Mapped[int] = mapped_column(Integer())
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revocation_reason: Mapped[str | None] = mapped_column(String(500))


class HeldCredential(Base):
    """A credential imported into a learner's record, kept whole (a Host must not lose data).

    Identity is the OB 3.0 equality rule: same ``issuer.id`` and credential ``id`` (hashed into
    ``identity_hash`` so the unique index stays small); a newer ``validFrom`` replaces.
    """

    __tablename__ = "held_credential"
    __table_args__ = (UniqueConstraint("learner_id", "identity_hash"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    learner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learner.id", ondelete="CASCADE"))
    identity_hash: Mapped[str] = mapped_column(String(64))
    issuer_id: Mapped[str] = mapped_column(String(2000))
    credential_id: Mapped[str] = mapped_column(String(2000))
    kind: Mapped[str] = mapped_column(String(60))  # AchievementCredential | ClrCredential | OB2 Assertion | ...
    format: Mapped[str] = mapped_column(String(20))  # ldp | jwt | ob2
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    document: Mapped[dict[str, Any]] = mapped_column(JSON())
    compact_jws: Mapped[str | None] = mapped_column(Text())
    imported_by_provider_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("provider.id", ondelete="SET NULL"))
    imported_by_guardian_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("guardian.id", ondelete="SET NULL"))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
