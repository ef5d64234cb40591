"""Tenant isolation on PostgreSQL, below the application code: a ``tenant`` column and row-level security.

Every tenant-owned table (the shared metadata's tables and ``rw_deployments``) gets

- ``tenant text NOT NULL DEFAULT current_setting('regelwerk.tenant')``: an insert that does not name the
  tenant takes it from the transaction's setting (unset: the insert fails; the code above needs no change);
- its primary key and unique constraints extended by ``tenant`` (two customers may use the same ids);
- ``ENABLE`` and ``FORCE ROW LEVEL SECURITY`` with one policy: a row is visible and writable only when its
  ``tenant`` equals ``current_setting('regelwerk.tenant', true)`` (an empty or missing setting sees nothing).

The service connects as a role that neither owns the tables nor is superuser nor has ``BYPASSRLS``, and sets
the tenant per transaction with ``set_config('regelwerk.tenant', :tenant, true)`` in a SQLAlchemy ``begin``
event (:func:`bind_tenants`); the setting ends with the transaction, so a pooled connection forgets it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

__all__ = ["TENANT_OPTION", "apply_row_level_security", "bind_tenants", "conflict_columns", "grant_app_role",
           "tenant_engine", "tenant_owned_tables", "unprotected_tables"]

#: The execution option that carries a connection's tenant.
TENANT_OPTION = "regelwerk_tenant"
POLICY = "rw_tenant_isolation"
_SETTING = "regelwerk.tenant"
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def tenant_owned_tables() -> list[str]:
    """Every table that holds a tenant's data: the shared metadata's and the control plane's tenant-owned ones."""
    from regelwerk.store.tables import all_tables
    from regelwerk.tenancy.tables import CONTROL_TENANT_OWNED

    return sorted({*all_tables().tables, *CONTROL_TENANT_OWNED})


def _quote(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def apply_row_level_security(conn: sa.Connection, tables: Iterable[str] | None = None) -> list[str]:
    """Give every existing tenant-owned table the tenant column, keys and policy (idempotent).

    Runs as the tables' owner (the Alembic revision of the control plane, ``regelwerk tenants upgrade``);
    existing rows are given to the tenant ``default``. Returns the tables changed.
    """
    changed = []
    names = list(tables) if tables is not None else tenant_owned_tables()
    existing = set(sa.inspect(conn).get_table_names())
    for name in names:
        if name not in existing:
            continue
        table = _quote(conn, name)
        columns = {c["name"] for c in sa.inspect(conn).get_columns(name)}
        if "tenant" not in columns:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN tenant varchar(63) NOT NULL DEFAULT 'default'")
            conn.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN tenant SET DEFAULT current_setting('{_SETTING}')")
            _extend_keys(conn, name)
            changed.append(name)
        conn.exec_driver_sql(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        conn.exec_driver_sql(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        conn.exec_driver_sql(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        conn.exec_driver_sql(
            f"CREATE POLICY {POLICY} ON {table} "
            f"USING (tenant = nullif(current_setting('{_SETTING}', true), '')) "
            f"WITH CHECK (tenant = nullif(current_setting('{_SETTING}', true), ''))")
    return changed


def _extend_keys(conn: sa.Connection, name: str) -> None:
    """Primary key, unique constraints and unique indexes of ``name`` gain ``tenant`` as their first column."""
    table = _quote(conn, name)
    rows = conn.exec_driver_sql(
        "SELECT c.conname, c.contype, array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i) "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) "
        "FROM pg_constraint c WHERE c.conrelid = %(t)s::regclass AND c.contype IN ('p', 'u')",
        {"t": name}).all()
    for conname, contype, cols in rows:
        if "tenant" in cols:
            continue
        listed = ", ".join(_quote(conn, c) for c in ["tenant", *cols])
        kind = "PRIMARY KEY" if contype == "p" else "UNIQUE"
        conn.exec_driver_sql(f"ALTER TABLE {table} DROP CONSTRAINT {_quote(conn, conname)}")
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD CONSTRAINT {_quote(conn, conname)} {kind} ({listed})")
    for index in sa.inspect(conn).get_indexes(name):
        if not index.get("unique") or "tenant" in index["column_names"]:
            continue
        idx = _quote(conn, str(index["name"]))
        listed = ", ".join(_quote(conn, str(c)) for c in ["tenant", *index["column_names"]])
        conn.exec_driver_sql(f"DROP INDEX {idx}")
        conn.exec_driver_sql(f"CREATE UNIQUE INDEX {idx} ON {table} ({listed})")


def unprotected_tables(conn: sa.Connection) -> list[str]:
    """Tenant-owned tables without forced row-level security (the service refuses to start if any)."""
    rows = conn.exec_driver_sql(
        "SELECT relname FROM pg_class WHERE relkind = 'r' AND relrowsecurity AND relforcerowsecurity "
        "AND relnamespace = current_schema()::regnamespace").scalars().all()
    protected = set(rows)
    existing = set(sa.inspect(conn).get_table_names())
    return [t for t in tenant_owned_tables() if t in existing and t not in protected]


def grant_app_role(conn: sa.Connection, role: str) -> None:
    """Let ``role`` (not the owner, not superuser) read and write every table and sequence of the current schema."""
    if not _ROLE.match(role):
        raise ValueError(f"not a plain role name: {role!r}")
    schema = _quote(conn, str(conn.exec_driver_sql("SELECT current_schema()").scalar_one()))
    conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
    conn.exec_driver_sql(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}")
    conn.exec_driver_sql(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}")


def bind_tenants(engine: sa.Engine) -> sa.Engine:
    """Install the ``begin`` hook: a connection carrying :data:`TENANT_OPTION` sets the tenant for its transaction."""

    @event.listens_for(engine, "begin")
    def _set_tenant(conn: sa.Connection) -> None:
        tenant = conn.get_execution_options().get(TENANT_OPTION)
        if tenant:
            conn.exec_driver_sql("SELECT set_config('regelwerk.tenant', %(t)s, true)", {"t": tenant})

    return engine


def tenant_engine(engine: sa.Engine, tenant: str) -> sa.Engine:
    """A view of ``engine`` (same pool) whose every transaction runs as ``tenant``."""
    return engine.execution_options(**{TENANT_OPTION: tenant})


def conflict_columns(conn: Any, columns: list[str]) -> list[str]:
    """The ``ON CONFLICT`` target for ``columns`` on this connection: with ``tenant`` first on a tenant-bound one."""
    options = conn.get_execution_options()
    return ["tenant", *columns] if options.get(TENANT_OPTION) else columns
