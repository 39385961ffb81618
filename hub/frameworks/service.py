"""Importing CASE CFPackages and looking up their items.

Validation: every object is checked on its own against the CASE 1.1 JSON binding
(``case_v1p1_cfpackage-jsonschema1.json``, ``$defs`` CFPckgDocument / CFPckgItem /
CFPckgAssociation, JSON Schema 2019-09), read from ``KINFOLIO_CASE_SCHEMAS_DIR`` and pinned by
SHA-256 (nothing is fetched). An invalid item or association is reported with its path and
reason and left out; the rest is imported. An invalid or missing CFDocument refuses the package.

CASE 1.0 packages are tolerated: the link properties 1.0 puts on every object (``CFPackageURI``
on the document, ``CFDocumentURI`` on items and associations) are not part of the 1.1 binding
(``additionalProperties: false``) and are set aside before validation; the JSON is kept whole.

Idempotent on the CASE identifier: an object whose JSON equals the stored one is ``unchanged``,
any difference (normally a new ``lastChangeDateTime``) is ``updated``. A package is the whole
framework: items and associations of the document that the package no longer contains are
removed (``removed``); ones it still contains but that are now invalid keep their stored version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.frameworks.models import CaseAssociation, CaseDocument, CaseItem

PACKAGE_SCHEMA = "case_v1p1_cfpackage-jsonschema1.json"
# SHA-256 of the 1EdTech CASE 1.1 CFPackage JSON Schema (conform-ed @ 714798ca, vendor/case/v1_1).
PACKAGE_SCHEMA_SHA256 = "7930082b7ed54e76e45ecbc86f8dd467c9e1635e9ce818371599bca25f942fe5"
# CASE 1.0 link properties that the 1.1 binding does not allow (see the module docstring).
CASE_1_0_LINKS = {"document": ("CFPackageURI",), "item": ("CFDocumentURI",), "association": ("CFDocumentURI",)}
_CHUNK = 500


class FrameworksNotConfigured(Exception):
    """The CASE JSON Schemas are not available (``KINFOLIO_CASE_SCHEMAS_DIR``)."""


@dataclass(frozen=True, slots=True)
class Problem:
    path: str  # "CFDocument", "CFItems[3]", "CFAssociations[0]"
    identifier: str | None
    reason: str


class PackageInvalid(ValueError):
    """The package as a whole cannot be imported (no valid CFDocument, wrong shape)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.reason}" for p in problems))
        self.problems = problems


@dataclass(slots=True)
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0


@dataclass(slots=True)
class ImportResult:
    document_identifier: str
    document_uri: str
    title: str
    document: str  # created | updated | unchanged
    items: Counts = field(default_factory=Counts)
    associations: Counts = field(default_factory=Counts)
    invalid: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "documentIdentifier": self.document_identifier, "documentUri": self.document_uri, "title": self.title,
            "document": self.document,
            "items": {k: getattr(self.items, k) for k in ("created", "updated", "unchanged", "removed")},
            "associations": {k: getattr(self.associations, k) for k in ("created", "updated", "unchanged", "removed")},
            "invalid": [{"path": p.path, "identifier": p.identifier, "reason": p.reason} for p in self.invalid],
        }


@dataclass(frozen=True)
class Validators:
    document: Any
    item: Any
    association: Any


@cache
def _validators(directory: str) -> Validators:
    from jsonschema import Draft201909Validator
    from referencing import Registry, Resource

    path = Path(directory) / PACKAGE_SCHEMA
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FrameworksNotConfigured(f"cannot read {path}: {exc.strerror}") from None
    if hashlib.sha256(raw).hexdigest() != PACKAGE_SCHEMA_SHA256:
        raise FrameworksNotConfigured(f"{path} is not the pinned CASE 1.1 CFPackage schema (SHA-256 differs)")
    schema = json.loads(raw)
    registry = Registry().with_resource(schema["$id"], Resource.from_contents(schema))

    def build(name: str) -> Any:
        return Draft201909Validator(
            {"$schema": schema["$schema"], "$ref": f"{schema['$id']}#/$defs/{name}"},
            registry=registry, format_checker=Draft201909Validator.FORMAT_CHECKER,
        )

    return Validators(build("CFPckgDocument"), build("CFPckgItem"), build("CFPckgAssociation"))


def validators(schemas_dir: Path | None) -> Validators:
    if schemas_dir is None:
        raise FrameworksNotConfigured("KINFOLIO_CASE_SCHEMAS_DIR is not set (the CASE 1.1 JSON Schemas directory)")
    return _validators(str(schemas_dir))


def _check(validator: Any, kind: str, obj: Any) -> str | None:
    """The reason ``obj`` is not a valid CASE object of ``kind``, or None."""
    from jsonschema.exceptions import best_match

    if not isinstance(obj, dict):
        return "not a JSON object"
    core = {k: v for k, v in obj.items() if k not in CASE_1_0_LINKS[kind]}
    error = best_match(validator.iter_errors(core))
    if error is not None:
        where = error.json_path.removeprefix("$")
        return f"{where.lstrip('.')}: {error.message}" if where else error.message
    try:
        _instant(obj.get("lastChangeDateTime"))
    except ValueError as exc:
        return f"lastChangeDateTime: {exc}"
    # CASE 1.1 sets no bound on these; the columns do (hub/frameworks/models.py), and a value that
    # does not fit must be a reported invalid object, not a database error at flush.
    for field, limit in _TEXT_LIMITS.items():
        if isinstance(obj.get(field), str) and len(obj[field]) > limit:
            return f"{field}: longer than {limit} characters"
    sequence = obj.get("sequenceNumber")
    if isinstance(sequence, int) and not -2**31 <= sequence < 2**31:
        return "sequenceNumber: outside the 32-bit integer range"
    return None


_TEXT_LIMITS = {"identifier": 255, "adoptionStatus": 100, "associationType": 100}


def _instant(value: Any) -> datetime | None:
    """CASE ``lastChangeDateTime`` (ISO 8601 dateTime); one without an offset is taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _link_uri(value: Any) -> str | None:
    return value.get("uri") if isinstance(value, dict) and isinstance(value.get("uri"), str) else None


def check_package(package: Any, schemas_dir: Path | None) -> tuple[dict[str, Any], list[tuple[str, dict]], list[tuple[str, dict]], list[Problem]]:
    """Validate; return the document, the valid items and associations (with their paths), and the problems.

    Raises ``PackageInvalid`` when the package itself cannot be imported.
    """
    checks = validators(schemas_dir)
    if not isinstance(package, dict):
        raise PackageInvalid([Problem("$", None, "a CFPackage is a JSON object")])
    document = package.get("CFDocument")
    reason = "is missing" if document is None else _check(checks.document, "document", document)
    if reason:
        ident = document.get("identifier") if isinstance(document, dict) and isinstance(document.get("identifier"), str) else None
        raise PackageInvalid([Problem("CFDocument", ident, reason)])
    problems: list[Problem] = []
    out: dict[str, list[tuple[str, dict]]] = {}
    for key, kind, validator in (("CFItems", "item", checks.item), ("CFAssociations", "association", checks.association)):
        objects = package.get(key) or []
        if not isinstance(objects, list):
            raise PackageInvalid([Problem(key, None, "must be an array")])
        seen: set[str] = set()
        good: list[tuple[str, dict]] = []
        for index, obj in enumerate(objects):
            path = f"{key}[{index}]"
            ident = obj.get("identifier") if isinstance(obj, dict) and isinstance(obj.get("identifier"), str) else None
            reason = _check(validator, kind, obj)
            if reason is None and ident in seen:
                reason = "duplicate identifier in this package"
            if reason is not None:
                problems.append(Problem(path, ident, reason))
                continue
            seen.add(ident)  # type: ignore[arg-type]
            good.append((path, obj))
        out[key] = good
    return document, out["CFItems"], out["CFAssociations"], problems


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


async def _existing(session: AsyncSession, model: Any, identifiers: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for chunk in _chunks(identifiers):
        for row in (await session.execute(select(model).where(model.identifier.in_(chunk)))).scalars():
            found[row.identifier] = row
    return found


def _item_columns(obj: dict[str, Any]) -> dict[str, Any]:
    levels = obj.get("educationLevel")
    return {
        "uri": obj["uri"],
        "human_coding_scheme": obj.get("humanCodingScheme"),
        "full_statement": obj["fullStatement"],
        "item_type": obj.get("CFItemType"),
        "education_level": list(levels) if isinstance(levels, list) else None,
        "last_change_at": _instant(obj.get("lastChangeDateTime")),
    }


def _association_columns(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "association_type": obj["associationType"],
        "origin_uri": _link_uri(obj["originNodeURI"]) or "",
        "destination_uri": _link_uri(obj["destinationNodeURI"]) or "",
        "sequence_number": obj.get("sequenceNumber"),
        "last_change_at": _instant(obj.get("lastChangeDateTime")),
    }


async def _upsert_children(
    session: AsyncSession, model: Any, document_id: str, objects: list[tuple[str, dict]], keep: set[str],
    columns: Any, counts: Counts, now: datetime,
) -> None:
    existing = await _existing(session, model, [obj["identifier"] for _, obj in objects])
    for _, obj in objects:
        row = existing.get(obj["identifier"])
        if row is None:
            session.add(model(identifier=obj["identifier"], document_identifier=document_id, data=obj,
                              updated_at=now, **columns(obj)))
            counts.created += 1
        elif row.data == obj and row.document_identifier == document_id:
            counts.unchanged += 1
        else:
            for name, value in {"document_identifier": document_id, "data": obj, "updated_at": now, **columns(obj)}.items():
                setattr(row, name, value)
            counts.updated += 1
    # The package is the whole framework: what it no longer names is gone.
    stale = [i for i in (await session.execute(
        select(model.identifier).where(model.document_identifier == document_id))).scalars() if i not in keep]
    for chunk in _chunks(stale):
        await session.execute(delete(model).where(model.identifier.in_(chunk)))
    counts.removed += len(stale)


async def import_package(
    *, session: AsyncSession, package: Any, schemas_dir: Path | None, now: datetime, provider_id: UUID | None = None
) -> ImportResult:
    """Validate and store one CFPackage (in the caller's transaction)."""
    document, items, associations, problems = check_package(package, schemas_dir)
    doc_id = document["identifier"]
    doc_columns = {
        "uri": document["uri"], "package_uri": _link_uri(document.get("CFPackageURI")),
        "official_source_url": document.get("officialSourceURL"), "title": document["title"],
        "creator": document.get("creator"), "adoption_status": document.get("adoptionStatus"),
        "last_change_at": _instant(document.get("lastChangeDateTime")),
    }
    row = await session.get(CaseDocument, doc_id)
    if row is None:
        session.add(CaseDocument(identifier=doc_id, data=document, imported_by=provider_id, created_at=now,
                                 updated_at=now, **doc_columns))
        status = "created"
    elif row.data == document:
        status = "unchanged"
    else:
        for name, value in {"data": document, "updated_at": now, "imported_by": provider_id, **doc_columns}.items():
            setattr(row, name, value)
        status = "updated"
    await session.flush()
    result = ImportResult(doc_id, document["uri"], document["title"], status, invalid=problems)

    def named(key: str) -> set[str]:  # identifiers the package still names, valid or not
        return {o["identifier"] for o in package.get(key) or [] if isinstance(o, dict) and isinstance(o.get("identifier"), str)}

    await _upsert_children(session, CaseItem, doc_id, items, named("CFItems"), _item_columns, result.items, now)
    await session.flush()
    await _upsert_children(session, CaseAssociation, doc_id, associations, named("CFAssociations"),
                           _association_columns, result.associations, now)
    await session.flush()
    return result


# -- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemView:
    identifier: str
    uri: str
    statement: str
    human_coding_scheme: str | None
    item_type: str | None
    education_level: list[str] | None
    document_identifier: str
    document_title: str
    document_uri: str


async def find_items(session: AsyncSession, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], ItemView]:
    """Imported items for skills given as (frameworkUri, code), in at most three statements.

    A skill names an item when its ``frameworkUri`` is the item's URI, or when it is the
    document's URI (or its CASE 1.0 package URI, or its officialSourceURL) and ``code`` is the
    item's humanCodingScheme (or its identifier).
    """
    if not keys:
        return {}
    uris = sorted({uri for uri, _ in keys})
    codes = sorted({code for _, code in keys})
    by_uri: dict[str, CaseItem] = {}
    for chunk in _chunks(uris):
        for item in (await session.execute(select(CaseItem).where(CaseItem.uri.in_(chunk)))).scalars():
            by_uri.setdefault(item.uri, item)
    docs: dict[str, CaseDocument] = {}
    for chunk in _chunks(uris):
        query = select(CaseDocument).where(or_(CaseDocument.uri.in_(chunk), CaseDocument.package_uri.in_(chunk),
                                               CaseDocument.official_source_url.in_(chunk)))
        for doc in (await session.execute(query)).scalars():
            docs[doc.identifier] = doc
    by_code: dict[tuple[str, str], CaseItem] = {}
    if docs:
        for chunk in _chunks(codes):
            query = select(CaseItem).where(CaseItem.document_identifier.in_(list(docs)), or_(
                CaseItem.human_coding_scheme.in_(chunk), CaseItem.identifier.in_(chunk)))
            for item in (await session.execute(query)).scalars():
                for code in {item.human_coding_scheme, item.identifier} - {None}:
                    by_code.setdefault((item.document_identifier, code), item)  # type: ignore[index]
    missing_docs = {i.document_identifier for i in by_uri.values()} - set(docs)
    if missing_docs:
        for doc in (await session.execute(select(CaseDocument).where(CaseDocument.identifier.in_(sorted(missing_docs))))).scalars():
            docs[doc.identifier] = doc
    found: dict[tuple[str, str], ItemView] = {}
    for uri, code in keys:
        item = by_uri.get(uri)
        if item is None:
            for doc in docs.values():
                if uri in (doc.uri, doc.package_uri, doc.official_source_url):
                    item = by_code.get((doc.identifier, code))
                    if item is not None:
                        break
        if item is not None:
            doc = docs[item.document_identifier]
            found[(uri, code)] = ItemView(item.identifier, item.uri, item.full_statement, item.human_coding_scheme,
                                          item.item_type, item.education_level, doc.identifier, doc.title, doc.uri)
    return found


@dataclass(frozen=True, slots=True)
class DocumentSummary:
    identifier: str
    uri: str
    title: str
    creator: str | None
    adoption_status: str | None
    last_change_at: datetime | None
    items: int
    associations: int
    updated_at: datetime


async def list_documents(session: AsyncSession) -> list[DocumentSummary]:
    from sqlalchemy import func

    item_counts = dict((await session.execute(
        select(CaseItem.document_identifier, func.count()).group_by(CaseItem.document_identifier))).all())
    assoc_counts = dict((await session.execute(
        select(CaseAssociation.document_identifier, func.count()).group_by(CaseAssociation.document_identifier))).all())
    docs = (await session.execute(select(CaseDocument).order_by(CaseDocument.title, CaseDocument.identifier))).scalars()
    return [
        DocumentSummary(d.identifier, d.uri, d.title, d.creator, d.adoption_status, d.last_change_at,
                        item_counts.get(d.identifier, 0), assoc_counts.get(d.identifier, 0), d.updated_at)
        for d in docs
    ]
