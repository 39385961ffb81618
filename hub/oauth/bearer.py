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

import hub.models  # noqa: F401  (every table before _TOKEN_ROW is built: see hub.grants.service)
from hub.db import session_connection
from hub.direct_rows import fetch_plain_rows
from hub.oauth.keys import ALGORITHM, SigningKeys
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
    def detail(self) -> dict[str, str]:
        """The JSON error object the API answers with, beside the challenge."""
        return {"error": self.error or "unauthorized", "error_description": str(self)}

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


class AccessTokenVerifier:
    """``verify_jwt`` for this hub's keys, issuer and audience, remembering tokens it has verified.

    Checking a token's ES256 signature and claims was ~6 % of a minimal API request's CPU
    (BENCHMARKS.md, fifth session, 2), repeated for the same token on every request of a sync
    job. For one token string and one set of verification keys the answer can only change with
    time, at ``exp`` (``iat`` and ``nbf`` that passed once pass later), so a verified token's claims
    are kept until ``exp`` plus the leeway and are refused after it, as ``verify_jwt`` would. A
    change of the key set (rotation, retirement) forgets everything. Revocation and disabled
    clients are unaffected: ``authenticate`` reads the token row on every request. Only tokens that
    verified are kept (a forged one costs a full check every time), at most ``max_entries``,
    oldest out first.
    """

    def __init__(self, signing_keys: SigningKeys, *, issuer: str, audience: str, max_entries: int = 10_000) -> None:
        self._signing_keys = signing_keys  # `.public`: the live verification keys
        self.issuer, self.audience = issuer, audience
        self._max_entries = max_entries
        self._keys: KeySet | None = None
        self._verified: dict[str, tuple[dict, float]] = {}  # token -> (claims, valid until)

    def verify(self, token: str, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        keys = self._signing_keys.public
        if keys is not self._keys:
            self._verified.clear()
            self._keys = keys
        remembered = self._verified.get(token)
        if remembered is not None:
            claims, valid_until = remembered
            if now <= valid_until:
                return claims
            del self._verified[token]
        claims = verify_jwt(token, public_keys=keys, issuer=self.issuer, audience=self.audience, now=now)
        if len(self._verified) >= self._max_entries:
            del self._verified[next(iter(self._verified))]
        # joserfc refuses once exp < now - leeway (RFC 7519 §4.1.4 with the leeway of verify_jwt).
        self._verified[token] = (claims, float(claims["exp"]) + LEEWAY_SECONDS)
        return claims


async def authenticate(session: AsyncSession, authorization: str | None, tokens: AccessTokenVerifier) -> TokenContext:
    claims = tokens.verify(bearer_token_from_header(authorization))
    # The token row makes revocation and client disabling take effect before `exp`. Every API
    # request pays it: a statement built once, plain rows, and a read that may run on its own
    # (hub.direct_rows), so it opens no transaction for the request.
    [row] = await fetch_plain_rows(await session_connection(session), _TOKEN_ROW, {"jti": str(claims["jti"])}, alone=True) or [None]
    if row is None or row.revoked_at is not None or row.client_id != claims["client_id"]:
        raise BearerError(401, "invalid_token", "the access token is invalid or expired")
    scopes = frozenset(row.scope.split())
    if not scopes:
        raise BearerError(403, "insufficient_scope", "the access token carries no Kinfolio scope")
    return TokenContext(
        jti=str(claims["jti"]), client_id=row.client_id, provider_id=row.provider_id, scopes=scopes,
        learner_id=row.learner_id,
    )
