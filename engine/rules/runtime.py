"""The rules runtime: post an event into a compiled RuleSet, run the fired rules' actions, explain.

One :class:`RuleEngine` owns one rules port (one durable ``Host``). ``post`` asks the port
which rules' pre-filters matched, re-checks each rule's full condition with the shared
condition language, orders the confirmed rules (higher ``priority`` first, then file order)
and runs their actions in regelwerk, outside the host. The result says what fired, what
durable matched but regelwerk's check rejected, and every action's effect.

Join rules (``match:``) run in a :class:`RuleSession`: the facts of one caller scope (an employee's
certificates and shifts, an employer's records), asserted and retracted one by one. Asserting a fact
(or posting an event into the session, a fact for the duration of the post) asks the port which
combinations of facts durable's pre-filter completed; regelwerk re-checks every pattern of each
combination in Python and runs the confirmed rules' actions.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from regelwerk.actors import SYSTEM, Actor
from regelwerk.conditions import resolve_path
from regelwerk.errors import ActionFailed, PluginError, RegelwerkError, UsageError, is_plugin_fault
from regelwerk.rules.model import Rule, RuleSetModel
from regelwerk.rules.port import DurableRules, Join, RulesPort
from regelwerk.rules.translate import (
    FACT_KEYS,
    FACT_MARKER,
    FACT_PAYLOAD,
    MARKER,
    PAYLOAD,
    durable_name,
    fact_keys,
    join_paths,
    to_durable_ruleset,
)

__all__ = ["BUILTIN_ACTIONS", "ActionContext", "FiredRule", "RuleEngine", "RuleHooks", "RuleOutcome", "RuleSession",
           "WorkflowHooks"]


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
    """:class:`RuleHooks` on the workflow runtime (``regelwerk.runtime.Engine``) and, optionally, a template sender.

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

    __slots__ = ("_because", "_now", "_patterns", "_scope", "_when", "actions", "facts", "priority", "rule")

    def __init__(self, rule: Rule, scope: Mapping[str, Any], now: datetime,
                 facts: Mapping[str, int] | None = None, scopes: Sequence[Mapping[str, Any]] | None = None) -> None:
        self.rule = rule.id
        self.priority = rule.priority
        self.actions: list[str] = []
        #: for a join rule: the sequence number of the fact each pattern matched
        self.facts: dict[str, int] = dict(facts or {})
        self._when = rule.when
        self._patterns = list(zip(rule.patterns, scopes or (), strict=False))
        self._scope = scope
        self._now = now
        self._because: list[str] | None = None

    @property
    def because(self) -> list[str]:
        """The leaf conditions that made the rule fire (for a join rule: per pattern, ``name: ...``)."""
        if self._because is None:
            if self._patterns:
                self._because = [f"{p.name}: {line}" for p, scope in self._patterns
                                 for line in p.when.explain(scope, self._now)[1]]
            else:
                self._because = self._when.explain(self._scope, self._now)[1]
        return self._because

    def __repr__(self) -> str:
        return f"FiredRule({self.rule!r}, actions={self.actions!r})"


class RuleOutcome:
    """What one posted event did: fired rules, rejected pre-filter matches and every action's effect."""

    __slots__ = ("changes", "events", "fact", "fired", "rejected", "results", "ruleset", "signals", "templates",
                 "version", "workflow_events")

    def __init__(self, ruleset: str, version: str) -> None:
        self.ruleset = ruleset
        #: the sequence number of the fact asserted (RuleSession.assert_fact), else None
        self.fact: int | None = None
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
            "fired": [{"rule": f.rule, "priority": f.priority, "because": f.because, "actions": f.actions,
                       **({"facts": f.facts} if f.facts else {})} for f in self.fired],
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
            if not _holds(rule.when, scope, moment, rule):
                outcome.rejected.append({"rule": rule.id, "because": rule.when.explain(scope, moment)[1],
                                         "note": "durable-rules matched the pre-filter; the full condition is false"})
                continue
            fired = FiredRule(rule, scope, moment)
            outcome.fired.append(fired)
            self._run_actions(plans, model, rule, event, scope, moment, who, outcome, fired)
        return outcome

    def _run_actions(self, plans: dict[str, Any], model: RuleSetModel, rule: Rule, event: Mapping[str, Any],
                     values: Mapping[str, Any], moment: datetime, who: Actor, outcome: RuleOutcome,
                     fired: FiredRule) -> None:
        """Run a confirmed rule's actions in order (parameters may read ``values``), recording each."""
        plan = plans.get(rule.id)
        if plan is None:
            plan = plans[rule.id] = self._plan(rule)
        for action_name, fn, params, dynamic in plan:
            ctx = ActionContext(model, rule, event, values, moment, who, outcome, self.hooks,
                                _resolve(params, values) if dynamic else params)
            try:
                outcome.results.append(fn(ctx))
            except RegelwerkError:
                raise
            except BaseException as exc:  # plugin code: typed at the boundary, the original chained
                if not is_plugin_fault(exc):
                    raise
                raise ActionFailed(f"action {action_name!r} of rule {rule.id!r}", exc, "", str(rule.id)) from exc
            fired.actions.append(action_name)

    def session(self) -> RuleSession:
        """A new session of facts for join rules (close it when the caller scope ends)."""
        return RuleSession(self)

    def _joins(self, model: RuleSetModel, name: str, joins: list[Join], facts: Mapping[int, Mapping[str, Any]],
               event: Mapping[str, Any], outcome: RuleOutcome, now: datetime | None, actor: Any) -> None:
        """Re-check each combination durable's pre-filter completed; run the confirmed ones' actions."""
        if not joins:
            return
        moment = now or datetime.now(UTC)
        who = actor if type(actor) is Actor else Actor.of(actor)
        by_id = model.by_id
        candidates = []
        for rule_id, bound in joins:
            rule = by_id.get(rule_id)
            if rule is None or not rule.patterns or any(facts.get(seq) is None for seq in bound.values()):
                continue  # a retracted fact, or not a join rule: nothing to confirm
            candidates.append((rule, {p.name: bound[p.name] for p in rule.patterns}))
        candidates.sort(key=lambda c: (-c[0].priority, c[0].index, tuple(c[1].values())))
        plans = self._plans.setdefault(name, {})
        for rule, bound in candidates:
            matched = {n: facts[seq] for n, seq in bound.items()}
            scopes = list(_pattern_scopes(rule, matched))
            if not all(_holds(p.when, scope, moment, rule) for p, scope in zip(rule.patterns, scopes, strict=True)):
                outcome.rejected.append({
                    "rule": rule.id, "facts": bound,
                    "because": [f"{p.name}: {line}" for p, scope in zip(rule.patterns, scopes, strict=True)
                                for line in p.when.explain(scope, moment)[1]],
                    "note": "durable-rules matched the pre-filter; a pattern's full condition is false"})
                continue
            fired = FiredRule(rule, matched, moment, bound, scopes)
            outcome.fired.append(fired)
            self._run_actions(plans, model, rule, event, matched, moment, who, outcome, fired)

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


def _pattern_scopes(rule: Rule, matched: Mapping[str, Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """What each pattern's condition sees: its fact's fields, and the earlier facts it refers to by name."""
    for pattern in rule.patterns:
        fact = matched[pattern.name]
        yield {**fact, **{ref: matched[ref] for ref in pattern.refs}} if pattern.refs else dict(fact)


class _Facts:
    """One rule set's facts in a session: its durable sid, the facts by sequence number, their messages."""

    __slots__ = ("facts", "keys", "messages", "model", "name", "sid")

    def __init__(self, model: RuleSetModel, name: str, sid: str) -> None:
        self.model = model
        self.name = name
        self.sid = sid
        self.keys = join_paths(model)
        self.facts: dict[int, dict[str, Any]] = {}
        self.messages: dict[int, dict[str, Any]] = {}


class RuleSession:
    """The facts of one caller scope (an employee, an employer, a request) for the join rules of rule sets.

    ``assert_fact`` adds a fact and runs the join rules it completes; ``retract_fact`` removes one;
    ``post`` posts an event (the ``when`` rules as :meth:`RuleEngine.post`, then the join rules with the
    event as a fact for the duration of the post). Each rule set used gets one durable session id,
    deleted by :meth:`close`: keep sessions as long as the scope lives, not one per request forever.
    Facts are stored as JSON data (dates become ISO text); identical facts are distinct facts, each
    with its own sequence number (``outcome.fact``).
    """

    def __init__(self, engine: RuleEngine) -> None:
        self.engine = engine
        self._lock = threading.RLock()
        self._states: dict[str, _Facts] = {}
        self._seq = itertools.count(1)
        self._closed = False

    def _state(self, model: RuleSetModel) -> _Facts:
        if self._closed:
            raise UsageError("the rule session is closed", "open a new one with RuleEngine.session()")
        name = self.engine.load(model)
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = _Facts(model, name, self.engine.port.open_session(name))
        return state

    def _assert(self, state: _Facts, fact: Mapping[str, Any]) -> tuple[int, list[Join]]:
        if not isinstance(fact, Mapping):
            raise UsageError(f"a fact is a mapping of fields, not {type(fact).__name__}")
        seq = next(self._seq)
        data = _jsonable(fact)
        message = {FACT_MARKER: 1, "rw_seq": seq, FACT_PAYLOAD: data, FACT_KEYS: fact_keys(data, state.keys)}
        state.facts[seq] = data
        state.messages[seq] = message
        return seq, self.engine.port.assert_fact(state.name, state.sid, message)

    def _retract(self, state: _Facts, seq: int) -> None:
        message = state.messages.pop(seq)
        del state.facts[seq]
        self.engine.port.retract_fact(state.name, state.sid, message)

    def assert_fact(self, model: RuleSetModel, fact: Mapping[str, Any], now: datetime | None = None,
                    actor: Actor | str | Mapping[str, Any] = SYSTEM) -> RuleOutcome:
        """Add a fact; the join rules it completed (``outcome.fact`` is its sequence number)."""
        with self._lock:
            state = self._state(model)
            outcome = RuleOutcome(model.name, model.version)
            if not model.has_joins:
                outcome.fact = next(self._seq)  # nothing can join: kept in regelwerk only
                state.facts[outcome.fact] = _jsonable(fact)
                return outcome
            seq, joins = self._assert(state, fact)
            outcome.fact = seq
            self.engine._joins(model, state.name, joins, state.facts, state.facts[seq], outcome, now, actor)
            return outcome

    def retract_fact(self, model: RuleSetModel, fact: int | Mapping[str, Any]) -> bool:
        """Remove a fact by sequence number, or the oldest fact equal to ``fact``; False when there is none."""
        with self._lock:
            state = self._state(model)
            if isinstance(fact, int):
                seq: int | None = fact if fact in state.facts else None
            else:
                data = _jsonable(fact)
                seq = next((n for n, f in state.facts.items() if f == data), None)
            if seq is None:
                return False
            if seq in state.messages:
                self._retract(state, seq)
            else:
                del state.facts[seq]
            return True

    def facts(self, model: RuleSetModel) -> dict[int, dict[str, Any]]:
        """The session's facts for ``model`` by sequence number (a copy)."""
        with self._lock:
            state = self._states.get(durable_name(model))
            return dict(state.facts) if state is not None else {}

    def post(self, model: RuleSetModel, event: Mapping[str, Any], context: Mapping[str, Any] | None = None,
             now: datetime | None = None, actor: Actor | str | Mapping[str, Any] = SYSTEM) -> RuleOutcome:
        """Post an event: its ``when`` rules first (as RuleEngine.post), then the join rules it completes."""
        outcome = self.engine.post(model, event, context, now, actor)
        if not model.has_joins:
            return outcome
        with self._lock:
            state = self._state(model)
            seq, joins = self._assert(state, event)
            try:
                self.engine._joins(model, state.name, joins, state.facts, state.facts[seq], outcome, now, actor)
            finally:
                self._retract(state, seq)
        return outcome

    def close(self) -> None:
        """Delete the session's facts in durable and free its session ids."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for state in self._states.values():
                self.engine.port.close_session(state.name, state.sid)
            self._states.clear()

    def __enter__(self) -> RuleSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _holds(condition: Callable[[Mapping[str, Any], datetime], Any], scope: Mapping[str, Any], moment: datetime,
           rule: Rule) -> Any:
    """A rule's full condition on ``scope``; what a function it calls raises (plugin code) is a ``PluginError``
    with the original chained, as for a workflow's guards."""
    try:
        return condition(scope, moment)
    except RegelwerkError:
        raise
    except BaseException as exc:
        if not is_plugin_fault(exc):
            raise
        raise PluginError(f"condition of rule {rule.id!r}", exc, "", str(rule.id)) from exc
