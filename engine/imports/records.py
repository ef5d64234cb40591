"""Reading one import's rows from a file: the reader plus the declared columns, as plain records."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from regelwerk.imports.columns import HeaderError, ImportSpec
from regelwerk.imports.reader import FileError, RowProblem, Sheet, open_tables

__all__ = ["ERROR_KEY", "pick_sheet", "read_records"]

#: The key of a record that stands for a row problem (``{ERROR_KEY: message}``).
ERROR_KEY = "__error__"


def pick_sheet(sheets: Sequence[Sheet], spec: ImportSpec) -> Sheet:
    """The sheet named for ``spec`` (name, label, ``sheets``), else the only / first one."""
    for sheet in sheets:
        if spec.takes_sheet(sheet.name):
            return sheet
    return sheets[0]


def read_records(path: str | Path, spec: ImportSpec, shown: str | None = None
                 ) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(row, record)`` per non-empty row of ``path`` (a problem row is ``{ERROR_KEY: message}``).

    Raises :class:`FileError` when the file cannot be read or its header does not fit the columns
    (the header's problems are reported as row 1).
    """
    name = shown or str(path)
    with open_tables(path, name) as sheets:
        sheet = pick_sheet(sheets, spec)
        try:
            rows = spec.records(sheet)
            for item in rows:
                if isinstance(item, RowProblem):
                    yield item.row, {ERROR_KEY: item.message}
                else:
                    yield item.row, dict(item.values)
        except HeaderError as exc:
            raise FileError(name, "row 1 (the header): " + "; ".join(exc.problems)) from None
