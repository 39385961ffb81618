"""Pairwise pseudonymous learner ids.

Each provider sees a learner under an id derived from a keyed hash of (provider, learner), so
ids are stable for one provider and unrelated across providers: two providers cannot join their
data on them, and without the hub's key nobody can recompute them. The same construction as
OpenID Connect pairwise subject identifiers (OIDC Core §8.1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from uuid import UUID

PREFIX = "lrn_"
_CONTEXT = b"kinfolio/pairwise-learner-id/v1|"


def pairwise_id(key: bytes, provider_id: UUID, learner_id: UUID) -> str:
    if len(key) < 32:
        raise ValueError("the pseudonym key must be at least 32 bytes")
    digest = hmac.new(key, _CONTEXT + provider_id.bytes + learner_id.bytes, hashlib.sha256).digest()
    # 160 bits in lowercase base32: 32 characters, URL- and case-safe.
    return PREFIX + base64.b32encode(digest[:20]).decode().lower()


def looks_like_pairwise_id(value: str) -> bool:
    return len(value) == len(PREFIX) + 32 and value.startswith(PREFIX)
