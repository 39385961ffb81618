"""Learners' data keys: create on first sealed write, unwrap on read, re-wrap, destroy.

Adds and flushes; never commits (``rewrap_data_keys`` is the exception the CLI drives: it works in
caller-committed batches, each re-wrap being independent and idempotent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import utcnow
from hub.records.crypto import DataKey, KeyRing, UnreadableData, new_data_key
from hub.records.models import LearnerDataKey


class DataKeys:
    """Per-request access to learners' data keys, each unwrapped at most once per request."""

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring
        self._open: dict[UUID, DataKey] = {}

    async def get(self, *, session: AsyncSession, learner_id: UUID, create: bool) -> DataKey | None:
        """The learner's key; a new one when ``create`` and none exists, else None when none exists.

        Raises ``UnreadableData`` when the stored key cannot be unwrapped with the configured KEKs.
        """
        if learner_id in self._open:
            return self._open[learner_id]
        row = await session.get(LearnerDataKey, learner_id)
        if row is None and create:
            dek = new_data_key()
            wrapped, kek = self.keyring.wrap(learner_id, dek)
            try:
                # A savepoint: a concurrent first write for the same learner wins, and we use its key.
                async with session.begin_nested():
                    session.add(LearnerDataKey(learner_id=learner_id, wrapped_key=wrapped, kek_id=kek, created_at=utcnow()))
                    await session.flush()
            except IntegrityError:
                row = await session.get(LearnerDataKey, learner_id, populate_existing=True)
            else:
                # Not cached: if the caller's savepoint rolls back, the new key goes with it, and a
                # cached copy would seal later writes of this request under a key never stored.
                return DataKey(learner_id, dek)
        if row is None:
            return None
        self._open[learner_id] = DataKey(learner_id, self.keyring.unwrap(learner_id, row.wrapped_key, row.kek_id))
        return self._open[learner_id]


async def destroy_data_key(*, session: AsyncSession, learner_id: UUID) -> bool:
    """Crypto-shred: without this row nothing sealed for the learner can ever be opened again."""
    result = await session.execute(delete(LearnerDataKey).where(LearnerDataKey.learner_id == learner_id))
    return bool(result.rowcount)


@dataclass
class RewrapReport:
    rewrapped: int = 0
    already_current: int = 0
    # (learner id, KEK id) of keys wrapped by a KEK that is not configured, or that failed to unwrap.
    unreadable: list[tuple[UUID, str]] = field(default_factory=list)


async def rewrap_data_keys(
    *, session: AsyncSession, keyring: KeyRing, now: datetime, after: UUID | None = None, limit: int = 500
) -> tuple[RewrapReport, UUID | None]:
    """Re-wrap up to ``limit`` data keys (in learner-id order after ``after``) under the current KEK.

    Only the wrapping changes: the DEK, and so every sealed field, stays as it is. Returns the
    report and the last learner id seen (pass it back as ``after``; None when done).
    """
    query = select(LearnerDataKey).order_by(LearnerDataKey.learner_id).limit(limit)
    if after is not None:
        query = query.where(LearnerDataKey.learner_id > after)
    rows = list((await session.execute(query)).scalars())
    report = RewrapReport()
    for row in rows:
        if row.kek_id == keyring.current_id:
            report.already_current += 1
            continue
        try:
            dek = keyring.unwrap(row.learner_id, row.wrapped_key, row.kek_id)
        except UnreadableData:
            report.unreadable.append((row.learner_id, row.kek_id))
            continue
        row.wrapped_key, row.kek_id = keyring.wrap(row.learner_id, dek)
        row.rewrapped_at = now
        report.rewrapped += 1
    await session.flush()
    return report, (rows[-1].learner_id if len(rows) == limit else None)


async def data_keys_by_kek(*, session: AsyncSession) -> dict[str, int]:
    """How many data keys each KEK wraps (a KEK may be retired once it wraps none)."""
    rows = await session.execute(select(LearnerDataKey.kek_id, func.count()).group_by(LearnerDataKey.kek_id))
    return {kek: count for kek, count in rows}
