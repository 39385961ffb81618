"""The ``case-package`` connector: CASE CFPackages from files or URLs into ``importFramework``.

Frameworks are public reference data: the connector sends each package through the public
GraphQL API as its provider, which needs the ``frameworks:write`` scope and no learner consent.
The hub validates every item against the CASE 1.1 JSON Schemas; invalid items come back in the
report one by one (``SOURCE CFItems[3]``), the rest is imported. Re-sending an unchanged package
is reported ``unchanged`` (idempotent on CASE identifiers), so every run re-reads all sources
(a framework is re-published at the same URL); the cursor only lets a crashed run resume.

Config: ``{"sources": ["/data/case/framework.json", "/data/case/", "https://case.example.org/ims/case/v1p0/CFPackages/ID"]}``
(a directory stands for its ``*.json`` files, sorted).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from pydantic import Field

from connectors.base import Connector, ImportFramework, InvalidRecord, MapContext, Operation, SourceConfig, SourcePage, SourceRecord, register
from hub.frameworks.source import SourceError, is_url, read_package


class CasePackageConfig(SourceConfig):
    sources: list[str] = Field(min_length=1, description="CFPackage JSON files, directories of them, or http(s) URLs")


@register
class CasePackageConnector(Connector):
    kind = "case-package"
    Config = CasePackageConfig
    config: CasePackageConfig

    def __init__(self, config: CasePackageConfig) -> None:
        super().__init__(config)
        self._http: httpx.AsyncClient | None = None

    def _sources(self) -> list[str]:
        out: list[str] = []
        for source in self.config.sources:
            path = Path(source)
            if not is_url(source) and path.is_dir():
                out.extend(str(p) for p in sorted(path.glob("*.json")))
            else:
                out.append(source)
        return out

    async def fetch(self, cursor: str | None) -> AsyncIterator[SourcePage]:
        sources = self._sources()
        digest = hashlib.sha256("\n".join(sources).encode()).hexdigest()
        position = json.loads(cursor) if cursor else {}
        start = position.get("next", 0) if position.get("digest") == digest else 0
        if start >= len(sources):
            start = 0  # the last run finished: read everything again (re-sends are unchanged)
        for index in range(start, len(sources)):
            source = sources[index]
            try:
                if is_url(source) and self._http is None:
                    self._http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True)
                record = SourceRecord(source, await read_package(source, self._http))
            except SourceError as exc:
                record = SourceRecord(source, source, problem=str(exc))
            yield SourcePage([record], json.dumps({"digest": digest, "next": index + 1}))

    def map(self, record: SourceRecord, context: MapContext) -> list[Operation]:
        if not isinstance(record.payload, dict) or "CFDocument" not in record.payload:
            raise InvalidRecord("not a CASE CFPackage (a JSON object with a CFDocument)")
        return [ImportFramework(record.payload)]

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
