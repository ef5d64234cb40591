"""Scenario coverage: what the scenarios exercised, per bundle, as text and JSON; --min-coverage fails below."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from regelwerk import coverage
from regelwerk.cli import cli
from regelwerk.decisions.table import DecisionTable

ROOT = Path(__file__).resolve().parent.parent
LEAVE = str(ROOT / "tests" / "scenarios" / "workflow" / "leave.scenario.yaml")
TCK = str(ROOT / "tests" / "scenarios" / "dmn-tck" / "0020-vacation-days")
PLANNING = str(ROOT / "tests" / "scenarios" / "lms" / "elearning_planning.yaml")
TALENT = str(ROOT / "tests" / "scenarios" / "talent" / "kalenderjaar.scenario.yaml")


def test_coverage_reports_what_ran_and_what_did_not(tmp_path: Path) -> None:
    out = tmp_path / "coverage.json"
    result = CliRunner().invoke(cli, ["test", "-q", "--coverage", "--coverage-file", str(out), LEAVE, TCK])
    assert result.exit_code == 0, result.output
    assert "coverage: " in result.output
    assert "not exercised: leave: approve: requested -> approved" in result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    leave = next(v for k, v in report["bundles"].items() if k.endswith("workflow/leave"))
    assert leave["Workflow transitions"]["covered"] == 3 and leave["Workflow transitions"]["total"] == 4
    assert leave["Workflow transitions"]["uncovered"] == ["leave: approve: requested -> approved"]
    assert leave["Workflow states"] == {"covered": 3, "total": 3, "uncovered": [], "percent": 100.0}
    vacation = next(v for k, v in report["bundles"].items() if k.endswith("0020-vacation-days"))
    # case 3's row for 15 <= years < 30 and case 2's age row are hit by the TCK cases; every row is
    assert vacation["DecisionTable rows"]["covered"] == vacation["DecisionTable rows"]["total"] == 6
    assert vacation["Calculation calculations"]["covered"] == 2
    total = sum(c["total"] for b in report["bundles"].values() for c in b.values())
    covered = sum(c["covered"] for b in report["bundles"].values() for c in b.values())
    assert report["percent"] == round(100 * covered / total, 1)


def test_min_coverage_fails_the_run_below_it() -> None:
    low = CliRunner().invoke(cli, ["test", "-q", "--min-coverage", "95", LEAVE])
    assert low.exit_code == 1 and "below the minimum of 95 %" in low.output
    ok = CliRunner().invoke(cli, ["test", "-q", "--min-coverage", "80", LEAVE])
    assert ok.exit_code == 0, ok.output


def test_json_format_and_no_cost_when_off() -> None:
    original = DecisionTable.__dict__["decide"]
    result = CliRunner().invoke(cli, ["test", "-q", "--coverage", "--coverage-format", "json", TCK])
    assert result.exit_code == 0
    text = result.output[result.output.index("{"):]
    assert json.loads(text)["percent"] == 100.0
    assert DecisionTable.__dict__["decide"] is original and coverage.current() is None


def _coverage_of(tmp_path: Path, *paths: str) -> dict[str, Any]:
    out = tmp_path / "coverage.json"
    result = CliRunner().invoke(cli, ["test", "-q", "--coverage-file", str(out), *paths])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return data


def _bundle(report: dict[str, Any], suffix: str) -> dict[str, Any]:
    found: dict[str, Any] = next(v for k, v in report["bundles"].items() if k.endswith(suffix))
    return found


def _trimmed(tmp_path: Path, scenario: str, keep: int) -> str:
    """A copy of ``scenario`` with only its first ``keep`` steps, pointing at the same bundle."""
    source = Path(scenario)
    doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    doc["spec"]["bundle"] = str((source.parent / doc["spec"].get("bundle", ".")).resolve())
    doc["spec"]["steps"] = doc["spec"]["steps"][:keep]
    out = tmp_path / "trimmed" / source.name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return str(out)


def test_both_branches_of_every_guard_are_counted(tmp_path: Path) -> None:
    leave = _bundle(_coverage_of(tmp_path, LEAVE), "workflow/leave")
    # remind's guard held once and was refused once (the second reminder); auto_approve's only ever held
    assert leave["Workflow guard branches"]["total"] == 4
    assert leave["Workflow guard branches"]["uncovered"] == ["leave: auto_approve: requested -> approved [false]"]
    # without the step where the guard refuses the second reminder, its false branch is untested
    steps = yaml.safe_load(Path(LEAVE).read_text(encoding="utf-8"))["spec"]["steps"]
    cut = next(i for i, s in enumerate(steps) if "tweede herinnering" in str(s.get("name", "")))
    short = _bundle(_coverage_of(tmp_path, _trimmed(tmp_path, LEAVE, cut)), "workflow/leave")
    assert "leave: remind: requested -> requested [false]" in short["Workflow guard branches"]["uncovered"]
    assert "leave: remind: requested -> requested [true]" not in short["Workflow guard branches"]["uncovered"]


def test_schedule_moments_count_when_the_tick_fired_them(tmp_path: Path) -> None:
    plans = ["toets-luisteren-teamleiders", "toets-samenwerken-verkoop", "toets-time-management-kees"]
    full = _bundle(_coverage_of(tmp_path, PLANNING), "lms/planning")["Schedule schedule moments"]
    assert not any(p in u for u in full["uncovered"] for p in plans)
    # the items are created a month ahead but only fire (start their workflow) on 1 April
    steps = yaml.safe_load(Path(PLANNING).read_text(encoding="utf-8"))["spec"]["steps"]
    before = next(i for i, s in enumerate(steps) if "1 April" in str(s.get("name", "")))
    early = _bundle(_coverage_of(tmp_path, _trimmed(tmp_path, PLANNING, before)), "lms/planning")
    assert all(f"{p}: {p}" in early["Schedule schedule moments"]["uncovered"] for p in plans)


def test_a_cycles_moments_and_feedback_rounds_are_schedule_moments(tmp_path: Path) -> None:
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.registry import load_registry

    compiled = compile_bundle(load_bundle(ROOT / "definitions" / "standard"), load_registry())
    moments = [c for c in coverage.coverables(compiled) if c.category == "schedule moments"]
    cycle = [c.item for c in moments if c.kind == "DevelopmentCycle"]
    assert "beoordelingsgesprek" in cycle and any(m.startswith("feedback/") for m in cycle)
    # named Schedules count only where a workflow.schedule action uses them (the certificate's reminders)
    assert sorted(c.item for c in moments if c.kind == "Schedule") == [
        "certificate-expiry", "certificate-expiry-30d", "certificate-expiry-90d"]
    whole = _bundle(_coverage_of(tmp_path, TALENT), "talent/kalenderjaar")["DevelopmentCycle schedule moments"]
    assert whole["covered"] == whole["total"] == 5 and whole["uncovered"] == []
    # stopped before the feedback requests start: the round's moment and the appraisal are untested
    steps = yaml.safe_load(Path(TALENT).read_text(encoding="utf-8"))["spec"]["steps"]
    cut = next(i for i, s in enumerate(steps) if "anna leaves" in str(s.get("name", "")))
    early = _bundle(_coverage_of(tmp_path, _trimmed(tmp_path, TALENT, cut)), "talent/kalenderjaar")
    untested = early["DevelopmentCycle schedule moments"]["uncovered"]
    assert any(u.endswith(": feedback/feedback-voor-beoordeling") for u in untested)
    assert any(u.endswith(": beoordelingsgesprek") for u in untested)
    assert not any(u.endswith(": doelstellingsgesprek") for u in untested)


def test_internal_transitions_are_covered_by_name(tmp_path: Path) -> None:
    """An internal transition is named ``event: sources (internal)`` and is covered when it fired (it stays in the
    state); the VOG bundle of tests/scenarios/workflow with only a note fired."""
    scenario = tmp_path / "note.scenario.yaml"
    scenario.write_text(yaml.safe_dump({
        "apiVersion": "regelwerk/v1", "kind": "Scenario", "metadata": {"name": "only-a-note"},
        "spec": {"bundle": str(ROOT / "tests" / "scenarios" / "workflow" / "vog"), "now": "2026-05-04T10:00:00+02:00",
                 "facts": {"permissions": {"vog.start": ["hr"], "vog.note": ["hr"]}},
                 "steps": [{"start": {"workflow": "vog", "id": "v1", "actor": {"id": "h", "roles": ["hr"]},
                                      "data": {"start_date": "2026-05-20"}}},
                           {"fire": {"instance": "v1", "event": "add_note", "actor": {"id": "h", "roles": ["hr"]},
                                     "expect_state": "waiting_for_vog"}}]}}), encoding="utf-8")
    out = tmp_path / "coverage.json"
    result = CliRunner().invoke(cli, ["test", "-q", "--coverage", "--coverage-file", str(out), str(scenario)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    vog = next(iter(report["bundles"].values()))
    assert sorted(vog["Workflow transitions"]["uncovered"]) == [
        "vog: block: waiting_for_vog -> blocked", "vog: receive_vog: waiting_for_vog|blocked -> cleared",
        "vog: remind_hr: waiting_for_vog (internal)"]
    assert vog["Workflow transitions"]["covered"] == 1
    assert vog["Workflow states"]["uncovered"] == ["vog: blocked", "vog: cleared"]
