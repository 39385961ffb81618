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
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        first = await engine.connect()
        await first.begin()  # BEGIN IMMEDIATE: holds the write lock
        await first.execute(text("INSERT INTO t (id) VALUES (1)"))
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
