"""The generic core pieces the step2HR LMS definitions needed: workflow.schedule, decisions.decide, Schedule plans."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.diagnostics import DefinitionError

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "defs.yaml").write_text(text, encoding="utf-8")
    return tmp_path


WORKFLOW = """
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: cert}
spec:
  states:
    - id: valid
      initial: true
      on_enter:
        - action: workflow.schedule
          with: {event: warn, schedule: {anchor: data.expires_on, minus: P90D, catch_up: %s}}
        - {action: decisions.decide, with: {table: band, into: result, inputs: {days: {field: data.days}, fixed: 7}}}
    - {id: warned, final: true}
  transitions:
    - {id: warn, from: valid, to: warned}
---
apiVersion: regelwerk/v1
kind: DecisionTable
metadata: {name: band}
spec:
  hitPolicy: COLLECT
  inputs: [{id: days}, {id: fixed}]
  outputs: [{id: band}]
  rows:
    - {when: {days: {lt: 10}}, then: {band: short}}
    - {when: {fixed: 7}, then: {band: week}}
"""


@pytest.mark.parametrize("catch_up", ["once", "skip"])
def test_schedule_action_plans_from_instance_data(tmp_path: Path, registry, catch_up: str) -> None:  # type: ignore[no-untyped-def]
    from regelwerk.runtime import Engine
    from regelwerk.workflows.ports import RoleTable

    compiled = compile_bundle(load_bundle(_write(tmp_path, WORKFLOW % catch_up)), registry)
    system_starts = RoleTable({"cert.start": ["system"]})  # the system (no actor given) may start, nobody else
    with Engine(compiled, store="memory://", registry=registry, clock=lambda: NOW, permissions=system_starts) as engine:
        future = engine.start("cert", {"expires_on": "2026-12-31", "days": 3}, instance_id="f")
        past = engine.start("cert", {"expires_on": "2026-04-01"}, instance_id="p")
        missing = engine.start("cert", {}, instance_id="m")
        assert [t.due_at.date().isoformat() for t in engine.timers("f")] == ["2026-10-01"]  # 2 Oct 00:00 CEST
        assert len(engine.timers("p")) == (0 if catch_up == "skip" else 1)
        assert engine.timers("m") == [] or all(t.status != "pending" for t in engine.timers("m"))
        assert future.data["result"] == {"band": ["short", "week"]}
        assert past.data["result"] == {"band": ["week"]}
        assert missing.state == "valid"
        fired = engine.fire_due_timers(NOW)
        assert [o.instance_id for o in fired if o.status == "fired"] == ([] if catch_up == "skip" else ["p"])


@pytest.mark.parametrize(("when", "code", "pointer"), [
    ("{anchor: employee.hire_date, plus: P1X}", "RW105", "/spec/when/plus"),
    ("{anchor: employee.hire_date, timezone: Mars/Olympus}", "RW802", "/spec/when/timezone"),
])
def test_schedule_plan_bad_schedule_is_reported(tmp_path: Path, registry, when: str, code: str,  # type: ignore[no-untyped-def]
                                                pointer: str) -> None:
    text = f"""
apiVersion: regelwerk/v1
kind: Schedule
metadata: {{name: plan}}
spec:
  when: {when}
"""
    with pytest.raises(DefinitionError) as info:
        compile_bundle(load_bundle(_write(tmp_path, text)), registry)
    assert [(d.code, d.pointer) for d in info.value.diagnostics] == [(code, pointer)]


def test_schedule_plan_unknown_workflow_is_reported(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    text = """
apiVersion: regelwerk/v1
kind: Schedule
metadata: {name: plan}
spec:
  when: {dates: ["2026-04-01"]}
  start: {workflow: nowhere}
"""
    with pytest.raises(DefinitionError) as info:
        compile_bundle(load_bundle(_write(tmp_path, text)), registry)
    assert [d.pointer for d in info.value.diagnostics] == ["/spec/start/workflow"]


def test_schedule_plan_items_per_matching_employee(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    from regelwerk.scheduling.employees import parse_employee

    text = """
apiVersion: regelwerk/v1
kind: Schedule
metadata: {name: plan}
spec:
  when: {anchor: employee.hire_date, plus: P1M, at: "09:00"}
  applies_to: {field: employee.department, eq: hr}
"""
    plan = compile_bundle(load_bundle(_write(tmp_path, text)), registry).get("Schedule", "plan")
    yes = parse_employee({"id": "a", "department": "hr", "hire_date": "2026-02-20"})
    no = parse_employee({"id": "b", "department": "it", "hire_date": "2026-02-20"})
    items = plan.plan(yes, NOW).items
    assert [(i.key, i.start_mode, i.due_at.isoformat()) for i in items] == [
        ("Schedule/plan/a/20260320T0800Z", "none", "2026-03-20T08:00:00+00:00")]
    assert plan.plan(no, NOW).items == ()
