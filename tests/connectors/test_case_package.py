"""The ``case-package`` connector: CFPackages from files through importFramework, as a provider."""

from __future__ import annotations

import json
import shutil

import pytest
from sqlalchemy import func, select

from connectors import state
from connectors.runtime import run_instance
from hub.db import make_sessionmaker
from hub.frameworks.models import CaseDocument, CaseItem
from tests.connectors.helpers import SECRET_ENV, asgi_http, create, instance_config
from tests.factories import make_provider

pytestmark = pytest.mark.samples


async def _provider(engine, monkeypatch, scopes):  # type: ignore[no-untyped-def]
    provider = await make_provider(engine, "State Standards", scopes)
    monkeypatch.setenv(SECRET_ENV, provider.client_secret)
    return provider


async def test_packages_import_invalid_items_reported_second_run_unchanged(engine, app, monkeypatch, samples_dir, tmp_path):
    drop = tmp_path / "case"
    drop.mkdir()
    package = json.loads((samples_dir / "case" / "opensalt" / "SmartLevelFramework.json").read_text("utf-8"))
    package["CFItems"][1]["CFItemType"] = 42  # invalid item: reported, the rest imported
    package["CFDocument"]["CFPackageURI"] = {"title": "SmartLevel Test", "identifier": package["CFDocument"]["identifier"],
                                             "uri": "https://server/ims/case/v1p0/CFPackages/d0"}  # CASE 1.0 form
    (drop / "a-smartlevel.json").write_text(json.dumps(package))
    (drop / "b-broken.json").write_text("{not json")
    (drop / "c-not-a-package.json").write_text('{"hello": "world"}')
    provider = await _provider(engine, monkeypatch, ["frameworks:write"])
    await create(engine, "standards", "case-package", instance_config(provider, {"sources": [str(drop)]}))
    sessions = make_sessionmaker(engine)

    async with asgi_http(app) as http:
        first = await run_instance(sessions=sessions, name="standards", http=http)
        second = await run_instance(sessions=sessions, name="standards", http=http)
    r = first.report
    assert first.status == "succeeded", first.error
    # 1 document + 13 valid items + 14 associations created; 1 invalid item + 2 unusable files.
    assert (r.read, r.created, r.updated, r.unchanged, r.invalid) == (3, 28, 0, 0, 3)
    invalid = {d["ref"]: d["reason"] for d in r.details if d["kind"] == "invalid"}
    assert "CFItemType" in invalid[f"{drop / 'a-smartlevel.json'} CFItems[1]"]
    assert "not JSON" in invalid[str(drop / "b-broken.json")]
    assert "not a CASE CFPackage" in invalid[str(drop / "c-not-a-package.json")]
    s = second.report
    assert (s.read, s.created, s.updated, s.unchanged, s.invalid) == (3, 0, 0, 28, 3)
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(CaseItem))).scalar_one() == 13
        assert (await session.get(CaseDocument, package["CFDocument"]["identifier"])).package_uri.endswith("/d0")
    # The unusable files are dead letters; the package itself is not (its good part is imported).
    letters = await state.dead_letters(sessions=sessions, name="standards")
    assert sorted(l.ref for l in letters) == [str(drop / "b-broken.json"), str(drop / "c-not-a-package.json")]


async def test_provider_without_the_scope_is_refused(engine, app, monkeypatch, samples_dir, tmp_path):
    shutil.copy(samples_dir / "case" / "opensalt" / "AdoptedTestFramework.json", tmp_path / "fw.json")
    provider = await _provider(engine, monkeypatch, ["skills:contribute"])
    await create(engine, "no-scope", "case-package", instance_config(provider, {"sources": [str(tmp_path / "fw.json")]}))
    async with asgi_http(app) as http:
        outcome = await run_instance(sessions=make_sessionmaker(engine), name="no-scope", http=http)
    assert outcome.status == "succeeded" and dict(outcome.report.refused) == {"insufficient_scope": 1}
    async with make_sessionmaker(engine)() as session:
        assert (await session.execute(select(func.count()).select_from(CaseDocument))).scalar_one() == 0
