"""Two SQLite stores compared table by table, row by row: is a change to the engine invisible in what it writes?

    python benchmarks/compare_stores.py --simulate before.db after.db   # a 2,000-employee year into each ...
    python benchmarks/compare_stores.py before.db after.db               # ... or compare two stores made already

``--simulate PATH`` plays the benchmark's 2,000-employee, 400-candidate year (``bench_simulate.generate``, seed 7)
into a new SQLite store at PATH with the regelwerk this interpreter imports (run it once with the code before a
change and once with the code after it, e.g. from two worktrees). Comparing: every table of either store, its rows
in ``rowid`` order (so the generated integer ids and the order rows went in count too), every column. What a run
makes differently by construction (the simulation run's wall-clock times, lease holder and timings) is listed in
``NORMALISED`` and compared as "present or absent" only. Exit status 1 and the first differences per table when the
stores differ.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

#: columns whose values a run makes from the wall clock or at random (never from the simulated data): only whether
#: they are set is compared
NORMALISED: dict[str, set[str]] = {
    "rw_outbox": {"id"},  # a random UUID per message
    "rw_simulation_events": {"applied_at"},  # when the step was applied (wall clock)
    "rw_simulations": {"updated_at"},
}


def simulate(path: Path, customer: Path, employees: int = 2000, candidates: int = 400, days: int = 365) -> None:
    """The benchmark's customer (``bench_simulate.generate``) generated into ``customer`` (made anew) and played for
    ``days`` into a new SQLite store. The customer's path is in the store (where a step's data came from): give
    both runs the same one."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_simulate import generate  # type: ignore[import-not-found]
    from regelwerk.simulation import simulate as run

    start = date(2026, 1, 1)
    shutil.rmtree(customer, ignore_errors=True)
    generate(customer, employees, candidates, start, days)
    run(str(customer), start, start + timedelta(days=days - 1), store=f"sqlite:///{path}")


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


def compare(before: Path, after: Path, shown: int = 5) -> list[str]:
    """The differences between the two stores (empty: identical but for ``NORMALISED``)."""
    a, b = sqlite3.connect(before), sqlite3.connect(after)
    problems: list[str] = []
    try:
        tables_a, tables_b = _tables(a), _tables(b)
        if tables_a != tables_b:
            problems.append(f"tables differ: {sorted(set(tables_a) ^ set(tables_b))}")
        for table in sorted(set(tables_a) & set(tables_b)):
            columns_a, rows_a = _rows(a, table)
            columns_b, rows_b = _rows(b, table)
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
    parser.add_argument("--simulate", metavar="PATH", type=Path, help="play the 2,000-employee year into PATH")
    parser.add_argument("--customer", type=Path, default=Path(tempfile.gettempdir()) / "regelwerk-compare-customer",
                        help="where --simulate generates the customer (default: %(default)s; one run at a time)")
    parser.add_argument("stores", nargs="*", type=Path, help="two SQLite files to compare")
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
