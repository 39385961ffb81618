"""Creating, revoking and loading consent grants. Adds and flushes; never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from consent import Action, GrantView, get_section
from consent.sections import check_action
from consent.pseudonyms import looks_like_pairwise_id, pairwise_id
from hub.db import session_connection
from hub.direct_rows import fetch_plain_rows
import hub.models  # noqa: F401  (every table before _RESOLVE is built: see _resolve_statement)
from hub.grants.models import ConsentGrant, LearnerLogHead, LearnerPseudonym
from hub.people.models import Learner


_GRANT_FIELDS = ("id", "provider_id", "learner_id", "section", "action", "granted_at", "expires_at", "revoked_at",
                 "data_from", "purpose")


def _view(row: Any) -> GrantView:
    """A grant's decision view, from an ORM grant or a plain row with the same column names."""
    return GrantView(**{name: getattr(row, name) for name in _GRANT_FIELDS if name != "action"}, action=Action(row.action))


def _resolve_statement(*, holding: bool):  # type: ignore[no-untyped-def]
    # A foreign-key column takes its type from the table it references and stays untyped
    # (NullType: a UUID bound as is, which SQLite refuses) until that table is defined, hence the
    # import of hub.models above: this runs at import time.
    names, grant, head = LearnerPseudonym.__table__, ConsentGrant.__table__, LearnerLogHead.__table__
    joined = names
    if holding:  # the learner row itself, to lock it (see resolve_learner)
        learner = Learner.__table__
        joined = names.join(learner, learner.c.id == names.c.learner_id)
    statement = (
        select(names.c.learner_id.label("resolved_id"), head.c.seq.label("head_seq"), head.c.hash.label("head_hash"),
               *(grant.c[name] for name in _GRANT_FIELDS))
        .select_from(
            joined.outerjoin(grant, (grant.c.provider_id == names.c.provider_id) & (grant.c.learner_id == names.c.learner_id))
            .outerjoin(head, head.c.learner_id == names.c.learner_id)
        )
        .where(names.c.provider_id == bindparam("provider_id"), names.c.pseudonym == bindparam("pseudonym"))
    )
    # FOR KEY SHARE (read=True; key_share alone would be FOR NO KEY UPDATE), as hold_learners takes.
    return statement.with_for_update(read=True, key_share=True, of=Learner.__table__) if holding else statement


# Built once: every provider request runs one of them (see resolve_learner).
_RESOLVE = _resolve_statement(holding=False)
_RESOLVE_HOLDING = _resolve_statement(holding=True)


@dataclass(frozen=True)
class ResolvedLearner:
    """A provider's pairwise id resolved, with what the rest of the request needs about the learner."""

    learner_id: UUID
    grants: list[GrantView]
    # The learner's disclosure-log head (seq, hash) as this request first saw it: a hint that lets
    # ``append_events`` extend the chain in one conditional statement (None: no event yet).
    log_head: tuple[int, str] | None


async def resolve_learner(
    *, session: AsyncSession, provider_id: UUID, pseudonym: str, hold: bool = False
) -> ResolvedLearner | None:
    """Pairwise id -> learner, this provider's grants for them and their log head, in one statement.

    One round trip instead of three on every provider request (the read path's consent overhead,
    BENCHMARKS.md). Plain rows through Core on the session's transaction: no ORM entities.
    ``hold``: in the same statement, hold the learner against erasure as ``hub.grants.log.hold_learners``
    does (for requests that write; PostgreSQL, since SQLite's transactions hold the write lock).
    """
    if not looks_like_pairwise_id(pseudonym):
        return None
    statement = _RESOLVE_HOLDING if hold and session.get_bind().dialect.name == "postgresql" else _RESOLVE
    # Holding locks the learner until the request commits, so that statement needs the
    # transaction; the plain one is a read that may run on its own (hub.direct_rows).
    rows = await fetch_plain_rows(await session_connection(session), statement, {"provider_id": provider_id, "pseudonym": pseudonym},
                                  alone=statement is _RESOLVE)
    if not rows:
        return None
    first = rows[0]
    return ResolvedLearner(
        learner_id=first.resolved_id,
        grants=[_view(row) for row in rows if row.id is not None],
        log_head=(first.head_seq, first.head_hash) if first.head_seq is not None else None,
    )


async def grants_between(*, session: AsyncSession, provider_id: UUID, learner_id: UUID) -> list[GrantView]:
    """Every grant (live or not) this provider has had for this learner: one indexed query."""
    result = await session.execute(
        select(ConsentGrant).where(ConsentGrant.provider_id == provider_id, ConsentGrant.learner_id == learner_id)
    )
    return [_view(g) for g in result.scalars()]


async def grants_between_many(
    *, session: AsyncSession, provider_id: UUID, learner_ids: Sequence[UUID]
) -> dict[UUID, list[GrantView]]:
    """Every grant this provider has had for each of these learners, in one indexed query."""
    result = await session.execute(
        select(ConsentGrant).where(ConsentGrant.provider_id == provider_id, ConsentGrant.learner_id.in_(learner_ids))
    )
    grouped: dict[UUID, list[GrantView]] = {}
    for grant in result.scalars():
        grouped.setdefault(grant.learner_id, []).append(_view(grant))
    return grouped


def _active_clause(at: datetime):  # type: ignore[no-untyped-def]
    return (
        ConsentGrant.revoked_at.is_(None)
        & (ConsentGrant.granted_at <= at)
        & (ConsentGrant.expires_at.is_(None) | (ConsentGrant.expires_at > at))
    )


async def grant_access(
    *,
    session: AsyncSession,
    learner_id: UUID,
    provider_id: UUID,
    section: str,
    action: Action,
    purpose: str,
    granted_by: UUID | None,
    now: datetime,
    pseudonym_key: bytes,
    expires_at: datetime | None = None,
) -> tuple[ConsentGrant, bool]:
    """Grant one section × action. Returns ``(grant, created)``; an identical live grant is reused.

    The first grant to a provider also fixes the pairwise id it will know the learner by.
    """
    # Raises UnknownSection with the list of known ones; a grant names exactly one section (no
    # "all sections" shortcut exists, so a sensitive section is only ever granted explicitly).
    check_action(get_section(section), action)
    await ensure_pseudonym(session=session, provider_id=provider_id, learner_id=learner_id, key=pseudonym_key)
    if not purpose.strip():
        raise ValueError("a grant needs a purpose in plain words")
    if expires_at is not None and expires_at <= now:
        raise ValueError("expires_at must be in the future")
    existing = (
        await session.execute(
            select(ConsentGrant).where(
                ConsentGrant.provider_id == provider_id,
                ConsentGrant.learner_id == learner_id,
                ConsentGrant.section == section,
                ConsentGrant.action == action.value,
                _active_clause(now),
            )
        )
    ).scalar_one_or_none()
    if existing is not None and existing.expires_at == expires_at:
        return existing, False
    if existing is not None:
        # A new expiry supersedes the old grant; the old one stays as evidence.
        existing.revoked_at = now
        existing.revoked_by = granted_by
    grant = ConsentGrant(
        learner_id=learner_id,
        provider_id=provider_id,
        section=section,
        action=action.value,
        purpose=purpose.strip(),
        granted_by=granted_by,
        granted_at=now,
        expires_at=expires_at,
    )
    session.add(grant)
    await session.flush()
    return grant, True


async def revoke_access(
    *,
    session: AsyncSession,
    learner_id: UUID,
    provider_id: UUID,
    revoked_by: UUID | None,
    now: datetime,
    section: str | None = None,
    action: Action | None = None,
) -> int:
    """Revoke live grants; ``section``/``action`` of None mean all. Returns how many."""
    if section is not None:
        get_section(section)
    conditions = [
        ConsentGrant.provider_id == provider_id,
        ConsentGrant.learner_id == learner_id,
        ConsentGrant.revoked_at.is_(None),
    ]
    if section is not None:
        conditions.append(ConsentGrant.section == section)
    if action is not None:
        conditions.append(ConsentGrant.action == action.value)
    result = await session.execute(
        update(ConsentGrant).where(*conditions).values(revoked_at=now, revoked_by=revoked_by)
    )
    return result.rowcount or 0


async def list_grants(*, session: AsyncSession, learner_id: UUID | None = None) -> Sequence[ConsentGrant]:
    query = select(ConsentGrant).order_by(ConsentGrant.granted_at)
    if learner_id is not None:
        query = query.where(ConsentGrant.learner_id == learner_id)
    return list((await session.execute(query)).scalars())


async def learners_with_live_grant(
    *, session: AsyncSession, provider_id: UUID, at: datetime, first: int, after: str | None
) -> tuple[list[tuple[str, UUID]], bool]:
    """(pairwise id, learner id) of learners this provider holds a live grant for, in pairwise-id
    order (keyset on the provider's own ids, so paging reveals nothing about internal ids)."""
    live = (
        select(ConsentGrant.learner_id)
        .where(ConsentGrant.provider_id == provider_id, ConsentGrant.learner_id == LearnerPseudonym.learner_id)
        .where(_active_clause(at))
        .exists()
    )
    query = (
        select(LearnerPseudonym.pseudonym, LearnerPseudonym.learner_id)
        .where(LearnerPseudonym.provider_id == provider_id, live)
        .order_by(LearnerPseudonym.pseudonym)
        .limit(first + 1)
    )
    if after is not None:
        query = query.where(LearnerPseudonym.pseudonym > after)
    rows = [(row.pseudonym, row.learner_id) for row in await session.execute(query)]
    return rows[:first], len(rows) > first


async def ensure_pseudonym(*, session: AsyncSession, provider_id: UUID, learner_id: UUID, key: bytes) -> str:
    existing = await session.get(LearnerPseudonym, (provider_id, learner_id))
    if existing is not None:
        return existing.pseudonym
    row = LearnerPseudonym(provider_id=provider_id, learner_id=learner_id, pseudonym=pairwise_id(key, provider_id, learner_id))
    session.add(row)
    await session.flush()
    return row.pseudonym


async def resolve_pseudonym(*, session: AsyncSession, provider_id: UUID, pseudonym: str) -> UUID | None:
    """The learner behind one of this provider's pairwise ids, or None."""
    if not looks_like_pairwise_id(pseudonym):
        return None
    return (
        await session.execute(
            select(LearnerPseudonym.learner_id).where(
                LearnerPseudonym.provider_id == provider_id, LearnerPseudonym.pseudonym == pseudonym
            )
        )
    ).scalar_one_or_none()


async def count_live_grants(*, session: AsyncSession, provider_id: UUID, at: datetime) -> int:
    return (
        await session.execute(
            select(func.count()).select_from(ConsentGrant).where(ConsentGrant.provider_id == provider_id, _active_clause(at))
        )
    ).scalar_one()
