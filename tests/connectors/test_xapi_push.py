"""POST /xapi/statements: LRS-compatible push; consent decides; unknown learners are held back."""

from __future__ import annotations

import json

from tests.connectors.helpers import connector_provider, count_activities, linked_family
from tests.factories import get_token

V = {"X-Experience-API-Version": "1.0.3"}


def _st(n: int, email: str) -> dict:  # type: ignore[type-arg]
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}", "actor": {"mbox": f"mailto:{email}"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
        "object": {"id": f"https://app.example.org/quiz/{n}"}, "timestamp": "2026-04-01T09:00:00Z",
    }


async def test_push_stores_granted_holds_unknown_refuses_without_consent_and_voids(engine, client, monkeypatch):
    provider = await connector_provider(engine, monkeypatch)
    await linked_family(engine, provider, "kim@example.org", grant_activities=True)
    await linked_family(engine, provider, "lee@example.org", grant_activities=False)
    token = await get_token(client, provider)
    auth = {**V, "Authorization": f"Bearer {token}"}
    batch = [_st(1, "kim@example.org"), _st(2, "kim@example.org"), _st(3, "lee@example.org"), _st(4, "who@example.org")]

    response = await client.post("/xapi/statements", json=batch, headers=auth)
    assert response.status_code == 200, response.text
    assert response.headers["X-Experience-API-Version"] == "1.0.3"
    assert response.json() == [s["id"] for s in batch]
    assert json.loads(response.headers["X-Kinfolio-Report"]) == {
        "created": 2, "updated": 0, "unchanged": 0, "retracted": 0, "held": 1, "refused": {"no_grant": 1}}
    again = await client.post("/xapi/statements", json=batch[:2], headers=auth)
    assert json.loads(again.headers["X-Kinfolio-Report"])["unchanged"] == 2
    assert await count_activities(engine, provider) == 2

    void = {"actor": {"mbox": "mailto:teacher@example.org"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
            "object": {"objectType": "StatementRef", "id": batch[0]["id"]}}
    voided = await client.post("/xapi/statements", json=void, headers=auth)
    assert voided.status_code == 200 and json.loads(voided.headers["X-Kinfolio-Report"])["retracted"] == 1
    assert await count_activities(engine, provider) == 1


async def test_push_refuses_a_batch_with_an_invalid_statement_and_stores_nothing(engine, client, monkeypatch):
    provider = await connector_provider(engine, monkeypatch)
    await linked_family(engine, provider, "kim@example.org", grant_activities=True)
    token = await get_token(client, provider)
    auth = {**V, "Authorization": f"Bearer {token}"}
    bad = _st(2, "kim@example.org") | {"timestamp": "yesterday"}
    response = await client.post("/xapi/statements", json=[_st(1, "kim@example.org"), bad], headers=auth)
    assert response.status_code == 400
    assert response.json()["statements"] == [{"index": 1, "reason": "timestamp 'yesterday' is not ISO 8601 (Data §4.5)"}]
    assert await count_activities(engine, provider) == 0


async def test_push_needs_the_version_header_and_a_token(engine, client, monkeypatch):
    provider = await connector_provider(engine, monkeypatch)
    token = await get_token(client, provider)
    no_version = await client.post("/xapi/statements", json=[], headers={"Authorization": f"Bearer {token}"})
    assert no_version.status_code == 400 and "X-Experience-API-Version" in no_version.json()["error"]
    no_token = await client.post("/xapi/statements", json=[_st(1, "kim@example.org")], headers=V)
    assert no_token.status_code == 401 and no_token.headers["WWW-Authenticate"].startswith("Bearer")
    not_json = await client.post("/xapi/statements", content=b"{", headers={**V, "Authorization": f"Bearer {token}"})
    assert not_json.status_code == 400
