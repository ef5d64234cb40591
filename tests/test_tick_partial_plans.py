"""The tick's partial plans (``plan_with(..., since=...)``): an employee planned again only because its ``next_due``
came gets only what appeared since. Proof: a year and a half of real customers played with and without them
leaves the same rows in every table (items, instances, history, timers, audit of cancellations)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from regelwerk.conditions import compile_condition
from regelwerk.simulation import simulate
from regelwerk_packs.talent.model import DevelopmentCycle

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: columns that differ between two runs by design (surrogate ids, wall-clock stamps, run bookkeeping)
_VOLATILE = {"id", "created_at", "updated_at", "applied_at", "expires_at", "at", "fired_at", "acquired_at",
             "holder", "seconds", "totals", "detail"}


def _rows(path: Path) -> dict[str, list[str]]:
    conn = sqlite3.connect(path)
    out: dict[str, list[str]] = {}
    for (table,) in conn.execute("select name from sqlite_master where type = 'table' and name like 'rw_%'"):
        columns = [r[1] for r in conn.execute(f"pragma table_info({table})")]
        keep = [c for c in columns if c not in _VOLATILE or (table == "rw_instances" and c == "id")]
        quoted = ", ".join(f'"{c}"' for c in keep)
        out[table] = sorted(json.dumps([str(v) for v in row]) for row in conn.execute(f"select {quoted} from {table}"))
    conn.close()
    return out


def _play(customer: str, store: Path) -> dict[str, list[str]]:
    simulate(EXAMPLES / customer, date(2026, 1, 1), date(2027, 6, 30), store=f"sqlite:///{store}")
    return _rows(store)


@pytest.mark.parametrize("customer", ["zorggroep-de-linde", "scholengroep-horizon"])
def test_partial_plans_leave_the_same_rows_as_full_ones(customer: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    partial = _play(customer, tmp_path / "partial.sqlite")
    monkeypatch.setattr(DevelopmentCycle, "plans_since", False)  # every re-plan builds everything again
    full = _play(customer, tmp_path / "full.sqlite")
    assert sum(len(rows) for rows in partial.values()) > 100  # the customer really planned something
    assert {t: rows for t, rows in partial.items() if not t.startswith("rw_simulation")} == {
        t: rows for t, rows in full.items() if not t.startswith("rw_simulation")}


def test_a_plan_partial_only_when_nothing_it_reads_moves_with_the_clock() -> None:
    clock, problems = compile_condition({"all": [{"field": "employee.department", "eq": "zorg"},
                                                 {"not": {"field": "employee.hire_date", "gt": {"now": {}}}}]}, "")
    assert not problems and not clock.timeless
    plain, problems = compile_condition({"any": [{"field": "employee.department", "eq": "zorg"},
                                                 {"field": "employee.function", "in": ["a", "b"]}]}, "")
    assert not problems and plain.timeless


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_partial_plan_keeps_the_lead_times_its_trajectory_pinned(backend: str, tmp_path: Path,
                                                                   request: pytest.FixtureRequest, registry: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A running year keeps the lead times its trajectories pinned when they arose, also in a partial re-plan (which
    looks the trajectories up by their keys, not every stored item of the employee): the appraisal planned under a
    three-week lead appears three weeks before it is due after the definition moved to five."""
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.runtime import Engine
    from regelwerk.scheduling.directory import StoreDirectory
    from regelwerk.scheduling.employees import EmployeeDirectory
    from regelwerk.scheduling.tables import scheduled_items
    from regelwerk.scheduling.tick import tick

    talent = Path(__file__).resolve().parent / "scenarios" / "talent"
    windows = compile_bundle(load_bundle(talent / "vensters"), registry)
    wider = compile_bundle(load_bundle(talent / "vensters-ruim", bases={"vensters": talent / "vensters"}), registry)
    url = f"sqlite:///{tmp_path / 'pinned.sqlite'}" if backend == "sqlite" else str(request.getfixturevalue("pg_url"))
    asked: list[bool] = []  # per read of stored trajectories: by key (a partial plan's) or by subject
    read = StoreDirectory.stored

    def spy(self: StoreDirectory, source: str, item_type: str, subjects: Any, fields: Any = None,
            keys: Any = None) -> Any:
        if item_type == "trajectory":
            asked.append(keys is not None)
        return read(self, source, item_type, subjects, fields, keys)

    monkeypatch.setattr(StoreDirectory, "stored", spy)
    planned_at = datetime(2025, 11, 30, 23, tzinfo=UTC)
    engine = Engine(windows, store=url, registry=registry, clock=lambda: planned_at)
    try:
        EmployeeDirectory(engine.store.engine).upsert([
            {"id": "mark", "hire_date": "2012-01-01", "function": "teamleider"},
            {"id": "anna", "hire_date": "2019-04-01", "function": "adviseur", "manager": "mark"}], planned_at)
        tick(engine, windows, planned_at)  # the trajectories pin the three weeks
        tick(engine, wider, datetime(2026, 3, 1, 8, tzinfo=UTC))  # another version: a full plan
        asked.clear()
        tick(engine, wider, datetime(2026, 11, 20, 8, tzinfo=UTC))  # the next_due came: a partial plan
        assert asked == [True]
        with engine.store.engine.connect() as conn:
            payloads = [json.loads(p) for p in conn.scalars(
                sa.select(scheduled_items.c.payload).where(scheduled_items.c.item_type == "moment"))]
    finally:
        engine.close()
    appraisals = [p for p in payloads if p["moment"] == "beoordelingsgesprek"]
    assert len(appraisals) == 2
    assert {date.fromisoformat(p["due_date"]) - date.fromisoformat(p["appears"]) for p in appraisals} == {
        timedelta(weeks=3)}


def _standard_cycle(registry: Any) -> DevelopmentCycle:
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle

    standard = compile_bundle(load_bundle(Path(__file__).resolve().parent.parent / "definitions" / "standard"),
                              registry)
    cycle: DevelopmentCycle = standard.get("DevelopmentCycle", "standaard-ontwikkelcyclus")
    return cycle


def _replan(registry: Any, now: datetime, since: datetime) -> Any:
    """The tick's partial re-plan of someone hired long ago, whose manager is known (the feedback round asks both)."""
    from zoneinfo import ZoneInfo

    from regelwerk.scheduling.directory import MemoryDirectory
    from regelwerk.scheduling.employees import EmployeeFacts

    person = EmployeeFacts("e1", hire_date=date(2020, 3, 1), manager="m1")
    people = [person, EmployeeFacts("m1", hire_date=date(2019, 1, 1))]
    local = now.replace(tzinfo=ZoneInfo("Europe/Amsterdam"))
    return _standard_cycle(registry).plan_batch([person], local, directory=MemoryDirectory(people),
                                                appeared_only=True, since=[since])[0]


def test_a_moment_whose_round_appeared_is_no_item_before_it_appears_itself(registry: Any) -> None:
    """The appraisal's feedback requests appear two weeks before it: the re-plan then has the requests, and the
    appraisal (due 30 November) only as the plan's next_due - the tick would leave its item out anyway."""
    plan = _replan(registry, datetime(2026, 11, 16, 23, 59), datetime(2026, 11, 16, 8, tzinfo=UTC))
    assert plan.partial
    assert sorted(i.item_type for i in plan.items) == ["feedback_request", "feedback_request"]
    assert plan.next_due == datetime(2026, 11, 30, 8, tzinfo=UTC)


def test_a_re_plan_after_a_moment_appeared_does_not_name_it_again(registry: Any) -> None:
    """Planned again at the next work year's planning moment (midnight of 1 December), after the appraisal appeared
    (09:00 the day before): the plan has the new year's trajectory, not the appraisal its last plan made."""
    plan = _replan(registry, datetime(2026, 12, 1, 23, 59), datetime(2026, 11, 30, 23, tzinfo=UTC))
    assert [i.key for i in plan.items] == ["talent/standaard-ontwikkelcyclus/2027/e1/medewerker"]
