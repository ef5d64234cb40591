"""The one condition language shared by every kind.

A condition is YAML data, never a string to parse at run time::

    all:
      - {field: employee.department, eq: sales}
      - {field: employee.hire_date, plus: P6W, le: {now: {}}}
      - any:
          - {field: actor.roles, contains: beheerder}
          - not: {field: data.amount, gt: 1000}
      - {fn: is_weekday, args: [{now: {}}]}

It compiles once into a frozen model (for golden tests and for translation into
other engines' formats) and into a Python callable that evaluates it against a
scope mapping and an injected ``now``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from dateutil.relativedelta import relativedelta
from regelwerk.frozen import Sealed
from regelwerk.values import DaysTime, YearsMonths, parse_typed

__all__ = [
    "OPERATORS",
    "AllOf",
    "AnyOf",
    "Call",
    "Compare",
    "Condition",
    "ConditionProblem",
    "Const",
    "Duration",
    "FieldRef",
    "Literal",
    "NotOf",
    "NowRef",
    "compare",
    "compile_condition",
    "field_paths",
    "parse_duration",
    "present",
    "reads_actor",
    "resolve_path",
    "to_temporal",
    "typed_literal",
]

OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "contains", "exists", "matches")
_SHIFT_KEYS = ("plus", "minus")

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


@dataclass(frozen=True, slots=True)
class Duration:
    """An ISO-8601 duration with calendar parts (P1M is a month, not 30 days)."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0
    text: str = ""

    def delta(self, sign: int = 1) -> relativedelta:
        """The calendar-aware delta (month ends are clipped: 31 Jan + P1M = 28/29 Feb); one shared instance per
        duration and sign (schedules and timers ask for it per employee and per instance; nobody changes it)."""
        return _delta(self.years, self.months, self.weeks, self.days, self.hours, self.minutes, self.seconds, sign)

    def after(self, moment: datetime) -> datetime:
        """``moment`` plus this duration (calendar-aware; a plain timedelta when there are no years or months)."""
        if self.years or self.months:
            return moment + self.delta()
        return moment + _fixed(self.weeks, self.days, self.hours, self.minutes, self.seconds)

    def day_delta(self) -> timedelta | relativedelta:
        """The delta to add to or take from a date: a plain timedelta for weeks and days (date arithmetic with it is
        fast), the calendar-aware one when the duration has years, months or a time part."""
        if self.years or self.months or self.has_time:
            return self.delta()
        return _fixed(self.weeks, self.days, 0, 0, 0)

    @property
    def has_time(self) -> bool:
        """True when the duration has hours, minutes or seconds."""
        return bool(self.hours or self.minutes or self.seconds)


@lru_cache(maxsize=1024)
def _delta(years: int, months: int, weeks: int, days: int, hours: int, minutes: int, seconds: int,
           sign: int) -> relativedelta:
    return relativedelta(years=sign * years, months=sign * months, weeks=sign * weeks, days=sign * days,
                         hours=sign * hours, minutes=sign * minutes, seconds=sign * seconds)


@lru_cache(maxsize=1024)
def _fixed(weeks: int, days: int, hours: int, minutes: int, seconds: int) -> timedelta:
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


#: The longest duration a definition may name (100 years): longer ones cannot be added to a date (year 9999
#: is the last) and no HR rule needs them, so the compiler refuses them rather than the runtime overflowing.
MAX_DURATION_DAYS = 36_525


def parse_duration(text: str) -> Duration | None:
    """Parse ``P6W``, ``P3M``, ``P1Y2M``, ``PT48H``...; None when it is not a valid duration or is longer than
    :data:`MAX_DURATION_DAYS`."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match:
        return None
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    approx_days = (parts.get("years", 0) * 366 + parts.get("months", 0) * 31 + parts.get("weeks", 0) * 7
                   + parts.get("days", 0) + parts.get("hours", 0) / 24 + parts.get("minutes", 0) / 1440
                   + parts.get("seconds", 0) / 86400)
    if approx_days > MAX_DURATION_DAYS:
        return None
    return Duration(text=text, **parts)


# --- the model ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shift:
    """Add (sign 1) or subtract (sign -1) a duration."""

    sign: int
    duration: Duration


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A value read from the scope by a dotted path, optionally shifted in time."""

    path: tuple[str, ...]
    shift: Shift | None = None


@dataclass(frozen=True, slots=True)
class NowRef:
    """The injected clock, optionally shifted."""

    shift: Shift | None = None


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal value (scalar or a tuple for in/not_in)."""

    value: Any


Operand = FieldRef | NowRef | Literal


@dataclass(frozen=True, slots=True)
class Compare:
    """``left <op> right``."""

    left: FieldRef
    op: str
    right: Operand


@dataclass(frozen=True, slots=True)
class Call:
    """A registered condition function; true when it returns a truthy value."""

    name: str
    args: tuple[Operand, ...]


@dataclass(frozen=True, slots=True)
class AllOf:
    """True when every item is true (and for an empty list)."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """True when any item is true (false for an empty list)."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class NotOf:
    """Negation."""

    item: Node


@dataclass(frozen=True, slots=True)
class Const:
    """A literal ``true`` or ``false`` condition."""

    value: bool


Node = AllOf | AnyOf | NotOf | Compare | Call | Const


@dataclass(frozen=True, slots=True)
class ConditionProblem:
    """A problem found while compiling a condition (turned into a Diagnostic by the caller)."""

    code: str
    message: str
    pointer: str
    hint: str = ""


# --- evaluation helpers -------------------------------------------------------------------

_MISSING = object()


def resolve_path(scope: Any, path: Sequence[str]) -> Any:
    """Follow a dotted path through mappings, lists (by index) and attributes; None when missing."""
    node = scope
    for part in path:
        if type(node) is dict or isinstance(node, Mapping):  # a plain dict first: the ABC check is slow
            node = node.get(part, _MISSING)
        elif isinstance(node, (list, tuple)) and part.lstrip("-").isdigit():
            index = int(part)
            node = node[index] if -len(node) <= index < len(node) else _MISSING
        else:
            node = getattr(node, part, _MISSING) if not isinstance(node, (str, int, float)) else _MISSING
        if node is _MISSING:
            return None
    return node


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# the extended ISO-8601 forms of common.json#/$defs/dateTime; Python 3.11's fromisoformat would also take
# basic forms such as "20260228", which are as likely to be employee numbers as dates
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?$")


def to_temporal(value: Any) -> date | datetime | None:
    """Coerce a date, datetime or ISO-8601 string to a date/datetime (aware, UTC for naive); else None."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            if _DATE_RE.match(value):
                return date.fromisoformat(value)
            if not _DATETIME_RE.match(value):
                return None
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _shifted(value: Any, shift: Shift | None) -> Any:
    if shift is None or value is None:
        return value
    temporal = to_temporal(value)
    if temporal is None:
        return None
    if isinstance(temporal, datetime) or not shift.duration.has_time:
        return temporal + shift.duration.delta(shift.sign)
    moment = datetime(temporal.year, temporal.month, temporal.day, tzinfo=UTC)
    return moment + shift.duration.delta(shift.sign)


_TYPED = (date, time, YearsMonths, DaysTime)  # datetime is a date


def _as_value(x: Any) -> Any:
    """A typed value, or None when ``x`` is neither typed nor ISO text of a typed value."""
    if isinstance(x, _TYPED):
        if isinstance(x, datetime) and x.tzinfo is None:
            return x.replace(tzinfo=UTC)
        return x
    if isinstance(x, str):
        return parse_typed(x)
    return None


def _meet(ta: Any, tb: Any) -> tuple[Any, Any] | None:
    """Two typed values made comparable: a date meets a date-time at the date; other kinds never meet."""
    a_dt, b_dt = isinstance(ta, datetime), isinstance(tb, datetime)
    if a_dt != b_dt and isinstance(ta, date) and isinstance(tb, date):
        da = ta.date() if isinstance(ta, datetime) else ta
        db = tb.date() if isinstance(tb, datetime) else tb
        return da, db
    if type(ta) is not type(tb) and not (a_dt and b_dt):
        return None
    return ta, tb


def _align(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Make two values comparable, or None when they are not (DMN: the comparison is null, never true).

    Dates, date-times, times of day and durations compare as values, also when written as ISO text:
    ``PT8H < PT10H``, ``P9M < P10M``, ``P1D = PT24H``, and equal instants with different offsets are equal.
    """
    kind = type(a)
    if kind is type(b) and (kind is int or kind is float):  # the common case, first (bool is neither)
        return a, b
    a_t = isinstance(a, _TYPED)
    b_t = isinstance(b, _TYPED)
    if a_t or b_t:
        ta, tb = _as_value(a), _as_value(b)
        if ta is None or tb is None:
            return None
        return _meet(ta, tb)
    if isinstance(a, str) and isinstance(b, str):
        ta, tb = parse_typed(a), parse_typed(b)
        if ta is not None and tb is not None:
            return _meet(ta, tb)
        return a, b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return tuple(a), tuple(b)  # a YAML list literal compiles to a tuple
    ka, kb = _kind(a), _kind(b)
    if ka != kb and ka is not None and kb is not None:
        # values of different kinds never compare: unknown, as in DMN, never a definite answer. Found by
        # attack: 5 ne "5" (a host sending a number where the policy reads text) held, so a grant under
        # 'owner ne actor.id' or 'status ne "draft"' let the person through on a type slip
        return None
    return a, b


def _kind(x: Any) -> str | None:
    """The kind of a plain value for comparisons (bool before number: it is an int to Python)."""
    if isinstance(x, bool):
        return "boolean"
    if isinstance(x, (int, float)):
        return "number"
    if isinstance(x, str):
        return "text"
    if isinstance(x, (list, tuple, set, frozenset)):
        return "list"
    if isinstance(x, Mapping):
        return "mapping"
    return None


def _nan(x: Any) -> bool:
    """Not a number: unknown, as a missing value is. Found by attack: NaN (pandas' and many exports' missing
    number, Python's JSON reader's ``NaN``) answered false to every comparison, so ``not amount gt 1000`` held."""
    return type(x) is float and math.isnan(x)


def present(x: Any) -> bool:
    """A value ``exists`` (and ``ne: null``) holds for: not missing, not NaN."""
    return x is not None and not (type(x) is float and math.isnan(x))


def _order(op: str) -> Callable[[Any, Any], bool | None]:
    def compare(a: Any, b: Any) -> bool | None:
        if a is None or b is None:
            return None
        pair = _align(a, b)
        if pair is None:
            return None
        x, y = pair
        try:
            if op == "lt":
                held = x < y
            elif op == "le":
                held = x <= y
            elif op == "gt":
                held = x > y
            else:
                held = x >= y
        except TypeError:
            return None
        if held:
            return True
        # NaN is false to every order: unknown instead (type first: NaN is the one float unequal to itself)
        return None if (type(a) is float and a != a) or (type(b) is float and b != b) else False  # noqa: PLR0124

    return compare


def _equal(a: Any, b: Any) -> bool | None:
    """Equality of two values; None (unknown) when one is missing or they are of different kinds.

    ``{eq: null}`` and ``{ne: null}`` written as literals test absence and presence instead (see _to_callable).
    """
    if a is None or b is None:
        return None
    pair = _align(a, b)
    if pair is None:
        return None
    if pair[0] == pair[1]:
        return True
    # NaN is unequal to everything: unknown instead
    return None if (type(a) is float and a != a) or (type(b) is float and b != b) else False  # noqa: PLR0124


def _not_equal(a: Any, b: Any) -> bool | None:
    same = _equal(a, b)
    return None if same is None else not same


def _member(a: Any, container: Any) -> bool | None:
    if a is None or _nan(a) or not isinstance(container, (list, tuple, set, frozenset)):
        return None
    return _any_equal(a, container)


def _any_equal(a: Any, items: Any) -> bool | None:
    """Whether ``a`` equals an item: true when one is equal, unknown when none is but one could not be compared
    (another kind, missing: ``5 in ["5"]`` is unknown, so ``not_in`` does not hold on a type slip), else false."""
    unknown = False
    for item in items:
        same = _equal(a, item)
        if same:
            return True
        if same is None:
            unknown = True
    return None if unknown else False


def _not_member(a: Any, container: Any) -> bool | None:
    found = _member(a, container)
    return None if found is None else not found


def _contains(a: Any, item: Any) -> bool | None:
    if a is None or item is None:
        return None
    if isinstance(a, (list, tuple, set, frozenset)):
        return _any_equal(item, a)
    if isinstance(a, str) and isinstance(item, str):
        return item in a
    return None


_BINARY: dict[str, Callable[[Any, Any], bool | None]] = {
    "eq": _equal,
    "ne": _not_equal,
    "lt": _order("lt"),
    "le": _order("le"),
    "gt": _order("gt"),
    "ge": _order("ge"),
    "in": _member,
    "not_in": _not_member,
    "contains": _contains,
}


def compare(op: str, a: Any, b: Any) -> bool | None:
    """``a <op> b`` with the condition language's value semantics (three-valued: None when unknown)."""
    return _BINARY[op](a, b)


def typed_literal(value: Any) -> Any:
    """A literal as the value it stands for: ISO text of a date, time or duration becomes that value."""
    if isinstance(value, str):
        typed = parse_typed(value)
        return value if typed is None else typed
    if isinstance(value, tuple):
        return tuple(typed_literal(v) for v in value)
    return value


Evaluator = Callable[[Mapping[str, Any], datetime], bool]
#: A compiled node answers True, False or None: unknown, because a value it compares is missing or of
#: another kind (DMN's null). ``all``/``any``/``not`` combine them as three-valued logic and a condition
#: holds only when its answer is True, so missing data never satisfies a comparison, not even under 'not'.
Truth = Callable[[Mapping[str, Any], datetime], bool | None]
ValueFn = Callable[[Mapping[str, Any], datetime], Any]


def _operand_fn(operand: Operand) -> ValueFn:
    if isinstance(operand, Literal):
        value = operand.value
        return lambda scope, now: value
    if isinstance(operand, NowRef):
        shift = operand.shift
        return lambda scope, now: _shifted(now, shift)
    path, shift = operand.path, operand.shift
    if shift is None:
        if len(path) == 1:
            key = path[0]
            return lambda scope, now: scope.get(key) if isinstance(scope, Mapping) else resolve_path(scope, path)
        return lambda scope, now: resolve_path(scope, path)
    return lambda scope, now: _shifted(resolve_path(scope, path), shift)


def _all_of(items: tuple[Truth, ...]) -> Truth:
    def run(scope: Mapping[str, Any], now: datetime) -> bool | None:
        unknown = False
        for item in items:
            result = item(scope, now)
            if result is False:
                return False
            if result is None:
                unknown = True
        return None if unknown else True

    return run


def _any_of(items: tuple[Truth, ...]) -> Truth:
    def run(scope: Mapping[str, Any], now: datetime) -> bool | None:
        unknown = False
        for item in items:
            result = item(scope, now)
            if result is True:
                return True
            if result is None:
                unknown = True
        return None if unknown else False

    return run


def _not(inner: Truth) -> Truth:
    def run(scope: Mapping[str, Any], now: datetime) -> bool | None:
        result = inner(scope, now)
        return None if result is None else not result

    return run


_TYPED_OPS = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "in", "not_in"})


def _to_callable(node: Node, functions: Mapping[str, Callable[..., Any]]) -> Truth:
    if isinstance(node, Const):
        value = node.value
        return lambda scope, now: value
    if isinstance(node, AllOf):
        return _all_of(tuple(_to_callable(i, functions) for i in node.items))
    if isinstance(node, AnyOf):
        return _any_of(tuple(_to_callable(i, functions) for i in node.items))
    if isinstance(node, NotOf):
        return _not(_to_callable(node.item, functions))
    if isinstance(node, Call):
        fn = functions[node.name]
        args = tuple(_operand_fn(a) for a in node.args)
        return lambda scope, now: bool(fn(*(a(scope, now) for a in args)))
    left = _operand_fn(node.left)
    if node.op == "exists":
        want = bool(node.right.value) if isinstance(node.right, Literal) else True
        # NaN is missing here too (unknown to every comparison): 'exists' held for it, so a grant 'amount exists'
        # under a deny 'amount gt 1000' let NaN through (found by attack)
        return lambda scope, now: present(left(scope, now)) is want
    if node.op == "matches":
        pattern = re.compile(str(node.right.value)) if isinstance(node.right, Literal) else None
        if pattern is None:
            right_fn = _operand_fn(node.right)
            return lambda scope, now: _safe_search(right_fn(scope, now), left(scope, now))

        def search(scope: Mapping[str, Any], now: datetime) -> bool | None:
            value = left(scope, now)
            return None if value is None else pattern.search(str(value)) is not None

        return search
    op = _BINARY[node.op]
    if isinstance(node.right, Literal):
        constant = node.right.value
        if constant is None and node.op in ("eq", "ne"):
            absent = node.op == "eq"  # {eq: null} tests absence, {ne: null} presence (NaN is absent)
            return lambda scope, now: present(left(scope, now)) is not absent
        if node.op in _TYPED_OPS:
            constant = typed_literal(constant)
        return lambda scope, now: op(left(scope, now), constant)
    right = _operand_fn(node.right)
    return lambda scope, now: op(left(scope, now), right(scope, now))


def _safe_search(pattern: Any, value: Any) -> bool | None:
    if value is None or not isinstance(pattern, str):
        return None
    try:
        return re.search(pattern, str(value)) is not None
    except re.error:
        return False


def _describe_operand(operand: Operand) -> str:
    if isinstance(operand, Literal):
        return repr(operand.value)
    shift = operand.shift
    suffix = "" if shift is None else f" {'+' if shift.sign > 0 else '-'} {shift.duration.text}"
    if isinstance(operand, NowRef):
        return f"now{suffix}"
    return ".".join(operand.path) + suffix


def describe(node: Node) -> str:
    """A short human-readable rendering of a condition (for explanations and reports)."""
    if isinstance(node, Const):
        return "true" if node.value else "false"
    if isinstance(node, AllOf):
        return "(" + " and ".join(describe(i) for i in node.items) + ")" if node.items else "true"
    if isinstance(node, AnyOf):
        return "(" + " or ".join(describe(i) for i in node.items) + ")" if node.items else "false"
    if isinstance(node, NotOf):
        return f"not {describe(node.item)}"
    if isinstance(node, Call):
        return f"{node.name}(" + ", ".join(_describe_operand(a) for a in node.args) + ")"
    return f"{_describe_operand(node.left)} {node.op} {_describe_operand(node.right)}"


class Condition(Sealed):
    """A compiled condition: call it with ``(scope, now)``; ``explain`` says which parts decided."""

    __slots__ = ("_fn", "_functions", "model", "text")

    def __init__(self, model: Node, functions: Mapping[str, Callable[..., Any]]) -> None:
        self.model = model
        self._functions = functions
        self._fn = _to_callable(model, functions)
        self.text = describe(model)
        self._seal()

    def __call__(self, scope: Mapping[str, Any], now: datetime) -> bool:
        return self._fn(scope, now) is True

    def truth(self, scope: Mapping[str, Any], now: datetime) -> bool | None:
        """The three-valued answer: True, False, or None when a compared value is missing or of another kind."""
        return self._fn(scope, now)

    @property
    def timeless(self) -> bool:
        """True when the outcome depends on the scope alone: no comparison with ``now`` and no function call
        (a registered function may read the clock)."""
        return _timeless(self.model)

    def __repr__(self) -> str:
        return f"Condition({self.text})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and other.model == self.model

    def __hash__(self) -> int:
        return hash(self.model)

    def explain(self, scope: Mapping[str, Any], now: datetime) -> tuple[bool, list[str]]:
        """The outcome and the leaf conditions that decided it (the failing ones when false)."""
        reasons: list[str] = []
        result = self._explain(self.model, scope, now, reasons)
        return result is True, reasons

    def explain_for_person(self, scope: Mapping[str, Any], now: datetime) -> tuple[bool, list[str]]:
        """:meth:`explain` as a person who fired may read it: when a comparison with the actor (``actor.id eq
        data.subject``, ``actor.id in data.team``) that the whole condition needs fails, only those comparisons are
        told. The rest reads the instance's data, which is not the asker's to see (found by attack: a stranger's
        ``evaluate`` of a colleague's quiz answered ``data.score = 40``)."""
        items = self.model.items if isinstance(self.model, AllOf) else (self.model,)
        who = [item for item in items if isinstance(item, Compare) and _about_actor(item)]
        failing: list[str] = []
        for item in who:
            reasons: list[str] = []
            if self._explain(item, scope, now, reasons) is not True:
                failing.extend(reasons)
        if failing:
            return False, failing
        return self.explain(scope, now)

    def _explain(self, node: Node, scope: Mapping[str, Any], now: datetime, out: list[str]) -> bool | None:
        if isinstance(node, AllOf):
            failing: list[str] = []
            results = []
            for item in node.items:
                reasons: list[str] = []
                result = self._explain(item, scope, now, reasons)
                results.append(result)
                if result is not True:
                    failing.extend(reasons)  # only the items that kept it from true explain a false
            ok = _kleene_all(results)
            out.extend(failing if ok is not True else [describe(node)])
            return ok
        if isinstance(node, AnyOf):
            collected: list[str] = []
            results = []
            for item in node.items:
                sub: list[str] = []
                result = self._explain(item, scope, now, sub)
                if result is True:
                    out.extend(sub)
                    return True
                results.append(result)
                collected.extend(sub)
            out.append("none of: " + "; ".join(collected) if collected else "false (empty any)")
            return None if None in results else False
        if isinstance(node, NotOf):
            sub = []
            inner = self._explain(node.item, scope, now, sub)
            out.append(f"not ({'; '.join(sub)})")
            return None if inner is None else not inner
        value = _to_callable(node, self._functions)(scope, now)
        verdict = "false (unknown: a value is missing or of another kind)" if value is None else (
            "true" if value else "false")
        if isinstance(node, Compare):
            actual = _operand_fn(node.left)(scope, now)
            out.append(f"{describe(node)} is {verdict} ({'.'.join(node.left.path)} = {actual!r})")
        else:
            out.append(f"{describe(node)} is {verdict}")
        return value


def field_paths(node: Node) -> frozenset[tuple[str, ...]]:
    """Every field path a condition reads (both sides of comparisons and function arguments)."""
    if isinstance(node, (AllOf, AnyOf)):
        return frozenset().union(*(field_paths(item) for item in node.items))
    if isinstance(node, NotOf):
        return field_paths(node.item)
    operands: tuple[object, ...] = ()
    if isinstance(node, Compare):
        operands = (node.left, node.right)
    elif isinstance(node, Call):
        operands = node.args
    return frozenset(op.path for op in operands if isinstance(op, FieldRef))


def reads_actor(operand: object) -> bool:
    """True for a field under ``actor`` (``actor.id``, ``actor.roles``): who acts, not the instance's data."""
    return isinstance(operand, FieldRef) and operand.path[:1] == ("actor",)


def _about_actor(node: Compare) -> bool:
    """True when the comparison reads the actor (its left side, or a field on its right side, under ``actor``)."""
    return reads_actor(node.left) or reads_actor(node.right)


def _timeless(node: Node) -> bool:
    if isinstance(node, (AllOf, AnyOf)):
        return all(_timeless(item) for item in node.items)
    if isinstance(node, NotOf):
        return _timeless(node.item)
    if isinstance(node, Compare):
        return not isinstance(node.right, NowRef)
    return not isinstance(node, Call)


def _kleene_all(results: Sequence[bool | None]) -> bool | None:
    if False in results:
        return False
    return None if None in results else True


# --- compiling YAML data into the model ---------------------------------------------------


def _parse_shift(data: Mapping[str, Any], pointer: str, problems: list[ConditionProblem]) -> Shift | None:
    present = [k for k in _SHIFT_KEYS if k in data]
    if not present:
        return None
    if len(present) > 1:
        problems.append(ConditionProblem("RW400", "use either plus or minus, not both", pointer))
        return None
    key = present[0]
    duration = parse_duration(data[key])
    if duration is None:
        problems.append(ConditionProblem(
            "RW402", f"{data[key]!r} is not an ISO-8601 duration of at most 100 years", f"{pointer}/{key}",
            hint="write durations like P6W (6 weeks), P3M (3 months), P1Y, P14D or PT48H",
        ))
        return None
    return Shift(1 if key == "plus" else -1, duration)


def _parse_operand(value: Any, pointer: str, problems: list[ConditionProblem]) -> Operand:
    if isinstance(value, Mapping):
        if "field" in value:
            extra = set(value) - {"field", "plus", "minus"}
            if extra:
                problems.append(ConditionProblem("RW400", f"unexpected key(s) {sorted(extra)} in a field reference",
                                                 pointer))
            return FieldRef(_split_path(value["field"], f"{pointer}/field", problems),
                            _parse_shift(value, pointer, problems))
        if "now" in value:
            spec = value["now"] or {}
            if not isinstance(spec, Mapping):
                problems.append(ConditionProblem("RW400", "now takes a mapping such as {} or {minus: P6W}",
                                                 f"{pointer}/now"))
                return NowRef()
            return NowRef(_parse_shift(spec, f"{pointer}/now", problems))
        problems.append(ConditionProblem("RW400", "a value must be a literal, {field: ...} or {now: ...}", pointer))
        return Literal(None)
    if isinstance(value, list):
        return Literal(tuple(value))
    return Literal(value)


def _split_path(value: Any, pointer: str, problems: list[ConditionProblem]) -> tuple[str, ...]:
    if not isinstance(value, str) or not value or any(not part for part in value.split(".")):
        problems.append(ConditionProblem("RW400", f"field must be a dotted path such as data.amount, not {value!r}",
                                         pointer))
        return ("",)
    return tuple(value.split("."))


def _merged_hint(data: Any, heads: Sequence[str]) -> str:
    """When a customer overlay's ``merge: patch`` put its condition into the base's (the patch merges mappings key by
    key: ``all`` from the overlay beside the base's ``field``), say so: the error is reported where the base wrote
    the condition, and the fix is in the overlay."""
    locs = getattr(data, "key_locs", None)
    if not isinstance(locs, Mapping) or len({locs[h].file for h in heads if h in locs}) < 2:
        return ""
    where = ", ".join(f"{h} at {locs[h].file}:{locs[h].line}" for h in heads if h in locs)
    return (f"a patch merged two conditions key by key ({where}); to replace the base's condition, set its keys to "
            "null in the overlay (e.g. field: null, eq: null)")


def _parse_node(data: Any, pointer: str, functions: Mapping[str, Any], problems: list[ConditionProblem]) -> Node:
    if isinstance(data, bool):
        return Const(data)
    if not isinstance(data, Mapping):
        problems.append(ConditionProblem("RW400", "a condition must be a mapping (all, any, not, field, fn) "
                                                  "or true/false", pointer))
        return Const(False)
    heads = [k for k in ("all", "any", "not", "field", "fn") if k in data]
    if len(heads) != 1:
        problems.append(ConditionProblem(
            "RW400", "a condition needs exactly one of all, any, not, field or fn"
            + (f" (found {', '.join(heads)})" if heads else ""), pointer,
            hint=_merged_hint(data, heads) or "wrap several checks in 'all:' or 'any:'",
        ))
        return Const(False)
    head = heads[0]
    allowed_extra = {"description"}
    if head in ("all", "any"):
        items = data[head]
        _no_extra(data, {head} | allowed_extra, pointer, problems)
        if not isinstance(items, list):
            problems.append(ConditionProblem("RW400", f"{head} takes a list of conditions", f"{pointer}/{head}"))
            return Const(False)
        parsed = tuple(_parse_node(item, f"{pointer}/{head}/{i}", functions, problems) for i, item in enumerate(items))
        return AllOf(parsed) if head == "all" else AnyOf(parsed)
    if head == "not":
        _no_extra(data, {"not"} | allowed_extra, pointer, problems)
        return NotOf(_parse_node(data["not"], f"{pointer}/not", functions, problems))
    if head == "fn":
        _no_extra(data, {"fn", "args"} | allowed_extra, pointer, problems)
        name = data["fn"]
        if name not in functions:
            from regelwerk.diagnostics import did_you_mean

            problems.append(ConditionProblem("RW401", f"unknown condition function {name!r}", f"{pointer}/fn",
                                             hint=did_you_mean(str(name), functions)))
        args = data.get("args", [])
        if not isinstance(args, list):
            problems.append(ConditionProblem("RW400", "args takes a list", f"{pointer}/args"))
            args = []
        return Call(str(name), tuple(_parse_operand(a, f"{pointer}/args/{i}", problems) for i, a in enumerate(args)))
    ops = [k for k in OPERATORS if k in data]
    _no_extra(data, {"field", *_SHIFT_KEYS, *OPERATORS} | allowed_extra, pointer, problems)
    left = FieldRef(_split_path(data["field"], f"{pointer}/field", problems), _parse_shift(data, pointer, problems))
    if len(ops) != 1:
        problems.append(ConditionProblem(
            "RW400", "a field comparison needs exactly one operator"
            + (f" (found {', '.join(ops)})" if ops else ""), pointer,
            hint="operators: " + ", ".join(OPERATORS),
        ))
        return Const(False)
    op = ops[0]
    right = _parse_operand(data[op], f"{pointer}/{op}", problems)
    if op in ("in", "not_in") and isinstance(right, Literal) and not isinstance(right.value, tuple):
        problems.append(ConditionProblem("RW400", f"{op} takes a list or a field reference", f"{pointer}/{op}"))
    if op == "exists" and not (isinstance(right, Literal) and isinstance(right.value, bool)):
        problems.append(ConditionProblem("RW400", "exists takes true or false", f"{pointer}/{op}"))
    if op == "matches" and isinstance(right, Literal):
        try:
            re.compile(str(right.value))
        except re.error as exc:
            problems.append(ConditionProblem("RW403", f"invalid regular expression: {exc}", f"{pointer}/{op}"))
            return Const(False)
    return Compare(left, op, right)


def _no_extra(data: Mapping[str, Any], allowed: set[str], pointer: str, problems: list[ConditionProblem]) -> None:
    extra = sorted(set(data) - allowed)
    for key in extra:
        from regelwerk.diagnostics import did_you_mean

        problems.append(ConditionProblem("RW400", f"unexpected key {key!r} in this condition", f"{pointer}/{key}",
                                         hint=did_you_mean(key, allowed)))


def compile_condition(
    data: Any, pointer: str, functions: Mapping[str, Callable[..., Any]] | None = None
) -> tuple[Condition, list[ConditionProblem]]:
    """Compile YAML condition data; problems come back with JSON pointers (never raised)."""
    functions = functions or {}
    problems: list[ConditionProblem] = []
    model = _parse_node(data, pointer, functions, problems)
    if problems:
        return Condition(Const(False), functions), problems
    return Condition(model, functions), problems
