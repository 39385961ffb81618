"""The portability bundle: everything about one learner in one zip (GDPR Art. 20).

GDPR Art. 20(1): the data subject has the right to receive the personal data concerning them "in
a structured, commonly used and machine-readable format" and to transmit it to another
controller. The bundle answers that with the formats the learning-records ecosystem reads:

=====================================  ==========================================================
``manifest.json``                      what each file is, counts, SHA-256 and size of every other
                                       file, generation time, the hub as issuer (written last)
``credentials/clr.json``               the whole record as a signed CLR 2.0 ``ClrCredential``
``credentials/badges/<id>.json``       each badge as a signed OB 3.0 ``OpenBadgeCredential``
``activities/statements.json``         the activities as xAPI 1.0.3 statements (a JSON array, the
                                       shape ``POST /statements`` accepts: xAPI 1.0.3 Part Three
                                       §2.1.2), oldest first
``consent/receipts.json``              the signed consent receipts of every grant and revocation
``consent/disclosure-log.json``        every disclosure event, newest first, with its hash chain
``consent/disclosure-log-verification.json``  the result of re-computing that chain now
``held/<n>.json`` / ``held/<n>.jws``   imported credentials kept whole, as received
=====================================  ==========================================================

Large sections are streamed: activities, disclosure events, badges and held credentials are read
page by page with keyset queries on their indexes and written straight into the zip entry, whose
SHA-256 is computed while writing; nothing holds a whole section in memory (the CLR is one signed
document and is built whole; its activity part is aggregated by the database).

Every query is filtered on the learner's id: a bundle holds nothing about anyone else.
Adds and flushes (the CLR and badge credentials allocate status-list slots); never commits.
For a consistent snapshot on PostgreSQL call :func:`begin_snapshot` before anything else in the
transaction (the CLI does).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any
from uuid import UUID

from joserfc.jwk import KeySet
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.credentials.export import iso, learner_subject_id
from hub.credentials.models import HeldCredential
from hub.credentials.service import CredentialKit, badge_credential, clr_credential, not_a_held_mirror
from hub.grants.log import list_disclosures, verify_log
from hub.grants.receipts import signed_receipts
from hub.people.models import Learner
from hub.portability import xapi
from hub.providers.models import Provider
from hub.records.models import Activity, Badge

BUNDLE_TYPE = "KinfolioPortabilityBundle"
BUNDLE_VERSION = 1
LEGAL_BASIS = ("GDPR Art. 20 (right to data portability): the personal data concerning the learner, in a "
               "structured, commonly used and machine-readable format")
JSON = "application/json"


@dataclass
class BundleFile:
    path: str
    description: str
    media_type: str
    count: int | None
    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "description": self.description, "mediaType": self.media_type}
        if self.count is not None:
            out["count"] = self.count
        return out | {"bytes": self.bytes, "sha256": self.sha256}


class _Entry:
    """One file being written into the zip; hashes what it writes."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._sha = hashlib.sha256()
        self.size = 0
        self.count: int | None = None

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        self._sha.update(data)
        self.size += len(data)

    def digest(self) -> str:
        return self._sha.hexdigest()


def _dumps(value: Any, indent: int | None = 2) -> bytes:
    return json.dumps(value, indent=indent, ensure_ascii=False, sort_keys=False).encode()


class _JsonArray:
    """Streams a JSON array into an entry, one item at a time."""

    def __init__(self, entry: _Entry) -> None:
        self._entry = entry
        self.count = 0
        entry.write(b"[")

    def append(self, item: Any) -> None:
        self._entry.write((b",\n" if self.count else b"\n") + _dumps(item, indent=None))
        self.count += 1

    def close(self) -> None:
        self._entry.write(b"\n]\n" if self.count else b"]\n")
        self._entry.count = self.count


class BundleWriter:
    def __init__(self, out: IO[bytes], now: datetime) -> None:
        self._zip = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED)
        self._date_time = now.utctimetuple()[:6]
        self.files: list[BundleFile] = []

    @contextmanager
    def entry(self, path: str, description: str, media_type: str = JSON) -> Iterator[_Entry]:
        info = zipfile.ZipInfo(path, date_time=self._date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        with self._zip.open(info, "w", force_zip64=True) as handle:
            entry = _Entry(handle)
            yield entry
        self.files.append(BundleFile(path, description, media_type, entry.count, entry.size, entry.digest()))

    @contextmanager
    def array(self, path: str, description: str) -> Iterator[_JsonArray]:
        with self.entry(path, description) as entry:
            items = _JsonArray(entry)
            yield items
            items.close()

    def json_file(self, path: str, description: str, value: Any, count: int | None = None) -> None:
        with self.entry(path, description) as entry:
            entry.write(_dumps(value) + b"\n")
            entry.count = count

    def text_file(self, path: str, description: str, text: str, media_type: str) -> None:
        with self.entry(path, description, media_type) as entry:
            entry.write(text.encode() + b"\n")

    def finish(self, manifest: dict[str, Any]) -> None:
        info = zipfile.ZipInfo("manifest.json", date_time=self._date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        self._zip.writestr(info, _dumps(manifest) + b"\n")
        self._zip.close()

    def abort(self) -> None:
        self._zip.close()


async def begin_snapshot(session: AsyncSession) -> None:
    """Make the transaction one snapshot (PostgreSQL REPEATABLE READ), so counts and files agree.

    Must be the transaction's first database call. SQLite transactions are already serialisable.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


# -- keyset readers ------------------------------------------------------------------------------


async def _badges(session: AsyncSession, learner_id: UUID, page: int) -> AsyncIterator[Badge]:
    last = 0
    while True:
        rows = list((await session.execute(
            select(Badge).where(Badge.learner_id == learner_id, Badge.id > last, not_a_held_mirror())
            .order_by(Badge.id).limit(page)
        )).scalars())
        for row in rows:
            yield row
            session.expunge(row)
        if len(rows) < page:
            return
        last = rows[-1].id


async def _activities(session: AsyncSession, learner_id: UUID, page: int) -> AsyncIterator[Any]:
    """Rows (not ORM objects: nothing accumulates in the identity map), oldest first, on
    ``ix_activity_learner_timestamp`` (learner_id, timestamp, id)."""
    query = (select(Activity.__table__, Provider.name.label("provider_name"))
             .join(Provider, Provider.id == Activity.provider_id)
             .where(Activity.learner_id == learner_id)
             .order_by(Activity.timestamp, Activity.id).limit(page))
    after: tuple[datetime, int] | None = None
    while True:
        paged = query if after is None else query.where(or_(
            Activity.timestamp > after[0], and_(Activity.timestamp == after[0], Activity.id > after[1])))
        rows = list(await session.execute(paged))
        for row in rows:
            yield row
        if len(rows) < page:
            return
        after = (rows[-1].timestamp, rows[-1].id)


async def _held(session: AsyncSession, learner_id: UUID, page: int) -> AsyncIterator[HeldCredential]:
    last = 0
    while True:
        rows = list((await session.execute(
            select(HeldCredential).where(HeldCredential.learner_id == learner_id, HeldCredential.id > last)
            .order_by(HeldCredential.id).limit(page)
        )).scalars())
        for row in rows:
            yield row
            session.expunge(row)
        if len(rows) < page:
            return
        last = rows[-1].id


async def _disclosures(session: AsyncSession, learner_id: UUID, page: int) -> AsyncIterator[Any]:
    before: int | None = None
    while True:
        rows = await list_disclosures(session=session, learner_id=learner_id, first=page, before_seq=before)
        for row in rows:
            yield row
            session.expunge(row)
        if len(rows) < page:
            return
        before = rows[-1].seq


# -- the bundle ----------------------------------------------------------------------------------


async def write_bundle(
    session: AsyncSession, *, kit: CredentialKit, receipt_keys: KeySet, learner_id: UUID, out: IO[bytes],
    now: datetime, page_size: int = 1000,
) -> dict[str, Any]:
    """Write the learner's bundle (a zip) to ``out``; returns the manifest.

    ``LookupError`` when there is no such learner (nothing is written then).
    """
    learner = await session.get(Learner, learner_id)
    if learner is None:
        raise LookupError(f"no learner {learner_id}")
    base = kit.base
    counts: dict[str, int] = {}
    writer = BundleWriter(out, now)
    try:
        clr = await clr_credential(session, kit, learner_id, now)
        writer.json_file("credentials/clr.json", "The whole record as a CLR 2.0 ClrCredential signed by the hub "
                         "(Data Integrity eddsa-rdfc-2022): badges, skills as Competency achievements, activity "
                         "summaries, imported credentials embedded as received.", clr)

        counts["badgeCredentials"] = 0
        async for badge in _badges(session, learner_id, page_size):
            signed = await badge_credential(session, kit, badge, now)
            writer.json_file(f"credentials/badges/{badge.id}.json",
                             f"Badge {badge.name!r} as an Open Badges 3.0 OpenBadgeCredential signed by the hub.", signed)
            counts["badgeCredentials"] += 1

        with writer.array("activities/statements.json",
                          "The activities as xAPI 1.0.3 statements (a JSON array as POST /statements accepts), "
                          "oldest first; statement ids are stable across exports.") as statements:
            async for row in _activities(session, learner_id, page_size):
                statements.append(xapi.statement(row, issuer_base=base, provider_name=row.provider_name))
        counts["activityStatements"] = statements.count

        receipts = await signed_receipts(session=session, learner_id=learner_id, signing_keys=receipt_keys,
                                         issuer=kit.settings.issuer, policy_name=kit.settings.consent_policy_name)
        writer.json_file("consent/receipts.json", "Consent receipts of every grant and revocation, each signed by the "
                         "hub as a compact JWS (ES256; keys at /.well-known/jwks.json).", receipts, count=len(receipts))
        counts["consentReceipts"] = len(receipts)

        provider_names: dict[UUID, str | None] = {}
        with writer.array("consent/disclosure-log.json",
                          "Every consent decision on a provider's access to this record (allowed and denied), "
                          "newest first, hash-chained per learner: hash = SHA-256 over prev_hash and the event's "
                          "fields (consent/audit.py).") as events:
            async for event in _disclosures(session, learner_id, page_size):
                if event.provider_id not in provider_names:
                    provider = await session.get(Provider, event.provider_id)
                    provider_names[event.provider_id] = provider.name if provider else None
                events.append({
                    "seq": event.seq, "at": iso(event.at), "provider": str(event.provider_id),
                    "providerName": provider_names[event.provider_id], "client": event.client_id,
                    "token": event.token_id, "section": event.section, "action": event.action,
                    "outcome": event.outcome, "reason": event.reason,
                    "grant": str(event.grant_id) if event.grant_id else None, "purpose": event.purpose,
                    "entries": event.entry_count, "prevHash": event.prev_hash, "hash": event.hash,
                })
        counts["disclosureEvents"] = events.count

        checked, problems = await verify_log(session=session, learner_ids=[learner_id])
        verification = {"verifiedAt": iso(now), "checkedEvents": checked, "intact": not problems,
                        "problems": [{"seq": p.seq, "problem": p.problem} for p in problems]}
        writer.json_file("consent/disclosure-log-verification.json",
                         "The disclosure log's hash chain re-computed when the bundle was made.", verification)

        counts["heldCredentials"] = 0
        async for held in _held(session, learner_id, page_size):
            what = f"Imported {held.kind} (issuer {held.issuer_id}, id {held.credential_id}), kept whole as received"
            if held.compact_jws:
                writer.text_file(f"held/{held.id}.jws", what + " (compact JWS).", held.compact_jws,
                                 "application/vc+jwt" if held.format == "jwt" else "application/jose")
            else:
                writer.json_file(f"held/{held.id}.json", what + ".", held.document)
            counts["heldCredentials"] += 1
    except BaseException:
        writer.abort()
        raise

    manifest = {
        "type": BUNDLE_TYPE,
        "version": BUNDLE_VERSION,
        "legalBasis": LEGAL_BASIS,
        "generatedAt": iso(now),
        "issuer": {**kit.key.issuer_summary(), "verificationMethod": kit.key.verification_method,
                   "jwks": f"{base}/credentials/jwks.json", "receiptKeys": f"{base}/.well-known/jwks.json"},
        "learner": {"credentialSubjectId": learner_subject_id(learner_id), "xapiActor": xapi.actor(base, learner_id)},
        "counts": counts,
        "disclosureLogIntact": not problems,
        "files": [f.as_dict() for f in writer.files],
    }
    writer.finish(manifest)
    return manifest
