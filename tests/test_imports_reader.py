"""The spreadsheet reader and declared columns: Excel's CSV, XLSX, strict dates, and every hostile file
a row error or a file error (never a traceback)."""

from __future__ import annotations

import contextlib
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from regelwerk.imports.columns import Column, HeaderError, ImportSpec
from regelwerk.imports.reader import CELL_LIMIT, FileError, RawRow, RowProblem, open_tables, sniff_delimiter
from regelwerk.imports.records import read_records
from regelwerk.imports.specs import import_spec, standard_imports
from regelwerk.imports.values import convert, parse_date


def rows_of(path: Path) -> list[Any]:
    with open_tables(path) as sheets:
        return list(sheets[0].rows)


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_excel_quoting_semicolon_and_comma(tmp_path: Path) -> None:
    semi = write(tmp_path, "a.csv", 'id;naam\n1;"Jan ""JJ"" de Vries"\n2;"Vries, de; Piet"\n3;"twee\nregels"\n')
    assert rows_of(semi) == [RawRow(2, ("1", 'Jan "JJ" de Vries')), RawRow(3, ("2", "Vries, de; Piet")),
                             RawRow(4, ("3", "twee\nregels"))]
    comma = write(tmp_path, "b.csv", '\ufeffid,naam\n1,"Bakker, A."\n\n2,B\n')
    with open_tables(comma) as sheets:
        assert sheets[0].header == ("id", "naam")  # Excel's byte-order mark is not part of the first header
        assert list(sheets[0].rows) == [RawRow(2, ("1", "Bakker, A.")), RawRow(4, ("2", "B"))]
    assert sniff_delimiter('"a;b",c') == "," and sniff_delimiter("a;b,c;d") == ";"


def test_hostile_csv_rows_are_row_errors(tmp_path: Path) -> None:
    unterminated = write(tmp_path, "u.csv", 'id,naam\n1,ok\n2,"never closed\n3,x\n')
    assert rows_of(unterminated) == [RawRow(2, ("1", "ok")),
                                     RowProblem(3, 'a quoted cell is never closed (a " without its closing ")')]
    after = write(tmp_path, "q.csv", 'id,naam\n1,"a"b\n2,ok\n')
    assert rows_of(after) == [RowProblem(2, 'text after a closing quote (write a quote inside a quoted cell as "")'),
                              RawRow(3, ("2", "ok"))]
    big = write(tmp_path, "big.csv", "id,naam\n1," + "x" * 140_000 + "\n2,ok\n")
    rows = rows_of(big)
    assert rows[0] == RawRow(2, ("1", "x" * 140_000)) and rows[1] == RawRow(3, ("2", "ok"))  # 140 KB reads
    huge = write(tmp_path, "huge.csv", "id,naam\n1," + "x" * (CELL_LIMIT + 10) + "\n2,ok\n")
    assert rows_of(huge)[0] == RowProblem(2, f"a cell is longer than {CELL_LIMIT:,} characters (the limit)")
    nul = write(tmp_path, "nul.csv", "id,naam\n1,a\x00b\n")
    assert rows_of(nul) == [RowProblem(2, "the row holds a NUL character (is this a binary file?)")]
    import csv

    assert csv.field_size_limit() == 131072  # the module's limit is restored after reading


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.csv", b"", "the file is empty (no header row)"),
    ("latin.csv", "id,naam\n1,Jos\xe9\n".encode("cp1252"), "not UTF-8 text"),
    ("empty.xlsx", b"", "the file is empty (0 bytes), not a workbook"),
    ("fake.xlsx", b"id,naam\n1,a\n", "not a readable .xlsx workbook"),
])
def test_unreadable_files_are_file_errors(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FileError) as caught, open_tables(path) as sheets:
        for sheet in sheets:
            list(sheet.rows)
    assert caught.value.file == str(path) and caught.value.message.startswith(message)


def test_workbook_without_cells_and_missing_file(tmp_path: Path) -> None:
    from openpyxl import Workbook

    path = tmp_path / "leeg.xlsx"
    Workbook().save(path)
    with pytest.raises(FileError, match="holds no rows"), open_tables(path):
        pass
    with pytest.raises(FileError, match="no such file"), open_tables(tmp_path / "nope.csv"):
        pass


def test_dates_are_iso_or_dutch_only() -> None:
    assert parse_date("2027-03-01") == date(2027, 3, 1)
    assert parse_date("1-3-2027") == parse_date("01-03-2027") == date(2027, 3, 1)
    assert parse_date(datetime(2027, 3, 1)) == date(2027, 3, 1)
    for bad in ("2027-W52-7", "2027-060", "20270301", "03/01/2027", "31-02-2027", "2027-3-1", "morgen"):
        with pytest.raises(ValueError, match="is not a date"):
            parse_date(bad)
    with pytest.raises(ValueError, match="time of day"):
        parse_date(datetime(2027, 3, 1, 9, 30))


def test_cell_conversion() -> None:
    assert convert(101.0, "text") == "101" and convert(7, "text") == "7"
    with pytest.raises(ValueError, match="fraction"):
        convert(12.5, "text")
    with pytest.raises(ValueError, match="date cell"):
        convert(datetime(2020, 1, 1), "text")
    assert convert("bhv-er; lid OR", "list") == ("bhv-er", "lid OR")
    assert convert("ja", "boolean") is True and convert("32,5", "number") == 32.5
    with pytest.raises(ValueError, match="not an e-mail"):
        convert("anna at example.nl", "email")
    with pytest.raises(ValueError, match="more than the 5 allowed"):
        convert("abcdefgh", "text", 5)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=30))
def test_parse_date_never_raises_anything_but_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_date(text)


def test_headers_are_declared_with_aliases_and_did_you_mean() -> None:
    spec = standard_imports()["employees"]
    columns = spec.match_header(["Personeelsnummer", "Datum in dienst", "AFDELING", "e-mail", "Rechten", "Fouten"])
    assert [c.id if c else None for c in columns] == ["id", "hire_date", "department", "email", "access", None]
    with pytest.raises(HeaderError) as caught:
        spec.match_header(["id", "group", "role", "leave_date", "functie", "function"])
    assert caught.value.problems == (
        "unknown column 'leave_date': did you mean 'leaving_date'? (declare it as an extra attribute of the "
        "import to keep it)",
        "columns 'functie' and 'function' both mean 'function'",
    )
    # 'group' and 'role' are aliases (of groups and roles), so they are taken, not kept as free attributes
    assert [c.id if c else None for c in spec.match_header(["id", "group", "role"])] == ["id", "groups", "roles"]
    with pytest.raises(HeaderError, match=r"missing column 'Personeelsnummer' \(id\)"):
        spec.match_header(["naam"])


def test_extra_attributes_are_kept_typed(tmp_path: Path) -> None:
    spec = ImportSpec("x", "X", (Column("id", required=True),), (Column("uren", type="number", extra=True),))
    path = write(tmp_path, "x.csv", "id;uren;fouten\n1;32,5;oude fout\n2;veel;\n")
    assert list(read_records(path, spec)) == [(2, {"id": "1", "attributes": {"uren": 32.5}}),
                                              (3, {"__error__": "uren: 'veel' is not a number"})]


def test_header_problems_are_a_file_error_at_row_1(tmp_path: Path) -> None:
    path = write(tmp_path, "e.csv", "id,naam,leave_date\n1,a,2020-01-01\n")
    with pytest.raises(FileError, match=r"row 1 \(the header\): unknown column 'leave_date'"):
        list(read_records(path, import_spec("employees")))


def test_xlsx_numbers_dates_and_values_without_header(tmp_path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Medewerkers"
    sheet.append(["Personeelsnummer", "Naam", "Datum in dienst"])
    sheet.append([101, "Anna", datetime(2020, 1, 1)])
    sheet.append([102.5, datetime(2020, 1, 1), "2020-W01-1"])
    sheet.append([103, "Cor", None, "stray"])
    path = tmp_path / "m.xlsx"
    book.save(path)
    got = list(read_records(path, import_spec("employees")))
    assert got[0] == (2, {"id": "101", "name": "Anna", "hire_date": date(2020, 1, 1)})
    assert got[1][0] == 3 and got[1][1]["__error__"].startswith("id: 102.5 is a number with a fraction")
    assert "name: 2020-01-01T00:00:00 is a date cell" in got[1][1]["__error__"]
    assert "hire_date: '2020-W01-1' is not a date" in got[1][1]["__error__"]
    assert got[2] == (4, {"__error__": "a value in column 4, which has no header"})


def test_docs_list_every_standard_column_and_alias() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "imports.md").read_text(encoding="utf-8")
    for name, spec in standard_imports().items():
        section = doc.split(f"### {spec.label} (`{name}`)", 1)[1].split("\n#", 1)[0]
        for column in spec.columns:
            row = next(line for line in section.splitlines() if line.startswith(f"| `{column.id}` | {column.label} |"))
            assert ", ".join(column.aliases) in row, (name, column.id)
