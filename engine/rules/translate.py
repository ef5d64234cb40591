"""A pure translation from the shared condition language into durable-rules' data ruleset format.

durable-rules is used as a *pre-filter*: each rule's durable condition is implied by its
regelwerk condition (never stricter), and regelwerk re-checks the full condition after
durable-rules matched. So durable's looser semantics (``"1"`` equals ``1``, ``True`` equals
``1``, strings compared as text) can only add candidates that regelwerk then drops, never
lose a match. What durable cannot express (``ne``, ``not``, ``not_in``, ``matches``,
``contains``, functions, field references, the clock, dates) is left to regelwerk: the
pre-filter of that part is simply "true".

The checks in :func:`durable_limits` reject beforehand what durable-rules itself would
reject with a bare ``Exception('... error code: N')`` (or worse: hang), each as a
diagnostic at the YAML line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from engine.conditions import AllOf, AnyOf, Call, Compare, Const, FieldRef, Literal, Node, NotOf
from engine.rules.model import RuleSetModel

__all__ = [
    "MARKER",
    "MAX_ALTERNATIVES",
    "MAX_DEPTH",
    "MAX_RULES",
    "MAX_TESTS",
    "PAYLOAD",
    "Problem",
    "durable_condition",
    "durable_limits",
    "durable_name",
    "to_durable_ruleset",
]

#: Every message regelwerk posts carries this field; a rule with nothing durable can test tests it instead.
MARKER = "rw_message"
#: The scope (event and context) travels under this key, so no user field can collide with durable's
#: own ``sid``/``id`` fields or be read as an operator.
PAYLOAD = "rw"
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

    __slots__ = ("code", "hint", "message", "rule")

    def __init__(self, code: str, message: str, rule: int | None = None, hint: str = "") -> None:
        self.code = code
        self.message = message
        self.rule = rule
        self.hint = hint

    def __repr__(self) -> str:
        return f"Problem({self.code}, {self.message!r}, rule={self.rule})"


def _field(ref: FieldRef) -> str:
    return ".".join((PAYLOAD, *ref.path))


def _literal_ok(value: Any, op: str) -> bool:
    if isinstance(value, bool):
        return op == "eq"
    if isinstance(value, (int, float)):
        return math.isfinite(value) and abs(value) < 2**63
    if isinstance(value, str):
        # A date-like string is compared as a moment by regelwerk (date vs date-time), as text by durable.
        return not _DATE_LIKE.match(value)
    return False


def durable_condition(node: Node) -> dict[str, Any] | None:
    """The durable test implied by ``node``; None when durable cannot express it (then it is "true")."""
    if isinstance(node, Compare):
        if node.left.shift is not None or not isinstance(node.right, Literal):
            return None
        field = _field(node.left)
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
        parts = [p for p in (durable_condition(i) for i in node.items) if p is not None]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else {"$and": parts}
    if isinstance(node, AnyOf):
        alternatives = [durable_condition(i) for i in node.items]
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
    out: dict[str, Any] = {}
    for rule in model.rules:
        test = durable_condition(rule.when.model)
        # the marker keeps a rule whose condition durable cannot express from being empty ($and: [] hangs)
        condition: dict[str, Any] = {MARKER: 1} if test is None else test
        out[rule.id] = {"all": [{"m": condition}], "pri": -rule.priority, "run": f"{name}/{rule.id}"}
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


def _fields(node: Node) -> Iterator[tuple[str, ...]]:
    if isinstance(node, Compare):
        yield node.left.path
        if isinstance(node.right, FieldRef):
            yield node.right.path
    elif isinstance(node, (AllOf, AnyOf)):
        for item in node.items:
            yield from _fields(item)
    elif isinstance(node, NotOf):
        yield from _fields(node.item)
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
    for index, rule in enumerate(model.rules):
        for path in _fields(rule.when.model):
            if any(p.startswith("$") for p in path):
                problems.append(Problem("RW603", f"field {'.'.join(path)!r}: a name starting with '$' is an "
                                                 "operator to durable-rules", index,
                                        "rename the field (letters, digits, '_')"))
        for number in _numbers(rule.when.model):
            if not math.isfinite(number):
                problems.append(Problem("RW605", f"{number!r} cannot be sent to durable-rules (not finite)", index))
        test = durable_condition(rule.when.model)
        if test is None:
            continue
        if _depth(test) + 1 > MAX_DEPTH:
            problems.append(Problem("RW602", f"condition nested {_depth(test)} levels deep; durable-rules accepts "
                                             f"at most {MAX_DEPTH - 1}", index,
                                    "flatten nested all/any, or split the rule"))
        if _widest(test) > MAX_ALTERNATIVES:
            problems.append(Problem("RW604", f"more than {MAX_ALTERNATIVES} alternatives in one 'any'", index,
                                    "use a DecisionTable for long lists of values"))
        total += _leaves(test) + 1
    if total > MAX_TESTS:
        problems.append(Problem("RW606", f"{total} tests in one rule set; at most {MAX_TESTS}",
                                hint="split the rules over several RuleSets"))
    return problems
