"""The provider GraphQL API.

Every section field and mutation goes through ``_authorize`` -> ``ProviderAccess.authorize``,
the single consent gate of this access path. The operation's writes and its disclosure-log rows
are committed together at the end of the operation (``CommitOperation``); if that commit fails,
the response carries no data.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import dateutil.parser
import orjson
import strawberry
from graphql import GraphQLError, OperationDefinitionNode
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.types.base_scalars import DateTimeDefinition, wrap_parser
from strawberry.scalars import JSON
from strawberry.types import ExecutionContext, ExecutionResult, Info
from strawberry.types.graphql import OperationType

from consent import Action, DenyReason, parse_scope
from consent.sections import UnknownSection
from consent.pseudonyms import looks_like_pairwise_id
from hub.config import Settings
from hub.graphql import credential_import
from hub.graphql.execution import LeanExecutionContext, mark_plain_fields
from hub.graphql import credentials as credential_types
from hub.graphql import frameworks as framework_types
from hub.graphql import inputs, types
from hub.graphql.context import Context
from hub.graphql.limits import cost_limit
from hub.graphql.errors import EXPECTED_CODES, ErrorCode, api_error, bad_input, learner_not_found
from hub.grants import requests as request_service
from hub.grants import service as grant_service
from hub.grants.enforce import AccessDenied, LearnerNotFound
from hub.grants.log import LearnersErased
from hub.people import service as people_service
from hub.records import service as record_service
from hub.records.crypto import UnreadableData
from schemas import records as record_schemas

log = logging.getLogger(__name__)
N = TypeVar("N")
GInfo = Info[Context, None]


async def _resolve_learner(info: GInfo, pairwise_id: str) -> UUID:
    """This provider's pairwise learner id -> internal id; NOT_FOUND when unknown or not shared."""
    try:
        async with info.context.db():
            return await info.context.access.resolve(pairwise_id)
    except LearnerNotFound:
        raise learner_not_found() from None


async def _authorize(info: GInfo, learner_id: UUID, section: str, action: Action):  # type: ignore[no-untyped-def]
    ctx = info.context
    try:
        async with ctx.db():
            return await ctx.access.authorize(learner_id, section, action)
    except LearnerNotFound:
        raise learner_not_found() from None
    except AccessDenied as denied:
        if denied.reason is DenyReason.SCOPE_MISSING:
            raise api_error(
                ErrorCode.INSUFFICIENT_SCOPE,
                f"the access token lacks scope {section}:{action.value}",
                section=section,
                action=action.value,
            ) from None
        raise api_error(
            ErrorCode.CONSENT_REQUIRED,
            f"the family has not consented to {action.value} access to section {section!r}",
            section=section,
            action=action.value,
            reason=denied.reason.value,
        ) from None


def _unreadable(learner_id: UUID, section: str, exc: UnreadableData) -> GraphQLError:
    # An incident, not an answer: tampering or a key problem. Logged without any field content.
    log.warning("sealed data unreadable: learner %s section %s: %s", learner_id, section, exc)
    return api_error(
        ErrorCode.DATA_UNREADABLE,
        f"entries of section {section!r} could not be read (they failed an integrity or key check); nothing was disclosed",
        section=section,
    )


def _check_first(info: GInfo, first: int) -> None:
    limit = info.context.settings.max_page_size
    if not 1 <= first <= limit:
        raise bad_input(f"first must be between 1 and {limit}", argument="first")


def _check_range(since: datetime | None, until: datetime | None) -> None:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise bad_input(f"{name} needs a time-zone offset (e.g. 2026-01-01T00:00:00Z)", argument=name)
    if since is not None and until is not None and since >= until:
        raise bad_input("since must be before until", argument="since")


async def _page(
    info: GInfo, learner_id: UUID, section: str, first: int, after: str | None, to_node: Callable[[Any], N], **filters: Any
) -> types.Connection[N]:
    _check_first(info, first)
    if after is not None:
        try:
            record_service.decode_cursor(after)
        except record_service.InvalidCursor as exc:
            raise bad_input(str(exc), argument="after") from None
    allowed = await _authorize(info, learner_id, section, Action.READ)
    spec = record_service.page_query(
        allowed, section=section, reader_provider_id=info.context.token.provider_id, first=first, after=after, **filters
    )
    try:
        # Batched: the same field on a page of learners is one statement (see Context.pages).
        page = await info.context.pages.load((spec, learner_id))
    except UnreadableData as exc:
        raise _unreadable(learner_id, section, exc) from None
    info.context.access.disclosed(learner_id, section, Action.READ, len(page.entries))
    nodes = [to_node(row) for row in page.entries]
    at_key = record_service.ORDER_ATTRIBUTE[section]
    edges: list[types.Edge[N]] = [
        types.EntryEdge(node, getattr(row, at_key), row.id) for row, node in zip(page.entries, nodes, strict=True)
    ]

    async def count() -> int | None:
        async with info.context.db() as session:
            return await record_service.count_entries(session=session, spec=spec, learner_id=learner_id)

    return types.Connection(
        edges=edges, nodes=nodes, page_info=types.PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        count=None if section == "activities" else count,
    )


# -- connectors: learner links and retraction (issue 7) -------------------------------------


@strawberry.type(description="How this provider's own identifier for a learner resolves.")
class LearnerLink:
    external_id: str
    status: str = strawberry.field(
        description="`linked` (learnerId is set), `consent_required` (linked, no live grant), or `unknown`."
    )
    learner_id: strawberry.ID | None = strawberry.field(
        description="This provider's pairwise id; only while the provider holds a live grant."
    )


@strawberry.type(description="What a retraction across learners did.")
class ActivityRetractionResult:
    received: int
    retracted: int
    not_found: int
    refused: int


async def _learner_links(info: GInfo, system: str, external_ids: list[str]) -> list[LearnerLink]:
    from hub.links import service as link_service

    if system not in link_service.SYSTEMS:
        raise bad_input(f"system must be one of: {', '.join(link_service.SYSTEMS)}", argument="system")
    limit = info.context.settings.max_batch_size
    if not 1 <= len(external_ids) <= limit:
        raise bad_input(f"externalIds must hold 1 to {limit} ids", argument="externalIds")
    ctx = info.context
    async with ctx.db() as session:
        answers = await link_service.lookup_links(
            session=session, provider_id=ctx.token.provider_id, system=system, external_ids=external_ids, at=ctx.access.now
        )
    return [
        LearnerLink(
            external_id=a.external_id,
            status=a.status,
            learner_id=strawberry.ID(a.pseudonym) if a.pseudonym else None,
        )
        for a in answers
    ]


async def _retract(info: GInfo, section: str, source_ids: list[str]) -> ActivityRetractionResult:
    limit = info.context.settings.max_batch_size
    if not 1 <= len(source_ids) <= limit:
        raise bad_input(f"sourceIds must hold 1 to {limit} ids", argument="sourceIds")
    ctx = info.context
    unique = list(dict.fromkeys(source_ids))
    async with ctx.db() as session:
        by_learner = await record_service.learners_of_sources(
            session=session, section=section, provider_id=ctx.token.provider_id, source_ids=unique
        )
    retracted = refused = 0
    for learner_id, ids in by_learner.items():
        try:
            async with ctx.db():
                allowed = await ctx.access.authorize(learner_id, section, Action.CONTRIBUTE)
        except (LearnerNotFound, AccessDenied):
            refused += len(ids)
            continue
        async with ctx.db() as session:
            count = await record_service.retract_entries(
                session=session, access=allowed, section=section, learner_id=learner_id,
                provider_id=ctx.token.provider_id, source_ids=ids, now=ctx.access.now,
            )
        ctx.access.disclosed(learner_id, section, Action.CONTRIBUTE, count)
        retracted += count
    found = sum(len(ids) for ids in by_learner.values())
    return ActivityRetractionResult(received=len(unique), retracted=retracted, not_found=len(unique) - found, refused=refused)


@strawberry.type(description="A learner, as far as this provider may see them.")
class Learner:
    id: strawberry.ID = strawberry.field(
        description="This provider's pairwise id for the learner: stable, and different for every provider."
    )
    uuid: strawberry.Private[UUID]

    @strawberry.field(description="Awarded badges, newest first. Needs consent to read `badges`.")
    async def badges(self, info: GInfo, first: int = 20, after: str | None = None) -> types.Connection[types.Badge] | None:
        return await _page(info, self.uuid, "badges", first, after, types.Badge.from_row)

    @strawberry.field(description="Skill assessments, newest first. Needs consent to read `skills`.")
    async def skills(
        self, info: GInfo, first: int = 20, after: str | None = None, skill_key: str | None = None
    ) -> types.Connection[types.SkillAssessment] | None:
        return await _page(info, self.uuid, "skills", first, after, types.SkillAssessment.from_row, skill_key=skill_key)

    @strawberry.field(description="Latest level and evidence count per skill across contributors. Needs `skills` read.")
    async def skills_summary(self, info: GInfo) -> list[types.SkillSummary] | None:
        allowed = await _authorize(info, self.uuid, "skills", Action.READ)
        async with info.context.db() as session:
            rows = await record_service.skills_summary(
                session=session, access=allowed, learner_id=self.uuid, reader_provider_id=info.context.token.provider_id
            )
        info.context.access.disclosed(self.uuid, "skills", Action.READ, sum(r.evidence_count for r in rows))
        return [
            types.SkillSummary(
                skill=types.SkillRef(framework_uri=r.framework_uri, code=r.skill_code, label=r.skill_label, key=r.skill_key),
                scale=types.ProficiencyScale(name=r.scale_name, min=r.scale_min, max=r.scale_max),
                latest_proficiency=r.latest_proficiency,
                latest_assessed_at=r.latest_assessed_at,
                evidence_count=r.evidence_count,
            )
            for r in rows
        ]

    @strawberry.field(description="One skill's assessments in time order (oldest first). Needs `skills` read.")
    async def skill_progression(self, info: GInfo, skill_key: str, first: int = 50) -> types.SkillProgression | None:
        _check_first(info, first)
        allowed = await _authorize(info, self.uuid, "skills", Action.READ)
        async with info.context.db() as session:
            rows = await record_service.skill_progression(
                session=session, access=allowed, learner_id=self.uuid, reader_provider_id=info.context.token.provider_id,
                skill_key=skill_key, first=first,
            )
        info.context.access.disclosed(self.uuid, "skills", Action.READ, len(rows))
        assessments = [types.SkillAssessment.from_row(r) for r in rows]
        return types.SkillProgression(
            skill=assessments[-1].skill if assessments else None,
            latest_proficiency=assessments[-1].proficiency if assessments else None,
            assessments=assessments,
        )

    @strawberry.field(description="Activities, newest first, optionally in [since, until) and for one verb IRI.")
    async def activities(
        self,
        info: GInfo,
        first: int = 20,
        after: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        verb: str | None = None,
    ) -> types.Connection[types.Activity] | None:
        _check_range(since, until)
        return await _page(
            info, self.uuid, "activities", first, after, types.Activity.from_row, since=since, until=until, verb_id=verb
        )

    @strawberry.field(description="The learner's date of birth. Needs its own consent: `profile.birthdate` (read).")
    async def birthdate(self, info: GInfo) -> date | None:
        allowed = await _authorize(info, self.uuid, "profile.birthdate", Action.READ)
        async with info.context.db() as session:
            born = await people_service.date_of_birth(session=session, access=allowed, learner_id=self.uuid)
        info.context.access.disclosed(self.uuid, "profile.birthdate", Action.READ, 1 if born else 0)
        return born

    @strawberry.field(description="Preferred name, pronouns and languages as stated over time, newest first "
                      "(by `asOf`). Needs consent to read `profile`.")
    async def profile(
        self, info: GInfo, first: int = 20, after: str | None = None
    ) -> types.Connection[types.ProfileEntry] | None:
        return await _page(info, self.uuid, "profile", first, after, types.ProfileEntry.from_entry)

    @strawberry.field(description="College and career exposure, newest first, optionally in [since, until) and of "
                      "one kind. Needs consent to read `pathways`.")
    async def pathways(
        self, info: GInfo, first: int = 20, after: str | None = None, since: datetime | None = None,
        until: datetime | None = None, kind: types.PathwayKind | None = None,
    ) -> types.Connection[types.Pathway] | None:
        _check_range(since, until)
        return await _page(info, self.uuid, "pathways", first, after, types.Pathway.from_entry, since=since, until=until,
                           kind=kind.value if kind is not None else None)

    @strawberry.field(description="Service and volunteering, newest first by start; [since, until) filters the "
                      "start. Needs consent to read `service`.")
    async def service(
        self, info: GInfo, first: int = 20, after: str | None = None, since: datetime | None = None,
        until: datetime | None = None,
    ) -> types.Connection[types.ServiceEntry] | None:
        _check_range(since, until)
        return await _page(info, self.uuid, "service", first, after, types.ServiceEntry.from_entry, since=since, until=until)

    @strawberry.field(description="Projects, newest first by start; [since, until) filters the start. Needs consent "
                      "to read `projects`.")
    async def projects(
        self, info: GInfo, first: int = 20, after: str | None = None, since: datetime | None = None,
        until: datetime | None = None,
    ) -> types.Connection[types.Project] | None:
        _check_range(since, until)
        return await _page(info, self.uuid, "projects", first, after, types.Project.from_entry, since=since, until=until)

    @strawberry.field(description="Support needs, newest first by identification date, optionally in [since, until). "
                      "Sensitive: needs its own consent to read `support_needs`.")
    async def support_needs(
        self, info: GInfo, first: int = 20, after: str | None = None, since: datetime | None = None,
        until: datetime | None = None,
    ) -> types.Connection[types.SupportNeed] | None:
        _check_range(since, until)
        return await _page(info, self.uuid, "support_needs", first, after, types.SupportNeed.from_entry, since=since,
                           until=until)

    @strawberry.field(description="Wellbeing measures, newest first, optionally in [since, until). Sensitive: needs "
                      "its own consent to read `wellbeing`.")
    async def wellbeing(
        self, info: GInfo, first: int = 20, after: str | None = None, since: datetime | None = None,
        until: datetime | None = None,
    ) -> types.Connection[types.WellbeingMeasure] | None:
        _check_range(since, until)
        return await _page(info, self.uuid, "wellbeing", first, after, types.WellbeingMeasure.from_entry, since=since,
                           until=until)

    @strawberry.field(description="Behaviour records, newest first, optionally in [since, until). Sensitive: needs "
                      "its own consent to read `conduct`.")
    async def conduct(
        self, info: GInfo, first: int = 20, after: str | None = None, since: datetime | None = None,
        until: datetime | None = None,
    ) -> types.Connection[types.ConductRecord] | None:
        _check_range(since, until)
        return await _page(info, self.uuid, "conduct", first, after, types.ConductRecord.from_entry, since=since,
                           until=until)


@strawberry.type
class LearnerConnection:
    nodes: list[Learner]
    page_info: types.PageInfo


async def _bound_learner_page(info: GInfo, after: str | None) -> LearnerConnection:
    """A learner-bound token (authorization-code flow, issue 3) lists at most its own learner."""
    from hub.oauth.service import pairwise_of

    ctx = info.context
    assert ctx.token.learner_id is not None
    async with ctx.db() as session:
        pseudonym = await pairwise_of(session, ctx.token.provider_id, ctx.token.learner_id)
        visible = pseudonym is not None and (after is None or pseudonym > after)
        if visible:
            try:
                await ctx.access.require_visible(ctx.token.learner_id)
            except LearnerNotFound:
                visible = False
    nodes = [Learner(id=strawberry.ID(pseudonym), uuid=ctx.token.learner_id)] if visible and pseudonym else []
    return LearnerConnection(nodes=nodes, page_info=types.PageInfo(has_next_page=False, end_cursor=pseudonym if nodes else None))


@strawberry.type
class Query:
    @strawberry.field(description="Learners this provider holds at least one live grant for.")
    async def learners(self, info: GInfo, first: int = 20, after: str | None = None) -> LearnerConnection:
        _check_first(info, first)
        if after is not None and not looks_like_pairwise_id(after):
            raise bad_input("the cursor is not one this API returned", argument="after")
        ctx = info.context
        if ctx.token.learner_id is not None:
            return await _bound_learner_page(info, after)
        async with ctx.db() as session:
            rows, has_next = await grant_service.learners_with_live_grant(
                session=session, provider_id=ctx.token.provider_id, at=ctx.access.now, first=first, after=after
            )
            # The page's section fields then decide from memory: one grants query for the page.
            await ctx.access.preload([learner_id for _, learner_id in rows])
        return LearnerConnection(
            nodes=[Learner(id=strawberry.ID(pseudonym), uuid=learner_id) for pseudonym, learner_id in rows],
            page_info=types.PageInfo(has_next_page=has_next, end_cursor=rows[-1][0] if rows else None),
        )

    @strawberry.field(description="This provider's access requests, newest first.")
    async def access_requests(
        self, info: GInfo, status: str | None = None, first: int = 20, after: str | None = None
    ) -> AccessRequestConnection:
        _check_first(info, first)
        after_at = None
        if after is not None:
            try:
                after_at = datetime.fromisoformat(after)
            except ValueError:
                after_at = None
            if after_at is None or after_at.tzinfo is None:  # every cursor this API gives has its offset
                raise bad_input("the cursor is not one this API returned", argument="after")
        ctx = info.context
        async with ctx.db() as session:
            rows, has_next = await request_service.provider_requests(
                session=session, provider_id=ctx.token.provider_id, status=status, first=first, after=after_at
            )
        return AccessRequestConnection(
            nodes=[_request_type(request, pairwise) for request, pairwise in rows],
            page_info=types.PageInfo(has_next_page=has_next, end_cursor=rows[-1][0].created_at.isoformat() if rows else None),
        )

    @strawberry.field(
        description="Entries created, updated and deleted, as far as this provider may read them, in a stable "
        "order with a resumable cursor: pass the last `endCursor` as `after`. No change is skipped or repeated."
    )
    async def changes(
        self, info: GInfo, after: str | None = None, sections: list[str] | None = None, first: int = 100
    ) -> types.ChangeConnection:
        _check_first(info, first)
        wanted = sections if sections is not None else sorted(record_service.SECTION_MODELS)
        unknown = sorted(set(wanted) - set(record_service.SECTION_MODELS))
        if unknown or not wanted:
            raise bad_input(f"sections must be among {sorted(record_service.SECTION_MODELS)}", argument="sections")
        try:
            position = record_service.FeedPosition.decode(after) if after else None
        except record_service.InvalidCursor as exc:
            raise bad_input(str(exc), argument="after") from None
        return await _read_feed(info, position, wanted, first)
    @strawberry.field(description="Resolve this provider's own learner identifiers (e.g. xAPI actor, OneRoster sourcedId).")
    async def learner_links(self, info: GInfo, system: str, external_ids: list[str]) -> list[LearnerLink]:
        return await _learner_links(info, system, external_ids)

    @strawberry.field(description="One learner; null with NOT_FOUND when absent or not shared with this provider.")
    async def learner(self, info: GInfo, id: strawberry.ID) -> Learner | None:
        return Learner(id=id, uuid=await _resolve_learner(info, id))

    @strawberry.field(description="Verify an Open Badges 3.0 / CLR 2.0 credential this provider holds (JSON-LD "
                      "text or a compact JWS): proof, issuer key, validity period, status, embedded credentials. "
                      "Reads no learner data, so it needs a valid token but no consent.")
    async def verify_credential(self, info: GInfo, credential: str) -> credential_types.CredentialVerification:
        return await credential_types.verify_credential(info, credential)


_FEED_TYPES = {"badges": ("badge", types.Badge), "skills": ("skill", types.SkillAssessment),
               "activities": ("activity", types.Activity)}


async def _read_feed(
    info: GInfo, position: Any, sections: list[str], first: int
) -> types.ChangeConnection:
    """Scan the feed in order, keep the changes consent allows, stop after ``first`` of them.

    Refused rows are skipped but still advance the cursor, so they are never re-scanned; the scan
    is bounded per request (``10 * first`` rows) and reports ``hasNextPage`` when it stops early.
    """
    ctx = info.context
    kept: list[tuple[Any, str, Any]] = []  # (change, pairwise id, decision)
    cursor, scanned, budget, has_more = position, 0, 10 * first, True
    while len(kept) < first:
        if scanned >= budget:
            break  # bounded work per request; the client continues from endCursor
        limit = min(200, budget - scanned)
        async with ctx.db() as session:
            batch = await record_service.read_changes(
                session=session, reader_provider_id=ctx.token.provider_id, after=cursor, sections=sections, limit=limit
            )
            await ctx.access.preload(list({change.learner_id for change, _ in batch}))
        for change, pairwise in batch:
            if len(kept) == first:
                break
            scanned += 1
            cursor = record_service.FeedPosition(change.txid or 0, change.id)
            try:
                async with ctx.db():
                    decision = await ctx.access.authorize(change.learner_id, change.section, Action.READ)
            except (AccessDenied, LearnerNotFound):
                continue  # consumed, not shown: the cursor moves past it
            if decision.own_only and change.provider_id != ctx.token.provider_id:
                continue
            kept.append((change, pairwise, decision))
        if len(batch) < limit and len(kept) < first:
            has_more = False  # caught up with everything committed so far
            break
    entries: dict[str, dict[int, Any]] = {}
    async with ctx.db() as session:
        for section in {change.section for change, _, _ in kept} & set(_FEED_TYPES):
            ids = [change.entry_id for change, _, _ in kept if change.section == section and change.op != "deleted"]
            entries[section] = await record_service.entries_by_id(session=session, section=section, ids=ids)
    nodes = []
    for change, pairwise, decision in kept:
        entry = entries.get(change.section, {}).get(change.entry_id) if change.op != "deleted" else None
        at_key = record_service.ORDER_ATTRIBUTE[change.section]
        if entry is not None and decision.data_from is not None and getattr(entry, at_key) < decision.data_from:
            continue  # outside the grant's window: the change is not this provider's to see
        # Sections without a typed slot on Change report the change itself; read the entry through
        # the learner's section field.
        field, node_type = _FEED_TYPES.get(change.section, (None, None))
        ctx.access.disclosed(change.learner_id, change.section, Action.READ, 1)
        nodes.append(types.Change(
            op=change.op, section=change.section, learner_id=strawberry.ID(pairwise),
            entry_id=strawberry.ID(str(change.entry_id)), source_id=change.source_id,
            contributed_by=strawberry.ID(str(change.provider_id)), at=change.at,
            **({field: node_type.from_row(entry)} if entry is not None and field else {}),
        ))
    end = cursor.encode() if cursor is not None else None
    return types.ChangeConnection(nodes=nodes, page_info=types.PageInfo(has_next_page=has_more, end_cursor=end))


def _request_type(request: Any, pairwise_id: str) -> types.AccessRequest:
    return types.AccessRequest(
        id=strawberry.ID(str(request.id)),
        learner_id=strawberry.ID(pairwise_id),
        items=[types.AccessItem.parse(i) for i in request.items],
        approved_items=[types.AccessItem.parse(i) for i in request.approved_items],
        purpose=request.purpose,
        duration_days=request.duration_days,
        status=request.status,
        created_at=request.created_at,
        decided_at=request.decided_at,
    )


@functools.cache
def _batch_adapter(model: type[Any]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def _validate_batch(info: GInfo, section: str, items: list[Any], argument: str) -> list[Any]:
    """All-or-nothing validation of a batch before anything is decided or written."""
    limit = info.context.settings.max_batch_size
    if not items:
        raise bad_input(f"{argument} is empty", argument=argument)
    if len(items) > limit:
        raise bad_input(f"{argument} holds {len(items)} entries; the limit per call is {limit}", argument=argument)
    model = record_schemas.SECTION_INPUTS[section]
    plain = [item if isinstance(item, dict) else inputs.as_plain(item) for item in items]
    try:
        # One call for the whole batch (the per-entry calls cost ~20 % more for 1,000 activities);
        # an invalid batch is validated again entry by entry, for the error paths below.
        validated = _batch_adapter(model).validate_python(plain)
    except ValidationError:
        problems = []
        for index, item in enumerate(plain):
            try:
                model.model_validate(item)
            except ValidationError as exc:
                problems.extend(
                    {"path": [argument, index, *err["loc"]], "message": record_schemas.error_message(err)}
                    for err in exc.errors(include_url=False)
                )
        raise bad_input(
            f"{argument}: {len(problems)} invalid field(s); nothing was stored", argument=argument, errors=problems[:50]
        ) from None
    seen: set[str] = set()
    duplicates = sorted({e.source_id for e in validated if e.source_id in seen or seen.add(e.source_id)})
    if duplicates:
        raise bad_input(f"{argument}: source_id repeated within the batch: {duplicates[:10]}", argument=argument)
    return validated


async def _contribute(info: GInfo, learner_id_raw: str, section: str, items: list[Any], argument: str) -> types.ContributionResult:
    entries = _validate_batch(info, section, items, argument)
    learner_id = await _resolve_learner(info, learner_id_raw)
    allowed = await _authorize(info, learner_id, section, Action.CONTRIBUTE)
    ctx = info.context
    try:
        async with ctx.db() as session, session.begin_nested():
            report = await record_service.contribute_entries(
                session=session,
                access=allowed,
                section=section,
                learner_id=learner_id,
                provider_id=ctx.token.provider_id,
                entries=entries,
                now=ctx.access.now,
                data_keys=ctx.data_keys,
            )
    except UnreadableData as exc:
        raise _unreadable(learner_id, section, exc) from None
    except IntegrityError:
        # Another request stored some of these source ids between our lookup and insert.
        raise api_error(ErrorCode.CONFLICT, "a concurrent request stored some of these entries; retry the batch") from None
    ctx.access.disclosed(learner_id, section, Action.CONTRIBUTE, report.created + report.updated)
    return types.ContributionResult(
        received=report.received, created=report.created, updated=report.updated, unchanged=report.unchanged
    )


_BATCH_SECTIONS = ("badges", "skills", "activities")


async def _contribute_batch(info: GInfo, items: list[inputs.LearnerBatchInput]) -> list[types.LearnerBatchResult]:
    """Per learner: validate, decide, write, all or nothing (a savepoint per learner)."""
    ctx = info.context
    limit = ctx.settings.max_batch_size
    total = sum(len(getattr(item, section) or []) for item in items for section in _BATCH_SECTIONS)
    if not items or len(items) > 100:
        raise bad_input("items must hold between 1 and 100 learners", argument="items")
    if total > limit:
        raise bad_input(f"the batch holds {total} entries; the limit per call is {limit}", argument="items")
    if len({item.learner_id for item in items}) != len(items):
        raise bad_input("a learner appears more than once; merge their entries into one item", argument="items")
    results = []
    for item in items:
        def result(status: str, code: str | None = None, reason: str | None = None, errors: list[str] | None = None,
                   sections: list[types.SectionContribution] | None = None) -> types.LearnerBatchResult:
            return types.LearnerBatchResult(learner_id=item.learner_id, status=status, code=code, reason=reason,
                                            errors=errors or [], sections=sections or [])

        wanted = [(section, getattr(item, section)) for section in _BATCH_SECTIONS if getattr(item, section)]
        try:
            validated = [(section, _validate_batch(info, section, entries, section)) for section, entries in wanted]
            learner_id = await _resolve_learner(info, item.learner_id)
            decisions = [await _authorize(info, learner_id, section, Action.CONTRIBUTE) for section, _ in validated]
        except GraphQLError as error:
            extensions = error.extensions or {}
            code = extensions.get("code")
            details = [f"{'/'.join(map(str, e['path']))}: {e['message']}" for e in extensions.get("errors", [])]
            results.append(result("invalid" if code == ErrorCode.BAD_USER_INPUT else "refused", code, error.message, details))
            continue
        reports = []
        try:
            async with ctx.db() as session, session.begin_nested():
                for (section, entries), allowed in zip(validated, decisions, strict=True):
                    report = await record_service.contribute_entries(
                        session=session, access=allowed, section=section, learner_id=learner_id,
                        provider_id=ctx.token.provider_id, entries=entries, now=ctx.access.now, data_keys=ctx.data_keys,
                    )
                    reports.append((section, report))
        except IntegrityError:
            results.append(result("refused", ErrorCode.CONFLICT, "a concurrent request stored some of these entries; retry"))
            continue
        for section, report in reports:
            ctx.access.disclosed(learner_id, section, Action.CONTRIBUTE, report.created + report.updated)
        results.append(result("stored", sections=[
            types.SectionContribution(section=section, received=r.received, created=r.created, updated=r.updated,
                                      unchanged=r.unchanged)
            for section, r in reports
        ]))
    return results


AccessRequestConnection = types.AccessRequestConnection


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Ask the learner's family for sections x actions, with a purpose in plain words. A pending "
        "request from this provider is merged; after a denial the provider must wait out a cool-down."
    )
    async def request_access(
        self, info: GInfo, learner_id: strawberry.ID, items: list[inputs.AccessItemInput], purpose: str,
        duration_days: int | None = None,
    ) -> types.AccessRequestResult | None:
        wanted = [f"{i.section}:{i.action}" for i in items]
        if not wanted or len(wanted) > 50:
            raise bad_input("items must hold between 1 and 50 section/action pairs", argument="items")
        for item in wanted:
            try:
                parse_scope(item)
            except (ValueError, UnknownSection) as exc:
                raise bad_input(str(exc), argument="items") from None
        ctx = info.context
        beyond = sorted(set(wanted) - ctx.token.scopes)
        if beyond:
            raise api_error(ErrorCode.INSUFFICIENT_SCOPE, f"this client may not use {beyond}; it cannot ask for them")
        learner_id_internal = await _resolve_learner(info, learner_id)
        try:
            async with ctx.db() as session, session.begin_nested():
                request, merged = await request_service.request_access(
                    session=session, provider_id=ctx.token.provider_id, client_id=ctx.token.client_id,
                    learner_id=learner_id_internal, items=wanted, purpose=purpose, duration_days=duration_days,
                    now=ctx.access.now, cooldown=timedelta(days=ctx.settings.access_request_cooldown_days),
                    live_grants=await ctx.access.grants_for(learner_id_internal),
                )
        except request_service.CooldownActive as exc:
            raise api_error(ErrorCode.REQUEST_COOLDOWN, str(exc), retryAfter=exc.until.isoformat()) from None
        except ValueError as exc:
            raise bad_input(str(exc)) from None
        return types.AccessRequestResult(request=_request_type(request, learner_id), merged=merged)

    @strawberry.mutation(description="Contribute a batch of badges for one learner (idempotent on sourceId).")
    async def contribute_badges(self, info: GInfo, learner_id: strawberry.ID, badges: list[inputs.BadgeInput]) -> types.ContributionResult | None:
        return await _contribute(info, learner_id, "badges", badges, "badges")

    @strawberry.mutation(
        description="Import verifiable credentials for one learner (up to 100; each an OB 2.0 signed assertion as a "
        "compact JWS, or an OB 3.0 / CLR 2.0 credential as JSON-LD text or a compact JWS). Each is verified, held whole "
        "(deduplicated by issuer.id + id; a newer validFrom replaces) and shown as a `badges` entry whose sourceId is "
        "derived from its identity. Needs consent to contribute `badges`; a credential that does not verify is REFUSED "
        "with the reasons."
    )
    async def import_credentials(
        self, info: GInfo, learner_id: strawberry.ID, credentials: list[str]
    ) -> credential_import.CredentialImportResult | None:
        credential_import.check_sizes(credentials)
        learner = await _resolve_learner(info, learner_id)
        allowed = await _authorize(info, learner, "badges", Action.CONTRIBUTE)
        return await credential_import.import_credentials(info, learner, credentials, allowed)

    @strawberry.mutation(description="Contribute a batch of skill assessments for one learner (idempotent on sourceId).")
    async def contribute_skills(self, info: GInfo, learner_id: strawberry.ID, skills: list[inputs.SkillInput]) -> types.ContributionResult | None:
        return await _contribute(info, learner_id, "skills", skills, "skills")

    @strawberry.mutation(
        description="Withdraw entries this provider contributed (soft delete, logged); re-sending one restores it. "
        "Purged for real after the retention window."
    )
    async def retract_entries(
        self, info: GInfo, learner_id: strawberry.ID, section: str, source_ids: list[str]
    ) -> types.RetractionResult | None:
        if section not in record_service.SECTION_MODELS:
            raise bad_input(f"section must be one of {sorted(record_service.SECTION_MODELS)}", argument="section")
        if not 1 <= len(source_ids) <= info.context.settings.max_batch_size:
            raise bad_input(f"sourceIds must hold 1 to {info.context.settings.max_batch_size} ids", argument="sourceIds")
        learner = await _resolve_learner(info, learner_id)
        allowed = await _authorize(info, learner, section, Action.CONTRIBUTE)
        ctx = info.context
        wanted = list(dict.fromkeys(source_ids))
        async with ctx.db() as session:
            model = record_service.SECTION_MODELS[section]
            live = set((await session.execute(
                select(model.source_id).where(model.learner_id == learner, model.provider_id == ctx.token.provider_id,
                                              model.source_id.in_(wanted), model.deleted_at.is_(None))
            )).scalars())
            count = await record_service.retract_entries(
                session=session, access=allowed, section=section, learner_id=learner,
                provider_id=ctx.token.provider_id, source_ids=sorted(live), now=ctx.access.now,
            )
        ctx.access.disclosed(learner, section, Action.CONTRIBUTE, count)
        return types.RetractionResult(retracted=count, not_found=[s for s in wanted if s not in live])

    @strawberry.mutation(
        description="Bulk sync: badges, skills and activities for many learners in one call, with a result per "
        "learner; each learner's part is stored all or nothing (idempotent on sourceId)."
    )
    async def contribute_batch(self, info: GInfo, items: list[inputs.LearnerBatchInput]) -> list[types.LearnerBatchResult] | None:
        return await _contribute_batch(info, items)

    @strawberry.mutation(description="Record a batch of activities for one learner (idempotent on sourceId).")
    async def record_activities(
        self, info: GInfo, learner_id: strawberry.ID, activities: list[inputs.ActivityInput]
    ) -> types.ContributionResult | None:
        return await _contribute(info, learner_id, "activities", activities, "activities")

    @strawberry.mutation(
        description="Retract this provider's activities by sourceId (an xAPI voiding); decided per learner."
    )
    async def retract_activities(self, info: GInfo, source_ids: list[str]) -> ActivityRetractionResult | None:
        return await _retract(info, "activities", source_ids)

    @strawberry.mutation(
        description="Retract this provider's own entries of any section by sourceId, across learners (e.g. a "
        "OneRoster `tobedeleted` row); decided per learner. Ids of no live entry are counted in notFound."
    )
    async def retract_own_entries(
        self, info: GInfo, section: str, source_ids: list[str]
    ) -> ActivityRetractionResult | None:
        if section not in record_service.SECTION_MODELS:
            raise bad_input(f"section must be one of {sorted(record_service.SECTION_MODELS)}", argument="section")
        return await _retract(info, section, source_ids)

    @strawberry.mutation(
        description="Import a CASE 1.0/1.1 CFPackage (CFDocument, CFItems, CFAssociations), validated against the "
        "CASE 1.1 JSON Schemas: invalid items are reported and left out, the rest is stored. Idempotent on CASE "
        "identifiers. Public reference data: needs the `frameworks:write` scope, no consent."
    )
    async def import_framework(self, info: GInfo, package: JSON) -> framework_types.FrameworkImportResult:
        return await framework_types.import_framework(info, package)
    @strawberry.mutation(description="Contribute profile statements for one learner (idempotent on sourceId).")
    async def contribute_profile(
        self, info: GInfo, learner_id: strawberry.ID, profile: list[inputs.ProfileInput]
    ) -> types.ContributionResult | None:
        return await _contribute(info, learner_id, "profile", profile, "profile")

    @strawberry.mutation(description="Contribute college and career exposure for one learner (idempotent on sourceId).")
    async def contribute_pathways(
        self, info: GInfo, learner_id: strawberry.ID, pathways: list[inputs.PathwayInput]
    ) -> types.ContributionResult | None:
        return await _contribute(info, learner_id, "pathways", pathways, "pathways")

    @strawberry.mutation(description="Contribute service and volunteering for one learner (idempotent on sourceId).")
    async def contribute_service(
        self, info: GInfo, learner_id: strawberry.ID, service: list[inputs.ServiceInput]
    ) -> types.ContributionResult | None:
        return await _contribute(info, learner_id, "service", service, "service")

    @strawberry.mutation(description="Contribute projects for one learner (idempotent on sourceId).")
    async def contribute_projects(
        self, info: GInfo, learner_id: strawberry.ID, projects: list[inputs.ProjectInput]
    ) -> types.ContributionResult | None:
        return await _contribute(info, learner_id, "projects", projects, "projects")

    @strawberry.mutation(description="Contribute support needs for one learner (sensitive, encrypted at rest; "
                         "idempotent on sourceId).")
    async def contribute_support_needs(
        self, info: GInfo, learner_id: strawberry.ID, support_needs: list[inputs.SupportNeedInput]
    ) -> types.ContributionResult | None:
        return await _contribute(info, learner_id, "support_needs", support_needs, "supportNeeds")

    @strawberry.mutation(description="Contribute wellbeing measures for one learner (sensitive, encrypted at rest; "
                         "idempotent on sourceId).")
    async def contribute_wellbeing(
        self, info: GInfo, learner_id: strawberry.ID, wellbeing: list[inputs.WellbeingInput]
    ) -> types.ContributionResult | None:
        return await _contribute(info, learner_id, "wellbeing", wellbeing, "wellbeing")

    @strawberry.mutation(description="Contribute behaviour records for one learner (sensitive, encrypted at rest; "
                         "idempotent on sourceId).")
    async def contribute_conduct(
        self, info: GInfo, learner_id: strawberry.ID, conduct: list[inputs.ConductInput]
    ) -> types.ContributionResult | None:
        return await _contribute(info, learner_id, "conduct", conduct, "conduct")


class CommitOperation(SchemaExtension):
    """Commit the operation's writes and disclosure-log rows together, after execution."""

    def on_execute(self) -> Any:  # type: ignore[override]
        # Known once the document is parsed, before any resolver runs: a mutation writes.
        context = self.execution_context.context
        if isinstance(context, Context) and self.execution_context.operation_type is OperationType.MUTATION:
            context.access.expect_writes()
        yield

    async def on_operation(self) -> Any:  # type: ignore[override]
        yield
        context = self.execution_context.context
        if not isinstance(context, Context):
            return
        try:
            async with context.db():
                await context.access.flush_log()
            await context.commit()
        except LearnersErased:
            # The family erased a learner while this ran: its answer about them cannot be logged,
            # so it is not given (the transaction rolls back when the session closes).
            raise api_error(ErrorCode.NOT_FOUND, "learner not found: erased while this request ran; nothing was "
                            "disclosed or stored") from None
        except Exception:
            log.exception("commit of a GraphQL operation failed")
            raise api_error(ErrorCode.INTERNAL, "the request could not be recorded; nothing was disclosed or stored") from None


class _SpecOperationContext(ExecutionContext):
    """GraphQL spec (October 2021) §6.1 GetOperation: without an operation name, a document must
    hold exactly one operation. Strawberry names the first one instead; answering ``None`` here
    lets graphql-core raise the spec's request error ("Must provide operation name if query
    contains multiple operations.")."""

    @property
    def operation_name(self) -> str | None:
        if self._provided_operation_name is None and self.graphql_document is not None and sum(
            isinstance(d, OperationDefinitionNode) for d in self.graphql_document.definitions
        ) > 1:
            return None
        return super().operation_name


class KinfolioSchema(strawberry.Schema):
    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:  # type: ignore[override]
        result = await super().execute(*args, **kwargs)
        if result.errors:
            _release_tracebacks(result.errors)
        return result

    def _create_execution_context(self, query: str | None, allowed_operation_types: Any,  # type: ignore[override]
                                  variable_values: dict[str, Any] | None = None, context_value: Any | None = None,
                                  root_value: Any | None = None, operation_name: str | None = None,
                                  operation_extensions: dict[str, Any] | None = None) -> ExecutionContext:
        return _SpecOperationContext(
            query=query, schema=self, allowed_operations=allowed_operation_types, context=context_value,
            root_value=root_value, variables=variable_values, provided_operation_name=operation_name,
            operation_extensions=operation_extensions,
        )

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        # Denials, bad input and invalid documents are answers, not incidents: log only errors
        # raised by our code that carry none of our codes (bugs, outages).
        unexpected = [
            e
            for e in errors
            if (e.extensions or {}).get("code") not in EXPECTED_CODES
            and e.original_error is not None
            and not isinstance(e.original_error, GraphQLError)
        ]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def _release_tracebacks(errors: list[GraphQLError]) -> None:
    """Drop the tracebacks of an answered operation's errors (and of the exceptions behind them).

    graphql-core catches a resolver's exception and keeps it in the GraphQLError it locates, in
    the catching frame: exception -> traceback -> that frame -> the GraphQLError -> exception, a
    cycle holding every frame the error passed through and what those frames held (the request's
    context and session, the learner's grants): ~170 objects per refused read that only the
    cyclic collector freed. Errors are logged (``process_errors``) before ``execute`` returns,
    so nothing reads these tracebacks later; the errors themselves keep their messages, paths
    and codes.
    """
    for error in errors:
        seen: set[int] = set()
        pending: list[BaseException | None] = [error]
        while pending:
            exception = pending.pop()
            if exception is None or id(exception) in seen:
                continue
            seen.add(id(exception))
            exception.__traceback__ = None
            pending += [exception.__cause__, exception.__context__, getattr(exception, "original_error", None)]


def _should_mask(error: GraphQLError) -> bool:
    # Keep our coded errors and GraphQL's own validation messages; hide everything else.
    if (error.extensions or {}).get("code") in set(ErrorCode):
        return False
    return error.original_error is not None and not isinstance(error.original_error, GraphQLError)


_PLAIN_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")


def _parse_datetime(value: str) -> datetime:
    """``DateTime`` input: the common RFC 3339 shape through the C parser, anything else exactly
    as Strawberry parses it (dateutil). Both give the same instant for the common shape; dateutil
    was ~10% of a 1,000-activity batch (BENCHMARKS.md)."""
    if _PLAIN_ISO_DATETIME.fullmatch(value):
        return datetime.fromisoformat(value)
    return dateutil.parser.isoparse(value)


def _datetime_text(value: datetime) -> str:
    """``DateTime`` output: exactly what Strawberry's ``isoformat`` gives, formatted by orjson's C
    code for the UTC datetimes the databases return (~0.5 µs against ~1 µs; a profile read has 90)."""
    if type(value) is datetime and value.tzinfo is UTC:
        return orjson.dumps(value)[1:-1].decode()
    return value.isoformat()


_DATETIME = dataclasses.replace(DateTimeDefinition, parse_value=wrap_parser(_parse_datetime, "DateTime"),
                                serialize=_datetime_text)


def build_schema(settings: Settings) -> strawberry.Schema:
    # Rule classes are built once: per-request construction defeats ValidationCache
    # (strawberry upstream issue #4635, see STACK_NOTES).
    rules = [depth_rule(settings.graphql_max_depth, None, None), alias_rule(settings.graphql_max_aliases)]
    schema = KinfolioSchema(
        query=Query,
        mutation=Mutation,
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=settings.graphql_max_tokens),
            lambda: AddValidationRules(rules),
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
            cost_limit(settings.graphql_max_cost),
            lambda: MaskErrors(should_mask_error=_should_mask, error_message="Unexpected error."),
            CommitOperation,
        ],
        scalar_overrides={datetime: _DATETIME},
        execution_context_class=LeanExecutionContext,
    )
    _use_raw_batch_arguments(schema)
    mark_plain_fields(schema._schema)
    return schema


# The batch mutations: GraphQL field -> (section, argument).
_BATCH_MUTATIONS = {
    "contributeBadges": ("badges", "badges"),
    "contributeSkills": ("skills", "skills"),
    "recordActivities": ("activities", "activities"),
}


def _raw_batch_resolver(section: str, argument: str) -> Callable[..., Awaitable[types.ContributionResult]]:
    async def resolve(_root: Any, info: Any, **kwargs: Any) -> types.ContributionResult:
        # graphql-core has already coerced and type-checked the variables; the items stay plain
        # dicts (GraphQL names) until pydantic validates them in _validate_batch.
        return await _contribute(info, kwargs["learnerId"], section, kwargs[argument], argument)

    return resolve


def _use_raw_batch_arguments(schema: strawberry.Schema) -> None:
    """Skip Strawberry's argument conversion for the three batch mutations.

    Profiling ``recordActivities`` with 1,000 entries showed Strawberry turning the coerced
    variables into 1,000 nested input objects (``convert_argument``: per-field type
    introspection) as the largest single cost of the request, followed by ``as_plain`` copying
    them back into dicts. The fields keep their declared types (the SDL is unchanged); only the
    runtime resolver is replaced with one that hands graphql-core's coerced dicts to the same
    ``_contribute``, which only uses ``info.context``. Behaviour is pinned by
    tests/hub/test_contributions.py.
    """
    mutation_type = schema._schema.mutation_type
    assert mutation_type is not None
    for field_name, (section, argument) in _BATCH_MUTATIONS.items():
        mutation_type.fields[field_name].resolve = _raw_batch_resolver(section, argument)


def export_sdl(settings: Settings | None = None) -> str:
    return build_schema(settings or Settings()).as_str() + "\n"

