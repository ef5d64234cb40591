"""Decisions that feed decisions: ``from: decision.output`` inputs, the ``Calculation`` kind, cycle checks.

A bundle's DecisionTables and Calculations form a graph (DMN's decision requirement graph): an input
``{id: base, from: base-vacation-days.days}`` takes the output ``days`` of the decision
``base-vacation-days``. Compiling checks that the decision and its output exist (RW631, RW632), that the
graph has no cycle (RW630) and that the output's values fit the input's declared type (RW411).
``decide`` evaluates the required decisions first (each once per call) and explains every step.

A decision's requirements are compiled once into a flat program (:func:`compile_plan`): the decisions in
dependency order, each reading its keys from where they come from (the caller's inputs or an earlier
output) without copying the inputs, lookup tables folded into the tables they feed, number and text
tests inline. The Decision objects of the steps, the completed inputs and every explanation are built
only when read, from the inputs and the outputs the run kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from regelwerk.diagnostics import did_you_mean
from regelwerk.frozen import Sealed

__all__ = ["DECISION_KINDS", "Calculation", "Computed", "build_plan", "build_steps", "compile_calculation",
           "compile_plan", "decision_of", "required_inputs", "run_program"]

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


_LOOKUP, _SCAN, _CALL = 0, 1, 2


def _step(decision: Any, binds: Sequence[tuple[str, int, str]]) -> tuple[Any, ...]:
    """One decision as a step of a compiled graph (a Calculation is always a call of its bound outputs)."""
    if isinstance(decision, Calculation):
        return ("call", decision._out, tuple(binds))
    return decision.program_step(binds)  # type: ignore[no-any-return]


def _keyable(value: Any) -> bool:
    kind = type(value)
    return kind is str or kind is int or kind is float  # never bool: True is not 1 here


class _Fused:
    """A step of a compiled graph covering the original steps ``start``..``end``; its entries (a tuple of the
    outputs of the steps from ``entry_start`` on, one per way it can end) are what a run appends."""

    def __init__(self, kind: int, start: int, entry_start: int, data: dict[str, Any]) -> None:
        self.kind = kind
        self.start = start
        self.entry_start = entry_start
        self.end = start
        self.data = data

    def entries(self) -> list[str]:
        """The names of its entry collections (each an entry or a mapping/tuple of entries)."""
        return ["table", "other"] if self.kind == _LOOKUP else ["rows", "default"]

    def extend(self, position: int, source: int, key: str, table: Mapping[Any, Any], otherwise: Any) -> None:
        """Fold a following lookup table (reading output ``key`` of step ``source`` of this one) into every
        entry: the lookup is made once, here, for each way this step can end."""
        offset = source - self.entry_start

        def grow(entry: tuple[Any, ...]) -> tuple[Any, ...]:
            value = entry[offset].get(key)
            return (*entry, table.get(value, otherwise) if _keyable(value) else otherwise)

        data = self.data
        if self.kind == _LOOKUP:
            data["table"] = {k: grow(v) for k, v in data["table"].items()}
            data["other"] = grow(data["other"])
        else:
            data["rows"] = tuple(grow(e) for e in data["rows"])
            data["default"] = grow(data["default"])
        self.end = position


def _fuse(raw: Sequence[tuple[Any, ...]]) -> list[_Fused]:
    """The raw steps, with a lookup that reads the step before it folded into that step's entries, and a
    lookup whose output indexes the next table's rows folded into that table's index."""
    fused: list[_Fused] = []
    for position, step in enumerate(raw):
        last = fused[-1] if fused else None
        if step[0] == "lookup":
            _, source, key, table, otherwise = step
            if last is not None and last.kind != _CALL and last.entry_start <= source <= last.end:
                last.extend(position, source, key, table, otherwise)
                continue
            fused.append(_Fused(_LOOKUP, position, position, {
                "source": source, "key": key, "table": {k: (v,) for k, v in table.items()}, "other": (otherwise,)}))
        elif step[0] == "scan":
            _, source, key, index, wild, tests, row_outputs, defaults = step
            data = {"tests": tests, "rows": tuple((o,) for o in row_outputs), "default": (defaults,)}

            def rows_for(value: Any, index: Any = index, wild: Any = wild) -> Any:
                return index.get(value, wild) if _keyable(value) else wild

            reads_lookup = last is not None and any(last.start <= test[0] <= last.end for row in tests for test in row)
            if (index is not None and source >= 0 and last is not None and last.kind == _LOOKUP
                    and last.start <= source <= last.end and not reads_lookup):
                # the index key is a lookup's output: index on what the lookup reads, once for every value
                offset, item = source - last.start, last.data
                data.update(source=item["source"], key=item["key"],
                            pre={k: (e, rows_for(e[offset].get(key))) for k, e in item["table"].items()},
                            pre_other=(item["other"], rows_for(item["other"][offset].get(key))))
                fused[-1] = _Fused(_SCAN, last.start, position, data)
                fused[-1].end = position
                continue
            data.update(source=source, key=key, pre={k: ((), rows) for k, rows in (index or {}).items()},
                        pre_other=((), wild))
            fused.append(_Fused(_SCAN, position, position, data))
        else:
            _, out, binds = step
            fused.append(_Fused(_CALL, position, position, {"out": out, "binds": binds}))
    return fused


def compile_plan(plan: Plan, top: Any = None) -> tuple[Any, ...]:
    """A plan compiled once to a flat program: step functions ``step(inputs, outs, now)`` that append the
    outputs of every original step to ``outs``, in order (:func:`run_program`).

    The steps are the required decisions in dependency order and, when given, the ``top`` decision itself
    last. Each step reads every key from where it comes from, resolved at compile time (the caller's inputs
    or an earlier step's output), so a run copies nothing: a lookup table is one dict lookup, a FIRST table
    a scan of its candidate rows with the compiled tests (comparisons of numbers and texts inline), anything
    else a call of the decision's bound outputs function over the inputs and its own bindings. A lookup
    that reads the step before it, or whose output indexes the next table, is folded into that step at
    compile time. No Decision objects and no explanations are built: :func:`build_steps` builds them from
    the inputs and the outputs when they are read.
    """
    order, top_binds = plan
    raw = [_step(decision, binds) for decision, binds in order] + ([_step(top, top_binds)] if top is not None else [])
    return tuple(_compile_step(item) for item in _fuse(raw))


def run_program(program: Sequence[Any], inputs: Mapping[str, Any], now: datetime | None
                ) -> list[Mapping[str, Any]]:
    """Run a compiled plan: the outputs of every original step, in order."""
    outs: list[Mapping[str, Any]] = []
    for step in program:
        step(inputs, outs, now)
    return outs


def _compile_step(item: _Fused) -> Any:
    """One fused step as a function ``step(inputs, outs, now)`` that appends its outputs to ``outs``."""
    from regelwerk.conditions import resolve_path

    data = item.data
    if item.kind == _LOOKUP:
        j, key, get, otherwise = data["source"], data["key"], data["table"].get, data["other"]

        def lookup(inputs: Mapping[str, Any], outs: list[Mapping[str, Any]], now: datetime | None) -> None:
            value = outs[j].get(key) if j >= 0 else inputs.get(key)
            vtype = type(value)
            outs += get(value, otherwise) if vtype is str or vtype is int or vtype is float else otherwise

        return lookup
    if item.kind == _CALL:
        out, binds = data["out"], data["binds"]

        def call(inputs: Mapping[str, Any], outs: list[Mapping[str, Any]], now: datetime | None) -> None:
            values: Mapping[str, Any] = inputs
            if binds:
                values = dict(inputs)
                for input_id, j, output in binds:
                    values[input_id] = outs[j].get(output)
            outs.append(out(values, now))

        return call
    tests, entries, default = data["tests"], data["rows"], data["default"]
    paths = any(path is not None for row in tests for _, _, path, _, _, _ in row)

    def candidates(pre: tuple[Any, ...], rows: Sequence[int]) -> tuple[tuple[tuple[Any, Any], ...], Any]:
        """Candidate rows as (tests, outputs) pairs, the outputs of the folded lookups before them included,
        and the outputs when none matches. A test is (source, key, op, operand, test), or with its path
        (source, key, path, op, operand, test) when some test reads a dotted path."""
        return tuple((tuple((tj, tkey, path, op, operand, test) if paths else (tj, tkey, op, operand, test)
                            for tj, tkey, path, test, op, operand in tests[i]), pre + entries[i])
                     for i in rows), pre + default

    source, key = data["source"], data["key"]
    pre_get = {k: candidates(pre, rows) for k, (pre, rows) in data["pre"].items()}.get
    pre_other = candidates(*data["pre_other"])
    numbers = (int, float)

    def scan(inputs: Mapping[str, Any], outs: list[Mapping[str, Any]], now: datetime | None) -> None:
        if source == -2:
            rows, otherwise = pre_other
        else:
            value = outs[source].get(key) if source >= 0 else inputs.get(key)
            vtype = type(value)
            rows, otherwise = (pre_get(value, pre_other) if vtype is str or vtype is int or vtype is float
                               else pre_other)
        for row_tests, entry in rows:
            for tj, tkey, op, operand, test in row_tests:
                value = outs[tj].get(tkey) if tj >= 0 else inputs.get(tkey)
                if op:
                    vtype = type(value)
                    if op <= 4:  # a number against one bound (never a bool, never NaN: it passed every bound)
                        if vtype is not int:
                            if vtype is float:
                                if value != value:  # noqa: PLR0124 - NaN, the one value unequal to itself
                                    break
                            elif vtype is bool or not isinstance(value, numbers):
                                break
                        if op == 1:
                            if value < operand:
                                break
                        elif op == 2:
                            if value <= operand:
                                break
                        elif op == 3:
                            if value > operand:
                                break
                        elif value >= operand:
                            break
                    elif op == 5:  # a text equal to the operand
                        if value != operand:
                            break
                    elif vtype is not str or value not in operand:  # a text in the operand
                        break
                elif not test(value):
                    break
            else:
                outs += entry
                return
        outs += otherwise

    def scan_paths(inputs: Mapping[str, Any], outs: list[Mapping[str, Any]], now: datetime | None) -> None:
        if source == -2:
            rows, otherwise = pre_other
        else:
            value = outs[source].get(key) if source >= 0 else inputs.get(key)
            rows, otherwise = pre_get(value, pre_other) if _keyable(value) else pre_other
        for row_tests, entry in rows:
            for tj, tkey, path, _, _, test in row_tests:
                value = outs[tj].get(tkey) if tj >= 0 else inputs.get(tkey)
                if path is not None:
                    value = resolve_path({path[0]: value}, path)
                if not test(value):
                    break
            else:
                outs += entry
                return
        outs += otherwise

    return scan_paths if paths else scan


def build_steps(order: Any, inputs: Mapping[str, Any], outs: Sequence[Mapping[str, Any]], now: datetime | None
                ) -> tuple[Any, ...]:
    """The Decision (or Computed) of every required decision of a graph run: each over the caller's inputs
    and its own bindings (as it read them), with the outputs the run computed."""
    from regelwerk.decisions.table import Decision

    steps: list[Any] = []
    for (decision, binds), outputs in zip(order, outs, strict=False):
        values: Mapping[str, Any] = inputs
        if binds:
            values = dict(inputs)
            for input_id, j, output in binds:
                values[input_id] = outs[j].get(output)
        steps.append(Computed(decision, decision.scope(values), outputs, ()) if isinstance(decision, Calculation)
                     else Decision(decision, values, None, outputs, now))
    return tuple(steps)


class Computed:
    """The result of a Calculation: ``outputs``, the required decisions taken (``steps``), ``explain``."""

    __slots__ = ("_calc", "_now", "_steps", "_values", "inputs", "outputs")

    def __init__(self, calc: Calculation, inputs: Mapping[str, Any], outputs: Mapping[str, Any],
                 steps: Sequence[Any], values: Mapping[str, Any] | None = None, now: datetime | None = None) -> None:
        self._calc = calc
        self.inputs = inputs
        self.outputs = outputs
        self._steps = steps
        self._values = values
        self._now = now

    @property
    def steps(self) -> tuple[Any, ...]:
        """The required decisions taken first; after a graph run built when first read."""
        steps = self._steps
        plan = self._calc._plan
        if isinstance(steps, list) and plan is not None:  # the outputs of a graph run
            self._steps = steps = build_steps(plan[0], self._values or self.inputs, steps, self._now)
        return tuple(steps)

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


class Calculation(Sealed):
    """A decision whose one output is computed by an expression over its inputs."""

    __slots__ = ("_graph", "_out", "_plan", "description", "expression", "input_ids", "inputs", "label", "name",
                 "output", "requires")

    def __init__(self, name: str, inputs: Sequence[tuple[str, tuple[str, ...]]], output: str, expression: Any,
                 requires: Sequence[Requirement] = (), label: str = "", description: str = "") -> None:
        self.name = name
        self.inputs = tuple(inputs)
        self.input_ids = tuple(i for i, _ in self.inputs)
        self.output = output
        self.expression = expression
        self.requires = tuple(requires)
        self._plan = build_plan(self.requires) if self.requires else None
        self._graph = compile_plan(self._plan) if self._plan is not None else None
        self.label = label
        self.description = description
        key = self.output

        def out(values: Mapping[str, Any], now: datetime | None) -> Mapping[str, Any]:
            return MappingProxyType({key: expression(self.scope(values), now or datetime.now(UTC))})

        self._out = out
        self._seal()

    def scope(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """What the expression reads: the values with each input read from its path."""
        from regelwerk.conditions import resolve_path

        scope = dict(values)
        for input_id, path in self.inputs:
            scope[input_id] = values.get(input_id) if path == (input_id,) else resolve_path(values, path)
        return scope

    def __repr__(self) -> str:
        return f"Calculation({self.name!r}: {self.output} = {self.expression.text})"

    def decide(self, inputs: Mapping[str, Any], now: datetime | None = None,
               memo: dict[str, Any] | None = None) -> Computed:
        """Compute the output for ``inputs`` (required decisions first)."""
        values: Mapping[str, Any] = inputs
        steps: Any = ()
        if self._graph is not None and self._plan is not None and memo is None:
            steps = run_program(self._graph, inputs, now)
            values = dict(inputs)
            for input_id, j, output in self._plan[1]:
                values[input_id] = steps[j].get(output)
        scope = self.scope(values)
        result = self.expression(scope, now or datetime.now(UTC))
        return Computed(self, scope, MappingProxyType({self.output: result}), steps, inputs, now)

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
