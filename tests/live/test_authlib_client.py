"""Authlib's OAuth 2.0 client, used as a black box, against a real uvicorn server: client
credentials and authorization code + PKCE (S256)."""

from __future__ import annotations

import re
import secrets

import warnings

import httpx

with warnings.catch_warnings():
    # Authlib 1.9 announces a future move of its httpx client to "httpx2" on import; the client
    # itself is unchanged and is what this test uses as the black box.
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import OAuth2Client

from tests.factories import make_provider
from tests.hub.oauth_helpers import PASSWORD, make_code_client, make_guardian

QUERY = {"query": "{ learners { nodes { id badges { nodes { achievement { name } } } } } }"}


async def test_client_credentials_with_authlib(live_server, engine):
    provider = await make_provider(engine, "Live CC", ["badges:read"])
    with OAuth2Client(provider.client_id, provider.client_secret, scope="badges:read") as oauth:
        token = oauth.fetch_token(f"{live_server}/oauth/token", grant_type="client_credentials")
        assert token["token_type"] == "Bearer" and token["scope"] == "badges:read"
        response = oauth.post(f"{live_server}/graphql", json=QUERY)
    assert response.status_code == 200 and response.json()["data"]["learners"]["nodes"] == []


async def test_authorization_code_with_pkce_with_authlib(live_server, engine):
    family = await make_guardian(engine, "live@example.org")
    redirect = "https://live-app.example.org/cb"
    app = await make_code_client(engine, "Live App", redirect_uris=[redirect], scopes=["badges:read"])
    verifier = secrets.token_urlsafe(48)
    with OAuth2Client(app.client_id, app.client_secret, redirect_uri=redirect, scope="badges:read",
                      code_challenge_method="S256") as oauth:
        url, state = oauth.create_authorization_url(f"{live_server}/oauth/authorize", code_verifier=verifier)
        # The family's browser: sign in, open the consent page, approve.
        with httpx.Client(base_url=live_server) as browser:
            login = browser.get("/account/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
            browser.post("/account/login", data={"csrf": csrf, "email": "live@example.org", "password": PASSWORD,
                                                 "next": "/account"})
            consent = browser.get(url)
            assert consent.status_code == 200, consent.text
            form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', consent.text))
            form.update({"decision": "approve", "allow": "badges:read", "learner": str(family.learners[0])})
            import html

            form = {k: html.unescape(v) for k, v in form.items()}
            decision = browser.post("/oauth/authorize", data=form)
        assert decision.status_code == 303
        callback = decision.headers["location"]
        assert callback.startswith(redirect)
        token = oauth.fetch_token(f"{live_server}/oauth/token", authorization_response=callback, code_verifier=verifier,
                                  state=state)
        assert token["learner"].startswith("lrn_") and token["refresh_token"]
        response = oauth.post(f"{live_server}/graphql", json=QUERY)
        assert response.status_code == 200
        assert [n["id"] for n in response.json()["data"]["learners"]["nodes"]] == [token["learner"]]
        refreshed = oauth.refresh_token(f"{live_server}/oauth/token")
        assert refreshed["access_token"] != token["access_token"]
