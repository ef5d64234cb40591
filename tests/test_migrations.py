"""The shipped Alembic revisions create exactly the tables every area declares (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from regelwerk.store.sql import upgrade
from regelwerk.store.tables import all_tables


def _differences(url: str) -> list[object]:
    upgrade(url)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            diff = compare_metadata(context, all_tables())
    finally:
        engine.dispose()
    # the version table is Alembic's own
    return [d for d in diff if not (isinstance(d, tuple) and d[0] == "remove_table"
                                    and d[1].name == "rw_alembic_version")]


def test_migrations_match_every_table_on_sqlite(sqlite_url: str) -> None:
    assert _differences(sqlite_url) == []


def test_migrations_match_every_table_on_postgresql(pg_url: str) -> None:
    assert _differences(pg_url) == []


def test_upgrade_twice_is_a_no_op(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    upgrade(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        versions = conn.execute(sa.text("select version_num from rw_alembic_version")).scalars().all()
    engine.dispose()
    assert len(versions) == 1
