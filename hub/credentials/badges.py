"""An imported credential, shown as a badge: the ``badges`` entry that mirrors a held credential.

Held credentials (``held_credential``) keep the document whole; the ``badges`` section is what
providers and families read. A provider's import (``importCredentials``) therefore also writes one
badge entry per achievement credential, under the importing provider, with a ``sourceId`` derived
from the credential's identity (OB 3.0 Appendix "Verifiable Credential equality": issuer.id + id),
so a re-import is ``unchanged`` and a newer ``validFrom`` updates it in place.

Mapping (each field only from the verified document):

- OB 3.0 / CLR 2.0 ``AchievementCredential`` (OB 3.0 §B.1.1): ``credentialSubject.achievement``
  (§B.1.3 Achievement: id, name, description, criteria, image, achievementType, alignment →
  §B.2.1 Alignment), ``issuer`` (§B.2.7 Profile: id, name, url), ``awardedDate`` else
  ``validFrom`` (VC 2.0) else ``issuanceDate`` (VC 1.1), ``evidence`` (§B.2.6).
- OB 2.0 ``Assertion`` (OB 2.0 §Assertion): the embedded ``badge`` BadgeClass (name, description,
  image, criteria as a URL or Criteria, alignment, issuer Profile), ``issuedOn``, ``evidence``.
  A BadgeClass given only by URL cannot be shown (the hub never fetches): the credential is held,
  no badge is written, and the result says why.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from hub.credentials.importer import identity_hash
from schemas.records import BadgeCreate, error_message

# Badges mirroring a held credential carry this prefix; the Host API lists the held credential
# itself, not the hub's re-issue of its mirror.
SOURCE_PREFIX = "held-credential:"
BADGE_KINDS = ("OpenBadgeCredential", "AchievementCredential", "Assertion")


class NoBadge(ValueError):
    """The credential is held, but there is nothing to show as a badge (the reason says why)."""


def badge_source_id(issuer_id: str, credential_id: str) -> str:
    return SOURCE_PREFIX + identity_hash(issuer_id, credential_id)


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _id_of(value: Any) -> str | None:
    value = _first(value)
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return value["id"]
    return None


def _text(value: Any) -> str | None:
    # OB 3.0 allows language maps for some strings in JSON-LD; take a plain string or the first value.
    if isinstance(value, dict):
        value = next((v for v in value.values() if isinstance(v, str)), None)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _criteria(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"id": value}
    if isinstance(value, dict):
        return {k: v for k, v in {"id": value.get("id"), "narrative": _text(value.get("narrative"))}.items() if v}
    return {}


def _alignments(value: Any) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    out = []
    for item in items[:50]:
        if not isinstance(item, dict) or not item.get("targetName") or not item.get("targetUrl"):
            continue  # OB 3.0 §B.2.1: targetName and targetUrl are required
        entry = {"target_name": _text(item.get("targetName")), "target_url": item.get("targetUrl"),
                 "target_code": _text(item.get("targetCode")), "target_framework": _text(item.get("targetFramework"))}
        out.append({k: v for k, v in entry.items() if v is not None})
    return out


def _evidence(value: Any) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value] if value else []
    out = []
    for item in items[:50]:
        if isinstance(item, str):
            out.append({"id": item})
        elif isinstance(item, dict):
            entry = {"id": item.get("id"), "name": _text(item.get("name")), "narrative": _text(item.get("narrative"))}
            if any(entry.values()):
                out.append({k: v for k, v in entry.items() if v is not None})
    return out


def _issuer(value: Any, issuer_id: str) -> dict[str, Any]:
    profile = value if isinstance(value, dict) else {}
    entry = {"id": issuer_id, "name": _text(profile.get("name")), "url": profile.get("url")
             if isinstance(profile.get("url"), str) else None}
    return {k: v for k, v in entry.items() if v is not None}


def badge_entry(document: dict[str, Any], *, kind: str, issuer_id: str, credential_id: str) -> BadgeCreate:
    """The ``badges`` entry for a verified, held credential; ``NoBadge`` with the reason otherwise."""
    if kind not in BADGE_KINDS:
        raise NoBadge(f"a {kind} is held but not shown as a badge (only achievement credentials are)")
    if kind == "Assertion":  # OB 2.0
        badge_class = document.get("badge")
        if not isinstance(badge_class, dict):
            raise NoBadge("the OB 2.0 assertion names its BadgeClass only by URL; the hub does not fetch it, "
                          "so the credential is held without a badge entry")
        achievement = {
            "id": badge_class.get("id"), "name": _text(badge_class.get("name")),
            "description": _text(badge_class.get("description")), "criteria": _criteria(badge_class.get("criteria")),
            "image": _id_of(badge_class.get("image")), "alignments": _alignments(badge_class.get("alignment")),
        }
        issuer = _issuer(badge_class.get("issuer"), issuer_id)
        awarded = document.get("issuedOn")
    else:  # OB 3.0 / CLR 2.0
        subject = _first(document.get("credentialSubject"))
        found = subject.get("achievement") if isinstance(subject, dict) else None
        if not isinstance(found, dict):
            raise NoBadge("the credential's subject holds no achievement")
        achievement = {
            "id": found.get("id"), "name": _text(found.get("name")), "description": _text(found.get("description")),
            "criteria": _criteria(found.get("criteria")), "image": _id_of(found.get("image")),
            "achievement_type": _text(found.get("achievementType")), "alignments": _alignments(found.get("alignment")),
        }
        issuer = _issuer(document.get("issuer"), issuer_id)
        awarded = document.get("awardedDate") or document.get("validFrom") or document.get("issuanceDate")
    entry = {
        "source_id": badge_source_id(issuer_id, credential_id),
        "achievement": {k: v for k, v in achievement.items() if v is not None},
        "issuer": issuer,
        "awarded_date": awarded,
        "evidence": _evidence(document.get("evidence")),
    }
    if "name" not in issuer:
        entry["issuer"] = {**issuer, "name": issuer_id[:500]}  # a Profile may be given by id only
    try:
        return BadgeCreate.model_validate(entry)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        raise NoBadge(f"held, but not shown as a badge: {where}: {error_message(err)}") from None
