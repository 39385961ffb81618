"""Issued access tokens.

RFC 9068 tokens are self-contained, but a token row (keyed by ``jti``) is what makes a token
revocable (RFC 7009) and lets introspection (RFC 7662) answer ``active: false``; the API checks
it on every call with one primary-key lookup.

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
