"""A customer directory's data files: employees, relations, and the plugins' files as dated events.

``data/organisatie.xlsx`` (or ``organisation.xlsx``) is imported first by ``regelwerk import organisation``'s
importer (afdelingen, functies, rollen, taken, medewerkers and their relations);
``data/employees.csv`` is imported by the scheduler's own importer (``import_employees``);
``data/relations.csv`` holds permission relationship facts. Plugins read their own files through a
``SimulationPartSpec.read_data(data_dir) -> (events, problems)`` (the recruitment pack:
``vacancies.csv`` and ``candidates.csv`` as ``open_vacancy``/``apply`` events on their day), with the
helpers here (:func:`read_table`, :func:`parse_day`, :func:`as_bool`, :func:`split_list`). Every row
is checked first; problems are diagnostics at ``file:row`` (nothing is written).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from regelwerk.diagnostics import DefinitionError, Diagnostic

__all__ = [
    "RELATION_COLUMNS",
    "CustomerData",
    "DataReader",
    "DatedEvent",
    "as_bool",
    "display_path",
    "parse_day",
    "read_customer_data",
    "read_table",
    "split_list",
]

RELATION_COLUMNS = ("kind", "subject", "object", "valid_from", "valid_to")
#: The organisation workbook's names in ``data/`` (the first that exists is imported).
ORGANISATION_FILES = ("organisatie.xlsx", "organisation.xlsx")
_YES = {"ja", "j", "yes", "y", "true", "1", "waar"}
_NO = {"nee", "n", "no", "false", "0", "onwaar", ""}


@dataclass(frozen=True, slots=True)
class DatedEvent:
    """An event the simulation applies on ``day`` (``None``: the first simulated day), once (by ``key``).

    ``type`` names a registered story event; ``key`` is unique per customer (``data:<file>:<id>`` for data
    rows, ``story:<index>`` for story events); ``where`` is ``file:line``; events of one day are applied in
    ``order`` (a plugin's events after the parts before it, story events last).
    """

    key: str
    day: date | None
    type: str
    args: Mapping[str, Any]
    where: str
    order: tuple[int, ...]


#: A plugin's data reader: ``read_data(data_dir) -> (events, problems)``.
DataReader = Callable[[Path], tuple[Iterable[DatedEvent], Iterable[Diagnostic]]]
#: The employee file's check: ``check(path) -> (problems, count, chunks)``; the chunks are what the import writes.
EmployeeCheck = Callable[[Path], tuple[list[Diagnostic], int, Iterable[Any]]]


@dataclass(frozen=True, slots=True)
class CustomerData:
    """What a customer directory's ``data/`` holds (files that are absent are None or empty)."""

    employees: Path | None
    events: tuple[DatedEvent, ...]
    relations: tuple[Mapping[str, Any], ...]
    organisation: Path | None = None
    #: the checked employees (``check_employees``): how many, and their chunks, handed over once
    employee_count: int = 0
    employee_chunks: Iterable[Any] = ()


def split_list(value: Any) -> list[str]:
    """A ``;``-separated cell (or a YAML list) as a list of ids."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [p.strip() for p in str(value).replace("|", ";").split(";") if p.strip()]


def as_bool(value: Any) -> bool:
    """``ja``/``nee`` (and yes/no/true/false) as a boolean; ``ValueError`` otherwise."""
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().casefold()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise ValueError(f"{value!r} is not ja or nee")


def parse_day(value: Any, column: str) -> date | None:
    """A ``YYYY-MM-DD`` cell as a date (empty: None); ``ValueError`` naming the column otherwise."""
    text = str(value or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{column}: {text!r} is not a date (YYYY-MM-DD)") from None


def display_path(path: Path) -> str:
    """``path`` relative to the current directory when possible (how diagnostics show files)."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def read_table(path: Path, columns: Sequence[str], required: Sequence[str],
               problems: list[Diagnostic]) -> list[tuple[int, dict[str, Any]]]:
    """The rows of a CSV file as ``(row number, record)``; problems (SIM010, SIM011) go to ``problems``."""
    from regelwerk.scheduling.employees import read_rows

    shown = display_path(path)
    out: list[tuple[int, dict[str, Any]]] = []
    try:
        for number, record in read_rows(path):
            if "__error__" in record:
                problems.append(Diagnostic("SIM010", str(record["__error__"]), shown, number, 1))
                continue
            unknown = sorted(k for k in record if k not in columns and record[k] not in (None, ""))
            if unknown:
                problems.append(Diagnostic("SIM011", f"unknown column(s) {', '.join(unknown)}", shown, 1, 1,
                                           hint="columns: " + ", ".join(columns)))
                return []
            missing = [c for c in required if not str(record.get(c) or "").strip()]
            if missing:
                problems.append(Diagnostic("SIM010", f"missing {', '.join(missing)}", shown, number, 1))
                continue
            out.append((number, {k: (v.strip() if isinstance(v, str) else v) for k, v in record.items()}))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Diagnostic("SIM010", f"cannot read: {exc}", shown, 1, 1))
    return out


def unsafe_data_files(root: Path, data: Path) -> list[Diagnostic]:
    """RW012 for what a bundle must not read in its ``data`` folder, before anything there is opened: the rule of
    the definitions (:func:`regelwerk.bundle.why_not_read`: regular files inside the bundle's root only), for
    every file of the folder, and for the folder itself when it is a link that leads outside."""
    from regelwerk.bundle import why_not_read

    inside = root.resolve()
    hint = "a bundle reads only regular files inside its own directory; copy the file into its data folder"
    target = data.resolve()
    if data.is_symlink() and not (target == inside or inside in target.parents):
        return [Diagnostic("RW012", f"the folder link 'data' leads to {target}, outside the bundle: not read",
                           display_path(data), 1, 1, hint=hint)]
    if not data.is_dir():
        return []
    problems = []
    for path in sorted(data.iterdir()):
        why = None if path.is_dir() else why_not_read(path, inside)  # sub-folders are not read
        if why is not None:
            problems.append(Diagnostic("RW012", why, display_path(path), 1, 1, hint=hint))
    return problems


def read_customer_data(root: str | Path, readers: Iterable[DataReader] = (),
                       check_employees: EmployeeCheck | None = None) -> CustomerData:
    """Read and check ``root/data/*.csv`` (``readers``: the plugins' parts, in order; ``check_employees``: the
    employee file's check against the bundle's import columns); ``DefinitionError`` with every problem of every
    file at once, before anything is written. The events of the ``n``-th reader get ``order``
    ``(n, *their order)``."""
    data = Path(root) / "data"
    unsafe = unsafe_data_files(Path(root), data)
    if unsafe:  # before anything is opened: a FIFO would block the read, a link could show a file from elsewhere
        raise DefinitionError(unsafe)
    problems: list[Diagnostic] = []
    events: list[DatedEvent] = []
    employees = data / "employees.csv"
    count = 0
    chunks: Iterable[Any] = ()
    if check_employees is not None and employees.exists():
        wrong, count, chunks = check_employees(employees)
        problems.extend(wrong)
    for rank, read in enumerate(readers):
        found, trouble = read(data)
        events.extend(replace(e, order=(rank, *e.order)) for e in found)
        problems.extend(trouble)
    relations: list[Mapping[str, Any]] = []
    relation_file = data / "relations.csv"
    if relation_file.exists():
        shown = display_path(relation_file)
        for number, row in read_table(relation_file, RELATION_COLUMNS, ("kind", "subject", "object"), problems):
            try:
                start, end = parse_day(row.get("valid_from"), "valid_from"), parse_day(row.get("valid_to"), "valid_to")
            except ValueError as exc:
                problems.append(Diagnostic("SIM010", str(exc), shown, number, 1))
                continue
            if start and end and end < start:
                problems.append(Diagnostic("SIM010", "valid_to is before valid_from", shown, number, 1))
                continue
            refused = relation_refusal(row["kind"], start, end)
            if refused is not None:  # as the engine's relate refuses it: the rehearsal holds what production would
                problems.append(Diagnostic("SIM010", refused[0], shown, number, 1, hint=refused[1]))
                continue
            relations.append({"kind": row["kind"], "subject": row["subject"], "object": row["object"],
                              "valid_from": start, "valid_to": end})
    if problems:
        raise DefinitionError(problems)
    workbook = next((data / n for n in ORGANISATION_FILES if (data / n).exists()), None)
    return CustomerData(employees if employees.exists() else None, tuple(events), tuple(relations), workbook,
                        count, _handed_over(chunks))


def relation_refusal(kind: str, start: date | None, end: date | None) -> tuple[str, str] | None:
    """``(message, hint)`` when a relations.csv row is a fact the engine would not keep, or None.

    The rows are written straight into ``rw_relations`` (one insert for the file), past the checks of ``relate``;
    found by attack, a kind no scope reads (``reports_too``) and a window on a current-state fact
    (``reports_to`` until 2026-01-10, which production refuses: it was stored and ignored, so the manager read for
    ever) passed into the rehearsal the customer signs off, which then showed other access than the engine gives."""
    from regelwerk.diagnostics import did_you_mean
    from regelwerk.permissions.relations import INDEXED_KINDS, window_refusal

    if kind not in INDEXED_KINDS:
        return (f"kind {kind!r} is one no scope reads",
                did_you_mean(kind, INDEXED_KINDS) or "kinds: " + ", ".join(INDEXED_KINDS))
    why = window_refusal(kind, start, end)
    if why is not None:
        return why, "leave valid_from and valid_to empty: the fact holds from the simulation's start"
    return None


def _handed_over(chunks: Iterable[Any]) -> Iterator[Any]:
    """The chunks, each let go once it was handed on: the checked rows do not stay alive for the whole run."""
    kept = chunks if isinstance(chunks, list) else None
    if kept is None:
        yield from chunks
        return
    while kept:
        yield kept.pop(0)
