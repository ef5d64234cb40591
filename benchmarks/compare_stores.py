"""Compare two simulation stores row by row: every table, every column (SQLite files or any SQLAlchemy URL).

    python benchmarks/compare_stores.py before.sqlite after.sqlite

For a change that must leave what ``regelwerk simulate`` writes as it was: simulate the same customer on two new
stores (the code before and after the change) and compare them. What differs between any two runs is normalised:
random ids (uuid4 hex, by order of appearance per table and column, so the same id stays the same id) and the
wall-clock moments the run stamps (``VOLATILE``). Random ids are replaced by ``<id>`` and the rows of each table are
then compared sorted (a table keyed by a random id has no order of its own). Prints the first differences per table
and exits 1 when there are any.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from typing import Any

#: (table, column) whose values are the wall clock of the run, not the simulated clock
VOLATILE = {("rw_simulation_events", "applied_at"), ("rw_simulations", "updated_at"),
            ("rw_simulation_leases", "acquired_at"), ("rw_simulation_leases", "renewed_at"),
            ("rw_simulation_leases", "expires_at"), ("rw_simulation_leases", "owner"),
            ("rw_definitions", "created_at")}
_HEX = re.compile(r"\b[0-9a-f]{32}\b")


def _url(text: str) -> str:
    return text if "://" in text else f"sqlite:///{text}"


def _rows(url: str) -> Iterator[tuple[str, list[str], list[tuple[Any, ...]]]]:
    import sqlalchemy as sa

    engine = sa.create_engine(_url(url))
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        for name in sorted(meta.tables):
            table = meta.tables[name]
            order = list(table.primary_key.columns) or list(table.columns)
            rows = conn.execute(sa.select(table).order_by(*order)).all()
            yield name, [c.name for c in table.columns], [tuple(r) for r in rows]
    engine.dispose()


def _normalised(name: str, columns: list[str], rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    def value(column: str, v: Any) -> Any:
        if (name, column) in VOLATILE:
            return "<volatile>"
        if isinstance(v, str) and _HEX.search(v):
            return _HEX.sub("<id>", v)
        return v

    return sorted((tuple(value(c, v) for c, v in zip(columns, row, strict=True)) for row in rows), key=repr)


def compare(before: str, after: str, show: int = 5) -> list[str]:
    """The differences (empty: the stores hold the same rows)."""
    problems: list[str] = []
    a = {name: (cols, _normalised(name, cols, rows)) for name, cols, rows in _rows(before)}
    b = {name: (cols, _normalised(name, cols, rows)) for name, cols, rows in _rows(after)}
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            problems.append(f"{name}: only in {'after' if name not in a else 'before'}")
            continue
        (cols_a, rows_a), (cols_b, rows_b) = a[name], b[name]
        if cols_a != cols_b:
            problems.append(f"{name}: columns {cols_a} != {cols_b}")
            continue
        if len(rows_a) != len(rows_b):
            problems.append(f"{name}: {len(rows_a)} rows before, {len(rows_b)} after")
        shown = 0
        for ra, rb in zip(rows_a, rows_b, strict=False):
            if ra != rb and shown < show:
                shown += 1
                diff = {c: (x, y) for c, x, y in zip(cols_a, ra, rb, strict=True) if x != y}
                problems.append(f"{name}: row differs: {diff}")
        if shown:
            problems.append(f"{name}: {sum(ra != rb for ra, rb in zip(rows_a, rows_b, strict=False))} row(s) differ")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    args = parser.parse_args()
    problems = compare(args.before, args.after)
    for line in problems:
        print(line)
    counts = {name: len(rows) for name, _cols, rows in _rows(args.after)}
    print(f"{len(counts)} tables, {sum(counts.values())} rows compared: "
          + ("the same" if not problems else f"{len(problems)} difference(s)"))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
