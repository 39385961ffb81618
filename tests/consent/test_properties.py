"""Property-based tests of the decision over random worlds of grants, scopes and clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from consent import Action, Allowed, Denied, DenyReason, GrantView, decide
from consent.sections import all_scopes, catalogue

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PROVIDERS = [UUID(int=i) for i in range(1, 4)]
LEARNERS = [UUID(int=i) for i in range(10, 13)]
SECTIONS = sorted(catalogue())
offsets = st.integers(min_value=-1000, max_value=1000).map(lambda m: T0 + timedelta(minutes=m))


@st.composite
def grants(draw) -> GrantView:  # type: ignore[no-untyped-def]
    granted = draw(offsets)
    return GrantView(
        id=UUID(int=draw(st.integers(min_value=100, max_value=10**9))),
        provider_id=draw(st.sampled_from(PROVIDERS)),
        learner_id=draw(st.sampled_from(LEARNERS)),
        section=draw(st.sampled_from(SECTIONS)),
        action=draw(st.sampled_from(list(Action))),
        granted_at=granted,
        expires_at=draw(st.none() | offsets),
        revoked_at=draw(st.none() | offsets),
        data_from=draw(st.none() | offsets),
    )


world = st.fixed_dictionaries({
    "grants": st.lists(grants(), max_size=25),
    "provider": st.sampled_from(PROVIDERS),
    "learner": st.sampled_from(LEARNERS),
    "section": st.sampled_from(SECTIONS),
    "action": st.sampled_from(list(Action)),
    "at": offsets,
    "scopes": st.frozensets(st.sampled_from(all_scopes())),
})


def covering(w, action):  # type: ignore[no-untyped-def]
    return [
        g for g in w["grants"]
        if g.provider_id == w["provider"] and g.learner_id == w["learner"] and g.section == w["section"]
        and g.action == action and g.is_active(w["at"])
    ]


@settings(max_examples=400, deadline=None)
@given(w=world)
def test_no_access_without_a_live_covering_grant_and_none_refused_with_one(w):  # type: ignore[no-untyped-def]
    decision = decide(provider_id=w["provider"], learner_id=w["learner"], section=w["section"], action=w["action"],
                      at=w["at"], grants=w["grants"], token_scopes=w["scopes"])
    scoped = f"{w['section']}:{w['action'].value}" in w["scopes"]
    same = covering(w, w["action"])
    own = covering(w, Action.CONTRIBUTE) if w["action"] is Action.READ else []
    if isinstance(decision, Allowed):
        # Sound: the token carries the scope and a live grant of this very provider/learner/section covers it.
        assert scoped
        if decision.own_only:
            assert not same and decision.grant_id in {g.id for g in own}
        else:
            assert decision.grant_id in {g.id for g in same}
            if w["action"] is Action.READ:
                windows = [g.data_from for g in same]
                assert decision.data_from == (None if None in windows else min(windows))
            else:
                assert decision.data_from is None
    else:
        # Complete: refused only when no covering grant exists or the token lacks the scope.
        assert isinstance(decision, Denied)
        assert not scoped or (not same and not own)
        assert (decision.reason is DenyReason.SCOPE_MISSING) == (not scoped)


@settings(max_examples=100, deadline=None)
@given(w=world)
def test_decision_ignores_other_providers_and_learners_grants(w):  # type: ignore[no-untyped-def]
    mine = [g for g in w["grants"] if g.provider_id == w["provider"] and g.learner_id == w["learner"]]
    args = dict(provider_id=w["provider"], learner_id=w["learner"], section=w["section"], action=w["action"],
                at=w["at"], token_scopes=w["scopes"])
    assert decide(grants=w["grants"], **args) == decide(grants=mine, **args)
