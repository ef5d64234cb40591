"""The permission test table step (Cerbos/OpenFGA shape) can fail: every rule and every deny must be covered.

The shipped tables themselves run in test_scenarios.py / test_permissions_scenarios.py; here the step is
checked against tables that are wrong on purpose.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from regelwerk.registry import load_registry
from regelwerk.scenarios import run_scenario_file

ROOT = Path(__file__).resolve().parent.parent
PERMISSIONS = ROOT / "definitions" / "standard" / "permissions"
SHIPPED_TABLES = ["table_step2hr.yaml", "table_hroffice.yaml", "table_registerplein.yaml", "table_mijnloket.yaml"]


def _run(tmp_path: Path, steps: str) -> list[str]:
    path = tmp_path / "t.scenario.yaml"
    path.write_text(textwrap.dedent(f"""\
        apiVersion: regelwerk/v1
        kind: Scenario
        metadata: {{name: t}}
        spec:
          bundle: {PERMISSIONS}
          now: "2026-03-02T09:00:00+01:00"
          steps:
        """) + textwrap.indent(textwrap.dedent(steps), "    "), encoding="utf-8")
    results = run_scenario_file(path, load_registry(use_entry_points=False))
    return [line for r in results for line in r.failures()]


TABLE = """\
- permission_table:
    matrix: mijnloket
    principals: {ak: {roles: [ak_gebruiker]}, x: {roles: []}}
    resources: {reg: {kind: mijnloket_registration, id: e1, attr: {employee: e1}}}
    tests:
      - field_group: access
        input: {principals: [ak, x], resources: [reg], actions: [read]}
        expected: EXPECTED
"""


def test_an_allow_that_is_not_listed_fails(tmp_path: Path) -> None:
    failures = _run(tmp_path, TABLE.replace("EXPECTED", "[]"))
    assert failures and "ak read reg: expected deny, got allow by registration_access_read" in failures[0]


def test_a_listed_allow_that_is_denied_fails_with_the_reason(tmp_path: Path) -> None:
    failures = _run(tmp_path, TABLE.replace("EXPECTED", "[{principal: ak, resource: reg, actions: {read: allow}},"
                                                        " {principal: x, resource: reg, actions: {read: allow}}]"))
    assert failures and "x read reg: expected allow, got deny by default" in failures[0]


def test_the_deciding_rule_is_checked(tmp_path: Path) -> None:
    failures = _run(tmp_path, TABLE.replace("EXPECTED", "[{principal: ak, resource: reg, actions: {read: allow},"
                                                        " by: {read: something_else}}]"))
    assert failures and "expected the decision by 'something_else', got 'registration_access_read'" in failures[0]


def test_coverage_names_every_rule_that_decided_nothing(tmp_path: Path) -> None:
    steps = TABLE.replace("EXPECTED", "[{principal: ak, resource: reg, actions: {read: allow}}]")
    assert _run(tmp_path, steps) == []
    failures = _run(tmp_path, steps + "- permission_coverage: {matrix: mijnloket}\n")
    assert failures and "raadplegen_mijnloket_emailadres_read (allow)" in failures[0]
    assert "registration_access_read" not in failures[0].split("decided no case")[1]


def test_an_expectation_outside_the_input_is_reported(tmp_path: Path) -> None:
    failures = _run(tmp_path, TABLE.replace("EXPECTED", "[{principal: ak, resource: reg, actions: {write: allow}}]"))
    assert failures and "is not part of the input" in failures[0]


@pytest.mark.parametrize("name", SHIPPED_TABLES)
def test_every_shipped_matrix_has_a_complete_table(name: str) -> None:
    text = (ROOT / "tests" / "scenarios" / "permissions" / name).read_text(encoding="utf-8")
    assert "permission_table:" in text and "permission_coverage:" in text
