"""disclosure log outlives its providers

Revision ID: 0b7e4d2a9c61
Revises: d25c3f9123cf
Create Date: 2026-11-29 00:10:00

``disclosure_event.provider_id`` was ON DELETE CASCADE: deleting a provider row (the hub never
does; an operator by hand could) would have deleted every record of what that provider was shown,
silently, and with it the links of the learners' hash chains. It is now ON DELETE RESTRICT: such a
delete fails while the provider has disclosures. A learner's erasure still deletes their log.
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0b7e4d2a9c61'
down_revision: Union[str, Sequence[str], None] = 'd25c3f9123cf'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

NAME = "fk_disclosure_event_provider_id_provider"


def _provider_key(ondelete: str) -> None:
    # SQLite cannot alter a constraint: the batch rebuilds the table, keeping every row and id.
    with op.batch_alter_table("disclosure_event") as batch_op:
        batch_op.drop_constraint(NAME, type_="foreignkey")
        batch_op.create_foreign_key(NAME, "provider", ["provider_id"], ["id"], ondelete=ondelete)


def upgrade() -> None:
    _provider_key("RESTRICT")


def downgrade() -> None:
    _provider_key("CASCADE")
