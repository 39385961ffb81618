"""Development secrets under the data directory (hub.keyfiles): several workers starting at once
on a fresh data directory must all read the one complete secret that was created, never an
empty or half-written file (a worker that read an empty ``kek.hex`` died at start, and with it
``kinfolio serve --workers 2``)."""

from __future__ import annotations

import multiprocessing
import secrets
from pathlib import Path

from hub.keyfiles import read_or_create

STARTS = 4
ROUNDS = 40


def _start(path: str, barrier: multiprocessing.synchronize.Barrier, answers: multiprocessing.Queue) -> None:
    barrier.wait()
    answers.put(read_or_create(Path(path), lambda: secrets.token_hex(32).encode()))


def test_concurrent_first_starts_all_read_the_one_complete_secret(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for round_ in range(ROUNDS):
        path = tmp_path / f"round-{round_}" / "kek.hex"
        barrier, answers = context.Barrier(STARTS), context.Queue()
        starts = [context.Process(target=_start, args=(str(path), barrier, answers)) for _ in range(STARTS)]
        for start in starts:
            start.start()
        values = [answers.get(timeout=30) for _ in starts]
        for start in starts:
            start.join(timeout=30)
        assert len(set(values)) == 1 and len(values[0]) == 64, (round_, values)
        assert path.read_bytes() == values[0]
        assert path.stat().st_mode & 0o777 == 0o600
        # Nothing but the secret is left in the directory (no temporary files).
        assert [p.name for p in path.parent.iterdir()] == ["kek.hex"]


def test_an_existing_secret_is_read_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "pseudonym-key.hex"
    path.write_bytes(b"ab" * 32)
    assert read_or_create(path, lambda: b"cd" * 32) == b"ab" * 32
    assert path.read_bytes() == b"ab" * 32
