"""Statements built at import time are typed whatever module is imported first.

A foreign-key column takes its type from the table it references; until that table is defined it is
``NullType``, so a statement built earlier binds a UUID as is (SQLite refuses it) and hands back
untyped columns. The request path builds some statements once, at import (hub.grants.service,
hub.oauth.bearer): importing such a module first, as a CLI command or worker may, must not matter.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement

ROOT = Path(__file__).resolve().parents[1]

_CHECK = """
import importlib, sys
from sqlalchemy.types import NullType
module = importlib.import_module(sys.argv[1])
untyped = []
for name in sys.argv[2:]:
    statement = getattr(module, name)
    untyped += [f"{name}: bind {b.key}" for b in statement.compile().binds.values() if isinstance(b.type, NullType)]
    untyped += [f"{name}: column {c.name}" for c in statement.selected_columns if isinstance(c.type, NullType)]
print("\\n".join(untyped))
"""


def _module_level_statements() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for package in ("hub", "consent", "connectors"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            module = importlib.import_module(info.name)
            names = [k for k, v in vars(module).items() if isinstance(v, ClauseElement) and isinstance(v, Executable)]
            if names:
                found[info.name] = names
    return found


def test_statements_built_at_import_are_typed_when_their_module_is_imported_first() -> None:
    statements = _module_level_statements()
    assert "hub.grants.service" in statements and "hub.oauth.bearer" in statements  # the scan finds them
    for module, names in statements.items():
        out = subprocess.run([sys.executable, "-c", _CHECK, module, *names], cwd=ROOT, capture_output=True,
                             text=True, timeout=120, check=True).stdout.strip()
        assert out == "", f"{module} imported first builds untyped statements:\n{out}"
