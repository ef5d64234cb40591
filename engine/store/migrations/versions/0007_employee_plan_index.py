"""An index on ``rw_employees (id, plan_version, next_due)``: the tick finds stale plans in the index alone.

The tick walks employees in primary-key order (keyset batches) and asks which plans are stale
(``plan_version`` NULL or another bundle's, or ``next_due`` reached). Without this index every
employee's row is read for that each day; with it, the walk reads the narrow index in id order and
only the stale employees' rows. It leads with ``id`` so that the walk keeps its order (an index led
by ``plan_version`` or ``next_due`` made SQLite pick it and sort every batch). SQLite only: PostgreSQL's planner
does not use it, and there it would turn the daily plan stamps into non-HOT updates.

Revision ID: 0007_employee_plan_index
Revises: 0006_incidents
Create Date: 2026-12-06
"""
from __future__ import annotations

from alembic import op

revision = '0007_employee_plan_index'
down_revision = '0006_incidents'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the index (SQLite)."""
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table('rw_employees', schema=None) as batch_op:
        batch_op.create_index('ix_rw_employees_plan', ['id', 'plan_version', 'next_due'], unique=False)


def downgrade() -> None:
    """Drop the index (SQLite)."""
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table('rw_employees', schema=None) as batch_op:
        batch_op.drop_index('ix_rw_employees_plan')
