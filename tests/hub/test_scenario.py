"""The walking skeleton end to end, through HTTP: token -> contribute -> read -> refuse -> revoke."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from consent import Action
from hub.grants.models import DisclosureEvent
from hub.records.models import Activity
from tests.factories import (
    CONTRIBUTE_BADGES,
    RECORD_ACTIVITIES,
    activity,
    badge,
    get_token,
    gql,
    grant,
    learner_id_for,
    make_family,
    make_provider,
    revoke,
)

READ_SECTIONS = """
query($id: ID!) {
  learner(id: $id) {
    id
    badges { nodes { sourceId achievement { name criteria { narrative } alignments { targetName } } issuer { name } } }
    skills { nodes { proficiency } }
  }
}"""


async def test_provider_reads_and_contributes_exactly_as_far_as_consented(client, engine):
    learner_l = await make_family(engine, "l-parent@example.org")
    learner_m = await make_family(engine, "m-parent@example.org", dob=date(2010, 3, 3))
    provider_a = await make_provider(
        engine, "Provider A", ["badges:read", "badges:contribute", "activities:contribute", "skills:read"]
    )
    club = await make_provider(engine, "Club", ["badges:contribute"])
    await grant(engine, learner_l, provider_a, "badges", Action.READ)
    await grant(engine, learner_l, provider_a, "activities", Action.CONTRIBUTE)
    await grant(engine, learner_l, club, "badges", Action.CONTRIBUTE)
    # M has granted A something, but only for M's own badges: L's grants must not leak to M.
    club_token = await get_token(client, club)
    response = await gql(client, club_token, CONTRIBUTE_BADGES, {"learner": learner_id_for(learner_l, club), "items": [badge(1)]})
    assert response.json()["data"]["contributeBadges"]["created"] == 1

    token = await get_token(client, provider_a)
    l_for_a = learner_id_for(learner_l, provider_a)

    # 1,000 activities in one call.
    items = [activity(n) for n in range(1000)]
    response = await gql(client, token, RECORD_ACTIVITIES, {"learner": l_for_a, "items": items})
    assert response.status_code == 200
    assert response.json() == {
        "data": {"recordActivities": {"received": 1000, "created": 1000, "updated": 0, "unchanged": 0}}
    }

    # Reads badges; skills are refused with CONSENT_REQUIRED while the rest of the query resolves.
    response = await gql(client, token, READ_SECTIONS, {"id": l_for_a})
    body = response.json()
    assert body["data"]["learner"]["badges"]["nodes"] == [
        {"sourceId": "badge-1", "achievement": {"name": "Badge 1", "criteria": {"narrative": "Did the thing."},
                                                "alignments": [{"targetName": "Teamwork"}]},
         "issuer": {"name": "The Club"}}
    ]
    assert body["data"]["learner"]["skills"] is None
    assert [(e["path"], e["extensions"]["code"], e["extensions"]["section"]) for e in body["errors"]] == [
        (["learner", "skills"], "CONSENT_REQUIRED", "skills")
    ]

    # Learner M: no grant for A at all -> the same answer as an id that does not exist.
    response_m = await gql(client, token, READ_SECTIONS, {"id": learner_id_for(learner_m, provider_a)})
    response_missing = await gql(client, token, READ_SECTIONS, {"id": "lrn_" + "a" * 32})
    # The internal id and the id another provider knows L by are not ids A can use either.
    response_internal = await gql(client, token, READ_SECTIONS, {"id": str(learner_l.learner_id)})
    response_foreign = await gql(client, token, READ_SECTIONS, {"id": learner_id_for(learner_l, club)})
    for response in (response_m, response_missing, response_internal, response_foreign):
        body = response.json()
        assert body["data"] == {"learner": None}
        assert [(e["message"], e["extensions"]) for e in body["errors"]] == [("learner not found", {"code": "NOT_FOUND"})]
    response = await gql(client, token, RECORD_ACTIVITIES, {"learner": learner_id_for(learner_m, provider_a), "items": [activity(1)]})
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"

    # The guardian revokes badges:read -> the very next request with the same, still valid token is refused.
    await revoke(engine, learner_l, provider_a, section="badges")
    body = (await gql(client, token, READ_SECTIONS, {"id": l_for_a})).json()
    assert body["data"]["learner"]["badges"] is None
    assert body["errors"][0]["extensions"] == {
        "code": "CONSENT_REQUIRED", "section": "badges", "action": "read", "reason": "grant_revoked"
    }

    # Revoking everything makes the learner invisible to A.
    await revoke(engine, learner_l, provider_a)
    body = (await gql(client, token, READ_SECTIONS, {"id": l_for_a})).json()
    assert body["data"] == {"learner": None}
    body = (await gql(client, token, "{ learners { nodes { id } } }")).json()
    assert body["data"]["learners"]["nodes"] == []

    async with engine.connect() as conn:
        stored = (await conn.execute(select(func.count()).select_from(Activity))).scalar_one()
        outcomes = (
            await conn.execute(
                select(DisclosureEvent.section, DisclosureEvent.action, DisclosureEvent.outcome, DisclosureEvent.reason)
                .where(DisclosureEvent.provider_id == provider_a.provider_id)
                .order_by(DisclosureEvent.id)
            )
        ).all()
    assert stored == 1000
    # Every decision, allowed or denied, is in the disclosure log, in order.
    assert [tuple(o) for o in outcomes] == [
        ("activities", "contribute", "allowed", None),
        ("badges", "read", "allowed", None),
        ("skills", "read", "denied", "no_grant"),
        ("badges", "read", "denied", "grant_revoked"),
        ("skills", "read", "denied", "no_grant"),
    ]


async def test_learners_lists_only_learners_with_a_live_grant(client, engine):
    shared = await make_family(engine, "a@example.org")
    other = await make_family(engine, "b@example.org")
    provider = await make_provider(engine, "Lister", ["badges:read"])
    await grant(engine, shared, provider, "badges", Action.READ)
    token = await get_token(client, provider)
    body = (await gql(client, token, "{ learners(first: 10) { nodes { id } pageInfo { hasNextPage } } }")).json()
    assert body["data"]["learners"] == {
        "nodes": [{"id": learner_id_for(shared, provider)}], "pageInfo": {"hasNextPage": False}
    }
    assert str(other.learner_id) not in str(body) and str(shared.learner_id) not in str(body)


async def test_pairwise_ids_differ_between_providers_and_are_stable_across_tokens(client, engine):
    family = await make_family(engine)
    first = await make_provider(engine, "First", ["badges:read"])
    second = await make_provider(engine, "Second", ["badges:read"])
    for provider in (first, second):
        await grant(engine, family, provider, "badges", Action.READ)
    seen = {}
    for provider in (first, second, first):
        token = await get_token(client, provider)
        body = (await gql(client, token, "{ learners { nodes { id } } }")).json()
        seen.setdefault(provider.client_id, set()).add(body["data"]["learners"]["nodes"][0]["id"])
    assert len(seen[first.client_id]) == 1 and len(seen[second.client_id]) == 1  # stable across tokens
    assert seen[first.client_id] != seen[second.client_id]  # unrelated across providers
    assert all(i.startswith("lrn_") and str(family.learner_id) not in i for ids in seen.values() for i in ids)


async def test_learners_pages_by_pairwise_id(client, engine):
    provider = await make_provider(engine, "Pager", ["badges:read"])
    families = [await make_family(engine, f"p{i}@example.org") for i in range(5)]
    for family in families:
        await grant(engine, family, provider, "badges", Action.READ)
    token = await get_token(client, provider)
    seen, after = [], None
    while True:
        body = (await gql(client, token, "query($after: String) { learners(first: 2, after: $after) { nodes { id } pageInfo { hasNextPage endCursor } } }",
                          {"after": after})).json()["data"]["learners"]
        seen += [n["id"] for n in body["nodes"]]
        if not body["pageInfo"]["hasNextPage"]:
            break
        after = body["pageInfo"]["endCursor"]
    assert seen == sorted(learner_id_for(f, provider) for f in families)
