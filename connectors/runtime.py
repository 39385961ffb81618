"""Running a connector instance: fetch -> map -> validate -> resolve learners -> send -> commit cursor.

Per page:
1. every record is mapped (``InvalidRecord`` -> reported with its source reference and kept in
   the dead-letter store) and each entry is validated with the same pydantic models the hub uses
   (``schemas.records``), so one bad record never sinks a batch;
2. learner identifiers are resolved with ``learnerLinks``: ``unknown`` -> held back (reported +
   dead letter, replayable once the learner is linked; never guessed); ``consent_required`` ->
   refused with reason ``no_grant`` and *not* kept (data the family has not consented to is not
   retained; a ``--full`` re-run after consent sends it);
3. entries go to the hub's batch mutations, several learners per request, upserts before
   retractions; the hub's consent decision refuses per learner and section (reported with reason);
4. only then the page's cursor, its dead letters and the run's progress are committed together.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from connectors import state
from connectors.base import (
    Connector,
    ImportCredential,
    ImportFramework,
    InvalidRecord,
    MapContext,
    Retract,
    SourcePage,
    SourceRecord,
    Upsert,
    Withdrawal,
    connector_class,
)
from connectors.client import HubClient, HubError, camelize
from connectors.report import RunReport
from schemas import records as record_schemas

Progress = Callable[[RunReport], Awaitable[None] | None]
# importCredentials' limits per call (hub/graphql/credential_import.py)
IMPORT_MAX_ITEMS = 100
IMPORT_MAX_CHARS = 5_000_000


@dataclass
class RunOutcome:
    run_id: int | None
    report: RunReport
    status: str
    error: str | None = None


@dataclass
class _Pending:
    record: SourceRecord
    failed: bool = False


@dataclass
class PageResult:
    dead_letters: list[state.DeadLetterIn] = field(default_factory=list)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"])
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    message = record_schemas.error_message(err)
    return f"{where}: {message}{more}" if where else f"{message}{more}"


class Sync:
    """One run's machinery for one instance (also used for replaying dead letters)."""

    def __init__(self, connector: Connector, hub: HubClient, config: state.InstanceConfig) -> None:
        self.connector = connector
        self.hub = hub
        self.config = config
        self.report = RunReport()
        self.context = MapContext()
        self._links: dict[tuple[str, str], tuple[str, str | None]] = {}

    async def _resolve(self, keys: set[tuple[str, str]]) -> None:
        missing = sorted(k for k in keys if k not in self._links)
        by_system: dict[str, list[str]] = defaultdict(list)
        for system, external_id in missing:
            by_system[system].append(external_id)
        for system, ids in by_system.items():
            for start in range(0, len(ids), 1000):
                answers = await self.hub.learner_links(system, ids[start : start + 1000])
                for external_id, answer in answers.items():
                    self._links[(system, external_id)] = answer

    async def process(self, records: list[SourceRecord]) -> PageResult:
        result = PageResult()
        report = self.report
        upserts: list[tuple[_Pending, Upsert, dict[str, Any]]] = []
        retracts: list[tuple[_Pending, Retract]] = []
        imports: list[tuple[_Pending, ImportCredential]] = []
        frameworks: list[tuple[_Pending, ImportFramework]] = []
        pendings: list[_Pending] = []

        def dead(p: _Pending, code: str, reason: str) -> None:
            if not p.failed:
                p.failed = True
                result.dead_letters.append(
                    state.DeadLetterIn(p.record.ref, code, reason, self.connector.dead_letter_payload(p.record))
                )

        for record in records:
            report.read += 1
            pending = _Pending(record)
            pendings.append(pending)
            if record.problem is not None:
                report.invalid += 1
                report.problem("invalid", record.ref, record.problem)
                dead(pending, "invalid", record.problem)
                continue
            try:
                operations = self.connector.map(record, self.context)
                checked = []
                for op in operations:
                    if isinstance(op, Upsert):
                        model = record_schemas.SECTION_INPUTS[op.section]
                        try:
                            entry = model.model_validate(op.entry)
                        except ValidationError as exc:
                            raise InvalidRecord(_first_error(exc)) from None
                        checked.append((op, camelize(entry.model_dump(mode="json", exclude_none=True))))
                    else:  # retractions and credentials: the hub validates (verifies) them
                        checked.append((op, None))
            except InvalidRecord as exc:
                report.invalid += 1
                report.problem("invalid", record.ref, exc.reason)
                dead(pending, "invalid", exc.reason)
                continue
            for op, payload in checked:
                if isinstance(op, Upsert):
                    upserts.append((pending, op, payload))
                elif isinstance(op, ImportCredential):
                    imports.append((pending, op))
                elif isinstance(op, ImportFramework):
                    frameworks.append((pending, op))
                else:
                    retracts.append((pending, op))

        await self._resolve({(op.system, op.external_id) for _, op, _ in upserts}
                            | {(op.system, op.external_id) for _, op in imports})

        # Group by (section, learner); within a page the last version of a source id wins.
        groups: dict[tuple[str, str], dict[str, tuple[_Pending, dict[str, Any]]]] = defaultdict(dict)
        for pending, op, payload in upserts:
            learner = self._linked(pending, op.system, op.external_id, op.section, dead)
            if learner is not None:
                group = groups[(op.section, learner)]
                if payload["sourceId"] in group:
                    report.unchanged += 1  # superseded by a later version in the same page
                group[payload["sourceId"]] = (pending, payload)

        await self._send(groups, dead)
        if imports:
            await self._import(imports, dead)

        await self._retract([op for _, op in retracts])
        for pending, op in frameworks:
            self._tally_framework(pending, await self.hub.import_framework(op.package), dead)
        return result

    async def _retract(self, retracts: list[Retract] | list[Withdrawal]) -> set[tuple[str, str]]:
        """``retractOwnEntries`` per section, ``batch_size`` ids per call (decided per learner).

        Returns the (section, sourceId) pairs of calls in which consent refused some ids: the answer
        counts refusals but does not name them, so the whole call's ids count as not done.
        """
        report = self.report
        by_section: dict[str, list[str]] = defaultdict(list)
        for op in retracts:
            by_section[op.section].append(op.source_id)
        refused: set[tuple[str, str]] = set()
        for section, section_ids in by_section.items():
            ids = list(dict.fromkeys(section_ids))
            for start in range(0, len(ids), self.config.batch_size):
                batch = ids[start : start + self.config.batch_size]
                answer = await self.hub.retract(section, batch)
                report.retracted += answer["retracted"]
                # Nothing live to withdraw (never stored, or withdrawn by an earlier run): unchanged.
                report.unchanged += answer["received"] - answer["retracted"] - answer["refused"]
                if answer["refused"]:
                    report.refused["retraction_refused"] += answer["refused"]
                    refused.update((section, source_id) for source_id in batch)
        return refused

    async def withdraw(self, withdrawals: list[Withdrawal]) -> list[Withdrawal]:
        """Withdraw entries whose source records are gone; each is listed in the details. Returns
        the ones done: a withdrawal consent refused stays owed, and the next run tries it again."""
        refused = await self._retract(withdrawals)
        done = []
        for item in withdrawals:
            if (item.section, item.source_id) in refused:
                self.report.problem("withdrawal refused", item.ref, f"{item.reason}; owed, tried again by the next run")
            else:
                self.report.problem("withdrawn", item.ref, item.reason)
                done.append(item)
        return done

    def _tally_framework(self, pending, outcome, dead) -> None:  # type: ignore[no-untyped-def]
        """A CFPackage counts its document, items and associations; invalid items are reported
        one by one (``REF CFItems[3]``) and the rest stays imported."""
        report, ref = self.report, pending.record.ref
        if outcome.data is not None:
            data = outcome.data
            report.created += data["document"] == "created"
            report.updated += data["document"] == "updated"
            report.unchanged += data["document"] == "unchanged"
            for part in ("items", "associations"):
                report.created += data[part]["created"]
                report.updated += data[part]["updated"]
                report.unchanged += data[part]["unchanged"]
                report.retracted += data[part]["removed"]
            for problem in data["invalid"]:
                report.invalid += 1
                report.problem("invalid", f"{ref} {problem['path']}", f"{problem['identifier'] or '-'}: {problem['reason']}")
        elif outcome.code == "INSUFFICIENT_SCOPE":
            report.refused["insufficient_scope"] += 1
            report.problem("refused", ref, outcome.message or "insufficient_scope")
        elif outcome.code == "BAD_USER_INPUT":
            report.invalid += 1
            report.problem("invalid", ref, outcome.message or "invalid package")
            dead(pending, "invalid", outcome.message or "invalid package")
        else:
            raise HubError(f"importFramework failed ({outcome.code}): {outcome.message}")

    async def _send(self, groups, dead) -> None:  # type: ignore[no-untyped-def]
        size = self.config.batch_size
        by_section: dict[str, list[tuple[str, list[tuple[_Pending, dict[str, Any]]]]]] = defaultdict(list)
        for (section, learner), entries in groups.items():
            items = list(entries.values())
            for start in range(0, len(items), size):
                by_section[section].append((learner, items[start : start + size]))
        for section, calls in by_section.items():
            for request in _pack(calls, self.config.calls_per_request, size, lambda items: len(items)):
                outcomes = await self.hub.contribute(section, [(learner, [p for _, p in items]) for learner, items in request])
                for (_learner, items), outcome in zip(request, outcomes, strict=True):
                    self._tally(section, items, outcome, dead)

    def _linked(self, pending: _Pending, system: str, external_id: str, section: str, dead) -> str | None:  # type: ignore[no-untyped-def]
        status, learner = self._links.get((system, external_id), ("unknown", None))
        if status == "consent_required":
            self.report.refused["no_grant"] += 1
            self.report.problem("refused", pending.record.ref, f"{section}: no_grant")
        elif status != "linked" or learner is None:
            self.report.held["unknown_learner"] += 1
            reason = f"no learner is linked to {system} id {external_id!r} for this provider"
            self.report.problem("held", pending.record.ref, reason)
            dead(pending, "unknown_learner", reason)
        else:
            return learner
        return None

    async def _import(self, imports: list[tuple[_Pending, ImportCredential]], dead) -> None:  # type: ignore[no-untyped-def]
        """Credentials go to ``importCredentials`` (the hub verifies them), several learners per request."""
        by_learner: dict[str, list[tuple[_Pending, str]]] = defaultdict(list)
        for pending, op in imports:
            learner = self._linked(pending, op.system, op.external_id, "badges", dead)
            if learner is not None:
                by_learner[learner].append((pending, op.credential))
        calls: list[tuple[str, list[tuple[_Pending, str]]]] = []
        for learner, items in by_learner.items():
            chunk: list[tuple[_Pending, str]] = []
            size = 0
            for item in items:  # the hub's limits per call: 100 items, 5,000,000 characters
                if chunk and (len(chunk) >= IMPORT_MAX_ITEMS or size + len(item[1]) > IMPORT_MAX_CHARS):
                    calls.append((learner, chunk))
                    chunk, size = [], 0
                chunk.append(item)
                size += len(item[1])
            if chunk:
                calls.append((learner, chunk))
        # Several learners per request (calls_per_request), each request at most IMPORT_MAX_CHARS.
        chars = lambda items: sum(len(c) for _, c in items)  # noqa: E731
        for request in _pack(calls, self.config.calls_per_request, IMPORT_MAX_CHARS, chars):
            outcomes = await self.hub.import_credentials([(learner, [c for _, c in items]) for learner, items in request])
            for (_learner, items), outcome in zip(request, outcomes, strict=True):
                self._tally_imports(items, outcome, dead)

    def _tally_imports(self, items, outcome, dead) -> None:  # type: ignore[no-untyped-def]
        report = self.report
        if outcome.data is None:
            self._tally("badges", items, outcome, dead)
            return
        for (pending, _), result in zip(items, outcome.data["results"], strict=True):
            status = result["outcome"]
            if status == "CREATED":
                report.created += 1
            elif status == "REPLACED":
                report.updated += 1
            elif status in ("UNCHANGED", "KEPT_NEWER"):
                report.unchanged += 1
            else:
                reason = "does not verify: " + "; ".join(result["reasons"] or ["refused"])
                report.invalid += 1
                report.problem("invalid", pending.record.ref, reason)
                dead(pending, "invalid", reason)
                continue
            for note in result["reasons"]:  # held, but not shown as a badge: say why
                report.problem("note", pending.record.ref, note)

    def _tally(self, section, items, outcome, dead) -> None:  # type: ignore[no-untyped-def]
        report = self.report
        if outcome.data is not None:
            report.created += outcome.data["created"]
            report.updated += outcome.data["updated"]
            report.unchanged += outcome.data["unchanged"]
        elif outcome.code in {"CONSENT_REQUIRED", "INSUFFICIENT_SCOPE", "NOT_FOUND"}:
            ext = outcome.extensions or {}
            reason = {
                "CONSENT_REQUIRED": ext.get("reason", "consent_required"),
                "INSUFFICIENT_SCOPE": "insufficient_scope",
                "NOT_FOUND": "no_grant",  # the grant lapsed between lookup and write
            }[outcome.code]
            report.refused[reason] += len(items)
            for pending, _ in items:
                report.problem("refused", pending.record.ref, f"{section}: {reason}")
        else:
            reason = f"hub refused the batch ({outcome.code}): {outcome.message}"
            for pending, _ in items:
                report.invalid += 1
                report.problem("invalid", pending.record.ref, reason)
                dead(pending, "invalid", reason)


def _pack(calls: list[tuple[str, list[Any]]], max_calls: int, limit: int,
          size: Callable[[list[Any]], int]) -> list[list[tuple[str, list[Any]]]]:
    """Group per-learner calls into requests: at most ``max_calls`` calls and ``limit`` in size each."""
    requests: list[list[tuple[str, list[Any]]]] = []
    current: list[tuple[str, list[Any]]] = []
    total = 0
    for call in calls:
        call_size = size(call[1])
        if current and (len(current) >= max_calls or total + call_size > limit):
            requests.append(current)
            current, total = [], 0
        current.append(call)
        total += call_size
    if current:
        requests.append(current)
    return requests


def build(instance_kind: str, raw_config: dict[str, Any], http: httpx.AsyncClient) -> tuple[Sync, state.InstanceConfig]:
    config = state.validate_config(instance_kind, raw_config)
    cls = connector_class(instance_kind)
    connector = cls(cls.Config.model_validate(config.source))
    return Sync(connector, HubClient(config.hub, http, config.retry), config), config


async def run_instance(
    *,
    sessions: state.Sessions,
    name: str,
    http: httpx.AsyncClient | None = None,
    full: bool = False,
    progress: Progress | None = None,
    owner: str | None = None,
    allow_mass_withdrawal: bool = False,
) -> RunOutcome:
    """Run one instance to the end of its source (or until a permanent error).

    ``allow_mass_withdrawal`` lifts, for this run, a connector's limit on how much a source that
    left records out may withdraw (OneRoster bulk files: ``max_withdrawal_fraction``).
    """
    instance = await state.get_instance(sessions=sessions, name=name)
    owner = owner or state.new_owner()
    own_http = http is None
    http = http or httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0))
    try:
        sync, config = build(instance.kind, instance.config, http)
        await state.acquire_lease(sessions=sessions, name=name, owner=owner, seconds=config.lease_seconds)
    except BaseException:
        if own_http:
            await http.aclose()
        raise
    run_id = await state.start_run(sessions=sessions, name=name)
    status, error = "succeeded", None
    try:
        await sync.connector.prepare(sessions=sessions, instance_name=name, config=config, report=sync.report)
        cursor = None if full else instance.cursor
        async for page in sync.connector.fetch(cursor):
            outcome = await sync.process(page.records)
            await state.commit_page(
                sessions=sessions, name=name, owner=owner, lease_seconds=config.lease_seconds, cursor=page.cursor,
                run_id=run_id, report=sync.report.as_dict(), dead_letters=outcome.dead_letters,
            )
            if progress is not None:
                maybe = progress(sync.report)
                if maybe is not None:
                    await maybe
        # Only now, every page committed: entries whose records the source no longer lists.
        owed = await sync.connector.withdrawals(sessions=sessions, instance_name=name, report=sync.report,
                                                allow_mass_withdrawal=allow_mass_withdrawal)
        if owed:
            done = await sync.withdraw(owed)
            await sync.connector.withdrawn(sessions=sessions, instance_name=name, withdrawals=done)
            await state.commit_page(
                sessions=sessions, name=name, owner=owner, lease_seconds=config.lease_seconds, cursor=None,
                run_id=run_id, report=sync.report.as_dict(), dead_letters=[], advance_cursor=False,
            )
    except state.LeaseLost as exc:
        status, error = "failed", str(exc)
    except Exception as exc:  # recorded on the run, then re-raised for the caller
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        await state.finish_run(sessions=sessions, run_id=run_id, status=status, report=sync.report.as_dict(), error=error)
        await state.release_lease(sessions=sessions, name=name, owner=owner)
        raise
    finally:
        await sync.connector.aclose()
        if own_http:
            await http.aclose()
    await state.finish_run(sessions=sessions, run_id=run_id, status=status, report=sync.report.as_dict(), error=error)
    await state.release_lease(sessions=sessions, name=name, owner=owner)
    return RunOutcome(run_id=run_id, report=sync.report, status=status, error=error)


async def replay_dead_letters(
    *, sessions: state.Sessions, name: str, http: httpx.AsyncClient | None = None, owner: str | None = None
) -> RunReport:
    """Re-map and re-send every dead letter of an instance (after a fix or a new learner link).

    Records that still fail are stored again with their current reason; the cursor is untouched.
    """
    instance = await state.get_instance(sessions=sessions, name=name)
    owner = owner or state.new_owner()
    own_http = http is None
    http = http or httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0))
    try:
        sync, config = build(instance.kind, instance.config, http)
        await state.acquire_lease(sessions=sessions, name=name, owner=owner, seconds=config.lease_seconds)
        try:
            letters = await state.dead_letters(sessions=sessions, name=name)
            for start in range(0, len(letters), 1000):
                chunk = letters[start : start + 1000]
                outcome = await sync.process([sync.connector.revive(l.ref, l.payload) for l in chunk])
                await state.commit_page(
                    sessions=sessions, name=name, owner=owner, lease_seconds=config.lease_seconds, cursor=None,
                    run_id=None, report=None, dead_letters=outcome.dead_letters, advance_cursor=False,
                    replayed_ids=[l.id for l in chunk],
                )
        finally:
            await state.release_lease(sessions=sessions, name=name, owner=owner)
    finally:
        if own_http:
            await http.aclose()
    return sync.report


def report_json(report: RunReport) -> str:
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False)


__all__ = ["RunOutcome", "SourcePage", "Sync", "build", "replay_dead_letters", "run_instance"]
