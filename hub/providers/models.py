"""Providers (schools, apps, clubs) and their OAuth clients.

.. no_pii: organisation data only. Client secrets are stored as SHA-256 digests.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow


class Provider(Base):
    __tablename__ = "provider"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(50), default="app")  # school | app | club | ...
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OAuthClient(Base):
    """An OAuth 2.0 client (RFC 6749 §2) belonging to one provider."""

    __tablename__ = "oauth_client"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("provider.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # Client secrets are 256-bit random values, so a plain SHA-256 digest is enough to make a
    # leaked table useless; a slow password hash would only slow every token request.
    # None for public clients (RFC 6749 §2.1), which authenticate with nothing but PKCE.
    client_secret_hash: Mapped[str | None] = mapped_column(String(64))
    # Space-separated scopes this client may ask for (RFC 6749 §3.3).
    allowed_scopes: Mapped[str] = mapped_column(Text())
    grant_types: Mapped[str] = mapped_column(String(200), default="client_credentials")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # -- authorization-code clients (issue 3) --------------------------------------------
    # Space-separated; compared by exact string match (RFC 9700 §2.1).
    redirect_uris: Mapped[str] = mapped_column(Text(), default="", server_default="")
    # RFC 7591 §2: client_secret_basic | client_secret_post | private_key_jwt | none (public).
    token_endpoint_auth_method: Mapped[str] = mapped_column(
        String(40), default="client_secret_basic", server_default="client_secret_basic"
    )
    # The client's public keys for private_key_jwt (RFC 7523 §2.2), a JWKS as JSON.
    jwks: Mapped[str | None] = mapped_column(Text())
    # Shown on the consent page (RFC 7591 §2 client metadata).
    client_uri: Mapped[str | None] = mapped_column(String(2000))
    logo_uri: Mapped[str | None] = mapped_column(String(2000))
    tos_uri: Mapped[str | None] = mapped_column(String(2000))
    policy_uri: Mapped[str | None] = mapped_column(String(2000))
    software_id: Mapped[str | None] = mapped_column(String(200))
    software_version: Mapped[str | None] = mapped_column(String(100))
    # True when created by dynamic registration (RFC 7591) rather than by an operator.
    dynamically_registered: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
