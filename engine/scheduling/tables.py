"""The scheduler's tables: generated items (unique deterministic keys), employee facts, audit.

Declared on the shared :data:`regelwerk.store.tables.metadata` (listed in ``TABLE_MODULES``).
Times are stored as naive UTC (portable between SQLite and PostgreSQL).
"""

from __future__ import annotations

from regelwerk.store.tables import metadata
from sqlalchemy import JSON, Column, Date, DateTime, Index, Integer, String, Table, Text, UniqueConstraint

__all__ = ["employees", "scheduled_events", "scheduled_items"]

#: One row per generated item (trajectory, conversation moment, feedback request...).
#: ``key`` is deterministic (source, period, subject, role, moment...) and UNIQUE: generating
#: twice, concurrently or after a crash, inserts it once.
scheduled_items = Table(
    "rw_scheduled_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(400), nullable=False),
    Column("source", String(200), nullable=False),
    Column("item_type", String(60), nullable=False),
    Column("subject", String(120), nullable=False),
    Column("period", String(40), nullable=False, default=""),
    Column("parent_key", String(400), nullable=True),
    Column("series", String(400), nullable=False),
    Column("due_at", DateTime(), nullable=False),
    Column("status", String(20), nullable=False),
    Column("start_mode", String(20), nullable=False, default="automatic"),
    Column("catch_up", String(10), nullable=False, default="once"),
    Column("grace_seconds", Integer, nullable=False, default=86400),
    Column("workflow", String(200), nullable=True),
    Column("instance_id", String(200), nullable=True),
    Column("version", String(64), nullable=False, default=""),
    Column("payload", Text, nullable=False, default="{}"),
    Column("created_at", DateTime(), nullable=False),
    Column("updated_at", DateTime(), nullable=False),
    UniqueConstraint("key"),
    Index("ix_rw_scheduled_items_status_due", "status", "due_at"),
    Index("ix_rw_scheduled_items_subject", "subject"),
    Index("ix_rw_scheduled_items_source_period", "source", "period", "item_type"),
)

#: Employee facts fed by the host (or the CSV/XLSX import), plus the scheduler's bookkeeping:
#: ``plan_version`` (the bundle version the employee was last planned with; NULL after a change of
#: facts) and ``next_due`` (when the employee must be planned again).
employees = Table(
    "rw_employees",
    metadata,
    Column("id", String(120), primary_key=True),
    Column("name", String(300), nullable=True),
    Column("hire_date", Date(), nullable=True),
    Column("leaving_date", Date(), nullable=True),
    Column("function", String(200), nullable=True),
    Column("department", String(200), nullable=True),
    Column("manager", String(120), nullable=True),
    Column("roles", JSON(), nullable=False, default=lambda: []),
    Column("groups", JSON(), nullable=False, default=lambda: []),
    Column("attributes", JSON(), nullable=False, default=lambda: {}),
    Column("plan_version", String(64), nullable=True),
    Column("next_due", DateTime(), nullable=True),
    Column("updated_at", DateTime(), nullable=False),
    # the tick asks which plans are stale (plan_version NULL or another bundle's, or next_due reached) as four
    # ranges of this index and takes them in id order (scheduling.tick._plan_statements): most days a few
    # employees' entries are read, not every employee's. PostgreSQL's planner does not use it, and it would turn
    # the daily plan stamps into non-HOT updates: SQLite only
    Index("ix_rw_employees_stale", "plan_version", "next_due", "id").ddl_if(dialect="sqlite"),
)

#: Audit trail of every state change of an item after its creation (who, when, what).
scheduled_events = Table(
    "rw_scheduled_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_key", String(400), nullable=False),
    Column("event", String(40), nullable=False),
    Column("actor", String(120), nullable=False),
    Column("at", DateTime(), nullable=False),
    Column("detail", Text, nullable=False, default="{}"),
    Index("ix_rw_scheduled_events_item_key", "item_key"),
)
