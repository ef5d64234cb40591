"""A recurring timer that its own event sets again (a monthly overview planning the next one) fires every time.

Before, ``workflow.schedule`` looked for the next moment from ``now - 1 microsecond``; fired by its own timer, ``now``
is that timer's moment, so the "next" one was the same moment and the timer service refused it as a loop (RW520's
runtime guard): the first month fired, every later month silently never did (Zorggroep Meander's HR overview).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from regelwerk.registry import Registry
from regelwerk.scenarios import run_scenario_file

WORKFLOW = """\
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: overview}
spec:
  states:
    - id: open
      initial: true
      on_enter:
        - {action: workflow.schedule, with: {event: monthly, schedule: SCHEDULE}}
    - {id: closed, final: true}
  transitions:
    - id: monthly
      from: open
      internal: true
      system_only: true
      actions:
        - {action: workflow.audit, with: {action: overview.sent}}
        - {action: workflow.schedule, with: {event: monthly, schedule: SCHEDULE}}
    - {id: close, from: open, to: closed, guard: {field: actor.id, eq: hr}}
"""

SCENARIO = """\
apiVersion: regelwerk/v1
kind: Scenario
metadata: {name: every-month}
spec:
  bundle: .
  now: "2027-01-15T09:00:00+01:00"
  facts:
    permissions:
      overview.start: [hr]
  steps:
    - start: {workflow: overview, id: o1, actor: {id: hr, roles: [hr]}, data: {first: "2027-02-01"}}
    - advance_clock: {to: "2027-02-01T09:00:00+01:00", expect_fired: ["o1:monthly"]}
    - advance_clock: {to: "2027-03-01T09:00:00+01:00", expect_fired: ["o1:monthly"]}
    - advance_clock: {to: "2027-04-01T09:00:00+02:00", expect_fired: ["o1:monthly"]}
    - fire: {instance: o1, event: close, actor: {id: hr, roles: [hr]}, expect_state: closed}
    - advance_clock: {to: "2027-06-01T09:00:00+02:00", expect_fired: []}
"""


@pytest.mark.parametrize("schedule", [
    '{cron: "0 8 1 * *"}',
    '{anchor: data.first, at: "08:00", repeat: P1M}',
], ids=["cron", "anchor-repeat"])
def test_a_recurring_timer_set_again_by_its_own_event_fires_every_month(
        tmp_path: Path, registry: Registry, schedule: str) -> None:
    (tmp_path / "overview.yaml").write_text(WORKFLOW.replace("SCHEDULE", schedule), encoding="utf-8")
    path = tmp_path / "every-month.scenario.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    results = run_scenario_file(path, registry)
    failures = [line for r in results for line in r.failures()]
    assert results and not failures, "\n".join(failures)
