"""The embedding API: ``Engine``, a thin front over the runtime's services, one unit of work per change.

::

    from regelwerk.runtime import Engine

    with Engine("definitions/standard", store="sqlite:///regelwerk.sqlite", permissions="declaration") as engine:
        anna = {"id": "anna", "roles": ["medewerker"]}
        inst = engine.start("declaration", {"employee": "anna", "amount": 20}, actor=anna)
        engine.fire(inst.id, "submit", actor=anna)

The services, each in its own module under ``regelwerk.workflows``:

- ``runtime.WorkflowRuntime``: start, fire, fire_batch, reading, explain (``gate.py``: definition
  versions, guards and permissions);
- ``timers.TimerService``: due timers in bounded batches, each in a savepoint, retried as incidents;
- ``migration.MigrationService``: moving instances to the current definition version (audited);
- ``incidents``: failures of plugin code, listed, retried and resolved;
- the tick (``regelwerk.scheduling.tick``): scheduled items, timers and tick tasks.

Deny by default: without ``permissions=`` every permission-guarded start and event is refused; the
policy decides on the stored instance (see docs/permissions.md, "The runtime: deny by default").

Every instance is pinned to the content hash of the definition it started under; the engine keeps
each definition version's compiled form in the store (``rw_definitions``), so a changed file does not
move running instances. ``migrate_plan``/``migrate_apply`` move them explicitly (audited).
The engine is safe to share between threads; several processes may share one PostgreSQL database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from regelwerk.actors import SYSTEM, Actor
from regelwerk.compiler import CompiledBundle
from regelwerk.errors import PermissionDenied, PluginError
from regelwerk.permissions.policies import NoPolicy
from regelwerk.registry import Registry
from regelwerk.store.base import Store, StoreTx
from regelwerk.store.records import AuditEntry, HistoryEntry, IncidentRecord, InstanceRecord, TimerRecord
from regelwerk.store.unit import UnitOfWork
from regelwerk.workflows.gate import Version
from regelwerk.workflows.incidents import IncidentService
from regelwerk.workflows.migration import MIGRATE_EVENT, MigrationItem, MigrationService
from regelwerk.workflows.model import Workflow
from regelwerk.workflows.ports import PermissionPort
from regelwerk.workflows.runtime import START_EVENT, EventOption, WorkflowRuntime
from regelwerk.workflows.timers import RetryPolicy, TimerOutcome, TimerService

if TYPE_CHECKING:
    from regelwerk.outbox.recipients import RoleDirectory

__all__ = ["MIGRATE_EVENT", "START_EVENT", "Engine", "EventOption", "MigrationItem", "RetryPolicy", "TimerOutcome"]

ActorLike = Actor | str | Mapping[str, Any]


class Engine:
    """Runs workflow instances of a bundle against a store (see the module docstring)."""

    def __init__(self, bundle: CompiledBundle | str | os.PathLike[str], store: Store | str = "sqlite:///regelwerk.sqlite",
                 registry: Registry | None = None, clock: Callable[[], datetime] | None = None,
                 permissions: PermissionPort | str | None = None, id_factory: Callable[[], str] | None = None,
                 cache_size: int = 10_000, retry: RetryPolicy | None = None,
                 plugin_time_limit: float | None = None, recipients: RoleDirectory | None = None) -> None:
        from regelwerk.registry import load_registry

        self.registry = registry if registry is not None else load_registry()
        if isinstance(bundle, CompiledBundle):
            self.bundle = bundle
        else:
            from regelwerk.bundle import load_bundle
            from regelwerk.compiler import compile_bundle

            self.bundle = compile_bundle(load_bundle(bundle), self.registry)
        if isinstance(store, str):
            from regelwerk.store import open_store

            self.store: Store = open_store(store, self.registry)
            self._owns_store = True
        else:
            self.store = store
            self._owns_store = False
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        if isinstance(permissions, str):
            permissions = self._matrix_permissions(permissions)
        self.id_factory: Callable[[], str] = id_factory or (lambda: uuid.uuid4().hex)
        self.retry = retry if retry is not None else RetryPolicy()
        #: seconds a single call of plugin code (an action, a guard, a tick task, an item source) may run before it
        #: is failed as that work's incident (``regelwerk.limits``: the main thread of a POSIX process); None: none
        self.plugin_time_limit = plugin_time_limit
        #: who holds a role and their addresses, for mail to a role (``send_template`` ``to: {role: ...}``); None: the
        #: ``has_role`` facts of the permission policy, addresses from accounts and employees
        #: (:mod:`regelwerk.outbox.recipients`)
        self.recipients = recipients
        self.runtime = WorkflowRuntime(self, self.registry, self.bundle, self.store, self.clock,
                                       # no policy, no access: every permission-guarded start and event is refused
                                       permissions if permissions is not None else NoPolicy(), self.id_factory,
                                       cache_size)
        self.timer_service = TimerService(self.runtime, self.retry)
        self.migrations = MigrationService(self.runtime)
        self.incident_service = IncidentService(self)
        # the hot paths are the runtime's own bound methods: the front adds no call per start or fire
        self.start = self.runtime.start  # type: ignore[method-assign]
        self.fire = self.runtime.fire  # type: ignore[method-assign]
        self.fire_batch = self.runtime.fire_batch  # type: ignore[method-assign]
        # the runtime's memory of committed rows, shared (the same objects): the tick's starter marks a definition
        # version stored once per batch, and the simulation clears both after a rolled-back step
        self._stored_versions = self.runtime._stored_versions
        self._cache = self.runtime._cache

    @property
    def permissions(self) -> PermissionPort:
        """The permission port every fire asks (settable: a scenario or simulation swaps it)."""
        return self.runtime.permissions

    @permissions.setter
    def permissions(self, port: PermissionPort) -> None:
        self.runtime.permissions = port

    @property
    def _runtimes(self) -> dict[tuple[str, str], Version]:
        return self.runtime._runtimes

    def _matrix_permissions(self, matrix: str) -> PermissionPort:
        """The bundle's ``PermissionMatrix`` named ``matrix`` over the store's relationship facts.

        The engine audits every refused start and fire itself, once, as a refusal of its unit of work, so
        the port gets no audit sink of its own. The facts come from the store (``store.relationships()``:
        ``rw_relations`` on a SQL store, fed by the host; the memory store keeps its own); a store without
        facts gets an empty memory set.
        """
        from regelwerk.permissions.adapter import MatrixPermissions
        from regelwerk.permissions.relations import MemoryRelationships, Relationships

        tz = self.bundle.timezone  # consent, right and membership dates count in the organisation's zone
        # a store may offer its own relationship facts (the SQL store: rw_relations; the memory store: its own)
        offered = getattr(self.store, "relationships", None)
        relations: Relationships = offered(timezone=tz) if callable(offered) else MemoryRelationships(timezone=tz)
        port: PermissionPort = MatrixPermissions(self.bundle, relations, matrix, clock=self.clock)
        return port

    def tick(self, now: datetime | None = None, **options: Any) -> Any:
        """Everything that is due at ``now``: scheduled items, workflow timers and tick tasks (retention...).

        See :func:`regelwerk.scheduling.tick.tick` for the options (``progress``, ``batch_size``...); returns
        its ``TickSummary``. Idempotent and safe in several processes on one PostgreSQL.
        """
        from regelwerk.scheduling.tick import tick

        return tick(self, self.bundle, now or self.clock(), **options)

    def close(self) -> None:
        """Close the store if the engine opened it."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def record_incident(self, error: PluginError, now: datetime | None = None) -> IncidentRecord:
        """Record a failure of plugin code outside a fire (a tick task: event ``tick:<task id>``)."""
        from regelwerk.workflows.incidents import record_incident

        return record_incident(self.store, error, now or self.clock())

    def incidents(self, status: str | None = "open", instance_id: str | None = None) -> list[IncidentRecord]:
        """Incidents (``open`` by default; ``None``: all), oldest first."""
        from regelwerk.workflows.incidents import list_incidents

        return list_incidents(self.store, status, instance_id)

    def incident(self, incident_id: int) -> IncidentRecord:
        """One incident (``UnknownIncident`` if there is none)."""
        from regelwerk.workflows.incidents import get_incident

        return get_incident(self.store, incident_id)

    def resolve_incident(self, incident_id: int, actor: ActorLike = SYSTEM, note: str = "") -> IncidentRecord:
        """Close an incident by hand (the work is not retried; a failed timer stays failed); audited. Decided for
        ``actor`` by the permission policy (action ``incident.resolve`` on resource type ``incident``), see
        :meth:`decide_incident`."""
        from regelwerk.workflows.incidents import resolve_incident

        who = Actor.of(actor)
        self.decide_incident(incident_id, who, "incident.resolve")
        return resolve_incident(self.store, incident_id, who, self.clock(), note)

    def decide_incident(self, incident_id: int, actor: Actor, action: str) -> None:
        """Deny by default: ``actor`` may retry or resolve the incident only when the policy allows ``action``
        (``incident.retry`` / ``incident.resolve``, named as ``<workflow>.start`` is, so a plain role table's
        ``retry`` of a workflow grants nothing here) on resource type ``incident``. The resource: the instance's
        data fields (what a matrix's scopes read: subject, department...), then the incident's ``id``,
        ``instance``, ``event``, ``status`` and the instance's ``workflow``. A refusal is ``PermissionDenied``,
        audited once. Only the engine's own :data:`SYSTEM` object (in-process code, never an actor named in a
        request) is not asked.

        "Not there" and "not yours" answer the same to whom the policy refuses: an incident id that does not exist is
        decided as an incident of no instance (``id`` only), so an actor refused that gets ``PermissionDenied`` as
        for an incident that exists (audited once), and only an actor the policy allows learns ``UnknownIncident``
        (before, the 404 came before the decision: anyone could tell which ids exist)."""
        from regelwerk.errors import UnknownIncident
        from regelwerk.workflows.runtime import _jsonable

        if actor is SYSTEM:
            return
        try:
            incident: IncidentRecord | None = self.incident(incident_id)
        except UnknownIncident:
            incident = None
        now = self.clock()
        found = None
        if incident is not None and incident.instance_id:
            with self.store.read() as tx:
                found = tx.get(incident.instance_id)
        resource = {**(dict(found.data) if found is not None else {}), "id": incident_id,
                    "instance": incident.instance_id if incident is not None else "",
                    "event": incident.event if incident is not None else "",
                    "status": incident.status if incident is not None else "",
                    "workflow": found.workflow if found is not None else ""}
        instance_id = incident.instance_id if incident is not None else ""
        context = {"event": action, "now": now, "instance_id": instance_id or None}
        with UnitOfWork(self.store) as uow:
            decision = self.runtime.permissions.check(actor, action, "incident", resource, context)
            if not decision.allowed:
                exc = PermissionDenied(actor.id, action, f"incident:{incident_id}", _jsonable(decision.explain))
                self.runtime._refused(uow, 0, exc, instance_id, action, now)
                raise exc
        if incident is None:
            raise UnknownIncident(incident_id)

    # --- the workflow runtime ------------------------------------------------------------------

    def workflows(self) -> dict[str, Workflow]:
        """The bundle's workflows by name."""
        return self.runtime.workflows()

    def current_version(self, workflow: str) -> str:
        """The content hash of the bundle's definition of ``workflow``."""
        return self.runtime.current_version(workflow)

    def start(self, workflow: str, data: Mapping[str, Any] | None = None, actor: ActorLike = SYSTEM,
              instance_id: str | None = None, *, system_data: Mapping[str, Any] | None = None) -> InstanceRecord:
        """Create an instance in the workflow's initial state (on_enter actions and timers included); ``data``
        may not name a system field, ``system_data`` (the host's own) may (see ``WorkflowRuntime.start``)."""
        return self.runtime.start(workflow, data, actor, instance_id, system_data=system_data)

    def fire(self, instance_id: str, event: str, actor: ActorLike, data: Mapping[str, Any] | None = None,
             expected_version: int | None = None, *, system_data: Mapping[str, Any] | None = None) -> InstanceRecord:
        """Fire ``event`` on an instance as ``actor``; the updated instance (see ``WorkflowRuntime.fire``)."""
        return self.runtime.fire(instance_id, event, actor, data, expected_version, system_data=system_data)

    def fire_batch(self, items: Iterable[Mapping[str, Any] | Sequence[Any]]) -> list[InstanceRecord]:
        """Fire many events in ONE unit of work: all commit, or none (see ``WorkflowRuntime.fire_batch``)."""
        return self.runtime.fire_batch(items)

    def get(self, instance_id: str) -> InstanceRecord:
        """The instance (``UnknownInstance`` if there is none)."""
        return self.runtime.get(instance_id)

    def history(self, instance_id: str) -> list[HistoryEntry]:
        """Every state change of the instance, oldest first."""
        return self.runtime.history(instance_id)

    def timers(self, instance_id: str) -> list[TimerRecord]:
        """Every timer of the instance (pending, fired, cancelled, failed)."""
        return self.runtime.timers(instance_id)

    def audit(self, instance_id: str | None = None) -> list[AuditEntry]:
        """Audit rows (of one instance, if given)."""
        return self.runtime.audit(instance_id)

    def instances(self, workflow: str | None = None, state: str | None = None) -> list[InstanceRecord]:
        """Instances, optionally filtered."""
        return self.runtime.instances(workflow, state)

    def explain(self, instance_id: str, event: str, actor: ActorLike,
                data: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Why ``event`` would (not) fire now for ``actor``: every candidate's guard and permission."""
        return self.runtime.explain(instance_id, event, actor, data)

    def available_events(self, instance_id: str, actor: ActorLike) -> list[EventOption]:
        """Every event possible from the instance's state, whether ``actor`` may fire it now, and why not."""
        return self.runtime.available_events(instance_id, actor)

    # used by the tick's starter (regelwerk.scheduling.workflows): the start inside the tick's transaction
    def _current(self, workflow: str) -> Version:
        return self.runtime._current(workflow)

    def _start_tx(self, tx: StoreTx, rt: Version, data: dict[str, Any], actor: Actor, instance_id: str | None,
                  now: datetime, post: list[Callable[[], None]]) -> InstanceRecord:
        return self.runtime._start_tx(tx, rt, data, actor, instance_id, now, post)

    def _start_kept(self, buffer: Any, rt: Version, data: dict[str, Any], actor: Actor, instance_id: str,
                    now: datetime, post: list[Callable[[], None]]) -> None:
        self.runtime._start_kept(buffer, rt, data, actor, instance_id, now, post)

    # --- timers, migrations, incidents ------------------------------------------------------------

    def fire_due_timers(self, now: datetime | None = None, limit: int | None = None,
                        batch_size: int = 100) -> list[TimerOutcome]:
        """Fire every pending timer due at ``now`` (see ``TimerService.fire_due_timers``)."""
        return self.timer_service.fire_due_timers(now, limit, batch_size)

    def migrate_plan(self, workflow: str | None = None,
                     mapping: Mapping[str, str] | None = None) -> list[MigrationItem]:
        """Instances on an older version of ``workflow`` (or of every workflow) and what ``migrate_apply`` would do."""
        return self.migrations.migrate_plan(workflow, mapping)

    def migrate_apply(self, workflow: str | None = None, mapping: Mapping[str, str] | None = None,
                      actor: ActorLike = SYSTEM, instance_ids: Iterable[str] | None = None) -> list[MigrationItem]:
        """Move instances to the current version (blocked ones stay); each move is audited and in the history."""
        return self.migrations.migrate_apply(workflow, mapping, actor, instance_ids)

    def retry_incident(self, incident_id: int, actor: ActorLike = SYSTEM) -> IncidentRecord:
        """Try an incident's failed work again now (see ``IncidentService.retry_incident``), when the policy allows
        ``actor`` to (action ``incident.retry`` on resource type ``incident``, :meth:`decide_incident`)."""
        who = Actor.of(actor)
        self.decide_incident(incident_id, who, "incident.retry")
        return self.incident_service.retry_incident(incident_id, who)
