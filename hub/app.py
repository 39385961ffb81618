"""Application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.middleware.sessions import SessionMiddleware
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from strawberry.fastapi import GraphQLRouter

import hub.models  # noqa: F401  (every table on Base.metadata, for FK resolution)
from hub.config import Settings, get_settings, session_secret
from hub.credentials.routes import router as credentials_router
from hub.db import make_engine, make_sessionmaker
from hub.graphql.context import get_context
from hub.graphql.schema import build_schema
from hub.oauth.keys import SigningKeys, load_signing_keys
from hub.oauth.routes import router as oauth_router
from hub.oauth.server import KinfolioAuthorizationServer
from hub.web.accounts import router as accounts_router
from hub.web.authorize import router as authorize_router
from hub.web.portal import router as portal_router


@dataclass
class HubState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    signing_keys: SigningKeys
    auth_server: KinfolioAuthorizationServer


def create_app(settings: Settings | None = None, engine: AsyncEngine | None = None) -> FastAPI:
    settings = settings or get_settings()
    own_engine = engine is None
    engine = engine or make_engine(settings.resolved_database_url, pool_size=settings.database_pool_size)
    keys = load_signing_keys(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if own_engine:
            await engine.dispose()

    app = FastAPI(title="Kinfolio", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.hub = HubState(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        signing_keys=keys,
        auth_server=KinfolioAuthorizationServer(settings, keys),
    )
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
    app.include_router(oauth_router)
    app.include_router(credentials_router)
    app.include_router(authorize_router)
    app.include_router(accounts_router)
    app.include_router(portal_router)
    app.include_router(
        GraphQLRouter(build_schema(settings), context_getter=get_context, graphql_ide=None), prefix="/graphql"
    )

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
