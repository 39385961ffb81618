"""``kinfolio sync …``, ``kinfolio worker``, ``kinfolio queue …`` and ``kinfolio learner link`` (registered by hub/cli.py)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from hub.clitools import fail as _fail
from hub.config import get_settings
from hub.db import make_engine, make_sessionmaker

sync_app = typer.Typer(help="Connectors: sync jobs that import school and learning data.", no_args_is_help=True)
dead_app = typer.Typer(help="Records that were not imported.", no_args_is_help=True)
sync_app.add_typer(dead_app, name="dead-letters")
queue_app = typer.Typer(help="The scale-out runner: sync jobs on a PostgreSQL job queue (Procrastinate).", no_args_is_help=True)

EXIT_BUSY = 3


def _with_sessions(work):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        engine = make_engine(get_settings().resolved_database_url)
        try:
            return await work(make_sessionmaker(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _load_config(value: str) -> dict[str, Any]:
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"--config is not JSON: {exc}")
    if not isinstance(loaded, dict):
        _fail("--config must be a JSON object")
    return loaded


@sync_app.command("add")
def sync_add(
    name: str,
    kind: Annotated[str, typer.Option(help="xapi-file | xapi-lrs | oneroster-csv | open-badges")],
    config: Annotated[str, typer.Option(help="JSON, or @FILE holding JSON: {hub: {...}, source: {...}, ...}")],
) -> None:
    """Configure a connector instance (validated before it is stored)."""
    from connectors import state

    raw = _load_config(config)
    try:
        _with_sessions(lambda sessions: state.create_instance(sessions=sessions, name=name, kind=kind, config=raw))
    except (ValueError, LookupError) as exc:
        _fail(str(exc))
    typer.echo(f"connector {name} ({kind}) added")


@sync_app.command("run")
def sync_run(
    name: str,
    full: Annotated[bool, typer.Option(help="Ignore the cursor and re-read the whole source (idempotent).")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (default: when stderr is a terminal).")] = sys.stderr.isatty(),
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    allow_mass_withdrawal: Annotated[bool, typer.Option(
        help="Withdraw what a OneRoster bulk file leaves out even beyond the instance's max_withdrawal_fraction.")] = False,
) -> None:
    """Run one instance now, to the end of its source; prints the report. Exit 3 when already running."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from connectors import state
    from connectors.runtime import report_json, run_instance

    console = Console(stderr=True)

    async def work(sessions):  # type: ignore[no-untyped-def]
        instance = await state.get_instance(sessions=sessions, name=name)
        total = None
        if progress and (full or instance.cursor is None):
            from connectors.base import connector_class

            cls = connector_class(instance.kind)
            if hasattr(cls, "estimate_total"):
                try:
                    total = cls(cls.Config.model_validate(instance.config["source"])).estimate_total()  # type: ignore[attr-defined]
                except Exception:  # only a progress hint
                    total = None
        if not progress:
            return await run_instance(sessions=sessions, name=name, full=full, allow_mass_withdrawal=allow_mass_withdrawal)
        with Progress(
            TextColumn(f"[bold]{name}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[summary]}"),
            TimeElapsedColumn(), console=console, transient=False,
        ) as bar:
            task = bar.add_task("sync", total=total, summary="")

            def tick(report):  # type: ignore[no-untyped-def]
                bar.update(task, completed=report.read,
                           summary=f"created {report.created} unchanged {report.unchanged} refused {sum(report.refused.values())} held {sum(report.held.values())} invalid {report.invalid}")

            return await run_instance(sessions=sessions, name=name, full=full, progress=tick,
                                      allow_mass_withdrawal=allow_mass_withdrawal)

    try:
        outcome = _with_sessions(work)
    except LookupError as exc:
        _fail(str(exc))
    except state.Busy as exc:
        _fail(str(exc), EXIT_BUSY)
    except Exception as exc:
        _fail(f"sync failed: {type(exc).__name__}: {exc}")
    if as_json:
        typer.echo(report_json(outcome.report))
    else:
        _print_report(outcome.report, console)
    if outcome.status != "succeeded":
        _fail(outcome.error or "sync failed")


def _print_report(report, console) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    console.print(report.summary())
    if report.refused:
        console.print("refused by consent: " + ", ".join(f"{k} {v}" for k, v in sorted(report.refused.items())))
    if report.details:
        table = Table("kind", "record", "reason", title=f"problems (first {len(report.details)})")
        for d in report.details[:50]:
            table.add_row(d["kind"], d["ref"], d["reason"])
        console.print(table)


def _queue_app():  # type: ignore[no-untyped-def]
    from connectors.queue import QueueUnavailable, make_app

    try:
        return make_app(get_settings())
    except QueueUnavailable as exc:
        _fail(str(exc))


@sync_app.command("enqueue")
def sync_enqueue(
    name: str,
    full: Annotated[bool, typer.Option(help="Ignore the cursor and re-read the whole source (idempotent).")] = False,
    replay: Annotated[bool, typer.Option(help="Queue a replay of the dead letters instead of a run.")] = False,
) -> None:
    """Queue a run for `kinfolio queue worker`s (PostgreSQL only). Prints the job id, or that one is already waiting."""
    from connectors import state
    from connectors.queue import enqueue_replay, enqueue_sync

    if full and replay:
        _fail("--full and --replay do not go together")
    queue = _queue_app()

    async def work(sessions):  # type: ignore[no-untyped-def]
        await state.get_instance(sessions=sessions, name=name)  # LookupError for a wrong name
        async with queue.open_async():
            if replay:
                return await enqueue_replay(queue, name)
            return await enqueue_sync(queue, name, full=full)

    try:
        job = _with_sessions(work)
    except LookupError as exc:
        _fail(str(exc))
    except Exception as exc:  # e.g. the queue's tables are missing, the server is unreachable
        _fail(f"could not queue: {type(exc).__name__}: {exc}")
    what = "replay" if replay else "run"
    typer.echo(f"{name}: {what} already queued" if job is None else f"{name}: {what} queued as job {job}")


@queue_app.command("status")
def queue_status(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most running and waiting jobs listed.")] = 50,
) -> None:
    """The queue's job counts and its running and waiting jobs, as one JSON object (PostgreSQL only)."""
    from connectors.queue import queue_status as status_of

    queue = _queue_app()
    settings = get_settings()

    async def work() -> dict[str, Any]:
        async with queue.open_async():
            return await status_of(queue, settings.queue_name, limit=limit)

    try:
        status = asyncio.run(work())
    except Exception as exc:  # e.g. the queue's tables are missing, the server is unreachable
        _fail(f"could not read the queue: {type(exc).__name__}: {exc}")
    typer.echo(json.dumps(status, indent=2))


@queue_app.command("worker")
def queue_worker(
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Jobs run at once by this worker (different instances).")] = 2,
    keep_jobs: Annotated[bool, typer.Option(help="Keep finished jobs in procrastinate_jobs (default: delete successful ones).")] = False,
) -> None:
    """Run queued syncs and serve `sync schedule`s (PostgreSQL only; any number of workers is safe)."""
    import logging

    from connectors.queue import QueueUnavailable, queue_dsn, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    try:
        queue_dsn(settings)
    except QueueUnavailable as exc:
        _fail(str(exc))
    try:
        asyncio.run(serve(settings, concurrency=concurrency, delete_jobs="never" if keep_jobs else "successful",
                           ready=lambda: typer.echo(f"queue worker ready (queue {settings.queue_name}, concurrency {concurrency})", err=True)))
    except QueueUnavailable as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass


@sync_app.command("status")
def sync_status(name: Annotated[str | None, typer.Argument()] = None) -> None:
    """Instances with their cursor, lease, schedule and last run, as JSON lines."""
    from connectors import state

    async def work(sessions):  # type: ignore[no-untyped-def]
        instances = [await state.get_instance(sessions=sessions, name=name)] if name else await state.list_instances(sessions=sessions)
        rows = []
        for inst in instances:
            runs = await state.last_runs(sessions=sessions, name=inst.name)
            letters = await state.dead_letters(sessions=sessions, name=inst.name)
            last = runs[0] if runs else None
            rows.append({
                "name": inst.name, "kind": inst.kind, "cursor": inst.cursor,
                "running": inst.lease_owner, "lease_expires_at": inst.lease_expires_at.isoformat() if inst.lease_expires_at else None,
                "schedule": inst.schedule, "next_run_at": inst.next_run_at.isoformat() if inst.next_run_at else None,
                "dead_letters": len(letters),
                "last_run": None if last is None else {
                    "id": last.id, "status": last.status, "started_at": last.started_at.isoformat(),
                    "finished_at": last.finished_at.isoformat() if last.finished_at else None,
                    "report": {k: v for k, v in last.report.items() if k != "details"}, "error": last.error,
                },
            })
        return rows

    try:
        for row in _with_sessions(work):
            typer.echo(json.dumps(row))
    except LookupError as exc:
        _fail(str(exc))


@sync_app.command("schedule")
def sync_schedule(
    name: str,
    every: Annotated[str | None, typer.Option(help="Interval: 30s, 15m, 2h, 1d")] = None,
    cron: Annotated[str | None, typer.Option(help="Cron expression (UTC), e.g. '0 2 * * *'")] = None,
    off: Annotated[bool, typer.Option("--off", help="Remove the schedule.")] = False,
) -> None:
    """Run an instance periodically (served by `kinfolio worker` or the hub's embedded worker)."""
    from connectors import state
    from connectors.schedule import next_run, parse_schedule
    from hub.db import utcnow

    try:
        schedule = None if off else parse_schedule(every, cron)
    except ValueError as exc:
        _fail(str(exc))
    first = next_run(schedule, utcnow()) if schedule else None
    try:
        _with_sessions(lambda s: state.set_schedule(sessions=s, name=name, schedule=schedule, next_run_at=first))
    except LookupError as exc:
        _fail(str(exc))
    typer.echo(f"{name}: {'no schedule' if schedule is None else f'{schedule}, next run {first:%Y-%m-%dT%H:%M:%SZ}'}")


@sync_app.command("replay")
def sync_replay(name: str) -> None:
    """Re-send the instance's dead letters (after a fix, or once their learners are linked)."""
    from rich.console import Console

    from connectors import state
    from connectors.runtime import replay_dead_letters

    try:
        report = _with_sessions(lambda s: replay_dead_letters(sessions=s, name=name))
    except LookupError as exc:
        _fail(str(exc))
    except state.Busy as exc:
        _fail(str(exc), EXIT_BUSY)
    _print_report(report, Console(stderr=False))


@dead_app.command("list")
def dead_list(name: str, limit: Annotated[int, typer.Option(min=1)] = 100) -> None:
    """Dead letters as JSON lines (ref, reason, payload)."""
    from connectors import state

    for letter in _with_sessions(lambda s: state.dead_letters(sessions=s, name=name, limit=limit)):
        typer.echo(json.dumps({"id": letter.id, "ref": letter.ref, "reason_code": letter.reason_code,
                               "reason": letter.reason, "payload": letter.payload}, ensure_ascii=False))


@dead_app.command("purge")
def dead_purge(name: str) -> None:
    """Delete an instance's dead letters (they hold source data; see connectors/README.md)."""
    from connectors import state

    typer.echo(f"purged {_with_sessions(lambda s: state.purge_dead_letters(sessions=s, name=name))}")


def worker(
    poll_seconds: Annotated[float, typer.Option(min=0.1, help="How often to look for due schedules.")] = 30.0,
    once: Annotated[bool, typer.Option(help="Run what is due now, then exit.")] = False,
) -> None:
    """Serve `sync schedule`s: run due connector instances (any number of workers is safe)."""
    import logging

    from connectors.schedule import run_due, worker_loop

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if once:
        for name, outcome in _with_sessions(lambda s: run_due(sessions=s)).items():
            typer.echo(f"{name}: {outcome}")
        return
    try:
        _with_sessions(lambda s: worker_loop(sessions=s, poll_seconds=poll_seconds))
    except KeyboardInterrupt:
        pass


def learner_link(
    learner: Annotated[str, typer.Option(help="Learner id.")],
    provider: Annotated[str, typer.Option(help="Provider name.")],
    system: Annotated[str, typer.Option(help="xapi | oneroster")],
    external_id: Annotated[str, typer.Option("--external-id", help="xapi: mailto:…, mbox_sha1sum, account:HOME|NAME, openid:URI; oneroster: sourcedId")],
    by: Annotated[str | None, typer.Option(help="Email of the guardian making the link (else an operator link).")] = None,
) -> None:
    """Link a provider's own identifier for a learner to the learner (see the matching rule)."""
    from uuid import UUID

    from sqlalchemy import select

    from connectors.xapi.statements import canonical_actor_id
    from hub.links.service import link_learner
    from hub.people.models import LearnerGuardian
    from hub.people.service import get_guardian_by_email
    from hub.providers.service import get_provider_by_name

    try:
        learner_id = UUID(learner)
        ext = canonical_actor_id(external_id) if system == "xapi" else external_id
    except ValueError as exc:
        _fail(str(exc))

    async def work(sessions):  # type: ignore[no-untyped-def]
        async with sessions() as session, session.begin():
            found = await get_provider_by_name(session=session, name=provider)
            if found is None:
                raise LookupError(f"no provider named {provider!r}")
            origin = "operator"
            if by is not None:
                guardian = await get_guardian_by_email(session=session, email=by)
                ok = guardian is not None and (await session.execute(select(LearnerGuardian.id).where(
                    LearnerGuardian.guardian_id == guardian.id, LearnerGuardian.learner_id == learner_id))).first()
                if not ok:
                    raise LookupError("that guardian is not a guardian of that learner")
                origin = "family"
            _, created = await link_learner(session=session, provider_id=found.id, system=system, external_id=ext,
                                            learner_id=learner_id, origin=origin)
            return created

    try:
        created = _with_sessions(work)
    except (ValueError, LookupError) as exc:
        _fail(str(exc))
    typer.echo(f"{'linked' if created else 'already linked'}: {system} {ext}")
