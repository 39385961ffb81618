"""hub.direct_rows: the hot read statements, sent straight through asyncpg, answer exactly what
SQLAlchemy answers (keys, values and value types), only ever inside the transaction SQLAlchemy
began, with bind processing applied, and in sight of the engine's statement listeners.

Always on PostgreSQL (a scratch database next to the machine's), whichever database the suite
runs on; on SQLite the function must simply be SQLAlchemy's path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import Integer, Numeric, String, column, event, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub import migrate
from hub.app import create_app
from hub.db import make_engine, plain_rows
from hub.direct_rows import fetch_plain_rows
from hub.generate import Manifest, Plan, generate
from hub.grants.log import _extend_statement_postgres
from hub.grants.models import LearnerLogHead, LearnerPseudonym
from hub.grants.service import _RESOLVE, _RESOLVE_HOLDING
from hub.records.service import PageQuery, _page_params, _single_page_select, encode_cursor
from tests.conftest import ISSUER, PG_ADMIN_URL, PSEUDONYM_KEY, _create_pg_database, _drop_pg_database
from tests.factories import ProviderClient, activity, get_token, gql

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
async def pg_url() -> AsyncIterator[str]:
    try:
        url = await _create_pg_database(PG_ADMIN_URL)
    except OSError as exc:
        pytest.skip(f"needs PostgreSQL at {PG_ADMIN_URL}: {exc}")
    yield url
    await _drop_pg_database(url, PG_ADMIN_URL)


@pytest.fixture(scope="module")
async def pg(pg_url: str) -> AsyncIterator[tuple[AsyncEngine, Manifest]]:
    engine = make_engine(pg_url)
    try:
        await migrate.upgrade(engine)
        plan = Plan(learners=3, activities_per_learner=60, seed=7, as_of=AS_OF, jobs=1)
        yield engine, await generate(engine, pg_url, plan, PSEUDONYM_KEY)
    finally:
        await engine.dispose()


def _same(expected: list[Any], got: list[Any]) -> None:
    assert got == expected
    assert [type(row).__name__ for row in got] == [type(row).__name__ for row in expected]
    assert [row._fields for row in got] == [row._fields for row in expected]
    assert [tuple(map(type, row)) for row in got] == [tuple(map(type, row)) for row in expected]


async def _learner(conn: AsyncConnection, manifest: Manifest, index: int = 0) -> tuple[UUID, UUID, str]:
    """Learner ``index`` of the generated ones: the tests that write to a learner's log each have
    their own (0: the "alone" test, 1: the API test, 2: the append test, which rolls back)."""
    provider_id = UUID(manifest.providers[0].provider_id)
    pseudonym = manifest.sample_learners[index]
    learner_id = (await conn.execute(select(LearnerPseudonym.learner_id).where(
        LearnerPseudonym.provider_id == provider_id, LearnerPseudonym.pseudonym == pseudonym))).scalar_one()
    return learner_id, provider_id, pseudonym


# The log's conditional append of one event (hub.grants.log), for a head seen at ``expected_seq``.
_EVENT_NAMES = ("at", "learner_id", "provider_id", "client_id", "token_id", "section", "action", "outcome", "reason",
                "grant_id", "purpose", "entry_count", "seq", "prev_hash", "hash")
APPEND = _extend_statement_postgres(_EVENT_NAMES)


def _append(manifest: Manifest, learner_id: UUID, provider_id: UUID, seq: int, *, expected_seq: int) -> dict[str, Any]:
    event = {"at": AS_OF, "learner_id": learner_id, "provider_id": provider_id, "client_id": manifest.providers[0].client_id,
             "token_id": None, "section": "badges", "action": "read", "outcome": "allowed", "reason": None,
             "grant_id": None, "purpose": None, "entry_count": 1, "seq": seq, "prev_hash": "0" * 64, "hash": f"{seq}" * 64}
    return {"learner_id": learner_id, "seq": seq, "hash": event["hash"], "expected_seq": expected_seq,
            **{f"e{i}": [event[name]] for i, name in enumerate(_EVENT_NAMES)}}


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
        learner_id, provider_id, _ = await _learner(conn, manifest, 2)
        await conn.execute(LearnerLogHead.__table__.insert().values(learner_id=learner_id, seq=0, hash="0" * 64))
        append = partial(_append, manifest, learner_id, provider_id, 1)
        [stale] = await fetch_plain_rows(conn, APPEND, append(expected_seq=5))
        [moved] = await fetch_plain_rows(conn, APPEND, append(expected_seq=0))
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


async def test_a_statement_alone_runs_on_its_own_only_while_no_transaction_is_open(pg) -> None:  # type: ignore[no-untyped-def]
    """``alone``: the log's conditional append (a write complete in itself) commits on its own when
    no transaction is open (another connection sees it at once, and no transaction is left open),
    and inside the open transaction otherwise (a rollback takes it back)."""
    engine, manifest = pg
    async with engine.connect() as conn:
        learner_id, provider_id, _ = await _learner(conn, manifest, 0)
        await conn.execute(LearnerLogHead.__table__.insert().values(learner_id=learner_id, seq=0, hash="0" * 64))
        await conn.commit()

    def append(seq: int) -> dict[str, Any]:
        return _append(manifest, learner_id, provider_id, seq, expected_seq=seq - 1)

    async def seen_elsewhere() -> int:
        async with engine.connect() as other:
            return (await other.execute(select(LearnerLogHead.seq).where(LearnerLogHead.learner_id == learner_id))).scalar_one()

    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        [moved] = await fetch_plain_rows(conn, APPEND, append(1), alone=True)
        assert moved.moved == 1 and not driver.is_in_transaction()
        assert await seen_elsewhere() == 1  # committed, with this connection's "transaction" never ended
        await conn.rollback()
        assert await seen_elsewhere() == 1
        await conn.execute(text("SELECT 1"))  # a transaction is open now
        [moved] = await fetch_plain_rows(conn, APPEND, append(2), alone=True)
        assert moved.moved == 1 and driver.is_in_transaction()
        await conn.rollback()
    assert await seen_elsewhere() == 1


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


async def test_a_provider_read_sends_no_begin_or_commit_and_a_write_one_transaction(pg, pg_url: str, settings) -> None:  # type: ignore[no-untyped-def]
    """What the hub sends to PostgreSQL through asyncpg's own calls (its query log: the direct
    statements, BEGIN and COMMIT; SQLAlchemy's prepared statements are not in it): a profile read
    sends its statements each on their own and logs its disclosures; a write, after the token
    check, runs in one transaction with its log append inside."""
    engine, manifest = pg
    sent: list[str] = []

    def log_queries(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(lambda record: sent.append(record.query))

    async def disclosures() -> int:
        async with engine.connect() as conn:
            return (await conn.execute(text("SELECT count(*) FROM disclosure_event"))).scalar_one()

    await engine.dispose()  # every connection from here on is logged
    event.listen(engine.sync_engine, "connect", log_queries)
    try:
        app = create_app(settings.model_copy(update={"database_url": pg_url}), engine=engine)
        bench = manifest.providers[0]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
            token = await get_token(http, ProviderClient(UUID(bench.provider_id), bench.client_id, bench.client_secret))
            learner = manifest.sample_learners[1]
            # The learner's first disclosure creates their log head (the locking path, in a transaction).
            assert "errors" not in (await gql(http, token, PROFILE, {"id": learner})).json()
            before = await disclosures()
            sent.clear()
            body = (await gql(http, token, PROFILE, {"id": learner})).json()
            assert "errors" not in body and len(body["data"]["learner"]["activities"]["nodes"]) == 50, body
            read, logged_by_read = list(sent), await disclosures() - before
            sent.clear()
            body = (await gql(http, token, RECORD, {"id": learner, "items": [activity(1), activity(2)]})).json()
            assert body == {"data": {"recordActivities": {"created": 2}}}, body
            write = list(sent)
    finally:
        event.remove(engine.sync_engine, "connect", log_queries)
        await engine.dispose()
    # token row, pairwise id with grants and log head, three pages, the log's append
    assert _commands(read) == ["SELECT"] * 5 + ["WITH"], read
    assert logged_by_read == 3  # badges, skills, activities
    # token row on its own, then BEGIN ... the log's append ... COMMIT
    assert _commands(write) == ["SELECT", "BEGIN", "WITH", "COMMIT"], write


def _commands(queries: list[str]) -> list[str]:
    """Each query's first word, without asyncpg's introspection of types it has not seen yet on a
    connection (the log append's arrays; it sets and resets ``jit`` around it)."""
    return [q.split(None, 1)[0].upper().rstrip(";") for q in queries if "typeinfo_tree" not in q and "'jit'" not in q]


PROFILE = """query($id: ID!) { learner(id: $id) {
  badges { nodes { id } } skills { nodes { id } } activities(first: 50) { nodes { id } } } }"""
RECORD = """mutation($id: ID!, $items: [ActivityInput!]!) {
  recordActivities(learnerId: $id, activities: $items) { created } }"""


async def test_a_page_statement_keeps_postgresqls_generic_plan(pg) -> None:  # type: ignore[no-untyped-def]
    # With the LIMIT a bound parameter, PostgreSQL's generic plan takes it for a tenth of the
    # learner's rows: on 12M activities 64 of 645, dearer than the profile read's 51, so every
    # execution of the prepared page statement was planned again (0.13 ms, BENCHMARKS.md,
    # fourteenth session; this scratch database is too small for the two costs to differ). With
    # the limit in the statement's text the costs are the same, and the generic plan is kept
    # after five custom ones.
    engine, manifest = pg
    async with engine.connect() as conn:
        learner_id, provider_id, _ = await _learner(conn, manifest)
        spec = PageQuery(section="activities", reader_provider_id=provider_id, first=2)
        statement, params = _single_page_select(spec), {**_page_params(spec), "learner_id": learner_id}
        for _ in range(8):
            assert len(await fetch_plain_rows(conn, statement, params)) == 3
        [prepared] = (await conn.execute(text(
            "SELECT statement, parameter_types::text AS types, generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE '%FROM activity%ORDER BY activity.timestamp DESC%' "
            "ORDER BY generic_plans + custom_plans DESC LIMIT 1"
        ))).all()
        await conn.rollback()
    assert prepared.statement.rstrip().endswith("LIMIT 3") and prepared.types == "{uuid}", prepared
    assert prepared.custom_plans <= 5 and prepared.generic_plans >= 3, prepared
