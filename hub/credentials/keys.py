"""The hub's credential issuer: its Ed25519 key, identifiers, and key encodings.

The key is separate from the access-token key (``hub/oauth/keys.py``): tokens live minutes,
credentials live years, and the two rotate on different schedules. It comes from
``KINFOLIO_CREDENTIAL_KEY_PEM`` / ``KINFOLIO_CREDENTIAL_KEY_FILE`` (required in production) or,
in development, a 0600 PEM file under the data directory.

Identifiers (all under ``KINFOLIO_ISSUER``):
- issuer profile:       ``{ISSUER}/credentials/issuer`` (served: Profile + controller document)
- verification method:  ``{ISSUER}/credentials/issuer#{publicKeyMultibase}``; the same URI is the
  VC-JWT ``kid``, and ``{ISSUER}/credentials/jwks.json`` publishes the key as a JWK under it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import base58
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

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


@dataclass(frozen=True)
class IssuerKey:
    """One signing key and the identifiers it is published under."""

    private: Ed25519PrivateKey
    issuer_id: str
    name: str

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

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


def issuer_id_for(settings: Settings) -> str:
    return f"{settings.issuer.rstrip('/')}/credentials/issuer"


def load_issuer_key(settings: Settings) -> IssuerKey:
    if settings.credential_key_pem:
        pem = settings.credential_key_pem.encode()
    elif settings.credential_key_file or settings.environment == "production":
        pem = settings.resolved_credential_key_file.read_bytes()
    else:
        pem = read_or_create(settings.resolved_credential_key_file, generate_private_pem)
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFormatError("the credential signing key must be an Ed25519 private key (PKCS#8 PEM)")
    return IssuerKey(private=key, issuer_id=issuer_id_for(settings), name=settings.credential_issuer_name)
