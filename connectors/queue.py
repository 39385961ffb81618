"""The scale-out sync runner: connector runs as Procrastinate jobs in PostgreSQL.

``kinfolio queue worker`` processes (any number, on any machines that reach the database) take
jobs from the ``KINFOLIO_QUEUE_NAME`` queue; ``kinfolio sync enqueue`` and the periodic
``enqueue_due`` task put them there. Why Procrastinate, and how it fits the lease, is in
connectors/README.md ("Scale-out").

One run per instance at a time, three times over:

- ``queueing_lock`` = ``sync:NAME``: at most one *waiting* run of an instance (a second enqueue
  while one waits is answered "already queued");
- ``lock`` = ``connector:NAME`` (sync and replay alike): Procrastinate never hands out a job whose
  lock a running job holds, so a worker does not even start a second run;
- the instance's lease (connectors/state.py) stays the authority: a run that finds it taken
  (a manual ``sync run``, an embedded worker, a queue misconfiguration) ends as ``busy``.

The schema is migration 53a12c75e014 (PostgreSQL only). SQLite keeps the embedded worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy.engine import make_url

from connectors import state
from connectors.runtime import replay_dead_letters, run_instance
from connectors.schedule import claim_due
from hub.config import Settings
from hub.db import make_engine, make_sessionmaker, utcnow

log = logging.getLogger(__name__)

TASK_SYNC = "kinfolio.sync_instance"
TASK_REPLAY = "kinfolio.replay_dead_letters"
TASK_TICK = "kinfolio.enqueue_due"
SCHEDULES_LOCK = "kinfolio:schedules"


class QueueUnavailable(Exception):
    """The queue cannot be used with this configuration (SQLite, or the schema is missing)."""


class SyncFailed(Exception):
    """The run ended as failed (recorded on its ``connector_run`` row); the job fails with it."""


def lock_for(name: str) -> str:
    return f"connector:{name}"


def queue_dsn(settings: Settings) -> str:
    """The libpq URL of the queue: KINFOLIO_QUEUE_DATABASE_URL, else the hub's own database."""
    url = make_url(settings.queue_database_url or settings.resolved_database_url)
    if url.get_backend_name() != "postgresql":
        raise QueueUnavailable("the queue needs PostgreSQL (KINFOLIO_DATABASE_URL is not PostgreSQL); use `kinfolio worker`")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def make_app(settings: Settings, *, pool_size: int = 2) -> procrastinate.App:
    """A Procrastinate app with the sync, replay and schedule tasks, bound to the queue's database."""
    connector = procrastinate.PsycopgConnector(conninfo=queue_dsn(settings), min_size=1, max_size=pool_size)
    app = procrastinate.App(connector=connector)
    queue = settings.queue_name
    app.task(name=TASK_SYNC, queue=queue, pass_context=True)(_sync_instance)
    app.task(name=TASK_REPLAY, queue=queue, pass_context=True)(_replay)
    tick = app.task(name=TASK_TICK, queue=queue, pass_context=True)(_enqueue_due)
    # One tick job per cron time across all workers (Procrastinate's procrastinate_periodic_defers);
    # the locks keep ticks from piling up or overlapping when workers are busy.
    app.periodic(cron=settings.queue_schedule_cron, periodic_id="schedules", lock=SCHEDULES_LOCK,
                 queueing_lock=SCHEDULES_LOCK)(tick)
    return app


async def enqueue_sync(app: procrastinate.App, name: str, *, full: bool = False) -> int | None:
    """Queue a run of an instance; ``None`` when one is already waiting (it will read the same source)."""
    try:
        return await app.tasks[TASK_SYNC].configure(lock=lock_for(name), queueing_lock=f"sync:{name}").defer_async(
            name=name, full=full
        )
    except AlreadyEnqueued:
        return None


async def enqueue_replay(app: procrastinate.App, name: str) -> int | None:
    """Queue a replay of an instance's dead letters; ``None`` when one is already waiting."""
    try:
        return await app.tasks[TASK_REPLAY].configure(lock=lock_for(name), queueing_lock=f"replay:{name}").defer_async(
            name=name
        )
    except AlreadyEnqueued:
        return None


_WAITING_OR_RUNNING = ("doing", "todo")


async def queue_status(app: procrastinate.App, queue: str, *, limit: int) -> dict[str, Any]:
    """The queue's job counts per status, and its running then waiting jobs (at most ``limit``,
    oldest first; ``more`` counts the rest) with the instance each is for."""
    counts = {"todo": 0, "doing": 0, "succeeded": 0, "failed": 0, "cancelled": 0, "aborted": 0}
    for row in await app.job_manager.list_queues_async(queue=queue):
        counts.update({key: row[key] for key in counts})
    jobs = [job for status in _WAITING_OR_RUNNING for job in sorted(
        await app.job_manager.list_jobs_async(queue=queue, status=status), key=lambda job: job.id or 0)]
    return {
        "queue": queue,
        "counts": counts,
        "jobs": [{
            "id": job.id, "status": job.status, "task": job.task_name,
            "instance": job.task_kwargs.get("name"), "full": bool(job.task_kwargs.get("full", False)),
            "lock": job.lock, "attempts": job.attempts, "worker_id": job.worker_id,
            "scheduled_at": job.scheduled_at.isoformat() if job.scheduled_at else None,
        } for job in jobs[:limit]],
        "more": max(0, len(jobs) - limit),
    }


def _sessions(context: procrastinate.JobContext) -> state.Sessions:
    sessions = context.additional_context.get("sessions")
    if sessions is None:
        raise RuntimeError("start workers with `kinfolio queue worker` (it gives tasks the hub's database)")
    return sessions


async def _sync_instance(context: procrastinate.JobContext, name: str, full: bool = False) -> str:
    try:
        outcome = await run_instance(sessions=_sessions(context), name=name, full=full)
    except state.Busy as exc:  # the lease is the authority: someone else is running it
        log.info("sync of %s skipped: %s", name, exc)
        return "busy"
    if outcome.status != "succeeded":
        raise SyncFailed(f"run {outcome.run_id} of {name}: {outcome.error}")
    log.info("sync of %s: %s", name, outcome.report.summary())
    return outcome.status


async def _replay(context: procrastinate.JobContext, name: str) -> str:
    try:
        report = await replay_dead_letters(sessions=_sessions(context), name=name)
    except state.Busy as exc:
        log.info("replay of %s skipped: %s", name, exc)
        return "busy"
    log.info("replay of %s: %s", name, report.summary())
    return "succeeded"


async def _enqueue_due(context: procrastinate.JobContext, timestamp: int) -> list[str]:
    """Periodic: queue a run of every instance whose `sync schedule` is due (connectors/schedule.py)."""
    app = context.app
    # A worker that stopped sending heartbeats (SIGKILL, lost machine) leaves its jobs "doing",
    # holding their instance's lock for ever; give them to a live worker (the run's lease and
    # cursor make a repeated run safe: it resumes, or finds the lease still held and ends "busy").
    stalled_after = context.additional_context.get("stalled_seconds", 60.0)
    for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after):
        if job.task_name in (TASK_SYNC, TASK_REPLAY):
            log.warning("job %s (%s) was left by a stopped worker; retrying it", job.id, job.lock)
            await app.job_manager.retry_job(job)
    queued = []
    for name in await claim_due(sessions=_sessions(context), now=utcnow()):
        if await enqueue_sync(app, name) is not None:
            queued.append(name)
    return queued


async def serve(
    settings: Settings, *, concurrency: int, wait: bool = True, delete_jobs: str = "successful",
    ready: Callable[[], Any] | None = None,
) -> None:
    """Run a worker until stopped (SIGINT/SIGTERM finish the running jobs first)."""
    # Connections: one per running job (finishing it), one fetching, one listening, one for periodic defers.
    app = make_app(settings, pool_size=concurrency + 3)
    engine = make_engine(settings.resolved_database_url, pool_size=max(2, concurrency),
                         plan_cache_mode=settings.database_plan_cache_mode)
    try:
        async with app.open_async():
            if not await app.check_connection_async():
                raise QueueUnavailable("the queue's tables are missing: run `kinfolio db upgrade` first")
            if ready is not None:
                ready()
            await app.run_worker_async(
                concurrency=concurrency, wait=wait, queues=[settings.queue_name], delete_jobs=delete_jobs,
                additional_context={"sessions": make_sessionmaker(engine), "stalled_seconds": settings.queue_stalled_seconds},
                update_heartbeat_interval=min(10.0, settings.queue_stalled_seconds / 4),
                stalled_worker_timeout=settings.queue_stalled_seconds,
            )
    finally:
        await engine.dispose()
