"""The hub's credential issuer: its key ring (Ed25519 + RSA), identifiers, and key encodings.

The keys are separate from the access-token key (``hub/oauth/keys.py``): tokens live minutes,
credentials live years, and the two rotate on different schedules.

- **Ed25519** signs Data Integrity proofs (``eddsa-rdfc-2022``). From
  ``KINFOLIO_CREDENTIAL_KEY_PEM`` / ``KINFOLIO_CREDENTIAL_KEY_FILE``.
- **RSA (2048 bits or more)** signs VC-JWT with ``RS256``: Open Badges 3.0 §8.2.4.1 "Create the
  JOSE Header": "The signing algorithm MUST be "RS256" as a minimum as defined in [RFC7518]"
  (1EdTech Security Framework 1.1 §6.1 "RSA Key"). From ``KINFOLIO_CREDENTIAL_RSA_KEY_PEM`` /
  ``KINFOLIO_CREDENTIAL_RSA_KEY_FILE``. ``KINFOLIO_CREDENTIAL_JWT_ALG=Ed25519`` signs VC-JWT
  with the Ed25519 key instead.
- **Previous keys** (``KINFOLIO_CREDENTIAL_PREVIOUS_KEYS_FILE``, a JWKS of public keys, written by
  ``kinfolio credentials rotate-key``) no longer sign but stay published and verifiable: a
  credential lives for years after the key that signed it was replaced.

Both signing keys are required in production; in development each is a 0600 PEM file under the
data directory, generated on first use.

Identifiers (all under ``KINFOLIO_ISSUER``):
- issuer profile:       ``{ISSUER}/credentials/issuer`` (served: Profile + controller document)
- Ed25519 method:       ``{ISSUER}/credentials/issuer#{publicKeyMultibase}`` (a Multikey)
- RSA method:           ``{ISSUER}/credentials/issuer#{RFC 7638 JWK thumbprint}`` (a JsonWebKey)
- each method id is also the VC-JWT ``kid``, and ``{ISSUER}/credentials/jwks.json`` publishes
  every key (current and previous) as a JWK under it.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import base58
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc.jwk import OKPKey, RSAKey

from hub.config import Settings
from hub.keyfiles import read_or_create

# Multikey (Controlled Identifiers 1.0 §2.2.2): multibase base58-btc ('z') of the multicodec
# header ed25519-pub (0xed 0x01) / ed25519-priv (0x80 0x26) followed by the raw key bytes.
ED25519_PUB_HEADER = b"\xed\x01"
ED25519_PRIV_HEADER = b"\x80\x26"


class KeyFormatError(ValueError):
    pass


def multibase_encode(data: bytes) -> str:
    return "z" + base58.b58encode(data).decode()


def multibase_decode(value: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("z"):
        raise KeyFormatError("only multibase base58-btc ('z…') values are supported")
    try:
        return base58.b58decode(value[1:])
    except ValueError as exc:
        raise KeyFormatError(f"not base58-btc: {exc}") from exc


def public_key_multibase(key: Ed25519PublicKey) -> str:
    return multibase_encode(ED25519_PUB_HEADER + key.public_bytes_raw())


def public_key_from_multibase(value: str) -> Ed25519PublicKey:
    raw = multibase_decode(value)
    if len(raw) != 34 or raw[:2] != ED25519_PUB_HEADER:
        raise KeyFormatError("publicKeyMultibase is not an Ed25519 Multikey")
    return Ed25519PublicKey.from_public_bytes(raw[2:])


def private_key_from_multibase(value: str) -> Ed25519PrivateKey:
    raw = multibase_decode(value)
    # 32-byte seed, or (as @digitalbazaar/ed25519-multikey writes it) seed + public key.
    if raw[:2] == ED25519_PRIV_HEADER and len(raw) in (34, 66):
        key = Ed25519PrivateKey.from_private_bytes(raw[2:34])
        if len(raw) == 66 and key.public_key().public_bytes_raw() != raw[34:]:
            raise KeyFormatError("secretKeyMultibase: the public half does not match the seed")
        return key
    raise KeyFormatError("secretKeyMultibase is not an Ed25519 Multikey secret key")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: Ed25519PublicKey, kid: str) -> dict[str, str]:
    # RFC 8037 §2: OKP key type, curve Ed25519, x = the raw public key.
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url(key.public_bytes_raw()), "kid": kid, "use": "sig",
            "alg": "Ed25519"}


def generate_private_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used with these algorithms."
RSA_MIN_BITS = 2048


def generate_rsa_private_pem(bits: int = RSA_MIN_BITS) -> bytes:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def ed25519_from_jwk(jwk: dict[str, Any]) -> Ed25519PublicKey:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not isinstance(jwk.get("x"), str):
        raise KeyFormatError("not an Ed25519 OKP JWK")
    try:
        raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise KeyFormatError(f"bad Ed25519 JWK: {exc}") from exc


@dataclass(frozen=True)
class IssuerKey:
    """One signing key and the identifiers it is published under."""

    private: Ed25519PrivateKey
    issuer_id: str
    name: str
    alg = "Ed25519"  # RFC 9864: the fully-specified JOSE name of EdDSA over Ed25519

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def kid(self) -> str:
        return self.verification_method

    def jose_key(self) -> OKPKey:
        return OKPKey.import_key(self.private)

    @property
    def multibase(self) -> str:
        return public_key_multibase(self.public)

    @property
    def verification_method(self) -> str:
        return f"{self.issuer_id}#{self.multibase}"

    def jwk(self) -> dict[str, str]:
        return public_jwk(self.public, self.verification_method)

    def multikey(self) -> dict[str, str]:
        return {"id": self.verification_method, "type": "Multikey", "controller": self.issuer_id,
                "publicKeyMultibase": self.multibase}

    def profile(self) -> dict[str, object]:
        """The issuer Profile (OB 3.0 §B.1.18), also the controller document of its key."""
        return {
            "@context": ["https://www.w3.org/ns/credentials/v2",
                         "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"],
            "id": self.issuer_id,
            "type": ["Profile"],
            "name": self.name,
            "verificationMethod": [self.multikey()],
            "assertionMethod": [self.verification_method],
        }

    def issuer_summary(self) -> dict[str, object]:
        """The ``issuer`` object embedded in credentials."""
        return {"id": self.issuer_id, "type": ["Profile"], "name": self.name}


@dataclass(frozen=True)
class RsaIssuerKey:
    """The RSA key that signs VC-JWT (RS256), published as a JsonWebKey verification method."""

    private: rsa.RSAPrivateKey
    issuer_id: str
    alg = "RS256"

    @cached_property
    def kid(self) -> str:
        # RFC 7638 thumbprint as the fragment: stable, and distinct for every key.
        return f"{self.issuer_id}#{RSAKey.import_key(self.private.public_key()).thumbprint()}"

    @property
    def verification_method(self) -> str:
        return self.kid

    def jose_key(self) -> RSAKey:
        return RSAKey.import_key(self.private)

    def jwk(self) -> dict[str, Any]:
        public = RSAKey.import_key(self.private.public_key()).as_dict(private=False)
        return {**public, "kid": self.kid, "use": "sig", "alg": self.alg}


def verification_method_of(jwk: dict[str, Any], controller: str) -> dict[str, Any]:
    """A published JWK as a controller-document verification method (Controlled Identifiers 1.0
    §2.2.2 Multikey for Ed25519, §2.2.3 JsonWebKey otherwise)."""
    if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
        return {"id": jwk["kid"], "type": "Multikey", "controller": controller,
                "publicKeyMultibase": public_key_multibase(ed25519_from_jwk(jwk))}
    public = {k: v for k, v in jwk.items() if k in ("kty", "crv", "n", "e", "x", "y")}
    return {"id": jwk["kid"], "type": "JsonWebKey", "controller": controller, "publicKeyJwk": public}


JwtAlg = Literal["RS256", "Ed25519"]


@dataclass(frozen=True)
class CredentialKeys:
    """The issuer's key ring: the Ed25519 key (Data Integrity), the RSA key (VC-JWT RS256), and
    previous keys that no longer sign but stay published so old credentials keep verifying."""

    ed25519: IssuerKey
    rsa: RsaIssuerKey
    jwt_alg: JwtAlg = "RS256"
    previous: tuple[dict[str, Any], ...] = field(default=())  # public JWKs, kid = method id

    @property
    def issuer_id(self) -> str:
        return self.ed25519.issuer_id

    @property
    def jwt_signer(self) -> IssuerKey | RsaIssuerKey:
        return self.rsa if self.jwt_alg == "RS256" else self.ed25519

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        current = [self.ed25519.jwk(), self.rsa.jwk()]
        kids = {k["kid"] for k in current}
        return {"keys": current + [k for k in self.previous if k["kid"] not in kids]}

    def profile(self) -> dict[str, Any]:
        """The issuer Profile and controller document of every key (the Ed25519 key first)."""
        methods = [self.ed25519.multikey()] + [verification_method_of(k, self.issuer_id) for k in self.jwks()["keys"][1:]]
        return {**self.ed25519.profile(), "verificationMethod": methods,
                "assertionMethod": [m["id"] for m in methods]}

    def public_keys(self) -> dict[str, dict[str, Any]]:
        """Every published key by its verification method id (= VC-JWT kid); read-only."""
        return self._public_keys

    @cached_property
    def _public_keys(self) -> dict[str, dict[str, Any]]:
        # Built once per key ring: the verifier looks keys up for every credential it checks
        # (each one embedded in a CLR too), and building the JWKs re-exports every key.
        return {k["kid"]: k for k in self.jwks()["keys"]}


def read_previous_keys(path: Path | None, issuer_id: str) -> tuple[dict[str, Any], ...]:
    """Previous keys: a JWKS of public keys, each ``kid`` a method of this issuer."""
    if path is None or not path.exists():
        return ()
    try:
        document = json.loads(path.read_text())
    except ValueError as exc:
        raise KeyFormatError(f"{path}: not JSON ({exc})") from exc
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise KeyFormatError(f"{path}: expected a JWKS ({{\"keys\": [...]}})")
    out = []
    for jwk in keys:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or not jwk["kid"].startswith(issuer_id + "#"):
            raise KeyFormatError(f"{path}: every key needs a kid under {issuer_id}#")
        if any(p in jwk for p in ("d", "p", "q", "dp", "dq", "qi")):
            raise KeyFormatError(f"{path}: {jwk['kid']} holds private key material; keep only the public half")
        out.append(jwk)
    return tuple(out)


def issuer_id_for(settings: Settings) -> str:
    return f"{settings.issuer.rstrip('/')}/credentials/issuer"


def _private_key(pem: str | None, file: Path | None, resolved_file: Path, settings: Settings,
                 generate: Any) -> Any:
    """A PEM setting, else the key file (required in production), else one generated on first use."""
    source = "the PEM setting" if pem else str(resolved_file)
    try:
        if pem:
            data = pem.encode()
        elif file or settings.environment == "production":
            data = resolved_file.read_bytes()
        else:
            data = read_or_create(resolved_file, generate)
        return serialization.load_pem_private_key(data, password=None)
    except (OSError, ValueError, TypeError) as exc:  # missing file, not PEM, encrypted: a configuration error
        raise KeyFormatError(f"credential signing key from {source}: {exc}") from exc


def load_issuer_key(settings: Settings) -> IssuerKey:
    key = _private_key(settings.credential_key_pem, settings.credential_key_file,
                       settings.resolved_credential_key_file, settings, generate_private_pem)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFormatError("the credential signing key must be an Ed25519 private key (PKCS#8 PEM)")
    return IssuerKey(private=key, issuer_id=issuer_id_for(settings), name=settings.credential_issuer_name)


def load_rsa_key(settings: Settings) -> RsaIssuerKey:
    key = _private_key(settings.credential_rsa_key_pem, settings.credential_rsa_key_file,
                       settings.resolved_credential_rsa_key_file, settings, generate_rsa_private_pem)
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < RSA_MIN_BITS:
        raise KeyFormatError(f"the VC-JWT signing key must be an RSA private key of at least {RSA_MIN_BITS} bits "
                             "(PKCS#8 PEM)")
    return RsaIssuerKey(private=key, issuer_id=issuer_id_for(settings))


def load_credential_keys(settings: Settings) -> CredentialKeys:
    ed = load_issuer_key(settings)
    return CredentialKeys(ed25519=ed, rsa=load_rsa_key(settings), jwt_alg=settings.credential_jwt_alg,
                          previous=read_previous_keys(settings.resolved_credential_previous_keys_file, ed.issuer_id))


def rotate_credential_key(settings: Settings, which: Literal["rsa", "ed25519"]) -> tuple[str, str]:
    """Replace a file-held signing key: the old key's public JWK joins the previous-keys file
    (still published, still verifiable), a new key is written to the key file. Returns
    (old kid, new kid). Keys given as PEM settings are rotated by the operator instead: set the
    new PEM and add the old public key to ``KINFOLIO_CREDENTIAL_PREVIOUS_KEYS_FILE``."""
    if (settings.credential_rsa_key_pem if which == "rsa" else settings.credential_key_pem):
        raise KeyFormatError(f"the {which} key comes from a PEM setting: set the new PEM yourself and add the old "
                             "public key to KINFOLIO_CREDENTIAL_PREVIOUS_KEYS_FILE")
    keys = load_credential_keys(settings)
    old = keys.rsa if which == "rsa" else keys.ed25519
    previous_file = settings.resolved_credential_previous_keys_file
    previous = [k for k in keys.previous if k["kid"] != old.kid] + [old.jwk()]
    _write_private(previous_file, (json.dumps({"keys": previous}, indent=2) + "\n").encode())
    key_file = settings.resolved_credential_rsa_key_file if which == "rsa" else settings.resolved_credential_key_file
    _write_private(key_file, generate_rsa_private_pem() if which == "rsa" else generate_private_pem())
    fresh = load_credential_keys(settings)
    return old.kid, (fresh.rsa if which == "rsa" else fresh.ed25519).kid


def _write_private(path: Path, data: bytes) -> None:
    """Write atomically (a 0600 temporary file renamed over ``path``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
