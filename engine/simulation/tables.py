"""The simulation's tables: its progress and the events it applied.

Declared on the shared :data:`regelwerk.store.tables.metadata` (listed in ``TABLE_MODULES``); times are
naive UTC, days are dates.
"""

from __future__ import annotations

from regelwerk.store.tables import metadata
from sqlalchemy import JSON, Boolean, Column, Date, DateTime, Index, Integer, String, Table, UniqueConstraint

__all__ = ["simulation_events", "simulations"]

#: One row per simulated customer (keyed by the bundle's name): how far the calendar was played.
simulations = Table(
    "rw_simulations",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("bundle_version", String(64), nullable=False),
    Column("first_day", Date(), nullable=False),
    Column("last_day", Date(), nullable=True),
    Column("data_imported", Boolean(), nullable=False, default=False),
    Column("totals", JSON(), nullable=False, default=lambda: {}),  # cumulative counters (renewals asked...)
    Column("updated_at", DateTime(), nullable=False),
)

#: Every dated event the simulation applied (data rows and story events), once: ``key`` is
#: ``story:<index>`` or ``data:<file>:<id>``; ``status`` applied | refused.
simulation_events = Table(
    "rw_simulation_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("simulation", String(200), nullable=False),
    Column("key", String(300), nullable=False),
    Column("day", Date(), nullable=False),
    Column("type", String(40), nullable=False),
    Column("status", String(16), nullable=False),
    Column("message", String(1000), nullable=False, default=""),
    Column("detail", JSON(), nullable=False, default=lambda: {}),
    Column("applied_at", DateTime(), nullable=False),
    UniqueConstraint("simulation", "key"),
    Index("ix_rw_simulation_events_simulation_status", "simulation", "status"),
)
