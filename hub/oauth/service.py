"""Database side of the authorization server: clients, codes, refresh tokens, token rows.

Adds and flushes; never commits (the routes own the transaction).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from consent import has_live_grant
from hub.grants.models import LearnerPseudonym
from hub.grants.service import grants_between
from hub.oauth.models import AuthorizationCode, ClientAssertionJti, IssuedToken, RefreshToken
from hub.oauth.server import CodeView, RefreshView, RegisteredClient, digest
from hub.providers.models import OAuthClient


def client_view(row: OAuthClient) -> RegisteredClient:
    return RegisteredClient(
        client_id=row.client_id,
        provider_id=row.provider_id,
        client_secret_hash=row.client_secret_hash,
        allowed_scopes=frozenset(row.allowed_scopes.split()),
        grant_types=frozenset(row.grant_types.split()),
        redirect_uris=tuple(row.redirect_uris.split()),
        auth_method=row.token_endpoint_auth_method,
        jwks=row.jwks,
        name=row.name,
        client_uri=row.client_uri,
        logo_uri=row.logo_uri,
        tos_uri=row.tos_uri,
        policy_uri=row.policy_uri,
    )


async def load_client(session: AsyncSession, client_id: str | None) -> RegisteredClient | None:
    if not client_id or len(client_id) > 64:
        return None
    row = (
        await session.execute(select(OAuthClient).where(OAuthClient.client_id == client_id, OAuthClient.disabled_at.is_(None)))
    ).scalar_one_or_none()
    return None if row is None else client_view(row)


async def pairwise_of(session: AsyncSession, provider_id: UUID, learner_id: UUID) -> str | None:
    return (
        await session.execute(
            select(LearnerPseudonym.pseudonym).where(
                LearnerPseudonym.provider_id == provider_id, LearnerPseudonym.learner_id == learner_id
            )
        )
    ).scalar_one_or_none()


async def live_grant_exists(session: AsyncSession, provider_id: UUID, learner_id: UUID, now: datetime) -> bool:
    return has_live_grant(await grants_between(session=session, provider_id=provider_id, learner_id=learner_id), now)


# -- authorization codes ------------------------------------------------------------------


async def create_code(
    *, session: AsyncSession, client: RegisteredClient, redirect_uri: str, scope: str, learner_id: UUID,
    guardian_id: UUID, code_challenge: str, now: datetime, ttl_seconds: int,
) -> str:
    code = secrets.token_urlsafe(32)
    session.add(
        AuthorizationCode(
            code_hash=digest(code), client_id=client.client_id, redirect_uri=redirect_uri, scope=scope,
            learner_id=learner_id, guardian_id=guardian_id, code_challenge=code_challenge,
            family_id=secrets.token_hex(16), created_at=now, expires_at=now + timedelta(seconds=ttl_seconds),
        )
    )
    await session.flush()
    return code


async def load_code(session: AsyncSession, code: str | None, client: RegisteredClient | None) -> CodeView | None:
    if not code or len(code) > 200:
        return None
    row = await session.get(AuthorizationCode, digest(code))
    if row is None:
        return None
    provider_id = client.provider_id if client is not None and client.client_id == row.client_id else None
    if provider_id is None:
        owner = (await session.execute(select(OAuthClient.provider_id).where(OAuthClient.client_id == row.client_id))).scalar_one()
        provider_id = owner
    return CodeView(
        code_hash=row.code_hash, client_id=row.client_id, redirect_uri=row.redirect_uri, scope=row.scope,
        learner_id=row.learner_id, pairwise_id=await pairwise_of(session, provider_id, row.learner_id) or "",
        family_id=row.family_id, code_challenge=row.code_challenge, expires_at=row.expires_at, used_at=row.used_at,
    )


async def claim_code(session: AsyncSession, code: CodeView, now: datetime) -> bool:
    """Mark the code used; False if another request used it first (single use, RFC 6749 §4.1.2)."""
    result = await session.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.code_hash == code.code_hash, AuthorizationCode.used_at.is_(None))
        .values(used_at=now)
    )
    return result.rowcount == 1


# -- refresh tokens -----------------------------------------------------------------------


async def load_refresh(session: AsyncSession, token: str | None, now: datetime) -> tuple[RefreshView | None, RefreshToken | None]:
    if not token or len(token) > 200:
        return None, None
    row = await session.get(RefreshToken, digest(token))
    if row is None:
        return None, None
    view = RefreshView(
        token_hash=row.token_hash, family_id=row.family_id, client_id=row.client_id, learner_id=row.learner_id,
        pairwise_id=await pairwise_of(session, row.provider_id, row.learner_id) or "", scope=row.scope,
        expires_at=row.expires_at, used_at=row.used_at, revoked_at=row.revoked_at,
        grant_live=await live_grant_exists(session, row.provider_id, row.learner_id, now),
    )
    return view, row


async def claim_refresh(session: AsyncSession, token: RefreshView, now: datetime) -> bool:
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.token_hash == token.token_hash, RefreshToken.used_at.is_(None), RefreshToken.revoked_at.is_(None))
        .values(used_at=now)
    )
    return result.rowcount == 1


async def revoke_family(session: AsyncSession, family_id: str, now: datetime) -> None:
    """Revoke every access and refresh token issued from one authorization (RFC 9700 §4.14.2)."""
    await session.execute(
        update(IssuedToken).where(IssuedToken.family_id == family_id, IssuedToken.revoked_at.is_(None)).values(revoked_at=now)
    )
    await session.execute(
        update(RefreshToken).where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None)).values(revoked_at=now)
    )


# -- token rows ---------------------------------------------------------------------------


def record_access_token(
    session: AsyncSession, claims: dict, client: RegisteredClient, *, learner_id: UUID | None, family_id: str | None
) -> None:
    session.add(
        IssuedToken(
            jti=claims["jti"], client_id=claims["client_id"], provider_id=client.provider_id, scope=claims.get("scope", ""),
            issued_at=datetime.fromtimestamp(claims["iat"], UTC), expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            learner_id=learner_id, family_id=family_id,
        )
    )


def record_refresh_token(
    session: AsyncSession, token: str, client: RegisteredClient, *, learner_id: UUID, family_id: str, scope: str,
    now: datetime, ttl_seconds: int,
) -> None:
    session.add(
        RefreshToken(
            token_hash=digest(token), family_id=family_id, client_id=client.client_id, provider_id=client.provider_id,
            learner_id=learner_id, scope=scope, issued_at=now, expires_at=now + timedelta(seconds=ttl_seconds),
        )
    )


async def seen_assertion_jtis(session: AsyncSession, client_id: str | None, jti: str | None) -> frozenset[str]:
    if not client_id or not jti:
        return frozenset()
    found = await session.get(ClientAssertionJti, (client_id, jti))
    return frozenset([jti]) if found is not None else frozenset()


def record_assertion_jti(session: AsyncSession, accepted: tuple[str, str, int] | None) -> None:
    if accepted is not None:
        client_id, jti, exp = accepted
        session.add(ClientAssertionJti(client_id=client_id, jti=jti, expires_at=datetime.fromtimestamp(exp, UTC)))


def jwks_json(jwks: dict | str | None) -> str | None:
    if jwks is None:
        return None
    return jwks if isinstance(jwks, str) else json.dumps(jwks)


def redirect_uris_text(uris: Iterable[str]) -> str:
    return " ".join(uris)
