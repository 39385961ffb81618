"""``kinfolio``: the operator's command line (database, accounts, providers, consent, demo, server).

Every command reads settings from ``KINFOLIO_*`` environment variables, like the server.
Errors print one line to stderr and exit with status 2; nothing is half-written (each command is
one transaction).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from uuid import UUID

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from consent import Action
from consent.sections import UnknownSection, catalogue
from hub.config import get_settings, pseudonym_key
from hub.db import make_engine, make_sessionmaker

app = typer.Typer(help="Kinfolio learner record hub.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
guardian_app = typer.Typer(help="Family accounts.", no_args_is_help=True)
learner_app = typer.Typer(help="Learners.", no_args_is_help=True)
provider_app = typer.Typer(help="Providers (schools, apps, clubs).", no_args_is_help=True)
client_app = typer.Typer(help="OAuth clients of providers.", no_args_is_help=True)
grant_app = typer.Typer(help="Consent grants.", no_args_is_help=True)
schema_app = typer.Typer(help="Exported schemas (GraphQL SDL, JSON Schemas).", no_args_is_help=True)
for sub, name in [(db_app, "db"), (guardian_app, "guardian"), (learner_app, "learner"), (provider_app, "provider"),
                  (client_app, "client"), (grant_app, "grant"), (schema_app, "schema")]:
    app.add_typer(sub, name=name)

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction against the configured database."""

    async def run() -> T:
        settings = get_settings()
        engine = make_engine(settings.resolved_database_url)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except (ValueError, LookupError, UnknownSection) as exc:
        _fail(str(exc))
        raise  # unreachable


def _parse_uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        _fail(f"{what} {value!r} is not a UUID")
        raise


def _parse_action(value: str) -> Action:
    try:
        return Action(value)
    except ValueError:
        _fail(f"action must be one of: {', '.join(a.value for a in Action)}")
        raise


# -- db --------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: head). Creates the SQLite data directory."""
    from hub import migrate

    settings = get_settings()
    if settings.resolved_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> None:
        engine = make_engine(settings.resolved_database_url)
        try:
            await migrate.upgrade(engine, revision)
        finally:
            await engine.dispose()

    asyncio.run(run())
    typer.echo(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (``base`` removes every table)."""
    from hub import migrate

    settings = get_settings()

    async def run() -> None:
        engine = make_engine(settings.resolved_database_url)
        try:
            await migrate.downgrade(engine, revision)
        finally:
            await engine.dispose()

    asyncio.run(run())
    typer.echo(f"database at {revision}")


# -- people ----------------------------------------------------------------------------------


@guardian_app.command("create")
def guardian_create(email: Annotated[str, typer.Option()], name: Annotated[str, typer.Option()]) -> None:
    """Create a family account."""
    from hub.people.service import create_guardian

    async def work(session: AsyncSession) -> UUID:
        return (await create_guardian(session=session, email=email, display_name=name)).id

    typer.echo(str(_in_transaction(work)))


@learner_app.command("create")
def learner_create(
    given_name: Annotated[str, typer.Option("--given-name")],
    family_name: Annotated[str, typer.Option("--family-name")],
    date_of_birth: Annotated[str, typer.Option("--dob", help="YYYY-MM-DD")],
    guardian: Annotated[list[str], typer.Option(help="Guardian email; repeat for several.")],
) -> None:
    """Create a learner linked to one or more guardians; prints the learner id."""
    from hub.people.service import create_learner, get_guardian_by_email

    try:
        dob = date.fromisoformat(date_of_birth)
    except ValueError:
        _fail("--dob must be a date as YYYY-MM-DD")
        raise

    async def work(session: AsyncSession) -> UUID:
        ids = []
        for email in guardian:
            found = await get_guardian_by_email(session=session, email=email)
            if found is None:
                raise LookupError(f"no guardian with email {email}")
            ids.append(found.id)
        learner = await create_learner(session=session, given_name=given_name, family_name=family_name,
                                       date_of_birth=dob, guardian_ids=ids, today=datetime.now(UTC).date())
        return learner.id

    typer.echo(str(_in_transaction(work)))


@learner_app.command("list")
def learner_list() -> None:
    """List learners with their dates of birth."""
    from sqlalchemy import select

    from hub.people.models import Learner

    async def work(session: AsyncSession) -> list[Any]:
        return list((await session.execute(select(Learner).order_by(Learner.family_name, Learner.given_name))).scalars())

    for learner in _in_transaction(work):
        typer.echo(f"{learner.id}  {learner.given_name} {learner.family_name}  born {learner.date_of_birth}")


# -- providers -------------------------------------------------------------------------------


@provider_app.command("create")
def provider_create(name: Annotated[str, typer.Option()], kind: Annotated[str, typer.Option()] = "app") -> None:
    """Register a provider organisation; prints its id."""
    from hub.providers.service import create_provider

    async def work(session: AsyncSession) -> UUID:
        return (await create_provider(session=session, name=name, kind=kind)).id

    typer.echo(str(_in_transaction(work)))


@client_app.command("create")
def client_create(
    provider: Annotated[str, typer.Option(help="Provider name.")],
    scope: Annotated[list[str], typer.Option(help="e.g. activities:contribute; repeat for several.")],
    name: Annotated[str, typer.Option()] = "sync job",
) -> None:
    """Register a client-credentials OAuth client. The secret is printed once and never stored."""
    from hub.providers.service import create_client, get_provider_by_name

    async def work(session: AsyncSession) -> tuple[str, str]:
        found = await get_provider_by_name(session=session, name=provider)
        if found is None:
            raise LookupError(f"no provider named {provider!r}")
        client, secret = await create_client(session=session, provider_id=found.id, name=name, scopes=scope)
        return client.client_id, secret

    client_id, secret = _in_transaction(work)
    typer.echo(f"client_id:     {client_id}\nclient_secret: {secret}\n(the secret is shown only now)")


# -- consent ---------------------------------------------------------------------------------


@grant_app.command("create")
def grant_create(
    learner: Annotated[str, typer.Option(help="Learner id.")],
    provider: Annotated[str, typer.Option(help="Provider name.")],
    section: Annotated[str, typer.Option()],
    action: Annotated[str, typer.Option(help="read or contribute")],
    purpose: Annotated[str, typer.Option(help="Why, in plain words.")],
    by: Annotated[str, typer.Option(help="Email of the granting guardian.")],
    expires_in_days: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Grant a provider read or contribute access to one section of a learner's record."""
    from hub.grants.service import grant_access
    from hub.people.service import get_guardian_by_email
    from hub.providers.service import get_provider_by_name

    learner_id = _parse_uuid(learner, "learner")
    parsed_action = _parse_action(action)
    if section not in catalogue():
        _fail(f"unknown section {section!r}; known sections: {', '.join(sorted(catalogue()))}")

    async def work(session: AsyncSession) -> tuple[UUID, bool]:
        found = await get_provider_by_name(session=session, name=provider)
        guardian = await get_guardian_by_email(session=session, email=by)
        if found is None:
            raise LookupError(f"no provider named {provider!r}")
        if guardian is None:
            raise LookupError(f"no guardian with email {by}")
        await _require_guardian_of(session, guardian.id, learner_id)
        now = datetime.now(UTC)
        grant, created = await grant_access(
            session=session, learner_id=learner_id, provider_id=found.id, section=section, action=parsed_action,
            purpose=purpose, granted_by=guardian.id, now=now, pseudonym_key=pseudonym_key(get_settings()),
            expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
        )
        return grant.id, created

    grant_id, created = _in_transaction(work)
    typer.echo(f"{grant_id}  ({'granted' if created else 'already granted'})")


@grant_app.command("revoke")
def grant_revoke(
    learner: Annotated[str, typer.Option(help="Learner id.")],
    provider: Annotated[str, typer.Option(help="Provider name.")],
    by: Annotated[str, typer.Option(help="Email of the revoking guardian.")],
    section: Annotated[str | None, typer.Option(help="Omit to revoke every section.")] = None,
    action: Annotated[str | None, typer.Option(help="Omit to revoke both actions.")] = None,
) -> None:
    """Revoke grants; takes effect on the provider's very next request."""
    from hub.grants.service import revoke_access
    from hub.people.service import get_guardian_by_email
    from hub.providers.service import get_provider_by_name

    learner_id = _parse_uuid(learner, "learner")
    parsed_action = _parse_action(action) if action else None

    async def work(session: AsyncSession) -> int:
        found = await get_provider_by_name(session=session, name=provider)
        guardian = await get_guardian_by_email(session=session, email=by)
        if found is None:
            raise LookupError(f"no provider named {provider!r}")
        if guardian is None:
            raise LookupError(f"no guardian with email {by}")
        await _require_guardian_of(session, guardian.id, learner_id)
        return await revoke_access(session=session, learner_id=learner_id, provider_id=found.id, revoked_by=guardian.id,
                                   now=datetime.now(UTC), section=section, action=parsed_action)

    typer.echo(f"revoked {_in_transaction(work)} grant(s)")


@grant_app.command("list")
def grant_list(learner: Annotated[str | None, typer.Option(help="Learner id.")] = None) -> None:
    """List grants (live and past) as JSON lines."""
    from hub.grants.service import list_grants

    learner_id = _parse_uuid(learner, "learner") if learner else None

    async def work(session: AsyncSession) -> list[Any]:
        return list(await list_grants(session=session, learner_id=learner_id))

    for g in _in_transaction(work):
        typer.echo(json.dumps({
            "id": str(g.id), "learner": str(g.learner_id), "provider": str(g.provider_id), "section": g.section,
            "action": g.action, "purpose": g.purpose, "granted_at": g.granted_at.isoformat(),
            "expires_at": g.expires_at.isoformat() if g.expires_at else None,
            "revoked_at": g.revoked_at.isoformat() if g.revoked_at else None,
        }))


async def _require_guardian_of(session: AsyncSession, guardian_id: UUID, learner_id: UUID) -> None:
    from sqlalchemy import select

    from hub.people.models import LearnerGuardian

    link = await session.execute(
        select(LearnerGuardian.id).where(LearnerGuardian.guardian_id == guardian_id, LearnerGuardian.learner_id == learner_id)
    )
    if link.first() is None:
        raise LookupError("that guardian is not a guardian of that learner")


# -- demo, serve, schemas --------------------------------------------------------------------


@app.command("demo")
def demo(activities_per_learner: Annotated[int, typer.Option(min=0, max=100_000)] = 1000) -> None:
    """Load the demo dataset (once) and print a provider's credentials and a ready curl."""
    from hub.demo import demo_loaded, load_demo, read_credentials, write_credentials

    settings = get_settings()
    path = settings.data_dir / "demo-credentials.json"

    async def work(session: AsyncSession) -> list[Any] | None:
        if await demo_loaded(session=session):
            return None
        return await load_demo(session=session, activities_per_learner=activities_per_learner,
                               pseudonym_key=pseudonym_key(settings))

    clients = _in_transaction(work)
    if clients is None:
        if not path.exists():
            _fail(f"demo data is loaded but {path} is missing; use `kinfolio client create` for new credentials")
        clients = read_credentials(path)
        typer.echo("demo data already loaded")
    else:
        write_credentials(path, clients)
        typer.echo(f"demo data loaded; credentials in {path}")
    _print_try_it(settings.issuer, clients[1])


def _print_try_it(issuer: str, client: Any) -> None:
    base = issuer.rstrip("/")
    query = '{"query":"{ learners(first: 5) { nodes { id activities(first: 3) { nodes { verb { display } object { name } timestamp } } skills(first: 1) { nodes { proficiency } } } } }"}'
    typer.echo(
        f"\nGraphQL endpoint: {base}/graphql\n"
        f"Demo provider:    {client.provider}\n"
        f"  client_id:      {client.client_id}\n"
        f"  client_secret:  {client.client_secret}\n"
        f"  scopes:         {' '.join(client.scopes)}\n\n"
        "Try it (the skills field is refused: the family has not granted CodeQuest skills:read):\n\n"
        f"TOKEN=$(curl -s -u '{client.client_id}:{client.client_secret}' -d grant_type=client_credentials "
        f"{base}/oauth/token | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')\n"
        f"curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
        f"-d '{query}' {base}/graphql | python3 -m json.tool\n"
    )


@app.command("generate")
def generate(
    learners: Annotated[int, typer.Option(min=1, max=10_000_000, help="Ordinary learners.")],
    activities_per_learner: Annotated[int, typer.Option(min=0, max=10_000_000)] = 200,
    seed: Annotated[int, typer.Option(help="Same seed (and --as-of), same data.")] = 1,
    as_of: Annotated[str | None, typer.Option(help="YYYY-MM-DD the data is dated up to (default: today).")] = None,
    heavy_learner_activities: Annotated[int, typer.Option(min=0, help="Add one learner with this many activities.")] = 0,
    light_learner_activities: Annotated[int, typer.Option(min=0, help="Add one learner with this many (needs a heavy one).")] = 0,
    jobs: Annotated[int, typer.Option(min=1, max=16, help="Parallel writers (PostgreSQL only).")] = 2,
    manifest: Annotated[Path | None, typer.Option(help="Write credentials and sample pairwise ids here (JSON, mode 600).")] = None,
) -> None:
    """Bulk-load realistic synthetic records into an empty, migrated database (benchmarks, load tests)."""
    import os

    from hub.generate import Plan
    from hub.generate import generate as run_generate

    settings = get_settings()
    if settings.environment == "production":
        _fail("refusing to generate synthetic data with KINFOLIO_ENVIRONMENT=production")
    try:
        anchor = datetime.combine(date.fromisoformat(as_of), datetime.min.time(), UTC) if as_of else None
    except ValueError:
        _fail("--as-of must be a date as YYYY-MM-DD")
        raise
    plan = Plan(learners=learners, activities_per_learner=activities_per_learner, seed=seed, as_of=anchor,
                heavy_learner_activities=heavy_learner_activities, light_learner_activities=light_learner_activities,
                jobs=jobs)
    url = settings.resolved_database_url

    async def run() -> Any:
        engine = make_engine(url)
        try:
            return await run_generate(engine, url, plan, pseudonym_key(settings))
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(run())
    except ValueError as exc:
        _fail(str(exc))
        raise
    if manifest is not None:
        fd = os.open(manifest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(result.to_json())
    typer.echo(
        f"generated {result.learners} learners, {result.activities} activities, {result.skills} skill assessments, "
        f"{result.badges} badges, {result.grants} grants in {result.seconds} s"
        f" ({result.activities / max(result.seconds, 0.001):,.0f} activities/s)"
    )


@app.command("serve")
def serve(workers: Annotated[int, typer.Option(min=1, max=64)] = 1) -> None:
    """Serve the hub with uvicorn on KINFOLIO_HOST:KINFOLIO_PORT."""
    import uvicorn

    settings = get_settings()
    typer.echo(f"Kinfolio on http://{settings.host}:{settings.port}  (GraphQL: /graphql)")
    uvicorn.run("hub.asgi:app", host=settings.host, port=settings.port, workers=workers, proxy_headers=True,
                log_level="info")


@schema_app.command("export")
def schema_export(check: Annotated[bool, typer.Option(help="Fail if the files differ instead of writing.")] = False) -> None:
    """Write schemas/kinfolio.graphql and schemas/json/<section>.json from the code."""
    from hub.schema_files import expected_files

    stale = []
    for path, content in expected_files().items():
        if path.exists() and path.read_text() == content:
            continue
        stale.append(path)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    if check and stale:
        _fail("out of date: " + ", ".join(str(p.relative_to(ROOT)) for p in stale) + " (run `kinfolio schema export`)")
    typer.echo("schemas up to date" if not stale else "wrote " + ", ".join(str(p.relative_to(ROOT)) for p in stale))


if __name__ == "__main__":
    app()
