"""The scale-out runner: real `kinfolio queue worker` processes on a Procrastinate queue in PostgreSQL.

The queue needs PostgreSQL, so these tests make their own database on the local server even when
the rest of the suite runs on SQLite (KINFOLIO_QUEUE_TEST_DATABASE_URL, else
KINFOLIO_TEST_DATABASE_URL, else postgresql+asyncpg://postgres@127.0.0.1:5432/test is the admin
connection). A real hub (uvicorn) serves the connectors' GraphQL calls.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from connectors import state
from connectors.queue import TASK_REPLAY, TASK_SYNC, TASK_TICK, enqueue_replay, enqueue_sync, lock_for, make_app
from connectors.xapi.statements import canonical_actor_id
from connectors.xapi.synthetic import learner_email, write_statements
from hub import migrate
from hub.cli import app as cli
from hub.config import Settings, get_settings
from hub.db import make_engine, make_sessionmaker
from tests.conftest import PG_ADMIN_URL, PSEUDONYM_KEY, ROOT, _create_pg_database, _drop_pg_database
from tests.connectors.helpers import SECRET_ENV, activity_state, instance_config, link_existing, linked_family
from tests.connectors.test_crash_safety import _expected
from tests.factories import Family, ProviderClient, make_provider
from tests.live_server import _free_port

ADMIN_URL = PG_ADMIN_URL
WORKERS = 3
LEARNERS = 4


@dataclass
class Cluster:
    engine: AsyncEngine
    env: dict[str, str]
    settings: Settings
    provider: ProviderClient
    hub_url: str
    learner_of: dict[str, str]
    logs: list[Path]
    families: list[Family]


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture
def kinfolio(cluster: Cluster, monkeypatch):  # type: ignore[no-untyped-def]
    """The CLI in this process (a thread: it runs its own event loop), on the cluster's database."""
    for key in ("KINFOLIO_DATABASE_URL", "KINFOLIO_DATA_DIR", "KINFOLIO_QUEUE_SCHEDULE_CRON"):
        monkeypatch.setenv(key, cluster.env[key])
    get_settings.cache_clear()

    async def run(*args: str):  # type: ignore[no-untyped-def]
        return await asyncio.to_thread(CliRunner().invoke, cli, list(args))

    yield run
    get_settings.cache_clear()


async def _wait_for(predicate, what: str, timeout: float = 30.0, logs: list[Path] = ()):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.2)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs if log.exists())
    pytest.fail(f"timed out waiting for {what}\n{tails}")


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory, signing_key_pem: str) -> AsyncIterator[Cluster]:
    try:
        url = await _create_pg_database(ADMIN_URL)
    except (OSError, ConnectionError) as exc:
        pytest.skip(f"the queue tests need PostgreSQL at {ADMIN_URL}: {exc}")
    tmp = tmp_path_factory.mktemp("queue")
    engine = make_engine(url)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        await migrate.upgrade(engine)
        provider = await make_provider(engine, "District LRS", ["activities:contribute", "activities:read"])
        learner_of, families = {}, []
        for n in range(LEARNERS):
            families.append(await linked_family(engine, provider, learner_email(n), grant_activities=True))
            learner_of[canonical_actor_id(f"mailto:{learner_email(n)}")] = str(families[-1].learner_id)
        port = _free_port()
        hub_url = f"http://127.0.0.1:{port}"
        settings = Settings(environment="test", database_url=url, data_dir=tmp, issuer=hub_url,
                            signing_key_pem=signing_key_pem, pseudonym_key_hex=PSEUDONYM_KEY.hex(),
                            queue_schedule_cron="* * * * * */2")
        env = {
            **os.environ, "KINFOLIO_DATABASE_URL": url, "KINFOLIO_ENVIRONMENT": "test", "KINFOLIO_DATA_DIR": str(tmp),
            "KINFOLIO_ISSUER": hub_url, "KINFOLIO_SIGNING_KEY_PEM": signing_key_pem,
            "KINFOLIO_PSEUDONYM_KEY_HEX": PSEUDONYM_KEY.hex(), "KINFOLIO_SESSION_SECRET_HEX": "ab" * 32,
            "KINFOLIO_QUEUE_SCHEDULE_CRON": settings.queue_schedule_cron, "KINFOLIO_QUEUE_STALLED_SECONDS": "3",
            SECRET_ENV: provider.client_secret,
        }
        logs = [tmp / "hub.log"] + [tmp / f"worker-{n}.log" for n in range(WORKERS)]
        processes.append(_spawn(["uvicorn", "hub.asgi:app", "--host", "127.0.0.1", "--port", str(port),
                                 "--log-level", "warning", "--no-access-log"], env, logs[0]))
        for log in logs[1:]:
            processes.append(_spawn(["hub.cli", "queue", "worker", "--concurrency", "2", "--keep-jobs"], env, log))

        async def up() -> bool:
            try:
                async with httpx.AsyncClient() as http:
                    healthy = (await http.get(f"{hub_url}/healthz")).status_code == 200
            except httpx.HTTPError:
                return False
            return healthy and all("queue worker ready" in log.read_text() for log in logs[1:])

        await _wait_for(up, "the hub and the workers to start", timeout=90, logs=logs)
        yield Cluster(engine, env, settings, provider, hub_url, learner_of, logs, families)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        await engine.dispose()
        await _drop_pg_database(url, ADMIN_URL)


async def _jobs(engine: AsyncEngine) -> list[dict]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, task_name, status::text AS status, lock, args FROM procrastinate_jobs ORDER BY id"))
        return [dict(row._mapping) for row in rows]


async def _runs(engine: AsyncEngine, name: str) -> list[tuple[datetime, datetime | None, str]]:
    runs = await state.last_runs(sessions=make_sessionmaker(engine), name=name, limit=1000)
    return sorted((run.started_at, run.finished_at, run.status) for run in runs)


async def test_several_workers_run_each_instance_once_at_a_time_and_import_exactly_once(cluster: Cluster, kinfolio, tmp_path):  # type: ignore[no-untyped-def]
    engine = cluster.engine
    alpha, beta = tmp_path / "alpha.jsonl", tmp_path / "beta.jsonl"
    write_statements(alpha, 600, LEARNERS, seed="alpha")
    write_statements(beta, 200, LEARNERS, seed="beta")
    for name, path in [("alpha", alpha), ("beta", beta)]:
        await state.create_instance(sessions=make_sessionmaker(engine), name=name, kind="xapi-file", config=instance_config(
            cluster.provider, {"paths": [str(path)], "page_size": 50}, url=cluster.hub_url, batch_size=50))

    # Through the command: one waiting run per instance (queueing lock), a replay besides.
    first = await kinfolio("sync", "enqueue", "alpha")
    assert first.exit_code == 0 and "alpha: run queued as job" in first.output, first.output
    assert (await kinfolio("sync", "enqueue", "beta")).exit_code == 0
    assert "alpha: replay queued as job" in (await kinfolio("sync", "enqueue", "alpha", "--replay")).output
    # More runs of "alpha" waiting at the same time (no queueing lock, full re-reads that take a
    # while): only the per-instance lock keeps them from running side by side on six job slots.
    queue = make_app(cluster.settings)
    async with queue.open_async():
        for _ in range(3):
            await queue.tasks[TASK_SYNC].configure(lock=lock_for("alpha")).defer_async(name="alpha", full=True)
    again = await kinfolio("sync", "enqueue", "alpha")  # a waiting one may still be there: either answer is fine
    assert again.exit_code == 0 and ("queued as job" in again.output or "already queued" in again.output)

    async def all_done() -> bool:
        jobs = [j for j in await _jobs(engine) if j["task_name"] != TASK_TICK]
        return all(j["status"] not in ("todo", "doing") for j in jobs)

    await _wait_for(all_done, "every sync job to end", timeout=90, logs=cluster.logs)
    jobs = [j for j in await _jobs(engine) if j["task_name"] != TASK_TICK]
    assert {j["status"] for j in jobs} == {"succeeded"}, jobs
    alpha_syncs = [j for j in jobs if j["task_name"] == TASK_SYNC and j["args"]["name"] == "alpha"]
    assert len(alpha_syncs) >= 4 and {j["lock"] for j in alpha_syncs} == {"connector:alpha"}
    assert [j["lock"] for j in jobs if j["task_name"] == TASK_REPLAY] == ["connector:alpha"]

    # Both instances ran; every alpha sync job got a run (none had to give way to the lease, so the
    # queue itself serialised them) and no two runs of one instance overlapped.
    alpha_runs, beta_runs = await _runs(engine, "alpha"), await _runs(engine, "beta")
    assert len(alpha_runs) == len(alpha_syncs) and len(beta_runs) == 1
    for runs in (alpha_runs, beta_runs):
        assert {status for _, _, status in runs} == {"succeeded"}
        for (_, finished, _), (next_started, _, _) in zip(runs, runs[1:], strict=False):
            assert finished is not None and finished <= next_started, runs

    # The imported data equals one run's: every statement once, nothing doubled.
    both = tmp_path / "both.jsonl"
    both.write_text(alpha.read_text() + beta.read_text())
    assert await activity_state(engine, cluster.provider) == _expected(both, cluster.learner_of)


async def test_due_schedules_are_enqueued_by_the_periodic_task(cluster: Cluster, tmp_path):  # type: ignore[no-untyped-def]
    sessions = make_sessionmaker(cluster.engine)
    path = tmp_path / "gamma.jsonl"
    write_statements(path, 50, LEARNERS, seed="gamma")
    await state.create_instance(sessions=sessions, name="gamma", kind="xapi-file", config=instance_config(
        cluster.provider, {"paths": [str(path)]}, url=cluster.hub_url))
    await state.create_instance(sessions=sessions, name="later", kind="xapi-file", config=instance_config(
        cluster.provider, {"paths": [str(path)]}, url=cluster.hub_url))
    now = datetime.now(UTC)
    await state.set_schedule(sessions=sessions, name="gamma", schedule="every:3600", next_run_at=now - timedelta(seconds=1))
    await state.set_schedule(sessions=sessions, name="later", schedule="every:3600", next_run_at=now + timedelta(hours=1))

    async def ran() -> bool:
        runs = await _runs(cluster.engine, "gamma")
        return bool(runs) and runs[0][2] == "succeeded"

    await _wait_for(ran, "the scheduled run of gamma", logs=cluster.logs)
    await asyncio.sleep(4)  # two more ticks: gamma is not due again for an hour, "later" not yet
    assert len(await _runs(cluster.engine, "gamma")) == 1 and await _runs(cluster.engine, "later") == []
    gamma = await state.get_instance(sessions=sessions, name="gamma")
    assert gamma.next_run_at > now + timedelta(minutes=59)
    ticks = [j for j in await _jobs(cluster.engine) if j["task_name"] == TASK_TICK]
    assert ticks and {j["status"] for j in ticks} <= {"succeeded", "todo", "doing"}


async def test_the_run_of_a_killed_worker_is_taken_over_and_completes(cluster: Cluster, tmp_path):  # type: ignore[no-untyped-def]
    # Its own provider and learners (so the count below is this import's), its own queue "stall":
    # first only the victim serves it, so the victim takes the job.
    provider = await make_provider(cluster.engine, "Stall LRS", ["activities:contribute", "activities:read"])
    for n, family in enumerate(cluster.families):
        await link_existing(cluster.engine, provider, family, learner_email(n))
    path = tmp_path / "delta.jsonl"
    write_statements(path, 1000, LEARNERS, seed="delta")
    config = instance_config(provider, {"paths": [str(path)], "page_size": 50}, url=cluster.hub_url, batch_size=50, lease_seconds=1)
    config["hub"]["client_secret_env"] = "KINFOLIO_TEST_STALL_SECRET"
    sessions = make_sessionmaker(cluster.engine)
    await state.create_instance(sessions=sessions, name="delta", kind="xapi-file", config=config)
    env = {**cluster.env, "KINFOLIO_QUEUE_NAME": "stall", "KINFOLIO_TEST_STALL_SECRET": provider.client_secret}
    logs = [tmp_path / "victim.log", tmp_path / "rescuer.log"]
    victim = _spawn(["hub.cli", "queue", "worker", "--concurrency", "1", "--keep-jobs"], env, logs[0])
    rescuer = None
    try:
        async def ready(log: Path) -> bool:
            return "queue worker ready" in log.read_text()

        await _wait_for(lambda: ready(logs[0]), "the victim worker", timeout=60, logs=logs)
        stall = make_app(cluster.settings.model_copy(update={"queue_name": "stall"}))
        async with stall.open_async():
            job_id = await enqueue_sync(stall, "delta")

        async def under_way() -> bool:
            cursor = (await state.get_instance(sessions=sessions, name="delta")).cursor
            return bool(cursor) and json.loads(cursor)["record"] >= 100

        await _wait_for(under_way, "the victim's run to get going", logs=logs)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        # The job stays "doing" (holding delta's lock) until a schedule tick of the main workers
        # finds its worker silent and hands it back to the "stall" queue, served from now on.
        rescuer = _spawn(["hub.cli", "queue", "worker", "--concurrency", "1", "--keep-jobs"], env, logs[1])

        async def finished() -> bool:
            return [j["status"] for j in await _jobs(cluster.engine) if j["id"] == job_id] == ["succeeded"]

        await _wait_for(finished, "the stalled job to be retried and finish", timeout=60, logs=[*logs, *cluster.logs])
    finally:
        for process in (victim, rescuer):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(15)
    assert [status for _, _, status in await _runs(cluster.engine, "delta")] == ["interrupted", "succeeded"]
    assert await activity_state(cluster.engine, provider) == _expected(path, cluster.learner_of)


async def test_enqueue_refuses_unknown_instances_and_a_queueing_lock_holds(cluster: Cluster, kinfolio):  # type: ignore[no-untyped-def]
    unknown = await kinfolio("sync", "enqueue", "nope")
    assert unknown.exit_code == 2 and "no connector instance named 'nope'" in unknown.output
    both = await kinfolio("sync", "enqueue", "nope", "--full", "--replay")
    assert both.exit_code == 2 and "do not go together" in both.output

    # On a queue no worker serves, a run stays waiting: a second one is "already queued".
    parked = make_app(cluster.settings.model_copy(update={"queue_name": "parked"}))
    async with parked.open_async():
        assert await enqueue_sync(parked, "parked") is not None
        assert await enqueue_sync(parked, "parked", full=True) is None
        assert await enqueue_replay(parked, "parked") is not None and await enqueue_replay(parked, "parked") is None
    async with cluster.engine.begin() as conn:
        await conn.execute(text("DELETE FROM procrastinate_jobs WHERE queue_name = 'parked'"))


async def test_queue_status_counts_and_lists_the_waiting_jobs(cluster: Cluster, kinfolio, monkeypatch):  # type: ignore[no-untyped-def]
    # A queue no worker serves: what is queued stays waiting, and status shows it.
    monkeypatch.setenv("KINFOLIO_QUEUE_NAME", "idle")
    get_settings.cache_clear()
    idle = make_app(cluster.settings.model_copy(update={"queue_name": "idle"}))
    try:
        empty = await kinfolio("queue", "status")
        assert empty.exit_code == 0, empty.output
        assert json.loads(empty.output) == {"queue": "idle", "counts": dict.fromkeys(
            ("todo", "doing", "succeeded", "failed", "cancelled", "aborted"), 0), "jobs": [], "more": 0}
        async with idle.open_async():
            sync_job = await enqueue_sync(idle, "alpha", full=True)
            replay_job = await enqueue_replay(idle, "beta")
        status = json.loads((await kinfolio("queue", "status")).output)
        assert status["counts"]["todo"] == 2 and status["more"] == 0
        assert [(j["id"], j["status"], j["task"], j["instance"], j["full"], j["lock"]) for j in status["jobs"]] == [
            (sync_job, "todo", TASK_SYNC, "alpha", True, lock_for("alpha")),
            (replay_job, "todo", TASK_REPLAY, "beta", False, lock_for("beta")),
        ]
        first = json.loads((await kinfolio("queue", "status", "--limit", "1")).output)
        assert [j["id"] for j in first["jobs"]] == [sync_job] and first["more"] == 1
        assert (await kinfolio("queue", "status", "--limit", "0")).exit_code == 2
    finally:
        async with cluster.engine.begin() as conn:
            await conn.execute(text("DELETE FROM procrastinate_jobs WHERE queue_name = 'idle'"))


def test_the_queue_commands_refuse_sqlite_with_a_clear_error(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KINFOLIO_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    monkeypatch.delenv("KINFOLIO_QUEUE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        for args in (["queue", "worker"], ["queue", "status"], ["sync", "enqueue", "anything"]):
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 2 and "the queue needs PostgreSQL" in result.output and "kinfolio worker" in result.output
    finally:
        get_settings.cache_clear()


def test_queue_dsn_is_derived_from_the_database_url():
    from connectors.queue import queue_dsn

    base = {"environment": "test", "pseudonym_key_hex": PSEUDONYM_KEY.hex()}
    assert queue_dsn(Settings(**base, database_url="postgresql+asyncpg://kf:s3cret@db:5433/kinfolio")) == \
        "postgresql://kf:s3cret@db:5433/kinfolio"
    assert queue_dsn(Settings(**base, database_url="postgresql+asyncpg://kf@db/kinfolio",
                              queue_database_url="postgresql://q@queue/jobs?sslmode=require")) == \
        "postgresql://q@queue/jobs?sslmode=require"
    with pytest.raises(ValueError, match="not a cron expression"):
        Settings(**base, queue_schedule_cron="every minute")
