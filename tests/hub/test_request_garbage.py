"""A provider's request, answered or refused, leaves no reference cycles: reference counting frees all it built.

A cycle through the request's context (its page loader's closure) or through graphql-core's
executor (its helpers are bound methods of itself) kept everything the request read alive until
the cyclic garbage collector found it, about 370 objects per profile read; the collections that
found them were ~13 % of the server's CPU (BENCHMARKS.md, fourteenth session).
"""

from __future__ import annotations

import gc
from collections import Counter

from consent import Action
from tests.factories import (CONTRIBUTE_BADGES, CONTRIBUTE_SKILLS, RECORD_ACTIVITIES, activity, badge, get_token, gql, grant,
                             learner_id_for, make_family, make_provider, skill)

# The benchmarks' profile read (bench/suite.py), and each skill's framework item (a second loader).
PROFILE = """query($id: ID!) { learner(id: $id) {
  badges(first: 20) { nodes { id sourceId achievement { id name description criteria { narrative } achievementType }
                              issuer { id name } awardedDate } }
  skills(first: 20) { nodes { id skill { key label code frameworkItem { statement } } scale { name min max }
                              proficiency assessedAt } }
  activities(first: 50) {
    edges { cursor node { id sourceId verb { id display } object { id name type }
                          result { score { scaled raw min max } success completion duration } timestamp } }
    pageInfo { hasNextPage endCursor }
  }
} }"""

# The test client's own objects (httpx keeps a response and its stream in a cycle) are not the hub's.
HUB_PACKAGES = {"hub", "consent", "connectors", "graphql", "strawberry", "sqlalchemy", "asyncpg", "starlette", "fastapi"}


async def _garbage_of_one_request(client, token: str, query: str, learner: str) -> tuple[Counter[str], dict]:  # type: ignore[no-untyped-def]
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # keep what a collection finds, to say what it was
    try:
        response = await gql(client, token, query, {"id": learner})
        gc.collect()
        found = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage
                        if type(o).__module__.split(".")[0] in HUB_PACKAGES)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    return found, response.json()


async def test_a_profile_read_leaves_no_cycles(app, client, engine) -> None:  # type: ignore[no-untyped-def]
    provider = await make_provider(engine, "Reader", [f"{s}:{a}" for s in ("badges", "skills", "activities")
                                                      for a in ("read", "contribute")])
    family = await make_family(engine)
    for section in ("badges", "skills", "activities"):
        for action in (Action.READ, Action.CONTRIBUTE):
            await grant(engine, family, provider, section, action)
    token = await get_token(client, provider)
    learner = learner_id_for(family, provider)
    for mutation, items in ((RECORD_ACTIVITIES, [activity(n) for n in range(5)]), (CONTRIBUTE_BADGES, [badge(1), badge(2)]),
                            (CONTRIBUTE_SKILLS, [skill(1, 2.0), skill(2, 3.0)])):
        stored = await gql(client, token, mutation, {"learner": learner, "items": items})
        assert "errors" not in stored.json(), stored.text
    await gql(client, token, PROFILE, {"id": learner})  # first request: caches fill, none of it garbage

    found, answer = await _garbage_of_one_request(client, token, PROFILE, learner)

    assert "errors" not in answer and len(answer["data"]["learner"]["activities"]["edges"]) == 5, answer
    assert len(answer["data"]["learner"]["skills"]["nodes"]) == 2 and len(answer["data"]["learner"]["badges"]["nodes"]) == 2
    assert found == Counter(), f"objects freed only by the cyclic collector: {found.most_common(12)}"


async def test_a_refused_read_leaves_no_cycles(app, client, engine) -> None:  # type: ignore[no-untyped-def]
    # A refusal is a routine answer (a section the family did not grant). graphql-core keeps the
    # resolver's exception in the error it reports, in the frame that caught it: a cycle through
    # every frame the refusal passed, and what they held, until the schema released the tracebacks.
    provider = await make_provider(engine, "Reader", ["activities:read", "badges:read"])
    family = await make_family(engine)
    await grant(engine, family, provider, "activities", Action.READ)
    token = await get_token(client, provider)
    learner = learner_id_for(family, provider)
    query = "query($id: ID!) { learner(id: $id) { activities(first: 5) { nodes { id } } badges(first: 5) { nodes { id } } } }"
    await gql(client, token, query, {"id": learner})

    found, answer = await _garbage_of_one_request(client, token, query, learner)

    assert answer["data"]["learner"] == {"activities": {"nodes": []}, "badges": None}, answer
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["CONSENT_REQUIRED"], answer
    assert found == Counter(), f"objects freed only by the cyclic collector: {found.most_common(12)}"
