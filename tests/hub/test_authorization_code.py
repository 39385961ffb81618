"""Authorization code + PKCE (RFC 6749 §4.1, RFC 7636), refresh rotation (§6), revocation (RFC 7009),
introspection (RFC 7662), and the RFC 9700 threats that apply. Every refusal also asserts that
nothing was granted or issued."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hub.grants.models import ConsentGrant
from tests.factories import gql
from tests.hub.oauth_helpers import (
    REDIRECT,
    SCOPES,
    authorize_params,
    consent,
    counts,
    get_code,
    live_tokens,
    make_code_client,
    make_guardian,
    pkce,
    query_of,
    redeem,
    sign_in,
)

READ_ALL = """{ learners { nodes { id badges { nodes { achievement { name } } }
  activities(first: 5) { nodes { verb { display } } } skills { nodes { proficiency } } } } }"""
NOTHING = {"grants": 0, "codes": 0, "tokens": 0, "refresh": 0}


@pytest.fixture
async def family(engine):  # type: ignore[no-untyped-def]
    return await make_guardian(engine, children=2)


@pytest.fixture
async def app_client(engine):  # type: ignore[no-untyped-def]
    return await make_code_client(engine)


async def test_connect_this_app_end_to_end(client, engine, family, app_client):
    await sign_in(client)
    verifier, challenge = pkce()
    # The guardian picks the second child and unticks skills.
    code = await get_code(client, app_client, challenge, allow=["activities:read", "badges:read"], learner=family.learners[1])
    response = await redeem(client, app_client, code, verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["scope"] == "activities:read badges:read"
    assert body["learner"].startswith("lrn_") and body["refresh_token"]
    # The token is bound to that learner: the API lists exactly that learner and refuses skills.
    result = (await gql(client, body["access_token"], READ_ALL)).json()
    nodes = result["data"]["learners"]["nodes"]
    assert [n["id"] for n in nodes] == [body["learner"]]
    assert nodes[0]["badges"] == {"nodes": []} and nodes[0]["activities"] == {"nodes": []}
    assert nodes[0]["skills"] is None
    assert result["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    # Exactly the approved grants exist, for the chosen learner.
    async with engine.connect() as conn:
        rows = (await conn.execute(select(ConsentGrant.learner_id, ConsentGrant.section, ConsentGrant.action))).all()
    assert sorted((r.section, r.action) for r in rows) == [("activities", "read"), ("badges", "read")]
    assert {r.learner_id for r in rows} == {family.learners[1]}


async def test_learner_bound_token_treats_other_learners_as_not_found(client, engine, family, app_client):
    from tests.factories import Family, ProviderClient, grant

    # The provider also holds a grant for the first child (e.g. through a school sync).
    other = Family(guardian_id=family.id, learner_id=family.learners[0])
    provider = ProviderClient(app_client.provider_id, app_client.client_id, "")
    from consent import Action

    await grant(engine, other, provider, "badges", Action.READ)
    from tests.factories import learner_id_for

    await sign_in(client)
    verifier, challenge = pkce()
    code = await get_code(client, app_client, challenge, learner=family.learners[1])
    token = (await redeem(client, app_client, code, verifier)).json()["access_token"]
    result = (await gql(client, token, 'query($id: ID!) { learner(id: $id) { badges { nodes { achievement { name } } } } }',
                        {"id": learner_id_for(other, provider)})).json()
    assert result["data"]["learner"] is None
    assert result["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_deny_returns_access_denied_and_grants_nothing(client, engine, family, app_client):
    await sign_in(client)
    _, challenge = pkce()
    response = await consent(client, app_client, challenge, decision="deny")
    assert response.status_code == 303
    query = query_of(response.headers["location"])
    assert response.headers["location"].startswith(REDIRECT + "?")
    assert query["error"] == "access_denied" and query["state"] == "st-123" and query["iss"] == "https://testserver"
    assert await counts(engine) == NOTHING


async def test_unticking_everything_is_a_denial(client, engine, family, app_client):
    await sign_in(client)
    _, challenge = pkce()
    response = await consent(client, app_client, challenge, allow=[])
    assert query_of(response.headers["location"])["error"] == "access_denied"
    assert await counts(engine) == NOTHING


async def test_not_signed_in_goes_to_login_then_back(client, family, app_client):
    _, challenge = pkce()
    response = await client.get("/oauth/authorize", params=authorize_params(app_client, challenge))
    assert response.status_code == 303
    assert response.headers["location"].startswith("/account/login?next=%2Foauth%2Fauthorize%3F")


# -- RFC 9700 §4.1: redirect-URI manipulation -------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://app.example.org/callback/../evil",  # path traversal
        "https://app.example.org/callback/extra",  # suffix
        "https://app.example.org/call",  # prefix
        "https://app.example.org:8443/callback",  # different port
        "https://app.example.org.evil.example/callback",  # host suffix
        "https://APP.example.org/callback",  # case variation
        "https://app.example.org/callback?x=1",  # extra query
        "http://app.example.org/callback",  # scheme downgrade
        "https://evil.example/callback",
        None,  # missing
    ],
)
async def test_redirect_uri_must_match_exactly_and_is_never_followed(client, engine, family, app_client, redirect_uri):
    await sign_in(client)
    _, challenge = pkce()
    params = authorize_params(app_client, challenge, redirect_uri=redirect_uri)
    response = await client.get("/oauth/authorize", params=params)
    assert response.status_code == 400 and "location" not in response.headers
    assert "not registered" in response.text
    # The POST is refused the same way (a forged consent form cannot smuggle a redirect URI).
    posted = await client.post("/oauth/authorize", data={**params, "decision": "approve", "allow": "badges:read"})
    assert posted.status_code == 400 and "location" not in posted.headers
    assert await counts(engine) == NOTHING


async def test_unknown_client_gets_a_page_not_a_redirect(client, engine, family):
    _, challenge = pkce()
    response = await client.get("/oauth/authorize", params={"response_type": "code", "client_id": "kf_nope",
                                                            "redirect_uri": "https://evil.example/", "code_challenge": challenge,
                                                            "code_challenge_method": "S256"})
    assert response.status_code == 400 and "location" not in response.headers
    assert await counts(engine) == NOTHING


# -- PKCE (RFC 7636, RFC 9700 §2.1.1) --------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),  # no PKCE
        ({"code_challenge_method": "plain"}, "invalid_request"),  # plain refused
        ({"code_challenge_method": None}, "invalid_request"),  # missing method = plain
        ({"code_challenge": "short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),  # implicit flow refused (RFC 9700 §2.1.2)
        ({"scope": "badges:read grades:read"}, "invalid_scope"),
        ({"scope": "badges:contribute"}, "invalid_scope"),  # not registered for this client
    ],
)
async def test_bad_authorization_requests_redirect_with_error_and_state(client, engine, family, app_client, overrides, error):
    await sign_in(client)
    _, challenge = pkce()
    response = await client.get("/oauth/authorize", params=authorize_params(app_client, challenge, **overrides))
    assert response.status_code == 302
    assert response.headers["location"].startswith(REDIRECT + "?")
    query = query_of(response.headers["location"])
    assert query["error"] == error and query["state"] == "st-123"
    assert await counts(engine) == NOTHING


async def test_missing_or_wrong_verifier_is_refused_and_issues_nothing(client, engine, family, app_client):
    await sign_in(client)
    verifier, challenge = pkce()
    code = await get_code(client, app_client, challenge)
    missing = await redeem(client, app_client, code, None)
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    wrong = await redeem(client, app_client, code, pkce()[0])
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    plain = await redeem(client, app_client, code, challenge)  # the challenge itself, as `plain` would accept
    assert plain.json()["error"] == "invalid_grant"
    assert (await counts(engine))["tokens"] == 0 and (await counts(engine))["refresh"] == 0
    # The code is still good for the real verifier (failed attempts did not consume it).
    assert (await redeem(client, app_client, code, verifier)).status_code == 200


# -- code replay, injection, lifetime ----------------------------------------------------------


async def test_code_replay_is_refused_and_revokes_tokens_issued_from_it(client, engine, family, app_client):
    await sign_in(client)
    verifier, challenge = pkce()
    code = await get_code(client, app_client, challenge)
    first = (await redeem(client, app_client, code, verifier)).json()
    assert (await gql(client, first["access_token"], READ_ALL)).status_code == 200
    replay = await redeem(client, app_client, code, verifier)
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    assert "access_token" not in replay.json()
    # RFC 6749 §4.1.2: the tokens issued from the code are revoked, refresh token included.
    assert (await gql(client, first["access_token"], READ_ALL)).status_code == 401
    refreshed = await client.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                                  auth=(app_client.client_id, app_client.client_secret))
    assert refreshed.json()["error"] == "invalid_grant"
    assert await live_tokens(engine) == 0


async def test_code_injection_code_from_client_a_redeemed_by_client_b(client, engine, family, app_client):
    other = await make_code_client(engine, "Other App")
    await sign_in(client)
    verifier, challenge = pkce()
    code = await get_code(client, app_client, challenge)
    stolen = await redeem(client, other, code, verifier)
    assert (stolen.status_code, stolen.json()["error"]) == (400, "invalid_grant")
    assert (await counts(engine))["tokens"] == 0


async def test_code_bound_to_redirect_uri(engine, client, family):
    app = await make_code_client(engine, "Two Callbacks", redirect_uris=[REDIRECT, "https://app.example.org/other"])
    await sign_in(client)
    verifier, challenge = pkce()
    code = await get_code(client, app, challenge)
    response = await redeem(client, app, code, verifier, redirect_uri="https://app.example.org/other")
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")
    assert (await counts(engine))["tokens"] == 0


async def test_expired_code_is_refused(client, engine, family, app_client, monkeypatch):
    from datetime import timedelta

    import hub.oauth.server as server_module

    await sign_in(client)
    verifier, challenge = pkce()
    code = await get_code(client, app_client, challenge)
    real = server_module.utcnow
    monkeypatch.setattr(server_module, "utcnow", lambda: real() + timedelta(seconds=61))
    response = await redeem(client, app_client, code, verifier)
    assert response.json()["error"] == "invalid_grant"
    assert (await counts(engine))["tokens"] == 0


async def test_wrong_client_secret_at_token_endpoint(client, engine, family, app_client):
    await sign_in(client)
    verifier, challenge = pkce()
    code = await get_code(client, app_client, challenge)
    response = await redeem(client, app_client, code, verifier, auth=(app_client.client_id, "wrong"))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    assert (await counts(engine))["tokens"] == 0


# -- CSRF on the consent form ---------------------------------------------------------------


@pytest.mark.parametrize("csrf", [None, "forged-token"])
async def test_consent_form_without_valid_csrf_grants_nothing(client, engine, family, app_client, csrf):
    await sign_in(client)
    _, challenge = pkce()
    data = {**authorize_params(app_client, challenge), "decision": "approve", "allow": "badges:read",
            "learner": str(family.learners[0])}
    if csrf:
        data["csrf"] = csrf
    response = await client.post("/oauth/authorize", data=data)
    assert response.status_code == 403 and "location" not in response.headers
    assert await counts(engine) == NOTHING


async def test_consent_for_a_child_that_is_not_yours_grants_nothing(client, engine, family, app_client):
    stranger = await make_guardian(engine, "stranger@example.org")
    await sign_in(client)
    _, challenge = pkce()
    response = await consent(client, app_client, challenge, learner=stranger.learners[0])
    assert response.status_code == 400
    assert await counts(engine) == NOTHING


# -- refresh tokens ---------------------------------------------------------------------------


async def _tokens(client, app_client, **kwargs):  # type: ignore[no-untyped-def]
    await sign_in(client)
    verifier, challenge = pkce()
    code = await get_code(client, app_client, challenge, **kwargs)
    return (await redeem(client, app_client, code, verifier)).json()


async def _refresh(client, app_client, token, scope=None):  # type: ignore[no-untyped-def]
    data = {"grant_type": "refresh_token", "refresh_token": token}
    if scope:
        data["scope"] = scope
    return await client.post("/oauth/token", data=data, auth=(app_client.client_id, app_client.client_secret))


async def test_refresh_rotates_and_reuse_revokes_the_family(client, engine, family, app_client):
    first = await _tokens(client, app_client)
    second = await _refresh(client, app_client, first["refresh_token"])
    assert second.status_code == 200
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"] and second["learner"] == first["learner"]
    # Reusing the rotated-out token: refused, and every token of the family is revoked.
    reuse = await _refresh(client, app_client, first["refresh_token"])
    assert (reuse.status_code, reuse.json()["error"]) == (400, "invalid_grant")
    assert (await gql(client, second["access_token"], READ_ALL)).status_code == 401
    assert (await _refresh(client, app_client, second["refresh_token"])).json()["error"] == "invalid_grant"
    assert await live_tokens(engine) == 0


async def test_refresh_never_widens_scope_but_may_narrow(client, engine, family, app_client):
    first = await _tokens(client, app_client, allow=["badges:read"])
    before = await counts(engine)
    wider = await _refresh(client, app_client, first["refresh_token"], "badges:read skills:read")
    assert (wider.status_code, wider.json()["error"]) == (400, "invalid_scope")
    assert await counts(engine) == before
    # The refused request did not consume the refresh token; a narrower one works.
    narrower = (await _refresh(client, app_client, first["refresh_token"], "badges:read")).json()
    assert narrower["scope"] == "badges:read"
    again = (await _refresh(client, app_client, narrower["refresh_token"])).json()
    assert again["scope"] == "badges:read"


async def test_refresh_by_another_client_is_refused(client, engine, family, app_client):
    other = await make_code_client(engine, "Other App")
    first = await _tokens(client, app_client)
    response = await client.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                                 auth=(other.client_id, other.client_secret))
    assert response.json()["error"] == "invalid_grant"
    assert (await _refresh(client, app_client, first["refresh_token"])).status_code == 200


async def test_token_from_a_revoked_grant(client, engine, family, app_client):
    from tests.factories import Family, ProviderClient, revoke

    first = await _tokens(client, app_client, learner=family.learners[0])
    await revoke(engine, Family(family.id, family.learners[0]), ProviderClient(app_client.provider_id, app_client.client_id, ""))
    # The API sees the learner as gone, introspection says inactive, refresh is refused.
    result = (await gql(client, first["access_token"], READ_ALL)).json()
    assert result["data"]["learners"]["nodes"] == []
    intro = await client.post("/oauth/introspect", data={"token": first["access_token"]},
                              auth=(app_client.client_id, app_client.client_secret))
    assert intro.json() == {"active": False}
    refresh_intro = await client.post("/oauth/introspect", data={"token": first["refresh_token"]},
                                      auth=(app_client.client_id, app_client.client_secret))
    assert refresh_intro.json() == {"active": False}
    tokens_before = (await counts(engine))["tokens"]
    assert (await _refresh(client, app_client, first["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await counts(engine))["tokens"] == tokens_before


# -- revocation and introspection -------------------------------------------------------------


async def test_introspection_and_revocation(client, engine, family, app_client):
    first = await _tokens(client, app_client)
    auth = (app_client.client_id, app_client.client_secret)
    intro = (await client.post("/oauth/introspect", data={"token": first["access_token"]}, auth=auth)).json()
    assert intro["active"] is True and intro["scope"] == " ".join(SCOPES) and intro["sub"] == first["learner"]
    # Another provider's client learns nothing about the token.
    other = await make_code_client(engine, "Other App")
    assert (await client.post("/oauth/introspect", data={"token": first["access_token"]},
                               auth=(other.client_id, other.client_secret))).json() == {"active": False}
    # Unauthenticated introspection is refused.
    assert (await client.post("/oauth/introspect", data={"token": first["access_token"]})).status_code == 401
    # Revoking someone else's token does nothing (and says 200, RFC 7009 §2.2).
    assert (await client.post("/oauth/revoke", data={"token": first["access_token"]},
                              auth=(other.client_id, other.client_secret))).status_code == 200
    assert (await gql(client, first["access_token"], READ_ALL)).status_code == 200
    # Revoking the access token: API 401, introspection inactive.
    assert (await client.post("/oauth/revoke", data={"token": first["access_token"]}, auth=auth)).status_code == 200
    assert (await gql(client, first["access_token"], READ_ALL)).status_code == 401
    assert (await client.post("/oauth/introspect", data={"token": first["access_token"]}, auth=auth)).json() == {"active": False}
    # Revoking the refresh token ends the family.
    assert (await client.post("/oauth/revoke", data={"token": first["refresh_token"], "token_type_hint": "refresh_token"},
                              auth=auth)).status_code == 200
    assert (await _refresh(client, app_client, first["refresh_token"])).json()["error"] == "invalid_grant"
    # Garbage is fine (200), no auth is not (401).
    assert (await client.post("/oauth/revoke", data={"token": "garbage"}, auth=auth)).status_code == 200
    assert (await client.post("/oauth/revoke", data={"token": "garbage"})).status_code == 401


# -- public clients ---------------------------------------------------------------------------


async def test_public_client_uses_pkce_without_secret(client, engine, family):
    app = await make_code_client(engine, "Mobile App", auth_method="none")
    assert app.client_secret is None
    await sign_in(client)
    verifier, challenge = pkce()
    code = await get_code(client, app, challenge)
    assert (await redeem(client, app, code, None)).json()["error"] == "invalid_request"
    response = await redeem(client, app, code, verifier)
    assert response.status_code == 200 and response.json()["refresh_token"]
    # A public client cannot use client credentials.
    cc = await client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": app.client_id})
    assert cc.status_code in (400, 401) and "access_token" not in cc.json()


async def test_confidential_client_cannot_skip_authentication(client, engine, family, app_client):
    await sign_in(client)
    verifier, challenge = pkce()
    code = await get_code(client, app_client, challenge)
    response = await client.post("/oauth/token", data={"grant_type": "authorization_code", "code": code,
                                                       "redirect_uri": REDIRECT, "code_verifier": verifier,
                                                       "client_id": app_client.client_id})
    assert response.json()["error"] == "invalid_client"
    assert (await counts(engine))["tokens"] == 0


async def test_sensitive_sections_are_never_pre_ticked_on_the_consent_page(client, engine):
    import re as _re

    from tests.hub.oauth_helpers import authorize_params, make_code_client, make_guardian, pkce, sign_in

    await make_guardian(engine, "sensitive@example.org")
    app_client = await make_code_client(engine, "Wellbeing Coach", scopes=["badges:read", "wellbeing:read"])
    await sign_in(client, "sensitive@example.org")
    _, challenge = pkce()
    page = await client.get("/oauth/authorize", params=authorize_params(app_client, challenge, scope="badges:read wellbeing:read"))
    assert page.status_code == 200
    boxes = dict(_re.findall(r'<input type="checkbox" name="allow" value="([^"]+)" ?(checked)?', page.text))
    assert boxes == {"badges:read": "checked", "wellbeing:read": ""}
    assert "sensitive: shared only if you tick this box yourself" in page.text
