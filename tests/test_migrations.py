"""Migrations are the only schema source: they run up and down on both databases and match the models."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from hub import migrate
from hub.db import Base, make_engine
from tests.conftest import _create_pg_database, _drop_pg_database


@pytest.fixture
async def scratch_url(tmp_path):  # type: ignore[no-untyped-def]
    admin = os.environ.get("KINFOLIO_TEST_DATABASE_URL")
    if not admin:
        yield f"sqlite+aiosqlite:///{tmp_path / f'scratch-{secrets.token_hex(3)}.db'}"
        return
    url = await _create_pg_database(admin)
    yield url
    await _drop_pg_database(url, admin)


async def _all_tables(engine) -> set[str]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names())) - {"alembic_version"}


async def _tables(engine) -> set[str]:  # type: ignore[no-untyped-def]
    return {name for name in await _all_tables(engine) if not name.startswith(migrate.QUEUE_TABLE_PREFIX)}


async def _queue_objects(engine) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    """Procrastinate's tables, functions and types (migration 53a12c75e014; PostgreSQL only)."""
    if engine.dialect.name != "postgresql":
        return {"tables": set(), "functions": set(), "types": set()}
    queries = {
        "tables": "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'procrastinate%'",
        "functions": "SELECT proname FROM pg_proc WHERE proname LIKE 'procrastinate%'",
        "types": "SELECT typname FROM pg_type WHERE typname LIKE 'procrastinate%' AND typtype IN ('e', 'c')",
    }
    async with engine.connect() as conn:
        return {kind: set((await conn.execute(text(sql))).scalars()) for kind, sql in queries.items()}


async def test_upgrade_on_empty_then_downgrade_to_base_and_up_again(scratch_url):
    engine = make_engine(scratch_url)
    try:
        await migrate.upgrade(engine)
        assert await _tables(engine) == set(Base.metadata.tables)
        queue = await _queue_objects(engine)
        if engine.dialect.name == "postgresql":
            assert {"procrastinate_jobs", "procrastinate_events", "procrastinate_periodic_defers"} <= queue["tables"]
            assert "procrastinate_fetch_job_v2" in queue["functions"] and "procrastinate_job_status" in queue["types"]
        else:
            assert not {t for t in await _all_tables(engine) if t.startswith("procrastinate")}
        await migrate.downgrade(engine, "53a12c75e014")  # only the OneRoster bulk-absence records go
        assert await _tables(engine) == set(Base.metadata.tables) - {"oneroster_record"}
        assert await _queue_objects(engine) == queue
        await migrate.downgrade(engine, "c4a5e0f1d2b3")  # only the queue goes
        assert await _queue_objects(engine) == {"tables": set(), "functions": set(), "types": set()}
        assert await _tables(engine) == set(Base.metadata.tables) - {"oneroster_record"}
        await migrate.downgrade(engine, "base")
        assert await _all_tables(engine) == set()
        await migrate.upgrade(engine)
        assert await _tables(engine) == set(Base.metadata.tables)
        assert await _queue_objects(engine) == queue
    finally:
        await engine.dispose()


async def test_models_and_migrations_agree(scratch_url):
    # The equivalent of `alembic check`: a model change without a migration fails here.
    engine = make_engine(scratch_url)
    try:
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True, "include_name": migrate.include_name}), Base.metadata)
            )
        assert diff == []
    finally:
        await engine.dispose()


async def test_upgrade_is_a_no_op_on_a_populated_database(scratch_url):
    engine = make_engine(scratch_url)
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO guardian (id, email, display_name, created_at) VALUES (:id, 'g@example.org', 'G', :at)"),
                {"id": "0" * 32 if conn.dialect.name == "sqlite" else "00000000-0000-0000-0000-000000000000",
                 "at": datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None) if conn.dialect.name == "sqlite"
                 else datetime(2026, 1, 1, tzinfo=UTC)},
            )
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM guardian"))).scalar_one() == 1
    finally:
        await engine.dispose()



async def test_disclosure_log_written_before_the_chain_is_chained_on_upgrade(scratch_url):
    from uuid import uuid4

    from hub.db import make_sessionmaker
    from hub.grants.log import verify_log

    engine = make_engine(scratch_url)
    try:
        await migrate.upgrade(engine, "bf09a9a55fa6")
        learner, provider = uuid4(), uuid4()
        sqlite = engine.dialect.name == "sqlite"

        def uid(value):  # type: ignore[no-untyped-def]
            return value.hex if sqlite else value

        def ts(minute: int):  # type: ignore[no-untyped-def]
            at = datetime(2026, 1, 1, 10, minute, tzinfo=UTC)
            return at.replace(tzinfo=None) if sqlite else at

        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO learner (id, given_name, family_name, date_of_birth, created_at) "
                                    "VALUES (:id, 'A', 'B', '2012-01-01', :at)"), {"id": uid(learner), "at": ts(0)})
            await conn.execute(text("INSERT INTO provider (id, name, kind, created_at) VALUES (:id, 'P', 'app', :at)"),
                               {"id": uid(provider), "at": ts(0)})
            for minute in range(3):
                await conn.execute(text(
                    "INSERT INTO disclosure_event (at, learner_id, provider_id, client_id, section, action, outcome) "
                    "VALUES (:at, :l, :p, 'c', 'badges', 'read', 'allowed')"), {"at": ts(minute), "l": uid(learner), "p": uid(provider)})
        await migrate.upgrade(engine)
        async with make_sessionmaker(engine)() as session:
            assert await verify_log(session=session) == (3, [])
    finally:
        await engine.dispose()


async def _learner_and_provider(engine, revision: str) -> dict:  # type: ignore[no-untyped-def]
    """Upgrade to ``revision`` and add one learner and one provider with raw SQL (the models may be
    ahead of it); the bind values ``l`` (learner), ``p`` (provider) and ``at``."""
    from uuid import uuid4

    await migrate.upgrade(engine, revision)
    sqlite = engine.dialect.name == "sqlite"
    learner, provider = uuid4(), uuid4()
    ids = {"l": learner.hex if sqlite else learner, "p": provider.hex if sqlite else provider,
           "at": datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None) if sqlite else datetime(2026, 1, 1, tzinfo=UTC),
           "learner": learner, "provider": provider}
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO learner (id, given_name, family_name, date_of_birth, created_at) "
                                "VALUES (:l, 'A', 'B', '2012-01-01', :at)"), ids)
        await conn.execute(text("INSERT INTO provider (id, name, kind, created_at) VALUES (:p, 'P', 'app', :at)"), ids)
    return ids


async def test_change_feed_rows_survive_losing_their_foreign_keys(scratch_url):
    # d25c3f9123cf rebuilds record_change on SQLite: every row keeps its id, and later ids start
    # above the largest of them even after the top rows are deleted (AUTOINCREMENT).
    engine = make_engine(scratch_url)
    try:
        ids = await _learner_and_provider(engine, "e5b1c2d3f4a6")
        async with engine.begin() as conn:
            for n in range(3):
                await conn.execute(text("INSERT INTO record_change (learner_id, provider_id, section, entry_id, source_id, op, at) "
                                        "VALUES (:l, :p, 'activities', :n, :s, 'created', :at)"), {**ids, "n": n, "s": f"a-{n}"})
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            rows = (await conn.execute(text("SELECT id, source_id FROM record_change ORDER BY id"))).all()
            assert [source for _, source in rows] == ["a-0", "a-1", "a-2"]
            assert await conn.run_sync(lambda c: inspect(c).get_foreign_keys("record_change")) == []
            await conn.execute(text("DELETE FROM record_change WHERE id = :top"), {"top": rows[-1][0]})
            await conn.execute(text("INSERT INTO record_change (learner_id, provider_id, section, entry_id, source_id, op, at) "
                                    "VALUES (:l, :p, 'activities', 9, 'a-9', 'created', :at)"), ids)
            new_id = (await conn.execute(text("SELECT id FROM record_change WHERE source_id = 'a-9'"))).scalar_one()
            assert new_id > rows[-1][0]
        await migrate.downgrade(engine, "e5b1c2d3f4a6")
        async with engine.connect() as conn:
            assert len(await conn.run_sync(lambda c: inspect(c).get_foreign_keys("record_change"))) == 2
            assert (await conn.execute(text("SELECT count(*) FROM record_change"))).scalar_one() == 3
    finally:
        await engine.dispose()


async def test_the_disclosure_log_outlives_its_providers(scratch_url):
    # 0b7e4d2a9c61: a provider with disclosures can no longer be deleted (the log used to go with
    # it); events written before the migration keep their ids and chain; erasure still deletes a
    # learner's log.
    from sqlalchemy.exc import IntegrityError

    from hub.db import make_sessionmaker
    from hub.grants.log import PendingEvent, append_events, verify_log

    engine = make_engine(scratch_url)
    try:
        ids = await _learner_and_provider(engine, "d25c3f9123cf")
        async with make_sessionmaker(engine)() as session:
            await append_events(session=session, events=[PendingEvent(
                at=datetime(2026, 1, 1, tzinfo=UTC), learner_id=ids["learner"], provider_id=ids["provider"], client_id="c",
                token_id=None, section="badges", action="read", outcome="allowed", reason=None, grant_id=None,
                purpose=None, entry_count=n) for n in range(2)])
            await session.commit()
        await migrate.upgrade(engine)
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(text("DELETE FROM provider WHERE id = :p"), ids)
        async with make_sessionmaker(engine)() as session:
            assert await verify_log(session=session) == (2, [])
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM learner WHERE id = :l"), ids)
            assert (await conn.execute(text("SELECT count(*) FROM disclosure_event"))).scalar_one() == 0
            await conn.execute(text("DELETE FROM provider WHERE id = :p"), ids)  # nothing left to keep it
        await migrate.downgrade(engine, "d25c3f9123cf")
        async with engine.connect() as conn:
            keys = await conn.run_sync(lambda c: inspect(c).get_foreign_keys("disclosure_event"))
            assert {k["referred_table"]: k["options"].get("ondelete") for k in keys} == {"learner": "CASCADE", "provider": "CASCADE"}
    finally:
        await engine.dispose()
