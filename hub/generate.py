"""Bulk, reproducible synthetic data for benchmarks and load tests (``kinfolio generate``).

Families (1-2 guardians, 1-3 children aged 5-19), providers of every kind with OAuth clients,
consent grants (one provider, the *bench provider*, holds read and contribute grants on every
section of every learner; the others hold a realistic subset), pairwise ids, badges, skill
progressions and activity streams with an xAPI-like verb mix.

Everything is derived from ``seed`` (and ``as_of``, default today 00:00 UTC): each learner's
records come from their own ``Random(seed, learner index)``, so the data does not depend on how
many parallel jobs wrote it.

Rows go straight into the tables the Alembic migrations created (nothing here creates or alters
schema): Core ``executemany`` on SQLite, ``COPY`` (asyncpg ``copy_records_to_table``) on
PostgreSQL, where ``jobs`` processes write disjoint learner slices in parallel.

Unlike the API, the generator does not compute ``content_hash`` from the canonical entry (that
would cost a pydantic round-trip per row); it stores a random digest, so re-sending a generated
``sourceId`` through the API reports it ``updated`` rather than ``unchanged``. It writes no
disclosure events: no provider has read anything yet.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import hub.models  # noqa: F401  (every table on Base.metadata)
from consent.pseudonyms import pairwise_id
from consent.sections import all_scopes
from hub.db import Base, make_engine
from hub.oauth.server import hash_client_secret

VERBS = [  # (IRI, display, weight): roughly what an LMS/app emits
    ("http://adlnet.gov/expapi/verbs/experienced", "experienced", 38),
    ("http://adlnet.gov/expapi/verbs/attempted", "attempted", 18),
    ("http://adlnet.gov/expapi/verbs/completed", "completed", 18),
    ("http://adlnet.gov/expapi/verbs/answered", "answered", 12),
    ("http://adlnet.gov/expapi/verbs/passed", "passed", 6),
    ("http://adlnet.gov/expapi/verbs/failed", "failed", 3),
    ("http://adlnet.gov/expapi/verbs/progressed", "progressed", 4),
    ("http://adlnet.gov/expapi/verbs/commented", "commented", 1),
]
SCORED = {"answered", "passed", "failed", "completed"}
ACTIVITY_TYPES = [
    "http://adlnet.gov/expapi/activities/lesson",
    "http://adlnet.gov/expapi/activities/assessment",
    "http://adlnet.gov/expapi/activities/simulation",
    "http://adlnet.gov/expapi/activities/question",
    "http://adlnet.gov/expapi/activities/media",
]
SUBJECTS = ["algebra", "geometry", "fractions", "reading", "phonics", "biology", "chemistry", "history", "python",
            "robotics", "french", "music-theory", "statistics", "essay-writing", "physics"]
SKILLS = [
    ("https://case.example.org/frameworks/math-8", "8.EE.A.1", "Work with radicals and integer exponents"),
    ("https://case.example.org/frameworks/math-8", "8.F.A.1", "Understand functions as rules"),
    ("https://case.example.org/frameworks/ela-6", "RL.6.1", "Cite textual evidence"),
    ("https://case.example.org/frameworks/sci-ms", "MS-PS1-1", "Model atomic composition"),
    (None, None, "Collaboration"),
    (None, None, "Public speaking"),
    (None, None, "Persistence"),
]
BADGES = [("first-build", "First robot build"), ("soldering", "Safe soldering"), ("team-lead", "Team leadership"),
          ("reader-100", "Read 100 books"), ("code-streak", "30-day coding streak"), ("chess-club", "Chess club regular"),
          ("science-fair", "Science fair finalist"), ("first-aid", "Junior first aid")]
GIVEN = ["Ada", "Tobi", "Elin", "Luca", "Mia", "Noah", "Zara", "Omar", "Ines", "Kai", "Lena", "Yusuf", "Aiko", "Ravi",
         "Nora", "Felix", "Amara", "Jonas", "Sofia", "Mateo", "Priya", "Leo", "Hana", "Theo"]
FAMILY = ["Okafor", "Lindqvist", "Reyes", "Nguyen", "Schmidt", "Haddad", "Kowalski", "Tanaka", "Silva", "Mensah",
          "Murphy", "Rossi", "Novak", "Ali", "Petrov", "Garcia", "Dubois", "Kim", "Osei", "Jensen"]

# The bench provider holds every grant of every learner; the others a realistic subset.
PROVIDERS: list[tuple[str, str, list[tuple[str, str]], float]] = [
    # name, kind, (section, action) grants, share of learners who granted them
    ("Bench Academy", "school", [(s, a) for s in ("badges", "skills", "activities") for a in ("read", "contribute")], 1.0),
    ("CodeQuest", "app", [("activities", "contribute"), ("activities", "read"), ("badges", "read")], 0.6),
    ("Harbor Robotics Club", "club", [("badges", "contribute"), ("skills", "contribute")], 0.25),
    ("Northwind Tutors", "other", [("skills", "read"), ("skills", "contribute"), ("activities", "contribute")], 0.3),
    ("Lakeside Apprenticeships", "employer", [("badges", "read"), ("skills", "read")], 0.1),
]
BENCH_PROVIDER = PROVIDERS[0][0]
# Activities are written mostly by the app, then the school, then the tutors.
ACTIVITY_WRITERS = [(1, 60), (0, 30), (3, 10)]

ACTIVITY_COLUMNS = [
    "learner_id", "provider_id", "source_id", "content_hash", "created_at", "updated_at", "verb_id", "verb_display",
    "object_id", "object_name", "object_type", "result_score_scaled", "result_score_raw", "result_score_min",
    "result_score_max", "result_success", "result_completion", "result_duration", "timestamp",
]
SKILL_COLUMNS = [
    "learner_id", "provider_id", "source_id", "content_hash", "created_at", "updated_at", "framework_uri", "skill_code",
    "skill_label", "skill_key", "scale_name", "scale_min", "scale_max", "proficiency", "assessed_at",
]
BADGE_COLUMNS = [
    "learner_id", "provider_id", "source_id", "content_hash", "created_at", "updated_at", "achievement_id", "name",
    "description", "criteria_narrative", "criteria_id", "image_url", "achievement_type", "issuer_id", "issuer_name",
    "issuer_url", "awarded_at", "evidence", "alignments",
]


@dataclass
class Plan:
    learners: int
    activities_per_learner: int
    seed: int = 1
    as_of: datetime | None = None
    # Extra learners for the growth benchmark: one with many activities, one with few.
    heavy_learner_activities: int = 0
    light_learner_activities: int = 0
    jobs: int = 2
    chunk_rows: int = 20_000

    def anchor(self) -> datetime:
        if self.as_of is not None:
            return self.as_of
        today = datetime.now(UTC).date()
        return datetime(today.year, today.month, today.day, tzinfo=UTC)


@dataclass
class ProviderCredentials:
    name: str
    provider_id: str
    client_id: str
    client_secret: str
    scopes: list[str]


@dataclass
class Manifest:
    """What a benchmark needs to know about the generated data (written as JSON)."""

    seed: int
    as_of: str
    learners: int
    activities: int
    skills: int
    badges: int
    grants: int
    providers: list[ProviderCredentials]
    # Pairwise ids (as the bench provider knows them) of a few ordinary learners, the heavy and the light one.
    sample_learners: list[str] = field(default_factory=list)
    heavy_learner: str | None = None
    light_learner: str | None = None
    heavy_learner_uuid: str | None = None
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        raw["providers"] = [ProviderCredentials(**p) for p in raw["providers"]]
        return cls(**raw)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _learner_rng(seed: int, index: int) -> random.Random:
    return random.Random(seed * 1_000_003 + index)


def _sqlite_value(value: Any) -> Any:
    """A value as SQLAlchemy stores it on SQLite: Uuid as 32 hex digits, UTCDateTime as naive
    UTC text with microseconds, booleans as 0/1, JSON as text."""
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):
        v = value.astimezone(UTC)
        return f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value


def _sqlite_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_sqlite_value(v) for v in row)


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


# -- records of one learner ----------------------------------------------------------------------


def _activity_rows(
    rng: random.Random, learner_id: uuid.UUID, provider_ids: Sequence[uuid.UUID], count: int, anchor: datetime, span_s: int
) -> Iterator[tuple[Any, ...]]:
    verbs = rng.choices(VERBS, weights=[v[2] for v in VERBS], k=count)
    writers = rng.choices([provider_ids[i] for i, _ in ACTIVITY_WRITERS], weights=[w for _, w in ACTIVITY_WRITERS], k=count)
    # A learner sticks to a few subjects: realistic repetition of object ids.
    subjects = rng.sample(SUBJECTS, 4)
    rand, randint, getrandbits = rng.random, rng.randint, rng.getrandbits
    for n in range(count):
        verb_id, display, _ = verbs[n]
        subject = subjects[int(rand() * rand() * 4)]
        lesson = randint(1, 80)
        at = anchor - timedelta(seconds=int(rand() * span_s), microseconds=randint(0, 999_999))
        scored = display in SCORED
        scaled = round(0.2 + rand() * 0.8, 2) if scored else None
        yield (
            learner_id, writers[n], f"g-{n}", f"{getrandbits(256):064x}", at, at,
            verb_id, display, f"https://learn.example.org/{subject}/lessons/{lesson}", f"{subject.title()} lesson {lesson}",
            ACTIVITY_TYPES[lesson % len(ACTIVITY_TYPES)],
            scaled, round(scaled * 20) if scored else None, 0.0 if scored else None, 20.0 if scored else None,
            (display != "failed") if scored else None, (display in ("completed", "passed")) or None,
            f"PT{randint(1, 55)}M{randint(0, 59)}S" if display != "experienced" else None,
            at,
        )


def _skill_rows(rng: random.Random, learner_id: uuid.UUID, provider_ids: Sequence[uuid.UUID], anchor: datetime) -> list[tuple[Any, ...]]:
    rows = []
    school = provider_ids[0]
    for skill_index, (framework, code, label) in enumerate(rng.sample(SKILLS, 4)):
        key = f"{framework}#{code}" if framework else f"label:{label}"
        level = rng.uniform(1, 2)
        for term in range(4):
            level = min(4.0, level + rng.uniform(0, 0.8))
            at = anchor - timedelta(days=91 * (4 - term), seconds=rng.randint(0, 86_399))
            rows.append((
                learner_id, school, f"skill-{skill_index}-{term}", f"{rng.getrandbits(256):064x}", at, at,
                framework, code, label, key, "1-4 rubric", 1.0, 4.0, round(level, 1), at,
            ))
    return rows


def _badge_rows(rng: random.Random, learner_id: uuid.UUID, provider_ids: Sequence[uuid.UUID], anchor: datetime, as_json: bool) -> list[tuple[Any, ...]]:
    rows = []
    club = provider_ids[2]
    for b, (slug, title) in enumerate(rng.sample(BADGES, rng.randint(0, 6))):
        at = anchor - timedelta(days=rng.randint(1, 700))
        evidence: list[dict[str, Any]] = [{"narrative": f"Shown to a mentor: {title.lower()}."}]
        alignments: list[dict[str, Any]] = []
        rows.append((
            learner_id, club, f"badge-{b}-{slug}", f"{rng.getrandbits(256):064x}", at, at,
            f"https://badges.example.org/achievements/{slug}", title, f"Awarded for {title.lower()}.",
            f"Demonstrated {title.lower()} to a mentor.", None, None, "Badge",
            "https://badges.example.org/issuer", "Harbor Robotics Club", "https://badges.example.org", at,
            json.dumps(evidence) if as_json else evidence, json.dumps(alignments) if as_json else alignments,
        ))
    return rows


# -- people, providers, grants -----------------------------------------------------------------


@dataclass
class _People:
    learner_ids: list[uuid.UUID]
    provider_ids: list[uuid.UUID]
    grants: int
    credentials: list[ProviderCredentials]


async def _insert(conn: AsyncConnection, table: str, rows: list[dict[str, Any]], chunk: int = 5_000) -> None:
    for start in range(0, len(rows), chunk):
        await conn.execute(insert(_table(table)), rows[start : start + chunk])


async def _people(conn: AsyncConnection, plan: Plan, total_learners: int, key: bytes) -> _People:
    rng = random.Random(plan.seed)
    anchor = plan.anchor()
    today = anchor.date()
    granted_at = anchor - timedelta(days=500)

    providers, clients, credentials = [], [], []
    scopes = all_scopes()
    for index, (name, kind, _grants, _share) in enumerate(PROVIDERS):
        provider_id = _uuid(rng)
        providers.append({"id": provider_id, "name": name, "kind": kind, "created_at": granted_at})
        secret = hashlib.sha256(f"kinfolio-generate/{plan.seed}/{index}".encode()).hexdigest()
        client_id = f"kf_gen{plan.seed}_{index}"
        clients.append({
            "client_id": client_id, "provider_id": provider_id, "name": f"{name} sync", "client_secret_hash": hash_client_secret(secret),
            "allowed_scopes": " ".join(sorted(scopes)), "grant_types": "client_credentials", "created_at": granted_at,
        })
        credentials.append(ProviderCredentials(name, str(provider_id), client_id, secret, sorted(scopes)))
    await _insert(conn, "provider", providers)
    await _insert(conn, "oauth_client", clients)
    provider_ids = [p["id"] for p in providers]

    guardians, learners, links, grants, pseudonyms = [], [], [], [], []
    learner_ids: list[uuid.UUID] = []
    index = 0
    family = 0
    while index < total_learners:
        family_name = FAMILY[family % len(FAMILY)]
        carers = [_uuid(rng) for _ in range(rng.choice((1, 2, 2)))]
        for c, carer in enumerate(carers):
            guardians.append({"id": carer, "email": f"carer{family}.{c}@family{plan.seed}.example.org",
                              "display_name": f"{rng.choice(GIVEN)} {family_name}", "created_at": granted_at})
        for _ in range(min(rng.choice((1, 1, 2, 2, 3)), total_learners - index)):
            learner_id = _uuid(rng)
            learner_ids.append(learner_id)
            age = rng.randint(5, 19)
            learners.append({"id": learner_id, "given_name": rng.choice(GIVEN), "family_name": family_name,
                             "date_of_birth": date(today.year - age, 1, 1) + timedelta(days=rng.randint(0, 364)),
                             "created_at": granted_at})
            for carer in carers:
                links.append({"id": _uuid(rng), "learner_id": learner_id, "guardian_id": carer, "relationship": "guardian",
                              "created_at": granted_at})
            for p, (_name, _kind, provider_grants, share) in enumerate(PROVIDERS):
                # The growth learners (the last two) are shared with the bench provider only.
                if (p > 0 and index >= plan.learners) or rng.random() >= share:
                    continue
                pseudonyms.append({"provider_id": provider_ids[p], "learner_id": learner_id,
                                   "pseudonym": pairwise_id(key, provider_ids[p], learner_id)})
                for section, action in provider_grants:
                    grants.append({"id": _uuid(rng), "learner_id": learner_id, "provider_id": provider_ids[p],
                                   "section": section, "action": action, "purpose": f"{section} {action} for {PROVIDERS[p][0]}",
                                   "granted_by": carers[0], "granted_at": granted_at, "expires_at": None,
                                   "revoked_at": None, "revoked_by": None})
            index += 1
        family += 1
    for table, rows in (("guardian", guardians), ("learner", learners), ("learner_guardian", links),
                        ("learner_pseudonym", pseudonyms), ("consent_grant", grants)):
        await _insert(conn, table, rows)
    return _People(learner_ids=learner_ids, provider_ids=provider_ids, grants=len(grants), credentials=credentials)


# -- records, in parallel slices ----------------------------------------------------------------


def _learner_plan(plan: Plan, index: int) -> int:
    if index < plan.learners:
        return plan.activities_per_learner
    return plan.heavy_learner_activities if index == plan.learners else plan.light_learner_activities


async def _write_slice(url: str, plan: Plan, learner_ids: list[uuid.UUID], provider_ids: list[uuid.UUID],
                       indexes: range) -> tuple[int, int, int]:
    """Write the records of learners ``indexes`` (positions in ``learner_ids``); returns counts."""
    engine = make_engine(url, pool_size=1)
    anchor = plan.anchor()
    span_s = 2 * 365 * 86_400
    counts = [0, 0, 0]
    try:
        async with engine.begin() as conn:
            postgres = conn.dialect.name == "postgresql"
            raw = (await conn.get_raw_connection()).driver_connection if postgres else None

            async def write(table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
                if not rows:
                    return
                if raw is not None:
                    await raw.copy_records_to_table(table, records=rows, columns=columns)
                else:
                    # Driver-level executemany with values already in SQLAlchemy's SQLite storage
                    # format (see _sqlite_row): 3-4x faster than Core with type processing.
                    await conn.exec_driver_sql(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                        [_sqlite_row(row) for row in rows],
                    )

            buffer: list[tuple[Any, ...]] = []
            for index in indexes:
                learner_id = learner_ids[index]
                rng = _learner_rng(plan.seed, index)
                skills = _skill_rows(rng, learner_id, provider_ids, anchor)
                badges = _badge_rows(rng, learner_id, provider_ids, anchor, as_json=postgres)
                await write("skill_assessment", SKILL_COLUMNS, skills)
                await write("badge", BADGE_COLUMNS, badges)
                counts[1] += len(skills)
                counts[2] += len(badges)
                for row in _activity_rows(rng, learner_id, provider_ids, _learner_plan(plan, index), anchor, span_s):
                    buffer.append(row)
                    if len(buffer) >= plan.chunk_rows:
                        await write("activity", ACTIVITY_COLUMNS, buffer)
                        counts[0] += len(buffer)
                        buffer = []
            await write("activity", ACTIVITY_COLUMNS, buffer)
            counts[0] += len(buffer)
    finally:
        await engine.dispose()
    return counts[0], counts[1], counts[2]


def _slice_in_process(args: tuple[str, Plan, list[uuid.UUID], list[uuid.UUID], range]) -> tuple[int, int, int]:
    return asyncio.run(_write_slice(*args))


async def generate(engine: AsyncEngine, url: str, plan: Plan, key: bytes) -> Manifest:
    """Generate into an empty, migrated database. ``url`` lets parallel jobs open their own engines."""
    started = time.perf_counter()
    total = plan.learners + (1 if plan.heavy_learner_activities else 0) + (1 if plan.light_learner_activities else 0)
    if plan.light_learner_activities and not plan.heavy_learner_activities:
        raise ValueError("a light learner is generated only together with a heavy learner")
    async with engine.begin() as conn:
        if (await conn.execute(select(_table("provider").c.id).where(_table("provider").c.name == BENCH_PROVIDER))).first():
            raise ValueError("this database already holds generated data; generate into an empty database")
        people = await _people(conn, plan, total, key)

    # Slices of learners, balanced by activity count so the jobs finish together.
    jobs = max(1, plan.jobs) if url.startswith("postgresql") else 1
    weights = [_learner_plan(plan, i) + 20 for i in range(total)]
    bounds, target, acc, start = [], sum(weights) / jobs, 0.0, 0
    for i, w in enumerate(weights):
        acc += w
        if acc >= target * (len(bounds) + 1) and len(bounds) < jobs - 1:
            bounds.append(range(start, i + 1))
            start = i + 1
    bounds.append(range(start, total))
    work = [(url, plan, people.learner_ids, people.provider_ids, r) for r in bounds if len(r)]
    if len(work) == 1:
        results = [await _write_slice(*work[0])]
    else:
        import concurrent.futures
        import multiprocessing

        loop = asyncio.get_running_loop()
        with concurrent.futures.ProcessPoolExecutor(len(work), mp_context=multiprocessing.get_context("spawn")) as pool:
            results = await asyncio.gather(*(loop.run_in_executor(pool, _slice_in_process, w) for w in work))
    if url.startswith("postgresql"):
        # Committed: ANALYZE inside a transaction that is rolled back leaves no statistics, and a
        # planner without them scans a 200,000-entry learner to sort it (BENCHMARKS.md, growth).
        async with engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE")

    bench = people.credentials[0]
    bench_provider = uuid.UUID(bench.provider_id)
    def pid(index: int) -> str:
        return pairwise_id(key, bench_provider, people.learner_ids[index])

    return Manifest(
        seed=plan.seed,
        as_of=plan.anchor().isoformat(),
        learners=total,
        activities=sum(r[0] for r in results),
        skills=sum(r[1] for r in results),
        badges=sum(r[2] for r in results),
        grants=people.grants,
        providers=people.credentials,
        sample_learners=[pid(i) for i in range(min(plan.learners, 200))],
        heavy_learner=pid(plan.learners) if plan.heavy_learner_activities else None,
        light_learner=pid(plan.learners + 1) if plan.light_learner_activities else None,
        heavy_learner_uuid=str(people.learner_ids[plan.learners]) if plan.heavy_learner_activities else None,
        seconds=round(time.perf_counter() - started, 1),
    )
