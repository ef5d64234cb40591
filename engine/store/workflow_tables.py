"""The workflow runtime's tables: instances, history, timers, audit, incidents, definition versions and the chained
fires kept until they ran."""

from __future__ import annotations

import sqlalchemy as sa
from regelwerk.store.records import INSTANCE_ID_LENGTH
from regelwerk.store.tables import metadata

__all__ = ["rw_audit", "rw_definitions", "rw_history", "rw_incidents", "rw_instances", "rw_pending_fires", "rw_timers"]

_TS = sa.DateTime(timezone=True)

rw_instances = sa.Table(
    "rw_instances", metadata,
    sa.Column("id", sa.String(INSTANCE_ID_LENGTH), primary_key=True),
    sa.Column("workflow", sa.String(200), nullable=False),
    sa.Column("definition_version", sa.String(64), nullable=False),
    sa.Column("state", sa.String(200), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("timers_pending", sa.Boolean, nullable=False, default=False),
    sa.Column("created_by", sa.String(200), nullable=False, default=""),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
    sa.Index("ix_rw_instances_workflow_state", "workflow", "state"),
    sa.Index("ix_rw_instances_workflow_definition_version", "workflow", "definition_version"),
)

rw_history = sa.Table(
    "rw_history", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("instance_id", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("event", sa.String(200), nullable=False),
    sa.Column("from_state", sa.String(200), nullable=False),
    sa.Column("to_state", sa.String(200), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("at", _TS, nullable=False),
    sa.Column("definition_version", sa.String(64), nullable=False),
    sa.Column("explain", sa.JSON, nullable=False),
    sa.Index("ix_rw_history_instance_id_version", "instance_id", "version"),
)

rw_timers = sa.Table(
    "rw_timers", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("instance_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(200), nullable=False),
    sa.Column("event", sa.String(200), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("due_at", _TS, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("fired_at", _TS, nullable=True),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Index("ix_rw_timers_status_due_at", "status", "due_at"),
    sa.Index("ix_rw_timers_instance_id_status", "instance_id", "status"),
)

rw_audit = sa.Table(
    "rw_audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", _TS, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(200), nullable=False),
    sa.Column("instance_id", sa.String(64), nullable=True),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Index("ix_rw_audit_instance_id", "instance_id"),
)

rw_definitions = sa.Table(
    "rw_definitions", metadata,
    sa.Column("kind", sa.String(100), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("source", sa.JSON, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
)

rw_incidents = sa.Table(
    "rw_incidents", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("instance_id", sa.String(64), nullable=False),
    sa.Column("event", sa.String(200), nullable=False),
    sa.Column("timer_id", sa.Integer, nullable=True),
    sa.Column("error_type", sa.String(200), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("first_at", _TS, nullable=False),
    sa.Column("last_at", _TS, nullable=False),
    sa.Column("next_retry_at", _TS, nullable=True),
    sa.Column("note", sa.Text, nullable=False),
    sa.Index("ix_rw_incidents_status_next_retry_at", "status", "next_retry_at"),
    sa.Index("ix_rw_incidents_instance_id", "instance_id"),
)

#: a fire a transition chained (``workflow.fire``), kept in that transition's transaction until the chained fire's
#: own unit of work takes it (exactly once: ``StoreTx.take_pending_fire``); the tick sweeps the ones a process that
#: died left behind
rw_pending_fires = sa.Table(
    "rw_pending_fires", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("target", sa.String(INSTANCE_ID_LENGTH), nullable=False),
    sa.Column("event", sa.String(200), nullable=False),
    sa.Column("actor", sa.JSON, nullable=False),
    sa.Column("system", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(INSTANCE_ID_LENGTH), nullable=False),
    sa.Column("after", sa.String(200), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Index("ix_rw_pending_fires_created_at", "created_at"),
    # a taken fire's id is never given again (SQLite reuses the highest id of a plain INTEGER PRIMARY KEY once its
    # row is gone: a runner still holding the taken fire would take the new one instead; revision 0009)
    sqlite_autoincrement=True,
)
