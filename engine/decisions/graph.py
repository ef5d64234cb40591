"""Decisions that feed decisions: ``from: decision.output`` inputs, the ``Calculation`` kind, cycle checks.

A bundle's DecisionTables and Calculations form a graph (DMN's decision requirement graph): an input
``{id: base, from: base-vacation-days.days}`` takes the output ``days`` of the decision
``base-vacation-days``. Compiling checks that the decision and its output exist (RW631, RW632), that the
graph has no cycle (RW630) and that the output's values fit the input's declared type (RW411).
``decide`` evaluates the required decisions first (each once per call) and explains every step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from regelwerk.diagnostics import did_you_mean

__all__ = ["DECISION_KINDS", "Calculation", "Computed", "build_plan", "compile_calculation", "decision_of",
           "required_inputs", "run_plan"]

DECISION_KINDS = ("DecisionTable", "Calculation")

#: (input id, the required decision, its output id)
Requirement = tuple[str, Any, str]


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value is not None and not isinstance(value, (str, int, float, bool, list, dict)):
        return str(value)
    return value


Plan = tuple[tuple[tuple[Any, tuple[tuple[str, int, str], ...]], ...], tuple[tuple[str, int, str], ...]]


def build_plan(requires: Sequence[Requirement]) -> Plan:
    """Every decision a decision needs, transitively, once each and in dependency order, with the bindings
    (input id, index of the decision in the order, output) of each and of the decision itself."""
    order: list[tuple[Any, tuple[tuple[str, int, str], ...]]] = []
    index: dict[int, int] = {}

    def visit(decision: Any) -> int:
        key = id(decision)
        if key not in index:
            binds = tuple((input_id, visit(dep), output) for input_id, dep, output in decision.requires)
            order.append((decision, binds))
            index[key] = len(order) - 1
        return index[key]

    top = tuple((input_id, visit(dep), output) for input_id, dep, output in requires)
    return tuple(order), top


def run_plan(plan: Plan, inputs: Mapping[str, Any], now: datetime | None) -> tuple[dict[str, Any], list[Any]]:
    """Take every required decision in order; the inputs completed with their outputs, and the decisions."""
    from regelwerk.decisions.table import _OWN

    order, top = plan
    results: list[Any] = []
    for decision, binds in order:
        values: Mapping[str, Any] = inputs
        if binds:
            values = dict(inputs)
            for input_id, j, output in binds:
                values[input_id] = results[j].outputs.get(output)
        results.append(decision.decide(values, now, _OWN))
    completed = dict(inputs)
    for input_id, j, output in top:
        completed[input_id] = results[j].outputs.get(output)
    return completed, results


class Computed:
    """The result of a Calculation: ``outputs``, the required decisions taken (``steps``), ``explain``."""

    __slots__ = ("_calc", "inputs", "outputs", "steps")

    def __init__(self, calc: Calculation, inputs: Mapping[str, Any], outputs: Mapping[str, Any],
                 steps: Sequence[Any]) -> None:
        self._calc = calc
        self.inputs = inputs
        self.outputs = outputs
        self.steps = tuple(steps)

    matched: tuple[str, ...] = ()

    def __getitem__(self, key: str) -> Any:
        return self.outputs[key]

    @property
    def explain(self) -> dict[str, Any]:
        """Which inputs were used and what the expression computed."""
        calc = self._calc
        return {"decision": calc.name, "kind": "Calculation", "expression": calc.expression.text,
                "inputs": {c: _plain(self.inputs.get(c)) for c in calc.input_ids},
                "outputs": {k: _plain(v) for k, v in self.outputs.items()},
                "requires": [s.explain for s in self.steps]}

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: outputs and the explanation."""
        return {"decision": self._calc.name, "outputs": {k: _plain(v) for k, v in self.outputs.items()},
                "matched": [], "explain": self.explain}


class Calculation:
    """A decision whose one output is computed by an expression over its inputs."""

    __slots__ = ("_plan", "description", "expression", "input_ids", "inputs", "label", "name", "output",
                 "requires")

    def __init__(self, name: str, inputs: Sequence[tuple[str, tuple[str, ...]]], output: str, expression: Any,
                 requires: Sequence[Requirement] = (), label: str = "", description: str = "") -> None:
        self.name = name
        self.inputs = tuple(inputs)
        self.input_ids = tuple(i for i, _ in self.inputs)
        self.output = output
        self.expression = expression
        self.requires = tuple(requires)
        self._plan = build_plan(self.requires) if self.requires else None
        self.label = label
        self.description = description

    def __repr__(self) -> str:
        return f"Calculation({self.name!r}: {self.output} = {self.expression.text})"

    def decide(self, inputs: Mapping[str, Any], now: datetime | None = None,
               memo: dict[str, Any] | None = None) -> Computed:
        """Compute the output for ``inputs`` (required decisions first)."""
        from regelwerk.conditions import resolve_path
        from regelwerk.decisions.table import _OWN

        values: Mapping[str, Any] = inputs
        steps: list[Any] = []
        if self._plan is not None and memo is not _OWN:
            values, steps = run_plan(self._plan, inputs, now)
        scope = dict(values)
        for input_id, path in self.inputs:
            scope[input_id] = values.get(input_id) if path == (input_id,) else resolve_path(values, path)
        result = self.expression(scope, now or datetime.now(UTC))
        return Computed(self, scope, MappingProxyType({self.output: result}), steps)

    def evaluate(self, inputs: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
        """Only the outputs, as a fresh dict."""
        return dict(self.decide(inputs, now).outputs)


def _decision_docs(ctx: Any) -> dict[str, Any]:
    return {doc.name: doc for kind in DECISION_KINDS for doc in ctx.documents(kind)}


def _edges(doc: Any) -> list[tuple[str, str, str]]:
    """``(pointer, decision, output)`` of every ``from`` input of a decision document."""
    out = []
    spec = doc.spec if isinstance(doc.spec, Mapping) else {}
    for k, item in enumerate(spec.get("inputs") or ()):
        if isinstance(item, Mapping) and isinstance(item.get("from"), str):
            name, _, output = item["from"].partition(".")
            out.append((f"/spec/inputs/{k}/from", name, output))
    return out


def _cycle_from(start: str, docs: Mapping[str, Any]) -> list[str] | None:
    """A path start -> ... -> start through ``from`` edges, or None."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        doc = docs.get(node)
        if doc is None:
            continue
        for _, name, _ in _edges(doc):
            if name == start:
                return [*path, start]
            if name not in seen:
                seen.add(name)
                stack.append((name, [*path, name]))
    return None


def decision_of(ctx: Any, name: str) -> Any:
    """The compiled decision (table or calculation) named ``name``, or None."""
    for kind in DECISION_KINDS:
        if any(d.name == name for d in ctx.documents(kind)):
            return ctx.compiled(kind, name)
    return None


def _outputs_of(doc: Any) -> dict[str, Any]:
    spec = doc.spec if isinstance(doc.spec, Mapping) else {}
    if doc.kind == "Calculation":
        output = spec.get("output") or {}
        return {str(output.get("id")): output} if isinstance(output, Mapping) else {}
    return {str(o.get("id")): o for o in spec.get("outputs") or () if isinstance(o, Mapping)}


_TYPES: dict[str, dict[str, str]] = {
    "date": {"type": "string", "format": "date"}, "number": {"type": "number"}, "string": {"type": "string"},
    "boolean": {"type": "boolean"}, "duration": {"type": "string", "format": "duration"}}


def required_inputs(ctx: Any, doc: Any) -> tuple[list[Requirement], bool]:
    """Resolve a decision document's ``from`` inputs: the requirements, and False when a problem was reported."""
    from regelwerk.facts import check_value

    docs = _decision_docs(ctx)
    ok = True
    cycle = _cycle_from(doc.name, docs)
    if cycle is not None:
        first = _edges(doc)
        pointer = next((p for p, name, _ in first if name == cycle[1]), "/spec/inputs")
        ctx.report("RW630", "decisions depend on each other in a circle: " + " -> ".join(cycle), pointer,
                   "a decision may use the outputs of others only if none of them needs it back")
        return [], False
    requires: list[Requirement] = []
    spec = doc.spec
    for k, item in enumerate(spec.get("inputs") or ()):
        if not isinstance(item.get("from"), str):
            continue
        pointer = f"/spec/inputs/{k}/from"
        name, _, output = item["from"].partition(".")
        target = docs.get(name)
        if target is None:
            ctx.report("RW631", f"decision {name!r} does not exist", pointer,
                       did_you_mean(name, docs) or "decisions: " + ", ".join(sorted(docs)))
            ok = False
            continue
        outputs = _outputs_of(target)
        if not output and len(outputs) == 1:
            output = next(iter(outputs))
        if output not in outputs:
            ctx.report("RW632", f"decision {name!r} has no output {output!r}", pointer,
                       did_you_mean(output, outputs) or "outputs: " + ", ".join(sorted(outputs)))
            ok = False
            continue
        declared = item.get("type")
        schema = _TYPES.get(str(declared))
        if schema is not None:
            for value in outputs[output].get("values") or ():
                check_value(value, schema, str(item["id"]), pointer, ctx.report)
        compiled = decision_of(ctx, name)
        if compiled is None:
            ok = False  # its own problems were reported at its document
            continue
        requires.append((str(item["id"]), compiled, output))
    return requires, ok


def compile_calculation(ctx: Any, doc: Any) -> Calculation | None:
    """A Calculation: inputs (``field`` or ``from``), one output and its expression."""
    from regelwerk.decisions.expression import compile_expression

    spec = doc.spec
    requires, ok = required_inputs(ctx, doc)
    inputs = []
    for item in spec.get("inputs") or ():
        path = (str(item["id"]),) if "from" in item else tuple(str(item.get("field", item["id"])).split("."))
        inputs.append((str(item["id"]), path))
    expression, problems = compile_expression(spec["expression"], "/spec/expression")
    for problem in problems:
        ctx.report(problem.code, problem.message, problem.pointer, problem.hint)
    known = {i for i, _ in inputs}
    for path, where in expression.paths:
        if path[0] not in known:
            ctx.report("RW410", f"the expression reads {'.'.join(path)!r}, which is not an input", where,
                       did_you_mean(path[0], known) or "inputs: " + ", ".join(sorted(known)))
            ok = False
    if problems or not ok:
        return None
    return Calculation(doc.name, inputs, str(spec["output"]["id"]), expression, requires,
                       str(spec.get("label", "")), str(spec.get("description", "")))
