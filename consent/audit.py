"""The disclosure log's hash chain (pure).

Every event commits to the previous event of the same learner: ``hash = SHA-256(prev_hash ||
canonical(event))`` with ``seq`` counting from 1 per learner, and a per-learner head that stores
the last ``seq`` and ``hash``. Editing an event breaks its hash; deleting or reordering breaks the
sequence or the link; truncating the tail disagrees with the head. Chains are per learner so that
writing the log never serialises unrelated learners.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GENESIS = "0" * 64

# The fields an event's hash covers, in a fixed order. Stored-format rule: only append fields,
# and bump CHAIN_VERSION if the canonical form ever changes.
CHAIN_VERSION = 1
HASHED_FIELDS = (
    "seq", "at", "learner_id", "provider_id", "client_id", "token_id", "section", "action",
    "outcome", "reason", "grant_id", "purpose", "entry_count",
)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (int, str, bool)):
        return value
    return str(value)


def canonical(event: Mapping[str, Any]) -> bytes:
    body = {name: _plain(event.get(name)) for name in HASHED_FIELDS}
    return json.dumps({"v": CHAIN_VERSION, **body}, sort_keys=True, separators=(",", ":")).encode()


def chain_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(event)).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainProblem:
    learner_id: str
    seq: int | None
    problem: str


def verify_chain(
    learner_id: str, events: Iterable[Mapping[str, Any]], head: tuple[int, str] | None
) -> list[ChainProblem]:
    """Check one learner's events (in stored ``seq`` order) against the chain rules and the head."""
    problems: list[ChainProblem] = []
    expected_seq, prev = 1, GENESIS
    for event in events:
        seq = event["seq"]
        if seq != expected_seq:
            problems.append(ChainProblem(learner_id, seq, f"sequence gap or reorder: expected {expected_seq}, found {seq}"))
        if event["prev_hash"] != prev:
            problems.append(ChainProblem(learner_id, seq, "link to the previous event is broken"))
        recomputed = chain_hash(event["prev_hash"], event)
        if recomputed != event["hash"]:
            problems.append(ChainProblem(learner_id, seq, "event content does not match its hash (edited)"))
        expected_seq, prev = seq + 1, event["hash"]
    last = (expected_seq - 1, prev)
    if head is None and last != (0, GENESIS):
        problems.append(ChainProblem(learner_id, None, "events exist but the chain head is missing"))
    elif head is not None and tuple(head) != last:
        problems.append(ChainProblem(learner_id, None, f"chain head says seq {head[0]} but the log ends at {last[0]} (truncated or appended)"))
    return problems
