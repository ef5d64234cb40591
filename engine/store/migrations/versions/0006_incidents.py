"""Incidents: failures of actions and timers, isolated, retried with backoff, listed for people.

Revision ID: 0006_incidents
Revises: 0005_simulation_leases
Create Date: 2026-12-04
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006_incidents'
down_revision = '0005_simulation_leases'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create rw_incidents."""
    op.create_table('rw_incidents',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('instance_id', sa.String(length=64), nullable=False),
    sa.Column('event', sa.String(length=200), nullable=False),
    sa.Column('timer_id', sa.Integer(), nullable=True),
    sa.Column('error_type', sa.String(length=200), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('first_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_retry_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rw_incidents'))
    )
    with op.batch_alter_table('rw_incidents', schema=None) as batch_op:
        batch_op.create_index('ix_rw_incidents_instance_id', ['instance_id'], unique=False)
        batch_op.create_index('ix_rw_incidents_status_next_retry_at', ['status', 'next_retry_at'], unique=False)


def downgrade() -> None:
    """Drop rw_incidents."""
    with op.batch_alter_table('rw_incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_rw_incidents_status_next_retry_at')
        batch_op.drop_index('ix_rw_incidents_instance_id')
    op.drop_table('rw_incidents')
