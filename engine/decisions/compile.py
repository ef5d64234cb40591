"""Compile a ``DecisionTable`` document into a :class:`~regelwerk.decisions.table.DecisionTable`.

Each entry becomes either a fast test on the input's value (literal, list and range tests on
strings, numbers and booleans) or a node of the row's condition (everything else: field
references, the clock, ``ne``, ``matches``, ``{condition: ...}``), evaluated with the shared
condition language so both paths mean exactly the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from regelwerk.conditions import (
    AllOf,
    Compare,
    Condition,
    FieldRef,
    Literal,
    Node,
    compare,
    compile_condition,
    describe,
    present,
    typed_literal,
)
from regelwerk.decisions.expression import is_expression
from regelwerk.decisions.table import (
    INLINE_EQ,
    INLINE_GE,
    INLINE_GT,
    INLINE_IN,
    INLINE_LE,
    INLINE_LT,
    DecisionTable,
    Entry,
    InputColumn,
    OutputColumn,
    Row,
    Test,
)
from regelwerk.diagnostics import did_you_mean
from regelwerk.values import TEMPORAL_TYPES, parse_typed, type_name

__all__ = ["build_decision_table", "compile_decision_table", "find_overlaps"]

ANY = "-"
_COLLECTIONS = (list, tuple, set, frozenset)
_CONTAINERS = (list, tuple, set, frozenset, str)
_RANGE_OPS = ("lt", "le", "gt", "ge")
_ENTRY_OPS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "contains", "exists", "matches", "condition", "not",
              "field")
_REF_KEYS = ("field", "plus", "minus")


def _plain_str(value: Any) -> bool:
    """A string compared as text (not one the condition language reads as a date, time or duration)."""
    return isinstance(value, str) and parse_typed(value) is None


def _typed(value: Any) -> bool:
    """A literal that stands for a date, date-time, time of day or duration."""
    return isinstance(value, str) and parse_typed(value) is not None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _key(value: Any) -> tuple[bool, Any]:
    """Equality key that keeps True apart from 1 (as the condition language does)."""
    return (isinstance(value, bool), value)


def _eq_test(lit: Any) -> Test | None:
    if _typed(lit):
        value = typed_literal(lit)
        return lambda v: compare("eq", v, value) is True
    if _plain_str(lit):
        return _inline(lambda v: v == lit, INLINE_EQ, lit)
    if isinstance(lit, bool):
        return lambda v: v is lit
    if _number(lit):
        return lambda v: type(v) is not bool and isinstance(v, (int, float)) and v == lit
    return None


def _in_test(items: Sequence[Any]) -> Test | None:
    if items and all(_typed(i) for i in items):
        values = tuple(typed_literal(i) for i in items)
        return lambda v: compare("in", v, values) is True
    if items and all(_plain_str(i) for i in items):
        members = frozenset(items)
        return _inline(lambda v: isinstance(v, str) and v in members, INLINE_IN, members)
    if items and all(_number(i) for i in items):
        numbers = frozenset(items)
        return lambda v: type(v) is not bool and isinstance(v, (int, float)) and v in numbers
    return None


def _range_test(low: Any, low_open: bool, high: Any, high_open: bool) -> Test | None:
    bounds = [b for b in (low, high) if b is not None]
    if bounds and all(isinstance(b, TEMPORAL_TYPES) for b in bounds):
        return _typed_range_test(low, low_open, high, high_open)
    if bounds and all(_number(b) for b in bounds):
        kinds: tuple[type, ...] = (int, float)
    elif bounds and all(_plain_str(b) for b in bounds):
        kinds = (str,)
    else:
        return None

    def test(v: Any) -> bool:
        if not isinstance(v, kinds) or isinstance(v, bool) or (type(v) is float and math.isnan(v)):  # NaN: no number
            return False
        if low is not None and (v <= low if low_open else v < low):
            return False
        return not (high is not None and (v >= high if high_open else v > high))

    if kinds == (int, float) and (low is None) != (high is None):  # one numeric bound: inlined by graphs
        if low is not None:
            return _inline(test, INLINE_GT if low_open else INLINE_GE, low)
        return _inline(test, INLINE_LT if high_open else INLINE_LE, high)
    return test


def _inline(test: Test, op: int, operand: Any) -> Test:
    """Mark a test as one a compiled decision graph evaluates inline: ``(op, operand)`` (see INLINE_*)."""
    test.inline = (op, operand)  # type: ignore[attr-defined]
    return test


def _typed_range_test(low: Any, low_open: bool, high: Any, high_open: bool) -> Test:
    """A range over dates, times or durations: the value is read as that kind, never compared as text."""
    low_op = "gt" if low_open else "ge"
    high_op = "lt" if high_open else "le"

    def test(v: Any) -> bool:
        if low is not None and compare(low_op, v, low) is not True:
            return False
        return high is None or compare(high_op, v, high) is True

    return test


class _Problems:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.count = 0

    def report(self, code: str, message: str, pointer: str, hint: str = "") -> None:
        self.count += 1
        self.ctx.report(code, message, pointer, hint)


def _entry(column: InputColumn, raw: Any, pointer: str, ctx: Any, problems: _Problems
           ) -> tuple[Entry, Test | None, list[Node]]:
    """One entry: the model, its fast test (if any) and condition nodes for the rest."""
    field = FieldRef(column.path)
    name = column.id
    if raw == ANY:
        return Entry(name, "any", (), f"{name} is anything"), None, []
    if not isinstance(raw, Mapping):
        if isinstance(raw, list):
            items = tuple(raw)
            if any(isinstance(i, (Mapping, list)) for i in items):
                problems.report("RW625", "a list entry holds literal values only", pointer,
                                "use {in: {field: ...}} to compare with another input")
            test = _in_test(items)
            node = Compare(field, "in", Literal(items))
            return (Entry(name, "in", items, f"{name} in {list(items)!r}"), test, [] if test else [node])
        if isinstance(raw, float) and not math.isfinite(raw):
            problems.report("RW625", "numbers in a decision table must be finite", pointer)
        test = _eq_test(raw)
        node = Compare(field, "eq", Literal(raw))
        return Entry(name, "eq", (raw,), f"{name} = {raw!r}"), test, [] if test else [node]
    unknown = [k for k in raw if k not in _ENTRY_OPS]
    for key in unknown:
        problems.report("RW625", f"unknown entry operator {key!r}", f"{pointer}/{key}",
                        did_you_mean(str(key), _ENTRY_OPS) or "operators: " + ", ".join(_ENTRY_OPS))
    nodes: list[Node] = []
    if "not" in raw or "field" in raw:
        return _special_entry(column, raw, pointer, ctx, problems)
    if "condition" in raw:
        if len(raw) > 1:
            problems.report("RW625", "'condition' stands alone in an entry", pointer,
                            "put the other tests inside the condition")
        compiled = ctx.condition(raw["condition"], f"{pointer}/condition")
        return (Entry(name, "condition", (), compiled.text, compiled.model), None, [compiled.model])
    ops = {k: v for k, v in raw.items() if k in _ENTRY_OPS}
    literal_ops = {k: v for k, v in ops.items() if not isinstance(v, Mapping)}
    # A pure range of literals: the common "10 <= x < 20" case, fast and analysable.
    if ops and set(ops) <= set(_RANGE_OPS) and len(literal_ops) == len(ops):
        low = high = None
        low_open = high_open = False
        for op, value in ops.items():
            if op in ("gt", "ge"):
                if low is not None:
                    problems.report("RW625", "two lower bounds in one entry", f"{pointer}/{op}")
                low, low_open = typed_literal(value), op == "gt"
            else:
                if high is not None:
                    problems.report("RW625", "two upper bounds in one entry", f"{pointer}/{op}")
                high, high_open = typed_literal(value), op == "lt"
        if low is not None and high is not None:
            try:
                empty = low > high or (low == high and (low_open or high_open))
            except TypeError:
                empty = False
                problems.report("RW625", f"the bounds of a range must be of the same type, not "
                                         f"{type_name(low)} and {type_name(high)}", pointer)
            if empty:
                problems.report("RW625", f"this range can never match ({low!r} .. {high!r})", pointer,
                                "check the bounds: the lower bound must be below the upper bound")
        text = " and ".join(f"{name} {_SYMBOL[op]} {v!r}" for op, v in ops.items())
        test = _range_test(low, low_open, high, high_open)
        node_items: list[Node] = [Compare(field, op, Literal(v)) for op, v in ops.items()]
        entry = Entry(name, "range", (), text, None, low, high, low_open, high_open)
        return entry, test, [] if test else node_items
    tests: list[Test] = []
    texts = []
    for op, value in ops.items():
        data: dict[str, Any] = {"field": ".".join(column.path), op: value}
        compiled, found = compile_condition(data, f"{pointer}", ctx.functions)
        for problem in found:
            problems.report(problem.code if problem.code != "RW400" else "RW625", problem.message,
                            f"{pointer}/{op}" if problem.pointer == pointer else problem.pointer, problem.hint)
        if found:
            continue
        model = compiled.model
        texts.append(describe(model))
        fast: Test | None = None
        if op == "eq" and not isinstance(value, Mapping):
            fast = _eq_test(value)
        elif op == "in" and isinstance(value, list):
            fast = _in_test(value)
        elif op == "contains" and _plain_str(value):
            lit = value
            fast = _contains_test(lit)
        elif op == "exists":
            want = bool(value)
            fast = _exists_test(want)
        if fast is not None:
            tests.append(fast)
        else:
            nodes.append(model)
    if len(ops) == 1 and tests:
        op, value = next(iter(ops.items()))
        literals = tuple(value) if op == "in" else (value,)
        return Entry(name, op, literals, texts[0] if texts else ""), tests[0], nodes
    combined: Test | None = None
    if len(tests) == 1:
        combined = tests[0]
    elif tests:
        frozen = tuple(tests)
        combined = _all_test(frozen)
    return Entry(name, "ops", (), " and ".join(texts)), combined, nodes


def _entry_condition(path: str, raw: Any) -> Any:
    """An entry as condition-language data over the input at ``path`` (for not(...) and references)."""
    if raw == ANY:
        return True
    if isinstance(raw, list):
        return {"field": path, "in": raw}
    if not isinstance(raw, Mapping):
        return {"field": path, "eq": raw}
    if "field" in raw:
        return {"field": path, "eq": dict(raw)}
    if "not" in raw:
        return {"not": _entry_condition(path, raw["not"])}
    if "condition" in raw:
        return raw["condition"]
    return {"all": [{"field": path, op: value} for op, value in raw.items()]}


def _special_entry(column: InputColumn, raw: Mapping[str, Any], pointer: str, ctx: Any, problems: _Problems
                   ) -> tuple[Entry, Test | None, list[Node]]:
    """``{not: entry}`` (DMN not(...): true when the entry is false, unknown when it is unknown) and
    ``{field: path}`` (DMN's bare expression entry: the input equals that value)."""
    if ("not" in raw and len(raw) > 1) or ("field" in raw and set(raw) - set(_REF_KEYS)):
        problems.report("RW625", "'not' and a bare 'field' reference stand alone in an entry", pointer,
                        "write {not: {ge: 10}} or {field: other.value}; combine others inside the not")
    data = _entry_condition(".".join(column.path), raw)
    compiled, found = compile_condition(data, pointer, ctx.functions)
    for problem in found:
        problems.report(problem.code if problem.code != "RW400" else "RW625", problem.message, problem.pointer,
                        problem.hint)
    model = compiled.model
    op = "not" if "not" in raw else "eq"
    return Entry(column.id, op, (), describe(model), model), None, [model]


_COLUMN_TYPES = {"date": {"type": "string", "format": "date"}, "datetime": {"type": "string", "format": "date-time"},
                 "time": {"type": "string", "format": "time"}, "duration": {"type": "string", "format": "duration"},
                 "number": {"type": "number"}, "string": {"type": "string"}, "boolean": {"type": "boolean"},
                 "list": {"type": "array"}}


def _check_entry_types(column: InputColumn, raw: Any, pointer: str, problems: _Problems) -> None:
    """An entry's literals must be of the input's declared type (RW411), as in any other place."""
    from regelwerk.facts import check_value

    schema = _COLUMN_TYPES.get(column.type)
    if schema is None or raw == ANY:
        return
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            check_value(item, schema, column.id, f"{pointer}/{i}", problems.report)
    elif not isinstance(raw, Mapping):
        check_value(raw, schema, column.id, pointer, problems.report)
    else:
        for op, value in raw.items():
            if op == "not":
                _check_entry_types(column, value, f"{pointer}/not", problems)
            elif op in ("eq", "ne", "lt", "le", "gt", "ge") and not isinstance(value, Mapping):
                check_value(value, schema, column.id, f"{pointer}/{op}", problems.report)
            elif op in ("in", "not_in") and isinstance(value, list):
                for i, item in enumerate(value):
                    check_value(item, schema, column.id, f"{pointer}/{op}/{i}", problems.report)


def _contains_test(lit: str) -> Test:
    return lambda v: isinstance(v, _CONTAINERS) and lit in v


def _exists_test(want: bool) -> Test:
    return lambda v: present(v) is want  # NaN is missing, as to the conditions


def _all_test(tests: tuple[Test, ...]) -> Test:
    return lambda v: all(t(v) for t in tests)


_SYMBOL = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _literal_set(entry: Entry) -> set[tuple[bool, Any]] | None:
    if entry.op in ("eq", "in") and all(_plain_str(v) or _number(v) or isinstance(v, bool) for v in entry.literals):
        return {_key(v) for v in entry.literals}
    return None


def _in_range(value: Any, entry: Entry) -> bool | None:
    try:
        if entry.low is not None and (value <= entry.low if entry.low_open else value < entry.low):
            return False
        return not (entry.high is not None and (value >= entry.high if entry.high_open else value > entry.high))
    except TypeError:
        return None


def _disjoint(a: Entry | None, b: Entry | None, literals: Callable[[Entry], set[tuple[bool, Any]] | None] | None = None
              ) -> bool | None:
    """True when no value satisfies both entries, False when some value does, None when unknown."""
    if a is None or b is None or a.op == "any" or b.op == "any":
        return False
    literal_set = literals or _literal_set
    sa, sb = literal_set(a), literal_set(b)
    if sa is not None and sb is not None:
        return not (sa & sb)
    if sa is not None and b.op == "range":
        return not any(not is_bool and _in_range(v, b) is True for is_bool, v in sa)
    if sb is not None and a.op == "range":
        return _disjoint(b, a, literals)
    if a.op == "range" and b.op == "range":
        try:
            lo_a, hi_a, lo_b, hi_b = a.low, a.high, b.low, b.high
            if hi_a is not None and lo_b is not None and (
                    hi_a < lo_b or (hi_a == lo_b and (a.high_open or b.low_open))):
                return True
            return bool(hi_b is not None and lo_a is not None and (
                hi_b < lo_a or (hi_b == lo_a and (b.high_open or a.low_open))))
        except TypeError:
            return True
    return None


def find_overlaps(rows: Sequence[Row]) -> list[tuple[int, int, bool]]:
    """Pairs of rows that can match the same inputs: ``(i, j, certain)``; certain is False when unknown."""
    out = []
    entries = [{e.input: e for e in row.entries} for row in rows]
    sets: dict[int, set[tuple[bool, Any]] | None] = {}

    def literals(entry: Entry) -> set[tuple[bool, Any]] | None:  # each entry's literal set, computed once
        key = id(entry)
        if key not in sets:
            sets[key] = _literal_set(entry)
        return sets[key]

    for i, a in enumerate(rows):
        entries_a = entries[i]
        for j in range(i + 1, len(rows)):
            b = rows[j]
            entries_b = entries[j]
            certain = a.condition is None and b.condition is None
            for key in entries_a.keys() | entries_b.keys():
                verdict = _disjoint(entries_a.get(key), entries_b.get(key), literals)
                if verdict is True:
                    break
                if verdict is None:
                    certain = False
            else:
                out.append((i, j, certain))
    return out


def _choose_index(columns: Sequence[InputColumn], rows: Sequence[Row]
                  ) -> tuple[str, bool, dict[str, tuple[int, ...]], tuple[int, ...]] | None:
    best: tuple[int, str, bool, dict[str, tuple[int, ...]], tuple[int, ...]] | None = None
    for column in columns:
        mapping: dict[str, list[int]] = {}
        wild: list[int] = []
        mode: bool | None = None
        ok = True
        for row in rows:
            entry = next((e for e in row.entries if e.input == column.id), None)
            if entry is None or entry.op == "any":
                wild.append(row.index)
                continue
            contains = entry.op == "contains"
            if entry.op not in ("eq", "in", "contains") or not all(
                    _plain_str(v) or (_number(v) and entry.op != "contains") for v in entry.literals):
                ok = False
                break
            if mode is None:
                mode = contains
            elif mode != contains:
                ok = False
                break
            for value in entry.literals:
                mapping.setdefault(value, []).append(row.index)
        if not ok or mode is None:
            continue
        indexed = len(rows) - len(wild)
        if indexed < 2:
            continue
        final = {k: tuple(sorted(set(v) | set(wild))) for k, v in mapping.items()}
        if best is None or indexed > best[0]:
            best = (indexed, column.id, mode, final, tuple(wild))
    if best is None:
        return None
    return best[1], best[2], best[3], best[4]


def compile_decision_table(ctx: Any, doc: Any) -> DecisionTable | None:
    """The kind compiler: schema, ids and references were checked by the core already."""
    spec = doc.spec
    problems = _Problems(ctx)
    policy = spec.get("hitPolicy", "UNIQUE")
    aggregation = spec.get("aggregation")
    if aggregation and policy != "COLLECT":
        problems.report("RW624", f"aggregation {aggregation} needs hitPolicy COLLECT", "/spec/aggregation")
    inputs = tuple(
        InputColumn(i["id"], (str(i["id"]),) if "from" in i else tuple(str(i.get("field", i["id"])).split(".")),
                    i.get("label", ""), i.get("type", "any"), tuple(i.get("values", ())))
        for i in spec["inputs"])
    requires: list[Any] = []
    if any("from" in i for i in spec["inputs"]):
        from regelwerk.decisions.graph import required_inputs

        requires, ok = required_inputs(ctx, doc)
        if not ok:
            problems.count += 1
    outputs = tuple(
        OutputColumn(o["id"], o.get("label", ""), tuple(o.get("values", ())), o.get("default"))
        for o in spec["outputs"])
    for k, column in enumerate(inputs):
        if any(not part for part in column.path):
            problems.report("RW625", f"field {'.'.join(column.path)!r} is not a dotted path",
                            f"/spec/inputs/{k}/field")
    for k, out_column in enumerate(outputs):
        if out_column.values and out_column.default is not None and out_column.default not in out_column.values:
            problems.report("RW623", f"default {out_column.default!r} is not one of the output's values",
                            f"/spec/outputs/{k}/default", "values: " + ", ".join(map(str, out_column.values)))
    if policy in ("PRIORITY", "OUTPUT ORDER") and not any(o.values for o in outputs):
        problems.report("RW626", f"hit policy {policy} orders rows by output values: give at least one output "
                                 "a 'values' list (highest priority first)", "/spec/hitPolicy")
    by_input = {c.id: c for c in inputs}
    by_output = {c.id: c for c in outputs}
    rows: list[Row] = []
    all_tests: list[list[tuple[tuple[str, ...], Test]]] = []
    for r, raw in enumerate(spec["rows"]):
        base = f"/spec/rows/{r}"
        row_id = str(raw.get("id", f"row{r + 1}"))
        entries: list[Entry] = []
        tests: list[tuple[tuple[str, ...], Test]] = []
        nodes: list[Node] = []
        for key, value in (raw.get("when") or {}).items():
            pointer = f"{base}/when/{key}"
            found = by_input.get(key)
            if found is None:
                problems.report("RW621", f"unknown input {key!r}", pointer,
                                did_you_mean(key, by_input) or "inputs: " + ", ".join(by_input))
                continue
            _check_entry_types(found, value, pointer, problems)
            entry, test, more = _entry(found, value, pointer, ctx, problems)
            if found.values and entry.op in ("eq", "in"):
                for literal in entry.literals:
                    if literal not in found.values:
                        problems.report("RW627", f"{literal!r} is not one of the values of input {key!r}", pointer,
                                        did_you_mean(str(literal), map(str, found.values))
                                        or "values: " + ", ".join(map(str, found.values)))
            if entry.op != "any":
                entries.append(entry)
            if test is not None:
                tests.append((found.path, test))
            nodes.extend(more)
        if "condition" in raw:
            extra = ctx.condition(raw["condition"], f"{base}/condition")
            nodes.append(extra.model)
        condition = None
        if nodes:
            condition = Condition(nodes[0] if len(nodes) == 1 else AllOf(tuple(nodes)), ctx.functions)
        row_outputs = []
        for key, value in raw["then"].items():
            pointer = f"{base}/then/{key}"
            target = by_output.get(key)
            if target is None:
                problems.report("RW622", f"unknown output {key!r}", pointer,
                                did_you_mean(key, by_output) or "outputs: " + ", ".join(by_output))
                continue
            if is_expression(value):
                row_outputs.append((key, _output_expression(value, pointer, by_input, problems)))
                continue
            if target.values and value not in target.values:
                problems.report("RW623", f"{value!r} is not one of the values of output {key!r}", pointer,
                                did_you_mean(str(value), map(str, target.values))
                                or "values: " + ", ".join(map(str, target.values)))
            if aggregation == "SUM" and not _number(value):
                problems.report("RW624", f"COLLECT SUM adds numbers; {value!r} is not a number", pointer)
            row_outputs.append((key, _freeze(value)))
        rows.append(Row(row_id, r, tuple(entries), tuple(sorted(row_outputs)), condition,
                        str(raw.get("description", ""))))
        all_tests.append(tests)
    if problems.count:
        return None
    if policy == "UNIQUE":
        for i, j, certain in find_overlaps(rows):
            if certain:
                problems.report("RW620", f"rows {rows[i].id} and {rows[j].id} overlap: some inputs match both, "
                                         "which a UNIQUE table forbids", f"/spec/rows/{j}",
                                f"make the entries exclusive, or use hitPolicy FIRST or PRIORITY "
                                f"(row {rows[i].id} is at line {_line(doc, i)})")
        if problems.count:
            return None
    return DecisionTable(doc.name, policy, inputs, outputs, rows, all_tests, aggregation=aggregation,
                         label=str(spec.get("label", "")), description=str(spec.get("description", "")),
                         index=_choose_index(inputs, rows), requires=requires)


def _output_expression(value: Any, pointer: str, by_input: Mapping[str, InputColumn], problems: _Problems
                       ) -> Any:
    """An output computed from the inputs (``{concat: [{field: symptom}, ...]}``): its paths must read inputs."""
    from regelwerk.decisions.expression import compile_expression

    expression, found = compile_expression(value, pointer)
    for problem in found:
        problems.report(problem.code, problem.message, problem.pointer, problem.hint)
    known = {c.path[0] for c in by_input.values()} | set(by_input)
    for path, where in expression.paths:
        if path[0] not in known:
            problems.report("RW410", f"the output expression reads {'.'.join(path)!r}, which is not an input",
                            where, did_you_mean(path[0], known) or "inputs: " + ", ".join(sorted(by_input)))
    return expression


def _line(doc: Any, row: int) -> int:
    from regelwerk.source import YMap, locate

    return locate(doc.data, f"/spec/rows/{row}").line if isinstance(doc.data, YMap) else row + 1


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


class _Derived:
    """A stand-in document for a table that a pack kind derives from its own document."""

    def __init__(self, name: str, spec: Mapping[str, Any]) -> None:
        self.name = name
        self.spec = spec
        self.data = {"spec": spec}


def build_decision_table(ctx: Any, name: str, spec: Mapping[str, Any]) -> DecisionTable | None:
    """Compile a table from plain ``spec`` data (a pack kind emitting a core DecisionTable).

    Problems are reported through ``ctx`` at the current document (the pack's document).
    """
    return compile_decision_table(ctx, _Derived(name, spec))
