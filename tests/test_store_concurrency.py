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
