"""The access-token signing key (EC P-256, ES256).

ES256 because signing is ~15x cheaper than RS256-2048 at a similar verify cost, and every token
request signs. The key is generated with ``cryptography`` on first start in development and kept
as a 0600 PEM file; production supplies it (every replica must sign with the same key).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey, KeySet

from hub.config import Settings
from hub.keyfiles import read_or_create

ALGORITHM = "ES256"


@dataclass(frozen=True)
class SigningKeys:
    private: KeySet  # what the token generator signs with
    public: KeySet  # what the API verifies with and /.well-known/jwks.json publishes

    def public_jwks(self) -> dict:
        return self.public.as_dict(private=False)


def generate_private_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_signing_keys(settings: Settings) -> SigningKeys:
    if settings.signing_key_pem:
        pem = settings.signing_key_pem.encode()
    elif settings.environment == "production" or settings.signing_key_file:
        pem = settings.resolved_signing_key_file.read_bytes()
    else:
        pem = read_or_create(settings.resolved_signing_key_file, generate_private_pem)
    return keys_from_pem(pem)


def keys_from_pem(pem: bytes) -> SigningKeys:
    private = ECKey.import_key(pem, {"alg": ALGORITHM, "use": "sig"})
    private.ensure_kid()  # RFC 7638 thumbprint
    public = ECKey.import_key(private.as_dict(private=False))
    return SigningKeys(private=KeySet([private]), public=KeySet([public]))
