"""Imported CASE frameworks: one row per CFDocument, CFItem and CFAssociation.

Public reference data (no learner data, no PII). Each row keeps the CASE identifier, the
columns the hub reads (URIs, humanCodingScheme, fullStatement, CFItemType, educationLevel,
lastChangeDateTime) and the object's JSON whole (``data``) as it was imported. Retention: until
an operator removes the framework.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow


class CaseDocument(Base):
    """A CFDocument (CASE 1.1 §4.2.2 / JSON binding CFPckgDocument): the framework itself."""

    __tablename__ = "case_document"

    identifier: Mapped[str] = mapped_column(String(255), primary_key=True)
    uri: Mapped[str] = mapped_column(Text(), index=True)
    # CASE 1.0 packages link the package itself (CFPackageURI); skills may cite either URI.
    package_uri: Mapped[str | None] = mapped_column(Text(), index=True)
    official_source_url: Mapped[str | None] = mapped_column(Text())
    title: Mapped[str] = mapped_column(Text())
    creator: Mapped[str | None] = mapped_column(Text())
    adoption_status: Mapped[str | None] = mapped_column(String(100))
    last_change_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSON())
    imported_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("provider.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CaseItem(Base):
    """A CFItem (CASE 1.1 §4.2.5 / CFPckgItem): one competency, standard or learning objective."""

    __tablename__ = "case_item"
    __table_args__ = (Index("ix_case_item_document_code", "document_identifier", "human_coding_scheme"),)

    identifier: Mapped[str] = mapped_column(String(255), primary_key=True)
    document_identifier: Mapped[str] = mapped_column(ForeignKey("case_document.identifier", ondelete="CASCADE"))
    uri: Mapped[str] = mapped_column(Text(), index=True)
    human_coding_scheme: Mapped[str | None] = mapped_column(Text())
    full_statement: Mapped[str] = mapped_column(Text())
    item_type: Mapped[str | None] = mapped_column(Text())
    education_level: Mapped[list[str] | None] = mapped_column(JSON())
    last_change_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSON())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CaseAssociation(Base):
    """A CFAssociation (CASE 1.1 §4.2.3 / CFPckgAssociation): e.g. ``isChildOf`` between nodes."""

    __tablename__ = "case_association"

    identifier: Mapped[str] = mapped_column(String(255), primary_key=True)
    document_identifier: Mapped[str] = mapped_column(
        ForeignKey("case_document.identifier", ondelete="CASCADE"), index=True
    )
    association_type: Mapped[str] = mapped_column(String(100))
    origin_uri: Mapped[str] = mapped_column(Text())
    destination_uri: Mapped[str] = mapped_column(Text())
    sequence_number: Mapped[int | None] = mapped_column(Integer())
    last_change_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSON())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
