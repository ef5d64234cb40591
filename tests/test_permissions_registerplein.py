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
