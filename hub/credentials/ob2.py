"""Verifying Open Badges 2.0 assertions: signed (a JWS) and hosted (fetched from their ``id``).

OB 2.0 (IMS Final, 2018) §"Verification": a *signed* assertion is a JWS by the key named in
``verification.creator`` (keys resolved like every other key, ``hub.credentials.verify.Resolver``).
A *hosted* assertion is verified by fetching its ``id`` (§"HostedBadge Verification"):

- the submitted assertion only says where to look; the document served at its ``id`` is
  authoritative (it must be the same assertion: ``id``, ``recipient``, ``badge``, ``issuedOn``);
- its ``badge`` (BadgeClass) and that badge's ``issuer`` (Profile) are embedded or fetched by URL;
- the issuer Profile's ``verification`` (§VerificationObject: ``startsWith``, ``allowedOrigins``)
  scopes where its assertions may be hosted; without one, the assertion and the BadgeClass must be
  on the origin of the issuer Profile ``id``;
- ``410 Gone`` or ``revoked: true`` means revoked (§"Revoking Hosted Assertions"); an ``expires``
  in the past means expired (§Assertion).

The hub fetches only from origins the operator allowed: a trusted issuer's ``hosted_origins``
(``KINFOLIO_TRUSTED_ISSUERS_FILE``, ``hub.credentials.trust``), and the badge's issuer must be the
issuer that lists the assertion's origin. Fetches: GET, JSON only, a timeout, a size cap, redirects
followed only within the same origin.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from hub.credentials import vcjwt
from hub.credentials.trust import TrustedIssuer, origin_of
from hub.credentials.verify import Check, KeyResolutionError, Resolver, VerificationResult, check_issuer_key, parse_time

OB2_CONTEXT = "https://w3id.org/openbadges/v2"
SIGNED_TYPES = ("signed", "SignedBadge")
HOSTED_TYPES = ("hosted", "HostedBadge")
MAX_HOSTED_DOCUMENT_BYTES = 500_000
HOSTED_TIMEOUT_SECONDS = 5.0
MAX_SAME_ORIGIN_REDIRECTS = 3
JSON_TYPES = ("application/json", "application/ld+json")
NOT_ALLOWED = "not allowed for fetching (KINFOLIO_TRUSTED_ISSUERS_FILE: no trusted issuer lists it under hosted_origins)"


class HostedFetchError(Exception):
    pass


@dataclass(frozen=True)
class Fetched:
    url: str  # where the document was finally served (same origin as asked)
    status: int  # 200, or 410 (revoked)
    document: Any  # the parsed JSON; None for a 410 without a JSON body


HostedFetcher = Callable[[str], Awaitable[Fetched]]


def _types(value: Any) -> list[str]:
    found = value.get("type") if isinstance(value, dict) else None
    return [found] if isinstance(found, str) else [t for t in found if isinstance(t, str)] if isinstance(found, list) else []


def _strings(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def is_ob2(doc: dict[str, Any]) -> bool:
    context = doc.get("@context")
    contexts = context if isinstance(context, list) else [context]
    return OB2_CONTEXT in contexts or "Assertion" in _types(doc)


def assertion_of(data: dict[str, Any] | str) -> dict[str, Any] | None:
    """The OB 2.0 assertion ``data`` is (JSON, or the payload of a JWS), else None."""
    if isinstance(data, str):
        try:
            _, payload = vcjwt.unverified_parts(data)
        except vcjwt.JwtError:
            return None
        return payload if is_ob2(payload) else None
    return data if is_ob2(data) else None


def issuer_of(doc: dict[str, Any]) -> str | None:
    badge = doc.get("badge")
    issuer = badge.get("issuer") if isinstance(badge, dict) else None
    if isinstance(issuer, str):
        return issuer
    return issuer["id"] if isinstance(issuer, dict) and isinstance(issuer.get("id"), str) else None


def _verification_types(doc: dict[str, Any]) -> list[str]:
    verification = doc.get("verification", doc.get("verify"))
    return _types(verification) if isinstance(verification, dict) else []


def validity(doc: dict[str, Any], now: datetime) -> Check:
    # OB 2.0 §Assertion: "expires ... After this time, the badge should be considered expired."
    expires, issued = parse_time(doc.get("expires")), parse_time(doc.get("issuedOn"))
    if doc.get("expires") is not None and expires is None:
        return Check("validity period", False, f"expires {doc.get('expires')!r} is not a date-time with a time zone")
    if expires is not None and now >= expires:
        return Check("validity period", False, f"expired at {doc.get('expires')}")
    if issued is not None and now < issued:
        return Check("validity period", False, f"issued in the future ({doc.get('issuedOn')})")
    return Check("validity period", True, f"issued {doc.get('issuedOn')}"
                 + (f", expires {doc.get('expires')}" if expires is not None else ""))


async def verify_assertion(token: str | None, doc: dict[str, Any], resolver: Resolver, now: datetime) -> VerificationResult:
    """Verify an OB 2.0 assertion, signed (``token`` is its JWS) or hosted."""
    kinds = _verification_types(doc)
    if any(k in HOSTED_TYPES for k in kinds):
        return await verify_hosted(doc, resolver, now)
    if token is None or not any(k in SIGNED_TYPES for k in kinds):
        result = VerificationResult("ob2", None, compact_jws=token)
        result.checks.append(Check("proof", False, "an OB 2.0 assertion is verified either as hosted "
                                   "(verification.type HostedBadge, fetched from its id) or as signed "
                                   "(a compact JWS with verification.type SignedBadge)"))
        return result
    return _verify_signed(token, doc, resolver, now)


def _verify_signed(token: str, doc: dict[str, Any], resolver: Resolver, now: datetime) -> VerificationResult:
    """OB 2.0 §SignedBadge Verification: a JWS by the key named in ``verification.creator``."""
    result = VerificationResult("ob2", None, compact_jws=token)
    verification = doc.get("verification") if isinstance(doc.get("verification"), dict) else {}
    creator = verification.get("creator")
    if not isinstance(creator, str):
        result.checks.append(Check("issuer key", False, "verification.creator names no key"))
        return result
    issuer = issuer_of(doc)
    try:
        key = resolver.key(creator, issuer)
    except KeyResolutionError as exc:
        result.checks.append(Check("issuer key", False, str(exc)))
        return result
    # OB 2.0 §SignedBadge: the creator key must be the issuer's (its CryptographicKey owner is
    # the issuer Profile); a did:key anyone can mint controls only itself.
    check_issuer_key(key, issuer, result.checks)
    if not result.checks[-1].passed:
        return result
    try:
        vcjwt.verify_signature(token, key.joserfc_key())
    except vcjwt.JwtError as exc:
        result.checks.append(Check("proof", False, str(exc)))
        return result
    result.checks.append(Check("proof", True, f"OB 2.0 JWS by {creator}"))
    result.credential, result.issuer_id = doc, issuer
    result.checks.append(validity(doc, now))
    if doc.get("revoked") is True:
        result.checks.append(Check("status", False, "the assertion says it is revoked"))
    return result


# -- hosted ----------------------------------------------------------------------------------------


def _is_http_url(value: Any) -> bool:
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
        return parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed IPv6 literal
        return False


def _id_of(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else value


async def verify_hosted(submitted: dict[str, Any], resolver: Resolver, now: datetime) -> VerificationResult:
    result = VerificationResult("ob2", None)
    checks = result.checks
    url = submitted.get("id")
    if not _is_http_url(url):
        # OB 2.0 §HostedBadge: "Hosted badge Assertions that have an HTTP(s) id ..."
        checks.append(Check("proof", False, "a hosted OB 2.0 assertion's id must be the HTTP(S) URL it is hosted at"))
        return result
    origin = origin_of(url)
    hosts = resolver.issuers.hosting(url) if resolver.issuers is not None else []
    if not hosts or resolver.hosted is None:
        checks.append(Check("proof", False, f"hosted assertion at {url}: origin {origin} {NOT_ALLOWED}"))
        return result
    allowed = {o for issuer in hosts for o in issuer.hosted_origins}
    try:
        fetched = await resolver.hosted(url)
    except HostedFetchError as exc:
        checks.append(Check("proof", False, f"hosted assertion at {url}: {exc}"))
        return result
    served = fetched.document if isinstance(fetched.document, dict) else {}
    reason = f" ({served['revocationReason']})" if isinstance(served.get("revocationReason"), str) else ""
    # OB 2.0 §Revoking Hosted Assertions: "If either the 410 Gone status or a response body
    # declaring revoked true is returned, the Assertion should be treated as revoked and thus invalid."
    if fetched.status == 410 or served.get("revoked") is True:
        why = "answered 410 Gone" if fetched.status == 410 else "is served with revoked: true"
        checks.append(Check("status", False, f"revoked: the hosted assertion at {url} {why}{reason}"))
        return result
    if not isinstance(fetched.document, dict) or "Assertion" not in _types(served):
        checks.append(Check("proof", False, f"hosted assertion at {url}: the served document is not an Assertion"))
        return result
    checks.append(Check("proof", True, f"OB 2.0 hosted: fetched {url} (origin allowed for "
                                       f"{', '.join(i.id for i in hosts)})"))
    # OB 2.0 §HostedBadge Verification: "the input data should only be trusted to identify the URI
    # of the hosted verification file ... the retrieved data should be used as the Assertion value."
    differs = [f for f in ("id", "recipient", "badge", "issuedOn")
               if (_id_of(submitted.get(f)) if f == "badge" else submitted.get(f))
               != (_id_of(served.get(f)) if f == "badge" else served.get(f))]
    if differs:
        checks.append(Check("hosted assertion", False, f"the assertion served at {url} differs from the one "
                                                       f"submitted in {', '.join(differs)}"))
        return result
    checks.append(Check("hosted assertion", True, "the served assertion matches the submitted one "
                                                  "(id, recipient, badge, issuedOn)"))
    badge = await _resolve(served.get("badge"), "BadgeClass", allowed, resolver, checks)
    profile = await _resolve(badge.get("issuer"), "Profile", allowed, resolver, checks) if badge else None
    if badge is None or profile is None:
        return result
    issuer_id = profile.get("id")
    checks.append(_issuer_trust(issuer_id, origin, hosts))
    checks.append(_scope(url, badge, profile))
    checks.append(validity(served, now))
    # Held with its BadgeClass and Profile embedded (an equivalent JSON-LD form, OB 2.0 §Open
    # Badges in Linked Data), so the badge can be shown without fetching again.
    result.credential = {**served, "badge": {**badge, "issuer": profile}}
    result.issuer_id = issuer_id if isinstance(issuer_id, str) else None
    return result


async def _resolve(value: Any, kind: str, allowed: set[str], resolver: Resolver, checks: list[Check]) -> dict[str, Any] | None:
    """An embedded ``kind`` document, or the one fetched from its URL on an allowed origin."""
    name = "badge class" if kind == "BadgeClass" else "issuer profile"
    if isinstance(value, dict):
        if not isinstance(value.get("id"), str):
            checks.append(Check(name, False, f"the embedded {kind} has no id"))
            return None
        checks.append(Check(name, True, f"{value['id']} (embedded)"))
        return value
    if not _is_http_url(value):
        checks.append(Check(name, False, f"the {kind} is neither embedded nor an HTTP(S) URL"))
        return None
    if origin_of(value) not in allowed:
        checks.append(Check(name, False, f"the {kind} at {value}: origin {origin_of(value)} {NOT_ALLOWED}"))
        return None
    assert resolver.hosted is not None
    try:
        fetched = await resolver.hosted(value)
    except HostedFetchError as exc:
        checks.append(Check(name, False, f"the {kind} at {value}: {exc}"))
        return None
    document = fetched.document
    if fetched.status != 200 or not isinstance(document, dict):
        checks.append(Check(name, False, f"the {kind} at {value}: answered HTTP {fetched.status}"))
        return None
    if document.get("id") != value:
        checks.append(Check(name, False, f"the {kind} served at {value} has id {document.get('id')!r}"))
        return None
    checks.append(Check(name, True, f"{value} (fetched)"))
    return document


def _issuer_trust(issuer_id: Any, origin: str, hosts: list[TrustedIssuer]) -> Check:
    if any(issuer.id == issuer_id for issuer in hosts):
        return Check("issuer trust", True, f"{issuer_id} hosts its assertions at {origin} (trusted issuers file)")
    return Check("issuer trust", False, f"the badge's issuer {issuer_id} is not the trusted issuer that lists {origin} "
                                        "under hosted_origins (KINFOLIO_TRUSTED_ISSUERS_FILE)")


def _scope(url: str, badge: dict[str, Any], profile: dict[str, Any]) -> Check:
    """OB 2.0 §HostedBadge Verification and §VerificationObject: the assertion id must be within the
    scope the issuer Profile declares (``startsWith``, ``allowedOrigins``); by default the assertion
    and BadgeClass are hosted on the origin of the issuer Profile ``id``."""
    rules = profile.get("verification") if isinstance(profile.get("verification"), dict) else {}
    if rules.get("verificationProperty") not in (None, "id"):
        return Check("hosted scope", False, f"verificationProperty {rules.get('verificationProperty')!r} "
                                            "is not supported (only id)")
    starts, origins = _strings(rules.get("startsWith")), [o.lower() for o in _strings(rules.get("allowedOrigins"))]
    parts = urlsplit(url)
    if starts or origins:
        if starts and not any(url.startswith(prefix) for prefix in starts):
            return Check("hosted scope", False, f"{url} does not start with the issuer's verification.startsWith "
                                                f"({', '.join(starts)})")
        # allowedOrigins holds host names (RFC 3986 §3.2.2); host:port is accepted too.
        if origins and (parts.hostname or "") not in origins and parts.netloc.lower() not in origins:
            return Check("hosted scope", False, f"{parts.hostname} is not among the issuer's "
                                                f"verification.allowedOrigins ({', '.join(origins)})")
        return Check("hosted scope", True, "within the issuer Profile's verification scope")
    home = origin_of(profile["id"]) if _is_http_url(profile.get("id")) else None
    badge_id = badge.get("id")
    if home is None or origin_of(url) != home or (_is_http_url(badge_id) and origin_of(badge_id) != home):
        return Check("hosted scope", False, f"the assertion and BadgeClass must be hosted on the origin of the issuer "
                                            f"Profile id {profile.get('id')} (it declares no verification scope)")
    return Check("hosted scope", True, f"on the issuer Profile's origin {home}")


async def http_fetch_hosted(url: str) -> Fetched:
    """GET a hosted OB 2.0 document. Only called for URLs on allowed origins; redirects are
    followed only within that origin (OB 2.0 §Data Validation allows an "eventual 200 OK")."""
    origin, current = origin_of(url), url
    try:
        async with httpx.AsyncClient(timeout=HOSTED_TIMEOUT_SECONDS, follow_redirects=False) as client:
            for _ in range(MAX_SAME_ORIGIN_REDIRECTS + 1):
                async with client.stream("GET", current, headers={"Accept": "application/ld+json, application/json"}) as response:
                    if response.is_redirect:
                        target = urljoin(current, response.headers.get("location", ""))
                        if origin_of(target) != origin:
                            raise HostedFetchError(f"redirected to {target}, another origin (not followed)")
                        current = target
                        continue
                    return await _read(response, current)
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # ValueError: a malformed Location
        raise HostedFetchError(f"fetching failed: {type(exc).__name__}: {exc}") from exc
    raise HostedFetchError(f"more than {MAX_SAME_ORIGIN_REDIRECTS} redirects")


async def _read(response: httpx.Response, url: str) -> Fetched:
    status = response.status_code
    if status not in (200, 410):
        raise HostedFetchError(f"answered HTTP {status}")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_HOSTED_DOCUMENT_BYTES:
        raise HostedFetchError(f"larger than {MAX_HOSTED_DOCUMENT_BYTES} bytes")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body.extend(chunk)
        if len(body) > MAX_HOSTED_DOCUMENT_BYTES:
            raise HostedFetchError(f"larger than {MAX_HOSTED_DOCUMENT_BYTES} bytes")
    media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    is_json = media in JSON_TYPES or media.endswith("+json")
    if not is_json and status == 200:
        # OB 2.0 §HostedBadge Verification: served as application/ld+json and/or application/json.
        raise HostedFetchError(f"served {media or 'no content type'}, not JSON")
    try:
        document = json.loads(body) if is_json else None
    except (ValueError, RecursionError):
        if status == 410:
            document = None
        else:
            raise HostedFetchError("the body is not valid JSON") from None
    return Fetched(url, status, document)
