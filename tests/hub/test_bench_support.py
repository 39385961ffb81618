"""What the benchmarks rely on: the consent-bypass switch is impossible in production, and the
data generator writes data the API serves (through the migrated tables only)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from consent import Action
from hub.config import Settings
from hub.generate import Plan, generate
from hub.grants.enforce import ProviderAccess
from hub.grants.models import DisclosureEvent
from hub.oauth.bearer import TokenContext
from hub.records.models import Activity
from tests.conftest import PSEUDONYM_KEY
from tests.factories import ProviderClient, get_token, gql

PRODUCTION = dict(
    environment="production",
    database_url="postgresql+asyncpg://kinfolio@db.example.org/kinfolio",
    issuer="https://hub.example.org",
    signing_key_pem="-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n",
    pseudonym_key_hex="ab" * 32,
)


def test_bypass_switch_is_off_by_default() -> None:
    assert Settings(**PRODUCTION).benchmark_bypass_consent is False
    assert Settings(environment="test").benchmark_bypass_consent is False


def test_bypass_switch_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="benchmark-only switch and is refused in production"):
        Settings(**PRODUCTION, benchmark_bypass_consent=True)


def test_bypass_switch_from_the_environment_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KINFOLIO_BENCHMARK_BYPASS_CONSENT", "1")
    with pytest.raises(ValidationError, match="refused in production"):
        Settings(**PRODUCTION)
    # The same variable is accepted where benchmarks run.
    assert Settings(environment="development").benchmark_bypass_consent is True


async def test_access_without_bypass_still_denies_and_logs(engine) -> None:
    """The default ProviderAccess decides: no grant at all means the learner does not exist."""
    from hub.db import make_sessionmaker
    from hub.grants.enforce import LearnerNotFound

    token = TokenContext(jti="t", client_id="c", provider_id=UUID(int=1), scopes=frozenset({"badges:read"}))
    async with make_sessionmaker(engine)() as session:
        access = ProviderAccess(session=session, token=token, now=datetime.now(UTC))
        with pytest.raises(LearnerNotFound):
            await access.authorize(UUID(int=2), "badges", Action.READ)


PROFILE = """
query($id: ID!) {
  learner(id: $id) {
    badges { nodes { achievement { name } } }
    skills { nodes { skill { label } proficiency } }
    activities(first: 50) { nodes { verb { display } timestamp } pageInfo { hasNextPage } }
  }
}"""


async def test_generated_data_is_served_through_the_api(engine, database_url, client) -> None:
    plan = Plan(learners=3, activities_per_learner=60, seed=5, heavy_learner_activities=120, light_learner_activities=10,
                as_of=datetime(2026, 6, 1, tzinfo=UTC))
    manifest = await generate(engine, database_url, plan, PSEUDONYM_KEY)
    assert (manifest.learners, manifest.activities, manifest.skills) == (5, 3 * 60 + 120 + 10, 5 * 16)
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(Activity))).scalar_one() == manifest.activities

    bench = manifest.providers[0]
    token = await get_token(client, ProviderClient(UUID(bench.provider_id), bench.client_id, bench.client_secret))
    response = await gql(client, token, PROFILE, {"id": manifest.heavy_learner})
    body = response.json()
    assert "errors" not in body, body
    activities = body["data"]["learner"]["activities"]
    assert len(activities["nodes"]) == 50 and activities["pageInfo"]["hasNextPage"] is True
    stamps = [n["timestamp"] for n in activities["nodes"]]
    assert stamps == sorted(stamps, reverse=True)
    assert len(body["data"]["learner"]["skills"]["nodes"]) == 16
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(DisclosureEvent))).scalar_one() == 3

    with pytest.raises(ValueError, match="already holds generated data"):
        await generate(engine, database_url, plan, PSEUDONYM_KEY)
