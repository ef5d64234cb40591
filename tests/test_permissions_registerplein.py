"""Registerplein's norms, activity status, green/red status and progress categories as DecisionTables."""

from __future__ import annotations

from pathlib import Path

import pytest
from regelwerk.registry import load_registry
from regelwerk.scenarios import run_scenario_file

ROOT = Path(__file__).resolve().parent.parent


def test_registerplein_tables_scenario() -> None:
    kind = pytest.importorskip("regelwerk.decisions.kind")
    registry = load_registry(use_entry_points=False)
    if "DecisionTable" not in registry.kinds:  # until the core plugin registers the kind itself
        registry = load_registry(use_entry_points=False, extra=[_DecisionTables()])
    results = run_scenario_file(ROOT / "tests" / "scenarios" / "registerplein" / "progress.yaml", registry)
    failures = [line for r in results for line in r.failures()]
    assert results and not failures, "\n".join(failures)
    assert kind is not None


class _DecisionTables:
    name = "decisiontables-under-test"

    def register(self, registry) -> None:  # type: ignore[no-untyped-def]
        from regelwerk.decisions import kind

        kind.register(registry, self.name)


def test_a_missing_norm_is_unknown_and_the_explanation_names_it() -> None:
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle

    compiled = compile_bundle(load_bundle(ROOT / "definitions" / "standard" / "registerplein"),
                              load_registry(use_entry_points=False))
    table = compiled.get("DecisionTable", "registerplein_status")
    for norm in (None, "missing"):
        inputs = {"registration_type": "Register", "lines_short": 0, "points": 40}
        if norm is None:
            inputs["norm"] = None
        decision = table.decide(inputs)
        assert decision["status"] == "onbekend" and decision.matched == ("unknown",)
        assert decision.explain["missing_inputs"] == ["norm"]
    # Basis: the norm passed in does not count (0 points), whatever it is
    assert table.decide({"registration_type": "Basis", "lines_short": 0, "points": 0, "norm": 160})["status"] == "groen"


def test_the_remove_professional_step_ends_the_managers_links_too(tmp_path: Path) -> None:
    """The pack's prullenbak as a scenario step: a consultant can show that a removed professional is seen by none
    of the organisation's managers (a plain `unrelate ... action: remove` ends only the link to the organisation,
    the manager still saw her). Before, the step did not exist and a scenario could not say it."""
    standard = ROOT / "definitions" / "standard" / "permissions"
    scenario = tmp_path / "s.scenario.yaml"
    scenario.write_text(f"""apiVersion: regelwerk/v1
kind: Scenario
metadata: {{name: prullenbak}}
spec:
  bundle: {standard}
  now: "2026-03-02T09:00:00+01:00"
  facts:
    actors:
      wendy: {{roles: [employer], employer_status: approved}}
      mo: {{roles: [manager]}}
      pim: {{roles: [professional]}}
      pia: {{roles: [professional]}}
    relations:
      - {{kind: represents, subject: wendy, object: zorg-bv}}
      - {{kind: member_of, subject: zorg-bv-utrecht, object: zorg-bv}}
      - {{kind: member_of, subject: mo, object: zorg-bv-utrecht}}
    resources:
      dossier:pim: {{subject: pim}}
      dossier:pia: {{subject: pia}}
  steps:
    - relate: {{matrix: registerplein, as: pim, subject: pim, object: zorg-bv}}
    - relate: {{matrix: registerplein, as: pim, subject: pim, object: mo}}
    - relate: {{matrix: registerplein, as: pia, subject: pia, object: zorg-bv}}
    - relate: {{matrix: registerplein, as: pia, subject: pia, object: mo}}
    - unrelate: {{matrix: registerplein, as: wendy, action: remove, subject: pia, object: zorg-bv}}
    - can: {{matrix: registerplein, actor: mo, action: read, resource: "dossier:pia", expect: allowed}}
    - remove_professional: {{matrix: registerplein, as: mo, subject: pim, object: zorg-bv, expect: denied}}
    - remove_professional: {{matrix: registerplein, as: wendy, subject: pim, object: zorg-bv}}
    - can: {{matrix: registerplein, actor: mo, action: read, resource: "dossier:pim", expect: denied,
            reason: withdrawn}}
    - can: {{matrix: registerplein, actor: wendy, action: read, resource: "dossier:pim", expect: denied}}
    - remove_professional: {{matrix: registerplein, as: mo, subject: pia, object: zorg-bv, expect: denied, by: nobody}}
""", encoding="utf-8")
    results = run_scenario_file(scenario, load_registry())
    outcomes = [(s.kind, s.passed, s.message) for r in results for s in r.steps]
    assert [o[1] for o in outcomes] == [True] * 10 + [False], outcomes
    assert "expected the refusal by 'nobody', got 'default'" in outcomes[10][2]
