"""Reading and contributing record entries.

Every function takes ``access: Allowed``, the consent decision for exactly this learner,
section and action, so section data cannot be touched without one. Functions add and flush,
never commit: the request (or job) boundary commits, together with the disclosure log row.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import BigInteger, ColumnElement, Integer, String, Uuid, any_, text, and_, literal, literal_column, bindparam, column, delete, func, insert, or_, select, true, tuple_, union_all, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from consent import Allowed, get_section
from schemas import records as record_schemas
from hub.db import plain_rows, session_connection, sqlite_insert_rows, unnest_params, unnest_select
from hub.direct_rows import fetch_plain_rows
from hub.grants.log import LearnersErased, hold_learners
from hub.records.crypto import DataKey, FieldContext, UnreadableData
from hub.records.keys import DataKeys
from hub.records.models import (
    GENERIC_SECTIONS,
    SECTION_MODELS,
    Activity,
    Badge,
    EntrySpec,
    RecordChange,
    SectionEntry,
    SkillAssessment,
    section_clause,
)

# Keeps IN (...) lists well under SQLite's and asyncpg's bound-parameter limits.
_LOOKUP_CHUNK = 500


def _matching_source_ids(session: AsyncSession, model: Any, source_ids: Sequence[str]) -> Iterator[ColumnElement[bool]]:
    """WHERE conditions that together match ``source_ids``, one query each: on PostgreSQL a single
    ``= ANY(array)`` (one parameter; two 500-item IN lists took ~40 ms of a 1,000-entry batch,
    BENCHMARKS.md), elsewhere IN lists small enough for SQLite's parameter limit."""
    if not source_ids:
        return
    if session.get_bind().dialect.name == "postgresql":
        yield model.source_id == any_(bindparam(None, list(source_ids), type_=postgresql.ARRAY(String())))
        return
    for start in range(0, len(source_ids), _LOOKUP_CHUNK):
        yield model.source_id.in_(source_ids[start : start + _LOOKUP_CHUNK])


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ContributionReport:
    received: int
    created: int
    updated: int
    unchanged: int


@dataclass(frozen=True, slots=True)
class OpenEntry:
    """An entry of a generic section, opened (decrypted when sealed) and typed by its input model."""

    id: int
    source_id: str
    provider_id: UUID
    occurred_at: datetime
    created_at: datetime
    updated_at: datetime
    value: Any  # the section's pydantic input model (schemas.records)


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


def is_sealed(section: str) -> bool:
    """Sections marked sensitive in the catalogue are encrypted at rest (all are generic sections)."""
    return get_section(section).sensitive


def _entry_row(section: str, spec: EntrySpec, entry: Any, key: DataKey | None, where: FieldContext) -> dict[str, Any]:
    """A generic section's row: date and kind as columns, the rest as JSON, sealed when sensitive."""
    data = entry.model_dump(mode="json", exclude={"source_id", spec.date_field})
    row: dict[str, Any] = {"section_name": section, "occurred_at": getattr(entry, spec.date_field)}
    if key is None:
        return {**row, "kind": data.get(spec.kind_field) if spec.kind_field else None, "body": data, "sealed": None}
    return {**row, "kind": None, "body": None, "sealed": key.seal_fields(where, data)}


def _open_entry(section: str, spec: EntrySpec, row: SectionEntry, key: DataKey | None) -> OpenEntry:
    if row.sealed is not None:
        if key is None:
            raise UnreadableData("the learner's data key no longer exists (crypto-shredded)")
        where = FieldContext(learner_id=row.learner_id, section=section, provider_id=row.provider_id, source_id=row.source_id)
        data = key.open_fields(where, row.sealed)
    else:
        data = row.body or {}
    try:
        value = record_schemas.SECTION_INPUTS[section].model_validate(
            {**data, "source_id": row.source_id, spec.date_field: row.occurred_at}
        )
    except ValidationError:
        # Written through the same model, so only an edit behind the API's back gets here.
        raise UnreadableData(f"stored entry {row.id} no longer matches the {section} schema") from None
    return OpenEntry(
        id=row.id, source_id=row.source_id, provider_id=row.provider_id, occurred_at=row.occurred_at,
        created_at=row.created_at, updated_at=row.updated_at, value=value,
    )


def _canonical(entry: record_schemas.BaseModel) -> bytes:
    """The entry's content as pydantic's serialiser writes it (fields in declaration order, nulls
    included): fixed for a given model, and a third of the cost of the sorted ``json.dumps`` of
    ``model_dump`` it replaced (BENCHMARKS.md, ingest)."""
    # The model's serializer itself: model_dump_json's keyword handling and .encode() were a third
    # of the cost for 1,000 entries (2.3 -> 1.5 ms); the bytes are the same (tests/hub/test_contributions.py).
    return type(entry).__pydantic_serializer__.to_json(entry)


def _legacy_canonical(entry: record_schemas.BaseModel) -> bytes:
    # Fingerprints stored before 2026-11-23 were taken over this form; they still match, so a
    # re-send of an older entry stays "unchanged" (see _fingerprint_matches).
    return json.dumps(entry.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()


def _fingerprint(entry: record_schemas.BaseModel, key: DataKey | None, *, legacy: bool = False) -> str:
    """The stored content hash: SHA-256, or keyed under the learner's data key for sealed sections
    (a plain hash of low-entropy content would leak it)."""
    canonical = _legacy_canonical(entry) if legacy else _canonical(entry)
    return key.digest(canonical) if key is not None else hashlib.sha256(canonical).hexdigest()


def _fingerprint_matches(stored: str, digest: str, entry: record_schemas.BaseModel, key: DataKey | None) -> bool:
    return stored == digest or stored == _fingerprint(entry, key, legacy=True)


def content_hash(entry: record_schemas.BaseModel) -> str:
    return _fingerprint(entry, None)


async def contribute_entries(
    *,
    session: AsyncSession,
    access: Allowed,
    section: str,
    learner_id: UUID,
    provider_id: UUID,
    entries: Sequence[Any],
    now: datetime,
    data_keys: DataKeys | None = None,
) -> ContributionReport:
    """Store a validated batch idempotently on ``source_id``.

    New source ids are inserted, known ones with different content are updated in place
    (``updated_at`` moves, ``created_at`` stays), identical re-sends change nothing. The caller
    guarantees source ids are unique within the batch. Sensitive sections are sealed under the
    learner's data key (created on first use; ``data_keys`` is required for them) and recognised
    by a keyed content hash.
    """
    del access  # proof of a decision; see module docstring
    model = SECTION_MODELS[section]
    spec = GENERIC_SECTIONS.get(section)
    key: DataKey | None = None
    if is_sealed(section):
        if data_keys is None:
            raise ValueError(f"section {section!r} is encrypted at rest: data_keys is required")
        key = await data_keys.get(session=session, learner_id=learner_id, create=True)

    def to_row(entry: Any) -> dict[str, Any]:
        if spec is None:
            return _ROW_MAPPERS[section](entry)
        where = FieldContext(learner_id=learner_id, section=section, provider_id=provider_id, source_id=entry.source_id)
        return _entry_row(section, spec, entry, key, where)

    by_source = {e.source_id: e for e in entries}

    known: dict[str, tuple[int, str, bool]] = {}
    source_ids = list(by_source)
    for matching in _matching_source_ids(session, model, source_ids):
        result = await session.execute(
            select(model.source_id, model.id, model.content_hash, model.deleted_at).where(
                model.provider_id == provider_id, model.learner_id == learner_id, matching,
                *section_clause(section),
            )
        )
        known.update({row.source_id: (row.id, row.content_hash, row.deleted_at is not None) for row in result})

    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    unchanged = 0
    for source_id, entry in by_source.items():
        digest = _fingerprint(entry, key)
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
        elif known[source_id][2] or not _fingerprint_matches(known[source_id][1], digest, entry, key):
            # Changed content, or re-sent after a retraction (which restores the entry).
            updates.append({
                "id": known[source_id][0], "source_id": source_id, "content_hash": digest, "updated_at": now,
                "deleted_at": None, **to_row(entry),
            })
        else:
            unchanged += 1
    if inserts and model is Activity and session.get_bind().dialect.name == "postgresql":
        # The high-volume path: rows and their change-feed rows in one statement (unnest arrays).
        await _insert_activities_with_changes(session, inserts, learner_id, provider_id, now)
    elif inserts:
        # SQLite: the change-feed rows come from the rows themselves (_log_created_after).
        sqlite = session.get_bind().dialect.name == "sqlite"
        after_id = await _max_id(session, model) if sqlite else None
        if model is SectionEntry:
            # Low-volume generic sections: the ORM maps `section_name` to its column.
            await session.execute(insert(model), inserts)
        elif sqlite:
            # The driver's executemany, values bound column-wise (hub.db.sqlite_insert_rows).
            await sqlite_insert_rows(await session_connection(session), model.__table__, inserts, BATCH_CONSTANTS)
        else:
            # A Core INSERT on the table (not the ORM entity): the driver's executemany with one
            # small prepared statement. The ORM-enabled form rendered one INSERT with 1,000 VALUES
            # tuples (19,000 parameters) on asyncpg, which cost PostgreSQL ingest 4-5x (BENCHMARKS.md).
            await session.execute(insert(model.__table__), inserts)
        if after_id is not None:
            await _log_created_after(session, model, section, learner_id, provider_id, after_id, now)
        else:
            created = await _ids_of(session, model, section, learner_id, provider_id, [row["source_id"] for row in inserts])
            await log_changes(session=session, section=section, learner_id=learner_id, provider_id=provider_id,
                              entries=created, op="created", now=now)
    if updates:
        await session.execute(update(model), updates)  # ORM bulk UPDATE by primary key
        await log_changes(session=session, section=section, learner_id=learner_id, provider_id=provider_id,
                          entries=[(row["id"], row["source_id"]) for row in updates], op="updated", now=now)
    return ContributionReport(received=len(entries), created=len(inserts), updated=len(updates), unchanged=unchanged)


# Columns that hold the same value on every row of a batch: bound once, not as arrays.
BATCH_CONSTANTS = ("learner_id", "provider_id", "created_at", "updated_at")


@lru_cache(maxsize=8)
def _activities_with_changes_statement(names: tuple[str, ...]) -> Any:
    table = Activity.__table__
    return text(
        f"WITH new_rows AS (INSERT INTO {table.name} ({', '.join(BATCH_CONSTANTS + names)}) "
        "SELECT CAST(:learner_id AS uuid), CAST(:provider_id AS uuid), CAST(:now AS timestamptz), "
        f"CAST(:now AS timestamptz), c.* FROM ({unnest_select(table, list(names), 'c')}) AS c RETURNING id, source_id) "
        f"INSERT INTO {RecordChange.__table__.name} (learner_id, provider_id, section, entry_id, source_id, op, at) "
        "SELECT CAST(:learner_id AS uuid), CAST(:provider_id AS uuid), 'activities', id, source_id, 'created', "
        "CAST(:now AS timestamptz) FROM new_rows"
    )


async def _insert_activities_with_changes(
    session: AsyncSession, rows: list[dict[str, Any]], learner_id: UUID, provider_id: UUID, now: datetime,
) -> None:
    """PostgreSQL: INSERT ... SELECT FROM unnest(column arrays) RETURNING id, chained into the
    change-feed INSERT, in one statement of fixed shape (one parameter per column, prepared once).

    Against the executemany insert + id lookup + change-feed executemany it replaces, this is one
    round trip instead of five per 1,000 entries and lets PostgreSQL insert set-wise (BENCHMARKS.md,
    ingest). A duplicate source id still raises IntegrityError (answered CONFLICT by the API).
    The rows are contribute_entries' inserts: learner, provider and both timestamps are the
    batch's own, so they are bound once instead of as 1,000-element arrays.
    """
    names = tuple(name for name in rows[0] if name not in BATCH_CONSTANTS)
    params = unnest_params(rows, list(names), "c")
    await session.execute(_activities_with_changes_statement(names),
                          {**params, "learner_id": learner_id, "provider_id": provider_id, "now": now})


async def _max_id(session: AsyncSession, model: Any) -> int:
    return (await session.execute(select(func.coalesce(func.max(model.id), 0)))).scalar_one()


async def _log_created_after(
    session: AsyncSession, model: Any, section: str, learner_id: UUID, provider_id: UUID, after_id: int, now: datetime,
) -> None:
    """SQLite: the change-feed rows of the entries just inserted, in one INSERT ... SELECT.

    A SQLite writer holds the database's write lock from BEGIN IMMEDIATE to commit, and a new
    rowid is one more than the largest in the table, so this learner's rows from this provider
    with an id above ``after_id`` (the largest id before the insert) are exactly the ones this
    call inserted. Replaces an id lookup of the batch's source ids and an executemany of the
    change rows (BENCHMARKS.md, ingest). PostgreSQL writers run concurrently: not used there.
    """
    changes = RecordChange.__table__
    rows = select(
        model.learner_id, model.provider_id, literal(section, String()), model.id, model.source_id,
        literal("created", String()), literal(now, changes.c.at.type),
    ).where(model.id > after_id, model.learner_id == learner_id, model.provider_id == provider_id,
            *section_clause(section))
    await session.execute(insert(changes).from_select(
        ["learner_id", "provider_id", "section", "entry_id", "source_id", "op", "at"], rows))


async def _ids_of(
    session: AsyncSession, model: Any, section: str, learner_id: UUID, provider_id: UUID, source_ids: list[str]
) -> list[tuple[int, str]]:
    """Ids of this provider's entries with these source ids (after an executemany insert)."""
    found: list[tuple[int, str]] = []
    for matching in _matching_source_ids(session, model, source_ids):
        rows = await session.execute(
            select(model.id, model.source_id).where(
                model.provider_id == provider_id, model.learner_id == learner_id, matching, *section_clause(section),
            )
        )
        found.extend((row.id, row.source_id) for row in rows)
    return found


async def log_changes(
    *, session: AsyncSession, section: str, learner_id: UUID, provider_id: UUID, entries: Sequence[tuple[int, str]],
    op: str, now: datetime,
) -> None:
    """Append change-feed rows for entries (id, source id) of one learner, section and contributor.

    ``record_change`` has no foreign keys (see ``RecordChange``); what the per-row key checks did
    is done here once per call: the learner is held (``hold_learners``: FOR KEY SHARE on PostgreSQL;
    SQLite's writers are serialised anyway), so an erasure waits for this transaction and then
    deletes these rows too; if the learner was erased since this request resolved them, nothing is
    logged.
    """
    if entries:
        try:
            await hold_learners(session, [learner_id])
        except LearnersErased:
            return
        await session.execute(insert(RecordChange), [
            {"learner_id": learner_id, "provider_id": provider_id, "section": section, "entry_id": entry_id,
             "source_id": source_id, "op": op, "at": now}
            for entry_id, source_id in entries
        ])


# -- reading: newest first, keyset pagination ----------------------------------------------

_ORDER_COLUMN = {
    "badges": Badge.awarded_at,
    "skills": SkillAssessment.assessed_at,
    "activities": Activity.timestamp,
    **{section: SectionEntry.occurred_at for section in GENERIC_SECTIONS},
}
ORDER_ATTRIBUTE = {section: column.key for section, column in _ORDER_COLUMN.items()}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_EPOCH_MICROSECONDS = re.compile(r"-?[0-9]{1,20}")


def encode_cursor(at: datetime, entry_id: int) -> str:
    """An opaque keyset cursor: the entry's time as UTC microseconds since the epoch (exact: both
    databases keep microseconds) and its id. Microseconds, not ISO 8601 text, because a profile
    read encodes 50 of these and ``isoformat`` was most of their cost."""
    return base64.urlsafe_b64encode(f"{(at - _EPOCH) // _MICROSECOND}|{entry_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at_text, _, id_text = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
        if _EPOCH_MICROSECONDS.fullmatch(at_text):
            at = _EPOCH + _MICROSECOND * int(at_text)
        else:
            # Cursors handed out before they carried microseconds: a client may still hold one.
            at = datetime.fromisoformat(at_text)
            if at.tzinfo is None:
                raise ValueError
        return at, _bigint(id_text)
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise InvalidCursor("the cursor is not one this API returned") from None


def _bigint(text: str) -> int:
    """A number as cursors carry it (entry ids, feed positions): a BIGINT, so that a forged one is
    refused here, not by the database (an error the request could not explain)."""
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError(text)
    return value


@dataclass(frozen=True, slots=True)
class PageQuery:
    """Everything that shapes one page except the learner: pages sharing it batch together."""

    section: str
    reader_provider_id: UUID
    first: int
    own_only: bool = False
    data_from: datetime | None = None
    after: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    verb_id: str | None = None
    skill_key: str | None = None
    kind: str | None = None


async def _core_rows(session: AsyncSession, query: Any, params: dict[str, Any] | None = None) -> list[Any]:
    """Rows of a table-column select on the session's transaction, through Core, not the ORM.

    Pages are read-only plain rows; the ORM execution path (compile state, per-row loading) was
    the largest remaining database-side cost of the profile read after the GraphQL executor
    (BENCHMARKS.md). The connection does not autoflush: pending disclosure-log rows are written
    at commit, not before a read.
    """
    connection = await session_connection(session)
    return plain_rows(await connection.execute(query, params))


# The parts of a PageQuery that change the SQL; the rest are bind parameter values.
_PAGE_FILTERS = ("data_from", "after", "since", "until", "verb_id", "skill_key", "kind")


def _page_shape(spec: PageQuery) -> tuple[Any, ...]:
    return (spec.section, spec.own_only, spec.first, *(getattr(spec, name) is not None for name in _PAGE_FILTERS))


def _page_params(spec: PageQuery) -> dict[str, Any]:
    params: dict[str, Any] = {"reader_provider_id": spec.reader_provider_id}
    params.update({name: getattr(spec, name) for name in _PAGE_FILTERS if name != "after"})
    if spec.after is not None:
        params["cursor_at"], params["cursor_id"] = decode_cursor(spec.after)
    return params


def _page_select(spec: PageQuery, learner_id: Any):  # type: ignore[no-untyped-def]
    """The newest-first, keyset-paginated query of one learner's page (first + 1 rows).

    Every value but ``learner_id`` (a UUID, a column or a bind parameter) and the page size is a
    named bind parameter; execute with ``_page_params(spec)``. The statement depends only on the page's
    shape, so the single-learner case is built once per shape (``_single_page_select``).
    """
    model = SECTION_MODELS[spec.section]
    at_col = _ORDER_COLUMN[spec.section]
    # Plain rows, not ORM entities: a page is read-only, and identity-map bookkeeping per row
    # was a visible cost of the profile read (BENCHMARKS.md). Rows answer the same attributes.
    query = select(*model.__table__.c).where(
        model.learner_id == learner_id, model.deleted_at.is_(None), model.hidden_at.is_(None), *section_clause(spec.section)
    )
    if spec.own_only:
        query = query.where(model.provider_id == bindparam("reader_provider_id"))
    if spec.data_from is not None:
        query = query.where(at_col >= bindparam("data_from", type_=at_col.type))
    if spec.after is not None:
        cursor_at, cursor_id = bindparam("cursor_at", type_=at_col.type), bindparam("cursor_id", type_=model.id.type)
        # The redundant `at <= cursor_at` bounds the index range scan; without it SQLite walked
        # the (learner_id, time, id) index from the newest entry to the cursor, so a page 200,000
        # entries deep cost 4x the first page (BENCHMARKS.md, growth).
        query = query.where(
            at_col <= cursor_at, or_(at_col < cursor_at, and_(at_col == cursor_at, model.id < cursor_id))
        )
    if spec.since is not None:
        query = query.where(at_col >= bindparam("since", type_=at_col.type))
    if spec.until is not None:
        query = query.where(at_col < bindparam("until", type_=at_col.type))
    if spec.verb_id is not None and model is Activity:
        query = query.where(Activity.verb_id == bindparam("verb_id"))
    if spec.skill_key is not None and model is SkillAssessment:
        query = query.where(SkillAssessment.skill_key == bindparam("skill_key"))
    if spec.kind is not None and model is SectionEntry:
        query = query.where(SectionEntry.kind == bindparam("kind"))
    # The LIMIT is written into the statement, not bound: with a bound LIMIT PostgreSQL's generic
    # plan costs more than a custom one (it cannot know the limit), so it planned the prepared
    # statement again on every execution, 0.13 ms of its CPU per 50-activity page; with the
    # limit in the text the generic plan is as cheap, and is kept after five executions
    # (BENCHMARKS.md, fourteenth session). ``first`` is a validated int (1..max_page_size).
    return query.order_by(at_col.desc(), model.id.desc()).limit(literal_column(str(int(spec.first) + 1), Integer()))


# Page statements kept per shape (section, filters, page size: a client choosing its own sizes
# must not grow them without bound); emptied when full, as hub.direct_rows keeps its plans.
_PAGE_STATEMENTS_KEPT = 512
_single_page_cache: dict[tuple[Any, ...], Any] = {}


def _kept(cache: dict[tuple[Any, ...], Any], key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    statement = cache.get(key)
    if statement is None:
        if len(cache) >= _PAGE_STATEMENTS_KEPT:
            cache.clear()
        statement = cache[key] = build()
    return statement


def _single_page_select(spec: PageQuery):  # type: ignore[no-untyped-def]
    """``_page_select`` for one learner (``learner_id`` parameter), built once per page shape:
    building and cache-keying the statement was ~9 % of a profile read's CPU (BENCHMARKS.md)."""
    return _kept(_single_page_cache, _page_shape(spec), lambda: _page_select(spec, bindparam("learner_id", type_=Uuid())))


_union_page_cache: dict[tuple[Any, ...], Any] = {}


def _union_page_select(spec: PageQuery, learners: int):  # type: ignore[no-untyped-def]
    """SQLite's many-learner page (no LATERAL): a UNION ALL of ``learners`` single-learner
    queries, with parameters ``learner_0``..: built once per shape and count. Built per request
    with the ids inside, it was ~70 % of a 100-learner fan-out's time on SQLite (statement
    construction and a compile no cache could hold; BENCHMARKS.md, seventh session)."""
    def build() -> Any:
        branches = [select(_page_select(spec, bindparam(f"learner_{n}", type_=Uuid())).subquery().c) for n in range(learners)]
        return select(*union_all(*branches).subquery().c)

    return _kept(_union_page_cache, (*_page_shape(spec), learners), build)


async def _unopened_page(session: AsyncSession, spec: PageQuery, learner_id: UUID) -> Page:
    # The statement is kept per shape, so it can take the direct path (hub.direct_rows); a read,
    # it may run on its own where no transaction is open (then nothing uncommitted is there to see).
    rows = await fetch_plain_rows(await session_connection(session), _single_page_select(spec),
                                  {**_page_params(spec), "learner_id": learner_id}, alone=True)
    return _as_page(spec, rows)


async def _single_page(session: AsyncSession, spec: PageQuery, learner_id: UUID, data_keys: DataKeys | None) -> Page:
    return await open_page(session=session, section=spec.section, learner_id=learner_id,
                           page=await _unopened_page(session, spec, learner_id), data_keys=data_keys)


async def _opened_or_unreadable(
    session: AsyncSession, spec: PageQuery, learner_id: UUID, page: Page, data_keys: DataKeys | None
) -> Page | UnreadableData:
    """``open_page``, or the ``UnreadableData`` it raised, without its traceback: the answer is
    kept (in the request's page loader), and the traceback's frames would hold the request."""
    try:
        return await open_page(session=session, section=spec.section, learner_id=learner_id, page=page,
                               data_keys=data_keys)
    except UnreadableData as exc:
        return exc.with_traceback(None)


async def count_entries(*, session: AsyncSession, spec: PageQuery, learner_id: UUID) -> int:
    """How many entries the page's filters match for one learner (ignoring the cursor and limit)."""
    unpaged_spec = PageQuery(**{**{f: getattr(spec, f) for f in spec.__dataclass_fields__}, "after": None})
    unpaged = _page_select(unpaged_spec, learner_id).limit(None).order_by(None)
    with session.no_autoflush:
        return (await session.execute(select(func.count()).select_from(unpaged.subquery()), _page_params(unpaged_spec))).scalar_one()


def _as_page(spec: PageQuery, rows: list[Any]) -> Page:
    at_key = _ORDER_COLUMN[spec.section].key
    has_next = len(rows) > spec.first
    rows = rows[: spec.first]
    end_cursor = encode_cursor(getattr(rows[-1], at_key), rows[-1].id) if rows else None
    return Page(entries=rows, has_next_page=has_next, end_cursor=end_cursor)


def page_query(access: Allowed, **shape: Any) -> PageQuery:
    """The page shape for a decision: ``read_own`` narrows to own entries, a window to its start."""
    return PageQuery(own_only=access.own_only, data_from=access.data_from, **shape)


async def open_page(
    *, session: AsyncSession, section: str, learner_id: UUID, page: Page, data_keys: DataKeys | None
) -> Page:
    """Generic sections come back as ``OpenEntry`` (sealed ones decrypted with the learner's data
    key; ``UnreadableData`` when a field fails authentication or the key is gone)."""
    spec = GENERIC_SECTIONS.get(section)
    if spec is None or not page.entries:
        return page
    key = None
    if is_sealed(section):
        if data_keys is None:
            raise ValueError(f"section {section!r} is encrypted at rest: data_keys is required")
        key = await data_keys.get(session=session, learner_id=learner_id, create=False)
    opened = [_open_entry(section, spec, row, key) for row in page.entries]
    return Page(entries=opened, has_next_page=page.has_next_page, end_cursor=page.end_cursor)


async def list_entries(
    *, session: AsyncSession, access: Allowed, learner_id: UUID, spec: PageQuery, data_keys: DataKeys | None = None
) -> Page:
    """A page of one learner's entries in one section, newest first, as far as ``access`` allows.

    ``spec`` must come from ``page_query(access, ...)``. Keyset pagination on (time, id) walks the
    (learner_id, time, id) index, so page N costs the same as page 1 (no OFFSET).
    """
    if (spec.own_only, spec.data_from) != (access.own_only, access.data_from):
        raise ValueError("the page spec does not match the consent decision")
    return await _single_page(session, spec, learner_id, data_keys)


async def list_pages(
    *, session: AsyncSession, spec: PageQuery, learner_ids: list[UUID], data_keys: DataKeys | None = None
) -> dict[UUID, Page | UnreadableData]:
    """The same page for many learners in ONE statement; the caller has decided consent for each.
    A learner whose sealed page cannot be opened gets its ``UnreadableData``; the others their pages.

    Every learner still costs one index range scan of ``first + 1`` rows, whatever the table size:
    on PostgreSQL a LATERAL join runs the single-learner query once per id of an ``unnest``ed
    array (a 100-branch UNION ALL measured 11 s there against 78 ms for the same work); SQLite,
    which has no LATERAL, gets a UNION ALL of the single-learner queries.
    """
    if len(learner_ids) == 1:
        [learner_id] = learner_ids
        page = await _unopened_page(session, spec, learner_id)
        return {learner_id: await _opened_or_unreadable(session, spec, learner_id, page, data_keys)}
    if session.get_bind().dialect.name == "postgresql":
        wanted = bindparam("wanted_ids", list(learner_ids), type_=postgresql.ARRAY(postgresql.UUID(as_uuid=True)))
        ids = func.unnest(wanted).table_valued(column("learner_id", Uuid())).render_derived(name="wanted")
        per_learner = _page_select(spec, ids.c.learner_id).subquery().lateral()
        query = select(*per_learner.c).select_from(ids).join(per_learner, true())
        params = _page_params(spec)
    else:
        query = _union_page_select(spec, len(learner_ids))
        params = {**_page_params(spec), **{f"learner_{n}": i for n, i in enumerate(learner_ids)}}
    rows = await _core_rows(session, query, params)
    grouped: dict[UUID, list[Any]] = {i: [] for i in learner_ids}
    for row in rows:
        grouped[row.learner_id].append(row)
    at_key = _ORDER_COLUMN[spec.section].key
    pages = {
        i: _as_page(spec, sorted(grouped[i], key=lambda r: (getattr(r, at_key), r.id), reverse=True))
        for i in learner_ids
    }
    return {i: await _opened_or_unreadable(session, spec, i, p, data_keys) for i, p in pages.items()}


@dataclass(frozen=True, slots=True)
class SkillSummaryRow:
    skill_key: str
    framework_uri: str | None
    skill_code: str | None
    skill_label: str
    scale_name: str
    scale_min: float
    scale_max: float
    latest_proficiency: float
    latest_assessed_at: datetime
    evidence_count: int


def _skill_scope(access: Allowed, learner_id: UUID, reader_provider_id: UUID):  # type: ignore[no-untyped-def]
    conditions = [
        SkillAssessment.learner_id == learner_id, SkillAssessment.deleted_at.is_(None), SkillAssessment.hidden_at.is_(None)
    ]
    if access.own_only:
        conditions.append(SkillAssessment.provider_id == reader_provider_id)
    if access.data_from is not None:
        conditions.append(SkillAssessment.assessed_at >= access.data_from)
    return conditions


async def skills_summary(
    *, session: AsyncSession, access: Allowed, learner_id: UUID, reader_provider_id: UUID
) -> list[SkillSummaryRow]:
    """Latest level and evidence count per skill, across contributors, in one windowed query."""
    ranked = (
        select(
            SkillAssessment,
            func.row_number().over(
                partition_by=SkillAssessment.skill_key,
                order_by=(SkillAssessment.assessed_at.desc(), SkillAssessment.id.desc()),
            ).label("rank"),
            func.count().over(partition_by=SkillAssessment.skill_key).label("evidence"),
        )
        .where(*_skill_scope(access, learner_id, reader_provider_id))
        .subquery()
    )
    rows = await session.execute(
        select(ranked).where(ranked.c.rank == 1).order_by(ranked.c.skill_label, ranked.c.skill_key)
    )
    return [
        SkillSummaryRow(
            skill_key=r.skill_key, framework_uri=r.framework_uri, skill_code=r.skill_code, skill_label=r.skill_label,
            scale_name=r.scale_name, scale_min=r.scale_min, scale_max=r.scale_max,
            latest_proficiency=r.proficiency, latest_assessed_at=_aware(r.assessed_at), evidence_count=r.evidence,
        )
        for r in rows
    ]


def _aware(value: datetime) -> datetime:
    # A raw subquery column bypasses UTCDateTime on SQLite: restore the UTC offset.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def skill_progression(
    *, session: AsyncSession, access: Allowed, learner_id: UUID, reader_provider_id: UUID, skill_key: str, first: int
) -> list[SkillAssessment]:
    """One skill's assessments in time order (oldest first), the last ``first`` of them."""
    newest = (
        select(SkillAssessment)
        .where(*_skill_scope(access, learner_id, reader_provider_id), SkillAssessment.skill_key == skill_key)
        .order_by(SkillAssessment.assessed_at.desc(), SkillAssessment.id.desc())
        .limit(first)
    )
    return list(reversed(list((await session.execute(newest)).scalars())))


async def retract_entries(
    *, session: AsyncSession, access: Allowed, section: str, learner_id: UUID, provider_id: UUID,
    source_ids: Sequence[str], now: datetime,
) -> int:
    """A provider withdraws entries it contributed (never anyone else's). Returns how many."""
    del access  # a contribute decision for this learner and section
    model = SECTION_MODELS[section]
    retracted = (await session.execute(
        update(model)
        .where(model.learner_id == learner_id, model.provider_id == provider_id, model.source_id.in_(list(source_ids)),
               model.deleted_at.is_(None), *section_clause(section))
        .values(deleted_at=now, updated_at=now)
        .returning(model.id, model.source_id)
    )).all()
    await log_changes(session=session, section=section, learner_id=learner_id, provider_id=provider_id,
                      entries=[(row.id, row.source_id) for row in retracted], op="deleted", now=now)
    return len(retracted)


async def set_entry_state(
    *, session: AsyncSession, section: str, learner_id: UUID, entry_id: int, now: datetime, state: str
) -> None:
    """Family actions on any entry of their learner: ``hide``, ``unhide`` or ``delete``."""
    model = SECTION_MODELS[section]
    values = {"hide": {"hidden_at": now}, "unhide": {"hidden_at": None}, "delete": {"deleted_at": now}}[state]
    row = (await session.execute(
        update(model).where(model.id == entry_id, model.learner_id == learner_id, *section_clause(section))
        .values(updated_at=now, **values)
        .returning(model.id, model.source_id, model.provider_id)
    )).one_or_none()
    if row is None:
        raise LookupError(f"no {section} entry {entry_id} for that learner")
    # Providers see a hidden or deleted entry go away, and an unhidden one come back.
    await log_changes(session=session, section=section, learner_id=learner_id, provider_id=row.provider_id,
                      entries=[(row.id, row.source_id)], op="updated" if state == "unhide" else "deleted", now=now)


async def purge_deleted(*, session: AsyncSession, before: datetime) -> dict[str, int]:
    """Really delete entries retracted or deleted before ``before`` (the retention window)."""
    purged = {}
    for section, model in SECTION_MODELS.items():
        result = await session.execute(
            delete(model).where(model.deleted_at.is_not(None), model.deleted_at < before, *section_clause(section))
        )
        purged[section] = result.rowcount or 0
    return purged



# -- the change feed ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedPosition:
    txid: int
    change_id: int

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"feed|{self.txid}|{self.change_id}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> FeedPosition:
        try:
            tag, txid, change_id = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode().split("|")
            if tag != "feed":
                raise ValueError
            return cls(_bigint(txid), _bigint(change_id))
        except (ValueError, UnicodeDecodeError):
            raise InvalidCursor("the cursor is not one this API returned") from None


async def read_changes(
    *, session: AsyncSession, reader_provider_id: UUID, after: FeedPosition | None, sections: Sequence[str], limit: int
) -> list[tuple[RecordChange, str]]:
    """The next changes (with the reader's pairwise learner id) in feed order, committed ones only.

    Only learners this provider has ever been granted anything for (it holds a pairwise id) are
    candidates; the caller decides consent for each row.
    """
    from hub.grants.models import LearnerPseudonym

    query = (
        select(RecordChange, LearnerPseudonym.pseudonym)
        .join(LearnerPseudonym, (LearnerPseudonym.learner_id == RecordChange.learner_id)
              & (LearnerPseudonym.provider_id == reader_provider_id))
        .where(RecordChange.section.in_(list(sections)))
    )
    if session.get_bind().dialect.name == "postgresql":
        # Stop below the oldest transaction still running: its changes may commit later with a
        # smaller txid than rows we would otherwise hand out.
        horizon = func.pg_snapshot_xmin(func.pg_current_snapshot()).cast(String).cast(BigInteger)
        query = query.where(RecordChange.txid < horizon)
        if after is not None:
            query = query.where(tuple_(RecordChange.txid, RecordChange.id) > tuple_(after.txid, after.change_id))
        query = query.order_by(RecordChange.txid, RecordChange.id)
    else:
        if after is not None:
            query = query.where(RecordChange.id > after.change_id)
        query = query.order_by(RecordChange.id)
    return [(row[0], row[1]) for row in await session.execute(query.limit(limit))]


async def entries_by_id(*, session: AsyncSession, section: str, ids: Sequence[int]) -> dict[int, Any]:
    """Entries still visible to providers, by id."""
    if not ids:
        return {}
    model = SECTION_MODELS[section]
    rows = await session.execute(
        select(model).where(model.id.in_(list(ids)), model.deleted_at.is_(None), model.hidden_at.is_(None),
                            *section_clause(section))
    )
    return {row.id: row for row in rows.scalars()}


# -- retraction (xAPI voiding) ---------------------------------------------------------------


async def learners_of_sources(
    *, session: AsyncSession, section: str, provider_id: UUID, source_ids: Sequence[str]
) -> dict[UUID, list[str]]:
    """Which learners this provider's own live entries with these source ids belong to.

    Only the provider's own contributions of this section are looked at (already retracted or
    deleted ones are not); nothing about the learner is read, and the caller must still obtain a
    decision per learner before touching the entries.
    """
    model = SECTION_MODELS[section]
    found: dict[UUID, list[str]] = {}
    ids = list(dict.fromkeys(source_ids))
    for matching in _matching_source_ids(session, model, ids):
        result = await session.execute(
            select(model.learner_id, model.source_id).where(
                model.provider_id == provider_id, matching,
                model.deleted_at.is_(None), *section_clause(section),
            )
        )
        for row in result:
            found.setdefault(row.learner_id, []).append(row.source_id)
    return found
