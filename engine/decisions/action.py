"""The core ``decisions.decide`` workflow action: decide a DecisionTable over the instance data.

A workflow (``on_enter``, ``on_exit`` or transition ``actions``) asks a table and writes its outputs into
the instance data, in the transition's transaction; a later guard reads them. Parameters::

    {action: decisions.decide, with: {table: elearning-quiz-score, into: result,
                                      inputs: {module: {field: data.module}, pass_mark: 4}}}

- ``table``: the DecisionTable's name (required).
- ``inputs``: optional extra inputs; a value ``{field: dotted.path}`` is read from the action scope
  (``data``, ``actor``, ``instance``, ``event``), anything else is taken literally. They are laid over
  the instance data, which is always the base: a table input ``field: answers.q1`` reads ``data.answers.q1``.
- ``into``: a dotted path in the instance data that receives the outputs as one mapping; without it
  each output is written at the top level of the data (``score``, ``pass_mark``...).

List outputs (RULE ORDER, COLLECT without aggregation) are stored as JSON lists. The decision is
audited (``decision.<table>``: outputs and matched rows), so the data always says why.
A ``DecisionConflict`` (UNIQUE overlap at run time) rolls the transition back like any failing action.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, time
from typing import Any

from regelwerk.errors import UsageError

__all__ = ["PARAMS_SCHEMA", "decide_action"]

PARAMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["table"],
    "additionalProperties": False,
    "properties": {
        "table": {"type": "string", "description": "The DecisionTable to decide.", "x-document": "DecisionTable"},
        "inputs": {"type": "object", "description": "Extra inputs over the data; {field: path} reads the scope."},
        "into": {"type": "string", "description": "Dotted path in the data for the outputs (default: top level)."},
    },
}


def _plain(value: Any) -> Any:
    """JSON data: a computed date, date-time or time as ISO text, a duration as ISO-8601 (``P2Y``), as the
    instance data holds them (a computed ``expires_on`` was a ``date`` the audit row could not store)."""
    from regelwerk.values import DaysTime, YearsMonths

    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (date, time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, (YearsMonths, DaysTime)):
        return str(value)
    return value


def _inputs(ctx: Any) -> dict[str, Any]:
    from regelwerk.conditions import resolve_path

    inputs: dict[str, Any] = dict(ctx.data)
    extra = ctx.params.get("inputs") or {}
    if not isinstance(extra, Mapping):
        raise UsageError("decisions.decide: 'inputs' must be a mapping of input name to value or {field: path}")
    scope = ctx.scope()
    for name, value in extra.items():
        if isinstance(value, Mapping) and set(value) == {"field"}:
            value = resolve_path(scope, str(value["field"]).split("."))
        inputs[str(name)] = value
    return inputs


def decide_action(ctx: Any) -> None:
    """Decide ``params.table`` over the instance data (plus ``inputs``) and store the outputs."""
    from regelwerk.outbox.action import compiled_bundle_of
    from regelwerk.workflows.actions import set_path

    name = ctx.params.get("table")
    if not isinstance(name, str) or not name:
        raise UsageError("decisions.decide needs 'table' (a DecisionTable name)")
    table = compiled_bundle_of(ctx.engine).get("DecisionTable", name)
    decision = table.decide(_inputs(ctx), ctx.now)
    outputs = {str(k): _plain(v) for k, v in decision.outputs.items()}
    if not set_path(ctx.data, str(ctx.params.get("into") or ""), outputs):
        ctx.data.update(outputs)
    ctx.audit(f"decision.{name}", {"table": name, "outputs": outputs, "matched": list(decision.matched)})
