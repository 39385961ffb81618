"""CPU per SQLite statement through each way the hub can reach SQLite (``python -m bench.sqlite_calls``).

    python -m bench.sqlite_calls [--statements 2000] [--repeats 5]

The same one-row SELECT on a scratch database, through SQLAlchemy's async engine on aiosqlite
(a worker thread per connection, four thread round trips per statement), through the same engine
on ``hub.sqlite_driver`` (sqlite3 on the event loop's thread: what ``hub.db.make_engine`` uses), and
through a synchronous SQLAlchemy engine on sqlite3 (the floor). Process CPU per statement, median
of the repeats, and the ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine

from hub.db import make_engine

QUERY = text("SELECT id, name FROM item WHERE id = :id")


async def _async_cpu_us(engine, statements: int) -> float:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        await conn.execute(QUERY, {"id": 1})
        started = time.process_time()
        for n in range(statements):
            (await conn.execute(QUERY, {"id": n % 100 + 1})).all()
        return (time.process_time() - started) / statements * 1e6


def _sync_cpu_us(url: str, statements: int) -> float:
    engine = create_engine(url)
    with engine.connect() as conn:
        started = time.process_time()
        for n in range(statements):
            conn.execute(QUERY, {"id": n % 100 + 1}).all()
        cpu = (time.process_time() - started) / statements * 1e6
    engine.dispose()
    return cpu


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "calls.db"
        setup = create_engine(f"sqlite:///{path}")
        with setup.begin() as conn:
            conn.execute(text("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)"))
            conn.execute(text("INSERT INTO item (name) VALUES (:name)"), [{"name": f"item {n}"} for n in range(100)])
        setup.dispose()
        url = f"sqlite+aiosqlite:///{path}"
        ways: dict[str, list[float]] = {"aiosqlite": [], "hub.sqlite_driver": [], "sqlite3 (sync)": []}
        for _ in range(args.repeats):  # interleaved, so that all three see the same machine
            plain = create_async_engine(url)
            ways["aiosqlite"].append(await _async_cpu_us(plain, args.statements))
            await plain.dispose()
            direct = make_engine(url)
            ways["hub.sqlite_driver"].append(await _async_cpu_us(direct, args.statements))
            await direct.dispose()
            ways["sqlite3 (sync)"].append(_sync_cpu_us(f"sqlite:///{path}", args.statements))
    medians = {name: statistics.median(values) for name, values in ways.items()}
    for name, cpu in medians.items():
        print(f"{name:>18}: {cpu:7.1f} µs CPU per statement (median of {args.repeats} x {args.statements})")
    print(f"aiosqlite / hub.sqlite_driver = {medians['aiosqlite'] / medians['hub.sqlite_driver']:.1f}x; "
          f"hub.sqlite_driver / sqlite3 (sync) = {medians['hub.sqlite_driver'] / medians['sqlite3 (sync)']:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
