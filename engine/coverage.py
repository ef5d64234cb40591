"""Scenario coverage: which parts of a bundle the scenarios exercised (``regelwerk test --coverage``).

Coverable items per compiled document: a workflow's states, transitions and guards (each guard counts as
taken when its transition fired), a decision table's rows, a calculation, a rule set's rules and a
permission matrix's grants and denies (and its deny-by-default). The runtime reports what happens through
:func:`hit` while :func:`collecting` wraps the deciding methods (decision tables, calculations, permission
matrices, rule engines), so coverage costs nothing when it is off; workflow transitions, guards and states
are read from the scenario's store history when the scenario ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Collector", "CoverageReport", "collecting", "current", "hit", "items_of", "report", "workflow_hits"]


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

    def rules(self: Any, result: Any, args: Any) -> None:
        model = args[0] if args else None
        for rule in getattr(result, "rules", ()):
            hit("RuleSet", getattr(model, "name", ""), "rules", rule)

    wrap(DecisionTable, "decide", table)
    wrap(Calculation, "decide", calculation)
    wrap(PermissionMatrix, "decide", permission)
    wrap(RuleEngine, "post", rules)
    wrap(RuleSession, "post", rules)
    return patches


def items_of(compiled: Any) -> Iterator[Item]:
    """Every coverable item of a compiled bundle."""
    objects: Mapping[tuple[str, str], Any] = compiled.objects
    for (kind, name), obj in objects.items():
        if kind == "Workflow":
            for state in obj.states:
                yield kind, name, "states", state.id
            for transition in obj.transitions:
                label = f"{transition.event}: {'|'.join(transition.sources)} -> {transition.dest}"
                yield kind, name, "transitions", label
                if transition.guard is not None:
                    yield kind, name, "guards", label
        elif kind == "DecisionTable":
            for row in obj.rows:
                yield kind, name, "rows", row.id
        elif kind == "Calculation":
            yield kind, name, "calculations", obj.output
        elif kind == "RuleSet":
            for rule in obj.rules:
                yield kind, name, "rules", rule.id
        elif kind == "PermissionMatrix":
            for rule_id in _permission_rules(obj):
                yield kind, name, "permission rules", rule_id


def _permission_rules(matrix: Any) -> list[str]:
    rules = [r.id for r in getattr(matrix, "grants", ())] + [r.id for r in getattr(matrix, "denies", ())]
    for right in getattr(matrix, "rights", ()):
        rules.extend(g.id for g in getattr(right, "grants", ()))
    return rules


def workflow_hits(compiled: Any, store: Any) -> Iterable[Item]:
    """Transitions, guards and states exercised according to a store's instance history."""
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
                        and transition.dest == entry.to_state:
                    label = f"{transition.event}: {'|'.join(transition.sources)} -> {transition.dest}"
                    out.append(("Workflow", model.name, "transitions", label))
                    if transition.guard is not None:
                        out.append(("Workflow", model.name, "guards", label))
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
