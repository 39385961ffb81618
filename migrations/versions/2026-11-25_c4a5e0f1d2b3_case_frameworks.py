"""CASE competency frameworks: documents, items, associations

Revision ID: c4a5e0f1d2b3
Revises: a7c3e91f02b4
Create Date: 2026-11-25 10:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = 'c4a5e0f1d2b3'
down_revision: Union[str, Sequence[str], None] = 'a7c3e91f02b4'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('case_document',
    sa.Column('identifier', sa.String(length=255), nullable=False),
    sa.Column('uri', sa.Text(), nullable=False),
    sa.Column('package_uri', sa.Text(), nullable=True),
    sa.Column('official_source_url', sa.Text(), nullable=True),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('creator', sa.Text(), nullable=True),
    sa.Column('adoption_status', sa.String(length=100), nullable=True),
    sa.Column('last_change_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('imported_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['imported_by'], ['provider.id'], name=op.f('fk_case_document_imported_by_provider'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('identifier', name=op.f('pk_case_document'))
    )
    with op.batch_alter_table('case_document', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_document_uri'), ['uri'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_document_package_uri'), ['package_uri'], unique=False)

    op.create_table('case_item',
    sa.Column('identifier', sa.String(length=255), nullable=False),
    sa.Column('document_identifier', sa.String(length=255), nullable=False),
    sa.Column('uri', sa.Text(), nullable=False),
    sa.Column('human_coding_scheme', sa.Text(), nullable=True),
    sa.Column('full_statement', sa.Text(), nullable=False),
    sa.Column('item_type', sa.Text(), nullable=True),
    sa.Column('education_level', sa.JSON(), nullable=True),
    sa.Column('last_change_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['document_identifier'], ['case_document.identifier'], name=op.f('fk_case_item_document_identifier_case_document'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('identifier', name=op.f('pk_case_item'))
    )
    with op.batch_alter_table('case_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_item_uri'), ['uri'], unique=False)
        batch_op.create_index('ix_case_item_document_code', ['document_identifier', 'human_coding_scheme'], unique=False)

    op.create_table('case_association',
    sa.Column('identifier', sa.String(length=255), nullable=False),
    sa.Column('document_identifier', sa.String(length=255), nullable=False),
    sa.Column('association_type', sa.String(length=100), nullable=False),
    sa.Column('origin_uri', sa.Text(), nullable=False),
    sa.Column('destination_uri', sa.Text(), nullable=False),
    sa.Column('sequence_number', sa.Integer(), nullable=True),
    sa.Column('last_change_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['document_identifier'], ['case_document.identifier'], name=op.f('fk_case_association_document_identifier_case_document'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('identifier', name=op.f('pk_case_association'))
    )
    with op.batch_alter_table('case_association', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_association_document_identifier'), ['document_identifier'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('case_association', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_association_document_identifier'))
    op.drop_table('case_association')
    with op.batch_alter_table('case_item', schema=None) as batch_op:
        batch_op.drop_index('ix_case_item_document_code')
        batch_op.drop_index(batch_op.f('ix_case_item_uri'))
    op.drop_table('case_item')
    with op.batch_alter_table('case_document', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_document_package_uri'))
        batch_op.drop_index(batch_op.f('ix_case_document_uri'))
    op.drop_table('case_document')
