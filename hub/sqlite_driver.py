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

This process's writers of a database file wait in one queue, in arrival order (``_Writers``): the
one at its head tries again as soon as a writer of this process commits or rolls back, and after a
backoff for writers of other processes. (Each waiter on its own backoff lost the lock again and
again to requests that had just arrived: under the profile-read load with 8 clients, one request
in ~400 waited ~2 s, and one in a few thousand passed the busy timeout and failed.)
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

BUSY_TIMEOUT_MS = 10_000
# First and longest wait between BEGIN IMMEDIATE attempts while another process writes.
_FIRST_RETRY_S, _LONGEST_RETRY_S = 0.0005, 0.02


class _Writers:
    """The connections of this process (and event loop) that wait to write one database file."""

    def __init__(self) -> None:
        self.queue = asyncio.Lock()  # FIFO: its holder is the next to try BEGIN
        self.finished = asyncio.Event()  # a writer of this process committed or rolled back


_WRITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Writers]] = weakref.WeakKeyDictionary()


def _writers(database: str) -> _Writers:
    by_file = _WRITERS.setdefault(asyncio.get_running_loop(), {})
    writers = by_file.get(database)
    if writers is None:
        writers = by_file[database] = _Writers()
    return writers


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

    def __init__(self, connection: sqlite3.Connection, busy_timeout_ms: int, database: str = "") -> None:
        self._conn = connection
        self._busy_timeout_ms = busy_timeout_ms
        self._tx = _RunAtOnce()
        self._database = database  # which writers' queue this connection waits in
        self._writers: _Writers | None = None  # set while it holds a transaction it began

    @property
    def _connection(self) -> sqlite3.Connection | None:  # the adapter checks it before commit/rollback
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> Cursor:
        return Cursor(self, self._conn.cursor())

    async def begin(self, cursor: sqlite3.Cursor, sql: str) -> None:
        """``BEGIN ...`` without the busy handler: while another connection holds the write lock,
        waited for in this process's queue of writers, until the busy timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._busy_timeout_ms / 1000
        writers = _writers(self._database)
        # The PRAGMAs on a cursor of their own: the caller's cursor must describe the BEGIN.
        self._conn.execute("PRAGMA busy_timeout=0")
        try:
            if not writers.queue.locked() and self._try_begin(cursor, sql, writers):
                return
            try:  # behind the writers of this process that came first
                await asyncio.wait_for(writers.queue.acquire(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                self._try_begin(cursor, sql, writers, last=True)
                return
            try:
                wait = _FIRST_RETRY_S
                while True:
                    writers.finished.clear()
                    if self._try_begin(cursor, sql, writers, last=loop.time() >= deadline):
                        return
                    try:  # a writer of this process finishing wakes us at once
                        await asyncio.wait_for(writers.finished.wait(), min(wait, max(0.0, deadline - loop.time())))
                    except TimeoutError:  # else only another process can hold the lock: back off
                        wait = min(wait * 2, _LONGEST_RETRY_S)
            finally:
                writers.queue.release()
        finally:
            self._conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")

    def _try_begin(self, cursor: sqlite3.Cursor, sql: str, writers: _Writers, *, last: bool = False) -> bool:
        """One attempt: True if the transaction began, False while the database is busy (raised
        instead on the ``last`` attempt, as SQLite's "database is locked")."""
        try:
            cursor.execute(sql)
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or last:
                raise
            return False
        self._writers = writers
        return True

    def _finished(self) -> None:
        if self._writers is not None:
            self._writers.finished.set()
            self._writers = None

    async def commit(self) -> None:
        try:
            self._conn.commit()
        finally:
            self._finished()

    async def rollback(self) -> None:
        try:
            self._conn.rollback()
        finally:
            self._finished()

    async def close(self) -> None:
        try:
            self._conn.close()
        finally:
            self._finished()

    def stop(self) -> None:  # SQLAlchemy's forced termination, maybe from another thread: no wake-up
        self._writers = None  # (a waiter's backoff notices the lock is free)
        self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)


def connector(database: str, *, uri: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Callable[[], Any]:
    """The ``async_creator`` of an engine on this SQLite database file."""

    async def connect() -> Connection:
        # check_same_thread off: the pool may close a connection from another thread (at exit).
        connection = sqlite3.connect(database, uri=uri, timeout=busy_timeout_ms / 1000, check_same_thread=False)
        return Connection(connection, busy_timeout_ms, database if uri else os.path.realpath(database))

    return connect
