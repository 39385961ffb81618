"""What every ``kinfolio`` command group shares: failing with a message, and running one
transaction against the configured database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from consent.sections import UnknownSection
from hub.config import get_settings
from hub.db import make_engine, make_sessionmaker

T = TypeVar("T")


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction against the configured database; a bad input (ValueError,
    LookupError, an unknown section, a file error) ends the command with its message."""

    async def run() -> T:
        engine = make_engine(get_settings().resolved_database_url)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except (ValueError, LookupError, UnknownSection, OSError) as exc:
        fail(str(exc))
