"""Add ``rw_simulation_leases``: one live ``regelwerk simulate`` per store and customer.

Revision ID: 0005_simulation_leases
Revises: 0004_organisation
Create Date: 2026-12-04
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005_simulation_leases'
down_revision = '0004_organisation'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the lease table."""
    op.create_table('rw_simulation_leases',
    sa.Column('simulation', sa.String(length=200), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=200), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('acquired_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('simulation', name=op.f('pk_rw_simulation_leases'))
    )


def downgrade() -> None:
    """Drop the lease table."""
    op.drop_table('rw_simulation_leases')
