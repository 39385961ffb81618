"""Batch contributions: idempotency, all-or-nothing validation, clear errors; reads and pagination."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from consent import Action
from hub.graphql.schema import build_schema
from hub.records.models import Activity, Badge, SkillAssessment
from tests.factories import (
    CONTRIBUTE_BADGES,
    CONTRIBUTE_SKILLS,
    RECORD_ACTIVITIES,
    activity,
    badge,
    get_token,
    gql,
    grant,
    learner_id_for,
    make_family,
    make_provider,
    skill,
)

ALL = ["badges:read", "badges:contribute", "skills:read", "skills:contribute", "activities:read", "activities:contribute"]


@pytest.fixture
async def setup(client, engine):  # type: ignore[no-untyped-def]
    family = await make_family(engine)
    provider = await make_provider(engine, "Full Access", ALL)
    for section in ("badges", "skills", "activities"):
        for action in Action:
            await grant(engine, family, provider, section, action)
    token = await get_token(client, provider)
    return family, provider, token


def lid(setup) -> str:  # type: ignore[no-untyped-def]
    family, provider, _ = setup
    return learner_id_for(family, provider)


async def _count(engine, model) -> int:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(model))).scalar_one()


async def test_same_batch_twice_stores_once_and_says_so(client, engine, setup):
    family, _, token = setup
    items = [activity(n) for n in range(50)]
    variables = {"learner": lid(setup), "items": items}
    first = (await gql(client, token, RECORD_ACTIVITIES, variables)).json()["data"]["recordActivities"]
    second = (await gql(client, token, RECORD_ACTIVITIES, variables)).json()["data"]["recordActivities"]
    assert first == {"received": 50, "created": 50, "updated": 0, "unchanged": 0}
    assert second == {"received": 50, "created": 0, "updated": 0, "unchanged": 50}
    assert await _count(engine, Activity) == 50


async def test_fingerprints_are_the_sha256_of_pydantics_json(client, engine, setup):
    """The stored form every later version must reproduce: a re-send of an entry stored by an
    earlier version is then "unchanged" (whatever serialiser call computes it)."""
    import hashlib

    from sqlalchemy import select

    from schemas.records import SECTION_INPUTS

    _, _, token = setup
    items = [activity(n) for n in range(5)]
    await gql(client, token, RECORD_ACTIVITIES, {"learner": lid(setup), "items": items})
    async with engine.connect() as conn:
        stored = dict((await conn.execute(select(Activity.source_id, Activity.content_hash))).all())
    for item in items:
        entry = SECTION_INPUTS["activities"].model_validate(item)
        assert stored[entry.source_id] == hashlib.sha256(entry.model_dump_json().encode()).hexdigest()


async def test_fingerprints_stored_in_the_earlier_form_still_match(client, engine, setup):
    """Entries stored before the fingerprint moved to pydantic's JSON keep their sorted-json.dumps
    hash: a re-send is still unchanged, a real change still updates."""
    import hashlib
    import json

    from schemas.records import SECTION_INPUTS

    _, _, token = setup
    items = [activity(n) for n in range(3)]
    variables = {"learner": lid(setup), "items": items}
    await gql(client, token, RECORD_ACTIVITIES, variables)
    async with engine.begin() as conn:
        for item in items:
            entry = SECTION_INPUTS["activities"].model_validate(item)
            old = hashlib.sha256(json.dumps(entry.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode())
            await conn.execute(Activity.__table__.update().where(Activity.source_id == entry.source_id)
                               .values(content_hash=old.hexdigest()))
    again = (await gql(client, token, RECORD_ACTIVITIES, variables)).json()["data"]["recordActivities"]
    assert again == {"received": 3, "created": 0, "updated": 0, "unchanged": 3}
    items[0] = {**items[0], "verb": {**items[0]["verb"], "display": "re-scored"}}
    changed = (await gql(client, token, RECORD_ACTIVITIES, variables)).json()["data"]["recordActivities"]
    assert changed == {"received": 3, "created": 0, "updated": 1, "unchanged": 2}


async def test_resend_with_changed_content_updates_in_place(client, engine, setup):
    family, _, token = setup
    await gql(client, token, CONTRIBUTE_SKILLS, {"learner": lid(setup), "items": [skill(0, 2.0), skill(1, 3.0)]})
    corrected = [skill(0, 2.5), skill(1, 3.0), skill(2, 3.5)]
    result = (await gql(client, token, CONTRIBUTE_SKILLS, {"learner": lid(setup), "items": corrected})).json()
    assert result["data"]["contributeSkills"] == {"received": 3, "created": 1, "updated": 1, "unchanged": 1}
    assert await _count(engine, SkillAssessment) == 3
    body = (await gql(client, token, "query($id: ID!) { learner(id: $id) { skills { nodes { sourceId proficiency createdAt updatedAt skill { key } } } } }",
                      {"id": lid(setup)})).json()
    nodes = body["data"]["learner"]["skills"]["nodes"]
    # Newest first: the progression of one skill, in time order when reversed.
    assert [(n["sourceId"], n["proficiency"]) for n in nodes] == [
        ("skill-Collaboration-2", 3.5), ("skill-Collaboration-1", 3.0), ("skill-Collaboration-0", 2.5)
    ]
    assert {n["skill"]["key"] for n in nodes} == {"label:collaboration"}
    updated = nodes[2]
    assert updated["updatedAt"] > updated["createdAt"] or updated["updatedAt"] == updated["createdAt"]


async def test_badges_round_trip_in_open_badges_shape(client, engine, setup):
    family, provider, token = setup
    await gql(client, token, CONTRIBUTE_BADGES, {"learner": lid(setup), "items": [badge(1), badge(2)]})
    body = (await gql(client, token, """query($id: ID!) { learner(id: $id) { badges(first: 1) {
        nodes { sourceId contributedBy awardedDate achievement { id name description criteria { narrative } }
                issuer { id name } }
        pageInfo { hasNextPage endCursor } } } }""", {"id": lid(setup)})).json()
    page = body["data"]["learner"]["badges"]
    assert page["nodes"] == [{
        "sourceId": "badge-2", "contributedBy": str(provider.provider_id), "awardedDate": "2026-02-03T00:00:00+00:00",
        "achievement": {"id": "https://club.example.org/achievements/2", "name": "Badge 2",
                        "description": "For doing a thing well.", "criteria": {"narrative": "Did the thing."}},
        "issuer": {"id": "https://club.example.org/issuer", "name": "The Club"},
    }]
    assert page["pageInfo"]["hasNextPage"] is True


async def test_activity_pagination_and_filters(client, engine, setup):
    family, _, token = setup
    base = datetime(2026, 3, 1, tzinfo=UTC)
    items = [activity(n, when=base, verb="completed" if n % 2 else "attempted") for n in range(25)]
    await gql(client, token, RECORD_ACTIVITIES, {"learner": lid(setup), "items": items})
    query = """query($id: ID!, $after: String, $since: DateTime, $until: DateTime, $verb: String) {
      learner(id: $id) { activities(first: 10, after: $after, since: $since, until: $until, verb: $verb) {
        nodes { sourceId timestamp verb { id } } pageInfo { hasNextPage endCursor } } } }"""
    seen, after = [], None
    while True:
        body = (await gql(client, token, query, {"id": lid(setup), "after": after})).json()
        page = body["data"]["learner"]["activities"]
        seen += [n["sourceId"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"act-{n}" for n in reversed(range(25))]

    body = (await gql(client, token, query, {
        "id": lid(setup), "since": (base + timedelta(minutes=5)).isoformat(),
        "until": (base + timedelta(minutes=9)).isoformat(), "verb": "http://adlnet.gov/expapi/verbs/completed",
    })).json()
    assert [n["sourceId"] for n in body["data"]["learner"]["activities"]["nodes"]] == ["act-7", "act-5"]


async def test_every_edge_cursor_resumes_after_its_entry_and_older_iso_cursors_still_do(client, setup):
    """Cursors carry the entry's time in epoch microseconds: exact to the microsecond, ties broken by
    id, before 1970 too. Cursors handed out earlier (ISO 8601 time) keep working."""
    _, _, token = setup
    tie = "2026-03-01T00:00:00.000001+00:00"
    items = [activity(0, timestamp=tie), activity(1, timestamp=tie),
             activity(2, timestamp="1969-12-31T23:59:59.999999+00:00"),
             activity(3, timestamp="2026-03-01T00:00:00.000002+00:00")]
    assert "errors" not in (await gql(client, token, RECORD_ACTIVITIES, {"learner": lid(setup), "items": items})).json()
    query = """query($id: ID!, $after: String) { learner(id: $id) { activities(first: 10, after: $after) {
      edges { cursor node { id sourceId timestamp } } pageInfo { endCursor } } } }"""
    page = (await gql(client, token, query, {"id": lid(setup)})).json()["data"]["learner"]["activities"]
    order = [edge["node"]["sourceId"] for edge in page["edges"]]
    assert order == ["act-3", "act-1", "act-0", "act-2"]
    assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
    for position, edge in enumerate(page["edges"]):
        node = edge["node"]
        iso_cursor = _forged(f"{node['timestamp']}|{node['id']}")
        for cursor in (edge["cursor"], iso_cursor):
            rest = (await gql(client, token, query, {"id": lid(setup), "after": cursor})).json()["data"]["learner"]["activities"]
            assert [e["node"]["sourceId"] for e in rest["edges"]] == order[position + 1:], (node, cursor)


async def test_activity_result_round_trips(client, engine, setup):
    family, _, token = setup
    item = activity(1, result={"score": {"scaled": 0.8, "raw": 8, "min": 0, "max": 10}, "success": True,
                               "completion": True, "duration": "PT12M30S"})
    await gql(client, token, RECORD_ACTIVITIES, {"learner": lid(setup), "items": [item, activity(2)]})
    body = (await gql(client, token, "query($id: ID!) { learner(id: $id) { activities { nodes { sourceId result { score { scaled raw min max } success completion duration } } } } }",
                      {"id": lid(setup)})).json()
    assert body["data"]["learner"]["activities"]["nodes"] == [
        {"sourceId": "act-2", "result": None},
        {"sourceId": "act-1", "result": {"score": {"scaled": 0.8, "raw": 8.0, "min": 0.0, "max": 10.0},
                                          "success": True, "completion": True, "duration": "PT12M30S"}},
    ]


BAD_ACTIVITY_BATCHES = {
    "timestamp without timezone": ([activity(1), {**activity(2), "timestamp": "2026-01-01T10:00:00"}], "timestamp"),
    "over-long string": ([activity(1), {**activity(2), "sourceId": "x" * 201}], "sourceId"),
    "verb id not an IRI": ([{**activity(1), "verb": {"id": "completed", "display": "completed"}}], "verb"),
    "scaled score out of range": ([activity(1, result={"score": {"scaled": 1.5}})], "scaled"),
    "bad ISO duration": ([activity(1, result={"duration": "90 minutes"})], "duration"),
    "repeated source id": ([activity(1), activity(1)], "source_id repeated"),
    "empty batch": ([], "empty"),
}


@pytest.mark.parametrize("case", list(BAD_ACTIVITY_BATCHES))
async def test_bad_batches_are_refused_whole_with_a_clear_error(client, engine, setup, case):  # type: ignore[no-untyped-def]
    family, _, token = setup
    items, mention = BAD_ACTIVITY_BATCHES[case]
    response = await gql(client, token, RECORD_ACTIVITIES, {"learner": lid(setup), "items": items})
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"recordActivities": None}
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert mention in (error["message"] + str(error["extensions"].get("errors", "")))
    assert await _count(engine, Activity) == 0  # nothing partially written


async def test_batch_over_the_limit_is_refused(client, engine, setup, settings):
    family, _, token = setup
    items = [activity(n) for n in range(settings.max_batch_size + 1)]
    body = (await gql(client, token, RECORD_ACTIVITIES, {"learner": lid(setup), "items": items})).json()
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": "activities"}
    assert f"limit per call is {settings.max_batch_size}" in body["errors"][0]["message"]
    assert await _count(engine, Activity) == 0


async def test_field_errors_name_the_entry_and_field(client, engine, setup):
    family, _, token = setup
    items = [activity(0), {**activity(1), "timestamp": "2026-01-01T10:00:00"}]
    body = (await gql(client, token, RECORD_ACTIVITIES, {"learner": lid(setup), "items": items})).json()
    assert body["errors"][0]["extensions"]["errors"] == [
        {"path": ["activities", 1, "timestamp"], "message": "Input should have timezone info"}
    ]


async def test_invalid_badge_and_skill_inputs(client, engine, setup):
    family, _, token = setup
    no_criteria = badge(1)
    no_criteria["achievement"]["criteria"] = {}
    body = (await gql(client, token, CONTRIBUTE_BADGES, {"learner": lid(setup), "items": [badge(0), no_criteria]})).json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    off_scale = skill(0, 5.0)
    body = (await gql(client, token, CONTRIBUTE_SKILLS, {"learner": lid(setup), "items": [off_scale]})).json()
    assert "outside the scale" in str(body["errors"][0]["extensions"]["errors"])
    assert await _count(engine, Badge) == 0 and await _count(engine, SkillAssessment) == 0


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("{ learners { nodes { id }", "Syntax Error"),
        ("{ learner(id: 1) { grades { id } } }", "Cannot query field 'grades' on type 'Learner'"),
        ("mutation { recordActivities(learnerId: \"x\", activities: [{sourceId: 5}]) { created } }",
         "String cannot represent a non string value: 5"),
    ],
    ids=["malformed", "unknown section", "wrong types"],
)
async def test_invalid_documents_are_refused_before_execution(client, setup, query, message):  # type: ignore[no-untyped-def]
    # GraphQL over HTTP with application/json: 200 with no data and the validation errors.
    _, _, token = setup
    response = await client.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert message in body["errors"][0]["message"]


async def test_non_json_body_is_4xx(client, setup):
    _, _, token = setup
    response = await client.post("/graphql", content=b"{not json", headers={"Authorization": f"Bearer {token}",
                                                                          "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize(
    ("query", "argument"),
    [
        ("query($id: ID!) { learner(id: $id) { activities(first: 0) { nodes { id } } } }", "first"),
        ("query($id: ID!) { learner(id: $id) { activities(first: 5000) { nodes { id } } } }", "first"),
        ("query($id: ID!) { learner(id: $id) { activities(after: \"garbage\") { nodes { id } } } }", "after"),
        ("query($id: ID!) { learner(id: $id) { activities(since: \"2026-01-02T00:00:00Z\", until: \"2026-01-01T00:00:00Z\") { nodes { id } } } }", "since"),
    ],
    ids=["first too small", "first too large", "forged cursor", "empty time range"],
)
async def test_bad_read_arguments(client, setup, query, argument):  # type: ignore[no-untyped-def]
    family, _, token = setup
    body = (await gql(client, token, query, {"id": lid(setup)})).json()
    assert body["data"]["learner"]["activities"] is None
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}


async def test_depth_and_alias_limits(client, setup, settings):
    _, _, token = setup
    aliases = " ".join(f"a{i}: learners {{ nodes {{ id }} }}" for i in range(settings.graphql_max_aliases + 1))
    response = await client.post("/graphql", json={"query": f"{{ {aliases} }}"}, headers={"Authorization": f"Bearer {token}"})
    assert response.json() == {"data": None, "errors": [
        {"message": f"{settings.graphql_max_aliases + 1} aliases found. Allowed: {settings.graphql_max_aliases}"}]}
    deep = "{ learners { nodes { badges { nodes { achievement { criteria { narrative } alignments { targetName } } } } } } }"
    response = await client.post("/graphql", json={"query": deep.replace("narrative }", "narrative id }")},
                                 headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200  # a realistic query fits
    deepest = "{ learners { nodes { activities { edges { node { result { score { raw } } } } } } } }"
    assert (await client.post("/graphql", json={"query": deepest}, headers={"Authorization": f"Bearer {token}"})).json()["data"]
    # Today's schema has no cycles deeper than the default limit, so check the rule with a lower one.
    shallow = build_schema(settings.model_copy(update={"graphql_max_depth": 5}))
    result = await shallow.execute(deepest)
    assert result.data is None
    assert "exceeds maximum operation depth of 5" in result.errors[0].message


async def test_skills_summary_and_progression_across_contributors(client, engine, setup):
    family, provider, token = setup
    other = await make_provider(engine, "Second School", ["skills:contribute"])
    await grant(engine, family, other, "skills", Action.CONTRIBUTE)
    other_token = await get_token(client, other)
    await gql(client, token, CONTRIBUTE_SKILLS, {"learner": lid(setup), "items": [skill(0, 1.5), skill(2, 2.5), skill(0, 3.0, "Speaking")]})
    await gql(client, other_token, CONTRIBUTE_SKILLS, {"learner": learner_id_for(family, other),
                                                       "items": [skill(1, 2.0), skill(3, 3.5)]})
    body = (await gql(client, token, """query($id: ID!) { learner(id: $id) {
        skillsSummary { skill { key label } latestProficiency evidenceCount latestAssessedAt }
        skillProgression(skillKey: "label:collaboration") { latestProficiency assessments { proficiency } } } }""",
                      {"id": lid(setup)})).json()
    assert body["data"]["learner"]["skillsSummary"] == [
        {"skill": {"key": "label:collaboration", "label": "Collaboration"}, "latestProficiency": 3.5, "evidenceCount": 4,
         "latestAssessedAt": "2026-04-01T00:00:00+00:00"},
        {"skill": {"key": "label:speaking", "label": "Speaking"}, "latestProficiency": 3.0, "evidenceCount": 1,
         "latestAssessedAt": "2026-01-01T00:00:00+00:00"},
    ]
    assert body["data"]["learner"]["skillProgression"] == {
        "latestProficiency": 3.5, "assessments": [{"proficiency": p} for p in (1.5, 2.0, 2.5, 3.5)]
    }
    # The other school holds only contribute: its summary covers only what it contributed (read_own).
    other_token = await get_token(client, other, scope="skills:contribute")
    denied = (await gql(client, other_token, "query($id: ID!) { learner(id: $id) { skillsSummary { evidenceCount } } }",
                        {"id": learner_id_for(family, other)})).json()
    assert denied["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"


RETRACT = """mutation($learner: ID!, $section: String!, $ids: [String!]!) {
  retractEntries(learnerId: $learner, section: $section, sourceIds: $ids) { retracted notFound } }"""


async def test_providers_retract_only_their_own_entries_and_resending_restores(client, engine, setup):
    family, provider, token = setup
    other = await make_provider(engine, "Other Writer", ["activities:contribute"])
    await grant(engine, family, other, "activities", Action.CONTRIBUTE)
    other_token = await get_token(client, other)
    await gql(client, token, RECORD_ACTIVITIES, {"learner": lid(setup), "items": [activity(n) for n in range(3)]})
    await gql(client, other_token, RECORD_ACTIVITIES, {"learner": learner_id_for(family, other),
                                                       "items": [{**activity(9), "sourceId": "theirs"}]})
    body = (await gql(client, token, RETRACT, {"learner": lid(setup), "section": "activities",
                                               "ids": ["act-1", "theirs", "nope"]})).json()
    assert body["data"]["retractEntries"] == {"retracted": 1, "notFound": ["theirs", "nope"]}
    read = "query($id: ID!) { learner(id: $id) { activities { nodes { sourceId } } } }"
    nodes = (await gql(client, token, read, {"id": lid(setup)})).json()["data"]["learner"]["activities"]["nodes"]
    assert sorted(n["sourceId"] for n in nodes) == ["act-0", "act-2", "theirs"]
    restored = (await gql(client, token, RECORD_ACTIVITIES, {"learner": lid(setup), "items": [activity(1)]})).json()
    assert restored["data"]["recordActivities"] == {"received": 1, "created": 0, "updated": 1, "unchanged": 0}
    nodes = (await gql(client, token, read, {"id": lid(setup)})).json()["data"]["learner"]["activities"]["nodes"]
    assert len(nodes) == 4
    bad = (await gql(client, token, RETRACT, {"learner": lid(setup), "section": "grades", "ids": ["x"]})).json()
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_family_hides_and_deletes_entries_and_purge_makes_it_real(client, engine, setup, database_url, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from hub.cli import app as cli
    from hub.config import get_settings
    from hub.db import make_sessionmaker
    from hub.people.models import Guardian

    family, _, token = setup
    await gql(client, token, RECORD_ACTIVITIES, {"learner": lid(setup), "items": [activity(n) for n in range(3)]})
    async with engine.connect() as conn:
        ids = (await conn.execute(select(Activity.id).order_by(Activity.source_id))).scalars().all()
    async with make_sessionmaker(engine)() as session:
        email = (await session.get(Guardian, family.guardian_id)).email
    monkeypatch.setenv("KINFOLIO_DATABASE_URL", database_url)
    monkeypatch.setenv("KINFOLIO_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    runner = CliRunner()

    async def kinfolio(*args: str):  # type: ignore[no-untyped-def]
        # The CLI runs its own event loop: give it a thread of its own.
        return await asyncio.to_thread(runner.invoke, cli, list(args))

    base = ["--learner", str(family.learner_id), "--section", "activities", "--by", email]
    try:
        assert (await kinfolio("entries", "hide", *base, "--entry", str(ids[0]))).exit_code == 0
        assert (await kinfolio("entries", "delete", *base, "--entry", str(ids[1]))).exit_code == 0
        refused = await kinfolio("entries", "hide", "--learner", str(family.learner_id), "--section", "activities",
                                 "--by", "nobody@example.org", "--entry", str(ids[2]))
        assert refused.exit_code == 2 and "no guardian" in refused.output
        read = "query($id: ID!) { learner(id: $id) { activities { nodes { sourceId } } } }"
        nodes = (await gql(client, token, read, {"id": lid(setup)})).json()["data"]["learner"]["activities"]["nodes"]
        assert [n["sourceId"] for n in nodes] == ["act-2"]
        assert "purged 0 badges, 0 skills, 0 activities" in (await kinfolio("retention", "purge")).output
        assert "purged 0 badges, 0 skills, 1 activities" in (await kinfolio("retention", "purge", "--days", "0")).output
    finally:
        get_settings.cache_clear()
    assert await _count(engine, Activity) == 2  # the hidden one is kept, the deleted one is gone


BATCH = """mutation($items: [LearnerBatchInput!]!) { contributeBatch(items: $items) {
  learnerId status code reason errors sections { section received created updated unchanged } } }"""


async def test_contribute_batch_is_all_or_nothing_per_learner(client, engine, setup):
    family, provider, token = setup
    partial = await make_family(engine, "partial@example.org")
    stranger = await make_family(engine, "stranger@example.org")
    await grant(engine, partial, provider, "activities", Action.CONTRIBUTE)  # no skills grant
    items = [
        {"learnerId": lid(setup), "activities": [activity(1), activity(2)], "skills": [skill(0, 2.0)]},
        {"learnerId": learner_id_for(partial, provider), "activities": [activity(3)], "skills": [skill(0, 2.0)]},
        {"learnerId": learner_id_for(stranger, provider), "activities": [activity(4)]},
        {"learnerId": lid(setup) + "x", "activities": [{**activity(5), "timestamp": "2026-01-01T00:00:00"}]},
    ]
    body = (await gql(client, token, BATCH, {"items": items})).json()
    results = body["data"]["contributeBatch"]
    assert [(r["status"], r["code"]) for r in results] == [
        ("stored", None), ("refused", "CONSENT_REQUIRED"), ("refused", "NOT_FOUND"), ("invalid", "BAD_USER_INPUT"),
    ]
    assert results[0]["sections"] == [
        {"section": "skills", "received": 1, "created": 1, "updated": 0, "unchanged": 0},
        {"section": "activities", "received": 2, "created": 2, "updated": 0, "unchanged": 0},
    ]
    assert results[3]["errors"] == ["activities/0/timestamp: Input should have timezone info"]
    # The partly consented learner got nothing, not even the allowed activities (all or nothing).
    async with engine.connect() as conn:
        learners = (await conn.execute(select(Activity.learner_id))).scalars().all()
    assert set(learners) == {family.learner_id} and len(learners) == 2
    again = (await gql(client, token, BATCH, {"items": items[:1]})).json()["data"]["contributeBatch"][0]
    assert [s["unchanged"] for s in again["sections"]] == [1, 2]


async def test_total_count_where_cheap(client, engine, setup):
    _, _, token = setup
    await gql(client, token, CONTRIBUTE_BADGES, {"learner": lid(setup), "items": [badge(n) for n in range(3)]})
    await gql(client, token, RECORD_ACTIVITIES, {"learner": lid(setup), "items": [activity(n) for n in range(3)]})
    body = (await gql(client, token, """query($id: ID!) { learner(id: $id) {
        badges(first: 1) { totalCount nodes { sourceId } } activities(first: 1) { totalCount } } }""",
                      {"id": lid(setup)})).json()
    assert body["data"]["learner"] == {"badges": {"totalCount": 3, "nodes": [{"sourceId": "badge-2"}]},
                                       "activities": {"totalCount": None}}




async def test_skills_filter_by_key_and_page_size(client, setup):
    family, _, token = setup
    await gql(client, token, CONTRIBUTE_SKILLS, {"learner": lid(setup), "items": [
        skill(0, 2.0), skill(1, 3.0), skill(0, 1.0, label="Curiosity")]})
    query = """query($id: ID!, $key: String) { learner(id: $id) {
      filtered: skills(skillKey: $key) { nodes { sourceId } }
      everything: skills { nodes { sourceId } }
      one: skills(first: 1) { nodes { sourceId } pageInfo { hasNextPage } } } }"""
    learner = (await gql(client, token, query, {"id": lid(setup), "key": "label:curiosity"})).json()["data"]["learner"]
    assert [n["sourceId"] for n in learner["filtered"]["nodes"]] == ["skill-Curiosity-0"]
    assert len(learner["everything"]["nodes"]) == 3
    assert len(learner["one"]["nodes"]) == 1 and learner["one"]["pageInfo"]["hasNextPage"] is True


def _forged(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("section", ["badges", "skills", "activities"])
async def test_a_forged_cursor_is_bad_input_not_an_internal_error(client, setup, section):
    """Cursors are opaque, but a client can forge one: an id beyond BIGINT (the database refused it,
    which the hub answered as an internal error) or a time without an offset is refused as bad input."""
    _, _, token = setup
    query = f"query($id: ID!, $after: String) {{ learner(id: $id) {{ {section}(first: 5, after: $after) {{ nodes {{ id }} }} }} }}"
    good = _forged(f"2026-01-01T00:00:00+00:00|{2**63 - 1}")
    assert "errors" not in (await gql(client, token, query, {"id": lid(setup), "after": good})).json()
    assert "errors" not in (await gql(client, token, query, {"id": lid(setup), "after": _forged("1767225600000000|5")})).json()
    # Times beyond what a datetime holds, in microseconds, are as forged as an id beyond BIGINT.
    for forged in (f"2026-01-01T00:00:00+00:00|{2**63}", f"2026-01-01T00:00:00+00:00|{-(2**63) - 1}",
                   "2026-01-01T00:00:00|5", f"{10**19}|5", f"-{10**19}|5", "1767225600000000.5|5"):
        body = (await gql(client, token, query, {"id": lid(setup), "after": _forged(forged)})).json()
        assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": "after"}, (forged, body)


async def test_an_access_request_cursor_without_an_offset_is_bad_input(client, setup):
    _, _, token = setup
    query = "query($after: String) { accessRequests(after: $after) { nodes { status } } }"
    assert "errors" not in (await gql(client, token, query, {"after": "2026-01-01T00:00:00+00:00"})).json()
    for forged in ("2026-01-01T00:00:00", "2026-01-01", "soon"):
        body = (await gql(client, token, query, {"after": forged})).json()
        assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": "after"}, (forged, body)
