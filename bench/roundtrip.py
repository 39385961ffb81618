"""What a PostgreSQL round trip costs the hub (``python -m bench.roundtrip``).

    python -m bench.roundtrip [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/kinfolio_bench] [--n 2000]

Wall time of ``SELECT 1`` through the hub's engine (SQLAlchemy + asyncpg, pooled connection):
in a transaction (BEGIN, the select, COMMIT), with a second select in it, and alone on an
AUTOCOMMIT connection. The differences are the price of a statement and of BEGIN + COMMIT, i.e.
what a read saves per round trip it drops (BENCHMARKS.md, tenth session). Median of ``--n``,
each variant measured twice, interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from sqlalchemy import text

from hub.db import make_engine


async def main(url: str, n: int) -> None:
    engine = make_engine(url)
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    one = text("SELECT 1")

    async def transaction() -> None:
        async with engine.connect() as conn:
            await conn.execute(one)
            await conn.commit()

    async def transaction_two_selects() -> None:
        async with engine.connect() as conn:
            await conn.execute(one)
            await conn.execute(one)
            await conn.commit()

    async def alone() -> None:
        async with autocommit.connect() as conn:
            await conn.execute(one)

    variants = {"BEGIN, SELECT 1, COMMIT": transaction, "BEGIN, 2 x SELECT 1, COMMIT": transaction_two_selects,
                "SELECT 1, AUTOCOMMIT": alone}
    timings: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(2):
            for name, variant in variants.items():
                for _ in range(n):
                    start = time.perf_counter()
                    await variant()
                    timings[name].append(time.perf_counter() - start)
    finally:
        await engine.dispose()
    medians = {name: statistics.median(values) * 1e6 for name, values in timings.items()}
    for name, us in medians.items():
        print(f"{name:30} {us:7.0f} us")
    one_tx, two_tx, bare = medians.values()
    print(f"a statement: {two_tx - one_tx:.0f} us; BEGIN + COMMIT: {one_tx - bare:.0f} us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/kinfolio_bench")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.pg_url, args.n))
