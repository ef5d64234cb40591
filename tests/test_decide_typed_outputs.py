"""decisions.decide stores a computed date output as ISO text (a certificate's expiry = completed_on + P2Y).

Before, the action wrote a ``date`` object into the instance data and the audit row; the store could not serialise
it and every transition deciding such a table failed (ActionFailed: Object of type date is not JSON serializable).
"""

from __future__ import annotations

from pathlib import Path

from regelwerk.registry import Registry
from regelwerk.scenarios import run_scenario_file

BUNDLE = """\
apiVersion: regelwerk/v1
kind: DecisionTable
metadata: {name: validity}
spec:
  hitPolicy: UNIQUE
  inputs:
    - {id: completed_on, type: date}
  outputs:
    - {id: expires_on}
    - {id: period}
  rows:
    - id: two_years
      then: {expires_on: {add: [{field: completed_on}, P2Y]}, period: {sub: ["2029-01-20", "2027-01-20"]}}
---
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: course}
spec:
  data_schema:
    type: object
    properties:
      completed_on: {type: string, format: date}
      expires_on: {type: string, format: date}
      period: {type: string}
  states:
    - id: valid
      initial: true
      on_enter: [{action: decisions.decide, with: {table: validity}}]
    - {id: checked, final: true}
  transitions:
    - id: check
      from: valid
      to: checked
      guard:
        all:
          - {field: actor.id, eq: hr}
          - {field: data.expires_on, eq: "2029-01-20"}
          - {field: data.period, eq: P731D}
"""

SCENARIO = """\
apiVersion: regelwerk/v1
kind: Scenario
metadata: {name: typed-outputs}
spec:
  bundle: .
  now: "2027-01-20T09:00:00+01:00"
  facts:
    permissions:
      course.start: [hr]
  steps:
    - start: {workflow: course, id: c1, actor: {id: hr, roles: [hr]}, data: {completed_on: "2027-01-20"},
              expect_state: valid}
    - fire: {instance: c1, event: check, actor: {id: hr, roles: [hr]}, expect_state: checked}
"""


def test_a_computed_date_and_duration_are_stored_as_iso_text(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "course.yaml").write_text(BUNDLE, encoding="utf-8")
    path = tmp_path / "typed.scenario.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    results = run_scenario_file(path, registry)
    failures = [line for r in results for line in r.failures()]
    assert results and not failures, "\n".join(failures)
