"""Random worlds (drawn by Hypothesis) run through the real enforcement path and database:
no access without a live covering grant, every decision logged once, the chain verifies."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from consent import Action
from consent.sections import all_scopes, parse_scope
from hub.db import make_sessionmaker
from hub.grants.enforce import AccessDenied, LearnerNotFound, ProviderAccess
from hub.grants.log import verify_log
from hub.grants.models import DisclosureEvent
from hub.grants.service import grant_access, revoke_access
from hub.oauth.bearer import TokenContext
from tests.conftest import PSEUDONYM_KEY
from tests.factories import make_family, make_provider

# Every grantable (section, action) pair: the catalogue decides which actions a section offers.
PAIRS = [(section.name, action) for section, action in map(parse_scope, all_scopes())]
minutes = st.integers(min_value=-600, max_value=600)
grant_spec = st.tuples(st.integers(0, 2), st.integers(0, 2), st.sampled_from(PAIRS), minutes, st.none() | minutes,
                       st.none() | minutes).map(lambda t: (t[0], t[1], *t[2], *t[3:]))
attempt = st.tuples(st.integers(0, 2), st.integers(0, 2), st.sampled_from(PAIRS)).map(lambda t: (t[0], t[1], *t[2]))
world = st.fixed_dictionaries({"grants": st.lists(grant_spec, max_size=12), "attempts": st.lists(attempt, min_size=1, max_size=15)})


def draw_worlds(count: int) -> list[dict]:
    drawn: list[dict] = []

    @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(world)
    def collect(w):  # type: ignore[no-untyped-def]
        drawn.append(w)

    collect()
    return drawn


async def test_random_worlds_through_the_enforcement_path(engine):
    for w in draw_worlds(12):
        tag = secrets.token_hex(3)
        families = [await make_family(engine, f"{tag}-{i}@example.org") for i in range(3)]
        providers = [await make_provider(engine, f"{tag}-P{i}", all_scopes()) for i in range(3)]
        now = datetime.now(UTC)
        sessions = make_sessionmaker(engine)
        async with sessions() as session, session.begin():
            for p, lrn, section, action, granted, expires, revoked in w["grants"]:
                granted_at = now + timedelta(minutes=granted)
                expires_at = None if expires is None else granted_at + timedelta(minutes=abs(expires) + 1)
                row, _ = await grant_access(
                    session=session, learner_id=families[lrn].learner_id, provider_id=providers[p].provider_id,
                    section=section, action=action, purpose="world", granted_by=families[lrn].guardian_id,
                    now=granted_at, pseudonym_key=PSEUDONYM_KEY,
                )
                row.expires_at = expires_at
                if revoked is not None:
                    await revoke_access(session=session, learner_id=families[lrn].learner_id,
                                        provider_id=providers[p].provider_id, revoked_by=None,
                                        now=now + timedelta(minutes=revoked), section=section, action=action)
        outcomes: dict[tuple, str] = {}
        for p, lrn, section, action in w["attempts"]:
            async with sessions() as session, session.begin():
                token = TokenContext(jti=f"{tag}-{p}", client_id=providers[p].client_id,
                                     provider_id=providers[p].provider_id, scopes=frozenset(all_scopes()))
                access = ProviderAccess(session=session, token=token, now=now)
                learner_id = families[lrn].learner_id
                try:
                    await access.authorize(learner_id, section, action)
                    outcome = "allowed"
                except AccessDenied:
                    outcome = "denied"
                except LearnerNotFound:
                    outcome = "invisible"
                await access.flush_log()
                grants = await access.grants_for(learner_id)
            live = [g for g in grants if g.section == section and g.is_active(now)]
            if outcome == "allowed":
                # Never without a live grant of this provider covering the section (read_own included).
                assert any(g.action == action or (action is Action.READ and g.action is Action.CONTRIBUTE) for g in live)
            elif outcome == "denied":
                assert not any(g.action == action for g in live)
            else:
                assert not any(g.is_active(now) for g in grants)
            outcomes[(p, lrn, section, action)] = outcome

        async with sessions() as session:
            learner_ids = [f.learner_id for f in families]
            logged = (await session.execute(
                select(DisclosureEvent.provider_id, DisclosureEvent.learner_id, DisclosureEvent.section,
                       DisclosureEvent.action, DisclosureEvent.outcome)
                .where(DisclosureEvent.learner_id.in_(learner_ids))
            )).all()
            checked, problems = await verify_log(session=session, learner_ids=learner_ids)
        expected = sorted(
            (providers[p].provider_id, families[lrn].learner_id, section, action.value, outcome)
            for (p, lrn, section, action), outcome in outcomes.items() for _ in range(
                sum(1 for a in w["attempts"] if a == (p, lrn, section, action))) if outcome != "invisible"
        )
        # Every visible decision is logged, one event per request; invisible learners log nothing.
        assert sorted(tuple(row) for row in logged) == expected
        assert problems == [] and checked == len(expected)
