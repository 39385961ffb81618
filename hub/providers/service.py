"""Providers and their OAuth clients. Adds and flushes; never commits."""

from __future__ import annotations

import secrets
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from consent.sections import parse_scope
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
    *, session: AsyncSession, provider_id: UUID, name: str, scopes: list[str], client_secret: str | None = None
) -> tuple[OAuthClient, str]:
    """Register a client-credentials client. Returns the row and the secret (shown once)."""
    if not scopes:
        raise ValueError("a client needs at least one scope")
    for scope in scopes:
        parse_scope(scope)  # raises for unknown sections/actions
    secret = client_secret or new_client_secret()
    client = OAuthClient(
        client_id=f"kf_{secrets.token_hex(12)}",
        provider_id=provider_id,
        name=name,
        client_secret_hash=hash_client_secret(secret),
        allowed_scopes=" ".join(sorted(set(scopes))),
        grant_types="client_credentials",
    )
    session.add(client)
    await session.flush()
    return client, secret
