"""Consent grants and the disclosure log.

.. no_pii: identifiers, section names and the family's stated purpose.
   Retention: grants are never deleted, only revoked (they are the evidence of consent);
   disclosure events are append-only.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, BigIntPK, UTCDateTime, utcnow


class ConsentGrant(Base):
    """Learner × provider × section × action, granted by a guardian for a purpose."""

    __tablename__ = "consent_grant"
    __table_args__ = (Index("ix_consent_grant_provider_learner", "provider_id", "learner_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    learner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learner.id", ondelete="CASCADE"), index=True)
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("provider.id", ondelete="CASCADE"))
    section: Mapped[str] = mapped_column(String(50))
    action: Mapped[str] = mapped_column(String(20))
    purpose: Mapped[str] = mapped_column(Text())
    granted_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("guardian.id", ondelete="SET NULL"))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("guardian.id", ondelete="SET NULL"))


class DisclosureEvent(Base):
    """One consent decision taken on a provider's access, allowed or denied (append-only)."""

    __tablename__ = "disclosure_event"
    __table_args__ = (Index("ix_disclosure_event_learner_at", "learner_id", "at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    learner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learner.id", ondelete="CASCADE"))
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("provider.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(64))
    section: Mapped[str] = mapped_column(String(50))
    action: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))  # allowed | denied
    reason: Mapped[str | None] = mapped_column(String(50))
    grant_id: Mapped[uuid.UUID | None] = mapped_column()
    # How many entries were returned or written under this decision, when known.
    entry_count: Mapped[int | None] = mapped_column(Integer())


class LearnerPseudonym(Base):
    """The pairwise id under which one provider knows one learner (consent/pseudonyms.py).

    Stored, not recomputed on lookup, because a keyed hash cannot be inverted: the API resolves
    a provider's id back to the learner with one indexed query on (provider_id, pseudonym).
    """

    __tablename__ = "learner_pseudonym"
    __table_args__ = (UniqueConstraint("provider_id", "pseudonym"),)

    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("provider.id", ondelete="CASCADE"), primary_key=True)
    learner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learner.id", ondelete="CASCADE"), primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(40))
