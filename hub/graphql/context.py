"""Per-request GraphQL context: one session, the caller's token, the consent gate."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any
from uuid import UUID

from fastapi import HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from hub.config import Settings
from hub.db import utcnow
from hub.frameworks.service import ItemView
from hub.grants.enforce import ProviderAccess
from hub.graphql.limits import RateLimited
from hub.oauth.bearer import BearerError, TokenContext, authenticate
from hub.records.crypto import UnreadableData
from hub.records.service import Page, PageQuery, list_pages
from hub.records.keys import DataKeys


class SessionGate:
    """A request's one AsyncSession, lent to one resolver at a time: sibling resolvers run
    concurrently, and an AsyncSession must not be used by two at once."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def db(self) -> AsyncIterator[AsyncSession]:
        async with self._lock:
            yield self.session


@dataclass
class Context(BaseContext):
    """A provider request's context.

    Nothing it holds refers back to it (the loaders hold the ``SessionGate``, not the context): a
    reference cycle through the context kept the request's whole object graph, rows included,
    alive until the cyclic garbage collector found it, which then cost ~13 % of the server's CPU
    (BENCHMARKS.md, fourteenth session). Without cycles, reference counting frees it all when
    the request ends.
    """

    settings: Settings
    token: TokenContext
    access: ProviderAccess
    # Learners' data keys for the sensitive sections, each unwrapped at most once per request.
    data_keys: DataKeys
    _session: AsyncSession
    gate: SessionGate = field(init=False)

    def __post_init__(self) -> None:
        super().__init__()
        self.gate = SessionGate(self._session)

    def db(self) -> AbstractAsyncContextManager[AsyncSession]:
        """``async with context.db() as session``: the request's session, to this resolver alone."""
        return self.gate.db()

    @cached_property
    def pages(self) -> DataLoader[tuple[PageQuery, UUID], Page]:
        """Per-request loader: pages requested in the same tick are fetched one statement per shape."""
        return DataLoader(load_fn=partial(_load_pages, self.gate, self.data_keys))

    @cached_property
    def framework_items(self) -> DataLoader[tuple[str, str], ItemView | None]:
        """Per-request loader: every skill's CASE item on a page in one batch (no N+1)."""
        from hub.graphql.frameworks import item_loader

        return item_loader(self.gate)

    async def commit(self) -> None:
        async with self.gate.db() as session:
            await session.commit()


async def _load_pages(gate: SessionGate, data_keys: DataKeys, keys: list[tuple[PageQuery, UUID]]) -> list[Page | UnreadableData]:
    by_spec: dict[PageQuery, list[UUID]] = {}
    for spec, learner_id in keys:
        by_spec.setdefault(spec, []).append(learner_id)
    # A sealed page that cannot be opened comes back as its UnreadableData: that field alone fails.
    found: dict[tuple[PageQuery, UUID], Page | UnreadableData] = {}
    async with gate.db() as session:
        for spec, learner_ids in by_spec.items():
            pages = await list_pages(session=session, spec=spec, learner_ids=list(dict.fromkeys(learner_ids)),
                                     data_keys=data_keys)
            found.update({(spec, i): page for i, page in pages.items()})
    return [found[key] for key in keys]


@asynccontextmanager
async def provider_context(hub: Any, authorization: str | None) -> AsyncIterator[Context]:
    """The context of one provider request, with its session open; raises ``BearerError`` for a
    missing or refused token and ``RateLimited`` past the client's rate."""
    async with hub.sessions() as session:
        token = await authenticate(session, authorization, hub.access_tokens)
        wait = hub.rate_limiter.take(token.client_id)
        if wait is not None:
            raise RateLimited(max(1, math.ceil(wait)))
        yield Context(
            settings=hub.settings,
            token=token,
            access=ProviderAccess(
                session=session, token=token, now=utcnow(), bypass_consent=hub.settings.benchmark_bypass_consent
            ),
            data_keys=DataKeys(hub.keyring),
            _session=session,
        )


async def get_context(request: Request) -> AsyncIterator[Context]:
    try:
        async with provider_context(request.app.state.hub, request.headers.get("authorization")) as context:
            yield context
    except BearerError as error:
        raise HTTPException(
            status_code=error.status,
            detail=error.detail,
            headers={"WWW-Authenticate": error.challenge},
        ) from None
