"""xAPI 1.0.3 statements -> Kinfolio activities (and voided statements -> retractions).

Only what an activity needs is validated here; everything else in a statement (context,
attachments, authority, extensions) is accepted and ignored. Section references are to
xAPI 1.0.3 Part Two (Data), unless marked Communication.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime
from typing import Any

from connectors.base import InvalidRecord, MapContext, Operation, Retract, Upsert

SYSTEM = "xapi"
VOIDED = "http://adlnet.gov/expapi/verbs/voided"  # Data §2.3.2
_CONTENT_NAMESPACE = uuid.UUID("6f1c3f9e-2b7a-5d0e-9a53-6b1f0c2e7d41")
_HEX40 = re.compile(r"^[0-9a-fA-F]{40}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _mbox_sha1(mbox: str) -> str:
    # Data §2.4.2.3: mbox_sha1sum is the hex SHA-1 of the mailto IRI. We lower-case the address
    # first (mail addresses are compared case-insensitively in practice) so that "mailto:A@x"
    # and "mailto:a@x" match one link; a source that hashed a mixed-case address will not match.
    return hashlib.sha1(mbox.strip().lower().encode()).hexdigest()


def canonical_actor_id(text: str) -> str:
    """A learner's xAPI identifier as the operator types it -> the stored link form.

    ``mailto:a@x`` or a 40-hex mbox_sha1sum -> ``mbox_sha1sum:<hex>`` (so links never store the
    address and match statements using either form); ``account:HOMEPAGE|NAME`` and
    ``openid:URI`` are kept as given.
    """
    text = text.strip()
    if text.lower().startswith("mailto:"):
        return f"mbox_sha1sum:{_mbox_sha1(text)}"
    if text.startswith("mbox_sha1sum:"):
        text = text.removeprefix("mbox_sha1sum:")
    if _HEX40.match(text):
        return f"mbox_sha1sum:{text.lower()}"
    if text.startswith(("account:", "openid:")):
        return text
    raise ValueError("an xAPI learner id is mailto:ADDRESS, a 40-hex mbox_sha1sum, account:HOMEPAGE|NAME or openid:URI")


def actor_id(actor: Any) -> str:
    """The actor's inverse functional identifier in link form (Data §2.4.2.1, §2.4.2.3)."""
    if not isinstance(actor, dict):
        raise InvalidRecord("actor must be an object (Data §2.4.2)")
    if actor.get("objectType") == "Group":
        raise InvalidRecord("group actors are not imported: an activity belongs to one learner (Data §2.4.2.2)")
    ifis = [key for key in ("mbox", "mbox_sha1sum", "openid", "account") if key in actor]
    if len(ifis) != 1:
        raise InvalidRecord(f"actor must carry exactly one inverse functional identifier, found {ifis or 'none'} (Data §2.4.2.3)")
    key = ifis[0]
    value = actor[key]
    if key == "mbox":
        if not isinstance(value, str) or not value.lower().startswith("mailto:"):
            raise InvalidRecord("actor.mbox must be a mailto: IRI (Data §2.4.2.3)")
        return f"mbox_sha1sum:{_mbox_sha1(value)}"
    if key == "mbox_sha1sum":
        if not isinstance(value, str) or not _HEX40.match(value):
            raise InvalidRecord("actor.mbox_sha1sum must be 40 hex digits (Data §2.4.2.3)")
        return f"mbox_sha1sum:{value.lower()}"
    if key == "openid":
        if not isinstance(value, str) or ":" not in value:
            raise InvalidRecord("actor.openid must be a URI (Data §2.4.2.3)")
        return f"openid:{value}"
    if not isinstance(value, dict) or not isinstance(value.get("homePage"), str) or not isinstance(value.get("name"), str):
        raise InvalidRecord("actor.account needs homePage and name (Data §2.4.2.4)")
    return f"account:{value['homePage']}|{value['name']}"


def language_value(language_map: Any) -> str | None:
    """One label from a language map (Data §5.2.2): en-US, then en, then the first one."""
    if not isinstance(language_map, dict) or not language_map:
        return None
    for tag in ("en-US", "en-GB", "en"):
        if isinstance(language_map.get(tag), str):
            return language_map[tag]
    first = next(iter(language_map.values()))
    return first if isinstance(first, str) else None


def statement_source_id(statement: dict[str, Any]) -> str:
    """The statement id (Data §2.4.1); an id-less statement (in a file) gets a UUID derived from
    its content, as an LRS would assign one (Communication §2.1.2), but stable across re-reads."""
    sid = statement.get("id")
    if sid is not None:
        if not isinstance(sid, str) or not _UUID.match(sid):
            raise InvalidRecord("id must be a UUID (Data §2.4.1)")
        return sid.lower()
    canonical = json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return str(uuid.uuid5(_CONTENT_NAMESPACE, canonical))


def _timestamp(statement: dict[str, Any]) -> str:
    # Data §2.4.7: when timestamp is absent the LRS sets it to stored; a file may carry neither.
    value = statement.get("timestamp") or statement.get("stored")
    if not isinstance(value, str):
        raise InvalidRecord("timestamp is missing (and no stored time to fall back on, Data §2.4.7)")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRecord(f"timestamp {value!r} is not ISO 8601 (Data §4.5)") from None
    if parsed.tzinfo is None:
        raise InvalidRecord(f"timestamp {value!r} has no time-zone offset; not guessed (Data §4.5)")
    return value


def map_statement(statement: Any, context: MapContext) -> list[Operation]:
    if not isinstance(statement, dict):
        raise InvalidRecord("a statement must be a JSON object (Data §2.2)")
    missing = [k for k in ("actor", "verb", "object") if k not in statement]
    if missing:
        raise InvalidRecord(f"statement lacks required {', '.join(missing)} (Data §2.2)")
    source_id = statement_source_id(statement)
    verb = statement["verb"]
    if not isinstance(verb, dict) or not isinstance(verb.get("id"), str):
        raise InvalidRecord("verb.id is required (Data §2.4.3)")
    obj = statement["object"]
    if not isinstance(obj, dict):
        raise InvalidRecord("object must be a JSON object (Data §2.4.4)")
    object_type = obj.get("objectType", "Activity")

    if verb["id"] == VOIDED:
        # Data §2.3.2: a voiding statement's object is a StatementRef to the voided statement.
        if object_type != "StatementRef" or not isinstance(obj.get("id"), str) or not _UUID.match(obj["id"]):
            raise InvalidRecord("a voided verb needs a StatementRef object with a UUID id (Data §2.3.2)")
        target = obj["id"].lower()
        context.voided.add(target)
        return [Retract(section="activities", source_id=target)]

    learner = actor_id(statement["actor"])
    if source_id in context.voided:
        return []  # voided earlier in this run: never stored
    if object_type != "Activity":
        raise InvalidRecord(f"object is a {object_type}, not an Activity: only activities are recorded (Data §2.4.4)")
    definition = obj.get("definition") if isinstance(obj.get("definition"), dict) else {}
    entry: dict[str, Any] = {
        "source_id": source_id,
        "verb": {
            "id": verb["id"],
            # display is optional (Data §2.4.3): fall back to the IRI's last segment as a label.
            "display": language_value(verb.get("display")) or verb["id"].rstrip("/").rsplit("/", 1)[-1] or verb["id"],
        },
        "object": {"id": obj.get("id"), "name": language_value(definition.get("name")), "type": definition.get("type")},
        "timestamp": _timestamp(statement),
    }
    result = statement.get("result")
    if isinstance(result, dict):
        score = result.get("score") if isinstance(result.get("score"), dict) else None
        entry["result"] = {
            "score": {k: score.get(k) for k in ("scaled", "raw", "min", "max")} if score else None,
            "success": result.get("success"),
            "completion": result.get("completion"),
            "duration": result.get("duration"),
        }
    return [Upsert(system=SYSTEM, external_id=learner, section="activities", entry=entry)]
