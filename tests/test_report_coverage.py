"""The sign-off report's scenario coverage: "Getest met scenario's" and a "Door de scenario's getest" block per
definition, computed by running the bundle's scenarios, in Dutch, with the ids folded away."""

from __future__ import annotations

import html
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from regelwerk import coverage
from regelwerk.registry import load_registry
from regelwerk.report.command import build_report, report_command
from test_report_signoff import visible_text

ROOT = Path(__file__).resolve().parent.parent
SCHOOL = ROOT / "examples" / "scholengroep-horizon"
RETAIL = ROOT / "examples" / "retail-noorderlicht"
DAY = date(2026, 10, 1)
RECRUITING = SCHOOL / "scenarios" / "werving-leraar.scenario.yaml"


@pytest.fixture(scope="module")
def registry() -> Any:
    return load_registry()


@pytest.fixture(scope="module")
def school(registry: Any) -> tuple[str, Any]:
    return build_report(SCHOOL, registry, DAY, scenarios=[SCHOOL])


def card(page: str, kind: str, name: str) -> str:
    """The visible text of one definition's card."""
    start = page.index(f'data-kind="{kind}" data-name="{name}"')
    end = page.find('<div class="item', start + 10)
    return visible_text(page[start - 30:end if end > 0 else len(page)])


def coverage_text(page: str, kind: str, name: str) -> str:
    text = card(page, kind, name)
    return text[text.index("Door de scenario's getest:"):]


def _run(registry: Any, *paths: Path) -> coverage.ScenarioRun:
    return coverage.run_scenarios([str(p) for p in paths], registry)


def test_the_overview_counts_what_the_scenarios_exercised(school: tuple[str, Any], registry: Any) -> None:
    page, compiled = school
    text = visible_text(page)
    assert "Getest met scenario's" in text and '<a href="#getest">' in page
    run = _run(registry, SCHOOL)
    assert len(run.scenarios) == 7 and run.failed == ()
    assert "getest met 7 scenario’s" in text and "Ze slagen allemaal." in text
    items = [i for i in coverage.coverables(compiled)]
    covered = sum(run.covered(i) for i in items)
    assert covered > 0
    share = round(100 * covered / len(items))
    assert f"Door de scenario's getest: {covered} van {len(items)} onderdelen ({share} %)" in text
    # the section comes right after the differences, before the definitions
    assert page.index('id="getest"') < page.index('id="workflows"')
    assert page.index('id="afwijkingen"') < page.index('id="getest"')


def test_each_card_says_what_was_tested_in_words(school: tuple[str, Any], registry: Any) -> None:
    page, compiled = school
    name = next(n for (k, n) in compiled.objects if k == "Workflow" and n.startswith("recruitment"))
    model = compiled.objects[("Workflow", name)]
    run = _run(registry, SCHOOL)
    transitions = [i for i in coverage.coverables(compiled) if i.document == name and i.category == "transitions"]
    hit = sum(run.covered(i) for i in transitions)
    text = coverage_text(page, "Workflow", name)
    share = round(100 * hit / len(transitions))
    assert f"{hit} van {len(transitions)} overgangen ({share} %)" in text
    for item in transitions:
        t = item.ref
        label = t.label or t.event
        if run.covered(item):
            continue
        assert label in text.split("Niet getest:", 1)[1]  # untested transitions are named by their label
        assert item.item not in text  # ... never by their id (that is in the folded detail)
        assert html.escape(item.item, quote=False) in page[page.index(f'data-name="{name}"'):]
    assert any(model.state(s).label in text for s in model.state_ids) or "Alles hiervan" in text


def test_a_removed_scenario_leaves_its_transitions_untested(registry: Any) -> None:
    others = sorted(p for p in (SCHOOL / "scenarios").glob("*.scenario.yaml") if p != RECRUITING)
    with_all, compiled = build_report(SCHOOL, registry, DAY, scenarios=[SCHOOL])
    without, _ = build_report(SCHOOL, registry, DAY, scenarios=others)
    name = next(n for (k, n) in compiled.objects if k == "Workflow" and n.startswith("recruitment"))
    before, after = coverage_text(with_all, "Workflow", name), coverage_text(without, "Workflow", name)
    run = _run(registry, RECRUITING)
    moved = [i for i in coverage.coverables(compiled) if i.document == name and i.category == "transitions"
             and run.covered(i)]
    assert moved  # the recruiting scenario moves candidates through the workflow
    model = compiled.objects[("Workflow", name)]
    dest = model.state(moved[0].ref.dest).label
    untested_after = after.split("Niet getest:", 1)[1]
    assert f"→ {dest})" in untested_after
    counted = re.compile(r"(\d+) van (\d+) overgangen")
    assert int(counted.findall(after)[0][0]) < int(counted.findall(before)[0][0])  # fewer tested without it
    assert f"getest met {len(_run(registry, *others).scenarios)} scenario’s" in visible_text(without)


def test_guard_outcomes_and_planning_moments_are_listed(registry: Any) -> None:
    page, compiled = build_report(RETAIL, registry, date(2027, 3, 1), scenarios=[RETAIL])
    cycle = next(n for (k, n) in compiled.objects if k == "DevelopmentCycle")
    text = coverage_text(page, "DevelopmentCycle", cycle)
    run = _run(registry, RETAIL)
    moments = [i for i in coverage.coverables(compiled) if i.document == cycle]
    untested = [i for i in moments if not run.covered(i)]
    assert untested and len(untested) < len(moments)
    assert f"{len(moments) - len(untested)} van {len(moments)} planmomenten" in text
    for item in untested:
        assert item.label in text  # "Beoordelingsgesprek", not "beoordelingsgesprek"
    # a guard that was never refused is listed with "voorwaarde niet voldaan"
    guards = [i for i in coverage.coverables(compiled) if i.category == "guard branches" and not run.covered(i)
              and i.ref[1] is False]
    assert guards
    wf = guards[0].document
    assert "niet voldaan" in coverage_text(page, "Workflow", wf)


def test_permission_rules_and_table_rules_read_as_words(school: tuple[str, Any]) -> None:
    page, compiled = school
    matrix = next(n for (k, n) in compiled.objects if k == "PermissionMatrix" and "Horizon" in
                  compiled.objects[(k, n)].label)
    text = coverage_text(page, "PermissionMatrix", matrix)
    assert "rechtenregels" in text and " mag " in text  # "Beheerder mag aanmaken, ...: Medewerkergegevens (...)"
    table = next(n for (k, n) in compiled.objects if k == "DecisionTable" and compiled.objects[(k, n)].rows)
    assert re.search(r"\d+ van \d+ regels? \(\d+ %\)", coverage_text(page, "DecisionTable", table))


def test_the_cli_runs_the_scenarios_unless_told_not_to(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "with"
    result = runner.invoke(report_command, [str(SCHOOL), "-o", str(out), "--date", "2026-10-01", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["scenarios"] == {"run": 7, "failed": []}
    assert "Getest met scenario's" in visible_text((out / "index.html").read_text(encoding="utf-8"))
    bare = tmp_path / "without"
    result = runner.invoke(report_command, [str(SCHOOL), "-o", str(bare), "--date", "2026-10-01", "--no-coverage"])
    assert result.exit_code == 0, result.output
    text = visible_text((bare / "index.html").read_text(encoding="utf-8"))
    assert "Getest met scenario's" not in text and "Door de scenario's getest" not in text


def test_a_failing_scenario_is_named_in_the_report(tmp_path: Path) -> None:
    source = SCHOOL / "scenarios" / "verlofuren.scenario.yaml"
    text = source.read_text(encoding="utf-8").replace("bundle: ..", f"bundle: {SCHOOL}")
    assert str(SCHOOL) in text
    broken = text.replace("outputs: {uren: 240}", "outputs: {uren: 241}")
    assert broken != text
    scenario = tmp_path / "kapot.scenario.yaml"
    scenario.write_text(broken, encoding="utf-8")
    out = tmp_path / "report"
    result = CliRunner().invoke(report_command, [str(SCHOOL), "-o", str(out), "--date", "2026-10-01",
                                                 "--scenarios", str(scenario)])
    assert result.exit_code == 0, result.output
    assert "warning: 1 of 1 scenarios failed" in result.output
    page = " ".join(visible_text((out / "index.html").read_text(encoding="utf-8")).split())
    assert "Let op: 1 van de 1 slagen niet: verlofuren-naar-werktijdfactor." in page


def test_no_scenarios_is_said_plainly(tmp_path: Path, registry: Any) -> None:
    empty = tmp_path / "geen"
    empty.mkdir()
    page, _ = build_report(SCHOOL, registry, DAY, scenarios=[empty])
    text = visible_text(page)
    assert "geen scenario's (testgevallen) gevonden" in text and "Door de scenario's getest" not in text


def test_the_report_with_coverage_is_deterministic(school: tuple[str, Any], registry: Any) -> None:
    again, _ = build_report(SCHOOL, registry, DAY, scenarios=[SCHOOL])
    assert again == school[0]  # with --date, byte for byte the same, coverage included


def test_a_broken_bundle_is_reported_before_any_scenario_runs(tmp_path: Path) -> None:
    import shutil

    customer = tmp_path / "klant"
    shutil.copytree(RETAIL, customer)
    path = customer / "workflows" / "ruilverzoek.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("kind: Workflow", "kind: Werkflow", 1), encoding="utf-8")
    result = CliRunner().invoke(report_command, [str(customer), "-o", str(tmp_path / "out"), "--date", "2026-10-01"])
    assert result.exit_code == 1
    assert "RW10" in result.output and "scenarios failed" not in result.output
    assert not (tmp_path / "out").exists()
