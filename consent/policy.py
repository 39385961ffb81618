"""The consent decision: one pure function.

``decide`` answers "may this provider do this action on this section of this learner's
record, at this instant, holding a token with these scopes?" from the grants passed in.
It does no I/O and reads no clock, so the caller (``hub.grants.enforce.authorize``, the only
caller per access path) supplies both the live grants and ``at``. It denies by default:
every path that does not find an active grant returns a ``Denied`` with a reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from consent.sections import Action, scope_for


class DenyReason(StrEnum):
    GRANT_EXPIRED = "grant_expired"
    GRANT_REVOKED = "grant_revoked"
    NO_GRANT = "no_grant"
    SCOPE_MISSING = "scope_missing"


@dataclass(frozen=True, slots=True)
class GrantView:
    """What the decision needs to know about one consent grant."""

    id: UUID
    provider_id: UUID
    learner_id: UUID
    section: str
    action: Action
    granted_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    # Optional time window on readable data: only entries dated at or after this instant.
    data_from: datetime | None = None
    purpose: str = ""

    def is_active(self, at: datetime) -> bool:
        if self.granted_at > at:
            return False
        if self.revoked_at is not None and self.revoked_at <= at:
            return False
        return self.expires_at is None or at < self.expires_at


@dataclass(frozen=True, slots=True)
class Allowed:
    """Access allowed under ``grant_id``, possibly narrowed.

    ``own_only``: the ``read_own`` rule applied (the provider reads back only what it contributed).
    ``data_from``: only entries dated at or after this instant may be read.
    """

    grant_id: UUID
    own_only: bool = False
    data_from: datetime | None = None

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Denied:
    reason: DenyReason

    def __bool__(self) -> bool:
        return False


Decision = Allowed | Denied


def decide(
    *,
    provider_id: UUID,
    learner_id: UUID,
    section: str,
    action: Action,
    at: datetime,
    grants: Iterable[GrantView],
    token_scopes: frozenset[str],
) -> Decision:
    """Decide one access. Both the token's scope and a live grant are required.

    The scope check comes first: a token never carries more than the client asked for, so a
    missing scope is the client's own limit (RFC 6750 §3.1 ``insufficient_scope``), whatever the
    family granted. Then:

    - ``read`` needs an active read grant for the section; the widest data window wins;
    - ``read_own``: without one, an active ``contribute`` grant still lets the provider read back
      what it itself contributed (``Allowed(own_only=True)``);
    - ``contribute`` needs an active contribute grant.

    Otherwise the most telling reason wins (revoked over expired over none), so the family's own
    action is what is reported.
    """
    if scope_for(section, action) not in token_scopes:
        return Denied(DenyReason.SCOPE_MISSING)
    reason = DenyReason.NO_GRANT
    best: GrantView | None = None
    contribute_grant: GrantView | None = None
    for grant in grants:
        if grant.provider_id != provider_id or grant.learner_id != learner_id or grant.section != section:
            continue
        if grant.action != action:
            if action is Action.READ and grant.action is Action.CONTRIBUTE and grant.is_active(at):
                contribute_grant = grant
            continue
        if grant.is_active(at):
            if best is None or _wider(grant, best):
                best = grant
        elif grant.revoked_at is not None and grant.revoked_at <= at:
            reason = DenyReason.GRANT_REVOKED
        elif reason is DenyReason.NO_GRANT and grant.expires_at is not None and at >= grant.expires_at:
            reason = DenyReason.GRANT_EXPIRED
    if best is not None:
        return Allowed(best.id, data_from=best.data_from if action is Action.READ else None)
    if contribute_grant is not None:
        return Allowed(contribute_grant.id, own_only=True)
    return Denied(reason)


def _wider(candidate: GrantView, current: GrantView) -> bool:
    """Whether ``candidate`` lets more data be read than ``current`` (an earlier or no window)."""
    if current.data_from is None:
        return False
    return candidate.data_from is None or candidate.data_from < current.data_from


def has_live_grant(grants: Iterable[GrantView], at: datetime) -> bool:
    """Whether a provider may know the learner exists at all: some grant of theirs is active.

    Without one, the learner must be indistinguishable from an id that does not exist.
    """
    return any(grant.is_active(at) for grant in grants)
