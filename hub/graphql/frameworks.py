"""GraphQL for CASE competency frameworks: ``importFramework`` and ``SkillRef.frameworkItem``.

Frameworks are public reference data, not learner data: no family consent applies to them.
Importing one needs the ``frameworks:write`` token scope (operator-granted only); reading an
item's name rides on a skills field that the consent engine has already allowed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.dataloader import DataLoader

from consent.sections import FRAMEWORKS_WRITE
from hub.frameworks import service
from hub.graphql.errors import ErrorCode, api_error, bad_input

if TYPE_CHECKING:
    from strawberry.types import Info

    from hub.graphql.context import Context, SessionGate

MAX_PACKAGE_OBJECTS = 50_000


@strawberry.type(description="A CASE CFItem a skill is aligned to (imported with importFramework).")
class FrameworkItem:
    uri: str
    identifier: str
    statement: str = strawberry.field(description="The CFItem's fullStatement.")
    human_coding_scheme: str | None
    item_type: str | None = strawberry.field(description="The CFItem's CFItemType.")
    education_level: list[str] | None
    document_title: str = strawberry.field(description="Title of the CFDocument (the framework).")
    document_uri: str

    @classmethod
    def from_view(cls, view: service.ItemView) -> FrameworkItem:
        return cls(uri=view.uri, identifier=view.identifier, statement=view.statement,
                   human_coding_scheme=view.human_coding_scheme, item_type=view.item_type,
                   education_level=view.education_level, document_title=view.document_title,
                   document_uri=view.document_uri)


@strawberry.type
class FrameworkCounts:
    created: int
    updated: int
    unchanged: int
    removed: int = strawberry.field(description="Stored objects of this framework the package no longer contains.")


@strawberry.type(description="An item or association left out of an import, and why.")
class FrameworkProblem:
    path: str = strawberry.field(description="Where in the package, e.g. `CFItems[3]`.")
    identifier: str | None
    reason: str


@strawberry.type(description="What importFramework did (idempotent on CASE identifiers).")
class FrameworkImportResult:
    document_identifier: str
    document_uri: str
    title: str
    document: str = strawberry.field(description="`created`, `updated` or `unchanged`.")
    items: FrameworkCounts
    associations: FrameworkCounts
    invalid: list[FrameworkProblem]


def item_loader(gate: SessionGate) -> DataLoader[tuple[str, str], service.ItemView | None]:
    async def load(keys: list[tuple[str, str]]) -> list[service.ItemView | None]:
        async with gate.db() as session:
            found = await service.find_items(session, list(dict.fromkeys(keys)))
        return [found.get(key) for key in keys]

    return DataLoader(load_fn=load)


async def framework_item(info: Info[Context, None], framework_uri: str | None, code: str | None) -> FrameworkItem | None:
    if framework_uri is None or code is None:
        return None
    view = await info.context.framework_items.load((framework_uri, code))
    return FrameworkItem.from_view(view) if view is not None else None


async def import_framework(info: Info[Context, None], package: Any) -> FrameworkImportResult:
    ctx = info.context
    if FRAMEWORKS_WRITE not in ctx.token.scopes:
        raise api_error(ErrorCode.INSUFFICIENT_SCOPE, f"importing a framework needs the {FRAMEWORKS_WRITE} scope",
                        scope=FRAMEWORKS_WRITE)
    if isinstance(package, dict):
        size = sum(len(package.get(k) or []) for k in ("CFItems", "CFAssociations") if isinstance(package.get(k), list))
        if size > MAX_PACKAGE_OBJECTS:
            raise bad_input(f"package: more than {MAX_PACKAGE_OBJECTS} items and associations", argument="package")
    try:
        async with ctx.db() as session:
            result = await service.import_package(session=session, package=package, schemas_dir=ctx.settings.case_schemas_dir,
                                                  now=ctx.access.now, provider_id=ctx.token.provider_id)
    except service.FrameworksNotConfigured as exc:
        raise api_error(ErrorCode.NOT_CONFIGURED, f"framework import is not configured on this hub: {exc}") from None
    except service.PackageInvalid as exc:
        raise bad_input(f"package: {exc}", argument="package",
                        errors=[{"path": p.path, "identifier": p.identifier, "message": p.reason} for p in exc.problems]) from None

    def counts(c: service.Counts) -> FrameworkCounts:
        return FrameworkCounts(created=c.created, updated=c.updated, unchanged=c.unchanged, removed=c.removed)

    return FrameworkImportResult(
        document_identifier=result.document_identifier, document_uri=result.document_uri, title=result.title,
        document=result.document, items=counts(result.items), associations=counts(result.associations),
        invalid=[FrameworkProblem(path=p.path, identifier=p.identifier, reason=p.reason) for p in result.invalid],
    )

