"""The schema files editors load: stable ``$id`` s, the partial (patch) form of each kind, the umbrella, the set.

Every schema has the ``$id`` ``SCHEMA_BASE + <file>`` and refers to the others by relative references
(``common.json#/$defs/condition``), which resolve to the same schema by ``$id`` (Ajv, jsonschema) and by file
path (an editor reading the files side by side). ``write_schema_set`` writes that side-by-side set into a
customer repository; the modeline it prints names the umbrella, which dispatches every document of a file on
``kind`` and, for ``metadata.merge: patch | remove``, on the partial form of the kind (every field optional,
``$remove`` allowed, ``id`` still required in lists keyed by id), the way the overlay merge reads them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from regelwerk.registry import Registry
from regelwerk.validation import SCHEMA_BASE

__all__ = [
    "BUNDLE_SCHEMA_FILE",
    "PARTIAL_MODES",
    "SCHEMA_BASE",
    "UMBRELLA_FILE",
    "bundle_schema",
    "modeline",
    "partial_file_name",
    "partial_schema",
    "schema_files",
    "umbrella_schema",
    "with_id",
    "write_schema_set",
]

UMBRELLA_FILE = "regelwerk.json"
BUNDLE_SCHEMA_FILE = "bundle.json"
#: Merge modes whose documents are read as partial documents (``metadata.merge``).
PARTIAL_MODES = ("patch", "remove")
_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_ENVELOPE = ("apiVersion", "kind", "metadata")
_REMOVE = {"const": True, "description": "In a patch: remove the item with this id from the base list."}


def with_id(schema: Mapping[str, Any], file: str) -> dict[str, Any]:
    """``schema`` with ``$schema`` and ``$id`` first (``$id`` = ``SCHEMA_BASE + file``)."""
    rest = {k: v for k, v in schema.items() if k not in ("$schema", "$id")}
    return {"$schema": _DRAFT, "$id": SCHEMA_BASE + file, **rest}


def partial_file_name(file: str) -> str:
    """``workflow.json`` -> ``workflow.patch.json``."""
    return file[: -len(".json")] + ".patch.json" if file.endswith(".json") else file + ".patch"


def _is_keyed_item(node: Any) -> bool:
    return (isinstance(node, Mapping) and isinstance(node.get("properties"), Mapping) and "id" in node["properties"]
            and "id" in (node.get("required") or ()))


def _trivial(node: Any) -> bool:
    return isinstance(node, Mapping) and not (set(node) - {"description", "title", "$comment", "examples"})


def _partial(node: Any, keyed: bool = False, defs: Mapping[str, Any] | None = None) -> Any:
    if isinstance(node, list):
        return [_partial(v, defs=defs) for v in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    keyed_list = isinstance(node.get("items"), Mapping) and _is_keyed_item(_local(node["items"], defs))
    for key, value in node.items():
        if key in ("required", "minProperties", "dependentRequired") or (key == "minItems" and keyed_list):
            continue  # a patch names only what it changes; a keyed list merges by id
        if key == "$ref" and isinstance(value, str):
            out[key] = _partial_ref(value)
            continue
        if key == "properties" and isinstance(value, Mapping):
            out[key] = {k: _partial(v, defs=defs) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, Mapping):
            out[key] = _partial(value, keyed=key == "items" and _is_keyed_item(_local(value, defs)), defs=defs)
        elif key in ("$defs", "patternProperties") and isinstance(value, Mapping):
            out[key] = {k: _partial(v, keyed=key == "$defs" and _is_keyed_item(v), defs=defs)
                        for k, v in value.items()}
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            branches = [_partial(v, defs=defs) for v in value]
            if not any(_trivial(b) for b in branches):  # a branch that only required keys is always true now
                out["anyOf"] = branches  # partial branches may overlap: one of them suffices
        elif key in ("allOf", "prefixItems") and isinstance(value, list):
            out[key] = [_partial(v, defs=defs) for v in value]
        elif key in ("if", "then", "else", "not", "contains") and isinstance(value, Mapping):
            out[key] = _partial(value, defs=defs)
        else:
            out[key] = value
    if keyed:
        out["required"] = ["id"]
        if isinstance(out.get("properties"), Mapping) and node.get("additionalProperties") is False:
            out["properties"] = {**out["properties"], "$remove": _REMOVE}
    return out


def _partial_ref(ref: str) -> str:
    """A reference from a partial schema into another kind's schema goes to that kind's partial form."""
    file, _, fragment = ref.partition("#")
    if not file or file.startswith(("common.json", SCHEMA_BASE + "common.json")) or file.endswith(".patch.json"):
        return ref
    if file.startswith(SCHEMA_BASE):
        file = file[len(SCHEMA_BASE):]
    return partial_file_name(file) + ("#" + fragment if fragment or "#" in ref else "")


def _local(node: Mapping[str, Any], defs: Mapping[str, Any] | None) -> Any:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and defs is not None:
        return defs.get(ref[len("#/$defs/"):], node)
    return node


def partial_schema(schema: Mapping[str, Any], file: str) -> dict[str, Any]:
    """The partial form of a kind's schema, for ``merge: patch`` (and ``remove``) documents."""
    defs = schema.get("$defs") if isinstance(schema.get("$defs"), Mapping) else None
    body = _partial({k: v for k, v in schema.items() if k not in ("$schema", "$id", "title", "description")},
                    defs=defs)
    body["required"] = [k for k in _ENVELOPE if k in (schema.get("required") or ())]
    title = str(schema.get("title", file))
    return with_id({"title": f"{title} (patch)",
                    "description": f"A `metadata.merge: patch` document of {file}: every field optional, "
                                   "`$remove: true` drops an item of a list keyed by id (docs/authoring.md).",
                    **body}, partial_file_name(file))


def bundle_schema() -> dict[str, Any]:
    """The schema of ``bundle.yaml`` (``kind: Bundle``), the manifest of a bundle directory."""
    return with_id({
        "title": "regelwerk Bundle",
        "description": "bundle.yaml: the bundle's name and the bundle it extends (docs/authoring.md).",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"$ref": "common.json#/$defs/apiVersion"},
            "kind": {"const": "Bundle"},
            "metadata": {"$ref": "common.json#/$defs/metadata"},
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "extends": {"type": "string", "description": "'standard' or the path of the base bundle."},
                    "include": {"type": "array", "items": {"type": "string"},
                                "description": "Glob patterns of the files that belong to the bundle."},
                    "exclude": {"type": "array", "items": {"type": "string"},
                                "description": "Glob patterns of files to leave out."},
                    "description": {"type": "string"},
                    "customer": {"type": "string", "description": "The customer's name, on the report's cover."},
                    "uses": {"type": "array", "items": {"type": "string"},
                             "description": "The parts of the base bundle the customer uses, as paths inside it "
                                            "(`recruitment`, `permissions/hroffice.yaml`); the report shows only "
                                            "these and what the customer changed (docs/report.md)."},
                },
            },
        },
    }, BUNDLE_SCHEMA_FILE)


def _kind_files(registry: Registry) -> dict[str, str]:
    from regelwerk.validation import schema_file_name

    return {kind: schema_file_name(spec) for kind, spec in sorted(registry.kinds.items())}


def _dispatch(kind: str, file: str, partial: bool) -> dict[str, Any]:
    then: dict[str, Any] = {"$ref": file}
    if partial:
        then = {
            "if": {"required": ["metadata"], "properties": {"metadata": {
                "required": ["merge"], "properties": {"merge": {"enum": list(PARTIAL_MODES)}}}}},
            "then": {"$ref": partial_file_name(file)},
            "else": {"$ref": file},
        }
    return {"if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]}, "then": then}


def umbrella_schema(registry: Registry) -> dict[str, Any]:
    """One schema for every document of a regelwerk repository: dispatches on ``kind`` and ``metadata.merge``."""
    files = _kind_files(registry)
    others = {"Bundle": BUNDLE_SCHEMA_FILE, "Scenario": "scenario.json", "Story": "story.json"}
    kinds = sorted([*files, *others])
    return with_id({
        "title": "regelwerk/v1 document",
        "description": "Any regelwerk/v1 document (definitions, Bundle, Scenario, Story); `kind` selects the schema, "
                       "`metadata.merge: patch` its partial form. Generated by `regelwerk schema`.",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {
            "apiVersion": {"$ref": "common.json#/$defs/apiVersion"},
            "kind": {"enum": kinds},
        },
        "allOf": [_dispatch(kind, files[kind], True) if kind in files else _dispatch(kind, others[kind], False)
                  for kind in kinds],
    }, UMBRELLA_FILE)


def schema_files(registry: Registry) -> dict[str, dict[str, Any]]:
    """Every schema file of the registry's kinds by file name: common, kinds, their partial forms, Bundle,
    Scenario, Story and the umbrella (what ``regelwerk schema --write`` writes)."""
    from regelwerk.scenarios import scenario_schema
    from regelwerk.simulation.story import story_schema
    from regelwerk.validation import document_schema, load_shipped_schema

    out: dict[str, dict[str, Any]] = {"common.json": with_id(load_shipped_schema("common.json"), "common.json")}
    for kind, file in _kind_files(registry).items():
        full = with_id(document_schema(registry.kinds[kind]), file)
        out[file] = full
        out[partial_file_name(file)] = partial_schema(full, file)
    out[BUNDLE_SCHEMA_FILE] = bundle_schema()
    out["scenario.json"] = with_id(scenario_schema(registry), "scenario.json")
    out["story.json"] = with_id(story_schema(registry), "story.json")
    out[UMBRELLA_FILE] = umbrella_schema(registry)
    return {name: _relative_refs(data) for name, data in sorted(out.items())}


def _relative_refs(node: Any) -> Any:
    """Absolute references into ``SCHEMA_BASE`` (how plugins name the core's schemas) made file-relative, so the
    written set also resolves for an editor that reads files by path."""
    if isinstance(node, Mapping):
        return {k: (v[len(SCHEMA_BASE):] if k == "$ref" and isinstance(v, str) and v.startswith(SCHEMA_BASE)
                    else _relative_refs(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_relative_refs(v) for v in node]
    return node


def modeline(schema_dir: str | Path, document_dir: str | Path = ".") -> str:
    """The ``yaml-language-server`` modeline for YAML files in ``document_dir`` (relative to the umbrella)."""
    import os

    relative = os.path.relpath(Path(schema_dir) / UMBRELLA_FILE, Path(document_dir)).replace(os.sep, "/")
    return f"# yaml-language-server: $schema={relative}"


def write_schema_set(registry: Registry, directory: str | Path) -> list[Path]:
    """Write every schema file into ``directory`` (created); returns the files written, sorted."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in schema_files(registry).items():
        path = target / name
        if path.is_file():
            try:
                if json.loads(path.read_text(encoding="utf-8")) == data:
                    written.append(path)
                    continue  # unchanged: keep the file's own formatting
            except ValueError:
                pass
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written
