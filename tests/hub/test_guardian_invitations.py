"""The guardian invitation page (/family/invitations/{token}) over HTTP, with every refusal."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from hub.accounts.models import OutboxMessage
from hub.db import make_sessionmaker
from hub.grants.models import ConsentGrant
from hub.people.models import Learner, LearnerGuardian
from hub.providers.service import create_provider
from hub.roster.models import GuardianInvitation
from hub.roster.service import invite_guardian
from tests.conftest import ISSUER
from tests.portal_helpers import PASSWORD, csrf_of, make_world, sign_in

INVITED = "robin.parent@example.org"


@pytest.fixture
async def invitation(engine):  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    async with make_sessionmaker(engine)() as session, session.begin():
        school = await create_provider(session=session, name="Hill Primary", kind="school")
        learner = Learner(given_name="Sam", family_name="Parent", date_of_birth=date(2015, 3, 4))  # as a roster import does
        session.add(learner)
        await session.flush()
        assert await invite_guardian(session=session, provider_id=school.id, learner_id=learner.id, email=INVITED,
                                     learner_name="Sam", base_url=ISSUER, now=now)
    async with make_sessionmaker(engine)() as session:
        body = (await session.execute(select(OutboxMessage.body).where(OutboxMessage.to_address == INVITED))).scalar_one()
    link = next(line for line in body.splitlines() if "/family/invitations/" in line)
    return link.removeprefix(ISSUER), learner.id


async def _guardians(engine, learner_id) -> int:  # type: ignore[no-untyped-def]
    async with make_sessionmaker(engine)() as session:
        return (await session.execute(select(func.count()).select_from(LearnerGuardian)
                                      .where(LearnerGuardian.learner_id == learner_id))).scalar_one()


async def test_sign_up_with_the_invited_address_then_accept(client, engine, invitation):
    path, learner_id = invitation
    shown = await client.get(path)
    assert shown.status_code == 200, shown.text
    assert "Hill Primary" in shown.text and "Sam" in shown.text and INVITED in shown.text
    assert "Nothing is shared" in shown.text and "/account/signup?next=" in shown.text
    # Not signed in: accepting is refused, nothing changes.
    refused = await client.post(path, data={"csrf": csrf_of((await client.get("/account/login")).text)})
    assert refused.status_code == 401 and await _guardians(engine, learner_id) == 0

    form = await client.get(f"/account/signup?next={path}&email={INVITED}")
    assert f'value="{path}"' in form.text and f'value="{INVITED}"' in form.text
    signed_up = await client.post("/account/signup", data={"csrf": csrf_of(form.text), "name": "Robin", "email": INVITED,
                                                           "password": PASSWORD, "next": path})
    assert signed_up.status_code == 303 and signed_up.headers["location"] == path
    page = await client.get(path)
    assert page.status_code == 200 and "Accept: I am Sam" in page.text
    accepted = await client.post(path, data={"csrf": csrf_of(page.text)})
    assert accepted.status_code == 303 and accepted.headers["location"] == f"/family/learners/{learner_id}"
    assert await _guardians(engine, learner_id) == 1
    async with make_sessionmaker(engine)() as session:
        assert (await session.execute(select(func.count()).select_from(ConsentGrant))).scalar_one() == 0  # nothing shared
    assert (await client.get(f"/family/learners/{learner_id}")).status_code == 200
    # Single use.
    again = await client.get(path)
    assert again.status_code == 410 and "already been accepted" in again.text
    assert (await client.post(path, data={"csrf": csrf_of(page.text)})).status_code == 410


async def test_wrong_address_bad_csrf_unknown_and_expired_links(client, engine, invitation, app):
    path, learner_id = invitation
    world = await make_world(engine)  # a family signed in with another address
    await sign_in(client, world.email)
    shown = await client.get(path)
    assert shown.status_code == 403 and f"sent to {INVITED}, but you are signed in as {world.email}" in shown.text
    assert (await client.post(path, data={"csrf": csrf_of(shown.text)})).status_code == 403
    assert (await client.post(path, data={"csrf": "forged"})).status_code == 403
    assert await _guardians(engine, learner_id) == 0

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as anonymous:
        unknown = await anonymous.get("/family/invitations/not-a-real-token")
        assert unknown.status_code == 404 and "not valid" in unknown.text
        assert (await anonymous.get("/family/invitations/" + "x" * 500)).status_code == 404
        old = await anonymous.get(path.replace("/family/invitations/", "/account/invitation/"))
        assert old.status_code == 303 and old.headers["location"] == path
        async with make_sessionmaker(engine)() as session, session.begin():
            await session.execute(update(GuardianInvitation).values(expires_at=datetime.now(UTC) - timedelta(minutes=1)))
        expired = await anonymous.get(path)
        assert expired.status_code == 410 and "expired" in expired.text
    assert await _guardians(engine, learner_id) == 0
