"""What the benchmarks rely on: the consent-bypass switch is impossible in production, and the
data generator writes data the API serves (through the migrated tables only)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
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
    credential_key_pem="-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n",
    credential_rsa_key_pem="-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n",
    session_secret_hex="cd" * 32,
    kek_hex="ef" * 32,
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
        if engine.dialect.name == "postgresql":  # the planner has statistics for the bulk-loaded data
            stats = (await conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stats WHERE tablename = 'activity' AND attname = 'learner_id'")).scalar_one()
            assert stats == 1

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


async def test_generator_is_reproducible_from_its_seed(tmp_path) -> None:
    from hub import migrate
    from hub.db import make_engine

    manifests = []
    for run in ("a", "b"):
        url = f"sqlite+aiosqlite:///{tmp_path / f'{run}.db'}"
        scratch = make_engine(url)
        try:
            await migrate.upgrade(scratch)
            plan = Plan(learners=4, activities_per_learner=30, seed=11, as_of=datetime(2026, 3, 1, tzinfo=UTC))
            manifests.append(await generate(scratch, url, plan, PSEUDONYM_KEY))
            async with scratch.connect() as conn:
                stamps = [r[0] for r in await conn.execute(select(Activity.timestamp).order_by(Activity.id))]
            manifests[-1].seconds = 0.0
            manifests[-1].stamps = stamps  # type: ignore[attr-defined]
        finally:
            await scratch.dispose()
    assert manifests[0] == manifests[1]
    assert manifests[0].stamps == manifests[1].stamps  # type: ignore[attr-defined]
    assert all(t <= datetime(2026, 3, 1, tzinfo=UTC) for t in manifests[0].stamps)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "value",
    ["2026-01-01T00:00:00Z", "2026-01-01T10:00:00.5+05:30", "2026-03-01T00:00:00.123456-02:00",
     "2026-03-01T00:00:00+00:00", "20260301T101010Z", "2026-03-01T10:10Z", "2026-03-01"],
)
def test_datetime_input_parses_exactly_as_strawberry_did(value: str) -> None:
    import dateutil.parser

    from hub.graphql.schema import _parse_datetime

    ours, theirs = _parse_datetime(value), dateutil.parser.isoparse(value)
    assert ours == theirs and ours.utcoffset() == theirs.utcoffset()


@given(st.datetimes(timezones=st.just(UTC) | st.timezones() | st.none()))
def test_datetime_output_is_exactly_what_strawberry_gave(value: datetime) -> None:
    from hub.graphql.schema import _datetime_text

    assert _datetime_text(value) == value.isoformat()


async def test_keyset_pages_walk_equal_timestamps_without_gaps_or_repeats(engine, client) -> None:
    from tests.factories import RECORD_ACTIVITIES, activity, grant, learner_id_for, make_family, make_provider

    family = await make_family(engine, "ties@example.org")
    provider = await make_provider(engine, "Ties", ["activities:read", "activities:contribute"])
    await grant(engine, family, provider, "activities", Action.READ)
    await grant(engine, family, provider, "activities", Action.CONTRIBUTE)
    token = await get_token(client, provider)
    learner = learner_id_for(family, provider)
    same = datetime(2026, 2, 2, tzinfo=UTC)
    items = [activity(n) | {"timestamp": (same if n % 2 else datetime(2026, 2, 1, tzinfo=UTC)).isoformat()} for n in range(9)]
    assert (await gql(client, token, RECORD_ACTIVITIES, {"learner": learner, "items": items})).status_code == 200
    page_query = """query($id: ID!, $after: String) { learner(id: $id) { activities(first: 2, after: $after) {
        nodes { sourceId timestamp } pageInfo { hasNextPage endCursor } } } }"""
    seen, after = [], None
    while True:
        page = (await gql(client, token, page_query, {"id": learner, "after": after})).json()["data"]["learner"]["activities"]
        seen += [n["sourceId"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted(i["sourceId"] for i in items) and len(seen) == len(set(seen)) == 9


async def test_a_bench_run_leaves_the_generated_data_as_it_found_it(engine, database_url, client) -> None:
    """bench/watermark.py: what a run's ingest benchmarks wrote goes; generated data and the
    append-only disclosure log stay."""
    from bench.suite import INGEST_MUTATION, _activity_items
    from bench.watermark import remove_rows_after, watermark
    from hub.records.models import RecordChange

    plan = Plan(learners=2, activities_per_learner=30, seed=7, as_of=datetime(2026, 6, 1, tzinfo=UTC))
    manifest = await generate(engine, database_url, plan, PSEUDONYM_KEY)

    async def counts() -> tuple[int, int, int]:
        async with engine.connect() as conn:
            return tuple([(await conn.execute(select(func.count()).select_from(model))).scalar_one()  # type: ignore[misc]
                          for model in (Activity, RecordChange, DisclosureEvent)])

    generated = await counts()
    start = await watermark(engine)
    bench = manifest.providers[0]
    token = await get_token(client, ProviderClient(UUID(bench.provider_id), bench.client_id, bench.client_secret))
    for i, learner in enumerate(manifest.sample_learners[:2]):
        body = (await gql(client, token, INGEST_MUTATION, {"id": learner, "items": _activity_items(f"w{i}", 5, i)})).json()
        assert body["data"]["recordActivities"]["created"] == 5, body
    activities, changes, events = await counts()
    assert (activities, changes) == (generated[0] + 10, generated[1] + 10) and events == generated[2] + 2

    assert await remove_rows_after(engine, start) == 10
    assert await counts() == (generated[0], generated[1], generated[2] + 2)
    async with engine.connect() as conn:  # the generated activities are the ones left
        assert (await conn.execute(select(func.max(Activity.id)))).scalar_one() == start.activity_id


def test_server_cpu_is_read_from_proc_for_a_process_and_its_children() -> None:
    """bench/servers.py process_cpu_seconds: the consent-overhead rows divide it by requests."""
    import os
    import time

    from bench.servers import process_cpu_seconds

    before = process_cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # burn 0.3 s of CPU in this process
        pass
    assert 0.2 <= process_cpu_seconds(os.getpid()) - before < 5


def test_spy_summary_counts_own_and_inclusive_samples(tmp_path) -> None:
    from bench.spy import summarize

    raw = tmp_path / "spy.txt"
    raw.write_text("main (app.py:1);handle (app.py:9);from_row (types.py:40) 3\n"
                   "main (app.py:1);handle (app.py:12) 1\n"
                   "main (app.py:2);from_row (types.py:41) 4\n")
    out = summarize(raw, top=5, match="handle|from_row").splitlines()
    assert out[0] == "8 samples; own samples:"
    # Line numbers are folded: the two from_row lines are one function with 7 own samples.
    assert out[1].split() == ["87.5%", "from_row", "(types.py)"] and out[2].split() == ["12.5%", "handle", "(app.py)"]
    inclusive = out[out.index("inclusive, frames matching 'handle|from_row':") + 1:]
    assert [line.split()[0] for line in inclusive] == ["87.5%", "50.0%"]
