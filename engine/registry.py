"""The extension points: kinds, actions, condition functions, scenario steps, story events, report sections,
digest case sources and stores.

Plugins (the shipped HR packs and outside developers' packages alike) register
through the entry-point group ``regelwerk.plugins``. Entry points are read only
inside :func:`load_registry`, never at import time.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from regelwerk.compiler import CompileContext
    from regelwerk.source import SourceDocument

__all__ = [
    "ENTRY_POINT_GROUP",
    "ActionSpec",
    "DigestCase",
    "DigestSourceSpec",
    "FactSpec",
    "FunctionSpec",
    "IdDecl",
    "KindSpec",
    "PlaceSpec",
    "Plugin",
    "RefDecl",
    "Registry",
    "ReportSectionSpec",
    "SimulationPartSpec",
    "StepSpec",
    "StoreSpec",
    "StoryEventSpec",
    "lazy",
    "load_registry",
]

ENTRY_POINT_GROUP = "regelwerk.plugins"


@dataclass(frozen=True, slots=True)
class IdDecl:
    """Values at ``path`` (a pointer pattern with ``*``) are ids that must be unique within the document."""

    path: str
    what: str = "id"


@dataclass(frozen=True, slots=True)
class RefDecl:
    """Values at ``path`` must name something that exists.

    - ``target`` set, ``kind`` unset: an id at ``target`` in the same document.
    - ``target`` and ``kind`` set: an id at ``target`` in any document of ``kind``.
    - ``target`` unset, ``kind`` set: the ``metadata.name`` of a document of ``kind``.

    A value may be a string or a list of strings; values in ``allow`` (such as ``"*"``) always pass.
    """

    path: str
    target: str | None = None
    kind: str | None = None
    allow: tuple[str, ...] = ()
    what: str = "id"


CompileFn = Callable[["CompileContext", "SourceDocument"], Any]


@dataclass(frozen=True, slots=True)
class KindSpec:
    """A document kind: its schema, its ids and references, and its compiler."""

    kind: str
    plugin: str
    schema: Mapping[str, Any]
    compile: CompileFn | None = None
    ids: tuple[IdDecl, ...] = ()
    refs: tuple[RefDecl, ...] = ()
    description: str = ""
    schema_file: str = ""


#: Where an action can run: a workflow's on_enter/on_exit/transition actions get the workflow runtime's
#: ``ActionContext``, a RuleSet's ``then`` the rules runtime's; an action declares which it works with.
RUNS_IN_WORKFLOWS = "workflows"
RUNS_IN_RULES = "rules"


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """A named action that definitions may call (workflow on_enter, rule ``then``...).

    ``runs_in`` says where it works: ``{"workflows"}`` (the default), ``{"rules"}`` or both; the compiler
    refuses an action named in the other kind of definition at its line (RW306).
    """

    name: str
    plugin: str
    run: Callable[..., Any]
    description: str = ""
    params_schema: Mapping[str, Any] = field(default_factory=dict)
    runs_in: frozenset[str] = frozenset({RUNS_IN_WORKFLOWS})


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A condition function usable as ``{fn: name, args: [...]}`` in the condition language."""

    name: str
    plugin: str
    fn: Callable[..., Any]
    description: str = ""


@dataclass(frozen=True, slots=True)
class FactSpec:
    """A fact type (``employee``, ``vacancy``...): a JSON-Schema-like type of what a place may read of it.

    See :mod:`regelwerk.facts` for the type language; ``{"$fact": name}`` uses another fact type.
    """

    name: str
    plugin: str
    schema: Mapping[str, Any]
    description: str = ""


@dataclass(frozen=True, slots=True)
class PlaceSpec:
    """A place of a kind that reads data (a Workflow's ``guard``, a cycle's ``when``...).

    ``place`` is a pointer pattern (``*`` for one step) into the kind's documents. ``scope`` is an object type
    whose properties are the roots a field path starts with; the compiler checks every path read there against
    it (``regelwerk facts KIND`` lists it). ``form`` says what sits at the place: ``condition`` (checked when
    the kind compiles it with ``ctx.condition``) or ``path`` (a dotted field path such as a schedule's anchor,
    checked by the compiler after the kind compiled; ``want`` names the type it must have, e.g. ``date``) or
    ``params`` (action parameters: every ``{field: path}`` value inside is a path read from the scope).
    ``scope_of`` (optional) computes the scope of one occurrence from the document's plain data and the
    occurrence's pointer (a RuleSet's declared event, a permission rule's resource); it returns None when
    the occurrence is not checked (nothing declared). ``scope`` is then what ``regelwerk facts`` lists.
    """

    kind: str
    place: str
    plugin: str
    scope: Mapping[str, Any]
    description: str = ""
    form: str = "condition"
    want: str = ""
    scope_of: Callable[[Any, str], Mapping[str, Any] | None] | None = None


@dataclass(frozen=True, slots=True)
class StepSpec:
    """A scenario step type for ``regelwerk test``."""

    name: str
    plugin: str
    run: Callable[..., None]
    schema: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True, slots=True)
class StoryEventSpec:
    """A story event type for ``regelwerk simulate`` (``{on: DATE, <name>: {...}}`` in a Story).

    ``run(sim, args) -> (text, detail)`` applies the event to the simulation's store: ``sim`` is an
    ``regelwerk.simulation.context.SimulationContext``, ``args`` the event's (schema-valid) mapping; ``text``
    becomes the timeline line, ``detail`` (JSON data) is recorded with the event. Raise a
    ``RegelwerkError`` (or ``ValueError``/``LookupError``) to refuse the event: the simulation records the
    refusal and goes on. ``schema`` (JSON Schema of ``args``) becomes part of the Story schema
    (``regelwerk schema Story``).
    """

    name: str
    plugin: str
    run: Callable[..., tuple[str, Mapping[str, Any]]]
    schema: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True, slots=True)
class SimulationPartSpec:
    """A plugin's part of ``regelwerk simulate`` beyond its story events (every callable is optional).

    - ``read_data(data_dir) -> (events, problems)``: the plugin's files in the customer's ``data/``
      directory as ``regelwerk.simulation.data.DatedEvent`` s (their ``type`` names a registered story event)
      and ``Diagnostic`` s; read before anything is written.
    - ``after_tick(sim, tick_summary)``: after each nightly tick (timeline notes, ``sim.totals``).
    - ``summary(sim) -> mapping``: keys added to the run's summary (counted in the store).
    - ``lines(summary) -> lines``: the text lines of those keys.
    - ``item_words``: how the timeline names the plugin's scheduled item types, ``{item_type: (one, many)}``
      (``{"interview": ("job interview", "job interviews")}``); an item type no part names is
      shown as its type. One part names an item type (a second is refused when it registers).
    - ``labelled``: the plugin's item types whose due items the timeline lists by their payload's ``label``
      (a conversation moment's name) rather than by their words.

    Parts run, and their summary lines print, in ``(order, name)`` order.
    """

    name: str
    plugin: str
    read_data: Callable[..., tuple[Iterable[Any], Iterable[Any]]] | None = None
    after_tick: Callable[..., None] | None = None
    summary: Callable[..., Mapping[str, Any]] | None = None
    lines: Callable[[Mapping[str, Any]], Iterable[str]] | None = None
    order: int = 100
    description: str = ""
    item_words: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    labelled: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReportSectionSpec:
    """A section of the configuration report (``regelwerk report``, docs/report.md).

    ``render(page) -> html`` gets a ``regelwerk.report.page.ReportPage`` (the compiled bundle, the overlay's
    changes, helpers for items, tables and badges) and returns the section's HTML, or ``""`` to leave the
    section out (the bundle has nothing of it, or the customer does not use it). ``kinds`` are the document
    kinds it shows: they are not listed again under "Overige definities". Sections appear in
    ``(order, name)`` order; ``title`` is the Dutch heading, ``name`` the anchor. ``glossary`` gives the Dutch
    names of the section's fields for the plain-language differences (``{"keep": "de bewaartermijn"}``; a list
    key names one item: ``{"moments": "gespreksmoment"}``; a value with ``{new}`` and ``{old}`` is the whole
    sentence after the subject: ``{"arises": "valt {new} in plaats van {old}"}``).
    """

    name: str
    plugin: str
    title: str
    render: Callable[[Any], str]
    kinds: tuple[str, ...] = ()
    order: int = 100
    glossary: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True, slots=True)
class DigestCase:
    """One case a digest source lists: what the permission policy decides on, and what a template may show.

    ``resource_type`` and ``resource`` are asked of the engine's permission port as ``read`` for each recipient
    (the case is listed only when it allows); ``values`` holds the case's fields (only those the source declares
    in its ``fields``; a template shows the ones it names); ``id`` identifies the case in the digest's audit row
    (an instance or candidate id: never a name). ``subject_ref`` is the data subject the case is about, as the
    AVG erasure names it (``candidate:<id>``, ``employee:<id>``), and ``instance_id`` the workflow instance it
    shows, if any: erasing either cuts the case's lines out of every stored digest mail (regelwerk.outbox.parts).
    A case that names a person must give at least one of them.
    """

    id: str
    resource_type: str
    resource: Mapping[str, Any]
    values: Mapping[str, Any]
    subject_ref: str | None = None
    instance_id: str | None = None


@dataclass(frozen=True, slots=True)
class DigestSourceSpec:
    """Where a ``Digest`` finds the cases it can list (``{lists: {name: {source: <name>, with: {...}}}}``).

    ``list_cases(engine, tx, now, params) -> iterable of DigestCase`` reads, through the tick's store transaction
    ``tx``, every case that is due at ``now`` under the digest's ``with:`` ``params`` (valid for
    ``params_schema``), for everyone: the digest keeps per recipient those the permission policy lets them read.
    ``fields`` names the fields each case's ``values`` has (``{field: description}``): a template showing another
    is a definition error (RW831). The HR packs register theirs through this, as an outside plugin does
    (docs/plugins.md, "Cases a digest can list").
    """

    name: str
    plugin: str
    list_cases: Callable[..., Iterable[DigestCase]]
    fields: Mapping[str, str]
    params_schema: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """A store implementation selected by URL scheme."""

    scheme: str
    plugin: str
    factory: Callable[[str], Any]
    description: str = ""


def lazy(target: str) -> Callable[..., Any]:
    """A callable for ``"package.module:name"`` that imports the module on its first call.

    Plugins register actions, functions and steps with it so that loading the registry (every CLI start)
    does not import what only running needs (SQLAlchemy, durable-rules...).
    """
    module_name, _, attr = target.partition(":")
    resolved: list[Callable[..., Any]] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        if not resolved:
            import importlib

            resolved.append(getattr(importlib.import_module(module_name), attr))
        return resolved[0](*args, **kwargs)

    call.__name__ = attr
    call.__qualname__ = attr
    call.__doc__ = f"{target} (imported on first use)"
    return call


class Plugin(Protocol):
    """What an entry point in ``regelwerk.plugins`` must point at."""

    name: str

    def register(self, registry: Registry) -> None:
        """Add kinds, actions, functions, steps, story events and stores to the registry."""


def _own(spec: Any, *fields: str) -> Any:
    """``spec`` with its own deep copies of the mutable ``fields`` (schemas, scopes): a plugin's module-level
    dict is shared by every registry built from it, so one registry changing it would change them all."""
    import copy
    from dataclasses import replace

    return replace(spec, **{name: copy.deepcopy(getattr(spec, name)) for name in fields})


class Registry:
    """Everything the plugins contributed; built explicitly, never at import time."""

    def __init__(self) -> None:
        self.kinds: dict[str, KindSpec] = {}
        self.actions: dict[str, ActionSpec] = {}
        self.functions: dict[str, FunctionSpec] = {}
        self.steps: dict[str, StepSpec] = {}
        self.story_events: dict[str, StoryEventSpec] = {}
        self.simulation_parts: dict[str, SimulationPartSpec] = {}
        self.report_sections: dict[str, ReportSectionSpec] = {}
        self.digest_sources: dict[str, DigestSourceSpec] = {}
        self.stores: dict[str, StoreSpec] = {}
        self.commands: dict[str, Any] = {}
        self.table_modules: list[str] = []
        self.migration_locations: list[str] = []
        self.plugins: list[str] = []
        self.facts: dict[str, FactSpec] = {}
        self.places: dict[tuple[str, str], PlaceSpec] = {}

    def _add(self, table: dict[str, Any], key: str, value: Any, what: str) -> None:
        if key in table:
            raise ValueError(f"{what} {key!r} registered twice (by {table[key].plugin} and {value.plugin})")
        table[key] = value

    def add_kind(self, spec: KindSpec) -> None:
        """Register a document kind."""
        self._add(self.kinds, spec.kind, _own(spec, "schema"), "kind")

    def add_action(self, spec: ActionSpec) -> None:
        """Register a named action."""
        self._add(self.actions, spec.name, _own(spec, "params_schema"), "action")

    def add_function(self, spec: FunctionSpec) -> None:
        """Register a condition function."""
        self._add(self.functions, spec.name, spec, "function")

    def add_step(self, spec: StepSpec) -> None:
        """Register a scenario step type."""
        self._add(self.steps, spec.name, _own(spec, "schema"), "scenario step")

    def add_story_event(self, spec: StoryEventSpec) -> None:
        """Register a story event type for ``regelwerk simulate``."""
        self._add(self.story_events, spec.name, spec, "story event")

    def add_simulation_part(self, spec: SimulationPartSpec) -> None:
        """Register a simulation part (data files, nightly notes, summary section); its ``item_words`` must be
        ``{item type: (one, many)}`` texts, for item types no other part names (``ValueError`` otherwise)."""
        for item_type, words in dict(spec.item_words).items():
            if not (isinstance(item_type, str) and isinstance(words, tuple) and len(words) == 2
                    and all(isinstance(w, str) and w for w in words)):
                raise ValueError(f"simulation part {spec.name!r} ({spec.plugin}): item_words[{item_type!r}] must be "
                                 f"a pair of texts (one, many), not {words!r}")
            for other in self.simulation_parts.values():
                if item_type in other.item_words:
                    raise ValueError(f"item type {item_type!r} is named by simulation parts {other.name!r} "
                                     f"({other.plugin}) and {spec.name!r} ({spec.plugin})")
        if not all(isinstance(t, str) for t in spec.labelled):
            raise ValueError(f"simulation part {spec.name!r} ({spec.plugin}): labelled must be item type names")
        self._add(self.simulation_parts, spec.name, spec, "simulation part")

    def add_report_section(self, spec: ReportSectionSpec) -> None:
        """Register a section of the configuration report."""
        self._add(self.report_sections, spec.name, spec, "report section")

    def add_digest_source(self, spec: DigestSourceSpec) -> None:
        """Register a source of cases a ``Digest`` can list (see :class:`DigestSourceSpec`)."""
        self._add(self.digest_sources, spec.name, _own(spec, "fields", "params_schema"), "digest source")

    def add_store(self, spec: StoreSpec) -> None:
        """Register a store for a URL scheme."""
        self._add(self.stores, spec.scheme, spec, "store")

    def add_fact(self, spec: FactSpec) -> None:
        """Register a fact type that places may read (see :mod:`regelwerk.facts`)."""
        self._add(self.facts, spec.name, _own(spec, "schema"), "fact type")

    def add_place(self, spec: PlaceSpec) -> None:
        """Register a place of a kind that reads data, with the scope the compiler checks its paths against."""
        key = (spec.kind, spec.place)
        if key in self.places:
            raise ValueError(f"place {spec.place!r} of {spec.kind} registered twice")
        self.places[key] = _own(spec, "scope")

    def add_table_module(self, module: str) -> None:
        """Name a module that declares tables on ``regelwerk.store.tables.metadata`` (imported by the store's
        setup, ``all_tables()`` and the Alembic migrations)."""
        if module not in self.table_modules:
            self.table_modules.append(module)

    def add_migrations(self, versions_dir: str) -> None:
        """Name a folder of Alembic revisions for the plugin's own tables: a branch of its own (a base revision
        with ``down_revision = None`` and a ``branch_labels`` entry), applied by ``regelwerk db upgrade`` with the
        core's revisions."""
        if versions_dir not in self.migration_locations:
            self.migration_locations.append(versions_dir)

    def add_command(self, command: Any) -> None:
        """Add a click command to the ``regelwerk`` CLI (e.g. a pack's ``regelwerk tier``)."""
        if command.name in self.commands:
            raise ValueError(f"command {command.name!r} registered twice")
        self.commands[command.name] = command

    def register_plugin(self, plugin: Plugin) -> None:
        """Let one plugin contribute."""
        plugin.register(self)
        self.plugins.append(plugin.name)

    def function_table(self) -> dict[str, Callable[..., Any]]:
        """Condition functions by name, for the condition compiler."""
        return {name: spec.fn for name, spec in sorted(self.functions.items())}


#: The imported plugin objects of the installed entry points (one immutable tuple, filled on first use).
_PLUGINS: list[tuple[Plugin, ...]] = []


def _discover() -> list[tuple[str, str]]:
    """The ``regelwerk.plugins`` entry points installed: ``(name, "module:attribute")``, core first.

    Read straight from the ``entry_points.txt`` of every ``*.dist-info`` / ``*.egg-info`` folder on
    ``sys.path``, the first distribution of a name winning, as importlib.metadata finds them: importing
    importlib.metadata (and the email package it reads metadata with) costs a cold ``regelwerk validate``
    more than checking a small bundle. A path entry that is not a folder (a zip, an egg) is left to
    importlib.metadata.
    """
    found: list[tuple[str, str]] = []
    distributions: set[str] = set()
    for entry in sys.path:
        directory = entry or "."
        if not os.path.isdir(directory):
            if os.path.exists(directory):
                return _discover_with_metadata()
            continue
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if not name.lower().endswith((".dist-info", ".egg-info")):
                continue
            distribution = re.sub(r"[-_.]+", "_", name.rsplit(".", 1)[0].split("-", 1)[0]).lower()
            if distribution in distributions:
                continue
            distributions.add(distribution)
            try:
                with open(os.path.join(directory, name, "entry_points.txt"), encoding="utf-8") as handle:
                    text = handle.read()
            except OSError:
                continue
            found.extend(_entry_points(text))
    if not any(name == "core" for name, _ in found):  # distributions found another way (an import hook): ask
        return _discover_with_metadata()              # importlib.metadata rather than lose the core plugin
    return sorted(found, key=lambda ep: (ep[0] != "core", ep[0]))


def _entry_points(text: str) -> list[tuple[str, str]]:
    """The ``regelwerk.plugins`` section of an ``entry_points.txt`` (INI: ``[group]`` then ``name = value``)."""
    out = []
    group = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1].strip()
        elif group == ENTRY_POINT_GROUP and "=" in line:
            name, value = line.split("=", 1)
            out.append((name.strip(), value.strip()))
    return out


def _discover_with_metadata() -> list[tuple[str, str]]:
    import importlib.metadata

    return sorted(((ep.name, ep.value) for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)),
                  key=lambda ep: (ep[0] != "core", ep[0]))


def _load_entry_point(value: str) -> Any:
    """The object an entry point names: ``module:attribute`` (extras in brackets ignored)."""
    import importlib

    module, _, attribute = value.split("[", 1)[0].strip().partition(":")
    obj: Any = importlib.import_module(module.strip())
    for part in attribute.strip().split(".") if attribute.strip() else ():
        obj = getattr(obj, part)
    return obj


def load_registry(extra: Iterable[Plugin] = (), use_entry_points: bool = True) -> Registry:
    """Build a new registry from the installed plugins (entry points) plus ``extra`` plugins.

    Every call returns a registry of its own (an action one caller adds never leaks into the next); only the
    imported plugin objects are remembered per process (entry points do not change at run time), so a call
    costs the plugins' registration functions, about 2 ms for the shipped packs.
    """
    registry = Registry()
    if use_entry_points:
        for plugin in _installed_plugins():
            registry.register_plugin(plugin)
    else:
        from regelwerk.core_plugin import plugin as core

        registry.register_plugin(core)
    for plugin in extra:
        registry.register_plugin(plugin)
    return registry


def _installed_plugins() -> tuple[Plugin, ...]:
    """The plugin objects of the installed entry points, imported once per process (immutable tuple)."""
    if _PLUGINS:
        return _PLUGINS[0]
    names: set[str] = set()
    plugins: list[Plugin] = []
    for name, value in _discover():
        if name in names:
            continue
        names.add(name)
        plugins.append(_load_entry_point(value))
    _PLUGINS.append(tuple(plugins))
    return _PLUGINS[0]
