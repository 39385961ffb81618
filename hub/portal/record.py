"""What the family portal reads and deletes: the whole record of one learner, unfiltered by consent.

Families see their own learners' records (the provider consent gate does not apply); the caller
has already checked the signed-in person may view or manage this learner (``hub.portal.access``).
Sections come from the catalogue (``consent.sections``) and ``SECTION_MODELS``, so a new section
with a model shows up here without code changes. Adds and flushes; never commits.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import and_, delete, func, inspect, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from consent import Action
from consent.control import ControlPolicy
from consent.sections import Section, catalogue
from hub.credentials.models import HeldCredential
from hub.frameworks.service import ItemView, find_items
from hub.grants.family import Actor, require_control, revoke_by
from hub.grants.log import list_disclosures, verify_log
from hub.grants.models import AccessRequest, ConsentGrant, DisclosureEvent
from hub.people.models import Learner
from hub.providers.models import Provider
from hub.records.models import SECTION_MODELS, Activity, SkillAssessment
from hub.records.service import ORDER_ATTRIBUTE, InvalidCursor, Page, decode_cursor, encode_cursor

ENVELOPE = {"id", "learner_id", "provider_id", "source_id", "content_hash", "created_at", "updated_at", "deleted_at",
            "hidden_at"}


def sections() -> list[Section]:
    """Catalogue sections that have a table, in catalogue order."""
    return [s for name, s in catalogue().items() if name in SECTION_MODELS]


def _model(section: str) -> Any:
    model = SECTION_MODELS.get(section)
    if model is None or section not in catalogue():
        raise LookupError(f"no section {section!r}")
    return model


def _at_column(section: str) -> Any:
    model = _model(section)
    return getattr(model, ORDER_ATTRIBUTE.get(section, "created_at"))


def entry_time(section: str, entry: Any) -> datetime:
    return getattr(entry, ORDER_ATTRIBUTE.get(section, "created_at"))


def entry_fields(entry: Any) -> list[tuple[str, Any]]:
    """Every non-envelope column with a value, as (label, value): works for any section's model."""
    out = []
    for column in inspect(type(entry)).columns:
        if column.key in ENVELOPE:
            continue
        value = getattr(entry, column.key)
        if value in (None, "", [], {}):
            continue
        out.append((column.key.replace("_", " ").capitalize(), value))
    return out


def entry_title(section: str, entry: Any) -> str:
    """A one-line name for an entry: known shapes first, then the first text column."""
    for attribute in ("name", "skill_label", "object_name", "title", "label"):
        value = getattr(entry, attribute, None)
        if isinstance(value, str) and value:
            if isinstance(entry, Activity):
                return f"{entry.verb_display} {value}"
            if isinstance(entry, SkillAssessment):
                return f"{value}: {entry.proficiency:g} on {entry.scale_name}"
            return value
    for label, value in entry_fields(entry):
        if isinstance(value, str):
            return value[:120]
    return f"{section} entry {entry.id}"


async def section_counts(*, session: AsyncSession, learner_ids: list[UUID]) -> dict[UUID, dict[str, int]]:
    """Entries per section per learner (deleted ones excluded), one grouped query per section."""
    counts: dict[UUID, dict[str, int]] = {i: {s.name: 0 for s in sections()} for i in learner_ids}
    if not learner_ids:
        return counts
    for section in sections():
        model = SECTION_MODELS[section.name]
        rows = await session.execute(
            select(model.learner_id, func.count()).where(model.learner_id.in_(learner_ids), model.deleted_at.is_(None))
            .group_by(model.learner_id)
        )
        for learner_id, count in rows:
            counts[learner_id][section.name] = count
    return counts


async def pending_counts(*, session: AsyncSession, learner_ids: list[UUID]) -> dict[UUID, int]:
    rows = await session.execute(
        select(AccessRequest.learner_id, func.count()).where(
            AccessRequest.learner_id.in_(learner_ids), AccessRequest.status == "pending"
        ).group_by(AccessRequest.learner_id)
    )
    return {learner_id: count for learner_id, count in rows} if learner_ids else {}


async def family_page(
    *, session: AsyncSession, learner_id: UUID, section: str, first: int, after: str | None = None
) -> Page:
    """Newest first, keyset-paginated, hidden entries included (the family may unhide them)."""
    model, at_col = _model(section), _at_column(section)
    query = select(model).where(model.learner_id == learner_id, model.deleted_at.is_(None))
    if after is not None:
        cursor_at, cursor_id = decode_cursor(after)
        query = query.where(or_(at_col < cursor_at, and_(at_col == cursor_at, model.id < cursor_id)))
    rows = list((await session.execute(query.order_by(at_col.desc(), model.id.desc()).limit(first + 1))).scalars())
    has_next = len(rows) > first
    rows = rows[:first]
    end = encode_cursor(entry_time(section, rows[-1]), rows[-1].id) if rows else None
    return Page(entries=rows, has_next_page=has_next, end_cursor=end)


async def provider_names(*, session: AsyncSession, ids: set[UUID]) -> dict[UUID, str]:
    if not ids:
        return {}
    return {pid: name for pid, name in await session.execute(select(Provider.id, Provider.name).where(Provider.id.in_(ids)))}


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


async def activity_per_week(*, session: AsyncSession, learner_id: UUID, weeks: int = 12) -> list[tuple[date, int]]:
    """Activities per ISO week for the ``weeks`` weeks ending with the newest activity."""
    newest = (await session.execute(select(func.max(Activity.timestamp)).where(
        Activity.learner_id == learner_id, Activity.deleted_at.is_(None)))).scalar_one_or_none()
    if newest is None:
        return []
    if newest.tzinfo is None:  # an aggregate bypasses UTCDateTime on SQLite
        newest = newest.replace(tzinfo=UTC)
    last = _monday(newest.date())
    first = last - timedelta(weeks=weeks - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    counts: dict[date, int] = defaultdict(int)
    for (at,) in await session.execute(select(Activity.timestamp).where(
        Activity.learner_id == learner_id, Activity.deleted_at.is_(None), Activity.timestamp >= start
    )):
        counts[_monday(at.date())] += 1
    return [(first + timedelta(weeks=n), counts.get(first + timedelta(weeks=n), 0)) for n in range(weeks)]


@dataclass
class SkillLine:
    label: str
    scale_name: str
    scale_min: float
    scale_max: float
    points: list[tuple[datetime, float]] = field(default_factory=list)
    framework_uri: str | None = None
    code: str | None = None
    item: ItemView | None = None  # the imported CASE item the skill names, if any


async def skill_lines(*, session: AsyncSession, learner_id: UUID, per_skill: int = 20) -> list[SkillLine]:
    """Each skill's assessments in time order (the last ``per_skill``), for a small line chart,
    with the statement of the CASE item a skill is aligned to when that framework is imported."""
    ranked = select(
        SkillAssessment.skill_key, SkillAssessment.skill_label, SkillAssessment.framework_uri, SkillAssessment.skill_code,
        SkillAssessment.scale_name, SkillAssessment.scale_min,
        SkillAssessment.scale_max, SkillAssessment.proficiency, SkillAssessment.assessed_at,
        func.row_number().over(partition_by=SkillAssessment.skill_key,
                               order_by=(SkillAssessment.assessed_at.desc(), SkillAssessment.id.desc())).label("rank"),
    ).where(SkillAssessment.learner_id == learner_id, SkillAssessment.deleted_at.is_(None)).subquery()
    lines: dict[str, SkillLine] = {}
    for row in await session.execute(select(ranked).where(ranked.c.rank <= per_skill)
                                     .order_by(ranked.c.skill_label, ranked.c.skill_key, ranked.c.assessed_at)):
        line = lines.setdefault(row.skill_key, SkillLine(row.skill_label, row.scale_name, row.scale_min, row.scale_max,
                                                         framework_uri=row.framework_uri, code=row.skill_code))
        at = row.assessed_at if row.assessed_at.tzinfo else row.assessed_at.replace(tzinfo=UTC)
        line.points.append((at, row.proficiency))
    keys = [(line.framework_uri, line.code) for line in lines.values() if line.framework_uri and line.code]
    items = await find_items(session, keys)  # type: ignore[arg-type]
    for line in lines.values():
        line.item = items.get((line.framework_uri, line.code))  # type: ignore[arg-type]
    return list(lines.values())


# -- sharing ---------------------------------------------------------------------------


@dataclass
class Cell:
    action: str
    grant: ConsentGrant | None  # the live grant, if any
    last: ConsentGrant | None  # otherwise the most recent past one (revoked or expired)


@dataclass
class SharingRow:
    provider_id: UUID
    provider_name: str
    cells: dict[str, dict[str, Cell]]  # section -> action -> cell
    purposes: list[str]
    live: int


async def sharing_matrix(*, session: AsyncSession, learner_id: UUID, now: datetime) -> list[SharingRow]:
    """Providers × sections × actions, from every grant this learner has ever given."""
    grants = list((await session.execute(
        select(ConsentGrant).where(ConsentGrant.learner_id == learner_id).order_by(ConsentGrant.granted_at)
    )).scalars())
    names = await provider_names(session=session, ids={g.provider_id for g in grants})
    rows: dict[UUID, SharingRow] = {}
    for grant in grants:
        row = rows.get(grant.provider_id)
        if row is None:
            row = rows[grant.provider_id] = SharingRow(
                grant.provider_id, names.get(grant.provider_id, "?"),
                {s.name: {a.value: Cell(a.value, None, None) for a in Action} for s in sections()}, [], 0,
            )
        cell = row.cells.setdefault(grant.section, {a.value: Cell(a.value, None, None) for a in Action})[grant.action]
        live = grant.revoked_at is None and (grant.expires_at is None or grant.expires_at > now) and grant.granted_at <= now
        if live:
            cell.grant = grant
            row.live += 1
            if grant.purpose not in row.purposes:
                row.purposes.append(grant.purpose)
        else:
            cell.last = grant
    return sorted(rows.values(), key=lambda r: (r.live == 0, r.provider_name.lower()))


# -- disclosure history ------------------------------------------------------------------


async def history(
    *, session: AsyncSession, learner_id: UUID, first: int, before_seq: int | None, provider_id: UUID | None,
    section: str | None,
) -> tuple[list[DisclosureEvent], bool, dict[UUID, str], bool, int]:
    """(events newest first, more?, provider names, chain verified, events checked)."""
    events = await list_disclosures(session=session, learner_id=learner_id, first=first + 1, before_seq=before_seq,
                                    provider_id=provider_id, section=section)
    checked, problems = await verify_log(session=session, learner_ids=[learner_id])
    all_providers = set((await session.execute(
        select(DisclosureEvent.provider_id).where(DisclosureEvent.learner_id == learner_id).distinct()
    )).scalars())
    names = await provider_names(session=session, ids=all_providers)
    return events[:first], len(events) > first, names, not problems, checked


# -- export and deletion -----------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def _row(obj: Any, skip: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    return {c.key: _plain(getattr(obj, c.key)) for c in inspect(type(obj)).columns if c.key not in skip}


async def export_record(*, session: AsyncSession, learner_id: UUID, now: datetime) -> dict[str, Any]:
    """The whole record as JSON-ready data: learner, every section, grants, requests, disclosure log."""
    learner = await session.get(Learner, learner_id)
    if learner is None:
        raise LookupError("no such learner")
    out: dict[str, Any] = {
        "format": "kinfolio-record-export/1",
        "exportedAt": now.isoformat(),
        "learner": _row(learner),
        "sections": {},
    }
    provider_ids: set[UUID] = set()
    for section in sections():
        model = SECTION_MODELS[section.name]
        at_col = _at_column(section.name)
        rows = (await session.execute(select(model).where(model.learner_id == learner_id, model.deleted_at.is_(None))
                                      .order_by(at_col.desc(), model.id.desc()))).scalars()
        entries = []
        for entry in rows:
            provider_ids.add(entry.provider_id)
            entries.append(_row(entry, {"learner_id", "content_hash", "deleted_at"}))
        out["sections"][section.name] = {"sensitive": section.sensitive, "entries": entries}
    held = (await session.execute(select(HeldCredential).where(HeldCredential.learner_id == learner_id))).scalars()
    out["heldCredentials"] = [_row(h, {"learner_id"}) for h in held]
    grants = (await session.execute(select(ConsentGrant).where(ConsentGrant.learner_id == learner_id)
                                    .order_by(ConsentGrant.granted_at))).scalars()
    out["grants"] = []
    for g in grants:
        provider_ids.add(g.provider_id)
        out["grants"].append(_row(g, {"learner_id"}))
    requests = (await session.execute(select(AccessRequest).where(AccessRequest.learner_id == learner_id)
                                      .order_by(AccessRequest.created_at))).scalars()
    out["accessRequests"] = []
    for r in requests:
        provider_ids.add(r.provider_id)
        out["accessRequests"].append(_row(r, {"learner_id", "approvals"}))
    events = (await session.execute(select(DisclosureEvent).where(DisclosureEvent.learner_id == learner_id)
                                    .order_by(DisclosureEvent.seq))).scalars()
    out["disclosureLog"] = []
    for e in events:
        provider_ids.add(e.provider_id)
        out["disclosureLog"].append(_row(e, {"id", "learner_id"}))
    out["providers"] = {str(k): v for k, v in (await provider_names(session=session, ids=provider_ids)).items()}
    return out


async def delete_whole_record(
    *, session: AsyncSession, actor: Actor, learner_id: UUID, now: datetime, policy: ControlPolicy
) -> dict[str, int]:
    """Revoke every grant, delete every entry and held credential at once (not a soft delete).

    Kept, as the evidence the law asks for: the learner and guardian link, the grant history, the
    access requests and the hash-chained disclosure log. Returns counts.
    """
    await require_control(session=session, actor=actor, learner_id=learner_id, today=now, policy=policy)
    providers = set((await session.execute(
        select(ConsentGrant.provider_id).where(ConsentGrant.learner_id == learner_id, ConsentGrant.revoked_at.is_(None))
    )).scalars())
    revoked = 0
    for provider_id in sorted(providers):
        count, _ = await revoke_by(session=session, actor=actor, learner_id=learner_id, provider_id=provider_id, now=now,
                                   policy=policy)
        revoked += count
    deleted = 0
    for model in SECTION_MODELS.values():
        deleted += (await session.execute(delete(model).where(model.learner_id == learner_id))).rowcount or 0
    held = (await session.execute(delete(HeldCredential).where(HeldCredential.learner_id == learner_id))).rowcount or 0
    await session.execute(
        AccessRequest.__table__.update().where(AccessRequest.learner_id == learner_id, AccessRequest.status == "pending")
        .values(status="denied", decided_at=now, updated_at=now, decided_by=actor.guardian_id)
    )
    await session.flush()
    return {"revoked": revoked, "deleted": deleted, "held_credentials": held}


__all__ = ["InvalidCursor"]
