"""Enforcing consent on a provider's requests: the only caller of ``consent.decide``.

One ``ProviderAccess`` lives for one API request. It loads a provider's grants for a learner
once per request (so a revocation is seen by the very next request), asks the pure decision,
and appends the decision to the disclosure log in the request's transaction.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from consent import Action, Allowed, Denied, DenyReason, GrantView, decide, has_live_grant
from hub.grants.models import DisclosureEvent
from hub.grants.service import grants_between, resolve_pseudonym
from hub.oauth.bearer import TokenContext


# BENCHMARK ONLY (issue 9): the stand-in decision when Settings.benchmark_bypass_consent is on.
BENCHMARK_BYPASS = Allowed(UUID(int=0))


class LearnerNotFound(Exception):
    """No such learner *for this provider*: also raised when the provider holds no live grant."""


class AccessDenied(Exception):
    def __init__(self, section: str, action: Action, reason: DenyReason) -> None:
        super().__init__(f"{action.value} access to section {section!r} denied: {reason.value}")
        self.section = section
        self.action = action
        self.reason = reason


class ProviderAccess:
    def __init__(
        self, *, session: AsyncSession, token: TokenContext, now: datetime, bypass_consent: bool = False
    ) -> None:
        self._session = session
        self._token = token
        self.now = now
        # BENCHMARK ONLY (issue 9): Settings.benchmark_bypass_consent, refused in production.
        self._bypass_consent = bypass_consent
        self._grants: dict[UUID, list[GrantView]] = {}
        self._resolved: dict[str, UUID] = {}

    @property
    def provider_id(self) -> UUID:
        return self._token.provider_id

    async def _grants_for(self, learner_id: UUID) -> list[GrantView]:
        if learner_id not in self._grants:
            self._grants[learner_id] = await grants_between(
                session=self._session, provider_id=self.provider_id, learner_id=learner_id
            )
        return self._grants[learner_id]

    async def require_visible(self, learner_id: UUID) -> None:
        if self._bypass_consent:  # BENCHMARK ONLY (issue 9)
            return
        if not has_live_grant(await self._grants_for(learner_id), self.now):
            raise LearnerNotFound(learner_id)

    async def resolve(self, pairwise_id: str) -> UUID:
        """The learner behind this provider's pairwise id, if the provider may know of them.

        An unknown id and a learner without a live grant raise the same ``LearnerNotFound``.
        """
        if pairwise_id not in self._resolved:
            learner_id = await resolve_pseudonym(session=self._session, provider_id=self.provider_id, pseudonym=pairwise_id)
            if learner_id is None:
                raise LearnerNotFound(pairwise_id)
            self._resolved[pairwise_id] = learner_id
        learner_id = self._resolved[pairwise_id]
        await self.require_visible(learner_id)
        return learner_id

    async def authorize(
        self, learner_id: UUID, section: str, action: Action, *, entry_count: int | None = None
    ) -> Allowed:
        """Decide, log, and return the decision or raise ``AccessDenied``/``LearnerNotFound``.

        ``entry_count`` is how many entries a contribution carries (known before the decision).
        """
        if self._bypass_consent:  # BENCHMARK ONLY (issue 9): no grants query, no decision, no log row
            return BENCHMARK_BYPASS
        await self.require_visible(learner_id)
        decision = decide(
            provider_id=self.provider_id,
            learner_id=learner_id,
            section=section,
            action=action,
            at=self.now,
            grants=await self._grants_for(learner_id),
            token_scopes=self._token.scopes,
        )
        self._session.add(
            DisclosureEvent(
                at=self.now,
                learner_id=learner_id,
                provider_id=self.provider_id,
                client_id=self._token.client_id,
                section=section,
                action=action.value,
                outcome="allowed" if decision else "denied",
                reason=decision.reason.value if isinstance(decision, Denied) else None,
                grant_id=decision.grant_id if isinstance(decision, Allowed) else None,
                entry_count=entry_count,
            )
        )
        if isinstance(decision, Denied):
            raise AccessDenied(section, action, decision.reason)
        return decision
