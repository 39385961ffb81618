"""A page of learners with three sections each runs a bounded number of SQL statements."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta


from consent import Action
from hub.db import make_sessionmaker
from hub.grants.service import grant_access
from hub.people.models import Learner
from tests.conftest import PSEUDONYM_KEY
from tests.factories import get_token, gql, make_provider, statements_during

PAGE = """query($first: Int!) { learners(first: $first) { nodes { id
  badges(first: 5) { nodes { id } }
  skills(first: 5) { nodes { id } }
  activities(first: 5) { nodes { id } } } } }"""


async def _learners_with_grants(engine, provider, count: int) -> None:  # type: ignore[no-untyped-def]
    async with make_sessionmaker(engine)() as session, session.begin():
        learners = [Learner(given_name="F", family_name=secrets.token_hex(3), date_of_birth=date(2012, 1, 1)) for _ in range(count)]
        session.add_all(learners)
        await session.flush()
        for learner in learners:
            for section in ("badges", "skills", "activities"):
                await grant_access(session=session, learner_id=learner.id, provider_id=provider.provider_id,
                                   section=section, action=Action.READ, purpose="fan-out", granted_by=None,
                                   now=datetime.now(UTC) - timedelta(minutes=1), pseudonym_key=PSEUDONYM_KEY)


async def _statements_for(client, engine, token: str, first: int) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    with statements_during(engine) as seen:
        body = (await gql(client, token, PAGE, {"first": first})).json()
    return len(seen), body


async def test_learners_page_with_three_sections_is_a_bounded_number_of_statements(client, engine):
    small = await make_provider(engine, "Small", ["badges:read", "skills:read", "activities:read"])
    large = await make_provider(engine, "Large", ["badges:read", "skills:read", "activities:read"])
    await _learners_with_grants(engine, small, 10)
    await _learners_with_grants(engine, large, 100)
    small_count, small_body = await _statements_for(client, engine, await get_token(client, small), 10)
    large_count, large_body = await _statements_for(client, engine, await get_token(client, large), 100)
    assert len(small_body["data"]["learners"]["nodes"]) == 10 and "errors" not in small_body
    assert len(large_body["data"]["learners"]["nodes"]) == 100 and "errors" not in large_body
    # token + page + grants + one per section + log (4) (+ BEGIN on SQLite): the same for 10 and 100.
    assert small_count == large_count <= 12, (small_count, large_count)
    print(f"statements for a page of 100 learners x 3 sections: {large_count}")


async def _learners_with_activities(engine, provider, count: int, per_learner: int) -> None:  # type: ignore[no-untyped-def]
    from hub.records.models import Activity

    await _learners_with_grants(engine, provider, count)
    now = datetime.now(UTC)
    async with make_sessionmaker(engine)() as session, session.begin():
        from sqlalchemy import select

        from hub.grants.models import ConsentGrant

        learner_ids = (await session.execute(select(ConsentGrant.learner_id).where(
            ConsentGrant.provider_id == provider.provider_id).distinct())).scalars().all()
        for learner_id in learner_ids:
            tag = learner_id.hex[:8]
            session.add_all(Activity(
                learner_id=learner_id, provider_id=provider.provider_id, source_id=f"{tag}-{n}", content_hash="0" * 64,
                created_at=now, updated_at=now, verb_id="http://adlnet.gov/expapi/verbs/completed", verb_display="completed",
                object_id=f"https://lms.example.org/{tag}/{n}", timestamp=now - timedelta(hours=per_learner - n),
            ) for n in range(per_learner))


async def test_each_learner_of_a_page_gets_their_own_newest_entries(client, engine):
    """Many learners' pages come from one statement (a UNION ALL on SQLite, built once per page
    shape and count): two providers' pages of the same size get each learner's own entries."""
    query = """query($first: Int!) { learners(first: $first) { nodes { id activities(first: 3) { nodes { sourceId } } } } }"""
    for name in ("One", "Two"):
        provider = await make_provider(engine, name, ["activities:read"])
        await _learners_with_activities(engine, provider, 4, per_learner=5)
        body = (await gql(client, await get_token(client, provider), query, {"first": 4})).json()
        assert "errors" not in body, body
        pages = [[a["sourceId"] for a in node["activities"]["nodes"]] for node in body["data"]["learners"]["nodes"]]
        assert len(pages) == 4
        tags = {page[0].split("-")[0] for page in pages}
        assert len(tags) == 4  # four learners, four different owners
        for page in pages:
            tag = page[0].split("-")[0]
            assert page == [f"{tag}-4", f"{tag}-3", f"{tag}-2"]  # theirs only, newest first
