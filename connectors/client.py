"""The hub's public API as a connector sees it: OAuth client credentials + GraphQL over HTTP.

A connector is an ordinary provider: it gets a token at ``/oauth/token`` (RFC 6749 §4.4, with
``client_secret_basic`` or ``private_key_jwt``, RFC 7523 §2.2), renews it before it expires, and calls ``/graphql``. Transient failures
(connection errors, 429, 502, 503, 504, and GraphQL ``CONFLICT``/``INTERNAL`` answers, which mean
nothing was stored) are retried with exponential backoff and full jitter (tenacity), and a
``Retry-After`` header (RFC 9110 §10.2.3, seconds or an HTTP date) is honoured. Every call the
runtime makes is idempotent (``source_id``), so a retry can never store twice.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_random_exponential

TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
RETRYABLE_CODES = frozenset({"CONFLICT", "INTERNAL"})


CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"  # RFC 7523 §2.2


def import_private_key(pem: bytes) -> ECKey | RSAKey | OKPKey:
    """A PEM private key as a joserfc key of its type (EC P-256, RSA, Ed25519)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    loaded = load_pem_private_key(pem, password=None)
    if isinstance(loaded, ec.EllipticCurvePrivateKey) and loaded.curve.name == "secp256r1":
        return ECKey.import_key(pem)
    if isinstance(loaded, rsa.RSAPrivateKey) and loaded.key_size >= 2048:
        return RSAKey.import_key(pem)
    if isinstance(loaded, ed25519.Ed25519PrivateKey):
        return OKPKey.import_key(pem)
    raise ValueError("not an EC P-256, RSA (2048 bits or more) or Ed25519 private key")


def signing_alg(key: ECKey | RSAKey | OKPKey) -> str:
    # RFC 9864: "Ed25519" is the fully specified name (joserfc warns on the deprecated "EdDSA").
    return {"EC": "ES256", "RSA": "RS256", "OKP": "Ed25519"}[key.key_type]


class HubConfig(BaseModel):
    """Where the hub is and which OAuth client the connector acts as."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="The hub's base URL (its issuer), e.g. https://kinfolio.example.org")
    client_id: str
    # The secret is never stored in the instance config: name an environment variable or a file.
    client_secret_env: str | None = None
    client_secret_file: Path | None = None
    # Or private_key_jwt (RFC 7523 §2.2): a PEM private key (EC P-256, RSA, Ed25519) whose public
    # JWK is registered for the client; no shared secret exists at all.
    private_key_file: Path | None = None
    private_key_kid: str | None = None
    scope: str | None = None

    @model_validator(mode="after")
    def _one_secret_source(self) -> HubConfig:
        given = [s for s in (self.client_secret_env, self.client_secret_file, self.private_key_file) if s is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of client_secret_env, client_secret_file or private_key_file")
        if self.private_key_kid is not None and self.private_key_file is None:
            raise ValueError("private_key_kid goes with private_key_file")
        return self

    def client_assertion(self, token_endpoint: str) -> str:
        """A fresh, single-use client assertion (RFC 7523 §3): iss = sub = client_id, aud = the
        token endpoint, a short expiry and a unique jti (the hub accepts each jti once)."""
        assert self.private_key_file is not None
        try:
            key = import_private_key(self.private_key_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise HubError(f"private_key_file {self.private_key_file}: {exc}") from None
        now = int(time.time())
        header = {"alg": signing_alg(key)}
        if self.private_key_kid or key.kid:
            header["kid"] = self.private_key_kid or key.kid
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": token_endpoint, "iat": now, "exp": now + 60,
                  "jti": secrets.token_urlsafe(24)}
        return jwt.encode(header, claims, key, algorithms=[header["alg"]])

    def client_secret(self) -> str:
        if self.client_secret_env is not None:
            value = os.environ.get(self.client_secret_env)
            if not value:
                raise HubError(f"environment variable {self.client_secret_env} (the client secret) is not set")
            return value
        assert self.client_secret_file is not None
        return self.client_secret_file.read_text().strip()


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=12, ge=1, le=100)
    max_total_seconds: float = Field(default=600, gt=0)
    initial_wait: float = Field(default=0.5, gt=0)
    max_wait: float = Field(default=30, gt=0)


class HubError(Exception):
    """A permanent failure talking to the hub (bad credentials, refused scope, unexpected answer)."""


class Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


@dataclass(frozen=True, slots=True)
class FieldOutcome:
    """One aliased mutation's answer: data, or an error code with its extensions."""

    data: dict[str, Any] | None
    code: str | None = None
    message: str | None = None
    extensions: dict[str, Any] | None = None


class HubClient:
    def __init__(self, config: HubConfig, http: httpx.AsyncClient, retry: RetryPolicy | None = None) -> None:
        self.config = config
        self.http = http
        self.retry = retry or RetryPolicy()
        self._token: str | None = None
        self._token_expires = 0.0
        self.requests = 0
        self.retries = 0

    # -- plumbing ------------------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Transient) and exc.retry_after is not None:
            return min(exc.retry_after, self.retry.max_wait)
        return wait_random_exponential(multiplier=self.retry.initial_wait, max=self.retry.max_wait)(state)

    async def _retrying(self, call):  # type: ignore[no-untyped-def]
        def count(_state: RetryCallState) -> None:
            self.retries += 1

        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((Transient, httpx.TransportError)),
            wait=self._wait,
            stop=stop_after_attempt(self.retry.max_attempts) | stop_after_delay(self.retry.max_total_seconds),
            before_sleep=count,
            reraise=True,
        ):
            with attempt:
                return await call()
        raise AssertionError("unreachable")

    @staticmethod
    def _raise_for_transient(response: httpx.Response) -> None:
        if response.status_code in TRANSIENT_STATUS:
            raise Transient(
                f"hub answered {response.status_code}", parse_retry_after(response.headers.get("retry-after"))
            )

    async def _fetch_token(self) -> None:
        data = {"grant_type": "client_credentials"}
        if self.config.scope:
            data["scope"] = self.config.scope

        endpoint = f"{self.config.url.rstrip('/')}/oauth/token"

        async def call() -> httpx.Response:
            self.requests += 1
            if self.config.private_key_file is not None:
                # A new assertion per attempt: a retried one would be refused as a jti replay.
                form = {**data, "client_assertion_type": CLIENT_ASSERTION_TYPE,
                        "client_assertion": self.config.client_assertion(endpoint)}
                response = await self.http.post(endpoint, data=form)
            else:
                response = await self.http.post(endpoint, data=data,
                                                auth=(self.config.client_id, self.config.client_secret()))
            self._raise_for_transient(response)
            return response

        response = await self._retrying(call)
        if response.status_code != 200:
            raise HubError(f"token request refused ({response.status_code}): {response.text[:300]}")
        body = response.json()
        self._token = body["access_token"]
        # Renew a minute early (or at half-life for short tokens) so no call carries an expired token.
        lifetime = float(body.get("expires_in", 300))
        self._token_expires = time.monotonic() + lifetime - min(60.0, lifetime / 2)

    async def token(self) -> str:
        if self._token is None or time.monotonic() >= self._token_expires:
            await self._fetch_token()
        assert self._token is not None
        return self._token

    async def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """POST a GraphQL document; retries transient failures; renews the token once on 401."""
        renewed = False

        async def call() -> dict[str, Any]:
            nonlocal renewed
            self.requests += 1
            response = await self.http.post(
                f"{self.config.url.rstrip('/')}/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {await self.token()}"},
            )
            if response.status_code == 401 and not renewed:
                renewed = True
                self._token = None
                raise Transient("access token refused; renewing", retry_after=0)
            self._raise_for_transient(response)
            if response.status_code != 200:
                raise HubError(f"hub answered {response.status_code}: {response.text[:300]}")
            body = response.json()
            for error in body.get("errors") or []:
                if (error.get("extensions") or {}).get("code") in RETRYABLE_CODES:
                    raise Transient(f"hub answered {error['extensions']['code']}: {error.get('message')}")
            return body

        return await self._retrying(call)

    # -- the calls the runtime makes ------------------------------------------------------------

    async def learner_links(self, system: str, external_ids: Sequence[str]) -> dict[str, tuple[str, str | None]]:
        body = await self.graphql(
            "query($s: String!, $ids: [String!]!) { learnerLinks(system: $s, externalIds: $ids) "
            "{ externalId status learnerId } }",
            {"s": system, "ids": list(external_ids)},
        )
        if body.get("errors"):
            raise HubError(f"learnerLinks failed: {body['errors'][0].get('message')}")
        return {row["externalId"]: (row["status"], row["learnerId"]) for row in body["data"]["learnerLinks"]}

    async def contribute(self, section: str, calls: Sequence[tuple[str, list[dict[str, Any]]]]) -> list[FieldOutcome]:
        """Several learners' batches in one request: one aliased mutation per learner.

        The hub executes them in order and commits them together with their disclosure-log rows.
        """
        field, argument, input_type = _MUTATIONS[section]
        params, selections, variables = [], [], {}
        for i, (learner, entries) in enumerate(calls):
            params.append(f"$l{i}: ID!, $e{i}: [{input_type}!]!")
            selections.append(
                f"m{i}: {field}(learnerId: $l{i}, {argument}: $e{i}) {{ received created updated unchanged }}"
            )
            variables[f"l{i}"] = learner
            variables[f"e{i}"] = [_enum_names(section, e) for e in entries]
        document = f"mutation({', '.join(params)}) {{ {' '.join(selections)} }}"
        body = await self.graphql(document, variables)
        return _outcomes(body, len(calls))

    async def import_credentials(self, calls: Sequence[tuple[str, list[str]]]) -> list[FieldOutcome]:
        """Several learners' credentials in one request: one aliased ``importCredentials`` per learner."""
        params, selections, variables = [], [], {}
        for i, (learner, credentials) in enumerate(calls):
            params.append(f"$l{i}: ID!, $c{i}: [String!]!")
            selections.append(f"m{i}: importCredentials(learnerId: $l{i}, credentials: $c{i}) "
                              "{ results { index outcome reasons badgeSourceIds } }")
            variables[f"l{i}"] = learner
            variables[f"c{i}"] = credentials
        body = await self.graphql(f"mutation({', '.join(params)}) {{ {' '.join(selections)} }}", variables)
        return _outcomes(body, len(calls))

    async def retract(self, section: str, source_ids: Sequence[str]) -> dict[str, int]:
        """Withdraw this provider's own entries of ``section`` across learners (decided per learner)."""
        body = await self.graphql(
            "mutation($s: String!, $ids: [String!]!) { retractOwnEntries(section: $s, sourceIds: $ids) "
            "{ received retracted notFound refused } }",
            {"s": section, "ids": list(source_ids)},
        )
        if body.get("errors"):
            raise HubError(f"retractOwnEntries failed: {body['errors'][0].get('message')}")
        return body["data"]["retractOwnEntries"]

    async def import_framework(self, package: Any) -> FieldOutcome:
        """Send a CASE CFPackage (``importFramework``, needs the ``frameworks:write`` scope)."""
        body = await self.graphql(
            "mutation($p: JSON!) { m0: importFramework(package: $p) { documentIdentifier title document "
            "items { created updated unchanged removed } associations { created updated unchanged removed } "
            "invalid { path identifier reason } } }",
            {"p": package},
        )
        return _outcomes(body, 1)[0]


_MUTATIONS = {
    "activities": ("recordActivities", "activities", "ActivityInput"),
    "badges": ("contributeBadges", "badges", "BadgeInput"),
    "skills": ("contributeSkills", "skills", "SkillInput"),
    "pathways": ("contributePathways", "pathways", "PathwayInput"),
}
# GraphQL enums are sent by name (PathwayKind.COURSE), the record models hold their values.
_ENUM_FIELDS = {"pathways": ("kind",)}


def _enum_names(section: str, entry: dict[str, Any]) -> dict[str, Any]:
    fields = _ENUM_FIELDS.get(section)
    if not fields:
        return entry
    return {k: (v.upper() if k in fields and isinstance(v, str) else v) for k, v in entry.items()}


def _outcomes(body: dict[str, Any], count: int) -> list[FieldOutcome]:
    data = body.get("data") or {}
    errors = {(e.get("path") or [None])[0]: e for e in body.get("errors") or []}
    outcomes = []
    for i in range(count):
        alias = f"m{i}"
        if data.get(alias) is not None:
            outcomes.append(FieldOutcome(data=data[alias]))
            continue
        error = errors.get(alias) or (body.get("errors") or [{}])[0]
        ext = error.get("extensions") or {}
        outcomes.append(FieldOutcome(data=None, code=ext.get("code", "UNKNOWN"), message=error.get("message"), extensions=ext))
    return outcomes


def camelize(value: Any) -> Any:
    """snake_case section input (``schemas.records``) -> the GraphQL input's camelCase."""
    if isinstance(value, dict):
        return {_camel(k): camelize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camelize(v) for v in value]
    return value


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)


def now_utc() -> datetime:
    return datetime.now(UTC)
