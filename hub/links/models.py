"""Links from a provider's own learner identifiers to Kinfolio learners.

Source systems know learners by their own ids (a OneRoster ``sourcedId``, an xAPI actor's
inverse functional identifier); providers know them only by pairwise ids. A link is scoped to
one provider: (provider, system, external id) -> learner. It is created when a family (or the
operator on its behalf) links an account, or when the provider's own roster import creates or
matches the learner. A link alone reveals nothing: the API answers a lookup with the pairwise id
only while the provider holds a live grant for the learner (``hub.links.service``).

.. pii: external ids can be e-mail derived; xAPI mailbox ids are stored only as the SHA-1 form
   xAPI itself defines (``mbox_sha1sum``). Retention: deleted with the learner or the provider.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow


class LearnerLink(Base):
    __tablename__ = "learner_link"
    __table_args__ = (UniqueConstraint("provider_id", "system", "external_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("provider.id", ondelete="CASCADE"))
    # The identifier namespace: "xapi" (canonical actor IFI) or "oneroster" (sourcedId).
    system: Mapped[str] = mapped_column(String(50))
    external_id: Mapped[str] = mapped_column(String(500))
    learner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learner.id", ondelete="CASCADE"), index=True)
    # Who made the link: "family", "operator" or "roster" (the provider's roster import).
    origin: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
