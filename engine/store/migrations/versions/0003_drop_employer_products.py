"""Drop ``rw_employer_products``: MijnLoket activations are kept by the workflow runtime.

Each employer's MijnLoket is now an instance of the ``<catalog>-employer`` workflow that a
``ProductCatalog`` compiles into (``plugins/mijnloket/workflow.py``); its history rows (``rw_history``)
and audit rows (``rw_audit``) are the record of activations and tier changes, so the pack's own table
is gone. Existing rows are not carried over (the table was only written by ``regelwerk simulate``).

Revision ID: 0003_drop_employer_products
Revises: 0002_all_areas
Create Date: 2026-11-22
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003_drop_employer_products'
down_revision = '0002_all_areas'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Drop the table and its index."""
    with op.batch_alter_table('rw_employer_products', schema=None) as batch_op:
        batch_op.drop_index('ix_rw_employer_products_employer_catalog')

    op.drop_table('rw_employer_products')


def downgrade() -> None:
    """Create the table again (empty), as revision 0002_all_areas did."""
    op.create_table('rw_employer_products',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('employer', sa.String(length=200), nullable=False),
    sa.Column('catalog', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('product', sa.String(length=200), nullable=False),
    sa.Column('tier_before', sa.String(length=60), nullable=False),
    sa.Column('tier_after', sa.String(length=60), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rw_employer_products'))
    )
    with op.batch_alter_table('rw_employer_products', schema=None) as batch_op:
        batch_op.create_index('ix_rw_employer_products_employer_catalog', ['employer', 'catalog'], unique=False)
