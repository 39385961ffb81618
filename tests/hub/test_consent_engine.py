"""The consent engine against a real database: requests, read_own, windows, age rules, the log, receipts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import pytest
from sqlalchemy import func, select, update

from consent import Action
from hub.config import control_policy
from hub.db import make_sessionmaker
from hub.grants.family import Actor, NotPermitted, decide_request, grant_by, revoke_by
from hub.grants.log import PendingEvent, append_events, verify_log
from hub.grants.models import AccessRequest, DisclosureEvent, LearnerLogHead
from hub.grants.receipts import signed_receipts, verify_receipt
from hub.records.models import Activity
from tests.conftest import PSEUDONYM_KEY
from tests.factories import (
    RECORD_ACTIVITIES,
    activity,
    get_token,
    gql,
    grant,
    learner_id_for,
    make_family,
    make_provider,
)

REQUEST = """mutation($learner: ID!, $items: [AccessItemInput!]!, $purpose: String!, $days: Int) {
  requestAccess(learnerId: $learner, items: $items, purpose: $purpose, durationDays: $days) {
    merged request { id learnerId status purpose durationDays items { section action } approvedItems { section action } }
  }
}"""
ACTIVITIES = "query($id: ID!) { learner(id: $id) { activities(first: 100) { nodes { sourceId } } } }"


def items(*pairs: str) -> list[dict[str, str]]:
    return [dict(zip(("section", "action"), p.split(":"), strict=True)) for p in pairs]


async def _session(engine):  # type: ignore[no-untyped-def]
    return make_sessionmaker(engine)()


async def test_request_merge_partial_approval_and_cooldown(client, engine, settings):
    family = await make_family(engine)
    app_provider = await make_provider(engine, "Reading App", ["badges:read", "skills:read", "activities:read", "activities:contribute"])
    await grant(engine, family, app_provider, "badges", Action.READ)  # the app already knows the learner
    token = await get_token(client, app_provider)
    lid = learner_id_for(family, app_provider)

    first = (await gql(client, token, REQUEST, {"learner": lid, "items": items("skills:read", "badges:read"),
                                                 "purpose": "Suggest books at the right level", "days": 30})).json()
    request = first["data"]["requestAccess"]
    assert request["merged"] is False
    # badges:read is already granted, so only skills:read is asked for.
    assert request["request"]["items"] == [{"section": "skills", "action": "read"}]
    second = (await gql(client, token, REQUEST, {"learner": lid, "items": items("activities:read", "activities:contribute"),
                                                  "purpose": "Track reading sessions"})).json()["data"]["requestAccess"]
    assert second["merged"] is True and second["request"]["id"] == request["request"]["id"]
    assert second["request"]["purpose"] == "Suggest books at the right level / Track reading sessions"
    assert second["request"]["durationDays"] is None  # open-ended wins when merged
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(AccessRequest))).scalar_one() == 1

    # The family approves two of the three items.
    async with make_sessionmaker(engine)() as session, session.begin():
        decided = await decide_request(
            session=session, actor=Actor.guardian(family.guardian_id), request_id=UUID(request["request"]["id"]),
            now=datetime.now(UTC),
            pseudonym_key=PSEUDONYM_KEY, policy=control_policy(settings), approve=["skills:read", "activities:contribute"],
        )
        assert decided.status == "partially_approved"
    listing = (await gql(client, token, "{ accessRequests { nodes { status approvedItems { section action } } } }")).json()
    assert listing["data"]["accessRequests"]["nodes"] == [
        {"status": "partially_approved", "approvedItems": items("activities:contribute", "skills:read")}
    ]
    body = (await gql(client, token, "query($id: ID!) { learner(id: $id) { skills { nodes { id } } activities { nodes { id } } } }",
                      {"id": lid})).json()
    assert body["data"]["learner"]["skills"] == {"nodes": []}  # granted
    # activities: read was not approved, but read_own lets the app read back its own (none yet).
    assert body["data"]["learner"]["activities"] == {"nodes": []}

    # A new request, denied: the provider may not ask again during the cool-down.
    third = (await gql(client, token, REQUEST, {"learner": lid, "items": items("activities:read"), "purpose": "Again"})).json()
    async with make_sessionmaker(engine)() as session, session.begin():
        await decide_request(session=session, actor=Actor.guardian(family.guardian_id),
                             request_id=UUID(third["data"]["requestAccess"]["request"]["id"]), now=datetime.now(UTC),
                             pseudonym_key=PSEUDONYM_KEY, policy=control_policy(settings), deny=True)
    refused = (await gql(client, token, REQUEST, {"learner": lid, "items": items("activities:read"), "purpose": "Please"})).json()
    error = refused["errors"][0]
    assert error["extensions"]["code"] == "REQUEST_COOLDOWN"
    retry_after = datetime.fromisoformat(error["extensions"]["retryAfter"])
    assert timedelta(days=6, hours=23) < retry_after - datetime.now(UTC) <= timedelta(days=7)


async def test_request_refusals(client, engine):
    family = await make_family(engine)
    provider = await make_provider(engine, "Asker", ["badges:read"])
    stranger_family = await make_family(engine, "other@example.org")
    await grant(engine, family, provider, "badges", Action.READ)
    token = await get_token(client, provider)
    lid = learner_id_for(family, provider)
    cases = [
        ({"learner": lid, "items": items("skills:read"), "purpose": "x"}, "INSUFFICIENT_SCOPE"),  # beyond the client's scopes
        ({"learner": lid, "items": items("grades:read"), "purpose": "x"}, "BAD_USER_INPUT"),
        ({"learner": lid, "items": items("badges:read"), "purpose": "x"}, "BAD_USER_INPUT"),  # already granted
        ({"learner": lid, "items": [], "purpose": "x"}, "BAD_USER_INPUT"),
        ({"learner": learner_id_for(stranger_family, provider), "items": items("badges:read"), "purpose": "x"}, "NOT_FOUND"),
    ]
    for variables, code in cases:
        body = (await gql(client, token, REQUEST, variables)).json()
        assert body["data"] == {"requestAccess": None}
        assert body["errors"][0]["extensions"]["code"] == code, variables
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(AccessRequest))).scalar_one() == 0


async def test_read_own_and_data_window(client, engine, settings):
    family = await make_family(engine)
    writer = await make_provider(engine, "Writer", ["activities:contribute", "activities:read"])
    other = await make_provider(engine, "Other", ["activities:contribute"])
    reader = await make_provider(engine, "Windowed Reader", ["activities:read"])
    for provider in (writer, other):
        await grant(engine, family, provider, "activities", Action.CONTRIBUTE)
    base = datetime(2026, 3, 1, tzinfo=UTC)
    for provider, offset in ((writer, 0), (other, 100)):
        token = await get_token(client, provider)
        batch = [{**activity(n + offset, when=base), "sourceId": f"{provider.client_id}-{n}"} for n in range(3)]
        assert (await gql(client, token, RECORD_ACTIVITIES, {"learner": learner_id_for(family, provider), "items": batch})).json()["data"]
    # Writer holds only contribute: it reads back exactly its own three entries.
    token = await get_token(client, writer)
    nodes = (await gql(client, token, ACTIVITIES, {"id": learner_id_for(family, writer)})).json()["data"]["learner"]["activities"]["nodes"]
    assert sorted(n["sourceId"] for n in nodes) == [f"{writer.client_id}-{n}" for n in range(3)]
    # A read grant with a window shows only entries dated from its start.
    async with make_sessionmaker(engine)() as session, session.begin():
        await grant_by(session=session, actor=Actor.guardian(family.guardian_id), learner_id=family.learner_id,
                       provider_id=reader.provider_id, section="activities", action=Action.READ, purpose="recent only",
                       now=datetime.now(UTC), pseudonym_key=PSEUDONYM_KEY, policy=control_policy(settings),
                       data_from=base + timedelta(minutes=101))
    token = await get_token(client, reader)
    nodes = (await gql(client, token, ACTIVITIES, {"id": learner_id_for(family, reader)})).json()["data"]["learner"]["activities"]["nodes"]
    assert [n["sourceId"] for n in nodes] == [f"{other.client_id}-2", f"{other.client_id}-1"]


async def test_revocation_can_delete_the_providers_contributions(client, engine, settings):
    family = await make_family(engine)
    keep = await make_provider(engine, "Keep", ["activities:contribute"])
    drop = await make_provider(engine, "Drop", ["activities:contribute"])
    for provider in (keep, drop):
        await grant(engine, family, provider, "activities", Action.CONTRIBUTE)
        token = await get_token(client, provider)
        batch = [{**activity(n), "sourceId": f"{provider.client_id}-{n}"} for n in range(4)]
        await gql(client, token, RECORD_ACTIVITIES, {"learner": learner_id_for(family, provider), "items": batch})
    policy = control_policy(settings)
    async with make_sessionmaker(engine)() as session, session.begin():
        assert await revoke_by(session=session, actor=Actor.guardian(family.guardian_id), learner_id=family.learner_id,
                               provider_id=keep.provider_id, now=datetime.now(UTC), policy=policy) == (1, 0)
        assert await revoke_by(session=session, actor=Actor.guardian(family.guardian_id), learner_id=family.learner_id,
                               provider_id=drop.provider_id, now=datetime.now(UTC), policy=policy,
                               delete_contributions=True) == (1, 4)
    async with engine.connect() as conn:
        providers = (await conn.execute(select(Activity.provider_id))).scalars().all()
    assert set(providers) == {keep.provider_id} and len(providers) == 4


async def test_age_decides_who_may_grant(engine, settings):
    today = datetime.now(UTC)
    adult_dob = date(today.year - 18, 1, 1) if (today.month, today.day) >= (1, 1) else date(today.year - 19, 1, 1)
    family = await make_family(engine, dob=adult_dob)
    provider = await make_provider(engine, "Uni", ["badges:read"])
    policy = control_policy(settings)
    async with make_sessionmaker(engine)() as session, session.begin():
        with pytest.raises(NotPermitted, match="control has passed to the learner"):
            await grant_by(session=session, actor=Actor.guardian(family.guardian_id), learner_id=family.learner_id,
                           provider_id=provider.provider_id, section="badges", action=Action.READ, purpose="admission",
                           now=today, pseudonym_key=PSEUDONYM_KEY, policy=policy)
        grant_row, created = await grant_by(session=session, actor=Actor.learner(), learner_id=family.learner_id,
                                            provider_id=provider.provider_id, section="badges", action=Action.READ,
                                            purpose="admission", now=today, pseudonym_key=PSEUDONYM_KEY, policy=policy)
        assert created and grant_row.granted_by_learner


async def test_disclosure_log_counts_chains_and_detects_tampering(client, engine):
    family = await make_family(engine)
    provider = await make_provider(engine, "Logged", ["activities:contribute", "activities:read", "skills:read"])
    await grant(engine, family, provider, "activities", Action.CONTRIBUTE)
    await grant(engine, family, provider, "activities", Action.READ)
    token = await get_token(client, provider)
    lid = learner_id_for(family, provider)
    await gql(client, token, RECORD_ACTIVITIES, {"learner": lid, "items": [activity(n) for n in range(7)]})
    # Two reads of the same section in one request: one event, counts added.
    await gql(client, token, "query($id: ID!) { learner(id: $id) { a: activities(first: 2) { nodes { id } } b: activities(first: 5) { nodes { id } } skills { nodes { id } } } }", {"id": lid})
    async with engine.connect() as conn:
        events = (await conn.execute(select(DisclosureEvent.seq, DisclosureEvent.section, DisclosureEvent.action,
                                            DisclosureEvent.outcome, DisclosureEvent.entry_count, DisclosureEvent.token_id,
                                            DisclosureEvent.purpose).order_by(DisclosureEvent.seq))).all()
    assert [tuple(e[:5]) for e in events] == [
        (1, "activities", "contribute", "allowed", 7),
        (2, "activities", "read", "allowed", 7),
        (3, "skills", "read", "denied", None),
    ]
    assert all(e.token_id for e in events) and events[0].purpose == "testing"
    async with make_sessionmaker(engine)() as session:
        assert await verify_log(session=session) == (3, [])
    async with engine.begin() as conn:
        await conn.execute(update(DisclosureEvent).where(DisclosureEvent.seq == 2).values(entry_count=0))
    async with make_sessionmaker(engine)() as session:
        checked, problems = await verify_log(session=session, learner_ids=[family.learner_id])
    assert checked == 3 and [(p.seq, p.problem) for p in problems] == [(2, "event content does not match its hash (edited)")]
    async with engine.begin() as conn:
        await conn.execute(update(LearnerLogHead).values(seq=2))
    async with make_sessionmaker(engine)() as session:
        _, problems = await verify_log(session=session)
    assert any("chain head" in p.problem for p in problems)


async def test_concurrent_requests_for_one_learner_never_fork_the_chain(client, engine):
    import asyncio

    family = await make_family(engine)
    provider = await make_provider(engine, "Busy", ["activities:contribute"])
    await grant(engine, family, provider, "activities", Action.CONTRIBUTE)
    token = await get_token(client, provider)
    lid = learner_id_for(family, provider)
    responses = await asyncio.gather(*(
        gql(client, token, RECORD_ACTIVITIES, {"learner": lid, "items": [activity(1000 * k + n) for n in range(20)]})
        for k in range(8)
    ))
    assert all(r.json().get("data", {}).get("recordActivities") for r in responses), [r.json() for r in responses]
    async with make_sessionmaker(engine)() as session:
        checked, problems = await verify_log(session=session)
    assert (checked, problems) == (8, [])


async def test_log_head_hint_extends_in_one_step_and_a_stale_one_falls_back_to_locking(engine):
    from sqlalchemy import event as sa_event

    family = await make_family(engine)
    provider = await make_provider(engine, "Hinted", ["badges:read"])

    def pending(section: str) -> PendingEvent:
        return PendingEvent(at=datetime.now(UTC), learner_id=family.learner_id, provider_id=provider.provider_id,
                            client_id=provider.client_id, token_id=None, section=section, action="read",
                            outcome="allowed", reason=None, grant_id=None, purpose=None)

    async def append(section: str, hint: tuple[int, str] | None) -> int:
        """Append one event with this head hint; the number of SQL statements it took."""
        statements: list[str] = []
        listener = lambda *args: statements.append(args[2])  # noqa: E731 (before_cursor_execute)
        sa_event.listen(engine.sync_engine, "before_cursor_execute", listener)
        try:
            async with make_sessionmaker(engine)() as session:
                await session.connection()  # the transaction begins outside the count
                statements.clear()
                await append_events(session=session, events=[pending(section)],
                                    seen_heads={family.learner_id: hint} if hint else None)
                await session.commit()
        finally:
            sa_event.remove(engine.sync_engine, "before_cursor_execute", listener)
        return len([s for s in statements if not s.upper().startswith(("COMMIT", "BEGIN"))])

    async def head() -> tuple[int, str]:
        async with engine.connect() as conn:
            return tuple((await conn.execute(select(LearnerLogHead.seq, LearnerLogHead.hash))).one())  # type: ignore[return-value]

    unhinted = await append("badges", None)  # creates the head through the locking path
    first_head = await head()
    hinted = await append("skills", first_head)  # the head is still where it was seen
    stale = await append("activities", first_head)  # it has moved since: the conditional step writes nothing
    postgres = engine.dialect.name == "postgresql"
    assert hinted == (1 if postgres else 2) and hinted < unhinted
    assert stale == 1 + unhinted  # the conditional update that matched nothing, then the locking path
    async with engine.connect() as conn:
        events = (await conn.execute(select(DisclosureEvent.seq, DisclosureEvent.section).order_by(DisclosureEvent.seq))).all()
    assert [tuple(e) for e in events] == [(1, "badges"), (2, "skills"), (3, "activities")]
    assert (await head())[0] == 3
    async with make_sessionmaker(engine)() as session:
        assert await verify_log(session=session) == (3, [])


async def test_consent_receipts_are_signed_per_grant_and_revocation(engine, app, settings):
    family = await make_family(engine)
    provider = await make_provider(engine, "Receipted", ["badges:read"])
    await grant(engine, family, provider, "badges", Action.READ)
    async with make_sessionmaker(engine)() as session, session.begin():
        await revoke_by(session=session, actor=Actor.guardian(family.guardian_id), learner_id=family.learner_id,
                        provider_id=provider.provider_id, now=datetime.now(UTC), policy=control_policy(settings))
    keys = app.state.hub.signing_keys
    async with make_sessionmaker(engine)() as session:
        receipts = await signed_receipts(session=session, learner_id=family.learner_id, signing_keys=keys.private,
                                         issuer=settings.issuer, policy_name=settings.consent_policy_name)
    assert [r["receipt"]["kind"] for r in receipts] == ["grant", "revocation"]
    for item in receipts:
        assert verify_receipt(item["jws"], keys.public) == item["receipt"]
    first = receipts[0]["receipt"]
    assert first["recipient"]["name"] == "Receipted"
    assert first["services"][0]["purposes"][0]["piiCategory"] == ["badges"]
    tampered = receipts[0]["jws"].split(".")
    tampered[1] = tampered[1][:-2] + ("AA" if tampered[1][-2:] != "AA" else "BB")
    with pytest.raises(Exception):
        verify_receipt(".".join(tampered), keys.public)


async def test_sensitive_section_needs_every_guardian_under_that_policy(client, engine, settings, monkeypatch):
    from consent import sections as catalogue_module
    from consent.control import ControlPolicy
    from hub.people.models import LearnerGuardian
    from hub.people.service import create_guardian

    sensitive = catalogue_module.Section(name="wellbeing", sensitive=True, description="test-only sensitive section")
    extended = {**catalogue_module.catalogue(), "wellbeing": sensitive}
    monkeypatch.setattr(catalogue_module, "catalogue", lambda: extended)
    policy = ControlPolicy(all_guardians_for_sensitive=True)
    family = await make_family(engine)
    provider = await make_provider(engine, "Coach", ["badges:read"])
    await grant(engine, family, provider, "badges", Action.READ)
    async with make_sessionmaker(engine)() as session, session.begin():
        second = await create_guardian(session=session, email="second@example.org", display_name="Second")
        session.add(LearnerGuardian(learner_id=family.learner_id, guardian_id=second.id))
        with pytest.raises(NotPermitted, match="needs the approval of all 2 guardians"):
            await grant_by(session=session, actor=Actor.guardian(family.guardian_id), learner_id=family.learner_id,
                           provider_id=provider.provider_id, section="wellbeing", action=Action.READ, purpose="x",
                           now=datetime.now(UTC), pseudonym_key=PSEUDONYM_KEY, policy=policy)
        request = AccessRequest(learner_id=family.learner_id, provider_id=provider.provider_id, client_id=provider.client_id,
                                items=["wellbeing:read", "badges:contribute"], purpose="fitness coaching", status="pending",
                                approved_items=[], approvals=[])
        session.add(request)
        await session.flush()
        first = await decide_request(session=session, actor=Actor.guardian(family.guardian_id), request_id=request.id,
                                     now=datetime.now(UTC), pseudonym_key=PSEUDONYM_KEY, policy=policy)
        # The non-sensitive item is granted at once; the sensitive one waits for the second guardian.
        assert (first.status, first.approved_items) == ("pending", ["badges:contribute"])
        done = await decide_request(session=session, actor=Actor.guardian(second.id), request_id=request.id,
                                    now=datetime.now(UTC), pseudonym_key=PSEUDONYM_KEY, policy=policy, approve=["wellbeing:read"])
        assert (done.status, done.approved_items) == ("approved", ["badges:contribute", "wellbeing:read"])
