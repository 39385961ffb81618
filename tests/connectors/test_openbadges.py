"""Open Badges: ``importCredentials`` (the hub side) and the ``open-badges`` connector, end to end.

Real hub app and database; the official OB 3.0 / CLR 2.0 test vectors (issuer keys trusted as the
Host API tests do), hub-issued credentials exported and re-imported, an OB 2.0 signed assertion
served by a small HTTP server started here.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws
from joserfc.jwk import OKPKey
from sqlalchemy import func, select

from connectors import state
from connectors.runtime import run_instance
from consent import Action
from hub.credentials.keys import public_key_multibase
from hub.credentials.models import HeldCredential
from hub.credentials.service import badge_credential, clr_credential
from hub.credentials.verify import ResolvedKey
from hub.db import make_sessionmaker
from hub.links.service import link_learner
from hub.records.models import Badge
from tests.connectors.fakes import static_server
from tests.connectors.helpers import SECRET_ENV, asgi_http, create, instance_config
from tests.credentials.conftest import (  # noqa: F401  (pytest fixtures)
    add_record,
    contexts_dir,
    cred_settings,
    credentials_app,
    credential_key_pem,
    examples_dir,
    kit,
    load,
    loader,
)
from tests.factories import ProviderClient, get_token, gql, grant, learner_id_for, make_family, make_provider

pytestmark = pytest.mark.samples

IMPORT = """mutation($l: ID!, $c: [String!]!) { importCredentials(learnerId: $l, credentials: $c) {
  received created replaced unchanged keptNewer refused
  results { index outcome reasons kind issuerId credentialId included badgeSourceIds } } }"""
BADGES = """query($l: ID!) { learner(id: $l) { badges(first: 50) { nodes { sourceId awardedDate
  achievement { id name description image criteria { id narrative } alignments { targetName targetUrl targetCode } }
  issuer { id name url } } } } }"""


async def badge_provider(engine, monkeypatch) -> ProviderClient:  # type: ignore[no-untyped-def]
    provider = await make_provider(engine, "Badge Backpack", ["badges:contribute", "badges:read"])
    monkeypatch.setenv(SECRET_ENV, provider.client_secret)
    return provider


ISSUER_KEY = Ed25519PrivateKey.generate()


CLUB_ISSUER = "https://club.example.org/issuer"


def _club_key_id() -> str:
    multibase = public_key_multibase(ISSUER_KEY.public_key())
    return f"did:key:{multibase}#{multibase}"


@pytest.fixture(autouse=True)
def club_key_trusted(credentials_app):  # type: ignore[no-untyped-def]
    """The operator trusts ISSUER_KEY as the Robotics Club's key (as a trusted-issuers file would):
    OB 2.0 §SignedBadge wants the creator key to be the issuer's, not just any key."""
    credentials_app.state.credential_trusted_keys = [
        *credentials_app.state.credential_trusted_keys,
        ResolvedKey(_club_key_id(), CLUB_ISSUER, public=ISSUER_KEY.public_key()),
    ]


def ob2_signed(*, issued: str = "2026-01-02T00:00:00Z", name: str = "Robotics", uid: str = "1") -> str:
    """An OB 2.0 signed assertion (OB 2.0 §Verification "Signed Badges": a JWS whose payload is the
    assertion, by the key named in ``verification.creator``); the key is a did:key, resolvable offline."""
    multibase = public_key_multibase(ISSUER_KEY.public_key())
    assertion = {
        "@context": "https://w3id.org/openbadges/v2", "type": "Assertion", "id": f"urn:uuid:0b2a55e7-0000-4000-8000-00000000000{uid}",
        "recipient": {"type": "email", "hashed": False, "identity": "kim@example.org"},
        "badge": {
            "type": "BadgeClass", "id": "https://club.example.org/badges/robotics", "name": name,
            "description": "Designed, built and programmed a robot.", "image": "https://club.example.org/robotics.png",
            "criteria": {"narrative": "Build a robot that finishes the maze."},
            "alignment": [{"targetName": "Engineering design", "targetUrl": "https://case.example.org/items/ed",
                           "targetCode": "ED.1"}],
            "issuer": {"type": "Profile", "id": "https://club.example.org/issuer", "name": "Robotics Club",
                       "url": "https://club.example.org/"},
        },
        "verification": {"type": "SignedBadge", "creator": f"did:key:{multibase}#{multibase}"},
        "issuedOn": issued,
    }
    return jws.serialize_compact({"alg": "Ed25519"}, json.dumps(assertion).encode(), OKPKey.import_key(ISSUER_KEY),
                                 algorithms=["Ed25519"])


async def test_import_credentials_holds_verifies_and_shows_badges(engine, credentials_app, client, examples_dir):
    provider = await make_provider(engine, "Badge Wallet", ["badges:contribute", "badges:read"])
    family = await make_family(engine)
    await grant(engine, family, provider, "badges", Action.CONTRIBUTE)  # read_own lets it read its own back
    token = await get_token(client, provider)
    learner = learner_id_for(family, provider)
    vector = (examples_dir / "ob3-testvector-signed-credential.json").read_text()
    tampered = load(examples_dir / "ob3-testvector-signed-credential.json")
    tampered["credentialSubject"]["achievement"]["name"] = "Leadership"
    hosted = {"@context": "https://w3id.org/openbadges/v2", "type": "Assertion", "id": "https://x.example/a/1",
              "verification": {"type": "hosted"}}

    body = (await gql(client, token, IMPORT, {"l": learner, "c": [vector, json.dumps(tampered), "{not json", json.dumps(hosted)]})).json()
    result = body["data"]["importCredentials"]
    assert [r["outcome"] for r in result["results"]] == ["CREATED", "REFUSED", "REFUSED", "REFUSED"]
    assert (result["received"], result["created"], result["refused"]) == (4, 1, 3)
    created, bad_proof, not_json, hosted_refused = result["results"]
    assert created["kind"] == "OpenBadgeCredential" and created["credentialId"] == "http://example.com/credentials/3527"
    assert created["reasons"] == [] and len(created["badgeSourceIds"]) == 1
    assert any(r.startswith("proof:") for r in bad_proof["reasons"]), bad_proof
    assert "neither JSON" in not_json["reasons"][0]
    assert "hosted assertion at https://x.example/a/1: origin https://x.example not allowed for fetching" \
        in hosted_refused["reasons"][0]

    nodes = (await gql(client, token, BADGES, {"l": learner})).json()["data"]["learner"]["badges"]["nodes"]
    assert len(nodes) == 1
    assert nodes[0]["sourceId"] == created["badgeSourceIds"][0]
    assert nodes[0]["achievement"]["name"] == "Teamwork" and nodes[0]["issuer"]["name"] == "Example Corp"
    assert nodes[0]["achievement"]["criteria"]["narrative"].startswith("Team members are nominated")
    assert nodes[0]["awardedDate"].startswith("2010-01-01")

    again = (await gql(client, token, IMPORT, {"l": learner, "c": [vector]})).json()["data"]["importCredentials"]
    assert again["results"][0]["outcome"] == "UNCHANGED" and again["unchanged"] == 1

    # OB 2.0 signed assertions: a newer issuedOn replaces and updates the badge, an older one is kept out.
    first = (await gql(client, token, IMPORT, {"l": learner, "c": [ob2_signed()]})).json()["data"]["importCredentials"]
    assert first["results"][0]["outcome"] == "CREATED" and first["results"][0]["kind"] == "Assertion"
    newer = ob2_signed(issued="2026-02-02T00:00:00Z", name="Robotics II")
    older = ob2_signed(issued="2025-12-01T00:00:00Z", name="Robotics 0")
    outcomes = (await gql(client, token, IMPORT, {"l": learner, "c": [newer, older]})).json()["data"]["importCredentials"]
    assert [r["outcome"] for r in outcomes["results"]] == ["REPLACED", "KEPT_NEWER"]
    nodes = (await gql(client, token, BADGES, {"l": learner})).json()["data"]["learner"]["badges"]["nodes"]
    robotics = [n for n in nodes if n["achievement"]["id"] == "https://club.example.org/badges/robotics"]
    assert len(nodes) == 2 and [n["achievement"]["name"] for n in robotics] == ["Robotics II"]
    assert robotics[0]["achievement"]["alignments"] == [
        {"targetName": "Engineering design", "targetUrl": "https://case.example.org/items/ed", "targetCode": "ED.1"}]
    assert robotics[0]["issuer"] == {"id": "https://club.example.org/issuer", "name": "Robotics Club",
                                     "url": "https://club.example.org/"}
    async with make_sessionmaker(engine)() as session:
        held = (await session.execute(select(HeldCredential).where(HeldCredential.kind == "Assertion"))).scalar_one()
    assert held.document["badge"]["name"] == "Robotics II" and held.compact_jws == newer  # kept whole


async def test_an_imported_badge_is_exported_once_as_received_and_a_round_trip_adds_nothing(
        engine, credentials_app, client, examples_dir, kit):  # type: ignore[no-untyped-def]
    provider = await make_provider(engine, "Badge Wallet", ["badges:contribute", "badges:read"])
    family = await make_family(engine)
    await grant(engine, family, provider, "badges", Action.CONTRIBUTE)
    token = await get_token(client, provider)
    learner = learner_id_for(family, provider)
    vector = (examples_dir / "ob3-testvector-signed-credential.json").read_text()
    created = (await gql(client, token, IMPORT, {"l": learner, "c": [vector]})).json()["data"]["importCredentials"]
    assert created["created"] == 1

    async with make_sessionmaker(engine)() as session:
        clr = await clr_credential(session, kit, family.learner_id, datetime.now(UTC))
        await session.commit()
    embedded = clr["credentialSubject"]["verifiableCredential"]
    # Exactly once, as received (the issuer's proof), not also re-issued by the hub from its mirror badge.
    assert [c["id"] for c in embedded] == ["http://example.com/credentials/3527"]
    assert embedded[0]["proof"] == load(examples_dir / "ob3-testvector-signed-credential.json")["proof"]

    again = (await gql(client, token, IMPORT, {"l": learner, "c": [json.dumps(clr)]})).json()["data"]["importCredentials"]
    assert again["results"][0]["outcome"] == "CREATED", again  # the CLR itself is new; what it carries is not
    async with make_sessionmaker(engine)() as session:
        badges = (await session.execute(select(func.count()).select_from(Badge))).scalar_one()
        held = (await session.execute(select(HeldCredential.kind).order_by(HeldCredential.id))).scalars().all()
    assert badges == 1
    assert held == ["OpenBadgeCredential", "ClrCredential"]


async def test_a_signed_ob2_assertion_by_a_key_that_is_not_its_issuers_is_refused(engine, credentials_app, client):
    provider = await make_provider(engine, "Badge Wallet", ["badges:contribute", "badges:read"])
    family = await make_family(engine)
    await grant(engine, family, provider, "badges", Action.CONTRIBUTE)
    token = await get_token(client, provider)
    # The key is valid and the signature good, but nobody vouches that it is the club's: anyone can
    # mint a did:key and name any issuer in the payload.
    credentials_app.state.credential_trusted_keys = [
        k for k in credentials_app.state.credential_trusted_keys if k.controller != CLUB_ISSUER]
    body = (await gql(client, token, IMPORT, {"l": learner_id_for(family, provider), "c": [ob2_signed(uid="9")]})).json()
    result = body["data"]["importCredentials"]
    assert result["refused"] == 1 and result["created"] == 0
    assert any(f"not the issuer {CLUB_ISSUER}" in r for r in result["results"][0]["reasons"]), result


async def test_import_credentials_consent_and_limits(engine, credentials_app, client, examples_dir):
    provider = await make_provider(engine, "Badge Wallet", ["badges:contribute", "badges:read"])
    family = await make_family(engine)
    await grant(engine, family, provider, "badges", Action.READ)  # visible, but no contribute grant
    token = await get_token(client, provider)
    learner = learner_id_for(family, provider)
    vector = (examples_dir / "ob3-testvector-signed-credential.json").read_text()

    body = (await gql(client, token, IMPORT, {"l": learner, "c": [vector]})).json()
    assert body["data"]["importCredentials"] is None
    ext = body["errors"][0]["extensions"]
    assert (ext["code"], ext["reason"], ext["section"]) == ("CONSENT_REQUIRED", "no_grant", "badges")
    for too_much, why in (([vector] * 101, "limit per call is 100"), (["x" * 1_000_001], "longer than 1000000"),
                          ([], "is empty")):
        body = (await gql(client, token, IMPORT, {"l": learner, "c": too_much})).json()
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and why in body["errors"][0]["message"]
    async with make_sessionmaker(engine)() as session:
        assert (await session.execute(select(func.count()).select_from(HeldCredential))).scalar_one() == 0
        assert (await session.execute(select(func.count()).select_from(Badge))).scalar_one() == 0


async def _link(engine, provider: ProviderClient, family, system: str, external_id: str) -> None:  # type: ignore[no-untyped-def]
    async with make_sessionmaker(engine)() as session, session.begin():
        await link_learner(session=session, provider_id=provider.provider_id, system=system, external_id=external_id,
                           learner_id=family.learner_id, origin="family")


async def test_connector_imports_files_and_urls_reports_and_is_idempotent(
    engine, credentials_app, client, kit, monkeypatch, tmp_path, examples_dir,
):
    provider = await badge_provider(engine, monkeypatch)
    kim = await make_family(engine, email="kim-parent@example.org")
    bo = await make_family(engine, email="bo-parent@example.org")
    await _link(engine, provider, kim, "oneroster", "stu-1")
    from connectors.xapi.statements import canonical_actor_id

    await _link(engine, provider, bo, "xapi", canonical_actor_id("mailto:bo@example.org"))
    await grant(engine, kim, provider, "badges", Action.CONTRIBUTE)
    await grant(engine, bo, provider, "badges", Action.READ)  # linked and visible, no contribute grant

    # Two badges another provider gave Kim, exported by the hub (JSON-LD and VC-JWT) and re-imported.
    badge_ids = await add_record(engine, kim)
    now = datetime.now(UTC)
    async with make_sessionmaker(engine)() as session, session.begin():
        exported_ldp = await badge_credential(session, kit, await session.get(Badge, badge_ids[0]), now)
        exported_jwt = await badge_credential(session, kit, await session.get(Badge, badge_ids[1]), now, "jwt")
    vector = load(examples_dir / "ob3-testvector-signed-credential.json")
    tampered = copy.deepcopy(vector)
    tampered["validFrom"] = "2011-01-01T00:00:00Z"
    backpack = tmp_path / "backpack.json"
    backpack.write_text(json.dumps([vector, exported_ldp, tampered, 42]))
    (tmp_path / "hub-badge.jwt").write_text(exported_jwt + "\n")
    (tmp_path / "broken.json").write_text('{"@context": [')
    (tmp_path / "bo.json").write_text(json.dumps({"credential": [vector], "compactJwsString": []}))  # getCredentials
    hosted = {"@context": "https://w3id.org/openbadges/v2", "type": "Assertion", "id": "http://x/hosted",
              "verification": {"type": "hosted"}}
    routes = {"/assertions/1": ("application/jose", ob2_signed().encode()),
              "/assertions/hosted": ("application/json", json.dumps(hosted).encode())}
    sessions = make_sessionmaker(engine)
    with static_server(routes) as base:
        source = {"sources": [
            {"learner": {"system": "oneroster", "external_id": "stu-1"},
             "paths": [str(backpack), str(tmp_path / "broken.json"), str(tmp_path / "hub-badge.jwt")],
             "urls": [f"{base}/assertions/1", f"{base}/assertions/hosted", f"{base}/missing"]},
            {"learner": {"system": "xapi", "external_id": "mailto:bo@example.org"}, "paths": [str(tmp_path / "bo.json")]},
        ], "page_size": 2}
        await create(engine, "backpacks", "open-badges", instance_config(provider, source))
        async with asgi_http(credentials_app) as http:
            first = await run_instance(sessions=sessions, name="backpacks", http=http)
        r = first.report
        assert first.status == "succeeded", first.error
        assert (r.read, r.created, r.updated, r.unchanged, r.invalid) == (10, 4, 0, 0, 5)
        assert dict(r.refused) == {"no_grant": 1} and dict(r.held) == {}
        problems = {d["ref"]: d["reason"] for d in r.details if d["kind"] == "invalid"}
        assert set(problems) == {"backpack.json[3]", "backpack.json[4]", "broken.json", f"{base}/assertions/hosted",
                                 f"{base}/missing"}
        assert "does not verify: proof:" in problems["backpack.json[3]"]
        assert "not a credential: a JSON int" in problems["backpack.json[4]"]
        assert "neither JSON nor a compact JWS" in problems["broken.json"]
        assert "hosted assertion at http://x/hosted: origin http://x not allowed" in problems[f"{base}/assertions/hosted"]
        assert "HTTP 404" in problems[f"{base}/missing"]
        assert [d["ref"] for d in r.details if d["kind"] == "refused"] == ["bo.json[1]"]
        letters = await state.dead_letters(sessions=sessions, name="backpacks")
        assert sorted(l.ref for l in letters) == sorted(problems) and {l.reason_code for l in letters} == {"invalid"}

        token = await get_token(client, provider)
        nodes = (await gql(client, token, BADGES, {"l": learner_id_for(kim, provider)})).json()["data"]["learner"]["badges"]["nodes"]
        assert sorted(n["achievement"]["name"] for n in nodes) == ["Badge 0", "Badge 1", "Robotics", "Teamwork"]

        # Incremental: finished sources are unchanged, skipped; only the unreadable URL is tried again.
        async with asgi_http(credentials_app) as http:
            again = await run_instance(sessions=sessions, name="backpacks", http=http)
        assert (again.report.read, again.report.invalid, again.report.created) == (1, 1, 0)
        # A full re-read changes nothing: every imported credential is unchanged.
        async with asgi_http(credentials_app) as http:
            full = await run_instance(sessions=sessions, name="backpacks", http=http, full=True)
        assert (full.report.read, full.report.created, full.report.updated, full.report.unchanged) == (10, 0, 0, 4)

        # Bo's family consents: the next full run imports Bo's backpack, and only that.
        await grant(engine, bo, provider, "badges", Action.CONTRIBUTE)
        async with asgi_http(credentials_app) as http:
            after = await run_instance(sessions=sessions, name="backpacks", http=http, full=True)
        assert (after.report.created, after.report.unchanged, dict(after.report.refused)) == (1, 4, {})
    async with sessions() as session:
        held = (await session.execute(select(func.count()).select_from(HeldCredential))).scalar_one()
        mirrored = (await session.execute(select(func.count()).select_from(Badge).where(
            Badge.provider_id == provider.provider_id))).scalar_one()
    assert (held, mirrored) == (5, 5)


async def test_connector_resumes_inside_a_source_and_rereads_a_changed_one(engine, credentials_app, monkeypatch, tmp_path, examples_dir):
    provider = await badge_provider(engine, monkeypatch)
    kim = await make_family(engine)
    await _link(engine, provider, kim, "oneroster", "stu-1")
    await grant(engine, kim, provider, "badges", Action.CONTRIBUTE)
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"type": ["VerifiablePresentation"], "verifiableCredential": [
        load(examples_dir / "ob3-testvector-signed-credential.json"), ob2_signed(uid="2"), ob2_signed(uid="3")]}))
    source = {"sources": [{"learner": {"system": "oneroster", "external_id": "stu-1"}, "paths": [str(export)]}],
              "page_size": 1}
    await create(engine, "vp", "open-badges", instance_config(provider, source))
    sessions = make_sessionmaker(engine)
    # A run that committed one page of three resumes after it.
    from connectors.openbadges.connector import OpenBadgesConnector, OpenBadgesConfig

    connector = OpenBadgesConnector(OpenBadgesConfig.model_validate(source))
    first_page = await anext(connector.fetch(None))
    assert [r.ref for r in first_page.records] == ["export.json[1]"]
    async with sessions() as session, session.begin():
        from connectors.models import ConnectorInstance

        (await session.get(ConnectorInstance, "vp")).cursor = first_page.cursor
    async with asgi_http(credentials_app) as http:
        run = await run_instance(sessions=sessions, name="vp", http=http)
    assert (run.report.read, run.report.created) == (2, 2)
    # A changed export is read again from its start; what is held already is unchanged.
    export.write_text(export.read_text() + "\n")
    async with asgi_http(credentials_app) as http:
        again = await run_instance(sessions=sessions, name="vp", http=http)
    assert (again.report.read, again.report.created, again.report.unchanged) == (3, 1, 2)


async def test_a_clr_is_held_with_its_achievements_shown_as_badges(engine, credentials_app, client, examples_dir):
    provider = await make_provider(engine, "Badge Wallet", ["badges:contribute", "badges:read"])
    family = await make_family(engine)
    await grant(engine, family, provider, "badges", Action.CONTRIBUTE)
    token = await get_token(client, provider)
    learner = learner_id_for(family, provider)
    clr = (examples_dir / "clr2-testvector-signed-credential.json").read_text()
    inner = [c for c in json.loads(clr)["credentialSubject"]["verifiableCredential"] if isinstance(c, dict)]
    result = (await gql(client, token, IMPORT, {"l": learner, "c": [clr]})).json()["data"]["importCredentials"]["results"][0]
    assert (result["outcome"], result["kind"], result["included"]) == ("CREATED", "ClrCredential", len(inner))
    assert len(result["badgeSourceIds"]) == len(inner) and result["reasons"] == []
    nodes = (await gql(client, token, BADGES, {"l": learner})).json()["data"]["learner"]["badges"]["nodes"]
    assert sorted(n["achievement"]["name"] for n in nodes) == sorted(
        c["credentialSubject"]["achievement"]["name"] for c in inner)


async def test_connector_imports_hosted_ob2_assertions_from_urls_and_a_backpack(
    engine, credentials_app, client, kit, monkeypatch, tmp_path,
):
    """Hosted OB 2.0 (OB 2.0 §HostedBadge Verification): the connector reads the assertions (a URL
    list, a Backpack Displayer export); the hub fetches each again from the issuer's site, an origin
    the operator allowed, and holds the served copy."""
    from tests.credentials.hosted_site import hosted_kit, issuer_site

    provider = await badge_provider(engine, monkeypatch)
    kim = await make_family(engine)
    await _link(engine, provider, kim, "oneroster", "stu-1")
    await grant(engine, kim, provider, "badges", Action.CONTRIBUTE)
    sessions = make_sessionmaker(engine)
    with issuer_site() as hosted:
        monkeypatch.setattr(credentials_app.state, "credential_kit",
                            hosted_kit(kit, tmp_path, [{"id": hosted.issuer, "hosted_origins": [hosted.base]}]))
        for n in (2, 3):
            hosted.serve(f"/assertions/{n}", hosted.assertion() | {"id": f"{hosted.base}/assertions/{n}"})
        backpack = tmp_path / "backpack.json"
        backpack.write_text(json.dumps({"badges": [{"assertion": hosted.document(f"/assertions/{n}")} for n in (2, 3)]}))
        hosted.serve("/assertions/3", {"id": f"{hosted.base}/assertions/3", "revoked": True}, 410)  # since exported
        source = {"sources": [{"learner": {"system": "oneroster", "external_id": "stu-1"},
                               "paths": [str(backpack)], "urls": [hosted.url]}]}
        await create(engine, "hosted", "open-badges", instance_config(provider, source))
        async with asgi_http(credentials_app) as http:
            first = await run_instance(sessions=sessions, name="hosted", http=http)
        r = first.report
        assert first.status == "succeeded", first.error
        assert (r.read, r.created, r.invalid) == (3, 2, 1)
        problems = {d["ref"]: d["reason"] for d in r.details if d["kind"] == "invalid"}
        assert list(problems) == ["backpack.json[2]"]
        assert f"revoked: the hosted assertion at {hosted.base}/assertions/3 answered 410 Gone" in problems["backpack.json[2]"]

        token = await get_token(client, provider)
        nodes = (await gql(client, token, BADGES, {"l": learner_id_for(kim, provider)})).json()["data"]["learner"]["badges"]["nodes"]
        assert [(n["achievement"]["name"], n["issuer"]["id"]) for n in nodes] == [("Hosted Robotics", hosted.issuer)] * 2
        async with asgi_http(credentials_app) as http:
            full = await run_instance(sessions=sessions, name="hosted", http=http, full=True)
        assert (full.report.created, full.report.unchanged, full.report.invalid) == (0, 2, 1)
