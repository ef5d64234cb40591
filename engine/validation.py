"""JSON Schema validation of documents, with diagnostics at the right line.

Shipped schemas live in ``schemas/v1/`` (read through importlib.resources);
plugins contribute theirs through ``KindSpec.schema``. Every schema is registered
under ``SCHEMA_BASE`` so relative ``$ref`` such as ``common.json#/$defs/condition``
resolve the same way in the engine as in a consultant's editor.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry as RefRegistry
from referencing import Resource
from referencing.jsonschema import DRAFT202012
from regelwerk.diagnostics import Diagnostic, did_you_mean
from regelwerk.registry import KindSpec, Registry
from regelwerk.source import SourceDocument, YMap, YSeq, escape_pointer, locate

__all__ = [
    "API_VERSION",
    "SCHEMA_BASE",
    "SchemaSet",
    "document_schema",
    "load_shipped_schema",
    "umbrella_schema",
]

API_VERSION = "regelwerk/v1"
SCHEMA_BASE = "https://schemas.regelwerk.invalid/v1/"


@cache
def load_shipped_schema(name: str) -> dict[str, Any]:
    """Read ``schemas/v1/<name>`` from the installed package."""
    text = (resources.files("regelwerk.schemas") / "v1" / name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def schema_file_name(spec: KindSpec) -> str:
    """The file name a kind's schema has under schemas/v1/."""
    return spec.schema_file or f"{spec.kind.lower()}.json"


def document_schema(spec: KindSpec) -> dict[str, Any]:
    """The full document schema of a kind (as shipped or contributed)."""
    return dict(spec.schema)


def umbrella_schema(registry: Registry) -> dict[str, Any]:
    """One schema for every document, dispatching on ``kind`` and ``metadata.merge`` (``regelwerk.schemafiles``)."""
    from regelwerk.schemafiles import umbrella_schema as umbrella

    return umbrella(registry)


class SchemaSet:
    """Validators for every kind of a registry, built lazily and reused."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        resources_: list[tuple[str, Resource[Any]]] = [
            (SCHEMA_BASE + "common.json", Resource.from_contents(load_shipped_schema("common.json"), DRAFT202012)),
        ]
        for spec in registry.kinds.values():
            resources_.append((SCHEMA_BASE + schema_file_name(spec),
                               Resource.from_contents(document_schema(spec), DRAFT202012)))
        self._refs: RefRegistry[Any] = RefRegistry().with_resources(resources_)
        self._files: dict[str, Any] = {name[len(SCHEMA_BASE):]: resource.contents for name, resource in resources_}
        self._validators: dict[str, Draft202012Validator] = {}

    def validator(self, kind: str) -> Draft202012Validator:
        """The validator of one kind (its ``$ref``s inlined when possible: about twice as fast)."""
        if kind not in self._validators:
            spec = self.registry.kinds[kind]
            inlined = inline_refs(schema_file_name(spec), self._files)
            if inlined is not None:
                self._validators[kind] = Draft202012Validator(inlined)
            else:
                schema = {"$ref": SCHEMA_BASE + schema_file_name(spec)}
                self._validators[kind] = Draft202012Validator(schema, registry=self._refs)
        return self._validators[kind]

    def check_envelope(self, doc: SourceDocument) -> list[Diagnostic]:
        """apiVersion and kind: known, with a hint when close."""
        out: list[Diagnostic] = []
        data = doc.data
        api = data.get("apiVersion")
        if api != API_VERSION:
            where = locate(data, "/apiVersion") if "apiVersion" in data else data.loc
            message = "missing apiVersion" if api is None else f"unknown apiVersion {api!r}"
            out.append(Diagnostic("RW100", message, where.file, where.line, where.column, "/apiVersion",
                                  hint=f"use 'apiVersion: {API_VERSION}'"))
        kind = data.get("kind")
        if not isinstance(kind, str) or kind not in self.registry.kinds:  # a list or mapping is unhashable
            where = locate(data, "/kind") if "kind" in data else data.loc
            known = sorted(self.registry.kinds)
            message = "missing kind" if kind is None else f"unknown kind {kind!r}"
            hint = did_you_mean(str(kind), known) if isinstance(kind, str) else ""
            out.append(Diagnostic("RW101", message, where.file, where.line, where.column, "/kind",
                                  hint=hint or ("known kinds: " + ", ".join(known))))
        return out

    def check(self, doc: SourceDocument) -> list[Diagnostic]:
        """Envelope, then the kind's schema; every problem at its line."""
        out = self.check_envelope(doc)
        if out:
            return out
        validator = self.validator(doc.kind)
        for error in validator.iter_errors(doc.data):
            out.extend(_translate(error, doc))
        return out


def _copy(node: Any) -> Any:
    """A deep copy of loaded data that keeps every location (so diagnostics still point at the source)."""
    if isinstance(node, YMap):
        out = YMap(node.loc)
        for key, value in node.items():
            out.put(key, _copy(value), node.key_locs.get(key, node.loc), node.value_locs.get(key, node.loc))
        return out
    if isinstance(node, YSeq):
        seq = YSeq(node.loc)
        for value, loc in zip(node, node.item_locs, strict=False):
            seq.push(_copy(value), loc)
        return seq
    return node


def _remove(root: Any, path: list[Any]) -> bool:
    """Remove the mapping key at ``path`` (or the last item of a list); False when that cannot be done."""
    while path:
        parent: Any = root
        for token in path[:-1]:
            parent = parent[token]
        last = path[-1]
        if isinstance(parent, YMap) and last in parent:
            del parent[last]
            parent.key_locs.pop(last, None)
            parent.value_locs.pop(last, None)
            return True
        if isinstance(parent, YSeq) and isinstance(last, int) and last == len(parent) - 1 and len(parent) > 1:
            parent.pop()
            parent.item_locs.pop()
            return True  # only the last item: removing another would shift the pointers of the rest
        path = path[:-1]  # remove the item's nearest removable ancestor key instead
        if len(path) < 2:
            return False  # never remove spec, metadata or the envelope
    return False


_MAX_PRUNE_ROUNDS = 8


def _cut(path: list[Any]) -> list[Any]:
    """Where to prune for an error at ``path``: the key right under the nearest list item (a transition's
    whole ``guard``, a task's unknown key), or the key right under ``spec`` when no list item is on the way."""
    items = [i for i, token in enumerate(path) if isinstance(token, int)]
    keep = items[-1] + 2 if items else 2
    return path[:keep]


def pruned_for_checks(doc: SourceDocument, validator: Draft202012Validator) -> tuple[SourceDocument, list[str]] | None:
    """The document without the parts its schema errors are in, when that makes it schema-valid.

    The rest of the document is then still checked (references, the graph, facts, the kind compiler), so one
    schema error does not hide the other problems. Returns the pruned document and the pointers removed;
    None when pruning cannot make it valid.
    """
    data = _copy(doc.data)
    removed: list[str] = []
    for _ in range(_MAX_PRUNE_ROUNDS):
        errors = list(validator.iter_errors(data))
        if not errors:
            return SourceDocument(doc.file, doc.index, data, doc.origin), removed
        error = _deepest(max(errors, key=lambda e: len(e.absolute_path)))
        path = list(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
            known = set(error.schema.get("properties", {})) if isinstance(error.schema, Mapping) else set()
            path += [k for k in error.instance if k not in known][:1]
        cut = _cut(path)
        if len(cut) < 2 or cut[0] != "spec":
            return None
        try:
            if not _remove(data, cut):
                return None
        except (KeyError, IndexError, TypeError):
            return None
        removed.append(_pointer(cut))
    return None


_ANNOTATIONS = frozenset({"description", "title", "$comment", "examples", "default", "deprecated"})


def inline_refs(name: str, files: Mapping[str, Any]) -> dict[str, Any] | None:
    """The schema ``files[name]`` with every ``$ref`` replaced by its target (recursive refs become cycles).

    Looking references up through ``referencing`` costs about half of all validation time; an inlined
    schema validates the same way. None when a reference cannot be inlined (another URL, ``$dynamicRef``):
    the caller then validates through the reference registry.
    """
    memo: dict[tuple[str, str], dict[str, Any]] = {}
    filling: set[tuple[str, str]] = set()

    class _CannotInline(Exception):
        pass

    def resolve(base: str, ref: str) -> dict[str, Any]:
        target, _, fragment = ref.partition("#")
        target = target[len(SCHEMA_BASE):] if target.startswith(SCHEMA_BASE) else target
        file = target or base
        if file not in files or (fragment and not fragment.startswith("/")):
            raise _CannotInline(ref)
        key = (file, fragment)
        if key in memo:
            return memo[key]
        node: Any = files[file]
        for token in (t for t in fragment.split("/") if t):
            token = token.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or token not in node:
                raise _CannotInline(ref)
            node = node[token]
        if not isinstance(node, Mapping):
            raise _CannotInline(ref)
        out: dict[str, Any] = {}
        memo[key] = out  # filled below; a recursive reference meets this same dict
        filling.add(key)
        out.update(walk(file, node))
        filling.discard(key)
        return out

    def walk(base: str, node: Any) -> Any:
        if isinstance(node, Mapping):
            if "$dynamicRef" in node or "$recursiveRef" in node:
                raise _CannotInline("$dynamicRef")
            if "$ref" in node and isinstance(node["$ref"], str):
                ref = node["$ref"]
                target = resolve(base, ref)
                rest = {k: walk(base, v) for k, v in node.items() if k not in ("$ref", "$schema", "$id")}
                if not rest:
                    return target
                key = _ref_key(base, ref)
                if key not in filling and set(rest) & set(target) <= _ANNOTATIONS:
                    return {**target, **rest}
                return {"allOf": [target], **rest}
            return {k: walk(base, v) for k, v in node.items() if not (k == "$id" and node is not files[base])}
        if isinstance(node, list):
            return [walk(base, v) for v in node]
        return node

    def _ref_key(base: str, ref: str) -> tuple[str, str]:
        target, _, fragment = ref.partition("#")
        target = target[len(SCHEMA_BASE):] if target.startswith(SCHEMA_BASE) else target
        return (target or base, fragment)

    if name not in files:
        return None
    try:
        root: dict[str, Any] = walk(name, files[name])
    except _CannotInline:
        return None
    root.pop("$id", None)
    return root


def _pointer(path: Any) -> str:
    return "".join(f"/{escape_pointer(p)}" for p in path)


def _type_word(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _deepest(error: ValidationError) -> ValidationError:
    # best_match's descent into anyOf/oneOf context prefers the deepest error of the branch whose type
    # matches the instance (a condition mapping is judged as a mapping, not as "expected boolean")
    return best_match([error]) or error


def _branch_keys(schema: Any) -> set[str]:
    """The keys a oneOf/anyOf branch knows (its properties, also under allOf)."""
    if not isinstance(schema, Mapping):
        return set()
    keys = set(schema.get("properties") or {}) | set(schema.get("required") or ())
    for part in schema.get("allOf") or ():
        keys |= _branch_keys(part)
    return keys


def _branch_type_fails(errors: list[ValidationError], depth: int) -> bool:
    return any(e.validator == "type" and len(e.absolute_path) == depth for e in errors)


def likely_branch(error: ValidationError) -> list[ValidationError] | None:
    """The errors of the oneOf/anyOf branch the author most likely meant, or None when no branch stands out.

    A branch is more likely when the instance has its type and shares more keys with it (the keys the author
    wrote name the form they meant: ``{anchor: ..., lead: ...}`` is the anchor form with a bad key), then
    when it has fewer problems.
    """
    branches = error.validator_value if isinstance(error.validator_value, list) else []
    by_branch: dict[int, list[ValidationError]] = {}
    for sub in error.context or ():
        index = sub.relative_schema_path[0] if sub.relative_schema_path else None
        if isinstance(index, int):
            by_branch.setdefault(index, []).append(sub)
    if not by_branch or len(by_branch) < len(branches):
        return None  # some branch passed (oneOf: more than one matched): nothing to reduce to
    instance = error.instance
    keys = set(instance) if isinstance(instance, Mapping) else set()
    depth = len(error.absolute_path)

    def score(index: int) -> tuple[int, int, int]:
        errors = by_branch[index]
        schema = branches[index] if index < len(branches) else {}
        return (0 if _branch_type_fails(errors, depth) else 1, len(keys & _branch_keys(schema)), -len(errors))

    ranked = sorted(by_branch, key=score, reverse=True)
    if len(ranked) > 1 and score(ranked[0]) == score(ranked[1]):
        return None
    return by_branch[ranked[0]]


def _translate(error: ValidationError, doc: SourceDocument, in_branch: bool = False) -> Iterator[Diagnostic]:
    error = _deepest(error)
    if error.validator in ("anyOf", "oneOf") and error.context and not all(
            e.validator == "type" for e in error.context):
        chosen = likely_branch(error)
        if chosen is not None:
            seen: set[tuple[str, str, str]] = set()
            for sub in chosen:
                for diagnostic in _translate(sub, doc, in_branch=True):
                    key = (diagnostic.code, diagnostic.pointer, diagnostic.message)
                    if key not in seen:
                        seen.add(key)
                        yield diagnostic
            return
    pointer = _pointer(error.absolute_path)
    data = doc.data
    keyword = error.validator
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if keyword == "additionalProperties" and isinstance(error.instance, Mapping):
        known = set(schema.get("properties", {}))
        patterns = schema.get("patternProperties", {})
        import re

        for key in error.instance:
            if key in known or any(re.search(p, key) for p in patterns):
                continue
            where = locate(data, f"{pointer}/{escape_pointer(key)}", key=True)
            message = f"unknown key {key!r}"
            if in_branch:  # name the place and the form's keys: the author picked this form by its other keys
                parent = next((str(p) for p in reversed(list(error.absolute_path)) if not isinstance(p, int)),
                              "this item")
                message += f" in {parent}; allowed: {', '.join(sorted(known))}"
            yield Diagnostic("RW104", message, where.file, where.line, where.column,
                             f"{pointer}/{escape_pointer(key)}",
                             hint=did_you_mean(key, known)
                             or ("" if in_branch else "allowed keys: " + ", ".join(sorted(known))))
        return
    where = locate(data, pointer)
    if keyword == "required":
        required: Any = error.validator_value
        missing = [k for k in required if k not in error.instance] if isinstance(error.instance, Mapping) else []
        for key in missing or ["?"]:
            yield Diagnostic("RW103", f"missing required field {key!r}", where.file, where.line, where.column,
                             pointer)
        return
    if keyword == "type":
        expected: Any = error.validator_value
        words = [str(w) for w in (expected if isinstance(expected, list) else [expected])]
        yield Diagnostic("RW102", f"expected {' or '.join(words)}, got {_type_word(error.instance)}",
                         where.file, where.line, where.column, pointer)
        return
    if keyword in ("anyOf", "oneOf") and error.context and all(e.validator == "type" for e in error.context):
        # every alternative failed on its type alone: say which types fit
        words = sorted({str(w) for e in error.context
                        for w in (e.validator_value if isinstance(e.validator_value, list) else [e.validator_value])})
        yield Diagnostic("RW102", f"expected {' or '.join(words)}, got {_type_word(error.instance)}",
                         where.file, where.line, where.column, pointer,
                         hint=str(schema.get("description", ""))[:200])
        return
    if keyword in ("enum", "const"):
        allowed: Any = error.validator_value if keyword == "enum" else [error.validator_value]
        hint = did_you_mean(str(error.instance), [str(a) for a in allowed]) if isinstance(error.instance, str) else ""
        shown = ", ".join(json.dumps(a, ensure_ascii=False) for a in allowed[:12])
        yield Diagnostic("RW105", f"{json.dumps(error.instance, ensure_ascii=False)[:80]} is not allowed here",
                         where.file, where.line, where.column, pointer,
                         hint=hint or f"allowed: {shown}")
        return
    if keyword == "pattern" and isinstance(error.instance, str):
        description = str(schema.get("description", ""))
        yield Diagnostic("RW105", f"{json.dumps(error.instance, ensure_ascii=False)[:80]} does not have the "
                         "required form", where.file, where.line, where.column, pointer,
                         hint=description[:200] or f"it must match {error.validator_value}")
        return
    message = error.message
    if len(message) > 200:
        message = message[:197] + "..."
    yield Diagnostic("RW106", f"{keyword}: {message}", where.file, where.line, where.column, pointer,
                     hint=str(schema.get("description", ""))[:200] if isinstance(schema, Mapping) else "")
