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
