"""The ``Facts`` kind (a customer's extra attributes of a fact type), the core's places, ``regelwerk facts``.

A place is registered with a pointer pattern (``/spec/transitions/*/guard``): every condition a kind
compiles at a matching pointer is checked against the place's scope. A scope root may be
``{"$doc": "/spec/data_schema"}``: the type is read from the document itself (a workflow's data schema).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache, partial
from typing import Any

from regelwerk.facts import FactModel, fact_paths
from regelwerk.registry import FactSpec, KindSpec, PlaceSpec, Registry

__all__ = ["attribute_schema", "attributes_type", "bundle_fact_model", "place_for", "place_scope", "register",
           "resolve_scope"]

_OPEN: dict[str, Any] = {"type": "object"}
_TYPE_FORMS: dict[str, dict[str, Any]] = {
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
    "time": {"type": "string", "format": "time"},
    "duration": {"type": "string", "format": "duration"},
    "list": {"type": "array"},
}


def attribute_schema(decl: Mapping[str, Any]) -> dict[str, Any]:
    """A ``Facts`` attribute declaration as a fact-model type."""
    kind = str(decl.get("type", "string"))
    out: dict[str, Any] = dict(_TYPE_FORMS.get(kind, {"type": kind}))
    if kind == "list":
        out["items"] = attribute_schema({"type": decl.get("items", "string")})
    for key in ("enum", "label", "description", "aliases"):
        if key in decl:
            out[key] = list(decl[key]) if isinstance(decl[key], list) else decl[key]
    return out


def attributes_type(attributes: Any, description: str = "", required: bool = False) -> dict[str, Any]:
    """A closed object type from a mapping of attribute declarations (as in a ``Facts`` document).

    With ``required`` every attribute is always present unless it says ``optional: true`` (an event's).
    """
    declared = {str(k): v for k, v in (attributes or {}).items() if isinstance(v, Mapping)}
    properties = {k: attribute_schema(v) for k, v in declared.items()}
    out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = [k for k, v in declared.items() if not v.get("optional")]
    if description:
        out["description"] = description
    return out


def declared_attributes(documents: Iterable[Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(fact type, {attribute: type})`` of every ``Facts`` document."""
    from regelwerk.source import to_plain

    out = []
    for doc in documents:
        spec = to_plain(doc.data).get("spec") or {}
        attributes = spec.get("attributes") if isinstance(spec, Mapping) else None
        if isinstance(attributes, Mapping):
            out.append((doc.name, {str(k): attribute_schema(v) for k, v in attributes.items()
                                   if isinstance(v, Mapping)}))
    return out


#: The Import whose ``extra_attributes`` are the employee's (an imported employee keeps them as attributes).
EMPLOYEE_IMPORT = "employees"
_IMPORT_TYPES = {"text": "string", "integer": "integer", "number": "number", "boolean": "boolean", "date": "date",
                 "list": "list"}


def imported_attributes(documents: Iterable[Any]) -> list[tuple[str, dict[str, Any]]]:
    """The employee attributes the ``employees`` Import declares as ``extra_attributes``."""
    from regelwerk.source import to_plain

    out = []
    for doc in documents:
        spec = to_plain(doc.data).get("spec") or {}
        extras = spec.get("extra_attributes") if isinstance(spec, Mapping) else None
        if doc.name == EMPLOYEE_IMPORT and isinstance(extras, list):
            out.append(("employee", {str(e["id"]): attribute_schema({
                "type": _IMPORT_TYPES.get(str(e.get("type", "text")), "string"),
                **{k: e[k] for k in ("label", "description", "aliases") if k in e}})
                for e in extras if isinstance(e, Mapping) and e.get("id")}))
    return out


def bundle_fact_model(registry: Registry, documents: Iterable[Any]) -> FactModel:
    """The fact model of a bundle: the registered fact types, the bundle's ``Facts`` declarations and the
    employee attributes its ``employees`` Import keeps (``extra_attributes``)."""
    documents = list(documents)
    return FactModel.build({name: spec.schema for name, spec in registry.facts.items()},
                           imported_attributes(d for d in documents if d.kind == "Import")
                           + declared_attributes(d for d in documents if d.kind == "Facts"))


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile("^" + "/".join("[^/]+" if part == "*" else re.escape(part) for part in text.split("/")) + "$")


def place_for(registry: Registry, kind: str, pointer: str) -> PlaceSpec | None:
    """The registered condition place of ``kind`` whose pointer pattern matches ``pointer``."""
    for (place_kind, place), spec in registry.places.items():
        if place_kind == kind and spec.form == "condition" and _pattern(place).match(pointer):
            return spec
    return None


def place_scope(place: PlaceSpec, data: Any, pointer: str) -> dict[str, Any] | None:
    """The scope one occurrence of ``place`` is checked against (None: not checked)."""
    if place.scope_of is not None:
        found = place.scope_of(data, pointer)
        return resolve_scope(found, data) if found is not None else None
    return resolve_scope(place.scope, data)


def check_path_places(ctx: Any, documents: Iterable[Any]) -> None:
    """Check every field path at a registered ``path`` or ``params`` place of ``documents`` (RW410/RW411)."""
    from regelwerk.facts import check_params, check_path, describe_type, schema_kind
    from regelwerk.source import iter_pattern

    places = [p for p in ctx.registry.places.values() if p.form in ("path", "params")]
    for doc in documents:
        for place in places:
            if place.kind != doc.kind:
                continue
            scope: dict[str, Any] | None = None
            for pointer, value in iter_pattern(doc.data, place.place):
                if place.form == "params":
                    found_scope = place_scope(place, doc.data, pointer)
                    if found_scope is not None:
                        from regelwerk.source import to_plain

                        check_params(to_plain(value), pointer, ctx.facts, found_scope, partial(ctx.report, doc=doc))
                    continue
                if not isinstance(value, str) or not value or any(not p for p in value.split(".")):
                    continue
                if scope is None or place.scope_of is not None:
                    scope = place_scope(place, doc.data, pointer)
                    if scope is None:
                        continue
                found = check_path(ctx.facts, scope, value.split("."))
                if found.error:
                    ctx.report("RW410", f"{found.error} (in {value})", pointer, found.hint, doc=doc)
                    continue
                kind = schema_kind(found.schema)
                if place.want and kind not in ("any", place.want) and not (
                        place.want == "date" and kind in ("datetime", "string")):
                    ctx.report("RW411", f"{value} is a {describe_type(found.schema)}; a {place.want} is needed here",
                               pointer, doc=doc)


def resolve_scope(scope: Mapping[str, Any], data: Any) -> dict[str, Any]:
    """Replace ``{"$doc": pointer}`` roots by the document's value there (open when absent)."""
    from regelwerk.source import to_plain

    props = {}
    for root, schema in (scope.get("properties") or {}).items():
        if isinstance(schema, Mapping) and "$doc" in schema:
            node: Any = to_plain(data)
            for part in str(schema["$doc"]).strip("/").split("/"):
                node = node.get(part) if isinstance(node, Mapping) else None
            props[root] = node if isinstance(node, Mapping) else dict(_OPEN)
        else:
            props[root] = schema
    return {**scope, "properties": props}


# --- the Facts kind ---------------------------------------------------------------------------------


def compile_facts(ctx: Any, doc: Any) -> dict[str, Any] | None:
    """A ``Facts`` document names a registered fact type and adds attributes its standard fields lack."""
    from regelwerk.diagnostics import did_you_mean
    from regelwerk.facts import CORE_FACTS

    name = doc.name
    spec = ctx.registry.facts.get(name)
    base = spec.schema if spec is not None else CORE_FACTS.get(name)
    if base is None:
        registered = sorted(set(ctx.registry.facts) | set(CORE_FACTS))
        ctx.report("RW413", f"there is no fact type {name!r} to declare attributes of", "/metadata/name",
                   did_you_mean(name, registered) or "fact types: " + ", ".join(registered))
        return None
    standard = set(base.get("properties") or {})
    for key in doc.spec.get("attributes", {}):
        if key in standard:
            ctx.report("RW414", f"{key!r} is a standard field of {name}; declare only extra attributes",
                       f"/spec/attributes/{key}", key=True)
    return {"fact": name, "attributes": dict((ctx.facts.fact(name) or {}).get("properties") or {})}


# --- the core's places ------------------------------------------------------------------------------

_ACTOR = {"$fact": "actor"}
_EMPLOYEE = {"$fact": "employee"}

CORE_PLACES: tuple[tuple[str, str, dict[str, Any], str], ...] = (
    ("Workflow", "/spec/transitions/*/guard", {
        "type": "object", "additionalProperties": False, "required": ["data", "actor", "event", "instance"],
        "properties": {
            "data": {"$doc": "/spec/data_schema"}, "input": {"type": "object", "description": "the fire's input"},
            "actor": _ACTOR, "event": {"type": "string"}, "instance": {"$fact": "instance"}}},
     "a transition's guard: the instance data (its data_schema), the fire's input, the actor, the event"),
    ("Schedule", "/spec/applies_to", {
        "type": "object", "additionalProperties": False, "required": ["employee"],
        "properties": {"employee": _EMPLOYEE}},
     "which employees a schedule plans for"),
)


def _facts_command() -> Any:
    import click

    @click.command("facts")
    @click.argument("kind", required=False)
    @click.option("--bundle", "path", type=click.Path(exists=True), default=None,
                  help="Include this bundle's declared attributes (Facts documents).")
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
    def facts(kind: str | None, path: str | None, fmt: str) -> None:
        """List what each place of KIND can read (every kind's places without KIND; 'types' for fact types)."""
        import json

        from regelwerk.cli import fail, registry

        reg = registry()
        documents: list[Any] = []
        if path:
            from regelwerk.bundle import load_bundle

            documents = list(load_bundle(path).documents)
        model = bundle_fact_model(reg, documents)
        out: dict[str, Any] = {}
        if kind == "types":
            for name in sorted(model.types):
                out[name] = [dict(zip(("path", "type", "optional", "description"), row, strict=True))
                             for row in fact_paths(model, {"type": "object", "properties": {name: {"$fact": name}}})]
        else:
            places = [p for p in reg.places.values() if kind is None or p.kind == kind]
            if kind is not None and not places:
                known = sorted({p.kind for p in reg.places.values()})
                fail(f"no places of kind {kind!r} read data" + (f"; kinds with places: {', '.join(known)}"
                                                               if known else ""), 2)
            for place in sorted(places, key=lambda p: (p.kind, p.place)):
                scope = resolve_scope(place.scope, {})
                out[f"{place.kind} {place.place}"] = {
                    "kind": place.kind, "place": place.place, "form": place.form, "description": place.description,
                    "paths": [dict(zip(("path", "type", "optional", "description"), row, strict=True))
                              for row in fact_paths(model, scope)]}
        if fmt == "json":
            click.echo(json.dumps(out, indent=2, ensure_ascii=False))
            return
        shown: dict[str, list[str]] = {}
        bodies: dict[str, Any] = {}
        for title, body in out.items():
            key = json.dumps(body if isinstance(body, list) else body["paths"], sort_keys=True)
            shown.setdefault(key, []).append(title if isinstance(body, list) else
                                             f"{title}  -- {body['description']}")
            bodies[key] = body if isinstance(body, list) else body["paths"]
        for key, titles in shown.items():
            for title in titles:
                click.echo(title)
            for row in bodies[key]:
                flag = "" if not row["optional"] else " (may be missing)"
                note = f"  {row['description']}" if row["description"] else ""
                click.echo(f"    {row['path']}: {row['type']}{flag}{note}")
            click.echo("")

    return facts


def _for_actions(names: tuple[str, ...], scope: Mapping[str, Any]) -> Any:
    """A ``scope_of`` that checks a parameter only on the named actions (``.../N/with/param``)."""

    def scope_of(data: Any, pointer: str) -> Mapping[str, Any] | None:
        node: Any = data
        for part in pointer.strip("/").split("/")[:-2]:
            if isinstance(node, Mapping):
                node = node.get(part)
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return scope if isinstance(node, Mapping) and node.get("action") in names else None

    return scope_of


def register(registry: Registry, plugin: str) -> None:
    """Add the ``Facts`` kind, the core fact types and places, and ``regelwerk facts``."""
    from regelwerk.facts import CORE_FACTS
    from regelwerk.validation import load_shipped_schema

    registry.add_kind(KindSpec(kind="Facts", plugin=plugin, schema=load_shipped_schema("facts.json"),
                               compile=compile_facts,
                               description="a customer's extra attributes of a fact type (e.g. employee)"))
    for name, schema in CORE_FACTS.items():
        registry.add_fact(FactSpec(name, plugin, schema, str(schema.get("description", ""))))
    for kind, place, scope, description in CORE_PLACES:
        registry.add_place(PlaceSpec(kind, place, plugin, scope, description))
    guard_scope = CORE_PLACES[0][2]
    for pattern in ("/spec/states/*/on_enter/*/with/schedule/anchor", "/spec/states/*/on_exit/*/with/schedule/anchor",
                    "/spec/transitions/*/actions/*/with/schedule/anchor"):
        registry.add_place(PlaceSpec("Workflow", pattern, plugin, guard_scope,
                                     "the anchor of a schedule an action sets (a date in the instance data)",
                                     form="path", want="date"))
    for pattern in ("/spec/states/*/on_enter/*/with/inputs/*/field", "/spec/states/*/on_exit/*/with/inputs/*/field",
                    "/spec/transitions/*/actions/*/with/inputs/*/field"):
        registry.add_place(PlaceSpec("Workflow", pattern, plugin, guard_scope,
                                     "a value an action reads from its scope ({field: path} in decisions.decide "
                                     "inputs)", form="path"))
    for param, actions in (("to", ("send_template",)), ("about", ("send_template",)),
                           ("instance_field", ("workflow.fire",))):
        for base in ("/spec/states/*/on_enter/*", "/spec/states/*/on_exit/*", "/spec/transitions/*/actions/*"):
            registry.add_place(PlaceSpec("Workflow", f"{base}/with/{param}", plugin, guard_scope,
                                         f"a path an action reads from its scope ({', '.join(actions)}: {param})",
                                         form="path", scope_of=_for_actions(actions, guard_scope)))
    registry.add_place(PlaceSpec("Schedule", "/spec/when/anchor", plugin, CORE_PLACES[1][2],
                                 "the anchor a schedule counts from", form="path", want="date"))
    # a plan's start data is read per employee at the tick ({field: employee.email}): a typo there validated and
    # started every workflow with the field missing (or refused by its data_schema) on the day itself
    registry.add_place(PlaceSpec("Schedule", "/spec/start/data", plugin, CORE_PLACES[1][2],
                                 "the data a plan starts its workflow with ({field: employee.x})", form="params"))
    registry.add_command(_facts_command())
