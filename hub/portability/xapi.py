"""Activity rows -> xAPI 1.0.3 statements (pure: no I/O, no clock).

Rules implemented (xAPI 1.0.3, Part Two "Experience API Data"):

- §2.4.1 ``id``: a UUID (RFC 4122). Ours is a name-based UUID (v5) of the hub, the learner, the
  contributing provider and the provider's ``source_id`` — the entry's identity in Kinfolio — so
  every export gives the same statement the same id (an LRS receiving it twice keeps one, §2.2
  "Statements are immutable"), and two learners never share one.
- §2.4.2.1 / §2.4.2.4 ``actor``: an Agent identified by exactly one Inverse Functional
  Identifier, here an ``account`` whose ``homePage`` is the hub and whose ``name`` is the
  learner's hub-scoped id (no email address leaves the hub).
- §2.4.3 ``verb``: ``id`` is an IRI; ``display`` a Language Map. Providers send one label of
  unknown language, so its key is ``und`` (RFC 5646 "undetermined").
- §2.4.4.1 ``object``: an Activity (``objectType`` ``Activity``, ``id`` an IRI) with a
  ``definition`` (``name`` Language Map, ``type`` IRI) when known.
- §2.5 ``result``: ``score`` (``scaled`` in [-1, 1], ``raw`` within ``min``/``max``: validated on
  contribution), ``success``, ``completion``, ``duration`` (ISO 8601 duration); omitted when empty.
- §2.4.6 ``context.platform``: the provider that recorded the activity.
- §2.4.7 ``timestamp``: ISO 8601 in UTC with millisecond precision (§4.5 "ISO 8601 Timestamps").
- §2.4.10 ``version``: ``1.0.3``. ``stored`` and ``authority`` are left to the receiving LRS
  (§2.4.8, §2.4.9: the LRS sets them).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

XAPI_VERSION = "1.0.3"
LANGUAGE = "und"


def _namespace(issuer_base: str) -> UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{issuer_base.rstrip('/')}/xapi/statements")


def statement_id(issuer_base: str, learner_id: UUID, provider_id: UUID, source_id: str) -> str:
    return str(uuid.uuid5(_namespace(issuer_base), f"{learner_id}\x1f{provider_id}\x1f{source_id}"))


def actor(issuer_base: str, learner_id: UUID) -> dict[str, Any]:
    return {"objectType": "Agent", "account": {"homePage": issuer_base.rstrip("/"), "name": str(learner_id)}}


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def statement(row: Any, *, issuer_base: str, provider_name: str | None) -> dict[str, Any]:
    """One ``activity`` row (ORM object or row mapping with the same attribute names)."""
    definition: dict[str, Any] = {}
    if row.object_name:
        definition["name"] = {LANGUAGE: row.object_name}
    if row.object_type:
        definition["type"] = row.object_type
    activity: dict[str, Any] = {"objectType": "Activity", "id": row.object_id}
    if definition:
        activity["definition"] = definition
    out: dict[str, Any] = {
        "id": statement_id(issuer_base, row.learner_id, row.provider_id, row.source_id),
        "actor": actor(issuer_base, row.learner_id),
        "verb": {"id": row.verb_id, "display": {LANGUAGE: row.verb_display}},
        "object": activity,
    }
    score = {k: v for k, v in (("scaled", row.result_score_scaled), ("raw", row.result_score_raw),
                               ("min", row.result_score_min), ("max", row.result_score_max)) if v is not None}
    result: dict[str, Any] = {"score": score} if score else {}
    for key, value in (("success", row.result_success), ("completion", row.result_completion),
                       ("duration", row.result_duration)):
        if value is not None:
            result[key] = value
    if result:
        out["result"] = result
    if provider_name:
        out["context"] = {"platform": provider_name}
    out["timestamp"] = timestamp(row.timestamp)
    out["version"] = XAPI_VERSION
    return out
