"""Talent kinds: calendars, planning rules (mid-year hire, 29 February, leaving), matrix placement, diagnostics."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from regelwerk.bundle import load_bundle
from regelwerk.compiler import CompiledBundle, compile_bundle
from regelwerk.diagnostics import DefinitionError
from regelwerk.scheduling.employees import EmployeeFacts

ROOT = Path(__file__).resolve().parent.parent
STANDARD = ROOT / "definitions" / "standard" / "talent"
SCHOOL = ROOT / "tests" / "scenarios" / "talent" / "schooljaar"


@pytest.fixture(scope="module")
def standard(registry: Any) -> CompiledBundle:
    return compile_bundle(load_bundle(STANDARD), registry)


def plan_keys(compiled: CompiledBundle, employee: EmployeeFacts, now: datetime, year: str = "2026") -> dict[str, str]:
    cycle = compiled.get("DevelopmentCycle", "standaard-ontwikkelcyclus")
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Europe/Amsterdam")
    prefix = f"talent/standaard-ontwikkelcyclus/{year}/{employee.id}/"
    return {i.key.removeprefix(prefix): i.due_at.astimezone(tz).date().isoformat()
            for i in cycle.plan(employee, now).items if i.key.startswith(prefix)}


def test_calendars(standard: CompiledBundle, registry: Any) -> None:
    cal = standard.get("WorkYearCalendar", "kalenderjaar")
    year = cal.year_of(date(2026, 5, 5))
    assert (year.id, year.start, year.middle, year.end) == ("2026", date(2026, 1, 1), date(2026, 7, 1),
                                                            date(2026, 12, 31))
    school = compile_bundle(load_bundle(SCHOOL), registry).get("WorkYearCalendar", "schooljaar")
    year = school.year_of(date(2027, 2, 1))
    assert (year.id, year.start, year.middle, year.end) == ("2026-2027", date(2026, 9, 1), date(2027, 3, 1),
                                                            date(2027, 8, 31))
    assert school.parse("2026-2027") == year and school.parse("2026") is None and cal.parse("2026-2027") is None


def test_full_year_employee(standard: CompiledBundle) -> None:
    anna = EmployeeFacts("anna", hire_date=date(2019, 4, 1), manager="mark")
    assert plan_keys(standard, anna, datetime(2025, 12, 1, tzinfo=UTC)) == {
        "medewerker": "2026-01-01",
        "medewerker/doelstellingsgesprek": "2026-01-01",
        "medewerker/voortgangsgesprek": "2026-07-01",
        "medewerker/beoordelingsgesprek": "2026-11-30",
        "medewerker/beoordelingsgesprek/feedback/feedback-voor-beoordeling/self": "2026-11-16",
        "medewerker/beoordelingsgesprek/feedback/feedback-voor-beoordeling/manager": "2026-11-16",
    }
    assert plan_keys(standard, anna, datetime(2025, 11, 30, tzinfo=UTC)) == {}  # before the planning moment


def test_mid_year_hire_and_hire_on_29_february(standard: CompiledBundle) -> None:
    chris = EmployeeFacts("chris", hire_date=date(2026, 10, 20))
    got = plan_keys(standard, chris, datetime(2026, 10, 1, tzinfo=UTC))
    # no goal-setting or mid-year review (before the hire date); no manager, so only self-feedback
    assert got == {"medewerker": "2026-10-20", "medewerker/nulmeting": "2026-12-01",
                   "medewerker/beoordelingsgesprek": "2026-11-30",
                   "medewerker/beoordelingsgesprek/feedback/feedback-voor-beoordeling/self": "2026-11-16"}
    dirk = EmployeeFacts("dirk", hire_date=date(2028, 2, 29))
    got = plan_keys(standard, dirk, datetime(2028, 1, 1, tzinfo=UTC), "2028")
    assert got["medewerker"] == "2028-02-29" and got["medewerker/nulmeting"] == "2028-04-11"
    late = EmployeeFacts("late", hire_date=date(2026, 12, 15))
    assert plan_keys(standard, late, datetime(2026, 12, 1, tzinfo=UTC))["medewerker"] == "2026-12-15"
    # hired in December: the nulmeting (hire + 6 weeks) belongs to the hire year's trajectory (policy hire_year:
    # hire, the default), although it is due in January
    assert plan_keys(standard, late, datetime(2026, 12, 2, tzinfo=UTC))["medewerker/nulmeting"] == "2027-01-26"
    next_year = plan_keys(standard, late, datetime(2026, 12, 2, tzinfo=UTC), "2027")
    assert "medewerker/nulmeting" not in next_year and next_year["medewerker"] == "2027-01-01"
    # a year that has ended still plans the nulmeting of people hired in it, and nothing else
    january = plan_keys(standard, late, datetime(2027, 1, 20, tzinfo=UTC))
    assert january == {"medewerker": "2026-12-15", "medewerker/nulmeting": "2027-01-26"}


def test_leaving_before_a_moment(standard: CompiledBundle) -> None:
    bert = EmployeeFacts("bert", hire_date=date(2020, 1, 1), leaving_date=date(2026, 7, 1), manager="m")
    got = plan_keys(standard, bert, datetime(2025, 12, 1, tzinfo=UTC))
    assert set(got) == {"medewerker", "medewerker/doelstellingsgesprek"}  # leaves on the mid-year day itself
    gone = EmployeeFacts("gone", hire_date=date(2020, 1, 1), leaving_date=date(2026, 1, 1))
    assert plan_keys(standard, gone, datetime(2025, 12, 1, tzinfo=UTC)) == {}


def test_roles_groups_and_blocking(registry: Any) -> None:
    school = compile_bundle(load_bundle(SCHOOL), registry)
    cycle = school.get("DevelopmentCycle", "docenten")
    now = datetime(2026, 8, 20, tzinfo=UTC)
    teacher = EmployeeFacts("d", hire_date=date(2010, 1, 1), function="docent", groups=("onderwijzend",),
                            roles=("bhv-er", "mentor"))
    trajectories = {i.key for i in cycle.plan(teacher, now).items if i.item_type == "trajectory"}
    assert trajectories == {"talent/docenten/2026-2027/d/docent", "talent/docenten/2026-2027/d/bhv-er"}
    janitor = EmployeeFacts("j", hire_date=date(2010, 1, 1), function="conciërge", groups=("ondersteunend",),
                            roles=("bhv-er",))
    assert cycle.plan(janitor, now).items == ()
    role = school.get("TalentRole", "docent")
    assert role.competencies == ("didactiek", "samenwerken") and role.profile == "docentprofiel"


def test_hr3p_placement(standard: CompiledBundle) -> None:
    matrix = standard.get("TalentMatrix", "talentmatrix")
    assert matrix.model == "HR3P" and len(set(matrix.profiles)) == 5
    assert matrix.place(4.8, 4.6).profile == "talent"
    assert matrix.place("goed", "op-termijn").profile == "rijzende-ster"
    assert matrix.place(1.5, 4.0).profile == "vraagteken"
    assert matrix.place(3.2, 1.0).profile == "harde-werker"
    assert matrix.place(2.0, 2.5).to_dict()["profile_label"] == "Energieverslinder"
    with pytest.raises(ValueError, match="performance 'super'"):
        matrix.place("super", 3)
    assert "please.nl" in next(d for d in standard.documents if d.kind == "TalentMatrix").data["metadata"][
        "description"]


NINE_GRID = """
apiVersion: regelwerk/v1
kind: TalentMatrix
metadata: {name: negen-vakken}
spec:
  model: 9-GRID
  performance: &levels
    [{id: laag, label: Laag}, {id: midden, label: Midden, min_score: 2.5}, {id: hoog, label: Hoog, min_score: 4}]
  potential: *levels
  profiles:
{profiles}
  cells:
{cells}
"""


def nine_grid(cells_to_skip: int = 0) -> str:
    levels = ["laag", "midden", "hoog"]
    profiles = "\n".join(f"    - {{id: box{i}, label: Vak {i}}}" for i in range(1, 10))
    cells = [f"    - {{performance: {p}, potential: {q}, profile: box{3 * levels.index(q) + levels.index(p) + 1}}}"
             for q in levels for p in levels][cells_to_skip:]
    return NINE_GRID.replace("{profiles}", profiles).replace("{cells}", "\n".join(cells))


def test_nine_grid_and_matrix_diagnostics(registry: Any, tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(nine_grid(), encoding="utf-8")
    matrix = compile_bundle(load_bundle(tmp_path), registry).get("TalentMatrix", "negen-vakken")
    assert matrix.place(4.5, 1).profile == "box3" and matrix.place(1, 4.5).profile == "box7"
    (tmp_path / "m.yaml").write_text(nine_grid(cells_to_skip=1), encoding="utf-8")
    with pytest.raises(DefinitionError) as err:
        compile_bundle(load_bundle(tmp_path), registry)
    assert [d.code for d in err.value.diagnostics if d.is_error] == ["RW813"]
    assert any("laag x laag" in d.message for d in err.value.diagnostics if d.is_error)


def test_one_matrix_per_organisation_and_other_diagnostics(registry: Any, tmp_path: Path) -> None:
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(STANDARD, bundle)
    (bundle / "second.yaml").write_text(nine_grid(), encoding="utf-8")
    cycle = (bundle / "cycle.yaml").read_text(encoding="utf-8")
    cycle = cycle.replace('- from: "2026"', '- from: "2026-2027"').replace("workflow: talent-conversation\n",
                                                                         "workflow: gesprek\n", 1)
    (bundle / "cycle.yaml").write_text(cycle, encoding="utf-8")
    with pytest.raises(DefinitionError) as err:
        compile_bundle(load_bundle(bundle), registry)
    codes = sorted(d.code for d in err.value.diagnostics if d.is_error)
    assert codes == ["RW810", "RW812", "RW814"]


def test_questions_and_departments_do_not_put_trajectories_behind(registry: Any, tmp_path: Path) -> None:
    """Applicants' questions and a profile's departments serve recruitment only: the role's version ignores them."""
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(STANDARD, bundle)
    before = compile_bundle(load_bundle(bundle), registry)
    assert before.get("TalentCompetency", "samenwerken").questions[0].startswith("Vertel over een keer")
    competencies = (bundle / "competencies.yaml").read_text(encoding="utf-8")
    (bundle / "competencies.yaml").write_text(competencies.replace("Wat was jouw bijdrage?", "Wat deed jij?"),
                                              encoding="utf-8")
    profiles = (bundle / "profiles.yaml").read_text(encoding="utf-8")
    (bundle / "profiles.yaml").write_text(profiles.replace("  label: Basisprofiel\n",
                                                           "  label: Basisprofiel\n  departments: [sales]\n"))
    after = compile_bundle(load_bundle(bundle), registry)
    assert after.get("TalentCompetencyProfile", "basisprofiel").departments == ("sales",)
    assert after.get("TalentRole", "medewerker").version == before.get("TalentRole", "medewerker").version
    (bundle / "competencies.yaml").write_text(competencies.replace("Werkt vooral alleen", "Werkt alleen"),
                                              encoding="utf-8")
    changed = compile_bundle(load_bundle(bundle), registry)
    assert changed.get("TalentRole", "medewerker").version != before.get("TalentRole", "medewerker").version


def test_standard_questionnaire_comes_from_the_talent_competencies(registry: Any) -> None:
    """In the standard bundle the recruitment questionnaire asks the core competencies' questions."""
    compiled = compile_bundle(load_bundle(ROOT / "definitions" / "standard"), registry)
    settings = compiled.get("RecruitmentSettings", "default")
    asked = settings.questionnaire.for_vacancy("kok", "keuken")
    assert [c.name for c in asked] == ["samenwerken", "klantgerichtheid", "resultaatgerichtheid", "flexibiliteit"]
    assert all(c is compiled.get("TalentCompetency", c.name) for c in asked)


def test_matrix_compiles_into_an_explained_decision_table(standard: CompiledBundle) -> None:
    """The TalentMatrix emits a core DecisionTable; placements are its decisions, with the explanation."""
    table = standard.get("DecisionTable", "talentmatrix-placement")
    matrix = standard.get("TalentMatrix", "talentmatrix")
    assert matrix.table is table and table.hit_policy == "UNIQUE"
    assert len(table.rows) == 16 * 4  # every cell by ids, by either score, by both scores
    decision = table.decide({"performance": 4.6, "potential": "op-termijn"})
    assert dict(decision.outputs) == {"cell": "excellent/op-termijn", "performance": "excellent",
                                      "potential": "op-termijn", "profile": "talent"}
    assert decision.matched == ("excellent/op-termijn:performance-score",)
    because = decision.explain["matched"][0]["because"]
    assert because == ["performance >= 4.5", "potential = 'op-termijn'"]
    placement = matrix.place(4.6, "op-termijn")
    assert placement.profile == "talent" and placement.explain == decision.explain
    assert placement.to_dict()["explain"]["table"] == "talentmatrix-placement"
    # the score boundaries are the levels' min_score: 4.49 is still 'goed'
    assert table.decide({"performance": 4.49, "potential": 4.5}).outputs["cell"] == "goed/direct"
    with pytest.raises(ValueError, match="potential '7'"):
        matrix.place("goed", "7")
