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
_STORED: dict[tuple[bool, tuple[str, ...] | None, bool], Any] = {}
_PREFETCH: dict[tuple[str, bool], Any] = {}
"""``stored`` and ``prefetch``'s queries, built once per dialect family (PostgreSQL: a list as one array)."""


def _holds(employee: EmployeeFacts, field_name: str, value: str) -> bool:
    if field_name in LIST_FIELDS:
        return bool(value in getattr(employee, field_name))
    if field_name in SCALAR_FIELDS:
        return bool(getattr(employee, field_name) == value)
    found = employee.attributes.get(field_name)
    return bool(value in found) if isinstance(found, (list, tuple)) else bool(found == value)


def _stored_query(pg: bool, fields: tuple[str, ...] | None, by_key: bool = False) -> Any:
    """``StoreDirectory.stored``'s query: the whole payload, or each of ``fields`` as JSON text (NULL or ``null``
    when the payload has none).

    It filters on the subject (its index; ``by_key``: on the key, the unique index, and returns the subject) and
    the item type, the source in Python: with ``source = ?`` in the query SQLite picks the (source, period,
    item_type) index and reads every item of the source for each batch of a tick - quadratic in the number of
    employees (the item type is no index's first column)."""
    import re

    from regelwerk.scheduling.tables import scheduled_items as items
    from regelwerk.store.sql import one_of
    from sqlalchemy import Text, bindparam, cast, func, literal, select

    columns: list[Any] = [items.c.key, items.c.source, items.c.status, items.c.subject if by_key else literal(None)]
    if fields is None:
        columns.append(items.c.payload)
    for name in fields or ():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"not a payload field name: {name!r}")
        if pg:
            from sqlalchemy.dialects.postgresql import JSON

            columns.append(cast(cast(items.c.payload, JSON).op("->")(literal(name)), Text))
        else:
            columns.append(func.json_quote(func.json_extract(items.c.payload, f'$."{name}"')))
    return select(*columns).where(one_of(items.c.key if by_key else items.c.subject, "p_ids", pg, sole=True),
                                  items.c.item_type == bindparam("p_type"))


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

    def prefetch(self, field_name: str, values: Iterable[str]) -> None:
        """Everything is in memory already."""

    def stored(self, source: str, item_type: str, subjects: Sequence[str],
               fields: Sequence[str] | None = None, keys: Sequence[str] | None = None
               ) -> Mapping[str, Mapping[str, Any]]:
        """Nothing is stored in a preview."""
        return {}


class StoreDirectory:
    """A directory reading ``rw_employees`` through one connection, each question asked once."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._cache: dict[tuple[str, str], tuple[EmployeeFacts, ...]] = {}
        self._wanted: dict[str, set[str]] = {}  # prefetch hints not read yet, per field

    def know(self, people: Iterable[EmployeeFacts]) -> None:
        """Employees read in the same transaction already (the tick's batch): asked for by id, no query."""
        for person in people:
            self._cache.setdefault(("id", person.id), (person,))

    def prefetch(self, field_name: str, values: Iterable[str]) -> None:
        """A hint that ``where(field_name, v)`` will be asked for many of ``values`` (a scalar field: department,
        manager, function, id): the first such question that is not answered yet reads them all, in one query
        per 500 values. A plan for a batch of employees names their managers and teams; a batch whose plans
        ask nobody (partial plans, rounds not yet due) reads nothing."""
        if field_name in SCALAR_FIELDS:
            self._wanted.setdefault(field_name, set()).update(v for v in values if v)

    def _read_wanted(self, field_name: str) -> None:
        from regelwerk.scheduling.employees import employee_columns, facts_of_row
        from regelwerk.scheduling.tables import employees as emp
        from regelwerk.store.sql import one_of
        from sqlalchemy import select

        wanted = sorted(v for v in self._wanted.pop(field_name, ()) if (field_name, v) not in self._cache)
        pg = self._conn.dialect.name == "postgresql"
        query = _PREFETCH.get((field_name, pg))
        if query is None:
            query = _PREFETCH[(field_name, pg)] = select(*employee_columns()).where(
                one_of(emp.c[field_name], "p_values", pg)).order_by(emp.c.id)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            found: dict[str, list[EmployeeFacts]] = {v: [] for v in chunk}
            for row in self._conn.execute(query, {"p_values": chunk}):
                person = facts_of_row(row)
                found[str(getattr(person, field_name))].append(person)
            for value, people in found.items():
                self._cache[(field_name, value)] = tuple(people)
                if field_name != "id":
                    self.know(people)

    def get(self, employee_id: str) -> EmployeeFacts | None:
        """One employee, None when unknown."""
        found = self.where("id", employee_id)
        return found[0] if found else None

    def where(self, field_name: str, value: str) -> Sequence[EmployeeFacts]:
        """Employees whose ``field_name`` holds ``value``, sorted by id (each found one known by id from then on:
        a round that invites the colleagues asks for each of them)."""
        key = (field_name, value)
        found = self._cache.get(key)
        if found is None and value in self._wanted.get(field_name, ()):
            self._read_wanted(field_name)
            found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = tuple(self._query(field_name, value))
            if field_name != "id":
                self.know(found)
        return found

    def stored(self, source: str, item_type: str, subjects: Sequence[str],
               fields: Sequence[str] | None = None, keys: Sequence[str] | None = None
               ) -> Mapping[str, Mapping[str, Any]]:
        """Payloads of stored items (not cancelled) of ``source`` and ``item_type`` for ``subjects``, by key; with
        ``fields`` only those top-level entries of each payload (those it has), picked out by the database so the
        rest of the payloads stay off the wire. With ``keys``: only the items of those keys (of ``subjects``), each
        found by its key, not every item of the subjects."""
        import json

        out: dict[str, Mapping[str, Any]] = {}
        by_key = keys is not None
        ids = list(keys if keys is not None else subjects)
        of = set(subjects) if by_key else None
        pg = self._conn.dialect.name == "postgresql"
        wanted = tuple(fields) if fields is not None else None
        query = _STORED.get((pg, wanted, by_key))
        if query is None:
            query = _STORED[(pg, wanted, by_key)] = _stored_query(pg, wanted, by_key)
        parsed: dict[str, Any] = {}  # most employees share the same entries (the cycle's lead times): parsed once
        for start in range(0, len(ids), 500):
            params = {"p_ids": ids[start:start + 500], "p_type": item_type}
            for key, found_source, status, subject, *payload in self._conn.execute(query, params).all():
                if found_source != source or status in ("cancelled", "closed") or (
                        of is not None and subject not in of):
                    continue
                if wanted is None:
                    out[key] = json.loads(payload[0])
                    continue
                picked = {name: parsed[text] if text in parsed else parsed.setdefault(text, json.loads(text))
                          for name, text in zip(wanted, payload, strict=True) if text}
                out[key] = {name: value for name, value in picked.items() if value is not None}
        return out

    def _query(self, field_name: str, value: str) -> list[EmployeeFacts]:
        from regelwerk.scheduling.employees import employee_columns, facts_of_row
        from regelwerk.scheduling.tables import employees as emp
        from sqlalchemy import String, bindparam, cast, select

        query = _WHERE_QUERIES.get(field_name)
        if query is None:
            query = select(*employee_columns())  # the JSON columns as text: facts_of_row parses what is not empty
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
