"""Fixtures for credential tests: contexts from ../shared/samples, a kit, badge rows."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.config import Settings
from hub.credentials.contexts import ContextLoader
from hub.credentials.keys import generate_private_pem
from hub.credentials.service import CredentialKit, kit_from_settings
from hub.credentials.verify import trusted_keys_from
from hub.db import make_sessionmaker
from hub.records.models import Activity, Badge, SkillAssessment
from tests.factories import Family, make_family, make_provider


@pytest.fixture(scope="session")
def contexts_dir(samples_dir: Path) -> Path:
    return samples_dir / "jsonld-contexts"


@pytest.fixture(scope="session")
def examples_dir(samples_dir: Path) -> Path:
    return samples_dir / "ob3-clr-spec-examples"


@pytest.fixture(scope="session")
def loader(contexts_dir: Path) -> ContextLoader:
    return ContextLoader(contexts_dir)


@pytest.fixture(scope="session")
def credential_key_pem() -> str:
    return generate_private_pem().decode()


@pytest.fixture(scope="session")
def cred_settings(settings: Settings, contexts_dir: Path, credential_key_pem: str) -> Settings:
    return settings.model_copy(update={"jsonld_contexts_dir": contexts_dir, "credential_key_pem": credential_key_pem})


@pytest.fixture(scope="session")
def kit(cred_settings: Settings) -> CredentialKit:
    return kit_from_settings(cred_settings)


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def public_multikey(path: Path) -> dict[str, Any]:
    return {k: v for k, v in load(path).items() if k in ("id", "controller", "publicKeyMultibase")}


async def add_record(engine, family: Family, *, badges: int = 2) -> list[int]:  # type: ignore[no-untyped-def]
    """Badges, skill assessments and activities for the family's learner, written directly."""
    provider = await make_provider(engine, f"Club {family.learner_id.hex[:6]}", ["badges:contribute"])
    base = datetime(2026, 2, 1, tzinfo=UTC)
    async with make_sessionmaker(engine)() as session, session.begin():
        rows = []
        for n in range(badges):
            row = Badge(learner_id=family.learner_id, provider_id=provider.provider_id, source_id=f"b{n}",
                        content_hash="x", achievement_id=f"https://club.example.org/achievements/{n}",
                        name=f"Badge {n}", description="For doing a thing well.", criteria_narrative="Did the thing.",
                        issuer_id="https://club.example.org/issuer", issuer_name="The Club",
                        awarded_at=base + timedelta(days=n), updated_at=base + timedelta(days=n, hours=1),
                        evidence=[{"name": "Photo", "narrative": "The thing, done."}],
                        alignments=[{"target_name": "Teamwork", "target_url": "https://case.example.org/items/teamwork",
                                     "target_code": "TW.1"}])
            session.add(row)
            rows.append(row)
        for n, level in enumerate([2.0, 3.0]):
            session.add(SkillAssessment(
                learner_id=family.learner_id, provider_id=provider.provider_id, source_id=f"s{n}", content_hash="x",
                framework_uri="https://case.example.org/items/teamwork", skill_code="TW.1", skill_label="Teamwork",
                skill_key="https://case.example.org/items/teamwork#TW.1", scale_name="1-4 rubric", scale_min=1,
                scale_max=4, proficiency=level, assessed_at=base + timedelta(days=30 * n)))
        session.add(SkillAssessment(
            learner_id=family.learner_id, provider_id=provider.provider_id, source_id="s-label", content_hash="x",
            skill_label="Curiosity", skill_key="label:curiosity", scale_name="0-10", scale_min=0, scale_max=10,
            proficiency=7, assessed_at=base))
        for n in range(5):
            session.add(Activity(
                learner_id=family.learner_id, provider_id=provider.provider_id, source_id=f"a{n}", content_hash="x",
                verb_id="http://adlnet.gov/expapi/verbs/completed" if n == 4 else "http://adlnet.gov/expapi/verbs/attempted",
                verb_display="completed", object_id=f"https://app.example.org/lessons/{n % 2}",
                object_name=f"Lesson {n % 2}", result_score_scaled=0.1 * n, timestamp=base + timedelta(hours=n)))
        await session.flush()
        return [r.id for r in rows]


@pytest.fixture
async def credentials_app(app, kit, examples_dir) -> AsyncIterator[Any]:  # type: ignore[no-untyped-def]
    """The app with credentials configured and the official test vectors' issuer keys trusted."""
    app.state.credential_kit = kit
    app.state.credential_trusted_keys = [
        *trusted_keys_from(public_multikey(examples_dir / "ob3-testvector-multikey.json")),
        *trusted_keys_from(public_multikey(examples_dir / "clr2-testvector-multikey.json")),
    ]
    yield app
    del app.state.credential_trusted_keys


@pytest.fixture
async def family(engine) -> Family:  # type: ignore[no-untyped-def]
    return await make_family(engine)
