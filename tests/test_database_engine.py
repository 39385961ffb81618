"""The hub's PostgreSQL connections carry the configured plan_cache_mode (hub/db.py::make_engine)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hub.config import Settings
from hub.db import make_engine
from tests.conftest import PG_ADMIN_URL as ADMIN_URL


async def _mode(**kwargs: str) -> str:
    engine = make_engine(ADMIN_URL, **kwargs)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text("SHOW plan_cache_mode"))).scalar_one()
    except OSError as exc:
        pytest.skip(f"needs PostgreSQL at {ADMIN_URL}: {exc}")
    finally:
        await engine.dispose()


async def test_default_lets_postgres_cache_generic_plans() -> None:
    assert await _mode() == "auto"


async def test_operators_can_force_custom_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KINFOLIO_DATABASE_PLAN_CACHE_MODE", "force_custom_plan")
    assert await _mode(plan_cache_mode=Settings().database_plan_cache_mode) == "force_custom_plan"


def test_an_unknown_mode_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("KINFOLIO_DATABASE_PLAN_CACHE_MODE", "fastest")
    with pytest.raises(ValidationError, match="database_plan_cache_mode"):
        Settings()
