"""The files under ``schemas/`` that are generated from code, and their expected content."""

from __future__ import annotations

import json
from pathlib import Path

from hub.graphql.schema import export_sdl
from schemas.records import json_schemas

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"


def expected_files() -> dict[Path, str]:
    files = {SCHEMAS_DIR / "kinfolio.graphql": export_sdl()}
    for section, schema in json_schemas().items():
        files[SCHEMAS_DIR / "json" / f"{section}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return files
