"""VC-JWT: a credential as a compact JWS (Open Badges 3.0 §8.2 "JSON Web Token Proof Format").

§8.2.4.1 JOSE header: ``alg``, ``kid`` (a URI that dereferences to the public JWK), ``typ``.
§8.2.4.2 payload: the credential itself plus the registered claims ``iss`` (issuer.id),
``jti`` (id), ``nbf`` (validFrom), ``exp`` (validUntil) and ``sub`` (credentialSubject.id).
§8.2.4.1: "The signing algorithm MUST be "RS256" as a minimum": the hub signs with its RSA key
(``RS256``, 2048 bits or more) by default, or with its Ed25519 key (``alg`` ``Ed25519``, RFC 9864)
when ``KINFOLIO_CREDENTIAL_JWT_ALG=Ed25519``. Verification accepts ``RS256``, ``ES256``,
``Ed25519`` and ``EdDSA``; RSA keys under 2048 bits are refused (RFC 7518 §3.3).
"""

from __future__ import annotations

import base64
import json
import re
import warnings
from datetime import datetime
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

from hub.credentials.keys import RSA_MIN_BITS, IssuerKey, RsaIssuerKey

ACCEPTED_ALGS = ["RS256", "ES256", "Ed25519", "EdDSA"]


class JwtError(Exception):
    pass


# RFC 7515 §7.1: BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature). Checking the
# alphabet matters: JSON text with exactly two dots (URLs) must not be taken for a JWS.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def looks_like_jws(text: str) -> bool:
    return _COMPACT_JWS.fullmatch(text.strip()) is not None


def _epoch(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def _subject_id(credential: dict[str, Any]) -> str | None:
    subject = credential.get("credentialSubject")
    return subject.get("id") if isinstance(subject, dict) and isinstance(subject.get("id"), str) else None


def _issuer_id(credential: dict[str, Any]) -> str | None:
    issuer = credential.get("issuer")
    if isinstance(issuer, str):
        return issuer
    return issuer.get("id") if isinstance(issuer, dict) else None


def registered_claims(credential: dict[str, Any]) -> dict[str, Any]:
    claims: dict[str, Any] = {"iss": _issuer_id(credential), "jti": credential.get("id"),
                              "nbf": _epoch(credential.get("validFrom")), "exp": _epoch(credential.get("validUntil")),
                              "sub": _subject_id(credential)}
    return {k: v for k, v in claims.items() if v is not None}


def sign(credential: dict[str, Any], key: IssuerKey | RsaIssuerKey) -> str:
    """§8.2.4.1 JOSE header (``alg``, ``kid``, ``typ`` and nothing else) over the §8.2.4.2 payload."""
    payload = {k: v for k, v in credential.items() if k != "proof"} | registered_claims(credential)
    header = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
    return jws.serialize_compact(header, json.dumps(payload, separators=(",", ":")).encode(), key.jose_key(),
                                 algorithms=[key.alg])


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, payload) of a compact JWS, parsed but NOT verified."""
    try:
        obj = jws.extract_compact(token.strip().encode())
        payload = json.loads(obj.payload)
    except (JoseError, ValueError, TypeError) as exc:
        raise JwtError(f"not a compact JWS: {exc}") from exc
    if not isinstance(payload, dict):
        raise JwtError("the JWS payload is not a JSON object")
    return dict(obj.protected), payload


def import_jwk(jwk: dict[str, Any]) -> OKPKey | ECKey | RSAKey:
    kty = jwk.get("kty")
    cls = {"OKP": OKPKey, "EC": ECKey, "RSA": RSAKey}.get(kty)  # type: ignore[arg-type]
    if cls is None:
        raise JwtError(f"unsupported JWK key type {kty!r}")
    if kty == "RSA":
        bits = _rsa_bits(jwk.get("n"))
        if bits < RSA_MIN_BITS:
            raise JwtError(f"RSA key of {bits} bits refused (RS256 needs {RSA_MIN_BITS} or more, RFC 7518 §3.3)")
    try:
        return cls.import_key({k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi")})
    except (JoseError, ValueError, TypeError) as exc:
        raise JwtError(f"bad JWK: {exc}") from exc


def _rsa_bits(modulus: Any) -> int:
    if not isinstance(modulus, str):
        raise JwtError("bad JWK: an RSA key needs n")
    try:
        return int.from_bytes(base64.urlsafe_b64decode(modulus + "=" * (-len(modulus) % 4)), "big").bit_length()
    except ValueError as exc:
        raise JwtError(f"bad JWK: n is not base64url ({exc})") from exc


def verify_signature(token: str, key: OKPKey | ECKey | RSAKey) -> dict[str, Any]:
    header, _ = unverified_parts(token)
    if header.get("alg") not in ACCEPTED_ALGS:
        raise JwtError(f"JWS alg {header.get('alg')!r} is not accepted ({', '.join(ACCEPTED_ALGS)})")
    try:
        with warnings.catch_warnings():
            # joserfc warns that "EdDSA" is deprecated (RFC 9864); other issuers still use it.
            warnings.simplefilter("ignore")
            obj = jws.deserialize_compact(token.strip(), key, algorithms=ACCEPTED_ALGS)
    except (JoseError, ValueError) as exc:
        raise JwtError(f"JWS signature does not verify: {exc}") from exc
    return json.loads(obj.payload)


def claim_mismatches(payload: dict[str, Any]) -> list[str]:
    """§8.2.4.2: the registered claims must agree with the credential's own properties."""
    problems = []
    for claim, expected in registered_claims(payload).items():
        if claim in payload and payload[claim] != expected:
            problems.append(f"JWT claim {claim}={payload[claim]!r} disagrees with the credential ({expected!r})")
    if "iss" not in payload:
        problems.append("JWT has no iss claim")
    return problems
