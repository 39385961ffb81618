"""Application factory."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from strawberry.fastapi import GraphQLRouter

import hub.models  # noqa: F401  (every table on Base.metadata, for FK resolution)
from hub.config import Settings, get_settings, key_ring, session_secret
from hub.credentials.routes import router as credentials_router
from hub.db import make_engine, make_sessionmaker
from hub.family.graphql import family_router
from hub.graphql import http as lean_graphql
from hub.graphql.context import get_context
from hub.graphql.limits import RateLimited, RateLimiter
from hub.graphql.schema import build_schema
from hub.hostapi.routes import clr_router, ob_router, privacy_router
from hub.oauth.bearer import AccessTokenVerifier
from hub.oauth.keys import SigningKeys, load_signing_keys
from hub.oauth.routes import router as oauth_router
from hub.oauth.server import KinfolioAuthorizationServer
from hub.records.crypto import KeyRing
from hub.server_timing import ServerTimingMiddleware
from hub.sqlite_wal import checkpoint_in_background, sqlite_database_file
from hub.web.accounts import router as accounts_router
from hub.web.authorize import router as authorize_router
from hub.xapi.routes import router as xapi_router
from hub.web.portal import router as portal_router
from hub.web.invitations import router as invitations_router


class JSONGraphQLRouter(GraphQLRouter):
    """GraphQL over HTTP with orjson: a 1,000-entry batch request or a 50-row page encodes and
    parses several times faster than with the standard library (BENCHMARKS.md).
    ``orjson.JSONDecodeError`` subclasses ``json.JSONDecodeError``, so bad bodies are refused
    exactly as before."""

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)


class KinfolioApp(FastAPI):
    """FastAPI, with the provider API's ``POST /graphql`` answered ahead of its middleware,
    routing and dependency injection (hub/graphql/http.py)."""

    graphql_post: Any = None  # the lean path's ASGI callable, set by create_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.graphql_post is not None and lean_graphql.handles(scope):
            await self.graphql_post(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


@dataclass
class HubState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    signing_keys: SigningKeys
    auth_server: KinfolioAuthorizationServer
    rate_limiter: RateLimiter
    keyring: KeyRing
    access_tokens: AccessTokenVerifier
    schema: Any = None  # the provider API's Strawberry schema


# The server's generation-0 threshold (CPython's default is 700 allocations).
SERVER_GC_THRESHOLDS = (10_000, 10, 10)


def freeze_startup_heap() -> None:
    """Move every object alive now out of the cyclic garbage collector's reach (``gc.freeze``),
    and collect the youngest generation every 10,000 container allocations instead of 700.

    A server process holds a large, long-lived heap (modules, the GraphQL schema, SQLAlchemy's
    metadata and caches) that every full (generation 2) collection walked again, and a
    1,000-entry batch allocates enough surviving containers to trigger one every few requests:
    ~25 ms per PostgreSQL ingest request, about half its CPU (BENCHMARKS.md, fifth session, 1).
    Frozen objects are still freed by reference counting; only cycles among them are never
    collected, which for objects built once at startup is what we want. Unreferenced objects are
    collected first, so no garbage is frozen.

    A request's objects are freed by reference counting (it makes no cycles:
    tests/hub/test_request_garbage.py), so a young collection finds nothing to free, and only
    walks, and ages, the objects of the requests in flight. At 700 that was 662 collections per
    1,000 profile reads, 5.5 % of the server's CPU with the older generations they fed; at
    10,000, none (``python -m bench.gc_share``, BENCHMARKS.md, fourteenth session): the count
    of young objects only grows with what outlives a request.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVER_GC_THRESHOLDS)


def create_app(
    settings: Settings | None = None, engine: AsyncEngine | None = None, *, server_process: bool = False
) -> KinfolioApp:
    """The hub. ``server_process``: this app is its process's server (``hub.asgi`` sets it): the
    startup heap is frozen, and on SQLite the WAL is checkpointed by a background thread
    (hub/sqlite_wal.py). Tests and tools that build many apps in one process must not set it
    (their frozen apps would stay in memory)."""
    settings = settings or get_settings()
    own_engine = engine is None
    wal_checkpointed = sqlite_database_file(settings.resolved_database_url) if server_process and own_engine else None
    engine = engine or make_engine(settings.resolved_database_url, pool_size=settings.database_pool_size,
                                  plan_cache_mode=settings.database_plan_cache_mode,
                                  sqlite_checkpoints_in_background=wal_checkpointed is not None)
    keys = load_signing_keys(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if settings.embedded_worker:  # connectors' scheduler in this process (connectors/schedule.py)
            from connectors.schedule import worker_loop

            stop = asyncio.Event()
            worker = asyncio.create_task(worker_loop(sessions=make_sessionmaker(engine), poll_seconds=settings.worker_poll_seconds, stop=stop))
        checkpointer = None
        if wal_checkpointed is not None:
            stop_checkpoints = asyncio.Event()
            checkpointer = asyncio.create_task(checkpoint_in_background(wal_checkpointed, stop_checkpoints))
        if server_process:
            freeze_startup_heap()
        yield
        if worker is not None:
            stop.set()
            await worker
        if checkpointer is not None:
            stop_checkpoints.set()
            await checkpointer
        if own_engine:
            await engine.dispose()

    app = KinfolioApp(title="Kinfolio", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.hub = HubState(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        signing_keys=keys,
        auth_server=KinfolioAuthorizationServer(settings, keys),
        rate_limiter=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst),
        keyring=key_ring(settings),
        access_tokens=AccessTokenVerifier(keys, issuer=settings.issuer, audience=settings.audience),
    )

    @app.exception_handler(RateLimited)
    async def rate_limited(_request: Request, exc: RateLimited) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=429, headers={"Retry-After": str(exc.retry_after)})

    # Family sign-in sessions: signed cookie, HttpOnly (Starlette's default), SameSite=Lax,
    # Secure whenever the issuer is https.
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings),
        session_cookie="kinfolio_session",
        max_age=settings.session_max_age_seconds,
        same_site="lax",
        https_only=settings.uses_tls,
    )
    if settings.server_timing:
        app.add_middleware(ServerTimingMiddleware)  # outside the session middleware: times it too
    # First: routes are tried in order, and the provider API is the hot path (with this last,
    # each of its requests was first compared with every other route: ~0.1 ms of CPU each). Its
    # JSON POSTs are answered before any route (graphql_post below); the rest come here.
    schema = build_schema(settings)
    app.state.hub.schema = schema
    app.include_router(JSONGraphQLRouter(schema, context_getter=get_context, graphql_ide=None), prefix="/graphql")

    async def answer_graphql_post(scope: Scope, receive: Receive, send: Send) -> None:
        await lean_graphql.serve(app, scope, receive, send, fallback=super(KinfolioApp, app).__call__)

    app.graphql_post = ServerTimingMiddleware(answer_graphql_post) if settings.server_timing else answer_graphql_post
    app.include_router(oauth_router)
    app.include_router(credentials_router)
    app.include_router(authorize_router)
    app.include_router(accounts_router)
    app.include_router(xapi_router)  # connectors: LRS-compatible push (hub/xapi/routes.py)
    app.include_router(family_router(), prefix="/family/graphql")  # the signed-in family's own view
    # Before the portal: its catch-all answers every other /family path with 404.
    app.include_router(invitations_router)  # guardian invitations from roster imports
    app.include_router(portal_router)
    app.include_router(ob_router)  # 1EdTech Host API: Open Badges 3.0 §6 (hub/hostapi/)
    app.include_router(clr_router)  # 1EdTech Host API: CLR 2.0 §6
    app.include_router(privacy_router)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
