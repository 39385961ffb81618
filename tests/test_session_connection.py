"""``hub.db.session_connection``: the session's connection, kept while its transaction lasts, so
what runs on it is always part of the session's current transaction (hub/db.py)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, insert, select

from hub.db import make_sessionmaker, session_connection
from hub.providers.models import Provider


async def _providers_named(engine, name: str) -> int:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(Provider).where(Provider.name == name))).scalar_one()


async def test_within_a_transaction_it_is_the_sessions_own_connection(engine) -> None:  # type: ignore[no-untyped-def]
    async with make_sessionmaker(engine)() as session:
        first = await session_connection(session)
        assert first is await session.connection()
        assert await session_connection(session) is first


async def test_after_a_commit_or_rollback_it_follows_the_sessions_next_transaction(engine) -> None:  # type: ignore[no-untyped-def]
    kept, dropped = f"kept-{uuid.uuid4()}", f"dropped-{uuid.uuid4()}"
    async with make_sessionmaker(engine)() as session:
        await (await session_connection(session)).execute(insert(Provider).values(id=uuid.uuid4(), name=kept))
        await session.commit()
        # A new transaction: what is written through the connection now is undone by the rollback.
        connection = await session_connection(session)
        assert connection is await session.connection()
        await connection.execute(insert(Provider).values(id=uuid.uuid4(), name=dropped))
        await session.rollback()
        # And after the rollback, the connection of the transaction after it (not the closed one).
        again = await session_connection(session)
        assert again is await session.connection() and not again.closed
    assert await _providers_named(engine, kept) == 1
    assert await _providers_named(engine, dropped) == 0


async def test_an_invalidated_connection_is_not_handed_out_again(engine) -> None:  # type: ignore[no-untyped-def]
    async with make_sessionmaker(engine)() as session:
        first = await session_connection(session)
        await first.invalidate()
        await session.rollback()  # what the request's error handling does with such a session
        second = await session_connection(session)
        assert second is not first and not second.invalidated
        assert (await second.execute(select(1))).scalar_one() == 1
