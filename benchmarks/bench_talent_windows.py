"""Benchmark: the first tick of a work year with appearance windows and per-moment conditions.

    python benchmarks/bench_talent_windows.py [--quick] [--employees N]

100,000 employees (SQLite) with varied hire dates and contract hours; a cycle whose moments appear
before they are due (``appears_before`` per moment and for the cycle) and carry their own ``when``
(contract hours, four months of the work year by the due date). The tick runs on the year's first day
(09:00) in a fresh process (its peak RSS is ru_maxrss): it plans every employee, creates what has
appeared (trajectories, the goal-setting conversations that appeared three weeks earlier, the
nulmetingen of recent hires) and activates what is due (inserted in their final status). The baseline
writes the same rows, in their final status, with SQLAlchemy Core ``executemany`` (insert time only; rows
prepared beforehand).
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import resource
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

BUNDLE = """
apiVersion: regelwerk/v1
kind: Facts
metadata: {name: employee}
spec:
  attributes:
    contract_hours: {type: number, label: Contracturen}
---
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
  plan_ahead: P1M
  appears_before: P2W
  roles: [medewerker]
  work_years: [{year: "2027"}]
  moments:
    - {id: nulmeting, label: Nulmeting, dossier_item_type: n,
       arises: {anchor: employee.hire_date, plus: P6W, at: "09:00"},
       appears_before: P3W, when: {field: employee.contract_hours, ge: 8}}
    - {id: doelstelling, label: Doelstelling, dossier_item_type: d, arises: {anchor: work_year.start, at: "09:00"},
       appears_before: P3W}
    - {id: loopbaan, label: Loopbaan, dossier_item_type: l, arises: {anchor: work_year.start, plus: P3M, at: "09:00"}}
    - {id: voortgang, label: Voortgang, dossier_item_type: v, arises: {anchor: work_year.middle, at: "09:00"},
       when: {field: employee.contract_hours, ge: 12}}
    - {id: beoordeling, label: Beoordeling, dossier_item_type: b, arises: {anchor: work_year.end, minus: P1M},
       appears_before: P4W, when: {field: employment.months_in_work_year, ge: 4}}
"""
NOW = datetime(2027, 1, 1, 8, 0, tzinfo=UTC)  # 09:00 on the year's first day (Amsterdam)


def write_bundle(workdir: Path) -> None:
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


def employee(i: int) -> dict[str, Any]:
    """Mostly long-serving staff; one in ten hired in the last months of 2026 (nulmeting around New Year)."""
    hire = date(2015, 1, 1) if i % 10 else date(2026, 11, 1) + timedelta(days=i % 61)
    return {"id": f"e{i:07d}", "hire_date": hire.isoformat(), "function": "medewerker", "manager": f"m{i % 500}",
            "contract_hours": (4, 8, 16, 24, 32, 36)[i % 6]}


def prepare(url: str, n: int) -> None:
    import sqlalchemy as sa
    from regelwerk.scheduling.employees import EmployeeDirectory

    sa_engine = sa.create_engine(url)
    directory = EmployeeDirectory(sa_engine)
    directory.setup()
    for start in range(0, n, 20_000):
        directory.upsert([employee(i) for i in range(start, min(n, start + 20_000))], NOW - timedelta(days=60))
    sa_engine.dispose()


def _tick_child(url: str, workdir: str, out: Any) -> None:
    from regelwerk.scheduling.tick import tick

    compiled = compiled_bundle(Path(workdir))
    phases: dict[str, float] = {}
    cpu = time.process_time()
    started = time.perf_counter()

    def progress(phase: str, done: int, total: int) -> None:
        phases[phase] = time.perf_counter() - started

    summary = tick(url, compiled, NOW, batch_size=1000, progress=progress)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put((seconds, summary.total_created, dict(summary.created), dict(summary.activated), peak_mb,
             phases.get("plan", 0.0), cpu))


def run_tick(url: str, workdir: Path) -> tuple[Any, ...]:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=_tick_child, args=(url, str(workdir), out))
    proc.start()
    while True:
        try:
            result = out.get(timeout=1)
            break
        except queue.Empty:
            if proc.exitcode not in (None, 0):
                raise SystemExit(f"the tick process failed (exit code {proc.exitcode})") from None
    proc.join()
    return tuple(result)


def baseline_insert(url: str, compiled: Any, n: int, with_bookkeeping: bool = False) -> tuple[float, int, float]:
    """The rows the tick leaves behind (what has appeared, in its final status), inserted with executemany.

    ``with_bookkeeping``: also what else the tick writes - the employees' plan stamps (an executemany UPDATE),
    so the comparison covers every row written (items due at creation are inserted in their final status, with
    no audit event: nothing changed after creation).
    """
    import sqlalchemy as sa
    from regelwerk.scheduling.employees import parse_employee
    from regelwerk.scheduling.tables import employees as emp
    from regelwerk.scheduling.tables import scheduled_events, scheduled_items

    if with_bookkeeping:
        prepare(url, n)
    sa_engine = sa.create_engine(url)
    scheduled_items.create(sa_engine, checkfirst=True)
    scheduled_events.create(sa_engine, checkfirst=True)
    cycle = compiled.get("DevelopmentCycle", "bench")
    stamp = NOW.replace(tzinfo=None)
    stamp_update = (sa.update(emp).where(emp.c.id == sa.bindparam("b_id"))
                    .values(plan_version=sa.bindparam("b_v"), next_due=sa.bindparam("b_next")))
    elapsed, rows_total, cpu = 0.0, 0, 0.0
    for start in range(0, n, 1000):
        people = [parse_employee(employee(i)) for i in range(start, min(n, start + 1000))]
        rows = []
        for plan in cycle.plan_batch(people, NOW):
            for item in plan.items:
                if item.appears_at is not None and item.appears_at > NOW:
                    continue
                row = item.row(NOW)
                if item.due_at <= NOW:
                    row["status"] = "active" if item.item_type == "trajectory" else "ready"
                rows.append(row)
        stamps = [{"b_id": p.id, "b_v": "v", "b_next": stamp} for p in people] if with_bookkeeping else []
        began, began_cpu = time.perf_counter(), time.process_time()
        with sa_engine.begin() as conn:
            conn.execute(scheduled_items.insert(), rows)
            if stamps:
                conn.execute(stamp_update, stamps)
        elapsed += time.perf_counter() - began
        cpu += time.process_time() - began_cpu
        rows_total += len(rows)
    sa_engine.dispose()
    return elapsed, rows_total, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 employees")
    parser.add_argument("--employees", type=int, default=None)
    args = parser.parse_args(argv)
    n = args.employees or (5_000 if args.quick else 100_000)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        write_bundle(workdir)
        compiled = compiled_bundle(workdir)
        url = f"sqlite:///{workdir / 'tick.sqlite'}"
        prepare(url, n)
        seconds, created, by_type, activated, peak_mb, plan_seconds, tick_cpu = run_tick(url, workdir)
        base_seconds, base_rows, base_cpu = baseline_insert(f"sqlite:///{workdir / 'baseline.sqlite'}", compiled, n)
        full_seconds, _, full_cpu = baseline_insert(f"sqlite:///{workdir / 'baseline2.sqlite'}", compiled, n, True)
    ratio = seconds / base_seconds if base_seconds else float("inf")
    full_ratio = seconds / full_seconds if full_seconds else float("inf")
    kinds = ", ".join(f"{v:,} {k}" for k, v in sorted(by_type.items()) if v)
    lines = [
        "| measurement | value | target |", "|---|---|---|",
        f"| employees (SQLite) | {n:,} | |",
        f"| first tick of 2027 (09:00, 1 January): rows created | {created:,} ({kinds}) | = baseline rows "
        f"({base_rows:,}) |",
        f"| activated by the same tick | {', '.join(f'{v:,} {k}' for k, v in sorted(activated.items()))} | |",
        f"| first tick | {seconds:.2f} s ({created / seconds:,.0f} rows/s; plan phase {plan_seconds:.2f} s); "
        f"CPU {tick_cpu:.2f} s | |",
        f"| Core executemany of the same rows | {base_seconds:.2f} s ({base_rows / base_seconds:,.0f} rows/s); "
        f"CPU {base_cpu:.2f} s | |",
        f"| ratio tick / executemany | {ratio:.2f}x (CPU {tick_cpu / base_cpu:.2f}x) | <= 3x |",
        f"| executemany of the same rows + the employees' plan stamps | "
        f"{full_seconds:.2f} s; CPU {full_cpu:.2f} s | |",
        f"| ratio tick / executemany of everything it writes | {full_ratio:.2f}x (CPU {tick_cpu / full_cpu:.2f}x) | |",
        f"| peak RSS of the tick process | {peak_mb:.0f} MB | < 300 MB |",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main())
