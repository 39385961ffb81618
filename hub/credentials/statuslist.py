"""W3C Bitstring Status List v1.0: slots for issued credentials and the signed list credential.

One revocation list per list number, 131,072 entries (§6.1 "Herd privacy": at least 16 KB so a
single index says little about a holder), slots allocated at random (§6.2), bit 0 the
left-most bit of the first byte (§3.1), the list GZIP-compressed and multibase base64url
encoded (§2.1 ``encodedList``).
"""

from __future__ import annotations

import base64
import gzip
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.credentials.models import IssuedCredential

LIST_SIZE = 131_072
PURPOSE = "revocation"
# How long a served list credential may be cached/trusted (§3.2 step "validUntil").
LIST_TTL = timedelta(minutes=10)


class StatusListError(ValueError):
    pass


def list_url(issuer_base: str, list_number: int) -> str:
    return f"{issuer_base.rstrip('/')}/credentials/status/{list_number}"


def encode_bits(indexes: set[int], size: int = LIST_SIZE) -> str:
    bits = bytearray(size // 8)
    for index in indexes:
        bits[index // 8] |= 0x80 >> (index % 8)
    return "u" + base64.urlsafe_b64encode(gzip.compress(bytes(bits), mtime=0)).rstrip(b"=").decode()


def decode_bits(encoded: str) -> bytes:
    if not isinstance(encoded, str) or not encoded.startswith("u"):
        raise StatusListError("encodedList must be multibase base64url ('u…')")
    try:
        data = base64.urlsafe_b64decode(encoded[1:] + "=" * (-len(encoded[1:]) % 4))
        return gzip.decompress(data)
    except (ValueError, OSError, EOFError) as exc:
        raise StatusListError(f"encodedList is not GZIP-compressed base64url: {exc}") from exc


def bit_at(bits: bytes, index: int, size: int = 1) -> int:
    """The status value at ``index`` (§3.2 Validate Algorithm, steps on statusSize)."""
    if index < 0 or (index + 1) * size > len(bits) * 8:
        raise StatusListError(f"statusListIndex {index} is outside the list ({len(bits) * 8} bits)")
    value = 0
    for i in range(index * size, (index + 1) * size):
        value = (value << 1) | ((bits[i // 8] >> (7 - i % 8)) & 1)
    return value


def status_entry(issuer_base: str, issued: IssuedCredential) -> dict[str, Any]:
    url = list_url(issuer_base, issued.status_list)
    return {
        "id": f"{url}#{issued.status_index}",
        "type": "BitstringStatusListEntry",
        "statusPurpose": PURPOSE,
        "statusListIndex": str(issued.status_index),
        "statusListCredential": url,
    }


async def allocate_slot(session: AsyncSession) -> tuple[int, int]:
    """A random free (list, index); a new list once the newest is 90 % full."""
    newest = (await session.execute(select(func.max(IssuedCredential.status_list)))).scalar_one_or_none() or 1
    used = (await session.execute(
        select(func.count()).select_from(IssuedCredential).where(IssuedCredential.status_list == newest)
    )).scalar_one()
    if used >= LIST_SIZE * 9 // 10:
        newest += 1
    taken = set((await session.execute(
        select(IssuedCredential.status_index).where(IssuedCredential.status_list == newest)
    )).scalars())
    for _ in range(64):
        index = secrets.randbelow(LIST_SIZE)
        if index not in taken:
            return newest, index
    raise StatusListError("could not find a free status list slot")


async def revoked_indexes(session: AsyncSession, list_number: int) -> set[int]:
    rows = await session.execute(
        select(IssuedCredential.status_index).where(
            IssuedCredential.status_list == list_number, IssuedCredential.revoked_at.is_not(None)
        )
    )
    return set(rows.scalars())


async def list_exists(session: AsyncSession, list_number: int) -> bool:
    found = await session.execute(
        select(IssuedCredential.id).where(IssuedCredential.status_list == list_number).limit(1)
    )
    return found.first() is not None


def list_credential(issuer_base: str, issuer_id: str, list_number: int, revoked: set[int], now: datetime) -> dict[str, Any]:
    """The unsigned BitstringStatusListCredential (§2.2)."""
    url = list_url(issuer_base, list_number)
    now = now.astimezone(UTC).replace(microsecond=0)
    return {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer_id,
        "validFrom": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "validUntil": (now + LIST_TTL).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": PURPOSE,
            "encodedList": encode_bits(revoked),
        },
    }


async def revoke(session: AsyncSession, credential_id: UUID, *, now: datetime, reason: str | None = None) -> bool:
    issued = await session.get(IssuedCredential, credential_id)
    if issued is None:
        raise LookupError(f"no issued credential {credential_id}")
    if issued.revoked_at is not None:
        return False
    issued.revoked_at = now
    issued.revocation_reason = reason
    await session.flush()
    return True


async def revoke_where_badges(session: AsyncSession, badge_ids: Any, *, now: datetime, reason: str) -> int:
    """Revoke the issued credentials of the badges selected by ``badge_ids`` (a SELECT of badge ids).

    Called before those badges are deleted: the row's ``badge_id`` is then set NULL, but the
    credential already handed out must stop verifying (Bitstring Status List v1.0 §2.1, statusPurpose
    "revocation": the credential is cancelled, irreversibly).
    """
    result = await session.execute(
        update(IssuedCredential)
        .where(IssuedCredential.badge_id.in_(badge_ids), IssuedCredential.revoked_at.is_(None))
        .values(revoked_at=now, revocation_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0
