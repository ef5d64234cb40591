"""A customer directory's data files: vacancies, candidates and relations as dated events and facts.

``data/employees.csv`` is imported by the scheduler's own importer (``import_employees``);
``data/vacancies.csv`` and ``data/candidates.csv`` become dated events (``open_vacancy`` on
``opened_on``, ``apply`` on ``applied_on``) so they enter the calendar on their day;
``data/relations.csv`` holds permission relationship facts. Every row is checked first; problems are
diagnostics at ``file:row`` (nothing is written).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from engine.diagnostics import DefinitionError, Diagnostic

__all__ = [
    "CANDIDATE_COLUMNS",
    "RELATION_COLUMNS",
    "VACANCY_COLUMNS",
    "CustomerData",
    "DatedEvent",
    "read_customer_data",
    "split_list",
]

VACANCY_COLUMNS = ("id", "title", "function", "department", "entity", "manager", "deadline", "team", "opened_on")
CANDIDATE_COLUMNS = ("id", "vacancy", "first_name", "last_name", "email", "phone", "applied_on", "consent",
                     "consent_until")
RELATION_COLUMNS = ("kind", "subject", "object", "valid_from", "valid_to")
_YES = {"ja", "j", "yes", "y", "true", "1", "waar"}
_NO = {"nee", "n", "no", "false", "0", "onwaar", ""}


@dataclass(frozen=True, slots=True)
class DatedEvent:
    """An event the simulation applies on ``day`` (``None``: the first simulated day), once (by ``key``)."""

    key: str
    day: date | None
    type: str
    args: Mapping[str, Any]
    where: str
    order: tuple[int, int]


@dataclass(frozen=True, slots=True)
class CustomerData:
    """What a customer directory's ``data/`` holds (files that are absent are None or empty)."""

    employees: Path | None
    events: tuple[DatedEvent, ...]
    relations: tuple[Mapping[str, Any], ...]


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


def _day(value: Any, column: str) -> date | None:
    text = str(value or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{column}: {text!r} is not a date (YYYY-MM-DD)") from None


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def _rows(path: Path, columns: tuple[str, ...], required: tuple[str, ...],
          problems: list[Diagnostic]) -> list[tuple[int, dict[str, Any]]]:
    from engine.scheduling.employees import read_rows

    shown = _display(path)
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


def read_customer_data(root: str | Path) -> CustomerData:
    """Read and check ``root/data/*.csv``; ``DefinitionError`` with every row problem."""
    data = Path(root) / "data"
    problems: list[Diagnostic] = []
    events: list[DatedEvent] = []
    employees = data / "employees.csv"
    seen: dict[str, dict[str, int]] = {"vacancies": {}, "candidates": {}}

    def once(kind: str, ident: str, number: int, shown: str) -> bool:
        if ident in seen[kind]:
            problems.append(Diagnostic("SIM012", f"id {ident!r} also in row {seen[kind][ident]}", shown, number, 1))
            return False
        seen[kind][ident] = number
        return True

    vacancies = data / "vacancies.csv"
    if vacancies.exists():
        shown = _display(vacancies)
        for number, row in _rows(vacancies, VACANCY_COLUMNS, ("id", "title", "function", "department", "manager"),
                                 problems):
            try:
                opened = _day(row.get("opened_on"), "opened_on")
                deadline = _day(row.get("deadline"), "deadline")
            except ValueError as exc:
                problems.append(Diagnostic("SIM010", str(exc), shown, number, 1))
                continue
            if not once("vacancies", str(row["id"]), number, shown):
                continue
            args = {"id": row["id"], "title": row["title"], "function": row["function"],
                    "department": row["department"], "manager": row["manager"],
                    "entity": row.get("entity") or None, "deadline": deadline.isoformat() if deadline else None,
                    "team": split_list(row.get("team"))}
            events.append(DatedEvent(f"data:vacancies:{row['id']}", opened, "open_vacancy", args,
                                     f"{shown}:{number}", (0, number)))
    candidates = data / "candidates.csv"
    if candidates.exists():
        shown = _display(candidates)
        for number, row in _rows(candidates, CANDIDATE_COLUMNS, ("id", "vacancy", "first_name", "email"), problems):
            try:
                applied = _day(row.get("applied_on"), "applied_on")
                until = _day(row.get("consent_until"), "consent_until")
                consent = as_bool(row.get("consent"))
            except ValueError as exc:
                problems.append(Diagnostic("SIM010", str(exc), shown, number, 1))
                continue
            if row["vacancy"] not in seen["vacancies"]:
                problems.append(Diagnostic("SIM013", f"vacancy {row['vacancy']!r} is not in vacancies.csv", shown,
                                           number, 1))
                continue
            if not once("candidates", str(row["id"]), number, shown):
                continue
            args = {"id": row["id"], "vacancy": row["vacancy"], "first_name": row["first_name"],
                    "last_name": row.get("last_name") or "", "email": row["email"], "phone": row.get("phone") or None,
                    "consent": consent, "consent_until": until.isoformat() if until else None}
            events.append(DatedEvent(f"data:candidates:{row['id']}", applied, "apply", args, f"{shown}:{number}",
                                     (1, number)))
    relations: list[Mapping[str, Any]] = []
    relation_file = data / "relations.csv"
    if relation_file.exists():
        shown = _display(relation_file)
        for number, row in _rows(relation_file, RELATION_COLUMNS, ("kind", "subject", "object"), problems):
            try:
                start, end = _day(row.get("valid_from"), "valid_from"), _day(row.get("valid_to"), "valid_to")
            except ValueError as exc:
                problems.append(Diagnostic("SIM010", str(exc), shown, number, 1))
                continue
            if start and end and end < start:
                problems.append(Diagnostic("SIM010", "valid_to is before valid_from", shown, number, 1))
                continue
            relations.append({"kind": row["kind"], "subject": row["subject"], "object": row["object"],
                              "valid_from": start, "valid_to": end})
    if problems:
        raise DefinitionError(problems)
    return CustomerData(employees if employees.exists() else None, tuple(events), tuple(relations))
