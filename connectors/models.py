"""Connector state: instances (config, durable cursor, lease, schedule), runs, dead letters.

This is the sync jobs' own bookkeeping, not record data: record data only ever reaches the hub
through its public API. It shares the hub's database so a scheduler on any worker sees the same
cursors and leases.

.. pii: ``connector_dead_letter.payload`` holds source records that could not be imported
   (invalid, or for a learner the provider has not linked): learning data and source user ids.
   Retention: until replayed successfully or purged (``kinfolio sync dead-letters purge``).
   Records refused by consent are never kept (only counted with their reason).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, BigIntPK, UTCDateTime, utcnow


class ConnectorInstance(Base):
    """One configured source (a connector kind + its validated config), e.g. ``district-lrs``."""

    __tablename__ = "connector_instance"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    config: Mapped[dict[str, Any]] = mapped_column(JSON())
    # Opaque to the runtime; owned by the connector. Advanced only after a page is committed.
    cursor: Mapped[str | None] = mapped_column(Text())
    # At most one run per instance: whoever holds an unexpired lease (renewed every page).
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # "every:SECONDS" or "cron:EXPRESSION"; the worker runs the instance when next_run_at passes.
    schedule: Mapped[str | None] = mapped_column(String(200))
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ConnectorRun(Base):
    __tablename__ = "connector_run"
    __table_args__ = (Index("ix_connector_run_instance_started", "instance_name", "started_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    instance_name: Mapped[str] = mapped_column(ForeignKey("connector_instance.name", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(20))  # running | succeeded | failed
    report: Mapped[dict[str, Any]] = mapped_column(JSON(), default=dict)
    error: Mapped[str | None] = mapped_column(Text())


class ConnectorDeadLetter(Base):
    """A source record that was not imported and can be replayed after a fix."""

    __tablename__ = "connector_dead_letter"
    __table_args__ = (Index("ix_connector_dead_letter_instance_ref", "instance_name", "ref"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    instance_name: Mapped[str] = mapped_column(ForeignKey("connector_instance.name", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("connector_run.id", ondelete="SET NULL"))
    # Where the record came from, e.g. "statements.jsonl:1234" or "users.csv:7".
    ref: Mapped[str] = mapped_column(String(500))
    reason_code: Mapped[str] = mapped_column(String(50))  # invalid | unknown_learner
    reason: Mapped[str] = mapped_column(Text())
    payload: Mapped[str] = mapped_column(Text())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
