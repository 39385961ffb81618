"""xAPI statements from files, end to end through the hub's public API (in process)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from connectors import state
from connectors.runtime import replay_dead_letters, run_instance
from hub.db import make_sessionmaker
from tests.connectors.helpers import (
    activity_state, asgi_http, connector_provider, count_activities, create, instance_config, linked_family,
)

pytestmark = pytest.mark.samples


@pytest.fixture
def datasim(samples_dir):  # type: ignore[no-untyped-def]
    path = samples_dir / "xapi" / "datasim" / "tccc_dev-statements.json"
    statements = json.loads(path.read_text())
    return path, Counter(s["actor"]["mbox"].removeprefix("mailto:") for s in statements)


async def test_sample_import_reports_exactly_the_refused_and_unknown_learners(engine, app, monkeypatch, datasim):
    path, per_actor = datasim
    provider = await connector_provider(engine, monkeypatch)
    await linked_family(engine, provider, "alice@example.org", grant_activities=True)
    await linked_family(engine, provider, "bob@example.org", grant_activities=True)
    await linked_family(engine, provider, "sally@example.org", grant_activities=False)  # linked, no consent
    # fred, steve and phil are not linked: held back, never guessed.
    await create(engine, "datasim", "xapi-file", instance_config(provider, {"paths": [str(path)], "page_size": 500}))
    sessions = make_sessionmaker(engine)

    async with asgi_http(app) as http:
        first = await run_instance(sessions=sessions, name="datasim", http=http)
    granted = per_actor["alice@example.org"] + per_actor["bob@example.org"]
    unknown = per_actor["fred@example.org"] + per_actor["steve@example.org"] + per_actor["phil@example.org"]
    r = first.report
    assert first.status == "succeeded"
    assert (r.read, r.created, r.updated, r.unchanged, r.invalid) == (2814, granted, 0, 0, 0)
    assert dict(r.refused) == {"no_grant": per_actor["sally@example.org"]}
    assert dict(r.held) == {"unknown_learner": unknown}
    assert await count_activities(engine, provider) == granted
    letters = await state.dead_letters(sessions=sessions, name="datasim")
    assert len(letters) == unknown and {l.reason_code for l in letters} == {"unknown_learner"}
    before = await activity_state(engine, provider)

    # Incremental: the cursor is at the end, nothing is read.
    async with asgi_http(app) as http:
        again = await run_instance(sessions=sessions, name="datasim", http=http)
    assert again.report.read == 0

    # A full re-read changes nothing.
    async with asgi_http(app) as http:
        full = await run_instance(sessions=sessions, name="datasim", http=http, full=True)
    assert (full.report.created, full.report.updated, full.report.unchanged) == (0, 0, granted)
    assert await activity_state(engine, provider) == before

    # Fred's family links his account and consents: replaying the dead letters imports his, only.
    await linked_family(engine, provider, "fred@example.org", grant_activities=True)
    async with asgi_http(app) as http:
        replay = await replay_dead_letters(sessions=sessions, name="datasim", http=http)
    assert replay.created == per_actor["fred@example.org"]
    assert dict(replay.held) == {"unknown_learner": per_actor["steve@example.org"] + per_actor["phil@example.org"]}
    assert len(await state.dead_letters(sessions=sessions, name="datasim")) == replay.held["unknown_learner"]
    assert await count_activities(engine, provider) == granted + per_actor["fred@example.org"]
