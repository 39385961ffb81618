"""The lean ``POST /graphql`` path (hub/graphql/http.py) answers exactly as the Strawberry route
behind it does, and hands that route everything it does not answer itself."""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
import pytest

from consent import Action
from hub.app import create_app
from hub.graphql import http as lean_graphql
from tests.conftest import ISSUER
from tests.factories import activity, get_token, grant, learner_id_for, make_family, make_provider

READ = "query($id: ID!) { learner(id: $id) { id activities(first: 2) { nodes { sourceId verb { display } } } } }"
TWO_OPERATIONS = "query A { learners(first: 1) { nodes { id } } } query B { learners(first: 2) { nodes { id } } }"

# (name, what the lean path does with it: "answers", "falls back" or "not offered", body, headers)
CASES: list[tuple[str, str, Any, dict[str, str]]] = [
    ("read", "answers", {"query": READ, "variables": {"id": "$learner"}}, {}),
    ("read, charset in content type", "answers", {"query": READ, "variables": {"id": "$learner"}},
     {"content-type": "application/json; charset=utf-8"}),
    ("syntax error", "answers", {"query": "{ learner(id: "}, {}),
    ("unknown field", "answers", {"query": "{ learners { nodes { shoeSize } } }"}, {}),
    ("variable of the wrong type", "answers", {"query": READ, "variables": {"id": {"x": 1}}}, {}),
    ("learner the provider may not see", "answers", {"query": READ, "variables": {"id": "no-such-learner"}}, {}),
    ("no token", "answers", {"query": READ, "variables": {"id": "$learner"}}, {"authorization": ""}),
    ("forged token", "answers", {"query": READ, "variables": {"id": "$learner"}}, {"authorization": "Bearer abc.def.ghi"}),
    ("two operations, no name", "answers", {"query": TWO_OPERATIONS}, {}),
    ("unknown operation name", "answers", {"query": TWO_OPERATIONS, "operationName": "C"}, {}),
    ("named operation", "answers", {"query": TWO_OPERATIONS, "operationName": "B"}, {}),
    ("empty query", "answers", {"query": ""}, {}),
    ("null query", "falls back", {"query": None}, {}),
    ("no query", "falls back", {"variables": {}}, {}),
    ("variables not an object", "falls back", {"query": READ, "variables": ["x"]}, {}),
    ("extensions not an object", "falls back", {"query": READ, "extensions": 3}, {}),
    ("batch", "falls back", [{"query": READ}], {}),
    ("not JSON", "falls back", b"{query", {}),
    ("not JSON, no token", "falls back", b"{query", {"authorization": ""}),
    ("form body", "not offered", b"query=x", {"content-type": "application/x-www-form-urlencoded"}),
    ("streaming accept", "not offered", {"query": READ, "variables": {"id": "$learner"}}, {"accept": "text/event-stream"}),
]


@pytest.fixture
async def world(app, client, engine):  # type: ignore[no-untyped-def]
    provider = await make_provider(engine, "Reader", ["activities:read", "activities:contribute"])
    family = await make_family(engine)
    await grant(engine, family, provider, "activities", Action.READ)
    await grant(engine, family, provider, "activities", Action.CONTRIBUTE)
    token = await get_token(client, provider)
    learner = learner_id_for(family, provider)
    stored = await client.post("/graphql", headers={"Authorization": f"Bearer {token}"}, json={
        "query": "mutation($id: ID!, $a: [ActivityInput!]!) { recordActivities(learnerId: $id, activities: $a) { created } }",
        "variables": {"id": learner, "a": [activity(1), activity(2), activity(3)]}})
    assert stored.json() == {"data": {"recordActivities": {"created": 3}}}, stored.text
    return token, learner


def _request(case: tuple[str, str, Any, dict[str, str]], token: str, learner: str) -> tuple[bytes, dict[str, str]]:
    _, _, body, extra = case
    content = body if isinstance(body, bytes) else orjson.dumps(body).replace(b"$learner", learner.encode())
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}", **extra}
    return content, {k: v for k, v in headers.items() if v}


def _answer(response: httpx.Response) -> tuple[Any, ...]:
    body = response.json() if response.headers.get("content-type") == "application/json" else response.text
    return (response.status_code, response.headers.get("content-type"), response.headers.get("www-authenticate"), body)


async def test_the_lean_path_answers_as_the_strawberry_route_does(app, client, world) -> None:  # type: ignore[no-untyped-def]
    token, learner = world
    lean = app.graphql_post
    seen: list[str] = []

    async def counted_fallback(scope, receive, send):  # type: ignore[no-untyped-def]
        seen.append("falls back")
        await super(type(app), app).__call__(scope, receive, send)

    async def lean_post(scope, receive, send):  # type: ignore[no-untyped-def]
        seen.append("offered")
        await lean_graphql.serve(app, scope, receive, send, fallback=counted_fallback)

    try:
        for case in CASES:
            content, headers = _request(case, token, learner)
            app.graphql_post = None
            expected = _answer(await client.post("/graphql", content=content, headers=headers))
            app.graphql_post = lean_post
            seen.clear()
            got = _answer(await client.post("/graphql", content=content, headers=headers))
            assert got == expected, case[0]
            path = "not offered" if not seen else "falls back" if "falls back" in seen else "answers"
            assert path == case[1], case[0]
    finally:
        app.graphql_post = lean


async def test_what_the_cases_cover(app, client, world) -> None:  # type: ignore[no-untyped-def]
    """The parity test above would pass on two equally broken paths: pin what the answers are."""
    token, learner = world
    answers = {}
    for case in CASES:
        content, headers = _request(case, token, learner)
        answers[case[0]] = _answer(await client.post("/graphql", content=content, headers=headers))
    status, _, _, body = answers["read"]
    assert status == 200 and [n["sourceId"] for n in body["data"]["learner"]["activities"]["nodes"]] == ["act-3", "act-2"]
    assert answers["read, charset in content type"] == answers["read"]
    assert answers["no token"][0] == 401 and answers["no token"][2] == 'Bearer realm="kinfolio"'
    assert answers["forged token"][0] == 401 and 'error="invalid_token"' in answers["forged token"][2]
    assert answers["forged token"][3]["detail"]["error"] == "invalid_token"
    for name in ("syntax error", "unknown field", "variable of the wrong type"):
        assert answers[name][0] == 200 and answers[name][3]["data"] is None and answers[name][3]["errors"], name
    assert answers["learner the provider may not see"][3]["data"] == {"learner": None}
    assert answers["unknown operation name"][:2] == (400, "text/plain; charset=utf-8")
    # GraphQL spec §6.1 GetOperation: several operations and no name is a request error, not the first one run.
    status, _, _, body = answers["two operations, no name"]
    assert status == 200 and body["data"] is None
    assert [e["message"] for e in body["errors"]] == ["Must provide operation name if query contains multiple operations."]
    assert len(answers["named operation"][3]["data"]["learners"]["nodes"]) == 1
    assert answers["empty query"][0] == 400 and answers["empty query"][3] == "No GraphQL query found in the request"
    assert answers["batch"][0] == 400 and answers["not JSON"][3] == "Unable to parse request body as JSON"
    assert answers["not JSON, no token"][0] == 401  # the token is still checked first
    assert answers["form body"][0] == 400


async def test_the_lean_path_limits_the_rate_and_times_the_answer(settings, engine) -> None:
    app = create_app(settings.model_copy(update={"rate_limit_per_minute": 6, "rate_limit_burst": 2, "server_timing": True}),
                     engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        provider = await make_provider(engine, "Chatty", ["activities:read"])
        token = await get_token(http, provider)
        request = {"json": {"query": "{ learners(first: 1) { nodes { id } } }"}, "headers": {"Authorization": f"Bearer {token}"}}
        responses = [await http.post("/graphql", **request) for _ in range(3)]
        app.graphql_post = None
        routed = await http.post("/graphql", **request)
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert int(responses[2].headers["retry-after"]) >= 1
    assert responses[2].json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert _answer(responses[2]) == _answer(routed) and responses[2].headers["retry-after"] == routed.headers["retry-after"]
    for response in responses:
        assert re.fullmatch(r"app;dur=\d+\.\d{3}", response.headers["server-timing"])


async def test_a_client_gone_before_its_body_arrives_gets_no_answer(app) -> None:  # type: ignore[no-untyped-def]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/graphql", "headers": [(b"content-type", b"application/json")]}
    await app(scope, receive, send)
    assert sent == []
