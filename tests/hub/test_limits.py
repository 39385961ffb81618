"""Query cost limit (from page sizes) and per-client rate limits with 429 + Retry-After."""

from __future__ import annotations

import httpx
from graphql import parse

from consent import Action
from hub.app import create_app
from hub.graphql.limits import RateLimiter, estimated_cost
from hub.graphql.schema import build_schema
from tests.conftest import ISSUER
from tests.factories import get_token, gql, grant, make_family, make_provider

HUGE = "{ learners(first: 100) { nodes { activities(first: 100) { nodes { id timestamp verb { id display } object { id } } } } } }"


def test_cost_counts_page_sizes_down_the_tree(settings):
    schema = build_schema(settings)._schema
    assert estimated_cost(schema, parse("{ learners(first: 10) { nodes { id } } }"), {}) == 10 + 10 + 10
    # Defaults count when `first` is omitted (20), variables are read.
    assert estimated_cost(schema, parse("query($n: Int!) { learners(first: $n) { nodes { badges { nodes { id } } } } }"),
                          {"n": 5}) == 5 + 5 + 100 + 100 + 100
    assert estimated_cost(schema, parse(HUGE), {}) > settings.graphql_max_cost


async def test_costly_operation_is_refused_before_execution(client, engine, settings):
    provider = await make_provider(engine, "Greedy", ["activities:read"])
    family = await make_family(engine)
    await grant(engine, family, provider, "activities", Action.READ)
    token = await get_token(client, provider)
    body = (await gql(client, token, HUGE)).json()
    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "COST_LIMIT" and error["extensions"]["limit"] == settings.graphql_max_cost
    ok = (await gql(client, token, "{ learners(first: 100) { nodes { activities(first: 5) { nodes { id } } } } }")).json()
    assert "errors" not in ok


async def test_a_cost_beyond_json_numbers_is_refused_with_the_largest_exact_one(client, engine, settings):
    """Page sizes of 2^31 - 1 (valid Ints) nested: the cost is ~10^19, past 64 bits. The refusal
    still comes (it once crashed encoding the response) and reports 2^53 - 1, "more than"."""
    provider = await make_provider(engine, "Boundless", ["activities:read"])
    token = await get_token(client, provider)
    n = 2**31 - 1
    query = f"{{ learners(first: {n}) {{ nodes {{ activities(first: {n}) {{ nodes {{ id timestamp verb {{ id display }} }} }} }} }} }}"
    assert estimated_cost(build_schema(settings)._schema, parse(query), {}) > 2**64
    response = await gql(client, token, query)
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "COST_LIMIT", "cost": 2**53 - 1, "limit": settings.graphql_max_cost}
    assert f"more than {2**53 - 1} objects" in error["message"]


async def test_one_query_text_is_costed_by_each_requests_page_sizes(client, engine, settings):
    """The same query text (one cached document) with a small, a huge and again a small page
    size: each request is judged by its own variables, not by the cost remembered for another."""
    provider = await make_provider(engine, "Varying", ["activities:read"])
    family = await make_family(engine)
    await grant(engine, family, provider, "activities", Action.READ)
    token = await get_token(client, provider)
    query = "query($n: Int!) { learners(first: 100) { nodes { activities(first: $n) { nodes { id timestamp verb { id display } } } } } }"
    codes = []
    for n in (5, 100, 5, 100):
        body = (await gql(client, token, query, {"n": n})).json()
        codes.append(body["errors"][0]["extensions"]["code"] if "errors" in body else "ok")
    assert codes == ["ok", "COST_LIMIT", "ok", "COST_LIMIT"]


async def test_rate_limit_answers_429_with_retry_after(engine, settings):
    app = create_app(settings.model_copy(update={"rate_limit_per_minute": 6, "rate_limit_burst": 3}), engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        provider = await make_provider(engine, "Chatty", ["badges:read"])
        other = await make_provider(engine, "Quiet", ["badges:read"])
        token, other_token = await get_token(http, provider), await get_token(http, other)
        statuses = [(await gql(http, token, "{ learners { nodes { id } } }")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = await gql(http, token, "{ learners { nodes { id } } }")
        assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 10
        assert limited.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        # Buckets are per client.
        assert (await gql(http, other_token, "{ learners { nodes { id } } }")).status_code == 200


def test_token_bucket_refills_over_time():
    limiter = RateLimiter(per_minute=60, burst=2)
    assert [limiter.take("c", now=0.0) for _ in range(3)] == [None, None, 1.0]
    assert limiter.take("c", now=1.0) is None
