"""Development secrets kept as 0600 files under the data directory."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def read_or_create(path: Path, generate: Callable[[], bytes]) -> bytes:
    """Read the secret at ``path``, creating it with ``generate()`` on first use.

    The secret appears at ``path`` only whole: it is written (and synced) to a temporary 0600
    file in the same directory, which is then hard-linked to ``path``. The link fails if another
    start got there first, and that start's secret is read instead. So concurrent first starts
    (several workers) agree on one value, and none reads an empty or half-written file, as one
    did when the file was created first and written after.
    """
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = generate()
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(value)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_bytes()
        return value
    finally:
        os.unlink(temporary)
