"""The database layer: PostgreSQL connections carry the configured plan_cache_mode, and SQLite batch
inserts bind values exactly as Core does (hub/db.py)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from hub.config import Settings
from hub.db import make_engine
from tests.conftest import PG_ADMIN_URL as ADMIN_URL


async def _mode(**kwargs: str) -> str:
    engine = make_engine(ADMIN_URL, **kwargs)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text("SHOW plan_cache_mode"))).scalar_one()
    except OSError as exc:
        pytest.skip(f"needs PostgreSQL at {ADMIN_URL}: {exc}")
    finally:
        await engine.dispose()


async def test_default_lets_postgres_cache_generic_plans() -> None:
    assert await _mode() == "auto"


async def test_operators_can_force_custom_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KINFOLIO_DATABASE_PLAN_CACHE_MODE", "force_custom_plan")
    assert await _mode(plan_cache_mode=Settings().database_plan_cache_mode) == "force_custom_plan"


async def test_a_pooled_connection_the_server_closed_is_replaced_without_a_ping() -> None:
    """PostgreSQL restarted or ended a pooled connection: the next checkout gets a fresh one and
    the request succeeds, and a healthy checkout sends nothing (no pre-ping round trips)."""
    engine, other = make_engine(ADMIN_URL), make_engine(ADMIN_URL)
    sent: list[str] = []
    try:
        async with engine.connect() as conn:
            first_pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            # Everything asyncpg sends on this connection from now on (pings included).
            (await conn.get_raw_connection()).driver_connection.add_query_logger(lambda record: sent.append(record.query))
        async with engine.connect() as conn:  # healthy: the same connection, nothing sent at checkout
            assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() == first_pid
        # The first connection's reset on return, then the second's own transaction: no ping's
        # BEGIN, empty query and ROLLBACK between them.
        assert [q for q in sent if "pg_backend_pid" not in q] == ["ROLLBACK;", "BEGIN;", "ROLLBACK;"], sent
        async with other.connect() as conn:
            assert (await conn.execute(text(f"SELECT pg_terminate_backend({first_pid})"))).scalar_one() is True
        await asyncio.sleep(0.05)  # the event loop sees the server end the connection
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() != first_pid
    except OSError as exc:
        pytest.skip(f"needs PostgreSQL at {ADMIN_URL}: {exc}")
    finally:
        await engine.dispose()
        await other.dispose()


def test_an_unknown_mode_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("KINFOLIO_DATABASE_PLAN_CACHE_MODE", "fastest")
    with pytest.raises(ValidationError, match="database_plan_cache_mode"):
        Settings()


# -- SQLite: hub.db.sqlite_insert_rows stores what a Core insert stores ------------------------

async def _sqlite_with_parents(tmp_path):  # type: ignore[no-untyped-def]
    from uuid import uuid4

    from hub import migrate

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'rows.db'}")
    await migrate.upgrade(engine)
    learner, provider = uuid4(), uuid4()
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO learner (id, given_name, family_name, date_of_birth, created_at) "
                                "VALUES (:id, 'A', 'B', '2012-01-01', '2026-01-01 00:00:00.000000')"), {"id": learner.hex})
        await conn.execute(text("INSERT INTO provider (id, name, kind, created_at) "
                                "VALUES (:id, 'P', 'app', '2026-01-01 00:00:00.000000')"), {"id": provider.hex})
    return engine, learner, provider


def _activity_rows(learner, provider, prefix: str) -> list[dict]:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta, timezone

    now = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    rows = []
    for n in range(4):
        rows.append({
            "learner_id": learner, "provider_id": provider, "source_id": f"{prefix}-{n}", "content_hash": "h" * 64,
            "created_at": now, "updated_at": now, "verb_id": "http://adlnet.gov/expapi/verbs/completed",
            "verb_display": "completed", "object_id": f"https://lms.example.org/a/{n}",
            "object_name": None if n % 2 else "Unit", "object_type": None,
            "result_score_scaled": [None, 0.5, 1.0, -0.25][n], "result_score_raw": [None, 5, 7.5, None][n],
            "result_score_min": None, "result_score_max": None, "result_success": [None, True, False, True][n],
            "result_completion": [False, None, True, None][n], "result_duration": "PT5M" if n else None,
            # Offsets other than UTC (stored in UTC), and whole seconds (no microseconds to print).
            "timestamp": now.astimezone(timezone(timedelta(hours=-5 + n))).replace(microsecond=0 if n % 2 else 7) - timedelta(days=n),
        })
    return rows


async def test_sqlite_insert_rows_stores_exactly_what_core_insert_stores(tmp_path) -> None:
    from datetime import timedelta

    from sqlalchemy import insert

    from hub.db import sqlite_insert_rows
    from hub.records.models import Activity

    engine, learner, provider = await _sqlite_with_parents(tmp_path)
    try:
        core, fast = _activity_rows(learner, provider, "core"), _activity_rows(learner, provider, "fast")
        # One row's created_at is another object: a "constant" column that is not constant is bound per row.
        for rows in (core, fast):
            rows[2]["created_at"] = rows[2]["created_at"] - timedelta(hours=1)
        async with engine.begin() as conn:
            await conn.execute(insert(Activity.__table__), core)
            await sqlite_insert_rows(conn, Activity.__table__, fast, ("learner_id", "provider_id", "created_at", "updated_at"))
        async with engine.connect() as conn:
            stored = {row.source_id: row._asdict() for row in await conn.execute(text("SELECT * FROM activity"))}
        assert len(stored) == 8
        for n in range(4):
            as_core = {k: v for k, v in stored[f"core-{n}"].items() if k not in ("id", "source_id")}
            as_fast = {k: v for k, v in stored[f"fast-{n}"].items() if k not in ("id", "source_id")}
            assert as_fast == as_core  # the stored values themselves (strings, integers), not re-read objects
        assert stored["fast-2"]["created_at"] != stored["fast-1"]["created_at"]
    finally:
        await engine.dispose()


async def test_sqlite_insert_rows_refuses_rows_with_different_columns(tmp_path) -> None:
    from hub.db import sqlite_insert_rows
    from hub.records.models import Activity

    engine, learner, provider = await _sqlite_with_parents(tmp_path)
    try:
        rows = _activity_rows(learner, provider, "x")
        del rows[1]["object_type"]
        async with engine.begin() as conn:
            with pytest.raises(ValueError, match="same columns"):
                await sqlite_insert_rows(conn, Activity.__table__, rows)
            assert (await conn.execute(text("SELECT count(*) FROM activity"))).scalar_one() == 0
    finally:
        await engine.dispose()


async def test_plain_rows_answer_what_the_rows_answer(tmp_path) -> None:
    from sqlalchemy import select

    from hub.db import plain_rows
    from hub.records.models import Activity

    engine, learner, provider = await _sqlite_with_parents(tmp_path)
    try:
        async with engine.begin() as conn:
            from sqlalchemy import insert

            await conn.execute(insert(Activity.__table__), _activity_rows(learner, provider, "p"))
            query = select(*Activity.__table__.c).order_by(Activity.id)
            rows = list(await conn.execute(query))
            plain = plain_rows(await conn.execute(query))
            # Typed values (UUIDs, aware datetimes, booleans), by the same names, in the same order.
            assert [tuple(p) for p in plain] == [tuple(r) for r in rows] and len(plain) == 4
            assert all(getattr(p, c.name) == getattr(r, c.name) for p, r in zip(plain, rows) for c in Activity.__table__.c)
            assert plain[0].learner_id == learner and plain[0].timestamp.tzinfo is not None
            # A name a named tuple cannot take: the Rows themselves.
            odd = plain_rows(await conn.execute(text("SELECT 1 AS _hidden, 2 AS shown")))
            assert (odd[0]._hidden, odd[0].shown) == (1, 2)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgresql+asyncpg", "postgresql+psycopg"])
async def test_utc_datetimes_come_back_aware_in_utc(database: str, tmp_path) -> None:
    """UTCDateTime answers the same instant, as an aware UTC datetime, on every driver: asyncpg's
    values are used as decoded (no processor), psycopg's arrive in the session's time zone and are
    converted, SQLite's naive text is marked UTC."""
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import literal, select

    from hub.db import UTCDateTime

    url = f"sqlite+aiosqlite:///{tmp_path / 'utc.db'}" if database == "sqlite" else ADMIN_URL.replace(
        "postgresql+asyncpg", database)
    given = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-5)))
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            if database != "sqlite":
                await conn.execute(text("SET TIME ZONE 'Asia/Kolkata'"))  # not UTC: the driver's answer must still be
            got = (await conn.execute(select(literal(given, UTCDateTime())))).scalar_one()
    except OSError as exc:
        if database == "sqlite":
            raise
        pytest.skip(f"needs PostgreSQL at {ADMIN_URL}: {exc}")
    finally:
        await engine.dispose()
    assert got == given and got.tzinfo is UTC
