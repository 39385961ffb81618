"""SQLite: write-ahead-log checkpoints in a background thread instead of inside commits.

By default SQLite checkpoints (copies the WAL back into the database file) inside the COMMIT that
takes the WAL past 1,000 pages, while that connection still holds the one write lock. A
1,000-activity batch writes a few hundred pages, so every third or fourth ingest commit paid for a
checkpoint: commits took 20 ms on average instead of 6 (BENCHMARKS.md, fifth session, 3).
SQLite's documentation names the remedy (https://www.sqlite.org/wal.html, "Automatic
Checkpoint"): turn automatic checkpoints off on the connections that serve requests and run them
from a separate thread. A PASSIVE checkpoint takes no lock that readers or writers wait for, and
the sqlite3 module releases the GIL while it runs, so it overlaps the requests' Python work.

Only the server process does this (``create_app(server_process=True)``, i.e. ``hub.asgi``);
every other connection (CLI, tools, tests) keeps SQLite's automatic checkpoints, and a server
that stops leaves a WAL that the next connection checkpoints as usual.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any
from urllib.request import pathname2url

from sqlalchemy import make_url

log = logging.getLogger(__name__)

# How often the background thread checkpoints: at 15,000 activities/s that is ~8 MB of WAL.
CHECKPOINT_EVERY_SECONDS = 0.5


def sqlite_database_file(url: str) -> str | None:
    """The database file of a SQLite URL (None for other databases and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def disable_automatic_checkpoints(dbapi_connection: Any, _connection_record: Any = None) -> None:
    """A ``connect`` event listener: this connection's commits never checkpoint."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def checkpoint(database: str) -> tuple[int, int, int]:
    """One PASSIVE checkpoint: (busy, frames in the WAL, frames checkpointed), as SQLite reports them.

    A connection of its own each time: one opened before the server's first connection switched
    the file to WAL mode would go on seeing a rollback-journal database and checkpoint nothing.
    """
    # mode=rw: never create a database file that is not there (a missing one is an error to log).
    connection = sqlite3.connect(f"file:{pathname2url(database)}?mode=rw", uri=True, isolation_level=None)
    try:
        busy, frames, done = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        connection.close()
    return busy, frames, done


async def checkpoint_in_background(database: str, stop: asyncio.Event,
                                   every_seconds: float = CHECKPOINT_EVERY_SECONDS) -> None:
    """Checkpoint ``database`` every ``every_seconds`` until ``stop`` is set, then once more.

    Each checkpoint runs in a worker thread. A failed one is logged and tried again next time:
    SQLite keeps every frame in the WAL until a checkpoint succeeds.
    """
    while True:
        try:
            await asyncio.to_thread(checkpoint, database)
        except sqlite3.Error:
            log.exception("WAL checkpoint of %s failed; retrying in %.1f s", database, every_seconds)
        if stop.is_set():
            return
        try:
            await asyncio.wait_for(stop.wait(), every_seconds)
        except TimeoutError:
            pass
