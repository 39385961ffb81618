"""Appending to and reading the hash-chained disclosure log.

Appends happen once per request, just before its commit, so a learner's chain head is locked
only for the moment it takes to extend it; learners are locked in id order (no deadlocks between
requests that touch several learners), and unrelated learners never wait for each other.

A learner's erasure deletes their log with them (ON DELETE CASCADE); a provider's row cannot be
deleted while the log names it (ON DELETE RESTRICT). A request that logs about a
learner first holds the learner's row (``hold_learners``: FOR KEY SHARE on PostgreSQL, which only
a delete or a key change waits for), then their head, in the same order as the erasure's DELETE
takes them, so the two cannot deadlock. If the learner was erased while the request ran, nothing
is appended and ``LearnersErased`` says so: the request must fail and disclose nothing, since a
disclosure that cannot be logged must not happen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Integer, bindparam, column, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from consent.audit import GENESIS, ChainProblem, chain_hash, verify_chain
from hub.db import session_connection, sqlite_insert_rows, unnest_params, unnest_select
from hub.direct_rows import fetch_plain_rows
from hub.grants.models import DisclosureEvent, LearnerLogHead
from hub.people.models import Learner


class LearnersErased(Exception):
    """Learners a request decided about were erased before it could log (and so commit) them."""

    def __init__(self, learner_ids: Iterable[UUID]) -> None:
        self.learner_ids = sorted(learner_ids)
        super().__init__(f"learner(s) erased while the request ran: {', '.join(map(str, self.learner_ids))}")


async def hold_learners(session: AsyncSession, learner_ids: Iterable[UUID], *, read_in_this_transaction: bool = False) -> None:
    """Keep these learners from being erased until this transaction ends; ``LearnersErased`` if
    some already are. ``read_in_this_transaction``: the caller found them earlier in this
    transaction, which on SQLite proves they are still there (nothing to do).

    PostgreSQL: FOR KEY SHARE row locks, in learner-id order (as the heads are locked), which
    conflict only with a DELETE (or key update) of the learner: concurrent requests about the same
    learner do not wait for each other, and an erasure waits for them. Under READ COMMITTED a row
    whose delete committed while we waited is not returned. SQLite: every transaction holds the
    write lock from its start (``BEGIN IMMEDIATE``), so an erasure cannot interleave; the rows are
    only checked.
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    if read_in_this_transaction and not postgres:
        return
    wanted = sorted(set(learner_ids))
    query = select(Learner.id).where(Learner.id.in_(wanted)).order_by(Learner.id)
    if postgres:
        query = query.with_for_update(read=True, key_share=True)  # FOR KEY SHARE (without read: FOR NO KEY UPDATE)
    present = set((await session.execute(query)).scalars())
    if len(present) != len(wanted):
        raise LearnersErased(set(wanted) - present)


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


async def append_events(
    *, session: AsyncSession, events: Sequence[PendingEvent], seen_heads: Mapping[UUID, tuple[int, str]] | None = None
) -> None:
    """Chain events into their learners' logs with a fixed number of statements per call.

    Raises ``LearnersErased`` (appending nothing) if a learner was erased meanwhile.

    A request about one learner whose head it read earlier in its transaction (``seen_heads``,
    from ``resolve_learner``) extends the chain from that head with one conditional statement:
    the head moves only if it is still where it was seen. If another request moved it meanwhile,
    nothing is written and the locking path below runs instead, so the chain never forks.

    The locking path locks the heads of all learners involved in learner-id order (PostgreSQL row
    locks, so concurrent requests over overlapping learners cannot deadlock; SQLite's writers are
    already serialised by ``BEGIN IMMEDIATE``), then extends them together: on PostgreSQL an upsert
    that locks and returns the heads, and the events' insert chained with the heads' update; SQLite
    takes four statements.
    """
    by_learner: dict[UUID, list[PendingEvent]] = {}
    for event in events:
        by_learner.setdefault(event.learner_id, []).append(event)
    learner_ids = sorted(by_learner)
    postgres = session.get_bind().dialect.name == "postgresql"
    # One learner only: a conditional update of several heads would lock them in plan order, not
    # in learner-id order, and could deadlock against another request's.
    if len(learner_ids) == 1 and seen_heads and learner_ids[0] in seen_heads:
        seen = {learner_ids[0]: seen_heads[learner_ids[0]]}
        rows, new_heads = _chain(by_learner, seen)
        extend = _extend_if_unmoved_postgres if postgres else _extend_if_unmoved
        if await extend(session, rows, new_heads[0], expected_seq=seen[learner_ids[0]][0]):
            return
    await hold_learners(session, learner_ids)
    heads = await (_lock_heads_postgres if postgres else _lock_heads)(session, learner_ids)
    rows, new_heads = _chain(by_learner, heads)
    if postgres:
        await _store_postgres(session, rows, new_heads)
    else:
        await session.execute(DisclosureEvent.__table__.insert(), rows)
        await session.execute(update(LearnerLogHead), new_heads)  # ORM bulk UPDATE by primary key


def _chain(
    by_learner: dict[UUID, list[PendingEvent]], heads: Mapping[UUID, tuple[int, str]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The event rows, hash-chained from each learner's head, and the heads they lead to."""
    rows, new_heads = [], []
    for learner_id in sorted(by_learner):
        seq, prev = heads[learner_id]
        for event in by_learner[learner_id]:
            seq += 1
            row = {**event.fields(), "seq": seq, "prev_hash": prev}
            row["hash"] = prev = chain_hash(prev, row)
            rows.append(row)
        new_heads.append({"learner_id": learner_id, "seq": seq, "hash": prev})
    return rows, new_heads


async def _extend_if_unmoved(session: AsyncSession, rows: list[dict[str, Any]], new_head: dict[str, Any], *,
                             expected_seq: int) -> bool:
    # Every provider request runs this: the statement is built once (building and cache-keying
    # it, and Core's executemany of the events, were ~40 % of the log's CPU on SQLite), and the
    # events go in through the driver's executemany, bound as Core binds them.
    connection = await session_connection(session)
    moved = await connection.execute(_move_head_statement(), {
        "head_learner_id": new_head["learner_id"], "expected_seq": expected_seq,
        "new_seq": new_head["seq"], "new_hash": new_head["hash"],
    })
    if moved.rowcount != 1:
        return False
    await sqlite_insert_rows(connection, DisclosureEvent.__table__, rows)
    return True


@lru_cache(maxsize=1)
def _move_head_statement() -> Any:
    heads = LearnerLogHead.__table__
    return (heads.update()
            .where(heads.c.learner_id == bindparam("head_learner_id", type_=heads.c.learner_id.type),
                   heads.c.seq == bindparam("expected_seq"))
            .values(seq=bindparam("new_seq"), hash=bindparam("new_hash")))


async def _extend_if_unmoved_postgres(session: AsyncSession, rows: list[dict[str, Any]], new_head: dict[str, Any], *,
                                      expected_seq: int) -> bool:
    # Under READ COMMITTED a head updated by a concurrent request is re-checked after that request
    # commits (its seq no longer matches), so at most one of two racing requests moves it. The
    # learner is held first (the EXISTS runs once, before any head is locked; see hold_learners):
    # if they were erased, nothing moves and the locking path reports it.
    names = list(rows[0])
    statement = _extend_statement_postgres(tuple(names))
    # One statement, atomic on its own: a request with no transaction open (it only read) appends
    # and commits its log entries in this one round trip (hub.direct_rows); the learner's FOR KEY
    # SHARE then lasts as long as it must, to the append's commit.
    [result] = await fetch_plain_rows(await session_connection(session), statement,
                                      {**new_head, "expected_seq": expected_seq, **unnest_params(rows, names, "e")},
                                      alone=True)
    return result.moved == 1


@lru_cache(maxsize=4)
def _extend_statement_postgres(names: tuple[str, ...]) -> Any:
    events, heads = DisclosureEvent.__table__, LearnerLogHead.__table__
    return text(
        f"WITH moved AS (UPDATE {heads.name} SET seq = :seq, hash = :hash "
        "WHERE learner_id = :learner_id AND seq = :expected_seq "
        f"AND EXISTS (SELECT 1 FROM {Learner.__tablename__} WHERE id = :learner_id FOR KEY SHARE) RETURNING learner_id), "
        f"new_events AS (INSERT INTO {events.name} ({', '.join(names)}) "
        f"{unnest_select(events, list(names), 'e')} WHERE EXISTS (SELECT 1 FROM moved)) "
        "SELECT count(*) AS moved FROM moved"
    ).bindparams(bindparam("learner_id", type_=heads.c.learner_id.type)).columns(column("moved", Integer))


def _genesis(learner_ids: list[UUID]) -> list[dict[str, Any]]:
    return [{"learner_id": i, "seq": 0, "hash": GENESIS} for i in learner_ids]


async def _lock_heads(session: AsyncSession, learner_ids: list[UUID]) -> dict[UUID, tuple[int, str]]:
    await session.execute(sqlite.insert(LearnerLogHead).values(_genesis(learner_ids))
                          .on_conflict_do_nothing(index_elements=["learner_id"]))
    rows = await session.execute(select(LearnerLogHead.learner_id, LearnerLogHead.seq, LearnerLogHead.hash)
                                 .where(LearnerLogHead.learner_id.in_(learner_ids)))
    return {row.learner_id: (row.seq, row.hash) for row in rows}


async def _lock_heads_postgres(session: AsyncSession, learner_ids: list[UUID]) -> dict[UUID, tuple[int, str]]:
    # ON CONFLICT DO UPDATE locks each existing head (as FOR UPDATE did) and RETURNING gives its
    # current seq and hash; rows are processed in VALUES order, i.e. learner-id order.
    upsert = postgresql.insert(LearnerLogHead).values(_genesis(learner_ids))
    upsert = upsert.on_conflict_do_update(index_elements=["learner_id"],
                                          set_={"learner_id": upsert.excluded.learner_id})
    rows = await session.execute(upsert.returning(LearnerLogHead.learner_id, LearnerLogHead.seq, LearnerLogHead.hash))
    return {row.learner_id: (row.seq, row.hash) for row in rows}


async def _store_postgres(session: AsyncSession, rows: list[dict[str, Any]], new_heads: list[dict[str, Any]]) -> None:
    events, heads = DisclosureEvent.__table__, LearnerLogHead.__table__
    names, head_names = list(rows[0]), ["learner_id", "seq", "hash"]
    statement = text(
        f"WITH new_events AS (INSERT INTO {events.name} ({', '.join(names)}) {unnest_select(events, names, 'e')}) "
        f"UPDATE {heads.name} AS head SET seq = v.seq, hash = v.hash "
        f"FROM ({unnest_select(heads, head_names, 'h')}) AS v (learner_id, seq, hash) "
        "WHERE head.learner_id = v.learner_id"
    )
    await session.execute(statement, {**unnest_params(rows, names, "e"), **unnest_params(new_heads, head_names, "h")})


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
