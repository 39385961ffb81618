"""Pulling statements from any LRS Statement API (xAPI 1.0.3 Communication §2.1.3).

``GET {endpoint}statements?since=…&ascending=true&limit=N`` with the
``X-Experience-API-Version`` header (Communication §3.3), following the StatementResult's
``more`` IRL (Data §2.5, relative to the LRS's origin) until it is empty. Basic auth or an OAuth
2.0 client-credentials token (Communication §4).

Cursor: ``{"since": STORED, "more": IRL|null}``. A crash mid-chain resumes from ``more``; if the
LRS no longer honours it (``more`` IRLs may expire), from ``since``. ``since`` is exclusive
(Communication §2.1.3), so a resumed run asks from one second before the last stored time it
committed: statements stored in the same instant are re-read rather than risked, and re-reads are
harmless (idempotent on the statement id).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urljoin

import httpx
from pydantic import BaseModel, ConfigDict, Field
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from connectors.base import Connector, MapContext, Operation, SourceConfig, SourcePage, SourceRecord, register
from connectors.client import TRANSIENT_STATUS, Transient, parse_retry_after
from connectors.xapi.statements import map_statement


class BasicAuth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["basic"]
    username: str
    password_env: str


class OAuthAuth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["oauth"]
    token_url: str
    client_id: str
    client_secret_env: str
    scope: str | None = "statements/read"


class XapiLrsConfig(SourceConfig):
    endpoint: str = Field(description="The LRS's xAPI base IRL, ending in / (statements are at endpoint + 'statements')")
    auth: BasicAuth | OAuthAuth = Field(discriminator="type")
    version: str = "1.0.3"
    limit: int = Field(default=500, ge=1, le=10_000)
    since: datetime | None = Field(default=None, description="Start here on the first run")


class LrsError(Exception):
    pass


def _secret(env: str) -> str:
    value = os.environ.get(env)
    if not value:
        raise LrsError(f"environment variable {env} is not set")
    return value


def _later(stored: str, since: str | None) -> bool:
    try:
        return since is None or datetime.fromisoformat(stored) > datetime.fromisoformat(since)
    except ValueError:
        return False


@register
class XapiLrsConnector(Connector):
    kind = "xapi-lrs"
    Config = XapiLrsConfig
    config: XapiLrsConfig

    def __init__(self, config: XapiLrsConfig) -> None:
        super().__init__(config)
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0))
        self._token: str | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _auth_headers(self) -> dict[str, str]:
        auth = self.config.auth
        if isinstance(auth, BasicAuth):
            # Communication §4.1: HTTP Basic (RFC 7617).
            token = base64.b64encode(f"{auth.username}:{_secret(auth.password_env)}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
        if self._token is None:
            data = {"grant_type": "client_credentials"}
            if auth.scope:
                data["scope"] = auth.scope
            response = await self._http.post(auth.token_url, data=data, auth=(auth.client_id, _secret(auth.client_secret_env)))
            if response.status_code != 200:
                raise LrsError(f"LRS token request refused ({response.status_code})")
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    async def _get(self, url: str, params: dict[str, str] | None) -> httpx.Response:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((Transient, httpx.TransportError)),
            wait=lambda s: (
                s.outcome.exception().retry_after  # type: ignore[union-attr]
                if s.outcome and isinstance(s.outcome.exception(), Transient) and s.outcome.exception().retry_after is not None  # type: ignore[union-attr]
                else wait_random_exponential(multiplier=0.5, max=30)(s)
            ),
            stop=stop_after_attempt(10),
            reraise=True,
        ):
            with attempt:
                headers = {"X-Experience-API-Version": self.config.version, **await self._auth_headers()}
                response = await self._http.get(url, params=params, headers=headers)
                if response.status_code == 401 and self._token is not None:
                    self._token = None
                    raise Transient("LRS token refused; renewing", retry_after=0)
                if response.status_code in TRANSIENT_STATUS:
                    raise Transient(f"LRS answered {response.status_code}", parse_retry_after(response.headers.get("retry-after")))
                return response
        raise AssertionError("unreachable")

    async def fetch(self, cursor: str | None) -> AsyncIterator[SourcePage]:
        state: dict[str, Any] = json.loads(cursor) if cursor else {
            "since": self.config.since.isoformat() if self.config.since else None, "more": None
        }
        statements_url = urljoin(self.config.endpoint, "statements")
        url, params = statements_url, self._first_params(state["since"], resumed=cursor is not None)
        if state.get("more"):
            url, params = urljoin(self.config.endpoint, state["more"]), None
        while True:
            response = await self._get(url, params)
            if response.status_code in (400, 404) and params is None and state.get("more"):
                # An expired ``more`` IRL: start the query again from the last committed time.
                url, params, state["more"] = statements_url, self._first_params(state["since"], resumed=True), None
                continue
            if response.status_code != 200:
                raise LrsError(f"LRS answered {response.status_code}: {response.text[:300]}")
            body = response.json()
            statements = body.get("statements") or []
            records = []
            for index, statement in enumerate(statements, start=1):
                ref = statement.get("id", f"#{index}") if isinstance(statement, dict) else f"#{index}"
                records.append(SourceRecord(f"lrs:{ref}", statement))
                stored = statement.get("stored") if isinstance(statement, dict) else None
                if isinstance(stored, str) and _later(stored, state["since"]):
                    state["since"] = stored
            more = body.get("more") or None
            state["more"] = more
            yield SourcePage(records, json.dumps(state))
            if not more:
                return
            # Data §2.5: ``more`` is relative to the LRS's origin (or absolute).
            url, params = urljoin(self.config.endpoint, more), None

    def _first_params(self, since: str | None, *, resumed: bool) -> dict[str, str]:
        params = {"ascending": "true", "limit": str(self.config.limit)}
        if since:
            when = datetime.fromisoformat(since)
            if resumed:
                when -= timedelta(seconds=1)
            # An xAPI Timestamp (Data §4.5) in UTC with "Z": no "+" to be mangled in a query string.
            params["since"] = when.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return params

    def map(self, record: SourceRecord, context: MapContext) -> list[Operation]:
        return map_statement(record.payload, context)
