"""The family portal over HTTP: every page, every refusal (CSRF, IDOR, age rules), never a 500."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select, update

from hub.accounts.models import LearnerAccount, OutboxMessage
from hub.grants.models import AccessRequest, ConsentGrant, DisclosureEvent
from hub.records.models import Activity, Badge, SkillAssessment
from tests.conftest import ISSUER
from tests.factories import get_token, gql, learner_id_for
from tests.portal_helpers import PASSWORD, csrf_of, make_world, sign_in

READ_SKILLS = "query($id: ID!) { learner(id: $id) { badges { nodes { sourceId } } skills { nodes { proficiency } } } }"
READ_ALL = ("query($id: ID!) { learner(id: $id) { badges { nodes { achievement { name } } } "
            "activities(first: 3) { nodes { timestamp } } } }")


class P:  # the provider as tests.factories wants it
    def __init__(self, world) -> None:  # type: ignore[no-untyped-def]
        self.provider_id, self.client_id, self.client_secret = world.provider_id, world.client_id, world.client_secret


@pytest.fixture
async def other(app):  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        yield http


async def _count(engine, model, *where) -> int:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def _live_grants(engine, learner_id) -> set[str]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        rows = await conn.execute(select(ConsentGrant.section, ConsentGrant.action).where(
            ConsentGrant.learner_id == learner_id, ConsentGrant.revoked_at.is_(None)))
        return {f"{s}:{a}" for s, a in rows}


async def test_home_record_sections_and_pagination(client, engine):
    world = await make_world(engine)
    assert (await client.get("/family")).status_code == 303  # not signed in: to the sign-in page
    await sign_in(client, world.email)
    home = await client.get("/family")
    assert home.status_code == 200
    assert "Kim Parent" in home.text and "Age 10" in home.text and "Guardians control this record" in home.text
    assert re.search(r"Activities: <strong>25</strong>", home.text) and re.search(r"Badges: <strong>3</strong>", home.text)
    assert "1 pending request" in home.text and 'class="count">1' in home.text
    base = f"/family/learners/{world.learner_id}"
    page = await client.get(base)
    assert page.status_code == 200
    assert page.text.count('<svg class="chart"') == 1 and 'role="img"' in page.text
    assert page.text.count('<svg class="spark"') == 1 and "Reading fluency</strong>: 2.5 on 1-4 rubric" in page.text
    assert "Total over these 12 weeks: 25 activities" in page.text
    # Newest first: Bookworm 2 before Bookworm 0.
    assert page.text.index("Bookworm 2") < page.text.index("Bookworm 0")
    first = await client.get(f"{base}/sections/activities")
    assert first.status_code == 200 and first.text.count("<details>") == 20 and "Book 24" in first.text
    after = re.search(r'\?after=([^"]+)"', first.text).group(1)  # type: ignore[union-attr]
    second = await client.get(f"{base}/sections/activities?after={after}")
    assert second.text.count("<details>") == 5 and "Book 0" in second.text and "Older entries" not in second.text
    assert (await client.get(f"{base}/sections/activities?after=garbage")).status_code == 400
    assert (await client.get(f"{base}/sections/wellbeing-nope")).status_code == 404


async def test_requests_approve_some_then_sharing_matrix_and_revocation(client, engine):
    world = await make_world(engine)
    csrf = await sign_in(client, world.email)
    base = f"/family/learners/{world.learner_id}"
    page = await client.get(f"{base}/requests")
    assert "Reading Buddy asks for access" in page.text and "Suggest books at the right level" in page.text
    assert "90 days" in page.text
    # Nothing ticked: refused, nothing granted.
    nothing = await client.post(f"{base}/requests/{world.request_id}", data={"csrf": csrf, "decision": "some"})
    assert nothing.status_code == 400
    decided = await client.post(f"{base}/requests/{world.request_id}", data={
        "csrf": csrf, "decision": "some", "item": ["badges:read", "activities:read"]})
    assert decided.status_code == 303 and decided.headers["location"] == f"{base}/sharing"
    assert {"badges:read", "activities:read"} <= await _live_grants(engine, world.learner_id)
    assert "skills:read" not in await _live_grants(engine, world.learner_id)
    matrix = await client.get(f"{base}/sharing")
    assert "Approved: Reading Buddy may now see activities, see badges." in matrix.text
    assert matrix.text.count("✓ Shared") == 5  # 3 contribute (app and school) + 2 read
    assert "Purpose: Suggest books at the right level" in matrix.text
    # A decided request cannot be decided again.
    again = await client.post(f"{base}/requests/{world.request_id}", data={"csrf": csrf, "decision": "all"})
    assert again.status_code == 400

    token = await get_token(client, P(world))
    lid = learner_id_for(world, P(world))  # type: ignore[arg-type]
    before = (await gql(client, token, READ_ALL, {"id": lid})).json()
    assert len(before["data"]["learner"]["badges"]["nodes"]) == 3

    # One cell: immediate, with a confirmation message; the very next API call is refused.
    cell = await client.post(f"{base}/sharing/revoke", data={
        "csrf": csrf, "scope": "cell", "provider": str(world.provider_id), "section": "badges", "action": "read"})
    assert cell.status_code == 303
    assert "Done: Reading Buddy can no longer read Kim&#39;s badges." in (await client.get(f"{base}/sharing")).text
    after = (await gql(client, token, READ_ALL, {"id": lid})).json()
    assert after["data"]["learner"]["badges"] is None
    assert after["errors"][0]["extensions"]["code"] == "CONSENT_REQUIRED"
    assert after["errors"][0]["extensions"]["reason"] == "grant_revoked"
    assert after["data"]["learner"]["activities"]["nodes"]

    # A row and everything need a confirmation step.
    row = {"csrf": csrf, "scope": "provider", "provider": str(world.provider_id)}
    ask = await client.post(f"{base}/sharing/revoke", data=row)
    assert ask.status_code == 200 and "Stop all sharing with Reading Buddy?" in ask.text
    assert "activities:read" in await _live_grants(engine, world.learner_id)
    assert (await client.post(f"{base}/sharing/revoke", data={**row, "confirm": "yes"})).status_code == 303
    assert await _live_grants(engine, world.learner_id) == {"badges:contribute", "skills:contribute"}  # the school's
    everything = await client.post(f"{base}/sharing/revoke", data={"csrf": csrf, "scope": "all"})
    assert "Stop all sharing with every app and organisation?" in everything.text
    done = await client.post(f"{base}/sharing/revoke", data={"csrf": csrf, "scope": "all", "confirm": "yes"})
    assert done.status_code == 303
    assert "nobody can read or add to Kim&#39;s record any more (2 permissions stopped)" in (await client.get(f"{base}/sharing")).text
    assert await _live_grants(engine, world.learner_id) == set()
    await client.post(f"{base}/sharing/revoke", data={"csrf": csrf, "scope": "all", "confirm": "yes"})
    assert "Nothing was being shared there" in (await client.get(f"{base}/sharing")).text
    # Bad input is a 400, not a 500.
    for bad in ({"scope": "cell", "provider": str(world.provider_id), "section": "nope", "action": "read"},
                {"scope": "cell", "provider": str(world.provider_id), "section": "badges", "action": "eat"},
                {"scope": "sideways"}, {"scope": "provider", "provider": "not-a-uuid"}):
        assert (await client.post(f"{base}/sharing/revoke", data={"csrf": csrf, **bad})).status_code == 400


async def test_approve_all_and_deny(client, engine):
    world = await make_world(engine)
    csrf = await sign_in(client, world.email)
    base = f"/family/learners/{world.learner_id}"
    assert (await client.post(f"{base}/requests/{world.request_id}", data={"csrf": csrf, "decision": "all"})).status_code == 303
    assert set(await _live_grants(engine, world.learner_id)) >= {"badges:read", "skills:read", "activities:read"}
    async with engine.begin() as conn:
        await conn.execute(update(AccessRequest).values(status="pending", approved_items=[], approvals=[]))
    deny = await client.post(f"{base}/requests/{world.request_id}", data={"csrf": csrf, "decision": "deny"})
    assert deny.status_code == 303
    assert await _count(engine, AccessRequest, AccessRequest.status == "denied") == 1
    assert "Denied: Reading Buddy gets nothing" in (await client.get(f"{base}/requests")).text


async def test_history_filters_and_verified_mark(client, engine):
    world = await make_world(engine)
    csrf = await sign_in(client, world.email)
    base = f"/family/learners/{world.learner_id}"
    await client.post(f"{base}/requests/{world.request_id}", data={"csrf": csrf, "decision": "some", "item": ["badges:read"]})
    token = await get_token(client, P(world))
    lid = learner_id_for(world, P(world))  # type: ignore[arg-type]
    await gql(client, token, READ_SKILLS, {"id": lid})  # skills not granted
    page = await client.get(f"{base}/history")
    assert page.status_code == 200
    assert "✓ Verified:</strong> all 2 events" in page.text
    assert "✓ Allowed" in page.text and "✗ Refused (no grant)" in page.text
    only_badges = await client.get(f"{base}/history", params={"section": "badges", "provider": str(world.provider_id)})
    assert "✓ Allowed" in only_badges.text and "Refused" not in only_badges.text
    assert "No events match" in (await client.get(f"{base}/history", params={"provider": str(uuid.uuid4())})).text
    for bad in ({"provider": "x"}, {"section": "nope"}, {"before": "-1"}):
        assert (await client.get(f"{base}/history", params=bad)).status_code == 400
    async with engine.begin() as conn:  # tamper with the log
        await conn.execute(update(DisclosureEvent).where(DisclosureEvent.seq == 1).values(entry_count=999))
    assert "⚠ Not verified" in (await client.get(f"{base}/history")).text


async def test_export_is_the_whole_record(client, engine):
    world = await make_world(engine)
    await sign_in(client, world.email)
    response = await client.get(f"/family/learners/{world.learner_id}/export.json")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    assert response.headers["content-disposition"].startswith('attachment; filename="kinfolio-kim-')
    data = json.loads(response.text)
    assert data["format"] == "kinfolio-record-export/1" and data["learner"]["given_name"] == "Kim"
    assert [e["name"] for e in data["sections"]["badges"]["entries"]] == ["Bookworm 2", "Bookworm 1", "Bookworm 0"]
    assert len(data["sections"]["activities"]["entries"]) == 25 and len(data["sections"]["skills"]["entries"]) == 4
    assert {g["section"] for g in data["grants"]} == {"activities", "badges", "skills"}
    assert data["accessRequests"][0]["status"] == "pending"
    assert data["providers"] == {str(world.provider_id): "Reading Buddy", str(world.school_id): "Kim's School"}
    assert "content_hash" not in data["sections"]["badges"]["entries"][0]


async def test_delete_entry_contributions_and_whole_record_need_confirmation(client, engine):
    world = await make_world(engine)
    csrf = await sign_in(client, world.email)
    base = f"/family/learners/{world.learner_id}"
    entry = f"{base}/entries/badges/{world.badge_ids[0]}"
    hide = await client.post(entry, data={"csrf": csrf, "action": "hide"})
    assert hide.status_code == 303
    assert "Hidden from apps" in (await client.get(f"{base}/sections/badges")).text
    ask = await client.post(entry, data={"csrf": csrf, "action": "delete"})
    assert ask.status_code == 200 and "Delete this entry?" in ask.text
    assert await _count(engine, Badge, Badge.deleted_at.is_(None)) == 3
    assert (await client.post(entry, data={"csrf": csrf, "action": "delete", "confirm": "yes"})).status_code == 303
    assert await _count(engine, Badge, Badge.deleted_at.is_(None)) == 2
    assert (await client.post(entry, data={"csrf": csrf, "action": "delete", "confirm": "yes"})).status_code == 404
    assert (await client.post(entry, data={"csrf": csrf, "action": "explode"})).status_code == 404  # gone already
    entry2 = f"{base}/entries/badges/{world.badge_ids[1]}"
    assert (await client.post(entry2, data={"csrf": csrf, "action": "explode"})).status_code == 400

    page = await client.get(f"{base}/delete")
    assert '<option value="' + str(world.provider_id) + '">Reading Buddy</option>' in page.text
    form = {"csrf": csrf, "what": "provider", "provider": str(world.provider_id)}
    assert "Delete everything Reading Buddy added?" in (await client.post(f"{base}/delete", data=form)).text
    assert await _count(engine, Activity) == 25
    assert (await client.post(f"{base}/delete", data={**form, "confirm": "yes"})).status_code == 303
    assert await _count(engine, Activity) == 0 and await _count(engine, SkillAssessment) == 4  # the school's stay
    assert await _live_grants(engine, world.learner_id) == {"badges:contribute", "skills:contribute"}  # the school's

    other = await make_world(engine, email="sam@example.org", child="Ali", provider="Maths Club")
    assert (await client.post(f"{base}/delete", data={"csrf": csrf, "what": "record"})).status_code == 200
    assert (await client.post(f"{base}/delete", data={"csrf": csrf, "what": "record", "confirm": "yes"})).status_code == 303
    assert await _count(engine, Badge, Badge.learner_id == world.learner_id) == 0
    assert await _live_grants(engine, world.learner_id) == set()
    assert await _count(engine, AccessRequest, AccessRequest.status == "pending") == 1  # only the other family's
    assert await _count(engine, Activity, Activity.learner_id == other.learner_id) == 25  # untouched
    assert (await client.post(f"{base}/delete", data={"csrf": csrf, "what": "nothing"})).status_code == 400


def _post_routes(world, entry_id: int) -> list[tuple[str, dict]]:  # type: ignore[no-untyped-def,type-arg]
    base = f"/family/learners/{world.learner_id}"
    return [
        (f"{base}/entries/badges/{entry_id}", {"action": "delete", "confirm": "yes"}),
        (f"{base}/sharing/revoke", {"scope": "all", "confirm": "yes"}),
        (f"{base}/requests/{world.request_id}", {"decision": "all"}),
        (f"{base}/delete", {"what": "record", "confirm": "yes"}),
        (f"{base}/sign-in", {"email": "kid@example.org"}),
    ]


async def _state(engine):  # type: ignore[no-untyped-def]
    return (await _count(engine, Badge, Badge.deleted_at.is_(None)), await _count(engine, ConsentGrant, ConsentGrant.revoked_at.is_(None)),
            await _count(engine, AccessRequest, AccessRequest.status == "pending"), await _count(engine, LearnerAccount))


async def test_every_form_refuses_a_missing_or_wrong_csrf_token(client, engine):
    world = await make_world(engine, age=14)
    await sign_in(client, world.email)
    before = await _state(engine)
    for url, data in _post_routes(world, world.badge_ids[0]):
        for token in (None, "wrong", ""):
            form = data if token is None else {**data, "csrf": token}
            response = await client.post(url, data=form)
            assert response.status_code == 403, (url, token)
            assert "did not come from Kinfolio" in response.text
    assert await _state(engine) == before


async def test_no_idor_another_familys_ids_are_not_found(client, other, engine):
    mine = await make_world(engine, age=14)
    theirs = await make_world(engine, email="sam@example.org", child="Ali", provider="Maths Club", age=14)
    csrf = await sign_in(client, mine.email)
    await sign_in(other, theirs.email)
    before = await _state(engine)
    gets = ["", "/sections/badges", "/sharing", "/requests", "/history", "/export", "/export.json", "/delete", "/sign-in"]
    for learner in (theirs.learner_id, uuid.uuid4(), "not-a-uuid", "../1"):
        for suffix in gets:
            response = await client.get(f"/family/learners/{learner}{suffix}")
            assert response.status_code == 404, (learner, suffix)
            assert "Ali" not in response.text and "Maths Club" not in response.text
        for url, data in _post_routes(theirs, theirs.badge_ids[0]):
            url = url.replace(str(theirs.learner_id), str(learner))
            assert (await client.post(url, data={**data, "csrf": csrf})).status_code == 404, url
    # Their entry ids and request id under my own learner id: not found either.
    base = f"/family/learners/{mine.learner_id}"
    for entry in theirs.badge_ids:
        response = await client.post(f"{base}/entries/badges/{entry}", data={"csrf": csrf, "action": "delete", "confirm": "yes"})
        assert response.status_code == 404
    assert (await client.post(f"{base}/entries/badges/99999999999999999999", data={"csrf": csrf, "action": "hide"})).status_code == 404
    assert (await client.post(f"{base}/entries/nope/1", data={"csrf": csrf, "action": "hide"})).status_code == 404
    assert (await client.post(f"{base}/requests/{theirs.request_id}", data={"csrf": csrf, "decision": "all"})).status_code == 404
    assert (await client.post(f"{base}/requests/junk", data={"csrf": csrf, "decision": "all"})).status_code == 404
    # Their provider id in my forms changes nothing of theirs.
    await client.post(f"{base}/delete", data={"csrf": csrf, "what": "provider", "provider": str(theirs.provider_id), "confirm": "yes"})
    await client.post(f"{base}/sharing/revoke", data={"csrf": csrf, "scope": "provider", "provider": str(theirs.provider_id),
                                                       "confirm": "yes"})
    assert await _state(engine) == before
    assert "Ali" not in (await client.get("/family")).text
    # Signed out: pages send to sign-in, forms are refused.
    async with httpx.AsyncClient(transport=client._transport, base_url=ISSUER) as anonymous:
        assert (await anonymous.get(base)).status_code == 303
        form = await anonymous.get("/account/login")
        refused = await anonymous.post(f"{base}/sharing/revoke", data={"csrf": csrf_of(form.text), "scope": "all", "confirm": "yes"})
        assert refused.status_code == 401
    assert await _state(engine) == before
    _ = other


async def _invite_and_accept(client, engine, world, email: str) -> str:  # type: ignore[no-untyped-def]
    csrf = await sign_in(client, world.email)
    response = await client.post(f"/family/learners/{world.learner_id}/sign-in", data={"csrf": csrf, "email": email})
    assert response.status_code == 303, response.text
    async with engine.connect() as conn:
        body = (await conn.execute(select(OutboxMessage.body).where(OutboxMessage.to_address == email))).scalar_one()
    link = re.search(r"https://testserver(/account/learner-invite/\S+)", body).group(1)  # type: ignore[union-attr]
    await client.post("/account/logout", data={"csrf": csrf})
    form = await client.get(link)
    assert form.status_code == 200 and email in form.text
    weak = await client.post(link, data={"csrf": csrf_of(form.text), "password": "short"})
    assert weak.status_code == 400
    accepted = await client.post(link, data={"csrf": csrf_of(form.text), "password": "a learner's own password"})
    assert accepted.status_code == 303 and accepted.headers["location"] == "/family"
    assert (await client.get(link)).status_code == 400  # single use
    await client.post("/account/logout", data={"csrf": csrf_of((await client.get("/family")).text)})
    return await sign_in(client, email, "a learner's own password")


async def test_learner_of_13_to_17_sees_record_and_history_but_not_sharing(client, other, engine):
    world = await make_world(engine, age=14)
    young = await make_world(engine, email="young@example.org", child="Tiny", age=9, provider="Tiny App")
    # Under the learner-view age: no sign-in for the child.
    csrf = await sign_in(other, young.email)
    refused = await other.post(f"/family/learners/{young.learner_id}/sign-in", data={"csrf": csrf, "email": "tiny@example.org"})
    assert refused.status_code == 400 and "too young" in refused.text
    assert "Give Tiny a sign-in" not in (await other.get("/family")).text

    csrf = await _invite_and_accept(client, engine, world, "kim@example.org")
    home = await client.get("/family")
    assert "Your learner record" in home.text and "Kim Parent" in home.text and "Young" not in home.text
    assert "Guardians control this record; you can see it" in home.text
    base = f"/family/learners/{world.learner_id}"
    assert (await client.get(base)).status_code == 200
    assert (await client.get(f"{base}/history")).status_code == 200
    assert (await client.get(f"{base}/export.json")).status_code == 200
    assert "Hide from apps" not in (await client.get(f"{base}/sections/badges")).text
    for suffix in ("/sharing", "/requests", "/delete", "/sign-in"):
        response = await client.get(base + suffix)
        assert response.status_code == 403 and "Your family manages sharing until you are 18" in response.text
    before = await _state(engine)
    for url, data in _post_routes(world, world.badge_ids[0]):
        assert (await client.post(url, data={**data, "csrf": csrf})).status_code == 403, url
    assert await _state(engine) == before
    assert (await client.get(f"/family/learners/{young.learner_id}")).status_code == 404
    # The learner's session is not a guardian's: the consent page for apps still asks to sign in.
    assert (await client.get("/account")).headers["location"] == "/family"


async def test_at_18_sharing_is_the_learners_and_the_guardian_loses_access(client, other, engine):
    world = await make_world(engine, age=17)
    csrf = await _invite_and_accept(client, engine, world, "kim@example.org")
    base = f"/family/learners/{world.learner_id}"
    assert (await client.get(f"{base}/sharing")).status_code == 403
    async with engine.begin() as conn:  # Kim turns 18
        from hub.people.models import Learner
        from tests.portal_helpers import years_ago
        await conn.execute(update(Learner).where(Learner.id == world.learner_id).values(date_of_birth=years_ago(18)))
    matrix = await client.get(f"{base}/sharing")
    assert matrix.status_code == 200 and "Who sees what in your record" in matrix.text
    response = await client.post(f"{base}/sharing/revoke", data={
        "csrf": csrf, "scope": "cell", "provider": str(world.school_id), "section": "badges", "action": "contribute"})
    assert response.status_code == 303
    assert "badges:contribute" not in await _live_grants(engine, world.learner_id)
    decided = await client.post(f"{base}/requests/{world.request_id}", data={"csrf": csrf, "decision": "deny"})
    assert decided.status_code == 303
    # The guardian sees that control has passed, and nothing more.
    await sign_in(other, world.email)
    assert "the record is theirs now" in (await other.get("/family")).text
    for suffix in ("", "/sharing", "/history", "/export.json"):
        assert (await other.get(base + suffix)).status_code == 403
    async with engine.connect() as conn:
        revoker = (await conn.execute(select(ConsentGrant.revoked_by).where(
            ConsentGrant.section == "badges", ConsentGrant.action == "contribute"))).scalar_one()
    assert revoker is None  # the learner, not a guardian
    _ = (datetime.now(UTC), PASSWORD)
