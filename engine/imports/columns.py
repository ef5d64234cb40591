"""Declared columns: which headers an import accepts (with Dutch and English aliases) and what each cell holds.

An :class:`ImportSpec` is compiled from a ``kind: Import`` document. Matching a header row is strict: every
header must name a declared column (its id, label or an alias, compared without case, accents, spaces,
``_`` or ``-``) or one of the customer's declared extra attributes; anything else is an error with a
did-you-mean hint, so a near-miss such as ``leave_date`` is never kept silently as a free attribute.
A column named ``fouten`` / ``errors`` is ignored: it is the one ``--skip-invalid`` adds to the file of
rejected rows, so that file can be fixed and imported again as it is.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from regelwerk.diagnostics import did_you_mean
from regelwerk.imports.reader import RawRow, RowProblem, Sheet, is_blank
from regelwerk.imports.values import convert

__all__ = ["ERRORS_COLUMN", "Column", "HeaderError", "ImportSpec", "Record", "normalise"]

#: The column ``--skip-invalid`` writes the errors of a rejected row into (ignored when read back).
ERRORS_COLUMN = "fouten"
_IGNORED = frozenset({"fouten", "errors", "foutmeldingen"})


def normalise(name: Any) -> str:
    """A header as compared: lower case, accents dropped, spaces, ``_``, ``-``, ``.`` and ``/`` removed."""
    text = unicodedata.normalize("NFKD", str(name if name is not None else "")).casefold()
    return "".join(c for c in text if c.isalnum())


@dataclass(frozen=True, slots=True)
class Column:
    """One declared column: its id (the record key), label, value type and the headers that name it."""

    id: str
    label: str = ""
    type: str = "text"
    required: bool = False
    aliases: tuple[str, ...] = ()
    max_length: int = 0
    description: str = ""
    extra: bool = False  # a customer's extra attribute (kept under the record's ``attributes``)

    def names(self) -> tuple[str, ...]:
        """The id, label and aliases: every header that selects this column."""
        return (self.id, *((self.label,) if self.label else ()), *self.aliases)


@dataclass(frozen=True, slots=True)
class Record:
    """One converted row: the declared columns by id (blank cells left out), extras under ``attributes``."""

    row: int
    values: Mapping[str, Any]
    raw: tuple[Any, ...] = ()


class HeaderError(ValueError):
    """The header row does not fit the declared columns (every problem of the row at once)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True, slots=True)
class ImportSpec:
    """What one import reads: its columns and extra attributes, and the sheet names that hold its rows."""

    name: str
    label: str
    columns: tuple[Column, ...]
    extra: tuple[Column, ...] = ()
    sheets: tuple[str, ...] = ()
    key: str = "id"
    _by_name: dict[str, Column] = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        for column in (*self.columns, *self.extra):
            for name in column.names():
                self._by_name.setdefault(normalise(name), column)

    def column(self, header: Any) -> Column | None:
        """The declared column a header names, if any."""
        return self._by_name.get(normalise(header))

    def takes_sheet(self, name: str) -> bool:
        """True when a worksheet called ``name`` holds this import's rows."""
        wanted = normalise(name)
        return wanted in {normalise(s) for s in (self.name, self.label, *self.sheets)}

    def match_header(self, header: Sequence[Any]) -> list[Column | None]:
        """Per header cell its column (None: ignored); ``HeaderError`` with every problem of the row."""
        problems: list[str] = []
        out: list[Column | None] = []
        seen: dict[str, str] = {}
        known = sorted({n for c in (*self.columns, *self.extra) for n in c.names()})
        for cell in header:
            if is_blank(cell):
                out.append(None)  # checked per row: values under a blank header are an error
                continue
            text = str(cell).strip()
            column = self.column(text)
            if column is None:
                if normalise(text) in _IGNORED:
                    out.append(None)
                    continue
                hint = did_you_mean(text, known) or did_you_mean(text.lower().replace(" ", "_"), known)
                problems.append(f"unknown column {text!r}" + (f": {hint}" if hint else "")
                                + " (declare it as an extra attribute of the import to keep it)")
                out.append(None)
                continue
            if column.id in seen:
                problems.append(f"columns {seen[column.id]!r} and {text!r} both mean {column.id!r}")
            seen[column.id] = text
            out.append(column)
        for column in self.columns:
            if column.required and column.id not in seen:
                problems.append(f"missing column {column.label or column.id!r} ({column.id})")
        if problems:
            raise HeaderError(problems)
        return out

    def records(self, sheet: Sheet) -> Iterator[Record | RowProblem]:
        """Every row of ``sheet`` as a :class:`Record` or a :class:`RowProblem` (header checked first)."""
        columns = self.match_header(sheet.header)
        ignored = {i for i, cell in enumerate(sheet.header) if not is_blank(cell) and columns[i] is None}
        for item in sheet.rows:
            if isinstance(item, RowProblem):
                yield item
                continue
            try:
                yield self._convert(item, columns, ignored)
            except ValueError as exc:
                yield RowProblem(item.row, str(exc), self._id_of(item, columns))

    @staticmethod
    def _id_of(row: RawRow, columns: Sequence[Column | None]) -> str | None:
        """The id of a row that cannot be converted as a whole, when its id cell can."""
        for index, column in enumerate(columns):
            if column is not None and column.id == "id" and index < len(row.values) and not is_blank(row.values[index]):
                try:
                    return str(convert(row.values[index], column.type, column.max_length))
                except ValueError:
                    return None
        return None

    def _convert(self, row: RawRow, columns: Sequence[Column | None], ignored: Iterable[int]) -> Record:
        values: dict[str, Any] = {}
        extras: dict[str, Any] = {}
        problems: list[str] = []
        skip = set(ignored)
        for index, cell in enumerate(row.values):
            if is_blank(cell) or index in skip:
                continue
            column = columns[index] if index < len(columns) else None
            if column is None:
                problems.append(f"a value in column {index + 1}, which has no header")
                continue
            try:
                value = convert(cell, column.type, column.max_length)
            except ValueError as exc:
                problems.append(f"{column.id}: {exc}")
                continue
            (extras if column.extra else values)[column.id] = value
        failed = {p.split(":", 1)[0] for p in problems}
        for column in self.columns:
            if column.required and column.id not in values and column.id not in failed:
                problems.append(f"{column.id}: missing")
        if problems:
            raise ValueError("; ".join(problems))
        if extras:
            values["attributes"] = extras
        return Record(row.row, values, row.values)
