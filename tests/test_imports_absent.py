"""``--absent keep|end|report``: who the store has and the new file does not. Keep (the default) changes nothing,
report lists them, end ends their employment and the imported relations as of the import date and deletes
nothing; De Linde's workbook with rows taken out is the new file."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from regelwerk.imports.organisation import import_organisation
from regelwerk.permissions.sql import SqlRelationships
from regelwerk.scheduling.employees import EmployeeDirectory

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "zorggroep-de-linde"
WORKBOOK = EXAMPLE / "data" / "organisatie.xlsx"
START = datetime(2026, 2, 15, 9, tzinfo=UTC)
LATER = datetime(2026, 6, 15, 9, tzinfo=UTC)


def without(target: Path, employees: tuple[str, ...] = (), tasks: tuple[str, ...] = (),
            untask: tuple[str, ...] = ()) -> Path:
    """De Linde's workbook without some employees and tasks (``untask``: employees whose Taken cell is emptied)."""
    from openpyxl import load_workbook

    book = load_workbook(WORKBOOK)
    for title, gone in (("Medewerkers", employees), ("Taken", tasks)):
        sheet = book[title]
        for index in sorted((r[0].row for r in sheet.iter_rows(min_row=2) if r[0].value in gone), reverse=True):
            sheet.delete_rows(index)
    sheet = book["Medewerkers"]
    header = [c.value for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        if row[0].value in untask:
            row[header.index("taken")].value = None
    book.save(target)
    return target


@pytest.fixture
def store(tmp_path: Path) -> Any:
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.registry import load_registry

    sa_engine = sa.create_engine(f"sqlite:///{tmp_path / 'linde.sqlite'}")
    compiled = compile_bundle(load_bundle(EXAMPLE), load_registry())
    assert import_organisation(sa_engine, [WORKBOOK], compiled=compiled, now=START).ok
    yield sa_engine, compiled
    sa_engine.dispose()


def relations_of(sa_engine: Any, person: str) -> list[Any]:
    return [r for r in SqlRelationships(sa_engine).relations() if person in (r.subject, r.object)]


def test_keep_is_the_default_and_report_changes_nothing(store: Any, tmp_path: Path) -> None:
    sa_engine, compiled = store
    smaller = without(tmp_path / "zonder-sanne.xlsx", employees=("L013",))
    before = [(r.kind, r.subject, r.object, r.valid_to, r.withdrawn_at) for r in relations_of(sa_engine, "L013")]
    kept = import_organisation(sa_engine, [smaller], compiled=compiled, now=LATER)
    assert kept.ok and kept.absent == () and "absent" not in kept.lines()[-1]
    reported = import_organisation(sa_engine, [smaller], compiled=compiled, now=LATER, absent="report")
    assert reported.ok and [(a.kind, a.id, a.name, a.ended_on) for a in reported.absent] == [
        ("employee", "L013", "Sanne Wouters", None)]
    assert "absent from the file: employee L013 (Sanne Wouters)" in reported.lines()
    assert reported.to_dict()["absent"] == [{"kind": "employee", "id": "L013", "name": "Sanne Wouters",
                                             "ended_on": None}]
    sanne = EmployeeDirectory(sa_engine).get("L013")
    assert sanne is not None and sanne.leaving_date is None
    after = [(r.kind, r.subject, r.object, r.valid_to, r.withdrawn_at) for r in relations_of(sa_engine, "L013")]
    assert after == before and len(after) == 4  # reports_to, member_of, has_function, has_task


def test_end_ends_employment_and_relations_as_of_the_import_date(store: Any, tmp_path: Path) -> None:
    sa_engine, compiled = store
    smaller = without(tmp_path / "zonder-sanne.xlsx", employees=("L013",))
    ended = import_organisation(sa_engine, [smaller], compiled=compiled, now=LATER, absent="end")
    assert ended.ok and [(a.id, a.ended_on) for a in ended.absent] == [("L013", date(2026, 6, 15))]
    assert "absent from the file: employee L013 (Sanne Wouters); employment ends on 2026-06-15" in ended.lines()
    sanne = EmployeeDirectory(sa_engine).get("L013")  # the row stays, with its history
    assert sanne is not None and sanne.leaving_date == date(2026, 6, 15) and sanne.hire_date == date(2020, 3, 1)
    relations = relations_of(sa_engine, "L013")  # ended at the moment of the import, kept as history
    assert len(relations) == 4 and all(r.withdrawn_at == LATER and r.withdrawn_by == "import:organisation"
                                       for r in relations)
    index = SqlRelationships(sa_engine, timezone="Europe/Amsterdam")
    assert index.managers_of("L013") == frozenset() and "L013" not in index.groups_of("L013", LATER)
    assert [r.active(datetime(2026, 6, 15, 8, tzinfo=UTC)) for r in relations] == [True] * 4
    assert [r.active(LATER) for r in relations] == [False] * 4
    with sa_engine.connect() as conn:  # with the same file again nobody is absent: she has left
        assert conn.execute(sa.text("select count(*) from rw_employees")).scalar_one() == 20
    again = import_organisation(sa_engine, [smaller], compiled=compiled, now=LATER, absent="end")
    assert again.ok and again.absent == ()

    # back in the file (rehired): the leaving date is what the file says, the relations are made anew
    back = import_organisation(sa_engine, [WORKBOOK], compiled=compiled, now=datetime(2026, 9, 1, tzinfo=UTC))
    assert back.ok and back.relations_added == 4
    sanne = EmployeeDirectory(sa_engine).get("L013")
    assert sanne is not None and sanne.leaving_date is None
    history = relations_of(sa_engine, "L013")
    assert len(history) == 8 and sum(r.withdrawn_at is None for r in history) == 4


def test_end_never_shortens_an_earlier_leaving_date_and_leaves_leavers_alone(store: Any, tmp_path: Path) -> None:
    sa_engine, compiled = store
    # Marloes leaves on 2027-02-28; Fenna is hired on 2027-03-31: neither is in the new file
    smaller = without(tmp_path / "kleiner.xlsx", employees=("L015", "L017"))
    ended = import_organisation(sa_engine, [smaller], compiled=compiled, now=LATER, absent="end")
    assert [(a.id, a.ended_on) for a in ended.absent] == [("L015", date(2026, 6, 15)), ("L017", date(2027, 3, 31))]
    fenna = EmployeeDirectory(sa_engine).get("L017")  # never employed: leaving on the hire date
    assert fenna is not None and fenna.leaving_date == fenna.hire_date == date(2027, 3, 31)
    # after Marloes's own leaving date, a file without her finds nobody absent
    late = import_organisation(sa_engine, [smaller], compiled=compiled, now=datetime(2027, 4, 2, tzinfo=UTC),
                               absent="report")
    assert late.absent == ()


def test_end_refuses_rows_that_refer_to_what_it_ends_and_ends_units(store: Any, tmp_path: Path) -> None:
    sa_engine, compiled = store
    # the task 'or' leaves the Taken sheet, but Sanne and Wim still have it: with end that is an error
    no_or = without(tmp_path / "zonder-or.xlsx", tasks=("or",))
    refused = import_organisation(sa_engine, [no_or], compiled=compiled, now=LATER, absent="end")
    assert not refused.ok
    assert sorted(str(e).split(": ", 1)[1] for e in refused.errors) == ["tasks: no task 'or'"] * 2
    assert import_organisation(sa_engine, [no_or], compiled=compiled, now=LATER).ok  # keep: 'or' stays
    # the whole file without 'or': the task ends, its relations with it
    clean = without(tmp_path / "zonder-or-2.xlsx", tasks=("or",), untask=("L013", "L040"))
    ended = import_organisation(sa_engine, [clean], compiled=compiled, now=LATER, absent="end")
    assert ended.ok and [(a.kind, a.id, a.ended_on) for a in ended.absent] == [("task", "or", date(2026, 6, 15))]
    with sa_engine.connect() as conn:
        attributes = conn.execute(sa.text("select attributes from rw_org_units where kind='task' and id='or'")
                                  ).scalar_one()
    assert json.loads(attributes)["ended_on"] == "2026-06-15"
    # an ended unit is not absent again, and under end a row may not name it
    assert import_organisation(sa_engine, [clean], compiled=compiled, now=LATER, absent="report").absent == ()
    assert not import_organisation(sa_engine, [without(tmp_path / "weer-or.xlsx", tasks=("or",))],
                                   compiled=compiled, now=LATER, absent="end").ok
    has_or = [r for r in SqlRelationships(sa_engine).relations("has_task") if r.object == "or"]
    # emptying the Taken cells withdrew them (the file says so), nothing is left to end
    assert len(has_or) == 2 and all(r.withdrawn_at is not None for r in has_or)


def test_end_with_an_unreadable_row_is_refused(store: Any, tmp_path: Path) -> None:
    sa_engine, compiled = store
    csv = tmp_path / "medewerkers.csv"
    csv.write_text('personeelsnummer;naam;datum_in_dienst\nL010;Ruud Veenstra;2014-06-01\n"L011;Anouk\n',
                   encoding="utf-8")
    result = import_organisation(sa_engine, [csv], compiled=compiled, now=LATER, absent="end", skip_invalid=True)
    assert not result.ok and "who is absent from the file is not known" in str(result.errors[0])
    assert EmployeeDirectory(sa_engine).get("L012") is not None
    assert EmployeeDirectory(sa_engine).get("L012").leaving_date is None  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="absent must be one of keep, end, report"):
        import_organisation(sa_engine, [csv], compiled=compiled, absent="delete")


def test_the_commands_take_absent(store: Any, tmp_path: Path) -> None:
    from regelwerk.cli import build_cli

    sa_engine, _ = store
    url = str(sa_engine.url)
    smaller = without(tmp_path / "zonder-sanne.xlsx", employees=("L013",))
    cli = build_cli()
    result = CliRunner().invoke(cli, ["import", "organisation", str(smaller), "--store", url, "--bundle",
                                      str(EXAMPLE), "--absent", "report", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert [a["id"] for a in json.loads(result.stdout)["absent"]] == ["L013"]
    text = CliRunner().invoke(cli, ["import", "organisation", str(smaller), "--store", url, "--bundle",
                                    str(EXAMPLE), "--absent", "report"])
    assert "absent from the file: employee L013 (Sanne Wouters)" in text.stdout
    assert CliRunner().invoke(cli, ["import", "organisation", str(smaller), "--store", url,
                                    "--absent", "delete"]).exit_code == 2
    # the employee import: the Medewerkers sheet alone
    employees = CliRunner().invoke(cli, ["import", "employees", str(smaller), "--store", url, "--bundle",
                                         str(EXAMPLE), "--absent", "report", "--format", "json"])
    assert employees.exit_code == 0, employees.output
    assert [a["id"] for a in json.loads(employees.stdout)["absent"]] == ["L013"]
    assert EmployeeDirectory(sa_engine).get("L013").leaving_date is None  # type: ignore[union-attr]
    ended = CliRunner().invoke(cli, ["import", "employees", str(smaller), "--store", url, "--bundle", str(EXAMPLE),
                                     "--absent", "end", "--at", "2026-06-15T10:00:00+02:00"])
    assert ended.exit_code == 0, ended.output
    assert "absent from the file: employee L013 (Sanne Wouters); employment ends on 2026-06-15" in ended.stdout
    assert EmployeeDirectory(sa_engine).get("L013").leaving_date == date(2026, 6, 15)  # type: ignore[union-attr]
    # the relations `import organisation` made for her end too
    assert all(r.withdrawn_at == datetime(2026, 6, 15, 8, tzinfo=UTC) for r in relations_of(sa_engine, "L013"))


def test_a_leaver_ended_by_the_import_gets_no_moments_after_leaving(tmp_path: Path) -> None:
    """In a scenario: after the import ends Sanne's employment, the ticks plan nothing more for her."""
    from regelwerk.registry import load_registry
    from regelwerk.scenarios import run_scenario_file

    copy = tmp_path / "linde"
    shutil.copytree(EXAMPLE, copy)
    without(copy / "data" / "zonder-sanne.xlsx", employees=("L013",))
    year = "talent/standaard-ontwikkelcyclus/2026-2027"
    path = copy / "scenarios" / "absent.scenario.yaml"
    path.write_text(f"""apiVersion: regelwerk/v1
kind: Scenario
metadata: {{name: sanne-leaves}}
spec:
  bundle: ..
  now: "2026-02-15T00:00:00+01:00"
  steps:
    - import_organisation: {{file: ../data/organisatie.xlsx}}
    - tick: {{at: "2026-04-10T10:00:00+02:00"}}
    - expect_items: {{{year}/L013/zorgmedewerker/doelstellingsgesprek: started/planned}}
    - import_employees: {{file: ../data/zonder-sanne.xlsx, absent: report, expect_absent: [L013]}}
    - import_organisation: {{file: ../data/zonder-sanne.xlsx, absent: end, expect_absent: [L013]}}
    - tick: {{at: "2026-09-20T10:00:00+02:00"}}
    - expect_items:
        {year}/L011/zorgmedewerker/voortgangsgesprek: started/planned
        {year}/L013/zorgmedewerker/voortgangsgesprek: absent
    - import_organisation: {{file: ../data/zonder-sanne.xlsx, absent: report, expect_absent: []}}
""", encoding="utf-8")
    (result,) = run_scenario_file(path, load_registry())
    assert result.passed, [s.message for s in result.steps if not s.passed] or result.error
    # the same scenario without `absent: end` plans her voortgangsgesprek: the step above is what ended it
    path.write_text(path.read_text(encoding="utf-8").replace("absent: end, expect_absent: [L013]",
                                                             "absent: keep, expect_absent: []"), encoding="utf-8")
    (kept,) = run_scenario_file(path, load_registry())
    assert not kept.passed and any("L013/zorgmedewerker/voortgangsgesprek: expected absent" in s.message
                                   for s in kept.steps)


@pytest.mark.postgres
def test_end_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.registry import load_registry

    sa_engine = sa.create_engine(pg_url)
    try:
        compiled = compile_bundle(load_bundle(EXAMPLE), load_registry())
        assert import_organisation(sa_engine, [WORKBOOK], compiled=compiled, now=START).ok
        smaller = without(tmp_path / "kleiner.xlsx", employees=("L013",), tasks=("or",), untask=("L040",))
        ended = import_organisation(sa_engine, [smaller], compiled=compiled, now=LATER, absent="end")
        assert ended.ok and [(a.kind, a.id) for a in ended.absent] == [("employee", "L013"), ("task", "or")]
        assert EmployeeDirectory(sa_engine).get("L013").leaving_date == date(2026, 6, 15)  # type: ignore[union-attr]
        assert all(r.withdrawn_at == LATER for r in relations_of(sa_engine, "L013"))
    finally:
        sa_engine.dispose()


def test_a_rejected_row_is_not_absent(store: Any, tmp_path: Path) -> None:
    """With --skip-invalid, someone whose row is rejected is still in the file: end leaves them alone."""
    from openpyxl import load_workbook

    sa_engine, compiled = store
    path = without(tmp_path / "fout.xlsx", employees=("L013",))
    book = load_workbook(path)
    sheet = book["Medewerkers"]
    header = [c.value for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        if row[0].value == "L012":
            row[header.index("datum_in_dienst")].value = "2018-W03-1"
    book.save(path)
    result = import_organisation(sa_engine, [path], compiled=compiled, now=LATER, absent="end", skip_invalid=True)
    assert result.ok and [r.row for r in result.rejected] and [a.id for a in result.absent] == ["L013"]
    kees = EmployeeDirectory(sa_engine).get("L012")
    assert kees is not None and kees.leaving_date is None and kees.hire_date == date(2018, 1, 15)
