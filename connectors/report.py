"""The per-run report: counts plus the first problems, each with its source reference."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_DETAILS = 200


@dataclass
class RunReport:
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    retracted: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # by consent, by reason
    # not done yet, by reason: unknown learners; withdrawals a safety check held back
    held: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    roster: Counter[str] = field(default_factory=Counter)  # roster phase (learners, invitations)
    details: list[dict[str, str]] = field(default_factory=list)

    def problem(self, kind: str, ref: str, reason: str) -> None:
        if len(self.details) < MAX_DETAILS:
            self.details.append({"kind": kind, "ref": ref, "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        out = self._as_dict()
        if self.roster:
            out["roster"] = dict(self.roster)
        return out

    def _as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "retracted": self.retracted,
            "refused": dict(self.refused),
            "held": dict(self.held),
            "invalid": self.invalid,
            "details": self.details,
        }

    @staticmethod
    def _reasons(counts: Counter[str]) -> str:
        return f" ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})" if counts else ""

    def summary(self) -> str:
        refused = sum(self.refused.values())
        held = sum(self.held.values())
        return (
            f"read {self.read}: created {self.created}, updated {self.updated}, unchanged {self.unchanged}, "
            f"retracted {self.retracted}, refused by consent {refused}, held {held}{self._reasons(self.held)}, "
            f"invalid {self.invalid}"
        ) + ("; roster: " + ", ".join(f"{k} {v}" for k, v in sorted(self.roster.items())) if self.roster else "")
