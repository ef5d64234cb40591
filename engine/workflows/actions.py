"""Workflow actions: the context they receive, and the generic core actions.

An action is registered as ``ActionSpec(name, plugin, run)`` and called as ``run(ctx)`` with an
:class:`ActionContext`, INSIDE the transition's unit of work: whatever it writes through ``ctx.tx``
(the store port: ``ctx.tx.rows(table)`` for the pack's own rows, ``ctx.tx.add_outbox`` for mail)
commits together with the state change or not at all. Raising any exception rolls the whole
transition back; an exception that is not a ``RegelwerkError`` is wrapped in ``ActionFailed`` (the
original chained) and recorded as an incident.

Core actions:

- ``workflow.set``: ``{field: a.b, value: X}``, ``{field: a.b, now: true}`` or ``{field: a.b, from: actor.id}``
  sets a field of the instance data (validated with the rest of the data before commit). ``from`` reads a dotted
  path of the action's scope (``data.*``, ``actor.*``, ``instance.*``, ``event``), or builds an object from a
  mapping of names to such paths (``from: {by: actor.id, score: data.score}``): who approved, who scored.
- ``workflow.add``: ``{field: a.b, value: X}`` or ``{field: a.b, from: PATH}`` adds the value to the list at the
  field (created when missing) unless the list holds it already: the committee members who scored.
- ``workflow.log``: ``{message: text}`` writes a log line (logger ``regelwerk.workflow``).
- ``workflow.audit``: ``{action: name, detail: {...}}`` writes an audit row in the same transaction.
- ``workflow.fire``: ``{event: e, instance: id}`` or ``{event: e, instance_field: data.parent}`` fires an
  event on another instance after this transaction committed, as the same actor and decided by the policy
  for that actor; inside a transition a timer fired, as the system (no person to decide for; guards apply).
- ``workflow.schedule``: ``{event: e, schedule: {anchor: data.expires_on, minus: P90D, at: "08:00"}}`` (or the
  name of a ``Schedule`` document) plans ``event`` at the schedule's moment, read from the instance data; like a
  state's ``after`` timer it is cancelled when the state is left. A one-off anchor moment already passed fires
  at the next tick (``catch_up: skip``: not at all); cron, dates and ``repeat`` plan their next occurrence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from regelwerk.actors import Actor
from regelwerk.conditions import parse_duration, resolve_path
from regelwerk.errors import PluginError, RegelwerkError, UsageError
from regelwerk.limits import critical, is_critical, limited
from regelwerk.registry import ActionSpec, Registry

if TYPE_CHECKING:
    import logging

    from regelwerk.runtime import Engine
    from regelwerk.store.base import StoreTx
    from regelwerk.store.records import InstanceRecord, TimerRecord

__all__ = ["ActionContext", "register", "set_path"]



def _logger() -> logging.Logger:
    """The workflow logger (logging is imported when an action first logs: not by loading the registry)."""
    import logging

    return logging.getLogger("regelwerk.workflow")


@dataclass
class ActionContext:
    """What an action gets: the engine, the instance, the event, who, when, its params, and the transaction."""

    engine: Engine
    instance: InstanceRecord
    event: str
    actor: Actor
    now: datetime
    params: Mapping[str, Any]
    tx: StoreTx
    source: str
    dest: str
    phase: str
    data: dict[str, Any]
    timers: list[TimerRecord] = field(default_factory=list)
    post_commit: list[Callable[[], None]] = field(default_factory=list)
    #: True when the system fired this transition (a timer): no person's permission was decided
    system: bool = False

    def schedule_timer(self, event: str, at: datetime | None = None, after: str | None = None,
                       data: Mapping[str, Any] | None = None) -> None:
        """Fire ``event`` at ``at`` (or ``after`` an ISO duration); cancelled when the state is left."""
        if at is None:
            duration = parse_duration(after or "")
            if duration is None:
                raise UsageError(f"schedule_timer needs at= or after= (an ISO-8601 duration), got {after!r}")
            at = self.now + duration.delta()
        from regelwerk.store.records import TimerRecord

        self.timers.append(TimerRecord(self.instance.id, self.dest, event, at, dict(data or {})))

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the transaction committed (never if it rolled back). When it raises, its incident
        names this instance and ``after-commit:<event>`` (a failure that names its own instance, a chained fire's
        on its target, keeps that)."""
        instance_id, event = self.instance.id, self.event
        # plugin code like the action that left it: under the engine's limit (an outer one, a tick task's, governs).
        # The engine's own (the fire ``workflow.fire`` chains, marked critical) is bookkeeping: called as it is, so no
        # limit strikes between the commit and its start (it would be lost); its own actions are limited as any
        limit = None if is_critical(callback) else getattr(self.engine, "plugin_time_limit", None)

        def named() -> None:
            from regelwerk.errors import is_plugin_fault

            try:
                if limit:
                    limited(limit, f"after-commit work of {event!r}", callback)
                else:
                    callback()
            except BaseException as exc:
                if not is_plugin_fault(exc) or (isinstance(exc, RegelwerkError) and exc.stops_work):
                    raise
                if isinstance(exc, PluginError) and (exc.incident_id is not None or exc.instance_id):
                    raise  # recorded already, or names its own instance
                if isinstance(exc, PluginError):
                    exc.instance_id, exc.event = instance_id, f"after-commit:{event}"
                    raise
                if getattr(exc, "instance_id", None):  # a refusal about another instance: its own
                    raise
                raise PluginError.wrap(f"after-commit work of {event!r}", exc, instance_id,
                                       f"after-commit:{event}") from exc

        self.post_commit.append(named)

    def audit(self, action: str, detail: Mapping[str, Any] | None = None) -> None:
        """Write an audit row in this transaction."""
        from regelwerk.store.records import AuditEntry

        self.tx.add_audit(AuditEntry(self.now, self.actor.id, action, self.instance.id, dict(detail or {})))

    def scope(self) -> dict[str, Any]:
        """The data an action may read by dotted path: data, actor, instance, event."""
        return {"data": self.data, "actor": self.actor.to_dict(), "event": self.event,
                "instance": {"id": self.instance.id, "workflow": self.instance.workflow, "state": self.dest}}


def set_path(data: dict[str, Any], path: str, value: Any) -> bool:
    """Set ``value`` at a dotted path in instance data (``data.`` prefix optional), creating mappings on the
    way; False when the path is empty."""
    parts = [p for p in path.removeprefix("data.").split(".") if p]
    if not parts:
        return False
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value
    return True


def _value(ctx: ActionContext) -> Any:
    """The value ``workflow.set``/``workflow.add`` write: ``now``, ``from`` (read from the action's scope) or
    ``value`` (a literal)."""
    if ctx.params.get("now"):
        return ctx.now.isoformat()
    source = ctx.params.get("from")
    if source is None:
        return ctx.params.get("value")
    scope = ctx.scope()
    if isinstance(source, Mapping):
        return {str(name): resolve_path(scope, str(path).split(".")) for name, path in source.items()}
    return resolve_path(scope, str(source).split("."))


def _set(ctx: ActionContext) -> None:
    path = str(ctx.params.get("field", ""))
    if "increment" in ctx.params:  # a counter: attempts, reminders sent; a missing (or null) field counts from 0
        current = resolve_path(ctx.data, [p for p in path.removeprefix("data.").split(".") if p])
        current = 0 if current is None else current
        step = ctx.params["increment"]
        if isinstance(step, bool) or not isinstance(step, (int, float)):  # RW305 at load time; a host's own call
            raise UsageError(f"workflow.set: 'increment' must be a number, got {step!r}")
        if isinstance(current, bool) or not isinstance(current, (int, float)):
            from regelwerk.errors import InvalidData

            pointer = "/" + "/".join(p for p in path.removeprefix("data.").split(".") if p)
            raise InvalidData(f"workflow.set cannot increment {current!r} by {step!r}: not a number", pointer)
        value = current + step
    else:
        value = _value(ctx)
    if not set_path(ctx.data, path, value):
        raise UsageError("workflow.set needs 'field' (a dotted path in the instance data)")


def _add(ctx: ActionContext) -> None:
    path = str(ctx.params.get("field", ""))
    current = resolve_path(ctx.data, [p for p in path.removeprefix("data.").split(".") if p])
    if current is not None and not isinstance(current, list):
        raise UsageError(f"workflow.add: {path!r} holds a {type(current).__name__}, not a list")
    value = _value(ctx)
    items = list(current or ())
    if value not in items:
        items.append(value)
    if not set_path(ctx.data, path, items):
        raise UsageError("workflow.add needs 'field' (a dotted path in the instance data)")


def _log(ctx: ActionContext) -> None:
    _logger().info("%s %s: %s -> %s by %s: %s", ctx.instance.workflow, ctx.instance.id, ctx.source, ctx.dest,
             ctx.actor.id, ctx.params.get("message", ctx.event))


def _audit(ctx: ActionContext) -> None:
    ctx.audit(str(ctx.params.get("action", f"workflow.{ctx.event}")),
              {"from": ctx.source, "to": ctx.dest, **dict(ctx.params.get("detail") or {})})


def _fire(ctx: ActionContext) -> None:
    event = str(ctx.params.get("event", ""))
    target = ctx.params.get("instance")
    if target is None and ctx.params.get("instance_field"):
        target = resolve_path(ctx.scope(), str(ctx.params["instance_field"]).split("."))
    if not event or not isinstance(target, str):
        raise UsageError("workflow.fire needs 'event' and 'instance' (or 'instance_field' naming a string)")
    from regelwerk.store.records import INSTANCE_ID_LENGTH
    from regelwerk.workflows import chains

    if len(target) > INSTANCE_ID_LENGTH:  # no instance has such an id: refused here, alike on every store
        raise UsageError(f"workflow.fire: {target[:80]!r}... is no instance id (longer than {INSTANCE_ID_LENGTH} "
                         "characters)")

    # kept in this transition's unit of work, fired after its commit, exactly once (regelwerk.workflows.chains): by
    # this process just after the commit, or by the tick's sweep when this process died before it could. Kept at the
    # time it is written, not the transition's (a timer's transition happens at its due time, maybe hours ago: its
    # chained fire was then at once older than the sweep's grace, and another worker's tick ran it beside this process)
    runtime = ctx.engine.runtime
    fire = chains.keep(ctx.tx, target, event, ctx.actor, ctx.system, ctx.instance.id, ctx.event,
                       max(ctx.now, runtime.clock()))

    @critical  # the engine's own after-commit work: a limit around it strikes in the chained fire's plugin code only
    def fire_later() -> None:
        chains.run(runtime, fire)

    ctx.after_commit(fire_later)


def _schedule(ctx: ActionContext) -> None:
    from datetime import timedelta

    from regelwerk.scheduling.schedule import Schedule, compile_schedule

    event, spec = str(ctx.params.get("event", "")), ctx.params.get("schedule")
    if not event or not isinstance(spec, (str, Mapping)):
        raise UsageError("workflow.schedule needs 'event' and 'schedule' (a Schedule name or an inline schedule)")
    schedule: Schedule | None
    if isinstance(spec, str):
        from regelwerk.outbox.action import compiled_bundle_of

        schedule = compiled_bundle_of(ctx.engine).get("Schedule", spec)
    else:
        problems: list[str] = []
        schedule = compile_schedule(spec, "/schedule", lambda code, msg, ptr, hint: problems.append(f"{code} {msg}"))
        if schedule is None:
            raise UsageError("workflow.schedule: " + "; ".join(problems or ["not a schedule"]))
    assert schedule is not None
    scope = ctx.scope()
    if schedule.form == "anchor" and schedule.repeat is None:
        # one moment relative to a fact of the instance (data.expires_on - P90D): a moment that has already
        # passed fires at the next tick, unless the schedule says catch_up: skip
        moment = next(schedule.occurrences(ctx.now - timedelta(days=366 * 200), ctx.now + timedelta(days=366 * 200),
                                           scope), None)
        if moment is not None and moment < ctx.now:
            moment = None if schedule.catch_up == "skip" else ctx.now
    elif event == ctx.event:
        # a recurring schedule set again by the event its own timer fires (a monthly overview that plans the next
        # one): the moment it fires at is this one, so the next is strictly later. From now - 1 microsecond it was
        # this same moment again, which the timer service refuses as a loop: the second month never came
        moment = schedule.next_fire(ctx.now, scope)
    else:
        moment = schedule.next_fire(ctx.now - timedelta(microseconds=1), scope)
    if moment is None:
        _logger().info("%s %s: workflow.schedule %s: no moment (anchor missing or passed)", ctx.instance.workflow,
                 ctx.instance.id, event)
        return
    if isinstance(spec, str):
        from regelwerk import coverage

        coverage.hit("Schedule", spec, "schedule moments", spec)
    ctx.schedule_timer(event, at=moment, data=ctx.params.get("data") or {})


def register(registry: Registry, plugin: str) -> None:
    """Register the core workflow actions."""
    # closed: a parameter these actions do not know (``vlaue``, ``form``) is RW305 at its line, never ignored
    obj: dict[str, Any] = {"type": "object", "additionalProperties": False}
    # where ``from`` may read: the action's scope (ActionContext.scope)
    scope_path = {"type": "string", "pattern": r"^(event|(data|actor|instance)(\.[^.\s]+)+)$"}
    source = {"anyOf": [scope_path, {"type": "object", "minProperties": 1, "additionalProperties": scope_path}],
              "description": "a dotted path of the action's scope (data.*, actor.*, instance.*, event), or a "
                             "mapping of names to such paths (an object built from them)"}
    # exactly one source of the value (``now: false`` beside a value is no second one)
    one_value = {"oneOf": [{"required": ["value"]}, {"required": ["now"], "properties": {"now": {"const": True}}},
                           {"required": ["from"]}, {"required": ["increment"]}],
                 "description": "give exactly one of value, now, from and increment"}
    for name, run, description, schema in (
        ("workflow.set", _set, "set a field of the instance data (a literal value, now, a value read from the "
                               "action's scope such as actor.id, or increment: N on a counter)",
         {**obj, **one_value, "required": ["field"],
          "properties": {"field": {"type": "string"}, "value": {}, "now": {"type": "boolean"}, "from": source,
                         "increment": {"type": "number"}}}),
        ("workflow.add", _add, "add a value (a literal, or read from the action's scope such as actor.id) to a list "
                               "field of the instance data, unless it holds it already",
         {**obj, "oneOf": [{"required": ["value"]}, {"required": ["from"]}], "required": ["field"],
          "description": "give exactly one of value and from",
          "properties": {"field": {"type": "string"}, "value": {}, "from": source}}),
        ("workflow.log", _log, "write a log line", {**obj, "properties": {"message": {"type": "string"}}}),
        ("workflow.audit", _audit, "write an audit row in the transition's transaction",
         {**obj, "properties": {"action": {"type": "string"}, "detail": {"type": "object"}}}),
        ("workflow.fire", _fire, "fire an event on another instance after commit",
         {**obj, "required": ["event"], "properties": {"event": {"type": "string"}, "instance": {"type": "string"},
                                                       "instance_field": {"type": "string"}}}),
        ("workflow.schedule", _schedule, "fire an event at a moment from a Schedule (e.g. data.expires_on - P90D)",
         {**obj, "required": ["event", "schedule"], "properties": {
             "event": {"type": "string"}, "data": {"type": "object"},
             "schedule": {"anyOf": [{"type": "string"}, {"type": "object"}], "x-document": "Schedule"}}}),
    ):
        registry.add_action(ActionSpec(name, plugin, run, description, schema))
