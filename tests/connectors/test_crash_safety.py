"""SIGKILL in the middle of a large import: the next run resumes from the cursor, nothing lost or doubled.

A real hub (uvicorn) and real ``kinfolio sync run`` processes on the test database.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from connectors import state
from connectors.base import MapContext
from connectors.xapi.statements import map_statement
from connectors.xapi.synthetic import learner_email, write_statements
from hub.db import make_sessionmaker
from hub.records.service import content_hash
from schemas import records as record_schemas
from tests.conftest import PSEUDONYM_KEY, ROOT
from tests.connectors.fakes import free_port
from tests.connectors.helpers import SECRET_ENV, activity_state, connector_provider, instance_config, linked_family

STATEMENTS = int(os.environ.get("KINFOLIO_CRASH_STATEMENTS", "100000"))
LEARNERS = 20


def _env(settings, port: int, secret: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = dict(os.environ)
    env.update({
        "KINFOLIO_DATABASE_URL": settings.database_url, "KINFOLIO_ENVIRONMENT": "test",
        "KINFOLIO_HOST": "127.0.0.1", "KINFOLIO_PORT": str(port), "KINFOLIO_ISSUER": f"http://127.0.0.1:{port}",
        "KINFOLIO_DATA_DIR": str(settings.data_dir), "KINFOLIO_SIGNING_KEY_PEM": settings.signing_key_pem,
        "KINFOLIO_PSEUDONYM_KEY_HEX": PSEUDONYM_KEY.hex(), SECRET_ENV: secret,
    })
    return env


def _expected(path: Path, learner_of: dict[str, str]) -> tuple[int, str]:
    """What an uninterrupted import must leave: (learner, source id, content hash) of every statement."""
    rows = []
    with path.open() as source:
        for line in source:
            [op] = map_statement(json.loads(line), MapContext())
            entry = record_schemas.ActivityCreate.model_validate(op.entry)
            rows.append((learner_of[op.external_id], entry.source_id, content_hash(entry)))
    digest = hashlib.sha256()
    for learner, source_id, digest_hex in sorted(rows):
        digest.update(f"{learner}|{source_id}|{digest_hex}\n".encode())
    return len(rows), digest.hexdigest()


async def test_sigkill_mid_import_then_resume_equals_an_uninterrupted_run(engine, settings, monkeypatch, tmp_path):
    from connectors.xapi.statements import canonical_actor_id

    provider = await connector_provider(engine, monkeypatch)
    learner_of = {}
    for n in range(LEARNERS):
        family = await linked_family(engine, provider, learner_email(n), grant_activities=True)
        learner_of[canonical_actor_id(f"mailto:{learner_email(n)}")] = str(family.learner_id)
    path = tmp_path / "statements.jsonl"
    write_statements(path, STATEMENTS, LEARNERS)
    port = free_port()
    sessions = make_sessionmaker(engine)
    await state.create_instance(sessions=sessions, name="crash", kind="xapi-file", config=instance_config(
        provider, {"paths": [str(path)], "page_size": 1000}, url=f"http://127.0.0.1:{port}", lease_seconds=2))
    env = _env(settings, port, provider.client_secret)
    sync_cmd = [sys.executable, "-m", "hub.cli", "sync", "run", "crash", "--no-progress", "--json"]

    hub = subprocess.Popen([sys.executable, "-m", "uvicorn", "hub.asgi:app", "--host", "127.0.0.1", "--port", str(port),
                            "--log-level", "warning", "--no-access-log"], cwd=ROOT, env=env)
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("hub did not start")

        victim = subprocess.Popen(sync_cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            instance = await state.get_instance(sessions=sessions, name="crash")
            if instance.cursor and json.loads(instance.cursor)["record"] >= STATEMENTS // 3:
                break
            assert victim.poll() is None, victim.stderr.read().decode()[-2000:] if victim.stderr else ""
            await asyncio.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        victim.stderr.close()  # type: ignore[union-attr]
        stored_at_kill, _ = await activity_state(engine, provider)
        assert 0 < stored_at_kill < STATEMENTS
        cursor_at_kill = json.loads((await state.get_instance(sessions=sessions, name="crash")).cursor)["record"]

        # The killed run's lease lapses after lease_seconds; until then a new run is refused (exit 3).
        for _ in range(100):
            done = subprocess.run(sync_cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            if done.returncode != 3:
                break
            assert "is being synced by" in done.stderr
            await asyncio.sleep(0.5)
        assert done.returncode == 0, done.stderr[-2000:]
        report = json.loads(done.stdout)
    finally:
        hub.terminate()
        hub.wait(10)

    # The resumed run read only what the killed run had not committed a cursor for.
    assert report["read"] == STATEMENTS - cursor_at_kill
    # At most one page was sent twice (committed by the hub, cursor not yet stored): unchanged.
    assert report["created"] + report["unchanged"] == report["read"]
    assert report["unchanged"] <= 1000 and report["invalid"] == 0 and not report["refused"] and not report["held"]
    assert await activity_state(engine, provider) == _expected(path, learner_of)
    runs = await state.last_runs(sessions=sessions, name="crash", limit=5)
    assert [r.status for r in runs] == ["succeeded", "interrupted"]
