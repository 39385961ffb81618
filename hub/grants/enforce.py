"""Enforcing consent on a provider's requests: the only caller of ``consent.decide``.

One ``ProviderAccess`` lives for one API request (or one sync job step). It loads a provider's
grants for a learner once per request (never cached across requests, so a revocation bites on the
very next one), asks the pure decision, and records one disclosure event per (learner, section,
action) of the request. ``flush_log`` chains those events into the learner's log right before the
request commits, in the same transaction as the data they describe.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from consent import Action, Allowed, Denied, DenyReason, GrantView, decide, has_live_grant
from hub.grants.log import LearnersErased, PendingEvent, append_events, hold_learners
from hub.grants.service import grants_between, grants_between_many, resolve_learner, resolve_pseudonym
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
        self, *, session: AsyncSession, token: TokenContext, now: datetime, bypass_consent: bool = False,
        writes: bool = False,
    ) -> None:
        self._session = session
        # A request that writes holds each learner it resolves against erasure (expect_writes).
        self._writes = writes
        self._token = token
        self.now = now
        # BENCHMARK ONLY (issue 9): Settings.benchmark_bypass_consent, refused in production.
        self._bypass_consent = bypass_consent
        self._grants: dict[UUID, list[GrantView]] = {}
        self._resolved: dict[str, UUID] = {}
        self._events: dict[tuple[UUID, str, Action], PendingEvent] = {}
        self._log_heads: dict[UUID, tuple[int, str]] = {}
        self._held: set[UUID] = set()

    def expect_writes(self) -> None:
        """This request writes: learners resolved from now on are held against erasure in the
        resolving statement itself, which saves ``authorize`` a statement per learner."""
        self._writes = True

    @property
    def provider_id(self) -> UUID:
        return self._token.provider_id

    @property
    def token_scopes(self) -> frozenset[str]:
        """The scopes of the token this access was presented with (to choose what to ask for)."""
        return frozenset(self._token.scopes)

    async def preload(self, learner_ids: list[UUID]) -> None:
        """Load this provider's grants for a batch of learners in one indexed query."""
        missing = [i for i in learner_ids if i not in self._grants]
        if missing:
            loaded = await grants_between_many(session=self._session, provider_id=self.provider_id, learner_ids=missing)
            for learner_id in missing:
                self._grants[learner_id] = loaded.get(learner_id, [])

    async def grants_for(self, learner_id: UUID) -> list[GrantView]:
        """This provider's grants for the learner, loaded once per request."""
        return await self._grants_for(learner_id)

    async def _grants_for(self, learner_id: UUID) -> list[GrantView]:
        if learner_id not in self._grants:
            self._grants[learner_id] = await grants_between(
                session=self._session, provider_id=self.provider_id, learner_id=learner_id
            )
        return self._grants[learner_id]

    def bound_to(self, learner_id: UUID) -> bool:
        """Issue 3: a token from the authorization-code flow reaches only the learner it was
        issued for; every other learner is indistinguishable from one that does not exist."""
        return self._token.learner_id is None or self._token.learner_id == learner_id

    async def require_visible(self, learner_id: UUID) -> None:
        if self._bypass_consent:  # BENCHMARK ONLY (issue 9)
            return
        if not self.bound_to(learner_id):
            raise LearnerNotFound(learner_id)
        if not has_live_grant(await self._grants_for(learner_id), self.now):
            raise LearnerNotFound(learner_id)

    async def resolve(self, pairwise_id: str) -> UUID:
        """The learner behind this provider's pairwise id, if the provider may know of them.

        An unknown id and a learner without a live grant raise the same ``LearnerNotFound``.
        """
        if pairwise_id not in self._resolved and self._bypass_consent:
            # BENCHMARK ONLY (issue 9): the id lookup alone, without the grants and log head.
            learner_id = await resolve_pseudonym(session=self._session, provider_id=self.provider_id, pseudonym=pairwise_id)
            if learner_id is None:
                raise LearnerNotFound(pairwise_id)
            self._resolved[pairwise_id] = learner_id
        if pairwise_id not in self._resolved:
            # The grants come with the pairwise id (one statement): still read once per request,
            # never cached across requests, so a revocation bites on the very next one.
            resolved = await resolve_learner(session=self._session, provider_id=self.provider_id, pseudonym=pairwise_id,
                                             hold=self._writes)
            if resolved is None:
                raise LearnerNotFound(pairwise_id)
            self._resolved[pairwise_id] = resolved.learner_id
            if self._writes:
                self._held.add(resolved.learner_id)
            self._grants.setdefault(resolved.learner_id, resolved.grants)
            if resolved.log_head is not None:
                self._log_heads.setdefault(resolved.learner_id, resolved.log_head)
        learner_id = self._resolved[pairwise_id]
        await self.require_visible(learner_id)
        return learner_id

    async def authorize(self, learner_id: UUID, section: str, action: Action) -> Allowed:
        """Decide and record the decision; return it or raise ``AccessDenied``/``LearnerNotFound``."""
        if self._bypass_consent:  # BENCHMARK ONLY (issue 9): no grants query, no decision, no log row
            return BENCHMARK_BYPASS
        await self.require_visible(learner_id)
        if action is Action.CONTRIBUTE and learner_id not in self._held:
            # A write must not race the learner's erasure: its entries would meet a deleted
            # learner (PostgreSQL). Held from here (if resolving did not already hold them: a
            # learner reached by source id), the erasure waits for this request's commit and
            # then removes what it stored; erased already, the learner is not found.
            try:
                await hold_learners(self._session, [learner_id], read_in_this_transaction=True)
            except LearnersErased:
                raise LearnerNotFound(learner_id) from None
            self._held.add(learner_id)
        grants = await self._grants_for(learner_id)
        decision = decide(
            provider_id=self.provider_id,
            learner_id=learner_id,
            section=section,
            action=action,
            at=self.now,
            grants=grants,
            token_scopes=self._token.scopes,
        )
        key = (learner_id, section, action)
        # One event per (request, learner, section, action); within a request the grants are
        # fixed, so a repeated decision is the same decision.
        if key not in self._events:
            purpose = next((g.purpose for g in grants if isinstance(decision, Allowed) and g.id == decision.grant_id), None)
            self._events[key] = PendingEvent(
                at=self.now,
                learner_id=learner_id,
                provider_id=self.provider_id,
                client_id=self._token.client_id,
                token_id=self._token.jti,
                section=section,
                action=action.value,
                outcome="allowed" if decision else "denied",
                reason=decision.reason.value if isinstance(decision, Denied) else None,
                grant_id=decision.grant_id if isinstance(decision, Allowed) else None,
                purpose=purpose,
            )
        if isinstance(decision, Denied):
            raise AccessDenied(section, action, decision.reason)
        return decision

    def disclosed(self, learner_id: UUID, section: str, action: Action, count: int) -> None:
        """Add ``count`` entries read or written under an allowed decision to its log event."""
        if self._bypass_consent:  # BENCHMARK ONLY (issue 9): nothing was recorded
            return
        event = self._events[(learner_id, section, action)]
        event.entry_count = (event.entry_count or 0) + count

    async def flush_log(self) -> None:
        """Chain this request's events into the log; call right before the commit.

        Raises ``LearnersErased`` when a learner of the events was erased while the request ran:
        the caller must roll back and answer as for an unknown learner (nothing disclosed).
        """
        events, self._events = list(self._events.values()), {}
        if events:
            await append_events(session=self._session, events=events, seen_heads=self._log_heads)
