"""The consent decision as a table: grant state x scope x section x action -> exact outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from consent import Action, Allowed, Denied, DenyReason, GrantView, decide, has_live_grant
from consent.sections import all_scopes, catalogue, parse_scope, UnknownSection

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
PROVIDER = UUID("00000000-0000-4000-8000-00000000000a")
OTHER_PROVIDER = UUID("00000000-0000-4000-8000-00000000000b")
LEARNER = UUID("00000000-0000-4000-8000-000000000001")
OTHER_LEARNER = UUID("00000000-0000-4000-8000-000000000002")
GRANT_ID = UUID("00000000-0000-4000-8000-0000000000ff")
ALL_SCOPES = frozenset(all_scopes())


def grant(**overrides) -> GrantView:  # type: ignore[no-untyped-def]
    values = dict(
        id=GRANT_ID, provider_id=PROVIDER, learner_id=LEARNER, section="badges", action=Action.READ,
        granted_at=NOW - timedelta(days=1), expires_at=None, revoked_at=None,
    )
    values.update(overrides)
    return GrantView(**values)  # type: ignore[arg-type]


def ask(grants, *, section="badges", action=Action.READ, scopes=ALL_SCOPES, at=NOW):  # type: ignore[no-untyped-def]
    return decide(provider_id=PROVIDER, learner_id=LEARNER, section=section, action=action, at=at,
                  grants=grants, token_scopes=scopes)


@pytest.mark.parametrize(
    ("grants", "kwargs", "expected"),
    [
        pytest.param([grant()], {}, Allowed(GRANT_ID), id="active grant allows"),
        pytest.param([], {}, Denied(DenyReason.NO_GRANT), id="no grant denies"),
        pytest.param([grant()], {"action": Action.CONTRIBUTE}, Denied(DenyReason.NO_GRANT), id="read does not imply contribute"),
        pytest.param([grant(action=Action.CONTRIBUTE)], {}, Allowed(GRANT_ID, own_only=True), id="contribute implies only read_own"),
        pytest.param([grant(action=Action.CONTRIBUTE, revoked_at=NOW)], {}, Denied(DenyReason.NO_GRANT), id="no read_own once contribute is revoked"),
        pytest.param([grant(action=Action.CONTRIBUTE)], {"scopes": frozenset({"badges:contribute"})}, Denied(DenyReason.SCOPE_MISSING), id="read_own still needs the read scope"),
        pytest.param([grant(data_from=NOW - timedelta(days=3))], {}, Allowed(GRANT_ID, data_from=NOW - timedelta(days=3)), id="data window carried to the read"),
        pytest.param([grant(action=Action.CONTRIBUTE, data_from=NOW - timedelta(days=3))], {"action": Action.CONTRIBUTE}, Allowed(GRANT_ID), id="data window does not limit contributing"),
        pytest.param([grant(data_from=NOW - timedelta(days=3)), grant(id=UUID(int=7))], {}, Allowed(UUID(int=7)), id="widest window wins"),
        pytest.param([grant(action=Action.CONTRIBUTE), grant(id=UUID(int=7))], {}, Allowed(UUID(int=7)), id="a read grant beats read_own"),
        pytest.param([grant()], {"section": "skills"}, Denied(DenyReason.NO_GRANT), id="other section"),
        pytest.param([grant(provider_id=OTHER_PROVIDER)], {}, Denied(DenyReason.NO_GRANT), id="another provider's grant"),
        pytest.param([grant(learner_id=OTHER_LEARNER)], {}, Denied(DenyReason.NO_GRANT), id="another learner's grant"),
        pytest.param([grant(revoked_at=NOW - timedelta(seconds=1))], {}, Denied(DenyReason.GRANT_REVOKED), id="revoked"),
        pytest.param([grant(revoked_at=NOW)], {}, Denied(DenyReason.GRANT_REVOKED), id="revoked this instant"),
        pytest.param([grant(revoked_at=NOW + timedelta(seconds=1))], {}, Allowed(GRANT_ID), id="revocation in the future"),
        pytest.param([grant(expires_at=NOW)], {}, Denied(DenyReason.GRANT_EXPIRED), id="expires this instant"),
        pytest.param([grant(expires_at=NOW + timedelta(seconds=1))], {}, Allowed(GRANT_ID), id="not yet expired"),
        pytest.param([grant(granted_at=NOW + timedelta(seconds=1))], {}, Denied(DenyReason.NO_GRANT), id="granted in the future"),
        pytest.param([grant()], {"scopes": frozenset({"badges:contribute"})}, Denied(DenyReason.SCOPE_MISSING), id="token lacks scope"),
        pytest.param([], {"scopes": frozenset()}, Denied(DenyReason.SCOPE_MISSING), id="scope checked before grants"),
        pytest.param(
            [grant(expires_at=NOW - timedelta(days=1)), grant(revoked_at=NOW - timedelta(hours=1))], {},
            Denied(DenyReason.GRANT_REVOKED), id="revoked wins over expired",
        ),
        pytest.param(
            [grant(revoked_at=NOW - timedelta(hours=1)), grant(id=uuid4()), ], {}, "allowed", id="a live re-grant after revocation allows",
        ),
    ],
)
def test_decision_table(grants, kwargs, expected):  # type: ignore[no-untyped-def]
    decision = ask(grants, **kwargs)
    if expected == "allowed":
        assert isinstance(decision, Allowed) and decision.grant_id == grants[1].id
    else:
        assert decision == expected
    assert bool(decision) is isinstance(decision, Allowed)


def test_every_scope_maps_to_exactly_one_section_and_action():
    # Any widening of the scope vocabulary shows up here in review.
    assert sorted(all_scopes()) == [
        "activities:contribute", "activities:read", "badges:contribute", "badges:read",
        "conduct:contribute", "conduct:read", "pathways:contribute", "pathways:read",
        "profile.birthdate:read",  # read-only: nobody contributes a birthdate over the API
        "profile:contribute", "profile:read", "projects:contribute", "projects:read",
        "service:contribute", "service:read", "skills:contribute", "skills:read",
        "support_needs:contribute", "support_needs:read", "wellbeing:contribute", "wellbeing:read",
    ]
    for scope in all_scopes():
        section, action = parse_scope(scope)
        assert f"{section.name}:{action.value}" == scope


@pytest.mark.parametrize("bad", ["badges", "badges:write", "grades:read", ":read", "badges:read:extra",
                                 "profile.birthdate:contribute", "*:read", "all:read"])
def test_malformed_or_unknown_scopes_are_refused(bad):  # type: ignore[no-untyped-def]
    with pytest.raises((ValueError, UnknownSection)):
        parse_scope(bad)


def test_catalogue_is_data_with_sensitivity():
    assert {name: s.sensitive for name, s in catalogue().items()} == {
        "badges": False, "skills": False, "activities": False, "profile": False, "profile.birthdate": False,
        "pathways": False, "service": False, "projects": False,
        "support_needs": True, "wellbeing": True, "conduct": True,
    }


def test_visibility_needs_one_live_grant():
    assert has_live_grant([grant(section="skills")], NOW)
    assert not has_live_grant([], NOW)
    assert not has_live_grant([grant(revoked_at=NOW - timedelta(seconds=1)), grant(expires_at=NOW)], NOW)
