"""hub.direct_rows: the hot read statements, sent straight through asyncpg, answer exactly what
SQLAlchemy answers (keys, values and value types), only ever inside the transaction SQLAlchemy
began, with bind processing applied, and in sight of the engine's statement listeners.

Always on PostgreSQL (a scratch database next to the machine's), whichever database the suite
runs on; on SQLite the function must simply be SQLAlchemy's path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Integer, Numeric, String, column, event, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub import migrate
from hub.db import make_engine, plain_rows
from hub.direct_rows import fetch_plain_rows
from hub.generate import Manifest, Plan, generate
from hub.grants.log import _extend_statement_postgres
from hub.grants.models import LearnerLogHead, LearnerPseudonym
from hub.grants.service import _RESOLVE, _RESOLVE_HOLDING
from hub.records.service import PageQuery, _page_params, _single_page_select, encode_cursor
from tests.conftest import PG_ADMIN_URL, PSEUDONYM_KEY, _create_pg_database, _drop_pg_database

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
async def pg() -> AsyncIterator[tuple[AsyncEngine, Manifest]]:
    try:
        url = await _create_pg_database(PG_ADMIN_URL)
    except OSError as exc:
        pytest.skip(f"needs PostgreSQL at {PG_ADMIN_URL}: {exc}")
    engine = make_engine(url)
    try:
        await migrate.upgrade(engine)
        plan = Plan(learners=3, activities_per_learner=60, seed=7, as_of=AS_OF, jobs=1)
        yield engine, await generate(engine, url, plan, PSEUDONYM_KEY)
    finally:
        await engine.dispose()
        await _drop_pg_database(url, PG_ADMIN_URL)


def _same(expected: list[Any], got: list[Any]) -> None:
    assert got == expected
    assert [type(row).__name__ for row in got] == [type(row).__name__ for row in expected]
    assert [row._fields for row in got] == [row._fields for row in expected]
    assert [tuple(map(type, row)) for row in got] == [tuple(map(type, row)) for row in expected]


async def _learner(conn: AsyncConnection, manifest: Manifest) -> tuple[UUID, UUID, str]:
    provider_id = UUID(manifest.providers[0].provider_id)
    pseudonym = manifest.sample_learners[0]
    learner_id = (await conn.execute(select(LearnerPseudonym.learner_id).where(
        LearnerPseudonym.provider_id == provider_id, LearnerPseudonym.pseudonym == pseudonym))).scalar_one()
    return learner_id, provider_id, pseudonym


def _page_cases(learner_id: UUID, provider_id: UUID, newest: datetime, newest_id: UUID) -> list[tuple[str, Any, dict]]:
    cases = []
    for section in ("activities", "badges", "skills"):
        for shape in ({}, {"own_only": True}, {"data_from": AS_OF - timedelta(days=400)},
                      {"after": encode_cursor(newest, newest_id)}):
            spec = PageQuery(section=section, reader_provider_id=provider_id, first=50, **shape)
            cases.append((f"{section} {shape}", _single_page_select(spec), {**_page_params(spec), "learner_id": learner_id}))
    return cases


async def test_every_hot_statement_answers_what_sqlalchemy_answers(pg) -> None:  # type: ignore[no-untyped-def]
    engine, manifest = pg
    async with engine.connect() as conn:
        learner_id, provider_id, pseudonym = await _learner(conn, manifest)
        newest = (await conn.execute(text(
            "SELECT timestamp, id FROM activity WHERE learner_id = :l ORDER BY timestamp DESC, id DESC OFFSET 10 LIMIT 1"),
            {"l": learner_id})).one()
        cases = [*_page_cases(learner_id, provider_id, newest.timestamp, newest.id),
                 ("resolve", _RESOLVE, {"provider_id": provider_id, "pseudonym": pseudonym}),
                 ("resolve, holding", _RESOLVE_HOLDING, {"provider_id": provider_id, "pseudonym": pseudonym}),
                 ("resolve, unknown", _RESOLVE, {"provider_id": provider_id, "pseudonym": "x" * len(pseudonym)})]
        sizes = {}
        for name, statement, params in cases:
            expected = plain_rows(await conn.execute(statement, params))
            sizes[name] = len(expected)
            # twice: the first call makes the statement's plan, the second uses it
            _same(expected, await fetch_plain_rows(conn, statement, params))
            _same(expected, await fetch_plain_rows(conn, statement, params))
        await conn.rollback()
    # The cases read something: full pages, a cursor's later page, grants with the learner.
    assert sizes["activities {}"] == 51 and 0 < sizes["activities {'after': " + repr(encode_cursor(
        newest.timestamp, newest.id)) + "}"] <= 51
    assert sizes["badges {}"] > 0 and sizes["skills {}"] > 0 and sizes["resolve"] > 1 and sizes["resolve, unknown"] == 0


async def test_the_log_extension_moves_the_head_once(pg) -> None:  # type: ignore[no-untyped-def]
    """The conditional append (a TextualSelect with array binds): moves an unmoved head, and
    answers 0 for a head seen at the wrong position, writing nothing."""
    engine, manifest = pg
    async with engine.connect() as conn:
        learner_id, provider_id, _ = await _learner(conn, manifest)
        await conn.execute(LearnerLogHead.__table__.insert().values(learner_id=learner_id, seq=0, hash="0" * 64))
        event_row = {"at": AS_OF, "learner_id": learner_id, "provider_id": provider_id,
                     "client_id": manifest.providers[0].client_id, "token_id": None,
                     "section": "badges", "action": "read", "outcome": "allowed", "reason": None, "grant_id": None,
                     "purpose": None, "entry_count": 1, "seq": 1, "prev_hash": "0" * 64, "hash": "1" * 64}
        names = tuple(event_row)
        statement = _extend_statement_postgres(names)
        params = {"learner_id": learner_id, "seq": 1, "hash": "1" * 64,
                  **{f"e{i}": [event_row[n]] for i, n in enumerate(names)}}
        [stale] = await fetch_plain_rows(conn, statement, {**params, "expected_seq": 5})
        [moved] = await fetch_plain_rows(conn, statement, {**params, "expected_seq": 0})
        assert (stale.moved, moved.moved) == (0, 1)
        head = (await conn.execute(select(LearnerLogHead.seq, LearnerLogHead.hash).where(
            LearnerLogHead.learner_id == learner_id))).one()
        assert tuple(head) == (1, "1" * 64)
        assert (await conn.execute(text("SELECT count(*) FROM disclosure_event WHERE learner_id = :l"),
                                   {"l": learner_id})).scalar_one() == 1
        await conn.rollback()


async def test_nothing_runs_outside_sqlalchemys_transaction(pg) -> None:  # type: ignore[no-untyped-def]
    """As a connection's first statement the call goes through SQLAlchemy, which begins the
    transaction: the statement and everything after it roll back together. Directly through
    asyncpg it would have run in autocommit."""
    engine, manifest = pg
    async with engine.connect() as conn:
        learner_id, provider_id, pseudonym = await _learner(conn, manifest)
        await conn.rollback()
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert not driver.is_in_transaction()
        direct: list[bool] = []
        listener = lambda _c, _cursor, _s, _p, context, _m: direct.append(context is None)  # noqa: E731
        event.listen(engine.sync_engine, "before_cursor_execute", listener)
        try:
            await fetch_plain_rows(conn, _RESOLVE, {"provider_id": provider_id, "pseudonym": pseudonym})
            assert driver.is_in_transaction()
            await fetch_plain_rows(conn, _RESOLVE, {"provider_id": provider_id, "pseudonym": pseudonym})
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", listener)
        # SQLAlchemy's execution (a context) first, then the direct path (none): both were seen.
        assert direct == [False, True]
        await conn.rollback()
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with autocommit.connect() as conn:
        rows = await fetch_plain_rows(conn, _RESOLVE, {"provider_id": provider_id, "pseudonym": pseudonym})
        assert rows and rows[0].resolved_id == learner_id
        assert not (await conn.get_raw_connection()).driver_connection.is_in_transaction()


async def test_binds_are_processed_and_missing_ones_refused(pg) -> None:  # type: ignore[no-untyped-def]
    engine, manifest = pg
    spec = PageQuery(section="activities", reader_provider_id=UUID(int=0), first=5, data_from=AS_OF)
    statement = _single_page_select(spec)
    async with engine.connect() as conn:
        learner_id, _, _ = await _learner(conn, manifest)
        params = {**_page_params(spec), "learner_id": learner_id}
        await conn.execute(text("SELECT 1"))  # the transaction begins: the direct path from here
        # UTCDateTime's bind processing runs: the same instant in another zone is the same filter.
        elsewhere = {**params, "data_from": AS_OF.astimezone(timezone(timedelta(hours=-7)))}
        assert await fetch_plain_rows(conn, statement, elsewhere) == await fetch_plain_rows(conn, statement, params)
        with pytest.raises(ValueError, match="naive datetime"):
            await fetch_plain_rows(conn, statement, {**params, "data_from": AS_OF.replace(tzinfo=None)})
        await conn.rollback()
        await conn.execute(text("SELECT 1"))
        without_learner = {k: v for k, v in params.items() if k != "learner_id"}
        with pytest.raises(KeyError, match="learner_id"):
            await fetch_plain_rows(conn, statement, without_learner)
        await conn.rollback()


async def test_other_databases_take_sqlalchemys_path(engine: AsyncEngine) -> None:
    """The suite's own database: on SQLite the answer is plain_rows of SQLAlchemy's execution."""
    statement = text("SELECT 3 AS seq, 'h' AS label").columns(column("seq", Integer), column("label", String))
    async with engine.connect() as conn:
        for _ in range(2):  # on PostgreSQL the second call is the direct path's
            rows = await fetch_plain_rows(conn, statement)
            assert rows == [(3, "h")] and rows[0]._fields == ("seq", "label")
        await conn.rollback()


async def test_statements_it_cannot_send_as_they_are_keep_sqlalchemys_path(pg) -> None:  # type: ignore[no-untyped-def]
    """A column whose values SQLAlchemy converts (NUMERIC to float here) and an IN list (expanded
    per execution) are answered by SQLAlchemy's execution, with its values."""
    engine, _ = pg
    converted = text("SELECT 1.5::numeric AS n").columns(column("n", Numeric(asdecimal=False)))
    expanded = select(column("x")).select_from(text("(VALUES (1), (2), (3)) AS v (x)")).where(column("x").in_([1, 3]))
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        for _ in range(2):
            [row] = await fetch_plain_rows(conn, converted)
            assert row.n == 1.5 and type(row.n) is float
            assert sorted(r.x for r in await fetch_plain_rows(conn, expanded)) == [1, 3]
        await conn.rollback()
