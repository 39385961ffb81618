"""A family erases a learner while a provider's request about them runs.

The erasure deletes the learner's record and disclosure log (ON DELETE CASCADE). A request that
writes holds the learner from its consent decision on, so the erasure waits for it and then
removes what it stored; a request whose learner is already gone answers "learner not found"; a
read whose learner is erased before its disclosure could be logged gives nothing out. On SQLite
every transaction holds the write lock from its start, so the erasure waits in every case; the
tests check that too.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import func, select

from hub.db import make_sessionmaker
from hub.grants.models import DisclosureEvent, LearnerLogHead
from hub.people.service import delete_learner
from hub.records.models import Activity, RecordChange
from tests.factories import RECORD_ACTIVITIES, activity, gql
from tests.hub.test_contributions import lid, setup  # noqa: F401  (fixture)

READ = "query($id: ID!) { learner(id: $id) { activities(first: 5) { nodes { sourceId } } } }"


async def _count(engine, model, **where) -> int:  # type: ignore[no-untyped-def]
    query = select(func.count()).select_from(model).where(*(getattr(model, k) == v for k, v in where.items()))
    async with engine.connect() as conn:
        return (await conn.execute(query)).scalar_one()


async def _erase(engine, learner_id) -> bool:  # type: ignore[no-untyped-def]
    async with make_sessionmaker(engine)() as session, session.begin():
        return await delete_learner(session=session, learner_id=learner_id)


def _sqlite_write_lock_is_held(engine) -> bool:  # type: ignore[no-untyped-def]
    """True if another connection cannot begin a write now (the request holds the lock)."""
    other = sqlite3.connect(engine.url.database, timeout=0.1, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return True
    else:
        other.execute("ROLLBACK")
        return False
    finally:
        other.close()


async def test_an_erasure_during_a_batch_waits_for_it_then_removes_what_it_stored(client, engine, setup, monkeypatch):
    from hub.graphql import schema

    family, _, token = setup
    original = schema.record_service.contribute_entries
    erasure: list[asyncio.Task[bool]] = []

    async def contribute_while_the_family_erases(**kwargs):  # type: ignore[no-untyped-def]
        erasure.append(asyncio.create_task(_erase(engine, family.learner_id)))
        await asyncio.sleep(0.3)
        assert not erasure[0].done(), "the erasure must wait for the request that holds the learner"
        return await original(**kwargs)

    monkeypatch.setattr(schema.record_service, "contribute_entries", contribute_while_the_family_erases)
    body = (await gql(client, token, RECORD_ACTIVITIES, {"learner": lid(setup), "items": [activity(1)]})).json()
    assert body["data"]["recordActivities"]["created"] == 1, body
    assert await asyncio.wait_for(erasure[0], 10) is True
    # The erasure saw the committed batch: nothing of the learner is left.
    assert await _count(engine, Activity) == 0
    assert await _count(engine, RecordChange) == 0
    assert await _count(engine, DisclosureEvent, learner_id=family.learner_id) == 0


async def test_a_batch_arriving_during_an_erasure_waits_for_it_and_finds_no_learner(client, engine, setup):
    """The erasure has deleted the learner but not committed when the batch resolves them: the
    batch waits (PostgreSQL: the resolving statement holds the learner; SQLite: the write lock),
    then answers "learner not found" and stores nothing."""
    family, _, token = setup
    async with make_sessionmaker(engine)() as erasure, erasure.begin():
        assert await delete_learner(session=erasure, learner_id=family.learner_id) is True
        batch = asyncio.create_task(gql(client, token, RECORD_ACTIVITIES, {"learner": lid(setup), "items": [activity(1)]}))
        await asyncio.sleep(0.5)
        assert not batch.done(), "the batch must wait for the erasure in progress"
    body = (await asyncio.wait_for(batch, 15)).json()
    assert body["data"]["recordActivities"] is None
    assert [(e["extensions"]["code"], e["message"]) for e in body["errors"]] == [("NOT_FOUND", "learner not found")]
    assert await _count(engine, Activity) == 0
    assert await _count(engine, RecordChange) == 0


async def test_a_read_whose_learner_is_erased_before_it_is_logged_gives_nothing_out(client, engine, setup,
                                                                                   monkeypatch):
    """The erasure commits after the read loaded the record and before its disclosure is logged:
    a disclosure that cannot be logged must not happen."""
    from hub.grants import enforce

    family, _, token = setup
    await gql(client, token, RECORD_ACTIVITIES, {"learner": lid(setup), "items": [activity(1)]})
    original = enforce.append_events
    erasure: list[str] = []

    async def erase_first(**kwargs):  # type: ignore[no-untyped-def]
        if engine.dialect.name == "sqlite":
            erasure.append("waited" if _sqlite_write_lock_is_held(engine) else "interleaved")
        else:
            assert await _erase(engine, family.learner_id) is True
            erasure.append("committed")
        return await original(**kwargs)

    monkeypatch.setattr(enforce, "append_events", erase_first)
    response = await gql(client, token, READ, {"id": lid(setup)})
    assert response.status_code == 200
    body = response.json()
    if engine.dialect.name == "sqlite":
        assert erasure == ["waited"]
        assert body["data"]["learner"]["activities"]["nodes"] == [{"sourceId": "act-1"}], body
        return
    assert erasure == ["committed"]
    assert body.get("data") is None, body
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"], body
    assert "erased" in body["errors"][0]["message"]
    assert await _count(engine, DisclosureEvent, learner_id=family.learner_id) == 0
    assert await _count(engine, LearnerLogHead, learner_id=family.learner_id) == 0


async def test_holding_a_learner_that_is_gone_names_them(engine, setup):
    import uuid

    from hub.grants.log import LearnersErased, hold_learners

    family, _, _ = setup
    gone = uuid.uuid4()
    async with make_sessionmaker(engine)() as session, session.begin():
        await hold_learners(session, [family.learner_id])  # present: nothing raised
        with pytest.raises(LearnersErased) as erased:
            await hold_learners(session, [gone, family.learner_id])
    assert erased.value.learner_ids == [gone]


async def test_requests_hold_a_learner_together_and_only_the_erasure_waits(engine, setup):
    """PostgreSQL: FOR KEY SHARE, not an exclusive lock: a second request about the same learner
    holds them at once (an exclusive hold queued every request about a learner behind the
    previous one's commit: the revocation benchmark's first refusal went from 50 to 550 ms),
    while the erasure's DELETE must wait. SQLite: a learner read in the transaction costs nothing."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from hub.grants.log import hold_learners
    from tests.factories import statements_during

    family, _, _ = setup
    sessions = make_sessionmaker(engine)
    if engine.dialect.name == "sqlite":
        async with sessions() as session, session.begin():
            with statements_during(engine) as seen:
                await hold_learners(session, [family.learner_id], read_in_this_transaction=True)
        assert seen == []
        return
    async with sessions() as first, first.begin():
        await hold_learners(first, [family.learner_id])
        async with sessions() as second, second.begin():
            await second.execute(text("SET LOCAL lock_timeout = '500ms'"))
            await hold_learners(second, [family.learner_id], read_in_this_transaction=True)  # does not wait
        async with sessions() as erasure, erasure.begin():
            await erasure.execute(text("SET LOCAL lock_timeout = '200ms'"))
            with pytest.raises(DBAPIError, match="lock timeout"):
                await delete_learner(session=erasure, learner_id=family.learner_id)


async def test_a_write_holds_its_learner_in_the_statement_that_resolves_them(client, engine, setup):
    """No statement of its own for the hold: on PostgreSQL the pairwise-id lookup of a mutation
    locks the learner (FOR KEY SHARE OF learner); a query's lookup locks nothing."""
    from tests.factories import statements_during

    _, _, token = setup
    # The learner's first logged event starts their log head (and holds them there); then the usual case.
    await gql(client, token, RECORD_ACTIVITIES, {"learner": lid(setup), "items": [activity(0)]})
    with statements_during(engine) as written:
        body = (await gql(client, token, RECORD_ACTIVITIES, {"learner": lid(setup), "items": [activity(1)]})).json()
    assert body["data"]["recordActivities"]["created"] == 1, body
    with statements_during(engine) as read:
        assert (await gql(client, token, READ, {"id": lid(setup)})).json()["data"]["learner"]
    holds = [s for s in written if "FOR KEY SHARE" in s]
    if engine.dialect.name == "sqlite":
        assert holds == []
        return
    resolving = [s for s in holds if "learner_pseudonym" in s]
    assert len(resolving) == 1 and resolving[0].rstrip().endswith("FOR KEY SHARE OF learner"), holds
    assert [s for s in holds if s.startswith("SELECT learner.id")] == [], "no statement of its own"
    # The read holds the learner only where it logs (in the statement that moves the log head).
    assert [s for s in read if "FOR KEY SHARE" in s and "learner_pseudonym" in s] == []
