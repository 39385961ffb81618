"""xAPI statements from files: ``.jsonl``/``.ndjson`` (one statement per line, streamed) and
``.json`` (a statement, an array of statements, or a StatementResult ``{"statements": [...]}``,
Data §2.5). Directories are read in name order.

Cursor: ``{"file": PATH, "record": N}``: every file sorting before PATH is done, and the first N
records (lines for JSON Lines, array items for JSON) of PATH are.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from connectors.base import Connector, MapContext, Operation, SourceConfig, SourcePage, SourceRecord, register
from connectors.xapi.statements import map_statement

SUFFIXES = (".json", ".jsonl", ".ndjson")


class XapiFileConfig(SourceConfig):
    paths: list[Path] = Field(min_length=1, description="Files or directories of statements")
    page_size: int = Field(default=1000, ge=1, le=10_000)

    @field_validator("paths")
    @classmethod
    def _exist(cls, value: list[Path]) -> list[Path]:
        for path in value:
            if not path.exists():
                raise ValueError(f"{path} does not exist")
        return value


def _decode(raw: bytes, first: bool) -> str:
    # RFC 8259 §8.1: JSON text is UTF-8; a leading BOM is tolerated (and dropped), nothing else is guessed.
    return raw.decode("utf-8-sig" if first else "utf-8")


@register
class XapiFileConnector(Connector):
    kind = "xapi-file"
    Config = XapiFileConfig
    config: XapiFileConfig

    def files(self) -> list[Path]:
        found: list[Path] = []
        for path in self.config.paths:
            if path.is_dir():
                found.extend(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
            else:
                found.append(path)
        return sorted({p.resolve() for p in found})

    def estimate_total(self) -> int | None:
        total = 0
        for path in self.files():
            if path.suffix.lower() == ".json":
                return None
            with path.open("rb") as handle:
                total += sum(1 for line in handle if line.strip())
        return total

    async def fetch(self, cursor: str | None) -> AsyncIterator[SourcePage]:
        state = json.loads(cursor) if cursor else {"file": "", "record": 0}
        for path in self.files():
            name = str(path)
            if name < state["file"]:
                continue
            skip = state["record"] if name == state["file"] else 0
            records = self._jsonl(path, skip) if path.suffix.lower() in (".jsonl", ".ndjson") else self._json(path, skip)
            page: list[SourceRecord] = []
            position = skip
            for position, record in records:
                page.append(record)
                if len(page) >= self.config.page_size:
                    yield SourcePage(page, json.dumps({"file": name, "record": position}))
                    page = []
            if page:
                yield SourcePage(page, json.dumps({"file": name, "record": position}))
            # Mark the file done (also when it held nothing new) so the next run skips it.
            state = {"file": name + "\x00", "record": 0}
            yield SourcePage([], json.dumps(state))

    def _jsonl(self, path: Path, skip: int):  # type: ignore[no-untyped-def]
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if number <= skip:
                    continue
                ref = f"{path.name}:{number}"
                try:
                    text = _decode(raw, number == 1).strip()
                except UnicodeDecodeError as exc:
                    yield number, SourceRecord(ref, raw.decode("latin-1"), f"line {number}: not UTF-8 ({exc.reason} at byte {exc.start})")
                    continue
                if not text:
                    continue
                try:
                    yield number, SourceRecord(ref, json.loads(text))
                except json.JSONDecodeError as exc:
                    yield number, SourceRecord(ref, text, f"line {number}: not JSON ({exc.msg} at column {exc.colno})")

    def _json(self, path: Path, skip: int):  # type: ignore[no-untyped-def]
        raw = path.read_bytes()
        try:
            document: Any = json.loads(_decode(raw, True))
        except UnicodeDecodeError as exc:
            if skip == 0:
                yield 1, SourceRecord(path.name, raw.decode("latin-1"), f"{path.name}: not UTF-8 ({exc.reason} at byte {exc.start})")
            return
        except json.JSONDecodeError as exc:
            if skip == 0:
                yield 1, SourceRecord(path.name, raw.decode("utf-8", "replace"), f"{path.name}: not JSON ({exc.msg} at line {exc.lineno})")
            return
        if isinstance(document, dict) and isinstance(document.get("statements"), list):
            items = document["statements"]
        elif isinstance(document, list):
            items = document
        else:
            items = [document]
        for index, item in enumerate(items, start=1):
            if index > skip:
                yield index, SourceRecord(f"{path.name}[{index}]", item)

    def map(self, record: SourceRecord, context: MapContext) -> list[Operation]:
        return map_statement(record.payload, context)
