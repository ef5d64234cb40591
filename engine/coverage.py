"""Scenario coverage: which parts of a bundle the scenarios exercised (``regelwerk test --coverage``).

Coverable items per compiled document (:func:`coverables`):

- a workflow's states, transitions and both branches of each guard (``[true]``: the guard held at least
  once, ``[false]``: it was evaluated false at least once);
- a decision table's rows, a calculation, a rule set's rules, a permission matrix's grants and denies;
- schedule moments: every moment of an item source (a ``Schedule`` plan, or a pack's source that lists its
  moments through ``coverage_moments()``), counted when a scenario's tick activated an item of it, and every
  named ``Schedule`` a workflow's ``workflow.schedule`` action uses, counted when a timer was set from it.

The runtime reports what happens through :func:`hit` while :func:`collecting` wraps the deciding methods
(decision tables, calculations, permission matrices, rule engines, the workflow gate), so coverage costs
nothing when it is off; workflow transitions and states are read from the scenario's store history and
schedule moments from its scheduled items when the scenario ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Collector", "Coverable", "CoverageReport", "ScenarioRun", "collecting", "coverables", "current", "hit",
           "items_of", "report", "run_scenarios", "schedule_hits", "transition_key", "workflow_hits"]


class _State:
    """The collector of the running scenario suite (None when coverage is off)."""

    active: Collector | None = None


_STATE = _State()


def current() -> Collector | None:
    """The active collector, or None when coverage is off."""
    return _STATE.active

Item = tuple[str, str, str, str]  # (kind, document, category, item)


@dataclass
class Collector:
    """Items hit while coverage is on, with the bundles whose items count (by bundle path)."""

    hits: set[Item] = field(default_factory=set)
    universes: dict[str, set[Item]] = field(default_factory=dict)

    def add_bundle(self, key: str, compiled: Any) -> None:
        """Count the coverable items of a compiled bundle (once per bundle)."""
        if key not in self.universes:
            self.universes[key] = set(items_of(compiled))


def hit(kind: str, document: str, category: str, item: str) -> None:
    """Record that ``item`` of a document was exercised (no-op without an active collector)."""
    collector = _STATE.active
    if collector is not None:
        collector.hits.add((kind, document, category, item))


@contextmanager
def collecting() -> Iterator[Collector]:
    """Turn coverage on for the duration of the block (the deciding methods are wrapped meanwhile, so
    coverage costs nothing when it is off)."""
    previous = _STATE.active
    collector = _STATE.active = Collector()
    undo = _instrument()
    try:
        yield collector
    finally:
        for cls, attr, original in reversed(undo):
            setattr(cls, attr, original)
        _STATE.active = previous


def _instrument() -> list[tuple[type, str, Any]]:
    from regelwerk.decisions.graph import Calculation, Computed
    from regelwerk.decisions.table import DecisionTable
    from regelwerk.permissions.model import PermissionMatrix
    from regelwerk.rules.runtime import RuleEngine, RuleSession
    from regelwerk.workflows.gate import Gate

    patches: list[tuple[type, str, Any]] = []

    def wrap(cls: type, attr: str, after: Any) -> None:
        original = cls.__dict__[attr]

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(self, *args, **kwargs)
            after(self, result, args)
            return result

        wrapper.__doc__ = original.__doc__
        setattr(cls, attr, wrapper)
        patches.append((cls, attr, original))

    def required(result: Any) -> None:
        # a decision graph takes its required decisions through its compiled program, not their decide
        for step in result.steps:
            if isinstance(step, Computed):
                hit("Calculation", step._calc.name, "calculations", step._calc.output)
            else:
                for row in step.matched:
                    hit("DecisionTable", step._table.name, "rows", row)

    def table(self: Any, result: Any, args: Any) -> None:
        for row in result.matched:
            hit("DecisionTable", self.name, "rows", row)
        required(result)

    def calculation(self: Any, result: Any, args: Any) -> None:
        hit("Calculation", self.name, "calculations", self.output)
        required(result)

    def permission(self: Any, result: Any, args: Any) -> None:
        hit("PermissionMatrix", self.name, "permission rules", result.by)

    def gate(self: Any, result: Any, args: Any) -> None:
        transition = args[0] if args else None
        if transition is None or transition.guard is None:
            return
        refused = self.refused
        if result:
            outcome = "true"
        elif refused and refused[-1][0] is transition and refused[-1][1] == "guard":
            outcome = "false"
        elif transition.permission and not transition.system_only:
            outcome = "true"  # the guard held; the permission decided afterwards
        else:
            return  # refused before its guard ran (system_only, or a payload no permission could allow)
        hit("Workflow", self.rt.model.name, "guard branches", f"{transition_key(transition)} [{outcome}]")

    def rules(self: Any, result: Any, args: Any) -> None:
        model = args[0] if args else None
        for rule in getattr(result, "rules", ()):
            hit("RuleSet", getattr(model, "name", ""), "rules", rule)

    wrap(DecisionTable, "decide", table)
    wrap(Calculation, "decide", calculation)
    wrap(PermissionMatrix, "decide", permission)
    wrap(RuleEngine, "post", rules)
    wrap(RuleSession, "post", rules)
    wrap(Gate, "admit", gate)
    return patches


def transition_key(transition: Any) -> str:
    """How coverage names a transition: ``event: source|source -> dest`` (``(internal)`` for one that stays)."""
    target = "(internal)" if transition.internal else f"-> {transition.dest}"
    return f"{transition.event}: {'|'.join(transition.sources)} {target}"


@dataclass(frozen=True)
class Coverable:
    """One coverable item: its key parts, the definition's own label of it ("" when none) and the compiled
    object it stands for (a state, transition, row, rule, schedule...; for a guard branch ``(transition, bool)``)."""

    kind: str
    document: str
    category: str
    item: str
    label: str = ""
    ref: Any = field(default=None, compare=False, hash=False)

    @property
    def key(self) -> Item:
        """``(kind, document, category, item)``: what :func:`hit` records."""
        return self.kind, self.document, self.category, self.item


def coverables(compiled: Any) -> list[Coverable]:
    """Every coverable item of a compiled bundle, in definition order per document."""
    from regelwerk.scheduling.sources import ItemSource

    objects: Mapping[tuple[str, str], Any] = compiled.objects
    out: list[Coverable] = []
    scheduled: dict[str, str] = {}  # named Schedules a workflow.schedule action uses -> the workflow
    for (kind, name), obj in objects.items():
        if kind == "Workflow":
            for state in obj.states:
                out.append(Coverable(kind, name, "states", state.id, state.label, state))
            for transition in obj.transitions:
                out.append(Coverable(kind, name, "transitions", transition_key(transition), transition.label,
                                     transition))
            for transition in obj.transitions:
                if transition.guard is not None:
                    for branch in (True, False):
                        out.append(Coverable(kind, name, "guard branches",
                                             f"{transition_key(transition)} [{'true' if branch else 'false'}]",
                                             transition.label, (transition, branch)))
            for action in _workflow_actions(obj):
                target = action.params.get("schedule") if action.name == "workflow.schedule" else None
                if isinstance(target, str):
                    scheduled.setdefault(target, name)
        elif kind == "DecisionTable":
            for row in obj.rows:
                out.append(Coverable(kind, name, "rows", row.id, row.description, row))
        elif kind == "Calculation":
            out.append(Coverable(kind, name, "calculations", obj.output, getattr(obj, "label", ""), obj))
        elif kind == "RuleSet":
            for rule in obj.rules:
                out.append(Coverable(kind, name, "rules", rule.id, rule.label, rule))
        elif kind == "PermissionMatrix":
            for rule in _permission_rules(obj):
                out.append(Coverable(kind, name, "permission rules", rule.id, rule.label, rule))
        if isinstance(obj, ItemSource):
            for moment, label in _moments(obj, name):
                out.append(Coverable(kind, name, "schedule moments", moment, label, obj))
    for name in sorted(scheduled):
        schedule = objects.get(("Schedule", name))
        if schedule is not None and not isinstance(schedule, ItemSource):
            out.append(Coverable("Schedule", name, "schedule moments", name, "", schedule))
    return out


def items_of(compiled: Any) -> Iterator[Item]:
    """Every coverable item of a compiled bundle (the keys of :func:`coverables`)."""
    for item in coverables(compiled):
        yield item.key


def _workflow_actions(model: Any) -> Iterator[Any]:
    for state in model.states:
        yield from state.on_enter
        yield from state.on_exit
    for transition in model.transitions:
        yield from transition.actions


def _moments(source: Any, name: str) -> list[tuple[str, str]]:
    """The moments of an item source: its ``coverage_moments()`` (id, label) pairs, else the source as one."""
    listed = getattr(source, "coverage_moments", None)
    if listed is None:
        return [(name, str(getattr(source, "label", "") or ""))]
    return [(str(m), str(label)) for m, label in listed()]


def _permission_rules(matrix: Any) -> list[Any]:
    rules = list(getattr(matrix, "grants", ())) + list(getattr(matrix, "denies", ()))
    rights = getattr(matrix, "rights", {})
    for right in rights.values() if isinstance(rights, Mapping) else rights:
        rules.extend(getattr(right, "grants", ()))
    return rules


def schedule_hits(compiled: Any, target: Any) -> list[Item]:
    """Schedule moments that fired according to a scenario's scheduled items (the tick activated them)."""
    from regelwerk.scheduling.sources import ItemSource

    sources = {obj.source_id: (kind, name, obj) for (kind, name), obj in compiled.objects.items()
               if isinstance(obj, ItemSource)}
    out: list[Item] = []
    if not sources:
        return out
    try:
        import json

        from regelwerk.scheduling.tables import scheduled_items as items
        from regelwerk.scheduling.tick import resolve_target
        from sqlalchemy import inspect, select

        sa_engine = resolve_target(target).sa_engine
        if sa_engine is None or not inspect(sa_engine).has_table(items.name):
            return out
        with sa_engine.connect() as conn:
            rows = conn.execute(select(items.c.source, items.c.item_type, items.c.payload)
                                .where(items.c.status.in_(FIRED))).all()
    except Exception:  # noqa: BLE001 - a store that cannot be read (closed, no SQL) contributes nothing
        return out
    for source, item_type, payload in rows:
        found = sources.get(source)
        if found is None:
            continue
        kind, name, obj = found
        which = getattr(obj, "coverage_moment", None)
        if which is None:
            out.append((kind, name, "schedule moments", name))
            continue
        try:
            data = json.loads(payload or "{}")
        except ValueError:
            data = {}
        moment = which(item_type, data)
        if moment is not None:
            out.append((kind, name, "schedule moments", str(moment)))
    return out


#: Statuses of a scheduled item whose moment has fired (the tick activated it).
FIRED = ("active", "ready", "started", "closed")


def workflow_hits(compiled: Any, store: Any) -> Iterable[Item]:
    """Transitions, guards' true branches and states exercised according to a store's instance history."""
    workflows = {name: obj for (kind, name), obj in compiled.objects.items() if kind == "Workflow"}
    out: list[Item] = []
    try:
        with store.read() as tx:
            instances = [(record, tx.history(record.id)) for record in tx.instances()]
    except Exception:  # noqa: BLE001 - a store that cannot be read (closed, other layout) contributes nothing
        return out
    for record, history in instances:
        model = workflows.get(record.workflow)
        if model is None:
            continue
        out.append(("Workflow", model.name, "states", model.initial))
        out.append(("Workflow", model.name, "states", record.state))
        for entry in history:
            for transition in model.transitions:
                if transition.event == entry.event and entry.from_state in transition.sources \
                        and transition.target(entry.from_state) == entry.to_state:
                    label = transition_key(transition)
                    out.append(("Workflow", model.name, "transitions", label))
                    if transition.guard is not None:
                        out.append(("Workflow", model.name, "guard branches", f"{label} [true]"))
            if entry.to_state:
                out.append(("Workflow", model.name, "states", entry.to_state))
    return out


@dataclass(frozen=True)
class CoverageReport:
    """Per bundle and category: covered and total, and what was not covered."""

    bundles: Mapping[str, Mapping[str, Mapping[str, Any]]]

    @property
    def percent(self) -> float:
        """Covered items over all items, in percent (100 for nothing to cover)."""
        covered = sum(c["covered"] for b in self.bundles.values() for c in b.values())
        total = sum(c["total"] for b in self.bundles.values() for c in b.values())
        return 100.0 if total == 0 else 100.0 * covered / total

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: the overall percentage and per bundle, per category, the uncovered items."""
        return {"percent": round(self.percent, 1), "bundles": {k: dict(v) for k, v in self.bundles.items()}}

    def lines(self) -> list[str]:
        """The text report."""
        out = [f"coverage: {self.percent:.1f} %"]
        for bundle, categories in self.bundles.items():
            covered = sum(c["covered"] for c in categories.values())
            total = sum(c["total"] for c in categories.values())
            out.append(f"  {bundle}: {covered}/{total}")
            for category, info in categories.items():
                out.append(f"    {category}: {info['covered']}/{info['total']} ({info['percent']:.0f} %)")
                for item in info["uncovered"][:8]:
                    out.append(f"      not exercised: {item}")
                if len(info["uncovered"]) > 8:
                    out.append(f"      ... and {len(info['uncovered']) - 8} more")
        return out


@dataclass(frozen=True)
class ScenarioRun:
    """What running scenarios with coverage on found: the items hit, and which scenarios ran and failed."""

    hits: frozenset[Item]
    scenarios: tuple[str, ...]
    failed: tuple[str, ...]

    def covered(self, item: Coverable) -> bool:
        """True when a scenario exercised ``item``."""
        return item.key in self.hits


def run_scenarios(paths: Iterable[Any], registry: Any) -> ScenarioRun:
    """Run the scenario files under ``paths`` with coverage on (the report's "Door de scenario's getest")."""
    from regelwerk.scenarios import run_scenarios as run

    with collecting() as collector:
        results = run(paths, registry)
    return ScenarioRun(frozenset(collector.hits), tuple(r.name for r in results),
                       tuple(r.name for r in results if not r.passed))


def report(collector: Collector) -> CoverageReport:
    """Compare what was hit with what the bundles have."""
    bundles: dict[str, dict[str, dict[str, Any]]] = {}
    for key, universe in sorted(collector.universes.items()):
        categories: dict[str, dict[str, Any]] = {}
        for kind, name, category, item in sorted(universe):
            info = categories.setdefault(f"{kind} {category}", {"covered": 0, "total": 0, "uncovered": []})
            info["total"] += 1
            if (kind, name, category, item) in collector.hits:
                info["covered"] += 1
            else:
                info["uncovered"].append(f"{name}: {item}")
        for info in categories.values():
            info["percent"] = round(100.0 * info["covered"] / info["total"], 1)
        bundles[key] = categories
    return CoverageReport(bundles)
