"""Verifying a credential: proof, issuer key, validity period, status (and embedded credentials).

``verify_credential`` never raises for bad input: every problem becomes a failed ``Check`` with
the reason, so the CLI and the API can say what was checked and why it failed.

Keys are resolved offline: ``did:key`` identifiers (self-certifying), the hub's own keys
(current and previous), keys the caller explicitly trusts (Multikey / controller documents /
JWKS, e.g. ``kinfolio credentials verify --trust-key FILE``) and the keys of the operator's
trusted issuers (``hub.credentials.trust``). The one exception: a key URL the operator allowed
for the credential's issuer (``key_urls``) is fetched before verifying (``Resolver.prefetch``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from joserfc.jwk import OKPKey

from hub.credentials import dataintegrity, statuslist, vcjwt
from hub.credentials.contexts import CanonicalizationError, ContextError, ContextLoader
from hub.credentials.keys import (
    CredentialKeys,
    IssuerKey,
    KeyFormatError,
    ed25519_from_jwk,
    public_key_from_multibase,
)

if TYPE_CHECKING:
    from hub.credentials.ob2 import HostedFetcher
    from hub.credentials.trust import KeyFetcher, TrustedIssuers

StatusListFetcher = Callable[[str], Awaitable[dict[str, Any] | None]]
MAX_DEPTH = 2  # a CLR embeds credentials; those embed nothing further we verify


class KeyResolutionError(Exception):
    pass


@dataclass(frozen=True)
class ResolvedKey:
    id: str
    controller: str
    public: Ed25519PublicKey | None = None
    jwk: dict[str, Any] | None = None

    def joserfc_key(self) -> Any:
        if self.jwk is not None:
            return vcjwt.import_jwk(self.jwk)
        assert self.public is not None
        return OKPKey.import_key(self.public)


def _from_multikey(doc: dict[str, Any], controller: str | None = None) -> ResolvedKey:
    vm_id = doc.get("id")
    if not isinstance(vm_id, str):
        raise KeyResolutionError("a trusted key needs an id")
    owner = doc.get("controller") or controller or vm_id.split("#", 1)[0]
    if isinstance(doc.get("publicKeyMultibase"), str):
        try:
            return ResolvedKey(vm_id, owner, public=public_key_from_multibase(doc["publicKeyMultibase"]))
        except (KeyFormatError, ValueError) as exc:
            raise KeyResolutionError(f"{vm_id}: {exc}") from exc
    if isinstance(doc.get("publicKeyJwk"), dict):
        return ResolvedKey(vm_id, owner, jwk=doc["publicKeyJwk"])
    raise KeyResolutionError(f"{vm_id}: no publicKeyMultibase or publicKeyJwk")


def trusted_keys_from(document: Any) -> list[ResolvedKey]:
    """Keys from a Multikey, a controller document (``verificationMethod``) or a JWKS."""
    if isinstance(document, list):
        return [k for d in document for k in trusted_keys_from(d)]
    if not isinstance(document, dict):
        raise KeyResolutionError("a trusted key file must hold a JSON object")
    if isinstance(document.get("keys"), list):  # JWKS: kid is the verification method id
        keys = []
        for jwk in document["keys"]:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
                raise KeyResolutionError("every JWKS key needs a kid")
            keys.append(ResolvedKey(jwk["kid"], jwk["kid"].split("#", 1)[0], jwk=jwk))
        return keys
    if isinstance(document.get("verificationMethod"), list):
        return [_from_multikey(vm, document.get("id")) for vm in document["verificationMethod"] if isinstance(vm, dict)]
    return [_from_multikey(document)]


def _own_key(jwk: dict[str, Any], controller: str) -> ResolvedKey:
    if jwk.get("kty") == "OKP":
        return ResolvedKey(jwk["kid"], controller, public=ed25519_from_jwk(jwk))
    return ResolvedKey(jwk["kid"], controller, jwk=jwk)


@dataclass
class Resolver:
    """Where keys and status lists come from. Only ``prefetch`` may touch the network, and only
    for key URLs the operator allowed for the credential's issuer (and ``hosted``, for the
    hosted OB 2.0 origins the operator allowed)."""

    own: IssuerKey | None = None
    trusted: Sequence[ResolvedKey] = ()
    status_lists: StatusListFetcher | None = None
    own_keys: CredentialKeys | None = None
    issuers: TrustedIssuers | None = None
    fetch: KeyFetcher | None = None
    hosted: HostedFetcher | None = None  # hosted OB 2.0 documents, only on allowed origins (ob2.py)
    _fetched: dict[str, ResolvedKey] = field(default_factory=dict)
    _fetch_errors: dict[str, str] = field(default_factory=dict)

    def _offline(self, vm_id: str) -> ResolvedKey | None:
        if self.own is not None and vm_id == self.own.verification_method:
            return ResolvedKey(vm_id, self.own.issuer_id, public=self.own.public)
        if self.own_keys is not None:
            jwk = self.own_keys.public_keys().get(vm_id)
            if jwk is not None:
                return _own_key(jwk, self.own_keys.issuer_id)
        for key in self.trusted:
            if key.id == vm_id:
                return key
        if self.issuers is not None:
            listed = self.issuers.key(vm_id)
            if listed is not None:
                return listed
        return self._fetched.get(vm_id)

    async def prefetch(self, vm_id: str, issuer: str | None) -> None:
        """Fetch ``vm_id`` when it is not known offline and the operator allowed its URL for
        ``issuer``; the key is then controlled by that issuer. Failures are kept as the reason."""
        if self.issuers is None or self.fetch is None or self._offline(vm_id) is not None:
            return
        rule = self.issuers.fetch_rule(vm_id, issuer)
        if rule is None:
            return
        from hub.credentials.trust import key_from_document

        url = vm_id.split("#", 1)[0]
        try:
            key = key_from_document(await self.fetch(url), vm_id)
            if key.jwk is not None:
                vcjwt.import_jwk(key.jwk)  # refuse unusable keys (e.g. short RSA) here, with the reason
        except (KeyResolutionError, vcjwt.JwtError) as exc:
            self._fetch_errors[vm_id] = str(exc)
        except Exception as exc:  # network errors of any kind: the key is simply not available
            self._fetch_errors[vm_id] = f"fetching {url} failed: {type(exc).__name__}: {exc}"
        else:
            self._fetched[vm_id] = replace(key, controller=rule.id)

    def key(self, vm_id: str, issuer: str | None = None) -> ResolvedKey:
        found = self._offline(vm_id)
        if found is not None:
            return found
        if vm_id in self._fetch_errors:
            raise KeyResolutionError(self._fetch_errors[vm_id])
        if vm_id.startswith("did:key:"):
            # did:key v0.7 §3.1.3: the method-specific id is the Multikey itself.
            did, _, fragment = vm_id.partition("#")
            multibase = did[len("did:key:"):]
            if fragment and fragment != multibase:
                raise KeyResolutionError(f"{vm_id}: fragment does not name the did:key's own key")
            try:
                return ResolvedKey(vm_id, did, public=public_key_from_multibase(multibase))
            except (KeyFormatError, ValueError) as exc:
                raise KeyResolutionError(f"{vm_id}: {exc}") from exc
        if self.issuers is not None:
            raise KeyResolutionError(self.issuers.why_not(vm_id, issuer))
        raise KeyResolutionError(
            f"cannot resolve {vm_id!r} offline (only did:key, this hub's keys and explicitly trusted keys)"
        )


@dataclass
class Check:
    name: str
    passed: bool | None  # None: not applicable / not checked
    detail: str = ""

    def line(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "--  "}[self.passed]
        return f"[{mark}] {self.name}: {self.detail}" if self.detail else f"[{mark}] {self.name}"


@dataclass
class VerificationResult:
    format: str  # ldp | jwt | ob2 | unknown
    credential: dict[str, Any] | None
    checks: list[Check] = field(default_factory=list)
    compact_jws: str | None = None
    issuer_id: str | None = None  # OB 2.0: the badge's issuer (the VC formats name it in the credential)

    @property
    def ok(self) -> bool:
        return self.credential is not None and all(c.passed is not False for c in self.checks) and any(
            c.passed for c in self.checks if c.name == "proof"
        )

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False]

    def as_dict(self) -> dict[str, Any]:
        return {"verified": self.ok, "format": self.format,
                "checks": [{"check": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks]}


def issuer_id_of(credential: dict[str, Any]) -> str | None:
    issuer = credential.get("issuer")
    if isinstance(issuer, str):
        return issuer
    if isinstance(issuer, dict) and isinstance(issuer.get("id"), str):
        return issuer["id"]
    return None


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def load_input(raw: str | bytes) -> dict[str, Any] | str:
    """A JSON credential or a compact JWS, from text; ``ValueError`` with a reason otherwise."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    stripped = text.strip()
    if vcjwt.looks_like_jws(stripped):
        return stripped
    try:
        value = json.loads(stripped)
    except ValueError as exc:
        raise ValueError(f"neither JSON nor a compact JWS: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError("a credential must be a JSON object")
    return value


async def verify_credential(
    data: dict[str, Any] | str, *, loader: ContextLoader, resolver: Resolver, now: datetime,
    check_status: bool = True, _depth: int = 0,
) -> VerificationResult:
    await _prefetch_keys(data, resolver)
    if isinstance(data, str):
        result = _verify_jwt(data, resolver)
    elif isinstance(data, dict):
        result = _verify_ldp(copy.deepcopy(data), loader, resolver)
    else:
        return VerificationResult("unknown", None, [Check("format", False, "not a JSON object or compact JWS")])
    credential = result.credential
    if credential is None:
        return result
    _check_validity(credential, now, result.checks)
    if check_status:
        await _check_status(credential, loader, resolver, now, result.checks)
    if _depth < MAX_DEPTH - 1:
        await _check_embedded(credential, loader, resolver, now, check_status, _depth, result.checks)
    return result


async def _prefetch_keys(data: Any, resolver: Resolver) -> None:
    """The keys this credential names, fetched first where the operator allowed it (the checks
    below are synchronous and never fetch)."""
    try:
        if isinstance(data, str):
            header, payload = vcjwt.unverified_parts(data)
            wanted, issuer = [header.get("kid")], issuer_id_of(payload)
        elif isinstance(data, dict):
            wanted, issuer = [p.get("verificationMethod") for p in dataintegrity.proofs_of(data)], issuer_id_of(data)
        else:
            return
    except (vcjwt.JwtError, dataintegrity.ProofError):
        return  # reported by the checks
    for vm_id in wanted:
        if isinstance(vm_id, str):
            await resolver.prefetch(vm_id, issuer)


def _types(credential: dict[str, Any]) -> list[str]:
    value = credential.get("type")
    return [value] if isinstance(value, str) else [t for t in value if isinstance(t, str)] if isinstance(value, list) else []


def check_issuer_key(key: ResolvedKey, issuer: str | None, checks: list[Check]) -> None:
    # OB 3.0 §8.3 / VC DI §4.2 step "verification method": the key must be the issuer's.
    if issuer is None:
        checks.append(Check("issuer key", False, "credential has no issuer id"))
    elif key.controller != issuer:
        checks.append(Check("issuer key", False, f"key {key.id} is controlled by {key.controller}, not the issuer {issuer}"))
    else:
        checks.append(Check("issuer key", True, f"{key.id} belongs to {issuer}"))


def _verify_ldp(document: dict[str, Any], loader: ContextLoader, resolver: Resolver) -> VerificationResult:
    result = VerificationResult("ldp", None)
    checks = result.checks
    if "@context" not in document or not _types(document):
        checks.append(Check("format", False, "not a JSON-LD credential (@context and type are required)"))
        return result
    checks.append(Check("format", True, "JSON-LD credential (" + ", ".join(_types(document)) + ")"))
    try:
        proofs = dataintegrity.proofs_of(document)
    except dataintegrity.ProofError as exc:
        checks.append(Check("proof", False, str(exc)))
        return result
    if not proofs:
        checks.append(Check("proof", False, "the credential has no proof"))
        return result
    result.credential = document
    issuer = issuer_id_of(document)
    for proof in proofs:
        if proof.get("type") != dataintegrity.PROOF_TYPE or proof.get("cryptosuite") != dataintegrity.CRYPTOSUITE:
            checks.append(Check("proof", False, f"unsupported proof {proof.get('type')}/{proof.get('cryptosuite')} "
                                                f"(supported: {dataintegrity.PROOF_TYPE}/{dataintegrity.CRYPTOSUITE})"))
            continue
        if proof.get("proofPurpose") != "assertionMethod":
            checks.append(Check("proof", False, f"proofPurpose is {proof.get('proofPurpose')!r}, not assertionMethod"))
            continue
        vm = proof.get("verificationMethod")
        if not isinstance(vm, str):
            checks.append(Check("proof", False, "proof has no verificationMethod"))
            continue
        try:
            key = resolver.key(vm, issuer)
        except KeyResolutionError as exc:
            checks.append(Check("issuer key", False, str(exc)))
            continue
        check_issuer_key(key, issuer, checks)
        if key.public is None:
            checks.append(Check("proof", False, f"{vm} is not an Ed25519 key"))
            continue
        try:
            dataintegrity.verify(document, proof, key.public, loader)
        except (dataintegrity.ProofError, ContextError, CanonicalizationError) as exc:
            checks.append(Check("proof", False, f"eddsa-rdfc-2022: {exc}"))
            continue
        checks.append(Check("proof", True, f"eddsa-rdfc-2022 by {vm}"))
    return result


def _verify_jwt(token: str, resolver: Resolver) -> VerificationResult:
    result = VerificationResult("jwt", None, compact_jws=token.strip())
    checks = result.checks
    try:
        header, payload = vcjwt.unverified_parts(token)
    except vcjwt.JwtError as exc:
        checks.append(Check("format", False, str(exc)))
        return result
    checks.append(Check("format", True, "VC-JWT (" + ", ".join(_types(payload)) + f"), alg {header.get('alg')}"))
    result.credential = payload
    kid = header.get("kid")
    if not isinstance(kid, str):
        checks.append(Check("issuer key", False, "JOSE header has no kid (an embedded jwk alone is not trusted)"))
        checks.append(Check("proof", False, "no key to verify the JWS with"))
        return result
    try:
        key = resolver.key(kid, issuer_id_of(payload))
    except KeyResolutionError as exc:
        checks.append(Check("issuer key", False, str(exc)))
        checks.append(Check("proof", False, "no key to verify the JWS with"))
        return result
    check_issuer_key(key, issuer_id_of(payload), checks)
    try:
        vcjwt.verify_signature(token, key.joserfc_key())
    except vcjwt.JwtError as exc:
        checks.append(Check("proof", False, str(exc)))
        return result
    problems = vcjwt.claim_mismatches(payload)
    checks.append(Check("proof", not problems, "; ".join(problems) if problems else f"JWS by {kid}"))
    return result


def _check_validity(credential: dict[str, Any], now: datetime, checks: list[Check]) -> None:
    # VC Data Model 2.0 §4.9 validFrom/validUntil (VC 1.1 issuanceDate/expirationDate).
    start_raw = credential.get("validFrom", credential.get("issuanceDate"))
    end_raw = credential.get("validUntil", credential.get("expirationDate"))
    start, end = parse_time(start_raw), parse_time(end_raw)
    if start_raw is not None and start is None:
        checks.append(Check("validity period", False, f"validFrom {start_raw!r} is not a date-time with offset"))
    elif end_raw is not None and end is None:
        checks.append(Check("validity period", False, f"validUntil {end_raw!r} is not a date-time with offset"))
    elif start is not None and now < start:
        checks.append(Check("validity period", False, f"not valid before {start_raw}"))
    elif end is not None and now >= end:
        checks.append(Check("validity period", False, f"expired at {end_raw}"))
    else:
        checks.append(Check("validity period", True,
                            f"from {start_raw or '(unbounded)'} until {end_raw or '(no end)'}"))


async def _check_status(credential: dict[str, Any], loader: ContextLoader, resolver: Resolver, now: datetime,
                        checks: list[Check]) -> None:
    raw = credential.get("credentialStatus")
    if raw is None:
        checks.append(Check("status", None, "no credentialStatus"))
        return
    entries = raw if isinstance(raw, list) else [raw]
    for entry in entries:
        checks.append(await _one_status(entry, loader, resolver, now))


async def _one_status(entry: Any, loader: ContextLoader, resolver: Resolver, now: datetime) -> Check:
    # Bitstring Status List v1.0 §3.2 Validate Algorithm.
    if not isinstance(entry, dict) or entry.get("type") != "BitstringStatusListEntry":
        kind = entry.get("type") if isinstance(entry, dict) else type(entry).__name__
        return Check("status", False, f"cannot check status of type {kind!r} (supported: BitstringStatusListEntry)")
    purpose, url = entry.get("statusPurpose"), entry.get("statusListCredential")
    try:
        index = int(entry.get("statusListIndex"))  # a string of digits (§2.1)
        size = int(entry.get("statusSize", 1))
    except (TypeError, ValueError):
        return Check("status", False, "statusListIndex/statusSize are not integers")
    if not isinstance(url, str):
        return Check("status", False, "no statusListCredential")
    list_credential = await resolver.status_lists(url) if resolver.status_lists else None
    if list_credential is None:
        return Check("status", False, f"status list {url} is not available offline")
    verified = await verify_credential(list_credential, loader=loader, resolver=resolver, now=now,
                                       check_status=False, _depth=MAX_DEPTH)
    if not verified.ok:
        reasons = "; ".join(f"{c.name}: {c.detail}" for c in verified.failures())
        return Check("status", False, f"status list credential {url} does not verify ({reasons})")
    subject = list_credential.get("credentialSubject")
    if not isinstance(subject, dict) or subject.get("statusPurpose") != purpose:
        return Check("status", False, f"status list purpose does not match the entry's {purpose!r}")
    try:
        value = statuslist.bit_at(statuslist.decode_bits(subject.get("encodedList")), index, size)
    except statuslist.StatusListError as exc:
        return Check("status", False, str(exc))
    if value and purpose in ("revocation", "suspension"):
        return Check("status", False, f"{'revoked' if purpose == 'revocation' else 'suspended'} "
                                      f"(bit {index} of {url} is set)")
    return Check("status", True, f"{purpose}: bit {index} of {url} is {value}")


async def _check_embedded(credential: dict[str, Any], loader: ContextLoader, resolver: Resolver, now: datetime,
                          check_status: bool, depth: int, checks: list[Check]) -> None:
    # CLR 2.0 §8.x: verifying a ClrCredential verifies each credential it contains.
    subject = credential.get("credentialSubject")
    embedded = subject.get("verifiableCredential") if isinstance(subject, dict) else None
    if embedded is None:
        return
    for n, item in enumerate(embedded if isinstance(embedded, list) else [embedded]):
        inner = await verify_credential(item, loader=loader, resolver=resolver, now=now, check_status=check_status,
                                        _depth=depth + 1)
        ident = inner.credential.get("id") if inner.credential else None
        name = f"embedded credential {n}" + (f" ({ident})" if ident else "")
        if inner.ok:
            checks.append(Check(name, True, "proof, issuer key, validity and status verified"))
        else:
            checks.append(Check(name, False, "; ".join(f"{c.name}: {c.detail}" for c in inner.failures())
                                or "no verifiable proof"))
