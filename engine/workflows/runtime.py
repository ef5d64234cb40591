"""The workflow runtime: start, fire and read instances, one unit of work per change.

Definition versions (``Version``), guards and permissions (``Gate``) live in ``gate.py``; timers,
migrations and incidents are services of their own beside it; ``regelwerk.runtime.Engine`` is the front.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from regelwerk.actors import SYSTEM, Actor
from regelwerk.compiler import CompiledBundle
from regelwerk.errors import (
    ActionFailed,
    ConflictError,
    InvalidData,
    PermissionDenied,
    PluginError,
    RegelwerkError,
    TransitionNotAllowed,
    UnknownInstance,
    UsageError,
    is_plugin_fault,
)
from regelwerk.frozen import freeze_json
from regelwerk.limits import critical, limited
from regelwerk.registry import Registry
from regelwerk.store.base import Store, StoreTx
from regelwerk.store.records import (
    INSTANCE_ID_LENGTH,
    AuditEntry,
    DefinitionRecord,
    HistoryEntry,
    InstanceRecord,
    StartShape,
    TimerRecord,
    is_erased,
)
from regelwerk.store.unit import UnitOfWork, current_unit, watch_erasures
from regelwerk.workflows.actions import ActionContext
from regelwerk.workflows.gate import (
    Gate,
    Version,
    changed_scope_fields,
    json_copy,
    not_json,
    system_fields_refusal,
    system_only_explain,
)
from regelwerk.workflows.incidents import cancel_timers
from regelwerk.workflows.model import ActionRef, Transition, Workflow, workflow_from_dict, workflow_to_dict
from regelwerk.workflows.ports import PermissionPort

__all__ = ["ENGINE_ID_PREFIX", "START_EVENT", "EventOption", "WorkflowRuntime"]

START_EVENT = "$start"
#: instance ids the engine derives itself (a scheduled item's: ``regelwerk.scheduling.workflows.instance_id_for``); a
#: start that names its own id may not take one, or it would be the instance the engine later finds for that item
ENGINE_ID_PREFIX = "sched-"
ActorLike = Actor | str | Mapping[str, Any]
#: how often a fire that names no version is decided on a fresh read when other processes' fires of the same
#: instance keep committing between its read and its claim (each time one of them made progress)
_FRESH_ATTEMPTS = 8
#: why an erased instance takes no event (``StoreTx.erase_personal_data``)
_ERASED_REASON = "its personal data was erased (AVG): an erased instance takes no more events"


@dataclass(frozen=True, slots=True)
class EventOption:
    """An event possible from the instance's state: whether this actor may fire it now, and why not."""

    event: str
    label: str
    allowed: bool
    to: str | None
    reasons: tuple[str, ...] = ()
    #: an internal transition: the instance stays in its state (``to`` is that state), which is not left
    internal: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {"event": self.event, "label": self.label, "allowed": self.allowed, "to": self.to,
                "reasons": list(self.reasons), "internal": self.internal}


class WorkflowRuntime:
    """Starts, fires and reads workflow instances of one bundle on one store."""

    def __init__(self, front: Any, registry: Registry, bundle: CompiledBundle, store: Store,
                 clock: Callable[[], datetime], permissions: PermissionPort, id_factory: Callable[[], str],
                 cache_size: int = 10_000) -> None:
        self.front = front  # what actions see as ctx.engine (the Engine)
        self.registry = registry
        self.bundle = bundle
        self.store = store
        self.clock = clock
        self.permissions = permissions
        self.id_factory = id_factory
        self._lock = threading.Lock()
        self._runtimes: dict[tuple[str, str], Version] = {}
        self._stored_versions: set[tuple[str, str]] = set()
        # A bounded cache of the records this engine last committed: a fire can skip the SELECT and
        # go straight to the version-checked UPDATE. A stale entry (another process changed the row)
        # fails that check and the fire is redone once on a fresh read in the same transaction.
        self._cache: dict[str, InstanceRecord] = {}
        self._cache_size = cache_size
        # an AVG erasure on this store (any caller, any pack) drops the erased instances' cached records
        watch_erasures(store, self._forget)

    def workflows(self) -> dict[str, Workflow]:
        """The bundle's workflows by name."""
        return dict(self.bundle.of_kind("Workflow"))

    def current_version(self, workflow: str) -> str:
        """The content hash of the bundle's definition of ``workflow``."""
        self.bundle.get("Workflow", workflow)
        return self.bundle.versions[("Workflow", workflow)]

    def _current(self, workflow: str) -> Version:
        model: Workflow = self.bundle.get("Workflow", workflow)
        version = self.bundle.versions[("Workflow", workflow)]
        key = (workflow, version)
        rt = self._runtimes.get(key)
        if rt is None:
            with self._lock:
                rt = self._runtimes.get(key)
                if rt is None:
                    rt = Version(model, version)
                    self._runtimes[key] = rt
        return rt

    def _runtime(self, tx: StoreTx, workflow: str, version: str) -> Version:
        rt = self._runtimes.get((workflow, version))
        if rt is not None:
            return rt
        if self.bundle.versions.get(("Workflow", workflow)) == version:
            return self._current(workflow)
        stored = tx.get_definition("Workflow", workflow, version)
        if stored is None:
            raise UsageError(f"definition version {version} of workflow {workflow!r} is not in the store",
                             hint="run 'regelwerk migrate apply' to move its instances to the current version")
        try:
            model = workflow_from_dict(stored.source, self.registry.function_table())
        except (ValueError, KeyError) as exc:
            raise UsageError(f"stored definition {workflow}@{version} cannot be loaded: {exc}") from exc
        with self._lock:
            rt = self._runtimes.setdefault((workflow, version), Version(model, version))
        return rt

    def _remember_definition(self, tx: StoreTx, rt: Version, now: datetime) -> None:
        key = (rt.model.name, rt.version)
        if key in self._stored_versions:
            return
        tx.put_definition(DefinitionRecord("Workflow", rt.model.name, rt.version, workflow_to_dict(rt.model), now))

    def _check(self, actor: Actor, action: str, model: Workflow, rec: InstanceRecord, data: Mapping[str, Any],
               transition: Transition, now: datetime) -> Any:
        """Decide ``action`` against the STORED instance; event data that changes fields is decided too.

        Facts come from the store, not the caller: the scopes and conditions read ``rec.data``. When
        ``data`` (the instance as the event would leave it) changes fields, the same action is decided
        again on the changed resource and both must allow, so a payload can never move a resource into
        or out of a scope (e.g. ``{"subject": "nobody"}`` on a self-approval).
        """
        context = {"event": transition.event, "from": rec.state, "to": transition.target(rec.state), "now": now,
                   "instance_id": rec.id}
        decision = self._ask(actor, action, model, rec, rec.data, context)
        if not decision.allowed or data is rec.data:
            return decision
        changed = sorted(k for k in {*data, *rec.data} if data.get(k) != rec.data.get(k))
        if not changed:
            return decision
        after = self._ask(actor, action, model, rec, data, {**context, "changes": changed})
        if after.allowed:
            return decision
        from regelwerk.permissions.policies import PolicyDecision

        return PolicyDecision(False, {
            "decision": "deny", "by": "guarded-change", "action": action, "changed_fields": changed,
            "reason": f"the event data changes {', '.join(changed)}; {action!r} is allowed on the stored instance "
                      f"but not on the changed one, so the change is refused",
            "stored": _jsonable(decision.explain), "changed": _jsonable(after.explain)})

    def _check_unguarded(self, actor: Actor, model: Workflow, rec: InstanceRecord, data: Mapping[str, Any],
                         transition: Transition) -> Any:
        """A transition without a permission may not let a person's payload change whom the instance is about.

        No policy decides such a transition, so nothing could decide the change: a payload that changes a
        field the policy's scopes read (the resource type's subject, author and department fields; see
        :func:`~regelwerk.workflows.gate.changed_scope_fields`) is refused (``by: guarded-change``). Otherwise a
        stranger would sign a colleague's agreement through a guard ``actor.id eq data.subject`` by sending
        ``{"subject": "me"}``.
        Returns None when the payload changes none of them.
        """
        changed = changed_scope_fields(self.permissions, model.resource_type, data, rec.data)
        if not changed:
            return None
        from regelwerk.permissions.policies import PolicyDecision

        return PolicyDecision(False, {
            "decision": "deny", "by": "guarded-change", "action": transition.event, "changed_fields": changed,
            "reason": f"the event data changes {', '.join(changed)}, which the permission scopes read; "
                      f"{transition.event!r} has no permission that could allow the change, so it is refused"})

    def _ask(self, actor: Actor, action: str, model: Workflow, rec: InstanceRecord, data: Mapping[str, Any],
             context: Mapping[str, Any]) -> Any:
        # The instance's data fields are the resource's fields (subject, author, department...), so a
        # permission matrix's scopes and conditions read them directly; the engine's own keys win.
        resource = {**data, "id": rec.id, "workflow": rec.workflow, "state": rec.state, "data": data,
                    "created_by": rec.created_by}
        return self.permissions.check(actor, action, model.resource_type, resource, context)

    def _check_start(self, actor: Actor, rt: Version, data: Mapping[str, Any], instance_id: str | None,
                     now: datetime) -> None:
        """Starting is an action like any other: refused (typed; audited by the caller's unit) unless allowed."""
        model = rt.model
        action = model.start_action
        resource = {**data, "id": instance_id, "workflow": model.name, "state": model.initial, "data": data,
                    "created_by": actor.id}
        context = {"event": START_EVENT, "from": "", "to": model.initial, "now": now, "instance_id": instance_id}
        decision = self.permissions.check(actor, action, model.resource_type, resource, context)
        if not decision.allowed:
            raise PermissionDenied(actor.id, action, f"{model.resource_type}:{instance_id or '(new)'}",
                                   _jsonable(decision.explain))

    @staticmethod
    def _refused(uow: UnitOfWork, mark: int, exc: PermissionDenied, instance_id: str, event: str,
                 now: datetime) -> None:
        """Audit a denied start or fire exactly once, as a refusal of its unit of work (kept when it rolls back).

        A permission port that audits (``store_audit``) has already put its row in the unit since
        ``mark``: that row gets the event; otherwise the engine writes ``workflow.permission_denied``.
        """
        added = uow.refusals[mark:]
        if added:
            uow.refusals[mark:] = [replace(entry, instance_id=entry.instance_id or instance_id,
                                           detail={**entry.detail, "event": event}) for entry in added]
            return
        uow.refuse(AuditEntry(now, exc.actor, "workflow.permission_denied", instance_id,
                              {"event": event, "action": exc.action, "explain": _jsonable(exc.explanation)}))

    @staticmethod
    def _refused_data(uow: UnitOfWork, exc: InvalidData, actor: Actor, instance_id: str, event: str,
                      now: datetime) -> None:
        """Audit a start or fire refused because a person's data named a system field (once, as a refusal of its unit
        of work, kept when it rolls back); other invalid data is a mistake, not a refusal, and is not audited."""
        if not exc.system_fields:
            return
        uow.refuse(AuditEntry(now, actor.id, "workflow.system_fields_refused", instance_id,
                              {"event": event, "fields": list(exc.system_fields), "reason": str(exc)}))

    def _run_actions(self, calls: Iterable[tuple[str, ActionRef]], tx: StoreTx, rec: InstanceRecord, event: str,
                     actor: Actor, now: datetime, source: str, data: dict[str, Any], timers: list[TimerRecord],
                     post: list[Callable[[], None]], system: bool = False) -> None:
        limit = getattr(self.front, "plugin_time_limit", None)
        for phase, call in calls:
            spec = self.registry.actions.get(call.name)
            if spec is None:
                raise UsageError(f"action {call.name!r} is not registered (is its plugin installed?)")
            ctx = ActionContext(self.front, rec, event, actor, now, call.params, tx, source, rec.state, phase, data,
                                timers, post, system=system)
            try:
                limited(limit, f"action {call.name!r}", spec.run, ctx)
            except RegelwerkError as exc:  # passed on as it is, marked as the action's (a timer's incident)
                exc.from_plugin = True
                raise
            except BaseException as exc:  # a plugin bug: typed at the boundary, the original chained
                if not is_plugin_fault(exc):
                    raise
                failed = ActionFailed(f"action {call.name!r} ({phase})", exc, rec.id, event)
                failed.state = source or None  # the state the transition left ("" for a start)
                raise failed from exc

    def post_failed(self, exc: Exception) -> None:
        """An after-commit callback raised (see :func:`~regelwerk.store.unit.run_after_commit`): the change it
        followed stays committed and the other callbacks run; the failure becomes an incident (once: a fire
        that recorded its own is not recorded again). An error that must stop the work is raised."""
        from regelwerk.workflows.incidents import record_incident

        if isinstance(exc, RegelwerkError) and exc.stops_work:
            raise exc
        if isinstance(exc, PluginError) and exc.incident_id is not None:
            return
        error = PluginError.wrap("after-commit work", exc, str(getattr(exc, "instance_id", "") or ""),
                                 str(getattr(exc, "event", "") or ""))  # the original chained (or passed on)
        record_incident(self.store, error, self.clock())

    @critical  # between a fire's commit and its after-commit work
    def _remember(self, records: Iterable[InstanceRecord]) -> None:
        if self._cache_size <= 0:
            return
        cache = self._cache
        with self._lock:
            for record in records:
                cache.pop(record.id, None)
                cache[record.id] = record
            while len(cache) > self._cache_size:
                del cache[next(iter(cache))]

    @critical
    def _forget(self, instance_ids: Iterable[str]) -> None:
        with self._lock:
            for instance_id in instance_ids:
                self._cache.pop(instance_id, None)

    @critical  # a unit of work, its commit and its after-commit work: finished once begun
    def start(self, workflow: str, data: Mapping[str, Any] | None = None, actor: ActorLike = SYSTEM,
              instance_id: str | None = None, *, system_data: Mapping[str, Any] | None = None) -> InstanceRecord:
        """Create an instance in the workflow's initial state (on_enter actions and timers included).

        Starting needs the workflow's start permission (``start_permission``, else ``<workflow>.start``):
        refused with ``PermissionDenied`` (audited) unless the policy allows it. Scheduled starts (the
        engine's own, like timers) do not pass here; their ids (``sched-...``) are the engine's, and a start that
        names one is refused (``UsageError``) on every path: Python, CLI, service, simulation. ``data`` is the
        person's: naming one of the workflow's ``system_fields`` is ``InvalidData`` (audited, nothing written).
        ``system_data`` is what the host's own code computed (system fields included; never what a request sent):
        merged over ``data``, then validated and decided like the rest.
        """
        who = Actor.of(actor)
        now = self.clock()
        rt = self._current(workflow)
        if instance_id is not None and instance_id.startswith(ENGINE_ID_PREFIX):
            # before anything is read or written: the id of a scheduled item's instance is the engine's to give
            raise UsageError(f"instance id {instance_id!r} is reserved: ids starting with {ENGINE_ID_PREFIX!r} are "
                             "given by the engine to the workflows of scheduled items",
                             hint="choose another id, or leave it out to have one generated")
        if instance_id is not None and len(instance_id) > INSTANCE_ID_LENGTH:  # alike on every store (PostgreSQL's
            raise UsageError(f"instance id {instance_id[:40]!r}... is longer than {INSTANCE_ID_LENGTH} characters",
                             hint="choose a shorter id, or leave it out to have one generated")  # column refused it)
        new_id = instance_id or self.id_factory()
        given = dict(data or {})
        try:
            with UnitOfWork(self.store) as uow:
                refused = system_fields_refusal(rt.model, given, start=True)
                if refused is not None:
                    self._refused_data(uow, refused, who, instance_id or "", START_EVENT, now)
                    raise refused
                if system_data:
                    given.update(system_data)
                try:
                    self._check_start(who, rt, given, instance_id, now)
                except PermissionDenied as exc:
                    self._refused(uow, 0, exc, instance_id or "", START_EVENT, now)
                    raise
                record = self._start_tx(uow.tx, rt, dict(given), who, new_id, now, uow.post)
        except PluginError as exc:
            # the data is not kept: no instance exists that an AVG erasure would find it by
            self._fire_incident(exc, new_id, START_EVENT, who, {"workflow": workflow}, now)
            raise
        self._stored_versions.add((rt.model.name, rt.version))
        self._remember((record,))
        uow.run_post(self.post_failed)
        return record

    def _start_tx(self, tx: StoreTx, rt: Version, data: dict[str, Any], actor: Actor, instance_id: str | None,
                  now: datetime, post: list[Callable[[], None]]) -> InstanceRecord:
        # checked, and what the record hands out and the engine keeps: read-only (frozen.freeze_json), in one walk
        frozen = rt.checked(data)
        self._remember_definition(tx, rt, now)
        model = rt.model
        initial = rt.machine.state(model.initial)
        record = InstanceRecord(instance_id or self.id_factory(), model.name, rt.version, model.initial, frozen, 1,
                                now, now, actor.id, bool(initial.after))
        tx.insert(record)
        timers: list[TimerRecord] = []
        if initial.on_enter:
            work = json_copy(frozen)
            self._run_actions((("enter", a) for a in initial.on_enter), tx, record, START_EVENT, actor, now, "",
                              work, timers, post)
            record = self._save_after_actions(tx, rt, record, work, timers)
        self._schedule(tx, record, initial.after, now)
        tx.add_history(HistoryEntry(record.id, START_EVENT, "", model.initial, actor.id, now, rt.version, 1,
                                    {"actor": actor.to_dict()}))
        return record

    def _start_kept(self, buffer: Any, rt: Version, data: dict[str, Any], actor: Actor, instance_id: str,
                    now: datetime, post: list[Callable[[], None]]) -> None:
        """:meth:`_start_tx` against a batch's ``StartBuffer`` (``regelwerk.scheduling.batch``): a start whose initial
        state runs no action is kept as its id, its checked data and the shape the batch's starts of ``rt`` by
        ``actor`` at ``now`` share (made once per batch: the state's timers' due moments, the history's explanation);
        the same checks in the same order, the same rows. Any other start is :meth:`_start_tx`. ``data`` is the start's
        own (the tick's parse of its item's payload): kept as it is when it is plain JSON (``Version.checked_plain``),
        frozen when the buffer makes its record."""
        model = rt.model
        initial = rt.machine.state(model.initial)
        if initial.on_enter:
            self._start_tx(buffer, rt, data, actor, instance_id, now, post)
            return
        checked = rt.checked_plain(data)
        self._remember_definition(buffer, rt, now)
        shape = buffer.shape(rt, actor, now)
        if shape is None:
            shape = StartShape(model.name, rt.version, model.initial, actor.id, now, START_EVENT,
                               {"actor": actor.to_dict()},
                               tuple((spec.event, spec.duration.after(now), spec.data) for spec in initial.after))
            buffer.keep_shape(rt, actor, now, shape)
        buffer.keep_start(instance_id, checked, shape)

    def _save_after_actions(self, tx: StoreTx, rt: Version, record: InstanceRecord, work: dict[str, Any],
                            timers: list[TimerRecord]) -> InstanceRecord:
        changed = work != record.data
        if changed:
            odd = not_json(work)
            if odd is not None:  # an action put a value no store can write: a plugin bug (an incident), not a refusal
                raise PluginError(f"actions of {record.workflow}", InvalidData(
                    f"an action left instance data that is not JSON: {odd[1]} is not", odd[0]), record.id)
            try:
                rt.check_data(work)
            except InvalidData as exc:  # the actions left data that does not fit: theirs, not the caller's
                exc.from_plugin = True
                raise
        for timer in timers:
            tx.add_timer(timer)
        if changed or (timers and not record.timers_pending):
            updated = replace(record, data=freeze_json(work) if changed else record.data,
                              timers_pending=record.timers_pending or bool(timers))
            tx.update(updated, record.version, changed, definition_changed=False)
            return updated
        return record

    @staticmethod
    def _schedule(tx: StoreTx, record: InstanceRecord, timers: Sequence[Any], now: datetime) -> None:
        for spec in timers:
            tx.add_timer(TimerRecord(record.id, record.state, spec.event, spec.duration.after(now),
                                     dict(spec.data)))

    def fire(self, instance_id: str, event: str, actor: ActorLike, data: Mapping[str, Any] | None = None,
             expected_version: int | None = None, *, system_data: Mapping[str, Any] | None = None) -> InstanceRecord:
        """Fire ``event`` on an instance as ``actor``; the updated instance.

        ``data`` is merged (shallowly) into the instance data and validated. With ``expected_version`` the
        fire only happens if nobody changed the instance since the caller read it (else ``ConflictError``).
        ``data`` is the person's: naming one of the workflow's ``system_fields`` is ``InvalidData`` (audited);
        ``system_data`` is what the host's own code computed, merged over it (see :meth:`start`).
        Refusals: ``UnknownInstance``, ``TransitionNotAllowed``, ``PermissionDenied`` (audited),
        ``InvalidData``, ``ConflictError``.
        """
        return self._fire_one(instance_id, event, Actor.of(actor), data, expected_version, True,
                              system_data=system_data)

    def fire_settling(self, instance_id: str, event: str, actor: ActorLike, data: Mapping[str, Any] | None,
                      settle: Callable[[UnitOfWork], None], expected_state: str | None = None) -> InstanceRecord:
        """:meth:`fire`, with ``settle`` run in the fire's unit of work after the transition (before commit): what
        else must commit with the fire or not at all, e.g. the retried incident's resolution. An error raised by
        ``settle`` rolls the fire back. With ``expected_state`` the fire is a ``UsageError`` unless the instance,
        as read in the fire's unit, is in that state (a retried fire after the instance moved on)."""
        return self._fire_one(instance_id, event, Actor.of(actor), data, None, True, settle, expected_state)

    @critical  # a unit of work, its commit and its after-commit work: finished once begun
    def _fire_one(self, instance_id: str, event: str, who: Actor, data: Mapping[str, Any] | None,
                  expected_version: int | None, check_permission: bool,
                  settle: Callable[[UnitOfWork], None] | None = None,
                  expected_state: str | None = None, *,
                  system_data: Mapping[str, Any] | None = None,
                  on_incident: Callable[[StoreTx], object] | None = None,
                  first: Callable[[StoreTx], object] | None = None) -> InstanceRecord:
        """One fire in its own unit of work: a refusal audited once, a plugin failure an incident (which keeps the
        person's ``data`` only: its retry is the retrying person's fire; ``on_incident`` runs in the incident's unit
        of work). ``first`` runs in the fire's unit before anything is read (a kept chained fire taken: a runner
        that finds it taken decides nothing, audits nothing)."""
        now = self.clock()
        uow = UnitOfWork(self.store)
        try:
            with uow:
                if first is not None:
                    first(uow.tx)
                try:
                    record = self._fire_tx(uow.tx, instance_id, event, who, data, now, expected_version, uow.post,
                                           check_permission, expected_state=expected_state, system_data=system_data)
                except PermissionDenied as exc:
                    self._refused(uow, 0, exc, instance_id, event, now)
                    raise
                except InvalidData as exc:
                    self._refused_data(uow, exc, who, instance_id, event, now)
                    raise
                if settle is not None:
                    settle(uow)
        except PluginError as exc:
            self._forget((instance_id,))
            self._fire_incident(exc, instance_id, event, who, data, now, on_incident)
            raise
        except BaseException:
            self._forget((instance_id,))
            raise
        self._remember((record,))
        uow.run_post(self.post_failed)
        return record

    @critical  # a unit of work, its commit and its after-commit work: finished once begun
    def fire_batch(self, items: Iterable[Mapping[str, Any] | Sequence[Any]]) -> list[InstanceRecord]:
        """Fire many events in ONE unit of work: all commit, or none (the first refusal is raised).

        Each item is ``{"instance": id, "event": e, "actor": a, "data": {...}, "expected_version": n}`` or a
        tuple ``(instance_id, event, actor[, data])``. The raised error has ``batch_index`` set.
        """
        now = self.clock()
        results: list[InstanceRecord] = []
        touched: list[str] = []
        index = -1
        failed: tuple[str, str, Actor, Any] | None = None  # the item whose plugin code raised
        uow = UnitOfWork(self.store)
        try:
            with uow:
                for position, item in enumerate(items):
                    index = position
                    if isinstance(item, Mapping) and "instance" in item and "event" in item:
                        iid, ev, who = item["instance"], item["event"], item.get("actor", SYSTEM)
                        payload, expected = item.get("data"), item.get("expected_version")
                    elif isinstance(item, (list, tuple)) and 3 <= len(item) <= 4:
                        iid, ev, who = item[0], item[1], item[2]
                        payload, expected = (item[3] if len(item) > 3 else None), None
                    else:
                        raise UsageError(f"fire_batch item {position} is not {{instance, event, actor, data}} nor "
                                         f"(instance, event, actor[, data]): {item!r}"[:300])
                    touched.append(str(iid))
                    mark = len(uow.refusals)
                    try:
                        results.append(self._fire_tx(uow.tx, str(iid), str(ev), Actor.of(who), payload, now,
                                                     expected, uow.post, True))
                    except PermissionDenied as exc:
                        self._refused(uow, mark, exc, str(iid), str(ev), now)
                        raise
                    except InvalidData as exc:
                        self._refused_data(uow, exc, Actor.of(who), str(iid), str(ev), now)
                        raise
                    except PluginError:
                        failed = (str(iid), str(ev), Actor.of(who), payload)
                        raise
        except BaseException as exc:
            self._forget(touched)
            if not isinstance(exc, RegelwerkError):
                raise
            exc.batch_index = index  # type: ignore[attr-defined]
            if isinstance(exc, PluginError) and failed is not None:  # the batch rolled back: as a fire, an incident
                self._fire_incident(exc, *failed, now)
            raise
        self._remember(results)
        uow.run_post(self.post_failed)
        return results

    def _fire_tx(self, tx: StoreTx, instance_id: str, event: str, actor: Actor, data: Mapping[str, Any] | None,
                 now: datetime, expected_version: int | None, post: list[Callable[[], None]],
                 check_permission: bool, *, expected_state: str | None = None,
                 system_data: Mapping[str, Any] | None = None) -> InstanceRecord:
        # a person's payload (``data``, checked for system fields when a person fires) and the host's own
        # ``system_data`` over it: what is merged, decided, written and kept in the history as the event's input
        person = data if check_permission else None
        if system_data:
            data = {**(data or {}), **system_data}
        # with an expected state, decided on a fresh read only (a cached record could be behind)
        rec = self._cache.get(instance_id) if check_permission and expected_state is None else None
        if rec is not None and expected_version is not None and rec.version != expected_version:
            rec = None
        if rec is not None:
            try:
                decided = self._decide(tx, rec, event, actor, data, now, check_permission, person)
            except (TransitionNotAllowed, PermissionDenied, InvalidData) as exc:
                fresh = tx.get(instance_id)
                if fresh is not None and fresh.version == rec.version:
                    raise  # the cached record was current: the refusal stands
                decided = None
                unit = current_unit(self.store)
                if isinstance(exc, PermissionDenied) and unit is not None:
                    # decided on a stale read: drop its refusals (the tail, about this instance), decide again
                    while unit.refusals and unit.refusals[-1].instance_id == instance_id:
                        unit.refusals.pop()
            if decided is not None:
                claimed: list[InstanceRecord] = []
                try:
                    return self._apply(tx, rec, decided, event, actor, data, now, post, claimed)
                except ConflictError:
                    if expected_version is not None or claimed:
                        # an expected version was named; or the claim was written and an action (its own
                        # version-checked write elsewhere) lost: the fire fails as a whole and rolls back, never
                        # decided again on top of its own claim (which would run the actions twice)
                        raise
            # the cached record was stale (another process changed the row): decide again on a fresh read
        for attempt in range(_FRESH_ATTEMPTS):
            fresh = tx.get(instance_id)
            if fresh is None:
                raise UnknownInstance(instance_id)
            if expected_version is not None and fresh.version != expected_version:
                raise ConflictError(instance_id, expected_version, fresh.version, fresh.state)
            if expected_state is not None and fresh.state != expected_state:
                raise UsageError(f"{instance_id} is in state {fresh.state!r} now, not {expected_state!r} where "
                                 f"{event!r} was asked for")
            decided = self._decide(tx, fresh, event, actor, data, now, check_permission, person)
            claimed = []
            try:
                return self._apply(tx, fresh, decided, event, actor, data, now, post, claimed)
            except ConflictError:
                # the read takes no lock (PostgreSQL, READ COMMITTED): another process's fire of this instance
                # committed between the read and the claim, whose UPDATE waited for it and then found the version
                # moved on. A fire that names no version is decided again on the row that fire committed, as if
                # the two had run one after the other (the claim is the first write: nothing else happened yet).
                # Before, it was a ConflictError to a caller who named no version, and for a chained workflow.fire
                # an incident waiting for a person. An expected version named, or a conflict after the claim (an
                # action's own write lost): the fire fails as a whole.
                if expected_version is not None or claimed or attempt == _FRESH_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _decide(self, tx: StoreTx, rec: InstanceRecord, event: str, actor: Actor, data: Mapping[str, Any] | None,
                now: datetime, check_permission: bool, person: Mapping[str, Any] | None = None
                ) -> tuple[Version, Gate, str, Mapping[str, Any]]:
        """Guards, permission and target state; writes nothing. ``person`` is the part of ``data`` a person sent:
        it may not name a system field of the instance's definition version. An erased instance (AVG) takes no
        more events: ``TransitionNotAllowed``, whoever fires."""
        if is_erased(rec.data):
            raise TransitionNotAllowed(rec.id, rec.state, event, [_ERASED_REASON])
        rt = self._runtime(tx, rec.workflow, rec.definition_version)
        refused = system_fields_refusal(rt.model, person, event=event)
        if refused is not None:
            raise refused
        # the new record's data is read-only (frozen.freeze_json): a caller that changes a returned record in place
        # cannot change what the engine keeps and writes next
        merged: dict[str, Any] | None = None
        if data:
            merged = {**rec.data, **data}
            # its shape now (JSON, depth: what the guards may read); its schema once the permission is decided
            rt.check_data(merged, schema=False)
            new_data: Mapping[str, Any] = freeze_json(merged)
        else:  # the stored data as it is (frozen once: a record this engine kept is taken as it is)
            new_data = freeze_json(rec.data)
        gate = Gate(self, rt, rec, event, actor, new_data, data or {}, now, check_permission)
        try:
            limit = getattr(self.front, "plugin_time_limit", None)
            step = rt.machine.step
            dest = (step(rec.id, rec.state, event, gate) if not limit else
                    limited(limit, f"guards of {rec.workflow}.{event}", step, rec.id, rec.state, event, gate))
        except RegelwerkError:
            raise
        except BaseException as exc:  # a condition function or permission port raised: typed at the boundary
            if not is_plugin_fault(exc):
                raise
            failed = PluginError(f"guard or permission of {rec.workflow}.{event}", exc, rec.id, event)
            failed.state = rec.state
            raise failed from exc
        if dest is None or gate.chosen is None:
            refusal = gate.refusal()
            if merged is not None and not isinstance(refusal, PermissionDenied):
                rt.check_schema(merged)  # whom the policy allows hears first that the data does not fit
            raise refusal
        if merged is not None:
            # after the permission: a schema rule about the merged data (maxProperties, if/then on a stored field)
            # would tell whom the policy refuses something about data not theirs (found by attack)
            rt.check_schema(merged)
        return rt, gate, dest, new_data

    def _apply(self, tx: StoreTx, rec: InstanceRecord, decided: tuple[Version, Gate, str, Mapping[str, Any]],
               event: str, actor: Actor, data: Mapping[str, Any] | None, now: datetime,
               post: list[Callable[[], None]], claimed: list[InstanceRecord] | None = None) -> InstanceRecord:
        """Claim (version-checked update), cancel and schedule timers, run actions, write history. ``claimed``
        gets the claimed record once the claim is written (a conflict after it is not a stale read)."""
        rt, gate, dest, new_data = decided
        transition = gate.chosen
        assert transition is not None
        instance_id = rec.id
        leaving = rt.machine.state(rec.state)
        entering = rt.machine.state(dest)
        # an internal transition does not leave the state: no on_exit/on_enter, the state's pending timers stay (its
        # 'after' ones are not set again: one that fired here is done), only the transition's own actions run
        internal = transition.internal
        pending = rec.timers_pending if internal else bool(entering.after)
        record = InstanceRecord(rec.id, rec.workflow, rec.definition_version, dest, new_data, rec.version + 1,
                                rec.created_at, now, rec.created_by, pending)
        # the version check: claim the change before any side effect
        tx.update(record, rec.version, bool(data), definition_changed=False)  # the data changes with a payload only
        if claimed is not None:
            claimed.append(record)
        if rec.timers_pending and not internal:
            cancel_timers(tx, instance_id, now, actor.id, f"{instance_id} left {rec.state} by {event}")
        exits = () if internal else leaving.on_exit
        enters = () if internal else entering.on_enter
        if exits or enters or transition.actions:
            work = json_copy(new_data)
            timers: list[TimerRecord] = []
            calls = [*(("exit", a) for a in exits), *(("enter", a) for a in enters),
                     *(("after", a) for a in transition.actions)]
            self._run_actions(calls, tx, record, event, actor, now, rec.state, work, timers, post,
                              system=not gate.check_permission)
            record = self._save_after_actions(tx, rt, record, work, timers)
        if entering.after and not internal:
            self._schedule(tx, record, entering.after, now)
        explain = gate.explain
        explain["actor"] = {"id": actor.id, "roles": list(actor.roles)}
        if data:
            explain["input"] = dict(data)
        tx.add_history(HistoryEntry(instance_id, event, rec.state, dest, actor.id, now, rec.definition_version,
                                    record.version, explain))
        return record

    def get(self, instance_id: str) -> InstanceRecord:
        """The instance (``UnknownInstance`` if there is none)."""
        with self.store.read() as tx:
            rec = tx.get(instance_id)
        if rec is None:
            raise UnknownInstance(instance_id)
        return rec

    def history(self, instance_id: str) -> list[HistoryEntry]:
        """Every state change of the instance, oldest first."""
        with self.store.read() as tx:
            if tx.get(instance_id) is None:
                raise UnknownInstance(instance_id)
            return tx.history(instance_id)

    def timers(self, instance_id: str) -> list[TimerRecord]:
        """Every timer of the instance (pending, fired, cancelled, failed)."""
        with self.store.read() as tx:
            return tx.timers(instance_id)

    def audit(self, instance_id: str | None = None) -> list[AuditEntry]:
        """Audit rows (of one instance, if given)."""
        with self.store.read() as tx:
            return tx.audit(instance_id)

    def instances(self, workflow: str | None = None, state: str | None = None) -> list[InstanceRecord]:
        """Instances, optionally filtered."""
        with self.store.read() as tx:
            return tx.instances(workflow=workflow, state=state)

    def _evaluate(self, tx: StoreTx, instance_id: str, actor: Actor, data: Mapping[str, Any] | None,
                  now: datetime) -> tuple[InstanceRecord, Version, Mapping[str, Any]]:
        rec = tx.get(instance_id)
        if rec is None:
            raise UnknownInstance(instance_id)
        rt = self._runtime(tx, rec.workflow, rec.definition_version)
        merged = {**rec.data, **data} if data else rec.data
        return rec, rt, merged

    def explain(self, instance_id: str, event: str, actor: ActorLike,
                data: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Why ``event`` would (not) fire now for ``actor``: every candidate's guard and permission."""
        who = Actor.of(actor)
        now = self.clock()
        with self.store.read() as tx:
            rec, rt, merged = self._evaluate(tx, instance_id, who, data, now)
        out = self._explain(rec, rt, merged, event, who, data or {}, now)
        refused = system_fields_refusal(rt.model, data, event=event)
        if refused is None and data and not is_erased(rec.data):
            # as the fire checks the merged data (not JSON, too deep, not its schema): found by attack, an explanation
            # said yes to ``salary: 1e309`` (infinity) the fire refused; its schema only for an actor some candidate's
            # permission allows (the fire asks the schema after the permission)
            permitted = any(item.get("permission", {}).get("allowed", True) for item in out["candidates"])
            try:
                rt.check_data(merged, schema=permitted)
            except InvalidData as exc:
                refused = exc
        if refused is not None:  # as the fire would be: refused before any guard or permission
            out["allowed"], out["to"] = False, None
            out["reasons"] = [str(refused), *out["reasons"]]
        return out

    def _explain(self, rec: InstanceRecord, rt: Version, merged: Mapping[str, Any], event: str, actor: Actor,
                 input_data: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        candidates = rt.machine.candidates(rec.state, event) if rec.state in rt.model.state_ids else ()
        gate = Gate(self, rt, rec, event, actor, merged, input_data, now, True)
        out: dict[str, Any] = {"instance": rec.id, "state": rec.state, "event": event, "allowed": False,
                               "to": None, "internal": False, "candidates": [], "reasons": []}
        if is_erased(rec.data):  # as a fire would be: refused before any guard or permission
            out["reasons"] = [_ERASED_REASON]
            return out
        if not candidates:
            froms = sorted({s for t in rt.model.transitions if t.event == event for s in t.sources})
            out["reasons"] = [f"{event!r} cannot fire from state {rec.state!r}"
                              + (f"; it fires from: {', '.join(froms)}" if froms else f"; {rec.workflow} has no "
                                                                                       f"such event")]
            return out
        for transition in candidates:
            item: dict[str, Any] = {"to": transition.target(rec.state), "label": transition.label}
            if transition.internal:  # stays in the state: not left, its timers stay
                item["internal"] = True
            if transition.system_only:  # never a person's event: not offered, explained as such
                item["permission"] = {"action": transition.permission or f"{rt.model.name}.{transition.event}",
                                      "allowed": False,
                                      "explain": system_only_explain(rt.model.name, transition, actor.id)}
                item["passed"] = False
                out["candidates"].append(item)
                continue
            passed = True
            try:
                decision = (self._check(actor, transition.permission, rt.model, rec, merged, transition, now)
                            if transition.permission else None)
                refused = (self._check_unguarded(actor, rt.model, rec, merged, transition)
                           if decision is None else None)
                # as a fire decides: the permission first; the guard (whose reasons name the stored values it read)
                # is evaluated and shown only to an actor the permission allows
                if transition.guard is not None and (decision is None or decision.allowed):
                    _passed, where = gate.guard_passes(transition.guard)
                    ok, parts = transition.guard.explain_for_person(where, now)
                    item["guard"] = {"condition": transition.guard.text, "passed": ok, "reasons": parts}
                    passed = ok
            except RegelwerkError:
                raise
            except BaseException as exc:  # a condition function or permission port raised: typed, as a fire does
                if not is_plugin_fault(exc):
                    raise
                raise PluginError(f"guard or permission of {rec.workflow}.{event}", exc, rec.id, event) from exc
            if decision is not None:
                item["permission"] = {"action": transition.permission, "allowed": bool(decision.allowed),
                                      "explain": _jsonable(decision.explain)}
                passed = passed and bool(decision.allowed)
            elif refused is not None:
                item["permission"] = {"action": transition.event, "allowed": False,
                                      "explain": _jsonable(refused.explain)}
                passed = False
            item["passed"] = passed
            out["candidates"].append(item)
            if passed and not out["allowed"]:
                out["allowed"], out["to"] = True, transition.target(rec.state)
                out["internal"] = transition.internal  # stays in the state: not left, its timers stay
        if not out["allowed"]:
            for item in out["candidates"]:
                if "guard" in item and not item["guard"]["passed"]:
                    out["reasons"].append(f"guard of {event} -> {item['to']} failed: "
                                          + "; ".join(item["guard"]["reasons"]))
                if "permission" in item and not item["permission"]["allowed"]:
                    why = item["permission"]["explain"]
                    out["reasons"].append(why["reason"] if isinstance(why, dict) and why.get("by") == "system-only"
                                          else f"{actor.id!r} lacks permission {item['permission']['action']!r}")
        return out

    def available_events(self, instance_id: str, actor: ActorLike) -> list[EventOption]:
        """Every event possible from the instance's state, whether ``actor`` may fire it now, and why not."""
        who = Actor.of(actor)
        now = self.clock()
        with self.store.read() as tx:
            rec, rt, merged = self._evaluate(tx, instance_id, who, None, now)
        options = []
        for event in rt.model.events:
            if rec.state not in rt.model.state_ids or not rt.machine.candidates(rec.state, event):
                continue
            if all(t.system_only for t in rt.machine.candidates(rec.state, event)):
                continue  # the system's own event (a timer's): never offered to a person
            result = self._explain(rec, rt, merged, event, who, {}, now)
            candidates = rt.machine.candidates(rec.state, event)
            # internal: the transition that would fire stays in the state (when none may, whether all of them do)
            chosen = [c for c in result["candidates"] if c["passed"]][:1] or result["candidates"]
            internal = bool(chosen) and all(c.get("internal", False) for c in chosen)
            options.append(EventOption(event, candidates[0].label, bool(result["allowed"]), result["to"],
                                       tuple(result["reasons"]), internal))
        return options

    def _fire_incident(self, exc: PluginError, instance_id: str, event: str, actor: Actor,
                       data: Mapping[str, Any] | None, now: datetime,
                       also: Callable[[StoreTx], object] | None = None) -> None:
        """A fire whose action raised was rolled back; record the incident in its own unit of work."""
        from regelwerk.workflows.incidents import incident_data, record_incident

        exc.instance_id, exc.event = instance_id, event
        # the state it failed in (a retry after the instance moved on is refused): as the fire saw it, else (a
        # failure that does not say) as the rollback left it
        state = exc.state
        if state is None:
            try:
                with self.store.read() as tx:
                    current = tx.get(instance_id)
            except RegelwerkError:
                current = None
            state = current.state if current is not None else None
        record_incident(self.store, exc, now, actor.id, incident_data(data, state), also=also)


def _jsonable(value: Any) -> Any:
    """Best-effort JSON-able copy of a permission explanation."""
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value
