"""The organisation's units: ``rw_org_units`` (afdelingen, functies, rollen, taken), written by
``regelwerk import organisation``; user accounts ``rw_accounts`` (password hashes only); the outbox's
``secret`` column (a password or reset link made only when the mail is delivered).

Revision ID: 0004_organisation
Revises: 0003_drop_employer_products
Create Date: 2026-12-04
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004_organisation'
down_revision = '0003_drop_employer_products'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table and its index."""
    op.create_table('rw_org_units',
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('parent', sa.String(length=200), nullable=True),
    sa.Column('manager', sa.String(length=200), nullable=True),
    sa.Column('access', sa.JSON(), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'id', name=op.f('pk_rw_org_units'))
    )
    with op.batch_alter_table('rw_org_units', schema=None) as batch_op:
        batch_op.create_index('ix_rw_org_units_kind_parent', ['kind', 'parent'], unique=False)
    op.create_table('rw_accounts',
    sa.Column('username', sa.String(length=200), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('password_set_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('username', name=op.f('pk_rw_accounts'))
    )
    with op.batch_alter_table('rw_accounts', schema=None) as batch_op:
        batch_op.create_index('ix_rw_accounts_email', ['email'], unique=False)
    with op.batch_alter_table('rw_outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secret', sa.String(length=200), nullable=True))


def downgrade() -> None:
    """Drop the tables and the column."""
    with op.batch_alter_table('rw_outbox', schema=None) as batch_op:
        batch_op.drop_column('secret')
    with op.batch_alter_table('rw_accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_rw_accounts_email')
    op.drop_table('rw_accounts')
    with op.batch_alter_table('rw_org_units', schema=None) as batch_op:
        batch_op.drop_index('ix_rw_org_units_kind_parent')
    op.drop_table('rw_org_units')
