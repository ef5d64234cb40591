"""validate -> compile: a pure function from loaded documents to a frozen, runnable model.

``compile_bundle`` checks every document against its kind's schema, then the ids and
references each kind declares, then runs the kind compilers (lazily, in dependency
order: a compiler may ask for another document's compiled form). Every problem of the
run is collected; one ``DefinitionError`` carries them all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Any

from regelwerk.bundle import DEFAULT_TIMEZONE, Bundle
from regelwerk.conditions import Condition, compile_condition
from regelwerk.diagnostics import DefinitionError, Diagnostic, Severity, did_you_mean, sort_diagnostics
from regelwerk.registry import KindSpec, Registry
from regelwerk.source import SourceDocument, iter_pattern, locate, to_plain
from regelwerk.validation import SchemaSet

__all__ = ["CompileContext", "CompiledBundle", "compile_bundle", "content_hash", "validate_bundle"]


def _json_default(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def content_hash(data: Any) -> str:
    """A stable hash of plain data (the definition version of a document)."""
    text = json.dumps(to_plain(data), sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class CompiledBundle:
    """The runnable model of a bundle: compiled objects by (kind, name), versions, warnings."""

    name: str
    objects: Mapping[tuple[str, str], Any]
    versions: Mapping[tuple[str, str], str]
    documents: tuple[SourceDocument, ...]
    warnings: tuple[Diagnostic, ...] = ()
    version: str = ""
    chain: tuple[str, ...] = ()
    overlay_changes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    #: The organisation's IANA time zone (bundle.yaml ``timezone``, default Europe/Amsterdam): dates of
    #: validity (consent, rights, invitations) are evaluated in it.
    timezone: str = "Europe/Amsterdam"

    def get(self, kind: str, name: str) -> Any:
        """The compiled object of one document; ``UnknownDefinition`` if there is none."""
        try:
            return self.objects[(kind, name)]
        except KeyError:
            from regelwerk.errors import UnknownDefinition

            raise UnknownDefinition(kind, name, [n for k, n in self.objects if k == kind]) from None

    def of_kind(self, kind: str) -> dict[str, Any]:
        """Every compiled object of one kind, by name."""
        from regelwerk.frozen import FrozenDict

        if isinstance(self.objects, FrozenDict):  # compile_bundle's: read-only, so indexed by kind once
            return dict(self._by_kind.get(kind, ()))
        return {n: obj for (k, n), obj in sorted(self.objects.items()) if k == kind}

    @cached_property
    def _by_kind(self) -> dict[str, tuple[tuple[str, Any], ...]]:
        """The objects by kind, each kind's by name (what :meth:`of_kind` answers): read every time before, every
        object sorted for each question (a recruitment mail asked for the settings once per mail)."""
        index: dict[str, list[tuple[str, Any]]] = {}
        for (kind, name), obj in sorted(self.objects.items()):
            index.setdefault(kind, []).append((name, obj))
        return {kind: tuple(items) for kind, items in index.items()}


def _unknown_parameters(error: Any) -> list[str]:
    """The keys a ``with:`` mapping names and its action's closed schema does not (``additionalProperties:
    false``), or [] for any other schema error."""
    if error.validator != "additionalProperties" or not isinstance(error.instance, Mapping):
        return []
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    known = schema.get("properties") or {}
    patterns = schema.get("patternProperties") or {}
    return [str(key) for key in error.instance if key not in known and not patterns]


class CompileContext:
    """What a kind compiler gets: its document, problem reporting, other documents, the registry."""

    def __init__(self, bundle: Bundle, registry: Registry, compile_one: Callable[[str, str], Any]) -> None:
        self.bundle = bundle
        self.registry = registry
        self.diagnostics: list[Diagnostic] = []
        self._compile_one = compile_one
        self._emitted: dict[tuple[str, str], Any] = {}
        self._emitted_versions: dict[tuple[str, str], str] = {}
        # (kind, name, parameter, action, pointer, document) of action parameters naming a document, checked last
        self._document_params: list[tuple[str, str, str, str, str, SourceDocument | None]] = []
        # (role, action, pointer, document) of action parameters naming a role of the permission matrices
        self._role_params: list[tuple[str, str, str, SourceDocument | None]] = []
        self.doc: SourceDocument | None = None
        self.functions = registry.function_table()
        self._action_validators: dict[str, Any] = {}
        self._facts: Any = None

    def report(self, code: str, message: str, pointer: str = "", hint: str = "",
               severity: Severity = Severity.ERROR, doc: SourceDocument | None = None, key: bool = False) -> None:
        """Record a problem at ``pointer`` of the current (or given) document."""
        target = doc or self.doc
        if target is None:
            self.diagnostics.append(Diagnostic(code, message, "", 0, 0, pointer, hint, severity))
            return
        where = locate(target.data, pointer, key=key)
        self.diagnostics.append(Diagnostic(code, message, where.file or target.file, where.line, where.column,
                                           pointer, hint, severity))

    def warn(self, code: str, message: str, pointer: str = "", hint: str = "") -> None:
        """Record a warning at ``pointer`` of the current document."""
        self.report(code, message, pointer, hint, Severity.WARNING)

    @property
    def facts(self) -> Any:
        """The bundle's fact model (:class:`regelwerk.facts.FactModel`): registered types plus ``Facts`` documents."""
        if self._facts is None:
            from regelwerk.facts_kind import bundle_fact_model

            self._facts = bundle_fact_model(self.registry, self.bundle.documents)
        return self._facts

    def condition(self, data: Any, pointer: str, scope: Mapping[str, Any] | None = None) -> Condition:
        """Compile a condition of the current document; problems become diagnostics.

        Its field paths are checked against ``scope`` (an object type of the roots), or else against the
        scope of the registered place of the document's kind whose pointer pattern matches ``pointer``.
        """
        compiled, problems = compile_condition(data, pointer, self.functions)
        for problem in problems:
            self.report(problem.code, problem.message, problem.pointer, problem.hint)
        if not problems:
            self.check_facts(data, pointer, scope)
        return compiled

    def check_facts(self, data: Any, pointer: str, scope: Mapping[str, Any] | None = None) -> None:
        """Check a condition's field paths and comparisons against its place's fact types (RW410-RW412)."""
        from regelwerk.facts import check_condition
        from regelwerk.facts_kind import place_for, place_scope

        doc = self.doc
        if scope is None and doc is not None:
            place = place_for(self.registry, doc.kind, pointer)
            scope = place_scope(place, doc.data, pointer) if place is not None else None
        if scope is not None:
            check_condition(to_plain(data), pointer, self.facts, scope, self.report, self.warn)

    def compiled(self, kind: str, name: str) -> Any:
        """The compiled form of another document (compiled on demand); None if it failed or is missing."""
        return self._compile_one(kind, name)

    def documents(self, kind: str) -> list[SourceDocument]:
        """Every document of a kind in the bundle."""
        return self.bundle.of_kind(kind)

    def emit(self, kind: str, name: str, obj: Any, version: str = "") -> None:
        """Add a derived object (e.g. a pack kind compiled into a core Workflow)."""
        self._emitted[(kind, name)] = obj
        if version:
            self._emitted_versions[(kind, name)] = version

    def check_action(self, name: Any, pointer: str, params: Any = None, params_pointer: str = "",
                     runs_in: str = "workflows") -> None:
        """Report an unknown action name, an action that does not run in this kind of definition (``runs_in``:
        ``workflows`` or ``rules``), and ``with:`` parameters that do not fit the action's schema."""
        usable = {n for n, spec in self.registry.actions.items() if runs_in in spec.runs_in}
        if not isinstance(name, str) or name not in self.registry.actions:
            self.report("RW500", f"unknown action {name!r}", pointer,
                        hint=did_you_mean(str(name), usable) or "known actions: " + ", ".join(sorted(usable)))
            return
        spec = self.registry.actions[name]
        if runs_in not in spec.runs_in:
            where = " and ".join(sorted(spec.runs_in)) or "nowhere"
            self.report("RW306", f"action {name!r} runs in {where}, not in {runs_in}", pointer,
                        hint=f"actions for {runs_in}: " + ", ".join(sorted(usable)))
            return
        schema = self.registry.actions[name].params_schema
        if params is None or not schema:
            return
        validator = self._action_validators.get(name)
        if validator is None:
            from jsonschema import Draft202012Validator

            validator = self._action_validators[name] = Draft202012Validator(dict(schema))
        errors = sorted(validator.iter_errors(to_plain(params)), key=lambda e: list(e.absolute_path))
        # a mapping with an unknown key also fails the schema's oneOf/anyOf of required keys: the key is the news
        with_unknown = {tuple(e.absolute_path) for e in errors if _unknown_parameters(e)}
        for error in errors:
            if error.validator in ("oneOf", "anyOf") and tuple(error.absolute_path) in with_unknown:
                continue
            unknown = _unknown_parameters(error)
            if unknown:  # one diagnostic per unknown key, at the key, with did-you-mean among the known ones
                where = params_pointer + "".join(f"/{p}" for p in error.absolute_path)
                known = tuple((error.schema.get("properties") or {}) if isinstance(error.schema, Mapping) else ())
                for key in unknown:
                    self.report("RW305", f"parameters of action {name!r}: unknown parameter {key!r}",
                                f"{where}/{key}", hint=did_you_mean(key, known) or
                                "known parameters: " + (", ".join(known) or "none"), key=True)
                continue
            path, message = _closest(error)
            if error.validator == "not" and isinstance(error.validator_value, Mapping) \
                    and error.validator_value.get("description"):  # "should not be valid under {...}" says nothing
                message = str(error.validator_value["description"])
            where = params_pointer + "".join(f"/{p}" for p in path)
            own = error.schema.get("description") if isinstance(error.schema, Mapping) else None
            hint = str(own or "") or _described(schema, error.absolute_path) or str(schema.get("description", "")) \
                or "see `regelwerk kinds` and the action's docs"
            self.report("RW305", f"parameters of action {name!r}: {message[:160]}", where or pointer, hint=hint)
        self._check_document_params(name, schema, params, params_pointer or pointer)

    def _check_document_params(self, name: str, schema: Mapping[str, Any], params: Any, pointer: str) -> None:
        """RW302 for a parameter that names a document (its schema property says ``"x-document": KIND``) the
        bundle does not have: ``send_template``'s template, ``decisions.decide``'s table, ``workflow.schedule``'s
        named schedule. Checked when the value is a text and the kind is installed. A text whose schema says
        ``"x-role": true`` (``send_template``'s ``to: {role: ...}``) is recorded for RW303."""
        properties = schema.get("properties")
        if not isinstance(params, Mapping) or not isinstance(properties, Mapping):
            return
        for key, sub in properties.items():
            kind = sub.get("x-document") if isinstance(sub, Mapping) else None
            value = params.get(key)
            if not isinstance(kind, str) or not isinstance(value, str) or kind not in self.registry.kinds:
                continue
            self._document_params.append((kind, value, key, name, f"{pointer}/{key}", self.doc))
        for role, where in _role_values(schema, params, pointer):
            self._role_params.append((role, name, where, self.doc))

    def check_document_params(self, failed: Collection[tuple[str, str]] = ()) -> None:
        """Report the parameters :meth:`_check_document_params` recorded whose document neither the bundle nor a
        kind's compiler (``emit``: a pack's generated DecisionTable) provides; called once everything compiled.
        ``failed``: the documents that did not compile (their errors are reported). While one of another kind than
        the referring document's and the named one's failed, a missing document is not reported: it may be one the
        failed document would have emitted (a pack's catalog with a wrong answer key makes none of the tables it
        generates), and its error says what to fix first."""
        for kind, value, key, name, pointer, doc in self._document_params:
            known = {d.name for d in self.documents(kind)} | {n for k, n in self._emitted if k == kind}
            referrer = (doc.kind, doc.name) if doc is not None else None
            if value not in known and any(f != referrer and f[0] != kind for f in failed):
                continue  # perhaps a failed document's to emit: its own error stands
            if value not in known:
                self.report("RW302", f"{kind} {value!r} does not exist (parameter {key!r} of action {name!r})",
                            pointer, hint=did_you_mean(value, known)
                            or (f"known: {', '.join(sorted(known)[:15])}" if known else f"the bundle has no {kind}"),
                            doc=doc)
        self._document_params.clear()
        self._check_role_params(failed)

    def _check_role_params(self, failed: Collection[tuple[str, str]]) -> None:
        """RW303 for an action parameter that names a role (its schema says ``"x-role": true``: ``send_template``'s
        ``to: {role: ...}``) no ``PermissionMatrix`` of the bundle defines. Not reported while a matrix has errors
        (its own error says what to fix first)."""
        if not self._role_params or any(kind == "PermissionMatrix" for kind, _ in failed):
            self._role_params.clear()
            return
        known: set[str] = set()
        for matrix in self.documents("PermissionMatrix"):
            spec = matrix.data.get("spec") if isinstance(matrix.data, Mapping) else None
            roles = spec.get("roles") if isinstance(spec, Mapping) else None
            for role in roles if isinstance(roles, list) else ():
                if isinstance(role, Mapping) and isinstance(role.get("id"), str):
                    known.add(role["id"])
        for (kind, _), obj in self._emitted.items():
            if kind == "PermissionMatrix":
                known.update(str(r) for r in getattr(obj, "roles", ()))
        for role, name, pointer, doc in self._role_params:
            if role not in known:
                self.report("RW303", f"role {role!r} is not a role of any PermissionMatrix (parameter of action "
                            f"{name!r})", pointer, hint=did_you_mean(role, known)
                            or (f"roles: {', '.join(sorted(known)[:15])}" if known
                                else "the bundle has no PermissionMatrix, so nobody holds a role"), doc=doc)
        self._role_params.clear()


def _closest(error: Any) -> tuple[list[Any], str]:
    """Where and what an action parameter's schema error is. For a value that fits none of the alternatives
    (``anyOf``/``oneOf``: ``send_template``'s ``to`` is a path or ``{role: ...}``), the errors of the alternatives of
    the value's own type: ``'role' is a required property`` rather than ``... is not valid under any of the given
    schemas``."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        fitting = [e for e in error.context if e.validator != "type"]
        if fitting:
            deepest = max(fitting, key=lambda e: len(e.absolute_path))
            return list(deepest.absolute_path), "; ".join(dict.fromkeys(e.message for e in fitting))
    return list(error.absolute_path), str(error.message)


def _described(schema: Mapping[str, Any], path: Any) -> str:
    """The ``description`` of the schema property at ``path`` (top-level properties only), if any."""
    parts = list(path)
    properties = schema.get("properties")
    if parts and isinstance(properties, Mapping) and isinstance(properties.get(parts[0]), Mapping):
        return str(properties[parts[0]].get("description", ""))
    return ""


def _role_values(schema: Any, value: Any, pointer: str) -> Iterator[tuple[str, str]]:
    """The texts in ``value`` whose schema (followed through ``properties`` and ``anyOf``/``oneOf`` alternatives)
    says ``"x-role": true``, with their pointers."""
    if not isinstance(schema, Mapping):
        return
    if schema.get("x-role") and isinstance(value, str):
        yield value, pointer
    for alternatives in ("anyOf", "oneOf"):
        for sub in schema.get(alternatives) or ():
            yield from _role_values(sub, value, pointer)
    properties = schema.get("properties")
    if isinstance(properties, Mapping) and isinstance(value, Mapping):
        for key, sub in properties.items():
            if key in value:
                yield from _role_values(sub, value[key], f"{pointer}/{key}")


def _values(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        yield from value
    else:
        yield value


def _check_ids_and_refs(bundle: Bundle, registry: Registry, checkable: list[SourceDocument]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    names_by_kind: dict[str, set[str]] = {}
    for doc in bundle.documents:
        names_by_kind.setdefault(doc.kind, set()).add(doc.name)
    ids_by_kind: dict[tuple[str, str], set[str]] = {}

    def ids_of_kind(kind: str, target: str) -> set[str]:
        key = (kind, target)
        if key not in ids_by_kind:
            found: set[str] = set()
            for other in bundle.of_kind(kind):
                found.update(str(v) for _, v in iter_pattern(other.data, target) if isinstance(v, (str, int)))
            ids_by_kind[key] = found
        return ids_by_kind[key]

    for doc in checkable:
        spec: KindSpec = registry.kinds[doc.kind]
        for decl in spec.ids:
            seen: dict[str, str] = {}
            for pointer, value in iter_pattern(doc.data, decl.path):
                if not isinstance(value, (str, int)):
                    continue
                text = str(value)
                if text in seen:
                    where = locate(doc.data, pointer)
                    first = locate(doc.data, seen[text])
                    out.append(Diagnostic("RW300", f"duplicate {decl.what} {text!r} (first at line {first.line})",
                                          where.file, where.line, where.column, pointer))
                else:
                    seen[text] = pointer
        targets: dict[str, set[str]] = {}  # the ids of this document at a target pattern, collected once
        for ref in spec.refs:
            for pointer, value in iter_pattern(doc.data, ref.path):
                for i, item in enumerate(_values(value)):
                    if not isinstance(item, (str, int)) or str(item) in ref.allow:
                        continue
                    item_pointer = f"{pointer}/{i}" if isinstance(value, list) else pointer
                    text = str(item)
                    if ref.target is None and ref.kind is not None:
                        known = names_by_kind.get(ref.kind, set())
                        code, what = "RW302", f"{ref.kind} {text!r}"
                    elif ref.kind is None and ref.target is not None:
                        if ref.target not in targets:
                            targets[ref.target] = {str(v) for _, v in iter_pattern(doc.data, ref.target)
                                                   if isinstance(v, (str, int))}
                        known = targets[ref.target]
                        code, what = "RW301", f"{ref.what} {text!r}"
                    else:
                        known = ids_of_kind(ref.kind or "", ref.target or "")
                        code, what = "RW301", f"{ref.what} {text!r} (in any {ref.kind})"
                    if text not in known:
                        where = locate(doc.data, item_pointer)
                        hint = did_you_mean(text, known) or (
                            f"known: {', '.join(sorted(known)[:15])}" if known else f"no {ref.what}s are defined")
                        out.append(Diagnostic(code, f"{what} does not exist", where.file, where.line, where.column,
                                              item_pointer, hint=hint))
    return out


def _under_pruned(diagnostic: Diagnostic, pruned: list[tuple[str, str]]) -> bool:
    """A compiler diagnostic about a part pruned for a schema error (or an ancestor of it) says nothing new."""
    pointer = diagnostic.pointer
    return any(pointer == p or p.startswith(pointer + "/") or pointer.startswith(p + "/") for _, p in pruned)


def validate_bundle(bundle: Bundle, registry: Registry, schemas: SchemaSet | None = None) -> list[Diagnostic]:
    """Every diagnostic of loading, schema, references and compiling (empty when valid)."""
    try:
        compiled = compile_bundle(bundle, registry, schemas, freeze=False)  # only its diagnostics are read
    except DefinitionError as exc:
        return list(exc.diagnostics)
    return list(compiled.warnings)


def compile_bundle(bundle: Bundle, registry: Registry, schemas: SchemaSet | None = None, *,
                   freeze: bool = True) -> CompiledBundle:
    """Validate and compile; raises ``DefinitionError`` with every problem, or returns the frozen model
    (``freeze=False``: the compiled objects as the kinds built them, for a caller that only checks)."""
    schemas = schemas or SchemaSet(registry)
    diagnostics: list[Diagnostic] = list(bundle.diagnostics)
    checkable: list[SourceDocument] = []  # schema-valid documents, and the rest of those with schema errors
    pruned_at: list[tuple[str, str]] = []  # (file, pointer) of the parts pruned for schema errors
    for doc in bundle.documents:
        problems = schemas.check(doc)
        diagnostics.extend(problems)
        if not any(p.is_error for p in problems):
            checkable.append(doc)
        elif doc.kind in registry.kinds and not any(p.code in ("RW100", "RW101") for p in problems):
            from regelwerk.validation import pruned_for_checks

            pruned = pruned_for_checks(doc, schemas.validator(doc.kind))
            if pruned is not None:
                checkable.append(pruned[0])
                pruned_at.extend((pruned[0].file, p) for p in pruned[1])
    diagnostics.extend(_check_ids_and_refs(bundle, registry, checkable))

    results: dict[tuple[str, str], Any] = {}
    versions: dict[tuple[str, str], str] = {}
    in_progress: set[tuple[str, str]] = set()
    failed: set[tuple[str, str]] = set()
    by_key = {(d.kind, d.name): d for d in checkable}
    ctx_holder: list[CompileContext] = []

    def compile_one(kind: str, name: str) -> Any:
        key = (kind, name)
        if key in results:
            return results[key]
        if key in failed or key not in by_key:
            return None
        if key in in_progress:
            ctx = ctx_holder[0]
            ctx.report("RW500", f"{kind} {name!r} depends on itself through other documents", "/metadata/name")
            return None
        doc = by_key[key]
        spec = registry.kinds[kind]
        ctx = ctx_holder[0]
        previous = ctx.doc
        ctx.doc = doc
        in_progress.add(key)
        before = len([d for d in ctx.diagnostics if d.is_error])
        try:
            obj = spec.compile(ctx, doc) if spec.compile is not None else to_plain(doc.data)
        finally:
            in_progress.discard(key)
            ctx.doc = previous
        if len([d for d in ctx.diagnostics if d.is_error]) > before:
            failed.add(key)
            return None
        results[key] = obj
        versions[key] = content_hash(doc.data)
        return obj

    ctx = CompileContext(bundle, registry, compile_one)
    ctx_holder.append(ctx)
    for kind, name in by_key:
        compile_one(kind, name)
    ctx.check_document_params(failed)
    if registry.places:
        from regelwerk.facts_kind import check_path_places

        check_path_places(ctx, by_key.values())
    diagnostics.extend(d for d in ctx.diagnostics if not _under_pruned(d, pruned_at))
    for key, obj in ctx._emitted.items():
        results.setdefault(key, obj)
        versions.setdefault(key, ctx._emitted_versions.get(key) or content_hash(repr(obj)))
    ordered = sort_diagnostics(diagnostics)
    if any(d.is_error for d in ordered):
        raise DefinitionError(ordered)
    bundle_version = content_hash(sorted(f"{k}/{n}@{v}" for (k, n), v in versions.items()))
    from regelwerk.frozen import FrozenDict, deep_freeze

    # compiled means immutable: shared by every caller, so nothing reachable from it can be changed in place
    return CompiledBundle(
        name=bundle.name,
        objects=FrozenDict({key: deep_freeze(obj) if freeze else obj for key, obj in sorted(results.items())}),
        versions=FrozenDict(sorted(versions.items())),
        documents=tuple(bundle.documents),
        warnings=tuple(d for d in ordered if not d.is_error),
        version=bundle_version,
        chain=bundle.chain,
        overlay_changes=FrozenDict(bundle.overlay_changes),
        timezone=bundle.timezone or DEFAULT_TIMEZONE,
    )
