"""The provider GraphQL API.

Every section field and mutation goes through ``_authorize`` -> ``ProviderAccess.authorize``,
the single consent gate of this access path. The operation's writes and its disclosure-log rows
are committed together at the end of the operation (``CommitOperation``); if that commit fails,
the response carries no data.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import dateutil.parser
import strawberry
from graphql import GraphQLError
from pydantic import ValidationError
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
from strawberry.types import ExecutionContext, Info

from consent import Action, DenyReason
from consent.pseudonyms import looks_like_pairwise_id
from hub.config import Settings
from hub.graphql import inputs, types
from hub.graphql.context import Context
from hub.graphql.errors import EXPECTED_CODES, ErrorCode, api_error, bad_input, learner_not_found
from hub.grants import service as grant_service
from hub.grants.enforce import AccessDenied, LearnerNotFound
from hub.records import service as record_service
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


async def _authorize(info: GInfo, learner_id: UUID, section: str, action: Action, entry_count: int | None = None):  # type: ignore[no-untyped-def]
    ctx = info.context
    try:
        async with ctx.db():
            return await ctx.access.authorize(learner_id, section, action, entry_count=entry_count)
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
    allowed = await _authorize(info, learner_id, section, Action.READ)
    try:
        async with info.context.db() as session:
            page = await record_service.list_entries(
                session=session, access=allowed, section=section, learner_id=learner_id, first=first, after=after, **filters
            )
    except record_service.InvalidCursor as exc:
        raise bad_input(str(exc), argument="after") from None
    nodes = [to_node(row) for row in page.entries]
    edges = [
        types.Edge(cursor=record_service.encode_cursor(getattr(row, record_service.ORDER_ATTRIBUTE[section]), row.id), node=node)
        for row, node in zip(page.entries, nodes, strict=True)
    ]
    return types.Connection(
        edges=edges, nodes=nodes, page_info=types.PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor)
    )


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


@strawberry.type
class LearnerConnection:
    nodes: list[Learner]
    page_info: types.PageInfo


@strawberry.type
class Query:
    @strawberry.field(description="Learners this provider holds at least one live grant for.")
    async def learners(self, info: GInfo, first: int = 20, after: str | None = None) -> LearnerConnection:
        _check_first(info, first)
        if after is not None and not looks_like_pairwise_id(after):
            raise bad_input("the cursor is not one this API returned", argument="after")
        ctx = info.context
        async with ctx.db() as session:
            rows, has_next = await grant_service.learners_with_live_grant(
                session=session, provider_id=ctx.token.provider_id, at=ctx.access.now, first=first, after=after
            )
        return LearnerConnection(
            nodes=[Learner(id=strawberry.ID(pseudonym), uuid=learner_id) for pseudonym, learner_id in rows],
            page_info=types.PageInfo(has_next_page=has_next, end_cursor=rows[-1][0] if rows else None),
        )

    @strawberry.field(description="One learner; null with NOT_FOUND when absent or not shared with this provider.")
    async def learner(self, info: GInfo, id: strawberry.ID) -> Learner | None:
        return Learner(id=id, uuid=await _resolve_learner(info, id))


def _validate_batch(info: GInfo, section: str, items: list[Any], argument: str) -> list[Any]:
    """All-or-nothing validation of a batch before anything is decided or written."""
    limit = info.context.settings.max_batch_size
    if not items:
        raise bad_input(f"{argument} is empty", argument=argument)
    if len(items) > limit:
        raise bad_input(f"{argument} holds {len(items)} entries; the limit per call is {limit}", argument=argument)
    model = record_schemas.SECTION_INPUTS[section]
    validated, problems = [], []
    for index, item in enumerate(items):
        try:
            validated.append(model.model_validate(inputs.as_plain(item)))
        except ValidationError as exc:
            problems.extend(
                {"path": [argument, index, *err["loc"]], "message": err["msg"]} for err in exc.errors(include_url=False)
            )
    if problems:
        raise bad_input(
            f"{argument}: {len(problems)} invalid field(s); nothing was stored", argument=argument, errors=problems[:50]
        )
    seen: set[str] = set()
    duplicates = sorted({e.source_id for e in validated if e.source_id in seen or seen.add(e.source_id)})
    if duplicates:
        raise bad_input(f"{argument}: source_id repeated within the batch: {duplicates[:10]}", argument=argument)
    return validated


async def _contribute(info: GInfo, learner_id_raw: str, section: str, items: list[Any], argument: str) -> types.ContributionResult:
    entries = _validate_batch(info, section, items, argument)
    learner_id = await _resolve_learner(info, learner_id_raw)
    allowed = await _authorize(info, learner_id, section, Action.CONTRIBUTE, entry_count=len(entries))
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
            )
    except IntegrityError:
        # Another request stored some of these source ids between our lookup and insert.
        raise api_error(ErrorCode.CONFLICT, "a concurrent request stored some of these entries; retry the batch") from None
    return types.ContributionResult(
        received=report.received, created=report.created, updated=report.updated, unchanged=report.unchanged
    )


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Contribute a batch of badges for one learner (idempotent on sourceId).")
    async def contribute_badges(self, info: GInfo, learner_id: strawberry.ID, badges: list[inputs.BadgeInput]) -> types.ContributionResult | None:
        return await _contribute(info, learner_id, "badges", badges, "badges")

    @strawberry.mutation(description="Contribute a batch of skill assessments for one learner (idempotent on sourceId).")
    async def contribute_skills(self, info: GInfo, learner_id: strawberry.ID, skills: list[inputs.SkillInput]) -> types.ContributionResult | None:
        return await _contribute(info, learner_id, "skills", skills, "skills")

    @strawberry.mutation(description="Record a batch of activities for one learner (idempotent on sourceId).")
    async def record_activities(
        self, info: GInfo, learner_id: strawberry.ID, activities: list[inputs.ActivityInput]
    ) -> types.ContributionResult | None:
        return await _contribute(info, learner_id, "activities", activities, "activities")


class CommitOperation(SchemaExtension):
    """Commit the operation's writes and disclosure-log rows together, after execution."""

    async def on_operation(self) -> Any:  # type: ignore[override]
        yield
        context = self.execution_context.context
        if not isinstance(context, Context):
            return
        try:
            await context.commit()
        except Exception:
            log.exception("commit of a GraphQL operation failed")
            raise api_error(ErrorCode.INTERNAL, "the request could not be recorded; nothing was disclosed or stored") from None


class KinfolioSchema(strawberry.Schema):
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


_DATETIME = dataclasses.replace(DateTimeDefinition, parse_value=wrap_parser(_parse_datetime, "DateTime"))


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
            lambda: MaskErrors(should_mask_error=_should_mask, error_message="Unexpected error."),
            CommitOperation,
        ],
        scalar_overrides={datetime: _DATETIME},
    )
    _use_raw_batch_arguments(schema)
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
    from hub.config import Settings as _Settings

    return build_schema(settings or _Settings()).as_str() + "\n"


__all__ = ["Iterator", "Awaitable", "build_schema", "export_sdl"]
