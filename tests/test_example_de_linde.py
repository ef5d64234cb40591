"""The care-organisation example: its workbook is what the generator writes, and imports as the brief says."""

from __future__ import annotations

import importlib.util
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "zorggroep-de-linde"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("de_linde_workbook",
                                                  ROOT / "tests" / "fixtures" / "de_linde_workbook.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cell(value: Any) -> Any:
    return value.date() if isinstance(value, datetime) else value


def test_committed_workbook_holds_the_generated_rows() -> None:
    from openpyxl import load_workbook

    expected = _generator().sheets()
    book = load_workbook(EXAMPLE / "data" / "organisatie.xlsx", read_only=True)
    try:
        assert book.sheetnames == list(expected)
        for title, rows in expected.items():
            found = [tuple(_cell(v) for v in row) for row in book[title].iter_rows(values_only=True)]
            assert found == [tuple(None if v == "" else v for v in row) for row in rows], title
    finally:
        book.close()


def _import(tmp_path: Path) -> Any:
    import sqlalchemy as sa
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.imports.organisation import import_organisation
    from regelwerk.registry import load_registry

    sa_engine = sa.create_engine(f"sqlite:///{tmp_path / 'linde.sqlite'}")
    compiled = compile_bundle(load_bundle(EXAMPLE), load_registry())
    result = import_organisation(sa_engine, [EXAMPLE / "data" / "organisatie.xlsx"], compiled=compiled,
                                 now=datetime(2026, 2, 15, tzinfo=UTC))
    assert result.ok, result.lines()
    return sa_engine, compiled, result


def test_the_workbook_imports_with_its_extra_facts(tmp_path: Path) -> None:
    """Every row of every sheet imports (the Rollen sheet holds every role the Medewerkers sheet names)."""
    from regelwerk.scheduling.employees import EmployeeDirectory

    sa_engine, _, result = _import(tmp_path)
    try:
        assert dict(result.imported) == {"departments": 4, "functions": 9, "roles": 10, "tasks": 2, "employees": 20}
        assert not result.rejected and not result.errors
        directory = EmployeeDirectory(sa_engine)
        anouk = directory.get("L011")
        assert anouk is not None and anouk.manager == "L010" and anouk.roles == ("praktijkopleider",)
        assert anouk.function == "verzorgende-ig" and anouk.department == "lindehof-a"
        assert anouk.attributes["contracturen"] == 28 and anouk.attributes["feedback_collegas"] == "L013;L014"
        fenna = directory.get("L017")
        assert fenna is not None and fenna.hire_date == date(2027, 3, 31)
        kees = directory.get("L012")
        assert kees is not None and kees.attributes["tasks"] == ["bhv"]
    finally:
        sa_engine.dispose()


def test_the_imported_relations_decide_who_reads_feedback(tmp_path: Path) -> None:
    """The reporting lines and rights levels the import writes are what the talent-feedback matrix reads:
    the same answers as the scenario linde-feedback-inzien gives from hand-written facts."""
    from regelwerk.actors import Actor
    from regelwerk.permissions.sql import SqlRelationships

    sa_engine, compiled, _ = _import(tmp_path)
    try:
        relations = SqlRelationships(sa_engine, timezone=compiled.timezone)
        now = datetime(2027, 2, 20, 8, tzinfo=UTC)
        assert relations.managers_of("L012") == {"L010"} and relations.ancestors("L012") == {"L010", "L001"}
        assert relations.roles_of("L010", now) == ("leidinggevende",)  # Rollen: teamleiding -> leidinggevende
        assert relations.groups_of("L012", now) == {"lindehof-a"}
        assert {r.object for r in relations.relations("has_task", "L013")} == {"or"}
        matrix = compiled.of_kind("PermissionMatrix")["talent-feedback"]
        team_answer = {"subject": "L012", "author": "L013", "set": "colleagues", "visible_to": ["manager", "hr"]}

        def reads(person: str, answer: dict[str, Any]) -> tuple[bool, Any]:
            actor = Actor(person, relations.roles_of(person, now))
            decision = matrix.decide(actor, "read", "feedback_answer", answer, relations, now, explain=True)
            return decision.allowed, decision.explain.get("by")

        assert reads("L010", team_answer) == (True, "manager_reads")
        assert reads("L012", team_answer)[0] is False  # anonymous for the employee
        assert reads("L001", team_answer)[0] is False  # the bestuurder is not in the round's visibility
        assert reads("L020", team_answer)[0] is False  # another team's leader
    finally:
        sa_engine.dispose()


def test_the_whole_workbook_imports_top_down(tmp_path: Path) -> None:
    """Afdelingen, functies, rollen, taken and medewerkers, with the customer's declared extra columns."""
    from click.testing import CliRunner
    from regelwerk.cli import cli
    from regelwerk.registry import load_registry

    for name, command in load_registry().commands.items():
        if name not in cli.commands:
            cli.add_command(command, name)
    url = f"sqlite:///{tmp_path / 'linde.sqlite'}"
    result = CliRunner().invoke(cli, ["import", "organisation", str(EXAMPLE / "data" / "organisatie.xlsx"),
                                      "--store", url, "--bundle", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "4 departments, 9 functions, 10 roles, 2 tasks, 20 employees; relations: 80 added" in result.output


def _copy_with_unknown_role(tmp_path: Path) -> Path:
    """The example with Kees (L012) given a role the Rollen sheet does not have (what broke de Linde before)."""
    import shutil

    from openpyxl import load_workbook

    copy = tmp_path / "linde"
    shutil.copytree(EXAMPLE, copy)
    book = load_workbook(copy / "data" / "organisatie.xlsx")
    sheet = book["Medewerkers"]
    header = [c.value for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        if row[0].value == "L012":
            row[header.index("rollen")].value = "mentor"
    book.save(copy / "data" / "organisatie.xlsx")
    return copy


def _scenario(copy: Path, step: str) -> list[Any]:
    from regelwerk.registry import load_registry
    from regelwerk.scenarios import run_scenario_file

    path = copy / "scenarios" / "import.scenario.yaml"
    path.write_text("apiVersion: regelwerk/v1\nkind: Scenario\nmetadata: {name: import}\n"
                    "spec:\n  bundle: ..\n  now: \"2026-02-15T00:00:00+01:00\"\n  steps:\n" + step, encoding="utf-8")
    return run_scenario_file(path, load_registry())


def test_the_import_organisation_step_reports_a_bad_row(tmp_path: Path) -> None:
    copy = _copy_with_unknown_role(tmp_path)
    refused = _scenario(copy, "    - import_organisation: {file: ../data/organisatie.xlsx}\n")
    assert not refused[0].passed
    assert "roles: no role 'mentor'" in refused[0].steps[0].message
    expected = _scenario(copy, "    - import_organisation: {file: ../data/organisatie.xlsx, skip_invalid: true,\n"
                               "                            expect_errors: [\"no role 'mentor'\"],\n"
                               "                            expect: {employees: 19}}\n"
                               "    - preview: {from: \"2026-04-01\", to: \"2026-05-02\", absent:\n"
                               "        [talent/standaard-ontwikkelcyclus/2026-2027/L012/zorgmedewerker]}\n")
    assert expected[0].passed, [s.message for s in expected[0].steps]
    outside = _scenario(copy, "    - import_organisation: {file: /etc/hostname}\n")
    assert not outside[0].passed and "beside the scenario" in outside[0].steps[0].message
