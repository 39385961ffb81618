"""The ``oneroster-csv`` connector: roster writes (hub-internal) then records (public API).

1. ``prepare`` (a trusted operator job, direct database writes, each part one transaction): the
   reference rows (orgs, courses, classes, academicSessions, categories, lineItems) are stored
   per instance so a later delta can join against them (1.1 CSV §2.1.1, 1.2 CSV §3.1.2); students
   are matched or created as learners and linked (``hub.roster.service``, the matching rule);
   their parents are invited. No grant is made, no record is written here.
2. ``fetch``/``map``: student enrollments become ``pathways`` entries (kind ``course``) and
   gradebook results become ``skills`` assessments, sent by the runtime through the public
   GraphQL API with the provider's token: consent decides what lands.

Cursor: ``{"digest": SHA-256 of the set, "offset": N}``. The same files resume after N records;
new files (a new bulk or a delta drop at the same path) start from the first record.

Bulk absence (1.1 CSV §2.1.1, 1.2 CSV §3.1.2: a ``bulk`` file is the complete set of its entity,
a ``delta`` file carries only changes): ``prepare`` stamps every enrollment and result the drop
lists with the drop's digest (``oneroster_record``, per instance); once every page is committed,
``withdrawals`` returns the instance's live records of each *bulk* entity whose stamp is older,
i.e. absent from this drop, unless the file is incomplete or more than
``max_withdrawal_fraction`` of the stored entries would go (the safety valve).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from sqlalchemy import select, update

from connectors.base import (
    Connector, InvalidRecord, MapContext, Operation, Retract, SourceConfig, SourcePage, SourceRecord, Upsert, Withdrawal,
    register,
)
from connectors.oneroster.csvfiles import RosterSet, Row, parse_date, read_set
from hub.db import transaction, utcnow

REFERENCE = ("orgs", "courses", "classes", "academicSessions", "categories", "lineItems")
PARENT_ROLES = {"parent", "guardian", "relative"}  # 1.1 CSV §4.13 RoleType / 1.2 CSV §5 RoleEnum
STUDENT_ROLES = {"student"}
# Entities whose rows become entries: entity -> (section, sourceId kind).
RECORDS = {"enrollments": ("pathways", "enrollment"), "results": ("skills", "result")}


class OneRosterCsvConfig(SourceConfig):
    path: Path = Field(description="A directory holding manifest.csv and the entity files, or a .zip of them")
    page_size: int = Field(default=500, ge=1, le=10_000)
    invitation_base_url: str | None = Field(default=None, description="Base URL in invitation links (else the hub URL)")
    max_withdrawal_fraction: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="A bulk file that leaves out more than this fraction of the instance's stored entries of its "
                    "entity withdraws nothing (reported; a truncated export must not wipe records)")
    allow_mass_withdrawal: bool = Field(default=False, description="Lift max_withdrawal_fraction for every run")

    @field_validator("path")
    @classmethod
    def _exists(cls, value: Path) -> Path:
        if not value.exists():
            raise ValueError(f"{value} does not exist")
        return value


def _day(value: str) -> str:
    """ISO date -> RFC 3339 date-time at midnight UTC (the record API wants an instant)."""
    day = parse_date(value)
    if day is None:
        raise InvalidRecord(f"{value!r} is not an ISO 8601 date")
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()


def _number(value: Any, what: str) -> float:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidRecord(f"{what} {value!r} is not a number") from None


@register
class OneRosterCsvConnector(Connector):
    kind = "oneroster-csv"
    Config = OneRosterCsvConfig
    config: OneRosterCsvConfig

    def __init__(self, config: OneRosterCsvConfig) -> None:
        super().__init__(config)
        self._set: RosterSet | None = None
        self._entities: dict[str, dict[str, dict[str, Any]]] = {}
        self._provider_id: Any = None  # set by prepare(), which the runtime runs first

    def roster(self) -> RosterSet:
        if self._set is None:
            self._set = read_set(self.config.path)
        return self._set

    # -- roster phase (hub-internal) --------------------------------------------------------------

    async def prepare(self, *, sessions, instance_name: str, config, report) -> None:  # type: ignore[no-untyped-def]
        from hub.providers.models import OAuthClient
        from hub.roster.models import OneRosterEntity
        from hub.roster.service import RosterStudent, upsert_student

        data = self.roster()
        for problem in data.problems:
            if problem.kind == "warning":
                report.problem("warning", problem.ref, problem.reason)
        async with transaction(sessions) as session:
            provider_id = (await session.execute(
                select(OAuthClient.provider_id).where(OAuthClient.client_id == config.hub.client_id))).scalar_one_or_none()
            if provider_id is None:
                raise LookupError(f"no provider has OAuth client {config.hub.client_id!r}")
            self._provider_id = provider_id  # the bulk valve counts this provider's stored entries
            for entity in REFERENCE:
                for row in data.rows.get(entity, []):
                    sid = row.get("sourcedId")
                    existing = await session.get(OneRosterEntity, (instance_name, entity, sid))
                    if existing is None:
                        session.add(OneRosterEntity(instance_name=instance_name, entity=entity, sourced_id=sid, data=row.values))
                    elif existing.data != row.values:
                        existing.data, existing.updated_at = dict(row.values), utcnow()
            await session.flush()
            stored = (await session.execute(select(OneRosterEntity).where(OneRosterEntity.instance_name == instance_name))).scalars()
            self._entities = {}
            for item in stored:
                self._entities.setdefault(item.entity, {})[item.sourced_id] = dict(item.data)

        await self._note_listed(sessions, instance_name)

        users = data.by_id("users")
        roles: dict[str, set[str]] = {}
        for row in data.rows.get("roles", []):  # 1.2 CSV: roles.csv carries the user's roles
            if row.get("status") != "tobedeleted":
                roles.setdefault(row.get("userSourcedId"), set()).add(row.get("role"))
        for sid, row in users.items():
            if row.get("role"):  # 1.1 CSV users.csv "role"
                roles.setdefault(sid, set()).add(row.get("role"))
        births = {sid: parse_date(r.get("birthDate")) for sid, r in data.by_id("demographics").items()}
        counts: Counter[str] = Counter()
        base_url = self.config.invitation_base_url or config.hub.url
        students = [r for sid, r in users.items() if roles.get(sid, set()) & STUDENT_ROLES]
        if users and not roles:
            report.problem("warning", "users.csv:1", "no user roles (1.1: users.csv role, 1.2: roles.csv): no students were found")
        for start in range(0, len(students), 200):
            async with transaction(sessions) as session:
                now = utcnow()
                for row in students[start : start + 200]:
                    if row.get("status") == "tobedeleted" or row.get("enabledUser").lower() == "false":
                        counts["students_ignored_inactive"] += 1
                        continue
                    agents = []
                    for agent_id in (a.strip() for a in row.get("agentSourcedIds").split(",") if a.strip()):
                        agent = users.get(agent_id)
                        if agent is None:
                            report.problem("warning", row.ref, f"agent {agent_id!r} is not in users.csv")
                        elif roles.get(agent_id, set()) & PARENT_ROLES and "@" in agent.get("email"):
                            agents.append(agent.get("email").lower())
                    student = RosterStudent(row.get("sourcedId"), row.get("givenName"), row.get("familyName"),
                                            births.get(row.get("sourcedId")), agents)
                    outcome = await upsert_student(session=session, provider_id=provider_id, student=student,
                                                   base_url=base_url, now=now)
                    counts[f"learners_{outcome.status}"] += 1
                    if outcome.invitations:
                        counts["invitations"] += outcome.invitations
                    if outcome.status == "no_birth_date":
                        report.problem("held", row.ref, "no learner created: no valid birthDate in demographics.csv "
                                       "(age-based consent rules need one)")
                    elif outcome.status == "ambiguous":
                        report.problem("held", row.ref, "several existing learners match; nothing linked (link by hand)")
        report.roster.update(counts)

    # -- bulk absence ------------------------------------------------------------------------------

    def _listed(self, entity: str) -> tuple[set[str], set[str]]:
        """sourcedIds of ``entity`` this drop lists as live (rows that become entries, and refused
        rows whose id could be read: a row that is only malformed now is not a deletion), and those
        it marks ``tobedeleted``."""
        data = self.roster()
        live: set[str] = set()
        deleted: set[str] = set()
        for row in data.rows.get(entity, []):
            if entity == "enrollments" and row.get("role") not in STUDENT_ROLES:
                continue  # never an entry; a student enrollment turned into another role is gone
            (deleted if row.get("status") == "tobedeleted" else live).add(row.get("sourcedId"))
        prefix = f"{entity.lower()}.csv:"
        for problem in data.problems:
            if problem.kind == "invalid" and problem.sourced_id and problem.ref.lower().startswith(prefix):
                live.add(problem.sourced_id)
        return live - deleted, deleted

    async def _note_listed(self, sessions, instance_name: str) -> None:  # type: ignore[no-untyped-def]
        """Stamp the records this drop lists with its digest (one transaction; idempotent, so a
        resumed run stamps again). ``withdrawals`` compares the stamps once the drop is imported."""
        from hub.roster.models import OneRosterRecord

        data = self.roster()
        now = utcnow()
        async with transaction(sessions) as session:
            for entity in RECORDS:
                if entity not in data.modes:
                    continue
                live, deleted = self._listed(entity)
                stamps = {sid: (last_seen, withdrawn_at) for sid, last_seen, withdrawn_at in (await session.execute(
                    select(OneRosterRecord.sourced_id, OneRosterRecord.last_seen, OneRosterRecord.withdrawn_at).where(
                        OneRosterRecord.instance_name == instance_name, OneRosterRecord.entity == entity))).all()}
                session.add_all(OneRosterRecord(instance_name=instance_name, entity=entity, sourced_id=sid,
                                                last_seen=data.digest, withdrawn_at=now if sid in deleted else None)
                                for sid in sorted((live | deleted) - stamps.keys()))
                where = (OneRosterRecord.instance_name == instance_name, OneRosterRecord.entity == entity)
                # Already stamped live with this drop (a resumed run, or a schedule re-reading an
                # unchanged export): nothing to write.
                seen = sorted(sid for sid in live & stamps.keys() if stamps[sid] != (data.digest, None))
                gone = sorted(sid for sid in deleted & stamps.keys() if stamps[sid][1] is None)
                for start in range(0, max(len(seen), len(gone)), 500):
                    if seen[start : start + 500]:  # listed again: live (a re-sent entry is restored)
                        await session.execute(update(OneRosterRecord).where(
                            *where, OneRosterRecord.sourced_id.in_(seen[start : start + 500])).values(
                            last_seen=data.digest, withdrawn_at=None))
                    if gone[start : start + 500]:  # tobedeleted: map() retracts it
                        await session.execute(update(OneRosterRecord).where(
                            *where, OneRosterRecord.sourced_id.in_(gone[start : start + 500])).values(
                            last_seen=data.digest, withdrawn_at=now))

    async def withdrawals(self, *, sessions, instance_name: str, report, allow_mass_withdrawal: bool = False):  # type: ignore[no-untyped-def]
        """1.1 CSV §2.1.1 / 1.2 CSV §3.1.2: a bulk file holds every record of its entity, so this
        instance's live records of that entity the drop does not list are withdrawn. Only bulk
        files, only their own entity, only records this instance's drops listed (its own sourceIds).
        Called by the runtime after every page of the drop was committed."""
        from hub.roster.models import OneRosterRecord

        data = self.roster()
        owed: list[Withdrawal] = []
        for entity, (section, kind) in RECORDS.items():
            if data.modes.get(entity) != "bulk":
                continue
            async with transaction(sessions) as session:
                live = (await session.execute(select(OneRosterRecord.sourced_id, OneRosterRecord.last_seen).where(
                    OneRosterRecord.instance_name == instance_name, OneRosterRecord.entity == entity,
                    OneRosterRecord.withdrawn_at.is_(None)))).all()
            absent = sorted(sid for sid, seen in live if seen != data.digest)
            if not absent:
                continue
            # The valve compares what would really be withdrawn with what is really stored: records
            # that never became entries (held for an unknown learner, refused) would otherwise dilute
            # the fraction and let a truncated export withdraw every real entry.
            stored = await self._stored(sessions, section, kind, [sid for sid, _ in live])
            absent_stored = [sid for sid in absent if sid in stored]
            ref = f"{entity}.csv"
            if entity in data.incomplete:
                report.held["withdrawal_incomplete_file"] += len(absent)
                report.problem("held", ref, f"{data.incomplete[entity]}: the {len(absent)} record(s) it leaves out "
                               "are not withdrawn")
                continue
            limit = self.config.max_withdrawal_fraction
            if len(absent_stored) > limit * len(stored) and not (allow_mass_withdrawal or self.config.allow_mass_withdrawal):
                report.held["mass_withdrawal"] += len(absent)
                report.problem("held", ref, f"the bulk file leaves out {len(absent_stored)} of this instance's "
                               f"{len(stored)} stored {entity} ({len(absent_stored) / len(stored):.0%}, over "
                               f"max_withdrawal_fraction {limit:.0%}): "
                               "nothing withdrawn; if the export is complete, `kinfolio sync run NAME --allow-mass-withdrawal` (or allow_mass_withdrawal in the source config)")
                continue
            owed += [Withdrawal(ref, f"absent from the bulk {entity}.csv: sourcedId {sid}", section, f"oneroster:{kind}:{sid}")
                     for sid in absent]
        return owed

    async def _stored(self, sessions, section: str, kind: str, sourced_ids: list[str]) -> set[str]:  # type: ignore[no-untyped-def]
        """Which of these records have a live entry from this instance's provider."""
        from hub.records.service import learners_of_sources

        if self._provider_id is None:
            raise RuntimeError("withdrawals() before prepare(): the provider is not known yet")
        async with transaction(sessions) as session:
            found = await learners_of_sources(session=session, section=section, provider_id=self._provider_id,
                                              source_ids=[f"oneroster:{kind}:{sid}" for sid in sourced_ids])
        return {source_id.removeprefix(f"oneroster:{kind}:") for ids in found.values() for source_id in ids}

    async def withdrawn(self, *, sessions, instance_name: str, withdrawals: list[Withdrawal]) -> None:  # type: ignore[no-untyped-def]
        from hub.roster.models import OneRosterRecord

        now = utcnow()
        by_entity: dict[str, list[str]] = {}
        for item in withdrawals:
            kind, sid = item.source_id.removeprefix("oneroster:").split(":", 1)
            by_entity.setdefault("enrollments" if kind == "enrollment" else "results", []).append(sid)
        async with transaction(sessions) as session:
            for entity, ids in by_entity.items():
                for start in range(0, len(ids), 500):
                    await session.execute(update(OneRosterRecord).where(
                        OneRosterRecord.instance_name == instance_name, OneRosterRecord.entity == entity,
                        OneRosterRecord.sourced_id.in_(ids[start : start + 500])).values(withdrawn_at=now))

    # -- records (public API) ---------------------------------------------------------------------

    def _items(self) -> list[SourceRecord]:
        data = self.roster()
        items = [SourceRecord(p.ref, p.raw, p.reason) for p in data.problems if p.kind == "invalid"]
        for row in data.rows.get("enrollments", []):
            if row.get("role") in STUDENT_ROLES:
                items.append(SourceRecord(row.ref, self._enrollment(row)))
        for row in data.rows.get("results", []):
            items.append(SourceRecord(row.ref, self._result(row)))
        return items

    def _ref(self, entity: str, sid: str) -> dict[str, Any] | None:
        return self._entities.get(entity, {}).get(sid)

    def _enrollment(self, row: Row) -> dict[str, Any]:
        klass = self._ref("classes", row.get("classSourcedId")) or {}
        course = self._ref("courses", klass.get("courseSourcedId", "")) or {}
        school = self._ref("orgs", row.get("schoolSourcedId") or klass.get("schoolSourcedId", "")) or {}
        terms = [self._ref("academicSessions", t.strip()) for t in klass.get("termSourcedIds", "").split(",") if t.strip()]
        starts = sorted(t["startDate"] for t in terms if t and t.get("startDate"))
        return {"type": "enrollment", **row.values, "class": klass or None, "course": course or None,
                "school": school or None, "termStart": starts[0] if starts else None}

    def _result(self, row: Row) -> dict[str, Any]:
        item = self._ref("lineItems", row.get("lineItemSourcedId")) or {}
        category = self._ref("categories", item.get("categorySourcedId", "")) or {}
        return {"type": "result", **row.values, "lineItem": item or None, "category": category or None}

    def estimate_total(self) -> int | None:
        return None

    async def fetch(self, cursor: str | None) -> AsyncIterator[SourcePage]:
        data = self.roster()
        position = json.loads(cursor) if cursor else {}
        offset = position.get("offset", 0) if position.get("digest") == data.digest else 0
        items = self._items()
        for start in range(offset, len(items), self.config.page_size):
            page = items[start : start + self.config.page_size]
            yield SourcePage(page, json.dumps({"digest": data.digest, "offset": start + len(page)}))
        if offset >= len(items):
            yield SourcePage([], json.dumps({"digest": data.digest, "offset": len(items)}))

    def map(self, record: SourceRecord, context: MapContext) -> list[Operation]:
        payload = record.payload
        if not isinstance(payload, dict) or payload.get("type") not in ("enrollment", "result"):
            raise InvalidRecord("not a OneRoster enrollment or result")
        if payload.get("status") == "tobedeleted":
            # 1.1 CSV §2.1.1 / 1.2 CSV §3.1: a delta row marked tobedeleted withdraws what the
            # row's earlier import contributed (this provider's own entry, decided per learner by
            # the hub); an entry that was never stored is reported unchanged.
            kind = payload["type"]
            section = "pathways" if kind == "enrollment" else "skills"
            return [Retract(section, f"oneroster:{kind}:{payload['sourcedId']}")]
        if payload["type"] == "enrollment":
            return [self._map_enrollment(payload)]
        return [self._map_result(payload)]

    @staticmethod
    def _map_enrollment(p: dict[str, Any]) -> Upsert:
        klass, course, school = p.get("class"), p.get("course"), p.get("school")
        if klass is None:
            raise InvalidRecord(f"class {p.get('classSourcedId')!r} is not in classes.csv (nor in an earlier import)")
        title = klass.get("title") or (course or {}).get("title")
        where = (school or {}).get("name")
        # PathwayInput has no title: the organisation names the class and the school that runs it.
        name = f"{title} ({where})" if where else title
        began = p.get("beginDate") or p.get("termStart")
        if not began:
            raise InvalidRecord("no beginDate and no term startDate: when the course began is unknown")
        entry = {"source_id": f"oneroster:enrollment:{p['sourcedId']}", "kind": "course",
                 "organisation": {"name": name[:500]}, "occurred_at": _day(began)}
        return Upsert("oneroster", p["userSourcedId"], "pathways", entry)

    @staticmethod
    def _map_result(p: dict[str, Any]) -> Upsert:
        item, category = p.get("lineItem"), p.get("category")
        if item is None:
            raise InvalidRecord(f"lineItem {p.get('lineItemSourcedId')!r} is not in lineItems.csv (nor in an earlier import)")
        if not p.get("score"):
            raise InvalidRecord(f"no score (scoreStatus {p.get('scoreStatus') or 'empty'!r})")
        if not item.get("resultValueMin") or not item.get("resultValueMax"):
            raise InvalidRecord("the lineItem has no resultValueMin/resultValueMax: the score's scale is unknown")
        when = p.get("scoreDate") or item.get("dueDate") or item.get("assignDate")
        if not when:
            raise InvalidRecord("no scoreDate (nor lineItem dueDate/assignDate)")
        label = item["title"]
        scale = (category or {}).get("title") or label
        entry = {
            "source_id": f"oneroster:result:{p['sourcedId']}",
            "skill": {"label": label[:500]},
            "scale": {"name": scale[:200], "min": _number(item["resultValueMin"], "resultValueMin"),
                      "max": _number(item["resultValueMax"], "resultValueMax")},
            "proficiency": _number(p["score"], "score"),
            "assessed_at": _day(when),
        }
        return Upsert("oneroster", p["studentSourcedId"], "skills", entry)
