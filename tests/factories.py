"""Building blocks for tests: families, providers with clients, grants, tokens, GraphQL calls."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from consent import Action
from consent.pseudonyms import pairwise_id
from hub.db import make_sessionmaker
from hub.grants.service import grant_access, revoke_access
from hub.people.service import create_guardian, create_learner
from hub.providers.service import create_client, create_provider
from tests.conftest import PSEUDONYM_KEY


@dataclass(frozen=True)
class Family:
    guardian_id: UUID
    learner_id: UUID


@dataclass(frozen=True)
class ProviderClient:
    provider_id: UUID
    client_id: str
    client_secret: str


async def make_family(engine: AsyncEngine, email: str = "parent@example.org", dob: date = date(2012, 5, 1)) -> Family:
    async with make_sessionmaker(engine)() as session, session.begin():
        guardian = await create_guardian(session=session, email=email, display_name="A Parent")
        learner = await create_learner(
            session=session, given_name="Kim", family_name="Learner", date_of_birth=dob,
            guardian_ids=[guardian.id], today=date.today(),
        )
        return Family(guardian_id=guardian.id, learner_id=learner.id)


async def make_provider(engine: AsyncEngine, name: str, scopes: list[str]) -> ProviderClient:
    async with make_sessionmaker(engine)() as session, session.begin():
        provider = await create_provider(session=session, name=name, kind="app")
        client, secret = await create_client(session=session, provider_id=provider.id, name=f"{name} sync", scopes=scopes)
        return ProviderClient(provider_id=provider.id, client_id=client.client_id, client_secret=secret)


async def grant(
    engine: AsyncEngine, family: Family, provider: ProviderClient, section: str, action: Action,
    *, expires_at: datetime | None = None, granted_at: datetime | None = None,
) -> UUID:
    async with make_sessionmaker(engine)() as session, session.begin():
        row, _ = await grant_access(
            session=session, learner_id=family.learner_id, provider_id=provider.provider_id, section=section,
            action=action, purpose="testing", granted_by=family.guardian_id,
            now=granted_at or datetime.now(UTC) - timedelta(seconds=1), expires_at=expires_at,
            pseudonym_key=PSEUDONYM_KEY,
        )
        return row.id


async def revoke(engine: AsyncEngine, family: Family, provider: ProviderClient, section: str | None = None) -> int:
    async with make_sessionmaker(engine)() as session, session.begin():
        return await revoke_access(
            session=session, learner_id=family.learner_id, provider_id=provider.provider_id,
            revoked_by=family.guardian_id, now=datetime.now(UTC), section=section,
        )


def learner_id_for(family: Family, provider: ProviderClient) -> str:
    """The pairwise id under which ``provider`` knows the family's learner."""
    return pairwise_id(PSEUDONYM_KEY, provider.provider_id, family.learner_id)


async def get_token(http: httpx.AsyncClient, provider: ProviderClient, scope: str | None = None) -> str:
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    response = await http.post("/oauth/token", data=data, auth=(provider.client_id, provider.client_secret))
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


async def gql(http: httpx.AsyncClient, token: str | None, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)


def activity(n: int, *, when: datetime | None = None, verb: str = "completed", **extra: Any) -> dict[str, Any]:
    base = when or datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "sourceId": f"act-{n}",
        "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}", "display": verb},
        "object": {"id": f"https://app.example.org/lessons/{n % 17}", "name": f"Lesson {n % 17}",
                   "type": "http://adlnet.gov/expapi/activities/lesson"},
        "timestamp": (base + timedelta(minutes=n)).isoformat(),
        **extra,
    }


def badge(n: int) -> dict[str, Any]:
    return {
        "sourceId": f"badge-{n}",
        "achievement": {
            "id": f"https://club.example.org/achievements/{n}", "name": f"Badge {n}",
            "description": "For doing a thing well.", "criteria": {"narrative": "Did the thing."},
            "alignments": [{"targetName": "Teamwork", "targetUrl": "https://case.example.org/items/teamwork"}],
        },
        "issuer": {"id": "https://club.example.org/issuer", "name": "The Club"},
        "awardedDate": (datetime(2026, 2, 1, tzinfo=UTC) + timedelta(days=n)).isoformat(),
    }


def skill(n: int, level: float, label: str = "Collaboration") -> dict[str, Any]:
    return {
        "sourceId": f"skill-{label}-{n}",
        "skill": {"label": label},
        "scale": {"name": "1-4 rubric", "min": 1, "max": 4},
        "proficiency": level,
        "assessedAt": (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=30 * n)).isoformat(),
    }


RECORD_ACTIVITIES = """
mutation($learner: ID!, $items: [ActivityInput!]!) {
  recordActivities(learnerId: $learner, activities: $items) { received created updated unchanged }
}"""

CONTRIBUTE_BADGES = """
mutation($learner: ID!, $items: [BadgeInput!]!) {
  contributeBadges(learnerId: $learner, badges: $items) { received created updated unchanged }
}"""

CONTRIBUTE_SKILLS = """
mutation($learner: ID!, $items: [SkillInput!]!) {
  contributeSkills(learnerId: $learner, skills: $items) { received created updated unchanged }
}"""


@contextmanager
def statements_during(engine: AsyncEngine) -> Iterator[list[str]]:
    """Collect the SQL statements the engine executes inside the block."""
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
