"""Access-token signing keys (EC P-256, ES256) and their rotation.

ES256 because signing is ~15x cheaper than RS256-2048 at a similar verify cost, and every token
request signs. The base key is generated with ``cryptography`` on first start in development and
kept as a 0600 PEM file; production supplies it (every replica must sign with the same key).

Rotation (``kinfolio keys rotate``) adds keys to a keyring file next to the data directory:
the newest key signs, every key not yet retired is published in the JWKS (RFC 7517 §5; verifiers
pick by ``kid``), and a replaced key is retired once the longest access token it may have
signed has expired. Running servers notice the keyring file changing and reload it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey, KeySet

from hub.config import Settings
from hub.keyfiles import read_or_create

ALGORITHM = "ES256"
# Longest lifetime an access token can have (hub.config caps the TTL at 900 s) plus clock skew.
RETIRE_AFTER_SECONDS = 900 + 60


def generate_private_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _private_key(pem: bytes) -> ECKey:
    key = ECKey.import_key(pem, {"alg": ALGORITHM, "use": "sig"})
    key.ensure_kid()  # RFC 7638 thumbprint
    return key


@dataclass(frozen=True)
class _Entry:
    key: ECKey
    created_at: float
    retire_at: float | None


class SigningKeys:
    """The signing key in use and the published verification keys, reloaded after a rotation."""

    def __init__(self, base_pem: bytes, keyring_file: Path | None = None) -> None:
        self._base = _private_key(base_pem)
        self._keyring_file = keyring_file
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._entries: list[_Entry] = []
        # (ids of the live entries, the entries themselves so their ids stay theirs, public KeySet)
        self._public_cache: tuple[tuple[int, ...], list[_Entry], KeySet] | None = None
        self._reload(force=True)

    # -- keyring ------------------------------------------------------------------------
    def _read_keyring(self) -> dict:
        if self._keyring_file is None or not self._keyring_file.exists():
            return {"keys": [], "retire_at": {}}
        return json.loads(self._keyring_file.read_text())

    def _reload(self, force: bool = False) -> None:
        mtime = None
        if self._keyring_file is not None and self._keyring_file.exists():
            mtime = self._keyring_file.stat().st_mtime_ns
        if not force and mtime == self._mtime:
            return
        with self._lock:
            ring = self._read_keyring()
            retire = {str(k): float(v) for k, v in ring.get("retire_at", {}).items()}
            entries = [_Entry(self._base, 0.0, retire.get(self._base.kid))]
            for item in ring.get("keys", []):
                key = _private_key(item["pem"].encode())
                entries.append(_Entry(key, float(item["created_at"]), retire.get(key.kid)))
            self._entries = entries
            self._mtime = mtime

    def _live(self, now: float) -> list[_Entry]:
        self._reload()
        return [e for e in self._entries if e.retire_at is None or e.retire_at > now]

    # -- what the server uses ------------------------------------------------------------
    def current_signing_key(self) -> KeySet:
        live = self._live(time.time())
        newest = max(live or self._entries, key=lambda e: e.created_at)
        return KeySet([newest.key])

    @property
    def private(self) -> KeySet:
        return self.current_signing_key()

    @property
    def public(self) -> KeySet:
        # Every API request verifies its token against this set: build it once per set of live
        # keys (a reload or a retirement changes the set) instead of re-importing each key.
        live = self._live(time.time())
        marker = tuple(id(e) for e in live)
        cached = self._public_cache
        if cached is None or cached[0] != marker:
            cached = self._public_cache = (marker, live, KeySet([ECKey.import_key(e.key.as_dict(private=False)) for e in live]))
        return cached[2]

    def public_jwks(self) -> dict:
        return self.public.as_dict(private=False)

    # -- rotation (CLI) ------------------------------------------------------------------
    def rotate(self, now: float | None = None) -> tuple[str, list[str]]:
        """Add a new signing key; schedule every other live key's retirement. Returns
        (new kid, kids scheduled for retirement)."""
        if self._keyring_file is None:
            raise RuntimeError("no keyring file configured")
        now = time.time() if now is None else now
        ring = self._read_keyring()
        retire = ring.setdefault("retire_at", {})
        retiring = []
        for entry in self._live(now):
            if entry.key.kid not in retire:
                retire[entry.key.kid] = now + RETIRE_AFTER_SECONDS
                retiring.append(entry.key.kid)
        pem = generate_private_pem()
        new_key = _private_key(pem)
        ring.setdefault("keys", []).append({"pem": pem.decode(), "created_at": now})
        # Retired keys are dropped from the file once past their retirement.
        kept = []
        for item in ring["keys"]:
            kid = _private_key(item["pem"].encode()).kid
            if retire.get(kid) is None or retire[kid] > now:
                kept.append(item)
        ring["keys"] = kept
        self._keyring_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._keyring_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(ring, handle)
        os.replace(tmp, self._keyring_file)  # atomic: readers see the old or the new ring
        self._reload(force=True)
        return str(new_key.kid), retiring


def load_signing_keys(settings: Settings) -> SigningKeys:
    if settings.signing_key_pem:
        pem = settings.signing_key_pem.encode()
    elif settings.environment == "production" or settings.signing_key_file:
        pem = settings.resolved_signing_key_file.read_bytes()
    else:
        pem = read_or_create(settings.resolved_signing_key_file, generate_private_pem)
    return SigningKeys(pem, settings.signing_keyring_file)


def keys_from_pem(pem: bytes) -> SigningKeys:
    return SigningKeys(pem)
