"""Pulling from an LRS Statement API: since + more paging, version header, Basic auth."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from connectors.runtime import run_instance
from hub.db import make_sessionmaker
from tests.connectors.fakes import FakeLrs
from tests.connectors.helpers import asgi_http, connector_provider, count_activities, create, instance_config, linked_family

pytestmark = pytest.mark.samples


async def test_pull_pages_with_more_then_resumes_with_since(engine, app, monkeypatch, samples_dir):
    statements = json.loads((samples_dir / "xapi" / "datasim" / "tccc_dev-statements.json").read_text())
    base = datetime(2026, 3, 1, tzinfo=UTC)
    for n, statement in enumerate(statements):
        statement["stored"] = (base + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
    first, later = statements[:2000], statements[2000:]
    alice = sum(1 for s in statements if s["actor"]["mbox"] == "mailto:alice@example.org")
    alice_first = sum(1 for s in first if s["actor"]["mbox"] == "mailto:alice@example.org")

    provider = await connector_provider(engine, monkeypatch)
    await linked_family(engine, provider, "alice@example.org", grant_activities=True)
    monkeypatch.setenv("LRS_PASSWORD", "s3cret")
    lrs = FakeLrs(list(first), "kinfolio", "s3cret")
    sessions = make_sessionmaker(engine)
    with lrs.serve() as endpoint:
        source = {"endpoint": endpoint, "auth": {"type": "basic", "username": "kinfolio", "password_env": "LRS_PASSWORD"}, "limit": 300}
        await create(engine, "lrs", "xapi-lrs", instance_config(provider, source))
        async with asgi_http(app) as http:
            one = await run_instance(sessions=sessions, name="lrs", http=http)
        assert (one.report.read, one.report.created) == (2000, alice_first)
        assert len(lrs.requests) == 7  # 2000 / 300, following ``more``
        assert lrs.requests[0]["query"] == {"ascending": "true", "limit": "300"}
        assert all(r["headers"]["X-Experience-API-Version"] == "1.0.3" for r in lrs.requests)
        assert all("more" in r["query"] for r in lrs.requests[1:])

        lrs.statements.extend(later)
        lrs.requests.clear()
        async with asgi_http(app) as http:
            two = await run_instance(sessions=sessions, name="lrs", http=http)
        # Resumed with ``since`` one second before the last stored time: one statement re-read.
        assert lrs.requests[0]["query"]["since"] == "2026-03-01T00:33:18Z"
        assert two.report.read == len(later) + 1
        assert two.report.created == alice - alice_first
    assert await count_activities(engine, provider) == alice


async def test_wrong_lrs_credentials_fail_the_run_and_keep_the_cursor(engine, app, monkeypatch):
    provider = await connector_provider(engine, monkeypatch)
    monkeypatch.setenv("LRS_PASSWORD", "wrong")
    lrs = FakeLrs([], "kinfolio", "s3cret")
    with lrs.serve() as endpoint:
        source = {"endpoint": endpoint, "auth": {"type": "basic", "username": "kinfolio", "password_env": "LRS_PASSWORD"}}
        await create(engine, "lrs-bad", "xapi-lrs", instance_config(provider, source))
        async with asgi_http(app) as http:
            with pytest.raises(Exception, match="LRS answered 401"):
                await run_instance(sessions=make_sessionmaker(engine), name="lrs-bad", http=http)
    from connectors import state

    runs = await state.last_runs(sessions=make_sessionmaker(engine), name="lrs-bad")
    assert runs[0].status == "failed" and "401" in (runs[0].error or "")
    instance = await state.get_instance(sessions=make_sessionmaker(engine), name="lrs-bad")
    assert instance.cursor is None and instance.lease_owner is None
