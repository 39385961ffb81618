"""What a connector is: a validated source config, ``fetch(cursor)`` in pages, and a mapping.

A connector knows its source format and nothing about Kinfolio's storage. The runtime
(``connectors.runtime``) does everything else: tokens, batching into the public GraphQL batch
mutations, durable cursors, retries, the per-run report and the dead-letter store.

Contract for ``fetch``: yield ``SourcePage``s in source order; each page carries the cursor
that resumes *after* it. The runtime stores that cursor only once every record of the page has
been committed by the hub (or reported), so a crash at any point re-reads at most one page, and
re-sent records are recognised by their ``source_id`` (stored once, reported ``unchanged``).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class SourceConfig(BaseModel):
    """Base of every connector's source config: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    ref: str  # where it came from, for humans: "statements.jsonl:1234", "users.csv:7"
    payload: Any  # the parsed record, or the raw text when it could not be parsed
    problem: str | None = None  # a source-level problem (malformed line, missing column)


@dataclass(frozen=True, slots=True)
class SourcePage:
    records: list[SourceRecord]
    cursor: str  # resumes after this page


@dataclass(frozen=True, slots=True)
class Upsert:
    """Contribute one entry (snake_case section input, see ``schemas.records``) for a learner."""

    system: str  # learner id namespace: "xapi" | "oneroster"
    external_id: str
    section: str
    entry: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Retract:
    """Withdraw this provider's entry of ``section`` with ``source_id`` (an xAPI voided statement,
    a OneRoster ``tobedeleted`` row); whichever learner it belongs to, decided per learner."""

    section: str
    source_id: str


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """An entry owed a withdrawal because the source no longer lists its record (a record absent
    from a OneRoster bulk file); ``ref`` and ``reason`` go to the report's details."""

    ref: str
    reason: str
    section: str
    source_id: str


@dataclass(frozen=True, slots=True)
class ImportCredential:
    """Hand one verifiable credential (JSON-LD text or compact JWS) to ``importCredentials`` for a
    learner: the hub verifies it, holds it and shows it as a badge (Open Badges connector)."""

    system: str
    external_id: str
    credential: str


@dataclass(frozen=True, slots=True)
class ImportFramework:
    """Send a CASE CFPackage (public reference data, ``importFramework``; no learner involved)."""

    package: dict[str, Any]


Operation = Upsert | Retract | ImportCredential | ImportFramework


class InvalidRecord(Exception):
    """The record cannot be mapped; ``reason`` is shown in the report and kept in the dead letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class MapContext:
    """State a mapping may keep across one run (e.g. statement ids voided earlier in the run)."""

    voided: set[str] = field(default_factory=set)


class Connector(ABC):
    kind: ClassVar[str]
    Config: ClassVar[type[SourceConfig]]

    def __init__(self, config: SourceConfig) -> None:
        self.config = config

    @abstractmethod
    def fetch(self, cursor: str | None) -> AsyncIterator[SourcePage]:
        """Pages of source records after ``cursor`` (``None``: from the beginning)."""

    @abstractmethod
    def map(self, record: SourceRecord, context: MapContext) -> list[Operation]:
        """Source record -> Kinfolio operations; raises ``InvalidRecord`` with a reason."""

    def dead_letter_payload(self, record: SourceRecord) -> str:
        return record.payload if isinstance(record.payload, str) else json.dumps(record.payload, ensure_ascii=False)

    def revive(self, ref: str, payload: str) -> SourceRecord:
        """Rebuild a dead-lettered record for replay (the default: JSON, else raw text)."""
        try:
            return SourceRecord(ref=ref, payload=json.loads(payload))
        except ValueError:
            return SourceRecord(ref=ref, payload=payload, problem="not valid JSON")

    async def prepare(self, *, sessions: Any, instance_name: str, config: Any, report: Any) -> None:
        """Hub-internal work before records are fetched (default: none).

        Only for trusted operator jobs run on the hub's own database (``kinfolio sync run``): the
        OneRoster roster phase creates/matches learners, links them and invites guardians here.
        Record data never goes this way; it goes through the public API, under consent.
        """
        return None

    async def withdrawals(self, *, sessions: Any, instance_name: str, report: Any,
                          allow_mass_withdrawal: bool = False) -> list[Withdrawal]:
        """Entries to withdraw because the source left their records out (default: none).

        Asked by the runtime only once every page of the run has been committed, so a failed or
        interrupted run never withdraws anything; a resumed run asks at its end. Withdrawals the
        connector refuses to make (a safety limit) are reported by it, not returned.
        """
        return []

    async def withdrawn(self, *, sessions: Any, instance_name: str, withdrawals: list[Withdrawal]) -> None:
        """Called once the hub has answered every withdrawal returned by ``withdrawals``."""
        return None

    async def aclose(self) -> None:
        return None


REGISTRY: dict[str, type[Connector]] = {}


def register(cls: type[Connector]) -> type[Connector]:
    REGISTRY[cls.kind] = cls
    return cls


def connector_class(kind: str) -> type[Connector]:
    _load_builtin()
    try:
        return REGISTRY[kind]
    except KeyError:
        raise LookupError(f"unknown connector kind {kind!r}; known: {', '.join(sorted(REGISTRY))}") from None


def _load_builtin() -> None:
    import connectors.case  # noqa: F401
    import connectors.openbadges  # noqa: F401
    import connectors.oneroster  # noqa: F401
    import connectors.xapi  # noqa: F401
