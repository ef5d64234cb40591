"""The MijnLoket pack's table: employers' product activations and signed addenda (``rw_employer_products``).

Declared on the shared :data:`engine.store.tables.metadata` (listed in ``TABLE_MODULES``; created by the
Alembic revision ``0002_all_areas``); times are naive UTC.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Index, Integer, String, Table

from engine.store.tables import metadata

__all__ = ["employer_products"]

#: An employer's product catalogue history: activations and signed addenda, with the tier before and
#: after each activation. The current state is the replay of these rows.
employer_products = Table(
    "rw_employer_products",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("employer", String(200), nullable=False),
    Column("catalog", String(200), nullable=False),
    Column("action", String(20), nullable=False),  # activate | sign_addendum
    Column("product", String(200), nullable=False, default=""),
    Column("tier_before", String(60), nullable=False, default=""),
    Column("tier_after", String(60), nullable=False, default=""),
    Column("detail", JSON(), nullable=False, default=lambda: {}),
    Column("actor", String(200), nullable=False),
    Column("at", DateTime(), nullable=False),
    Index("ix_rw_employer_products_employer_catalog", "employer", "catalog"),
)
