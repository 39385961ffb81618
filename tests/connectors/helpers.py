"""Shared set-up for connector tests: a provider acting as a connector, linked learners, instances."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from connectors import state
from connectors.xapi.statements import canonical_actor_id
from consent import Action
from hub.db import make_sessionmaker
from hub.links.service import link_learner
from hub.records.models import Activity
from tests.conftest import ISSUER
from tests.factories import Family, ProviderClient, grant, make_family, make_provider

SECRET_ENV = "KINFOLIO_TEST_CONNECTOR_SECRET"


async def linked_family(
    engine: AsyncEngine, provider: ProviderClient, email: str, *, grant_activities: bool, system: str = "xapi",
    external_id: str | None = None,
) -> Family:
    family = await make_family(engine, email=f"parent-of-{email}")
    async with make_sessionmaker(engine)() as session, session.begin():
        await link_learner(
            session=session, provider_id=provider.provider_id, system=system,
            external_id=external_id or canonical_actor_id(f"mailto:{email}"), learner_id=family.learner_id, origin="family",
        )
    if grant_activities:
        await grant(engine, family, provider, "activities", Action.CONTRIBUTE)
    return family


async def connector_provider(engine: AsyncEngine, monkeypatch: Any, name: str = "District LRS") -> ProviderClient:
    provider = await make_provider(engine, name, ["activities:contribute", "activities:read", "badges:contribute", "skills:contribute"])
    monkeypatch.setenv(SECRET_ENV, provider.client_secret)
    return provider


def instance_config(provider: ProviderClient, source: dict[str, Any], url: str = ISSUER, **extra: Any) -> dict[str, Any]:
    return {"hub": {"url": url, "client_id": provider.client_id, "client_secret_env": SECRET_ENV}, "source": source, **extra}


async def create(engine: AsyncEngine, name: str, kind: str, config: dict[str, Any]) -> None:
    await state.create_instance(sessions=make_sessionmaker(engine), name=name, kind=kind, config=config)


def asgi_http(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)


async def activity_state(engine: AsyncEngine, provider: ProviderClient) -> tuple[int, str]:
    """Count and checksum of the provider's live activities (learner, source id, content hash);
    retracted ones are soft-deleted until the retention purge and do not count."""
    async with make_sessionmaker(engine)() as session:
        rows = (
            await session.execute(
                select(Activity.learner_id, Activity.source_id, Activity.content_hash)
                .where(Activity.provider_id == provider.provider_id, Activity.deleted_at.is_(None))
                .order_by(Activity.learner_id, Activity.source_id)
            )
        ).all()
    digest = hashlib.sha256()
    for row in rows:
        digest.update(f"{row.learner_id}|{row.source_id}|{row.content_hash}\n".encode())
    return len(rows), digest.hexdigest()


async def count_activities(engine: AsyncEngine, provider: ProviderClient) -> int:
    async with make_sessionmaker(engine)() as session:
        return (await session.execute(select(func.count()).select_from(Activity).where(
            Activity.provider_id == provider.provider_id, Activity.deleted_at.is_(None)))).scalar_one()


async def link_existing(engine: AsyncEngine, provider: ProviderClient, family: Family, email: str) -> None:
    async with make_sessionmaker(engine)() as session, session.begin():
        await link_learner(
            session=session, provider_id=provider.provider_id, system="xapi",
            external_id=canonical_actor_id(f"mailto:{email}"), learner_id=family.learner_id, origin="family",
        )
    await grant(engine, family, provider, "activities", Action.CONTRIBUTE)
