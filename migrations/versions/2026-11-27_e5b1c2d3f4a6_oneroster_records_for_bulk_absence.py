"""OneRoster records listed per connector instance (bulk-file absence withdraws them)

Revision ID: e5b1c2d3f4a6
Revises: 53a12c75e014
Create Date: 2026-11-27 10:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = 'e5b1c2d3f4a6'
down_revision: Union[str, Sequence[str], None] = '53a12c75e014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('oneroster_record',
    sa.Column('instance_name', sa.String(length=100), nullable=False),
    sa.Column('entity', sa.String(length=40), nullable=False),
    sa.Column('sourced_id', sa.String(length=255), nullable=False),
    sa.Column('last_seen', sa.String(length=64), nullable=False),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['instance_name'], ['connector_instance.name'], name=op.f('fk_oneroster_record_instance_name_connector_instance'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('instance_name', 'entity', 'sourced_id', name=op.f('pk_oneroster_record'))
    )


def downgrade() -> None:
    op.drop_table('oneroster_record')
