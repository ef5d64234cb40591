"""Workflow runtime benchmark: side by side with raw ``transitions`` and hand-written SQLAlchemy Core.

    python benchmarks/bench_workflow.py [--quick]

Rows (a markdown table):

1. in memory: ``Engine.fire`` (guard + permission check, memory store, history row) vs raw transitions
   ``model.trigger()`` on an equivalent two-state machine (target: ratio <= 2).
2. SQLite file: ``Engine.fire`` with one transition per transaction vs the same two statements
   (version-checked UPDATE + history INSERT) written directly with SQLAlchemy Core, same pragmas
   (target: ratio <= 1.25); ``fire_batch`` (many transitions in one unit of work).
3. PostgreSQL (when REGELWERK_TEST_PG_URL is set): the same two rows.
4. growth: start and fire time with 1k vs 100k instances in the SQLite table; Python memory allocated
   while firing across many distinct instances (must not grow with their number).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import textwrap
import time
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORKFLOW = """
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: pingpong}
spec:
  states:
    - {id: a, initial: true}
    - {id: b}
  transitions:
    - {id: go, from: a, to: b, guard: {field: data.n, ge: 0}, permission: bench.go}
    - {id: back, from: b, to: a, guard: {field: data.n, ge: 0}, permission: bench.go}
"""
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _rate(fn: Callable[[int], None], n: int, repeat: int = 3) -> float:
    """Best seconds per operation over ``repeat`` runs of ``fn(n)``."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        fn(n)
        best = min(best, (time.perf_counter() - started) / n)
    return best


def _compiled(tmp: Path) -> Any:
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.registry import load_registry

    folder = tmp / "wf"
    folder.mkdir(exist_ok=True)
    (folder / "pingpong.yaml").write_text(textwrap.dedent(WORKFLOW), encoding="utf-8")
    registry = load_registry(use_entry_points=False)
    return compile_bundle(load_bundle(folder), registry), registry


def bench_memory(tmp: Path, n: int) -> list[tuple[str, float, float, str]]:
    from regelwerk.runtime import Engine
    from regelwerk.store.memory import MemoryStore
    from regelwerk.workflows.ports import RoleTable
    from transitions import Machine

    class Model:
        pass

    model = Model()
    Machine(model=model, states=["a", "b"], initial="a", auto_transitions=False,
            transitions=[{"trigger": "go", "source": "a", "dest": "b"},
                         {"trigger": "back", "source": "b", "dest": "a"}])

    def raw(count: int) -> None:
        go, back = model.go, model.back  # type: ignore[attr-defined]
        for _ in range(count // 2):
            go()
            back()

    compiled, registry = _compiled(tmp)
    engine = Engine(compiled, store=MemoryStore(), registry=registry, clock=lambda: NOW,
                    permissions=RoleTable({"bench.go": ["user"], "pingpong.start": ["user"]}))
    actor = {"id": "u", "roles": ["user"]}
    engine.start("pingpong", {"n": 1}, actor, "x")
    from regelwerk.actors import Actor

    who = Actor.of(actor)

    def ours(count: int) -> None:
        fire = engine.fire
        for _ in range(count // 2):
            fire("x", "go", who)
            fire("x", "back", who)

    raw_s = _rate(raw, n)
    ours_s = _rate(ours, n)
    return [("in memory: fire (guard + permission + history) vs raw transitions trigger",
             ours_s, raw_s, "<= 2.0")]


def _sql_rows(label: str, url: str, n: int, batch: int, tmp: Path) -> list[tuple[str, float, float, str]]:
    import sqlalchemy as sa
    from regelwerk.actors import Actor
    from regelwerk.runtime import Engine
    from regelwerk.store.sql import SqlStore
    from regelwerk.store.workflow_tables import rw_history, rw_instances
    from regelwerk.workflows.ports import RoleTable

    compiled, registry = _compiled(tmp)
    store = SqlStore(url)
    engine = Engine(compiled, store=store, registry=registry, clock=lambda: NOW,
                    permissions=RoleTable({"bench.go": ["user"], "pingpong.start": ["user"]}))
    who = Actor("u", ("user",))
    ours_id = f"ours-{uuid.uuid4().hex[:8]}"
    raw_id = f"raw-{uuid.uuid4().hex[:8]}"
    engine.start("pingpong", {"n": 1}, who, ours_id)
    engine.start("pingpong", {"n": 1}, who, raw_id)
    i = rw_instances.c
    update = (rw_instances.update().where(i.id == sa.bindparam("p_id"), i.version == sa.bindparam("p_v"))
              .values(state=sa.bindparam("state"), version=sa.bindparam("version"),
                      updated_at=sa.bindparam("updated_at")))
    insert = rw_history.insert()
    version = [engine.get(raw_id).version]

    def raw(count: int) -> None:
        sa_engine = store.engine
        for k in range(count):
            state = "b" if k % 2 == 0 else "a"
            with sa_engine.begin() as conn:
                v = version[0]
                result = conn.execute(update, {"p_id": raw_id, "p_v": v, "state": state, "version": v + 1,
                                               "updated_at": NOW})
                assert result.rowcount == 1
                conn.execute(insert, {"instance_id": raw_id, "version": v + 1, "event": "go",
                                      "from_state": "a", "to_state": state, "actor": "u", "at": NOW,
                                      "definition_version": "x", "explain": {}})
                version[0] = v + 1

    def ours(count: int) -> None:
        for _ in range(count // 2):
            engine.fire(ours_id, "go", who)
            engine.fire(ours_id, "back", who)

    ids = [f"b{uuid.uuid4().hex[:8]}-{k}" for k in range(batch)]
    for iid in ids:
        engine.start("pingpong", {"n": 1}, who, iid)
    flip = [True]

    def batched(count: int) -> None:
        for _ in range(max(1, count // batch)):
            event = "go" if flip[0] else "back"
            engine.fire_batch([(iid, event, who) for iid in ids])
            flip[0] = not flip[0]

    raw_s = _rate(raw, n)
    ours_s = _rate(ours, n)
    batch_s = _rate(batched, max(batch, n), 2)
    engine.close()
    return [
        (f"{label}: fire, 1 transition per transaction vs Core UPDATE+INSERT", ours_s, raw_s, "<= 1.25"),
        (f"{label}: fire_batch ({batch} per transaction) vs Core UPDATE+INSERT per transaction", batch_s, raw_s,
         "(report)"),
    ]


def bench_growth(tmp: Path, total: int, sample: int) -> list[tuple[str, float, float, str]]:
    """Start/fire cost with a small vs a large table; memory while touching many instances."""
    import sqlalchemy as sa
    from regelwerk.actors import Actor
    from regelwerk.runtime import Engine
    from regelwerk.store.sql import SqlStore
    from regelwerk.store.workflow_tables import rw_history, rw_instances
    from regelwerk.workflows.ports import RoleTable

    compiled, registry = _compiled(tmp)
    url = f"sqlite:///{tmp / 'growth.sqlite'}"
    store = SqlStore(url)
    # the record cache is bounded (cache_size): memory must stay flat however many instances are touched
    engine = Engine(compiled, store=store, registry=registry, clock=lambda: NOW, cache_size=sample // 2,
                    permissions=RoleTable({"bench.go": ["user"], "pingpong.start": ["user"]}))
    who = Actor("u", ("user",))
    version = engine.current_version("pingpong")

    def fill(upto: int) -> None:
        with store.engine.begin() as conn:
            have = conn.execute(sa.select(sa.func.count()).select_from(rw_instances)
                                .where(rw_instances.c.id.like("g%"))).scalar_one()
            rows = [{"id": f"g{k:07d}", "workflow": "pingpong", "definition_version": version, "state": "a",
                     "data": {"n": 1}, "version": 1, "timers_pending": False, "created_by": "u",
                     "created_at": NOW, "updated_at": NOW} for k in range(have, upto)]
            for chunk in range(0, len(rows), 5000):
                conn.execute(rw_instances.insert(), rows[chunk:chunk + 5000])
                conn.execute(rw_history.insert(), [
                    {"instance_id": r["id"], "version": 1, "event": "$start", "from_state": "", "to_state": "a",
                     "actor": "u", "at": NOW, "definition_version": version, "explain": {}}
                    for r in rows[chunk:chunk + 5000]])

    def measure(tag: str) -> tuple[float, float]:
        ids = [f"{tag}-{k}" for k in range(sample)]

        def starts(count: int) -> None:
            for iid in ids[:count]:
                engine.start("pingpong", {"n": 1}, who, iid)

        started = time.perf_counter()
        starts(sample)
        start_s = (time.perf_counter() - started) / sample
        started = time.perf_counter()
        for iid in ids:
            engine.fire(iid, "go", who)
        fire_s = (time.perf_counter() - started) / sample
        return start_s, fire_s

    fill(1000)
    small = measure("small")
    fill(total)
    large = measure("large")

    # memory: fire across `sample` distinct old instances twice as many; allocated bytes retained must not scale
    def retained(count: int, offset: int) -> int:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for k in range(offset, offset + count):
            engine.fire(f"g{k:07d}", "go", who)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return after - before

    mem_small = retained(sample, 0)
    mem_large = retained(sample * 4, sample)
    engine.close()
    return [
        (f"growth: start, {total:,} vs 1,000 instances", large[0], small[0], "~1.0"),
        (f"growth: fire, {total:,} vs 1,000 instances", large[1], small[1], "~1.0"),
        (f"memory retained after firing on {sample * 4:,} vs {sample:,} distinct instances (bytes, "
         f"cache_size={sample // 2})",
         float(mem_large), float(mem_small), "no growth"),
    ]


def main(argv: list[str] | None = None) -> None:
    """Run every benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts (< 20 s)")
    args = parser.parse_args(argv)
    quick = args.quick
    rows: list[tuple[str, float, float, str]] = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        rows += bench_memory(tmp, 20_000 if quick else 200_000)
        rows += _sql_rows("SQLite file", f"sqlite:///{tmp / 'bench.sqlite'}", 400 if quick else 4000,
                          100, tmp)
        pg = os.environ.get("REGELWERK_TEST_PG_URL")
        if pg:
            rows += _sql_rows("PostgreSQL", pg, 200 if quick else 2000, 100, tmp)
        rows += bench_growth(tmp, 10_000 if quick else 100_000, 200 if quick else 1000)
    print("| measure | regelwerk | baseline | ratio | target |")
    print("| --- | ---: | ---: | ---: | --- |")
    for label, ours, base, target in rows:
        if "bytes" in label:
            print(f"| {label} | {ours:,.0f} | {base:,.0f} | {ours / base if base else 0:.2f} | {target} |")
        else:
            print(f"| {label} | {ours * 1e6:,.1f} µs ({1 / ours:,.0f}/s) | {base * 1e6:,.1f} µs ({1 / base:,.0f}/s) "
                  f"| {ours / base:.2f} | {target} |")


if __name__ == "__main__":
    main()
