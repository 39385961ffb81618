"""Transient failures (503, 429 with Retry-After, lost responses, resets) end in a complete import."""

from __future__ import annotations

import json
import time

import httpx

from connectors.client import parse_retry_after
from connectors.runtime import run_instance
from hub.db import make_sessionmaker
from tests.conftest import ISSUER
from tests.connectors.fakes import FlakyTransport
from tests.connectors.helpers import activity_state, connector_provider, link_existing, count_activities, create, instance_config, linked_family

FAST_RETRY = {"initial_wait": 0.01, "max_wait": 2, "max_attempts": 20}


def _statements(path, count: int, email: str) -> None:  # type: ignore[no-untyped-def]
    with path.open("w") as out:
        for n in range(count):
            out.write(json.dumps({
                "id": f"00000000-0000-4000-8000-{n:012d}", "actor": {"mbox": f"mailto:{email}"},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
                "object": {"id": f"https://lms.example.org/pages/{n}"},
                "timestamp": f"2026-02-01T00:00:{n % 60:02d}Z",
            }) + "\n")


async def test_hub_answering_503_429_lost_and_reset_for_a_while_ends_complete(engine, app, monkeypatch, tmp_path):
    provider = await connector_provider(engine, monkeypatch)
    family = await linked_family(engine, provider, "kim@example.org", grant_activities=True)
    _statements(tmp_path / "s.jsonl", 1000, "kim@example.org")
    await create(engine, "flaky", "xapi-file", instance_config(
        provider, {"paths": [str(tmp_path / "s.jsonl")], "page_size": 100}, batch_size=50, retry=FAST_RETRY))
    script = ["503", None, "429", "503", "503", "lost", "reset", None, "lost", "503", "429", "reset", "lost"]
    flaky = FlakyTransport(httpx.ASGITransport(app=app), script)
    async with httpx.AsyncClient(transport=flaky, base_url=ISSUER) as http:
        outcome = await run_instance(sessions=make_sessionmaker(engine), name="flaky", http=http)
    assert outcome.status == "succeeded"
    assert not flaky.script  # every injected failure happened
    r = outcome.report
    assert r.read == 1000 and r.invalid == 0 and not r.refused
    # A "lost" response was committed by the hub and re-sent: reported unchanged, stored once.
    assert r.created + r.unchanged == 1000 and r.unchanged > 0
    assert await count_activities(engine, provider) == 1000

    # The same import without failures, as another provider, ends in the same state.
    clean = await connector_provider(engine, monkeypatch, name="Clean LRS")
    await link_existing(engine, clean, family, "kim@example.org")
    await create(engine, "clean", "xapi-file", instance_config(clean, {"paths": [str(tmp_path / "s.jsonl")]}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        await run_instance(sessions=make_sessionmaker(engine), name="clean", http=http)
    assert await activity_state(engine, provider) == await activity_state(engine, clean)


async def test_retry_after_is_honoured(engine, app, monkeypatch, tmp_path):
    provider = await connector_provider(engine, monkeypatch)
    await linked_family(engine, provider, "kim@example.org", grant_activities=True)
    _statements(tmp_path / "s.jsonl", 10, "kim@example.org")
    await create(engine, "slow", "xapi-file", instance_config(
        provider, {"paths": [str(tmp_path / "s.jsonl")]}, retry={"initial_wait": 0.01, "max_wait": 5}))
    flaky = FlakyTransport(httpx.ASGITransport(app=app), [None, "429", "429"], retry_after="1")
    started = time.monotonic()
    async with httpx.AsyncClient(transport=flaky, base_url=ISSUER) as http:
        outcome = await run_instance(sessions=make_sessionmaker(engine), name="slow", http=http)
    assert time.monotonic() - started >= 2.0  # two 429s with Retry-After: 1
    assert outcome.report.created == 10


def test_retry_after_parses_seconds_and_http_dates():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
