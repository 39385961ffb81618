"""Commands, schedules and the one-run-per-instance lease."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from connectors import state
from connectors.runtime import run_instance
from connectors.schedule import next_run, parse_schedule, run_due
from hub.cli import app as cli
from hub.config import get_settings
from hub.db import make_sessionmaker
from tests.connectors.helpers import asgi_http, connector_provider, count_activities, create, instance_config, linked_family

runner = CliRunner()


@pytest.fixture
def kinfolio(engine, database_url, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KINFOLIO_DATABASE_URL", database_url)
    monkeypatch.setenv("KINFOLIO_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()

    def run(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        result = runner.invoke(cli, list(args))
        if ok:
            assert result.exit_code == 0, result.output
        return result

    yield run
    get_settings.cache_clear()


def test_add_status_schedule_link_and_refusals(kinfolio, tmp_path):  # type: ignore[no-untyped-def]
    statements = tmp_path / "s.jsonl"
    statements.write_text("")
    config = {"hub": {"url": "https://hub.example.org", "client_id": "c1", "client_secret_env": "X"},
              "source": {"paths": [str(statements)]}}
    assert "added" in kinfolio("sync", "add", "lrs", "--kind", "xapi-file", "--config", json.dumps(config)).output
    again = kinfolio("sync", "add", "lrs", "--kind", "xapi-file", "--config", json.dumps(config), ok=False)
    assert again.exit_code == 2 and "exists" in again.output
    bad = kinfolio("sync", "add", "x", "--kind", "xapi-file", "--config",
                   json.dumps({**config, "source": {"paths": ["/nope"]}}), ok=False)
    assert bad.exit_code == 2 and "/nope does not exist" in bad.output
    unknown = kinfolio("sync", "add", "y", "--kind", "nope", "--config", json.dumps(config), ok=False)
    assert unknown.exit_code == 2 and "unknown connector kind" in unknown.output
    secretless = kinfolio("sync", "add", "z", "--kind", "xapi-file", "--config",
                          json.dumps({**config, "hub": {"url": "https://h", "client_id": "c"}}), ok=False)
    assert secretless.exit_code == 2 and "client_secret_env, client_secret_file or private_key_file" in secretless.output

    assert "every:900" in kinfolio("sync", "schedule", "lrs", "--every", "15m").output
    assert "cron:0 2 * * *" in kinfolio("sync", "schedule", "lrs", "--cron", "0 2 * * *").output
    assert kinfolio("sync", "schedule", "lrs", "--cron", "not cron", ok=False).exit_code == 2
    [status] = [json.loads(line) for line in kinfolio("sync", "status").output.splitlines()]
    assert (status["name"], status["kind"], status["schedule"], status["last_run"], status["dead_letters"]) == (
        "lrs", "xapi-file", "cron:0 2 * * *", None, 0)
    assert kinfolio("sync", "status", "nope", ok=False).exit_code == 2

    kinfolio("guardian", "create", "--email", "pat@example.org", "--name", "Pat")
    learner = kinfolio("learner", "create", "--given-name", "Ria", "--family-name", "Moss", "--dob", "2014-02-03",
                       "--guardian", "pat@example.org").output.strip()
    kinfolio("provider", "create", "--name", "LRS", "--kind", "app")
    link = ["learner", "link", "--learner", learner, "--provider", "LRS", "--system", "xapi"]
    assert "linked: xapi mbox_sha1sum:" in kinfolio(*link, "--external-id", "mailto:Ria@Example.org", "--by", "pat@example.org").output
    assert "already linked" in kinfolio(*link, "--external-id", "mailto:ria@example.org").output
    assert "not a guardian" in kinfolio(*link, "--external-id", "openid:https://x.org/r", "--by", "x@example.org", ok=False).output
    assert "xAPI learner id is" in kinfolio(*link, "--external-id", "ria", ok=False).output


def test_schedules_parse_and_advance():
    assert parse_schedule("90s", None) == "every:90" and parse_schedule(None, "*/5 * * * *") == "cron:*/5 * * * *"
    for every, cron in [(None, None), ("5s", None), ("15x", None), ("1m", "* * * * *")]:
        with pytest.raises(ValueError):
            parse_schedule(every, cron)
    at = datetime(2026, 1, 1, 10, 7, tzinfo=UTC)
    assert next_run("every:900", at) == at + timedelta(minutes=15)
    assert next_run("cron:*/5 * * * *", at) == datetime(2026, 1, 1, 10, 10, tzinfo=UTC)


async def test_worker_runs_due_instances_once_and_a_held_lease_refuses_a_second_run(engine, app, monkeypatch, tmp_path):
    provider = await connector_provider(engine, monkeypatch)
    await linked_family(engine, provider, "kim@example.org", grant_activities=True)
    (tmp_path / "s.jsonl").write_text(json.dumps({
        "id": "00000000-0000-4000-8000-000000000001", "actor": {"mbox": "mailto:kim@example.org"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"}, "object": {"id": "https://x.org/a"},
        "timestamp": "2026-01-01T00:00:00Z"}) + "\n")
    await create(engine, "due", "xapi-file", instance_config(provider, {"paths": [str(tmp_path / "s.jsonl")]}))
    await create(engine, "idle", "xapi-file", instance_config(provider, {"paths": [str(tmp_path / "s.jsonl")]}))
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    await state.set_schedule(sessions=sessions, name="due", schedule="every:3600", next_run_at=now - timedelta(seconds=1))
    await state.set_schedule(sessions=sessions, name="idle", schedule="every:3600", next_run_at=now + timedelta(hours=1))

    # Another process holds "due": the worker skips it and leaves its schedule alone.
    await state.acquire_lease(sessions=sessions, name="due", owner="elsewhere", seconds=60)
    async with asgi_http(app) as http:
        assert await run_due(sessions=sessions, http=http) == {"due": "busy"}
        with pytest.raises(state.Busy, match="being synced by elsewhere"):
            await run_instance(sessions=sessions, name="due", http=http)
    await state.release_lease(sessions=sessions, name="due", owner="elsewhere")

    async with asgi_http(app) as http:
        assert await run_due(sessions=sessions, http=http) == {"due": "succeeded"}
        assert await run_due(sessions=sessions, http=http) == {}  # next run is an hour away
    assert await count_activities(engine, provider) == 1
    instance = await state.get_instance(sessions=sessions, name="due")
    assert instance.next_run_at > now + timedelta(minutes=59) and instance.lease_owner is None


async def test_a_run_that_lost_its_lease_stops_without_moving_the_cursor(engine, app, monkeypatch, tmp_path):
    provider = await connector_provider(engine, monkeypatch)
    await linked_family(engine, provider, "kim@example.org", grant_activities=True)
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps({
        "id": f"00000000-0000-4000-8000-{n:012d}", "actor": {"mbox": "mailto:kim@example.org"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"}, "object": {"id": "https://x.org/a"},
        "timestamp": "2026-01-01T00:00:00Z"}) for n in range(10)) + "\n")
    await create(engine, "stolen", "xapi-file", instance_config(provider, {"paths": [str(tmp_path / "s.jsonl")], "page_size": 5}))
    sessions = make_sessionmaker(engine)

    async def steal(report):  # type: ignore[no-untyped-def]
        # After the first page, another run takes over the (pretend-expired) lease.
        from sqlalchemy import update

        from connectors.models import ConnectorInstance
        from hub.db import transaction

        async with transaction(sessions) as session:
            await session.execute(update(ConnectorInstance).values(lease_owner="thief"))

    async with asgi_http(app) as http:
        outcome = await run_instance(sessions=sessions, name="stolen", http=http, progress=steal)
    assert outcome.status == "failed" and "taken over" in (outcome.error or "")
    instance = await state.get_instance(sessions=sessions, name="stolen")
    assert json.loads(instance.cursor)["record"] == 5 and instance.lease_owner == "thief"
