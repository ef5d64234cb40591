"""Registration of the ``RuleSet`` kind (and, through the same core line, ``DecisionTable``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from regelwerk.registry import RUNS_IN_RULES, ActionSpec, IdDecl, KindSpec, Registry, StepSpec
from regelwerk.rules.model import ActionCall, Pattern, Rule, RuleSetModel, freeze

__all__ = ["compile_ruleset", "register", "step_assert_fact", "step_post", "step_retract_fact"]

_OPEN_ROOT: dict[str, Any] = {"type": "object"}


def compile_ruleset(ctx: Any, doc: Any) -> RuleSetModel | None:
    """The kind compiler: rules with conditions and actions, checked against durable-rules' limits."""
    from regelwerk.compiler import content_hash
    from regelwerk.rules.translate import durable_limits

    spec = doc.spec
    rules = []
    errors_before = len([d for d in ctx.diagnostics if d.is_error])
    for index, raw in enumerate(spec["rules"]):
        base = f"/spec/rules/{index}"
        when, patterns = _condition_or_patterns(ctx, raw, base)
        calls = []
        for a, item in enumerate(raw["then"]):
            pointer = f"{base}/then/{a}"
            name = item if isinstance(item, str) else item["action"]
            params = {} if isinstance(item, str) else dict(item.get("with") or {})
            ctx.check_action(name, pointer if isinstance(item, str) else f"{pointer}/action", params,
                             pointer if isinstance(item, str) else f"{pointer}/with", runs_in=RUNS_IN_RULES)
            if "match" in raw:
                _check_join_params(ctx, params, {p.name for p in patterns}, f"{pointer}/with")
            calls.append(ActionCall(name, tuple(sorted((k, freeze(v)) for k, v in params.items()))))
        rules.append(Rule(raw["id"], when, tuple(calls), int(raw.get("priority", 0)), index, str(raw.get("label", "")),
                          patterns))
    _check_context(ctx, spec)
    model = RuleSetModel(doc.name, tuple(rules), content_hash(doc.data), str(spec.get("label", "")),
                         str(spec.get("description", "")))
    for problem in durable_limits(model):
        pointer = "/spec/rules" if problem.rule is None else f"/spec/rules/{problem.rule}/{problem.at}"
        ctx.report(problem.code, problem.message, pointer, problem.hint)
    if len([d for d in ctx.diagnostics if d.is_error]) > errors_before:
        return None
    return model


def _check_context(ctx: Any, spec: Mapping[str, Any]) -> None:
    """Every root of a declared ``context`` names a fact type (RW413)."""
    from regelwerk.diagnostics import did_you_mean

    for root, fact in (spec.get("context") or {}).items():
        if ctx.facts.fact(str(fact)) is None:
            known = sorted(ctx.facts.types)
            ctx.report("RW413", f"there is no fact type {fact!r} (context {root!r})", f"/spec/context/{root}",
                       did_you_mean(str(fact), known) or "fact types: " + ", ".join(known))


def _spec_of(data: Any) -> Mapping[str, Any]:
    spec = data.get("spec") if isinstance(data, Mapping) else None
    return spec if isinstance(spec, Mapping) else {}


def event_scope(data: Any, pointer: str = "") -> dict[str, Any] | None:
    """What a rule's ``when`` and actions read when the RuleSet declares its ``event``: the event and the
    declared context roots (None when nothing is declared: the host's data is then unchecked)."""
    from regelwerk.facts_kind import attributes_type

    spec = _spec_of(data)
    if not isinstance(spec.get("event"), Mapping):
        return None
    context = spec.get("context")
    roots = {str(root): {"$fact": str(fact)} for root, fact in (context.items() if isinstance(context, Mapping)
                                                                 else ())}
    return {"type": "object", "additionalProperties": False, "required": ["event", *roots],
            "properties": {"event": attributes_type(spec["event"], "the posted event", required=True), **roots}}


def _rule_of(data: Any, pointer: str) -> Mapping[str, Any]:
    parts = pointer.strip("/").split("/")
    rules = _spec_of(data).get("rules")
    if len(parts) > 2 and parts[2].isdigit() and isinstance(rules, list) and int(parts[2]) < len(rules):
        rule = rules[int(parts[2])]
        return rule if isinstance(rule, Mapping) else {}
    return {}


def pattern_scope(data: Any, pointer: str) -> dict[str, Any] | None:
    """What a join pattern reads when the RuleSet declares its ``facts``: the fact's fields directly and the
    facts of the earlier patterns by name (a pattern name shadows a field)."""
    from regelwerk.facts_kind import attributes_type
    spec = _spec_of(data)
    if not isinstance(spec.get("facts"), Mapping):
        return None
    fact = attributes_type(spec["facts"], "a fact of the session")
    match = _rule_of(data, pointer).get("match")
    name = pointer.rstrip("/").rsplit("/", 1)[-1].replace("~1", "/").replace("~0", "~")
    earlier: list[str] = []
    for other in (match if isinstance(match, Mapping) else {}):
        if other == name:
            break
        earlier.append(str(other))
    return {**fact, "properties": {**fact["properties"], **{n: fact for n in earlier}}}


def action_scope(data: Any, pointer: str) -> dict[str, Any] | None:
    """What a rule's action parameters read: the event scope (``when`` rules) or the matched facts by
    pattern name (join rules; an unknown pattern name is RW609's)."""
    from regelwerk.facts_kind import attributes_type

    rule = _rule_of(data, pointer)
    if "match" not in rule:
        return event_scope(data)
    spec = _spec_of(data)
    if not isinstance(spec.get("facts"), Mapping) or not isinstance(rule.get("match"), Mapping):
        return None
    fact = attributes_type(spec["facts"], "a fact of the session")
    return {"type": "object", "additionalProperties": True, "properties": {str(n): fact for n in rule["match"]}}


def _condition_or_patterns(ctx: Any, raw: Any, base: str) -> tuple[Any, tuple[Pattern, ...]]:
    """A rule's ``when`` (one event), or its ``match`` patterns (a join over a session's facts), checked."""
    from regelwerk.conditions import Condition, Const
    from regelwerk.rules.translate import field_paths

    if ("when" in raw) == ("match" in raw):
        ctx.report("RW610", "a rule needs either 'when' (one event) or 'match' (a join over facts), not "
                   + ("both" if "when" in raw else "neither"), base,
                   "use 'when' for a condition on the posted event, 'match' for named patterns over facts")
    if "match" not in raw:
        return ctx.condition(raw.get("when", {"all": []}), f"{base}/when"), ()
    names = list(raw["match"])
    patterns = []
    for position, (name, data) in enumerate(raw["match"].items()):
        pointer = f"{base}/match/{name}"
        when = ctx.condition(data, pointer)
        refs: set[str] = set()
        for path in field_paths(when.model):
            if path[0] in names[:position]:
                refs.add(path[0])
            elif path[0] in names:
                ctx.report("RW608", f"pattern {name!r} refers to {'itself' if path[0] == name else 'a later pattern'} "
                           f"({'.'.join(path)!r}); a pattern sees its own fact's fields directly and the facts of "
                           "the patterns before it by name", pointer,
                           f"write {'.'.join(path[1:])!r}" if path[0] == name else "reorder the patterns")
        patterns.append(Pattern(name, when, tuple(sorted(refs))))
    return Condition(Const(True), {}), tuple(patterns)


def _check_join_params(ctx: Any, params: Any, names: set[str], pointer: str) -> None:
    """In a join rule's actions, ``{field: x.y}`` must start with a pattern name (the scope is the matched facts)."""
    if isinstance(params, Mapping):
        if set(params) == {"field"} and isinstance(params["field"], str):
            head = params["field"].split(".")[0]
            if head not in names:
                from regelwerk.diagnostics import did_you_mean

                ctx.report("RW609", f"{params['field']!r}: {head!r} is not a pattern of this rule; a join rule's "
                           "actions read the matched facts by pattern name", f"{pointer}/field",
                           did_you_mean(head, names) or "patterns: " + ", ".join(sorted(names)))
            return
        for key, value in params.items():
            _check_join_params(ctx, value, names, f"{pointer}/{key}")
    elif isinstance(params, list):
        for n, value in enumerate(params):
            _check_join_params(ctx, value, names, f"{pointer}/{n}")


def _engine(ctx: Any) -> Any:
    from regelwerk.rules.runtime import RuleEngine

    def make(scenario: Any) -> Any:
        engine = RuleEngine.from_registry(scenario.registry)
        scenario.cleanups.append(engine.close)
        return engine

    return ctx.service("rules.engine", make)


def _session(ctx: Any) -> Any:
    """The scenario's fact session (join rules): one per scenario, closed at its end."""
    engine = _engine(ctx)

    def make(scenario: Any) -> Any:
        session = engine.session()
        scenario.cleanups.append(session.close)
        return session

    return ctx.service("rules.session", make)


def _expect(args: Mapping[str, Any], outcome: Any) -> None:
    from regelwerk.scenarios import StepFailure, matches_subset

    problems = []
    for key, actual in (("fired", outcome.rules), ("actions", outcome.actions), ("signals", outcome.signals),
                        ("events", outcome.events), ("changes", outcome.changes),
                        ("workflow_events", outcome.workflow_events), ("templates", outcome.templates)):
        if key in args and not matches_subset(args[key], actual):
            problems.append(f"{key}: expected {json.dumps(args[key], default=str)}, "
                            f"got {json.dumps(actual, default=str)}")
    if problems:
        raise StepFailure("; ".join(problems) + f" (explain: {json.dumps(outcome.explain(), default=str)})")


def step_assert_fact(ctx: Any, args: Mapping[str, Any], info: Any) -> None:
    """Scenario step: assert a fact into the scenario's session and compare the join rules that fired."""
    model = ctx.compiled.get("RuleSet", args["ruleset"])
    outcome = _session(ctx).assert_fact(model, dict(args["fact"]), now=ctx.now, actor=args.get("actor", "scenario"))
    _expect(args, outcome)


def step_retract_fact(ctx: Any, args: Mapping[str, Any], info: Any) -> None:
    """Scenario step: retract the oldest fact equal to ``fact`` from the scenario's session."""
    from regelwerk.scenarios import StepFailure

    model = ctx.compiled.get("RuleSet", args["ruleset"])
    if not _session(ctx).retract_fact(model, dict(args["fact"])):
        raise StepFailure(f"no fact {json.dumps(args['fact'], default=str)} to retract in {args['ruleset']!r}")


def step_post(ctx: Any, args: Mapping[str, Any], info: Any) -> None:
    """Scenario step: post an event into a RuleSet and compare fired rules, actions, signals, events."""
    model = ctx.compiled.get("RuleSet", args["ruleset"])
    # through the scenario's session, so join rules see the facts asserted before (when-rules: as before)
    poster = _session(ctx) if model.has_joins else _engine(ctx)
    outcome = poster.post(model, dict(args.get("event") or {}), {**ctx.facts, **dict(args.get("context") or {})},
                          now=ctx.now, actor=args.get("actor", "scenario"))
    _expect(args, outcome)


def register(registry: Registry, plugin: str) -> None:
    """Add the RuleSet and DecisionTable kinds with their steps, actions and commands."""
    from regelwerk.decisions import kind as decisions
    from regelwerk.rules.runtime import BUILTIN_ACTIONS
    from regelwerk.validation import load_shipped_schema

    decisions.register(registry, plugin)
    registry.add_kind(KindSpec(
        kind="RuleSet", plugin=plugin, schema=load_shipped_schema("ruleset.json"), compile=compile_ruleset,
        ids=(IdDecl("/spec/rules/*/id", "rule"),),
        description="event-condition-action rules (evaluated on durable-rules)",
    ))
    from regelwerk.registry import PlaceSpec

    roots = {"type": "object", "additionalProperties": True, "required": ["event"],
             "properties": {"event": {"type": "object", "description": "the posted event (declare spec.event)"}}}
    registry.add_place(PlaceSpec("RuleSet", "/spec/rules/*/when", plugin, roots,
                                 "a rule's condition: the posted event and the context (checked when the RuleSet "
                                 "declares spec.event and spec.context)", scope_of=event_scope))
    registry.add_place(PlaceSpec("RuleSet", "/spec/rules/*/match/*", plugin, {"type": "object"},
                                 "a join pattern: the fact's fields and the earlier patterns by name (checked "
                                 "when the RuleSet declares spec.facts)", scope_of=pattern_scope))
    registry.add_place(PlaceSpec("RuleSet", "/spec/rules/*/then/*/with", plugin, roots,
                                 "{field: path} in a rule's action parameters (as the rule's condition)",
                                 form="params", scope_of=action_scope))
    for name, (fn, required, description) in BUILTIN_ACTIONS.items():
        registry.add_action(ActionSpec(name, plugin, fn, description, {
            "type": "object", "required": list(required)}, runs_in=frozenset({RUNS_IN_RULES})))
    expected_list = {"type": "array"}
    expectations = {
        "actor": {"type": "string"},
        "fired": {"type": "array", "items": {"type": "string"}, "description": "Expected join rule ids, in order."},
        "actions": {"type": "array", "items": {"type": "string"}, "description": "Expected action names."},
        "signals": {**expected_list, "description": "Expected signals (each: the keys given must match)."},
        "events": {**expected_list, "description": "Expected emitted events."},
        "changes": {"type": "object", "description": "Expected field changes."},
        "workflow_events": expected_list,
        "templates": expected_list,
    }
    registry.add_step(StepSpec("post", plugin, step_post, {
        "type": "object", "required": ["ruleset", "event"], "additionalProperties": False,
        "properties": {
            "ruleset": {"type": "string", "description": "The RuleSet's metadata.name."},
            "event": {"type": "object", "description": "The event posted (the scope's 'event')."},
            "context": {"type": "object", "description": "More scope next to 'event' (merged over the facts)."},
            **expectations,
            "fired": {"type": "array", "items": {"type": "string"}, "description": "Expected rule ids, in order."},
        },
    }, "post an event into a rule set and check what fired"))
    registry.add_step(StepSpec("assert_fact", plugin, step_assert_fact, {
        "type": "object", "required": ["ruleset", "fact"], "additionalProperties": False,
        "properties": {
            "ruleset": {"type": "string", "description": "The RuleSet's metadata.name."},
            "fact": {"type": "object", "description": "The fact asserted into the scenario's session."},
            **expectations,
        },
    }, "assert a fact into the scenario's rule session and check which join rules fired"))
    registry.add_step(StepSpec("retract_fact", plugin, step_retract_fact, {
        "type": "object", "required": ["ruleset", "fact"], "additionalProperties": False,
        "properties": {
            "ruleset": {"type": "string", "description": "The RuleSet's metadata.name."},
            "fact": {"type": "object", "description": "The fact to retract (the oldest equal one)."},
        },
    }, "retract a fact from the scenario's rule session"))
