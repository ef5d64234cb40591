"""workflow.set with ``increment``: a counter in the instance data (Zorggroep Meander's "at most 3 attempts").

Before, the language had no way to count: a consultant wrote a decision table with a computed output
(attempts + 1, 1 the first time) to count hand-ins. A missing field counts from 0; a field holding anything but a
number refuses the transition (ActionFailed, nothing written)."""

from __future__ import annotations

from pathlib import Path

from regelwerk.registry import Registry
from regelwerk.scenarios import run_scenario_file

WORKFLOW = """\
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: counter}
spec:
  data_schema:
    type: object
    properties:
      attempts: {type: number}
      label: {}
  system_fields: [attempts]
  states:
    - id: open
      initial: true
      on_enter: [{action: workflow.set, with: {field: attempts, increment: 1}}]
    - {id: done, final: true}
  transitions:
    - id: again
      from: open
      internal: true
      guard: {field: actor.id, eq: hr}
      actions: [{action: workflow.set, with: {field: attempts, increment: 2}}]
    - id: bump_label
      from: open
      internal: true
      guard: {field: actor.id, eq: hr}
      actions: [{action: workflow.set, with: {field: label, increment: 1}}]
    - id: finish
      from: open
      to: done
      guard:
        all:
          - {field: actor.id, eq: hr}
          - {field: data.attempts, eq: 3}
"""

SCENARIO = """\
apiVersion: regelwerk/v1
kind: Scenario
metadata: {name: counting}
spec:
  bundle: .
  now: "2027-01-15T09:00:00+01:00"
  facts:
    permissions:
      counter.start: [hr]
  steps:
    - start: {workflow: counter, id: c1, actor: {id: hr, roles: [hr]}, data: {label: drie}}
    - expect_state: {instance: c1, state: open, data: {attempts: 1}}
    - fire: {instance: c1, event: finish, actor: {id: hr, roles: [hr]}, expect_error: TransitionNotAllowed}
    - fire: {instance: c1, event: again, actor: {id: hr, roles: [hr]}}
    - expect_state: {instance: c1, state: open, data: {attempts: 3}}
    - name: a text is no counter - refused, nothing written
      fire: {instance: c1, event: bump_label, actor: {id: hr, roles: [hr]}, expect_error: InvalidData}
    - expect_state: {instance: c1, state: open, data: {attempts: 3, label: drie}}
    - fire: {instance: c1, event: finish, actor: {id: hr, roles: [hr]}, expect_state: done}
"""


def test_workflow_set_increment_counts(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "counter.yaml").write_text(WORKFLOW, encoding="utf-8")
    path = tmp_path / "counting.scenario.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    results = run_scenario_file(path, registry)
    failures = [line for r in results for line in r.failures()]
    assert results and not failures, "\n".join(failures)
