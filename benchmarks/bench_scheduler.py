"""Benchmark: the first tick of a work year vs inserting the same rows with SQLAlchemy Core executemany.

    python benchmarks/bench_scheduler.py [--quick] [--employees N] [--pg-employees N] [--pg-url URL]

SQLite: first tick for N employees (1 trajectory each: since issue 14 a moment is created when it
appears, see bench_talent_windows.py for a year's first day with moments), peak memory of the tick
process (ru_maxrss), a second tick with nothing due, and the baseline: the same rows inserted
directly with Core executemany (insert time only, the rows prepared beforehand in batches).
PostgreSQL (REGELWERK_TEST_PG_URL or --pg-url): 1, 2 and 4 concurrent tick processes; items/s
and a duplicate check. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BUNDLE = """
apiVersion: regelwerk/v1
kind: WorkYearCalendar
metadata: {name: kalenderjaar}
spec: {type: calendar}
---
apiVersion: regelwerk/v1
kind: TalentCompetency
metadata: {name: samenwerken}
spec: {label: Samenwerken, type: core, scores: {"1": a, "2": b, "3": c, "4": d, "5": e}}
---
apiVersion: regelwerk/v1
kind: TalentRole
metadata: {name: medewerker}
spec: {label: Medewerker, origin: function, functions: ["*"], competencies: [samenwerken]}
---
apiVersion: regelwerk/v1
kind: DevelopmentCycle
metadata: {name: bench}
spec:
  label: Ontwikkelcyclus
  calendar: kalenderjaar
  roles: [medewerker]
  work_years: [{year: "2027"}]
  moments:
    - {id: doelstelling, label: Doelstelling, dossier_item_type: d, arises: {anchor: work_year.start, at: "09:00"}}
    - {id: loopbaan, label: Loopbaan, dossier_item_type: l, arises: {anchor: work_year.start, plus: P3M, at: "09:00"}}
    - {id: voortgang, label: Voortgang, dossier_item_type: v, arises: {anchor: work_year.middle, at: "09:00"}}
    - {id: beoordeling, label: Beoordeling, dossier_item_type: b, arises: {anchor: work_year.end, minus: P1M}}
"""
NOW = datetime(2026, 12, 10, tzinfo=UTC)  # planning moment of 2027 passed, nothing due


def write_bundle(workdir: Path) -> None:
    """Write the benchmark bundle once, in the parent (tick processes only read it)."""
    bundle = workdir / "bundle"
    bundle.mkdir(exist_ok=True)
    (bundle / "bench.yaml").write_text(BUNDLE, encoding="utf-8")
    standard = Path(__file__).resolve().parent.parent / "definitions" / "standard" / "talent" / "workflows.yaml"
    (bundle / "workflows.yaml").write_text(standard.read_text(encoding="utf-8"), encoding="utf-8")


def compiled_bundle(workdir: Path) -> Any:
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.registry import load_registry

    return compile_bundle(load_bundle(workdir / "bundle"), load_registry())


def employees(n: int) -> list[dict[str, Any]]:
    return [{"id": f"e{i:07d}", "hire_date": "2015-01-01", "function": "medewerker", "manager": "m"} for i in range(n)]


def prepare(url: str, n: int) -> None:
    import sqlalchemy as sa
    from regelwerk.scheduling.employees import EmployeeDirectory

    sa_engine = sa.create_engine(url)
    directory = EmployeeDirectory(sa_engine)
    directory.setup()
    for start in range(0, n, 20_000):
        directory.upsert(employees(n)[start:start + 20_000], NOW)
    sa_engine.dispose()


def _tick_child(url: str, workdir: str, barrier: Any, out: Any) -> None:
    from regelwerk.scheduling.tick import tick

    compiled = compiled_bundle(Path(workdir))
    if barrier is not None:
        barrier.wait(timeout=120)
    started = time.perf_counter()
    summary = tick(url, compiled, NOW, batch_size=1000)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put((seconds, summary.total_created, summary.employees_planned, peak_mb))


def run_ticks(url: str, workdir: Path, processes: int) -> list[tuple[float, int, int, float]]:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    barrier = ctx.Barrier(processes) if processes > 1 else None
    procs = [ctx.Process(target=_tick_child, args=(url, str(workdir), barrier, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    results = []
    deadline = time.monotonic() + 3600
    while len(results) < processes:
        try:
            results.append(out.get(timeout=1))
        except queue.Empty:
            failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if failed or time.monotonic() > deadline:
                for p in procs:
                    p.kill()
                raise SystemExit(f"a tick process failed (exit codes {failed})") from None
    for p in procs:
        p.join()
    return results


def baseline_insert(url: str, compiled: Any, n: int, with_stamps: bool = False) -> tuple[float, int]:
    """The same rows, inserted directly with Core executemany (only the writes are timed).

    ``with_stamps``: also the other rows the tick writes, the employees' plan stamps (an executemany UPDATE of
    ``plan_version`` and ``next_due``), so that the comparison covers everything written."""
    import sqlalchemy as sa
    from regelwerk.scheduling.employees import EmployeeFacts
    from regelwerk.scheduling.tables import employees as emp
    from regelwerk.scheduling.tables import scheduled_items

    if with_stamps:
        prepare(url, n)
    sa_engine = sa.create_engine(url)
    scheduled_items.create(sa_engine, checkfirst=True)
    cycle = compiled.get("DevelopmentCycle", "bench")
    stamp_update = (sa.update(emp).where(emp.c.id == sa.bindparam("b_id"))
                    .values(plan_version=sa.bindparam("b_v"), next_due=sa.bindparam("b_next")))
    elapsed, rows_total = 0.0, 0
    for start in range(0, n, 1000):
        rows, stamps = [], []
        for i in range(start, min(n, start + 1000)):
            plan = cycle.plan(EmployeeFacts(f"e{i:07d}", function="medewerker", manager="m"), NOW)
            rows += [item.row(NOW) for item in plan.items
                     if item.appears_at is None or item.appears_at <= NOW]  # what the tick stores at NOW
            if with_stamps:
                due = plan.next_due.replace(tzinfo=None) if plan.next_due is not None else None
                stamps.append({"b_id": f"e{i:07d}", "b_v": "v", "b_next": due})
        began = time.perf_counter()
        with sa_engine.begin() as conn:
            conn.execute(scheduled_items.insert(), rows)
            if stamps:
                conn.execute(stamp_update, stamps)
        elapsed += time.perf_counter() - began
        rows_total += len(rows)
    sa_engine.dispose()
    return elapsed, rows_total


def count_items(url: str) -> tuple[int, int]:
    import sqlalchemy as sa
    from regelwerk.scheduling.tables import scheduled_items

    sa_engine = sa.create_engine(url)
    with sa_engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(scheduled_items)).scalar_one()
        distinct = conn.execute(sa.select(sa.func.count(sa.distinct(scheduled_items.c.key)))).scalar_one()
    sa_engine.dispose()
    return int(total), int(distinct)


def pg_schema_url(server: str) -> tuple[str, Any]:
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    sep = "&" if "?" in server else "?"
    return f"{server}{sep}options=-csearch_path%3D{schema}", drop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 employees (SQLite), 1,000 (PostgreSQL)")
    parser.add_argument("--employees", type=int, default=None)
    parser.add_argument("--pg-employees", type=int, default=None)
    parser.add_argument("--pg-url", default=os.environ.get("REGELWERK_TEST_PG_URL"))
    args = parser.parse_args(argv)
    n = args.employees or (5_000 if args.quick else 100_000)
    pg_n = args.pg_employees or (1_000 if args.quick else 20_000)
    lines = ["| measurement | value | target |", "|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        write_bundle(workdir)
        compiled = compiled_bundle(workdir)
        url = f"sqlite:///{workdir / 'tick.sqlite'}"
        prepare(url, n)
        first = run_ticks(url, workdir, 1)[0]
        second = run_ticks(url, workdir, 1)[0]
        total, distinct = count_items(url)
        base_seconds, base_rows = baseline_insert(f"sqlite:///{workdir / 'baseline.sqlite'}", compiled, n)
        ratio = first[0] / base_seconds if base_seconds else float("inf")
        full_seconds, _ = baseline_insert(f"sqlite:///{workdir / 'baseline-full.sqlite'}", compiled, n, True)
        lines += [
            f"| SQLite employees | {n:,} | |",
            f"| SQLite first tick: rows created | {first[1]:,} ({total:,} stored, {distinct:,} distinct keys) | "
            f"= baseline rows ({base_rows:,}) |",
            f"| SQLite first tick | {first[0]:.2f} s ({first[1] / first[0]:,.0f} rows/s) | |",
            f"| Core executemany of the same rows | {base_seconds:.2f} s ({base_rows / base_seconds:,.0f} rows/s) | |",
            f"| ratio tick / executemany | {ratio:.2f}x | <= 3x |",
            f"| executemany of the same rows + the employees' plan stamps (everything the tick writes) | "
            f"{full_seconds:.2f} s | |",
            f"| ratio tick / executemany of everything it writes | {first[0] / full_seconds:.2f}x | |",
            f"| peak RSS of the tick process | {first[3]:.0f} MB | < 300 MB |",
            f"| second tick (nothing due) | {second[0] * 1000:.0f} ms = {100 * second[0] / first[0]:.2f}% "
            f"of the first | < 5% |",
        ]
        if args.pg_url:
            for procs in (1, 2, 4):
                pg_url, drop = pg_schema_url(args.pg_url)
                try:
                    prepare(pg_url, pg_n)
                    started = time.perf_counter()
                    results = run_ticks(pg_url, workdir, procs)
                    wall = time.perf_counter() - started
                    total, distinct = count_items(pg_url)
                    created = sum(r[1] for r in results)
                    planned = sum(r[2] for r in results)
                    dupes = total - distinct
                    lines.append(f"| PostgreSQL, {procs} tick process(es), {pg_n:,} employees | {wall:.2f} s, "
                                 f"{total / wall:,.0f} rows/s; {total:,} rows, {dupes} duplicates, "
                                 f"created {created:,} / planned {planned:,} (each once) | 0 duplicates |")
                finally:
                    drop()
        else:
            lines.append("| PostgreSQL | skipped: set REGELWERK_TEST_PG_URL or --pg-url | |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main())
