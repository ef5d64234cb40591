"""Employee facts: the host API, CSV/XLSX import (row errors, nothing half-imported) and the CLI commands."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from regelwerk.scheduling.employees import EmployeeDirectory, import_employees, parse_employee

ROOT = Path(__file__).resolve().parent.parent
SCHOOL = ROOT / "tests" / "scenarios" / "talent" / "schooljaar"


@pytest.fixture
def directory(sqlite_url: str) -> Any:
    sa_engine = sa.create_engine(sqlite_url)
    d = EmployeeDirectory(sa_engine)
    d.setup()
    yield d
    sa_engine.dispose()


def test_parse_employee_converts_and_reports_every_problem() -> None:
    facts = parse_employee({"id": 12.0, "hire_date": "01-03-2024", "roles": "bhv-er; vertrouwenspersoon",
                            "groups": "kantoor", "badge": "A1"})
    assert facts.id == "12" and facts.hire_date == date(2024, 3, 1)
    assert facts.roles == ("bhv-er", "vertrouwenspersoon") and facts.groups == ("kantoor",)
    assert facts.attributes == {"badge": "A1"}
    with pytest.raises(ValueError, match=r"id: missing; hire_date: 'gisteren' is not a date"):
        parse_employee({"hire_date": "gisteren"})
    with pytest.raises(ValueError, match="leaving_date: before hire_date"):
        parse_employee({"id": "x", "hire_date": "2024-01-01", "leaving_date": "2023-01-01"})


def test_csv_import_all_or_nothing(directory: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("personeelsnummer;naam;datum in dienst;functie;rollen\n"
                   "1;Anna;2020-01-01;docent;bhv-er\n"
                   "2;Bert;31-02-2020;docent;\n"
                   ";Chris;2021-01-01;docent;\n"
                   "1;Anna bis;2020-01-01;docent;\n", encoding="utf-8")
    result = import_employees(directory, bad)
    assert not result.ok and result.imported == 0
    assert [str(e) for e in result.errors] == [
        "row 3: hire_date: '31-02-2020' is not a date (YYYY-MM-DD or DD-MM-YYYY)",
        "row 4: id: missing",
        "row 5: id: '1' also in row 2",
    ]
    assert directory.count() == 0  # nothing half-imported
    good = tmp_path / "good.csv"
    good.write_text("id,name,hire_date,function,manager,groups\n1,Anna,2020-01-01,docent,dir,onderwijzend\n"
                    "2,Bert,2021-08-01,docent,dir,onderwijzend\n", encoding="utf-8")
    assert import_employees(directory, good).imported == 2
    anna = directory.get("1")
    assert anna is not None and anna.function == "docent" and anna.groups == ("onderwijzend",)
    assert [e.id for e in directory.iter_all(batch_size=1)] == ["1", "2"]


def test_an_id_that_only_looks_like_another_of_the_file_is_refused(directory: Any, tmp_path: Path) -> None:
    """As in the organisation import: ``A1`` beside ``a1`` or a zero-width space in the cell was a second person."""
    bad = tmp_path / "bad.csv"
    bad.write_text("personeelsnummer;naam\na1;Anna\nA1;Anna\na\u200b1;Anna\n", encoding="utf-8")
    result = import_employees(directory, bad)
    assert [str(e) for e in result.errors] == [
        "row 3: id: 'A1' differs from 'a1' (row 2) only in case or look: write the one id the other systems use for "
        "both",
        "row 4: id: 'a\\u200b1' holds a control or invisible character (U+200B); an id is what the other systems send "
        "as it is"]
    assert directory.count() == 0


def test_checked_chunks_read_once_are_the_check_and_the_chunks_of_two_reads(tmp_path: Path) -> None:
    from regelwerk.scheduling.employees import check_employees, checked_employee_chunks, employee_chunks

    good = tmp_path / "good.csv"
    good.write_text("id,name,hire_date\n" + "".join(f"e{n},N {n},2020-01-0{1 + n % 9}\n" for n in range(7)),
                    encoding="utf-8")
    two_reads = list(employee_chunks(good, 3))
    assert [len(c) for c in two_reads] == [3, 3, 1]
    for keep in (100, 7, 6, 0):  # kept from the check, or (more than keep) read again
        checked, chunks = checked_employee_chunks(good, 3, keep=keep)
        assert checked == check_employees(good) and checked.imported == 7
        assert isinstance(chunks, list) == (keep >= 7)
        assert list(chunks) == two_reads
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name,hire_date\ne1,A,2020-01-01\ne2,B,31-02-2020\ne1,C,2020-01-01\n", encoding="utf-8")
    checked, chunks = checked_employee_chunks(bad, 3)
    assert checked == check_employees(bad) and not checked.ok and len(checked.errors) == 2
    assert list(chunks) == []
    empty = tmp_path / "empty.csv"
    empty.write_text("id,name\n", encoding="utf-8")
    checked, chunks = checked_employee_chunks(empty, 3)
    assert checked == check_employees(empty) and not checked.ok and list(chunks) == []


def test_xlsx_import(directory: Any, tmp_path: Path) -> None:
    from datetime import datetime

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Personeelsnummer", "Naam", "Datum in dienst", "Functie", "Groepen"])
    sheet.append([101, "Anna", datetime(2020, 1, 1), "docent", "onderwijzend"])
    sheet.append([102, "Bert", "niet bekend", "docent", "onderwijzend"])
    path = tmp_path / "medewerkers.xlsx"
    book.save(path)
    result = import_employees(directory, path)
    assert [str(e) for e in result.errors] == ["row 3: hire_date: 'niet bekend' is not a date (YYYY-MM-DD or "
                                               "DD-MM-YYYY)"]
    assert directory.count() == 0
    sheet.cell(row=3, column=3).value = datetime(2021, 8, 1)
    book.save(path)
    assert import_employees(directory, path).imported == 2
    bert = directory.get("102")
    assert bert is not None and bert.hire_date == date(2021, 8, 1)


def test_cli_import_tick_and_preview(tmp_path: Path) -> None:
    from regelwerk.cli import cli, main
    from regelwerk.registry import load_registry

    for name, command in load_registry().commands.items():
        if name not in cli.commands:
            cli.add_command(command, name)
    assert main is not None
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    csv_file = tmp_path / "e.csv"
    csv_file.write_text("id,hire_date,function,manager,groups\nd1,2015-08-01,docent,dir,onderwijzend\n",
                        encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(cli, ["import", "employees", str(csv_file), "--store", url])
    assert result.exit_code == 0, result.output
    assert "1 employee(s) imported" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("id,hire_date\nx,morgen\n", encoding="utf-8")
    result = runner.invoke(cli, ["import", "employees", str(bad), "--store", url])
    assert result.exit_code == 1 and "row 2: hire_date" in result.output
    facts = tmp_path / "facts.yaml"
    facts.write_text("employees:\n  - {id: d1, hire_date: '2015-08-01', function: docent, groups: [onderwijzend]}\n",
                     encoding="utf-8")
    result = runner.invoke(cli, ["schedule", "preview", str(SCHOOL), "--from", "2026-09-01", "--to", "2026-11-01",
                                 "--facts", str(facts)])
    assert result.exit_code == 0, result.output
    assert "2026-10-01 09:00  due 2026-10-01  moment" in result.output
    assert "talent/docenten/2026-2027/d1/docent" in result.output
    result = runner.invoke(cli, ["tick", str(SCHOOL), "--store", url, "--at", "2026-09-01", "--format", "json", "-q"])
    assert result.exit_code == 0, result.output
    assert '"trajectory": 1' in result.output
    result = runner.invoke(cli, ["tick", str(SCHOOL), "--store", url, "--at", "2026-09-01", "-q"])
    assert "created: nothing" in result.output
    result = runner.invoke(cli, ["talent", "changes", str(SCHOOL), "--store", url])
    assert result.exit_code == 0 and "no unprocessed changes" in result.output
    result = runner.invoke(cli, ["talent", "roles", "--store", url, "--profile", "docentprofiel"])
    assert "name: function-docent" in result.output


def test_facts_of_rows_by_position_equal_facts_of_row_by_name(directory: Any) -> None:
    """The tick's positional read of employee rows gives the same facts as the read by name, and falls back to
    names when the columns are in another order."""
    from regelwerk.scheduling.employees import EmployeeFacts, employee_columns, facts_of_row, facts_of_rows
    from regelwerk.scheduling.tables import employees

    people = [EmployeeFacts("a", hire_date=date(2020, 1, 1), function="f", department="d", manager="m",
                            roles=("bhv-er",), groups=("kantoor", "noord"), name="Anna", attributes={"badge": "A1"}),
              EmployeeFacts("b", leaving_date=date(2027, 1, 1))]
    directory.upsert(people, datetime(2026, 1, 1, tzinfo=UTC))
    with directory.sa_engine.connect() as conn:
        rows = conn.execute(sa.select(*employee_columns("updated_at")).order_by(employees.c.id)).all()
        shuffled = conn.execute(sa.select(*reversed(employee_columns())).order_by(employees.c.id)).all()
    assert facts_of_rows(rows) == [facts_of_row(r) for r in rows] == people
    assert facts_of_rows(shuffled) == people
    assert facts_of_rows([]) == []
