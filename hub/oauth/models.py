"""Issued access tokens, authorization codes, refresh tokens and used client-assertion ids.

RFC 9068 tokens are self-contained, but a token row (keyed by ``jti``) is what makes a token
revocable (RFC 7009) and lets introspection (RFC 7662) answer ``active: false``; the API checks
it on every call with one primary-key lookup.

Codes and refresh tokens are random values shown once; only their SHA-256 digests are stored
(like client secrets: 256-bit random values need no slow hash).

.. no_pii: identifiers only.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow


class IssuedToken(Base):
    __tablename__ = "issued_token"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_client.client_id", ondelete="CASCADE"), index=True)
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("provider.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text())
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set for tokens from the authorization-code flow: the token is bound to this one learner
    # (the API treats every other learner as not found).
    learner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("learner.id", ondelete="CASCADE"))
    # The refresh-token family the token belongs to (one per authorization code), so a replayed
    # code or a reused refresh token can revoke everything issued from it (RFC 9700 §2.2.2, §4.14).
    family_id: Mapped[str | None] = mapped_column(String(64), index=True)


class AuthorizationCode(Base):
    """RFC 6749 §4.1.2: short-lived, single-use, bound to client, redirect URI and PKCE challenge."""

    __tablename__ = "authorization_code"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_client.client_id", ondelete="CASCADE"), index=True)
    redirect_uri: Mapped[str] = mapped_column(Text())
    scope: Mapped[str] = mapped_column(Text())
    learner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learner.id", ondelete="CASCADE"))
    guardian_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("guardian.id", ondelete="CASCADE"))
    # RFC 7636 §4.2 with method S256 only (the method is therefore not stored).
    code_challenge: Mapped[str] = mapped_column(String(128))
    family_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RefreshToken(Base):
    """An opaque refresh token. Rotated on every use; the family shares one ``family_id``."""

    __tablename__ = "refresh_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_client.client_id", ondelete="CASCADE"), index=True)
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("provider.id", ondelete="CASCADE"))
    learner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learner.id", ondelete="CASCADE"))
    # The scope granted by the family at the authorization; never widened (RFC 6749 §6).
    scope: Mapped[str] = mapped_column(Text())
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ClientAssertionJti(Base):
    """``jti`` values of accepted private_key_jwt assertions: each may be used once (RFC 7523 §3 item 7)."""

    __tablename__ = "client_assertion_jti"

    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_client.client_id", ondelete="CASCADE"), primary_key=True)
    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
