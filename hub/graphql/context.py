"""Per-request GraphQL context: one session, the caller's token, the consent gate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.fastapi import BaseContext

from hub.config import Settings
from hub.db import utcnow
from hub.grants.enforce import ProviderAccess
from hub.oauth.bearer import BearerError, TokenContext, authenticate


@dataclass
class Context(BaseContext):
    settings: Settings
    token: TokenContext
    access: ProviderAccess
    _session: AsyncSession
    # Sibling resolvers run concurrently; one AsyncSession must not be used by two at once.
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        super().__init__()

    @asynccontextmanager
    async def db(self) -> AsyncIterator[AsyncSession]:
        async with self._lock:
            yield self._session

    async def commit(self) -> None:
        async with self._lock:
            await self._session.commit()


async def get_context(request: Request) -> AsyncIterator[Context]:
    hub = request.app.state.hub
    async with hub.sessions() as session:
        try:
            token = await authenticate(
                session,
                request.headers.get("authorization"),
                public_keys=hub.signing_keys.public,
                issuer=hub.settings.issuer,
                audience=hub.settings.audience,
            )
        except BearerError as error:
            raise HTTPException(
                status_code=error.status,
                detail={"error": error.error or "unauthorized", "error_description": str(error)},
                headers={"WWW-Authenticate": error.challenge},
            ) from None
        yield Context(
            settings=hub.settings,
            token=token,
            access=ProviderAccess(
                session=session, token=token, now=utcnow(), bypass_consent=hub.settings.benchmark_bypass_consent
            ),
            _session=session,
        )
