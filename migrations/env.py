"""Alembic environment: one set of revisions for SQLite and PostgreSQL.

Called either by the ``alembic`` command (a fresh event loop) or from running code via
``hub.migrate`` which passes an open connection in ``config.attributes["connection"]``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

import hub.models  # noqa: F401  (registers every table on Base.metadata)
from hub.config import get_settings
from hub.db import Base, UTCDateTime, make_engine
from hub.migrate import include_name

target_metadata = Base.metadata


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    # Render our TypeDecorator as its storage type so revisions do not import hub code.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection: Connection) -> None:
    is_sqlite = connection.dialect.name == "sqlite"
    if not is_sqlite:
        # Fail fast instead of queueing behind a long lock on a live database.
        connection.exec_driver_sql("SET lock_timeout = '10s'")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=is_sqlite,  # SQLite cannot ALTER most things: copy-and-move
        compare_type=True,
        render_item=_render_item,
        include_name=include_name,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_async())
