"""Reading and contributing record entries.

Every function takes ``access: Allowed``, the consent decision for exactly this learner,
section and action, so section data cannot be touched without one. Functions add and flush,
never commit: the request (or job) boundary commits, together with the disclosure log row.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from consent import Allowed
from schemas import records as record_schemas
from hub.records.models import SECTION_MODELS, Activity, Badge, SkillAssessment

# Keeps IN (...) lists well under SQLite's and asyncpg's bound-parameter limits.
_LOOKUP_CHUNK = 500


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ContributionReport:
    received: int
    created: int
    updated: int
    unchanged: int


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[Any]
    has_next_page: bool
    end_cursor: str | None


# -- mapping: validated input -> row values ------------------------------------------------


def _badge_row(entry: record_schemas.BadgeCreate) -> dict[str, Any]:
    a = entry.achievement
    return {
        "achievement_id": a.id,
        "name": a.name,
        "description": a.description,
        "criteria_narrative": a.criteria.narrative,
        "criteria_id": a.criteria.id,
        "image_url": a.image,
        "achievement_type": a.achievement_type,
        "issuer_id": entry.issuer.id,
        "issuer_name": entry.issuer.name,
        "issuer_url": entry.issuer.url,
        "awarded_at": entry.awarded_date,
        "evidence": [e.model_dump(mode="json", exclude_none=True) for e in entry.evidence],
        "alignments": [al.model_dump(mode="json", exclude_none=True) for al in a.alignments],
    }


def _skill_row(entry: record_schemas.SkillCreate) -> dict[str, Any]:
    return {
        "framework_uri": entry.skill.framework_uri,
        "skill_code": entry.skill.code,
        "skill_label": entry.skill.label,
        "skill_key": entry.skill.key,
        "scale_name": entry.scale.name,
        "scale_min": entry.scale.min,
        "scale_max": entry.scale.max,
        "proficiency": entry.proficiency,
        "assessed_at": entry.assessed_at,
    }


def _activity_row(entry: record_schemas.ActivityCreate) -> dict[str, Any]:
    result = entry.result
    score = result.score if result else None
    return {
        "verb_id": entry.verb.id,
        "verb_display": entry.verb.display,
        "object_id": entry.object.id,
        "object_name": entry.object.name,
        "object_type": entry.object.type,
        "result_score_scaled": score.scaled if score else None,
        "result_score_raw": score.raw if score else None,
        "result_score_min": score.min if score else None,
        "result_score_max": score.max if score else None,
        "result_success": result.success if result else None,
        "result_completion": result.completion if result else None,
        "result_duration": result.duration if result else None,
        "timestamp": entry.timestamp,
    }


_ROW_MAPPERS = {"badges": _badge_row, "skills": _skill_row, "activities": _activity_row}


def content_hash(entry: record_schemas.BaseModel) -> str:
    canonical = json.dumps(entry.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def contribute_entries(
    *,
    session: AsyncSession,
    access: Allowed,
    section: str,
    learner_id: UUID,
    provider_id: UUID,
    entries: Sequence[Any],
    now: datetime,
) -> ContributionReport:
    """Store a validated batch idempotently on ``source_id``.

    New source ids are inserted, known ones with different content are updated in place
    (``updated_at`` moves, ``created_at`` stays), identical re-sends change nothing. The caller
    guarantees source ids are unique within the batch.
    """
    del access  # proof of a decision; see module docstring
    model = SECTION_MODELS[section]
    to_row = _ROW_MAPPERS[section]
    by_source = {e.source_id: e for e in entries}

    known: dict[str, tuple[int, str]] = {}
    source_ids = list(by_source)
    for start in range(0, len(source_ids), _LOOKUP_CHUNK):
        chunk = source_ids[start : start + _LOOKUP_CHUNK]
        result = await session.execute(
            select(model.source_id, model.id, model.content_hash).where(
                model.provider_id == provider_id, model.learner_id == learner_id, model.source_id.in_(chunk)
            )
        )
        known.update({row.source_id: (row.id, row.content_hash) for row in result})

    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    unchanged = 0
    for source_id, entry in by_source.items():
        digest = content_hash(entry)
        if source_id not in known:
            inserts.append(
                {
                    "learner_id": learner_id,
                    "provider_id": provider_id,
                    "source_id": source_id,
                    "content_hash": digest,
                    "created_at": now,
                    "updated_at": now,
                    **to_row(entry),
                }
            )
        elif known[source_id][1] != digest:
            updates.append({"id": known[source_id][0], "content_hash": digest, "updated_at": now, **to_row(entry)})
        else:
            unchanged += 1
    if inserts:
        # A Core INSERT on the table (not the ORM entity): the driver's executemany with one
        # small prepared statement. The ORM-enabled form rendered one INSERT with 1,000 VALUES
        # tuples (19,000 parameters) on asyncpg, which cost PostgreSQL ingest 4-5x (BENCHMARKS.md).
        await session.execute(insert(model.__table__), inserts)
    if updates:
        await session.execute(update(model), updates)  # ORM bulk UPDATE by primary key
    return ContributionReport(received=len(entries), created=len(inserts), updated=len(updates), unchanged=unchanged)


# -- reading: newest first, keyset pagination ----------------------------------------------

_ORDER_COLUMN = {"badges": Badge.awarded_at, "skills": SkillAssessment.assessed_at, "activities": Activity.timestamp}
ORDER_ATTRIBUTE = {section: column.key for section, column in _ORDER_COLUMN.items()}


def encode_cursor(at: datetime, entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{entry_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at_text, _, id_text = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None:
            raise ValueError
        return at, int(id_text)
    except (ValueError, UnicodeDecodeError):
        raise InvalidCursor("the cursor is not one this API returned") from None


async def list_entries(
    *,
    session: AsyncSession,
    access: Allowed,
    section: str,
    learner_id: UUID,
    first: int,
    after: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    verb_id: str | None = None,
    skill_key: str | None = None,
) -> Page:
    """A page of one learner's entries in one section, newest first.

    Keyset pagination on (time, id) walks the (learner_id, time, id) index, so page N costs the
    same as page 1 (no OFFSET).
    """
    del access
    model = SECTION_MODELS[section]
    at_col = _ORDER_COLUMN[section]
    # Plain rows, not ORM entities: a page is read-only, and identity-map bookkeeping per row
    # was a visible cost of the profile read (BENCHMARKS.md). Rows answer the same attributes.
    query = select(*model.__table__.c).where(model.learner_id == learner_id)
    if after is not None:
        cursor_at, cursor_id = decode_cursor(after)
        # The redundant `at <= cursor_at` bounds the index range scan; without it SQLite walked
        # the (learner_id, time, id) index from the newest entry to the cursor, so a page 200,000
        # entries deep cost 4x the first page (BENCHMARKS.md, growth).
        query = query.where(
            at_col <= cursor_at, or_(at_col < cursor_at, and_(at_col == cursor_at, model.id < cursor_id))
        )
    if since is not None:
        query = query.where(at_col >= since)
    if until is not None:
        query = query.where(at_col < until)
    if verb_id is not None and model is Activity:
        query = query.where(Activity.verb_id == verb_id)
    if skill_key is not None and model is SkillAssessment:
        query = query.where(SkillAssessment.skill_key == skill_key)
    query = query.order_by(at_col.desc(), model.id.desc()).limit(first + 1)
    # The request's pending disclosure-log rows need not be flushed before reading entries:
    # without this, every section read flushed one INSERT of its own (fan-out: 3 per learner);
    # they are written together at commit instead.
    with session.no_autoflush:
        rows = list(await session.execute(query))
    has_next = len(rows) > first
    rows = rows[:first]
    end_cursor = encode_cursor(getattr(rows[-1], at_col.key), rows[-1].id) if rows else None
    return Page(entries=rows, has_next_page=has_next, end_cursor=end_cursor)
