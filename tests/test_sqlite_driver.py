"""hub.sqlite_driver: sqlite3 on the event loop's thread, waiting for the write lock without blocking it."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from sqlalchemy import text

from hub import sqlite_driver
from hub.db import make_engine


def _url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}"


async def _holding_the_write_lock(engine, create: str, insert: str):  # type: ignore[no-untyped-def]
    """Table ``create``d, then a connection whose open transaction has run ``insert``: it holds
    SQLite's write lock (every transaction begins with BEGIN IMMEDIATE) until it commits."""
    async with engine.begin() as conn:
        await conn.execute(text(create))
    holder = await engine.connect()
    await holder.begin()
    await holder.execute(text(insert))
    return holder


async def test_engines_on_a_file_use_the_direct_driver(tmp_path) -> None:
    engine = make_engine(_url(tmp_path))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"))
            await conn.execute(text("INSERT INTO t (name) VALUES (:n)"), [{"n": "a"}, {"n": "b"}])
            raw = await conn.get_raw_connection()
            assert isinstance(raw.driver_connection, sqlite_driver.Connection)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT name FROM t ORDER BY id"))).scalars().all() == ["a", "b"]
    finally:
        await engine.dispose()


async def test_a_writer_waits_for_another_without_blocking_the_event_loop(tmp_path) -> None:
    engine = make_engine(_url(tmp_path))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    try:
        first = await _holding_the_write_lock(engine, "CREATE TABLE t (id INTEGER PRIMARY KEY)", "INSERT INTO t (id) VALUES (1)")
        ticking = asyncio.create_task(ticker())

        async def second_writer() -> list[int]:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (id) VALUES (2)"))
                return (await conn.execute(text("SELECT id FROM t ORDER BY id"))).scalars().all()

        second = asyncio.create_task(second_writer())
        await asyncio.sleep(0.3)
        assert not second.done()  # waiting for the lock...
        assert ticks >= 20  # ...while the event loop went on (SQLite's busy handler would have blocked it)
        await first.commit()
        await first.close()
        assert await asyncio.wait_for(second, 5) == [1, 2]  # then it wrote, after the first one's commit
        ticking.cancel()
    finally:
        await engine.dispose()


async def test_a_writer_gives_up_with_database_is_locked_after_the_busy_timeout(tmp_path, monkeypatch) -> None:
    path = tmp_path / "driver.db"
    engine = make_engine(_url(tmp_path))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        connection = await sqlite_driver.connector(str(path), busy_timeout_ms=200)()
        cursor = connection.cursor()
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await cursor.execute("BEGIN IMMEDIATE")
        assert 0.2 <= time.monotonic() - started < 2
        # The busy timeout is back for every other statement.
        assert connection._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 200
        holder.rollback()
        await cursor.execute("BEGIN IMMEDIATE")  # free again
        await connection.rollback()
        await connection.close()
        holder.close()
    finally:
        await engine.dispose()


async def test_writers_of_this_process_take_the_write_lock_in_arrival_order(tmp_path) -> None:
    """A writer that has waited long is not overtaken by writers that arrive after it. (Each on its
    own backoff, the first waiter slept 20 ms between attempts while newcomers tried every
    millisecond: under 8 clients a request could wait past the busy timeout and fail.)"""
    engine = make_engine(_url(tmp_path))
    order: list[str] = []
    try:
        holder = await _holding_the_write_lock(engine, "CREATE TABLE t (name TEXT)", "INSERT INTO t VALUES ('holder')")

        async def writer(name: str) -> None:
            async with engine.begin() as conn:
                order.append(name)
                await conn.execute(text("INSERT INTO t VALUES (:name)"), {"name": name})

        first = asyncio.create_task(writer("first"))
        await asyncio.sleep(0.3)  # long enough for the first waiter's backoff to reach its longest
        later = [asyncio.create_task(writer(f"later {i}")) for i in range(3)]
        await asyncio.sleep(0.05)
        assert order == []
        await holder.commit()
        await holder.close()
        await asyncio.wait_for(asyncio.gather(first, *later), 5)
        assert order[0] == "first", order
        assert sorted(order[1:]) == ["later 0", "later 1", "later 2"]
    finally:
        await engine.dispose()


async def test_a_queued_writer_gives_up_after_the_busy_timeout_and_the_queue_moves_on(tmp_path) -> None:
    path = tmp_path / "driver.db"
    sqlite3.connect(path).execute("PRAGMA journal_mode=WAL").close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's writer, as far as the queue knows
    connections = [await sqlite_driver.connector(str(path), busy_timeout_ms=300)() for _ in range(3)]
    try:
        started = time.monotonic()
        outcomes = await asyncio.gather(*(c.cursor().execute("BEGIN IMMEDIATE") for c in connections),
                                        return_exceptions=True)
        assert all(isinstance(o, sqlite3.OperationalError) and "locked" in str(o) for o in outcomes), outcomes
        assert time.monotonic() - started < 3  # each waited its own timeout, not one after another's
        holder.rollback()
        await connections[0].cursor().execute("BEGIN IMMEDIATE")  # the queue is free again
        await connections[0].rollback()
    finally:
        for connection in connections:
            await connection.close()
        holder.close()
