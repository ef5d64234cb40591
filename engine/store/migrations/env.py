"""Alembic environment for regelwerk's tables (shipped in the package; ``regelwerk db upgrade URL``).

The version table is ``rw_alembic_version`` so a host application's own Alembic history
(``alembic_version``) in the same database is left alone.
"""

from __future__ import annotations

from alembic import context
from regelwerk.store.sql import create_sa_engine, lock_migrations
from regelwerk.store.tables import all_tables

VERSION_TABLE = "rw_alembic_version"
config = context.config
target_metadata = all_tables()


def run_offline() -> None:
    """Emit SQL without a connection (``alembic upgrade --sql``)."""
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run the migrations on a live connection."""
    url = config.get_main_option("sqlalchemy.url") or ""
    engine = create_sa_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, version_table=VERSION_TABLE,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            lock_migrations(connection)  # another process migrating this database is waited for
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
