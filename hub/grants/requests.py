"""Providers asking for access: merge, cool-down, listing. Adds and flushes; never commits."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from consent import GrantView, parse_scope
from hub.grants.models import AccessRequest, LearnerPseudonym


class CooldownActive(Exception):
    def __init__(self, until: datetime) -> None:
        super().__init__(f"the family denied a request from this provider; ask again after {until.isoformat()}")
        self.until = until


class NothingToRequest(ValueError):
    pass


def _merge_purpose(old: str, new: str) -> str:
    return old if new in old.split(" / ") else f"{old} / {new}"


async def request_access(
    *, session: AsyncSession, provider_id: UUID, client_id: str, learner_id: UUID, items: list[str], purpose: str,
    duration_days: int | None, now: datetime, cooldown: timedelta, live_grants: list[GrantView],
) -> tuple[AccessRequest, bool]:
    """Create or merge a pending request. Returns ``(request, merged)``.

    Items already covered by a live grant are dropped; a denial within ``cooldown`` refuses.
    """
    for item in items:
        parse_scope(item)
    purpose = purpose.strip()
    if not purpose:
        raise ValueError("say why, in plain words (purpose)")
    if duration_days is not None and not 1 <= duration_days <= 3650:
        raise ValueError("durationDays must be between 1 and 3650")
    held = {f"{g.section}:{g.action.value}" for g in live_grants if g.is_active(now)}
    wanted = sorted(set(items) - held)
    if not wanted:
        raise NothingToRequest("every requested item is already granted")
    last_denial = (
        await session.execute(
            select(AccessRequest.decided_at)
            .where(AccessRequest.provider_id == provider_id, AccessRequest.learner_id == learner_id,
                   AccessRequest.status == "denied")
            .order_by(AccessRequest.decided_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if last_denial is not None and now < last_denial + cooldown:
        raise CooldownActive(last_denial + cooldown)
    pending = (
        await session.execute(
            select(AccessRequest).where(AccessRequest.provider_id == provider_id, AccessRequest.learner_id == learner_id,
                                        AccessRequest.status == "pending")
        )
    ).scalar_one_or_none()
    if pending is not None:
        pending.items = sorted(set(pending.items) | set(wanted))
        pending.purpose = _merge_purpose(pending.purpose, purpose)
        if pending.duration_days is not None:
            pending.duration_days = None if duration_days is None else max(pending.duration_days, duration_days)
        pending.updated_at = now
        await session.flush()
        return pending, True
    request = AccessRequest(
        learner_id=learner_id, provider_id=provider_id, client_id=client_id, items=wanted, purpose=purpose,
        duration_days=duration_days, status="pending", approved_items=[], approvals=[], created_at=now, updated_at=now,
    )
    session.add(request)
    await session.flush()
    return request, False


async def provider_requests(
    *, session: AsyncSession, provider_id: UUID, status: str | None, first: int, after: datetime | None
) -> tuple[list[tuple[AccessRequest, str]], bool]:
    """This provider's requests with its pairwise learner ids, newest first."""
    query = (
        select(AccessRequest, LearnerPseudonym.pseudonym)
        .join(LearnerPseudonym, (LearnerPseudonym.provider_id == AccessRequest.provider_id)
              & (LearnerPseudonym.learner_id == AccessRequest.learner_id))
        .where(AccessRequest.provider_id == provider_id)
        .order_by(AccessRequest.created_at.desc())
        .limit(first + 1)
    )
    if status is not None:
        query = query.where(AccessRequest.status == status)
    if after is not None:
        query = query.where(AccessRequest.created_at < after)
    rows = [(row[0], row[1]) for row in await session.execute(query)]
    return rows[:first], len(rows) > first
