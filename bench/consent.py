"""Consent-engine benchmark: decisions per second for a 1,000-learner batch, and what the
hash-chained disclosure log adds to a 1,000-activity contribution (ratio to the same call with
logging off, measured in the same run).

    .venv/bin/python -m bench.consent [--pg postgresql+asyncpg://postgres@127.0.0.1:5432/test] [--repeat 7]

Runs on a fresh SQLite file and, with --pg, on a fresh PostgreSQL database created next to the
given one (and dropped afterwards). Prints medians.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import event

import hub.models  # noqa: F401
from consent import Action
from consent.sections import all_scopes
from hub import migrate
from hub.db import make_engine, make_sessionmaker
from hub.grants.enforce import ProviderAccess
from hub.grants.service import grant_access
from hub.oauth.bearer import TokenContext
from hub.people.models import Learner
from hub.providers.service import create_client, create_provider
from hub.records.service import contribute_entries
from schemas import records as r

KEY = bytes(range(32))
LEARNERS = 1000


async def _setup(engine):  # type: ignore[no-untyped-def]
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        provider = await create_provider(session=session, name=f"bench-{secrets.token_hex(3)}", kind="app")
        client, _ = await create_client(session=session, provider_id=provider.id, name="bench", scopes=all_scopes())
        learners = [Learner(given_name="L", family_name=str(i), date_of_birth=date(2012, 1, 1)) for i in range(LEARNERS)]
        session.add_all(learners)
        await session.flush()
        for learner in learners:
            for section, action in (("badges", Action.READ), ("activities", Action.CONTRIBUTE), ("skills", Action.READ)):
                await grant_access(session=session, learner_id=learner.id, provider_id=provider.id, section=section,
                                   action=action, purpose="bench", granted_by=None, now=now - timedelta(days=1),
                                   pseudonym_key=KEY)
    token = TokenContext(jti="bench", client_id=client.client_id, provider_id=provider.id, scopes=frozenset(all_scopes()))
    return sessions, token, [learner.id for learner in learners]


def _activities(tag: str) -> list[r.ActivityCreate]:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        r.ActivityCreate(source_id=f"{tag}-{n}", verb=r.Verb(id="http://adlnet.gov/expapi/verbs/completed", display="completed"),
                         object=r.ActivityObject(id=f"https://app.example.org/lessons/{n % 40}", name="Lesson"),
                         timestamp=base + timedelta(seconds=n))
        for n in range(1000)
    ]


async def run(url: str, repeat: int) -> dict[str, float]:
    engine = make_engine(url)
    await migrate.upgrade(engine)
    statements = 0

    def count(*_args):  # type: ignore[no-untyped-def]
        nonlocal statements
        statements += 1

    try:
        sessions, token, learner_ids = await _setup(engine)
        event.listen(engine.sync_engine, "before_cursor_execute", count)

        batch_times, batch_statements = [], []
        for _ in range(repeat):
            statements = 0
            async with sessions() as session, session.begin():
                access = ProviderAccess(session=session, token=token, now=datetime.now(UTC))
                start = time.perf_counter()
                await access.preload(learner_ids)
                for learner_id in learner_ids:
                    for section, action in (("badges", Action.READ), ("activities", Action.CONTRIBUTE), ("skills", Action.READ)):
                        await access.authorize(learner_id, section, action)
                batch_times.append(time.perf_counter() - start)
                batch_statements.append(statements)
                await session.rollback()

        with_log, without_log = [], []
        for i in range(repeat):
            for logged in (True, False) if i % 2 == 0 else (False, True):
                entries = _activities(f"{i}-{logged}")
                learner_id = learner_ids[i % LEARNERS]
                start = time.perf_counter()
                async with sessions() as session, session.begin():
                    access = ProviderAccess(session=session, token=token, now=datetime.now(UTC))
                    allowed = await access.authorize(learner_id, "activities", Action.CONTRIBUTE)
                    report = await contribute_entries(session=session, access=allowed, section="activities",
                                                      learner_id=learner_id, provider_id=token.provider_id,
                                                      entries=entries, now=access.now)
                    access.disclosed(learner_id, "activities", Action.CONTRIBUTE, report.created)
                    if logged:
                        await access.flush_log()
                (with_log if logged else without_log).append(time.perf_counter() - start)
        decisions = LEARNERS * 3
        median_batch = statistics.median(batch_times)
        return {
            "decisions_per_s": decisions / median_batch,
            "batch_ms": median_batch * 1000,
            "batch_statements": statistics.median(batch_statements),
            "contribute_with_log_ms": statistics.median(with_log) * 1000,
            "contribute_without_log_ms": statistics.median(without_log) * 1000,
            "log_ratio": statistics.median(with_log) / statistics.median(without_log),
        }
    finally:
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", help="PostgreSQL URL of an existing database to create the bench database next to")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    targets = []
    with tempfile.TemporaryDirectory() as tmp:
        targets.append(("sqlite", f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"))
        created = None
        if args.pg:
            from tests.conftest import _create_pg_database, _drop_pg_database

            created = await _create_pg_database(args.pg)
            targets.append(("postgresql", created))
        try:
            print(f"{'database':<11} {'decisions/s':>12} {'3,000 decisions':>16} {'SQL stmts':>10} "
                  f"{'1k contribute +log':>19} {'no log':>8} {'log ratio':>10}")
            for name, url in targets:
                m = await run(url, args.repeat)
                print(f"{name:<11} {m['decisions_per_s']:>12,.0f} {m['batch_ms']:>13.1f} ms {m['batch_statements']:>10.0f} "
                      f"{m['contribute_with_log_ms']:>16.1f} ms {m['contribute_without_log_ms']:>5.1f} ms {m['log_ratio']:>10.3f}")
        finally:
            if created:
                await _drop_pg_database(created, args.pg)


if __name__ == "__main__":
    asyncio.run(main())
