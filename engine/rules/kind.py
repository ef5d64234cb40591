"""Registration of the ``RuleSet`` kind (and, through the same core line, ``DecisionTable``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.registry import ActionSpec, IdDecl, KindSpec, Registry, StepSpec
from engine.rules.model import ActionCall, Rule, RuleSetModel, freeze

__all__ = ["compile_ruleset", "register", "step_post"]


def compile_ruleset(ctx: Any, doc: Any) -> RuleSetModel | None:
    """The kind compiler: rules with conditions and actions, checked against durable-rules' limits."""
    from engine.compiler import content_hash
    from engine.rules.translate import durable_limits

    spec = doc.spec
    rules = []
    errors_before = len([d for d in ctx.diagnostics if d.is_error])
    for index, raw in enumerate(spec["rules"]):
        base = f"/spec/rules/{index}"
        when = ctx.condition(raw["when"], f"{base}/when")
        calls = []
        for a, item in enumerate(raw["then"]):
            pointer = f"{base}/then/{a}"
            name = item if isinstance(item, str) else item["action"]
            params = {} if isinstance(item, str) else dict(item.get("with") or {})
            ctx.check_action(name, pointer if isinstance(item, str) else f"{pointer}/action", params,
                             pointer if isinstance(item, str) else f"{pointer}/with")
            calls.append(ActionCall(name, tuple(sorted((k, freeze(v)) for k, v in params.items()))))
        rules.append(Rule(raw["id"], when, tuple(calls), int(raw.get("priority", 0)), index, str(raw.get("label", ""))))
    model = RuleSetModel(doc.name, tuple(rules), content_hash(doc.data), str(spec.get("label", "")),
                         str(spec.get("description", "")))
    for problem in durable_limits(model):
        pointer = "/spec/rules" if problem.rule is None else f"/spec/rules/{problem.rule}/when"
        ctx.report(problem.code, problem.message, pointer, problem.hint)
    if len([d for d in ctx.diagnostics if d.is_error]) > errors_before:
        return None
    return model


def _engine(ctx: Any) -> Any:
    from engine.rules.runtime import RuleEngine

    def make(scenario: Any) -> Any:
        engine = RuleEngine.from_registry(scenario.registry)
        scenario.cleanups.append(engine.close)
        return engine

    return ctx.service("rules.engine", make)


def step_post(ctx: Any, args: Mapping[str, Any], info: Any) -> None:
    """Scenario step: post an event into a RuleSet and compare fired rules, actions, signals, events."""
    from engine.scenarios import StepFailure, matches_subset

    model = ctx.compiled.get("RuleSet", args["ruleset"])
    outcome = _engine(ctx).post(model, dict(args.get("event") or {}), {**ctx.facts, **dict(args.get("context") or {})},
                                now=ctx.now, actor=args.get("actor", "scenario"))
    problems = []
    for key, actual in (("fired", outcome.rules), ("actions", outcome.actions), ("signals", outcome.signals),
                        ("events", outcome.events), ("changes", outcome.changes),
                        ("workflow_events", outcome.workflow_events), ("templates", outcome.templates)):
        if key in args and not matches_subset(args[key], actual):
            problems.append(f"{key}: expected {json.dumps(args[key], default=str)}, "
                            f"got {json.dumps(actual, default=str)}")
    if problems:
        raise StepFailure("; ".join(problems) + f" (explain: {json.dumps(outcome.explain(), default=str)})")


def register(registry: Registry, plugin: str) -> None:
    """Add the RuleSet and DecisionTable kinds with their steps, actions and commands."""
    from engine.decisions import kind as decisions
    from engine.rules.runtime import BUILTIN_ACTIONS
    from engine.validation import load_shipped_schema

    decisions.register(registry, plugin)
    registry.add_kind(KindSpec(
        kind="RuleSet", plugin=plugin, schema=load_shipped_schema("ruleset.json"), compile=compile_ruleset,
        ids=(IdDecl("/spec/rules/*/id", "rule"),),
        description="event-condition-action rules (evaluated on durable-rules)",
    ))
    for name, (fn, required, description) in BUILTIN_ACTIONS.items():
        registry.add_action(ActionSpec(name, plugin, fn, description, {
            "type": "object", "required": list(required)}))
    expected_list = {"type": "array"}
    registry.add_step(StepSpec("post", plugin, step_post, {
        "type": "object", "required": ["ruleset", "event"], "additionalProperties": False,
        "properties": {
            "ruleset": {"type": "string", "description": "The RuleSet's metadata.name."},
            "event": {"type": "object", "description": "The event posted (the scope's 'event')."},
            "context": {"type": "object", "description": "More scope next to 'event' (merged over the facts)."},
            "actor": {"type": "string"},
            "fired": {"type": "array", "items": {"type": "string"}, "description": "Expected rule ids, in order."},
            "actions": {"type": "array", "items": {"type": "string"}, "description": "Expected action names."},
            "signals": {**expected_list, "description": "Expected signals (each: the keys given must match)."},
            "events": {**expected_list, "description": "Expected emitted events."},
            "changes": {"type": "object", "description": "Expected field changes."},
            "workflow_events": expected_list,
            "templates": expected_list,
        },
    }, "post an event into a rule set and check what fired"))
