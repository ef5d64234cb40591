"""Directories of employees for plans that name other people (the :class:`~regelwerk.scheduling.sources.Directory`).

A feedback round invites colleagues in the same department, the manager's manager or the holders
of a role; a plan for one employee then needs other employees' facts. The tick hands sources a
:class:`StoreDirectory` that reads ``rw_employees`` in the batch's own transaction (cached per batch);
``preview`` hands them a :class:`MemoryDirectory` over the employees it previews.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from regelwerk.scheduling.employees import EmployeeFacts

__all__ = ["LIST_FIELDS", "SCALAR_FIELDS", "MemoryDirectory", "StoreDirectory"]

SCALAR_FIELDS = ("department", "manager", "function", "id")
LIST_FIELDS = ("roles", "groups")
_WHERE_QUERIES: dict[str, Any] = {}
"""``StoreDirectory.where``'s query per field, built once (the value a bound parameter)."""


def _holds(employee: EmployeeFacts, field_name: str, value: str) -> bool:
    if field_name in LIST_FIELDS:
        return bool(value in getattr(employee, field_name))
    if field_name in SCALAR_FIELDS:
        return bool(getattr(employee, field_name) == value)
    found = employee.attributes.get(field_name)
    return bool(value in found) if isinstance(found, (list, tuple)) else bool(found == value)


class MemoryDirectory:
    """A directory over given employees (preview, tests)."""

    def __init__(self, employees: Iterable[EmployeeFacts]) -> None:
        self._by_id = {e.id: e for e in employees}

    def get(self, employee_id: str) -> EmployeeFacts | None:
        """One employee, None when unknown."""
        return self._by_id.get(employee_id)

    def where(self, field_name: str, value: str) -> Sequence[EmployeeFacts]:
        """Employees whose ``field_name`` holds ``value``, sorted by id."""
        return sorted((e for e in self._by_id.values() if _holds(e, field_name, value)), key=lambda e: e.id)

    def stored(self, source: str, item_type: str, subjects: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
        """Nothing is stored in a preview."""
        return {}


class StoreDirectory:
    """A directory reading ``rw_employees`` through one connection, each question asked once."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._cache: dict[tuple[str, str], tuple[EmployeeFacts, ...]] = {}

    def get(self, employee_id: str) -> EmployeeFacts | None:
        """One employee, None when unknown."""
        found = self.where("id", employee_id)
        return found[0] if found else None

    def where(self, field_name: str, value: str) -> Sequence[EmployeeFacts]:
        """Employees whose ``field_name`` holds ``value``, sorted by id."""
        key = (field_name, value)
        if key not in self._cache:
            self._cache[key] = tuple(self._query(field_name, value))
        return self._cache[key]

    def stored(self, source: str, item_type: str, subjects: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
        """Payloads of stored items (not cancelled) of ``source`` and ``item_type`` for ``subjects``, by key."""
        import json

        from regelwerk.scheduling.tables import scheduled_items as items
        from sqlalchemy import select

        out: dict[str, Mapping[str, Any]] = {}
        ids = list(subjects)
        for start in range(0, len(ids), 500):
            # filter on the subject only (its index) and the rest in Python: with `source = ?` in the query
            # SQLite picks the (source, period, item_type) index and reads every item of the source for each
            # batch of a tick - quadratic in the number of employees
            query = select(items.c.key, items.c.payload, items.c.source, items.c.item_type, items.c.status).where(
                items.c.subject.in_(ids[start:start + 500]))
            for key, payload, found_source, found_type, status in self._conn.execute(query):
                if found_source == source and found_type == item_type and status not in ("cancelled", "closed"):
                    out[key] = json.loads(payload)
        return out

    def _query(self, field_name: str, value: str) -> list[EmployeeFacts]:
        from regelwerk.scheduling.employees import facts_of_row
        from regelwerk.scheduling.tables import employees as emp
        from sqlalchemy import String, bindparam, cast, select

        query = _WHERE_QUERIES.get(field_name)
        if query is None:
            query = select(emp)
            if field_name in SCALAR_FIELDS:
                query = query.where(emp.c[field_name] == bindparam("p_value"))
            else:
                # lists and free attributes are JSON: narrow with a text match, decide exactly in Python
                column = emp.c[field_name] if field_name in LIST_FIELDS else emp.c.attributes
                query = query.where(cast(column, String).contains(bindparam("p_value", type_=String)))
            query = query.order_by(emp.c.id)
            if len(_WHERE_QUERIES) < 256:
                _WHERE_QUERIES[field_name] = query
        people = [facts_of_row(row) for row in self._conn.execute(query, {"p_value": value})]
        return [p for p in people if _holds(p, field_name, value)]
