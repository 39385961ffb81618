"""The family GraphQL: a signed-in guardian reads their learners' disclosure logs, and nobody else's."""

from __future__ import annotations

from datetime import date

from sqlalchemy import update

from consent import Action
from hub.grants.models import DisclosureEvent
from hub.people.models import Learner
from tests.factories import Family, RECORD_ACTIVITIES, activity, get_token, gql, grant, learner_id_for, make_provider
from tests.hub.oauth_helpers import make_guardian, sign_in

LOG = """query($id: ID!, $first: Int!, $before: Int) { disclosures(learnerId: $id, first: $first, beforeSeq: $before) {
  verified problems nextBeforeSeq nodes { seq providerName section action outcome entryCount } } }"""


async def family_gql(http, query: str, variables: dict | None = None):  # type: ignore[no-untyped-def]
    return await http.post("/family/graphql", json={"query": query, "variables": variables or {}})


async def test_guardian_reads_own_learners_log_verified_and_paged(client, engine):
    parent = await make_guardian(engine, "logreader@example.org")
    other = await make_guardian(engine, "otherparent@example.org")
    family = Family(guardian_id=parent.id, learner_id=parent.learners[0])
    provider = await make_provider(engine, "Logged App", ["activities:contribute", "skills:read"])
    await grant(engine, family, provider, "activities", Action.CONTRIBUTE)
    token = await get_token(client, provider)
    lid = learner_id_for(family, provider)
    await gql(client, token, RECORD_ACTIVITIES, {"learner": lid, "items": [activity(n) for n in range(4)]})
    await gql(client, token, "query($id: ID!) { learner(id: $id) { skills { nodes { id } } } }", {"id": lid})

    assert (await family_gql(client, "{ myLearners { id } }")).status_code == 401  # not signed in
    await sign_in(client, "logreader@example.org")
    mine = (await family_gql(client, "{ myLearners { id controller } }")).json()["data"]["myLearners"]
    assert mine == [{"id": str(family.learner_id), "controller": "guardians"}]
    page = (await family_gql(client, LOG, {"id": str(family.learner_id), "first": 1})).json()["data"]["disclosures"]
    assert page["verified"] is True and page["nextBeforeSeq"] == 2
    assert page["nodes"] == [{"seq": 2, "providerName": "Logged App", "section": "skills", "action": "read",
                              "outcome": "denied", "entryCount": None}]
    older = (await family_gql(client, LOG, {"id": str(family.learner_id), "first": 5, "before": 2})).json()
    assert [n["seq"] for n in older["data"]["disclosures"]["nodes"]] == [1]
    # Another family's learner answers like an unknown id.
    theirs = (await family_gql(client, LOG, {"id": str(other.learners[0]), "first": 5})).json()
    assert theirs["data"] is None and theirs["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    # Tampering shows as unverified.
    async with engine.begin() as conn:
        await conn.execute(update(DisclosureEvent).where(DisclosureEvent.seq == 1).values(entry_count=400))
    tampered = (await family_gql(client, LOG, {"id": str(family.learner_id), "first": 5})).json()["data"]["disclosures"]
    assert tampered["verified"] is False and tampered["problems"] == ["seq 1: event content does not match its hash (edited)"]


async def test_once_the_learner_is_of_age_the_log_is_theirs(client, engine):
    parent = await make_guardian(engine, "adultsparent@example.org")
    async with engine.begin() as conn:
        await conn.execute(update(Learner).where(Learner.id == parent.learners[0]).values(date_of_birth=date(2000, 1, 1)))
    await sign_in(client, "adultsparent@example.org")
    body = (await family_gql(client, LOG, {"id": str(parent.learners[0]), "first": 5})).json()
    assert body["errors"][0]["extensions"]["code"] == "NOT_PERMITTED"


async def test_portal_offers_the_signed_bundle_when_credentials_are_configured(engine, settings, samples_dir):
    import io
    import json
    import zipfile

    import httpx

    from hub.app import create_app
    from tests.conftest import ISSUER

    parent = await make_guardian(engine, "bundle@example.org")
    configured = create_app(settings.model_copy(update={"jsonld_contexts_dir": samples_dir / "jsonld-contexts"}), engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=configured), base_url=ISSUER) as http:
        await sign_in(http, "bundle@example.org")
        page = await http.get(f"/family/learners/{parent.learners[0]}/export")
        assert 'id="export-bundle"' in page.text
        response = await http.get(f"/family/learners/{parent.learners[0]}/export.zip")
        assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(response.content)) as bundle:
            manifest = json.loads(bundle.read("manifest.json"))
            assert "credentials/clr.json" in bundle.namelist()
        assert manifest["files"]
        # Another family's learner: not found, nothing exported.
        other = await make_guardian(engine, "notmine@example.org")
        assert (await http.get(f"/family/learners/{other.learners[0]}/export.zip")).status_code == 404


async def test_portal_without_credentials_configured_says_so(client, engine):
    parent = await make_guardian(engine, "nobundle@example.org")
    await sign_in(client, "nobundle@example.org")
    page = await client.get(f"/family/learners/{parent.learners[0]}/export")
    assert 'id="export-bundle"' not in page.text and "KINFOLIO_JSONLD_CONTEXTS_DIR" in page.text
    response = await client.get(f"/family/learners/{parent.learners[0]}/export.zip")
    assert response.status_code == 503


async def test_family_graphql_refuses_queries_by_get(client, engine):
    await make_guardian(engine, "getter@example.org")
    await sign_in(client, "getter@example.org")
    response = await client.get("/family/graphql", params={"query": "{ myLearners { id } }"})
    assert 400 <= response.status_code < 500 and "myLearners" not in response.text
