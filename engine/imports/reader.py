"""Spreadsheet files as rows: CSV (Excel's dialect, ``;`` or ``,``) and XLSX (openpyxl, read-only).

The reader knows nothing about columns: it turns a file into sheets of raw rows and turns every way a
file can be broken into a :class:`FileError` (the file as a whole cannot be read) or a :class:`RowProblem`
(one row cannot be read; the others still can). Nothing here raises anything else for a bad file.

CSV: the delimiter is the one of ``;`` and ``,`` that occurs most often outside quotes in the header line
(Dutch Excel writes ``;``, English Excel ``,``). Quoting is Excel's and strict: ``"Jan ""JJ"" de Vries"``
reads as ``Jan "JJ" de Vries``, a quoted delimiter or line break stays in its cell, a quote that never
ends or text after a closing quote is a row problem. A cell may hold at most :data:`CELL_LIMIT` characters
(the ``csv`` module's own limit is raised to it while reading and restored afterwards). The text must be
UTF-8 (with or without Excel's byte-order mark).

XLSX: every worksheet, values as stored (numbers, dates, text; formulas as their cached results). Row 1 of
each sheet is its header. A file that is not a workbook, or a workbook without any cell, is a file error.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CELL_LIMIT",
    "FORMULA_STARTS",
    "FileError",
    "RawRow",
    "RowProblem",
    "Sheet",
    "as_formula_safe",
    "as_text",
    "is_blank",
    "open_tables",
    "sniff_delimiter",
]

#: The longest cell the CSV reader accepts, in characters (the csv module's default is 131,072).
CELL_LIMIT = 1_048_576
#: File extensions read as workbooks.
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")


class FileError(Exception):
    """A file that cannot be read at all (not found, not UTF-8, not a workbook, empty...)."""

    def __init__(self, file: str, message: str, hint: str = "") -> None:
        self.file = file
        self.message = message
        self.hint = hint
        super().__init__(f"{file}: {message}" + (f" ({hint})" if hint else ""))


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One row that cannot be read (the header is row 1)."""

    row: int
    message: str
    id: str | None = None
    """The row's id when that cell could be read (its other cells could not): who the row is about."""


@dataclass(frozen=True, slots=True)
class RawRow:
    """One non-empty row: its number (the header is row 1) and its cell values as read."""

    row: int
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Sheet:
    """A CSV file or one worksheet: its name, header cells and a one-pass iterator over the rows below it."""

    file: str
    name: str
    header: tuple[Any, ...]
    rows: Iterator[RawRow | RowProblem]


#: What a spreadsheet program reads as the start of a formula in a CSV cell (OWASP's list: ``=``, ``+``, ``-``, ``@``,
#: tab, carriage return).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def as_formula_safe(text: str) -> str:
    """A CSV cell a spreadsheet program shows as the text it is: ``'`` before a text that would start a formula
    (``=HYPERLINK(...)``, ``+31 6 ...``, ``-5``), as Excel marks a text cell; :func:`as_text` takes it off again."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def as_text(cell: str) -> str:
    """A CSV cell as the text it stands for: a ``'`` that marks a formula-like text as text (Excel's mark, and what
    :func:`as_formula_safe` writes) is not part of it; any other ``'`` is (``'t Hart``)."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS) else cell


def is_blank(value: Any) -> bool:
    """True for an empty cell (None or only whitespace)."""
    return value is None or (isinstance(value, str) and not value.strip())


def sniff_delimiter(line: str) -> str:
    """``;`` or ``,``: whichever occurs more often outside quotes in ``line`` (``,`` on a tie)."""
    counts = {";": 0, ",": 0}
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    return ";" if counts[";"] > counts[","] else ","


def _csv_message(exc: csv.Error) -> str:
    text = str(exc)
    if "field larger than field limit" in text:
        return f"a cell is longer than {CELL_LIMIT:,} characters (the limit)"
    if "unexpected end of data" in text or "EOF" in text:
        return "a quoted cell is never closed (a \" without its closing \")"
    if "expected after" in text:
        return "text after a closing quote (write a quote inside a quoted cell as \"\")"
    if "NUL" in text:
        return "the row holds a NUL character (is this a binary file?)"
    return f"cannot read the row: {text}"


def _csv_rows(handle: Any, shown: str, delimiter: str) -> Iterator[RawRow | RowProblem]:
    reader = csv.reader(handle, dialect="excel", delimiter=delimiter, strict=True)
    number = 1  # the header was row 1
    previous = csv.field_size_limit(CELL_LIMIT)
    try:
        while True:
            number += 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield RowProblem(number, _csv_message(exc))
                continue
            except UnicodeDecodeError as exc:
                raise FileError(shown, f"not UTF-8 text near row {number} ({exc.reason})",
                                "save the sheet as 'CSV UTF-8'") from None
            if any("\x00" in v for v in values):
                yield RowProblem(number, "the row holds a NUL character (is this a binary file?)")
            elif any(not is_blank(v) for v in values):
                yield RawRow(number, tuple(as_text(v) for v in values))
    finally:
        csv.field_size_limit(previous)


def _open_csv(path: Path, shown: str) -> tuple[Any, Sheet]:
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise FileError(shown, f"cannot be opened: {exc.strerror or exc}") from None
    try:
        first = handle.readline(CELL_LIMIT)
        if not first.strip():
            raise FileError(shown, "the file is empty (no header row)")
        delimiter = sniff_delimiter(first)
        handle.seek(0)
        reader = csv.reader(handle, dialect="excel", delimiter=delimiter, strict=True)
        previous = csv.field_size_limit(CELL_LIMIT)
        try:
            header = next(reader)
        except csv.Error as exc:
            raise FileError(shown, f"row 1 (the header): {_csv_message(exc)}") from None
        finally:
            csv.field_size_limit(previous)
        # the header line was consumed by this reader; the row reader goes on from the same position
        return handle, Sheet(shown, path.stem, tuple(header), _csv_rows(handle, shown, delimiter))
    except UnicodeDecodeError as exc:
        handle.close()
        raise FileError(shown, f"not UTF-8 text ({exc.reason})", "save the sheet as 'CSV UTF-8'") from None
    except BaseException:
        handle.close()
        raise


def _xlsx_rows(rows: Iterator[tuple[Any, ...]], shown: str) -> Iterator[RawRow | RowProblem]:
    number = 1
    while True:
        number += 1
        try:
            values = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds on broken sheet XML
            raise FileError(shown, f"the workbook is damaged near row {number}: {exc}") from None
        if values and any(not is_blank(v) for v in values):
            yield RawRow(number, tuple(values))


def _open_workbook(path: Path, shown: str) -> tuple[Any, list[Sheet]]:
    from zipfile import BadZipFile

    try:
        from openpyxl import load_workbook
        from openpyxl.utils.exceptions import InvalidFileException
    except ImportError:  # pragma: no cover - openpyxl is a dependency of the xlsx extra
        raise FileError(shown, "reading .xlsx needs openpyxl", "pip install 'regelwerk[xlsx]'") from None
    if path.stat().st_size == 0:
        raise FileError(shown, "the file is empty (0 bytes), not a workbook")
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise FileError(shown, f"not a readable .xlsx workbook ({type(exc).__name__}: {exc})",
                        "save the file from Excel as 'Excel-werkmap (.xlsx)'") from None
    except Exception as exc:  # noqa: BLE001 - damaged workbook XML surfaces as ParseError, TypeError, ...
        raise FileError(shown, f"the workbook is damaged ({type(exc).__name__}: {exc})",
                        "save the file from Excel as 'Excel-werkmap (.xlsx)'") from None
    sheets: list[Sheet] = []
    try:
        for worksheet in _worksheets(book, shown):
            if hasattr(worksheet, "reset_dimensions"):
                worksheet.reset_dimensions()  # trust the cells, not the stored (often wrong) dimensions
            rows = worksheet.iter_rows(values_only=True)
            header: tuple[Any, ...] = ()
            try:
                header = next(rows, ())
            except Exception as exc:  # noqa: BLE001 - same as in _xlsx_rows
                raise FileError(shown, f"sheet {worksheet.title!r} is damaged: {exc}") from None
            if not header or all(is_blank(v) for v in header):
                continue  # an empty sheet (or one without a header) holds nothing to import
            sheets.append(Sheet(shown, str(worksheet.title), tuple(header), _xlsx_rows(rows, shown)))
    except BaseException:
        book.close()
        raise
    if not sheets:
        book.close()
        raise FileError(shown, "the workbook holds no rows (every sheet is empty)")
    return book, sheets


def _worksheets(book: Any, shown: str) -> list[Any]:
    try:
        return list(book.worksheets)
    except Exception as exc:  # noqa: BLE001 - same as in _open_workbook
        raise FileError(shown, f"the workbook is damaged ({type(exc).__name__}: {exc})") from None


@contextmanager
def open_tables(path: str | Path, shown: str | None = None) -> Iterator[Sequence[Sheet]]:
    """The sheets of a CSV file (one) or a workbook (every non-empty worksheet); closed on exit.

    Raises :class:`FileError` for a file that cannot be read; bad rows come out of
    :attr:`Sheet.rows` as :class:`RowProblem` (a broken workbook part may still raise ``FileError``
    while iterating).
    """
    file = Path(path)
    name = shown or str(path)
    if not file.exists():
        raise FileError(name, "no such file")
    if file.is_dir():
        raise FileError(name, "is a folder, not a file")
    import stat

    if not stat.S_ISREG(file.stat().st_mode):  # a FIFO would block the read, a device never end
        raise FileError(name, "not a regular file (a FIFO, device or socket)")
    if file.suffix.lower() in WORKBOOK_SUFFIXES:
        book, sheets = _open_workbook(file, name)
        try:
            yield sheets
        finally:
            book.close()
        return
    handle, sheet = _open_csv(file, name)
    try:
        yield [sheet]
    finally:
        handle.close()
