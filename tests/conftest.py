"""Test setup: a real database (SQLite by default, PostgreSQL when asked), migrated by Alembic.

``KINFOLIO_TEST_DATABASE_URL`` selects the server: unset -> a fresh SQLite file; a
``postgresql+asyncpg://.../db`` URL -> a fresh database created next to ``db`` for this run and
dropped afterwards. Every run therefore also exercises the migrations (as warehouse does).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

import hub.models  # noqa: F401
from hub import migrate
from hub.app import create_app
from hub.config import Settings
from hub.db import Base, make_engine
from hub.oauth.keys import generate_private_pem

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent / "shared" / "samples"
ISSUER = "https://testserver"
PSEUDONYM_KEY = bytes(range(32))


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get("KINFOLIO_TEST_DATABASE_URL")
    return f"kinfolio test database: {'PostgreSQL ' + make_url(url).render_as_string(hide_password=True) if url else 'SQLite (temporary file)'}"


async def _create_pg_database(url: str) -> str:
    import asyncpg

    base = make_url(url)
    name = f"kinfolio_test_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(
        host=base.host, port=base.port or 5432, user=base.username, password=base.password, database=base.database
    )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return base.set(database=name).render_as_string(hide_password=False)


async def _drop_pg_database(url: str, admin_url: str) -> None:
    import asyncpg

    admin = make_url(admin_url)
    name = make_url(url).database
    conn = await asyncpg.connect(
        host=admin.host, port=admin.port or 5432, user=admin.username, password=admin.password, database=admin.database
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashing() -> None:
    """Argon2id with the library's cheapest parameters: production costs ~0.5 s per hash here."""
    from argon2 import PasswordHasher, profiles

    from hub.accounts.service import use_hasher

    use_hasher(PasswordHasher.from_parameters(profiles.CHEAPEST))


# The machine's PostgreSQL, for tests that need it on the SQLite pass too (`.ci/run` starts it first).
PG_ADMIN_URL = (os.environ.get("KINFOLIO_QUEUE_TEST_DATABASE_URL") or os.environ.get("KINFOLIO_TEST_DATABASE_URL")
                or "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def is_postgres() -> bool:
    return bool(os.environ.get("KINFOLIO_TEST_DATABASE_URL"))


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    admin_url = os.environ.get("KINFOLIO_TEST_DATABASE_URL")
    if not admin_url:
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'kinfolio-test.db'}"
        return
    url = await _create_pg_database(admin_url)
    yield url
    await _drop_pg_database(url, admin_url)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture(autouse=True)
async def _clean_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if "engine" not in request.fixturenames:
        return
    engine: AsyncEngine = request.getfixturevalue("engine")
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                await conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(scope="session")
def signing_key_pem() -> str:
    return generate_private_pem().decode()


@pytest.fixture(scope="session")
def settings(database_url: str, signing_key_pem: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("data"),
        issuer=ISSUER,
        signing_key_pem=signing_key_pem,
        pseudonym_key_hex=PSEUDONYM_KEY.hex(),
        max_batch_size=1000,
        case_schemas_dir=SAMPLES / "case" / "case-v1p1-json-schemas",
    )


@pytest.fixture(scope="session")
def app(settings: Settings, engine: AsyncEngine):  # type: ignore[no-untyped-def]
    return create_app(settings, engine=engine)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        yield http


@pytest.fixture(scope="session")
def samples_dir() -> Iterator[Path]:
    if not SAMPLES.is_dir():
        pytest.skip(f"public samples not found at {SAMPLES} (../shared/samples is absent)")
    yield SAMPLES


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (KINFOLIO_FORBID_SKIPS=1) a skipped test is a failure: samples and databases must be there."""
    if not os.environ.get("KINFOLIO_FORBID_SKIPS"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(f"KINFOLIO_FORBID_SKIPS: {len(skipped)} test(s) were skipped; failing the run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


from tests.live_server import live_server  # noqa: E402,F401  (a real uvicorn server, for tests/live and tests/browser)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests run last (STACK_NOTES: nothing asyncio-driven may follow Playwright)."""
    items.sort(key=lambda item: "tests/browser/" in item.nodeid.replace("\\", "/"))


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """CLI commands under test (``kinfolio worker``) configure root logging onto CliRunner's
    captured stderr, which is closed when the command returns; later log records (httpx's) would
    then print "Logging error" tracebacks into the next command's output. Undo it per test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
