"""Registration of the ``DecisionTable`` kind: schema, compiler, the ``decide`` step and CLI command."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from regelwerk.registry import IdDecl, KindSpec, Registry, StepSpec

__all__ = ["parse_inputs", "register", "step_decide"]


def parse_value(text: str) -> Any:
    """A CLI value: JSON when it parses (numbers, true/false, null, lists), otherwise the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_inputs(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs into a nested mapping; a repeated key collects a list; ``a.b=1`` nests."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            from regelwerk.errors import UsageError

            raise UsageError(f"--input {pair!r} is not key=value", "write e.g. --input amount=1200")
        key, raw = pair.split("=", 1)
        value = parse_value(raw)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        last = parts[-1]
        if last in node:
            previous = node[last]
            node[last] = ([*previous, value] if isinstance(previous, list) and not isinstance(value, list)
                          else [previous, value])
        else:
            node[last] = value
    return out


def step_decide(ctx: Any, args: Mapping[str, Any], info: Any) -> None:
    """Scenario step: decide a table for inputs and compare outputs, matched rows or the error."""
    from regelwerk.decisions.table import DecisionConflict
    from regelwerk.scenarios import StepFailure

    table = ctx.compiled.get("DecisionTable", args["table"])
    inputs = {**ctx.facts, **dict(args.get("inputs") or {})}
    try:
        decision = table.decide(inputs, ctx.now)
    except DecisionConflict as exc:
        if args.get("error") == exc.code:
            return
        raise StepFailure(f"unexpected conflict: {exc}") from None
    if "error" in args:
        raise StepFailure(f"expected error {args['error']!r}, got outputs {decision.outputs!r}")
    problems = []
    for key, want in (args.get("outputs") or {}).items():
        got = decision.outputs.get(key)
        got = list(got) if isinstance(got, tuple) else got
        if got != want:
            problems.append(f"output {key}: expected {want!r}, got {got!r}")
    if "matched" in args and list(decision.matched) != list(args["matched"]):
        problems.append(f"matched rows: expected {list(args['matched'])}, got {list(decision.matched)}")
    if problems:
        raise StepFailure("; ".join(problems) + f" (explain: {json.dumps(decision.explain, default=str)})")


def _command() -> Any:
    import click
    from regelwerk.cli import ISO_MOMENT

    @click.command("decide")
    @click.argument("path", type=click.Path(exists=True))
    @click.argument("table")
    @click.option("--input", "-i", "pairs", multiple=True, metavar="KEY=VALUE",
                  help="An input value (JSON or text); repeat a key for a list; a.b=x nests.")
    @click.option("--now", default=None, type=ISO_MOMENT,
                  help="The clock for conditions that use it (ISO date-time).")
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
    def decide(path: str, table: str, pairs: Sequence[str], now: str | None, fmt: str) -> None:
        """Evaluate decision table TABLE of the bundle at PATH and explain the result."""
        import sys

        from regelwerk.cli import fail, load_definition
        from regelwerk.decisions.table import DecisionConflict
        from regelwerk.errors import UsageError
        from regelwerk.scenarios import parse_moment

        try:
            inputs = parse_inputs(pairs)
            moment = parse_moment(now) if now else None
        except (UsageError, ValueError) as exc:
            fail(str(exc), 2)
        model = load_definition(path, "DecisionTable", table)
        try:
            decision = model.decide(inputs, moment)
        except DecisionConflict as exc:
            if fmt == "json":
                click.echo(json.dumps(exc.to_dict(), indent=2, ensure_ascii=False, default=str))
            else:
                click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        if fmt == "json":
            click.echo(json.dumps(decision.to_dict(), indent=2, ensure_ascii=False, default=str))
            return
        explain = decision.explain
        for key, value in decision.outputs.items():
            click.echo(f"{key}: {value}")
        click.echo(f"hit policy: {explain['hit_policy']} -- {explain['chose']}")
        for row in explain["matched"]:
            click.echo(f"  matched {row['row']}: {'; '.join(row['because'])}")

    return decide


def register(registry: Registry, plugin: str) -> None:
    """Add the DecisionTable kind, the ``decide`` scenario step and ``regelwerk decide``."""
    from regelwerk.decisions.compile import compile_decision_table
    from regelwerk.validation import load_shipped_schema

    registry.add_kind(KindSpec(
        kind="DecisionTable", plugin=plugin, schema=load_shipped_schema("decisiontable.json"),
        compile=compile_decision_table,
        ids=(IdDecl("/spec/inputs/*/id", "input"), IdDecl("/spec/outputs/*/id", "output"),
             IdDecl("/spec/rows/*/id", "row")),
        description="a DMN decision table (inputs, outputs, rows, hit policy)",
    ))
    registry.add_step(StepSpec("decide", plugin, step_decide, {
        "type": "object", "required": ["table"], "additionalProperties": False,
        "properties": {
            "table": {"type": "string", "description": "The DecisionTable's metadata.name."},
            "inputs": {"type": "object", "description": "Input values (merged over the scenario facts)."},
            "outputs": {"type": "object", "description": "Expected outputs (only the keys given are compared)."},
            "matched": {"type": "array", "items": {"type": "string"}, "description": "Expected matched row ids."},
            "error": {"enum": ["decision_conflict"], "description": "Expect a UNIQUE/ANY conflict instead."},
        },
    }, "decide a decision table and check outputs and matched rows"))
    registry.add_command(_command())
    from regelwerk.decisions.action import PARAMS_SCHEMA, decide_action
    from regelwerk.registry import ActionSpec

    registry.add_action(ActionSpec("decisions.decide", plugin, decide_action,
                                   "decide a DecisionTable over the instance data, store its outputs", PARAMS_SCHEMA))
