"""Scenario steps for workflows: start, fire, expect_state, expect_history, advance_clock.

Every step works on the per-scenario service ``"engine"`` created by :func:`scenario_engine`
(an :class:`regelwerk.runtime.Engine` on a temporary SQLite file, with the scenario clock). Other
areas reuse the same service name so their steps see the same instances.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from regelwerk.conditions import parse_duration
from regelwerk.errors import RegelwerkError
from regelwerk.registry import Registry, StepSpec
from regelwerk.scenarios import ScenarioContext, StepFailure, parse_moment

__all__ = ["get_engine", "register", "scenario_engine"]

ERRORS = ("TransitionNotAllowed", "PermissionDenied", "InvalidData", "ConflictError", "UnknownInstance",
          "UnknownDefinition", "UsageError", "NoRecipients")


def scenario_engine(ctx: ScenarioContext) -> Any:
    """Factory for ``ctx.service("engine", scenario_engine)``: an Engine on a temp SQLite file.

    Permissions: the service ``"permissions"`` if another step registered one, else a
    :class:`~regelwerk.workflows.ports.RoleTable` from the scenario fact ``permissions`` (action -> roles),
    else none: every permission-guarded start and event is refused (deny by default).
    """
    from regelwerk.runtime import Engine
    from regelwerk.workflows.ports import RoleTable

    workdir = Path(tempfile.mkdtemp(prefix="regelwerk-scenario-"))
    permissions = ctx.services.get("permissions")
    if permissions is None and isinstance(ctx.facts.get("permissions"), Mapping):
        permissions = RoleTable(ctx.facts["permissions"])
    counter = iter(range(1, 1 << 30))
    engine = Engine(ctx.compiled, store=f"sqlite:///{workdir / 'engine.sqlite'}", registry=ctx.registry,
                    clock=lambda: ctx.now, permissions=permissions,
                    id_factory=lambda: f"i{next(counter)}")

    def cleanup() -> None:
        engine.close()
        shutil.rmtree(workdir, ignore_errors=True)

    ctx.cleanups.append(cleanup)
    return engine


def get_engine(ctx: ScenarioContext) -> Any:
    """The scenario's engine (created on first use)."""
    return ctx.service("engine", scenario_engine)


def _actor(ctx: ScenarioContext, value: Any) -> Any:
    from regelwerk.actors import actor_from_facts

    return actor_from_facts(value, ctx.facts)


def step_start(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Start an instance: ``{workflow, id?, data?, actor?, expect_state?, expect_error?}``."""
    engine = get_engine(ctx)
    try:
        record = engine.start(args["workflow"], args.get("data") or {}, _actor(ctx, args.get("actor")), args.get("id"))
    except RegelwerkError as exc:
        _expect_error(args, exc)
        return
    if "expect_error" in args:
        raise StepFailure(f"expected {args['expect_error']}, but instance {record.id!r} started in {record.state!r}")
    if "expect_state" in args and record.state != args["expect_state"]:
        raise StepFailure(f"expected state {args['expect_state']!r}, got {record.state!r}")


def _expect_error(args: Mapping[str, Any], exc: RegelwerkError) -> None:
    wanted = args.get("expect_error")
    name = type(exc).__name__
    if wanted is None:
        raise StepFailure(f"refused with {name}: {exc}")
    if wanted != name:
        raise StepFailure(f"expected {wanted}, got {name}: {exc}")
    contains = args.get("reason_contains")
    if contains and contains not in str(exc):
        raise StepFailure(f"expected the refusal to mention {contains!r}, got: {exc}")


def step_fire(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Fire an event: ``{instance, event, actor?, data?, expect_state? | expect_error?, reason_contains?}``."""
    engine = get_engine(ctx)
    try:
        record = engine.fire(args["instance"], args["event"], _actor(ctx, args.get("actor")), args.get("data"))
    except RegelwerkError as exc:
        _expect_error(args, exc)
        return
    if "expect_error" in args:
        raise StepFailure(f"expected {args['expect_error']}, but {args['event']!r} moved "
                          f"{args['instance']!r} to {record.state!r}")
    if "expect_state" in args and record.state != args["expect_state"]:
        raise StepFailure(f"expected state {args['expect_state']!r}, got {record.state!r}")


def step_expect_state(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """The instance's state (and optionally data fields): ``{instance, state, data?}``."""
    record = get_engine(ctx).get(args["instance"])
    if "state" in args and record.state != args["state"]:
        raise StepFailure(f"expected {args['instance']!r} in state {args['state']!r}, got {record.state!r}")
    for key, value in (args.get("data") or {}).items():
        if record.data.get(key) != value:
            raise StepFailure(f"expected data.{key} = {value!r}, got {record.data.get(key)!r}")


def step_expect_history(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """The instance's history: ``{instance, events: [...]}`` and/or ``{entries: [{event, from, to, actor}]}``.

    ``events`` lists the events in order; ``$start``/``$migrate`` are left out unless listed.
    """
    history = get_engine(ctx).history(args["instance"])
    if "events" in args:
        wanted = list(args["events"])
        actual = [h.event for h in history]
        if not any(e.startswith("$") for e in wanted):
            actual = [e for e in actual if not e.startswith("$")]
        if actual != wanted:
            raise StepFailure(f"expected events {wanted}, got {actual}")
    if "entries" in args:
        rows = [h for h in history if not h.event.startswith("$")]
        for i, want in enumerate(args["entries"]):
            if i >= len(rows):
                raise StepFailure(f"expected at least {i + 1} history entries, got {len(rows)}")
            row = rows[i]
            got = {"event": row.event, "from": row.from_state, "to": row.to_state, "actor": row.actor}
            for key, value in want.items():
                if got.get(key) != value:
                    raise StepFailure(f"history entry {i + 1}: expected {key} {value!r}, got {got.get(key)!r}")


def step_advance_clock(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Move the clock (``P14D``, ``{by: P14D}`` or ``{to: moment}``) and fire the timers that are due."""
    by = args if isinstance(args, str) else args.get("by")
    if by is not None:
        duration = parse_duration(str(by))
        if duration is None:
            raise StepFailure(f"{by!r} is not an ISO-8601 duration")
        ctx.now = ctx.now + duration.delta()
    else:
        ctx.now = parse_moment(args["to"])
    outcomes = get_engine(ctx).fire_due_timers(ctx.now)
    expected = args.get("expect_fired") if isinstance(args, Mapping) else None
    if expected is not None:
        fired = [f"{o.instance_id}:{o.event}" for o in outcomes if o.status == "fired"]
        if fired != list(expected):
            raise StepFailure(f"expected timers {list(expected)} to fire, fired {fired}")


def register(registry: Registry, plugin: str) -> None:
    """Register the workflow scenario steps."""
    actor: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "object", "required": ["id"]}]}
    error = {"enum": list(ERRORS)}
    registry.add_step(StepSpec("start", plugin, step_start, {
        "type": "object", "required": ["workflow"], "additionalProperties": False,
        "properties": {"workflow": {"type": "string"}, "id": {"type": "string"}, "data": {"type": "object"},
                       "actor": actor, "expect_state": {"type": "string"}, "expect_error": error,
                       "reason_contains": {"type": "string"}},
    }, "start a workflow instance"))
    registry.add_step(StepSpec("fire", plugin, step_fire, {
        "type": "object", "required": ["instance", "event"], "additionalProperties": False,
        "properties": {"instance": {"type": "string"}, "event": {"type": "string"}, "actor": actor,
                       "data": {"type": "object"}, "expect_state": {"type": "string"}, "expect_error": error,
                       "reason_contains": {"type": "string"}},
    }, "fire an event as an actor, expecting a state or a typed refusal"))
    registry.add_step(StepSpec("expect_state", plugin, step_expect_state, {
        "type": "object", "required": ["instance"], "additionalProperties": False,
        "properties": {"instance": {"type": "string"}, "state": {"type": "string"}, "data": {"type": "object"}},
    }, "check an instance's state (and data fields)"))
    registry.add_step(StepSpec("expect_history", plugin, step_expect_history, {
        "type": "object", "required": ["instance"], "additionalProperties": False,
        "properties": {"instance": {"type": "string"}, "events": {"type": "array", "items": {"type": "string"}},
                       "entries": {"type": "array", "items": {"type": "object"}}},
    }, "check an instance's history"))
    registry.add_step(StepSpec("advance_clock", plugin, step_advance_clock, {
        "anyOf": [{"$ref": "common.json#/$defs/duration"},
                  {"type": "object", "additionalProperties": False,
                   "properties": {"by": {"$ref": "common.json#/$defs/duration"},
                                  "to": {"$ref": "common.json#/$defs/dateTime"},
                                  "expect_fired": {"type": "array", "items": {"type": "string"}}}}],
    }, "move the clock and fire due workflow timers"))
