"""Consent grants and the disclosure log.

.. no_pii: identifiers, section names and the family's stated purpose.
   Retention: grants are never deleted, only revoked (they are the evidence of consent);
   disclosure events are append-only.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
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
    # Optional window on readable data: only entries dated at or after this instant.
    data_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Who acted when the learner (of age) granted or revoked for themself.
    granted_by_learner: Mapped[bool] = mapped_column(Boolean(), default=False)
    access_request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("access_request.id", ondelete="SET NULL"))


class DisclosureEvent(Base):
    """One consent decision per (request x learner x section x action), allowed or denied.

    Append-only and hash-chained per learner (``consent/audit.py``): ``seq`` counts from 1 per
    learner, ``hash`` commits to ``prev_hash`` and this event's fields.
    """

    __tablename__ = "disclosure_event"
    __table_args__ = (
        Index("ix_disclosure_event_learner_at", "learner_id", "at"),
        UniqueConstraint("learner_id", "seq"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    learner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learner.id", ondelete="CASCADE"))
    # RESTRICT: the log of what a provider was shown outlives the provider; a provider with
    # disclosures cannot be deleted (a learner's erasure still takes their log with them).
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("provider.id", ondelete="RESTRICT"))
    client_id: Mapped[str] = mapped_column(String(64))
    section: Mapped[str] = mapped_column(String(50))
    action: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))  # allowed | denied
    reason: Mapped[str | None] = mapped_column(String(50))
    grant_id: Mapped[uuid.UUID | None] = mapped_column()
    # How many entries were returned or written under this decision, when known.
    entry_count: Mapped[int | None] = mapped_column(Integer())
    token_id: Mapped[str | None] = mapped_column(String(64))  # the access token's jti
    purpose: Mapped[str | None] = mapped_column(Text())  # the purpose of the grant relied on
    seq: Mapped[int] = mapped_column(Integer())
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class LearnerLogHead(Base):
    """The end of one learner's disclosure chain: locked per learner while appending."""

    __tablename__ = "learner_log_head"

    learner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learner.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer())
    hash: Mapped[str] = mapped_column(String(64))


class AccessRequest(Base):
    """A provider asking a learner's controllers for sections x actions, for a purpose.

    ``items`` and ``approved_items`` are lists of ``"<section>:<action>"``. At most one request per
    (provider, learner) is pending: new asks are merged into it.
    """

    __tablename__ = "access_request"
    __table_args__ = (Index("ix_access_request_provider_learner", "provider_id", "learner_id", "status"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    learner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learner.id", ondelete="CASCADE"), index=True)
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("provider.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(64))
    items: Mapped[list[str]] = mapped_column(JSON())
    purpose: Mapped[str] = mapped_column(Text())
    duration_days: Mapped[int | None] = mapped_column(Integer())
    status: Mapped[str] = mapped_column(String(20))  # pending | approved | partially_approved | denied
    approved_items: Mapped[list[str]] = mapped_column(JSON(), default=list)
    # Guardians' approvals so far, [{"by": guardian id, "items": [...]}], for items that need
    # several approvers (sensitive sections under an all-guardians policy).
    approvals: Mapped[list[dict]] = mapped_column(JSON(), default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("guardian.id", ondelete="SET NULL"))


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
