"""Consent receipts: a machine-readable record of each grant and revocation (pure).

Fields follow the Kantara Consent Receipt Specification v1.1 as carried into ISO/IEC TS 27560
(controller, PII principal, purposes with PII categories and termination, collection method,
policy, time). The hub signs the payload as a compact JWS so a family can prove what was agreed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

RECEIPT_VERSION = "KI-CR-v1.1.0"
_NAMESPACE = uuid.UUID("6f3a8a0e-2b6b-4d5c-9a55-0b1f3c2e9d41")


@dataclass(frozen=True, slots=True)
class GrantFacts:
    grant_id: uuid.UUID
    learner_id: uuid.UUID
    learner_name: str
    provider_id: uuid.UUID
    provider_name: str
    section: str
    action: str
    purpose: str
    sensitive: bool
    granted_at: datetime
    granted_by: str  # "guardian:<id>" or "learner"
    expires_at: datetime | None
    data_from: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    access_request_id: uuid.UUID | None


def receipts_for(facts: GrantFacts, *, controller: dict[str, str], policy_name: str) -> list[dict[str, Any]]:
    """One receipt for the grant and, when revoked, one for the revocation."""
    events = [("grant", facts.granted_at, facts.granted_by)]
    if facts.revoked_at is not None:
        events.append(("revocation", facts.revoked_at, facts.revoked_by or "unknown"))
    return [_receipt(facts, kind, at, actor, controller, policy_name) for kind, at, actor in events]


def _receipt(
    facts: GrantFacts, kind: str, at: datetime, actor: str, controller: dict[str, str], policy_name: str
) -> dict[str, Any]:
    return {
        "version": RECEIPT_VERSION,
        "consentReceiptID": str(uuid.uuid5(_NAMESPACE, f"{facts.grant_id}:{kind}")),
        "kind": kind,
        "consentTimestamp": int(at.timestamp()),
        "iso8601": at.isoformat(),
        "jurisdiction": policy_name,
        "collectionMethod": "access request approved by the family" if facts.access_request_id else "granted by the family",
        "actor": actor,
        "piiPrincipalId": str(facts.learner_id),
        "piiPrincipalName": facts.learner_name,
        "piiControllers": [controller],
        "policyUrl": controller.get("policyUrl"),
        "recipient": {"id": str(facts.provider_id), "name": facts.provider_name},
        "services": [{
            "service": "Kinfolio learner record",
            "purposes": [{
                "purpose": facts.purpose,
                "purposeCategory": ["Education"],
                "consentType": "EXPLICIT",
                "piiCategory": [facts.section],
                "sensitive": facts.sensitive,
                "action": facts.action,
                "primaryPurpose": True,
                "termination": facts.expires_at.isoformat() if facts.expires_at else "until revoked",
                "dataFrom": facts.data_from.isoformat() if facts.data_from else None,
                "thirdPartyDisclosure": True,
                "thirdPartyName": facts.provider_name,
            }],
        }],
        "grantId": str(facts.grant_id),
        "accessRequestId": str(facts.access_request_id) if facts.access_request_id else None,
        "status": "revoked" if kind == "revocation" else "active",
    }
