"""Field-level encryption of the sensitive sections: AES-256-GCM under envelope encryption.

Pure functions over bytes (no I/O); ``hub.records.keys`` stores and loads the keys.

- **Data keys.** Each learner has one random 256-bit data key (DEK). It is stored only wrapped:
  AES-256-GCM-encrypted under a key-encryption key (KEK) from settings, with the learner id as
  additional authenticated data, so a wrapped key copied onto another learner does not unwrap.
  Rotating the KEK re-wraps DEKs; no field ciphertext changes. Destroying a learner's DEK makes
  every field sealed under it unreadable for good (crypto-shredding).
- **Fields.** Every field of an entry in a sensitive section is sealed on its own under the
  learner's DEK. The AAD binds the ciphertext to (learner, section, provider, source id, field
  name) and to the set of field names stored with it: a ciphertext moved to another row, field or
  learner, or a field deleted from the row, fails authentication (NIST SP 800-38D §7.2 returns
  FAIL) instead of decrypting into the wrong place.
- **Nonces.** 96-bit nonces from the OS CSPRNG (SP 800-38D §8.2.2, RBG-based construction). §8.3
  caps a key at 2^32 random-nonce invocations; one learner's DEK seals a few fields per entry, many
  orders of magnitude below that.
- **Content hashes.** Sensitive entries are recognised on re-send by an HMAC-SHA-256 keyed with a
  key derived (HKDF, RFC 5869) from the DEK, never by a plain hash: a plain SHA-256 of a short,
  guessable record would let anyone with the table confirm a guess offline.

Nothing here is hand-rolled: AESGCM, HKDF and HMAC are ``cryptography``'s.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96 bits, the IV length SP 800-38D §5.2.1.1 recommends
_TOKEN_PREFIX = "v1:"


class UnreadableData(Exception):
    """Sealed data that cannot be opened: tampered, moved, or its key is gone. Never plaintext."""


def kek_id(kek: bytes) -> str:
    """A public name for a KEK (a truncated hash; it reveals nothing usable about a 256-bit key)."""
    return hashlib.sha256(b"kinfolio kek id v1\x00" + kek).hexdigest()[:16]


class KeyRing:
    """The current KEK (wraps new and re-wrapped DEKs) and previous ones (only unwrap)."""

    def __init__(self, current: bytes, previous: Sequence[bytes] = ()) -> None:
        for key in (current, *previous):
            if len(key) != KEY_BYTES:
                raise ValueError(f"a key-encryption key must be {KEY_BYTES} bytes (AES-256)")
        self.current_id = kek_id(current)
        self._keys = {kek_id(k): k for k in previous}
        self._keys[self.current_id] = current

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def wrap(self, learner_id: UUID, dek: bytes) -> tuple[bytes, str]:
        """Wrap ``dek`` under the current KEK; returns (nonce || ciphertext || tag, KEK id)."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self._keys[self.current_id]).encrypt(nonce, dek, _wrap_aad(learner_id)), self.current_id

    def unwrap(self, learner_id: UUID, wrapped: bytes, wrapped_by: str) -> bytes:
        kek = self._keys.get(wrapped_by)
        if kek is None:
            raise UnreadableData(f"the learner's data key is wrapped by KEK {wrapped_by}, which is not configured")
        try:
            return AESGCM(kek).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _wrap_aad(learner_id))
        except (InvalidTag, ValueError):
            raise UnreadableData("the learner's wrapped data key failed authentication") from None


def _wrap_aad(learner_id: UUID) -> bytes:
    return f"kinfolio dek v1|{learner_id}".encode()


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


@dataclass(frozen=True, slots=True)
class FieldContext:
    """Where a sealed field lives; all of it goes into the AAD."""

    learner_id: UUID
    section: str
    provider_id: UUID
    source_id: str

    def aad(self, field: str, fields: Iterable[str]) -> bytes:
        # A JSON array of strings is an unambiguous encoding (no two tuples serialise alike).
        return json.dumps(
            ["kinfolio field v1", str(self.learner_id), self.section, str(self.provider_id), self.source_id, field,
             sorted(fields)],
            separators=(",", ":"),
        ).encode()


class DataKey:
    """One learner's unwrapped DEK: seals and opens that learner's fields."""

    def __init__(self, learner_id: UUID, dek: bytes) -> None:
        self.learner_id = learner_id
        self._aead = AESGCM(dek)
        self._mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kinfolio content hash v1").derive(dek)

    def seal_fields(self, where: FieldContext, values: dict[str, object]) -> dict[str, str]:
        """Seal each value (as JSON) separately; returns field -> ``v1:`` + base64url(nonce || ct || tag)."""
        self._check(where)
        sealed = {}
        for field, value in values.items():
            nonce = os.urandom(NONCE_BYTES)
            plaintext = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
            blob = nonce + self._aead.encrypt(nonce, plaintext, where.aad(field, values))
            sealed[field] = _TOKEN_PREFIX + base64.urlsafe_b64encode(blob).decode().rstrip("=")
        return sealed

    def open_fields(self, where: FieldContext, sealed: dict[str, str]) -> dict[str, object]:
        self._check(where)
        opened = {}
        for field, token in sealed.items():
            try:
                if not isinstance(token, str) or not token.startswith(_TOKEN_PREFIX):
                    raise ValueError
                body = token[len(_TOKEN_PREFIX):]
                blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
                plaintext = self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], where.aad(field, sealed))
                opened[field] = json.loads(plaintext)
            except (InvalidTag, ValueError):
                raise UnreadableData(f"field {field!r} failed authentication (tampered, moved or foreign)") from None
        return opened

    def digest(self, canonical: bytes) -> str:
        mac = hmac.HMAC(self._mac_key, hashes.SHA256())
        mac.update(canonical)
        return mac.finalize().hex()

    def _check(self, where: FieldContext) -> None:
        if where.learner_id != self.learner_id:
            raise ValueError("a data key seals only its own learner's fields")
