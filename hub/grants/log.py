"""Appending to and reading the hash-chained disclosure log.

Appends happen once per request, just before its commit, so a learner's chain head is locked
only for the moment it takes to extend it; learners are locked in id order (no deadlocks between
requests that touch several learners), and unrelated learners never wait for each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from consent.audit import GENESIS, ChainProblem, chain_hash, verify_chain
from hub.grants.models import DisclosureEvent, LearnerLogHead


@dataclass
class PendingEvent:
    """A decision waiting to be chained; ``entry_count`` grows while the request runs."""

    at: datetime
    learner_id: UUID
    provider_id: UUID
    client_id: str
    token_id: str | None
    section: str
    action: str
    outcome: str
    reason: str | None
    grant_id: UUID | None
    purpose: str | None
    entry_count: int | None = None

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


async def append_events(*, session: AsyncSession, events: Sequence[PendingEvent]) -> None:
    """Chain events into their learners' logs with a fixed number of statements per call.

    The heads of all learners involved are locked in learner-id order (PostgreSQL row locks via
    ``FOR UPDATE``, so concurrent requests over overlapping learners cannot deadlock; SQLite's
    writers are already serialised by ``BEGIN IMMEDIATE``), then extended together.
    """
    by_learner: dict[UUID, list[PendingEvent]] = {}
    for event in events:
        by_learner.setdefault(event.learner_id, []).append(event)
    learner_ids = sorted(by_learner)
    dialect = session.get_bind().dialect.name
    insert_head = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(LearnerLogHead)
    await session.execute(
        insert_head.values([{"learner_id": i, "seq": 0, "hash": GENESIS} for i in learner_ids])
        .on_conflict_do_nothing(index_elements=["learner_id"])
    )
    heads_query = (
        select(LearnerLogHead.learner_id, LearnerLogHead.seq, LearnerLogHead.hash)
        .where(LearnerLogHead.learner_id.in_(learner_ids))
        .order_by(LearnerLogHead.learner_id)
    )
    if dialect == "postgresql":
        heads_query = heads_query.with_for_update()
    heads = {row.learner_id: (row.seq, row.hash) for row in await session.execute(heads_query)}
    rows, new_heads = [], []
    for learner_id in learner_ids:
        seq, prev = heads[learner_id]
        for event in by_learner[learner_id]:
            seq += 1
            row = {**event.fields(), "seq": seq, "prev_hash": prev}
            row["hash"] = prev = chain_hash(prev, row)
            rows.append(row)
        new_heads.append({"learner_id": learner_id, "seq": seq, "hash": prev})
    await session.execute(DisclosureEvent.__table__.insert(), rows)
    await session.execute(update(LearnerLogHead), new_heads)  # ORM bulk UPDATE by primary key


async def verify_log(*, session: AsyncSession, learner_ids: Iterable[UUID] | None = None) -> tuple[int, list[ChainProblem]]:
    """Verify chains; returns (events checked, problems). Streams one learner at a time."""
    if learner_ids is None:
        ids_with_events = select(DisclosureEvent.learner_id).distinct()
        ids_with_heads = select(LearnerLogHead.learner_id)
        learner_ids = sorted(set((await session.execute(ids_with_events)).scalars()) | set((await session.execute(ids_with_heads)).scalars()))
    checked, problems = 0, []
    columns = [getattr(DisclosureEvent, name) for name in ("seq", "prev_hash", "hash", *PendingEvent.__dataclass_fields__)]
    for learner_id in learner_ids:
        rows = [dict(row._mapping) for row in await session.execute(
            select(*columns).where(DisclosureEvent.learner_id == learner_id).order_by(DisclosureEvent.seq)
        )]
        head_row = (await session.execute(select(LearnerLogHead.seq, LearnerLogHead.hash).where(
            LearnerLogHead.learner_id == learner_id))).one_or_none()
        checked += len(rows)
        problems += verify_chain(str(learner_id), rows, tuple(head_row) if head_row else None)
    return checked, problems


async def list_disclosures(
    *, session: AsyncSession, learner_id: UUID, first: int, before_seq: int | None = None,
    provider_id: UUID | None = None, section: str | None = None,
) -> list[DisclosureEvent]:
    """One learner's log, newest first, for the family (keyset on ``seq``)."""
    query = select(DisclosureEvent).where(DisclosureEvent.learner_id == learner_id)
    if before_seq is not None:
        query = query.where(DisclosureEvent.seq < before_seq)
    if provider_id is not None:
        query = query.where(DisclosureEvent.provider_id == provider_id)
    if section is not None:
        query = query.where(DisclosureEvent.section == section)
    return list((await session.execute(query.order_by(DisclosureEvent.seq.desc()).limit(first))).scalars())
