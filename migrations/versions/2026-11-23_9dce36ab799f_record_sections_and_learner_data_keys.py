"""record sections and learner data keys

Adds ``section_entry`` (profile, pathways, service, projects and the sensitive support_needs,
wellbeing and conduct, which are sealed field by field) and ``learner_data_key`` (one wrapped
data key per learner for the envelope encryption). Only new tables: it runs unchanged on empty
and populated databases.

Revision ID: 9dce36ab799f
Revises: 584ce3c81328
Create Date: 2026-11-23 11:32:13.552192

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '9dce36ab799f'
down_revision: Union[str, Sequence[str], None] = '584ce3c81328'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('learner_data_key',
    sa.Column('learner_id', sa.Uuid(), nullable=False),
    sa.Column('wrapped_key', sa.LargeBinary(length=128), nullable=False),
    sa.Column('kek_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rewrapped_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['learner_id'], ['learner.id'], name=op.f('fk_learner_data_key_learner_id_learner'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('learner_id', name=op.f('pk_learner_data_key'))
    )
    with op.batch_alter_table('learner_data_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_learner_data_key_kek_id'), ['kek_id'], unique=False)

    op.create_table('section_entry',
    sa.Column('section', sa.String(length=50), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=100), nullable=True),
    sa.Column('body', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('sealed', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('source_id', sa.String(length=200), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('hidden_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('learner_id', sa.Uuid(), nullable=False),
    sa.Column('provider_id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('(body IS NULL) <> (sealed IS NULL)', name=op.f('ck_section_entry_body_xor_sealed')),
    sa.ForeignKeyConstraint(['learner_id'], ['learner.id'], name=op.f('fk_section_entry_learner_id_learner'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_section_entry_provider_id_provider'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_section_entry')),
    sa.UniqueConstraint('provider_id', 'learner_id', 'section', 'source_id', name=op.f('uq_section_entry_provider_id_learner_id_section_source_id'))
    )
    with op.batch_alter_table('section_entry', schema=None) as batch_op:
        batch_op.create_index('ix_section_entry_learner_section_at', ['learner_id', 'section', 'occurred_at', 'id'], unique=False)
        batch_op.create_index('ix_section_entry_learner_section_kind', ['learner_id', 'section', 'kind', 'occurred_at'], unique=False)



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('section_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_section_entry_learner_section_kind')
        batch_op.drop_index('ix_section_entry_learner_section_at')

    op.drop_table('section_entry')
    with op.batch_alter_table('learner_data_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_learner_data_key_kek_id'))

    op.drop_table('learner_data_key')
