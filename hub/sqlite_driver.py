"""SQLite without a thread hop per call: the sqlite3 module run on the event loop's own thread.

SQLAlchemy's ``sqlite+aiosqlite`` dialect reaches SQLite through aiosqlite, which runs every call in
a worker thread and hands the result back through the event loop: cursor, execute, fetch and close
are four round trips between threads per statement. ``python -m bench.sqlite_calls``: **348 µs of
CPU per one-row SELECT through aiosqlite, 45 µs through this module, 21 µs through synchronous
sqlite3**; a profile read runs ~10 statements (BENCHMARKS.md, seventh session).

``connect`` gives the aiosqlite dialect (``async_creator``) an object with aiosqlite's interface
whose coroutines call sqlite3 at once. A local SQLite statement is short (sub-millisecond for the
API's queries, a few ms for a 1,000-row insert), shorter than the hop it replaces; the event loop
waits for it as it waited for the hop. The one call that can wait long is ``BEGIN IMMEDIATE``, for
another writer's commit (every hub transaction starts with it, ``hub.db._sqlite_begin``): it is
tried without SQLite's busy handler (which would block the event loop, and with it the writer
being waited for if that writer is in this process) and retried with ``asyncio.sleep`` until the
connection's busy timeout has passed; then it fails with SQLite's own "database is locked".
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

BUSY_TIMEOUT_MS = 10_000
# First and longest wait between BEGIN IMMEDIATE attempts while another connection writes.
_FIRST_RETRY_S, _LONGEST_RETRY_S = 0.0005, 0.02


class _RunAtOnce:
    """Stands in for aiosqlite's request queue (SQLAlchemy's adapter puts its isolation-level
    setter there): runs the call at once and settles its future."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting caller
            if future is not None:
                future.set_exception(error)
            return
        if future is not None:
            future.set_result(result)


class Cursor:
    """aiosqlite's cursor interface over a sqlite3 cursor."""

    def __init__(self, connection: Connection, cursor: sqlite3.Cursor) -> None:
        self._connection = connection
        self._cursor = cursor

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        if sql.lstrip()[:5].upper() == "BEGIN":
            await self._connection.begin(self._cursor, sql)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> Cursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None

    async def nextset(self) -> None:
        return None


class Connection:
    """aiosqlite's connection interface (as far as SQLAlchemy's adapter uses it) over sqlite3."""

    def __init__(self, connection: sqlite3.Connection, busy_timeout_ms: int) -> None:
        self._conn = connection
        self._busy_timeout_ms = busy_timeout_ms
        self._tx = _RunAtOnce()

    @property
    def _connection(self) -> sqlite3.Connection | None:  # the adapter checks it before commit/rollback
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> Cursor:
        return Cursor(self, self._conn.cursor())

    async def begin(self, cursor: sqlite3.Cursor, sql: str) -> None:
        """``BEGIN ...`` without the busy handler: retried on the event loop while another
        connection holds the write lock, until the busy timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._busy_timeout_ms / 1000
        wait = _FIRST_RETRY_S
        # The PRAGMAs on a cursor of their own: the caller's cursor must describe the BEGIN.
        self._conn.execute("PRAGMA busy_timeout=0")
        try:
            while True:
                try:
                    cursor.execute(sql)
                    return
                except sqlite3.OperationalError as error:
                    if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or loop.time() >= deadline:
                        raise
                await asyncio.sleep(wait)
                wait = min(wait * 2, _LONGEST_RETRY_S)
        finally:
            self._conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()

    def stop(self) -> None:  # SQLAlchemy's forced termination
        self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)


def connector(database: str, *, uri: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Callable[[], Any]:
    """The ``async_creator`` of an engine on this SQLite database file."""

    async def connect() -> Connection:
        # check_same_thread off: the pool may close a connection from another thread (at exit).
        connection = sqlite3.connect(database, uri=uri, timeout=busy_timeout_ms / 1000, check_same_thread=False)
        return Connection(connection, busy_timeout_ms)

    return connect
