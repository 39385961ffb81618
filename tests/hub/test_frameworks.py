"""CASE frameworks: importFramework (scope, validation, idempotency) and SkillRef.frameworkItem."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from consent import Action
from hub.db import make_sessionmaker
from hub.frameworks.models import CaseAssociation, CaseDocument, CaseItem
from tests.factories import (
    CONTRIBUTE_SKILLS, get_token, gql, grant, learner_id_for, make_family, make_provider, statements_during,
)

pytestmark = pytest.mark.samples

IMPORT = """
mutation($package: JSON!) {
  importFramework(package: $package) {
    documentIdentifier title document
    items { created updated unchanged removed } associations { created updated unchanged removed }
    invalid { path identifier reason }
  }
}"""

SKILLS = """
query($id: ID!) { learner(id: $id) { skills(first: 50) { nodes { skill { label code
  frameworkItem { statement humanCodingScheme itemType uri documentTitle educationLevel } } } } } }"""

CFITEM = "https://server/ims/case/v1p0/CFItems/00000000-0000-0000-0000-00000000000"
CFDOC = "https://server/ims/case/v1p0/CFDocuments/d0000000-0000-0000-0000-000000000000"


def _opensalt(samples_dir: Path) -> list[Path]:
    return sorted((samples_dir / "case" / "opensalt").glob("*.json"))


def _package(samples_dir: Path, name: str) -> dict:
    return json.loads((samples_dir / "case" / "opensalt" / name).read_text("utf-8"))


async def _importer(client, engine, scopes=("frameworks:write",)):  # type: ignore[no-untyped-def]
    provider = await make_provider(engine, "Standards Office", list(scopes))
    return await get_token(client, provider)


async def _count(engine, model) -> int:  # type: ignore[no-untyped-def]
    async with make_sessionmaker(engine)() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def test_every_opensalt_sample_imports_and_reimports_unchanged(client, engine, samples_dir):
    token = await _importer(client, engine)
    paths = _opensalt(samples_dir)
    assert len(paths) == 6
    for path in paths:
        package = json.loads(path.read_text("utf-8"))
        first = (await gql(client, token, IMPORT, {"package": package})).json()
        assert "errors" not in first, (path.name, first)
        result = first["data"]["importFramework"]
        assert result["invalid"] == [] and result["title"] == package["CFDocument"]["title"]
        assert result["items"]["created"] + result["items"]["updated"] + result["items"]["unchanged"] == len(package["CFItems"])
        again = (await gql(client, token, IMPORT, {"package": package})).json()["data"]["importFramework"]
        assert again["document"] == "unchanged"
        assert again["items"] == {"created": 0, "updated": 0, "unchanged": len(package["CFItems"]), "removed": 0}
        assert again["associations"]["unchanged"] == len(package["CFAssociations"])
        async with make_sessionmaker(engine)() as session:
            stored = await session.get(CaseDocument, package["CFDocument"]["identifier"])
            assert stored is not None and stored.data == package["CFDocument"]  # kept whole
    # The samples share one document identifier (OpenSALT test fixtures): the last one wins, and
    # items the last package no longer names were removed.
    last = json.loads(paths[-1].read_text("utf-8"))
    assert await _count(engine, CaseDocument) == 1
    assert await _count(engine, CaseItem) == len(last["CFItems"])
    assert await _count(engine, CaseAssociation) == len(last["CFAssociations"])


async def test_changed_item_is_updated_and_case_1_0_links_are_tolerated(client, engine, samples_dir):
    token = await _importer(client, engine)
    package = _package(samples_dir, "SmartLevelFramework.json")
    await gql(client, token, IMPORT, {"package": package})
    changed = copy.deepcopy(package)
    changed["CFItems"][0]["fullStatement"] = "Item 1 (revised)"
    changed["CFItems"][0]["lastChangeDateTime"] = "2018-01-01T00:00:00+00:00"
    # CASE 1.0 form: link properties the 1.1 binding does not have.
    changed["CFDocument"]["CFPackageURI"] = {"title": "SmartLevel Test", "identifier": package["CFDocument"]["identifier"],
                                             "uri": "https://server/ims/case/v1p0/CFPackages/d0000000-0000-0000-0000-000000000000"}
    for item in changed["CFItems"][1:3]:
        item["CFDocumentURI"] = {"title": "SmartLevel Test", "identifier": package["CFDocument"]["identifier"], "uri": CFDOC}
    result = (await gql(client, token, IMPORT, {"package": changed})).json()["data"]["importFramework"]
    assert result["document"] == "updated" and result["invalid"] == []
    assert result["items"] == {"created": 0, "updated": 3, "unchanged": 11, "removed": 0}
    async with make_sessionmaker(engine)() as session:
        item = await session.get(CaseItem, package["CFItems"][0]["identifier"])
        assert item.full_statement == "Item 1 (revised)" and item.last_change_at.year == 2018


async def test_invalid_items_reported_rest_imported_and_invalid_package_refused(client, engine, samples_dir):
    token = await _importer(client, engine)
    package = _package(samples_dir, "SmartLevelFramework.json")
    del package["CFItems"][2]["fullStatement"]
    package["CFItems"][4]["lastChangeDateTime"] = "last tuesday"
    package["CFItems"][5]["identifier"] = package["CFItems"][6]["identifier"]
    package["CFAssociations"][0]["associationType"] = "isBestFriendOf"
    # Valid CASE, but more than the columns hold: reported, not a database error (PostgreSQL).
    package["CFAssociations"][1]["associationType"] = "ext:" + "x" * 200
    package["CFAssociations"][2]["sequenceNumber"] = 2**40
    result = (await gql(client, token, IMPORT, {"package": package})).json()["data"]["importFramework"]
    problems = {p["path"]: p["reason"] for p in result["invalid"]}
    assert "fullStatement" in problems["CFItems[2]"]
    assert "lastChangeDateTime" in problems["CFItems[4]"]
    assert "duplicate identifier" in problems["CFItems[6]"]
    assert "isBestFriendOf" in problems["CFAssociations[0]"]
    assert problems["CFAssociations[1]"] == "associationType: longer than 100 characters"
    assert problems["CFAssociations[2]"] == "sequenceNumber: outside the 32-bit integer range"
    assert len(problems) == 6
    assert result["items"]["created"] == 11 and result["associations"]["created"] == 11

    for bad, where in ((dict(package, CFDocument={"title": "x"}), "CFDocument"), ({"CFItems": []}, "CFDocument"),
                       (dict(package, CFItems="nope"), "CFItems"), ([1, 2], "$")):
        body = (await gql(client, token, IMPORT, {"package": bad})).json()
        error = body["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["errors"][0]["path"] == where
        assert body["data"] is None


async def test_token_without_the_scope_is_refused(client, engine, samples_dir):
    token = await _importer(client, engine, scopes=("skills:contribute", "skills:read"))
    body = (await gql(client, token, IMPORT, {"package": _package(samples_dir, "AdoptedTestFramework.json")})).json()
    assert body["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    assert await _count(engine, CaseDocument) == 0


async def test_scope_is_for_client_credentials_clients_only(engine):
    from hub.providers.service import create_client, create_provider

    async with make_sessionmaker(engine)() as session, session.begin():
        provider = await create_provider(session=session, name="App", kind="app")
        with pytest.raises(ValueError, match="client-credentials"):
            await create_client(session=session, provider_id=provider.id, name="app", scopes=["frameworks:write"],
                                redirect_uris=["https://app.example.org/cb"])


async def test_aligned_skill_shows_the_item_statement_batched(client, engine, samples_dir):
    importer = await _importer(client, engine)
    await gql(client, importer, IMPORT, {"package": _package(samples_dir, "SmartLevelFramework.json")})

    family = await make_family(engine)
    provider = await make_provider(engine, "School", ["skills:contribute", "skills:read"])
    await grant(engine, family, provider, "skills", Action.CONTRIBUTE)
    await grant(engine, family, provider, "skills", Action.READ)
    token = await get_token(client, provider)
    learner = learner_id_for(family, provider)

    def skill(n: int, ref: dict) -> dict:
        return {"sourceId": f"s-{n}", "skill": ref, "scale": {"name": "1-4", "min": 1, "max": 4}, "proficiency": 3,
                "assessedAt": f"2026-01-{n + 1:02d}T00:00:00+00:00"}

    skills = [
        skill(1, {"frameworkUri": CFITEM + "3", "code": "1.1", "label": "by item URI"}),
        skill(2, {"frameworkUri": CFDOC, "code": "00000000-0000-0000-0000-000000000004", "label": "by document + id"}),
        skill(3, {"frameworkUri": "https://elsewhere.example.org/fw", "code": "X.1", "label": "not imported"}),
        skill(4, {"label": "label only"}),
    ]
    body = (await gql(client, token, CONTRIBUTE_SKILLS, {"learner": learner, "items": skills})).json()
    assert "errors" not in body, body

    with statements_during(engine) as statements:
        body = (await gql(client, token, SKILLS, {"id": learner})).json()
    assert "errors" not in body, body
    by_label = {n["skill"]["label"]: n["skill"]["frameworkItem"] for n in body["data"]["learner"]["skills"]["nodes"]}
    assert by_label["by item URI"] == {"statement": "Item 1.1", "humanCodingScheme": None, "itemType": None,
                                       "uri": CFITEM + "3", "documentTitle": "SmartLevel Test", "educationLevel": None}
    assert by_label["by document + id"]["statement"] == "Item 1.2"
    assert by_label["not imported"] is None and by_label["label only"] is None
    # Four skills, one batch: at most three framework lookups, not one per skill.
    assert sum("case_item" in s or "case_document" in s for s in statements) <= 3


async def test_portal_record_page_shows_the_item_statement(client, engine, samples_dir, settings):
    from datetime import UTC, datetime

    from hub.frameworks.service import import_package
    from hub.records.models import SkillAssessment
    from tests.portal_helpers import make_world, sign_in

    world = await make_world(engine)
    package = _package(samples_dir, "SmartLevelFramework.json")
    package["CFItems"][2]["humanCodingScheme"] = "SL.1.1"
    async with make_sessionmaker(engine)() as session, session.begin():
        await import_package(session=session, package=package, schemas_dir=settings.case_schemas_dir,
                             now=datetime.now(UTC))
        session.add(SkillAssessment(
            learner_id=world.learner_id, provider_id=world.school_id, source_id="case-1", content_hash="0" * 64,
            framework_uri=CFDOC, skill_code="SL.1.1", skill_label="Smart levels", skill_key=f"{CFDOC}#SL.1.1",
            scale_name="1-4 rubric", scale_min=1, scale_max=4, proficiency=3, assessed_at=datetime(2026, 1, 5, tzinfo=UTC)))
    await sign_in(client, world.email)
    page = await client.get(f"/family/learners/{world.learner_id}")
    assert page.status_code == 200
    assert "<strong>Smart levels</strong> <span class=\"case-item\">(SL.1.1: Item 1.1 — SmartLevel Test)</span>" in page.text
    assert "<strong>Reading fluency</strong>: 2.5" in page.text  # a label-only skill shows no item


async def test_a_hub_without_the_case_schemas_says_so_and_is_not_retried(client, engine, samples_dir, settings):
    settings.case_schemas_dir = None  # the operator has not set KINFOLIO_CASE_SCHEMAS_DIR
    token = await _importer(client, engine)
    body = (await gql(client, token, IMPORT, {"package": _package(samples_dir, "AdoptedTestFramework.json")})).json()
    error = body["errors"][0]
    assert error["extensions"]["code"] == "NOT_CONFIGURED"  # not INTERNAL: connectors retry INTERNAL
    assert "KINFOLIO_CASE_SCHEMAS_DIR" in error["message"]
    assert await _count(engine, CaseDocument) == 0
