"""The change feed: consent-filtered, resumable, and exact under concurrent writers."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter

from sqlalchemy import select

from consent import Action
from hub.db import make_sessionmaker, utcnow
from hub.people.service import delete_learner
from hub.records.models import RecordChange
from hub.records.service import log_changes
from tests.factories import RECORD_ACTIVITIES, activity, get_token, gql, grant, learner_id_for, make_family, make_provider

FEED = """query($after: String, $first: Int!, $sections: [String!]) {
  changes(after: $after, first: $first, sections: $sections) {
    nodes { op section learnerId entryId sourceId activity { sourceId } badge { sourceId } }
    pageInfo { hasNextPage endCursor } } }"""
RETRACT = """mutation($learner: ID!, $ids: [String!]!) {
  retractEntries(learnerId: $learner, section: "activities", sourceIds: $ids) { retracted } }"""


async def drain(client, token, after=None, first=7, sections=None):  # type: ignore[no-untyped-def]
    nodes = []
    while True:
        body = (await gql(client, token, FEED, {"after": after, "first": first, "sections": sections})).json()
        assert "errors" not in body, body
        page = body["data"]["changes"]
        nodes += page["nodes"]
        after = page["pageInfo"]["endCursor"] or after
        if not page["pageInfo"]["hasNextPage"]:
            return nodes, after


async def test_feed_shows_only_what_consent_allows_and_resumes(client, engine):
    shared, private = await make_family(engine, "a@example.org"), await make_family(engine, "b@example.org")
    writer = await make_provider(engine, "Writer", ["activities:contribute"])
    reader = await make_provider(engine, "Reader", ["activities:read", "badges:read"])
    for family in (shared, private):
        await grant(engine, family, writer, "activities", Action.CONTRIBUTE)
    await grant(engine, shared, reader, "activities", Action.READ)
    await grant(engine, private, reader, "badges", Action.READ)  # knows the learner, not its activities
    token_w, token_r = await get_token(client, writer), await get_token(client, reader)
    for family in (shared, private):
        await gql(client, token_w, RECORD_ACTIVITIES, {"learner": learner_id_for(family, writer), "items": [activity(n) for n in range(5)]})
    await gql(client, token_w, RECORD_ACTIVITIES, {"learner": learner_id_for(shared, writer), "items": [{**activity(0), "verb": {"id": "http://adlnet.gov/expapi/verbs/passed", "display": "passed"}}]})
    await gql(client, token_w, RETRACT, {"learner": learner_id_for(shared, writer), "ids": ["act-1"]})

    nodes, cursor = await drain(client, token_r)
    assert {n["learnerId"] for n in nodes} == {learner_id_for(shared, reader)}  # never the other learner's changes
    assert [(n["op"], n["sourceId"]) for n in nodes] == [
        *(("created", f"act-{n}") for n in range(5)), ("updated", "act-0"), ("deleted", "act-1"),
    ]
    assert nodes[0]["activity"] == {"sourceId": "act-0"} and nodes[-1]["activity"] is None
    # Resuming from the last cursor gives only what happened since.
    await gql(client, token_w, RECORD_ACTIVITIES, {"learner": learner_id_for(shared, writer), "items": [activity(9)]})
    more, _ = await drain(client, token_r, after=cursor)
    assert [(n["op"], n["sourceId"]) for n in more] == [("created", "act-9")]
    # The writer, holding only contribute, reads back its own changes (read_own) when its token may read.
    token_w_read = await get_token(client, await make_provider(engine, "Nobody", ["badges:read"]))
    assert (await drain(client, token_w_read))[0] == []


async def test_bad_feed_arguments(client, engine):
    provider = await make_provider(engine, "Feedy", ["activities:read"])
    token = await get_token(client, provider)
    # A forged position beyond BIGINT is the client's error too (the database used to refuse it).
    forged = base64.urlsafe_b64encode(f"feed|{2**63}|1".encode()).decode().rstrip("=")
    for variables, argument in (({"after": "nope", "first": 5}, "after"), ({"after": forged, "first": 5}, "after"),
                                ({"first": 5, "sections": ["grades"]}, "sections"), ({"first": 0}, "first")):
        body = (await gql(client, token, FEED, variables)).json()
        assert body["data"] is None or body["data"].get("changes") is None
        assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}


async def test_no_change_skipped_or_repeated_under_concurrent_writers(client, engine):
    family = await make_family(engine)
    writers = [await make_provider(engine, f"W{i}", ["activities:contribute"]) for i in range(4)]
    reader = await make_provider(engine, "R", ["activities:read"])
    for writer in writers:
        await grant(engine, family, writer, "activities", Action.CONTRIBUTE)
    await grant(engine, family, reader, "activities", Action.READ)
    tokens = [await get_token(client, w) for w in writers]
    token_r = await get_token(client, reader)
    done = asyncio.Event()

    async def write(i: int) -> None:
        for round_ in range(6):
            items = [{**activity(n), "sourceId": f"w{i}-{round_}-{n}"} for n in range(15)]
            body = (await gql(client, tokens[i], RECORD_ACTIVITIES, {"learner": learner_id_for(family, writers[i]), "items": items})).json()
            assert body["data"]["recordActivities"]["created"] == 15, body

    seen: list[str] = []

    async def read() -> None:
        after = None
        while True:
            finished = done.is_set()
            nodes, after = await drain(client, token_r, after=after, first=11)
            seen.extend(n["entryId"] for n in nodes)
            if finished:
                return
            await asyncio.sleep(0)

    reader_task = asyncio.create_task(read())
    await asyncio.gather(*(write(i) for i in range(4)))
    done.set()
    await reader_task
    async with engine.connect() as conn:
        all_changes = (await conn.execute(select(RecordChange.entry_id))).scalars().all()
    assert len(all_changes) == 4 * 6 * 15
    assert Counter(seen) == Counter(str(i) for i in all_changes)  # each exactly once


async def test_feed_reports_changes_of_the_generic_sections_too(client, engine):
    family = await make_family(engine)
    provider = await make_provider(engine, "Mentor", ["pathways:contribute", "pathways:read"])
    await grant(engine, family, provider, "pathways", Action.CONTRIBUTE)
    await grant(engine, family, provider, "pathways", Action.READ)
    token = await get_token(client, provider)
    body = (await gql(client, token, """mutation($l: ID!) { contributePathways(learnerId: $l, pathways: [{
        sourceId: "visit-1", kind: COLLEGE_VISIT, organisation: {name: "State University"},
        occurredAt: "2026-03-01T10:00:00Z"}]) { created } }""", {"l": learner_id_for(family, provider)})).json()
    assert body.get("data", {}).get("contributePathways") == {"created": 1}, body
    nodes, _ = await drain(client, token, sections=["pathways"])
    assert [(n["op"], n["section"], n["sourceId"]) for n in nodes] == [("created", "pathways", "visit-1")]


async def test_erasing_a_learner_takes_their_changes_and_later_changes_still_reach_readers(client, engine):
    """Erasure deletes the learner's change rows (no foreign key does it, see RecordChange), and
    the ids those rows held are never handed out again: a reader whose cursor had passed them
    still sees every later change (a plain SQLite rowid reused them and the reader missed these)."""
    stays, leaves = await make_family(engine, "a@example.org"), await make_family(engine, "b@example.org")
    writer = await make_provider(engine, "Writer", ["activities:contribute"])
    reader = await make_provider(engine, "Reader", ["activities:read"])
    for family in (stays, leaves):
        await grant(engine, family, writer, "activities", Action.CONTRIBUTE)
        await grant(engine, family, reader, "activities", Action.READ)
    token_w, token_r = await get_token(client, writer), await get_token(client, reader)
    await gql(client, token_w, RECORD_ACTIVITIES, {"learner": learner_id_for(stays, writer), "items": [activity(0)]})
    # The erased learner's changes are the newest rows of the feed when they go.
    await gql(client, token_w, RECORD_ACTIVITIES, {"learner": learner_id_for(leaves, writer), "items": [activity(n) for n in range(3)]})
    nodes, cursor = await drain(client, token_r)
    assert len(nodes) == 4

    async with make_sessionmaker(engine)() as session, session.begin():
        assert await delete_learner(session=session, learner_id=leaves.learner_id) is True
    async with engine.connect() as conn:
        assert (await conn.execute(select(RecordChange.id).where(RecordChange.learner_id == leaves.learner_id))).all() == []
        assert (await conn.execute(select(RecordChange.id).where(RecordChange.learner_id == stays.learner_id))).all() != []

    await gql(client, token_w, RECORD_ACTIVITIES, {"learner": learner_id_for(stays, writer), "items": [activity(7)]})
    more, _ = await drain(client, token_r, after=cursor)
    assert [(n["op"], n["learnerId"], n["sourceId"]) for n in more] == [("created", learner_id_for(stays, reader), "act-7")]


async def test_no_change_is_logged_for_a_learner_erased_meanwhile(engine):
    """A write that resolved the learner before an erasure committed logs nothing after it (the
    foreign key used to refuse such rows; log_changes checks, and on PostgreSQL locks, instead)."""

    family = await make_family(engine)
    provider = await make_provider(engine, "Late", ["activities:contribute"])
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        assert await delete_learner(session=session, learner_id=family.learner_id) is True
    async with sessions() as session, session.begin():
        await log_changes(session=session, section="activities", learner_id=family.learner_id,
                          provider_id=provider.provider_id, entries=[(1, "act-1")], op="updated", now=utcnow())
    async with engine.connect() as conn:
        assert (await conn.execute(select(RecordChange.id).where(RecordChange.learner_id == family.learner_id))).all() == []


async def test_two_writers_log_changes_for_one_learner_without_waiting_for_each_other(engine):
    """The learner is held FOR KEY SHARE (PostgreSQL), which writers share: the second logs while
    the first is still open (an exclusive hold made it wait for the first's commit)."""
    from sqlalchemy import text

    family = await make_family(engine)
    provider = await make_provider(engine, "Busy", ["activities:contribute"])
    sessions = make_sessionmaker(engine)

    async def log(session, n):  # type: ignore[no-untyped-def]
        await log_changes(session=session, section="activities", learner_id=family.learner_id,
                          provider_id=provider.provider_id, entries=[(n, f"act-{n}")], op="updated", now=utcnow())

    async with sessions() as first, first.begin():
        await log(first, 1)
        if engine.dialect.name == "postgresql":
            async with sessions() as second, second.begin():
                await second.execute(text("SET LOCAL lock_timeout = '500ms'"))
                await log(second, 2)
    if engine.dialect.name == "sqlite":  # one writer at a time: the second after the first
        async with sessions() as second, second.begin():
            await log(second, 2)
    async with engine.connect() as conn:
        logged = (await conn.execute(select(RecordChange.source_id).where(RecordChange.learner_id == family.learner_id)
                                     .order_by(RecordChange.source_id))).scalars().all()
    assert logged == ["act-1", "act-2"]
