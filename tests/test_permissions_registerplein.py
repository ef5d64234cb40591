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
