"""Signed consent receipts for a learner's grants (built on demand from the grant history)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from joserfc import jws
from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from consent import get_section
from consent.receipts import GrantFacts, receipts_for
from hub.grants.models import ConsentGrant
from hub.oauth.keys import ALGORITHM
from hub.people.models import Learner
from hub.providers.models import Provider

RECEIPT_TYPE = "kinfolio-consent-receipt+jws"


async def signed_receipts(
    *, session: AsyncSession, learner_id: UUID, signing_keys: KeySet, issuer: str, policy_name: str
) -> list[dict[str, Any]]:
    learner = await session.get(Learner, learner_id)
    if learner is None:
        raise LookupError(f"no learner {learner_id}")
    rows = await session.execute(
        select(ConsentGrant, Provider.name).join(Provider, Provider.id == ConsentGrant.provider_id)
        .where(ConsentGrant.learner_id == learner_id).order_by(ConsentGrant.granted_at)
    )
    controller = {"org": "Kinfolio learner record hub", "url": issuer, "policyUrl": f"{issuer.rstrip('/')}/privacy"}
    out = []
    for grant, provider_name in rows:
        facts = GrantFacts(
            grant_id=grant.id, learner_id=learner_id, learner_name=f"{learner.given_name} {learner.family_name}",
            provider_id=grant.provider_id, provider_name=provider_name, section=grant.section, action=grant.action,
            purpose=grant.purpose, sensitive=get_section(grant.section).sensitive, granted_at=grant.granted_at,
            granted_by="learner" if grant.granted_by_learner else f"guardian:{grant.granted_by}",
            expires_at=grant.expires_at, data_from=grant.data_from, revoked_at=grant.revoked_at,
            revoked_by=f"guardian:{grant.revoked_by}" if grant.revoked_by else ("learner" if grant.revoked_at else None),
            access_request_id=grant.access_request_id,
        )
        for receipt in receipts_for(facts, controller=controller, policy_name=policy_name):
            token = jws.serialize_compact(
                {"alg": ALGORITHM, "typ": RECEIPT_TYPE}, _json_bytes(receipt), signing_keys, algorithms=[ALGORITHM]
            )
            out.append({"receipt": receipt, "jws": token})
    return out


def _json_bytes(value: dict[str, Any]) -> bytes:
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def verify_receipt(token: str, public_keys: KeySet) -> dict[str, Any]:
    """Check a receipt's signature with the hub's published keys; returns the receipt."""
    import json

    obj = jws.deserialize_compact(token, public_keys, algorithms=[ALGORITHM])
    if obj.protected.get("typ") != RECEIPT_TYPE:
        raise ValueError("not a Kinfolio consent receipt")
    return json.loads(obj.payload)
