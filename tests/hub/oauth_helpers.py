"""Helpers for the authorization-code flow tests: a family with a password, clients, the journey."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import date
from urllib.parse import parse_qs, urlencode, urlsplit
from uuid import UUID

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.accounts.service import set_password
from hub.db import make_sessionmaker
from hub.grants.models import ConsentGrant
from hub.oauth.models import AuthorizationCode, IssuedToken, RefreshToken
from hub.people.service import create_guardian, create_learner
from hub.providers.service import create_client, create_provider

PASSWORD = "correct horse battery"
REDIRECT = "https://app.example.org/callback"
SCOPES = ["activities:read", "badges:read", "skills:read"]


@dataclass(frozen=True)
class Guardian:
    id: UUID
    email: str
    learners: list[UUID]


@dataclass(frozen=True)
class CodeClient:
    provider_id: UUID
    client_id: str
    client_secret: str | None


async def make_guardian(engine: AsyncEngine, email: str = "parent@example.org", children: int = 1) -> Guardian:
    async with make_sessionmaker(engine)() as session, session.begin():
        guardian = await create_guardian(session=session, email=email, display_name="Pat Parent")
        await set_password(session=session, guardian_id=guardian.id, password=PASSWORD)
        ids = []
        for n in range(children):
            learner = await create_learner(session=session, given_name=f"Kid{n}", family_name="Parent",
                                           date_of_birth=date(2013, 1, 1 + n), guardian_ids=[guardian.id],
                                           today=date.today())
            ids.append(learner.id)
        return Guardian(guardian.id, email, ids)


async def make_code_client(
    engine: AsyncEngine, name: str = "Reading App", *, redirect_uris: list[str] | None = None,
    scopes: list[str] | None = None, auth_method: str = "client_secret_basic", jwks: dict | None = None,
) -> CodeClient:
    async with make_sessionmaker(engine)() as session, session.begin():
        provider = await create_provider(session=session, name=name, kind="app")
        client, secret = await create_client(
            session=session, provider_id=provider.id, name=name, scopes=scopes or SCOPES,
            redirect_uris=redirect_uris or [REDIRECT], auth_method=auth_method, jwks=jwks,
        )
        return CodeClient(provider.id, client.client_id, secret)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(client: CodeClient, challenge: str, **overrides: str | None) -> dict[str, str]:
    params = {"response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
              "scope": " ".join(SCOPES), "state": "st-123", "code_challenge": challenge, "code_challenge_method": "S256"}
    params.update(overrides)  # type: ignore[arg-type]
    return {k: v for k, v in params.items() if v is not None}


async def sign_in(http: httpx.AsyncClient, email: str = "parent@example.org", password: str = PASSWORD) -> httpx.Response:
    form = await http.get("/account/login")
    return await http.post("/account/login", data={"csrf": csrf_of(form.text), "email": email, "password": password,
                                                   "next": "/account"})


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def consent(
    http: httpx.AsyncClient, client: CodeClient, challenge: str, *, allow: list[str] | None = None,
    learner: UUID | None = None, decision: str = "approve", **overrides: str | None,
) -> httpx.Response:
    """GET the consent page (signed in), then POST the decision. Returns the POST response."""
    params = authorize_params(client, challenge, **overrides)
    shown = await http.get("/oauth/authorize", params=params)
    assert shown.status_code == 200, shown.text
    data: list[tuple[str, str]] = [("csrf", csrf_of(shown.text)), ("decision", decision), *params.items()]
    learner_value = learner or re.search(r'name="learner" value="([^"]+)"', shown.text).group(1)  # type: ignore[union-attr]
    data.append(("learner", str(learner_value)))
    for scope in allow if allow is not None else SCOPES:
        data.append(("allow", scope))
    return await http.post("/oauth/authorize", content=urlencode(data),
                           headers={"content-type": "application/x-www-form-urlencoded"})


async def get_code(http: httpx.AsyncClient, client: CodeClient, challenge: str, **kwargs) -> str:  # type: ignore[no-untyped-def]
    response = await consent(http, client, challenge, **kwargs)
    assert response.status_code == 303, response.text
    query = query_of(response.headers["location"])
    assert query["state"] == "st-123"
    return query["code"]


async def redeem(http: httpx.AsyncClient, client: CodeClient, code: str, verifier: str | None,
                 redirect_uri: str = REDIRECT, auth: tuple[str, str] | None = None) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        data["code_verifier"] = verifier
    if client.client_secret is None and auth is None:
        data["client_id"] = client.client_id
        return await http.post("/oauth/token", data=data)
    return await http.post("/oauth/token", data=data, auth=auth or (client.client_id, client.client_secret or ""))


async def counts(engine: AsyncEngine) -> dict[str, int]:
    """How many grants, codes, access-token rows and refresh tokens exist: 'nothing was issued'."""
    async with engine.connect() as conn:
        result = {}
        for name, model in (("grants", ConsentGrant), ("codes", AuthorizationCode), ("tokens", IssuedToken),
                            ("refresh", RefreshToken)):
            result[name] = (await conn.execute(select(func.count()).select_from(model))).scalar_one()
        return result


async def live_tokens(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(IssuedToken).where(IssuedToken.revoked_at.is_(None)))).scalar_one()
