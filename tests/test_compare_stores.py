"""benchmarks/compare_stores.py, the proof a speed change wrote what was written before, finds differences (a
comparer that always says "identical" proves nothing): on SQLite files and on PostgreSQL schemas."""

from __future__ import annotations

import sqlite3
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import compare_stores

ROWS = [("a", "planned", "2026-01-01"), ("b", "started", "2026-02-01")]


def _sqlite(path: Path, rows: list[tuple[str, str, str]], outbox_id: str = "x1") -> str:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE rw_items (key TEXT, status TEXT, due TEXT)")
    conn.executemany("INSERT INTO rw_items VALUES (?, ?, ?)", rows)
    conn.execute("CREATE TABLE rw_outbox (id TEXT, subject TEXT)")
    conn.execute("INSERT INTO rw_outbox VALUES (?, 'hello')", (outbox_id,))
    conn.commit()
    conn.close()
    return str(path)


def test_sqlite_stores_equal_but_for_random_ids(tmp_path: Path) -> None:
    a = _sqlite(tmp_path / "a.db", ROWS, "x1")
    b = _sqlite(tmp_path / "b.db", ROWS, "y2")  # the outbox id is random per run: compared as set or not
    assert compare_stores.compare(a, b) == []


@pytest.mark.parametrize("other", [
    [("a", "planned", "2026-01-01"), ("b", "cancelled", "2026-02-01")],  # a value
    [("b", "started", "2026-02-01"), ("a", "planned", "2026-01-01")],  # the order rows went in (rowid)
    ROWS[:1],  # a row missing
])
def test_sqlite_stores_that_differ(tmp_path: Path, other: list[tuple[str, str, str]]) -> None:
    problems = compare_stores.compare(_sqlite(tmp_path / "a.db", ROWS), _sqlite(tmp_path / "b.db", other))
    assert problems and all(p.startswith("rw_items:") for p in problems)


@pytest.fixture
def schemas(pg_server_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    import sqlalchemy as sa

    monkeypatch.setenv("REGELWERK_TEST_PG_URL", pg_server_url)
    names = (f"cmp_{uuid.uuid4().hex[:10]}", f"cmp_{uuid.uuid4().hex[:10]}")
    admin = sa.create_engine(pg_server_url)
    with admin.begin() as conn:
        for name in names:
            conn.exec_driver_sql(f"CREATE SCHEMA {name}")
            conn.exec_driver_sql(f"CREATE TABLE {name}.rw_items (key text, status text, due date)")
            conn.exec_driver_sql(f"CREATE TABLE {name}.rw_outbox (id uuid, subject text)")
            conn.exec_driver_sql(f"INSERT INTO {name}.rw_outbox VALUES (gen_random_uuid(), 'hello')")
    yield names
    with admin.begin() as conn:
        for name in names:
            conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
    admin.dispose()


def test_postgresql_schemas_compared_row_by_row(schemas: tuple[str, str]) -> None:
    import sqlalchemy as sa

    a, b = schemas
    admin = sa.create_engine(compare_stores.os.environ["REGELWERK_TEST_PG_URL"])
    with admin.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO {a}.rw_items VALUES ('a', 'planned', '2026-01-01'), "
                             "('b', 'started', '2026-02-01'), ('c', NULL, NULL)")
        # the same rows in another order: PostgreSQL has no rowid, its rows compare as sorted lists
        conn.exec_driver_sql(f"INSERT INTO {b}.rw_items VALUES ('c', NULL, NULL), ('b', 'started', '2026-02-01'), "
                             "('a', 'planned', '2026-01-01')")
    assert compare_stores.compare(f"pg:{a}", f"pg:{b}") == []
    with admin.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {b}.rw_items SET status = 'cancelled' WHERE key = 'b'")
    admin.dispose()
    problems = compare_stores.compare(f"pg:{a}", f"pg:{b}")
    assert problems and all(p.startswith("rw_items:") for p in problems)
    assert "cancelled" in problems[0]


def test_a_schema_name_is_an_identifier() -> None:
    with pytest.raises(SystemExit):
        compare_stores.compare("pg:x; DROP TABLE y", "pg:z")
