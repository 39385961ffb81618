"""OAuth endpoints: token (RFC 6749 §3.2), revocation (RFC 7009), introspection (RFC 7662),
dynamic client registration (RFC 7591), JWKS, and server metadata (RFC 8414).

The authorization endpoint, which needs the family's session and a consent page, is in
``hub.web.authorize``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from joserfc import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from consent.sections import supported_scopes
from hub.accounts.service import count_events, record_event
from hub.db import utcnow
from hub.oauth import registration
from hub.oauth import service as oauth_service
from hub.oauth.bearer import BearerError, verify_jwt
from hub.oauth.keys import ALGORITHM
from hub.oauth.models import IssuedToken, RefreshToken
from hub.oauth.server import CLIENT_ASSERTION_ALGORITHMS, TOKEN_ENDPOINT_AUTH_METHODS, FormRequest, Prefetched, RegisteredClient, assertion_jti, digest
from hub.providers.models import OAuthClient

router = APIRouter(tags=["oauth"])

# RFC 6749 §5.1: token responses must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers={**NO_STORE, **(headers or {})})


async def _read_form(request: Request) -> dict[str, str] | JSONResponse:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        # RFC 6749 §3.2, RFC 7009 §2.1, RFC 7662 §2.1: parameters travel form-encoded in the body.
        return _oauth_error(400, "invalid_request", "send parameters as application/x-www-form-urlencoded")
    form = await request.form()
    # RFC 6749 §3.2: request parameters MUST NOT be included more than once.
    repeated = sorted({key for key in form if len(form.getlist(key)) > 1})
    if repeated:
        return _oauth_error(400, "invalid_request", f"parameters repeated: {', '.join(repeated)}")
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def _prefetch(session: AsyncSession, server: Any, form: dict[str, str], headers: Any) -> Prefetched:
    client_id = server.claimed_client_id(form, headers)
    return Prefetched(
        client=await oauth_service.load_client(session, client_id),
        seen_assertion_jtis=await oauth_service.seen_assertion_jtis(session, client_id, assertion_jti(form)),
    )


@router.post("/oauth/token")
async def token(request: Request) -> JSONResponse:
    hub = request.app.state.hub
    form = await _read_form(request)
    if isinstance(form, JSONResponse):
        return form
    server = hub.auth_server
    now = utcnow()
    async with hub.sessions() as session:
        prefetched = await _prefetch(session, server, form, request.headers)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            prefetched.code = await oauth_service.load_code(session, form.get("code"), prefetched.client)
        elif grant_type == "refresh_token":
            prefetched.refresh, _ = await oauth_service.load_refresh(session, form.get("refresh_token"), now)
        status, body, headers, oauth_request = server.token_response(form, request.headers, prefetched)
        if status == 200:
            body = await _persist_issued(session, hub, oauth_request, prefetched.client, now)
            if body is None:
                status, body = 400, {"error": "invalid_grant", "error_description": "the grant was already used"}
        else:
            code, refresh = prefetched.code, prefetched.refresh
            if code is not None and code.used_at is not None:
                # RFC 6749 §4.1.2 / RFC 9700 §4.2.4: a code used twice revokes every token issued from it.
                await oauth_service.revoke_family(session, code.family_id, now)
            if refresh is not None and refresh.used_at is not None:
                # RFC 9700 §4.14.2: a rotated-out refresh token presented again means it leaked;
                # revoke the whole family (the attacker's and the legitimate client's tokens).
                await oauth_service.revoke_family(session, refresh.family_id, now)
        await session.commit()
    return JSONResponse(body, status_code=status, headers={**headers, **NO_STORE})


async def _persist_issued(
    session: AsyncSession, hub: Any, oauth_request: FormRequest, client: RegisteredClient | None, now: Any
) -> dict | None:
    """Record what Authlib issued; None when a concurrent request claimed the same code/refresh token."""
    assert client is not None and oauth_request.issued_token is not None
    issued = dict(oauth_request.issued_token)
    claims = jwt.decode(issued["access_token"], hub.signing_keys.public, algorithms=[ALGORITHM]).claims
    oauth_service.record_assertion_jti(session, oauth_request.accepted_assertion)
    settings = hub.settings
    code, rotated = oauth_request.used_code, oauth_request.rotated_refresh
    if code is not None or rotated is not None:
        source = code if code is not None else rotated
        assert source is not None
        claimed = (
            await oauth_service.claim_code(session, code, now) if code is not None
            else await oauth_service.claim_refresh(session, rotated, now)  # type: ignore[arg-type]
        )
        if not claimed:
            await oauth_service.revoke_family(session, source.family_id, now)
            return None
        oauth_service.record_access_token(session, claims, client, learner_id=source.learner_id, family_id=source.family_id)
        if "refresh_token" in issued:
            # The refresh token keeps the scope the family granted, even when this access token
            # was narrowed: refresh never widens scope (RFC 6749 §6) and narrowing is per request.
            oauth_service.record_refresh_token(
                session, issued["refresh_token"], client, learner_id=source.learner_id, family_id=source.family_id,
                scope=source.scope, now=now, ttl_seconds=settings.refresh_token_ttl_seconds,
            )
        # The learner's pairwise id for this provider, and the scopes actually granted.
        issued["learner"] = source.pairwise_id
    else:
        oauth_service.record_access_token(session, claims, client, learner_id=None, family_id=None)
    issued["scope"] = claims.get("scope", "")
    return issued


async def _client_and_token(session: Any, hub: Any, endpoint: str, form: Any, headers: Any) -> Any:
    """Authenticate the client of a revocation or introspection call and take its ``token``.

    Returns ``(client, token)`` or the error response to send.
    """
    prefetched = await _prefetch(session, hub.auth_server, form, headers)
    client, oauth_request = hub.auth_server.authenticate_for(endpoint, form, headers, prefetched)
    if client is None:
        return _oauth_error(401, "invalid_client", "client authentication failed",
                            {"WWW-Authenticate": 'Basic realm="kinfolio"'})
    token_value = form.get("token")
    if not token_value:
        return _oauth_error(400, "invalid_request", "missing 'token'")
    oauth_service.record_assertion_jti(session, oauth_request.accepted_assertion)
    return client, token_value


# -- RFC 7009 revocation --------------------------------------------------------------------


@router.post("/oauth/revoke")
async def revoke(request: Request) -> JSONResponse:
    hub = request.app.state.hub
    form = await _read_form(request)
    if isinstance(form, JSONResponse):
        return form
    now = utcnow()
    async with hub.sessions() as session:
        # RFC 7009 §2.1: the client must authenticate (a public client identifies itself).
        authenticated = await _client_and_token(session, hub, "revoke", form, request.headers)
        if isinstance(authenticated, JSONResponse):
            return authenticated
        client, token_value = authenticated
        # The hint only orders the search (RFC 7009 §2.1): both kinds are tried.
        refresh = await session.get(RefreshToken, digest(token_value)) if len(token_value) <= 200 else None
        if refresh is not None and refresh.client_id == client.client_id:
            # RFC 7009 §2.1: revoking a refresh token also invalidates the access tokens of the same grant.
            await oauth_service.revoke_family(session, refresh.family_id, now)
        else:
            claims = _access_token_claims(hub, token_value)
            if claims is not None:
                row = await session.get(IssuedToken, str(claims["jti"]))
                if row is not None and row.client_id == client.client_id and row.revoked_at is None:
                    row.revoked_at = now
        await session.commit()
    # RFC 7009 §2.2: 200 whether or not the token was valid, known, or this client's.
    return JSONResponse({}, status_code=200, headers=NO_STORE)


def _access_token_claims(hub: Any, token_value: str) -> dict | None:
    settings = hub.settings
    try:
        return verify_jwt(token_value, public_keys=hub.signing_keys.public, issuer=settings.issuer, audience=settings.audience)
    except BearerError:
        return None


# -- RFC 7662 introspection -------------------------------------------------------------------


@router.post("/oauth/introspect")
async def introspect(request: Request) -> JSONResponse:
    hub = request.app.state.hub
    form = await _read_form(request)
    if isinstance(form, JSONResponse):
        return form
    now = utcnow()
    async with hub.sessions() as session:
        # RFC 7662 §2.1: the endpoint requires authorization (public clients cannot have it).
        authenticated = await _client_and_token(session, hub, "introspect", form, request.headers)
        if isinstance(authenticated, JSONResponse):
            return authenticated
        client, token_value = authenticated
        body = await _introspection(session, hub, client, token_value, now)
        await session.commit()
    return JSONResponse(body, headers=NO_STORE)


async def _introspection(session: AsyncSession, hub: Any, client: RegisteredClient, token_value: str, now: Any) -> dict:
    inactive = {"active": False}
    # A client may only learn about tokens of its own provider (RFC 7662 §4: no token scanning).
    refresh = await session.get(RefreshToken, digest(token_value)) if len(token_value) <= 200 else None
    if refresh is not None:
        if (
            refresh.provider_id != client.provider_id
            or refresh.used_at is not None
            or refresh.revoked_at is not None
            or refresh.expires_at <= now
            or not await oauth_service.live_grant_exists(session, refresh.provider_id, refresh.learner_id, now)
        ):
            return inactive
        return {"active": True, "token_type": "refresh_token", "scope": refresh.scope, "client_id": refresh.client_id,
                "exp": int(refresh.expires_at.timestamp()), "iat": int(refresh.issued_at.timestamp())}
    claims = _access_token_claims(hub, token_value)
    if claims is None:
        return inactive
    row = (
        await session.execute(
            select(IssuedToken).join(OAuthClient, OAuthClient.client_id == IssuedToken.client_id)
            .where(IssuedToken.jti == str(claims["jti"]), OAuthClient.disabled_at.is_(None))
        )
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None or row.provider_id != client.provider_id:
        return inactive
    if row.learner_id is not None and not await oauth_service.live_grant_exists(session, row.provider_id, row.learner_id, now):
        # The family revoked the grant behind the token: inactive, whatever exp says.
        return inactive
    return {"active": True, "token_type": "Bearer", "scope": row.scope, "client_id": row.client_id,
            "sub": claims["sub"], "aud": claims["aud"], "iss": claims["iss"], "exp": claims["exp"],
            "iat": claims["iat"], "jti": claims["jti"]}


# -- RFC 7591 dynamic registration ------------------------------------------------------------


REGISTRATION_WINDOW = timedelta(hours=1)


@router.post("/oauth/register")
async def register(request: Request) -> JSONResponse:
    hub = request.app.state.hub
    now = utcnow()
    source = request.client.host if request.client else "unknown"
    async with hub.sessions() as session:
        # Rate limited per source address: with no initial access token (1EdTech OB 3.0 profile),
        # anyone may register, so the number of registrations is what is bounded.
        recent = await count_events(session=session, bucket="register", key=source, since=now - REGISTRATION_WINDOW)
        if recent >= hub.settings.registrations_per_hour:
            return _oauth_error(429, "too_many_requests", "too many registrations from this address; try later",
                                {"Retry-After": str(int(REGISTRATION_WINDOW.total_seconds()))})
        await record_event(session=session, bucket="register", key=source, now=now)
        await session.commit()
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _oauth_error(400, "invalid_client_metadata", "send the metadata as application/json (RFC 7591 §3.1)")
        raw = await request.body()
        if len(raw) > 20_000:
            return _oauth_error(400, "invalid_client_metadata", "metadata document too large")
        try:
            metadata = registration.validate(raw)
        except registration.RegistrationError as error:
            return _oauth_error(400, error.error, str(error))
        response = await registration.register(session=session, metadata=metadata, now=now)
        await session.commit()
    return JSONResponse(response, status_code=201, headers=NO_STORE)


# -- keys and metadata --------------------------------------------------------------------


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.hub.signing_keys.public_jwks(), headers={"Cache-Control": "max-age=300"})


@router.get("/.well-known/oauth-authorization-server")
async def metadata(request: Request) -> JSONResponse:
    settings = request.app.state.hub.settings
    base = settings.issuer.rstrip("/")
    confidential = [m for m in TOKEN_ENDPOINT_AUTH_METHODS if m != "none"]
    # RFC 8414 §2.
    return JSONResponse(
        {
            "issuer": settings.issuer,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "registration_endpoint": f"{base}/oauth/register",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "introspection_endpoint": f"{base}/oauth/introspect",
            "scopes_supported": supported_scopes(),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": list(TOKEN_ENDPOINT_AUTH_METHODS),
            "token_endpoint_auth_signing_alg_values_supported": list(CLIENT_ASSERTION_ALGORITHMS),
            "revocation_endpoint_auth_methods_supported": list(TOKEN_ENDPOINT_AUTH_METHODS),
            "introspection_endpoint_auth_methods_supported": confidential,
            "authorization_response_iss_parameter_supported": True,
        }
    )
