"""Scenario coverage: what the scenarios exercised, per bundle, as text and JSON; --min-coverage fails below."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from regelwerk import coverage
from regelwerk.cli import cli
from regelwerk.decisions.table import DecisionTable

ROOT = Path(__file__).resolve().parent.parent
LEAVE = str(ROOT / "tests" / "scenarios" / "workflow" / "leave.scenario.yaml")
TCK = str(ROOT / "tests" / "scenarios" / "dmn-tck" / "0020-vacation-days")


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
