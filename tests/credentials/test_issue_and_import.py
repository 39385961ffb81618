"""Export (OB 3.0 / CLR 2.0, schema-valid, verifiable), revocation, the served list, and import."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from jsonschema import Draft201909Validator, FormatChecker
from sqlalchemy import func, select

from consent import Action
from hub.credentials.importer import ImportRefused, import_credential
from hub.credentials.models import HeldCredential
from hub.credentials.service import badge_credential, clr_credential, revoke_badge, verify
from hub.credentials.verify import trusted_keys_from
from hub.db import make_sessionmaker
from hub.grants.enforce import AccessDenied, ProviderAccess
from hub.grants.models import DisclosureEvent
from hub.oauth.bearer import TokenContext
from hub.records.models import Badge
from tests.credentials.conftest import add_record, load, public_multikey
from tests.factories import grant, make_provider

pytestmark = pytest.mark.samples
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def validator(samples_dir, name):  # type: ignore[no-untyped-def]
    return Draft201909Validator(load(samples_dir / "ob3-clr-json-schemas" / name), format_checker=FormatChecker())


def assert_valid(samples_dir, name, document):  # type: ignore[no-untyped-def]
    errors = sorted(validator(samples_dir, name).iter_errors(document), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


async def test_badge_exports_verify_validate_and_revoke(engine, kit, family, samples_dir):
    badge_ids = await add_record(engine, family)
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        badge = await session.get(Badge, badge_ids[0])
        ldp = await badge_credential(session, kit, badge, NOW)
        jwt = await badge_credential(session, kit, badge, NOW, "jwt")
        again = await badge_credential(session, kit, badge, NOW)
    assert ldp["id"] == again["id"]  # one credential per badge, re-signed
    assert ldp["issuer"]["id"] == kit.key.issuer_id and ldp["credentialSubject"]["achievement"]["creator"]["name"] == "The Club"
    assert_valid(samples_dir, "ob_v3p0_achievementcredential_schema.json", ldp)
    async with sessions() as session:
        for form in (ldp, jwt):
            result = await verify(session, kit, form, NOW)
            assert result.ok, [c.line() for c in result.checks]
            assert any(c.name == "status" and c.passed for c in result.checks)
    assert_valid(samples_dir, "ob_v3p0_achievementcredential_schema.json",
                 (await _jwt_payload(jwt)))

    async with sessions() as session, session.begin():
        assert await revoke_badge(session, badge_ids[0], NOW, "awarded in error") is True
        assert await revoke_badge(session, badge_ids[0], NOW) is False
    async with sessions() as session:
        for form in (ldp, jwt):
            result = await verify(session, kit, form, NOW)
            assert not result.ok
            assert [c.name for c in result.failures()] == ["status"] and "revoked" in result.failures()[0].detail
        # The other badge is unaffected.
        other = await badge_credential(session, kit, await session.get(Badge, badge_ids[1]), NOW)
        assert (await verify(session, kit, other, NOW)).ok


async def _jwt_payload(token):  # type: ignore[no-untyped-def]
    from hub.credentials.vcjwt import unverified_parts

    return unverified_parts(token)[1]


async def test_clr_export_validates_and_verifies_with_every_embedded_credential(engine, kit, family, samples_dir):
    await add_record(engine, family)
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        clr = await clr_credential(session, kit, family.learner_id, NOW)
        skills_only = await clr_credential(session, kit, family.learner_id, NOW, sections=["skills"])
        with pytest.raises(ValueError, match="sections must be"):
            await clr_credential(session, kit, family.learner_id, NOW, sections=["grades"])
    assert_valid(samples_dir, "clr_v2p0_clrcredential_schema.json", clr)
    subject = clr["credentialSubject"]
    kinds = [a.get("achievementType") for a in subject["achievement"]]
    assert kinds.count("Competency") == 2 and kinds.count("ext:LearningActivity") == 2 and kinds.count(None) == 2
    teamwork = next(a for a in subject["achievement"] if a["name"] == "Teamwork" and a.get("achievementType"))
    assert teamwork["alignment"][0]["targetType"] == "CFItem" and teamwork["alignment"][0]["targetCode"] == "TW.1"
    teamwork_vc = next(c for c in subject["verifiableCredential"]
                       if c["credentialSubject"]["achievement"]["id"] == teamwork["id"])
    assert teamwork_vc["credentialSubject"]["result"][0]["value"] == "3"  # the latest assessment
    assert {a["associationType"] for a in subject["association"]} == {"isRelatedTo"}
    for embedded in subject["verifiableCredential"]:
        assert_valid(samples_dir, "ob_v3p0_achievementcredential_schema.json", embedded)
    async with sessions() as session:
        result = await verify(session, kit, clr, NOW)
        assert result.ok, [c.line() for c in result.failures()]
        assert sum(c.name.startswith("embedded credential") for c in result.checks) == 6
        tampered = copy.deepcopy(clr)
        tampered["credentialSubject"]["verifiableCredential"][0]["name"] = "Changed"
        assert not (await verify(session, kit, tampered, NOW)).ok
    assert [a.get("achievementType") for a in skills_only["credentialSubject"]["achievement"]] == ["Competency"] * 2


async def test_status_list_and_issuer_are_served(engine, kit, family, client, app):
    app.state.credential_kit = kit
    badge_ids = await add_record(engine, family, badges=1)
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        credential = await badge_credential(session, kit, await session.get(Badge, badge_ids[0]), NOW)
        await revoke_badge(session, badge_ids[0], NOW)
    url = credential["credentialStatus"]["statusListCredential"]
    response = await client.get(url)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/ld+json")
    listed = response.json()
    assert listed["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    from hub.credentials.statuslist import bit_at, decode_bits

    bits = decode_bits(listed["credentialSubject"]["encodedList"])
    assert bit_at(bits, int(credential["credentialStatus"]["statusListIndex"])) == 1
    async with sessions() as session:
        assert (await verify(session, kit, listed, datetime.now(UTC))).ok
    assert (await client.get("/credentials/status/999")).status_code == 404
    assert (await client.get("/credentials/status/abc")).status_code == 422
    profile = (await client.get("/credentials/issuer")).json()
    jwks = (await client.get("/credentials/jwks.json")).json()
    assert profile["id"] == kit.key.issuer_id
    assert profile["assertionMethod"] == [kit.key.verification_method, kit.keys.rsa.kid]
    assert profile["verificationMethod"][1] == {"id": kit.keys.rsa.kid, "type": "JsonWebKey",
                                                "controller": kit.key.issuer_id,
                                                "publicKeyJwk": {k: jwks["keys"][1][k] for k in ("kty", "n", "e")}}
    assert jwks["keys"][0]["kid"] == kit.key.verification_method and jwks["keys"][0]["crv"] == "Ed25519"
    assert jwks["keys"][1]["kid"] == kit.keys.rsa.kid and jwks["keys"][1]["alg"] == "RS256"
    assert not any("d" in k for k in jwks["keys"])  # never private material (OB 3.0 §8.2.4.1)


async def test_import_round_trip_of_official_examples(engine, kit, family, examples_dir):
    trusted = trusted_keys_from(public_multikey(examples_dir / "ob3-testvector-multikey.json"))
    sessions = make_sessionmaker(engine)
    ob3 = load(examples_dir / "ob3-testvector-signed-credential.json")
    clr = load(examples_dir / "clr2-testvector-signed-credential.json")
    async with sessions() as session, session.begin():
        first = await import_credential(session, kit, family.learner_id, ob3, now=NOW, guardian_id=family.guardian_id,
                                        trusted=trusted)
        same = await import_credential(session, kit, family.learner_id, ob3, now=NOW, guardian_id=family.guardian_id,
                                       trusted=trusted)
        from_clr = await import_credential(session, kit, family.learner_id, clr, now=NOW,
                                           guardian_id=family.guardian_id, trusted=trusted)
        assert (first.outcome, same.outcome) == ("created", "unchanged")
        assert from_clr.outcome == "created" and [i.outcome for i in from_clr.included] == ["created"]
        exported = await clr_credential(session, kit, family.learner_id, NOW, sections=["badges"])
    embedded_ids = [c["id"] for c in exported["credentialSubject"]["verifiableCredential"]]
    assert sorted(embedded_ids) == sorted([ob3["id"], clr["credentialSubject"]["verifiableCredential"][0]["id"]])
    # Kept whole: the embedded copies are byte-for-byte what was imported, proofs untouched.
    assert ob3 in exported["credentialSubject"]["verifiableCredential"]
    async with sessions() as session, session.begin():
        back = await import_credential(session, kit, family.learner_id, exported, now=NOW,
                                       guardian_id=family.guardian_id, trusted=trusted)
        assert back.outcome == "created" and back.kind == "ClrCredential"
        assert sorted(i.outcome for i in back.included) == ["unchanged", "unchanged"]
        held = (await session.execute(select(HeldCredential.kind, func.count()).where(
            HeldCredential.learner_id == family.learner_id).group_by(HeldCredential.kind))).all()
    assert dict(held) == {"ClrCredential": 2, "OpenBadgeCredential": 1, "AchievementCredential": 1}
    async with sessions() as session, session.begin():
        again = await clr_credential(session, kit, family.learner_id, NOW, sections=["badges"])
    assert len(again["credentialSubject"]["verifiableCredential"]) == 2  # nothing duplicated


async def test_newer_valid_from_replaces_and_older_is_ignored(engine, kit, family):
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        from hub.records.models import Badge as B  # noqa: F401

    from hub.credentials import dataintegrity

    def signed(valid_from: str, name: str):  # type: ignore[no-untyped-def]
        doc = {"@context": ["https://www.w3.org/ns/credentials/v2",
                            "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"],
               "id": "urn:uuid:0b7c0e2c-1111-4a55-9e0e-000000000001", "type": ["VerifiableCredential", "OpenBadgeCredential"],
               "issuer": kit.key.issuer_summary(), "validFrom": valid_from, "name": name,
               "credentialSubject": {"type": ["AchievementSubject"], "achievement": {
                   "id": "https://x.example/a", "type": ["Achievement"], "name": name, "description": "d",
                   "criteria": {"narrative": "n"}}}}
        return dataintegrity.sign(doc, private_key=kit.key.private, verification_method=kit.key.verification_method,
                                  loader=kit.loader)

    async with sessions() as session, session.begin():
        kwargs = {"now": NOW, "guardian_id": family.guardian_id}
        assert (await import_credential(session, kit, family.learner_id, signed("2026-01-01T00:00:00Z", "v1"), **kwargs)).outcome == "created"
        assert (await import_credential(session, kit, family.learner_id, signed("2026-03-01T00:00:00Z", "v2"), **kwargs)).outcome == "replaced"
        assert (await import_credential(session, kit, family.learner_id, signed("2026-02-01T00:00:00Z", "old"), **kwargs)).outcome == "kept_newer"
        row = (await session.execute(select(HeldCredential))).scalar_one()
        assert row.document["name"] == "v2"


async def test_unverifiable_imports_are_refused(engine, kit, family, examples_dir):
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        kwargs = {"now": NOW, "guardian_id": family.guardian_id}
        with pytest.raises(ImportRefused, match="cannot resolve"):  # the example's key is not trusted
            await import_credential(session, kit, family.learner_id,
                                    load(examples_dir / "ob3-testvector-signed-credential.json"), **kwargs)
        with pytest.raises(ImportRefused):
            await import_credential(session, kit, family.learner_id,
                                    load(examples_dir / "ob3-example-full-openbadgecredential.json"), **kwargs)
        with pytest.raises(ImportRefused, match="neither JSON"):
            await import_credential(session, kit, family.learner_id, b"not a credential", **kwargs)
        with pytest.raises(ImportRefused, match="origin https://x.example not allowed for fetching"):
            await import_credential(session, kit, family.learner_id, {
                "@context": "https://w3id.org/openbadges/v2", "type": "Assertion", "id": "https://x.example/a/1",
                "verification": {"type": "hosted"}}, **kwargs)
        with pytest.raises(LookupError, match="not a guardian"):
            await import_credential(session, kit, family.learner_id, {}, now=NOW, guardian_id=uuid4())
        assert (await session.execute(select(func.count()).select_from(HeldCredential))).scalar_one() == 0


async def test_provider_import_goes_through_the_consent_gate(engine, kit, family, examples_dir):
    provider = await make_provider(engine, "Importer", ["badges:contribute"])
    trusted = trusted_keys_from(public_multikey(examples_dir / "ob3-testvector-multikey.json"))
    ob3 = load(examples_dir / "ob3-testvector-signed-credential.json")
    token = TokenContext(jti="t", client_id=provider.client_id, provider_id=provider.provider_id,
                         scopes=frozenset({"badges:contribute"}))
    sessions = make_sessionmaker(engine)
    await grant(engine, family, provider, "badges", Action.READ)  # visible, but no contribute grant
    async with sessions() as session, session.begin():
        access = ProviderAccess(session=session, token=token, now=datetime.now(UTC))
        with pytest.raises(AccessDenied):
            await import_credential(session, kit, family.learner_id, ob3, now=NOW, access=access, trusted=trusted)
    await grant(engine, family, provider, "badges", Action.CONTRIBUTE)
    async with sessions() as session, session.begin():
        access = ProviderAccess(session=session, token=token, now=datetime.now(UTC) + timedelta(seconds=1))
        outcome = await import_credential(session, kit, family.learner_id, ob3, now=NOW, access=access, trusted=trusted)
        assert outcome.outcome == "created"
        await access.flush_log()  # as the request boundary does before committing
    async with sessions() as session:
        events = (await session.execute(select(DisclosureEvent.action, DisclosureEvent.outcome).where(
            DisclosureEvent.section == "badges").order_by(DisclosureEvent.id))).all()
        held = (await session.execute(select(HeldCredential))).scalar_one()
    assert [tuple(e) for e in events][-1] == ("contribute", "allowed") and held.imported_by_provider_id == provider.provider_id


def test_cli_verify_prints_checks_and_exit_codes(examples_dir, contexts_dir, tmp_path, monkeypatch, database_url, engine):  # type: ignore[no-untyped-def]
    import json

    from typer.testing import CliRunner

    from hub.cli import app as cli
    from hub.config import get_settings

    monkeypatch.setenv("KINFOLIO_DATABASE_URL", database_url)
    monkeypatch.setenv("KINFOLIO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KINFOLIO_JSONLD_CONTEXTS_DIR", str(contexts_dir))
    get_settings.cache_clear()
    key = tmp_path / "key.json"
    key.write_text(json.dumps(public_multikey(examples_dir / "ob3-testvector-multikey.json")))
    runner = CliRunner()
    try:
        signed = str(examples_dir / "ob3-testvector-signed-credential.json")
        ok = runner.invoke(cli, ["credentials", "verify", signed, "--trust-key", str(key)])
        assert ok.exit_code == 0, ok.output
        assert "[ok  ] proof: eddsa-rdfc-2022" in ok.output and ok.output.strip().endswith("VERIFIED")
        untrusted = runner.invoke(cli, ["credentials", "verify", signed])
        assert untrusted.exit_code == 1 and "[FAIL] issuer key: cannot resolve" in untrusted.output
        tampered = tmp_path / "tampered.json"
        document = load(examples_dir / "ob3-testvector-signed-credential.json")
        document["name"] = "Changed"
        tampered.write_text(json.dumps(document))
        bad = runner.invoke(cli, ["credentials", "verify", str(tampered), "--trust-key", str(key)])
        assert bad.exit_code == 1 and "[FAIL] proof" in bad.output and "NOT VERIFIED" in bad.output
        garbage = tmp_path / "garbage.txt"
        garbage.write_text("hello")
        assert runner.invoke(cli, ["credentials", "verify", str(garbage)]).exit_code == 2
        monkeypatch.delenv("KINFOLIO_JSONLD_CONTEXTS_DIR")
        get_settings.cache_clear()
        unset = runner.invoke(cli, ["credentials", "verify", signed])
        assert unset.exit_code == 2 and "KINFOLIO_JSONLD_CONTEXTS_DIR" in unset.output
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize("delete", [True, False], ids=["deleted badges revoke their credentials", "kept badges do not"])
async def test_family_deleting_a_providers_badges_revokes_their_credentials(engine, kit, family, settings, delete):  # type: ignore[no-untyped-def]
    from hub.config import control_policy
    from hub.credentials.models import IssuedCredential
    from hub.grants.family import Actor, revoke_by

    badge_ids = await add_record(engine, family, badges=2)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        issued = [await badge_credential(session, kit, await session.get(Badge, i), now) for i in badge_ids]
        provider_id = (await session.get(Badge, badge_ids[0])).provider_id
    async with sessions() as session, session.begin():
        revoked, deleted = await revoke_by(session=session, actor=Actor.guardian(family.guardian_id),
                                           learner_id=family.learner_id, provider_id=provider_id, now=now,
                                           policy=control_policy(settings), delete_contributions=delete)
    assert revoked == 0 and deleted == (2 + 3 + 5 if delete else 0)  # no grants; badges, skill assessments, activities of that provider
    async with sessions() as session:
        rows = (await session.execute(select(IssuedCredential.badge_id, IssuedCredential.revocation_reason)
                                      .order_by(IssuedCredential.issued_at))).all()
        results = [await verify(session, kit, credential, now) for credential in issued]
    if delete:
        assert rows == [(None, "badge deleted by the family")] * 2
        assert all([c.name for c in r.failures()] == ["status"] and "revoked" in r.failures()[0].detail for r in results)
    else:
        assert sorted(r[0] for r in rows) == sorted(badge_ids) and all(r[1] is None for r in rows)
        assert all(r.ok for r in results)


def test_an_unreadable_signing_key_is_a_configuration_error_not_a_crash(cred_settings, tmp_path):  # type: ignore[no-untyped-def]
    from hub.credentials.service import CredentialsNotConfigured, kit_from_settings

    not_pem = tmp_path / "rsa.pem"
    not_pem.write_text("not a key")
    for update, where in (({"credential_key_pem": None, "credential_key_file": tmp_path / "missing.pem"}, "missing.pem"),
                          ({"credential_rsa_key_file": not_pem}, "rsa.pem")):
        with pytest.raises(CredentialsNotConfigured, match=f"credential signing key from .*{where}"):
            kit_from_settings(cred_settings.model_copy(update=update))
