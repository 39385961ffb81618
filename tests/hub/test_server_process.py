"""What the server process does beyond serving requests."""

from __future__ import annotations

import gc
import re

import httpx

from bench.http import server_timing_ms
from hub.app import create_app
from hub.config import Settings
from tests.conftest import ISSUER


async def test_the_server_entry_point_freezes_its_startup_heap(settings, engine) -> None:  # type: ignore[no-untyped-def]
    assert gc.get_freeze_count() == 0
    app = create_app(settings, engine, freeze_heap_at_startup=True)
    try:
        async with app.router.lifespan_context(app):
            # Startup objects are out of the cyclic collector's reach; a full collection no longer walks them.
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


async def test_apps_built_in_a_shared_process_do_not_freeze(settings, engine) -> None:  # type: ignore[no-untyped-def]
    # Tests and tools build many apps in one process: frozen, each would stay in memory for good.
    app = create_app(settings, engine)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0



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
