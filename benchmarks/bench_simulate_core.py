"""``regelwerk simulate`` next to the same rows written with SQLAlchemy Core ``executemany``.

    python benchmarks/bench_simulate_core.py                   # 10,000 employees, 2,000 candidates, one year
    python benchmarks/bench_simulate_core.py --quick           # 500 employees, 100 candidates, three months
    python benchmarks/bench_simulate_core.py --rss 100000 --rss-days 31   # + peak RSS of a large SQLite run
    python benchmarks/bench_simulate_core.py --repeat 3        # three rounds per backend, the median shown

Per backend (SQLite, and PostgreSQL when ``REGELWERK_TEST_PG_URL`` is set), in one run, each side in its
own child process measured the same way (wall time around the work, ``ru_maxrss`` of the child):

- **simulate**: ``regelwerk.simulation.simulate`` on a fresh store (the generated customer of
  ``bench_simulate.py``);
- **core**: every row that simulation left in the store, read back beforehand (not timed), written into
  a fresh store with the same tables and indexes with SQLAlchemy Core ``executemany``, 1,000 rows per
  transaction, tables in dependency order: the disk-speed floor for those rows.

Prints a markdown table with the ratio simulate / core (target: <= 2 on both backends), by wall time (the
target) and by the client process's CPU time (steadier on a shared machine; on PostgreSQL the server's work is
not in it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_simulate import _drop_schema, _pg_schema_url, generate


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _simulate(path: str, url: str, first: str, last: str) -> dict[str, Any]:
    from regelwerk.simulation import simulate

    began, cpu = time.perf_counter(), _cpu()
    result = simulate(path, date.fromisoformat(first), date.fromisoformat(last), store=url)
    return {"seconds": time.perf_counter() - began, "cpu": _cpu() - cpu, "rss_mb": _rss_mb(), "days": result.days}


def _core(source: str, target: str) -> dict[str, Any]:
    import sqlalchemy as sa
    from regelwerk.store.tables import all_tables

    metadata = all_tables()
    engine = sa.create_engine(source)
    data: list[tuple[Any, list[dict[str, Any]]]] = []
    present = set(sa.inspect(engine).get_table_names())
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name not in present:
                continue
            rows = [dict(r._mapping) for r in conn.execute(sa.select(table))]
            if rows:
                data.append((table, rows))
    engine.dispose()
    from regelwerk.store.sql import create_sa_engine

    out = create_sa_engine(target)  # the same connection settings as the store (SQLite: WAL, synchronous=NORMAL)
    metadata.create_all(out)
    began, cpu = time.perf_counter(), _cpu()
    count = 0
    for table, rows in data:
        for start in range(0, len(rows), 1000):
            with out.begin() as conn:
                conn.execute(table.insert(), rows[start:start + 1000])
        count += len(rows)
    seconds, cpu = time.perf_counter() - began, _cpu() - cpu
    out.dispose()
    return {"seconds": seconds, "cpu": cpu, "rss_mb": _rss_mb(), "rows": count,
            "tables": {t.name: len(r) for t, r in data}}


def _child(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", *args], check=False, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"child {args[0]} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _store(backend: str, tmp: Path, name: str) -> tuple[str, str]:
    if backend == "sqlite":
        return f"sqlite:///{tmp / (name + '.sqlite')}", ""
    return _pg_schema_url(os.environ["REGELWERK_TEST_PG_URL"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="500 employees, 100 candidates, three months")
    parser.add_argument("--employees", type=int)
    parser.add_argument("--candidates", type=int)
    parser.add_argument("--days", type=int)
    parser.add_argument("--rss", type=int, default=0, metavar="EMPLOYEES",
                        help="also simulate this many employees on SQLite and report the peak RSS")
    parser.add_argument("--rss-days", type=int, default=365)
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="N rounds per backend, simulate and Core alternating (on a shared machine whose speed "
                             "moves, each ratio is of two runs minutes apart); the table shows the round with the "
                             "median ratio and lists every round's")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        print(json.dumps(_simulate(*rest) if kind == "simulate" else _core(*rest)))
        return
    employees = args.employees or (500 if args.quick else 10_000)
    candidates = args.candidates or (100 if args.quick else 2_000)
    days = args.days or (90 if args.quick else 365)
    start = date(2026, 1, 1)
    end = start + timedelta(days=days - 1)
    backends = ["sqlite"] + (["postgresql"] if os.environ.get("REGELWERK_TEST_PG_URL") and not args.sqlite_only
                             else [])
    table = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        customer = tmp / "customer"
        generate(customer, employees, candidates, start, days)
        for backend in backends:
            rounds = []
            for n in range(max(args.repeat, 1)):
                url, schema = _store(backend, tmp, f"sim{n}")
                copy, copy_schema = _store(backend, tmp, f"core{n}")
                try:
                    sim = _child("simulate", str(customer), url, start.isoformat(), end.isoformat())
                    print(f"{backend} simulate: {sim['seconds']:.1f} s", file=sys.stderr)
                    core = _child("core", url, copy)
                    print(f"{backend} core: {core['seconds']:.1f} s ({core['rows']} rows)", file=sys.stderr)
                finally:
                    for s in (schema, copy_schema):
                        if s:
                            _drop_schema(os.environ["REGELWERK_TEST_PG_URL"], s)
                rounds.append((sim, core))
            rounds.sort(key=lambda r: r[0]["seconds"] / r[1]["seconds"])
            sim, core = rounds[len(rounds) // 2]
            table.append((backend, sim, core, [r[0]["seconds"] / r[1]["seconds"] for r in rounds]))
        large = None
        # candidates in the main run's proportion (one per five employees); the story is a data file, read
        # under the data limit (it grows past the 2 MB definition limit at about 10,000 candidates)
        large_candidates = args.rss // 5
        if args.rss:
            big = tmp / "large"
            generate(big, args.rss, large_candidates, start, args.rss_days)
            last = start + timedelta(days=args.rss_days - 1)
            large = _child("simulate", str(big), f"sqlite:///{tmp / 'large.sqlite'}", start.isoformat(),
                           last.isoformat())
    print(f"\n### simulate vs Core executemany: {employees} employees, {candidates} candidates, {days} days\n")
    print("| store | rows | simulate s | Core executemany s | ratio | client CPU s (simulate / Core) | CPU ratio "
          "| simulate peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for backend, sim, core, _ in table:
        print(f"| {backend} | {core['rows']:,} | {sim['seconds']:.1f} | {core['seconds']:.1f} "
              f"| {sim['seconds'] / core['seconds']:.2f}x | {sim['cpu']:.1f} / {core['cpu']:.1f} "
              f"| {sim['cpu'] / core['cpu']:.2f}x | {sim['rss_mb']:.0f} |")
    for backend, _, _, ratios in table:
        if len(ratios) > 1:
            print(f"\n{backend}: the median of {len(ratios)} rounds; their ratios "
                  + ", ".join(f"{r:.2f}x" for r in ratios))
    if table:
        print("\nrows per table: " + ", ".join(f"{k} {v:,}" for k, v in sorted(table[0][2]["tables"].items())))
    if large is not None:
        print(f"\n{args.rss:,} employees, {large_candidates:,} candidates, {args.rss_days} days on SQLite: "
              f"{large['seconds']:.1f} s, peak RSS {large['rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
