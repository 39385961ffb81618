"""A family world for the portal tests: a guardian with a password, a child with a record, an app
that contributed to it and now asks for more (a pending access request)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from consent import Action
from hub.accounts.service import set_password
from hub.db import make_sessionmaker
from hub.grants.requests import request_access
from hub.grants.service import grant_access
from hub.people.service import create_guardian, create_learner
from hub.providers.service import create_client, create_provider
from hub.records.models import Activity, Badge, SkillAssessment

PASSWORD = "correct horse battery"
PSEUDONYM_KEY = bytes(range(32))
SCOPES = ["activities:contribute", "activities:read", "badges:contribute", "badges:read", "skills:contribute", "skills:read"]
ASKED = ["activities:read", "badges:read", "skills:read"]


@dataclass(frozen=True)
class World:
    guardian_id: UUID
    email: str
    learner_id: UUID
    provider_id: UUID
    school_id: UUID
    client_id: str
    client_secret: str
    request_id: UUID
    badge_ids: list[int]
    activity_ids: list[int]


def years_ago(years: int, days: int = 10) -> date:
    today = date.today()
    try:
        born = today.replace(year=today.year - years)
    except ValueError:  # 29 February
        born = today.replace(year=today.year - years, day=28)
    return born - timedelta(days=days)


async def make_world(engine: AsyncEngine, *, email: str = "pat@example.org", child: str = "Kim", age: int = 10,
                     provider: str = "Reading Buddy", activities: int = 25) -> World:
    now = datetime.now(UTC)
    async with make_sessionmaker(engine)() as session, session.begin():
        guardian = await create_guardian(session=session, email=email, display_name="Pat Parent")
        await set_password(session=session, guardian_id=guardian.id, password=PASSWORD)
        learner = await create_learner(session=session, given_name=child, family_name="Parent",
                                       date_of_birth=years_ago(age), guardian_ids=[guardian.id], today=date.today())
        org = await create_provider(session=session, name=provider, kind="app")
        client, secret = await create_client(session=session, provider_id=org.id, name=f"{provider} sync", scopes=SCOPES)
        # The app records reading activities; the school awards badges and assesses skills.
        school = await create_provider(session=session, name=f"{child}'s School", kind="school")
        for provider_id, section in ((org.id, "activities"), (school.id, "badges"), (school.id, "skills")):
            await grant_access(session=session, learner_id=learner.id, provider_id=provider_id, section=section,
                               action=Action.CONTRIBUTE, purpose="Record progress", granted_by=guardian.id,
                               now=now - timedelta(days=1), pseudonym_key=PSEUDONYM_KEY)
        base = now - timedelta(days=70)
        common = {"learner_id": learner.id, "provider_id": org.id, "content_hash": "0" * 64}
        by_school = {**common, "provider_id": school.id}
        badges = [Badge(source_id=f"b{n}", name=f"Bookworm {n}", description="Read ten books.", issuer_id="https://rb.example",
                        issuer_name=provider, awarded_at=base + timedelta(days=7 * n), evidence=[], alignments=[], **by_school)
                  for n in range(3)]
        acts = [Activity(source_id=f"a{n}", verb_id="http://adlnet.gov/expapi/verbs/completed", verb_display="completed",
                         object_id=f"https://rb.example/books/{n}", object_name=f"Book {n}",
                         timestamp=base + timedelta(days=2 * n, hours=n), **common) for n in range(activities)]
        skills = [SkillAssessment(source_id=f"s{n}", skill_label="Reading fluency", skill_key="label:reading fluency",
                                  scale_name="1-4 rubric", scale_min=1, scale_max=4, proficiency=1 + n * 0.5,
                                  assessed_at=base + timedelta(days=20 * n), **by_school) for n in range(4)]
        session.add_all([*badges, *acts, *skills])
        await session.flush()
        ask, _ = await request_access(session=session, provider_id=org.id, client_id=client.client_id,
                                      learner_id=learner.id, items=ASKED, purpose="Suggest books at the right level",
                                      duration_days=90, now=now, cooldown=timedelta(days=7), live_grants=[])
        return World(guardian.id, email, learner.id, org.id, school.id, client.client_id, secret, ask.id,
                     [b.id for b in badges], [a.id for a in acts])


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def sign_in(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Signs in; returns the session's CSRF token."""
    form = await http.get("/account/login")
    response = await http.post("/account/login", data={"csrf": csrf_of(form.text), "email": email, "password": password,
                                                       "next": "/family"})
    assert response.status_code == 303, response.text
    return csrf_of((await http.get("/family")).text)
