"""``rw_pending_fires`` on SQLite: ids that are never given twice (``AUTOINCREMENT``).

A kept chained fire is taken by its id (``StoreTx.take_pending_fire``). SQLite gives a plain ``INTEGER PRIMARY
KEY`` the highest id in the table plus one, so once the tick's sweep had taken the newest kept fire, the next one
kept got its id again: a runner still holding the first (its process's own run after the commit, or a second
sweeper) took the new row and fired the first fire a second time, and the new fire, its row gone, never ran.
PostgreSQL's sequence never repeats an id; there the table stays as it is.

Revision ID: 0010_pending_fire_ids
Revises: 0009_pending_fires
Create Date: 2026-12-06
"""
from __future__ import annotations

from alembic import op

revision = '0010_pending_fire_ids'
down_revision = '0009_pending_fires'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """SQLite: rebuild the table with ``AUTOINCREMENT`` (the kept rows are copied)."""
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table('rw_pending_fires', recreate='always',
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        del batch_op  # the rebuild is the change


def downgrade() -> None:
    """SQLite: rebuild the table without ``AUTOINCREMENT``."""
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table('rw_pending_fires', recreate='always',
                              table_kwargs={'sqlite_autoincrement': False}) as batch_op:
        del batch_op
