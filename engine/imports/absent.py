"""Who is in the store but not in the new file: ``--absent keep|end|report`` of the imports.

An import adds and updates; by default (``keep``) whoever the file leaves out stays as stored. A customer
whose HR export is the whole organisation says so explicitly:

- ``report``: the import lists them (nothing about them changes);
- ``end``: their employment ends as of the import date (``leaving_date``: the import date, or the hire date
  of someone not yet hired; never later than a leaving date already stored), and the relations the
  imports made for them end at the moment of the import (``withdrawn_at``/``withdrawn_by``, as
  ``Relationships.unrelate`` ends a relation; the permission index then no longer sees them). A unit
  (department, function, role, task) left out gets ``attributes.ended_on`` and the imported relations
  that point to it end the same way. Nothing is deleted: the rows stay, with their history.

Only what the file speaks about can be absent: employees when it has employees, departments when it has
departments, and so on. Someone who already left on or before the import date, or a unit that has
already ended, is not absent (exports leave leavers out).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

__all__ = ["ABSENT_CHOICES", "UNIT_RELATIONS", "Absent", "end_absent", "find_absent", "import_day"]

#: The values of ``--absent``.
ABSENT_CHOICES = ("keep", "end", "report")
#: Per unit kind: the relation kinds that point to a unit of that kind (``object``), and those it is the
#: ``subject`` of.
UNIT_RELATIONS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "department": (("part_of", "manages", "member_of"), ("part_of",)),
    "function": (("has_function",), ()),
    "role": (("has_function_role",), ()),
    "task": (("has_task",), ()),
}
_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Absent:
    """One employee or unit the store has and the file does not (``kind``: employee, department, ...)."""

    kind: str
    id: str
    name: str | None
    ended_on: date | None = None  # the leaving date (employees) or end date (units) ``end`` set

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--format json``."""
        return {"kind": self.kind, "id": self.id, "name": self.name,
                "ended_on": self.ended_on.isoformat() if self.ended_on else None}

    def __str__(self) -> str:
        what = f"{self.kind} {self.id}" + (f" ({self.name})" if self.name and self.name != self.id else "")
        if self.ended_on is None:
            return f"absent from the file: {what}"
        verb = "employment ends on" if self.kind == "employee" else "ended on"
        return f"absent from the file: {what}; {verb} {self.ended_on.isoformat()}"


def import_day(now: datetime, timezone: Any = None) -> date:
    """The import date: ``now`` as a calendar date in the organisation's time zone (default Europe/Amsterdam),
    the same way every other date-valued rule reads a moment (a naive ``now`` is UTC)."""
    from regelwerk.permissions.relations import local_date, zone

    return local_date(now, zone(timezone))


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def find_absent(conn: Any, present: Mapping[str, set[str]], day: date) -> list[Absent]:
    """The employees and units of the kinds in ``present`` (kind -> ids in the file) the store has and the file
    does not: employees still employed on ``day`` or hired later, units not ended. Sorted by kind and id."""
    import sqlalchemy as sa
    from regelwerk.scheduling.tables import employees

    out: list[Absent] = []
    if "employee" in present:
        ids = present["employee"]
        query = sa.select(employees.c.id, employees.c.name).where(
            sa.or_(employees.c.leaving_date.is_(None), employees.c.leaving_date > day)).order_by(employees.c.id)
        out.extend(Absent("employee", ident, name) for ident, name in conn.execute(query) if ident not in ids)
    units = [kind for kind in present if kind != "employee"]
    if units and sa.inspect(conn).has_table("rw_org_units"):
        from regelwerk.imports.tables import org_units

        query = sa.select(org_units.c.kind, org_units.c.id, org_units.c.name, org_units.c.attributes).where(
            org_units.c.kind.in_(units)).order_by(org_units.c.kind, org_units.c.id)
        out.extend(Absent(kind, ident, name) for kind, ident, name, attributes in conn.execute(query)
                   if ident not in present[kind] and not (attributes or {}).get("ended_on"))
    return out


def end_absent(conn: Any, absent: Sequence[Absent], day: date, now: datetime, actor: str) -> list[Absent]:
    """End every absent employee's employment and unit as of ``day`` and the relations ``actor`` made for
    them (module docstring); returns them with the dates set. One transaction: the caller's."""
    import sqlalchemy as sa
    from regelwerk.scheduling.tables import employees

    people = [a for a in absent if a.kind == "employee"]
    units = [a for a in absent if a.kind != "employee"]
    ended: list[Absent] = []
    moment = now.astimezone(UTC).replace(tzinfo=None)
    for chunk in _chunks([a.id for a in people]):
        rows = conn.execute(sa.select(employees.c.id, employees.c.name, employees.c.hire_date,
                                      employees.c.leaving_date).where(employees.c.id.in_(chunk))).all()
        changes = []
        for ident, name, hired, left in rows:
            target = hired if hired is not None and hired > day else day
            if left is None or left > target:
                changes.append({"b_id": ident, "b_leaving": target})
                left = target
            ended.append(Absent("employee", ident, name, left))
        if changes:
            # a changed fact clears the plan stamp: the next tick plans them again (and cancels what no longer
            # applies, per the cycle's leaving policy)
            conn.execute(employees.update().where(employees.c.id == sa.bindparam("b_id")).values(
                leaving_date=sa.bindparam("b_leaving"), plan_version=None, next_due=None, updated_at=moment),
                changes)
    if units:
        from regelwerk.imports.tables import org_units

        for unit in units:
            row = conn.execute(sa.select(org_units.c.attributes).where(
                org_units.c.kind == unit.kind, org_units.c.id == unit.id)).first()
            attributes = {**dict((row[0] if row is not None else None) or {}), "ended_on": day.isoformat()}
            conn.execute(org_units.update().where(org_units.c.kind == unit.kind, org_units.c.id == unit.id)
                         .values(attributes=attributes, updated_at=moment))
            ended.append(Absent(unit.kind, unit.id, unit.name, day))
    if sa.inspect(conn).has_table("rw_relations"):
        _end_relations(conn, people, units, now, actor)
    return sorted(ended, key=lambda a: (a.kind != "employee", a.kind, a.id))


def _end_relations(conn: Any, people: Sequence[Absent], units: Sequence[Absent], now: datetime, actor: str) -> None:
    """End (withdraw at ``now``, as ``unrelate`` does) the current relations ``actor`` made for the absent."""
    import sqlalchemy as sa
    from regelwerk.permissions.tables import rw_relations as t

    current = (t.c.created_by == actor, t.c.withdrawn_at.is_(None))
    conditions = []
    for chunk in _chunks([a.id for a in people]):
        conditions.append(sa.or_(t.c.subject.in_(chunk), t.c.object.in_(chunk)))
    for kind, (as_object, as_subject) in UNIT_RELATIONS.items():
        ids = [a.id for a in units if a.kind == kind]
        for chunk in _chunks(ids):
            conditions.append(sa.and_(t.c.kind.in_(as_object), t.c.object.in_(chunk)))
            if as_subject:
                conditions.append(sa.and_(t.c.kind.in_(as_subject), t.c.subject.in_(chunk)))
    stamp = now.astimezone(UTC)
    for condition in conditions:
        conn.execute(t.update().where(*current, condition).values(withdrawn_at=stamp, withdrawn_by=actor))
