"""An index on ``rw_outbox (instance_id)``: erasing an instance's personal data finds its mails in the index.

``StoreTx.erase_personal_data`` deletes the outbox rows of the instances it erases (AVG: the mails
carry the person's name and address). Without this index every erasure read the whole outbox, which
only grows (sent mails stay for their audit); the recruitment pack's daily retention sweep erases
candidates every day.

Revision ID: 0008_outbox_instance_index
Revises: 0007_employee_plan_index
Create Date: 2026-12-06
"""
from __future__ import annotations

from alembic import op

revision = '0008_outbox_instance_index'
down_revision = '0007_employee_plan_index'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the index."""
    with op.batch_alter_table('rw_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_rw_outbox_instance', ['instance_id'], unique=False)


def downgrade() -> None:
    """Drop the index."""
    with op.batch_alter_table('rw_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_rw_outbox_instance')
