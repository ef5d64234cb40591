"""The care-organisation example: its workbook is what the generator writes, and imports as the brief says."""

from __future__ import annotations

import importlib.util
from datetime import date, datetime
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


def test_the_medewerkers_sheet_imports_with_its_extra_facts(tmp_path: Path) -> None:
    import sqlalchemy as sa
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.imports.specs import import_spec
    from regelwerk.registry import load_registry
    from regelwerk.scheduling.employees import EmployeeDirectory, import_employees

    sa_engine = sa.create_engine(f"sqlite:///{tmp_path / 'linde.sqlite'}")
    try:
        directory = EmployeeDirectory(sa_engine)
        directory.setup()
        spec = import_spec("employees", compile_bundle(load_bundle(EXAMPLE), load_registry()))
        result = import_employees(directory, EXAMPLE / "data" / "organisatie.xlsx", spec=spec)
        assert result.ok and result.imported == 20
        anouk = directory.get("L011")
        assert anouk is not None and anouk.manager == "L010" and anouk.roles == ("praktijkopleider",)
        assert anouk.attributes["contracturen"] == 28 and anouk.attributes["feedback_collegas"] == "L013;L014"
        fenna = directory.get("L017")
        assert fenna is not None and fenna.hire_date == date(2027, 3, 31)
    finally:
        sa_engine.dispose()
