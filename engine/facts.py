"""The fact model: what every place that reads data can read, as JSON-Schema-like types.

A *fact type* (``employee``, ``actor``, ``work_year``...) is a JSON Schema subset: ``type`` (string, number,
integer, boolean, array, object), ``format`` (date, date-time, time, duration), ``properties``,
``required``, ``items``, ``enum`` and ``{"$fact": name}`` to use another fact type. An object that lists
``properties`` is closed (a path to another key is a typo) unless ``additionalProperties`` says otherwise;
an object without ``properties`` is open.

A *place* is where a definition reads data: a DecisionTable's rows, a Workflow's guards, a
pack kind's ``when``... Its *scope* is an object type whose properties are the roots a path starts
with (``employee``, ``data``, ``actor``). Kinds register their places and plugins their fact types through
the registry (:meth:`~regelwerk.registry.Registry.add_fact`, :meth:`~regelwerk.registry.Registry.add_place`);
a customer declares extra attributes of a fact type with a ``Facts`` document named after it.

The compiler checks every field path of a condition against its place's scope (:func:`check_condition`):
an unknown path is an error at its line with did-you-mean (RW410), comparing values of incompatible types
is an error (RW411), and an optional fact read where its absence would change the answer (under ``not``,
with ``ne`` or ``not_in``) without an ``exists`` test is a warning (RW412), on either side of the comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from regelwerk.values import type_name

__all__ = [
    "CORE_FACTS",
    "FactModel",
    "PathType",
    "check_condition",
    "check_params",
    "check_path",
    "check_value",
    "describe_type",
    "fact_paths",
    "literal_kind",
    "param_paths",
    "schema_kind",
]

Report = Callable[..., None]

_STR = {"type": "string"}
_DATE = {"type": "string", "format": "date"}
_STRINGS = {"type": "array", "items": {"type": "string"}}

#: The fact types the core itself knows (plugins add theirs through the registry).
CORE_FACTS: dict[str, dict[str, Any]] = {
    "employee": {
        "type": "object", "description": "An employee as the scheduler and the cycles know them.",
        "required": ["id", "roles", "groups"],
        "properties": {
            "id": {**_STR, "description": "Employee number."},
            "name": _STR,
            "hire_date": {**_DATE, "description": "First day of employment."},
            "leaving_date": {**_DATE, "description": "First day no longer employed."},
            "function": _STR, "department": _STR,
            "manager": {**_STR, "description": "The manager's employee id."},
            "roles": _STRINGS, "groups": _STRINGS,
        },
        "additionalProperties": False,
        "x-extensible": True,
    },
    "actor": {
        "type": "object", "description": "Who acts: an id, roles and the host's attributes.",
        "required": ["id", "roles"],
        "properties": {"id": _STR, "roles": _STRINGS},
        "additionalProperties": True,
    },
    "instance": {
        "type": "object", "description": "A workflow instance.",
        "required": ["id", "workflow", "state", "version"],
        "properties": {"id": _STR, "workflow": _STR, "state": _STR, "version": {"type": "integer"}},
        "additionalProperties": False,
    },
}


@dataclass(frozen=True, slots=True)
class PathType:
    """The result of looking a path up in a scope: its type, whether it may be absent, or why it fails."""

    schema: Mapping[str, Any] | None
    optional: bool = False
    error: str = ""
    hint: str = ""
    known: tuple[str, ...] = ()


class FactModel:
    """The fact types of one bundle: the registry's plus the customer's declared attributes."""

    def __init__(self, types: Mapping[str, Mapping[str, Any]]) -> None:
        self.types = dict(types)

    @classmethod
    def build(cls, registered: Mapping[str, Mapping[str, Any]],
              declared: Iterable[tuple[str, Mapping[str, Any]]] = ()) -> FactModel:
        """Registered types extended with the customer's ``Facts`` declarations (attributes by fact type)."""
        types: dict[str, dict[str, Any]] = {name: dict(schema) for name, schema in CORE_FACTS.items()}
        types.update({name: dict(schema) for name, schema in registered.items()})
        for name, attributes in declared:
            base = types.setdefault(name, {"type": "object", "properties": {}, "additionalProperties": False})
            base["properties"] = {**dict(base.get("properties") or {}), **{k: dict(v) for k, v in attributes.items()}}
        return cls(types)

    def fact(self, name: str) -> Mapping[str, Any] | None:
        """A fact type by name."""
        return self.types.get(name)

    def expand(self, schema: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """Follow ``$fact`` references."""
        seen = 0
        while schema is not None and "$fact" in schema and seen < 10:
            schema = self.types.get(str(schema["$fact"]))
            seen += 1
        return schema


def schema_kind(schema: Mapping[str, Any] | None) -> str:
    """The comparable kind of a schema: date, datetime, time, duration, number, string, boolean, list, object, any."""
    if not schema:
        return "any"
    fmt = schema.get("format")
    if fmt == "date":
        return "date"
    if fmt == "date-time":
        return "datetime"
    if fmt == "time":
        return "time"
    if fmt == "duration":
        return "duration"
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    return {"number": "number", "integer": "number", "string": "string", "boolean": "boolean", "array": "list",
            "object": "object"}.get(str(kind), "any")


def literal_kind(value: Any) -> str:
    """The comparable kind of a literal (ISO text counts as the value it stands for)."""
    name = type_name(value)
    return {"years-months duration": "duration", "days-time duration": "duration", "null": "any"}.get(name, name)


_ORDERED = {"number", "string", "date", "datetime", "time", "duration", "any"}


def compatible(a: str, b: str) -> bool:
    """Whether values of kinds ``a`` and ``b`` can be compared at all."""
    if "any" in (a, b) or a == b:
        return True
    temporal = {"date", "datetime"}
    return a in temporal and b in temporal


def check_path(model: FactModel, scope: Mapping[str, Any], path: Sequence[str]) -> PathType:
    """Look ``path`` up in ``scope``: its type, or an error naming the first unknown part."""
    node: Mapping[str, Any] | None = scope
    optional = False
    for depth, part in enumerate(path):
        node = model.expand(node)
        if node is None or (schema_kind(node) == "any" and "properties" not in node):
            return PathType(None, optional)
        kind = schema_kind(node)
        if kind == "list":
            if part.lstrip("-").isdigit():
                node = node.get("items") or {}
                optional = True
                continue
            return PathType(None, optional, f"{'.'.join(path[:depth])!r} is a list; "
                            f"{part!r} is not an index", "read an item by its position, e.g. "
                            f"{'.'.join([*path[:depth], '0'])}")
        properties = node.get("properties")
        if kind != "object" or properties is None:
            if kind in ("object", "any"):
                return PathType(None, optional)
            where = ".".join(path[:depth])
            return PathType(None, optional, f"{where!r} is a {describe_type(node)}; it has no field {part!r}")
        if part in properties:
            if part not in (node.get("required") or ()):
                optional = True
            node = properties[part]
            continue
        extra = node.get("additionalProperties", False)
        if extra is not False:
            return PathType(extra if isinstance(extra, Mapping) else None, True)
        where = ".".join(path[:depth]) or "this place"
        known = tuple(sorted(str(k) for k in properties))
        from regelwerk.diagnostics import did_you_mean

        hint = did_you_mean(part, known) or ("known: " + ", ".join(known) if known else "")
        what = f"fact {part!r}" if depth == 0 else f"{where!r} has no field {part!r}"
        return PathType(None, optional, f"unknown {what}" if depth == 0 else what, hint, known)
    return PathType(model.expand(node), optional)


def describe_type(schema: Mapping[str, Any] | None) -> str:
    """A short type name for messages and listings."""
    kind = schema_kind(schema)
    if kind == "list" and schema:
        return f"list of {describe_type(schema.get('items'))}"
    if schema and "enum" in schema:
        return f"{kind} (one of {', '.join(map(str, schema['enum']))})"
    return {"datetime": "date-time"}.get(kind, kind)


def fact_paths(model: FactModel, scope: Mapping[str, Any], prefix: str = "", depth: int = 0
               ) -> list[tuple[str, str, bool, str]]:
    """Every readable path of a scope: ``(path, type, optional, description)``, for ``regelwerk facts``."""
    out: list[tuple[str, str, bool, str]] = []
    node = model.expand(scope)
    if node is None or depth > 6:
        return out
    required = set(node.get("required") or ())
    for key, sub in sorted((node.get("properties") or {}).items()):
        path = f"{prefix}{key}"
        child = model.expand(sub) or {}
        out.append((path, describe_type(child), key not in required, str(child.get("description", ""))))
        if schema_kind(child) == "object" and child.get("properties"):
            out.extend(fact_paths(model, child, f"{path}.", depth + 1))
        elif schema_kind(child) == "object" and child.get("additionalProperties", True) is not False:
            out.append((f"{path}.*", "any", True, "open: any field"))
    if node.get("additionalProperties", False) is not False and node.get("properties"):
        out.append((f"{prefix}*", "any", True, "open: any other field"))
    return out


# --- checking a condition's paths ------------------------------------------------------------------

_OPS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "contains", "exists", "matches")
_NEGATING = ("ne", "not_in")


def _ref_path(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, Mapping) and isinstance(value.get("field"), str) and value["field"]:
        return tuple(value["field"].split("."))
    return None


def check_condition(data: Any, pointer: str, model: FactModel, scope: Mapping[str, Any], report: Report,
                    warn: Report | None = None) -> None:
    """Check every field path and comparison of condition ``data`` against ``scope``; report problems."""
    _walk(data, pointer, model, scope, report, warn, negated=False, guarded=frozenset())


def param_paths(value: Any, pointer: str) -> list[tuple[str, str]]:
    """Every ``{field: path}`` value reference inside action parameters: ``(pointer to 'field', path)``."""
    out: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        if set(value) == {"field"} and isinstance(value["field"], str):
            return [(f"{pointer}/field", value["field"])]
        for key, item in value.items():
            out.extend(param_paths(item, f"{pointer}/{key}"))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.extend(param_paths(item, f"{pointer}/{i}"))
    return out


def check_params(value: Any, pointer: str, model: FactModel, scope: Mapping[str, Any], report: Report) -> None:
    """Check every ``{field: path}`` an action's parameters read against ``scope`` (RW410)."""
    for where, text in param_paths(value, pointer):
        if text and all(text.split(".")):
            _resolve(tuple(text.split(".")), where, model, scope, report)


def _exists_paths(items: Sequence[Any]) -> frozenset[str]:
    return frozenset(str(i["field"]) for i in items if isinstance(i, Mapping) and "exists" in i
                     and isinstance(i.get("field"), str))


def _walk(data: Any, pointer: str, model: FactModel, scope: Mapping[str, Any], report: Report,
          warn: Report | None, negated: bool, guarded: frozenset[str]) -> None:
    if not isinstance(data, Mapping):
        return
    for head in ("all", "any"):
        if head in data and isinstance(data[head], list):
            items = data[head]
            inner = guarded | _exists_paths(items)
            for i, item in enumerate(items):
                _walk(item, f"{pointer}/{head}/{i}", model, scope, report, warn, negated, inner)
            return
    if "not" in data:
        _walk(data["not"], f"{pointer}/not", model, scope, report, warn, not negated, guarded)
        return
    if "fn" in data:
        for i, arg in enumerate(data.get("args") or []):
            path = _ref_path(arg)
            if path is not None:
                _resolve(path, f"{pointer}/args/{i}/field", model, scope, report)
        return
    path = _ref_path(data)
    if path is None:
        return
    left = _resolve(path, f"{pointer}/field", model, scope, report)
    if left is None:
        return
    ops = [op for op in _OPS if op in data]
    if len(ops) != 1:
        return
    op = ops[0]
    left_kind = schema_kind(left.schema)
    if ("plus" in data or "minus" in data) and left_kind not in ("date", "datetime", "any", "string"):
        report("RW411", f"{'.'.join(path)} is a {describe_type(left.schema)}; only dates and date-times shift by a "
               "duration", f"{pointer}/{'plus' if 'plus' in data else 'minus'}")
    if ("plus" in data or "minus" in data) and left_kind == "string":
        left_kind = "any"
    _check_operator(op, data[op], ".".join(path), left_kind, left.schema, f"{pointer}/{op}", model, scope,
                    report)
    text = ".".join(path)
    absent_matters = negated != (op in _NEGATING)  # a missing value makes the test false: meant so?
    if (warn is not None and left.optional and absent_matters and op != "exists" and text not in guarded
            and data[op] is not None):
        warn("RW412", f"{text} may be missing; a missing value never satisfies a comparison, so this "
             f"{'negated ' if negated else ''}test is false for it", f"{pointer}/field",
             f"say what absence means: any: [{{field: {text}, exists: false}}, ...] or all: "
             f"[{{field: {text}, exists: true}}, ...]")
    right = _ref_path(data[op])
    if warn is None or right is None or not absent_matters:
        return
    other_text = ".".join(right)
    other = check_path(model, scope, right)
    if not other.error and other.optional and other_text not in guarded:
        # the other side counts as much: `actor.id not_in data.scored_by` is unknown, so false, before anyone scored
        warn("RW412", f"{other_text} may be missing; a missing value never satisfies a comparison, so this "
             f"{'negated ' if negated else ''}test is false for it", f"{pointer}/{op}/field",
             f"say what absence means: any: [{{field: {other_text}, exists: false}}, ...] or all: "
             f"[{{field: {other_text}, exists: true}}, ...]")


def _resolve(path: Sequence[str], pointer: str, model: FactModel, scope: Mapping[str, Any], report: Report
             ) -> PathType | None:
    found = check_path(model, scope, path)
    if found.error:
        report("RW410", f"{found.error} (in {'.'.join(path)})", pointer, found.hint)
        return None
    return found


def _check_operator(op: str, right: Any, text: str, left_kind: str, left_schema: Mapping[str, Any] | None,
                    pointer: str, model: FactModel, scope: Mapping[str, Any], report: Report) -> None:
    ref = _ref_path(right)
    if ref is not None:
        other = _resolve(ref, f"{pointer}/field", model, scope, report)
        if other is None:
            return
        right_kind = schema_kind(other.schema)
        if op in ("in", "not_in"):
            right_kind = schema_kind((other.schema or {}).get("items")) if right_kind == "list" else right_kind
            if schema_kind(other.schema) not in ("list", "any"):
                report("RW411", f"{op} needs a list; {'.'.join(ref)} is a {describe_type(other.schema)}", pointer)
                return
        elif op == "contains":
            return
        if "plus" in right or "minus" in right:
            right_kind = "any"
        if not compatible(left_kind, right_kind):
            report("RW411", f"{text} is a {describe_type(left_schema)} and {'.'.join(ref)} a "
                   f"{describe_type(other.schema)}: they never compare", pointer,
                   "compare values of the same type")
        return
    if op in ("exists", "matches") or isinstance(right, Mapping):
        return
    if op == "contains":
        if left_kind not in ("list", "string", "any"):
            report("RW411", f"contains needs a list or a text; {text} is a {describe_type(left_schema)}", pointer)
        elif left_kind == "list":
            _check_literal(right, schema_kind((left_schema or {}).get("items")), (left_schema or {}).get("items"),
                           text + " items", pointer, report)
        return
    if op in ("in", "not_in"):
        for i, item in enumerate(right if isinstance(right, list) else []):
            _check_literal(item, left_kind, left_schema, text, f"{pointer}/{i}", report)
        return
    if right is None:
        return
    if op in ("lt", "le", "gt", "ge") and left_kind in ("boolean", "list", "object"):
        report("RW411", f"{text} is a {describe_type(left_schema)}; {op} orders numbers, texts, dates, times and "
               "durations", pointer)
        return
    _check_literal(right, left_kind, left_schema, text, pointer, report)


def check_value(value: Any, schema: Mapping[str, Any], text: str, pointer: str, report: Report) -> None:
    """Report a literal that can never compare with a value of ``schema`` (RW411)."""
    _check_literal(value, schema_kind(schema), schema, text, pointer, report)


def _check_literal(value: Any, kind: str, schema: Mapping[str, Any] | None, text: str, pointer: str,
                   report: Report) -> None:
    if value is None:
        return
    enum = (schema or {}).get("enum")
    if enum and value not in enum:
        from regelwerk.diagnostics import did_you_mean

        report("RW411", f"{value!r} is not a value of {text}", pointer,
               did_you_mean(str(value), [str(e) for e in enum]) or "values: " + ", ".join(map(str, enum)))
        return
    if kind == "any":
        return
    have = literal_kind(value)
    if kind == "string" and have in ("date", "datetime", "time", "duration"):
        have = "string"  # ISO-looking text compared with a text field is text
    if kind in ("date", "datetime") and have == "string":
        report("RW411", f"{text} is a {describe_type(schema)}; {value!r} is not one", pointer,
               "write dates as YYYY-MM-DD, date-times as YYYY-MM-DDThh:mm:ssZ")
        return
    if not compatible(kind, have):
        report("RW411", f"{text} is a {describe_type(schema)}; {value!r} is a {have}: they never compare",
               pointer, "compare with a value of the same type")
