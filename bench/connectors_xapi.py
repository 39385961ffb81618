"""End-to-end xAPI import throughput: `kinfolio sync run` against a uvicorn hub, statements/second.

    .venv/bin/python -m bench.connectors_xapi [--statements 100000] [--learners 50] [--pg URL]

Creates a scratch database (a fresh SQLite file, or a fresh database next to --pg), migrates it,
creates one provider acting as the connector and N learners linked and granted, writes synthetic
statements as JSON Lines, starts the hub (one uvicorn worker) on a port in 8250-8299, runs the sync
as a separate process and reports statements/second (wall clock of the sync process, including
token, link lookups, GraphQL validation, consent decisions, disclosure log and inserts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def hub_env(database_url: str, port: int, data_dir: Path, key_pem: str, pseudonym_hex: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "KINFOLIO_DATABASE_URL": database_url, "KINFOLIO_ENVIRONMENT": "test", "KINFOLIO_HOST": "127.0.0.1",
        "KINFOLIO_PORT": str(port), "KINFOLIO_ISSUER": f"http://127.0.0.1:{port}", "KINFOLIO_DATA_DIR": str(data_dir),
        "KINFOLIO_SIGNING_KEY_PEM": key_pem, "KINFOLIO_PSEUDONYM_KEY_HEX": pseudonym_hex,
    })
    return env


def start_hub(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "hub.asgi:app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("hub did not start")


async def setup(database_url: str, learners: int, pseudonym_key: bytes, statements: Path, count: int, port: int) -> tuple[str, str]:
    from connectors import state
    from connectors.xapi.statements import canonical_actor_id
    from connectors.xapi.synthetic import learner_email, write_statements
    from consent import Action
    from hub import migrate
    from hub.db import make_engine, make_sessionmaker
    from hub.grants.service import grant_access
    from hub.links.service import link_learner
    from hub.people.service import create_guardian, create_learner
    from hub.providers.service import create_client, create_provider

    import hub.models  # noqa: F401

    engine = make_engine(database_url)
    await migrate.upgrade(engine)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC) - timedelta(seconds=5)
    async with sessions() as session, session.begin():
        provider = await create_provider(session=session, name="Bench LRS", kind="app")
        client, secret = await create_client(session=session, provider_id=provider.id, name="bench", scopes=["activities:contribute"])
        for n in range(learners):
            guardian = await create_guardian(session=session, email=f"parent{n}@example.org", display_name="P")
            learner = await create_learner(session=session, given_name="L", family_name=str(n), date_of_birth=datetime(2012, 1, 1).date(),
                                           guardian_ids=[guardian.id], today=now.date())
            await link_learner(session=session, provider_id=provider.id, system="xapi",
                               external_id=canonical_actor_id(f"mailto:{learner_email(n)}"), learner_id=learner.id, origin="family")
            await grant_access(session=session, learner_id=learner.id, provider_id=provider.id, section="activities",
                               action=Action.CONTRIBUTE, purpose="bench", granted_by=guardian.id, now=now, pseudonym_key=pseudonym_key)
    write_statements(statements, count, learners)
    await state.create_instance(sessions=sessions, name="bench", kind="xapi-file", config={
        "hub": {"url": f"http://127.0.0.1:{port}", "client_id": client.client_id, "client_secret_env": "KINFOLIO_BENCH_SECRET"},
        "source": {"paths": [str(statements)], "page_size": 1000},
    })
    await engine.dispose()
    return client.client_id, secret


async def scratch_pg(admin_url: str) -> str:
    from tests.conftest import _create_pg_database

    return await _create_pg_database(admin_url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--statements", type=int, default=100_000)
    parser.add_argument("--learners", type=int, default=50)
    parser.add_argument("--pg", help="admin URL of a PostgreSQL server (a scratch database is created and dropped)")
    parser.add_argument("--port", type=int, default=8291)
    args = parser.parse_args()

    from hub.oauth.keys import generate_private_pem

    tmp = Path(tempfile.mkdtemp(prefix="kinfolio-bench-"))
    database_url = asyncio.run(scratch_pg(args.pg)) if args.pg else f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    pseudonym_key = os.urandom(32)
    env = hub_env(database_url, args.port, tmp, generate_private_pem().decode(), pseudonym_key.hex())
    _, secret = asyncio.run(setup(database_url, args.learners, pseudonym_key, tmp / "statements.jsonl", args.statements, args.port))
    hub = start_hub(env, args.port)
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "hub.cli", "sync", "run", "bench", "--no-progress", "--json"],
                              cwd=ROOT, env={**env, "KINFOLIO_BENCH_SECRET": secret}, capture_output=True, text=True)
        elapsed = time.monotonic() - started
    finally:
        hub.terminate()
        hub.wait(10)
    if done.returncode != 0:
        raise SystemExit(f"sync failed: {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    assert report["created"] == args.statements, report
    backend = "PostgreSQL" if args.pg else "SQLite"
    print(f"{backend}: {args.statements} statements, {args.learners} learners: {elapsed:.1f} s, "
          f"{args.statements / elapsed:,.0f} statements/s (created {report['created']})")
    if args.pg:
        from tests.conftest import _drop_pg_database

        asyncio.run(_drop_pg_database(database_url, args.pg))


if __name__ == "__main__":
    main()
