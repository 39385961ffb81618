"""Providers and their OAuth clients. Adds and flushes; never commits."""

from __future__ import annotations

import json
import secrets
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from consent.sections import REFERENCE_SCOPES, parse_scope
from hub.oauth.server import hash_client_secret, new_client_secret
from hub.providers.models import OAuthClient, Provider

PROVIDER_KINDS = ("school", "app", "club", "employer", "other")


async def create_provider(*, session: AsyncSession, name: str, kind: str) -> Provider:
    if kind not in PROVIDER_KINDS:
        raise ValueError(f"kind must be one of {', '.join(PROVIDER_KINDS)}")
    if (await session.execute(select(Provider.id).where(Provider.name == name))).first():
        raise ValueError(f"a provider named {name!r} already exists")
    provider = Provider(name=name.strip(), kind=kind)
    session.add(provider)
    await session.flush()
    return provider


async def get_provider_by_name(*, session: AsyncSession, name: str) -> Provider | None:
    return (await session.execute(select(Provider).where(Provider.name == name))).scalar_one_or_none()


async def create_client(
    *,
    session: AsyncSession,
    provider_id: UUID,
    name: str,
    scopes: list[str],
    client_secret: str | None = None,
    redirect_uris: list[str] | None = None,
    auth_method: str = "client_secret_basic",
    jwks: dict | None = None,
    grant_types: list[str] | None = None,
) -> tuple[OAuthClient, str | None]:
    """Register a client. Returns the row and the secret (shown once; None for public and
    private_key_jwt clients).

    Without redirect URIs the client uses client credentials only. With them it may use the
    authorization-code flow (and refresh tokens). ``auth_method`` ``none`` makes a public
    client (PKCE only, no secret, no client credentials); ``private_key_jwt`` needs ``jwks``.
    """
    from hub.oauth.registration import RegistrationError, check_url

    if not scopes:
        raise ValueError("a client needs at least one scope")
    for scope in scopes:
        if scope not in REFERENCE_SCOPES:
            parse_scope(scope)  # raises for unknown sections/actions
    if auth_method not in ("client_secret_basic", "private_key_jwt", "none"):
        raise ValueError("auth method must be client_secret_basic, private_key_jwt or none")
    redirect_uris = list(redirect_uris or [])
    try:
        for uri in redirect_uris:
            check_url(uri, "redirect URI", redirect=True)
    except RegistrationError as exc:
        raise ValueError(str(exc)) from None
    if grant_types is None:
        grant_types = ["authorization_code", "refresh_token"] if redirect_uris else ["client_credentials"]
    if not set(grant_types) <= {"authorization_code", "refresh_token", "client_credentials"}:
        raise ValueError("grant types: authorization_code, refresh_token, client_credentials")
    if "authorization_code" in grant_types and not redirect_uris:
        raise ValueError("an authorization-code client needs at least one redirect URI")
    if set(scopes) & set(REFERENCE_SCOPES) and grant_types != ["client_credentials"]:
        raise ValueError(f"{', '.join(sorted(set(scopes) & set(REFERENCE_SCOPES)))}: only for client-credentials clients")
    if auth_method == "none" and "client_credentials" in grant_types:
        raise ValueError("a public client cannot use client credentials (RFC 6749 §4.4)")
    if auth_method == "private_key_jwt":
        from joserfc.jwk import KeySet

        if not jwks:
            raise ValueError("private_key_jwt needs the client's public JWKS")
        try:
            keys = KeySet.import_key_set(jwks)
        except Exception as exc:  # noqa: BLE001 - any import problem is bad input
            raise ValueError(f"the JWKS cannot be read: {exc}") from None
        if any(key.is_private for key in keys):
            raise ValueError("register the public keys only (the JWKS contains a private key)")
    secret = None
    if auth_method == "client_secret_basic":
        secret = client_secret or new_client_secret()
    client = OAuthClient(
        client_id=f"kf_{secrets.token_hex(12)}",
        provider_id=provider_id,
        name=name,
        client_secret_hash=hash_client_secret(secret) if secret else None,
        allowed_scopes=" ".join(sorted(set(scopes))),
        grant_types=" ".join(sorted(set(grant_types))),
        redirect_uris=" ".join(redirect_uris),
        token_endpoint_auth_method=auth_method,
        jwks=json.dumps(jwks) if jwks else None,
    )
    session.add(client)
    await session.flush()
    return client, secret
