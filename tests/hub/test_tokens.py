"""OAuth token endpoint (RFC 6749 §4.4) and bearer validation (RFC 6750, RFC 9068)."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from sqlalchemy import update

from consent import Action
from hub.oauth.keys import generate_private_pem, keys_from_pem
from hub.oauth.models import IssuedToken
from hub.providers.models import OAuthClient
from tests.conftest import ISSUER
from tests.factories import get_token, gql, grant, learner_id_for, make_family, make_provider

QUERY = "{ learners { nodes { id } } }"
AUDIENCE = f"{ISSUER}/graphql"


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _header(token: str) -> dict:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


@pytest.fixture
async def provider(engine):  # type: ignore[no-untyped-def]
    return await make_provider(engine, "Token Co", ["badges:read", "activities:contribute"])


async def test_client_credentials_issues_rfc9068_jwt(client, provider, settings):
    response = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(provider.client_id, provider.client_secret)
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.access_token_ttl_seconds <= 900
    assert body["scope"] == "activities:contribute badges:read"
    header, claims = _header(body["access_token"]), _claims(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256" and header["kid"]
    assert claims["iss"] == ISSUER and claims["aud"] == AUDIENCE
    assert claims["client_id"] == claims["sub"] == provider.client_id
    assert claims["exp"] - claims["iat"] == settings.access_token_ttl_seconds
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert [k["kid"] for k in jwks["keys"]] == [header["kid"]]
    assert all("d" not in k for k in jwks["keys"])  # never the private part


async def test_client_secret_post_and_scope_narrowing(client, provider):
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": provider.client_id,
              "client_secret": provider.client_secret, "scope": "badges:read"},
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "badges:read"


@pytest.mark.parametrize(
    ("data", "auth", "status", "error"),
    [
        ({"grant_type": "client_credentials"}, ("wrong", "secret"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
        ({"grant_type": "password", "username": "x", "password": "y"}, "ok", 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "scope": "skills:read"}, "ok", 400, "invalid_scope"),
        ({"grant_type": "client_credentials", "scope": "grades:read"}, "ok", 400, "invalid_scope"),
    ],
)
async def test_token_endpoint_refusals(client, provider, data, auth, status, error):  # type: ignore[no-untyped-def]
    if auth == "ok":
        auth = (provider.client_id, provider.client_secret)
    response = await client.post("/oauth/token", data=data, auth=auth)
    assert response.status_code == status
    assert response.json()["error"] == error


async def test_wrong_secret_for_real_client_is_refused(client, provider):
    response = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(provider.client_id, "nope"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_repeated_parameters_and_wrong_content_type_are_refused(client, provider):
    response = await client.post(
        "/oauth/token", content="grant_type=client_credentials&grant_type=client_credentials",
        headers={"content-type": "application/x-www-form-urlencoded"}, auth=(provider.client_id, provider.client_secret),
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    response = await client.post("/oauth/token", json={"grant_type": "client_credentials"},
                                 auth=(provider.client_id, provider.client_secret))
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


async def test_disabled_client_cannot_get_tokens_and_its_tokens_stop_working(client, engine, provider):
    token = await get_token(client, provider)
    assert (await gql(client, token, QUERY)).status_code == 200  # verified and remembered
    async with engine.begin() as conn:
        await conn.execute(update(OAuthClient).values(disabled_at=datetime.now(UTC)))
    assert (await gql(client, token, QUERY)).status_code == 401
    response = await client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                 auth=(provider.client_id, provider.client_secret))
    assert response.status_code == 401


def _sign(claims: dict, key, header: dict | None = None) -> str:  # type: ignore[no-untyped-def]
    return jwt.encode({"alg": "ES256", "typ": "at+jwt", **(header or {})}, claims, key)


def _valid_claims(provider, **overrides) -> dict:  # type: ignore[no-untyped-def]
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": provider.client_id, "client_id": provider.client_id,
              "iat": now, "exp": now + 300, "jti": "forged", "scope": "badges:read"}
    claims.update(overrides)
    return claims


async def test_missing_or_malformed_authorization_is_401_with_challenge(client):
    response = await gql(client, None, QUERY)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="kinfolio"'
    response = await client.post("/graphql", json={"query": QUERY}, headers={"Authorization": "Basic abc"})
    assert response.status_code == 401
    assert 'error="invalid_request"' in response.headers["www-authenticate"]
    response = await gql(client, "not-a-jwt", QUERY)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_expired_token_is_401(client, provider, settings, monkeypatch):
    token = await get_token(client, provider)
    # Used first, so the hub has verified and remembered it (AccessTokenVerifier).
    assert (await gql(client, token, QUERY)).status_code == 200
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + settings.access_token_ttl_seconds + 60)
    response = await gql(client, token, QUERY)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_token_signed_by_another_key_is_401(client, provider):
    foreign = keys_from_pem(generate_private_pem())
    token = _sign(_valid_claims(provider), foreign.private)
    assert (await gql(client, token, QUERY)).status_code == 401


async def test_alg_none_is_401(client, provider):
    token = await get_token(client, provider)
    head = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "at+jwt"}).encode()).decode().rstrip("=")
    unsigned = f"{head}.{token.split('.')[1]}."
    assert (await gql(client, unsigned, QUERY)).status_code == 401


async def test_hs256_with_public_key_as_secret_is_401(client, provider, app):
    # Algorithm confusion (RFC 8725 §2.1): an HMAC keyed with the published public key.
    public = app.state.hub.signing_keys.public_jwks()["keys"][0]
    secret = OctKey.import_key(json.dumps(public).encode())
    token = jwt.encode({"alg": "HS256", "typ": "at+jwt"}, _valid_claims(provider), secret)
    assert (await gql(client, token, QUERY)).status_code == 401


@pytest.mark.parametrize(
    ("overrides", "header"),
    [
        ({"aud": "https://someone-else.example/api"}, None),
        ({"iss": "https://evil.example"}, None),
        ({"exp": int(time.time()) - 3600}, None),
        ({}, {"typ": "JWT"}),
        ({"nbf": int(time.time()) + 3600}, None),
        ({"iat": int(time.time()) + 3600}, None),
    ],
    ids=["wrong audience", "wrong issuer", "expired", "not at+jwt", "not yet valid (nbf)", "issued in the future"],
)
async def test_correctly_signed_but_invalid_claims_are_401(client, provider, app, engine, overrides, header):  # type: ignore[no-untyped-def]
    # Signed with the hub's own key and registered, so only the named defect can cause the 401.
    token = await get_token(client, provider)
    claims = {**_claims(token), **overrides}
    forged = _sign(claims, app.state.hub.signing_keys.private, header)
    assert (await gql(client, _sign(_claims(token), app.state.hub.signing_keys.private), QUERY)).status_code == 200
    response = await gql(client, forged, QUERY)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_unregistered_or_revoked_jti_is_401(client, provider, app, engine):
    token = await get_token(client, provider)
    unknown = _sign({**_claims(token), "jti": "never-issued"}, app.state.hub.signing_keys.private)
    assert (await gql(client, unknown, QUERY)).status_code == 401
    assert (await gql(client, token, QUERY)).status_code == 200  # verified and remembered
    async with engine.begin() as conn:
        await conn.execute(update(IssuedToken).values(revoked_at=datetime.now(UTC)))
    assert (await gql(client, token, QUERY)).status_code == 401


async def test_token_without_any_scope_is_403_insufficient_scope(client, provider, app, engine):
    token = await get_token(client, provider)
    async with engine.begin() as conn:
        await conn.execute(update(IssuedToken).values(scope=""))
    response = await gql(client, token, QUERY)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_missing_scope_for_a_field_is_refused_even_with_a_grant(client, engine, provider):
    family = await make_family(engine)
    await grant(engine, family, provider, "badges", Action.READ)
    token = await get_token(client, provider, scope="activities:contribute")
    body = (await gql(client, token, "query($id: ID!) { learner(id: $id) { badges { nodes { id } } } }",
                      {"id": learner_id_for(family, provider)})).json()
    assert body["data"]["learner"]["badges"] is None
    assert body["errors"][0]["extensions"] == {"code": "INSUFFICIENT_SCOPE", "section": "badges", "action": "read"}


async def test_metadata_document(client):
    body = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert body["issuer"] == ISSUER
    assert body["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert body["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert body["grant_types_supported"] == ["authorization_code", "refresh_token", "client_credentials"]
    assert body["authorization_endpoint"] == f"{ISSUER}/oauth/authorize"
    assert body["revocation_endpoint"] == f"{ISSUER}/oauth/revoke"
    assert body["introspection_endpoint"] == f"{ISSUER}/oauth/introspect"
    assert body["registration_endpoint"] == f"{ISSUER}/oauth/register"
    assert body["code_challenge_methods_supported"] == ["S256"]  # RFC 9700 §2.1.1: never plain
    assert body["response_types_supported"] == ["code"]
    assert "badges:read" in body["scopes_supported"]


# -- remembered verification (hub.oauth.bearer.AccessTokenVerifier) ---------------------------


def _verifier_and_token(tmp_path, ttl: int = 300, **overrides):  # type: ignore[no-untyped-def]
    from hub.oauth.bearer import AccessTokenVerifier
    from hub.oauth.keys import SigningKeys

    keys = SigningKeys(generate_private_pem(), tmp_path / "ring.json")
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "c", "client_id": "c", "iat": now, "exp": now + ttl, "jti": "j",
              **overrides}
    return AccessTokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE), keys, _sign(claims, keys.private), now


def test_a_remembered_token_is_refused_once_it_expires(tmp_path):  # type: ignore[no-untyped-def]
    from hub.oauth.bearer import LEEWAY_SECONDS, BearerError

    verifier, _keys, token, now = _verifier_and_token(tmp_path)
    assert verifier.verify(token, now=now)["jti"] == "j"
    assert verifier.verify(token, now=now + 300 + LEEWAY_SECONDS)["jti"] == "j"  # as joserfc: exp + leeway
    with pytest.raises(BearerError):
        verifier.verify(token, now=now + 300 + LEEWAY_SECONDS + 1)


def test_a_remembered_token_is_refused_once_its_key_is_retired(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from hub.oauth.bearer import BearerError

    verifier, keys, token, now = _verifier_and_token(tmp_path, ttl=100_000)
    assert verifier.verify(token, now=now)["jti"] == "j"
    keys.rotate(now=now)
    assert verifier.verify(token, now=now)["jti"] == "j"  # the old key is still published
    monkeypatch.setattr("hub.oauth.keys.time.time", lambda: now + 2000)  # after its retirement
    with pytest.raises(BearerError):
        verifier.verify(token, now=now + 2000)


def test_only_verified_tokens_are_remembered_and_at_most_max_entries(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from hub.oauth import bearer

    verifier, keys, token, now = _verifier_and_token(tmp_path)
    verifier._max_entries = 2
    checks: list[str] = []
    real_verify = bearer.verify_jwt
    monkeypatch.setattr(bearer, "verify_jwt", lambda t, **kw: checks.append(t) or real_verify(t, **kw))
    forged = _sign(_claims(token), keys_from_pem(generate_private_pem()).private)
    for _ in range(2):
        with pytest.raises(bearer.BearerError):
            verifier.verify(forged, now=now)
        verifier.verify(token, now=now)
    assert checks == [forged, token, forged]  # the valid token was checked once, the forged one every time
    others = [_sign({**_claims(token), "jti": f"j{i}"}, keys.private) for i in range(2)]
    for other in others:
        verifier.verify(other, now=now)
    assert list(verifier._verified) == others  # the oldest went first
