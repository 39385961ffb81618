"""Durable connector state: instances, leases, cursors, runs and dead letters.

Each function is one short transaction of its own (the sync job's boundaries), so a crash leaves
the last committed page's cursor in place. The lease is a conditional UPDATE, atomic on SQLite
and PostgreSQL alike: at most one run per instance holds an unexpired lease, whichever process
or worker (embedded, ``kinfolio worker``, or a task queue) it runs in.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from connectors.base import connector_class
from connectors.client import HubConfig, RetryPolicy
from connectors.models import ConnectorDeadLetter, ConnectorInstance, ConnectorRun
from hub.db import transaction, utcnow

Sessions = async_sessionmaker[AsyncSession]
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"


class InstanceConfig(BaseModel):
    """The stored config of one instance: where the hub is, the source, and runtime knobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hub: HubConfig
    source: dict[str, Any]
    # Entries per mutation call (the hub accepts up to KINFOLIO_MAX_BATCH_SIZE, default 1,000).
    batch_size: int = Field(default=1000, ge=1, le=10_000)
    # Learners' batches per HTTP request (aliased mutations; the hub allows 15 aliases).
    calls_per_request: int = Field(default=10, ge=1, le=15)
    # A run renews its lease every page; a crashed run's lease lapses after this long.
    lease_seconds: int = Field(default=120, ge=1, le=86_400)
    retry: RetryPolicy = RetryPolicy()


class Busy(Exception):
    """Another run holds this instance's lease."""


class LeaseLost(Exception):
    """The lease lapsed and another run took the instance over; this run stops without writing."""


@dataclass(frozen=True, slots=True)
class DeadLetterIn:
    ref: str
    reason_code: str
    reason: str
    payload: str


def validate_config(kind: str, raw: dict[str, Any]) -> InstanceConfig:
    """Validate the whole config, the source part with the connector's own model."""
    cls = connector_class(kind)
    config = InstanceConfig.model_validate(raw)
    cls.Config.model_validate(config.source)
    return config


def new_owner() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def create_instance(*, sessions: Sessions, name: str, kind: str, config: dict[str, Any]) -> ConnectorInstance:
    import re

    if not re.match(NAME_PATTERN, name):
        raise ValueError("instance names are 1-100 of a-z 0-9 _ . - (starting with a letter or digit)")
    try:
        validated = validate_config(kind, config)
    except ValidationError as exc:
        raise ValueError(f"invalid config: {exc}") from None
    async with transaction(sessions) as session:
        if await session.get(ConnectorInstance, name) is not None:
            raise ValueError(f"a connector instance named {name!r} exists")
        instance = ConnectorInstance(name=name, kind=kind, config=validated.model_dump(mode="json"))
        session.add(instance)
        return instance


async def get_instance(*, sessions: Sessions, name: str) -> ConnectorInstance:
    async with sessions() as session:
        instance = await session.get(ConnectorInstance, name)
    if instance is None:
        raise LookupError(f"no connector instance named {name!r}")
    return instance


async def list_instances(*, sessions: Sessions) -> list[ConnectorInstance]:
    async with sessions() as session:
        return list((await session.execute(select(ConnectorInstance).order_by(ConnectorInstance.name))).scalars())


async def acquire_lease(*, sessions: Sessions, name: str, owner: str, seconds: int) -> None:
    now = utcnow()
    async with transaction(sessions) as session:
        result = await session.execute(
            update(ConnectorInstance)
            .where(
                ConnectorInstance.name == name,
                or_(ConnectorInstance.lease_owner.is_(None), ConnectorInstance.lease_expires_at < now),
            )
            .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=seconds), updated_at=now)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            holder = await session.get(ConnectorInstance, name)
            if holder is None:
                raise LookupError(f"no connector instance named {name!r}")
            raise Busy(f"{name} is being synced by {holder.lease_owner} (lease until {holder.lease_expires_at:%Y-%m-%dT%H:%M:%SZ})")


async def release_lease(*, sessions: Sessions, name: str, owner: str) -> None:
    async with transaction(sessions) as session:
        await session.execute(
            update(ConnectorInstance)
            .where(ConnectorInstance.name == name, ConnectorInstance.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None)
        )


async def commit_page(
    *,
    sessions: Sessions,
    name: str,
    owner: str,
    lease_seconds: int,
    cursor: str | None,
    run_id: int | None,
    report: dict[str, Any] | None,
    dead_letters: Sequence[DeadLetterIn],
    advance_cursor: bool = True,
    replayed_ids: Sequence[int] = (),
) -> None:
    """After the hub committed a page: store its cursor, dead letters and the run's progress at once.

    Renews the lease in the same statement; a run that lost its lease writes nothing.
    """
    now = utcnow()
    values: dict[str, Any] = {"lease_expires_at": now + timedelta(seconds=lease_seconds), "updated_at": now}
    if advance_cursor:
        values["cursor"] = cursor
    async with transaction(sessions) as session:
        result = await session.execute(
            update(ConnectorInstance)
            .where(ConnectorInstance.name == name, ConnectorInstance.lease_owner == owner)
            .values(**values)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise LeaseLost(f"{name}: the lease was taken over by another run")
        if replayed_ids:
            await session.execute(delete(ConnectorDeadLetter).where(ConnectorDeadLetter.id.in_(list(replayed_ids))))
        # One dead letter per source record: a re-read (``--full``) replaces, never duplicates.
        refs = list({letter.ref[:500] for letter in dead_letters})
        for start in range(0, len(refs), 500):
            await session.execute(
                delete(ConnectorDeadLetter).where(
                    ConnectorDeadLetter.instance_name == name, ConnectorDeadLetter.ref.in_(refs[start : start + 500])
                )
            )
        for letter in dead_letters:
            session.add(
                ConnectorDeadLetter(
                    instance_name=name, run_id=run_id, ref=letter.ref[:500], reason_code=letter.reason_code,
                    reason=letter.reason, payload=letter.payload, created_at=now,
                )
            )
        if run_id is not None and report is not None:
            await session.execute(update(ConnectorRun).where(ConnectorRun.id == run_id).values(report=report))


async def start_run(*, sessions: Sessions, name: str) -> int:
    """Record a new run. Called with the lease held, so an older "running" run is a dead one."""
    async with transaction(sessions) as session:
        await session.execute(
            update(ConnectorRun)
            .where(ConnectorRun.instance_name == name, ConnectorRun.status == "running")
            .values(status="interrupted", error="the process ended without finishing (lease lapsed)")
        )
        run = ConnectorRun(instance_name=name, started_at=utcnow(), status="running", report={})
        session.add(run)
        await session.flush()
        return run.id


async def finish_run(*, sessions: Sessions, run_id: int, status: str, report: dict[str, Any], error: str | None) -> None:
    async with transaction(sessions) as session:
        await session.execute(
            update(ConnectorRun)
            .where(ConnectorRun.id == run_id)
            .values(status=status, report=report, error=error, finished_at=utcnow())
        )


async def reset_cursor(*, sessions: Sessions, name: str) -> None:
    async with transaction(sessions) as session:
        await session.execute(update(ConnectorInstance).where(ConnectorInstance.name == name).values(cursor=None))


async def set_schedule(*, sessions: Sessions, name: str, schedule: str | None, next_run_at: datetime | None) -> None:
    async with transaction(sessions) as session:
        result = await session.execute(
            update(ConnectorInstance)
            .where(ConnectorInstance.name == name)
            .values(schedule=schedule, next_run_at=next_run_at, updated_at=utcnow())
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise LookupError(f"no connector instance named {name!r}")


async def last_runs(*, sessions: Sessions, name: str, limit: int = 1) -> list[ConnectorRun]:
    async with sessions() as session:
        result = await session.execute(
            select(ConnectorRun)
            .where(ConnectorRun.instance_name == name)
            .order_by(ConnectorRun.started_at.desc(), ConnectorRun.id.desc())
            .limit(limit)
        )
        return list(result.scalars())


async def dead_letters(*, sessions: Sessions, name: str, limit: int | None = None) -> list[ConnectorDeadLetter]:
    async with sessions() as session:
        query = select(ConnectorDeadLetter).where(ConnectorDeadLetter.instance_name == name).order_by(ConnectorDeadLetter.id)
        if limit is not None:
            query = query.limit(limit)
        return list((await session.execute(query)).scalars())


async def purge_dead_letters(*, sessions: Sessions, name: str) -> int:
    async with transaction(sessions) as session:
        result = await session.execute(delete(ConnectorDeadLetter).where(ConnectorDeadLetter.instance_name == name))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
