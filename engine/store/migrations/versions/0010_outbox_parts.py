"""``rw_outbox_parts``: the lines of a mail that are about one data subject each (a digest's cases).

A digest lists several cases in one mail and has no single ``subject_ref``: erasing a candidate or an employee left
their name in a stored digest. Each line is now recorded with its subject and instance and where the body shows it,
so the AVG erasure finds the mail by every subject it lists and cuts the erased lines out (regelwerk.outbox.parts).

Revision ID: 0010_outbox_parts
Revises: 0009_pending_fires
Create Date: 2026-12-07
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010_outbox_parts'
down_revision = '0009_pending_fires'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        'rw_outbox_parts',
        sa.Column('message_id', sa.String(length=32), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('subject_ref', sa.String(length=200), nullable=True),
        sa.Column('instance_id', sa.String(length=64), nullable=True),
        sa.Column('char_from', sa.Integer(), nullable=False),
        sa.Column('char_to', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('message_id', 'position', name=op.f('pk_rw_outbox_parts')),
    )
    with op.batch_alter_table('rw_outbox_parts', schema=None) as batch_op:
        batch_op.create_index('ix_rw_outbox_parts_subject_ref', ['subject_ref'], unique=False)
        batch_op.create_index('ix_rw_outbox_parts_instance', ['instance_id'], unique=False)


def downgrade() -> None:
    """Drop the table."""
    with op.batch_alter_table('rw_outbox_parts', schema=None) as batch_op:
        batch_op.drop_index('ix_rw_outbox_parts_instance')
        batch_op.drop_index('ix_rw_outbox_parts_subject_ref')
    op.drop_table('rw_outbox_parts')
