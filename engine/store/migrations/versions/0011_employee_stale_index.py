"""``rw_employees``: the index the tick finds stale plans by is ``(plan_version, next_due, id)`` (was ``(id,
plan_version, next_due)``).

The tick asked for stale plans (``plan_version`` NULL or another bundle's, or ``next_due`` reached) with one OR
over every employee in id order: that walked the whole ``(id, plan_version, next_due)`` index twice a day, though
most days a few employees are stale. It now asks for four disjoint ranges of this index (no version, an older or a
newer one, this one with ``next_due`` reached) and sorts the few ids found. The same three columns: the plan stamps
update as many index entries as before. SQLite only, as the index it replaces: PostgreSQL's planner would not use
it, and there it would turn the daily plan stamps into non-HOT updates.

Revision ID: 0011_employee_stale_index
Revises: 0010_outbox_parts
Create Date: 2026-12-07
"""
from __future__ import annotations

from alembic import op

revision = '0011_employee_stale_index'
down_revision = '0010_outbox_parts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Replace the index (SQLite)."""
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table('rw_employees', schema=None) as batch_op:
        batch_op.drop_index('ix_rw_employees_plan')
        batch_op.create_index('ix_rw_employees_stale', ['plan_version', 'next_due', 'id'], unique=False)


def downgrade() -> None:
    """Restore the index before (SQLite)."""
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table('rw_employees', schema=None) as batch_op:
        batch_op.drop_index('ix_rw_employees_stale')
        batch_op.create_index('ix_rw_employees_plan', ['id', 'plan_version', 'next_due'], unique=False)
