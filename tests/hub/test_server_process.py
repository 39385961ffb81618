"""What the server process does beyond serving requests."""

from __future__ import annotations

import asyncio
import gc
import re

import httpx

from bench.http import server_timing_ms
from hub.app import SERVER_GC_THRESHOLDS, create_app
from hub.config import Settings
from hub.db import make_engine
from hub.sqlite_wal import checkpoint_in_background
from tests.conftest import ISSUER


async def test_the_server_entry_point_freezes_its_startup_heap(settings, engine) -> None:  # type: ignore[no-untyped-def]
    assert gc.get_freeze_count() == 0
    thresholds = gc.get_threshold()
    app = create_app(settings, engine, server_process=True)
    try:
        async with app.router.lifespan_context(app):
            # Startup objects are out of the cyclic collector's reach; a full collection no longer walks them.
            assert gc.get_freeze_count() > 0
            # Requests make no cycles (test_request_garbage.py): young collections run less often.
            assert gc.get_threshold() == SERVER_GC_THRESHOLDS != thresholds
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


async def test_apps_built_in_a_shared_process_do_not_freeze(settings, engine) -> None:  # type: ignore[no-untyped-def]
    # Tests and tools build many apps in one process: frozen, each would stay in memory for good.
    thresholds = gc.get_threshold()
    app = create_app(settings, engine)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == thresholds



async def _get(app, path: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        return await http.get(path)


async def test_server_timing_reports_the_time_to_answer_when_turned_on(settings, engine) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings.model_copy(update={"server_timing": True}), engine)
    for path in ("/healthz", "/no-such-page"):
        response = await _get(app, path)
        match = re.fullmatch(r"app;dur=(\d+\.\d{3})", response.headers["server-timing"])
        assert match and 0 < float(match.group(1)) < 10_000, response.headers["server-timing"]
        assert server_timing_ms(response.headers["server-timing"]) == float(match.group(1))


async def test_no_server_timing_by_default(app) -> None:  # type: ignore[no-untyped-def]
    # Timings can tell a caller more than the answer does (W3C Server Timing, privacy section).
    assert Settings().server_timing is False
    response = await _get(app, "/healthz")
    assert response.status_code == 200 and "server-timing" not in response.headers


def test_the_bench_client_reads_one_metric_of_a_server_timing_header() -> None:
    assert server_timing_ms("app;dur=5.25") == 5.25
    assert server_timing_ms('db;dur=1, app;desc="hub";dur="7"') == 7.0
    assert server_timing_ms("db;dur=1") is None
    assert server_timing_ms("app") is None
    assert server_timing_ms("app;dur=soon") is None


# -- SQLite: WAL checkpoints in the background (hub/sqlite_wal.py) ------------------------------

PAGES = 1500  # rows of ~one page each: past SQLite's automatic checkpoint at 1,000 pages


async def _write_pages(engine) -> None:  # type: ignore[no-untyped-def]
    async with engine.begin() as connection:
        await connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS filler (data BLOB)")
        await connection.exec_driver_sql("INSERT INTO filler VALUES (?)", [(b"x" * 4000,)] * PAGES)


async def test_without_the_server_sqlite_checkpoints_inside_commits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The CLI, tools and tests keep SQLite's default: the commit past 1,000 pages copies them over.
    path = tmp_path / "default.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await _write_pages(engine)
        assert path.stat().st_size > PAGES * 4000
    finally:
        await engine.dispose()


async def test_the_background_checkpointer_moves_the_wal_into_the_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "background.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}", sqlite_checkpoints_in_background=True)
    try:
        await _write_pages(engine)
        assert path.stat().st_size < PAGES * 4000  # the commit left every page in the WAL
        stop = asyncio.Event()
        stop.set()  # one checkpoint, then return
        await checkpoint_in_background(str(path), stop)
        assert path.stat().st_size > PAGES * 4000
    finally:
        await engine.dispose()


async def test_a_failed_checkpoint_is_logged_and_creates_nothing(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "gone.db"
    stop = asyncio.Event()
    stop.set()
    await checkpoint_in_background(str(missing), stop)
    assert not missing.exists()
    assert "WAL checkpoint of" in caplog.text and "failed" in caplog.text


async def test_the_sqlite_server_process_checkpoints_while_it_runs(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "server.db"
    thresholds = gc.get_threshold()
    app = create_app(settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{path}"}), server_process=True)
    try:
        async with app.router.lifespan_context(app):
            await _write_pages(app.state.hub.engine)
            for _ in range(50):  # the checkpointer runs every CHECKPOINT_EVERY_SECONDS (0.5 s)
                if path.stat().st_size > PAGES * 4000:
                    break
                await asyncio.sleep(0.1)
            assert path.stat().st_size > PAGES * 4000
        # Shutdown stopped the checkpointer: the lifespan returned, nothing left running.
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
