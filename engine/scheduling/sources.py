"""What schedules call for: the generic hook between kinds and the tick.

Any compiled object that implements :class:`ItemSource` (a ``source_id`` and a pure
``plan(employee, now)``) is planned by the tick for every employee; the talent pack's
development cycles are one. A plan lists every item that has arisen by ``now`` (a source
may plan ahead, e.g. a whole work year a month before it starts) with a deterministic key,
plus ``next_due``: when the same employee must be planned again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from regelwerk.frozen import FrozenDict
from regelwerk.store.json_codec import dumps_sorted

if TYPE_CHECKING:
    from regelwerk.scheduling.employees import EmployeeFacts

__all__ = [
    "ITEM_STATUSES", "START_MODES", "Directory", "ItemSource", "Plan", "PlannedItem", "TickTask", "item_sources",
    "plan_with", "tick_tasks",
]

#: planned: created, not yet due; active: a due item without a workflow (a trajectory);
#: ready: due, waits for someone to start it by hand; started: its workflow instance runs;
#: skipped: missed during downtime and dropped by the catch-up policy; cancelled: no longer
#: applies (left employment, facts or definitions changed) before it was due; closed: an active item
#: its source ended early (a plan's ``closes``).
ITEM_STATUSES = ("planned", "active", "ready", "started", "skipped", "cancelled", "closed")
START_MODES = ("automatic", "manual", "none")


def _naive_utc(moment: datetime) -> datetime:
    """``moment`` (aware) as naive UTC; a UTC one kept by value (:func:`_naive_of_utc`)."""
    if moment.tzinfo is not UTC:
        return moment.astimezone(UTC).replace(tzinfo=None)
    return _naive_of_utc(moment)


@lru_cache(maxsize=256)
def _naive_of_utc(moment: datetime) -> datetime:
    """A UTC due moment as naive UTC, by value: the items of a batch share few (one occurrence for many employees),
    and equal UTC datetimes have equal fields."""
    return moment.replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class PlannedItem:
    """One item a schedule calls for; ``key`` is deterministic and unique across the store."""

    key: str
    source: str
    item_type: str
    subject: str
    due_at: datetime
    period: str = ""
    parent_key: str | None = None
    series: str = ""
    start_mode: str = "automatic"
    catch_up: str = "once"
    grace_seconds: int = 86400
    workflow: str | None = None
    version: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    appears_at: datetime | None = None
    """When the tick creates the item (None: as soon as it is planned); a source plans it earlier so that
    previews show it, the tick leaves it out of the store until then and plans the employee again."""
    deadline: datetime | None = None
    """When the work itself is due, shown beside ``due_at`` (when the scheduler activates it); None: the same."""

    def row(self, now: datetime, stamp: datetime | None = None) -> dict[str, Any]:
        """The ``rw_scheduled_items`` row (naive UTC times); ``stamp``: ``now`` as naive UTC, when the caller
        made it once for many rows."""
        if stamp is None:
            stamp = now.astimezone(UTC).replace(tzinfo=None)
        payload = self.payload
        return {
            "key": self.key, "source": self.source, "item_type": self.item_type, "subject": self.subject,
            "period": self.period, "parent_key": self.parent_key, "series": self.series or self.key,
            "due_at": _naive_utc(self.due_at), "status": "planned",
            "start_mode": self.start_mode, "catch_up": self.catch_up, "grace_seconds": self.grace_seconds,
            "workflow": self.workflow, "instance_id": None, "version": self.version,
            "payload": dumps_sorted(payload if type(payload) is dict else dict(payload)),
            "created_at": stamp, "updated_at": stamp,
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """Every item arisen for one employee by ``now``, and when to plan again (None: only on change)."""

    items: tuple[PlannedItem, ...] = ()
    next_due: datetime | None = None
    closes: tuple[str, ...] = ()
    """Keys of stored items that no longer apply although they already run (e.g. the trajectory of a role the
    employee left mid-year): the tick sets ``planned``, ``ready`` and ``active`` ones to ``closed``."""
    partial: bool = False
    """The items that appeared before the ``since`` the tick gave are left out (they were planned before): the
    tick then neither cancels this source's stored items of the employee that the plan does not name, nor
    expects ``closes`` (see :func:`plan_with`)."""


@runtime_checkable
class Directory(Protocol):
    """Other employees a plan may need (colleagues, the manager's manager, holders of a role).

    The tick passes a store-backed directory (read in the batch's transaction), ``preview`` one over
    the employees it previews. Results are sorted by id.
    """

    def get(self, employee_id: str) -> EmployeeFacts | None:
        """One employee, None when unknown."""

    def where(self, field_name: str, value: str) -> Sequence[EmployeeFacts]:
        """Employees whose ``field_name`` (department, manager, function, or a list fact: roles, groups) holds
        ``value``."""

    def stored(self, source: str, item_type: str, subjects: Sequence[str],
               fields: Sequence[str] | None = None, keys: Sequence[str] | None = None
               ) -> Mapping[str, Mapping[str, Any]]:
        """Payloads of stored items of ``source`` and ``item_type`` for ``subjects``, by key (preview: none); with
        ``fields``, only those top-level entries of each payload; with ``keys``, only the items of those keys."""

    def prefetch(self, field_name: str, values: Iterable[str]) -> None:
        """A hint: ``where(field_name, v)`` will be asked for many of ``values`` (a store reads them at once)."""


@runtime_checkable
class ItemSource(Protocol):
    """A compiled definition that generates items per employee (implemented by pack kinds)."""

    source_id: str

    def plan(self, employee: EmployeeFacts, now: datetime) -> Plan:
        """Pure: the items that have arisen for ``employee`` by ``now`` (plan-ahead included)."""


def plan_with(source: Any, employees: Sequence[EmployeeFacts], now: datetime, directory: Directory | None,
              appeared_only: bool = False, since: Sequence[datetime | None] | None = None) -> list[Plan]:
    """Plan ``employees`` through ``source``: its ``plan_batch`` when it has one, else ``plan`` one by one.

    A source that declares ``uses_directory = True`` gets the ``directory`` and ``appeared_only`` (the tick
    passes True): it may then leave out items that appear after ``now`` (the tick would not store them
    yet) as long as its plan's ``next_due`` is no later than the first of them.

    ``since`` (the tick's, one per employee; None for an employee whose facts or definitions changed since it
    was last planned): every item that appeared before it was planned by an earlier plan with the same facts
    and definitions (it is the ``next_due`` that plan gave). A source that declares ``plans_since = True`` gets
    it and may leave those items out, marking the plan ``partial``; most re-plans then build only what is new.
    """
    batch = getattr(source, "plan_batch", None)
    if batch is None:
        return [source.plan(p, now) for p in employees]
    if directory is not None and getattr(source, "uses_directory", False):
        if since is not None and getattr(source, "plans_since", False):
            return list(batch(employees, now, directory=directory, appeared_only=appeared_only, since=since))
        return list(batch(employees, now, directory=directory, appeared_only=appeared_only))
    return list(batch(employees, now))


# What a compiled bundle's (frozen, so unchanging) objects hold, found once: the tick asks every day, and a
# Protocol isinstance check over every object is costly. Bounded; only frozen mappings are remembered.
_FOUND: dict[tuple[str, int], tuple[Any, list[Any]]] = {}


def _found(what: str, objects: Any, compute: Callable[[], list[Any]]) -> list[Any]:
    key = (what, id(objects))
    hit = _FOUND.get(key)
    if hit is not None and hit[0] is objects:
        return list(hit[1])
    result = compute()
    if isinstance(objects, FrozenDict):
        if len(_FOUND) >= 64:
            _FOUND.clear()
        _FOUND[key] = (objects, result)
    return list(result)


def item_sources(objects: Mapping[tuple[str, str], Any] | Iterable[Any]) -> list[ItemSource]:
    """The item sources among compiled objects, sorted by ``source_id``."""
    def compute() -> list[Any]:
        values = objects.values() if isinstance(objects, Mapping) else objects
        found = {obj.source_id: obj for obj in values if isinstance(obj, ItemSource)}
        return [found[k] for k in sorted(found)]

    return _found("sources", objects, compute)


@runtime_checkable
class TickTask(Protocol):
    """A compiled definition with periodic work of its own, run by every tick after items and timers.

    The recruitment pack's retention policies are one (the AVG sweep). ``run_tick`` must be idempotent
    (a second tick at the same moment finds nothing left to do) and returns counts for the summary.
    """

    task_id: str

    def run_tick(self, engine: Any, compiled: Any, now: datetime) -> Mapping[str, Any]:
        """Do what is due at ``now`` through the workflow ``engine``; counts of what was done."""


def tick_tasks(objects: Mapping[tuple[str, str], Any] | Iterable[Any]) -> list[TickTask]:
    """The tick tasks among compiled objects, sorted by ``task_id``."""
    def compute() -> list[Any]:
        values = objects.values() if isinstance(objects, Mapping) else objects
        found = {obj.task_id: obj for obj in values if isinstance(obj, TickTask)}
        return [found[k] for k in sorted(found)]

    return _found("tasks", objects, compute)
