"""A pure translation from the shared condition language into durable-rules' data ruleset format.

durable-rules is used as a *pre-filter*: each rule's durable condition is implied by its
regelwerk condition (never stricter), and regelwerk re-checks the full condition after
durable-rules matched. So durable's looser semantics (``"1"`` equals ``1``, ``True`` equals
``1``, strings compared as text) can only add candidates that regelwerk then drops, never
lose a match. What durable cannot express (``ne``, ``not``, ``not_in``, ``matches``,
``contains``, functions, field references, the clock, dates) is left to regelwerk: the
pre-filter of that part is simply "true".

Join rules (``match:``, named patterns over a session's facts) become durable rules with one named
pattern per regelwerk pattern (``{"all": [{"cert": {...}}, {"shift": {...}}]}``). A pattern's literal
tests go to durable as above, on the candidate fact under ``rf.``. An ``eq`` between a field of the
candidate and a field of an earlier pattern's fact goes to durable as a join on *join keys*
(``{"rfk.k0": {"cert": "rfk.k1"}}``): every fact carries ``rfk``, for each joined path a text key
that :func:`join_key` computes so that regelwerk-equal values always have the same key (moments,
lists and objects share one coarse key each). Every other cross-pattern comparison, and every
join inside an ``any`` (durable never matches an ``$or`` holding a join), is re-checked only.

The checks in :func:`durable_limits` reject beforehand what durable-rules itself would
reject with a bare ``Exception('... error code: N')`` (or worse: hang), each as a
diagnostic at the YAML line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

from regelwerk.conditions import (
    AllOf,
    AnyOf,
    Call,
    Compare,
    Const,
    FieldRef,
    Literal,
    Node,
    NotOf,
    resolve_path,
    to_temporal,
)
from regelwerk.rules.model import Rule, RuleSetModel
from regelwerk.values import parse_typed

__all__ = [
    "FACT_KEYS",
    "FACT_MARKER",
    "FACT_PAYLOAD",
    "JOIN",
    "MARKER",
    "MAX_ALTERNATIVES",
    "MAX_DEPTH",
    "MAX_PATTERNS",
    "MAX_RULES",
    "MAX_TESTS",
    "PAYLOAD",
    "Problem",
    "durable_condition",
    "durable_limits",
    "durable_name",
    "fact_keys",
    "field_paths",
    "join_key",
    "join_paths",
    "to_durable_ruleset",
]

#: Every message regelwerk posts carries this field; a rule with nothing durable can test tests it instead.
MARKER = "rw_message"
#: The scope (event and context) travels under this key, so no user field can collide with durable's
#: own ``sid``/``id`` fields or be read as an operator.
PAYLOAD = "rw"
#: Every fact of a session carries this field (and no ``rw_message``): the two kinds of rules never see
#: each other's messages.
FACT_MARKER = "rw_fact"
#: A session's fact travels under this key (its fields directly, not under ``event``).
FACT_PAYLOAD = "rf"
#: ... and its join keys under this one (``rfk.k0`` ...; see :func:`join_key`).
FACT_KEYS = "rfk"
#: The suffix of a join rule's action name: its recorder also records which facts matched.
JOIN = "#join"
#: Patterns per join rule: durable evaluates the cross product of the candidates, so keep joins small.
MAX_PATTERNS = 4
#: durable-rules fails with error code 113 from 16 nested $and/$or levels on (measured: 15 works).
MAX_DEPTH = 12
#: durable-rules hangs creating a ruleset somewhere between 500 and 700 rules (measured).
MAX_RULES = 200
#: ... and on a 1000-way $or (measured: 500 works).
MAX_ALTERNATIVES = 100
#: Total tests (leaves) per ruleset, well below where creation was seen to hang.
MAX_TESTS = 1000

_OPS = {"eq": None, "lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}
_DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def durable_name(model: RuleSetModel) -> str:
    """The durable ruleset name: definition name plus content hash (a changed definition is a new ruleset)."""
    return f"{model.name}@{model.version}"


class Problem:
    """Something durable-rules would reject, found in the model (the kind compiler adds the location)."""

    __slots__ = ("at", "code", "hint", "message", "rule")

    def __init__(self, code: str, message: str, rule: int | None = None, hint: str = "", at: str = "when") -> None:
        self.code = code
        self.message = message
        self.rule = rule
        self.hint = hint
        self.at = at  # where inside the rule: "when", or "match/<pattern>"

    def __repr__(self) -> str:
        return f"Problem({self.code}, {self.message!r}, rule={self.rule})"


def _field(ref: FieldRef, prefix: str = PAYLOAD) -> str:
    return ".".join((prefix, *ref.path))


def join_key(value: Any) -> str:
    """A text key with: regelwerk ``a eq b`` implies ``join_key(a) == join_key(b)`` (the converse need not hold).

    Missing and null are one key; numbers meet as floats (``1`` eq ``1.0``), booleans stay apart from
    numbers; every moment and duration (a date, a date-time, a time, an ISO string) shares one key: regelwerk compares
    a date with a date-time by day and two date-times by instant; lists and objects share one key each.
    """
    if value is None:
        return "n"
    if isinstance(value, bool):
        return "b1" if value else "b0"
    if isinstance(value, (int, float)):
        return f"d{float(value)!r}" if abs(value) < 2**53 else "d"
    if isinstance(value, str):
        return "t" if _DATE_LIKE.match(value) or parse_typed(value) is not None else "s" + value
    if isinstance(value, date):
        return "t"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "l"
    if isinstance(value, Mapping):
        return "o"
    return "t" if to_temporal(value) is not None else "x"


def _join_pair(node: Compare, refs: frozenset[str]) -> tuple[tuple[str, ...], str, tuple[str, ...]] | None:
    """``(candidate path, earlier pattern, its path)`` when ``node`` is an eq-join durable can pre-filter."""
    if node.op != "eq" or not isinstance(node.right, FieldRef) or node.left.shift or node.right.shift:
        return None
    left, right = node.left.path, node.right.path
    if right[0] in refs and left[0] not in refs and len(right) > 1:
        return left, right[0], right[1:]
    if left[0] in refs and right[0] not in refs and len(left) > 1:
        return right, left[0], left[1:]
    return None


def join_paths(model: RuleSetModel) -> dict[tuple[str, ...], str]:
    """Every fact path some join rule's eq-join reads, with its key name (``k0``, ``k1`` ... in path order)."""
    paths: set[tuple[str, ...]] = set()
    for rule in model.rules:
        for pattern in rule.patterns:
            for node in _compares(pattern.when.model):
                pair = _join_pair(node, frozenset(pattern.refs))
                if pair is not None:
                    paths.add(pair[0])
                    paths.add(pair[2])
    return {path: f"k{n}" for n, path in enumerate(sorted(paths))}


def fact_keys(fact: Mapping[str, Any], paths: Mapping[tuple[str, ...], str]) -> dict[str, str]:
    """The join keys a fact carries to durable (``{"k0": join_key(fact at path)}``)."""
    return {key: join_key(resolve_path(fact, path)) for path, key in paths.items()}


def _compares(node: Node) -> Iterator[Compare]:
    if isinstance(node, Compare):
        yield node
    elif isinstance(node, (AllOf, AnyOf)):
        for item in node.items:
            yield from _compares(item)
    elif isinstance(node, NotOf):
        yield from _compares(node.item)


def _literal_ok(value: Any, op: str) -> bool:
    if isinstance(value, bool):
        return op == "eq"
    if isinstance(value, (int, float)):
        return math.isfinite(value) and abs(value) < 2**63
    if isinstance(value, str):
        # A date-like string is compared as a moment by regelwerk (date vs date-time), as text by durable.
        return not _DATE_LIKE.match(value)
    return False


def durable_condition(node: Node, prefix: str = PAYLOAD, refs: frozenset[str] = frozenset(),
                      keys: Mapping[tuple[str, ...], str] | None = None) -> dict[str, Any] | None:
    """The durable test implied by ``node``; None when durable cannot express it (then it is "true").

    For a join pattern: ``prefix`` is the fact payload, ``refs`` the earlier patterns' names and ``keys``
    the model's :func:`join_paths` (an eq-join becomes a durable join on the join keys).
    """
    if isinstance(node, Compare):
        if refs and (node.left.path[0] in refs or isinstance(node.right, FieldRef)):
            pair = _join_pair(node, refs) if keys is not None else None
            if pair is None:
                return None  # any other comparison with an earlier fact: re-checked by regelwerk only
            own, other, path = pair
            return {f"{FACT_KEYS}.{keys[own]}": {other: f"{FACT_KEYS}.{keys[path]}"}}  # type: ignore[index]
        if node.left.shift is not None or not isinstance(node.right, Literal):
            return None
        field = _field(node.left, prefix)
        value = node.right.value
        if node.op in _OPS:
            if not _literal_ok(value, node.op):
                return None
            op = _OPS[node.op]
            return {field: value} if op is None else {op: {field: value}}
        if node.op == "in" and isinstance(value, tuple) and 0 < len(value) <= MAX_ALTERNATIVES:
            if not all(_literal_ok(v, "eq") for v in value):
                return None
            return {field: value[0]} if len(value) == 1 else {"$or": [{field: v} for v in value]}
        if node.op == "exists" and value is True:
            return {"$ex": {field: 1}}  # ($nex alone hangs durable-rules: never emitted)
        return None
    if isinstance(node, AllOf):
        parts = [p for p in (durable_condition(i, prefix, refs, keys) for i in node.items) if p is not None]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else {"$and": parts}
    if isinstance(node, AnyOf):
        # no joins inside $or: durable-rules 2.0.28 then never matches the $or (measured), so an 'any'
        # holding an eq-join is left to the re-check
        alternatives = [durable_condition(i, prefix, refs, None) for i in node.items]
        if not alternatives or any(a is None for a in alternatives):
            return None  # one inexpressible alternative makes the whole 'any' "true" for durable
        parts = [a for a in alternatives if a is not None]
        return parts[0] if len(parts) == 1 else {"$or": parts}
    if isinstance(node, (NotOf, Call, Const)):
        return None
    return None


def to_durable_ruleset(model: RuleSetModel) -> dict[str, Any]:
    """The durable-rules data ruleset for a compiled RuleSet (``{rule_id: {all, pri, run}}``).

    ``run`` names the action ``<durable ruleset name>/<rule id>``; the port's Host resolves it.
    durable's ``pri`` is "lower fires first", regelwerk's ``priority`` is "higher fires first".
    """
    name = durable_name(model)
    keys = join_paths(model) if model.has_joins else {}
    out: dict[str, Any] = {}
    for rule in model.rules:
        if rule.patterns:
            out[rule.id] = {"all": [{p.name: t} for p, t in _pattern_tests(rule, keys)], "pri": -rule.priority,
                            "run": f"{name}/{rule.id}{JOIN}"}
            continue
        test = durable_condition(rule.when.model)
        # the marker keeps a rule whose condition durable cannot express from being empty ($and: [] hangs)
        condition: dict[str, Any] = {MARKER: 1} if test is None else test
        out[rule.id] = {"all": [{"m": condition}], "pri": -rule.priority, "run": f"{name}/{rule.id}"}
    return out


def _pattern_tests(rule: Rule, keys: Mapping[tuple[str, ...], str]) -> list[tuple[Any, dict[str, Any]]]:
    """Each pattern with its durable test (the fact marker when durable can test nothing of it)."""
    out = []
    for pattern in rule.patterns:
        test = durable_condition(pattern.when.model, FACT_PAYLOAD, frozenset(pattern.refs), keys)
        out.append((pattern, {FACT_MARKER: 1} if test is None else test))
    return out


def _depth(test: Any) -> int:
    if isinstance(test, dict):
        inner = [_depth(v) for k, v in test.items() if k in ("$and", "$or")]
        return 1 + max(inner) if inner else 0
    if isinstance(test, list):
        return max((_depth(v) for v in test), default=0)
    return 0


def _leaves(test: Any) -> int:
    if isinstance(test, dict):
        if "$and" in test or "$or" in test:
            return sum(_leaves(v) for v in test.values())
        return 1
    if isinstance(test, list):
        return sum(_leaves(v) for v in test)
    return 0


def _widest(test: Any) -> int:
    if isinstance(test, dict):
        return max([len(v) if k == "$or" else 0 for k, v in test.items()]
                   + [_widest(v) for v in test.values() if isinstance(v, (dict, list))], default=0)
    if isinstance(test, list):
        return max((_widest(v) for v in test), default=0)
    return 0


def field_paths(node: Node) -> Iterator[tuple[str, ...]]:
    """Every field path a condition reads (both sides of comparisons, function arguments)."""
    if isinstance(node, Compare):
        yield node.left.path
        if isinstance(node.right, FieldRef):
            yield node.right.path
    elif isinstance(node, (AllOf, AnyOf)):
        for item in node.items:
            yield from field_paths(item)
    elif isinstance(node, NotOf):
        yield from field_paths(node.item)
    elif isinstance(node, Call):
        for arg in node.args:
            if isinstance(arg, FieldRef):
                yield arg.path


def _numbers(node: Node) -> Iterator[Any]:
    if isinstance(node, Compare) and isinstance(node.right, Literal):
        values = node.right.value if isinstance(node.right.value, tuple) else (node.right.value,)
        yield from (v for v in values if isinstance(v, float))
    elif isinstance(node, (AllOf, AnyOf)):
        for item in node.items:
            yield from _numbers(item)
    elif isinstance(node, NotOf):
        yield from _numbers(node.item)


def durable_limits(model: RuleSetModel) -> list[Problem]:
    """Everything in ``model`` that durable-rules would reject (or hang on), found beforehand."""
    problems: list[Problem] = []
    if len(model.rules) > MAX_RULES:
        problems.append(Problem("RW601", f"{len(model.rules)} rules in one rule set; at most {MAX_RULES}",
                                hint="split the rules over several RuleSets"))
    total = 0
    keys = join_paths(model) if model.has_joins else {}
    for index, rule in enumerate(model.rules):
        if len(rule.patterns) > MAX_PATTERNS:
            problems.append(Problem("RW607", f"{len(rule.patterns)} patterns in one rule; at most {MAX_PATTERNS}",
                                    index, "durable-rules matches every combination of facts: split the rule, "
                                           "or put more of the condition into fewer patterns", at="match"))
        parts: list[tuple[Node, dict[str, Any] | None, str]]
        if rule.patterns:
            parts = [(pattern.when.model, test, f"match/{pattern.name}")
                     for pattern, test in _pattern_tests(rule, keys)]
        else:
            parts = [(rule.when.model, durable_condition(rule.when.model), "when")]
        for node, test, at in parts:
            problems.extend(_part_problems(node, test, index, at))
            if test is not None:
                total += _leaves(test) + 1
    if total > MAX_TESTS:
        problems.append(Problem("RW606", f"{total} tests in one rule set; at most {MAX_TESTS}",
                                hint="split the rules over several RuleSets"))
    return problems


def _part_problems(node: Node, test: Any, index: int, at: str) -> Iterator[Problem]:
    for path in field_paths(node):
        if any(p.startswith("$") for p in path):
            yield Problem("RW603", f"field {'.'.join(path)!r}: a name starting with '$' is an operator to "
                                   "durable-rules", index, "rename the field (letters, digits, '_')", at)
    for number in _numbers(node):
        if not math.isfinite(number):
            yield Problem("RW605", f"{number!r} cannot be sent to durable-rules (not finite)", index, at=at)
    if test is None:
        return
    if _depth(test) + 1 > MAX_DEPTH:
        yield Problem("RW602", f"condition nested {_depth(test)} levels deep; durable-rules accepts at most "
                               f"{MAX_DEPTH - 1}", index, "flatten nested all/any, or split the rule", at)
    if _widest(test) > MAX_ALTERNATIVES:
        yield Problem("RW604", f"more than {MAX_ALTERNATIVES} alternatives in one 'any'", index,
                      "use a DecisionTable for long lists of values", at)
