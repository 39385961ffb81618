"""Open Badges import (``open-badges``): files and URLs holding credentials, for declared learners.

Each configured source belongs to one learner, declared as this provider's own identifier
(``{"system": "oneroster" | "xapi", "external_id": …}``) and resolved through ``learnerLinks``
exactly like the other connectors: a backpack export is one person's. What a source may hold:

- a **backpack export**: a JSON array of credentials/assertions, or an object holding one list:
  ``verifiableCredential`` of a Verifiable Presentation (VC Data Model 2.0 §4.13), ``credential``
  and ``compactJwsString`` of an OB 3.0 / CLR 2.0 ``getCredentials`` response (OB 3.0 §6.2.1),
  ``result`` (Badgr API v2 envelope), ``badges`` (Mozilla Backpack Displayer API; items wrapping
  an ``assertion`` are unwrapped), ``assertions`` or ``credentials``;
- one **OB 2.0 assertion** or one **OB 3.0 / CLR 2.0 credential** as JSON(-LD);
- one **compact JWS** (``.jws``/``.jwt`` text: an OB 2.0 signed assertion or a VC-JWT).

URLs are fetched with httpx (http/https only, a timeout, at most ``max_bytes``, 200 only). The hub
verifies every credential (``importCredentials``); the connector only finds and frames them.
A hosted OB 2.0 assertion (``verification.type: HostedBadge``) is verified by the hub, which
fetches it again from its ``id`` on an origin the operator allowed (``hub.credentials.ob2``): what
the connector read only says where to look.

Cursor: ``{"done": {LOCATION: SHA-256}, "current", "digest", "record"}``. A source whose content is
unchanged since it was finished is skipped; a changed one is read again from its first record
(idempotent: what the hub holds already is ``unchanged``); a run that stopped inside a source
resumes after its last committed page when the content is the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import Field, field_validator, model_validator

from connectors.base import (
    Connector, ImportCredential, InvalidRecord, MapContext, Operation, SourceConfig, SourcePage, SourceRecord, register,
)
from connectors.xapi.statements import canonical_actor_id
from hub.credentials.vcjwt import looks_like_jws

SUFFIXES = (".json", ".jsonld", ".jws", ".jwt")
# importCredentials refuses longer items (hub/graphql/credential_import.py); say so before sending.
MAX_ITEM_CHARS = 1_000_000
LIST_KEYS = ("verifiableCredential", "credential", "result", "badges", "assertions", "credentials")
ACCEPT = "application/ld+json, application/json, application/jose, application/jwt, text/plain;q=0.5"


class LearnerRef(SourceConfig):
    system: Literal["oneroster", "xapi"]
    external_id: str = Field(min_length=1, max_length=2000)

    def canonical(self) -> str:
        # xAPI ids are linked canonically (mailto: -> mbox_sha1sum), as the xAPI connector sends them.
        return canonical_actor_id(self.external_id) if self.system == "xapi" else self.external_id


class BadgeSource(SourceConfig):
    learner: LearnerRef
    paths: list[Path] = Field(default_factory=list, description="Files, or directories of .json/.jsonld/.jws/.jwt")
    urls: list[str] = Field(default_factory=list, description="http(s) URLs of credentials, assertions or exports")

    @field_validator("urls")
    @classmethod
    def _http_only(cls, value: list[str]) -> list[str]:
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{url!r}: only http:// and https:// URLs are fetched")
        return value

    @model_validator(mode="after")
    def _something(self) -> BadgeSource:
        if not self.paths and not self.urls:
            raise ValueError("a source lists paths and/or urls")
        for path in self.paths:
            if not path.exists():
                raise ValueError(f"{path} does not exist")
        return self


class OpenBadgesConfig(SourceConfig):
    sources: list[BadgeSource] = Field(min_length=1)
    page_size: int = Field(default=50, ge=1, le=1000)
    max_bytes: int = Field(default=10_000_000, ge=1_000, le=100_000_000, description="per file or URL")
    timeout_seconds: float = Field(default=20.0, gt=0, le=300)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8-sig")  # RFC 8259 §8.1: UTF-8; a leading BOM is tolerated


def _types(value: dict[str, Any]) -> list[str]:
    found = value.get("type")
    return [found] if isinstance(found, str) else [t for t in found if isinstance(t, str)] if isinstance(found, list) else []


def items_of(document: Any, name: str) -> Iterator[tuple[str, Any]]:
    """(ref, item) for every credential-like item of a parsed source."""
    if isinstance(document, list):
        for index, item in enumerate(document, start=1):
            yield f"{name}[{index}]", item
        return
    if isinstance(document, dict):
        if "VerifiablePresentation" in _types(document):
            inner = document.get("verifiableCredential")
            yield from items_of(inner if isinstance(inner, list) else [inner] if inner is not None else [], name)
            return
        if "@context" not in document and "type" not in document:
            key = next((k for k in LIST_KEYS if isinstance(document.get(k), list)), None)
            if key is not None:
                yield from items_of(document[key], name)
                if key == "credential" and isinstance(document.get("compactJwsString"), list):
                    yield from items_of(document["compactJwsString"], f"{name}:compactJwsString")
                return
            if isinstance(document.get("compactJwsString"), list):
                yield from items_of(document["compactJwsString"], f"{name}:compactJwsString")
                return
    yield name, document


@register
class OpenBadgesConnector(Connector):
    kind = "open-badges"
    Config = OpenBadgesConfig
    config: OpenBadgesConfig

    def __init__(self, config: OpenBadgesConfig) -> None:  # type: ignore[override]
        super().__init__(config)
        self._http: httpx.AsyncClient | None = None

    def locations(self) -> list[tuple[LearnerRef, str]]:
        """Every file and URL in config order (a directory's files in name order)."""
        found: list[tuple[LearnerRef, str]] = []
        for source in self.config.sources:
            for path in source.paths:
                files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES) \
                    if path.is_dir() else [path]
                found.extend((source.learner, str(p.resolve())) for p in files)
            found.extend((source.learner, url) for url in source.urls)
        return found

    async def _read(self, location: str) -> tuple[bytes | None, str | None]:
        if not location.startswith(("http://", "https://")):
            path = Path(location)
            try:
                if path.stat().st_size > self.config.max_bytes:
                    return None, f"larger than {self.config.max_bytes} bytes"
                return path.read_bytes(), None
            except OSError as exc:
                return None, f"cannot be read: {exc.strerror or exc}"
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.config.timeout_seconds), follow_redirects=True,
                                           max_redirects=5, headers={"Accept": ACCEPT})
        try:
            async with self._http.stream("GET", location) as response:
                if response.status_code != 200:
                    return None, f"fetching answered HTTP {response.status_code}"
                if urlsplit(str(response.url)).scheme not in ("http", "https"):
                    return None, "redirected away from http(s)"
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > self.config.max_bytes:
                        return None, f"larger than {self.config.max_bytes} bytes"
                return bytes(body), None
        except httpx.HTTPError as exc:
            return None, f"fetching failed: {type(exc).__name__}: {exc}"

    def _records(self, learner: LearnerRef, location: str, raw: bytes) -> list[SourceRecord]:
        name = location if location.startswith(("http://", "https://")) else Path(location).name
        who = {"system": learner.system, "external_id": learner.external_id}
        try:
            text = _decode(raw).strip()
        except UnicodeDecodeError as exc:
            return [SourceRecord(name, raw.decode("latin-1"), f"{name}: not UTF-8 ({exc.reason} at byte {exc.start})")]
        if looks_like_jws(text):
            return [SourceRecord(name, {"learner": who, "credential": text})]
        try:
            document = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            detail = f"{exc.msg} at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            return [SourceRecord(name, text, f"{name}: neither JSON nor a compact JWS ({detail})")]
        return [SourceRecord(ref, {"learner": who, "credential": item}) for ref, item in items_of(document, name)]

    async def fetch(self, cursor: str | None) -> AsyncIterator[SourcePage]:
        state = json.loads(cursor) if cursor else {}
        done: dict[str, str] = dict(state.get("done", {}))
        for learner, location in self.locations():
            raw, problem = await self._read(location)
            if raw is None:
                # Reported on every run until it can be read (not marked done).
                ref = location if location.startswith(("http://", "https://")) else Path(location).name
                yield SourcePage([SourceRecord(ref, location, f"{ref}: {problem}")], json.dumps({"done": done}))
                continue
            digest = hashlib.sha256(raw).hexdigest()
            if done.get(location) == digest:
                continue  # finished before, unchanged since
            resume = state.get("current") == location and state.get("digest") == digest
            skip = int(state.get("record", 0)) if resume else 0
            records = self._records(learner, location, raw)
            page: list[SourceRecord] = []
            for number, record in enumerate(records[skip:], start=skip + 1):
                page.append(record)
                if len(page) >= self.config.page_size and number < len(records):
                    yield SourcePage(page, json.dumps({"done": done, "current": location, "digest": digest,
                                                       "record": number}))
                    page = []
            done[location] = digest
            yield SourcePage(page, json.dumps({"done": done}))

    def map(self, record: SourceRecord, context: MapContext) -> list[Operation]:
        payload = record.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("learner"), dict):
            raise InvalidRecord("not an Open Badges record")
        try:
            learner = LearnerRef.model_validate(payload["learner"])
        except ValueError as exc:
            raise InvalidRecord(f"learner: {exc}") from None
        item = payload.get("credential")
        if isinstance(item, dict) and "@context" not in item and "type" not in item and isinstance(item.get("assertion"), dict):
            item = item["assertion"]  # Mozilla Backpack Displayer: {"assertion": {...}, "imageUrl": ...}
        if isinstance(item, str):
            text = item.strip()
            if not looks_like_jws(text):
                raise InvalidRecord("a string that is not a compact JWS (URLs inside a file are not fetched; "
                                    "list them under urls)")
        elif isinstance(item, dict):
            if "@context" not in item and "type" not in item:
                raise InvalidRecord("not a credential or assertion: no @context or type")
            text = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
        else:
            raise InvalidRecord(f"not a credential: a JSON {type(item).__name__}")
        if len(text) > MAX_ITEM_CHARS:
            raise InvalidRecord(f"longer than {MAX_ITEM_CHARS} characters")
        return [ImportCredential(learner.system, learner.canonical(), text)]

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
