"""Alembic environment of the control plane (tenants, keys, deployments, tick queue; RLS on PostgreSQL).

Its version table is ``rw_tenancy_version``, so it runs beside the store's own history (``rw_alembic_version``);
``regelwerk tenants upgrade URL`` runs both.
"""

from __future__ import annotations

from alembic import context
from regelwerk.store.sql import create_sa_engine, lock_migrations
from regelwerk.tenancy.tables import control_metadata

VERSION_TABLE = "rw_tenancy_version"
config = context.config


def run_online() -> None:
    """Run the migrations on a live connection."""
    url = config.get_main_option("sqlalchemy.url") or ""
    engine = create_sa_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=control_metadata, version_table=VERSION_TABLE,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            lock_migrations(connection)  # another process migrating this database is waited for
            context.run_migrations()
    engine.dispose()


run_online()
