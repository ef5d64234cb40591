"""``rw_pending_fires``: a fire a transition chained (``workflow.fire``), kept until it ran.

The chained fire runs after its transition committed. A process killed between that commit and the chained
fire lost it without a trace (a chaos soak with SIGKILL on PostgreSQL: one or two per two-minute run). The
row is written in the transition's transaction and taken in the chained fire's, so the fire runs exactly
once: by the committing process, or by the tick's sweep when that process died. On SQLite the ids are
``AUTOINCREMENT`` (never given twice: a runner still holding a taken fire must not find a new one under its id).

Revision ID: 0009_pending_fires
Revises: 0008_outbox_instance_index
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009_pending_fires'
down_revision = '0008_outbox_instance_index'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        'rw_pending_fires',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('target', sa.String(length=64), nullable=False),
        sa.Column('event', sa.String(length=200), nullable=False),
        sa.Column('actor', sa.JSON(), nullable=False),
        sa.Column('system', sa.Boolean(), nullable=False),
        sa.Column('source', sa.String(length=64), nullable=False),
        sa.Column('after', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_rw_pending_fires')),
        # SQLite: a taken fire's id is never given again (a plain INTEGER PRIMARY KEY reuses the highest id once its
        # row is gone, and a runner still holding the taken fire would take the new one); PostgreSQL's sequence
        # never repeats one
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table('rw_pending_fires', schema=None) as batch_op:
        batch_op.create_index('ix_rw_pending_fires_created_at', ['created_at'], unique=False)


def downgrade() -> None:
    """Drop the table."""
    with op.batch_alter_table('rw_pending_fires', schema=None) as batch_op:
        batch_op.drop_index('ix_rw_pending_fires_created_at')
    op.drop_table('rw_pending_fires')
