"""Schedules ("every 15m" or a cron expression) and the embedded worker loop.

The worker polls ``connector_instance`` for due schedules and runs each due instance through
``run_instance``; the lease makes a second worker (or a manual ``sync run``) skip an instance
that is already running, so any number of workers is safe.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timedelta

import httpx
from croniter import croniter
from sqlalchemy import select, update

from connectors import state
from connectors.models import ConnectorInstance
from connectors.runtime import run_instance
from hub.db import transaction, utcnow

log = logging.getLogger(__name__)
_EVERY = re.compile(r"^(\d+)\s*([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_schedule(every: str | None, cron: str | None) -> str:
    if (every is None) == (cron is None):
        raise ValueError("give exactly one of --every (e.g. 15m) or --cron (e.g. '*/5 * * * *')")
    if every is not None:
        match = _EVERY.match(every.strip())
        if not match or int(match.group(1)) == 0:
            raise ValueError("--every is a number and a unit: 30s, 15m, 2h, 1d")
        seconds = int(match.group(1)) * _UNIT[match.group(2)]
        if seconds < 10:
            raise ValueError("--every must be at least 10s")
        return f"every:{seconds}"
    assert cron is not None
    if not croniter.is_valid(cron):
        raise ValueError(f"{cron!r} is not a cron expression")
    return f"cron:{cron}"


def next_run(schedule: str, after: datetime) -> datetime:
    kind, _, expr = schedule.partition(":")
    if kind == "every":
        return after + timedelta(seconds=int(expr))
    return croniter(expr, after).get_next(datetime)


async def due_instances(*, sessions: state.Sessions, now: datetime) -> list[str]:
    async with sessions() as session:
        result = await session.execute(
            select(ConnectorInstance.name).where(
                ConnectorInstance.schedule.is_not(None), ConnectorInstance.next_run_at <= now
            ).order_by(ConnectorInstance.next_run_at)
        )
        return list(result.scalars())


async def claim_due(*, sessions: state.Sessions, now: datetime) -> list[str]:
    """Move each due instance's next run on (from ``now``) and return the instances this call moved.

    For the scale-out runner (connectors/queue.py), which enqueues a run for exactly those: the
    UPDATE is conditional on the next run it read, so callers racing each other claim a due time once.
    """
    async with sessions() as session:
        due = (
            await session.execute(
                select(ConnectorInstance.name, ConnectorInstance.schedule, ConnectorInstance.next_run_at)
                .where(ConnectorInstance.schedule.is_not(None), ConnectorInstance.next_run_at <= now)
                .order_by(ConnectorInstance.next_run_at)
            )
        ).all()
    claimed = []
    for name, schedule, due_at in due:
        async with transaction(sessions) as session:
            result = await session.execute(
                update(ConnectorInstance)
                .where(ConnectorInstance.name == name, ConnectorInstance.schedule == schedule,
                       ConnectorInstance.next_run_at == due_at)
                .values(next_run_at=next_run(schedule, now), updated_at=utcnow())
            )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(name)
    return claimed


async def run_due(
    *, sessions: state.Sessions, now: datetime | None = None, http: httpx.AsyncClient | None = None
) -> dict[str, str]:
    """Run every due instance once; returns name -> outcome (succeeded, failed, busy)."""
    now = now or utcnow()
    outcomes: dict[str, str] = {}
    for name in await due_instances(sessions=sessions, now=now):
        instance = await state.get_instance(sessions=sessions, name=name)
        try:
            outcome = await run_instance(sessions=sessions, name=name, http=http)
            outcomes[name] = outcome.status
        except state.Busy:
            outcomes[name] = "busy"
            continue  # the running one will be followed by the next due time
        except Exception as exc:  # one broken source must not stop the others
            log.warning("sync of %s failed: %s", name, exc)
            outcomes[name] = "failed"
        if instance.schedule:
            await state.set_schedule(
                sessions=sessions, name=name, schedule=instance.schedule, next_run_at=next_run(instance.schedule, utcnow())
            )
    return outcomes


async def worker_loop(*, sessions: state.Sessions, poll_seconds: float, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            await run_due(sessions=sessions)
        except Exception:  # keep serving; the next poll tries again
            log.exception("worker poll failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=poll_seconds)
        except TimeoutError:
            pass
