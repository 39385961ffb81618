"""Record rows -> unsigned Open Badges 3.0 / CLR 2.0 documents (pure: no I/O, no clock).

- a ``Badge`` row -> ``OpenBadgeCredential`` (OB 3.0 §B.1.1 AchievementCredential). The hub is
  the credential's issuer (it signs); the provider that awarded the badge is kept as the
  achievement's ``creator`` (§B.1.2 Achievement.creator), so nothing of the award is lost.
- a skill (all assessments of one ``skill_key``) -> an ``Achievement`` with ``achievementType``
  ``Competency`` and an ``Alignment`` to its framework item (``targetType`` ``CFItem`` when the
  skill names a CASE framework), asserted by an AchievementCredential whose ``result`` is the
  latest proficiency on its scale (``ResultDescription`` with ``valueMin``/``valueMax``).
- activities, summarised per xAPI object -> an ``Achievement`` (``achievementType``
  ``ext:LearningActivity``) whose ``Result`` says how often it was done, the best scaled score
  and whether it was completed.
- all of it -> one ``ClrCredential`` (CLR 2.0 §B.1.2 ClrSubject): ``verifiableCredential``,
  ``achievement`` and ``association`` (a badge aligned to the same framework item as a skill
  ``isRelatedTo`` that skill).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from hub.frameworks.service import ItemView
from hub.records.models import Badge, SkillAssessment

CRED_V2 = "https://www.w3.org/ns/credentials/v2"
OB_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
CLR_CONTEXT = "https://purl.imsglobal.org/spec/clr/v2p0/context-2.0.1.json"
OB_SCHEMA = "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json"
CLR_SCHEMA = "https://purl.imsglobal.org/spec/clr/v2p0/schema/json/clr_v2p0_clrcredential_schema.json"
# credentialSchema is left out: its type "1EdTechJsonSchemaValidator2019" is not defined by the
# pinned OB 3.0.3 context, so JSON-LD safe mode (ours and jsonld.js) refuses it.


def iso(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def learner_subject_id(learner_id: UUID) -> str:
    return f"urn:uuid:{learner_id}"


def _urn(*parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"urn:uuid:{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-8{digest[17:20]}-{digest[20:32]}"


def _alignment(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": ["Alignment"], "targetName": row.get("target_name"), "targetUrl": row.get("target_url")}
    if row.get("target_code"):
        out["targetCode"] = row["target_code"]
    if row.get("target_framework"):
        out["targetFramework"] = row["target_framework"]
    return out


def _evidence(row: dict[str, Any]) -> dict[str, Any]:
    return {"type": ["Evidence"], **{k: row[k] for k in ("id", "name", "narrative") if row.get(k)}}


def badge_credential(badge: Badge, *, credential_id: UUID, learner_id: UUID, issuer: dict[str, Any],
                     status: dict[str, Any] | None, subject_id: str | None = None) -> dict[str, Any]:
    achievement: dict[str, Any] = {
        "id": badge.achievement_id or _urn("achievement", badge.issuer_id, badge.name),
        "type": ["Achievement"],
        "name": badge.name,
        "description": badge.description,
        "criteria": {k: v for k, v in (("id", badge.criteria_id), ("narrative", badge.criteria_narrative)) if v}
        or {"narrative": badge.description},
        "creator": {"id": badge.issuer_id, "type": ["Profile"], "name": badge.issuer_name,
                    **({"url": badge.issuer_url} if badge.issuer_url else {})},
    }
    if badge.image_url:
        achievement["image"] = {"id": badge.image_url, "type": "Image"}
    if badge.achievement_type:
        achievement["achievementType"] = badge.achievement_type
    if badge.alignments:
        achievement["alignment"] = [_alignment(a) for a in badge.alignments]
    credential: dict[str, Any] = {
        "@context": [CRED_V2, OB_CONTEXT],
        "id": f"urn:uuid:{credential_id}",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": badge.name,
        "issuer": issuer,
        # validFrom moves with the badge's last change, so a re-export replaces the older copy
        # under OB 3.0's equality rule (same issuer.id + id, newer validFrom wins).
        "validFrom": iso(badge.updated_at),
        "awardedDate": iso(badge.awarded_at),
        "credentialSubject": {"id": subject_id or learner_subject_id(learner_id), "type": ["AchievementSubject"],
                              "achievement": achievement},
    }
    if badge.evidence:
        credential["evidence"] = [_evidence(e) for e in badge.evidence]
    if status:
        credential["credentialStatus"] = status
    return credential


def skill_achievements(
    assessments: Sequence[SkillAssessment], items: Mapping[tuple[str, str], ItemView] | None = None
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(Achievement, AchievementSubject fragment with ``result``) per skill, latest assessment.

    ``items``: imported CASE items by (frameworkUri, code); a skill naming one aligns to the
    CFItem's own URI, statement, code and framework title.
    """
    latest: dict[str, SkillAssessment] = {}
    for row in assessments:
        if row.skill_key not in latest or (row.assessed_at, row.id) > (latest[row.skill_key].assessed_at,
                                                                         latest[row.skill_key].id):
            latest[row.skill_key] = row
    out = []
    for key, row in sorted(latest.items()):
        achievement_id = _urn("competency", key)
        description_id = f"{achievement_id}#scale"
        alignment: dict[str, Any] = {"type": ["Alignment"], "targetName": row.skill_label,
                                     "targetUrl": row.framework_uri or f"urn:kinfolio:skill:{key}"}
        if row.framework_uri:
            alignment["targetType"] = "CFItem"  # a CASE framework item (OB 3.0 §B.1.3 AlignmentTargetType)
            alignment["targetFramework"] = row.framework_uri
        if row.skill_code:
            alignment["targetCode"] = row.skill_code
        item = (items or {}).get((row.framework_uri, row.skill_code)) if row.framework_uri and row.skill_code else None
        if item is not None:
            # OB 3.0 data model, Alignment: targetUrl "URL linking to the official description of the
            # alignment target" -> the CFItem URI; targetFramework "name of the framework".
            alignment.update(targetUrl=item.uri, targetDescription=item.statement, targetFramework=item.document_title)
            if item.human_coding_scheme:
                alignment["targetCode"] = item.human_coding_scheme
        achievement = {
            "id": achievement_id, "type": ["Achievement"], "achievementType": "Competency",
            "name": row.skill_label, "description": f"Proficiency in {row.skill_label} on the {row.scale_name} scale.",
            "criteria": {"narrative": f"Assessed on the {row.scale_name} scale ({row.scale_min:g}-{row.scale_max:g})."},
            "alignment": [alignment],
            "resultDescription": [{"id": description_id, "type": ["ResultDescription"], "name": row.scale_name,
                                   "resultType": "ScaledScore", "valueMin": f"{row.scale_min:g}",
                                   "valueMax": f"{row.scale_max:g}"}],
        }
        result = {"type": ["Result"], "resultDescription": description_id, "value": f"{row.proficiency:g}"}
        out.append((achievement, {"result": [result], "activityEndDate": iso(row.assessed_at)}))
    return out


@dataclass(frozen=True)
class ActivitySummary:
    """What a learner's activities on one xAPI object add up to (aggregated in the database)."""

    object_id: str
    name: str | None
    count: int
    best_scaled: float | None
    completed: bool
    first: datetime
    last: datetime


def activity_achievements(summaries: Sequence[ActivitySummary]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    out = []
    for summary in sorted(summaries, key=lambda s: s.object_id):
        object_id = summary.object_id
        name = summary.name or object_id
        achievement_id = _urn("activity", object_id)
        achievement: dict[str, Any] = {
            "id": achievement_id, "type": ["Achievement"], "achievementType": "ext:LearningActivity",
            "name": name, "description": f"Summary of {summary.count} recorded learning event(s) on {name}.",
            "criteria": {"id": object_id, "narrative": "Recorded as xAPI statements by a consented provider."},
            "resultDescription": [{"id": f"{achievement_id}#status", "type": ["ResultDescription"],
                                   "name": "Completion", "resultType": "Status"}],
        }
        results: list[dict[str, Any]] = [{"type": ["Result"], "resultDescription": f"{achievement_id}#status",
                                          "status": "Completed" if summary.completed else "InProgress"}]
        if summary.best_scaled is not None:
            achievement["resultDescription"].append({"id": f"{achievement_id}#best", "type": ["ResultDescription"],
                                                     "name": "Best scaled score", "resultType": "ScaledScore",
                                                     "valueMin": "-1", "valueMax": "1"})
            results.append({"type": ["Result"], "resultDescription": f"{achievement_id}#best",
                            "value": f"{summary.best_scaled:g}"})
        out.append((achievement, {"result": results, "activityStartDate": iso(summary.first),
                                  "activityEndDate": iso(summary.last)}))
    return out


def achievement_credential(achievement: dict[str, Any], subject_extra: dict[str, Any], *, learner_id: UUID,
                           issuer: dict[str, Any], valid_from: datetime, status: dict[str, Any] | None,
                           subject_id: str | None = None) -> dict[str, Any]:
    credential: dict[str, Any] = {
        "@context": [CRED_V2, OB_CONTEXT],
        "id": _urn("credential", str(learner_id), achievement["id"], iso(valid_from)),
        "type": ["VerifiableCredential", "AchievementCredential"],
        "name": achievement["name"],
        "issuer": issuer,
        "validFrom": iso(valid_from),
        "credentialSubject": {"id": subject_id or learner_subject_id(learner_id), "type": ["AchievementSubject"],
                              "achievement": achievement, **subject_extra},
    }
    if status:
        credential["credentialStatus"] = status
    return credential


def associations(badges: Sequence[Badge], skills: list[dict[str, Any]], badge_achievement_ids: dict[int, str]) -> list[dict[str, Any]]:
    by_target = {a["alignment"][0]["targetUrl"]: a["id"] for a in skills}
    out = []
    for badge in badges:
        for row in badge.alignments or []:
            target = by_target.get(row.get("target_url"))
            if target and badge.id in badge_achievement_ids:
                out.append({"type": "Association", "associationType": "isRelatedTo",
                            "sourceId": badge_achievement_ids[badge.id], "targetId": target})
    return out


def clr_credential(*, credential_id: UUID, learner_id: UUID, issuer: dict[str, Any], now: datetime,
                   credentials: list[Any], achievements: list[dict[str, Any]], association: list[dict[str, Any]],
                   status: dict[str, Any] | None, name: str = "Comprehensive Learner Record",
                   subject_id: str | None = None) -> dict[str, Any]:
    subject: dict[str, Any] = {"id": subject_id or learner_subject_id(learner_id), "type": ["ClrSubject"],
                               "verifiableCredential": credentials}
    if achievements:
        subject["achievement"] = achievements
    if association:
        subject["association"] = association
    credential: dict[str, Any] = {
        "@context": [CRED_V2, CLR_CONTEXT, OB_CONTEXT],
        "id": f"urn:uuid:{credential_id}",
        "type": ["VerifiableCredential", "ClrCredential"],
        "name": name,
        "issuer": issuer,
        "validFrom": iso(now),
        "credentialSubject": subject,
    }
    if status:
        credential["credentialStatus"] = status
    return credential
