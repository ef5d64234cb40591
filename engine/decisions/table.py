"""The compiled ``DecisionTable``: a frozen model plus a fast pure-Python evaluator.

A table has inputs, outputs and rows. Each row holds one *entry* per input (a test
on that input's value) and output values. The hit policy (DMN) turns the matched
rows into the result. Compiling indexes the rows on one categorical input, so a
decision looks up its candidate rows in a dict instead of testing every row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from regelwerk.conditions import Condition, Node, resolve_path
from regelwerk.errors import RegelwerkError
from regelwerk.frozen import Sealed
from regelwerk.values import DaysTime, YearsMonths

__all__ = [
    "AGGREGATIONS",
    "HIT_POLICIES",
    "Decision",
    "DecisionConflict",
    "DecisionTable",
    "Entry",
    "InputColumn",
    "OutputColumn",
    "Row",
]

HIT_POLICIES = ("UNIQUE", "FIRST", "PRIORITY", "ANY", "RULE ORDER", "OUTPUT ORDER", "COLLECT")
AGGREGATIONS = ("SUM", "MIN", "MAX", "COUNT")
#: Policies whose result is one value per output (the others give a list per output).
SINGLE_POLICIES = frozenset({"UNIQUE", "FIRST", "PRIORITY", "ANY"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Tests a compiled decision graph evaluates inline (a test function's ``inline`` attribute): a number
#: >=, >, <=, < the operand (never a bool), a text equal to the operand, a text in the operand (a set).
INLINE_GE, INLINE_GT, INLINE_LE, INLINE_LT, INLINE_EQ, INLINE_IN = 1, 2, 3, 4, 5, 6
#: ``memo`` value meaning "the required decisions are already in the inputs: decide this table only".
_OWN: dict[str, Any] = {}


class DecisionConflict(RegelwerkError):
    """A UNIQUE table matched several rows, or an ANY table matched rows with different outputs."""

    code = "decision_conflict"

    def __init__(self, table: str, policy: str, rows: Sequence[str], inputs: Mapping[str, Any]) -> None:
        self.table = table
        self.policy = policy
        self.rows = tuple(rows)
        self.inputs = dict(inputs)
        what = "rows overlap" if policy == "UNIQUE" else "matched rows disagree"
        super().__init__(f"decision table {table!r} ({policy}): {what}: {', '.join(self.rows)} "
                         f"for inputs {self.inputs!r}")

    def to_dict(self) -> dict[str, Any]:
        """Include the table, the hit policy, the rows and the inputs."""
        return {**super().to_dict(), "table": self.table, "hit_policy": self.policy, "rows": list(self.rows),
                "inputs": self.inputs}


@dataclass(frozen=True, slots=True)
class InputColumn:
    """One input: its id, where its value comes from (a dotted path) and its declared type."""

    id: str
    path: tuple[str, ...]
    label: str = ""
    type: str = "any"
    values: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class OutputColumn:
    """One output: its id, allowed values (highest priority first) and default."""

    id: str
    label: str = ""
    values: tuple[Any, ...] = ()
    default: Any = None


@dataclass(frozen=True, slots=True)
class Entry:
    """A row's test on one input: ``op`` is any/eq/in/range/ops/condition; ``text`` renders it."""

    input: str
    op: str
    literals: tuple[Any, ...]
    text: str
    node: Node | None = None
    low: Any = None
    high: Any = None
    low_open: bool = False
    high_open: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    """A compiled row: its entries (non-trivial tests only), extra condition and outputs."""

    id: str
    index: int
    entries: tuple[Entry, ...]
    outputs: tuple[tuple[str, Any], ...]
    condition: Condition | None = None
    description: str = ""


class Decision:
    """The result of a decision: ``outputs`` (a read-only mapping), ``matched`` row ids, ``explain`` on request.

    ``matched`` and ``explain`` are computed when first read, so a caller that only needs the
    outputs pays nothing for them.
    """

    __slots__ = ("_explain", "_inputs", "_matched_idx", "_now", "_steps", "_table", "outputs")

    def __init__(self, table: DecisionTable, inputs: Mapping[str, Any], matched_idx: Sequence[int] | None,
                 outputs: Mapping[str, Any], now: datetime | None = None, steps: Any = ()) -> None:
        # unset slots stand for "not computed yet" (a decision on the fast path sets five attributes only)
        self._table = table
        self._inputs = inputs
        self._now = now
        self.outputs = outputs
        self._steps = steps
        if matched_idx is not None:
            self._matched_idx: Sequence[int] = matched_idx

    def _materialize(self) -> None:
        """After a graph run (``_steps`` holds the outputs of every step): the completed inputs and the steps."""
        from regelwerk.decisions.graph import build_steps

        outs = self._steps
        order, top = self._table._plan
        completed = dict(self._inputs)
        for input_id, j, output in top:
            completed[input_id] = outs[j].get(output)
        self._steps = build_steps(order, self._inputs, outs[:len(order)], self._now)
        self._inputs = completed

    @property
    def inputs(self) -> Mapping[str, Any]:
        """What the table decided over: the caller's inputs completed with the required decisions' outputs."""
        if isinstance(self._steps, list):
            self._materialize()
        return self._inputs

    @property
    def steps(self) -> Sequence[Any]:
        """The required decisions taken first (decision graphs), in dependency order; built when first read."""
        if isinstance(self._steps, list):
            self._materialize()
        return self._steps  # type: ignore[no-any-return]

    @steps.setter
    def steps(self, value: Sequence[Any]) -> None:
        self._steps = value

    def __repr__(self) -> str:
        return f"Decision(outputs={dict(self.outputs)!r}, matched={self.matched!r})"

    def __getitem__(self, key: str) -> Any:
        return self.outputs[key]

    def _indices(self) -> Sequence[int]:
        try:
            return self._matched_idx
        except AttributeError:
            table = self._table
            self._matched_idx = table.matching_rows(self.inputs, self._now, table.hit_policy == "FIRST")
            return self._matched_idx

    @property
    def matched(self) -> tuple[str, ...]:
        """The ids of the rows that matched, in row order (FIRST: only the first)."""
        rows = self._table.rows
        return tuple(rows[i].id for i in self._indices())

    @property
    def explain(self) -> dict[str, Any]:
        """Which inputs were used, which rows matched (and why), and how the hit policy chose."""
        try:
            return self._explain
        except AttributeError:
            self._explain: dict[str, Any] = self._table.explain(self.inputs, self._indices(), self.outputs)
            if self.steps:
                self._explain["requires"] = [step.explain for step in self.steps]
            return self._explain

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: outputs, matched rows and the explanation."""
        return {"table": self._table.name, "outputs": {k: _plain(v) for k, v in self.outputs.items()},
                "matched": list(self.matched), "explain": self.explain}


class _GraphDecision(Decision):
    """A decision of a compiled graph: ``outs`` are the outputs of every step (this table's last); the
    completed inputs, the matched rows, the steps and the explanation are built when first read."""

    __slots__ = ()

    def __init__(self, table: DecisionTable, inputs: Mapping[str, Any], outs: list[Mapping[str, Any]],
                 now: datetime | None) -> None:
        self._table = table
        self._inputs = inputs
        self._now = now
        self.outputs = outs[-1]
        self._steps = outs


Test = Callable[[Any], bool]


class DecisionTable(Sealed):
    """A compiled decision table. ``decide(inputs)`` returns a :class:`Decision`.

    ``inputs`` is a mapping; each input column reads its value by its dotted ``field`` path
    (default: its id). Condition-language entries and row conditions see the same mapping,
    plus ``now`` (injected; default the current time, only read when a condition uses it).
    """

    __slots__ = ("_all_tests", "_candidates", "_computed", "_fast", "_graph", "_index", "_index_contains",
                 "_index_path", "_out", "_plan", "_rank", "_resolve", "_wild", "aggregation", "description",
                 "hit_policy", "inputs", "label", "name", "outputs", "requires", "rows")

    def __init__(self, name: str, hit_policy: str, inputs: Sequence[InputColumn], outputs: Sequence[OutputColumn],
                 rows: Sequence[Row], tests: Sequence[Sequence[tuple[tuple[str, ...], Test]]],
                 conditions_need_now: bool = False, aggregation: str | None = None, label: str = "",
                 description: str = "", index: tuple[str, bool, Mapping[str, tuple[int, ...]],
                                                     tuple[int, ...]] | None = None,
                 requires: Sequence[tuple[str, Any, str]] = ()) -> None:
        self.name = name
        self.requires = tuple(requires)
        self._plan: Any = None
        if self.requires:
            from regelwerk.decisions.graph import build_plan

            self._plan = build_plan(self.requires)
        self.hit_policy = hit_policy
        self.aggregation = aggregation
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.rows = tuple(rows)
        self.label = label
        self.description = description
        self._all_tests = tuple(tuple(t) for t in tests)
        self._rank = self._ranks()
        if index is not None:
            input_id, contains, mapping, wild = index
            column = next(c for c in self.inputs if c.id == input_id)
            self._index_path: tuple[str, ...] | None = column.path
            self._index_contains = contains
            self._index: dict[Any, tuple[int, ...]] = dict(mapping)
            self._wild = wild
        else:
            self._index_path, self._index_contains, self._index, self._wild = None, False, {}, ()
        self._candidates = tuple(range(len(self.rows)))
        self._computed = frozenset(i for i, row in enumerate(self.rows)
                                   if any(callable(v) for _, v in row.outputs))
        self._fast = None if self._computed else self._fast_plan()
        self._out: Callable[[Mapping[str, Any], datetime | None], Mapping[str, Any]] = self._bind_outputs()
        self._graph: Any = None
        if self._plan is not None:
            from regelwerk.decisions.graph import compile_plan

            self._graph = compile_plan(self._plan, self)
        del conditions_need_now
        self._seal()

    def __repr__(self) -> str:
        return f"DecisionTable({self.name!r}, {self.hit_policy}, rows={len(self.rows)})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, DecisionTable) and other.name == self.name and other.rows == self.rows
                and other.inputs == self.inputs and other.outputs == self.outputs
                and other.hit_policy == self.hit_policy and other.aggregation == self.aggregation)

    def __hash__(self) -> int:
        return hash((self.name, self.rows))

    # --- evaluation --------------------------------------------------------------------------

    def _fast_plan(self) -> tuple[str, bool, dict[str, tuple[Any, ...]], tuple[Any, ...] | None,
                                  tuple[Mapping[str, Any], ...], Mapping[str, Any]] | None:
        """A pure lookup plan, when every row tests only the indexed input (FIRST and PRIORITY tables).

        Per key: the best row that key selects (by output priority then row order for PRIORITY, by row
        order for FIRST), so a decision is one dict lookup per value instead of a scan of the rows.
        """
        path = self._index_path
        if path is None or len(path) != 1 or self.hit_policy not in ("FIRST", "PRIORITY"):
            return None
        column = next(c.id for c in self.inputs if c.path == path)
        for row, tests in zip(self.rows, self._all_tests, strict=True):
            if row.condition is not None or len(tests) > 1 or any(e.input != column for e in row.entries):
                return None
            if len(row.entries) != len(tests):
                return None

        def order(i: int) -> tuple[Any, ...]:
            return (self._rank[i], i) if self.hit_policy == "PRIORITY" else (i,)

        best: dict[str, tuple[Any, ...]] = {}
        for key, rows in self._index.items():
            candidates = [i for i in rows if i not in self._wild]
            if candidates:
                best[key] = min(order(i) for i in candidates)
        wild = min((order(i) for i in self._wild), default=None)
        if not self._index_contains and wild is not None:
            best = {k: min(v, wild) for k, v in best.items()}
        outputs = tuple(MappingProxyType(self._row_outputs(i)) for i in range(len(self.rows)))
        return path[0], self._index_contains, best, wild, outputs, MappingProxyType(self._defaults())

    def _bind_outputs(self) -> Callable[[Mapping[str, Any], datetime | None], Mapping[str, Any]]:
        """This table's outputs for some inputs (its required decisions' outputs among them), as one bound
        function: what a compiled graph calls for a table it cannot evaluate inline."""
        decide = self.decide

        def outputs(values: Mapping[str, Any], now: datetime | None) -> Mapping[str, Any]:
            return decide(values, now, _OWN).outputs

        return outputs

    def program_step(self, binds: Sequence[tuple[str, int, str]]) -> tuple[Any, ...]:
        """This table as one step of a compiled decision graph (:func:`regelwerk.decisions.graph.compile_plan`).

        ``binds`` are the table's inputs taken from earlier steps: ``(input id, step, output)``. Every key the
        step reads is resolved here to where it comes from, ``(step, output)`` or ``(-1, key)`` (the caller's
        inputs), so a graph runs without copying the inputs:

        - a lookup table: ``("lookup", source, key, {value: outputs}, otherwise)``;
        - a FIRST table without row conditions or computed outputs: ``("scan", source, key, {value: rows} or
          None, other rows, tests per row, outputs per row, defaults)``; each test is ``(source, key, path or
          None, test, inline op, operand)``;
        - any other table: ``("call", outputs function, binds)``.
        """
        bound = {input_id: (j, output) for input_id, j, output in binds}

        def source(key: str) -> tuple[int, str]:
            return bound.get(key, (-1, key))

        fast = self._fast
        if fast is not None and not fast[1]:
            key, _, best, wild, outputs, defaults = fast
            return ("lookup", *source(key), {k: outputs[v[-1]] for k, v in best.items()},
                    defaults if wild is None else outputs[wild[-1]])
        if self.hit_policy != "FIRST" or self._computed or any(r.condition is not None for r in self.rows) or (
                self._index_contains):
            return ("call", self._out, tuple(binds))
        index_path = self._index_path
        skip_index = (index_path is not None and len(index_path) == 1
                      and sum(c.path == index_path for c in self.inputs) == 1)
        tests = tuple(tuple((*source(path[0]), path if len(path) > 1 else None, test,
                             *getattr(test, "inline", (0, None))) for path, test in row
                            if not (skip_index and path == index_path))
                      for row in self._all_tests)
        row_outputs = tuple(MappingProxyType(self._row_outputs(i)) for i in range(len(self.rows)))
        defaults = MappingProxyType(self._defaults())
        if index_path is None or len(index_path) != 1:
            return ("scan", -2, "", None, self._candidates, tests, row_outputs, defaults)
        return ("scan", *source(index_path[0]), dict(self._index), self._wild, tests, row_outputs, defaults)

    def _ranks(self) -> tuple[tuple[int, ...], ...]:
        """Per row: the priority rank of each output value (0 = highest), for PRIORITY / OUTPUT ORDER."""
        out = []
        for row in self.rows:
            values = dict(row.outputs)
            ranks = []
            for column in self.outputs:
                if column.values:
                    value = values.get(column.id, column.default)
                    ranks.append(column.values.index(value) if value in column.values else len(column.values))
            out.append(tuple(ranks))
        return tuple(out)

    def _candidate_rows(self, inputs: Mapping[str, Any]) -> Sequence[int]:
        path = self._index_path
        if path is None:
            return self._candidates
        value = inputs.get(path[0]) if len(path) == 1 else resolve_path(inputs, path)
        index = self._index
        if self._index_contains:
            if not isinstance(value, (list, tuple, set, frozenset)):
                return self._candidates  # a string input: 'contains' means substring, test every row
            found: set[int] = set(self._wild)
            for item in value:
                if type(item) is str:
                    hit = index.get(item)
                    if hit:
                        found.update(hit)
            return sorted(found)
        kind = type(value)
        if kind is str or kind is int or kind is float:  # never bool: True is not 1 here
            return index.get(value, self._wild)
        return self._wild

    def matching_rows(self, inputs: Mapping[str, Any], now: datetime | None = None, first: bool = False
                      ) -> list[int]:
        """Indices of every row whose entries all hold, in row order (only the first when ``first``)."""
        matched = []
        tests = self._all_tests
        rows = self.rows
        clock: datetime | None = now
        for i in self._candidate_rows(inputs):
            ok = True
            for path, test in tests[i]:
                value = inputs.get(path[0]) if len(path) == 1 else resolve_path(inputs, path)
                if not test(value):
                    ok = False
                    break
            if ok:
                condition = rows[i].condition
                if condition is not None:
                    if clock is None:
                        clock = datetime.now(UTC)
                    if not condition(inputs, clock):
                        continue
                matched.append(i)
                if first:
                    break
        return matched

    def decide(self, inputs: Mapping[str, Any], now: datetime | None = None,
               memo: dict[str, Any] | None = None) -> Decision:
        """Evaluate the table for ``inputs``; ``DecisionConflict`` for a UNIQUE overlap or ANY disagreement.

        A table whose inputs come ``from`` other decisions takes those first (each once per call, in
        dependency order); the result's ``steps`` are the decisions taken. ``memo`` is internal (any value:
        this table only, its required decisions' outputs being in ``inputs`` already).
        """
        program = self._graph
        if program is not None and memo is None:
            # the compiled graph: every required decision and this table, flat and in order, without copies
            # of the inputs; the completed inputs, the steps and explanations are built only when asked
            outs: list[Mapping[str, Any]] = []
            for step in program:
                step(inputs, outs, now)
            return _GraphDecision(self, inputs, outs, now)
        fast = self._fast
        if fast is not None:
            key, contains, best, wild, outputs, defaults = fast
            value: Any = inputs.get(key)
            kind = type(value)
            pick: tuple[Any, ...] | None = wild
            if contains:
                if kind is list or kind is tuple or kind is set or kind is frozenset:
                    get = best.get
                    for item in value:
                        if type(item) is str:
                            hit = get(item)
                            if hit is not None and (pick is None or hit < pick):
                                pick = hit
                    return Decision(self, inputs, None, defaults if pick is None else outputs[pick[-1]], now)
            else:
                if kind is str or kind is int or kind is float:
                    pick = best.get(value, wild)
                return Decision(self, inputs, None, defaults if pick is None else outputs[pick[-1]], now)
        policy = self.hit_policy
        matched = self.matching_rows(inputs, now, policy == "FIRST")
        rows = self.rows
        if policy in SINGLE_POLICIES:
            if not matched:
                return Decision(self, inputs, matched, MappingProxyType(self._defaults()), now)
            if policy == "FIRST":
                chosen = matched[0]
            elif policy == "PRIORITY":
                rank = self._rank
                chosen = min(matched, key=lambda i: rank[i]) if len(matched) > 1 else matched[0]
            elif policy == "UNIQUE":
                if len(matched) > 1:
                    raise DecisionConflict(self.name, policy, [rows[i].id for i in matched], inputs)
                chosen = matched[0]
            else:  # ANY
                first = rows[matched[0]].outputs
                if any(rows[i].outputs != first for i in matched[1:]):
                    raise DecisionConflict(self.name, policy, [rows[i].id for i in matched], inputs)
                chosen = matched[0]
            return Decision(self, inputs, matched, MappingProxyType(self._row_outputs(chosen, inputs, now)), now)
        return Decision(self, inputs, matched, MappingProxyType(self._multi(matched, inputs, now)), now)

    def evaluate(self, inputs: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
        """Only the outputs of :meth:`decide` (same rules), as a fresh dict."""
        return dict(self.decide(inputs, now).outputs)

    def _defaults(self) -> dict[str, Any]:
        return {c.id: c.default for c in self.outputs}

    def _row_outputs(self, index: int, inputs: Mapping[str, Any] | None = None,
                     now: datetime | None = None) -> dict[str, Any]:
        out = {c.id: c.default for c in self.outputs}
        out.update(self.rows[index].outputs)
        if index in self._computed:  # outputs computed by an expression over the inputs
            clock = now or datetime.now(UTC)
            for key, value in self.rows[index].outputs:
                if callable(value):
                    out[key] = value(inputs or {}, clock)
        return out

    def _multi(self, matched: list[int], inputs: Mapping[str, Any] | None = None,
               now: datetime | None = None) -> dict[str, Any]:
        policy = self.hit_policy
        order = matched
        if policy == "OUTPUT ORDER":
            rank = self._rank
            order = sorted(matched, key=lambda i: (rank[i], i))
        values: dict[str, list[Any]] = {c.id: [] for c in self.outputs}
        for i in order:
            row = self._row_outputs(i, inputs, now)
            for key, items in values.items():
                items.append(row[key])
        if policy != "COLLECT" or self.aggregation is None:
            return dict(values)
        return {key: _aggregate(self.aggregation, items, column.default)
                for (key, items), column in zip(values.items(), self.outputs, strict=True)}

    # --- explanation -------------------------------------------------------------------------

    def explain(self, inputs: Mapping[str, Any], matched: Sequence[int], outputs: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON-friendly account of one decision."""
        used = {c.id: _plain(resolve_path(inputs, c.path)) for c in self.inputs}
        # fail closed: a missing or null input satisfies no test (DMN); the explanation names each one
        missing = [c.id for c in self.inputs if used[c.id] is None]
        rows = []
        for i in matched:
            row = self.rows[i]
            rows.append({
                "row": row.id,
                "number": i + 1,
                "because": [e.text for e in row.entries] + ([row.condition.text] if row.condition else [])
                or ["(matches everything)"],
                "outputs": {k: _plain(v) for k, v in row.outputs},
                **({"description": row.description} if row.description else {}),
            })
        policy = self.hit_policy
        if not matched:
            chose = "no row matched: every output takes its default" + (
                f" (missing input: {', '.join(missing)})" if missing else "")
        elif policy == "FIRST":
            chose = f"FIRST: the first matching row ({self.rows[matched[0]].id}) decides"
        elif policy == "UNIQUE":
            chose = f"UNIQUE: exactly one row matched ({self.rows[matched[0]].id})"
        elif policy == "ANY":
            chose = "ANY: every matching row gives the same outputs"
        elif policy == "PRIORITY":
            best = min(matched, key=lambda i: self._rank[i])
            orders = "; ".join(f"{c.id}: {' > '.join(map(str, c.values))}" for c in self.outputs if c.values)
            chose = f"PRIORITY: row {self.rows[best].id} has the highest-priority output ({orders})"
        elif policy == "OUTPUT ORDER":
            chose = "OUTPUT ORDER: every matching row, highest-priority output first"
        elif policy == "RULE ORDER":
            chose = "RULE ORDER: every matching row, in row order"
        else:
            chose = f"COLLECT{' ' + self.aggregation if self.aggregation else ''}: every matching row" + (
                f", combined with {self.aggregation}" if self.aggregation else "")
        return {
            "table": self.name,
            "hit_policy": policy + (f" {self.aggregation}" if self.aggregation else ""),
            "inputs": used,
            "matched": rows,
            "chose": chose,
            "outputs": {k: _plain(v) for k, v in outputs.items()},
            **({"missing_inputs": missing} if missing else {}),
        }


def _plain(value: Any) -> Any:
    if callable(value) and hasattr(value, "text"):
        return f"= {value.text}"  # a computed output: its expression
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (YearsMonths, DaysTime)):
        return str(value)
    return value


def _aggregate(kind: str, items: list[Any], default: Any) -> Any:
    present = [v for v in items if v is not None]
    if kind == "COUNT":
        distinct = []
        for v in present:
            if v not in distinct:
                distinct.append(v)
        return len(distinct)
    if kind == "SUM":
        return sum(v for v in present if isinstance(v, (int, float)) and not isinstance(v, bool))
    if not present:
        return default
    try:
        return min(present) if kind == "MIN" else max(present)
    except TypeError:
        return default
