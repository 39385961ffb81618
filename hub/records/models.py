"""Record sections.

Badges, skills and activities have a table each (their columns are queried field by field). The
other sections (profile, pathways, service, projects and the sensitive support_needs, wellbeing,
conduct) share one table, ``section_entry``: the envelope, the section name, the entry's date and
``kind`` as indexed columns, and the validated input as JSON, in ``body`` for plain sections or
sealed field by field in ``sealed`` for sensitive ones (``hub.records.crypto``). Their shape is
the pydantic input model in ``schemas.records``; ``GENERIC_SECTIONS`` says which of its fields is
the date and which the kind.

Every entry carries the same envelope (``RecordEntry``): id, learner, contributing provider,
the provider's own ``source_id`` (unique per provider + learner + section, so a re-sent entry is
recognised instead of stored twice), ``content_hash`` (to tell "unchanged" from "updated" on a
re-send), ``created_at`` and ``updated_at``. The section is the table.

.. pii: learning evidence about a child. Retention: until the family deletes the entry, the
   provider's contributions or the whole record.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ColumnElement,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from hub.db import Base, BigIntPK, UTCDateTime, utcnow


class RecordEntry:
    """Envelope columns shared by every section table."""

    section: ClassVar[str]

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)

    @declared_attr
    def learner_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(ForeignKey("learner.id", ondelete="CASCADE"))

    @declared_attr
    def provider_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(ForeignKey("provider.id", ondelete="CASCADE"))

    source_id: Mapped[str] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Retracted by its provider or deleted by the family: invisible at once, purged for real
    # once the retention window has passed (`kinfolio retention purge`).
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Hidden by the family: kept, but no provider sees it until unhidden.
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Badge(RecordEntry, Base):
    """An awarded achievement, after Open Badges 3.0 ``AchievementCredential``/``Achievement``."""

    __tablename__ = "badge"
    __table_args__ = (
        UniqueConstraint("provider_id", "learner_id", "source_id"),
        Index("ix_badge_learner_awarded", "learner_id", "awarded_at", "id"),
    )
    section = "badges"

    achievement_id: Mapped[str | None] = mapped_column(String(2000))  # Achievement.id (URI)
    name: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text())
    criteria_narrative: Mapped[str | None] = mapped_column(Text())
    criteria_id: Mapped[str | None] = mapped_column(String(2000))
    image_url: Mapped[str | None] = mapped_column(String(2000))
    achievement_type: Mapped[str | None] = mapped_column(String(100))
    issuer_id: Mapped[str] = mapped_column(String(2000))  # Profile.id (URI)
    issuer_name: Mapped[str] = mapped_column(String(500))
    issuer_url: Mapped[str | None] = mapped_column(String(2000))
    awarded_at: Mapped[datetime] = mapped_column(UTCDateTime())  # awardedDate
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON(), default=list)
    alignments: Mapped[list[dict[str, Any]]] = mapped_column(JSON(), default=list)


class SkillAssessment(RecordEntry, Base):
    """One assessment of one skill; a skill's assessments in time order are its progression."""

    __tablename__ = "skill_assessment"
    __table_args__ = (
        UniqueConstraint("provider_id", "learner_id", "source_id"),
        Index("ix_skill_assessment_learner_assessed", "learner_id", "assessed_at", "id"),
        Index("ix_skill_assessment_learner_skill", "learner_id", "skill_key", "assessed_at"),
    )
    section = "skills"

    # A CASE CFItem (framework URI + human coding scheme) or, failing that, a free label.
    framework_uri: Mapped[str | None] = mapped_column(String(2000))
    skill_code: Mapped[str | None] = mapped_column(String(200))
    skill_label: Mapped[str] = mapped_column(String(500))
    # framework_uri + "#" + code, or "label:" + label: what groups assessments of one skill.
    skill_key: Mapped[str] = mapped_column(String(2300))
    scale_name: Mapped[str] = mapped_column(String(200))
    scale_min: Mapped[float] = mapped_column(Float())
    scale_max: Mapped[float] = mapped_column(Float())
    proficiency: Mapped[float] = mapped_column(Float())
    assessed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Activity(RecordEntry, Base):
    """A learning event shaped like an xAPI statement; the actor is the learner."""

    __tablename__ = "activity"
    __table_args__ = (
        UniqueConstraint("provider_id", "learner_id", "source_id"),
        # "one learner, newest first" and "since cursor" both walk this index.
        Index("ix_activity_learner_timestamp", "learner_id", "timestamp", "id"),
    )
    section = "activities"

    verb_id: Mapped[str] = mapped_column(String(2000))  # xAPI Verb.id (IRI)
    verb_display: Mapped[str] = mapped_column(String(200))
    object_id: Mapped[str] = mapped_column(String(2000))  # xAPI Activity.id (IRI)
    object_name: Mapped[str | None] = mapped_column(String(500))
    object_type: Mapped[str | None] = mapped_column(String(2000))  # Activity Definition type IRI
    result_score_scaled: Mapped[float | None] = mapped_column(Float())
    result_score_raw: Mapped[float | None] = mapped_column(Float())
    result_score_min: Mapped[float | None] = mapped_column(Float())
    result_score_max: Mapped[float | None] = mapped_column(Float())
    result_success: Mapped[bool | None] = mapped_column(Boolean())
    result_completion: Mapped[bool | None] = mapped_column(Boolean())
    result_duration: Mapped[str | None] = mapped_column(String(64))  # ISO 8601 duration
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())


class RecordChange(Base):
    """The change feed: one row per entry created, updated or deleted (as seen by providers).

    Readers page in (txid, id) order. On PostgreSQL ``txid`` is the writing transaction's id
    (server default ``pg_current_xact_id()``) and readers stop below the oldest transaction still
    in flight, so a late commit can never slip in behind a cursor; on SQLite writers are
    serialised (BEGIN IMMEDIATE), ids follow commit order and ``txid`` stays NULL. SQLite ids are
    AUTOINCREMENT: a plain rowid reuses the ids of deleted rows at the top of the table, and a
    reader whose cursor had passed them would never see the changes given those ids again.

    No foreign keys: a change row is only ever written in the same statement as the entry it
    describes, whose own foreign keys already check the learner and the provider. Checking them
    again cost PostgreSQL two trigger calls per change (about 20 ms per 1,000, BENCHMARKS.md).
    Erasing a learner deletes their changes explicitly (``hub.people.service.delete_learner``),
    and ``log_changes``, which writes changes without an entry insert beside them, locks the
    learner row once per call as the key check did per row.
    """

    __tablename__ = "record_change"
    __table_args__ = (Index("ix_record_change_txid_id", "txid", "id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    txid: Mapped[int | None] = mapped_column(BigInteger())
    learner_id: Mapped[uuid.UUID] = mapped_column(Uuid(), index=True)
    provider_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    section: Mapped[str] = mapped_column(String(50))
    entry_id: Mapped[int] = mapped_column(BigInteger())
    source_id: Mapped[str] = mapped_column(String(200))
    op: Mapped[str] = mapped_column(String(10))  # created | updated | deleted
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class SectionEntry(RecordEntry, Base):
    """An entry of one of the sections stored generically (see the module docstring)."""

    __tablename__ = "section_entry"
    __table_args__ = (
        UniqueConstraint("provider_id", "learner_id", "section", "source_id"),
        # "one learner's section, newest first", time ranges and data windows walk this index.
        Index("ix_section_entry_learner_section_at", "learner_id", "section", "occurred_at", "id"),
        Index("ix_section_entry_learner_section_kind", "learner_id", "section", "kind", "occurred_at"),
        # Exactly one of the two: plain JSON or sealed fields, never both.
        CheckConstraint("(body IS NULL) <> (sealed IS NULL)", name="body_xor_sealed"),
    )
    section_name: Mapped[str] = mapped_column("section", String(50))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())  # the section's own date field
    kind: Mapped[str | None] = mapped_column(String(100))  # e.g. a pathway's kind; never set when sealed
    # none_as_null: Python None is SQL NULL here, not the JSON value null (the CHECK relies on it).
    body: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # field -> "v1:" + base64url(nonce || AES-256-GCM ciphertext || tag), under the learner's data key.
    sealed: Mapped[dict[str, str] | None] = mapped_column(JSON(none_as_null=True))


class LearnerDataKey(Base):
    """A learner's data key, wrapped by a key-encryption key (KEK) from settings.

    Deleting this row crypto-shreds every sealed field of the learner. ``kek_id`` names the KEK
    that wrapped it (``kinfolio keys rotate-kek`` re-wraps under the current one).

    .. no_pii: key material only, unusable without the KEK.
    """

    __tablename__ = "learner_data_key"

    learner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learner.id", ondelete="CASCADE"), primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary(128))
    kek_id: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    rewrapped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


@dataclass(frozen=True, slots=True)
class EntrySpec:
    """Which fields of a generic section's input are its indexed date and kind."""

    date_field: str
    kind_field: str | None = None


GENERIC_SECTIONS: dict[str, EntrySpec] = {
    "profile": EntrySpec("as_of"),
    "pathways": EntrySpec("occurred_at", kind_field="kind"),
    "service": EntrySpec("started_at"),
    "projects": EntrySpec("started_at"),
    "support_needs": EntrySpec("identified_at"),
    "wellbeing": EntrySpec("measured_at"),
    "conduct": EntrySpec("occurred_at"),
}

SECTION_MODELS: dict[str, type[Badge] | type[SkillAssessment] | type[Activity] | type[SectionEntry]] = {
    **{m.section: m for m in (Badge, SkillAssessment, Activity)},
    **{name: SectionEntry for name in GENERIC_SECTIONS},
}


def section_clause(section: str) -> list[ColumnElement[bool]]:
    """Extra WHERE conditions that select one section's rows in its table (none for own tables)."""
    return [SectionEntry.section_name == section] if section in GENERIC_SECTIONS else []
