"""OAuth endpoints: token (RFC 6749 §3.2, §4.4), JWKS, and server metadata (RFC 8414)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from joserfc import jwt
from sqlalchemy import select

from consent.sections import all_scopes
from hub.oauth.keys import ALGORITHM
from hub.oauth.models import IssuedToken
from hub.oauth.server import TOKEN_ENDPOINT_AUTH_METHODS, RegisteredClient
from hub.providers.models import OAuthClient

router = APIRouter(tags=["oauth"])

# RFC 6749 §5.1: token responses must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=NO_STORE)


async def _load_client(session, client_id: str | None) -> RegisteredClient | None:  # type: ignore[no-untyped-def]
    if not client_id or len(client_id) > 64:
        return None
    row = (
        await session.execute(select(OAuthClient).where(OAuthClient.client_id == client_id, OAuthClient.disabled_at.is_(None)))
    ).scalar_one_or_none()
    if row is None:
        return None
    return RegisteredClient(
        client_id=row.client_id,
        provider_id=row.provider_id,
        client_secret_hash=row.client_secret_hash,
        allowed_scopes=frozenset(row.allowed_scopes.split()),
        grant_types=frozenset(row.grant_types.split()),
    )


@router.post("/oauth/token")
async def token(request: Request) -> JSONResponse:
    hub = request.app.state.hub
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        # RFC 6749 §4.4.2: parameters travel form-encoded in the body.
        return _oauth_error(400, "invalid_request", "send parameters as application/x-www-form-urlencoded")
    form = await request.form()
    # RFC 6749 §3.2: request parameters MUST NOT be included more than once.
    repeated = sorted({key for key in form if len(form.getlist(key)) > 1})
    if repeated:
        return _oauth_error(400, "invalid_request", f"parameters repeated: {', '.join(repeated)}")
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    server = hub.auth_server
    async with hub.sessions() as session:
        client = await _load_client(session, server.claimed_client_id(fields, request.headers))
        status, body, headers, oauth_request = server.token_response(fields, request.headers, client)
        if status == 200 and oauth_request.issued_token is not None:
            claims = jwt.decode(oauth_request.issued_token["access_token"], hub.signing_keys.public, algorithms=[ALGORITHM]).claims
            session.add(
                IssuedToken(
                    jti=claims["jti"],
                    client_id=claims["client_id"],
                    provider_id=client.provider_id,  # type: ignore[union-attr]
                    scope=claims.get("scope", ""),
                    issued_at=datetime.fromtimestamp(claims["iat"], UTC),
                    expires_at=datetime.fromtimestamp(claims["exp"], UTC),
                )
            )
            await session.commit()
    return JSONResponse(body, status_code=status, headers={**headers, **NO_STORE})


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.hub.signing_keys.public_jwks(), headers={"Cache-Control": "max-age=300"})


@router.get("/.well-known/oauth-authorization-server")
async def metadata(request: Request) -> JSONResponse:
    settings = request.app.state.hub.settings
    base = settings.issuer.rstrip("/")
    return JSONResponse(
        {
            "issuer": settings.issuer,
            "token_endpoint": f"{base}/oauth/token",
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": list(TOKEN_ENDPOINT_AUTH_METHODS),
            "scopes_supported": all_scopes(),
            "response_types_supported": [],
        }
    )
