"""Procrastinate's job queue schema (the scale-out sync runner), PostgreSQL only

Revision ID: 53a12c75e014
Revises: c4a5e0f1d2b3
Create Date: 2026-11-25 10:00:00

The queue (connectors/queue.py) keeps its jobs in PostgreSQL tables, functions and triggers that
Procrastinate ships as one SQL script (``SchemaManager.get_schema()``). Migrations are the only
way the schema changes, so that script runs here rather than through ``procrastinate schema
--apply``. SQLite has no queue (it keeps the embedded ``kinfolio worker``): nothing happens there.

The script is the one of the pinned Procrastinate series (pyproject.toml); a Procrastinate upgrade
that changes the schema needs its own migration running the package's
``sql/migrations/*.sql`` for the versions in between, and this revision must then keep creating
the old schema (freeze the 3.10 script next to it). The version check below makes that explicit.
"""
from typing import Sequence, Union

from alembic import op


revision: str = '53a12c75e014'
down_revision: Union[str, Sequence[str], None] = 'c4a5e0f1d2b3'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

SCHEMA_SERIES = "3.10."

# Every object the script creates is named procrastinate_*: tables (their triggers and indexes go
# with them), then functions, then types.
_DROP = """
DO $$
DECLARE item record;
BEGIN
    FOR item IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname LIKE 'procrastinate\\_%'
    LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', item.relname);
    END LOOP;
    FOR item IN SELECT p.oid::regprocedure AS signature FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%'
    LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', item.signature);
    END LOOP;
    FOR item IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                WHERE n.nspname = current_schema() AND t.typtype IN ('e', 'c') AND t.typname LIKE 'procrastinate\\_%'
                  AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid AND c.relkind <> 'c')
    LOOP
        EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', item.typname);
    END LOOP;
END $$;
"""


def _execute_script(sql: str) -> None:
    """Run a multi-statement script in the migration's transaction.

    asyncpg prepares every statement SQLAlchemy sends, and a prepared statement holds one command;
    its own ``Connection.execute`` without arguments uses the simple query protocol, which runs a
    whole script. Other drivers (psycopg) take the script as it is.
    """
    bind = op.get_bind()
    if bind.dialect.driver == "asyncpg":
        from sqlalchemy.util import await_

        driver_connection = bind.connection.driver_connection
        await_(driver_connection.execute(sql))
    else:
        bind.exec_driver_sql(sql.replace("%", "%%"))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    import procrastinate
    from procrastinate.schema import SchemaManager

    if not procrastinate.__version__.startswith(SCHEMA_SERIES):
        raise RuntimeError(
            f"procrastinate {procrastinate.__version__} is installed but migration 53a12c75e014 creates the "
            f"{SCHEMA_SERIES}x schema: install the version pinned in pyproject.toml (see the migration's docstring)"
        )
    _execute_script(SchemaManager.get_schema())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _execute_script(_DROP)
