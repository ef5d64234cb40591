"""Recruitment benchmarks (SQLite): applying and moving candidates through the engine vs raw SQLAlchemy,
and a retention sweep over many candidates vs deleting the same rows directly with SQLAlchemy Core.
Both baselines use the engine store's SQLite pragmas (WAL, synchronous=NORMAL), so the ratios compare
work, not durability settings. The sweep does more than the direct baseline (questionnaires, timers,
audit details and the anonymous retention log as well); both move the erased instances' versions on and write
one ``$erase`` history row per instance (the store's record of the erasure).

    python benchmarks/bench_recruitment.py [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
STANDARD = ROOT / "definitions" / "standard" / "recruitment"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def measure(fn: Callable[[], Any]) -> tuple[float, float]:
    """Seconds and peak traced memory (MiB) of one call."""
    tracemalloc.start()
    started = time.perf_counter()
    fn()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """Seconds of one call (no memory tracing: it would slow Python-heavy code unevenly)."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started, 0.0


def raw_engine(path: Path) -> sa.engine.Engine:
    """A plain SQLAlchemy engine on a SQLite file with the same pragmas as the engine's store (WAL,
    synchronous=NORMAL, ...), so that the baseline pays the same durability cost per commit."""
    from regelwerk.store.sql import SQLITE_PRAGMAS

    engine = sa.create_engine(f"sqlite:///{path}")

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    return engine


def bench_transitions(workdir: Path, n: int) -> list[tuple[str, str, str, str]]:
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.registry import load_registry
    from regelwerk.runtime import Engine
    from regelwerk.store.sql import SqlStore
    from regelwerk.workflows.ports import RoleTable
    from regelwerk_packs.recruitment.service import Recruitment
    from regelwerk_packs.recruitment.tables import candidates

    registry = load_registry()
    compiled = compile_bundle(load_bundle(STANDARD), registry)
    store = SqlStore(f"sqlite:///{workdir / 'engine.sqlite'}")
    store.setup()
    # the web form (role intake) registers candidates; the service checks everything else itself
    engine = Engine(compiled, store=store, registry=registry, clock=lambda: START,
                    permissions=RoleTable({"register": ["intake"]}))
    rec = Recruitment(engine)
    vid = rec.open_vacancy({"id": "bea", "roles": ["beheerder"]}, title="Kok", function="kok",
                           department="keuken", manager="mo", team=["tom"])
    ids: list[str] = []

    def apply_all() -> None:
        for i in range(n):
            ids.append(rec.apply(vid, first_name=f"K{i}", last_name="Test", email=f"k{i}@example.nl"))

    def move_all() -> None:
        for cid in ids:
            rec.move("tom", cid, "screening")
            rec.move("tom", cid, "rejected")

    apply_s, _ = timed(apply_all)
    move_s, _ = timed(move_all)
    store.close()

    raw = raw_engine(workdir / "raw.sqlite")
    from regelwerk.store.tables import all_tables

    all_tables().create_all(raw)
    moment = START.replace(tzinfo=None)

    def raw_apply() -> None:
        for i in range(n):
            with raw.begin() as conn:
                conn.execute(candidates.insert().values(
                    id=f"c{i}", vacancy_id="v", instance_id=f"i{i}", first_name=f"K{i}", last_name="Test",
                    email=f"k{i}@example.nl", details={}, source="web", status="new", status_group="new",
                    archived=False, status_since=moment, applied_at=moment, consent=False))

    def raw_move() -> None:
        for i in range(n):
            for status, group in (("screening", "in_progress"), ("rejected", "rejected")):
                with raw.begin() as conn:
                    conn.execute(candidates.update().where(candidates.c.id == f"c{i}")
                                 .values(status=status, status_group=group, status_since=moment))

    raw_apply_s, _ = timed(raw_apply)
    raw_move_s, _ = timed(raw_move)
    raw.dispose()
    per = lambda s, k: f"{s / k * 1000:.2f} ms"  # noqa: E731
    return [
        ("apply (start + receipt mail in outbox)", per(apply_s, n), per(raw_apply_s, n),
         f"{apply_s / raw_apply_s:.1f}x"),
        ("move (guarded transition + status sync)", per(move_s, 2 * n), per(raw_move_s, 2 * n),
         f"{move_s / raw_move_s:.1f}x"),
    ]


def seed(path: Path, n: int) -> None:
    """n rejected candidates (5 weeks ago), each with an instance, two history rows and one outbox mail."""
    from regelwerk.outbox.tables import outbox
    from regelwerk.store.tables import all_tables
    from regelwerk.store.workflow_tables import rw_history, rw_instances
    from regelwerk_packs.recruitment.tables import candidates

    engine = sa.create_engine(f"sqlite:///{path}")
    all_tables().create_all(engine)
    old = (START - timedelta(weeks=5)).replace(tzinfo=None)
    batch = 5000
    with engine.begin() as conn:
        for start in range(0, n, batch):
            rng = range(start, min(n, start + batch))
            conn.execute(candidates.insert(), [dict(
                id=f"c{i}", vacancy_id="v", instance_id=f"i{i}", first_name=f"K{i}", last_name="Test",
                email=f"k{i}@example.nl", details={}, source="web", status="rejected", status_group="rejected",
                archived=True, status_since=old, applied_at=old, consent=False) for i in rng])
            conn.execute(rw_instances.insert(), [dict(
                id=f"i{i}", workflow="recruitment.standard", definition_version="v", state="rejected",
                data={"candidate_id": f"c{i}"}, version=2, timers_pending=False, created_by="web-form",
                created_at=old, updated_at=old) for i in rng])
            conn.execute(rw_history.insert(), [dict(
                instance_id=f"i{i}", version=v, event="e", from_state="a", to_state="b", actor="tom", at=old,
                definition_version="v", explain={"input": {"note": f"K{i}"}}) for i in rng for v in (1, 2)])
            conn.execute(outbox.insert(), [dict(
                id=f"m{i}", created_at=old, template="afwijzing", subject_ref=f"candidate:c{i}", instance_id=f"i{i}",
                recipient=f"k{i}@example.nl", subject="x", body="y", status="sent", attempts=1,
                next_attempt_at=old) for i in rng])
    engine.dispose()


def bench_retention(workdir: Path, n: int) -> list[tuple[str, str, str, str]]:
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.outbox.tables import outbox
    from regelwerk.registry import load_registry
    from regelwerk.runtime import Engine
    from regelwerk.store.sql import SqlStore
    from regelwerk.store.workflow_tables import rw_history, rw_instances
    from regelwerk_packs.recruitment.service import retention_sweep
    from regelwerk_packs.recruitment.tables import candidates

    base = workdir / "seed.sqlite"
    seed(base, n)
    registry = load_registry()
    compiled = compile_bundle(load_bundle(STANDARD), registry)
    chunk = 1000

    def sweep(path: Path) -> Callable[[], Any]:
        def run() -> None:
            store = SqlStore(f"sqlite:///{path}")
            engine = Engine(compiled, store=store, registry=registry, clock=lambda: START)
            report = retention_sweep(engine, compiled, START, chunk=chunk)
            assert report.deleted == n, report.deleted
            store.close()
        return run

    def direct(path: Path) -> Callable[[], Any]:
        def run() -> None:
            moment = START.astimezone(UTC).replace(tzinfo=None)
            db = raw_engine(path)
            with db.connect() as conn:
                ids = [r[0] for r in conn.execute(sa.select(candidates.c.id)
                                                  .where(candidates.c.status_group == "rejected"))]
            for start in range(0, len(ids), chunk):
                part = ids[start:start + chunk]
                inst = [f"i{c[1:]}" for c in part]
                with db.begin() as conn:
                    conn.execute(outbox.delete().where(outbox.c.subject_ref.in_([f"candidate:{c}" for c in part])))
                    conn.execute(rw_history.update().where(rw_history.c.instance_id.in_(inst)).values(explain={}))
                    # the erasure's own record, as the store writes it: the version moved on, one $erase history row
                    conn.execute(rw_instances.update().where(rw_instances.c.id.in_(inst)).values(
                        data={"erased": True}, version=rw_instances.c.version + 1, updated_at=moment))
                    i = rw_instances.c
                    conn.execute(rw_history.insert().from_select(
                        ["instance_id", "version", "event", "from_state", "to_state", "actor", "at",
                         "definition_version", "explain"],
                        sa.select(i.id, i.version, sa.literal("$erase"), i.state, i.state, sa.literal("system"),
                                  sa.literal(moment, sa.DateTime()), i.definition_version,
                                  sa.literal({"reason": "retention"}, sa.JSON())).where(i.id.in_(inst))))
                    conn.execute(candidates.delete().where(candidates.c.id.in_(part)))
            db.dispose()
        return run

    results = {}
    for label, make in (("sweep", sweep), ("direct", direct)):
        timed, traced = workdir / f"{label}-t.sqlite", workdir / f"{label}-m.sqlite"
        shutil.copy(base, timed)
        shutil.copy(base, traced)
        started = time.perf_counter()
        make(timed)()
        seconds = time.perf_counter() - started
        _, peak = measure(make(traced))
        results[label] = (seconds, peak)
    (sweep_s, sweep_mb), (direct_s, direct_mb) = results["sweep"], results["direct"]
    return [(f"retention sweep, {n:,} candidates (time / peak traced memory)",
             f"{sweep_s:.2f} s / {sweep_mb:.0f} MiB", f"{direct_s:.2f} s / {direct_mb:.0f} MiB",
             f"{sweep_s / direct_s:.1f}x time, {sweep_mb / direct_mb:.1f}x mem")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (< 20 s)")
    args = parser.parse_args(argv)
    n_moves, n_sweep = (150, 20_000) if args.quick else (1000, 100_000)
    workdir = Path(tempfile.mkdtemp(prefix="bench-recruitment-"))
    try:
        rows = bench_transitions(workdir, n_moves) + bench_retention(workdir, n_sweep)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"| measure ({n_moves} candidates through the engine, SQLite file) | regelwerk | raw SQLAlchemy | ratio |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
