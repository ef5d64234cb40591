"""The control plane's tables: tenants, API keys, deployed bundle versions and the workers' tick queue.

They live on their own ``MetaData`` (not the shared :data:`regelwerk.store.tables.metadata`): a tenant's
SQLite file holds only tenant data, and the control plane has its own Alembic history
(``regelwerk/tenancy/migrations``, version table ``rw_tenancy_version``).

``rw_tenants``, ``rw_api_keys`` and ``rw_tenant_ticks`` are read before a tenant is known (to authenticate a
key, to find due tenants) and carry no tenant data. ``rw_deployments`` is tenant-owned: on PostgreSQL it is
under row-level security like every table of the shared metadata.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["CONTROL_TENANT_OWNED", "control_metadata", "rw_api_keys", "rw_deployments", "rw_tenant_ticks",
           "rw_tenants"]

control_metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
})

_TS = sa.DateTime(timezone=True)

rw_tenants = sa.Table(
    "rw_tenants", control_metadata,
    sa.Column("id", sa.String(63), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("active_version", sa.String(64), nullable=True),
    sa.Column("created_at", _TS, nullable=False),
)

rw_api_keys = sa.Table(
    "rw_api_keys", control_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(63), nullable=True),  # NULL: an admin key
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("revoked_at", _TS, nullable=True),
    sa.Index("ix_rw_api_keys_tenant", "tenant"),
)

rw_deployments = sa.Table(
    "rw_deployments", control_metadata,
    sa.Column("tenant", sa.String(63), primary_key=True),
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("files", sa.JSON, nullable=False),
    sa.Column("matrix", sa.String(200), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
)

rw_tenant_ticks = sa.Table(
    "rw_tenant_ticks", control_metadata,
    sa.Column("tenant", sa.String(63), primary_key=True),
    sa.Column("next_tick_at", _TS, nullable=False),
    sa.Column("last_tick_at", _TS, nullable=True),
    sa.Column("last_worker", sa.String(200), nullable=False, server_default=""),
    sa.Index("ix_rw_tenant_ticks_next_tick_at", "next_tick_at"),
)

#: Control tables that hold a tenant's data (row-level security on PostgreSQL).
CONTROL_TENANT_OWNED: tuple[str, ...] = ("rw_deployments",)
