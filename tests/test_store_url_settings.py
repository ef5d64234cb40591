"""Whatever is given a store URL (a tick, the relationship facts, the invitations) connects with the store's own
settings (``create_sa_engine``).

``tick(url)`` made a bare SQLAlchemy engine: on PostgreSQL without ``plan_cache_mode = force_custom_plan``,
psycopg's prepared statements got a generic plan that compares each row with every subject of a batch's array
(``StoreDirectory.stored``): the first tick of 50,000 employees took 30.8 s instead of 4.7 s; on SQLite without
the busy timeout and WAL of every other connection to the store.
"""

from __future__ import annotations

from regelwerk.scheduling.tick import resolve_target


def _setting(url: str, sql: str) -> str:
    target = resolve_target(url)
    try:
        with target.sa_engine.connect() as conn:
            return str(conn.exec_driver_sql(sql).scalar_one()).lower()
    finally:
        target.sa_engine.dispose()


def test_a_tick_from_a_postgresql_url_plans_each_statement_for_its_parameters(pg_url: str) -> None:
    assert _setting(pg_url, "SHOW plan_cache_mode") == "force_custom_plan"


def test_a_tick_from_a_sqlite_url_waits_for_locks_and_uses_wal(sqlite_url: str) -> None:
    assert _setting(sqlite_url, "PRAGMA busy_timeout") == "30000"
    assert _setting(sqlite_url, "PRAGMA journal_mode") == "wal"


def test_relationships_and_invitations_from_a_url_use_the_store_settings(sqlite_url: str, pg_url: str) -> None:
    from regelwerk.permissions.invitations import SqlInvitations
    from regelwerk.permissions.sql import SqlRelationships

    for url, sql, expected in ((sqlite_url, "PRAGMA busy_timeout", "30000"),
                               (pg_url, "SHOW plan_cache_mode", "force_custom_plan")):
        for store in (SqlRelationships(url, create=True), SqlInvitations(url, create=True)):
            try:
                with store.engine.connect() as conn:
                    assert str(conn.exec_driver_sql(sql).scalar_one()).lower() == expected
            finally:
                store.engine.dispose()
