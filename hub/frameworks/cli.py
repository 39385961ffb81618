"""``kinfolio frameworks import FILE|URL`` and ``kinfolio frameworks list`` (operator commands).

The operator imports directly into the hub's database (one transaction), with the same
validation and idempotency as the ``importFramework`` mutation a provider uses.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from hub.clitools import fail, in_transaction
from hub.config import get_settings
from hub.db import utcnow
from hub.frameworks import service
from hub.frameworks.source import SourceError, read_package

frameworks_app = typer.Typer(help="CASE competency frameworks (CFPackages) that skills align to.", no_args_is_help=True)


@frameworks_app.command("import")
def import_(
    source: Annotated[str, typer.Argument(help="A CFPackage JSON file, or an http(s) URL serving one")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Import (or update) one framework; invalid items are reported and left out."""

    try:
        package = asyncio.run(read_package(source))
        settings = get_settings()
        result = in_transaction(lambda session: service.import_package(
            session=session, package=package, schemas_dir=settings.case_schemas_dir, now=utcnow()))
    except (SourceError, service.FrameworksNotConfigured) as exc:  # PackageInvalid is a ValueError
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        return
    counts = lambda c: f"{c.created} created, {c.updated} updated, {c.unchanged} unchanged, {c.removed} removed"  # noqa: E731
    typer.echo(f"{result.title} ({result.document_uri}): document {result.document}; "
               f"items {counts(result.items)}; associations {counts(result.associations)}; invalid {len(result.invalid)}")
    for problem in result.invalid:
        typer.echo(f"invalid {problem.path} {problem.identifier or '-'}: {problem.reason}", err=True)


@frameworks_app.command("list")
def list_() -> None:
    """The imported frameworks, one JSON object per line."""

    for doc in in_transaction(service.list_documents):
        typer.echo(json.dumps({
            "identifier": doc.identifier, "uri": doc.uri, "title": doc.title, "creator": doc.creator,
            "adoptionStatus": doc.adoption_status, "items": doc.items, "associations": doc.associations,
            "lastChangeDateTime": doc.last_change_at.isoformat() if doc.last_change_at else None,
            "importedAt": doc.updated_at.isoformat(),
        }, ensure_ascii=False))
