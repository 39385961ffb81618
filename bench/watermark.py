"""Leave the benchmark database as the generator made it: the activities (and their change-feed
rows) that a run's ingest benchmarks wrote are deleted when the run ends.

Without this every ``make bench`` added ~120,000 activities per database (three repeats of three
ingest runs of 20,000, plus scale-out), so successive runs measured ever larger tables: after a day
of runs the SQLite file had grown to 2.2 GB and its raw-insert baseline had fallen ×3
(BENCHMARKS.md, fifth session). The disclosure log is left alone: it is append-only and
hash-chained (one event per batch, a few hundred rows per run).

The run has the benchmark database to itself, so every id above the high-water marks taken at its
start is the run's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.records.models import Activity, RecordChange


@dataclass(frozen=True)
class Watermark:
    activity_id: int
    change_id: int


async def watermark(engine: AsyncEngine) -> Watermark:
    async with engine.connect() as conn:
        activity_id = (await conn.execute(select(func.coalesce(func.max(Activity.id), 0)))).scalar_one()
        change_id = (await conn.execute(select(func.coalesce(func.max(RecordChange.id), 0)))).scalar_one()
    return Watermark(activity_id=activity_id, change_id=change_id)


async def remove_rows_after(engine: AsyncEngine, mark: Watermark) -> int:
    """Delete the activities and change rows written since ``mark``; returns the activities deleted."""
    async with engine.begin() as conn:
        removed = (await conn.execute(delete(Activity).where(Activity.id > mark.activity_id))).rowcount
        await conn.execute(delete(RecordChange).where(RecordChange.id > mark.change_id))
    return removed
