"""Compare two simulation stores row by row: the check that a change to the runtime changed no row.

    python benchmarks/compare_stores.py URL_A URL_B

Run the same customer and period with the code before and after a change, each into a fresh store (e.g.
``sqlite:////tmp/before.sqlite`` with the old worktree's interpreter), then compare them. Every table of
``all_tables()`` is read whole; every column is compared, the integer surrogate ids included (they follow the
order of the writes), except what the simulation does not decide: the wall-clock bookkeeping times
(``rw_simulation_events.applied_at``, ``rw_simulations.updated_at``), the random outbox ids and the lease
table (released at the end of every run). Exit 0 when equal; else the first differences per table, exit 1.
"""

from __future__ import annotations

import sys
from collections import Counter

#: columns whose values are not the simulation's to decide (wall clock, random ids)
IGNORED = {"rw_outbox": {"id"}, "rw_simulation_events": {"applied_at"}, "rw_simulations": {"updated_at"}}
SKIPPED_TABLES = {"rw_simulation_leases"}


def dump(url: str) -> dict[str, list[tuple[str, ...]]]:
    """Every table's rows (each value's ``repr``), sorted."""
    import sqlalchemy as sa
    from regelwerk.store.tables import all_tables

    engine = sa.create_engine(url)
    out: dict[str, list[tuple[str, ...]]] = {}
    try:
        with engine.connect() as conn:
            for table in all_tables().sorted_tables:
                if table.name in SKIPPED_TABLES:
                    continue
                columns = [c for c in table.columns if c.name not in IGNORED.get(table.name, ())]
                out[table.name] = sorted(tuple(repr(v) for v in row) for row in conn.execute(sa.select(*columns)))
    finally:
        engine.dispose()
    return out


def differences(a: dict[str, list[tuple[str, ...]]], b: dict[str, list[tuple[str, ...]]]) -> list[str]:
    """What differs, per table (rows only in ``a``, rows only in ``b``)."""
    problems = []
    for name in sorted(set(a) | set(b)):
        left, right = Counter(a.get(name, [])), Counter(b.get(name, []))
        only_a, only_b = left - right, right - left
        if only_a or only_b:
            problems.append(f"{name}: {sum(only_a.values())} row(s) only in A {sorted(only_a)[:2]}, "
                            f"{sum(only_b.values())} only in B {sorted(only_b)[:2]}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    a, b = dump(argv[0]), dump(argv[1])
    problems = differences(a, b)
    for line in problems:
        print(line)
    if not problems:
        print(f"equal: {len(a)} tables, {sum(len(rows) for rows in a.values())} rows")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
