"""Family accounts (sign-up, sign-in throttling, CSRF, password reset), dynamic client
registration (RFC 7591, OB 3.0 profile), private_key_jwt (RFC 7523) and signing-key rotation."""

from __future__ import annotations

import time
import uuid

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import func, select

from hub.accounts.models import OutboxMessage
from hub.oauth.keys import SigningKeys, generate_private_pem
from hub.people.models import Guardian
from hub.providers.models import OAuthClient
from tests.conftest import ISSUER
from tests.factories import gql
from tests.hub.oauth_helpers import PASSWORD, csrf_of, get_code, make_code_client, make_guardian, pkce, redeem, sign_in


async def _count(engine, model) -> int:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(model))).scalar_one()


# -- family accounts ----------------------------------------------------------------------


async def test_sign_up_stores_argon2id_and_sets_a_hardened_cookie(client, engine):
    form = await client.get("/account/signup")
    assert form.headers["x-frame-options"] == "DENY"
    response = await client.post("/account/signup", data={"csrf": csrf_of(form.text), "name": "Sam", "email": "Sam@Example.org",
                                                          "password": "long enough password"})
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
    async with engine.connect() as conn:
        stored = (await conn.execute(select(Guardian.password_hash).where(Guardian.email == "sam@example.org"))).scalar_one()
    assert stored.startswith("$argon2id$")
    assert (await client.get("/account")).status_code == 200


@pytest.mark.parametrize(("password", "status"), [("short", 400), ("x" * 300, 400)])
async def test_sign_up_refuses_bad_passwords(client, engine, password, status):
    form = await client.get("/account/signup")
    response = await client.post("/account/signup", data={"csrf": csrf_of(form.text), "name": "Sam", "email": "s@example.org",
                                                          "password": password})
    assert response.status_code == status
    assert await _count(engine, Guardian) == 0


async def test_forms_without_csrf_are_refused(client, engine):
    await make_guardian(engine)
    response = await client.post("/account/login", data={"email": "parent@example.org", "password": PASSWORD})
    assert response.status_code == 403
    assert (await client.get("/account")).status_code == 303  # not signed in
    response = await client.post("/account/signup", data={"name": "X", "email": "x@example.org", "password": "long enough pw"})
    assert response.status_code == 403
    assert await _count(engine, Guardian) == 1


async def test_sign_in_is_throttled_after_repeated_failures(client, engine):
    await make_guardian(engine)
    for _ in range(5):
        assert (await sign_in(client, password="wrong password")).status_code == 401
    # Even the right password is refused during the lockout.
    response = await sign_in(client)
    assert response.status_code == 429
    assert (await client.get("/account")).status_code == 303  # not signed in


async def test_login_next_is_never_an_open_redirect(client, engine):
    await make_guardian(engine)
    form = await client.get("/account/login")
    response = await client.post("/account/login", data={"csrf": csrf_of(form.text), "email": "parent@example.org",
                                                          "password": PASSWORD, "next": "//evil.example/x"})
    assert response.headers["location"] == "/account"


async def test_password_reset_via_outbox_signs_out_old_sessions(client, engine, app):
    import httpx

    await make_guardian(engine)
    await sign_in(client)
    assert (await client.get("/account")).status_code == 200
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as other:
        form = await other.get("/account/reset")
        sent = await other.post("/account/reset", data={"csrf": csrf_of(form.text), "email": "parent@example.org"})
        unknown = await other.post("/account/reset", data={"csrf": csrf_of(form.text), "email": "nobody@example.org"})
        assert sent.status_code == unknown.status_code == 200 and sent.text == unknown.text  # no account probing
        async with engine.connect() as conn:
            body = (await conn.execute(select(OutboxMessage.body))).scalar_one()
        link = next(line for line in body.splitlines() if "/account/reset/" in line)
        path = link.replace(ISSUER, "")
        page = await other.get(path)
        done = await other.post(path, data={"csrf": csrf_of(page.text), "password": "a brand new password"})
        assert done.status_code == 200
        # Single use.
        assert (await other.get(path)).status_code == 400
    # The old session is signed out; the new password works.
    assert (await client.get("/account")).status_code == 303
    assert (await sign_in(client, password="a brand new password")).status_code == 303


# -- dynamic client registration ------------------------------------------------------------


def _metadata(**overrides):  # type: ignore[no-untyped-def]
    doc = {
        "client_name": "Badge Wallet", "client_uri": "https://wallet.example.org/",
        "logo_uri": "https://wallet.example.org/logo.png", "tos_uri": "https://wallet.example.org/tos",
        "policy_uri": "https://wallet.example.org/privacy", "software_id": "wallet-1", "software_version": "1.0",
        "redirect_uris": ["https://wallet.example.org/cb"], "scope": "badges:read",
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


async def test_dynamic_registration_then_connect(client, engine):
    response = await client.post("/oauth/register", json=_metadata())
    assert response.status_code == 201
    body = response.json()
    assert body["client_id"] and body["client_secret"] and body["client_secret_expires_at"] == 0
    assert isinstance(body["client_id_issued_at"], int)
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    # It can reach nothing without consent: client credentials is not among its grants.
    cc = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(body["client_id"], body["client_secret"]))
    assert cc.json()["error"] == "unauthorized_client"
    # The consent page shows its name, links and logo.
    await make_guardian(engine)
    await sign_in(client)
    _, challenge = pkce()
    page = await client.get("/oauth/authorize", params={
        "response_type": "code", "client_id": body["client_id"], "redirect_uri": "https://wallet.example.org/cb",
        "scope": "badges:read", "code_challenge": challenge, "code_challenge_method": "S256"})
    assert page.status_code == 200
    for text in ("Badge Wallet", "https://wallet.example.org/logo.png", "https://wallet.example.org/tos",
                 "https://wallet.example.org/privacy", "See your child&#39;s badges"):
        assert text in page.text


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"logo_uri": None}, "invalid_client_metadata"),
        ({"software_id": None}, "invalid_client_metadata"),
        ({"redirect_uris": ["https://evil.example/cb"]}, "invalid_redirect_uri"),  # another host
        ({"tos_uri": "https://other.example/tos"}, "invalid_client_metadata"),
        ({"redirect_uris": ["http://wallet.example.org/cb"]}, "invalid_redirect_uri"),  # not https
        ({"redirect_uris": ["https://wallet.example.org/cb#frag"]}, "invalid_redirect_uri"),
        ({"grant_types": ["client_credentials"]}, "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "none"}, "invalid_client_metadata"),
        ({"scope": "grades:read"}, "invalid_client_metadata"),
        ({"client_name": 42}, "invalid_client_metadata"),
    ],
)
async def test_registration_refusals_register_nothing(client, engine, overrides, error):
    response = await client.post("/oauth/register", json=_metadata(**overrides))
    assert (response.status_code, response.json()["error"]) == (400, error)
    assert await _count(engine, OAuthClient) == 0


async def test_registration_refuses_non_json(client, engine):
    for content, ctype in ((b"not json", "application/json"), (b"[]", "application/json"), (b"a=b", "text/plain")):
        response = await client.post("/oauth/register", content=content, headers={"content-type": ctype})
        assert response.status_code == 400
    assert await _count(engine, OAuthClient) == 0


async def test_registration_is_rate_limited_per_address(client, engine, settings):
    for _ in range(settings.registrations_per_hour):
        assert (await client.post("/oauth/register", json=_metadata())).status_code == 201
    response = await client.post("/oauth/register", json=_metadata())
    assert response.status_code == 429 and response.headers["retry-after"]
    assert await _count(engine, OAuthClient) == settings.registrations_per_hour


# -- private_key_jwt --------------------------------------------------------------------------


def _assertion(key: ECKey, client_id: str, **overrides):  # type: ignore[no-untyped-def]
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": f"{ISSUER}/oauth/token", "iat": now, "exp": now + 60,
              "jti": uuid.uuid4().hex}
    claims.update(overrides)
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)


async def test_private_key_jwt_client_credentials(client, engine):
    from tests.hub.oauth_helpers import make_code_client

    key = ECKey.generate_key("P-256", {"use": "sig"})
    key.ensure_kid()
    jwks = KeySet([ECKey.import_key(key.as_dict(private=False))]).as_dict(private=False)
    from hub.db import make_sessionmaker
    from hub.providers.service import create_client, create_provider

    async with make_sessionmaker(engine)() as session, session.begin():
        provider = await create_provider(session=session, name="Connector", kind="school")
        row, secret = await create_client(session=session, provider_id=provider.id, name="sync", scopes=["badges:read"],
                                          auth_method="private_key_jwt", jwks=jwks, grant_types=["client_credentials"])
        client_id = row.client_id
    assert secret is None
    data = {"grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    assertion = _assertion(key, client_id)
    ok = await client.post("/oauth/token", data={**data, "client_assertion": assertion})
    assert ok.status_code == 200, ok.text
    # The same assertion again (jti replay), a foreign key, a wrong audience, an expired one: refused.
    foreign = ECKey.generate_key("P-256")
    foreign.ensure_kid()
    for bad in (assertion, _assertion(foreign, client_id), _assertion(key, client_id, aud="https://other.example/token"),
                _assertion(key, client_id, exp=int(time.time()) - 120), "not.a.jwt"):
        response = await client.post("/oauth/token", data={**data, "client_assertion": bad})
        assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client", bad
    # A secret is no way in for a private_key_jwt client.
    assert (await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, "guess"))).status_code == 401
    _ = make_code_client
    from hub.oauth.models import IssuedToken

    assert await _count(engine, IssuedToken) == 1


# -- signing-key rotation ---------------------------------------------------------------------


def test_key_rotation_publishes_both_signs_with_new_and_retires_old(tmp_path, monkeypatch):
    keys = SigningKeys(generate_private_pem(), tmp_path / "ring.json")
    old_kid = keys.current_signing_key().keys[0].kid
    # The public set is cached per set of live keys: it must follow a rotation and a retirement.
    assert [k["kid"] for k in keys.public_jwks()["keys"]] == [old_kid]
    t0 = time.time()
    new_kid, retiring = keys.rotate(now=t0)
    assert retiring == [old_kid] and new_kid != old_kid
    assert keys.current_signing_key().keys[0].kid == new_kid
    assert sorted(k["kid"] for k in keys.public_jwks()["keys"]) == sorted([old_kid, new_kid])
    # Another process (a running server) sees the same ring.
    import os

    reader = SigningKeys(keys._base.as_pem(private=True), tmp_path / "ring.json")
    assert reader.current_signing_key().keys[0].kid == new_kid
    # After the longest token lifetime the old key is no longer published.
    later = t0 + 2000
    assert [e.key.kid for e in reader._live(later)] == [new_kid]
    assert sorted(k["kid"] for k in reader.public_jwks()["keys"]) == sorted([old_kid, new_kid])
    monkeypatch.setattr("hub.oauth.keys.time.time", lambda: later)
    assert [k["kid"] for k in reader.public_jwks()["keys"]] == [new_kid]
    assert oct(os.stat(tmp_path / "ring.json").st_mode & 0o777) == "0o600"


async def test_tokens_signed_before_rotation_still_verify(client, app, engine):
    from tests.factories import get_token, make_provider

    provider = await make_provider(engine, "Rotating Co", ["badges:read"])
    before = await get_token(client, provider)
    keys = app.state.hub.signing_keys
    ring = keys._keyring_file
    try:
        keys.rotate()
        after = await get_token(client, provider)
        from tests.hub.test_tokens import _header

        assert _header(before)["kid"] != _header(after)["kid"]
        for token in (before, after):
            assert (await gql(client, token, "{ learners { nodes { id } } }")).status_code == 200
        assert len((await client.get("/.well-known/jwks.json")).json()["keys"]) == 2
    finally:
        ring.unlink(missing_ok=True)
        keys._reload(force=True)
