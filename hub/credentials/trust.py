"""Foreign issuers whose keys the operator trusts (``KINFOLIO_TRUSTED_ISSUERS_FILE``).

Verification resolves keys offline (``hub.credentials.verify.Resolver``): did:key, this hub's own
keys, and the keys named here. A credential from a known issuer whose key cannot be resolved
offline (an ``https://`` key id, a ``did:web``...) verifies when the key is listed under that
issuer; an issuer not listed still fails, with the reason. Keys are fetched at verify time only
from the URL prefixes the operator listed for that issuer (``key_urls``), and hosted OB 2.0
documents only from its ``hosted_origins``; nothing else is ever fetched.

The file (JSON or YAML)::

    issuers:
      - id: https://college.example.edu/issuer          # the credentials' issuer.id
        name: Example College                           # optional, for messages
        keys:                                           # JWKs (kid = verification method id),
          - {kty: RSA, kid: "https://college.example.edu/keys#1", n: "...", e: AQAB}
          - {id: "https://college.example.edu/issuer#key-2", publicKeyMultibase: "z6Mk..."}
        did_keys: ["did:key:z6Mk..."]                   # did:key identifiers this issuer signs with
        key_urls: ["https://college.example.edu/keys/"] # where its keys may be fetched (https only)
        hosted_origins: ["https://badges.college.example.edu"]  # where its hosted OB 2.0 assertions,
                                                        # BadgeClasses and Profile may be fetched

A key listed under an issuer is controlled by that issuer: it verifies that issuer's credentials
and no one else's (OB 3.0 §8.3 / VC Data Integrity: the verification method must belong to the
issuer).

``hosted_origins`` are origins (scheme, host, port; no path): the hub fetches a hosted OB 2.0
assertion (``hub.credentials.hosted``) only when its id is on one of them, and accepts it only
when the BadgeClass's issuer is the issuer that lists that origin. https only; http on loopback
only with ``KINFOLIO_HOSTED_ALLOW_HTTP_LOOPBACK`` (tests).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from hub.credentials.verify import KeyResolutionError, ResolvedKey, trusted_keys_from

KeyFetcher = Callable[[str], Awaitable[Any]]
MAX_KEY_DOCUMENT_BYTES = 100_000
FETCH_TIMEOUT_SECONDS = 5.0


class TrustFileError(ValueError):
    pass


def _is_loopback(host: str | None) -> bool:
    return host in ("localhost", "::1") or (host or "").startswith("127.")


@dataclass(frozen=True)
class TrustedIssuer:
    id: str
    name: str | None
    keys: tuple[ResolvedKey, ...]
    key_urls: tuple[str, ...]
    hosted_origins: tuple[str, ...] = ()

    def allows_fetch(self, url: str) -> bool:
        """``url`` (no fragment) is under one of the operator's prefixes: same scheme and host,
        path within the prefix's path (so ``https://a.example`` never matches ``a.example.evil``)."""
        target = urlsplit(url)
        for prefix in self.key_urls:
            allowed = urlsplit(prefix)
            if (target.scheme, target.netloc) == (allowed.scheme, allowed.netloc) and \
                    target.path.startswith(allowed.path or "/"):
                return True
        return False


def _keys_of(issuer_id: str, entry: dict[str, Any], where: str) -> list[ResolvedKey]:
    out: list[ResolvedKey] = []
    raw_keys = entry.get("keys", [])
    if isinstance(raw_keys, dict):
        raw_keys = [raw_keys]
    if not isinstance(raw_keys, list):
        raise TrustFileError(f"{where}: keys must be a list")
    for n, raw in enumerate(raw_keys):
        if not isinstance(raw, dict):
            raise TrustFileError(f"{where}.keys[{n}]: not an object")
        if any(p in raw for p in ("d", "p", "q", "dp", "dq", "qi")):
            raise TrustFileError(f"{where}.keys[{n}]: holds private key material")
        if "kty" in raw:  # a bare JWK: its kid is the verification method id
            if not isinstance(raw.get("kid"), str):
                raise TrustFileError(f"{where}.keys[{n}]: a JWK needs a kid (the key id credentials name)")
            found = [ResolvedKey(raw["kid"], issuer_id, jwk=raw)]
        else:
            try:
                found = trusted_keys_from(raw)
            except KeyResolutionError as exc:
                raise TrustFileError(f"{where}.keys[{n}]: {exc}") from exc
        out.extend(replace(key, controller=issuer_id) for key in found)
    for n, did in enumerate(entry.get("did_keys", []) or []):
        if not isinstance(did, str) or not did.startswith("did:key:z"):
            raise TrustFileError(f"{where}.did_keys[{n}]: not a did:key identifier")
        base = did.split("#", 1)[0]
        multibase = base[len("did:key:"):]
        try:
            key = trusted_keys_from({"id": f"{base}#{multibase}", "publicKeyMultibase": multibase})[0]
        except KeyResolutionError as exc:
            raise TrustFileError(f"{where}.did_keys[{n}]: {exc}") from exc
        # did:key v0.7 §3.1.3: both the bare DID and DID#multibase name the key.
        out += [replace(key, controller=issuer_id), replace(key, id=base, controller=issuer_id)]
    return out


def _key_urls(entry: dict[str, Any], where: str) -> tuple[str, ...]:
    urls = entry.get("key_urls", []) or []
    if not isinstance(urls, list):
        raise TrustFileError(f"{where}: key_urls must be a list")
    for n, url in enumerate(urls):
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or not parts.netloc or parts.fragment or parts.query:
            raise TrustFileError(f"{where}.key_urls[{n}]: not an absolute URL prefix")
        if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(parts.hostname)):
            raise TrustFileError(f"{where}.key_urls[{n}]: keys are fetched over https only")
    return tuple(urls)


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` in lower case (RFC 6454 §4, default ports left out)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"https": 443, "http": 80}.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def _hosted_origins(entry: dict[str, Any], where: str, allow_http_loopback: bool) -> tuple[str, ...]:
    origins = entry.get("hosted_origins", []) or []
    if not isinstance(origins, list):
        raise TrustFileError(f"{where}: hosted_origins must be a list")
    out = []
    for n, origin in enumerate(origins):
        parts = urlsplit(origin) if isinstance(origin, str) else None
        if parts is None or not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment \
                or parts.username or parts.password:
            raise TrustFileError(f"{where}.hosted_origins[{n}]: not an origin (scheme://host[:port], no path)")
        loopback_http = parts.scheme == "http" and _is_loopback(parts.hostname) and allow_http_loopback
        if parts.scheme != "https" and not loopback_http:
            raise TrustFileError(f"{where}.hosted_origins[{n}]: hosted assertions are fetched over https only "
                                 "(http on loopback only with KINFOLIO_HOSTED_ALLOW_HTTP_LOOPBACK, for tests)")
        out.append(origin_of(origin))
    return tuple(out)


@dataclass(frozen=True)
class TrustedIssuers:
    issuers: dict[str, TrustedIssuer]

    @classmethod
    def empty(cls) -> TrustedIssuers:
        return cls({})

    @classmethod
    def parse(cls, document: Any, source: str = "trusted issuers", *,
              allow_http_loopback: bool = False) -> TrustedIssuers:
        raw = document.get("issuers") if isinstance(document, dict) else None
        if isinstance(raw, dict):  # a mapping issuer id -> entry is accepted too
            raw = [{"id": k, **(v or {})} for k, v in raw.items()]
        if not isinstance(raw, list):
            raise TrustFileError(f"{source}: expected an 'issuers' list")
        issuers: dict[str, TrustedIssuer] = {}
        for n, entry in enumerate(raw):
            where = f"{source}: issuers[{n}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
                raise TrustFileError(f"{where}: every issuer needs an id")
            issuer_id = entry["id"]
            if issuer_id in issuers:
                raise TrustFileError(f"{where}: issuer {issuer_id} is listed twice")
            keys, urls = _keys_of(issuer_id, entry, where), _key_urls(entry, where)
            hosted = _hosted_origins(entry, where, allow_http_loopback)
            if not keys and not urls and not hosted:
                raise TrustFileError(f"{where}: {issuer_id} has no keys, did_keys, key_urls or hosted_origins")
            issuers[issuer_id] = TrustedIssuer(issuer_id, entry.get("name"), tuple(keys), urls, hosted)
        seen: dict[str, str] = {}
        for issuer in issuers.values():
            for key in issuer.keys:
                if seen.setdefault(key.id, issuer.id) != issuer.id:
                    raise TrustFileError(f"{source}: key {key.id} is listed for two issuers")
        return cls(issuers)

    @classmethod
    def load(cls, path: Path | None, *, allow_http_loopback: bool = False) -> TrustedIssuers:
        if path is None:
            return cls.empty()
        try:
            text = path.read_text()
        except OSError as exc:
            raise TrustFileError(f"KINFOLIO_TRUSTED_ISSUERS_FILE {path}: {exc.strerror or exc}") from exc
        try:
            document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise TrustFileError(f"KINFOLIO_TRUSTED_ISSUERS_FILE {path}: not JSON/YAML ({exc})") from exc
        return cls.parse(document, f"KINFOLIO_TRUSTED_ISSUERS_FILE {path}", allow_http_loopback=allow_http_loopback)

    def key(self, vm_id: str) -> ResolvedKey | None:
        for issuer in self.issuers.values():
            for key in issuer.keys:
                if key.id == vm_id:
                    return key
        return None

    def fetch_rule(self, vm_id: str, issuer_id: str | None) -> TrustedIssuer | None:
        """The credential's issuer, when the operator allowed fetching this key URL for it."""
        issuer = self.issuers.get(issuer_id or "")
        if issuer is None or not vm_id.startswith(("https://", "http://")):
            return None
        return issuer if issuer.allows_fetch(vm_id.split("#", 1)[0]) else None

    def hosting(self, url: str) -> list[TrustedIssuer]:
        """The issuers whose hosted assertions may be fetched from ``url``'s origin."""
        origin = origin_of(url)
        return [issuer for issuer in self.issuers.values() if origin in issuer.hosted_origins]

    def why_not(self, vm_id: str, issuer_id: str | None) -> str:
        if issuer_id is None or issuer_id not in self.issuers:
            return (f"cannot resolve {vm_id!r} offline: issuer {issuer_id or '(none)'} is not a trusted issuer "
                    "(only did:key, this hub's keys, explicitly trusted keys and the issuers of "
                    "KINFOLIO_TRUSTED_ISSUERS_FILE)")
        issuer = self.issuers[issuer_id]
        extra = " and it is not under its key_urls" if issuer.key_urls else ""
        return f"{vm_id!r} is not among the keys trusted for issuer {issuer_id}{extra}"


def key_from_document(document: Any, vm_id: str) -> ResolvedKey:
    """The key ``vm_id`` from what its URL served: a JWK, a JWKS, a Multikey or a controller document."""
    if isinstance(document, dict) and "kty" in document:
        kid = document.get("kid")
        if kid not in (None, vm_id):
            raise KeyResolutionError(f"{vm_id}: the served JWK has kid {kid!r}")
        return ResolvedKey(vm_id, vm_id.split("#", 1)[0], jwk=document)
    for key in trusted_keys_from(document):
        if key.id == vm_id:
            return key
    raise KeyResolutionError(f"{vm_id}: the document served at its URL does not contain it")


async def http_fetch(url: str) -> Any:
    """GET a key document: no redirects, a short timeout, a size cap. Only called for URLs the
    operator allowed (``TrustedIssuers.fetch_rule``)."""
    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False) as client, \
            client.stream("GET", url, headers={"Accept": "application/jwk+json, application/json"}) as response:
        if response.status_code != 200:
            raise KeyResolutionError(f"fetching {url}: HTTP {response.status_code}")
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_KEY_DOCUMENT_BYTES:
                raise KeyResolutionError(f"fetching {url}: larger than {MAX_KEY_DOCUMENT_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise KeyResolutionError(f"fetching {url}: not JSON") from exc
