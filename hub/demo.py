"""A realistic demo dataset, loaded through the same consent gate providers use.

Three families, learners aged 8, 14, 17 and 19, three providers with different grants, and a
few thousand activities, skill progressions and badges. Deterministic for a given seed.
"""

from __future__ import annotations

import json
import os
import random
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from consent import Action
from consent.sections import all_scopes
from hub.grants.enforce import ProviderAccess
from hub.grants.service import grant_access
from hub.oauth.bearer import TokenContext
from hub.people import service as people
from hub.providers import service as providers
from hub.providers.models import Provider
from hub.records.service import contribute_entries
from schemas import records as r

VERBS = [
    ("http://adlnet.gov/expapi/verbs/experienced", "experienced", 40),
    ("http://adlnet.gov/expapi/verbs/attempted", "attempted", 20),
    ("http://adlnet.gov/expapi/verbs/completed", "completed", 20),
    ("http://adlnet.gov/expapi/verbs/answered", "answered", 10),
    ("http://adlnet.gov/expapi/verbs/passed", "passed", 6),
    ("http://adlnet.gov/expapi/verbs/failed", "failed", 4),
]
ACTIVITY_TYPES = [
    "http://adlnet.gov/expapi/activities/lesson",
    "http://adlnet.gov/expapi/activities/assessment",
    "http://adlnet.gov/expapi/activities/simulation",
]
SKILLS = [
    ("https://case.example.org/frameworks/math-8", "8.EE.A.1", "Work with radicals and integer exponents"),
    ("https://case.example.org/frameworks/math-8", "8.F.A.1", "Understand functions as rules"),
    (None, None, "Collaboration"),
    (None, None, "Public speaking"),
]


@dataclass(frozen=True)
class DemoClient:
    provider: str
    client_id: str
    client_secret: str
    scopes: list[str]


@dataclass(frozen=True)
class DemoCredentials:
    clients: list[DemoClient]
    # One demo family's sign-in for the portal (/account/login); generated, never a fixed password.
    family_email: str | None = None
    family_password: str | None = None


def _families(today: date) -> list[dict[str, Any]]:
    def born(years: int, days: int) -> date:
        return date(today.year - years, 1, 1) + timedelta(days=days)

    return [
        {"email": "maria.okafor@example.org", "name": "Maria Okafor",
         "children": [("Ada", "Okafor", born(8, 40)), ("Tobi", "Okafor", born(14, 200))]},
        {"email": "sam.lindqvist@example.org", "name": "Sam Lindqvist",
         "children": [("Elin", "Lindqvist", born(17, 90))]},
        {"email": "jordan.reyes@example.org", "name": "Jordan Reyes",
         "children": [("Luca", "Reyes", born(19, 10))]},
    ]


PROVIDERS = [
    ("Riverside High School", "school", ["badges:read", "badges:contribute", "skills:read", "skills:contribute", "activities:read",
                                         "pathways:contribute", "service:contribute"]),
    ("CodeQuest", "app", ["activities:contribute", "activities:read", "badges:read", "skills:read"]),
    ("Harbor Robotics Club", "club", ["badges:contribute", "skills:contribute"]),
]

# (provider, section, action) granted for every learner; the gaps are deliberate.
GRANTS = [
    ("Riverside High School", "badges", Action.READ, "School report of achievements"),
    ("Riverside High School", "skills", Action.CONTRIBUTE, "Teacher assessments of skills"),
    ("Riverside High School", "skills", Action.READ, "Reading back skill progression"),
    ("Riverside High School", "pathways", Action.CONTRIBUTE, "Record college visits and career days"),
    ("Riverside High School", "service", Action.CONTRIBUTE, "Record verified volunteering hours"),
    ("CodeQuest", "activities", Action.CONTRIBUTE, "Record coding lessons completed in the app"),
    ("CodeQuest", "activities", Action.READ, "Show the learner their lesson history"),
    ("CodeQuest", "badges", Action.READ, "Show earned badges in the app"),
    ("Harbor Robotics Club", "badges", Action.CONTRIBUTE, "Award club badges"),
]


async def load_demo(
    *, session: AsyncSession, pseudonym_key: bytes, activities_per_learner: int = 1000, seed: int = 7
) -> DemoCredentials:
    """Load the demo dataset; refuses to load twice (the caller checks ``demo_loaded``)."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    today = now.date()

    clients: list[DemoClient] = []
    provider_ids: dict[str, UUID] = {}
    for name, kind, scopes in PROVIDERS:
        provider = await providers.create_provider(session=session, name=name, kind=kind)
        client, secret = await providers.create_client(session=session, provider_id=provider.id, name=f"{name} sync", scopes=scopes)
        provider_ids[name] = provider.id
        clients.append(DemoClient(provider=name, client_id=client.client_id, client_secret=secret, scopes=scopes))

    learners: list[UUID] = []
    login: tuple[str, str] | None = None
    for family in _families(today):
        guardian = await people.create_guardian(session=session, email=family["email"], display_name=family["name"])
        if login is None:
            from hub.accounts.service import set_password

            login = (family["email"], secrets.token_urlsafe(12))
            await set_password(session=session, guardian_id=guardian.id, password=login[1])
        for given, family_name, dob in family["children"]:
            learner = await people.create_learner(
                session=session, given_name=given, family_name=family_name, date_of_birth=dob,
                guardian_ids=[guardian.id], today=today,
            )
            learners.append(learner.id)
            for provider_name, section, action, purpose in GRANTS:
                await grant_access(
                    session=session, learner_id=learner.id, provider_id=provider_ids[provider_name], section=section,
                    action=action, purpose=purpose, granted_by=guardian.id, now=now - timedelta(days=400),
                    pseudonym_key=pseudonym_key,
                )

    async def _contribute(access: ProviderAccess, learner_id: UUID, section: str, entries: list[Any]) -> None:
        # The same path a provider request takes: decide, write, count, chain the log.
        allowed = await access.authorize(learner_id, section, Action.CONTRIBUTE)
        report = await contribute_entries(session=session, access=allowed, section=section, learner_id=learner_id,
                                          provider_id=access.provider_id, entries=entries, now=now)
        access.disclosed(learner_id, section, Action.CONTRIBUTE, report.created + report.updated)
        await access.flush_log()

    def access_for(provider_name: str) -> ProviderAccess:
        token = TokenContext(jti="demo-loader", client_id=next(c.client_id for c in clients if c.provider == provider_name),
                             provider_id=provider_ids[provider_name], scopes=frozenset(all_scopes()))
        return ProviderAccess(session=session, token=token, now=now)

    verbs = [v for v in VERBS for _ in range(v[2])]
    for index, learner_id in enumerate(learners):
        codequest = access_for("CodeQuest")
        activities = []
        for n in range(activities_per_learner):
            verb_id, display, _ = rng.choice(verbs)
            lesson = rng.randint(1, 60)
            scored = display in ("passed", "failed", "answered")
            activities.append(r.ActivityCreate(
                source_id=f"cq-{index}-{n}",
                verb=r.Verb(id=verb_id, display=display),
                object=r.ActivityObject(id=f"https://codequest.example.org/lessons/{lesson}",
                                        name=f"Lesson {lesson}", type=rng.choice(ACTIVITY_TYPES)),
                result=r.ActivityResult(score=r.Score(scaled=round(rng.uniform(0.3, 1.0), 2)),
                                        success=display != "failed", duration=f"PT{rng.randint(2, 55)}M") if scored else None,
                timestamp=now - timedelta(minutes=rng.randint(1, 60 * 24 * 365)),
            ))
        for start in range(0, len(activities), 1000):
            await _contribute(codequest, learner_id, "activities", activities[start:start + 1000])

        school = access_for("Riverside High School")
        skills = []
        for skill_index, (framework, code, label) in enumerate(SKILLS):
            level = rng.uniform(1, 2)
            for term in range(4):
                level = min(4.0, level + rng.uniform(0, 0.8))
                skills.append(r.SkillCreate(
                    source_id=f"rhs-skill-{skill_index}-{term}",
                    skill=r.SkillRef(framework_uri=framework, code=code, label=label),
                    scale=r.ProficiencyScale(name="Riverside 1-4 rubric", min=1, max=4),
                    proficiency=round(level, 1),
                    assessed_at=now - timedelta(days=90 * (4 - term)),
                ))
        await _contribute(school, learner_id, "skills", skills)
        await _contribute(school, learner_id, "pathways", [
            r.PathwayCreate(source_id="rhs-visit-1", kind=r.PathwayKind.COLLEGE_VISIT,
                            organisation=r.Organisation(name="State University", id="https://stateu.example.edu"),
                            occurred_at=now - timedelta(days=60), hours=4,
                            reflection="Toured the engineering labs and met first-year students."),
            r.PathwayCreate(source_id="rhs-fair-1", kind=r.PathwayKind.CAREER_FAIR,
                            organisation=r.Organisation(name="Riverside Careers Day"),
                            occurred_at=now - timedelta(days=20), hours=2),
        ])
        await _contribute(school, learner_id, "service", [
            r.ServiceCreate(source_id="rhs-service-1", organisation=r.Organisation(name="Riverside Food Bank"),
                            role="Volunteer packer", hours=12, started_at=now - timedelta(days=120),
                            ended_at=now - timedelta(days=90)),
        ])

        club = access_for("Harbor Robotics Club")
        badges = [
            r.BadgeCreate(
                source_id=f"hrc-badge-{b}",
                achievement=r.Achievement(
                    id=f"https://harborrobotics.example.org/achievements/{slug}", name=title,
                    description=f"Awarded for {title.lower()} at Harbor Robotics Club.",
                    criteria=r.Criteria(narrative=f"Demonstrated {title.lower()} to a club mentor."),
                    achievement_type="Badge",
                ),
                issuer=r.IssuerProfile(id="https://harborrobotics.example.org/issuer", name="Harbor Robotics Club",
                                       url="https://harborrobotics.example.org"),
                awarded_date=now - timedelta(days=30 * (b + 1)),
            )
            for b, (slug, title) in enumerate([("first-build", "First robot build"), ("soldering", "Safe soldering"),
                                               ("team-lead", "Team leadership")])
        ]
        await _contribute(club, learner_id, "badges", badges)
    return DemoCredentials(clients=clients, family_email=login[0] if login else None,
                           family_password=login[1] if login else None)


async def demo_loaded(*, session: AsyncSession) -> bool:
    return (await session.execute(select(Provider.id).where(Provider.name == PROVIDERS[0][0]))).first() is not None


def write_credentials(path: Path, credentials: DemoCredentials) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"clients": [c.__dict__ for c in credentials.clients],
                   "family": {"email": credentials.family_email, "password": credentials.family_password}}, handle, indent=2)


def read_credentials(path: Path) -> DemoCredentials:
    data = json.loads(path.read_text())
    if isinstance(data, list):  # written before the family sign-in was added
        return DemoCredentials(clients=[DemoClient(**item) for item in data])
    family = data.get("family") or {}
    return DemoCredentials(clients=[DemoClient(**item) for item in data["clients"]],
                           family_email=family.get("email"), family_password=family.get("password"))
