"""Validating access tokens presented to the API (RFC 6750 bearer usage, RFC 9068 §4).

Every check here fails closed with a ``BearerError`` that renders the RFC 6750 §3
``WWW-Authenticate`` challenge; nothing a client sends can turn into a 500.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from uuid import UUID

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.oauth.keys import ALGORITHM
from hub.oauth.models import IssuedToken
from hub.providers.models import OAuthClient

REALM = "kinfolio"
# Clock skew tolerated on exp/iat between replicas.
LEEWAY_SECONDS = 5


class BearerError(Exception):
    """An RFC 6750 §3.1 error: 401 ``invalid_token``/no credentials, 403 ``insufficient_scope``."""

    def __init__(self, status: int, error: str | None, description: str | None = None) -> None:
        super().__init__(description or error or "authentication required")
        self.status = status
        self.error = error
        self.description = description

    @property
    def challenge(self) -> str:
        parts = [f'Bearer realm="{REALM}"']
        if self.error:
            parts.append(f'error="{self.error}"')
        if self.description:
            parts.append(f'error_description="{self.description}"')
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class TokenContext:
    """Who is calling: established once per request from a valid token."""

    jti: str
    client_id: str
    provider_id: UUID
    scopes: frozenset[str]
    # Tokens from the authorization-code flow are bound to the one learner the family chose;
    # None for client-credentials tokens (which reach every learner the provider has grants for).
    learner_id: UUID | None = None


def bearer_token_from_header(authorization: str | None) -> str:
    if not authorization:
        # RFC 6750 §3.1: a request without credentials gets a challenge with no error code.
        raise BearerError(401, None)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BearerError(401, "invalid_request", "expected an Authorization: Bearer <token> header")
    return token.strip()


_TOKEN_ROW = (
    select(IssuedToken.client_id, IssuedToken.provider_id, IssuedToken.scope, IssuedToken.revoked_at, IssuedToken.learner_id)
    .join(OAuthClient, OAuthClient.client_id == IssuedToken.client_id)
    .where(IssuedToken.jti == bindparam("jti"), OAuthClient.disabled_at.is_(None))
)


def verify_jwt(token: str, *, public_keys: KeySet, issuer: str, audience: str, now: float | None = None) -> dict:
    """Signature, ``typ`` and registered claims of an RFC 9068 access token."""
    invalid = BearerError(401, "invalid_token", "the access token is invalid or expired")
    try:
        # Only ES256 is accepted: this refuses "alg": "none" and algorithm confusion (RFC 8725 §3.1).
        decoded = jwt.decode(token, public_keys, algorithms=[ALGORITHM])
    except (JoseError, ValueError, KeyError, TypeError):
        raise invalid from None
    # RFC 9068 §4: the typ header MUST be "at+jwt" (or "application/at+jwt").
    if str(decoded.header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
        raise invalid
    registry = jwt.JWTClaimsRegistry(
        now=int(now if now is not None else time.time()),
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
        client_id={"essential": True},
        sub={"essential": True},
    )
    try:
        registry.validate(decoded.claims)
    except (JoseError, ValueError, TypeError):
        raise invalid from None
    return decoded.claims


async def authenticate(
    session: AsyncSession, authorization: str | None, *, public_keys: KeySet, issuer: str, audience: str
) -> TokenContext:
    claims = verify_jwt(
        bearer_token_from_header(authorization), public_keys=public_keys, issuer=issuer, audience=audience
    )
    # The token row makes revocation and client disabling take effect before `exp`. Read through
    # Core (plain columns, no ORM compile state) with a statement built once: every API request
    # pays it.
    row = (await (await session.connection()).execute(_TOKEN_ROW, {"jti": str(claims["jti"])})).one_or_none()
    if row is None or row.revoked_at is not None or row.client_id != claims["client_id"]:
        raise BearerError(401, "invalid_token", "the access token is invalid or expired")
    scopes = frozenset(row.scope.split())
    if not scopes:
        raise BearerError(403, "insufficient_scope", "the access token carries no Kinfolio scope")
    return TokenContext(
        jti=str(claims["jti"]), client_id=row.client_id, provider_id=row.provider_id, scopes=scopes,
        learner_id=row.learner_id,
    )
