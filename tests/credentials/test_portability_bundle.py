"""The portability bundle (GDPR Art. 20): contents, xAPI validity, manifest hashes, no leak, CLI."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select, update

from consent import Action
from hub.credentials import vcjwt
from hub.credentials.importer import import_credential
from hub.credentials.service import verify
from hub.credentials.verify import trusted_keys_from
from hub.db import make_sessionmaker
from hub.grants.enforce import AccessDenied, ProviderAccess
from hub.grants.models import DisclosureEvent
from hub.grants.receipts import verify_receipt
from hub.oauth.bearer import TokenContext
from hub.oauth.keys import keys_from_pem
from hub.portability.bundle import write_bundle
from hub.records.models import Activity
from tests.conftest import ISSUER
from tests.credentials.conftest import add_record, load, public_multikey
from tests.factories import Family, grant, make_family, make_provider, revoke

pytestmark = pytest.mark.samples
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
JS = Path(__file__).resolve().parent.parent / "js"
STATIC = {"manifest.json", "credentials/clr.json", "activities/statements.json", "consent/receipts.json",
          "consent/disclosure-log.json", "consent/disclosure-log-verification.json"}


def xapi_warnings(statements: list[dict[str, Any]]) -> list[list[str]]:
    """Learning Locker's xAPI validator (the rules its LRS applies to POST /statements), under node."""
    node = shutil.which("node")
    if node is None or not (JS / "node_modules" / "@learninglocker").is_dir():
        pytest.skip("node and tests/js/node_modules are needed (make test runs npm ci)")
    done = subprocess.run([node, str(JS / "xapi-validate.mjs")], input=json.dumps(statements), capture_output=True,
                          text=True, timeout=60, check=True)
    return json.loads(done.stdout)["results"]


async def fill_every_section(engine, kit, family: Family, examples_dir: Path, marker: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Badges, skills, activities (with full xAPI results and timestamp ties), grants and a revocation
    (receipts), allowed and denied decisions (disclosure log), and held credentials (JSON-LD and JWS)."""
    await add_record(engine, family)
    provider = await make_provider(engine, f"{marker} App", ["activities:read", "skills:read"])
    await grant(engine, family, provider, "activities", Action.READ)
    await grant(engine, family, provider, "badges", Action.READ)
    await revoke(engine, family, provider, "badges")
    sessions = make_sessionmaker(engine)
    tie = datetime(2026, 3, 1, 9, tzinfo=UTC)
    async with sessions() as session, session.begin():
        for n in range(4):  # four statements with the same timestamp: the keyset must not skip or repeat
            session.add(Activity(
                learner_id=family.learner_id, provider_id=provider.provider_id, source_id=f"{marker}-tie-{n}",
                content_hash="x", verb_id="http://adlnet.gov/expapi/verbs/scored", verb_display="scored",
                object_id=f"https://app.example.org/{marker}/quiz/{n}", object_name=f"{marker} quiz {n}",
                object_type="http://adlnet.gov/expapi/activities/assessment", result_score_scaled=0.5,
                result_score_raw=5, result_score_min=0, result_score_max=10, result_success=True,
                result_completion=True, result_duration="PT4M30S", timestamp=tie))
    token = TokenContext(jti="jti-1", client_id=provider.client_id, provider_id=provider.provider_id,
                         scopes=frozenset({"activities:read", "skills:read"}))
    async with sessions() as session, session.begin():
        access = ProviderAccess(session=session, token=token, now=datetime.now(UTC))
        await access.authorize(family.learner_id, "activities", Action.READ)
        access.disclosed(family.learner_id, "activities", Action.READ, 9)
        with pytest.raises(AccessDenied):
            await access.authorize(family.learner_id, "skills", Action.READ)
        await access.flush_log()

    trusted = trusted_keys_from(public_multikey(examples_dir / "ob3-testvector-multikey.json"))
    ob3 = load(examples_dir / "ob3-testvector-signed-credential.json")
    own = {"@context": ["https://www.w3.org/ns/credentials/v2",
                        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"],
           "id": f"urn:uuid:{UUID(int=family.learner_id.int ^ 1)}", "type": ["VerifiableCredential", "OpenBadgeCredential"],
           "issuer": kit.key.issuer_summary(), "validFrom": "2026-01-01T00:00:00Z", "name": f"{marker} held",
           "credentialSubject": {"type": ["AchievementSubject"], "achievement": {
               "id": f"https://x.example/{marker}", "type": ["Achievement"], "name": f"{marker} held",
               "description": "d", "criteria": {"narrative": "n"}}}}
    jws = vcjwt.sign(own, kit.key)
    async with sessions() as session, session.begin():
        await import_credential(session, kit, family.learner_id, ob3, now=NOW, guardian_id=family.guardian_id,
                                trusted=trusted)
        await import_credential(session, kit, family.learner_id, jws, now=NOW, guardian_id=family.guardian_id)
    return {"ob3": ob3, "jws": jws, "activities": 9, "trusted": trusted}


async def bundle_of(engine, kit, settings, learner_id: UUID, page_size: int = 1000) -> tuple[zipfile.ZipFile, dict]:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    async with make_sessionmaker(engine)() as session, session.begin():
        manifest = await write_bundle(session, kit=kit, receipt_keys=keys_from_pem(settings.signing_key_pem.encode()).private,
                                      learner_id=learner_id, out=buffer, now=NOW, page_size=page_size)
    buffer.seek(0)
    return zipfile.ZipFile(buffer), manifest


def read_json(bundle: zipfile.ZipFile, name: str) -> Any:
    return json.loads(bundle.read(name))


async def test_bundle_holds_every_section_verifiably_and_nothing_of_another_learner(
    engine, kit, cred_settings, examples_dir, samples_dir
):  # type: ignore[no-untyped-def]
    family = await make_family(engine)
    other = await make_family(engine, email="other@example.org")
    made = await fill_every_section(engine, kit, family, examples_dir, "mine")
    theirs = await fill_every_section(engine, kit, other, examples_dir, "THEIRS")
    bundle, manifest = await bundle_of(engine, kit, cred_settings, family.learner_id, page_size=2)

    # What is in it, and the manifest describes every other file with its exact hash and size.
    names = set(bundle.namelist())
    badges = sorted(n for n in names if n.startswith("credentials/badges/"))
    held = sorted(n for n in names if n.startswith("held/"))
    assert names == STATIC | set(badges) | set(held) and len(badges) == 2 and len(held) == 2
    stored = json.loads(bundle.read("manifest.json"))
    assert stored == manifest and stored["type"] == "KinfolioPortabilityBundle" and "Art. 20" in stored["legalBasis"]
    assert stored["generatedAt"] == "2026-11-23T12:00:00Z" and stored["issuer"]["id"] == kit.key.issuer_id
    assert {f["path"] for f in stored["files"]} == names - {"manifest.json"}
    for entry in stored["files"]:
        data = bundle.read(entry["path"])
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (entry["sha256"], entry["bytes"]), entry["path"]
        assert entry["description"]
    assert stored["counts"] == {"badgeCredentials": 2, "activityStatements": 5 + 4, "consentReceipts": 3,
                                "disclosureEvents": 2, "heldCredentials": 2}

    # Credentials: the CLR and each badge verify; the badge files are the CLR's badges.
    clr = read_json(bundle, "credentials/clr.json")
    async with make_sessionmaker(engine)() as session:
        result = await verify(session, kit, clr, NOW, made["trusted"])
        assert result.ok, [c.line() for c in result.failures()]
        badge_ids = set()
        for name in badges:
            credential = read_json(bundle, name)
            assert credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
            assert (await verify(session, kit, credential, NOW)).ok
            badge_ids.add(credential["id"])
    assert badge_ids <= {c["id"] for c in clr["credentialSubject"]["verifiableCredential"]}
    assert clr["credentialSubject"]["id"] == stored["learner"]["credentialSubjectId"] == f"urn:uuid:{family.learner_id}"

    # xAPI: valid for an independent validator, stable ids, the learner as a hub-scoped account.
    statements = read_json(bundle, "activities/statements.json")
    assert len(statements) == made["activities"]
    broken = [{**statements[0], "id": "not-a-uuid"}, {**statements[0], "verb": {"id": "completed"}}]
    assert xapi_warnings(statements + broken) == [[]] * len(statements) + [
        ["statement.id: TypeWarning Validation Error"], ["statement.verb.id: TypeWarning Validation Error"]]
    assert len({s["id"] for s in statements}) == len(statements)
    assert all(s["actor"] == {"objectType": "Agent", "account": {"homePage": ISSUER, "name": str(family.learner_id)}}
               for s in statements)
    assert [s["timestamp"] for s in statements] == sorted(s["timestamp"] for s in statements)
    scored = next(s for s in statements if s["verb"]["id"].endswith("/scored"))
    assert scored["result"] == {"score": {"scaled": 0.5, "raw": 5, "min": 0, "max": 10}, "success": True,
                                "completion": True, "duration": "PT4M30S"}
    assert scored["object"]["definition"]["type"] == "http://adlnet.gov/expapi/activities/assessment"
    assert scored["timestamp"] == "2026-03-01T09:00:00.000Z" and scored["context"] == {"platform": "mine App"}
    again, _ = await bundle_of(engine, kit, cred_settings, family.learner_id)  # one page this time
    assert read_json(again, "activities/statements.json") == statements

    # Consent: receipts verify with the hub's keys; the log is complete and its chain intact.
    public = keys_from_pem(cred_settings.signing_key_pem.encode()).public
    receipts = read_json(bundle, "consent/receipts.json")
    assert all(verify_receipt(r["jws"], public) == r["receipt"] for r in receipts)
    log = read_json(bundle, "consent/disclosure-log.json")
    assert [(e["seq"], e["section"], e["outcome"]) for e in log] == [(2, "skills", "denied"), (1, "activities", "allowed")]
    assert log[1]["entries"] == 9 and log[1]["providerName"] == "mine App" and log[0]["prevHash"] == log[1]["hash"]
    assert read_json(bundle, "consent/disclosure-log-verification.json")["intact"] is True
    assert stored["disclosureLogIntact"] is True

    # Held credentials, kept whole: the JSON-LD document and the compact JWS exactly as imported.
    assert read_json(bundle, next(n for n in held if n.endswith(".json"))) == made["ob3"]
    assert bundle.read(next(n for n in held if n.endswith(".jws"))).decode().strip() == made["jws"]

    # Nothing of the other learner anywhere (their id, their entries, their held JWS).
    for name in names:
        data = bundle.read(name)
        for needle in (str(other.learner_id), other.learner_id.hex, "THEIRS", theirs["jws"]):
            assert needle.encode() not in data, (name, needle)


async def test_tampered_disclosure_log_is_reported_in_the_bundle(engine, kit, cred_settings, examples_dir):  # type: ignore[no-untyped-def]
    family = await make_family(engine)
    await fill_every_section(engine, kit, family, examples_dir, "mine")
    async with make_sessionmaker(engine)() as session, session.begin():
        await session.execute(update(DisclosureEvent).where(DisclosureEvent.seq == 1).values(entry_count=0))
    bundle, manifest = await bundle_of(engine, kit, cred_settings, family.learner_id)
    verification = read_json(bundle, "consent/disclosure-log-verification.json")
    assert manifest["disclosureLogIntact"] is False and verification["intact"] is False
    assert verification["problems"] and verification["problems"][0]["seq"] == 1


async def test_learner_with_empty_record_gets_a_valid_bundle_and_unknown_learner_is_refused(engine, kit, cred_settings):  # type: ignore[no-untyped-def]
    family = await make_family(engine)
    bundle, manifest = await bundle_of(engine, kit, cred_settings, family.learner_id)
    assert set(bundle.namelist()) == STATIC
    assert read_json(bundle, "activities/statements.json") == [] and manifest["counts"]["activityStatements"] == 0
    with pytest.raises(LookupError, match="no learner"):
        await bundle_of(engine, kit, cred_settings, UUID(int=7))


def test_cli_export_writes_the_bundle_and_refuses_bad_learner_ids(engine, database_url, contexts_dir, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    import asyncio

    from typer.testing import CliRunner

    from hub.cli import app as cli
    from hub.config import get_settings

    monkeypatch.setenv("KINFOLIO_DATABASE_URL", database_url)
    monkeypatch.setenv("KINFOLIO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KINFOLIO_JSONLD_CONTEXTS_DIR", str(contexts_dir))
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        family = asyncio.run(_family_on_fresh_engine(database_url))
        out = tmp_path / "export.zip"
        done = runner.invoke(cli, ["export", "--learner", str(family.learner_id), "--out", str(out)])
        assert done.exit_code == 0, done.output
        assert f"wrote {out}" in done.output and "disclosure log intact" in done.output
        assert "manifest.json" in zipfile.ZipFile(out).namelist()

        bad = runner.invoke(cli, ["export", "--learner", "not-a-uuid", "--out", str(tmp_path / "bad.zip")])
        assert bad.exit_code == 2 and "is not a UUID" in bad.output
        unknown = runner.invoke(cli, ["export", "--learner", str(UUID(int=7)), "--out", str(tmp_path / "none.zip")])
        assert unknown.exit_code == 2 and f"no learner {UUID(int=7)}" in unknown.output
        assert sorted(p.name for p in tmp_path.glob("*.zip*")) == ["export.zip"]  # nothing half-written
        missing_dir = runner.invoke(cli, ["export", "--learner", str(family.learner_id), "--out",
                                          str(tmp_path / "no" / "such" / "dir.zip")])
        assert missing_dir.exit_code == 2 and "error:" in missing_dir.output
    finally:
        get_settings.cache_clear()


async def _family_on_fresh_engine(database_url: str) -> Family:
    from hub.db import make_engine

    engine = make_engine(database_url)
    try:
        return await make_family(engine)
    finally:
        await engine.dispose()


async def test_export_reads_only_through_the_learner_filter(engine, kit, cred_settings, examples_dir):  # type: ignore[no-untyped-def]
    """A learner whose only data is someone else's grants and log: the bundle is empty of both."""
    family = await make_family(engine)
    other = await make_family(engine, email="other@example.org")
    await fill_every_section(engine, kit, other, examples_dir, "THEIRS")
    bundle, manifest = await bundle_of(engine, kit, cred_settings, family.learner_id)
    assert manifest["counts"] == {"badgeCredentials": 0, "activityStatements": 0, "consentReceipts": 0,
                                  "disclosureEvents": 0, "heldCredentials": 0}
    clr = read_json(bundle, "credentials/clr.json")
    assert clr["credentialSubject"]["verifiableCredential"] == []
    async with make_sessionmaker(engine)() as session:
        assert (await session.execute(select(DisclosureEvent).where(
            DisclosureEvent.learner_id == family.learner_id))).first() is None

