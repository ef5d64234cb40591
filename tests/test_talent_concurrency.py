"""The talent pack's own writes under concurrent workers: 'Bijwerken competenties' (``talent apply``) run by two
administrators or pods at the same moment (threads, two SQLAlchemy engines; a SQLite file and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from regelwerk.actors import Actor
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.runtime import Engine
from regelwerk.scheduling.employees import EmployeeDirectory
from regelwerk.scheduling.tables import scheduled_events
from regelwerk.scheduling.tick import tick
from regelwerk.store.sql import create_sa_engine
from regelwerk_packs.talent.changes import apply_changes, apply_timing, pending_changes, timing_changes

ROOT = Path(__file__).resolve().parent.parent
SCHOOL = ROOT / "tests" / "scenarios" / "talent" / "schooljaar"
CHANGED = ROOT / "tests" / "scenarios" / "talent" / "profielwijziging-v2"
WINDOWS = ROOT / "tests" / "scenarios" / "talent" / "vensters"
WIDER = ROOT / "tests" / "scenarios" / "talent" / "vensters-ruim"
PLAN_AT = datetime(2026, 9, 1, 8, tzinfo=UTC)
APPLY_AT = datetime(2027, 5, 1, 8, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'talent.sqlite'}"
    else:
        yield str(request.getfixturevalue("pg_url"))


def _events(url: str, event: str) -> list[str]:
    engine = create_sa_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(conn.execute(sa.select(scheduled_events.c.item_key)
                                       .where(scheduled_events.c.event == event)).scalars())
    finally:
        engine.dispose()


def _meet_before_writing(sa_engine: Any, mine: threading.Event, theirs: threading.Event) -> None:
    """Before its first write of the scheduled items, a worker waits (up to 3 s) until the other has read them too:
    both have read before either writes, unless a lock makes one wait for the other's commit."""

    @sa.event.listens_for(sa_engine, "before_cursor_execute")
    def meet(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE RW_SCHEDULED_ITEMS") and not mine.is_set():
            mine.set()
            theirs.wait(3)


def test_two_applies_at_once_update_and_audit_each_trajectory_once(url: str, registry: Any) -> None:
    """Two 'Bijwerken competenties' at the same moment: each trajectory is brought up to date once, audited once,
    and the two counts add up to the trajectories updated."""
    school = compile_bundle(load_bundle(SCHOOL), registry)
    changed = compile_bundle(load_bundle(CHANGED, bases={"schooljaar": SCHOOL}), registry)
    engine = Engine(school, store=url, registry=registry, clock=lambda: PLAN_AT)
    try:
        EmployeeDirectory(engine.store.engine).upsert(
            [{"id": f"t{i:03d}", "hire_date": "2015-08-01", "function": "docent", "manager": "dir",
              "groups": ["onderwijzend"]} for i in range(20)], PLAN_AT)
        tick(engine, school, PLAN_AT)
    finally:
        engine.close()
    [change] = [c for c in pending_changes(url, changed, "docenten") if c.change == "competencies"]
    assert change.trajectories == 20
    workers = [create_sa_engine(url), create_sa_engine(url)]
    barrier = threading.Barrier(2)
    counts: list[int] = []
    errors: list[BaseException] = []
    read = [threading.Event(), threading.Event()]
    for index, worker in enumerate(workers):
        _meet_before_writing(worker, read[index], read[1 - index])

    def run(sa_engine: Any) -> None:
        try:
            barrier.wait(10)
            counts.append(apply_changes(sa_engine, changed, "docenten", change.work_year, actor=Actor("hr"),
                                        now=APPLY_AT))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for worker in workers:
        worker.dispose()
    assert errors == []
    audited = _events(url, "apply_changes")
    assert len(audited) == len(set(audited)) == 20
    assert sorted(counts) == [0, 20]
    assert [c for c in pending_changes(url, changed, "docenten") if c.change == "competencies"] == []


def _at_once(url: str, work: Any) -> list[int]:
    """``work(sa_engine)`` in two threads on two engines, started together, both reading before either writes
    unless a lock makes one wait; the counts they return."""
    workers = [create_sa_engine(url), create_sa_engine(url)]
    read = [threading.Event(), threading.Event()]
    for index, worker in enumerate(workers):
        _meet_before_writing(worker, read[index], read[1 - index])
    barrier = threading.Barrier(2)
    counts: list[int] = []
    errors: list[BaseException] = []

    def run(sa_engine: Any) -> None:
        try:
            barrier.wait(10)
            counts.append(work(sa_engine))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for worker in workers:
        worker.dispose()
    assert errors == []
    return sorted(counts)


def test_two_timing_applies_at_once_pin_and_audit_each_trajectory_once(url: str, registry: Any) -> None:
    """``talent apply --timing`` by two at the same moment: each trajectory pins the new lead times once and is
    audited once (before, on PostgreSQL both applied and audited every trajectory)."""
    windows = compile_bundle(load_bundle(WINDOWS), registry)
    wider = compile_bundle(load_bundle(WIDER, bases={"vensters": WINDOWS}), registry)
    planned_at = datetime(2025, 11, 30, 23, tzinfo=UTC)
    engine = Engine(windows, store=url, registry=registry, clock=lambda: planned_at)
    try:
        EmployeeDirectory(engine.store.engine).upsert([
            {"id": "mark", "hire_date": "2012-01-01", "function": "teamleider"},
            {"id": "anna", "hire_date": "2019-04-01", "function": "adviseur", "manager": "mark"},
            {"id": "bob", "hire_date": "2019-04-01", "function": "adviseur", "manager": "mark"}], planned_at)
        tick(engine, windows, planned_at)
    finally:
        engine.close()
    assert sum(c.trajectories for c in timing_changes(url, wider, work_year="2026")) == 3
    counts = _at_once(url, lambda sa_engine: apply_timing(sa_engine, wider, "standaard-ontwikkelcyclus", "2026",
                                                          Actor("hr"), now=APPLY_AT))
    assert counts == [0, 3]
    audited = _events(url, "apply_timing")
    assert len(audited) == len(set(audited)) == 3
    assert timing_changes(url, wider, work_year="2026") == []


def test_the_same_feedback_request_twice_is_written_and_audited_once(url: str, registry: Any) -> None:
    """An on-demand feedback request sent twice (a client that retries after a lost answer; two at the same moment):
    the item is written once (its key is deterministic) and so is its 'request' event; the one that wrote nothing
    returns no keys. Before, every call wrote a 'request' event and returned the keys as written."""
    from regelwerk_packs.talent.feedback import request_feedback

    windows = compile_bundle(load_bundle(WINDOWS), registry)
    now = datetime(2026, 7, 1, 8, tzinfo=UTC)
    engine = Engine(windows, store=url, registry=registry, clock=lambda: now)
    try:
        EmployeeDirectory(engine.store.engine).upsert([
            {"id": "mark", "hire_date": "2012-01-01", "function": "teamleider"},
            {"id": "anna", "hire_date": "2019-04-01", "function": "adviseur", "manager": "mark"},
            {"id": "bob", "hire_date": "2019-04-01", "function": "adviseur", "manager": "mark"}], now)
        tick(engine, windows, now)
    finally:
        engine.close()

    def ask(sa_engine: Any) -> int:
        return len(request_feedback(sa_engine, windows, "standaard-ontwikkelcyclus", "feedback-op-verzoek", "anna",
                                    ["mark", "bob"], now, Actor("anna")))

    assert _at_once(url, ask) == [0, 2]
    sa_engine = create_sa_engine(url)
    try:
        assert ask(sa_engine) == 0  # asked again later the same day
    finally:
        sa_engine.dispose()
    requested = _events(url, "request")
    assert len(requested) == len(set(requested)) == 2
