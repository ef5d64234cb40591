"""The ``ProductCatalog`` kind: compiled model, derived core objects and the tier decision.

A catalog compiles into

- a core ``DecisionTable`` ``<name>-tier`` (hit policy PRIORITY over the tier labels, highest
  first): one row per product, ``products contains <id>`` -> the product's tier; no row
  matching means the lowest tier (Start);
- a core ``RuleSet`` ``<name>-rules``: on ``product_activated`` it signals every supporting
  product the product needs that is not active, signals a missing addendum, and emits
  ``tier_changed`` when the activation changes the tier;
- a core ``Workflow`` ``<name>-employer`` (:mod:`regelwerk_packs.mijnloket.workflow`): one instance per
  employer, states ``not_activated`` and one per tier, events ``sign_addendum``, ``activate`` and
  ``deactivate``, guards derived from the table and actions deciding through it; the record of every
  employer's activations and tier changes (:mod:`regelwerk_packs.mijnloket.products` is its Python API).

All three are emitted with ``ctx.emit`` so they are ordinary objects of the compiled bundle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from regelwerk.actors import SYSTEM, Actor
from regelwerk.conditions import compile_condition
from regelwerk.decisions.table import DecisionTable
from regelwerk.errors import UsageError
from regelwerk.rules.model import ActionCall, Rule, RuleSetModel, freeze

__all__ = [
    "CatalogItem",
    "ProductCatalog",
    "TierAnswer",
    "TierRun",
    "compile_catalog",
]

MISSING_SUPPORT = "missing_supporting_product"
ADDENDUM = "addendum_required"


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """A product or a supporting product (``variants``: interchangeable products that satisfy it)."""

    id: str
    label: str
    kind: str  # "product" | "supporting" | "variant"
    tier: str = ""
    needs: tuple[str, ...] = ()
    purpose: str = ""
    variants: tuple[str, ...] = ()
    parent: str = ""


@dataclass(frozen=True, slots=True)
class Tier:
    """A tier (variant) with what it always includes."""

    id: str
    label: str
    includes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Right:
    """A right (permission) the catalog introduces."""

    id: str
    label: str
    description: str = ""
    grantable_to: tuple[str, ...] = ()


@dataclass
class TierAnswer:
    """The answer of :meth:`ProductCatalog.tier`."""

    tier: str | None
    activatable: bool
    products: list[str]
    explain: list[str]
    warnings: list[dict[str, Any]]
    events: list[dict[str, Any]] = field(default_factory=list)
    would_be: str | None = None
    decision: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON printed by ``regelwerk tier``."""
        out: dict[str, Any] = {"tier": self.tier, "activatable": self.activatable, "products": self.products,
                               "explain": self.explain, "warnings": self.warnings, "events": self.events}
        if self.would_be is not None:
            out["would_be"] = self.would_be
        return out


@dataclass(frozen=True, slots=True)
class ProductCatalog:
    """A compiled product catalog with its derived decision table and rule set."""

    name: str
    label: str
    label_prefix: str
    tiers: tuple[Tier, ...]
    items: tuple[CatalogItem, ...]
    rights: tuple[Right, ...]
    requires_addendum: bool
    addendum: str
    where: str
    table: DecisionTable
    ruleset: RuleSetModel
    workflow: str = ""

    @property
    def products(self) -> tuple[CatalogItem, ...]:
        """The products that decide the tier."""
        return tuple(i for i in self.items if i.kind == "product")

    def item(self, item_id: str) -> CatalogItem:
        """A product or supporting product by id."""
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def tier_label(self, tier_id: str) -> str:
        """The label of a tier id."""
        return next(t.label for t in self.tiers if t.id == tier_id)

    # --- names -------------------------------------------------------------------------------

    def resolve(self, name: str) -> CatalogItem:
        """A product by id or label (case-insensitive, with or without the label prefix); UsageError if unknown.

        Order: an id; else a full label; else a label without the prefix. Several matches in one
        step is an ambiguity (a usage error naming the candidates).
        """
        wanted = " ".join(name.split()).casefold()
        prefix = self.label_prefix.casefold()
        bare = wanted[len(prefix):] if prefix and wanted.startswith(prefix) else wanted

        def strip(label: str) -> str:
            text = label.casefold()
            return text[len(prefix):] if prefix and text.startswith(prefix) else text

        steps = (
            [i for i in self.items if i.id.casefold() == wanted],
            [i for i in self.items if i.label.casefold() == wanted],
            [i for i in self.items if strip(i.label) == bare],
        )
        for found in steps:
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise UsageError(f"product {name!r} is ambiguous",
                                 "use one of: " + ", ".join(f"{i.id} ({i.label})" for i in found))
        from regelwerk.diagnostics import did_you_mean

        names: dict[str, CatalogItem] = {}
        for item in self.items:
            for form in (item.id.casefold(), item.label.casefold(), strip(item.label)):
                names.setdefault(form, item)
        close = did_you_mean(wanted, names)
        hint = ""
        if close:
            guess = names[close.split("'")[1]]
            hint = f"did you mean '{guess.label}' ({guess.id})?; "
        raise UsageError(f"unknown product {name!r}", hint + "known products: "
                         + ", ".join(f"{i.id} ({i.label})" for i in self.items))

    # --- the decision ------------------------------------------------------------------------

    def decide_tier(self, product_ids: Iterable[str]) -> str:
        """The tier label the products demand (the decision table only; the fast path)."""
        return str(self.table.decide({"products": list(product_ids)}).outputs["tier"])

    def tier(self, products: Sequence[str], addendum_signed: bool = True, engine: Any = None,
             now: datetime | None = None) -> TierAnswer:
        """The tier for activating ``products`` (ids or labels) in that order, with warnings and tier changes.

        ``engine`` is a :class:`regelwerk.rules.RuleEngine` (one is created and closed when omitted).
        """
        items = [self.resolve(p) for p in products]
        ids = list(dict.fromkeys(i.id for i in items))
        employer = TierRun(self, engine=engine, addendum_signed=addendum_signed)
        try:
            for item_id in ids:
                employer.activate(item_id, now=now)
        finally:
            employer.close()
        decision = self.table.decide({"products": ids})
        tier = str(decision.outputs["tier"])
        lowest = self.tiers[0]
        explain = [f"{lowest.label} is altijd inbegrepen: {', '.join(lowest.includes)}" if lowest.includes
                   else f"{lowest.label} is de laagste variant"]
        for row in decision.explain["matched"]:
            item = self.item(row["row"])
            explain.append(f"{item.label} vraagt {row['outputs']['tier']}")
        if not decision.matched:
            explain.append(f"geen product vraagt meer dan {lowest.label}")
        order = " > ".join(reversed([t.label for t in self.tiers]))
        explain.append(f"de hoogste variant die een product vraagt geldt ({order}): {tier}")
        warnings = self.open_warnings(employer.warnings, set(ids))
        if self.requires_addendum and not addendum_signed:
            explain.insert(0, f"{self.label} kan niet worden geactiveerd: het addendum is niet ondertekend. "
                           + self.addendum)
            return TierAnswer(None, False, ids, explain, warnings, employer.events, would_be=tier,
                              decision=decision.to_dict())
        return TierAnswer(tier, True, ids, explain, warnings, employer.events, decision=decision.to_dict())

    def open_warnings(self, raised: Sequence[Mapping[str, Any]], active: set[str]) -> list[dict[str, Any]]:
        """The warnings that still hold once every product is active (a need met later is no warning)."""
        out: list[dict[str, Any]] = []
        seen: set[tuple[Any, ...]] = set()
        for warning in raised:
            if warning.get("signal") == MISSING_SUPPORT:
                support = self.item(str(warning["supporting"]))
                if support.id in active or any(v in active for v in support.variants):
                    continue
                key: tuple[Any, ...] = (MISSING_SUPPORT, warning["product"], warning["supporting"])
            else:
                key = (warning.get("signal"),)
            if key not in seen:
                seen.add(key)
                out.append({k: v for k, v in warning.items() if k != "signal"})
        return out


class TierRun:
    """Activations in order, in memory, for :meth:`ProductCatalog.tier`: the tier after each, warnings, events.

    Each activation is posted into the catalog's rule set. The persistent record of an employer is the
    ``<catalog>-employer`` workflow instead (:class:`regelwerk_packs.mijnloket.products.EmployerProducts`).
    """

    def __init__(self, catalog: ProductCatalog, engine: Any = None, addendum_signed: bool = True) -> None:
        from regelwerk.rules.runtime import RuleEngine

        self.catalog = catalog
        self.addendum_signed = addendum_signed
        self._own_engine = engine is None
        self.engine = engine if engine is not None else RuleEngine()
        self.active: list[str] = []
        self.warnings: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    @property
    def tier(self) -> str:
        """The current tier label."""
        return self.catalog.decide_tier(self.active)

    def activate(self, product: str, actor: Actor | str = SYSTEM, now: datetime | None = None) -> dict[str, Any]:
        """Activate a product (id or label); returns ``{tier_before, tier_after, warnings, events}``."""
        item = self.catalog.resolve(product)
        moment = now or datetime.now(UTC)
        before = self.tier
        if item.id not in self.active:
            self.active.append(item.id)
        after = self.tier
        outcome = self.engine.post(
            self.catalog.ruleset,
            {"type": "product_activated", "product": item.id, "label": item.label},
            {"active": list(self.active), "tier_before": before, "tier_after": after,
             "addendum_signed": self.addendum_signed},
            now=moment, actor=actor)
        warnings = list(outcome.signals)
        events = list(outcome.events)
        self.warnings.extend(warnings)
        self.events.extend(events)
        return {"tier_before": before, "tier_after": after, "warnings": warnings, "events": events}

    def close(self) -> None:
        """Close the rule engine when this object created it."""
        if self._own_engine:
            self.engine.close()


# --- compiling ------------------------------------------------------------------------------


def _condition(data: Any) -> Any:
    compiled, problems = compile_condition(data, "/derived")
    if problems:  # pragma: no cover - the derived conditions are fixed shapes
        raise ValueError(problems)
    return compiled


def _signal(**params: Any) -> ActionCall:
    return ActionCall("rules.signal", tuple(sorted((k, freeze(v)) for k, v in params.items())))


def derived_ruleset(name: str, version: str, label: str, items: Sequence[CatalogItem],
                    tiers: Sequence[Tier], requires_addendum: bool) -> RuleSetModel:
    """The rule set: missing supporting products, the addendum, and tier changes."""
    by_id = {i.id: i for i in items}
    rules: list[Rule] = []
    activated = {"field": "event.type", "eq": "product_activated"}
    if requires_addendum:
        rules.append(Rule("addendum-required", _condition({"all": [activated,
                                                                   {"field": "addendum_signed", "ne": True}]}),
                          (_signal(signal=ADDENDUM, code=ADDENDUM,
                                   message=f"{label} kan pas worden geactiveerd als het addendum is ondertekend"),),
                          priority=100, index=len(rules)))
    for product in items:
        if product.kind != "product":
            continue
        for need in product.needs:
            support = by_id[need]
            satisfied = [need, *support.variants]
            missing = {"all": [{"not": {"field": "active", "contains": s}} for s in satisfied]}
            purpose = f" ({support.purpose.rstrip('.')})" if support.purpose else ""
            rules.append(Rule(
                f"{product.id}-needs-{need}",
                _condition({"all": [activated, {"field": "event.product", "eq": product.id}, missing]}),
                (_signal(signal=MISSING_SUPPORT, code=MISSING_SUPPORT, product=product.id, supporting=need,
                         message=f"{product.label} heeft {support.label} nodig{purpose}; activeer ook "
                                 f"{support.label}"),),
                priority=10, index=len(rules)))
    rules.append(Rule(
        "tier-changed",
        _condition({"all": [activated, {"field": "tier_after", "ne": {"field": "tier_before"}}]}),
        (ActionCall("rules.emit", tuple(sorted({
            "event": "tier_changed", "product": freeze({"field": "event.product"}),
            "from": freeze({"field": "tier_before"}), "to": freeze({"field": "tier_after"})}.items()))),),
        priority=0, index=len(rules)))
    del tiers
    return RuleSetModel(name, tuple(rules), version, f"{label}: aanvullende producten en variantwissel")


def compile_catalog(ctx: Any, doc: Any) -> ProductCatalog | None:
    """The kind compiler: checks tiers, products and needs; emits the table and the rule set."""
    from regelwerk.compiler import content_hash
    from regelwerk.decisions.compile import build_decision_table
    from regelwerk.diagnostics import did_you_mean
    from regelwerk.workflows.model import workflow_to_dict

    spec = doc.spec
    errors = 0

    def report(code: str, message: str, pointer: str, hint: str = "") -> None:
        nonlocal errors
        errors += 1
        ctx.report(code, message, pointer, hint)

    tiers = tuple(Tier(t["id"], t["label"], tuple(t.get("includes", ()))) for t in spec["tiers"])
    tier_ids = [t.id for t in tiers]
    items: list[CatalogItem] = []
    for s, raw in enumerate(spec.get("supporting", [])):
        variants = tuple(v["id"] for v in raw.get("variants", []))
        items.append(CatalogItem(raw["id"], raw["label"], "supporting", purpose=str(raw.get("purpose", "")),
                                 variants=variants))
        for v in raw.get("variants", []):
            items.append(CatalogItem(v["id"], v["label"], "variant", parent=raw["id"]))
        del s
    supporting_ids = {i.id for i in items if i.kind == "supporting"}
    products: list[CatalogItem] = []
    for p, raw in enumerate(spec["products"]):
        if raw["tier"] not in tier_ids:
            report("ML001", f"unknown tier {raw['tier']!r}", f"/spec/products/{p}/tier",
                   did_you_mean(raw["tier"], tier_ids) or "tiers: " + ", ".join(tier_ids))
        for n, need in enumerate(raw.get("needs", [])):
            if need not in supporting_ids:
                report("ML002", f"unknown supporting product {need!r}", f"/spec/products/{p}/needs/{n}",
                       did_you_mean(need, supporting_ids)
                       or "supporting products: " + ", ".join(sorted(supporting_ids)))
        products.append(CatalogItem(raw["id"], raw["label"], "product", raw["tier"], tuple(raw.get("needs", ()))))
    all_items = tuple(products + items)
    for what in ("id", "label"):
        seen: dict[str, str] = {}
        for k, item in enumerate(all_items):
            key = getattr(item, what).casefold()
            if key in seen:
                pointer = f"/spec/products/{k}/{what}" if k < len(products) else "/spec/supporting"
                report("ML003", f"{item.id!r} and {seen[key]!r} have the same {what} (ignoring case)", pointer,
                       "ids and labels must tell products apart")
            seen.setdefault(key, item.id)
    if errors:
        return None
    label_of = {t.id: t.label for t in tiers}
    table_name = f"{doc.name}-tier"
    table_spec = {
        "label": f"{spec['label']}: variant",
        "description": "De hoogste variant die een geactiveerd product vraagt.",
        "hitPolicy": "PRIORITY",
        "inputs": [{"id": "products", "type": "list", "label": "Geactiveerde producten"}],
        "outputs": [{"id": "tier", "label": "Variant", "values": [t.label for t in reversed(tiers)],
                     "default": tiers[0].label}],
        "rows": [{"id": p.id, "description": p.label, "when": {"products": {"contains": p.id}},
                  "then": {"tier": label_of[p.tier]}} for p in products],
    }
    table = build_decision_table(ctx, table_name, table_spec)
    if table is None:
        return None
    version = content_hash(doc.data)
    activation = spec.get("activation", {})
    ruleset = derived_ruleset(f"{doc.name}-rules", version, spec["label"], all_items, tiers,
                              bool(activation.get("requiresAddendum", False)))
    ctx.emit("DecisionTable", table_name, table, version)
    ctx.emit("RuleSet", ruleset.name, ruleset, version)
    workflow = _employer_workflow(ctx, doc.name, spec["label"], tiers, table, all_items,
                                  bool(activation.get("requiresAddendum", False)))
    # the workflow's version is its own content: instances pin it, and a change of the derivation
    # (not only of the catalog document) is a new definition version
    ctx.emit("Workflow", workflow.name, workflow, content_hash(workflow_to_dict(workflow)))
    rights = tuple(Right(r["id"], r["label"], str(r.get("description", "")), tuple(r.get("grantableTo", ())))
                   for r in spec.get("rights", []))
    return ProductCatalog(doc.name, spec["label"], str(spec.get("labelPrefix", "")), tiers, all_items, rights,
                          bool(activation.get("requiresAddendum", False)), " ".join(
                              str(activation.get(k, "")) for k in ("addendum", "confirmation")).strip(),
                          str(activation.get("where", "")), table, ruleset, workflow.name)


def _employer_workflow(ctx: Any, name: str, label: str, tiers: Sequence[Tier], table: DecisionTable,
                       items: Sequence[CatalogItem], requires_addendum: bool) -> Any:
    from regelwerk_packs.mijnloket.workflow import derived_workflow

    def condition(data: Any) -> Any:
        compiled, problems = compile_condition(data, "/derived", ctx.functions)
        if problems:  # pragma: no cover - the derived guards are fixed shapes over registered functions
            raise ValueError(problems)
        return compiled

    supporting = [i.id for i in items if i.kind != "product"]
    return derived_workflow(name, label, [(t.id, t.label) for t in tiers], table, supporting,
                            [i.id for i in items], requires_addendum, condition)


def catalogs(compiled: Any) -> Mapping[str, ProductCatalog]:
    """Every ProductCatalog of a compiled bundle."""
    result: Mapping[str, ProductCatalog] = compiled.of_kind("ProductCatalog")
    return result
