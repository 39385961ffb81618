"""A skill aligned to an imported CASE item exports with the CFItem as its alignment target."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from hub.credentials.service import clr_credential, verify
from hub.db import make_sessionmaker
from hub.frameworks.service import import_package
from hub.records.models import SkillAssessment
from tests.credentials.test_issue_and_import import NOW, assert_valid
from tests.factories import make_provider

pytestmark = pytest.mark.samples

CFDOC = "https://server/ims/case/v1p0/CFDocuments/d0000000-0000-0000-0000-000000000000"
CFITEM = "https://server/ims/case/v1p0/CFItems/00000000-0000-0000-0000-000000000003"


async def test_clr_alignment_uses_the_cfitem(engine, kit, family, samples_dir, settings):
    package = json.loads((samples_dir / "case" / "opensalt" / "SmartLevelFramework.json").read_text("utf-8"))
    package["CFItems"][2]["humanCodingScheme"] = "SL.1.1"
    provider = await make_provider(engine, "School", ["skills:contribute"])
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        await import_package(session=session, package=package, schemas_dir=settings.case_schemas_dir, now=NOW)
        for n, (uri, code, label) in enumerate([(CFDOC, "SL.1.1", "Item one point one"),
                                                ("https://elsewhere.example.org/fw", "X.1", "Unknown framework")]):
            session.add(SkillAssessment(
                learner_id=family.learner_id, provider_id=provider.provider_id, source_id=f"s{n}", content_hash="x",
                framework_uri=uri, skill_code=code, skill_label=label, skill_key=f"{uri}#{code}", scale_name="1-4",
                scale_min=1, scale_max=4, proficiency=3, assessed_at=datetime(2026, 3, 1, tzinfo=UTC)))
    async with sessions() as session, session.begin():
        clr = await clr_credential(session, kit, family.learner_id, NOW, sections=["skills"])
    assert_valid(samples_dir, "clr_v2p0_clrcredential_schema.json", clr)
    alignments = {a["name"]: a["alignment"][0] for a in clr["credentialSubject"]["achievement"]}
    known = alignments["Item one point one"]
    assert (known["targetUrl"], known["targetDescription"], known["targetFramework"], known["targetCode"]) == (
        CFITEM, "Item 1.1", "SmartLevel Test", "SL.1.1")
    assert known["targetType"] == "CFItem"
    assert alignments["Unknown framework"]["targetUrl"] == "https://elsewhere.example.org/fw"
    async with sessions() as session:
        result = await verify(session, kit, clr, NOW)
    assert result.ok, [c.line() for c in result.failures()]
