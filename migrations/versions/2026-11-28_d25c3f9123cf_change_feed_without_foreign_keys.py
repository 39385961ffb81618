"""change feed without foreign keys; SQLite change ids never reused

Revision ID: d25c3f9123cf
Revises: e5b1c2d3f4a6
Create Date: 2026-11-28 00:10:00

A change row is written in the same statement as the entry it describes, whose foreign keys
already check the learner and the provider; checking them again cost PostgreSQL two trigger
calls per change (hub/records/models.py, RecordChange). Erasing a learner now deletes their
changes explicitly (hub/people/service.py, delete_learner).

On SQLite the table is rebuilt anyway, and gets AUTOINCREMENT: a plain rowid table hands the
ids of deleted rows at its top out again, which a feed cursor that had passed them would skip.
"""
from typing import Sequence, Union

from alembic import op


revision: str = 'd25c3f9123cf'
down_revision: Union[str, Sequence[str], None] = 'e5b1c2d3f4a6'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

FOREIGN_KEYS = (("fk_record_change_learner_id_learner", "learner", "learner_id"),
                ("fk_record_change_provider_id_provider", "provider", "provider_id"))


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # The copy keeps every row and its id; sqlite_sequence starts from the largest copied id.
        with op.batch_alter_table("record_change", recreate="always",
                                  table_kwargs={"sqlite_autoincrement": True}) as batch_op:
            for name, _, _ in FOREIGN_KEYS:
                batch_op.drop_constraint(name, type_="foreignkey")
    else:
        for name, _, _ in FOREIGN_KEYS:
            op.drop_constraint(name, "record_change", type_="foreignkey")


def downgrade() -> None:
    # Changes of a provider deleted by hand (the hub never deletes one) would break the constraint.
    op.execute("DELETE FROM record_change WHERE learner_id NOT IN (SELECT id FROM learner) "
               "OR provider_id NOT IN (SELECT id FROM provider)")
    with op.batch_alter_table("record_change", recreate="always" if op.get_bind().dialect.name == "sqlite" else "auto") as batch_op:
        for name, parent, column in FOREIGN_KEYS:
            batch_op.create_foreign_key(name, parent, [column], ["id"], ondelete="CASCADE")
