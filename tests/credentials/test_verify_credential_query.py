"""The ``verifyCredential`` GraphQL query: checks with outcomes and reasons, bad input, no consent needed."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from hub.credentials.service import badge_credential, revoke_badge
from hub.db import make_sessionmaker
from hub.grants.models import DisclosureEvent
from hub.records.models import Badge
from tests.credentials.conftest import add_record, load
from tests.factories import get_token, gql, make_provider

pytestmark = pytest.mark.samples
QUERY = """query($c: String!) { verifyCredential(credential: $c) {
  verified format credentialId issuerId types checks { check outcome reason } } }"""


@pytest.fixture
async def token(app, kit, client, engine):  # type: ignore[no-untyped-def]
    app.state.credential_kit = kit
    # Any authenticated provider: this one holds no grant for anyone and a scope unrelated to badges.
    provider = await make_provider(engine, "Verifier", ["skills:read"])
    return await get_token(client, provider)


async def ask(client, token, credential):  # type: ignore[no-untyped-def]
    response = await client.post("/graphql", json={"query": QUERY, "variables": {"c": credential}},
                                 headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def outcomes(body):  # type: ignore[no-untyped-def]
    return {c["check"]: c["outcome"] for c in body["data"]["verifyCredential"]["checks"]}


async def test_a_hub_credential_verifies_in_both_forms_and_tampering_and_revocation_fail(engine, kit, family, client, token):  # type: ignore[no-untyped-def]
    badge_ids = await add_record(engine, family, badges=1)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        badge = await session.get(Badge, badge_ids[0])
        ldp = await badge_credential(session, kit, badge, now)
        jwt = await badge_credential(session, kit, badge, now, "jwt")

    body = await ask(client, token, json.dumps(ldp))
    result = body["data"]["verifyCredential"]
    assert "errors" not in body and result["verified"] is True and result["format"] == "ldp"
    assert result["credentialId"] == ldp["id"] and result["issuerId"] == kit.key.issuer_id
    assert result["types"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert outcomes(body) == {"format": "PASSED", "issuer key": "PASSED", "proof": "PASSED",
                              "validity period": "PASSED", "status": "PASSED"}
    assert all(c["reason"] for c in result["checks"])
    jwt_body = await ask(client, token, jwt)
    assert jwt_body["data"]["verifyCredential"]["verified"] is True and jwt_body["data"]["verifyCredential"]["format"] == "jwt"

    tampered = copy.deepcopy(ldp)
    tampered["name"] = "Changed"
    bad = (await ask(client, token, json.dumps(tampered)))["data"]["verifyCredential"]
    assert bad["verified"] is False
    proof = next(c for c in bad["checks"] if c["check"] == "proof")
    assert proof["outcome"] == "FAILED" and "eddsa-rdfc-2022" in proof["reason"]

    async with sessions() as session, session.begin():
        await revoke_badge(session, badge_ids[0], now, "awarded in error")
    revoked = await ask(client, token, json.dumps(ldp))
    status = next(c for c in revoked["data"]["verifyCredential"]["checks"] if c["check"] == "status")
    assert revoked["data"]["verifyCredential"]["verified"] is False
    assert status["outcome"] == "FAILED" and "revoked" in status["reason"]

    # No learner data was read, so no consent decision was made and nothing was logged.
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(DisclosureEvent))).scalar_one() == 0


async def test_a_foreign_credential_reports_each_check(client, token, examples_dir):  # type: ignore[no-untyped-def]
    signed = load(examples_dir / "ob3-testvector-signed-credential.json")
    body = await ask(client, token, json.dumps(signed))
    result = body["data"]["verifyCredential"]
    assert result["verified"] is False  # its key is not one this hub trusts offline
    key = next(c for c in result["checks"] if c["check"] == "issuer key")
    assert key["outcome"] == "FAILED" and "cannot resolve" in key["reason"]
    unsigned = load(examples_dir / "ob3-example-full-openbadgecredential.json")
    unsigned.pop("proof", None)
    body = await ask(client, token, json.dumps(unsigned))
    assert body["data"]["verifyCredential"]["verified"] is False
    assert outcomes(body)["proof"] == "FAILED"


@pytest.mark.parametrize(
    ("credential", "message"),
    [
        ("not json at all", "neither JSON nor a compact JWS"),
        ("[1, 2, 3]", "must be a JSON object"),
        ('{"name": "no context, no type"}', "not a JSON-LD credential"),
        ("a.b.c", "not a compact JWS"),
        ("[" * 100_000 + "]" * 100_000, "credential:"),
        ("x" * 2_000_001, "longer than"),
    ],
    ids=["not json", "json array", "not a credential", "broken jws", "nested too deeply", "too long"],
)
async def test_bad_input_is_bad_user_input_never_a_500(client, token, credential, message):  # type: ignore[no-untyped-def]
    body = await ask(client, token, credential)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["argument"] == "credential"
    assert message in error["message"]


async def test_verification_needs_a_token_and_a_configured_hub(client, app, token, monkeypatch):  # type: ignore[no-untyped-def]
    anonymous = await client.post("/graphql", json={"query": QUERY, "variables": {"c": "{}"}})
    assert anonymous.status_code == 401
    monkeypatch.delattr(app.state, "credential_kit")  # the test settings name no JSON-LD contexts directory
    body = await ask(client, token, '{"@context": [], "type": ["VerifiableCredential"]}')
    assert body["errors"][0]["extensions"]["code"] == "NOT_CONFIGURED"
    assert "KINFOLIO_JSONLD_CONTEXTS_DIR" in body["errors"][0]["message"]
