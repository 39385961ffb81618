"""Reading a OneRoster 1.1/1.2 CSV set (a directory or a zip) with per-row problems and line numbers.

Spec references: "1.1 CSV" is *OneRoster v1.1 CSV Tables* (IMS Final Release), "1.2 CSV" is
*OneRoster v1.2 CSV Binding* (1EdTech). Both bind to RFC 4180 CSV, UTF-8, a header row naming the
columns, and a ``manifest.csv`` of ``propertyName,value`` pairs (1.1 CSV §2.1 / 1.2 CSV §3.1).

What is tolerated (reported as a warning, row kept) and what is refused (row reported, rest imported):

- encoding: UTF-8, with or without BOM; a file that is not UTF-8 is read as Latin-1 and that is
  reported (real SIS exports from Windows do this); nothing else is guessed;
- headers: matched case-insensitively and trimmed; known misspellings seen in real exports
  (``dataLastModified``, ``preffered*``) are mapped to the spec names (warning); empty trailing
  header columns are ignored; a missing *required* column refuses the whole file (reported at
  line 1); unknown columns are ignored;
- rows: a row with more non-empty fields than the header, or fewer fields than the required
  columns need, is refused; a required value that is empty is refused; dates we use must be
  ISO 8601 ``YYYY-MM-DD`` (1.1 CSV §2.2 "Date" / 1.2 CSV §3.3), else the row is refused; enum values
  are matched case-insensitively (warning when not in the spec's case);
- ``status``/``dateLastModified`` are empty in bulk files and ``active``/``tobedeleted`` in delta
  files (1.1 CSV §2.1.1 "Bulk and delta", 1.2 CSV §3.1.2).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

ENTITIES = (
    "academicSessions", "orgs", "courses", "classes", "users", "roles", "demographics", "enrollments",
    "categories", "lineItems", "results",
)

# Columns the connector needs; a file missing one is refused (others are ignored).
REQUIRED: dict[str, tuple[str, ...]] = {
    "academicSessions": ("sourcedId", "title", "type", "startDate", "endDate"),
    "orgs": ("sourcedId", "name"),
    "courses": ("sourcedId", "title"),
    "classes": ("sourcedId", "title", "courseSourcedId", "schoolSourcedId", "termSourcedIds"),
    "users": ("sourcedId", "givenName", "familyName"),
    "roles": ("sourcedId", "userSourcedId", "roleType", "role"),
    "demographics": ("sourcedId", "birthDate"),
    "enrollments": ("sourcedId", "classSourcedId", "userSourcedId", "role"),
    "categories": ("sourcedId", "title"),
    "lineItems": ("sourcedId", "title", "classSourcedId"),
    "results": ("sourcedId", "lineItemSourcedId", "studentSourcedId", "score"),
}
# Values that must not be empty (beyond sourcedId).
REQUIRED_VALUES: dict[str, tuple[str, ...]] = {
    "orgs": ("name",),
    "courses": ("title",),
    "classes": ("title",),
    "users": ("givenName", "familyName"),
    "roles": ("userSourcedId", "role"),
    "enrollments": ("classSourcedId", "userSourcedId", "role"),
    "categories": ("title",),
    "lineItems": ("title",),
    "results": ("lineItemSourcedId", "studentSourcedId"),
}
# ISO dates the connector uses (empty allowed unless also in REQUIRED_VALUES).
DATES: dict[str, tuple[str, ...]] = {
    "academicSessions": ("startDate", "endDate"),
    "demographics": ("birthDate",),
    "enrollments": ("beginDate", "endDate"),
    "lineItems": ("assignDate", "dueDate"),
    "results": ("scoreDate",),
}
MISSPELT = {
    "datalastmodified": "dateLastModified",
    "prefferedgivenname": "preferredGivenName",
    "prefferedmiddlename": "preferredMiddleName",
    "prefferedfamilyname": "preferredFamilyName",
}
# Enumerations compared case-insensitively (1.1 CSV §4 / 1.2 CSV §5 vocabularies).
ENUMS = {"status": ("active", "tobedeleted", "inactive"), "role": (), "roleType": ("primary", "secondary")}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$")


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # invalid | warning
    ref: str  # "users.csv:7"
    reason: str
    raw: str = ""
    sourced_id: str = ""  # of a refused row, when it could be read


@dataclass
class Row:
    file: str
    line: int
    values: dict[str, str]

    @property
    def ref(self) -> str:
        return f"{self.file}:{self.line}"

    def get(self, key: str) -> str:
        return self.values.get(key, "")


@dataclass
class RosterSet:
    version: str | None = None
    modes: dict[str, str] = field(default_factory=dict)  # entity -> bulk | delta
    rows: dict[str, list[Row]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    digest: str = ""
    # entity -> why its file is not known to list every record (refused, unreadable rows): a bulk
    # file in here never withdraws what it leaves out.
    incomplete: dict[str, str] = field(default_factory=dict)

    def by_id(self, entity: str) -> dict[str, Row]:
        return {r.get("sourcedId"): r for r in self.rows.get(entity, [])}


def parse_date(value: str) -> date | None:
    """ISO 8601 calendar date, or the date part of an ISO date-time; else None."""
    value = value.strip()
    if _ISO_DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    if _ISO_DATETIME.match(value):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _files(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() == ".csv"}
    with zipfile.ZipFile(path) as archive:
        out: dict[str, bytes] = {}
        for info in archive.infolist():
            name = info.filename.rsplit("/", 1)[-1]
            if not info.is_dir() and name.lower().endswith(".csv"):
                out[name] = archive.read(info)
        return out


def _decode(name: str, raw: bytes, problems: list[Problem]) -> str:
    try:
        return raw.decode("utf-8-sig")  # RFC 3629; a BOM is tolerated and dropped
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(Problem("warning", f"{name}:{line}", f"not UTF-8 ({exc.reason} at byte {exc.start}); the file was read as Latin-1"))
        return raw.decode("latin-1")


def _canonical_headers(entity: str, header: list[str], name: str, problems: list[Problem]) -> list[str | None]:
    known = {c.lower(): c for cols in REQUIRED.values() for c in cols}
    known.update({c.lower(): c for cols in DATES.values() for c in cols})
    extra = (
        "status", "dateLastModified", "role", "email", "agentSourcedIds", "enabledUser", "primaryOrgSourcedId",
        "orgSourcedIds", "categorySourcedId", "classCode", "courseCode", "scoreStatus", "comment", "description",
        "resultValueMin", "resultValueMax", "identifier", "username", "schoolYear", "parentSourcedId", "primary",
        "middleName", "preferredGivenName", "preferredMiddleName", "preferredFamilyName", "schoolSourcedId",
        "orgSourcedId", "gradingPeriodSourcedId", "class", "type", "weight",
    )
    known.update({c.lower(): c for c in extra})
    out: list[str | None] = []
    for raw in header:
        key = raw.strip()
        if not key:
            out.append(None)
            continue
        lower = key.lower()
        if lower in MISSPELT:
            problems.append(Problem("warning", f"{name}:1", f"column {key!r} read as {MISSPELT[lower]!r}"))
            out.append(MISSPELT[lower])
        else:
            out.append(known.get(lower, key))
    return out


def read_entity(entity: str, name: str, text: str, problems: list[Problem]) -> list[Row]:
    reader = csv.reader(io.StringIO(text, newline=""), dialect="excel", strict=True)  # RFC 4180
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        problems.append(Problem("invalid", f"{name}:1", f"header is not valid CSV: {exc}"))
        return []
    columns = _canonical_headers(entity, header, name, problems)
    missing = [c for c in REQUIRED[entity] if c not in columns]
    if missing:
        problems.append(Problem("invalid", f"{name}:1", f"missing required column(s) {', '.join(missing)}: the file was not imported"))
        return []
    width = max(i for i, c in enumerate(columns) if c is not None) + 1
    rows: list[Row] = []
    seen: dict[str, int] = {}
    line = 1
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(Problem("invalid", f"{name}:{start}", f"malformed CSV: {exc}"))
            continue
        line = start
        if not any(f.strip() for f in fields):
            continue
        raw = ",".join(fields)
        ref = f"{name}:{line}"
        at = columns.index("sourcedId")
        sid = fields[at].strip() if at < len(fields) else ""
        if len(fields) < width and len(fields) < len(header):
            needed = max(columns.index(c) for c in REQUIRED[entity]) + 1
            if len(fields) < needed:
                problems.append(Problem("invalid", ref, f"{len(fields)} fields, the header has {len(header)}", raw, sid))
                continue
        if any(f.strip() for f in fields[len(header):]):
            problems.append(Problem("invalid", ref, f"{len(fields)} fields, the header has {len(header)}", raw, sid))
            continue
        values = {c: fields[i].strip() for i, c in enumerate(columns) if c is not None and i < len(fields)}
        reason = _check(entity, values)
        if reason is not None:
            problems.append(Problem("invalid", ref, reason, raw, sid))
            continue
        if values.get("status") and values["status"] != values["status"].lower():
            problems.append(Problem("warning", ref, f"status {values['status']!r} read as {values['status'].lower()!r}"))
        for key in ("status", "role", "roleType"):  # enumerations are compared case-insensitively
            if values.get(key):
                values[key] = values[key].lower()
        modified = values.get("dateLastModified", "")
        if modified and parse_date(modified) is None:
            problems.append(Problem("warning", ref, f"dateLastModified {modified!r} is not ISO 8601 (ignored)"))
        sid = values["sourcedId"]
        if sid in seen:
            problems.append(Problem("warning", ref, f"sourcedId {sid!r} repeats line {seen[sid]}; the later row is used"))
        seen[sid] = line
        rows.append(Row(name, line, values))
    return rows


def _check(entity: str, values: dict[str, str]) -> str | None:
    if not values.get("sourcedId"):
        return "sourcedId is empty"
    for key in REQUIRED_VALUES.get(entity, ()):
        if not values.get(key):
            return f"{key} is empty"
    status = values.get("status", "").lower()
    if status and status not in ENUMS["status"]:
        return f"status {values['status']!r} is not active or tobedeleted"
    for key in DATES.get(entity, ()):
        value = values.get(key, "")
        if value and parse_date(value) is None:
            return f"{key} {value!r} is not an ISO 8601 date (YYYY-MM-DD)"
    return None


def read_set(path: Path) -> RosterSet:
    files = _files(path)
    result = RosterSet()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    result.digest = digest.hexdigest()
    lower = {n.lower(): n for n in files}
    manifest: dict[str, str] = {}
    if "manifest.csv" in lower:
        name = lower["manifest.csv"]
        text = _decode(name, files[name], result.problems)
        for number, fields in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            if number == 1 or len(fields) < 2:
                continue
            manifest[fields[0].strip()] = fields[1].strip().lower()
        result.version = manifest.get("oneroster.version")
    else:
        result.problems.append(Problem("warning", "manifest.csv", "no manifest.csv: every file present is read as bulk"))
    for entity in ENTITIES:
        name = lower.get(f"{entity.lower()}.csv")
        mode = manifest.get(f"file.{entity}", "bulk" if name else "absent") or ("bulk" if name else "absent")
        if mode not in ("bulk", "delta", "absent"):
            result.problems.append(Problem("warning", "manifest.csv", f"file.{entity} {mode!r} is not bulk, delta or absent"))
            mode = "bulk" if name else "absent"
        if name is None:
            if mode != "absent":
                result.problems.append(Problem("invalid", f"{entity}.csv", f"the manifest lists {entity}.csv as {mode} but it is missing"))
            continue
        if mode == "absent":
            result.problems.append(Problem("warning", f"{name}:1", f"the manifest says file.{entity} is absent: the file was not read"))
            continue
        result.modes[entity] = mode
        text = _decode(name, files[name], result.problems)
        before = len(result.problems)
        result.rows[entity] = read_entity(entity, name, text, result.problems)
        refused = [p for p in result.problems[before:] if p.kind == "invalid"]
        if not text.strip():
            result.incomplete[entity] = "the file is empty (not even a header row)"
        elif any(p.ref == f"{name}:1" for p in refused):
            result.incomplete[entity] = "the file was refused"
        elif unread := sum(1 for p in refused if not p.sourced_id):
            result.incomplete[entity] = f"{unread} row(s) whose sourcedId could not be read"
    return result


def row_dict(row: Row) -> dict[str, Any]:
    return dict(row.values)
