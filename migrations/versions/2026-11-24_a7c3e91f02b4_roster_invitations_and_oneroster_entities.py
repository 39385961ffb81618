"""roster guardian invitations and OneRoster reference entities

Revision ID: a7c3e91f02b4
Revises: 9b9d723626a0
Create Date: 2026-11-24 10:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = 'a7c3e91f02b4'
down_revision: Union[str, Sequence[str], None] = '9b9d723626a0'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('guardian_invitation',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('learner_id', sa.Uuid(), nullable=False),
    sa.Column('provider_id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['learner_id'], ['learner.id'], name=op.f('fk_guardian_invitation_learner_id_learner'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_guardian_invitation_provider_id_provider'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_guardian_invitation')),
    sa.UniqueConstraint('learner_id', 'email', name=op.f('uq_guardian_invitation_learner_id_email'))
    )
    with op.batch_alter_table('guardian_invitation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_guardian_invitation_learner_id'), ['learner_id'], unique=False)

    op.create_table('oneroster_entity',
    sa.Column('instance_name', sa.String(length=100), nullable=False),
    sa.Column('entity', sa.String(length=40), nullable=False),
    sa.Column('sourced_id', sa.String(length=255), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['instance_name'], ['connector_instance.name'], name=op.f('fk_oneroster_entity_instance_name_connector_instance'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('instance_name', 'entity', 'sourced_id', name=op.f('pk_oneroster_entity'))
    )


def downgrade() -> None:
    op.drop_table('oneroster_entity')
    with op.batch_alter_table('guardian_invitation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_guardian_invitation_learner_id'))
    op.drop_table('guardian_invitation')
