"""The 1EdTech Host API, following the Host conformance steps (OB 3.0 / CLR 2.0 conformance guides):
discovery → dynamic registration → authorize with PKCE → token → getCredentials with paging →
upsert → getProfile/putProfile → scope checks → a revoked grant refusing the next call.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from sqlalchemy import select

from consent import Action
from hub.db import make_sessionmaker
from hub.grants.models import DisclosureEvent
from hub.grants.service import revoke_access
from hub.providers.models import OAuthClient
from tests.conftest import ISSUER
from tests.credentials.conftest import add_record, load
from tests.hub.oauth_helpers import REDIRECT, CodeClient, consent, get_code, make_guardian, pkce, redeem, sign_in

OB = "https://purl.imsglobal.org/spec/ob/v3p0/scope/"
CLR = "https://purl.imsglobal.org/spec/clr/v2p0/scope/"
NAMES = ["credential.readonly", "credential.upsert", "profile.readonly", "profile.update"]
OB_SCOPES = [OB + n for n in NAMES]
CLR_SCOPES = [CLR + n for n in NAMES]


@pytest.fixture
def host(credentials_app):  # type: ignore[no-untyped-def]
    return credentials_app


def _schema(samples_dir: Path, name: str) -> jsonschema.Draft201909Validator:
    return jsonschema.Draft201909Validator(json.loads((samples_dir / "ob3-clr-json-schemas" / name).read_text()))


def _metadata(scopes: list[str]) -> dict[str, Any]:
    return {"client_name": "Badge Wallet", "client_uri": "https://app.example.org/",
            "logo_uri": "https://app.example.org/logo.png", "tos_uri": "https://app.example.org/tos",
            "policy_uri": "https://app.example.org/privacy", "software_id": "badge-wallet", "software_version": "1.0",
            "redirect_uris": [REDIRECT], "scope": " ".join(scopes)}


async def _register(http, scopes: list[str]) -> CodeClient:  # type: ignore[no-untyped-def]
    response = await http.post("/oauth/register", json=_metadata(scopes))
    assert response.status_code == 201, response.text
    body = response.json()
    return CodeClient(provider_id=None, client_id=body["client_id"], client_secret=body["client_secret"])  # type: ignore[arg-type]


async def _token(http, client: CodeClient, scopes: list[str], allow: list[str] | None = None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    verifier, challenge = pkce()
    code = await get_code(http, client, challenge, scope=" ".join(scopes), allow=allow if allow is not None else scopes)
    response = await redeem(http, client, code, verifier)
    assert response.status_code == 200, response.text
    return response.json()


def _auth(token: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['access_token']}"}


def _assert_status_info(response, status: int, minor: str, samples_dir: Path) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    _schema(samples_dir, "ob_v3p0_imsx_statusinfo_schema.json").validate(body)
    assert body["imsx_codeMajor"] == "failure" and body["imsx_severity"] == "error"
    assert body["imsx_codeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"] == minor


async def _provider_of(engine, client_id: str):  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return (await conn.execute(select(OAuthClient.provider_id).where(OAuthClient.client_id == client_id))).scalar_one()


async def test_discovery_describes_the_service_unprotected(client, host):
    for path, prefix in (("/ims/ob/v3p0", OB), ("/ims/clr/v2p0", CLR)):
        response = await client.get(f"{path}/discovery")
        assert response.status_code == 200
        doc = response.json()
        assert doc["openapi"].startswith("3.0") and doc["servers"][0]["url"] == ISSUER + path
        assert doc["info"]["x-imssf-privacyPolicyUrl"] == f"{ISSUER}/privacy"
        scheme = doc["components"]["securitySchemes"]["OAuth2ACG"]
        assert scheme["type"] == "oauth2" and scheme["x-imssf-registrationUrl"] == f"{ISSUER}/oauth/register"
        flow = scheme["flows"]["authorizationCode"]
        assert (flow["authorizationUrl"], flow["tokenUrl"], flow["refreshUrl"]) == (
            f"{ISSUER}/oauth/authorize", f"{ISSUER}/oauth/token", f"{ISSUER}/oauth/token")
        assert sorted(flow["scopes"]) == sorted(prefix + n for n in NAMES)
        assert set(doc["paths"]) == {"/credentials", "/profile", "/discovery"}
    assert (await client.get("/privacy")).status_code == 200
    metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert set(OB_SCOPES + CLR_SCOPES) <= set(metadata["scopes_supported"])


async def test_host_conformance_journey(client, host, engine, samples_dir, examples_dir):
    # Registration (RFC 7591, OB 3.0 profile) with the exact scope URIs.
    app_client = await _register(client, OB_SCOPES)
    guardian = await make_guardian(engine)
    await sign_in(client)
    # The consent page speaks Kinfolio sections in plain words, never the URIs.
    _, challenge = pkce()
    page = await client.get("/oauth/authorize", params={
        "response_type": "code", "client_id": app_client.client_id, "redirect_uri": REDIRECT,
        "scope": " ".join(OB_SCOPES), "code_challenge": challenge, "code_challenge_method": "S256"})
    assert page.status_code == 200
    for text in ("See your child&#39;s badges", "Add badges and certificates to your child&#39;s badges",
                 "See your child&#39;s profile", "Update your child&#39;s profile"):
        assert text in page.text
    assert ">" + OB not in page.text  # the URIs are only form values
    token = await _token(client, app_client, OB_SCOPES)
    assert token["scope"] == " ".join(sorted(OB_SCOPES))
    learner = SimpleNamespace(learner_id=guardian.learners[0])
    await add_record(engine, learner, badges=3)  # type: ignore[arg-type]
    base = "/ims/ob/v3p0"

    # upsertCredential with the official signed OB 3.0 test vector: 201 created, then 200.
    vector = load(examples_dir / "ob3-testvector-signed-credential.json")
    created = await client.post(f"{base}/credentials", json=vector, headers=_auth(token))
    assert created.status_code == 201, created.text
    assert created.json() == vector  # kept whole
    again = await client.post(f"{base}/credentials", json=vector, headers=_auth(token))
    assert again.status_code == 200 and again.json() == vector

    # getCredentials with paging: X-Total-Count and RFC 8288 Link headers.
    first = await client.get(f"{base}/credentials", params={"limit": 2}, headers=_auth(token))
    assert first.status_code == 200, first.text
    assert first.headers["x-total-count"] == "4"
    links = first.headers["link"]
    assert f'<{ISSUER}{base}/credentials?limit=2&offset=2>; rel="next"' in links
    assert 'rel="last"' in links and 'rel="first"' in links and 'rel="prev"' not in links
    body = first.json()
    _schema(samples_dir, "ob_v3p0_getopenbadgecredentialsresponse_schema.json").validate(body)
    assert [c["credentialSubject"]["achievement"]["name"] for c in body["credential"]] == ["Badge 0", "Badge 1"]
    second = await client.get(f"{base}/credentials", params={"limit": 2, "offset": 2}, headers=_auth(token))
    page2 = second.json()["credential"]
    assert [c["id"] for c in page2][-1] == vector["id"] and len(page2) == 2
    assert 'rel="prev"' in second.headers["link"] and 'rel="next"' not in second.headers["link"]
    achievement = _schema(samples_dir, "ob_v3p0_achievementcredential_schema.json")
    for credential in body["credential"] + page2:
        achievement.validate(credential)
    since = await client.get(f"{base}/credentials", params={"since": "2026-02-02T00:00:00Z"}, headers=_auth(token))
    assert since.headers["x-total-count"] == "2"  # badges 1 and 2; the vector is valid from 2010

    # putProfile / getProfile.
    put = await client.put(f"{base}/profile", headers=_auth(token), json={
        "id": "ignored", "type": "Profile", "name": "Kiddo", "pronouns": "they/them", "languages": ["en", "pt-BR"]})
    assert put.status_code == 200, put.text
    got = await client.get(f"{base}/profile", headers=_auth(token))
    profile = got.json()
    _schema(samples_dir, "ob_v3p0_profile_schema.json").validate(profile)
    assert profile["id"] == f"urn:kinfolio:learner:{token['learner']}"  # the pairwise id
    assert (profile["name"], profile["pronouns"], [x["tag"] for x in profile["languages"]]) == (
        "Kiddo", "they/them", ["en", "pt-BR"])

    # Bad input is an Imsx_StatusInfo 400, never a 500, and stores nothing.
    _assert_status_info(await client.put(f"{base}/profile", headers=_auth(token), content=b"{nope"), 400,
                        "invalid_data", samples_dir)
    _assert_status_info(await client.put(f"{base}/profile", headers=_auth(token), json={"type": "Profile",
                        "languages": ["not a tag!"]}), 400, "invalid_data", samples_dir)
    _assert_status_info(await client.get(f"{base}/credentials", params={"limit": 0}, headers=_auth(token)), 400,
                        "invalid_query_parameter", samples_dir)
    _assert_status_info(await client.get(f"{base}/credentials", params={"since": "yesterday"}, headers=_auth(token)),
                        400, "invalid_query_parameter", samples_dir)
    _assert_status_info(await client.post(f"{base}/credentials", headers=_auth(token), content=b"hello"), 400,
                        "invalid_data", samples_dir)
    tampered = {**vector, "name": "Changed"}
    _assert_status_info(await client.post(f"{base}/credentials", json=tampered, headers=_auth(token)), 400,
                        "invalid_data", samples_dir)
    clr = load(examples_dir / "clr2-testvector-signed-credential.json")
    _assert_status_info(await client.post(f"{base}/credentials", json=clr, headers=_auth(token)), 400,
                        "invalid_data", samples_dir)
    unauthenticated = await client.get(f"{base}/credentials")
    _assert_status_info(unauthenticated, 401, "unauthorizedrequest", samples_dir)
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")

    # The family revokes reading badges: the very next call with the same token is refused.
    provider_id = await _provider_of(engine, app_client.client_id)
    async with make_sessionmaker(engine)() as session, session.begin():
        assert await revoke_access(session=session, learner_id=guardian.learners[0], provider_id=provider_id,
                                   revoked_by=guardian.id, now=datetime.now(UTC), section="badges",
                                   action=Action.READ) == 1
    # read_own: holding "contribute", the app still reads back what it itself added, and only that.
    own = await client.get(f"{base}/credentials", headers=_auth(token))
    assert own.status_code == 200 and own.headers["x-total-count"] == "1"
    assert own.json() == {"credential": [vector]}
    async with make_sessionmaker(engine)() as session, session.begin():
        assert await revoke_access(session=session, learner_id=guardian.learners[0], provider_id=provider_id,
                                   revoked_by=guardian.id, now=datetime.now(UTC), section="badges") == 1
    refused = await client.get(f"{base}/credentials", headers=_auth(token))
    _assert_status_info(refused, 403, "forbidden", samples_dir)
    assert "grant_revoked" in refused.json()["imsx_description"]
    assert (await client.get(f"{base}/profile", headers=_auth(token))).status_code == 200  # still granted
    # Revoking everything: refused too (no live grant at all).
    async with make_sessionmaker(engine)() as session, session.begin():
        await revoke_access(session=session, learner_id=guardian.learners[0], provider_id=provider_id,
                            revoked_by=guardian.id, now=datetime.now(UTC))
    _assert_status_info(await client.get(f"{base}/profile", headers=_auth(token)), 403, "forbidden", samples_dir)

    # Every decision is in the disclosure log, allowed and denied alike, with entry counts.
    async with engine.connect() as conn:
        events = (await conn.execute(select(DisclosureEvent.section, DisclosureEvent.action, DisclosureEvent.outcome,
                                            DisclosureEvent.reason, DisclosureEvent.entry_count)
                                     .order_by(DisclosureEvent.id))).all()
    assert ("badges", "contribute", "allowed", None, 1) in [tuple(e) for e in events]
    assert ("badges", "read", "allowed", None, 2) in [tuple(e) for e in events]
    assert ("badges", "read", "denied", "grant_revoked", None) in [tuple(e) for e in events]
    assert ("profile", "contribute", "allowed", None, 1) in [tuple(e) for e in events]


async def test_scopes_decide_each_operation(client, host, engine, samples_dir, examples_dir):
    app_client = await _register(client, OB_SCOPES)
    guardian = await make_guardian(engine)
    await sign_in(client)
    # The family approves reading only: the token carries only the readonly scopes.
    token = await _token(client, app_client, OB_SCOPES, allow=[OB + "credential.readonly", OB + "profile.readonly"])
    vector = load(examples_dir / "ob3-testvector-signed-credential.json")
    refused = await client.post("/ims/ob/v3p0/credentials", json=vector, headers=_auth(token))
    _assert_status_info(refused, 403, "forbidden", samples_dir)
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    _assert_status_info(await client.put("/ims/ob/v3p0/profile", json={"type": "Profile", "name": "X"},
                                         headers=_auth(token)), 403, "forbidden", samples_dir)
    # OB scopes do not open the CLR binding.
    _assert_status_info(await client.get("/ims/clr/v2p0/credentials", headers=_auth(token)), 403, "forbidden",
                        samples_dir)
    ok = await client.get("/ims/ob/v3p0/credentials", headers=_auth(token))
    assert ok.status_code == 200 and ok.headers["x-total-count"] == "0" and ok.json() == {}
    async with engine.connect() as conn:
        denied = (await conn.execute(select(DisclosureEvent.section, DisclosureEvent.action, DisclosureEvent.reason)
                                     .where(DisclosureEvent.outcome == "denied"))).all()
        held = (await conn.execute(select(DisclosureEvent.id))).all()
    assert ("badges", "contribute", "scope_missing") in [tuple(d) for d in denied]
    assert held and guardian.learners


async def test_clr_binding_upserts_and_lists_clr_credentials(client, host, engine, samples_dir, examples_dir):
    app_client = await _register(client, CLR_SCOPES)
    await make_guardian(engine)
    await sign_in(client)
    token = await _token(client, app_client, CLR_SCOPES)
    clr = load(examples_dir / "clr2-testvector-signed-credential.json")
    created = await client.post("/ims/clr/v2p0/credentials", json=clr, headers=_auth(token))
    assert created.status_code == 201, created.text
    assert (await client.post("/ims/clr/v2p0/credentials", json=clr, headers=_auth(token))).status_code == 200
    listed = await client.get("/ims/clr/v2p0/credentials", headers=_auth(token))
    assert listed.status_code == 200 and listed.headers["x-total-count"] == "2"
    body = listed.json()
    _schema(samples_dir, "clr_v2p0_getclrcredentialsresponse_schema.json").validate(body)
    # The current record first (it embeds the achievement credentials the CLR brought), then the held CLR.
    fresh, held = body["credential"]
    assert fresh["issuer"]["id"] == f"{ISSUER}/credentials/issuer" and held == clr
    embedded_ids = {c["id"] for c in fresh["credentialSubject"]["verifiableCredential"]}
    assert embedded_ids == {c["id"] for c in clr["credentialSubject"]["verifiableCredential"]}
    profile = (await client.get("/ims/clr/v2p0/profile", headers=_auth(token))).json()
    _schema(samples_dir, "clr_v2p0_profile_schema.json").validate(profile)
    assert profile == {"id": f"urn:kinfolio:learner:{token['learner']}", "type": "Profile"}


async def test_client_credentials_tokens_cannot_use_the_host_api(client, host, engine, samples_dir):
    from tests.factories import make_provider

    provider = await make_provider(engine, "Sync job", ["badges:read"])
    issued = await client.post("/oauth/token", data={"grant_type": "client_credentials"},
                               auth=(provider.client_id, provider.client_secret))
    assert issued.status_code == 200, issued.text
    response = await client.get("/ims/ob/v3p0/credentials", headers=_auth(issued.json()))
    _assert_status_info(response, 403, "forbidden", samples_dir)


async def test_a_scope_and_its_alias_make_one_grant(client, host, engine):
    from hub.grants.models import ConsentGrant

    scopes = ["badges:read", OB + "credential.readonly"]
    app_client = await _register(client, scopes)
    await make_guardian(engine)
    await sign_in(client)
    token = await _token(client, app_client, scopes)
    assert token["scope"] == " ".join(sorted(scopes))
    async with engine.connect() as conn:
        rows = (await conn.execute(select(ConsentGrant.section, ConsentGrant.action))).all()
    assert [tuple(r) for r in rows] == [("badges", "read")]


async def test_clr_get_offers_the_current_record_under_the_live_grants(client, host, engine, samples_dir, kit,
                                                                     examples_dir):
    """CLR 2.0 getCredentials: a fresh, signed ClrCredential of what this app may read, then held CLRs."""
    from hub.credentials.service import verify

    scopes = [*CLR_SCOPES, "skills:read"]  # no activities:read: activities stay out
    app_client = await _register(client, scopes)
    guardian = await make_guardian(engine)
    await sign_in(client)
    token = await _token(client, app_client, scopes)
    await add_record(engine, SimpleNamespace(learner_id=guardian.learners[0]), badges=2)  # type: ignore[arg-type]
    base = "/ims/clr/v2p0/credentials"
    clr_schema = _schema(samples_dir, "clr_v2p0_clrcredential_schema.json")
    list_schema = _schema(samples_dir, "clr_v2p0_getclrcredentialsresponse_schema.json")

    before = datetime.now(UTC).replace(microsecond=0)
    first = await client.get(base, headers=_auth(token))
    assert first.status_code == 200, first.text
    assert first.headers["x-total-count"] == "1"
    body = first.json()
    list_schema.validate(body)
    (record,) = body["credential"]
    clr_schema.validate(record)
    subject = record["credentialSubject"]
    assert subject["id"] == f"urn:kinfolio:learner:{token['learner']}"  # pairwise, never the hub's own id
    inner_subjects = {c["credentialSubject"]["id"] for c in subject["verifiableCredential"]}
    assert inner_subjects == {subject["id"]}
    types = sorted(a.get("achievementType", "badge") for a in subject["achievement"])
    assert types == ["Competency", "Competency", "badge", "badge"]  # badges and skills, no activities
    assert datetime.fromisoformat(record["validFrom"].replace("Z", "+00:00")) >= before
    async with make_sessionmaker(engine)() as session:
        verified = await verify(session, kit, record, datetime.now(UTC))
    assert verified.ok, [c.line() for c in verified.checks]

    # The same id on every call (equality dedup: same issuer.id + id, newer validFrom replaces).
    again = (await client.get(base, headers=_auth(token))).json()["credential"][0]
    assert again["id"] == record["id"] and again["validFrom"] >= record["validFrom"]

    # A held CLR comes after the record; paging walks both with the right headers.
    held = load(examples_dir / "clr2-testvector-signed-credential.json")
    assert (await client.post(base, json=held, headers=_auth(token))).status_code == 201
    page1 = await client.get(base, params={"limit": 1}, headers=_auth(token))
    assert page1.headers["x-total-count"] == "2"
    assert page1.json()["credential"][0]["id"] == record["id"]
    assert f'<{ISSUER}{base}?limit=1&offset=1>; rel="next"' in page1.headers["link"]
    page2 = await client.get(base, params={"limit": 1, "offset": 1}, headers=_auth(token))
    assert page2.json() == {"credential": [held]} and 'rel="prev"' in page2.headers["link"]
    assert 'rel="next"' not in page2.headers["link"]
    future = await client.get(base, params={"since": "2999-01-01T00:00:00Z"}, headers=_auth(token))
    assert future.headers["x-total-count"] == "0" and future.json() == {}

    # The family revokes skills: the next call's record has no skills.
    provider_id = await _provider_of(engine, app_client.client_id)
    async with make_sessionmaker(engine)() as session, session.begin():
        assert await revoke_access(session=session, learner_id=guardian.learners[0], provider_id=provider_id,
                                   revoked_by=guardian.id, now=datetime.now(UTC), section="skills") == 1
    narrowed = (await client.get(base, params={"limit": 1}, headers=_auth(token))).json()["credential"][0]
    clr_schema.validate(narrowed)
    assert all(a.get("achievementType") != "Competency" for a in narrowed["credentialSubject"]["achievement"])
    # ...and revoking badges refuses the next call outright.
    async with make_sessionmaker(engine)() as session, session.begin():
        await revoke_access(session=session, learner_id=guardian.learners[0], provider_id=provider_id,
                            revoked_by=guardian.id, now=datetime.now(UTC), section="badges")
    refused = await client.get(base, headers=_auth(token))
    _assert_status_info(refused, 403, "forbidden", samples_dir)

    async with engine.connect() as conn:
        events = [tuple(e) for e in (await conn.execute(
            select(DisclosureEvent.section, DisclosureEvent.outcome, DisclosureEvent.reason, DisclosureEvent.entry_count)
            .where(DisclosureEvent.action == "read").order_by(DisclosureEvent.id))).all()]
    assert ("skills", "allowed", None, 3) in events  # the three assessments behind two skills
    assert ("skills", "denied", "grant_revoked", None) in events
    assert ("badges", "denied", "grant_revoked", None) in events
    assert not any(e[0] == "activities" for e in events)  # never asked: the token has no activities scope


async def test_clr_get_needs_the_readonly_scope(client, host, engine, samples_dir):
    """A token without credential.readonly gets no record, however the grants stand."""
    scopes = [CLR + "credential.upsert"]
    app_client = await _register(client, scopes)
    guardian = await make_guardian(engine)
    await sign_in(client)
    token = await _token(client, app_client, scopes)
    await add_record(engine, SimpleNamespace(learner_id=guardian.learners[0]), badges=2)  # type: ignore[arg-type]
    listed = await client.get("/ims/clr/v2p0/credentials", headers=_auth(token))
    # Token scope: contribute only, so credential.readonly is missing: refused (scope), nothing disclosed.
    _assert_status_info(listed, 403, "forbidden", samples_dir)


async def test_clr_scope_uris_are_the_specs(client, host):
    """CLR 2.0 §6 (API) names the same four scopes as OB 3.0 under /spec/clr/v2p0/scope/; names
    that are not the spec's (e.g. clr.readonly) are refused at registration."""
    doc = (await client.get("/ims/clr/v2p0/discovery")).json()
    scopes = doc["components"]["securitySchemes"]["OAuth2ACG"]["flows"]["authorizationCode"]["scopes"]
    assert sorted(scopes) == sorted([
        "https://purl.imsglobal.org/spec/clr/v2p0/scope/credential.readonly",
        "https://purl.imsglobal.org/spec/clr/v2p0/scope/credential.upsert",
        "https://purl.imsglobal.org/spec/clr/v2p0/scope/profile.readonly",
        "https://purl.imsglobal.org/spec/clr/v2p0/scope/profile.update"])
    for path, op, name in (("/credentials", "get", "credential.readonly"), ("/credentials", "post", "credential.upsert"),
                           ("/profile", "get", "profile.readonly"), ("/profile", "put", "profile.update")):
        assert doc["paths"][path][op]["security"] == [{"OAuth2ACG": [CLR + name]}]
    for wrong in ("clr.readonly", "clr.upsert", "readonly"):
        response = await client.post("/oauth/register", json=_metadata([CLR + wrong]))
        assert response.status_code == 400 and response.json()["error"] == "invalid_client_metadata", response.text


async def test_a_learner_erased_before_the_answer_is_logged_gets_no_answer(client, host, engine, samples_dir,
                                                                          monkeypatch):
    """PostgreSQL: the family erases the learner after getCredentials read the record and before
    its disclosure is logged: the answer cannot be logged, so it is not given (403, nothing out).
    SQLite: the request holds the write lock, so the erasure waits and the answer is given."""
    import sqlite3

    from hub.grants import enforce
    from hub.people.service import delete_learner

    app_client = await _register(client, OB_SCOPES)
    guardian = await make_guardian(engine)
    await sign_in(client)
    token = await _token(client, app_client, OB_SCOPES)
    original, erasure = enforce.append_events, []

    async def erase_first(**kwargs):  # type: ignore[no-untyped-def]
        if engine.dialect.name == "sqlite":
            other = sqlite3.connect(engine.url.database, timeout=0.1, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                erasure.append("interleaved")
                other.execute("ROLLBACK")
            except sqlite3.OperationalError:
                erasure.append("waited")
            finally:
                other.close()
        else:
            async with make_sessionmaker(engine)() as session, session.begin():
                assert await delete_learner(session=session, learner_id=guardian.learners[0]) is True
            erasure.append("committed")
        return await original(**kwargs)

    monkeypatch.setattr(enforce, "append_events", erase_first)
    response = await client.get("/ims/ob/v3p0/credentials", headers=_auth(token))
    if engine.dialect.name == "sqlite":
        assert erasure == ["waited"] and response.status_code == 200, response.text
        return
    assert erasure == ["committed"]
    _assert_status_info(response, 403, "forbidden", samples_dir)
    assert "erased" in response.json()["imsx_description"]
    async with engine.connect() as conn:
        assert (await conn.execute(select(DisclosureEvent.id).where(
            DisclosureEvent.learner_id == guardian.learners[0]))).all() == []
