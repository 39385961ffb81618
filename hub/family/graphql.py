"""Family GraphQL at ``/family/graphql``: a signed-in guardian reads their learners' disclosure logs.

Authenticated by the family sign-in session (the cookie of ``hub/web/``), never by provider tokens,
so no provider can reach it. A guardian sees a learner's log only while the age rules leave the
record with the guardians (``consent.control``); once the learner is of age it is theirs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

import strawberry
from fastapi import HTTPException, Request
from graphql import GraphQLError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.extensions import MaxTokensLimiter
from strawberry.fastapi import BaseContext, GraphQLRouter
from strawberry.types import Info

from consent.control import Controller, control_of
from hub.accounts.service import learners_of
from hub.config import Settings, control_policy
from hub.grants.log import list_disclosures, verify_log
from hub.people.models import Learner as LearnerRow
from hub.providers.models import Provider
from hub.web.session import current_guardian


@dataclass
class FamilyContext(BaseContext):
    session: AsyncSession
    guardian_id: UUID
    settings: Settings

    def __post_init__(self) -> None:
        super().__init__()


async def family_context(request: Request) -> AsyncIterator[FamilyContext]:
    hub = request.app.state.hub
    async with hub.sessions() as session:
        guardian = await current_guardian(request, session)
        if guardian is None:
            raise HTTPException(status_code=401, detail="sign in at /account/login first")
        yield FamilyContext(session=session, guardian_id=guardian.id, settings=hub.settings)


FInfo = Info[FamilyContext, None]


def _not_found() -> GraphQLError:
    # Another family's learner and an unknown id answer alike (no existence leak).
    return GraphQLError("learner not found", extensions={"code": "NOT_FOUND"})


async def _own_learner(info: FInfo, learner_id: strawberry.ID) -> LearnerRow:
    ctx = info.context
    try:
        wanted = UUID(str(learner_id))
    except ValueError:
        raise _not_found() from None
    for learner in await learners_of(session=ctx.session, guardian_id=ctx.guardian_id):
        if learner.id == wanted:
            control = control_of(learner.date_of_birth, date.today(), control_policy(ctx.settings))
            if control.controller is not Controller.GUARDIANS:
                raise GraphQLError(
                    f"the learner is {control.age}: the record and its disclosure log are theirs now",
                    extensions={"code": "NOT_PERMITTED"},
                )
            return learner
    raise _not_found()


@strawberry.type
class FamilyLearner:
    id: strawberry.ID
    given_name: str
    family_name: str
    age: int
    controller: str


@strawberry.type(description="One decision on a provider's access to the learner's record.")
class Disclosure:
    seq: int
    at: datetime
    provider_id: strawberry.ID
    provider_name: str
    section: str
    action: str
    outcome: str
    reason: str | None
    purpose: str | None
    entry_count: int | None


@strawberry.type
class DisclosureLog:
    nodes: list[Disclosure]
    verified: bool = strawberry.field(description="The learner's whole hash chain checks out.")
    problems: list[str]
    next_before_seq: int | None = strawberry.field(description="Pass as beforeSeq for the next (older) page.")


@strawberry.type
class FamilyQuery:
    @strawberry.field(description="The signed-in guardian's learners.")
    async def my_learners(self, info: FInfo) -> list[FamilyLearner]:
        ctx = info.context
        out = []
        for learner in await learners_of(session=ctx.session, guardian_id=ctx.guardian_id):
            control = control_of(learner.date_of_birth, date.today(), control_policy(ctx.settings))
            out.append(FamilyLearner(id=strawberry.ID(str(learner.id)), given_name=learner.given_name,
                                     family_name=learner.family_name, age=control.age, controller=control.controller.value))
        return out

    @strawberry.field(description="A learner's disclosure log, newest first, with the chain's verification.")
    async def disclosures(
        self, info: FInfo, learner_id: strawberry.ID, first: int = 50, before_seq: int | None = None,
        provider_id: strawberry.ID | None = None, section: str | None = None,
    ) -> DisclosureLog:
        if not 1 <= first <= 500:
            raise GraphQLError("first must be between 1 and 500", extensions={"code": "BAD_USER_INPUT"})
        learner = await _own_learner(info, learner_id)
        ctx = info.context
        provider_uuid = None
        if provider_id is not None:
            try:
                provider_uuid = UUID(str(provider_id))
            except ValueError:
                raise GraphQLError("providerId is not an id", extensions={"code": "BAD_USER_INPUT"}) from None
        events = await list_disclosures(session=ctx.session, learner_id=learner.id, first=first, before_seq=before_seq,
                                        provider_id=provider_uuid, section=section)
        names = dict((await ctx.session.execute(
            select(Provider.id, Provider.name).where(Provider.id.in_({e.provider_id for e in events}))
        )).all()) if events else {}
        _, problems = await verify_log(session=ctx.session, learner_ids=[learner.id])
        return DisclosureLog(
            nodes=[Disclosure(seq=e.seq, at=e.at, provider_id=strawberry.ID(str(e.provider_id)),
                              provider_name=names.get(e.provider_id, "?"), section=e.section, action=e.action,
                              outcome=e.outcome, reason=e.reason, purpose=e.purpose, entry_count=e.entry_count)
                   for e in events],
            verified=not problems,
            problems=[f"seq {p.seq}: {p.problem}" if p.seq is not None else p.problem for p in problems],
            next_before_seq=events[-1].seq if len(events) == first else None,
        )


family_schema = strawberry.Schema(query=FamilyQuery, extensions=[lambda: MaxTokensLimiter(max_token_count=2000)])


def family_router() -> GraphQLRouter:
    # POST only: this endpoint authenticates by cookie, so no query runs from a cross-site link (GET).
    return GraphQLRouter(family_schema, context_getter=family_context, graphql_ide=None, allow_queries_via_get=False)
