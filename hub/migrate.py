"""Run Alembic migrations programmatically (CLI, app start-up in development, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

_ROOT = Path(__file__).resolve().parent.parent
# Procrastinate's job queue (connectors/queue.py) is created by its own SQL script in migration
# 53a12c75e014, on PostgreSQL only; it has no models, so comparisons with the models skip it.
QUEUE_TABLE_PREFIX = "procrastinate_"


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic ``include_name`` hook: everything but the queue's tables."""
    return not (type_ == "table" and name is not None and name.startswith(QUEUE_TABLE_PREFIX))


def alembic_config() -> Config:
    cfg = Config(str(_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(_ROOT / "migrations"))
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _run(engine, lambda cfg: command.upgrade(cfg, revision))


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    await _run(engine, lambda cfg: command.downgrade(cfg, revision))


async def _run(engine: AsyncEngine, action) -> None:  # type: ignore[no-untyped-def]
    async with engine.begin() as connection:

        def run(sync_connection):  # type: ignore[no-untyped-def]
            cfg = alembic_config()
            cfg.attributes["connection"] = sync_connection
            action(cfg)

        await connection.run_sync(run)
