"""Database: declarative base, portable column types, engine and session factory.

Alembic migrations are the only source of the schema (``migrations/``); nothing here creates
tables.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import lru_cache
from itertools import repeat
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Integer, MetaData, String, Uuid, event, exc, make_url
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from hub import sqlite_driver
from hub.sqlite_wal import disable_automatic_checkpoints

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as naive
    UTC text (which sorts correctly) and come back aware. Naive input is a programming error:
    the API layer refuses timestamps without an offset before they get here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        # asyncpg always decodes timestamptz as an aware UTC datetime (the wire format is UTC
        # microseconds), so there is nothing to do: no call per value (~375 in a profile read).
        # Other drivers (psycopg answers in the session's TimeZone) keep process_result_value.
        if dialect.driver == "asyncpg":
            return self.impl_instance.result_processor(dialect, coltype)
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is UTC:
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, open transactions (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={sqlite_driver.BUSY_TIMEOUT_MS}")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # Every API request writes (at least its disclosure-log events). A deferred SQLite
    # transaction that read first cannot upgrade to a writer once another writer committed
    # (SQLITE_BUSY_SNAPSHOT, "database is locked", no matter the busy timeout), so writers take
    # the write lock up front and queue on busy_timeout instead of failing.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, pool_size: int = 10, plan_cache_mode: str = "auto",
                sqlite_checkpoints_in_background: bool = False) -> AsyncEngine:
    """``sqlite_checkpoints_in_background``: this engine's connections never checkpoint the WAL;
    the caller must run ``hub.sqlite_wal.checkpoint_in_background`` (the server process does)."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        # A file: sqlite3 on the event loop's thread, not aiosqlite's hop per call (hub.sqlite_driver).
        direct = {} if database in (None, "", ":memory:") else {"async_creator": sqlite_driver.connector(database)}
        engine = create_async_engine(url, **direct)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        if sqlite_checkpoints_in_background:
            event.listen(engine.sync_engine, "connect", disable_automatic_checkpoints)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql+asyncpg"):
        # asyncpg prepares every statement; after five runs PostgreSQL may switch a prepared
        # statement to a generic plan, chosen without the parameter values. The hot statements
        # are written so that their generic plan is the right one for every learner (unique or
        # keyset index, `= ANY(array)` instead of IN lists: checked with force_generic_plan on
        # the 2-million-activity learner, BENCHMARKS.md), and planning every execution again
        # cost reads 12 % and ingest 27 % of their latency. `force_custom_plan`
        # (KINFOLIO_DATABASE_PLAN_CACHE_MODE) brings the old behaviour back should a skewed
        # generic plan ever bite.
        connect_args["server_settings"] = {"plan_cache_mode": plan_cache_mode}
    asyncpg = url.startswith("postgresql+asyncpg")
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, connect_args=connect_args,
                                 pool_pre_ping=not asyncpg)  # other drivers: SQLAlchemy's ping on checkout
    if asyncpg:
        event.listen(engine.sync_engine.pool, "checkout", _refuse_closed_asyncpg_connection)
    return engine


def _refuse_closed_asyncpg_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled connection the server closed (restart, idle timeout, pg_terminate_backend) is
    replaced at checkout, as ``pool_pre_ping`` would, without its round trips.

    asyncpg marks a connection closed as soon as the event loop sees the server end it, so this
    costs nothing; SQLAlchemy's pre-ping sent BEGIN, an empty query and ROLLBACK on every checkout
    (three round trips on every request). A connection that dies silently (no FIN, e.g. a network
    partition) is still found by the first statement's error, which invalidates the pool
    (SQLAlchemy's "disconnect" handling), as it would be between a ping and that statement.
    """
    if record.driver_connection is None or record.driver_connection.is_closed():
        raise exc.DisconnectionError("the database server closed this pooled connection")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits on success, rolls back on any exception."""
    async with sessions() as session, session.begin():
        yield session


_SESSION_CONNECTION = "kinfolio.connection"


async def session_connection(session: AsyncSession) -> AsyncConnection:
    """``await session.connection()``, asked of SQLAlchemy once per transaction of the session.

    Each ``AsyncSession.connection()`` call runs the sync session's lookup in a new greenlet
    (~12 µs); a provider read asks for its connection six times. The connection is kept in the
    session's ``info`` and handed out again while it is open: SQLAlchemy closes it when the
    session's transaction ends (commit, rollback, close), and then is asked again, which begins
    the session's next transaction as it always did. An invalidated one is not handed out either."""
    connection = session.info.get(_SESSION_CONNECTION)
    if connection is None or connection.closed or connection.invalidated:
        connection = session.info[_SESSION_CONNECTION] = await session.connection()
    return connection  # type: ignore[no-any-return]


# PostgreSQL array type per column type, for set-wise writes through unnest(): one statement of
# fixed shape (one parameter per column, prepared once) however many rows it carries.
_PG_ARRAY_TYPES = (
    (Uuid, "uuid[]"), (Boolean, "boolean[]"), (Float, "float8[]"), (BigInteger, "int8[]"), (Integer, "int4[]"),
    (String, "text[]"), (UTCDateTime, "timestamptz[]"),
)


def unnest_select(table: Any, names: list[str], prefix: str) -> str:
    """``SELECT * FROM unnest(CAST(:{prefix}0 AS type[]), …)`` for these columns of ``table``; bind
    each ``{prefix}{i}`` to the list of that column's values."""
    def array_type(column_type: Any) -> str:
        for sql_type, array in _PG_ARRAY_TYPES:
            if isinstance(column_type, sql_type):
                return array
        raise TypeError(f"no unnest array type for {column_type!r}")

    arrays = ", ".join(f"CAST(:{prefix}{i} AS {array_type(table.c[name].type)})" for i, name in enumerate(names))
    return f"SELECT * FROM unnest({arrays})"


def unnest_params(rows: list[dict[str, Any]], names: list[str], prefix: str) -> dict[str, list[Any]]:
    return {f"{prefix}{i}": [row[name] for row in rows] for i, name in enumerate(names)}


# Row classes by column names, made once per statement shape (plain_rows).
_ROW_CLASSES: dict[tuple[str, ...], Any] = {}


def plain_rows(result: Any) -> list[Any]:
    """A result's rows as named tuples: the same attributes, read ~15x faster than a SQLAlchemy
    ``Row``'s (``Row.__getattr__`` goes through the result's key map on every access). A page's
    rows are read by attribute ~20 times each (``from_row``, cursors): 50 activities'
    ``Activity.from_row`` took 382 µs from ``Row``s and 102 µs from named tuples (BENCHMARKS.md,
    seventh session)."""
    keys = tuple(result.keys())
    row_class = _ROW_CLASSES.get(keys)
    if row_class is None:
        try:
            row_class = _ROW_CLASSES[keys] = namedtuple("PlainRow", keys)  # noqa: PYI024
        except ValueError:  # a name a named tuple cannot take (e.g. "_x"): keep the Rows
            return list(result)
    make = row_class._make
    return [make(row) for row in result]


@lru_cache(maxsize=32)
def _sqlite_insert_plan(table: Any, names: tuple[str, ...], dialect: Dialect) -> tuple[str, tuple[Any, ...]]:
    quote = dialect.identifier_preparer.quote
    sql = f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) VALUES ({', '.join('?' * len(names))})"
    # dialect_impl: the dialect's own variant of each type (SQLite's DATETIME string format), as a
    # compiled statement uses; the generic type's processor would leave datetimes to the driver.
    return sql, tuple(_sqlite_utc_text if isinstance(table.c[name].type, UTCDateTime)
                      else table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)


def _sqlite_utc_text(value: datetime | None) -> str | None:
    """What UTCDateTime's bind processing stores on SQLite (UTC, naive, then the SQLite dialect's
    DATETIME text "YYYY-MM-DD HH:MM:SS.ffffff"), in one call instead of two with a %-format: a
    batch binds 1,000 timestamps (2.8 -> 1.8 ms). Pinned to Core's own output by
    tests/test_database_engine.py."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTCDateTime column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


async def sqlite_insert_rows(connection: AsyncConnection, table: Any, rows: list[dict[str, Any]],
                             constants: tuple[str, ...] = ()) -> None:
    """SQLite: insert ``rows`` (same keys in each) with the driver's executemany.

    The values are bound exactly as a Core ``insert(table)`` binds them (each column type's own
    SQLAlchemy bind processor), column by column, and once only for the ``constants``: columns
    holding the very same value on every row (a batch's learner, provider and timestamps). Core's
    per-row parameter processing of the same executemany cost more than SQLite's insert itself
    (BENCHMARKS.md, ingest).
    """
    first = rows[0]
    names = tuple(first)
    if any(row.keys() != first.keys() for row in rows):
        raise ValueError("sqlite_insert_rows: every row needs the same columns")
    sql, processors = _sqlite_insert_plan(table, names, connection.dialect)
    columns: list[Any] = []
    for name, process in zip(names, processors, strict=True):
        if name in constants and all(row[name] is first[name] for row in rows):
            columns.append(repeat(process(first[name]) if process else first[name], len(rows)))
        elif process is None:
            columns.append([row[name] for row in rows])
        else:
            columns.append([process(row[name]) for row in rows])
    await connection.exec_driver_sql(sql, list(zip(*columns)))
