"""Guardian invitations from roster imports, and the last known OneRoster reference rows.

.. pii: ``guardian_invitation.email`` (a parent's address from the school's roster);
   ``oneroster_entity.data`` holds orgs, courses, classes, sessions, line items and categories
   only (no user rows); ``oneroster_record`` holds only the sourcedIds of enrollments and results
   (no row content). Retention: invitations until accepted or expired (then purgeable); entities
   and records until the connector instance is deleted.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow


class GuardianInvitation(Base):
    """An invitation for a parent named by a provider's roster to become a learner's guardian.

    Only the SHA-256 digest of the token is stored. Accepting it makes the account a guardian of
    the learner; nothing is shared with anyone until that guardian consents.
    """

    __tablename__ = "guardian_invitation"
    __table_args__ = (UniqueConstraint("learner_id", "email"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    learner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learner.id", ondelete="CASCADE"), index=True)
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("provider.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OneRosterEntity(Base):
    """The last known row of a OneRoster reference entity for one connector instance.

    A delta file (OneRoster 1.1 CSV §2.1.1, 1.2 CSV §3.1) carries only changed rows; an enrollment
    or a result in it still needs its unchanged class, course, session or line item.
    """

    __tablename__ = "oneroster_entity"

    instance_name: Mapped[str] = mapped_column(
        String(100), ForeignKey("connector_instance.name", ondelete="CASCADE"), primary_key=True
    )
    entity: Mapped[str] = mapped_column(String(40), primary_key=True)
    sourced_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OneRosterRecord(Base):
    """An enrollment or result a connector instance's drops have listed (its sourcedId only).

    A bulk file is the complete set of its entity (OneRoster 1.1 CSV §2.1.1, 1.2 CSV §3.1.2): a
    record listed by an earlier drop and absent from a new bulk file is withdrawn once that drop
    has been imported (``connectors.oneroster.connector``). ``last_seen`` is the digest of the last
    drop that listed it, so a resumed run still knows what the drop left out; ``withdrawn_at`` is
    set once its entry was withdrawn (absent from a bulk file, or a ``tobedeleted`` row).
    """

    __tablename__ = "oneroster_record"

    instance_name: Mapped[str] = mapped_column(
        String(100), ForeignKey("connector_instance.name", ondelete="CASCADE"), primary_key=True
    )
    entity: Mapped[str] = mapped_column(String(40), primary_key=True)  # enrollments | results
    sourced_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    last_seen: Mapped[str] = mapped_column(String(64))
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
