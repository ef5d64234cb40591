"""Workflow runtime tables: instances, history, timers, audit, definition versions.

Revision ID: 0001_workflow
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_workflow"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the tables and their indexes."""
    op.create_table(
        "rw_instances",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("workflow", sa.String(200), nullable=False),
        sa.Column("definition_version", sa.String(64), nullable=False),
        sa.Column("state", sa.String(200), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("timers_pending", sa.Boolean, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rw_instances"),
    )
    op.create_index("ix_rw_instances_workflow_state", "rw_instances", ["workflow", "state"])
    op.create_index("ix_rw_instances_workflow_definition_version", "rw_instances",
                    ["workflow", "definition_version"])
    op.create_table(
        "rw_history",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("event", sa.String(200), nullable=False),
        sa.Column("from_state", sa.String(200), nullable=False),
        sa.Column("to_state", sa.String(200), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("definition_version", sa.String(64), nullable=False),
        sa.Column("explain", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rw_history"),
    )
    op.create_index("ix_rw_history_instance_id_version", "rw_history", ["instance_id", "version"])
    op.create_table(
        "rw_timers",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(200), nullable=False),
        sa.Column("event", sa.String(200), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("fired_at", TS, nullable=True),
        sa.Column("note", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rw_timers"),
    )
    op.create_index("ix_rw_timers_status_due_at", "rw_timers", ["status", "due_at"])
    op.create_index("ix_rw_timers_instance_id_status", "rw_timers", ["instance_id", "status"])
    op.create_table(
        "rw_audit",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("instance_id", sa.String(64), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rw_audit"),
    )
    op.create_index("ix_rw_audit_instance_id", "rw_audit", ["instance_id"])
    op.create_table(
        "rw_definitions",
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("source", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("kind", "name", "version", name="pk_rw_definitions"),
    )


def downgrade() -> None:
    """Drop the tables."""
    for table in ("rw_definitions", "rw_audit", "rw_timers", "rw_history", "rw_instances"):
        op.drop_table(table)
