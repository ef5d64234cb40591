"""The rules runtime: post an event into a compiled RuleSet, run the fired rules' actions, explain.

One :class:`RuleEngine` owns one rules port (one durable ``Host``). ``post`` asks the port
which rules' pre-filters matched, re-checks each rule's full condition with the shared
condition language, orders the confirmed rules (higher ``priority`` first, then file order)
and runs their actions in regelwerk, outside the host. The result says what fired, what
durable matched but regelwerk's check rejected, and every action's effect.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from engine.actors import SYSTEM, Actor
from engine.conditions import resolve_path
from engine.errors import UsageError
from engine.rules.model import Rule, RuleSetModel
from engine.rules.port import DurableRules, RulesPort
from engine.rules.translate import MARKER, PAYLOAD, durable_name, to_durable_ruleset

__all__ = ["BUILTIN_ACTIONS", "ActionContext", "FiredRule", "RuleEngine", "RuleHooks", "RuleOutcome", "WorkflowHooks"]


class RuleHooks(Protocol):
    """Where actions that leave the rules runtime go (the workflow runtime, the mail outbox).

    Both are optional: without a hook the request is only recorded in the outcome
    (``workflow_events`` / ``templates``) for the caller to carry out.
    """

    def fire_workflow(self, workflow: str, event: str, instance: str | None, data: Mapping[str, Any],
                      actor: Actor) -> Any:
        """Fire ``event`` on a workflow instance (or start ``workflow``)."""

    def send_template(self, template: str, to: Any, data: Mapping[str, Any], actor: Actor) -> Any:
        """Render and send a template."""


class WorkflowHooks:
    """:class:`RuleHooks` on the workflow runtime (``engine.runtime.Engine``) and, optionally, a template sender.

    ``rules.fire_workflow`` with an ``instance`` fires ``event`` on it; without one it starts ``workflow``.
    """

    def __init__(self, workflows: Any, send: Callable[..., Any] | None = None) -> None:
        self.workflows = workflows
        self.send = send

    def fire_workflow(self, workflow: str, event: str, instance: str | None, data: Mapping[str, Any],
                      actor: Actor) -> Any:
        """Fire on the instance, or start the workflow when no instance is given."""
        if instance:
            return self.workflows.fire(instance, event, actor, dict(data))
        return self.workflows.start(workflow, dict(data), actor)

    def send_template(self, template: str, to: Any, data: Mapping[str, Any], actor: Actor) -> Any:
        """Hand the template to ``send`` (e.g. the outbox); None when there is no sender."""
        return self.send(template, to, dict(data), actor) if self.send is not None else None


class FiredRule:
    """A rule that fired, with the actions it ran; ``because`` (the deciding conditions) is computed on request."""

    __slots__ = ("_because", "_now", "_scope", "_when", "actions", "priority", "rule")

    def __init__(self, rule: Rule, scope: Mapping[str, Any], now: datetime) -> None:
        self.rule = rule.id
        self.priority = rule.priority
        self.actions: list[str] = []
        self._when = rule.when
        self._scope = scope
        self._now = now
        self._because: list[str] | None = None

    @property
    def because(self) -> list[str]:
        """The leaf conditions that made the rule fire."""
        if self._because is None:
            self._because = self._when.explain(self._scope, self._now)[1]
        return self._because

    def __repr__(self) -> str:
        return f"FiredRule({self.rule!r}, actions={self.actions!r})"


class RuleOutcome:
    """What one posted event did: fired rules, rejected pre-filter matches and every action's effect."""

    __slots__ = ("changes", "events", "fired", "rejected", "results", "ruleset", "signals", "templates",
                 "version", "workflow_events")

    def __init__(self, ruleset: str, version: str) -> None:
        self.ruleset = ruleset
        self.version = version
        self.fired: list[FiredRule] = []
        self.rejected: list[dict[str, Any]] = []
        self.signals: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.changes: dict[str, Any] = {}
        self.workflow_events: list[dict[str, Any]] = []
        self.templates: list[dict[str, Any]] = []
        self.results: list[Any] = []

    def __repr__(self) -> str:
        return f"RuleOutcome({self.ruleset!r}, fired={self.rules!r})"

    @property
    def rules(self) -> list[str]:
        """The ids of the rules that fired, in order."""
        return [f.rule for f in self.fired]

    @property
    def actions(self) -> list[str]:
        """Every action run, in order."""
        return [a for f in self.fired for a in f.actions]

    def explain(self) -> dict[str, Any]:
        """A JSON-friendly account: which rules fired and why, which durable matches were rejected."""
        return {
            "ruleset": self.ruleset,
            "version": self.version,
            "fired": [{"rule": f.rule, "priority": f.priority, "because": f.because, "actions": f.actions}
                      for f in self.fired],
            "rejected": self.rejected,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-friendly."""
        return {**self.explain(), "signals": self.signals, "events": self.events, "changes": self.changes,
                "workflow_events": self.workflow_events, "templates": self.templates}


@dataclass(slots=True)
class ActionContext:
    """What an action gets: the rule, the event, the scope, the clock, the actor, its parameters, the outcome.

    Every registered action, for workflows and rules alike, is called as ``run(ctx)`` and reads its
    parameters (the definition's ``with:``) from ``ctx.params`` and the data it may read from ``ctx.scope()``.
    """

    ruleset: RuleSetModel
    rule: Rule
    event: Mapping[str, Any]
    values: Mapping[str, Any]
    now: datetime
    actor: Actor
    outcome: RuleOutcome
    hooks: RuleHooks | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def scope(self) -> Mapping[str, Any]:
        """The data a rule's conditions and actions read (``event`` and the posted context)."""
        return self.values

    def signal(self, name: str, **data: Any) -> None:
        """Raise a signal (a named notice for the caller: a warning, a flag)."""
        self.outcome.signals.append({"signal": name, "rule": self.rule.id, **data})

    def emit(self, event_type: str, **data: Any) -> None:
        """Emit a new event (returned to the caller; not re-posted automatically)."""
        self.outcome.events.append({"type": event_type, "rule": self.rule.id, **data})

    def set(self, path: str, value: Any) -> None:
        """Set a field (collected in ``outcome.changes`` by dotted path)."""
        self.outcome.changes[path] = value


def _resolve(value: Any, scope: Mapping[str, Any]) -> Any:
    """Action parameters may read the scope: ``{field: event.product}``."""
    if isinstance(value, Mapping):
        if set(value) == {"field"} and isinstance(value["field"], str):
            return resolve_path(scope, value["field"].split("."))
        return {k: _resolve(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, scope) for v in value]
    return value


def _reads_scope(value: Any) -> bool:
    if isinstance(value, Mapping):
        return (set(value) == {"field"}) or any(_reads_scope(v) for v in value.values())
    if isinstance(value, list):
        return any(_reads_scope(v) for v in value)
    return False


def _jsonable(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v) for v in value), key=str)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


# --- the built-in actions ------------------------------------------------------------------------


def _split(params: Mapping[str, Any], *names: str) -> tuple[list[Any], dict[str, Any]]:
    """The named parameters (None when absent) and the rest."""
    return [params.get(n) for n in names], {k: v for k, v in params.items() if k not in names}


def action_set(ctx: ActionContext) -> None:
    """Set a field (``with: {field: path, value: ...}``)."""
    ctx.set(ctx.params["field"], ctx.params.get("value"))


def action_emit(ctx: ActionContext) -> None:
    """Emit an event (``with: {event: type, ...data}``)."""
    (event,), data = _split(ctx.params, "event")
    ctx.emit(event, **data)


def action_signal(ctx: ActionContext) -> None:
    """Raise a signal (``with: {signal: name, message: ..., ...}``)."""
    (signal,), data = _split(ctx.params, "signal")
    ctx.signal(signal, **data)


def action_fire_workflow(ctx: ActionContext) -> Any:
    """Fire a workflow event through the hook (recorded in ``outcome.workflow_events`` either way)."""
    (workflow, event, instance), data = _split(ctx.params, "workflow", "event", "instance")
    request = {"workflow": workflow, "event": event, "instance": instance, "data": data, "rule": ctx.rule.id}
    ctx.outcome.workflow_events.append(request)
    if ctx.hooks is not None:
        return ctx.hooks.fire_workflow(workflow, event, instance, data, ctx.actor)
    return None


def action_send_template(ctx: ActionContext) -> Any:
    """Send a template through the hook (recorded in ``outcome.templates`` either way)."""
    (template, to), data = _split(ctx.params, "template", "to")
    ctx.outcome.templates.append({"template": template, "to": to, "data": data, "rule": ctx.rule.id})
    if ctx.hooks is not None:
        return ctx.hooks.send_template(template, to, data, ctx.actor)
    return None


#: name -> (function, required parameters, description)
BUILTIN_ACTIONS: dict[str, tuple[Callable[..., Any], tuple[str, ...], str]] = {
    "rules.set": (action_set, ("field",), "set a field: with {field, value}"),
    "rules.emit": (action_emit, ("event",), "emit an event: with {event, ...data}"),
    "rules.signal": (action_signal, ("signal",), "raise a signal: with {signal, message, ...}"),
    "rules.fire_workflow": (action_fire_workflow, ("workflow", "event"),
                            "fire a workflow event: with {workflow, event, instance, ...data}"),
    "rules.send_template": (action_send_template, ("template",), "send a template: with {template, to, ...data}"),
}


class RuleEngine:
    """Posts events into compiled RuleSets; one rules port (one durable Host) per engine.

    ``actions`` maps action names to callables ``run(ctx: ActionContext)`` (parameters in ``ctx.params``; by
    default the registry's actions, which include the built-in ``rules.*`` ones).
    """

    def __init__(self, actions: Mapping[str, Callable[..., Any]] | None = None, port: RulesPort | None = None,
                 hooks: RuleHooks | None = None, max_rulesets: int = 1000) -> None:
        if actions is None:
            actions = {name: spec[0] for name, spec in BUILTIN_ACTIONS.items()}
        self.actions = dict(actions)
        self.port: RulesPort = port if port is not None else DurableRules(max_rulesets=max_rulesets)
        self.hooks = hooks
        self._load_lock = threading.Lock()
        self._loaded: set[str] = set()
        self._plans: dict[str, dict[str, list[tuple[str, Callable[..., Any], dict[str, Any], bool]]]] = {}

    @classmethod
    def from_registry(cls, registry: Any, hooks: RuleHooks | None = None, port: RulesPort | None = None,
                      max_rulesets: int = 1000) -> RuleEngine:
        """An engine whose actions are every action in the registry."""
        return cls({name: spec.run for name, spec in registry.actions.items()}, port, hooks, max_rulesets)

    def load(self, model: RuleSetModel) -> str:
        """Make sure ``model`` is in the port (by content hash); returns its durable name."""
        name = durable_name(model)
        if name not in self._loaded:
            with self._load_lock:
                self.port.load(name, to_durable_ruleset(model))
                self._loaded.add(name)
        return name

    def post(self, model: RuleSetModel, event: Mapping[str, Any], context: Mapping[str, Any] | None = None,
             now: datetime | None = None, actor: Actor | str | Mapping[str, Any] = SYSTEM) -> RuleOutcome:
        """Post ``event`` (scope: ``{"event": event, **context}``); returns what fired and did."""
        name = self.load(model)
        scope: dict[str, Any] = {**context, "event": event} if context else {"event": event}
        matched = self.port.match(name, {MARKER: 1, PAYLOAD: _jsonable(scope)})
        outcome = RuleOutcome(model.name, model.version)
        if not matched:
            return outcome
        moment = now or datetime.now(UTC)
        who = actor if type(actor) is Actor else Actor.of(actor)
        by_id = model.by_id
        candidates = [by_id[m] for m in matched]
        if len(candidates) > 1:
            candidates.sort(key=lambda r: (-r.priority, r.index))
        plans = self._plans.setdefault(name, {})
        for rule in candidates:
            if not rule.when(scope, moment):
                outcome.rejected.append({"rule": rule.id, "because": rule.when.explain(scope, moment)[1],
                                         "note": "durable-rules matched the pre-filter; the full condition is false"})
                continue
            fired = FiredRule(rule, scope, moment)
            outcome.fired.append(fired)
            plan = plans.get(rule.id)
            if plan is None:
                plan = plans[rule.id] = self._plan(rule)
            for action_name, fn, params, dynamic in plan:
                ctx = ActionContext(model, rule, event, scope, moment, who, outcome, self.hooks,
                                    _resolve(params, scope) if dynamic else params)
                outcome.results.append(fn(ctx))
                fired.actions.append(action_name)
        return outcome

    def _plan(self, rule: Rule) -> list[tuple[str, Callable[..., Any], dict[str, Any], bool]]:
        """Each action of a rule resolved once: (name, function, parameters, reads the scope)."""
        plan = []
        for call in rule.then:
            fn = self.actions.get(call.name)
            if fn is None:
                raise UsageError(f"rule {rule.id!r} calls action {call.name!r}, which this engine does not have",
                                 "build the engine with RuleEngine.from_registry(registry)")
            params = call.kwargs
            plan.append((call.name, fn, params, _reads_scope(params)))
        return plan

    def close(self) -> None:
        """Release the port."""
        self.port.close()
