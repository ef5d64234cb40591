"""Zorggroep Meander (tests/scenarios/zorggroep-meander), a customer written from a short brief: it validates
without a diagnostic and every rule of the brief has a scenario that passes (registers, consent, LMS, e-learning).
tests/test_scenarios.py runs the same files among all others; this names the fixture so a change that breaks it
shows here by name."""

from __future__ import annotations

from pathlib import Path

from regelwerk.bundle import load_bundle
from regelwerk.compiler import validate_bundle
from regelwerk.registry import Registry
from regelwerk.scenarios import find_scenario_files, run_scenario_file

FIXTURE = Path(__file__).resolve().parent / "scenarios" / "zorggroep-meander"


def test_meander_validates_cleanly(registry: Registry) -> None:
    diagnostics = validate_bundle(load_bundle(FIXTURE), registry)
    assert [d.format() for d in diagnostics] == []


def test_meander_scenarios_pass(registry: Registry) -> None:
    files = find_scenario_files([FIXTURE])
    assert {f.name for f in files} >= {"registers.scenario.yaml", "consent.scenario.yaml", "lms.scenario.yaml",
                                        "elearning.scenario.yaml"}
    results = [r for f in files for r in run_scenario_file(f, registry)]
    assert len(results) >= 7
    failures = [line for r in results for line in r.failures()]
    assert not failures, "\n".join(failures)


def test_the_report_says_which_roles_a_task_gives(registry: Registry) -> None:
    """The customer signs what they read: the praktijkopleider role is held by whoever has the task."""
    from datetime import date

    from regelwerk.report.command import build_report

    html, _ = build_report(FIXTURE, registry, date(2026, 12, 7))
    assert "Rollen die ook via een taak gelden" in html
    assert "Praktijkopleider: wie de taak praktijkopleider heeft" in html
