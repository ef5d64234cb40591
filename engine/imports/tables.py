"""The organisation's units (afdelingen, functies, rollen, taken), on the shared metadata.

People and their links are not here: employees live in ``rw_employees`` (the scheduler's facts) and
their reporting lines, memberships, functions, roles and tasks in ``rw_relations`` (what the permission
matrices read).
"""

from __future__ import annotations

from regelwerk.store.tables import metadata
from sqlalchemy import JSON, Column, DateTime, Index, String, Table

__all__ = ["org_units"]

#: One row per department, function, role or task; ``parent`` is the department above a department,
#: the department of a function and the function of a role.
org_units = Table(
    "rw_org_units",
    metadata,
    Column("kind", String(20), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("name", String(300), nullable=False),
    Column("parent", String(200), nullable=True),
    Column("manager", String(200), nullable=True),
    Column("access", JSON, nullable=False, default=list),
    Column("attributes", JSON, nullable=False, default=dict),
    Column("updated_at", DateTime(), nullable=False),
    Index("ix_rw_org_units_kind_parent", "kind", "parent"),
)
