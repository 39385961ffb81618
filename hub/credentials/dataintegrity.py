"""Data Integrity proofs with the ``eddsa-rdfc-2022`` cryptosuite (W3C VC DI EdDSA 1.0 §3.3).

Canonicalisation is pyld's RDFC-1.0 (``contexts.canonize``), signatures are ``cryptography``'s
Ed25519; this module only wires the steps the spec lists, in its order.
"""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hub.credentials.contexts import ContextLoader, canonize
from hub.credentials.keys import KeyFormatError, multibase_decode, multibase_encode

CRYPTOSUITE = "eddsa-rdfc-2022"
PROOF_TYPE = "DataIntegrityProof"


class ProofError(Exception):
    """The proof is malformed or does not verify; the message says which step failed."""


def _hash_data(document: dict[str, Any], proof_config: dict[str, Any], loader: ContextLoader) -> bytes:
    # §3.3.5 Hashing: SHA-256 of the canonical proof configuration, then of the canonical
    # document, concatenated in that order.
    canonical_config = canonize(proof_config, loader)
    canonical_document = canonize(document, loader)
    return hashlib.sha256(canonical_config.encode()).digest() + hashlib.sha256(canonical_document.encode()).digest()


def _proof_config(document: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    # §3.3.6 Proof Configuration: type/cryptosuite fixed, the document's @context copied in.
    config = {k: v for k, v in options.items() if k not in ("proofValue", "@context")}
    if config.get("type") != PROOF_TYPE or config.get("cryptosuite") != CRYPTOSUITE:
        raise ProofError(f"proof is not a {PROOF_TYPE} with cryptosuite {CRYPTOSUITE}")
    if "@context" in document:
        config["@context"] = document["@context"]
    return config


def sign(
    document: dict[str, Any], *, private_key: Ed25519PrivateKey, verification_method: str, loader: ContextLoader,
    created: datetime | None = None, proof_purpose: str = "assertionMethod",
) -> dict[str, Any]:
    """A copy of ``document`` with an ``eddsa-rdfc-2022`` proof added (§3.3.1 Create Proof)."""
    unsecured = {k: v for k, v in copy.deepcopy(document).items() if k != "proof"}
    when = (created or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    options = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "created": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "verificationMethod": verification_method,
        "proofPurpose": proof_purpose,
    }
    signature = private_key.sign(_hash_data(unsecured, _proof_config(unsecured, options), loader))
    return {**unsecured, "proof": {**options, "proofValue": multibase_encode(signature)}}


def proofs_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    proof = document.get("proof")
    if proof is None:
        return []
    proofs = proof if isinstance(proof, list) else [proof]
    if not all(isinstance(p, dict) for p in proofs):
        raise ProofError("proof must be an object or a list of objects")
    return proofs


def verify(document: dict[str, Any], proof: dict[str, Any], public_key: Ed25519PublicKey, loader: ContextLoader) -> None:
    """Raise ``ProofError`` unless ``proof`` on ``document`` verifies with ``public_key`` (§3.3.2)."""
    unsecured = {k: v for k, v in document.items() if k != "proof"}
    proof_value = proof.get("proofValue")
    if not isinstance(proof_value, str):
        raise ProofError("proof has no proofValue")
    # §3.3.2 step 3: the proof's own @context, when present, must match the document's.
    if "@context" in proof and proof["@context"] != unsecured.get("@context"):
        raise ProofError("proof @context differs from the document's @context")
    try:
        signature = multibase_decode(proof_value)
    except KeyFormatError as exc:
        raise ProofError(f"proofValue: {exc}") from exc
    if len(signature) != 64:
        raise ProofError("proofValue is not a 64-byte Ed25519 signature")
    hash_data = _hash_data(unsecured, _proof_config(unsecured, proof), loader)
    try:
        public_key.verify(signature, hash_data)
    except InvalidSignature as exc:
        raise ProofError("signature does not match the canonical document and proof configuration") from exc
