"""Synthetic xAPI statements for load tests and benchmarks (deterministic, JSON Lines)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

VERBS = ["completed", "attempted", "experienced", "answered", "passed", "failed"]


def learner_email(n: int) -> str:
    return f"learner{n:04d}@school.example.org"


def write_statements(path: Path, count: int, learners: int, seed: str = "kinfolio") -> None:
    """``count`` statements spread round-robin over ``learners`` actors; ids derive from ``seed``."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"https://kinfolio.example/synthetic/{seed}")
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            verb = VERBS[n % len(VERBS)]
            statement = {
                "id": str(uuid.uuid5(namespace, str(n))),
                "actor": {"objectType": "Agent", "mbox": f"mailto:{learner_email(n % learners)}"},
                "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}", "display": {"en-US": verb}},
                "object": {
                    "id": f"https://lms.example.org/courses/{n % 97}/lessons/{n % 13}",
                    "definition": {"name": {"en-US": f"Lesson {n % 13} of course {n % 97}"},
                                   "type": "http://adlnet.gov/expapi/activities/lesson"},
                },
                "result": {"score": {"scaled": round((n % 101) / 100, 2)}, "completion": n % 3 == 0},
                "timestamp": (base + timedelta(seconds=37 * n)).isoformat().replace("+00:00", "Z"),
            }
            out.write(json.dumps(statement, separators=(",", ":")) + "\n")
