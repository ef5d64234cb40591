"""The simulation's tables: its progress and the events it applied.

Declared on the shared :data:`regelwerk.store.tables.metadata` (listed in ``TABLE_MODULES``); times are
naive UTC, days are dates.
"""

from __future__ import annotations

from regelwerk.store.tables import metadata
from sqlalchemy import JSON, Boolean, Column, Date, DateTime, Index, Integer, String, Table, UniqueConstraint

__all__ = ["simulation_events", "simulation_leases", "simulations"]

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

#: Who is simulating a store right now: one row per simulated customer while a run holds it. A second run
#: refuses while the lease is live; a run takes over a stale lease (expired, or its process is gone).
simulation_leases = Table(
    "rw_simulation_leases",
    metadata,
    Column("simulation", String(200), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", DateTime(), nullable=False),
    Column("expires_at", DateTime(), nullable=False),
)
