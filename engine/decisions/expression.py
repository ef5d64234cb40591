"""Value expressions: computed decision outputs and ``Calculation`` decisions, as YAML data (never eval).

An expression is a literal, a reference or one operator mapping::

    {add: [22, {max: [{field: case1}, {field: case3}]}, {field: case2}]}
    {concat: [{field: symptom}, " is in the list of Flu symptoms"]}
    {sub: [{now: {}}, {field: employee.hire_date}]}        # a days-time duration

- references: ``{field: path}`` (optionally ``plus``/``minus`` a duration, as in conditions), ``{now: {}}``;
- ``add``, ``sub``, ``mul``, ``div``: numbers, and DMN's date arithmetic (a date plus a duration, the
  duration between two dates, durations added); ``add`` of texts concatenates;
- ``min``, ``max``, ``sum``: of their arguments, or of one argument that is a list;
- ``concat``: texts (numbers and dates written as text); ``count``: the length of a list.

A missing value (null) makes the result null, as in DMN. Parsing reports problems as
:class:`~regelwerk.conditions.ConditionProblem` s with JSON pointers; evaluation is a tree of closures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from regelwerk.conditions import ConditionProblem, FieldRef, NowRef, _parse_operand, typed_literal
from regelwerk.frozen import Sealed
from regelwerk.values import add, subtract

__all__ = ["EXPRESSION_OPS", "Expression", "compile_expression", "is_expression", "referenced_paths"]

Eval = Callable[[Mapping[str, Any], datetime], Any]

EXPRESSION_OPS = ("add", "sub", "mul", "div", "min", "max", "sum", "concat", "count")
_REFS = ("field", "now")


def is_expression(value: Any) -> bool:
    """True for a mapping with exactly one operator or reference key (plus a reference's shift)."""
    if not isinstance(value, Mapping) or not value:
        return False
    heads = [k for k in value if k in EXPRESSION_OPS or k in _REFS]
    return len(heads) == 1 and set(value) - {*heads, "plus", "minus"} == set()


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _fold(fn: Callable[[Any, Any], Any]) -> Callable[[list[Any]], Any]:
    def run(values: list[Any]) -> Any:
        if not values or any(v is None for v in values):
            return None
        result = values[0]
        for value in values[1:]:
            result = fn(result, value)
            if result is None:
                return None
        return result

    return run


def _mul(a: Any, b: Any) -> Any:
    if _number(a) and _number(b):
        return a * b
    if _number(a) and hasattr(b, "__rmul__") and not isinstance(b, (str, list)):
        return b * a if isinstance(a, int) else None
    if _number(b) and hasattr(a, "__mul__") and not isinstance(a, (str, list)):
        return a * b if isinstance(b, int) else None
    return None


def _div(a: Any, b: Any) -> Any:
    if _number(a) and _number(b) and b != 0:
        result = a / b
        return int(result) if isinstance(result, float) and result.is_integer() else result
    return None


def _spread(values: list[Any]) -> list[Any] | None:
    if len(values) == 1 and isinstance(values[0], (list, tuple)):
        values = list(values[0])
    return None if any(v is None for v in values) else [typed_literal(v) for v in values]


def _extreme(pick: Callable[..., Any]) -> Callable[[list[Any]], Any]:
    def run(values: list[Any]) -> Any:
        items = _spread(values)
        if not items:
            return None
        try:
            return pick(items)
        except TypeError:
            return None

    return run


def _sum(values: list[Any]) -> Any:
    items = _spread(values)
    if items is None:
        return None
    return _fold(add)(items) if items else 0


def _text(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def _concat(values: list[Any]) -> Any:
    if any(v is None for v in values):
        return None
    return "".join(_text(v) for v in values)


def _count(values: list[Any]) -> Any:
    items = values[0] if len(values) == 1 else values
    return len(items) if isinstance(items, (list, tuple)) else None


_OPERATIONS: dict[str, Callable[[list[Any]], Any]] = {
    "add": _fold(add), "sub": _fold(subtract), "mul": _fold(_mul), "div": _fold(_div),
    "min": _extreme(min), "max": _extreme(max), "sum": _sum, "concat": _concat, "count": _count,
}


class Expression(Sealed):
    """A compiled expression: call it with ``(scope, now)``; ``text`` renders it; ``paths`` are the field paths
    it reads, each with its pointer."""

    __slots__ = ("_fn", "paths", "text")

    def __init__(self, fn: Eval, text: str, paths: tuple[tuple[tuple[str, ...], str], ...]) -> None:
        self._fn = fn
        self.text = text
        self.paths = paths
        self._seal()

    def __call__(self, scope: Mapping[str, Any], now: datetime) -> Any:
        return self._fn(scope, now)

    def __repr__(self) -> str:
        return f"Expression({self.text})"


def compile_expression(data: Any, pointer: str) -> tuple[Expression, list[ConditionProblem]]:
    """Compile expression data; problems come back with JSON pointers (never raised)."""
    problems: list[ConditionProblem] = []
    paths: list[tuple[tuple[str, ...], str]] = []
    fn, text = _compile(data, pointer, problems, paths)
    return Expression(fn, text, tuple(paths)), problems


def _compile(data: Any, pointer: str, problems: list[ConditionProblem], paths: list[tuple[tuple[str, ...], str]]
             ) -> tuple[Eval, str]:
    if isinstance(data, list):
        parts = [_compile(item, f"{pointer}/{i}", problems, paths) for i, item in enumerate(data)]
        fns = tuple(fn for fn, _ in parts)
        return (lambda scope, now: [fn(scope, now) for fn in fns]), "[" + ", ".join(t for _, t in parts) + "]"
    if not isinstance(data, Mapping):
        return (lambda scope, now: data), repr(data)
    heads = [k for k in data if k in EXPRESSION_OPS]
    if not heads and any(k in data for k in _REFS):
        operand = _parse_operand(dict(data), pointer, problems)
        from regelwerk.conditions import _describe_operand, _operand_fn

        if isinstance(operand, FieldRef):
            paths.append((operand.path, f"{pointer}/field"))
        value = _operand_fn(operand)
        return value, _describe_operand(operand) if isinstance(operand, (FieldRef, NowRef)) else repr(data)
    if len(heads) != 1 or len(data) != 1:
        from regelwerk.diagnostics import did_you_mean

        unknown = [k for k in data if k not in EXPRESSION_OPS]
        hint = did_you_mean(str(unknown[0]), EXPRESSION_OPS) if unknown else ""
        problems.append(ConditionProblem(
            "RW633", "an expression is a literal, {field: ...}, {now: {}} or one operator of "
            + ", ".join(EXPRESSION_OPS), pointer, hint or "write e.g. {add: [{field: a}, 1]}"))
        return (lambda scope, now: None), "?"
    head = heads[0]
    args = data[head]
    if not isinstance(args, list):
        args = [args]
    parts = [_compile(arg, f"{pointer}/{head}/{i}" if isinstance(data[head], list) else f"{pointer}/{head}",
                      problems, paths) for i, arg in enumerate(args)]
    if head in ("sub", "div") and len(parts) != 2:
        problems.append(ConditionProblem("RW633", f"{head} takes two values", f"{pointer}/{head}"))
    fns = tuple(fn for fn, _ in parts)
    operation = _OPERATIONS[head]
    text = f"{head}(" + ", ".join(t for _, t in parts) + ")"
    if len(fns) == 2:
        first, second = fns
        return (lambda scope, now: operation([first(scope, now), second(scope, now)])), text
    return (lambda scope, now: operation([fn(scope, now) for fn in fns])), text


def referenced_paths(data: Any) -> list[tuple[str, str]]:
    """Every ``{field: path}`` in expression data with its pointer (for the fact checks)."""
    out: list[tuple[str, str]] = []

    def walk(node: Any, pointer: str) -> None:
        if isinstance(node, Mapping):
            if isinstance(node.get("field"), str):
                out.append((f"{pointer}/field", node["field"]))
            for key, value in node.items():
                if key != "field":
                    walk(value, f"{pointer}/{key}")
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{pointer}/{i}")

    walk(data, "")
    return out
