"""The embedding API: ``Engine`` runs workflow instances from a compiled bundle against a store.

::

    from regelwerk.runtime import Engine

    with Engine("definitions/standard", store="sqlite:///regelwerk.sqlite", permissions="declaration") as engine:
        anna = {"id": "anna", "roles": ["medewerker"]}
        inst = engine.start("declaration", {"employee": "anna", "amount": 20}, actor=anna)
        engine.fire(inst.id, "submit", actor=anna)

Deny by default: without ``permissions=`` every permission-guarded start and event is refused; the
policy decides on the stored instance (see docs/permissions.md, "The runtime: deny by default").

Every instance is pinned to the content hash of the definition it started under; the engine keeps
each definition version's compiled form in the store (``rw_definitions``), so a changed file does not
move running instances. ``migrate_plan``/``migrate_apply`` move them explicitly (audited).
The engine is safe to share between threads; several processes may share one PostgreSQL database.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from regelwerk.actors import SYSTEM, Actor
from regelwerk.compiler import CompiledBundle
from regelwerk.errors import (
    ConflictError,
    InvalidData,
    PermissionDenied,
    RegelwerkError,
    TransitionNotAllowed,
    UnknownInstance,
    UsageError,
)
from regelwerk.permissions.policies import NoPolicy
from regelwerk.registry import Registry
from regelwerk.store.base import Store, StoreTx
from regelwerk.store.records import AuditEntry, DefinitionRecord, HistoryEntry, InstanceRecord, TimerRecord
from regelwerk.workflows.actions import ActionContext
from regelwerk.workflows.machine import WorkflowMachine
from regelwerk.workflows.model import ActionRef, Transition, Workflow, workflow_from_dict, workflow_to_dict
from regelwerk.workflows.ports import PermissionPort

__all__ = ["Engine", "EventOption", "MigrationItem", "TimerOutcome"]

START_EVENT = "$start"
MIGRATE_EVENT = "$migrate"
ActorLike = Actor | str | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class EventOption:
    """An event possible from the instance's state: whether this actor may fire it now, and why not."""

    event: str
    label: str
    allowed: bool
    to: str | None
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {"event": self.event, "label": self.label, "allowed": self.allowed, "to": self.to,
                "reasons": list(self.reasons)}


@dataclass(frozen=True, slots=True)
class TimerOutcome:
    """What happened to one due timer."""

    timer_id: int
    instance_id: str
    event: str
    status: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class MigrationItem:
    """One instance on an older definition version: where it would go, and what stops it."""

    instance_id: str
    workflow: str
    from_version: str
    to_version: str
    state: str
    target_state: str
    problems: tuple[str, ...] = ()
    applied: bool = False

    @property
    def action(self) -> str:
        """``keep`` (same state), ``map`` (mapped state) or ``blocked``."""
        if self.problems:
            return "blocked"
        return "keep" if self.state == self.target_state else "map"

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {"instance": self.instance_id, "workflow": self.workflow, "from_version": self.from_version,
                "to_version": self.to_version, "state": self.state, "target_state": self.target_state,
                "action": self.action, "problems": list(self.problems), "applied": self.applied}


class _Runtime:
    """One definition version: the compiled model, its shared machine and its data validator."""

    __slots__ = ("machine", "model", "validator", "version")

    def __init__(self, model: Workflow, version: str) -> None:
        self.model = model
        self.version = version
        self.machine = WorkflowMachine(model, version)
        self.validator: Any = None
        if model.data_schema is not None:
            from jsonschema import Draft202012Validator

            self.validator = Draft202012Validator(model.data_schema)

    def check_data(self, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise InvalidData("instance data must be a JSON object", "")
        if self.validator is None:
            return
        errors = sorted(self.validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            items = [{"pointer": "".join(f"/{p}" for p in e.absolute_path), "message": e.message[:200]}
                     for e in errors]
            raise InvalidData(f"data does not fit {self.model.name}: {items[0]['message']}", items[0]["pointer"],
                              items)


class _Gate:
    """Guard and permission of one fire; remembers the winner and the refusals."""

    __slots__ = (
        "_data",
        "_scope",
        "actor",
        "check_permission",
        "chosen",
        "engine",
        "event",
        "explain",
        "input",
        "now",
        "rec",
        "refused",
        "rt",
    )

    def __init__(self, engine: Engine, rt: _Runtime, rec: InstanceRecord, event: str, actor: Actor,
                 data: Mapping[str, Any], input_data: Mapping[str, Any], now: datetime, check_permission: bool) -> None:
        self.engine = engine
        self.rt = rt
        self.rec = rec
        self.event = event
        self.actor = actor
        self.input = input_data
        self.now = now
        self.check_permission = check_permission
        self.chosen: Transition | None = None
        self.explain: dict[str, Any] = {}
        self.refused: list[tuple[Transition, str, Any]] = []
        self._scope: dict[str, Any] | None = None
        self._data = data

    @property
    def scope(self) -> dict[str, Any]:
        if self._scope is None:
            rec = self.rec
            self._scope = {"data": self._data, "input": self.input, "actor": self.actor.to_dict(),
                           "event": self.event, "instance": {"id": rec.id, "workflow": rec.workflow,
                                                             "state": rec.state, "version": rec.version}}
        return self._scope

    def admit(self, transition: Transition) -> bool:
        guard = transition.guard
        if guard is not None and not guard(self.scope, self.now):
            self.refused.append((transition, "guard", None))
            return False
        decision_explain: Any = None
        if transition.permission:
            if self.check_permission:
                decision = self.engine._check(self.actor, transition.permission, self.rt.model, self.rec,
                                              self._data, transition, self.now)
                if not decision.allowed:
                    self.refused.append((transition, "permission", decision.explain))
                    return False
                decision_explain = decision.explain
            else:
                decision_explain = "skipped: fired by the system (timer)"
        self.chosen = transition
        self.explain = {
            "guard": guard.text if guard is not None else None,
            "permission": ({"action": transition.permission, "allowed": True, "explain": decision_explain}
                           if transition.permission else None),
        }
        return True

    def refusal(self) -> RegelwerkError:
        denied = [(t, why) for t, kind, why in self.refused if kind == "permission"]
        if denied:
            transition, why = denied[0]
            return PermissionDenied(self.actor.id, transition.permission,
                                    f"{self.rt.model.resource_type}:{self.rec.id}", why)
        reasons = []
        for transition, _kind, _why in self.refused:
            assert transition.guard is not None
            _ok, parts = transition.guard.explain(self.scope, self.now)
            reasons.append(f"guard of {transition.event} -> {transition.dest} failed: " + "; ".join(parts))
        return TransitionNotAllowed(self.rec.id, self.rec.state, self.event, reasons or ["no transition passed"])


class Engine:
    """Runs workflow instances of a bundle against a store (see the module docstring)."""

    def __init__(self, bundle: CompiledBundle | str | os.PathLike[str], store: Store | str = "sqlite:///regelwerk.sqlite",
                 registry: Registry | None = None, clock: Callable[[], datetime] | None = None,
                 permissions: PermissionPort | str | None = None, id_factory: Callable[[], str] | None = None,
                 cache_size: int = 10_000) -> None:
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
        # No policy, no access: without one every permission-guarded start and event is refused.
        self.permissions: PermissionPort = permissions if permissions is not None else NoPolicy()
        self.id_factory: Callable[[], str] = id_factory or (lambda: uuid.uuid4().hex)
        self._lock = threading.Lock()
        self._runtimes: dict[tuple[str, str], _Runtime] = {}
        self._stored_versions: set[tuple[str, str]] = set()
        # A bounded cache of the records this engine last committed: a fire can skip the SELECT and
        # go straight to the version-checked UPDATE. A stale entry (another process changed the row)
        # fails that check and the fire is redone once on a fresh read in the same transaction.
        self._cache: dict[str, InstanceRecord] = {}
        self._cache_size = cache_size

    def _matrix_permissions(self, matrix: str) -> PermissionPort:
        """The bundle's ``PermissionMatrix`` named ``matrix`` over the store's relationship facts.

        The engine audits every refused start and fire itself (once), so the port gets no audit sink of
        its own. With a SQL store the facts are read from its ``rw_relations`` table (fed by the host);
        with the memory store they live in memory.
        """
        from regelwerk.permissions.adapter import MatrixPermissions
        from regelwerk.permissions.relations import MemoryRelationships, Relationships
        from regelwerk.permissions.sql import SqlRelationships

        sa_engine = getattr(self.store, "engine", None)
        relations: Relationships = SqlRelationships(sa_engine) if sa_engine is not None else MemoryRelationships()
        port: PermissionPort = MatrixPermissions(self.bundle, relations, matrix, clock=self.clock)
        return port

    def tick(self, now: datetime | None = None, **options: Any) -> Any:
        """Everything that is due at ``now``: scheduled items, workflow timers and tick tasks (retention...).

        See :func:`regelwerk.scheduling.tick.tick` for the options (``progress``, ``batch_size``...); returns
        its ``TickSummary``. Idempotent and safe in several processes on one PostgreSQL.
        """
        from regelwerk.scheduling.tick import tick

        return tick(self, self.bundle, now or self.clock(), **options)

    # --- life cycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the store if the engine opened it."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- definitions --------------------------------------------------------------------------

    def workflows(self) -> dict[str, Workflow]:
        """The bundle's workflows by name."""
        return dict(self.bundle.of_kind("Workflow"))

    def current_version(self, workflow: str) -> str:
        """The content hash of the bundle's definition of ``workflow``."""
        self.bundle.get("Workflow", workflow)
        return self.bundle.versions[("Workflow", workflow)]

    def _current(self, workflow: str) -> _Runtime:
        model: Workflow = self.bundle.get("Workflow", workflow)
        version = self.bundle.versions[("Workflow", workflow)]
        key = (workflow, version)
        rt = self._runtimes.get(key)
        if rt is None:
            with self._lock:
                rt = self._runtimes.get(key)
                if rt is None:
                    rt = _Runtime(model, version)
                    self._runtimes[key] = rt
        return rt

    def _runtime(self, tx: StoreTx, workflow: str, version: str) -> _Runtime:
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
            rt = self._runtimes.setdefault((workflow, version), _Runtime(model, version))
        return rt

    def _remember_definition(self, tx: StoreTx, rt: _Runtime, now: datetime) -> None:
        key = (rt.model.name, rt.version)
        if key in self._stored_versions:
            return
        tx.put_definition(DefinitionRecord("Workflow", rt.model.name, rt.version, workflow_to_dict(rt.model), now))

    # --- permission ---------------------------------------------------------------------------

    def _check(self, actor: Actor, action: str, model: Workflow, rec: InstanceRecord, data: Mapping[str, Any],
               transition: Transition, now: datetime) -> Any:
        """Decide ``action`` against the STORED instance; event data that changes fields is decided too.

        Facts come from the store, not the caller: the scopes and conditions read ``rec.data``. When
        ``data`` (the instance as the event would leave it) changes fields, the same action is decided
        again on the changed resource and both must allow, so a payload can never move a resource into
        or out of a scope (e.g. ``{"subject": "nobody"}`` on a self-approval).
        """
        context = {"event": transition.event, "from": rec.state, "to": transition.dest, "now": now}
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

    def _ask(self, actor: Actor, action: str, model: Workflow, rec: InstanceRecord, data: Mapping[str, Any],
             context: Mapping[str, Any]) -> Any:
        # The instance's data fields are the resource's fields (subject, author, department...), so a
        # permission matrix's scopes and conditions read them directly; the engine's own keys win.
        resource = {**data, "id": rec.id, "workflow": rec.workflow, "state": rec.state, "data": data,
                    "created_by": rec.created_by}
        return self.permissions.check(actor, action, model.resource_type, resource, context)

    def _check_start(self, actor: Actor, rt: _Runtime, data: Mapping[str, Any], instance_id: str | None,
                     now: datetime) -> None:
        """Starting is an action like any other: refused (typed, audited) unless the policy allows it."""
        model = rt.model
        action = model.start_action
        resource = {**data, "id": instance_id, "workflow": model.name, "state": model.initial, "data": data,
                    "created_by": actor.id}
        context = {"event": START_EVENT, "from": "", "to": model.initial, "now": now}
        decision = self.permissions.check(actor, action, model.resource_type, resource, context)
        if not decision.allowed:
            exc = PermissionDenied(actor.id, action, f"{model.resource_type}:{instance_id or '(new)'}",
                                   _jsonable(decision.explain))
            self._audit_denial(exc, instance_id or "", START_EVENT, now)
            raise exc

    def _audit_denial(self, exc: PermissionDenied, instance_id: str, event: str, now: datetime) -> None:
        with self.store.transaction() as tx:
            tx.add_audit(AuditEntry(now, exc.actor, "workflow.permission_denied", instance_id,
                                    {"event": event, "action": exc.action, "explain": _jsonable(exc.explanation)}))

    # --- actions ------------------------------------------------------------------------------

    def _run_actions(self, calls: Iterable[tuple[str, ActionRef]], tx: StoreTx, rec: InstanceRecord, event: str,
                     actor: Actor, now: datetime, source: str, data: dict[str, Any], timers: list[TimerRecord],
                     post: list[Callable[[], None]]) -> None:
        for phase, call in calls:
            spec = self.registry.actions.get(call.name)
            if spec is None:
                raise UsageError(f"action {call.name!r} is not registered (is its plugin installed?)")
            ctx = ActionContext(self, rec, event, actor, now, call.params, tx, source, rec.state, phase, data,
                                timers, post)
            spec.run(ctx)

    @staticmethod
    def _run_post(post: list[Callable[[], None]]) -> None:
        for callback in post:
            callback()

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

    def _forget(self, instance_ids: Iterable[str]) -> None:
        with self._lock:
            for instance_id in instance_ids:
                self._cache.pop(instance_id, None)

    # --- start --------------------------------------------------------------------------------

    def start(self, workflow: str, data: Mapping[str, Any] | None = None, actor: ActorLike = SYSTEM,
              instance_id: str | None = None) -> InstanceRecord:
        """Create an instance in the workflow's initial state (on_enter actions and timers included).

        Starting needs the workflow's start permission (``start_permission``, else ``<workflow>.start``):
        refused with ``PermissionDenied`` (audited) unless the policy allows it. Scheduled starts (the
        engine's own, like timers) do not pass here.
        """
        who = Actor.of(actor)
        now = self.clock()
        post: list[Callable[[], None]] = []
        rt = self._current(workflow)
        self._check_start(who, rt, dict(data or {}), instance_id, now)
        with self.store.transaction() as tx:
            record = self._start_tx(tx, rt, dict(data or {}), who, instance_id, now, post)
        self._stored_versions.add((rt.model.name, rt.version))
        self._remember((record,))
        self._run_post(post)
        return record

    def _start_tx(self, tx: StoreTx, rt: _Runtime, data: dict[str, Any], actor: Actor, instance_id: str | None,
                  now: datetime, post: list[Callable[[], None]]) -> InstanceRecord:
        rt.check_data(data)
        self._remember_definition(tx, rt, now)
        model = rt.model
        initial = rt.machine.state(model.initial)
        record = InstanceRecord(instance_id or self.id_factory(), model.name, rt.version, model.initial, data, 1,
                                now, now, actor.id, bool(initial.after))
        tx.insert(record)
        timers: list[TimerRecord] = []
        if initial.on_enter:
            work = dict(data)
            self._run_actions((("enter", a) for a in initial.on_enter), tx, record, START_EVENT, actor, now, "",
                              work, timers, post)
            record = self._save_after_actions(tx, rt, record, work, timers)
        self._schedule(tx, record, initial.after, now)
        tx.add_history(HistoryEntry(record.id, START_EVENT, "", model.initial, actor.id, now, rt.version, 1,
                                    {"actor": actor.to_dict()}))
        return record

    def _save_after_actions(self, tx: StoreTx, rt: _Runtime, record: InstanceRecord, work: dict[str, Any],
                            timers: list[TimerRecord]) -> InstanceRecord:
        changed = work != record.data
        if changed:
            rt.check_data(work)
        for timer in timers:
            tx.add_timer(timer)
        if changed or (timers and not record.timers_pending):
            updated = replace(record, data=work, timers_pending=record.timers_pending or bool(timers))
            tx.update(updated, record.version)
            return updated
        return record

    @staticmethod
    def _schedule(tx: StoreTx, record: InstanceRecord, timers: Sequence[Any], now: datetime) -> None:
        for spec in timers:
            tx.add_timer(TimerRecord(record.id, record.state, spec.event, now + spec.duration.delta(),
                                     dict(spec.data)))

    # --- fire ---------------------------------------------------------------------------------

    def fire(self, instance_id: str, event: str, actor: ActorLike, data: Mapping[str, Any] | None = None,
             expected_version: int | None = None) -> InstanceRecord:
        """Fire ``event`` on an instance as ``actor``; the updated instance.

        ``data`` is merged (shallowly) into the instance data and validated. With ``expected_version`` the
        fire only happens if nobody changed the instance since the caller read it (else ``ConflictError``).
        Refusals: ``UnknownInstance``, ``TransitionNotAllowed``, ``PermissionDenied`` (audited),
        ``InvalidData``, ``ConflictError``.
        """
        who = Actor.of(actor)
        now = self.clock()
        post: list[Callable[[], None]] = []
        try:
            with self.store.transaction() as tx:
                record = self._fire_tx(tx, instance_id, event, who, data, now, expected_version, post, True)
        except PermissionDenied as exc:
            self._forget((instance_id,))
            self._audit_denial(exc, instance_id, event, now)
            raise
        except BaseException:
            self._forget((instance_id,))
            raise
        self._remember((record,))
        self._run_post(post)
        return record

    def fire_batch(self, items: Iterable[Mapping[str, Any] | Sequence[Any]]) -> list[InstanceRecord]:
        """Fire many events in ONE unit of work: all commit, or none (the first refusal is raised).

        Each item is ``{"instance": id, "event": e, "actor": a, "data": {...}, "expected_version": n}`` or a
        tuple ``(instance_id, event, actor[, data])``. The raised error has ``batch_index`` set.
        """
        now = self.clock()
        post: list[Callable[[], None]] = []
        results: list[InstanceRecord] = []
        touched: list[str] = []
        index = -1
        try:
            with self.store.transaction() as tx:
                for position, item in enumerate(items):
                    index = position
                    if isinstance(item, Mapping):
                        iid, ev, who = item["instance"], item["event"], item.get("actor", SYSTEM)
                        payload, expected = item.get("data"), item.get("expected_version")
                    else:
                        iid, ev, who = item[0], item[1], item[2]
                        payload, expected = (item[3] if len(item) > 3 else None), None
                    touched.append(str(iid))
                    results.append(self._fire_tx(tx, str(iid), str(ev), Actor.of(who), payload, now, expected,
                                                 post, True))
        except BaseException as exc:
            self._forget(touched)
            if not isinstance(exc, RegelwerkError):
                raise
            exc.batch_index = index  # type: ignore[attr-defined]
            if isinstance(exc, PermissionDenied):
                self._audit_denial(exc, str(exc.resource).split(":", 1)[-1], "", now)
            raise
        self._remember(results)
        self._run_post(post)
        return results

    def _fire_tx(self, tx: StoreTx, instance_id: str, event: str, actor: Actor, data: Mapping[str, Any] | None,
                 now: datetime, expected_version: int | None, post: list[Callable[[], None]],
                 check_permission: bool) -> InstanceRecord:
        rec = self._cache.get(instance_id) if check_permission else None
        if rec is not None and expected_version is not None and rec.version != expected_version:
            rec = None
        if rec is not None:
            try:
                decided = self._decide(tx, rec, event, actor, data, now, check_permission)
            except (TransitionNotAllowed, PermissionDenied, InvalidData):
                fresh = tx.get(instance_id)
                if fresh is not None and fresh.version == rec.version:
                    raise  # the cached record was current: the refusal stands
                decided = None
            if decided is not None:
                try:
                    return self._apply(tx, rec, decided, event, actor, data, now, post)
                except ConflictError:
                    if expected_version is not None:
                        raise
            # the cached record was stale (another process changed the row): decide again on a fresh read
        fresh = tx.get(instance_id)
        if fresh is None:
            raise UnknownInstance(instance_id)
        if expected_version is not None and fresh.version != expected_version:
            raise ConflictError(instance_id, expected_version, fresh.version, fresh.state)
        decided = self._decide(tx, fresh, event, actor, data, now, check_permission)
        return self._apply(tx, fresh, decided, event, actor, data, now, post)

    def _decide(self, tx: StoreTx, rec: InstanceRecord, event: str, actor: Actor, data: Mapping[str, Any] | None,
                now: datetime, check_permission: bool) -> tuple[_Runtime, _Gate, str, Mapping[str, Any]]:
        """Guards, permission and target state; writes nothing."""
        rt = self._runtime(tx, rec.workflow, rec.definition_version)
        new_data: Mapping[str, Any] = rec.data
        if data:
            merged = {**rec.data, **data}
            rt.check_data(merged)
            new_data = merged
        gate = _Gate(self, rt, rec, event, actor, new_data, data or {}, now, check_permission)
        dest = rt.machine.step(rec.id, rec.state, event, gate)
        if dest is None or gate.chosen is None:
            raise gate.refusal()
        return rt, gate, dest, new_data

    def _apply(self, tx: StoreTx, rec: InstanceRecord, decided: tuple[_Runtime, _Gate, str, Mapping[str, Any]],
               event: str, actor: Actor, data: Mapping[str, Any] | None, now: datetime,
               post: list[Callable[[], None]]) -> InstanceRecord:
        """Claim (version-checked update), cancel and schedule timers, run actions, write history."""
        rt, gate, dest, new_data = decided
        transition = gate.chosen
        assert transition is not None
        instance_id = rec.id
        leaving = rt.machine.state(rec.state)
        entering = rt.machine.state(dest)
        record = InstanceRecord(rec.id, rec.workflow, rec.definition_version, dest, new_data, rec.version + 1,
                                rec.created_at, now, rec.created_by, bool(entering.after))
        # the version check: claim the change before any side effect
        tx.update(record, rec.version, new_data is not rec.data)
        if rec.timers_pending:
            tx.cancel_timers(instance_id, now)
        if leaving.on_exit or entering.on_enter or transition.actions:
            work = dict(new_data)
            timers: list[TimerRecord] = []
            calls = [*(("exit", a) for a in leaving.on_exit), *(("enter", a) for a in entering.on_enter),
                     *(("after", a) for a in transition.actions)]
            self._run_actions(calls, tx, record, event, actor, now, rec.state, work, timers, post)
            record = self._save_after_actions(tx, rt, record, work, timers)
        if entering.after:
            self._schedule(tx, record, entering.after, now)
        explain = gate.explain
        explain["actor"] = {"id": actor.id, "roles": list(actor.roles)}
        if data:
            explain["input"] = dict(data)
        tx.add_history(HistoryEntry(instance_id, event, rec.state, dest, actor.id, now, rec.definition_version,
                                    record.version, explain))
        return record

    # --- reading ------------------------------------------------------------------------------

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
                  now: datetime) -> tuple[InstanceRecord, _Runtime, Mapping[str, Any]]:
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
        return self._explain(rec, rt, merged, event, who, data or {}, now)

    def _explain(self, rec: InstanceRecord, rt: _Runtime, merged: Mapping[str, Any], event: str, actor: Actor,
                 input_data: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        candidates = rt.machine.candidates(rec.state, event) if rec.state in rt.model.state_ids else ()
        gate = _Gate(self, rt, rec, event, actor, merged, input_data, now, True)
        out: dict[str, Any] = {"instance": rec.id, "state": rec.state, "event": event, "allowed": False,
                               "to": None, "candidates": [], "reasons": []}
        if not candidates:
            froms = sorted({s for t in rt.model.transitions if t.event == event for s in t.sources})
            out["reasons"] = [f"{event!r} cannot fire from state {rec.state!r}"
                              + (f"; it fires from: {', '.join(froms)}" if froms else f"; {rec.workflow} has no "
                                                                                       f"such event")]
            return out
        for transition in candidates:
            item: dict[str, Any] = {"to": transition.dest, "label": transition.label}
            passed = True
            if transition.guard is not None:
                ok, parts = transition.guard.explain(gate.scope, now)
                item["guard"] = {"condition": transition.guard.text, "passed": ok, "reasons": parts}
                passed = ok
            if transition.permission:
                decision = self._check(actor, transition.permission, rt.model, rec, merged, transition, now)
                item["permission"] = {"action": transition.permission, "allowed": bool(decision.allowed),
                                      "explain": _jsonable(decision.explain)}
                passed = passed and bool(decision.allowed)
            item["passed"] = passed
            out["candidates"].append(item)
            if passed and not out["allowed"]:
                out["allowed"], out["to"] = True, transition.dest
        if not out["allowed"]:
            for item in out["candidates"]:
                if "guard" in item and not item["guard"]["passed"]:
                    out["reasons"].append(f"guard of {event} -> {item['to']} failed: "
                                          + "; ".join(item["guard"]["reasons"]))
                if "permission" in item and not item["permission"]["allowed"]:
                    out["reasons"].append(f"{actor.id!r} lacks permission {item['permission']['action']!r}")
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
            result = self._explain(rec, rt, merged, event, who, {}, now)
            label = rt.machine.candidates(rec.state, event)[0].label
            options.append(EventOption(event, label, bool(result["allowed"]), result["to"],
                                       tuple(result["reasons"])))
        return options

    # --- timers -------------------------------------------------------------------------------

    def fire_due_timers(self, now: datetime | None = None, limit: int | None = None) -> list[TimerOutcome]:
        """Fire every pending timer due at ``now`` (idempotent: each timer fires once; safe to run in parallel).

        Timers fire as the system actor; guards apply, permission checks are skipped (recorded as such).
        A refused timer is marked ``failed`` with the reason (and audited); the others go on.
        """
        moment = now or self.clock()
        outcomes: list[TimerOutcome] = []
        while limit is None or len(outcomes) < limit:
            post: list[Callable[[], None]] = []
            claimed: TimerRecord | None = None
            try:
                with self.store.transaction() as tx:
                    claimed = tx.claim_due_timer(moment)
                    if claimed is None:
                        break
                    assert claimed.id is not None
                    tx.finish_timer(claimed.id, "fired", moment)
                    self._fire_tx(tx, claimed.instance_id, claimed.event, SYSTEM, claimed.data or None,
                                  claimed.due_at, None, post, False)
            except RegelwerkError as exc:
                if claimed is None or claimed.id is None:
                    raise
                with self.store.transaction() as tx:
                    tx.finish_timer(claimed.id, "failed", moment, str(exc)[:500])
                    tx.add_audit(AuditEntry(moment, SYSTEM.id, "workflow.timer_failed", claimed.instance_id,
                                            {"timer": claimed.id, "event": claimed.event, "error": exc.to_dict()}))
                outcomes.append(TimerOutcome(claimed.id, claimed.instance_id, claimed.event, "failed", str(exc)))
                continue
            self._forget((claimed.instance_id,))
            self._run_post(post)
            outcomes.append(TimerOutcome(claimed.id or 0, claimed.instance_id, claimed.event, "fired"))
        return outcomes

    # --- migration ----------------------------------------------------------------------------

    def migrate_plan(self, workflow: str | None = None,
                     mapping: Mapping[str, str] | None = None) -> list[MigrationItem]:
        """Instances on an older version of ``workflow`` (or of every workflow) and what ``migrate_apply`` would do."""
        names = [workflow] if workflow else sorted(self.workflows())
        items: list[MigrationItem] = []
        with self.store.read() as tx:
            for name in names:
                rt = self._current(name)
                for rec in tx.instances(workflow=name):
                    if rec.definition_version != rt.version:
                        items.append(self._plan_item(rec, rt, mapping or {}))
        return items

    @staticmethod
    def _plan_item(rec: InstanceRecord, rt: _Runtime, mapping: Mapping[str, str]) -> MigrationItem:
        target = mapping.get(rec.state, rec.state)
        problems = []
        if target not in rt.model.state_ids:
            problems.append(f"state {target!r} does not exist in the new version; map it "
                            f"(e.g. --map {rec.state}=<state>); states: {', '.join(rt.model.state_ids)}")
        try:
            rt.check_data(rec.data)
        except InvalidData as exc:
            problems.append(f"data: {exc}")
        return MigrationItem(rec.id, rec.workflow, rec.definition_version, rt.version, rec.state, target,
                             tuple(problems))

    def migrate_apply(self, workflow: str | None = None, mapping: Mapping[str, str] | None = None,
                      actor: ActorLike = SYSTEM, instance_ids: Iterable[str] | None = None) -> list[MigrationItem]:
        """Move instances to the current version (blocked ones stay); each move is audited and in the history."""
        who = Actor.of(actor)
        wanted = set(instance_ids) if instance_ids is not None else None
        done: list[MigrationItem] = []
        for item in self.migrate_plan(workflow, mapping):
            if (wanted is not None and item.instance_id not in wanted) or item.problems:
                done.append(item)
                continue
            now = self.clock()
            rt = self._current(item.workflow)
            with self.store.transaction() as tx:
                rec = tx.get(item.instance_id)
                if rec is None or rec.definition_version != item.from_version or rec.state != item.state:
                    done.append(replace(item, problems=("changed while planning; plan again",)))
                    continue
                self._remember_definition(tx, rt, now)
                state = rt.machine.state(item.target_state)
                if rec.timers_pending:
                    tx.cancel_timers(rec.id, now)
                record = replace(rec, definition_version=rt.version, state=item.target_state,
                                 version=rec.version + 1, updated_at=now, timers_pending=bool(state.after))
                tx.update(record, rec.version)
                self._schedule(tx, record, state.after, now)
                detail = {"from_version": item.from_version, "to_version": rt.version, "from": rec.state,
                          "to": item.target_state, "mapping": dict(mapping or {})}
                tx.add_history(HistoryEntry(rec.id, MIGRATE_EVENT, rec.state, item.target_state, who.id, now,
                                            rt.version, record.version, detail))
                tx.add_audit(AuditEntry(now, who.id, "workflow.migrate", rec.id, detail))
            self._stored_versions.add((rt.model.name, rt.version))
            self._forget((item.instance_id,))
            done.append(replace(item, applied=True))
        return done


def _jsonable(value: Any) -> Any:
    """Best-effort JSON-able copy of a permission explanation."""
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value

