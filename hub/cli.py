"""``kinfolio``: the operator's command line (database, accounts, providers, consent, demo, server).

Every command reads settings from ``KINFOLIO_*`` environment variables, like the server.
Errors print one line to stderr and exit with status 2; nothing is half-written (each command is
one transaction).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from consent import Action
from consent.sections import catalogue
from hub.config import control_policy, get_settings, key_ring, pseudonym_key
from hub.clitools import fail as _fail
from hub.clitools import in_transaction as _in_transaction
from hub.db import make_engine, make_sessionmaker

app = typer.Typer(help="Kinfolio learner record hub.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
guardian_app = typer.Typer(help="Family accounts.", no_args_is_help=True)
learner_app = typer.Typer(help="Learners.", no_args_is_help=True)
provider_app = typer.Typer(help="Providers (schools, apps, clubs).", no_args_is_help=True)
client_app = typer.Typer(help="OAuth clients of providers.", no_args_is_help=True)
grant_app = typer.Typer(help="Consent grants.", no_args_is_help=True)
schema_app = typer.Typer(help="Exported schemas (GraphQL SDL, JSON Schemas).", no_args_is_help=True)
requests_app = typer.Typer(help="Providers' access requests, decided by the learner's controllers.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained disclosure log.", no_args_is_help=True)
receipts_app = typer.Typer(help="Signed consent receipts.", no_args_is_help=True)
credentials_app = typer.Typer(help="Verifiable credentials (Open Badges 3.0, CLR 2.0).", no_args_is_help=True)
entries_app = typer.Typer(help="Family actions on record entries: hide, unhide, delete.", no_args_is_help=True)
retention_app = typer.Typer(help="Retention of retracted and deleted entries.", no_args_is_help=True)
keys_app = typer.Typer(help="Keys: access-token signing keys, and the key-encryption keys of sensitive sections.", no_args_is_help=True)
for sub, name in [(db_app, "db"), (guardian_app, "guardian"), (learner_app, "learner"), (provider_app, "provider"),
                  (client_app, "client"), (grant_app, "grant"), (schema_app, "schema"), (requests_app, "requests"),
                  (audit_app, "audit"), (receipts_app, "receipts"), (credentials_app, "credentials"),
                  (entries_app, "entries"), (retention_app, "retention"), (keys_app, "keys")]:
    app.add_typer(sub, name=name)

ROOT = Path(__file__).resolve().parent.parent


def _parse_uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        _fail(f"{what} {value!r} is not a UUID")
        raise


def _parse_instant(value: str, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        _fail(f"{option} must be an ISO 8601 instant with an offset, e.g. 2026-09-01T00:00:00Z")
    return parsed  # type: ignore[return-value]


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


@learner_app.command("delete")
def learner_delete(
    learner: Annotated[str, typer.Argument(help="Learner id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: the whole record goes, for good.")] = False,
) -> None:
    """Delete a learner and the whole record; destroys the learner's data key first (crypto-shredding)."""
    from hub.people.service import delete_learner

    learner_id = _parse_uuid(learner, "learner")
    if not yes:
        _fail("deleting a learner cannot be undone; pass --yes")

    async def work(session: AsyncSession) -> bool:
        return await delete_learner(session=session, learner_id=learner_id)

    if not _in_transaction(work):
        _fail(f"no learner {learner_id}")
    typer.echo(f"deleted learner {learner_id}; their data key is destroyed")


@learner_app.command("invite")
def learner_invite(
    learner: Annotated[str, typer.Option(help="Learner id.")],
    email: Annotated[str, typer.Option(help="The learner's own email address.")],
) -> None:
    """Give a learner (13+) their own sign-in: prints the single-use link (also queued in the outbox)."""
    from consent.control import control_of
    from hub.accounts.service import LearnerAccountRefused, invite_learner
    from hub.people.models import Learner
    from hub.web.portal import LEARNER_INVITE_TTL_SECONDS

    learner_id = _parse_uuid(learner, "learner")
    settings = get_settings()

    async def work(session: AsyncSession) -> str:
        row = await session.get(Learner, learner_id)
        if row is None:
            raise LookupError(f"no learner {learner_id}")
        now = datetime.now(UTC)
        sees = control_of(row.date_of_birth, now.date(), control_policy(settings)).learner_sees_record
        try:
            return await invite_learner(session=session, learner_id=learner_id, email=email, base_url=settings.issuer,
                                        now=now, ttl_seconds=LEARNER_INVITE_TTL_SECONDS, may_sign_in=sees)
        except LearnerAccountRefused as exc:
            raise ValueError(str(exc)) from None

    typer.echo(_in_transaction(work))


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
    redirect_uri: Annotated[list[str] | None, typer.Option(
        help="Registered redirect URI (exact match); repeat for several. Enables the authorization-code flow.")] = None,
    auth_method: Annotated[str, typer.Option(
        help="client_secret_basic (default), private_key_jwt (needs --jwks-file) or none (public client, PKCE only).")]
    = "client_secret_basic",
    jwks_file: Annotated[Path | None, typer.Option(help="The client's public JWKS (JSON) for private_key_jwt.")] = None,
    grant_type: Annotated[list[str] | None, typer.Option(
        help="client_credentials / authorization_code / refresh_token; default: client_credentials, or "
             "authorization_code + refresh_token when --redirect-uri is given.")] = None,
) -> None:
    """Register an OAuth client. A secret, if any, is printed once and stored hashed."""
    from hub.providers.service import create_client, get_provider_by_name

    jwks = None
    if jwks_file is not None:
        try:
            jwks = json.loads(jwks_file.read_text())
        except (OSError, ValueError) as exc:
            _fail(f"cannot read {jwks_file}: {exc}")

    async def work(session: AsyncSession) -> tuple[str, str | None]:
        found = await get_provider_by_name(session=session, name=provider)
        if found is None:
            raise LookupError(f"no provider named {provider!r}")
        client, secret = await create_client(
            session=session, provider_id=found.id, name=name, scopes=scope, redirect_uris=redirect_uri or [],
            auth_method=auth_method, jwks=jwks, grant_types=grant_type or None,
        )
        return client.client_id, secret

    client_id, secret = _in_transaction(work)
    if secret is None:
        typer.echo(f"client_id:     {client_id}\n(no client secret: {auth_method})")
    else:
        typer.echo(f"client_id:     {client_id}\nclient_secret: {secret}\n(the secret is shown only now)")


# -- keys ------------------------------------------------------------------------------------


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key: it signs from now on, both keys are published in the JWKS, and the
    old key is retired once the longest access token it signed has expired (about 16 minutes).
    Running servers pick the change up without a restart."""
    from hub.oauth.keys import RETIRE_AFTER_SECONDS, load_signing_keys

    settings = get_settings()
    keys = load_signing_keys(settings)
    new_kid, retiring = keys.rotate()
    typer.echo(f"signing with {new_kid}")
    for kid in retiring:
        typer.echo(f"retiring {kid} in {RETIRE_AFTER_SECONDS} s (still published until then)")


# -- consent ---------------------------------------------------------------------------------


def _actor_options(by: str | None, as_learner: bool) -> None:
    if bool(by) == as_learner:
        _fail("say who acts: --by GUARDIAN_EMAIL, or --as-learner for a learner who is of age")


async def _resolve_actor(session: AsyncSession, by: str | None, as_learner: bool) -> Any:
    from hub.grants.family import Actor
    from hub.people.service import get_guardian_by_email

    if as_learner:
        return Actor.learner()
    guardian = await get_guardian_by_email(session=session, email=by or "")
    if guardian is None:
        raise LookupError(f"no guardian with email {by}")
    return Actor.guardian(guardian.id)


async def _provider_id(session: AsyncSession, name: str) -> UUID:
    from hub.providers.service import get_provider_by_name

    found = await get_provider_by_name(session=session, name=name)
    if found is None:
        raise LookupError(f"no provider named {name!r}")
    return found.id


@grant_app.command("create")
def grant_create(
    learner: Annotated[str, typer.Option(help="Learner id.")],
    provider: Annotated[str, typer.Option(help="Provider name.")],
    section: Annotated[str, typer.Option()],
    action: Annotated[str, typer.Option(help="read or contribute")],
    purpose: Annotated[str, typer.Option(help="Why, in plain words.")],
    by: Annotated[str | None, typer.Option(help="Email of the granting guardian.")] = None,
    as_learner: Annotated[bool, typer.Option("--as-learner", help="The learner (18+) grants for themself.")] = False,
    expires_in_days: Annotated[int | None, typer.Option(min=1)] = None,
    data_from: Annotated[str | None, typer.Option(help="Only entries dated from this instant (ISO 8601 with offset) may be read.")] = None,
) -> None:
    """Grant a provider read or contribute access to one section of a learner's record.

    Who may grant follows the learner's age (KINFOLIO_CONSENT_* settings): guardians until the age of
    majority, then the learner.
    """
    from hub.grants.family import NotPermitted, grant_by

    learner_id = _parse_uuid(learner, "learner")
    parsed_action = _parse_action(action)
    _actor_options(by, as_learner)
    if section not in catalogue():
        _fail(f"unknown section {section!r}; known sections: {', '.join(sorted(catalogue()))}")
    window = _parse_instant(data_from, "--data-from") if data_from else None
    settings = get_settings()

    async def work(session: AsyncSession) -> tuple[UUID, bool]:
        now = datetime.now(UTC)
        provider_id = await _provider_id(session, provider)
        actor = await _resolve_actor(session, by, as_learner)
        try:
            grant, created = await grant_by(
                session=session, actor=actor, learner_id=learner_id, provider_id=provider_id, section=section, action=parsed_action,
                purpose=purpose, now=now, pseudonym_key=pseudonym_key(settings), policy=control_policy(settings),
                expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None, data_from=window,
            )
        except NotPermitted as exc:
            raise LookupError(f"not permitted: {exc}") from None
        return grant.id, created

    grant_id, created = _in_transaction(work)
    typer.echo(f"{grant_id}  ({'granted' if created else 'already granted'})")


@grant_app.command("revoke")
def grant_revoke(
    learner: Annotated[str, typer.Option(help="Learner id.")],
    provider: Annotated[str, typer.Option(help="Provider name.")],
    by: Annotated[str | None, typer.Option(help="Email of the revoking guardian.")] = None,
    as_learner: Annotated[bool, typer.Option("--as-learner", help="The learner (18+) revokes for themself.")] = False,
    section: Annotated[str | None, typer.Option(help="Omit to revoke every section.")] = None,
    action: Annotated[str | None, typer.Option(help="Omit to revoke both actions.")] = None,
    delete_contributions: Annotated[bool, typer.Option(help="Also delete what the provider contributed (default: keep).")] = False,
) -> None:
    """Revoke grants; takes effect on the provider's very next request."""
    from hub.grants.family import NotPermitted, revoke_by

    learner_id = _parse_uuid(learner, "learner")
    parsed_action = _parse_action(action) if action else None
    _actor_options(by, as_learner)
    if section is not None and section not in catalogue():
        _fail(f"unknown section {section!r}; known sections: {', '.join(sorted(catalogue()))}")
    settings = get_settings()

    async def work(session: AsyncSession) -> tuple[int, int]:
        provider_id = await _provider_id(session, provider)
        actor = await _resolve_actor(session, by, as_learner)
        try:
            return await revoke_by(
                session=session, actor=actor, learner_id=learner_id, provider_id=provider_id, now=datetime.now(UTC), policy=control_policy(settings),
                section=section, action=parsed_action, delete_contributions=delete_contributions,
            )
        except NotPermitted as exc:
            raise LookupError(f"not permitted: {exc}") from None

    revoked, deleted = _in_transaction(work)
    typer.echo(f"revoked {revoked} grant(s)" + (f"; deleted {deleted} contributed entr(ies)" if delete_contributions else ""))


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


# -- access requests, audit, receipts ---------------------------------------------------------


@requests_app.command("list")
def requests_list(
    learner: Annotated[str, typer.Option(help="Learner id.")],
    status: Annotated[str | None, typer.Option(help="pending | approved | partially_approved | denied")] = None,
) -> None:
    """A learner's access requests, newest first, as JSON lines."""
    from hub.grants.family import list_requests

    learner_id = _parse_uuid(learner, "learner")

    async def work(session: AsyncSession) -> list[Any]:
        return await list_requests(session=session, learner_id=learner_id, status=status)

    for r in _in_transaction(work):
        typer.echo(json.dumps({
            "id": str(r.id), "provider": str(r.provider_id), "items": r.items, "approved": r.approved_items,
            "purpose": r.purpose, "duration_days": r.duration_days, "status": r.status,
            "created_at": r.created_at.isoformat(), "decided_at": r.decided_at.isoformat() if r.decided_at else None,
        }))


def _decide(request: str, by: str | None, as_learner: bool, approve: list[str] | None, deny: bool) -> Any:
    from hub.grants.family import NotPermitted, decide_request

    request_id = _parse_uuid(request, "request")
    _actor_options(by, as_learner)
    settings = get_settings()

    async def work(session: AsyncSession) -> Any:
        actor = await _resolve_actor(session, by, as_learner)
        try:
            return await decide_request(
                session=session, actor=actor, request_id=request_id, now=datetime.now(UTC),
                pseudonym_key=pseudonym_key(settings), policy=control_policy(settings), approve=approve, deny=deny,
            )
        except NotPermitted as exc:
            raise LookupError(f"not permitted: {exc}") from None

    return _in_transaction(work)


@requests_app.command("approve")
def requests_approve(
    request: Annotated[str, typer.Argument(help="Request id.")],
    by: Annotated[str | None, typer.Option(help="Email of the deciding guardian.")] = None,
    as_learner: Annotated[bool, typer.Option("--as-learner")] = False,
    only: Annotated[list[str] | None, typer.Option(help="Approve only these section:action items (repeat).")] = None,
) -> None:
    """Approve all of a request, or only some items with --only."""
    r = _decide(request, by, as_learner, only or None, False)
    typer.echo(f"{r.status}: granted {', '.join(r.approved_items) or 'nothing yet'}")


@requests_app.command("deny")
def requests_deny(
    request: Annotated[str, typer.Argument(help="Request id.")],
    by: Annotated[str | None, typer.Option(help="Email of the deciding guardian.")] = None,
    as_learner: Annotated[bool, typer.Option("--as-learner")] = False,
) -> None:
    """Deny a request; the provider may not ask again during the cool-down."""
    r = _decide(request, by, as_learner, None, True)
    typer.echo(f"{r.status}")


@audit_app.command("verify")
def audit_verify(learner: Annotated[str | None, typer.Option(help="Only this learner's chain.")] = None) -> None:
    """Recompute the disclosure log's hash chains; exit 1 if any event was edited, deleted or reordered."""
    from hub.grants.log import verify_log

    learner_ids = [_parse_uuid(learner, "learner")] if learner else None

    async def work(session: AsyncSession) -> Any:
        return await verify_log(session=session, learner_ids=learner_ids)

    checked, problems = _in_transaction(work)
    for p in problems:
        typer.echo(f"learner {p.learner_id} seq {p.seq if p.seq is not None else '-'}: {p.problem}")
    typer.echo(f"checked {checked} event(s): {'OK' if not problems else f'{len(problems)} problem(s)'}")
    if problems:
        raise typer.Exit(code=1)


@audit_app.command("log")
def audit_log(
    learner: Annotated[str, typer.Option(help="Learner id.")],
    first: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    before_seq: Annotated[int | None, typer.Option(help="Page: events before this sequence number.")] = None,
    section: Annotated[str | None, typer.Option()] = None,
) -> None:
    """A learner's disclosure log, newest first, as JSON lines."""
    from hub.grants.log import list_disclosures

    learner_id = _parse_uuid(learner, "learner")

    async def work(session: AsyncSession) -> list[Any]:
        return await list_disclosures(session=session, learner_id=learner_id, first=first, before_seq=before_seq,
                                      section=section)

    for e in _in_transaction(work):
        typer.echo(json.dumps({
            "seq": e.seq, "at": e.at.isoformat(), "provider": str(e.provider_id), "client": e.client_id,
            "token": e.token_id, "section": e.section, "action": e.action, "outcome": e.outcome, "reason": e.reason,
            "purpose": e.purpose, "entries": e.entry_count, "hash": e.hash,
        }))


@receipts_app.command("export")
def receipts_export(
    learner: Annotated[str, typer.Option(help="Learner id.")],
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of standard output.")] = None,
) -> None:
    """Signed consent receipts (grant and revocation) for a learner, as JSON."""
    from hub.grants.receipts import signed_receipts
    from hub.oauth.keys import load_signing_keys

    learner_id = _parse_uuid(learner, "learner")
    settings = get_settings()
    keys = load_signing_keys(settings)

    async def work(session: AsyncSession) -> list[Any]:
        return await signed_receipts(session=session, learner_id=learner_id, signing_keys=keys.private,
                                     issuer=settings.issuer, policy_name=settings.consent_policy_name)

    text = json.dumps(_in_transaction(work), indent=2)
    if out:
        out.write_text(text + "\n")
        typer.echo(f"wrote {out}")
    else:
        typer.echo(text)


# -- entries and retention -------------------------------------------------------------------


def _entry_action(state: str, learner: str, section: str, entry: int, by: str | None, as_learner: bool) -> None:
    from hub.grants.family import NotPermitted, require_control
    from hub.records.service import SECTION_MODELS, set_entry_state

    learner_id = _parse_uuid(learner, "learner")
    _actor_options(by, as_learner)
    if section not in SECTION_MODELS:
        _fail(f"section must be one of {', '.join(sorted(SECTION_MODELS))}")
    settings = get_settings()

    async def work(session: AsyncSession) -> None:
        now = datetime.now(UTC)
        actor = await _resolve_actor(session, by, as_learner)
        try:
            await require_control(session=session, actor=actor, learner_id=learner_id, today=now,
                                  policy=control_policy(settings))
        except NotPermitted as exc:
            raise LookupError(f"not permitted: {exc}") from None
        await set_entry_state(session=session, section=section, learner_id=learner_id, entry_id=entry, now=now, state=state)

    _in_transaction(work)
    typer.echo(f"{section} entry {entry}: {state}")


@entries_app.command("hide")
def entries_hide(
    learner: Annotated[str, typer.Option()], section: Annotated[str, typer.Option()], entry: Annotated[int, typer.Option()],
    by: Annotated[str | None, typer.Option(help="Guardian email.")] = None,
    as_learner: Annotated[bool, typer.Option("--as-learner")] = False,
) -> None:
    """Hide an entry from every provider (kept; reversible with `unhide`)."""
    _entry_action("hide", learner, section, entry, by, as_learner)


@entries_app.command("unhide")
def entries_unhide(
    learner: Annotated[str, typer.Option()], section: Annotated[str, typer.Option()], entry: Annotated[int, typer.Option()],
    by: Annotated[str | None, typer.Option(help="Guardian email.")] = None,
    as_learner: Annotated[bool, typer.Option("--as-learner")] = False,
) -> None:
    """Show a hidden entry to consented providers again."""
    _entry_action("unhide", learner, section, entry, by, as_learner)


@entries_app.command("delete")
def entries_delete(
    learner: Annotated[str, typer.Option()], section: Annotated[str, typer.Option()], entry: Annotated[int, typer.Option()],
    by: Annotated[str | None, typer.Option(help="Guardian email.")] = None,
    as_learner: Annotated[bool, typer.Option("--as-learner")] = False,
) -> None:
    """Delete an entry: invisible at once, purged for real after the retention window."""
    _entry_action("delete", learner, section, entry, by, as_learner)


@retention_app.command("purge")
def retention_purge(days: Annotated[int | None, typer.Option(min=0, help="Override KINFOLIO_RETENTION_DAYS.")] = None) -> None:
    """Really delete entries retracted or deleted longer ago than the retention window."""
    from hub.records.service import purge_deleted

    window = timedelta(days=get_settings().retention_days if days is None else days)

    async def work(session: AsyncSession) -> dict[str, int]:
        return await purge_deleted(session=session, before=datetime.now(UTC) - window)

    purged = _in_transaction(work)
    typer.echo("purged " + ", ".join(f"{n} {section}" for section, n in purged.items()))
@keys_app.command("rotate-kek")
def keys_rotate_kek(batch: Annotated[int, typer.Option(min=1, max=10_000)] = 500) -> None:
    """Re-wrap every learner data key under the current KEK (KINFOLIO_KEK_HEX).

    Field ciphertext is not touched. Set the new KEK as KINFOLIO_KEK_HEX and the old one in
    KINFOLIO_PREVIOUS_KEKS_HEX, run this, check `kinfolio keys status`, then drop the old KEK.
    Each batch commits on its own, so an interrupted run can simply be run again. Exit 1 when a
    key could not be unwrapped with the configured KEKs.
    """
    from hub.records.keys import RewrapReport, rewrap_data_keys

    settings = get_settings()
    keyring = key_ring(settings)

    async def run() -> RewrapReport:
        total = RewrapReport()
        engine = make_engine(settings.resolved_database_url)
        try:
            after = None
            while True:
                async with make_sessionmaker(engine)() as session, session.begin():
                    report, after = await rewrap_data_keys(
                        session=session, keyring=keyring, now=datetime.now(UTC), after=after, limit=batch
                    )
                total.rewrapped += report.rewrapped
                total.already_current += report.already_current
                total.unreadable += report.unreadable
                if after is None:
                    return total
        finally:
            await engine.dispose()

    total = asyncio.run(run())
    for learner_id, kek in total.unreadable:
        typer.echo(f"learner {learner_id}: data key wrapped by KEK {kek} could not be unwrapped", err=True)
    typer.echo(f"re-wrapped {total.rewrapped} data key(s) under KEK {keyring.current_id}; "
               f"{total.already_current} already current; {len(total.unreadable)} unreadable")
    if total.unreadable:
        raise typer.Exit(code=1)


@keys_app.command("status")
def keys_status() -> None:
    """How many learner data keys each KEK wraps; a previous KEK wrapping none can be dropped."""
    from hub.records.keys import data_keys_by_kek

    keyring = key_ring(get_settings())

    async def work(session: AsyncSession) -> dict[str, int]:
        return await data_keys_by_kek(session=session)

    counts = _in_transaction(work)
    for kek in sorted(set(counts) | keyring.ids):
        role = "current" if kek == keyring.current_id else "previous" if kek in keyring.ids else "NOT CONFIGURED"
        typer.echo(f"{kek}  {role:<14}  {counts.get(kek, 0)} data key(s)")


# -- demo, serve, schemas --------------------------------------------------------------------


@app.command("demo")
def demo(activities_per_learner: Annotated[int, typer.Option(min=0, max=100_000)] = 1000) -> None:
    """Load the demo dataset (once) and print a provider's credentials and a ready curl."""
    from hub.demo import demo_loaded, load_demo, read_credentials, write_credentials

    settings = get_settings()
    path = settings.data_dir / "demo-credentials.json"

    async def work(session: AsyncSession) -> Any:
        if await demo_loaded(session=session):
            return None
        return await load_demo(session=session, activities_per_learner=activities_per_learner,
                               pseudonym_key=pseudonym_key(settings))

    credentials = _in_transaction(work)
    if credentials is None:
        if not path.exists():
            _fail(f"demo data is loaded but {path} is missing; use `kinfolio client create` for new credentials")
        credentials = read_credentials(path)
        typer.echo("demo data already loaded")
    else:
        write_credentials(path, credentials)
        typer.echo(f"demo data loaded; credentials in {path}")
    _print_try_it(settings.issuer, credentials.clients[1])
    if credentials.family_email:
        typer.echo(f"Family portal:    {settings.issuer.rstrip('/')}/account/login\n"
                   f"  email:          {credentials.family_email}\n  password:       {credentials.family_password}\n")


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
def serve(
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes; several each listen on their own "
                                         "SO_REUSEPORT socket (Linux), so connections spread over them")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level: critical, error, warning, info, debug, trace")] = "info",
    access_log: Annotated[bool, typer.Option(help="Log every request (uvicorn's access log)")] = True,
) -> None:
    """Serve the hub with uvicorn on KINFOLIO_HOST:KINFOLIO_PORT."""
    from hub.serving import AddressInUse, serve as serve_hub

    if log_level not in ("critical", "error", "warning", "info", "debug", "trace"):
        _fail(f"unknown log level {log_level!r}: use critical, error, warning, info, debug or trace")
    settings = get_settings()
    typer.echo(f"Kinfolio on http://{settings.host}:{settings.port}  (GraphQL: /graphql)")
    try:
        status = serve_hub("hub.asgi:app", host=settings.host, port=settings.port, workers=workers, proxy_headers=True,
                           log_level=log_level, access_log=access_log)
    except AddressInUse as exc:
        _fail(f"{exc}: another server (an earlier kinfolio serve?) listens there; stop it or set KINFOLIO_PORT")
    raise typer.Exit(status)


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


# -- credentials -------------------------------------------------------------------------------


def _kit() -> Any:
    from hub.credentials.service import CredentialsNotConfigured, kit_from_settings

    try:
        return kit_from_settings(get_settings())
    except (CredentialsNotConfigured, ValueError, OSError) as exc:
        _fail(str(exc))


def _trusted(paths: list[Path] | None) -> list[Any]:
    from hub.credentials.verify import KeyResolutionError, trusted_keys_from

    keys: list[Any] = []
    for path in paths or []:
        try:
            keys.extend(trusted_keys_from(json.loads(path.read_text())))
        except (OSError, ValueError, KeyResolutionError) as exc:
            _fail(f"--trust-key {path}: {exc}")
    return keys


def _write(out: Path | None, value: Any) -> None:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"wrote {out}", err=True)


TrustOption = Annotated[list[Path] | None, typer.Option("--trust-key", help="Multikey, controller document or JWKS "
                                                         "(JSON) whose keys to trust; repeat for several.")]
FormatOption = Annotated[str, typer.Option("--format", help="ldp (Data Integrity eddsa-rdfc-2022) or jwt (VC-JWT)")]


def _format(value: str) -> Any:
    if value not in ("ldp", "jwt"):
        _fail("--format must be ldp or jwt")
    return value


@credentials_app.command("rotate-key")
def credentials_rotate_key(
    key: Annotated[str, typer.Option("--key", help="rsa (the RS256 VC-JWT key) or ed25519 (Data Integrity).")] = "rsa",
) -> None:
    """Replace a credential signing key. The old key stops signing but stays published in the
    issuer's JWKS and profile, so every credential it signed keeps verifying. Restart the server
    (or its workers) to sign with the new key."""
    from hub.credentials.keys import KeyFormatError, rotate_credential_key

    if key not in ("rsa", "ed25519"):
        _fail("--key must be rsa or ed25519")
    try:
        old, new = rotate_credential_key(get_settings(), key)  # type: ignore[arg-type]
    except (KeyFormatError, OSError, ValueError) as exc:
        _fail(str(exc))
        raise
    typer.echo(f"signing with {new}")
    typer.echo(f"{old} no longer signs; it stays published and verifiable")


@credentials_app.command("verify")
def credentials_verify(file: Path, trust_key: TrustOption = None,
                       as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False) -> None:
    """Verify a credential (JSON-LD or compact JWS): proof, issuer key, validity period, status.

    Prints each check and why it failed; exits 0 when verified, 1 when not, 2 on bad input.
    """
    from hub.credentials.service import verify
    from hub.credentials.verify import load_input

    try:
        data = load_input(file.read_bytes())
    except (OSError, ValueError) as exc:
        _fail(f"{file}: {exc}")
        raise
    kit = _kit()
    trusted = _trusted(trust_key)

    async def work(session: AsyncSession) -> Any:
        return await verify(session, kit, data, datetime.now(UTC), trusted)

    result = _in_transaction(work)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        for check in result.checks:
            typer.echo(check.line())
        typer.echo("VERIFIED" if result.ok else "NOT VERIFIED")
    raise typer.Exit(code=0 if result.ok else 1)


@credentials_app.command("badge")
def credentials_badge(badge: Annotated[int, typer.Option(help="Badge id.")], fmt: FormatOption = "ldp",
                      out: Annotated[Path | None, typer.Option()] = None) -> None:
    """Export one badge as a signed OpenBadgeCredential."""
    from hub.credentials.service import badge_credential
    from hub.records.models import Badge

    kit, chosen = _kit(), _format(fmt)

    async def work(session: AsyncSession) -> Any:
        row = await session.get(Badge, badge)
        if row is None:
            raise LookupError(f"no badge {badge}")
        return await badge_credential(session, kit, row, datetime.now(UTC), chosen)

    _write(out, _in_transaction(work))


@credentials_app.command("clr")
def credentials_clr(learner: Annotated[str, typer.Option(help="Learner id.")],
                    section: Annotated[list[str] | None, typer.Option(help="badges, skills or activities; "
                                                                      "repeat; default all.")] = None,
                    fmt: FormatOption = "ldp", out: Annotated[Path | None, typer.Option()] = None) -> None:
    """Export a learner's record (or the chosen sections) as a signed ClrCredential."""
    from hub.credentials.service import CLR_SECTIONS, clr_credential

    learner_id, kit, chosen = _parse_uuid(learner, "learner"), _kit(), _format(fmt)

    async def work(session: AsyncSession) -> Any:
        return await clr_credential(session, kit, learner_id, datetime.now(UTC), tuple(section or CLR_SECTIONS), chosen)

    _write(out, _in_transaction(work))


@credentials_app.command("import")
def credentials_import(file: Path, learner: Annotated[str, typer.Option(help="Learner id.")],
                       by: Annotated[str, typer.Option(help="Email of the importing guardian.")],
                       trust_key: TrustOption = None) -> None:
    """Import an OB 2.0 signed assertion, OB 3.0 or CLR 2.0 credential (JSON-LD or JWS) for a learner."""
    from hub.credentials.importer import ImportRefused, import_credential
    from hub.people.service import get_guardian_by_email

    learner_id, kit, trusted = _parse_uuid(learner, "learner"), _kit(), _trusted(trust_key)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        _fail(f"{file}: {exc}")
        raise

    async def work(session: AsyncSession) -> Any:
        guardian = await get_guardian_by_email(session=session, email=by)
        if guardian is None:
            raise LookupError(f"no guardian with email {by}")
        try:
            return await import_credential(session, kit, learner_id, raw, now=datetime.now(UTC),
                                           guardian_id=guardian.id, trusted=trusted)
        except ImportRefused as exc:
            raise ValueError(f"refused: {exc}") from exc

    outcome = _in_transaction(work)
    typer.echo(f"{outcome.outcome}  {outcome.kind}  {outcome.credential_id}  (issuer {outcome.issuer_id})")
    for inner in outcome.included:
        typer.echo(f"  {inner.outcome}  {inner.kind}  {inner.credential_id}  (issuer {inner.issuer_id})")


@credentials_app.command("revoke")
def credentials_revoke(badge: Annotated[int, typer.Option(help="Badge id.")],
                       reason: Annotated[str | None, typer.Option()] = None) -> None:
    """Revoke a badge's credential: sets its bit in the served revocation status list."""
    from hub.credentials.service import revoke_badge

    async def work(session: AsyncSession) -> bool:
        return await revoke_badge(session, badge, datetime.now(UTC), reason)

    typer.echo("revoked" if _in_transaction(work) else "already revoked")


# -- portability --------------------------------------------------------------------------------


@app.command("export")
def export_bundle(learner: Annotated[str, typer.Option(help="Learner id.")],
                  out: Annotated[Path, typer.Option(help="The zip file to write.")]) -> None:
    """Everything about a learner in one zip (GDPR Art. 20): CLR and badge credentials, xAPI
    statements, consent receipts, the disclosure log and its verification, held credentials."""
    from hub.oauth.keys import load_signing_keys
    from hub.portability.bundle import begin_snapshot, write_bundle

    learner_id, kit = _parse_uuid(learner, "learner"), _kit()
    receipt_keys = load_signing_keys(get_settings()).private
    partial = out.with_name(out.name + ".partial")  # renamed only once the transaction committed

    async def work(session: AsyncSession) -> Any:
        await begin_snapshot(session)
        with partial.open("wb") as handle:
            return await write_bundle(session, kit=kit, receipt_keys=receipt_keys, learner_id=learner_id,
                                      out=handle, now=datetime.now(UTC))

    try:
        manifest = _in_transaction(work)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    counts = ", ".join(f"{v} {k}" for k, v in manifest["counts"].items())
    typer.echo(f"wrote {out} ({counts}; disclosure log {'intact' if manifest['disclosureLogIntact'] else 'TAMPERED'})")
# -- connectors (issue 7): commands live in connectors/cli.py -------------------------------

from connectors import cli as _connectors_cli  # noqa: E402

app.add_typer(_connectors_cli.sync_app, name="sync")
app.add_typer(_connectors_cli.queue_app, name="queue")
app.command("worker")(_connectors_cli.worker)
learner_app.command("link")(_connectors_cli.learner_link)

# -- CASE competency frameworks (issue 7): commands live in hub/frameworks/cli.py ------------

from hub.frameworks.cli import frameworks_app  # noqa: E402

app.add_typer(frameworks_app, name="frameworks")


if __name__ == "__main__":
    app()

