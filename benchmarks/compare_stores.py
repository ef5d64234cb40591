"""Two stores compared table by table, row by row: is a change to the engine invisible in what it writes?

    python benchmarks/compare_stores.py --simulate before.db after.db   # a 2,000-employee year into each ...
    python benchmarks/compare_stores.py before.db after.db               # ... or compare two stores made already
    python benchmarks/compare_stores.py --simulate pg:before_run        # the same on PostgreSQL: a schema ...
    python benchmarks/compare_stores.py pg:before_run pg:after_run      # ... of REGELWERK_TEST_PG_URL's database

``--simulate PATH`` plays the benchmark's 2,000-employee, 400-candidate year (``bench_simulate.generate``, seed 7)
into a new SQLite store at PATH with the regelwerk this interpreter imports (run it once with the code before a
change and once with the code after it, e.g. from two worktrees). Comparing: every table of either store, its rows
in ``rowid`` order (so the generated integer ids and the order rows went in count too), every column. What a run
makes differently by construction (the simulation run's wall-clock times, lease holder and timings) is listed in
``NORMALISED`` and compared as "present or absent" only. Exit status 1 and the first differences per table when the
stores differ.

A store named ``pg:SCHEMA`` is that schema of the PostgreSQL database ``REGELWERK_TEST_PG_URL`` names (``--simulate``
drops and creates it). PostgreSQL has no ``rowid``: its rows are compared as sorted lists of their columns' text, so
the order rows went in is not compared there (generated integer ids still are: an insert order that changed shows).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

#: columns whose values a run makes from the wall clock or at random (never from the simulated data): only whether
#: they are set is compared
NORMALISED: dict[str, set[str]] = {
    "rw_outbox": {"id"},  # a random UUID per message
    "rw_simulation_events": {"applied_at"},  # when the step was applied (wall clock)
    "rw_simulations": {"updated_at"},
}


PG_PREFIX = "pg:"


def _pg_url(schema: str) -> str:
    """The URL of ``schema`` in the database ``REGELWERK_TEST_PG_URL`` names (its ``search_path``)."""
    import sqlalchemy as sa

    base = os.environ.get("REGELWERK_TEST_PG_URL")
    if not base:
        sys.exit("pg:SCHEMA needs REGELWERK_TEST_PG_URL (the database the schemas live in)")
    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return str(url.render_as_string(hide_password=False))


def _pg_admin() -> Any:
    import sqlalchemy as sa

    return sa.create_engine(os.environ["REGELWERK_TEST_PG_URL"])


def _schema(store: str) -> str | None:
    """The schema of a ``pg:SCHEMA`` store (a plain identifier), None for a SQLite file."""
    if not store.startswith(PG_PREFIX):
        return None
    schema = store[len(PG_PREFIX):]
    if not schema.isidentifier():
        sys.exit(f"{store}: a schema name is letters, digits and underscores")
    return schema


def simulate(store: str, customer: Path, employees: int = 2000, candidates: int = 400, days: int = 365) -> None:
    """The benchmark's customer (``bench_simulate.generate``) generated into ``customer`` (made anew) and played for
    ``days`` into a new store: a SQLite file, or a ``pg:SCHEMA`` (dropped and created). The customer's path is in the
    store (where a step's data came from): give both runs the same one."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_simulate import generate  # type: ignore[import-not-found]
    from regelwerk.simulation import simulate as run

    schema = _schema(store)
    if schema is None:
        url = f"sqlite:///{store}"
    else:
        admin = _pg_admin()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        admin.dispose()
        url = _pg_url(schema)
    start = date(2026, 1, 1)
    shutil.rmtree(customer, ignore_errors=True)
    generate(customer, employees, candidates, start, days)
    run(str(customer), start, start + timedelta(days=days - 1), store=url)


def _tables(conn: sqlite3.Connection) -> list[str]:
    return [name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]


def _rows(conn: sqlite3.Connection, table: str) -> tuple[list[str], list[tuple[object, ...]]]:
    cursor = conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid')
    columns = [d[0] for d in cursor.description]
    skip = NORMALISED.get(table, set())
    rows = [tuple((value is not None) if name in skip else value for name, value in zip(columns, row, strict=True))
            for row in cursor]
    return columns, rows


class _Sqlite:
    """A SQLite store's tables and rows (in ``rowid`` order)."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path)

    def tables(self) -> list[str]:
        return _tables(self.conn)

    def rows(self, table: str) -> tuple[list[str], list[tuple[object, ...]]]:
        return _rows(self.conn, table)

    def close(self) -> None:
        self.conn.close()


class _Postgres:
    """A PostgreSQL schema's tables and rows: every column as text (a normalised one as whether it is set), the
    rows sorted (no ``rowid``: the order rows went in is not compared)."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.engine = _pg_admin()
        self.conn = self.engine.connect()

    def tables(self) -> list[str]:
        import sqlalchemy as sa

        return [name for (name,) in self.conn.execute(sa.text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = :s AND table_type = 'BASE TABLE' "
            "ORDER BY table_name"), {"s": self.schema})]

    def rows(self, table: str) -> tuple[list[str], list[tuple[object, ...]]]:
        import sqlalchemy as sa

        columns = [name for (name,) in self.conn.execute(sa.text(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND table_name = :t "
            "ORDER BY ordinal_position"), {"s": self.schema, "t": table})]
        skip = NORMALISED.get(table, set())
        picked = ", ".join(f'("{c}" IS NOT NULL)' if c in skip else f'"{c}"::text' for c in columns)
        found = self.conn.execute(sa.text(f'SELECT {picked} FROM "{self.schema}"."{table}"')).all()
        return columns, sorted((tuple(row) for row in found), key=lambda row: [(v is None, str(v)) for v in row])

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


def _open(store: str) -> _Sqlite | _Postgres:
    schema = _schema(store)
    return _Sqlite(store) if schema is None else _Postgres(schema)


def compare(before: str | Path, after: str | Path, shown: int = 5) -> list[str]:
    """The differences between the two stores (empty: identical but for ``NORMALISED``): SQLite files or
    ``pg:SCHEMA`` stores (one of each compares nothing useful: their values' text differs)."""
    a, b = _open(str(before)), _open(str(after))
    problems: list[str] = []
    try:
        tables_a, tables_b = a.tables(), b.tables()
        if tables_a != tables_b:
            problems.append(f"tables differ: {sorted(set(tables_a) ^ set(tables_b))}")
        for table in sorted(set(tables_a) & set(tables_b)):
            columns_a, rows_a = a.rows(table)
            columns_b, rows_b = b.rows(table)
            if columns_a != columns_b:
                problems.append(f"{table}: columns differ: {columns_a} / {columns_b}")
                continue
            if len(rows_a) != len(rows_b):
                problems.append(f"{table}: {len(rows_a)} rows / {len(rows_b)} rows")
            found = 0
            for number, (row_a, row_b) in enumerate(zip(rows_a, rows_b, strict=False)):  # a shorter table: its rows
                if row_a != row_b:
                    changed = {c: (x, y) for c, x, y in zip(columns_a, row_a, row_b, strict=True) if x != y}
                    problems.append(f"{table}: row {number + 1}: {changed}")
                    found += 1
                    if found >= shown:
                        problems.append(f"{table}: ... (first {shown} shown)")
                        break
    finally:
        a.close()
        b.close()
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--simulate", metavar="STORE",
                        help="play the 2,000-employee year into STORE (a SQLite file or pg:SCHEMA)")
    parser.add_argument("--customer", type=Path, default=Path(tempfile.gettempdir()) / "regelwerk-compare-customer",
                        help="where --simulate generates the customer (default: %(default)s; one run at a time)")
    parser.add_argument("stores", nargs="*", help="two stores to compare (SQLite files or pg:SCHEMA)")
    args = parser.parse_args()
    if args.simulate is not None:
        simulate(args.simulate, args.customer)
        print(f"simulated into {args.simulate}")
    if not args.stores:
        return
    if len(args.stores) != 2:
        parser.error("give two stores to compare")
    problems = compare(*args.stores)
    for line in problems:
        print(line)
    if problems:
        sys.exit(1)
    print(f"identical: every table of {args.stores[0]} and {args.stores[1]}, row by row")


if __name__ == "__main__":
    main()
