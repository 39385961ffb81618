"""The provider path's hot statements on PostgreSQL, straight through asyncpg.

A py-spy profile of the profile read on PostgreSQL (``python -m bench.spy read``, BENCHMARKS.md,
twelfth session) put 18 % of the hub's CPU in SQLAlchemy's execution of the read's statements:
the async bridge (a greenlet per call), the compiled-cache lookup of the statement's cache key,
the execution context, the cursor adapter that copies asyncpg's records row by row and the
result's per-row fetch. An in-process ``time.process_time`` comparison of the 50-activity page:
350 µs per execution through ``AsyncConnection.execute``, 174 µs through asyncpg's ``fetch``
on the same pooled connection.

``fetch_plain_rows(connection, statement, params)`` answers what
``plain_rows(await connection.execute(statement, params))`` answers, with the same keys, the same
values and the same value types (pinned by tests/test_direct_rows.py), but builds each
statement's SQL, its bind processing and its row class once per process and then calls asyncpg
directly: inside a transaction that SQLAlchemy already began on that connection
(asyncpg reports it), so a statement never runs in a transaction SQLAlchemy does not know of, or,
where the caller says the statement may run on its own (``alone``), before any transaction. A
provider's read on PostgreSQL thus sends no BEGIN and no COMMIT at all. Anything else (another
driver, no transaction yet for a statement that needs one, a column whose values SQLAlchemy
converts, IN-list expansion) goes through ``connection.execute``. The engine's
``before_cursor_execute`` listeners see the statement either way (statement counts in tests and
``bench``).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import Select, TextualSelect
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db import plain_rows


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    bind_names: tuple[str, ...]  # in $1, $2, ... order
    bind_defaults: Mapping[str, Any]  # values given to bindparam() when the statement was built
    bind_processors: tuple[Callable[[Any], Any] | None, ...]
    make_row: Callable[[Any], Any]  # a named tuple class's tuple.__new__ (no length check: the columns are the plan's)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, process in zip(self.bind_names, self.bind_processors, strict=True):
            if name in params:
                value = params[name]
            elif name in self.bind_defaults:
                value = self.bind_defaults[name]
            else:
                raise KeyError(f"a value is required for bind parameter {name!r}")
            values.append(process(value) if process is not None else value)
        return values

    def rows(self, records: list[Any]) -> list[Any]:
        return list(map(self.make_row, records))


# Statement -> plan (None: this statement always goes through SQLAlchemy). Keyed by identity: the
# hot statements are built once per shape and kept, so this stays small; the statement is kept
# with its plan so that an id is never reused by another object.
_PLANS: dict[int, tuple[Any, _Plan | None]] = {}
_MAX_PLANS = 256


async def fetch_plain_rows(connection: AsyncConnection, statement: Any, params: Mapping[str, Any] | None = None, *,
                           alone: bool = False) -> list[Any]:
    """``plain_rows(await connection.execute(statement, params))``, through asyncpg when possible.

    ``statement`` must be built once and kept (a module constant or a per-shape cache): its plan
    is cached by identity, and making one costs a compile and a round trip.

    ``alone``: if no transaction is open on the connection yet, run the statement on its own
    (PostgreSQL's implicit per-statement transaction) instead of beginning one. Only for a read,
    or a write complete in itself, that takes no lock meant to outlast the statement. Under READ
    COMMITTED each statement of a transaction sees what was committed before it started, just as
    a statement on its own does, so a request that only reads gains nothing from BEGIN and COMMIT
    but two round trips; once a transaction is open (the request wrote, or locked), the
    statement runs inside it.
    """
    params = params or {}
    if connection.dialect.driver != "asyncpg" or not isinstance(statement, (Select, TextualSelect)):
        return plain_rows(await connection.execute(statement, params))
    sync = connection.sync_connection
    # A closed or invalidated connection: SQLAlchemy's execute reconnects or raises as it should.
    # (Otherwise the pooled connection is checked out, so reading it does no I/O: cheaper than
    # AsyncConnection.get_raw_connection's trip through the greenlet bridge.)
    if sync is None or sync.closed or sync.invalidated:
        return plain_rows(await connection.execute(statement, params))
    driver = sync.connection.driver_connection
    # No transaction yet, and the statement must be in one: SQLAlchemy's execute begins it
    # (asyncpg would run the statement on its own, outside the transaction the rest of the
    # request uses).
    if driver is None or not (alone or driver.is_in_transaction()):
        return plain_rows(await connection.execute(statement, params))
    cached = _PLANS.get(id(statement))
    if cached is None or cached[0] is not statement:
        plan = await _make_plan(connection, driver, statement)
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[id(statement)] = (statement, plan)
    else:
        plan = cached[1]
    if plan is None:
        return plain_rows(await connection.execute(statement, params))
    arguments = plan.arguments(params)
    if sync.dispatch.before_cursor_execute:
        sync.dispatch.before_cursor_execute(sync, None, plan.sql, tuple(arguments), None, False)
    return plan.rows(await driver.fetch(plan.sql, *arguments))


async def _make_plan(connection: AsyncConnection, driver: Any, statement: Select | TextualSelect) -> _Plan | None:
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect)
    # IN-list expansion and literal rendering happen per execution in SQLAlchemy: not here.
    if getattr(compiled, "literal_execute_params", None) or getattr(compiled, "post_compile_params", None):
        return None
    keys = tuple(statement.selected_columns.keys())
    try:
        make_row = partial(tuple.__new__, namedtuple("PlainRow", keys))  # noqa: PYI024
    except ValueError:  # a key a named tuple cannot take: plain_rows keeps SQLAlchemy's rows then
        return None
    bind_names = tuple(compiled.positiontup or ())
    binds = compiled.binds
    # What SQLAlchemy's result processing gets as each column's DBAPI type: the server's type oid
    # (asyncpg's Float/Numeric processing depends on it). Asked once per statement.
    attributes = (await driver.prepare(compiled.string)).get_attributes()
    columns = list(statement.selected_columns)
    if len(attributes) != len(columns):
        return None
    # Only columns whose values SQLAlchemy hands on as asyncpg decoded them (every column of the
    # hot statements: UUIDs, text, numbers, timestamptz, JSON through the codecs SQLAlchemy sets
    # on the connection); a column that needs result processing keeps SQLAlchemy's path.
    if any(column.type.dialect_impl(dialect).result_processor(dialect, attribute.type.oid) is not None
           for column, attribute in zip(columns, attributes, strict=True)):
        return None
    return _Plan(
        sql=compiled.string,
        bind_names=bind_names,
        bind_defaults={name: binds[name].effective_value for name in bind_names if not binds[name].required},
        bind_processors=tuple(binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in bind_names),
        make_row=make_row,
    )
