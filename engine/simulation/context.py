"""What a plugin's story events, data import and summary section see of a running simulation.

A story event is ``run(sim, args) -> (text, detail)`` (``regelwerk.registry.StoryEventSpec``); a
simulation part's ``after_tick(sim, tick_summary)`` and ``summary(sim)`` get the same ``sim``
(``regelwerk.registry.SimulationPartSpec``). ``sim`` is a :class:`SimulationContext`:

- ``sim.engine`` the workflow ``Engine`` on the simulation's store, ``sim.sa`` its SQLAlchemy engine,
  ``sim.compiled`` the customer's compiled bundle, ``sim.registry`` the plugin registry;
- ``sim.now`` the simulated clock (09:00 Europe/Amsterdam for events, 23:59 for the tick), ``sim.day``;
- ``sim.actor(value, default)`` an actor from an employee id (roles and attributes from the employee
  data) or ``{id, roles}``; ``sim.forget_actor(id)`` after the employee's facts changed;
- ``sim.directory`` the ``EmployeeDirectory``; ``sim.relations`` the relationship facts and
  ``sim.permissions`` the bundle's permission matrices (see :class:`SimulationPermissions`);
- ``sim.note(kind, text, **detail)`` a timeline line of the current day (lines noted while an event
  runs follow the event's own line);
- ``sim.service(name, factory)`` a per-run object (a pack's service over ``sim.engine``), created once;
  ``sim.cleanups`` run when the run ends;
- ``sim.step_memo(name)`` a dict for rows read in the current step's transaction and reused in it
  (emptied whenever that transaction begins, ends or an event of it is rolled back);
- ``sim.totals`` cumulative counters kept in the store across runs (``rw_simulations.totals``);
- ``sim.day_events(type)`` the arguments of the current day's events of a type (to read their rows ahead, in one
  statement) and ``sim.writes(*tables)`` how many statements of the step's transaction may have changed those
  tables so far (rows read ahead are current while it stays the same).

Importing this module is light (the runtime is imported when a run starts).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from regelwerk.actors import SYSTEM, Actor

__all__ = [
    "EVENT_TIME",
    "IMPORT_ACTOR_ID",
    "TICK_TIME",
    "TIMEZONE",
    "SimulationContext",
    "SimulationPermissions",
    "local_time",
    "naive_utc",
]

TIMEZONE = ZoneInfo("Europe/Amsterdam")
#: Story and data events happen at this local time of their day.
EVENT_TIME = dtime(9, 0)
#: The nightly tick of every simulated day.
TICK_TIME = dtime(23, 59)
#: The actor of imported data (packs add the roles an import needs, e.g. recruitment's vacancy admins).
IMPORT_ACTOR_ID = "regelwerk-simulate"

T = TypeVar("T")


def local_time(day: date, at: dtime) -> datetime:
    """``day`` at ``at`` in Europe/Amsterdam."""
    return datetime.combine(day, at, TIMEZONE)


def naive_utc(moment: datetime) -> datetime:
    """A moment as naive UTC (how the tables store times)."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


class SimulationPermissions:
    """The simulation's permission port: the bundle's matrices that declare the resource type decide.

    Deny by default, like every other path: a resource type no matrix declares is refused (and
    audited). Several matrices declare it: allowed when one allows; a refusal is explained by the first
    and audited once, not once per matrix. ``ports`` maps each ``PermissionMatrix`` name to its
    ``MatrixPermissions``.
    """

    def __init__(self, compiled: Any, relations: Any, audit: Any, clock: Callable[[], datetime]) -> None:
        from regelwerk.permissions.adapter import MatrixPermissions

        self.audit = audit
        self.clock = clock
        self.ports = {name: MatrixPermissions(matrix, relations, audit=audit, clock=clock)
                      for name, matrix in sorted(compiled.of_kind("PermissionMatrix").items())}
        #: resource type -> the matrices that declare it: the ports and their compiled (frozen) matrices are fixed
        #: when the port is made, so the answer is too (it was worked out again for every decision)
        self._declaring: dict[str, tuple[str, ...]] = {}
        self._scope_fields: dict[str, tuple[str, ...]] = {}

    def declaring(self, resource_type: str) -> list[str]:
        """The matrices that declare ``resource_type``."""
        found = self._declaring.get(resource_type)
        if found is None:
            found = self._declaring[resource_type] = tuple(
                name for name, port in self.ports.items() if resource_type in port.matrix.resources)
        return list(found)

    def scope_fields(self, resource_type: str) -> tuple[str, ...]:
        """The fields the declaring matrices' scopes read (the runtime keeps payloads from moving them)."""
        found = self._scope_fields.get(resource_type)
        if found is None:  # fixed as declaring() is: read from the compiled matrices only (asked twice per fire)
            found = self._scope_fields[resource_type] = tuple(sorted(
                {f for name in self.declaring(resource_type) for f in self.ports[name].scope_fields(resource_type)}))
        return found

    def check(self, actor: Actor, action: str, resource_type: str, resource: Mapping[str, Any],
              context: Mapping[str, Any]) -> Any:
        """The engine's ``PermissionPort.check``."""
        from regelwerk.workflows.ports import Decision

        names = self.declaring(resource_type)
        if not names:
            who = Actor.of(actor)
            now = context.get("now") or self.clock()
            declared = sorted({r for port in self.ports.values() for r in port.matrix.resources})
            reason = (f"no PermissionMatrix of the bundle declares resource type {resource_type!r} "
                      f"(deny by default); declared: {', '.join(declared) or 'none'}")
            explain = {"decision": "deny", "by": "default", "resource": resource_type, "action": action,
                       "actor": who.id, "reason": reason}
            if self.audit is not None:
                self.audit({"at": now, "actor": who.id, "action": "permission.denied",
                            "instance_id": context.get("instance_id"),
                            "detail": {"action": action, "resource_type": resource_type,
                                       "resource_id": (resource or {}).get("id"), "roles": list(who.roles),
                                       "by": "default", "reason": reason, "matrix": None}})
            return Decision(False, explain)
        for name in names:  # a quiet first pass: the first allow decides, nothing audited
            port = self.ports[name]
            now = context.get("now") or self.clock()
            decision = port.matrix.decide(actor, action, resource_type, resource, port.relationships, now, context,
                                          field_group=context.get("field_group"))
            if decision.allowed:
                return decision
        # every matrix refused: the first explains and audits, once
        return self.ports[names[0]].check(actor, action, resource_type, resource, context)


class SimulationContext:
    """The running simulation as story events and simulation parts see it (see the module's docstring)."""

    def __init__(self, compiled: Any, name: str, store_url: str, registry: Any) -> None:
        from regelwerk.permissions.adapter import store_audit
        from regelwerk.runtime import Engine
        from regelwerk.scheduling.employees import EmployeeDirectory

        self.compiled = compiled
        self.name = name
        self.registry = registry
        self.now = datetime.now(UTC)
        self.day = self.now.date()
        from regelwerk.simulation.lease import create_tables
        from regelwerk.simulation.shared import joinable
        from regelwerk.store.sql import SqlStore

        store = SqlStore(store_url, create_tables=False)
        self._store = store
        create_tables(store.engine, registry)  # under a lock: two runs starting at once do not race
        self.engine = Engine(compiled, store=store, registry=registry, clock=lambda: self.now)
        self.sa: Any = store.engine
        joinable(self.sa)  # every port's connection joins the step's shared transaction (simulation/shared.py)
        self.directory = EmployeeDirectory(self.sa)
        self.relations: Any = None
        self.permissions: SimulationPermissions | None = None
        self.audit = store_audit(self.engine.store)
        self.timeline: list[dict[str, Any]] = []
        self.totals: Counter[str] = Counter()
        self.services: dict[str, Any] = {}
        self.cleanups: list[Callable[[], None]] = []
        self._actors: dict[str, Actor] = {}
        # employees from the organisation workbook: their Rollen are function roles; their permission roles come
        # only from has_role facts (Rechtenniveau), which the matrix reads through the relationships
        self.organisation_ids: set[str] = set()
        self._pending: list[dict[str, Any]] | None = None
        self._step_memos: dict[str, dict[Any, Any]] = {}
        #: the events of the day being played, as ``(type, args)`` (see :meth:`day_events`)
        self._day_events: tuple[tuple[str, Mapping[str, Any]], ...] = ()
        #: the position in ``_day_events`` of the event being applied (-1: none; see :meth:`day_run`)
        self._day_position = -1

    def at(self, day: date, moment: dtime) -> None:
        """Set the clock to ``moment`` (local time) of ``day``."""
        self.day = day
        self.now = local_time(day, moment)

    def service(self, name: str, factory: Callable[[SimulationContext], T]) -> T:
        """A per-run object created on first use (e.g. a pack's service over ``self.engine``)."""
        if name not in self.services:
            self.services[name] = factory(self)
        value: T = self.services[name]
        return value

    def actor(self, value: Any, default: Actor | None = None) -> Actor:
        """An id (roles and attributes from the employee data), a mapping ``{id, roles}``, or the default."""
        if value is None or value == "":
            return default or SYSTEM
        if isinstance(value, Mapping):
            return Actor.of(dict(value))
        ident = str(value)
        if ident not in self._actors:
            facts = self.directory.get(ident)
            if facts is None:
                self._actors[ident] = Actor(ident)
            else:
                attrs = {k: v for k, v in {"department": facts.department, "function": facts.function,
                                           "manager": facts.manager, "groups": list(facts.groups)}.items() if v}
                roles = () if ident in self.organisation_ids else tuple(facts.roles)
                self._actors[ident] = Actor(ident, roles, attrs)
        return self._actors[ident]

    def forget_actor(self, ident: str) -> None:
        """Drop a cached actor (the employee's roles or facts changed)."""
        self._actors.pop(ident, None)

    def note(self, kind: str, text: str, **detail: Any) -> None:
        """A timeline line of the current day (``kind`` as in docs/simulation.md, e.g. ``tier``, ``warning``)."""
        entry = {"day": self.day.isoformat(), "kind": kind, "text": text, **detail}
        (self._pending if self._pending is not None else self.timeline).append(entry)

    def close(self) -> None:
        """Run the cleanups (in reverse order) and close the engine."""
        try:
            while self.cleanups:
                self.cleanups.pop()()
        finally:
            self.services.clear()
            self.engine.close()
            self._store.close()

    def step_memo(self, name: str) -> dict[Any, Any]:
        """A dict (one per ``name``) for rows a port read in the current step's transaction and reuses in it.

        Emptied in place when a step's transaction begins and ends and when an event is rolled back
        (:meth:`forget_step`), so it never outlives the transaction it was read in. Only for rows that
        change solely through the port that keeps the memo (it updates or drops its entries when it
        writes them): e.g. the recruitment pack's vacancy rows, read once per day instead of per move.
        """
        return self._step_memos.setdefault(name, {})

    def day_events(self, event_type: str) -> list[Mapping[str, Any]]:
        """The arguments of the current day's events of ``event_type`` (story events and data rows, in the order they
        are applied; those applied already included), as the story and data files give them: unchecked by the event
        that will apply them, so only for reading rows ahead (e.g. every candidate a day's moves name, in one
        statement). Empty outside a day's batch (events dated before the first day are applied one by one)."""
        return [args for kind, args in self._day_events if kind == event_type]

    def day_run(self, event_type: str) -> tuple[int, list[Mapping[str, Any]]]:
        """The event being applied and the day's events right after it, while they are of ``event_type``: where the
        run ends (the position of the day's first event after it of another type, or the day's end; -1 with no run)
        and their arguments (as :meth:`day_events` gives them). Empty when the event being applied is of another type
        or outside a day's batch. For rows read ahead that must not be held longer than the events of their type
        take (rows locked ahead on PostgreSQL, see the recruitment pack's ``DayOfMoves``)."""
        events, start = self._day_events, self._day_position
        if not 0 <= start < len(events) or events[start][0] != event_type:
            return -1, []
        end = start
        while end < len(events) and events[end][0] == event_type:
            end += 1
        return end, [args for _kind, args in events[start:end]]

    def writes(self, *tables: str) -> int | None:
        """How many statements of the current step's transaction may have changed rows of ``tables`` so far
        (an INSERT, UPDATE or DELETE of one of them, anything but those and a SELECT, and every savepoint rolled
        back: :func:`regelwerk.simulation.shared.write_count`); None outside a step's transaction. Rows read ahead
        in the transaction are what the store holds while this stays the same (on SQLite: the step holds the
        database's write lock, no other writer runs)."""
        from regelwerk.simulation.shared import write_count

        return write_count(self.sa, tables)

    def forget_step(self) -> None:
        """Empty the step memos (a step's transaction began, ended or was partly rolled back)."""
        for memo in self._step_memos.values():
            memo.clear()

    def forget_memory(self) -> None:
        """Drop what this process remembers of the store (after a step was rolled back)."""
        self.forget_step()
        self._actors.clear()
        for name in ("_cache", "_stored_versions"):  # the workflow engine's caches of committed rows
            remembered = getattr(self.engine, name, None)
            if remembered is not None:
                remembered.clear()
