"""Two processes fire on the same instance at the same time: exactly one wins, the other gets ConflictError."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = str(ROOT / "definitions" / "standard" / "workflows")


def _engine(url: str) -> Any:
    from regelwerk.permissions.policies import UnsafeAllowAll
    from regelwerk.registry import load_registry
    from regelwerk.runtime import Engine

    # the race is under test, not the policy
    return Engine(WORKFLOWS, store=url, registry=load_registry(use_entry_points=False), permissions=UnsafeAllowAll())


def _racer(url: str, event: str, barrier: Any, results: Any) -> None:
    from regelwerk.errors import ConflictError

    engine = _engine(url)
    try:
        seen = engine.get("d1").version
        barrier.wait(30)
        try:
            engine.fire("d1", event, "bert", {"reason": "te laat"} if event == "reject" else None,
                        expected_version=seen)
            results.put(("won", event))
        except ConflictError as exc:
            results.put(("conflict", exc.current_state))
    finally:
        engine.close()


def _race(url: str) -> None:
    engine = _engine(url)
    engine.start("declaration", {"employee": "anna", "amount": 10}, "anna", "d1")
    engine.fire("d1", "submit", "anna")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(url, event, barrier, results)) for event in ("approve", "reject")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    outcomes = sorted([results.get(timeout=5), results.get(timeout=5)])
    final = engine.get("d1")
    history = engine.history("d1")
    engine.close()
    assert [o[0] for o in outcomes] == ["conflict", "won"], outcomes
    winner = outcomes[1][1]
    assert final.state == {"approve": "approved", "reject": "rejected"}[winner]
    assert outcomes[0][1] == final.state  # the loser's error carries the state that won
    assert final.version == 3
    assert [h.event for h in history] == ["$start", "submit", winner]  # nothing lost, nothing half-written


def test_two_processes_sqlite(tmp_path: Path) -> None:
    _race(f"sqlite:///{tmp_path / 'race.sqlite'}")


@pytest.mark.postgres
def test_two_processes_postgres(pg_url: str) -> None:
    _race(pg_url)


# --- a fire that names no version, racing a fire that holds the row -------------------------------------------

_CHAIN = {
    "parent.yaml": """\
        apiVersion: regelwerk/v1
        kind: Workflow
        metadata: {name: parent}
        spec:
          states:
            - {id: collecting, initial: true}
          transitions:
            - {id: hold, from: collecting, to: collecting, actions: [{action: race.hold}]}
            - {id: child_done, from: collecting, to: collecting}
            - {id: poke, from: collecting, to: collecting}
        """,
    "child.yaml": """\
        apiVersion: regelwerk/v1
        kind: Workflow
        metadata: {name: child}
        spec:
          states:
            - {id: open, initial: true}
            - id: done
              on_enter: [{action: workflow.fire, with: {event: child_done, instance_field: data.parent}}]
          transitions:
            - {id: finish, from: open, to: done}
        """,
}


def _chain_engine(url: str, folder: Path, reached: Any, hold: Any) -> Any:
    from _stores import compile_texts
    from regelwerk.permissions.policies import UnsafeAllowAll
    from regelwerk.registry import ActionSpec, load_registry
    from regelwerk.runtime import Engine

    class _Hold:
        name = "race"

        def register(self, registry: Any) -> None:
            registry.add_action(ActionSpec("race.hold", self.name, lambda ctx: (reached.set(), hold.wait(20))))

    registry = load_registry(extra=[_Hold()], use_entry_points=False)
    return Engine(compile_texts(folder, _CHAIN, registry), store=url, registry=registry,
                  permissions=UnsafeAllowAll())


def _waiting_for_a_lock(url: str, count: int) -> None:
    """Until ``count`` sessions of this database wait for a row lock (at most 10 s)."""
    import time

    import sqlalchemy as sa

    probe = sa.create_engine(url)
    try:
        for _ in range(500):
            with probe.connect() as conn:
                waiting = conn.execute(sa.text(
                    "select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                    "and datname = current_database()")).scalar()
            if waiting is not None and waiting >= count:
                return
            time.sleep(0.02)
        raise AssertionError("no fire waited for the row lock")
    finally:
        probe.dispose()


@pytest.mark.postgres
def test_a_fire_without_a_version_that_waited_for_a_concurrent_fire_is_decided_again_not_a_conflict(
        pg_url: str, tmp_path: Path) -> None:
    """A fire that names no expected version, whose claim waited for another process's fire of the same instance,
    is decided again on the row that fire committed (as if they had run one after the other). Before, its claim found
    the version moved on and raised ``ConflictError``: to a caller who named no version, and for a ``workflow.fire``
    chained after a commit an incident that waits for a person, so a concurrent worker stalled work (found by a
    chaos soak: two chained ``child_done`` fires on a shared parent in 20 s)."""
    import threading

    reached, hold = threading.Event(), threading.Event()
    holder = _chain_engine(pg_url, tmp_path, reached, hold)
    racer = _chain_engine(pg_url, tmp_path, reached, hold)  # another engine (own pool and cache): another process
    try:
        holder.start("parent", {}, "setup", "p1")
        for child in ("c1", "c2"):
            racer.start("child", {"parent": "p1"}, "setup", child)
        outcome: dict[str, Any] = {}

        def run(name: str, call: Any) -> None:
            try:
                outcome[name] = call()
            except BaseException as exc:  # noqa: BLE001  # reported below
                outcome[name] = exc

        first = threading.Thread(target=run, args=("hold", lambda: holder.fire("p1", "hold", "alice")))
        first.start()
        assert reached.wait(10)
        # the holder has claimed p1 (version 2, uncommitted) and waits in its action: both fires below read version 1
        second = threading.Thread(target=run, args=("poke", lambda: racer.fire("p1", "poke", "bert")))
        third = threading.Thread(target=run, args=("chain", lambda: racer.fire("c1", "finish", "carla")))
        second.start()
        _waiting_for_a_lock(pg_url, 1)
        third.start()
        _waiting_for_a_lock(pg_url, 2)
        hold.set()
        for thread in (first, second, third):
            thread.join(30)
        assert not isinstance(outcome["poke"], BaseException), outcome["poke"]
        assert not isinstance(outcome["chain"], BaseException), outcome["chain"]
        history = [h.event for h in holder.history("p1")]
        assert sorted(history[2:]) == ["child_done", "poke"] and history[:2] == ["$start", "hold"], history
        assert [h.version for h in holder.history("p1")] == [1, 2, 3, 4]
        assert holder.incidents() == []  # the chained fire is not an incident waiting for a person
    finally:
        hold.set()
        holder.close()
        racer.close()
