"""The employer workflow a ``ProductCatalog`` compiles into, and the action and functions it runs on.

``<catalog>-employer`` (``mijnloket-employer`` for the shipped catalog) is a core ``Workflow``: one
instance per employer, whose state is that employer's situation:

- ``not_activated`` (only when the catalog requires a signed addendum): nothing of MijnLoket may be
  activated yet; supporting products (Verlofregistratie...) may, they are Loket.nl products;
- one state per tier (``start``, ``plus``, ``pro``; labels Start, Plus, Pro).

Events: ``sign_addendum`` (not_activated -> the lowest tier), ``activate`` and ``deactivate`` (the
product id in the fire's data: ``{product: verlofaanvragen}``). The transitions are derived from the
emitted ``<catalog>-tier`` DecisionTable: for each tier, the rows that demand it give the product ids of
its guard, and the guards are tried highest tier first, like the table's PRIORITY hit policy. Activating
only moves up (or stays); deactivating moves down to what the remaining products demand (the state is
always the table's answer for ``data.products``). Every transition runs ``mijnloket.apply``, which
updates ``data.products``, decides the tier through the emitted table (and refuses, rolling back, if it
disagrees with the target state), posts the activation into the emitted ``<catalog>-rules`` RuleSet and
keeps the open warnings in ``data.warnings``, and writes an audit row with all of it in the same
transaction. The history rows are the audit trail: event, from, to, actor, time, ``explain.input.product``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from regelwerk.errors import UsageError
from regelwerk.workflows.model import ActionRef, State, Transition, Workflow

if TYPE_CHECKING:
    from regelwerk.decisions.table import DecisionTable

__all__ = [
    "ACTION",
    "NOT_ACTIVATED",
    "derived_workflow",
    "register",
    "rules_for",
    "with_product_any",
    "without_product_any",
]

ACTION = "mijnloket.apply"
NOT_ACTIVATED = "not_activated"
NOT_ACTIVATED_LABEL = "Niet geactiveerd"
WITH = "mijnloket.with_product_any"
WITHOUT = "mijnloket.without_product_any"
#: What the pack keeps in the instance data and no person's start data or event payload may set (the core's
#: ``system_fields``): ``mijnloket.apply`` decides them, ``EmployerProducts`` starts the instance with them
#: (``system_data``). Before, a payload ``{"products": [...]}`` moved an employer up a tier without those
#: products' rules, and ``{"addendum_signed": true}`` told the rules an unsigned addendum was signed.
SYSTEM_FIELDS = ("catalog", "products", "warnings", "addendum_signed", "tier")


# --- condition functions (registered, so stored definition versions reload) ------------------


def with_product_any(products: Any, product: Any, candidates: Any) -> bool:
    """True when ``products`` plus ``product`` include any of ``candidates`` (after an activation)."""
    wanted = set(candidates or ())
    return product in wanted or any(p in wanted for p in products or ())


def without_product_any(products: Any, product: Any, candidates: Any) -> bool:
    """True when ``products`` without ``product`` still include any of ``candidates`` (after a deactivation)."""
    wanted = set(candidates or ())
    return any(p in wanted and p != product for p in products or ())


# --- the derived workflow (pure) ---------------------------------------------------------------


def tier_products(table: DecisionTable, tier_ids: Sequence[str], labels: Mapping[str, str]) -> dict[str, list[str]]:
    """Per tier id, the product ids of the table's rows that demand it (read from the emitted table)."""
    by_label = {label: tier_id for tier_id, label in labels.items()}
    out: dict[str, list[str]] = {t: [] for t in tier_ids}
    for row in table.rows:
        tier = by_label[str(dict(row.outputs)["tier"])]
        for entry in row.entries:
            if entry.input == "products" and entry.op == "contains":
                out[tier].extend(str(v) for v in entry.literals)
    return out


def derived_workflow(catalog: str, label: str, tiers: Sequence[tuple[str, str]], table: DecisionTable,
                     supporting: Sequence[str], all_ids: Sequence[str], requires_addendum: bool,
                     condition: Callable[[Any], Any]) -> Workflow:
    """The ``<catalog>-employer`` workflow; ``tiers`` are (id, label) lowest first, ``condition`` compiles a guard."""
    tier_ids = [t for t, _ in tiers]
    demanded = tier_products(table, tier_ids, dict(tiers))
    apply: dict[str, tuple[ActionRef, ...]] = {
        change: (ActionRef(ACTION, {"catalog": catalog, "change": change}),)
        for change in ("sign_addendum", "activate", "deactivate")}
    transitions: list[Transition] = []

    def add(event: str, sources: Sequence[str], dest: str, text: str, guard: Any = None) -> None:
        if not sources:
            return
        # decided by the policy like the start (``<catalog>-employer.<event>``): without a permission any caller of
        # the engine could sign an employer's addendum or change its products
        transitions.append(Transition(
            index=len(transitions), event=event, sources=tuple(sources), dest=dest, label=text,
            guard=condition(guard) if guard is not None else None, permission=f"{catalog}-employer.{event}",
            actions=apply[event], pointer=f"/derived/transitions/{len(transitions)}", guard_source=guard))

    states: list[State] = []
    if requires_addendum:
        states.append(State(NOT_ACTIVATED, NOT_ACTIVATED_LABEL, initial=True))
        add("sign_addendum", [NOT_ACTIVATED], tier_ids[0], "Addendum ondertekend")
        only_supporting = {"field": "data.product", "in": list(supporting)}
        add("activate", [NOT_ACTIVATED], NOT_ACTIVATED, "Aanvullend product activeren", only_supporting)
    states.extend(State(t, tier_label, initial=not requires_addendum and i == 0)
                  for i, (t, tier_label) in enumerate(tiers))
    ranked = list(reversed(range(len(tier_ids))))  # highest tier first, like the table's PRIORITY order
    for rank in ranked:  # activating: up to the highest tier the products then demand, never down
        tier_id, tier_label = tiers[rank]
        lower = tier_ids[:rank]
        if rank > 0 and demanded[tier_id]:
            add("activate", lower, tier_id, f"Activeren naar {tier_label}",
                {"fn": WITH, "args": [{"field": "data.products"}, {"field": "data.product"}, demanded[tier_id]]})
    for tier_id, tier_label in reversed(tiers):
        add("activate", [tier_id], tier_id, f"Activeren ({tier_label} blijft)")
    if requires_addendum:
        add("deactivate", [NOT_ACTIVATED], NOT_ACTIVATED, "Aanvullend product deactiveren",
            {"field": "data.product", "in": list(supporting)})
    for rank in ranked:  # deactivating: down to what the remaining products demand
        tier_id, tier_label = tiers[rank]
        higher_or_same = tier_ids[rank:]
        if rank > 0 and demanded[tier_id]:
            add("deactivate", higher_or_same, tier_id, f"Deactiveren naar {tier_label}",
                {"fn": WITHOUT, "args": [{"field": "data.products"}, {"field": "data.product"}, demanded[tier_id]]})
        elif rank == 0:
            add("deactivate", higher_or_same, tier_id, f"Deactiveren naar {tier_label}")
    schema = {
        "type": "object",
        "properties": {
            "employer": {"type": "string"},
            "catalog": {"type": "string"},
            "product": {"enum": list(all_ids), "description": "The product of the event (an id of the catalog)."},
            "products": {"type": "array", "items": {"enum": list(all_ids)}, "uniqueItems": True},
            "tier": {"type": ["string", "null"]},
            "addendum_signed": {"type": "boolean"},
            "warnings": {"type": "array", "items": {"type": "object"}},
        },
    }
    return Workflow(
        name=f"{catalog}-employer", label=f"{label} per werkgever",
        initial=NOT_ACTIVATED if requires_addendum else tier_ids[0], states=tuple(states),
        transitions=tuple(transitions), resource_type="employer", data_schema=schema, system_fields=SYSTEM_FIELDS,
        description=f"De situatie van {label} bij een werkgever: addendum, variant en geactiveerde producten.",
    )


# --- the rules engine per workflow engine -----------------------------------------------------

_rules: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_rules_lock = threading.Lock()


def rules_for(engine: Any, rules: Any = None) -> Any:
    """The :class:`regelwerk.rules.RuleEngine` used for ``engine``'s employer workflows (one durable host each).

    With ``rules`` the caller supplies it (and closes it); otherwise one is created on first use and closed
    when the workflow engine is garbage-collected.
    """
    with _rules_lock:
        if rules is not None:
            _rules[engine] = rules
            return rules
        found = _rules.get(engine)
        if found is None:
            from regelwerk.rules.runtime import RuleEngine

            found = _rules[engine] = RuleEngine()
            weakref.finalize(engine, found.close)
        return found


# --- the action ------------------------------------------------------------------------------


def _open_warnings(catalog: Any, raised: Iterable[Mapping[str, Any]], active: Sequence[str]) -> list[dict[str, Any]]:
    """Missing-supporting-product warnings that still hold for ``active`` (plain JSON)."""
    from regelwerk_packs.mijnloket.catalog import MISSING_SUPPORT

    keep = [dict(w, signal=MISSING_SUPPORT) for w in raised
            if w.get("code") == MISSING_SUPPORT and w.get("product") in active]
    return [{k: _plain(v) for k, v in w.items()} for w in catalog.open_warnings(keep, set(active))]


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def apply_change(ctx: Any) -> None:
    """``mijnloket.apply``: sign the addendum, activate or deactivate ``data.product``; decide and warn."""
    from regelwerk.outbox.action import compiled_bundle_of

    name = str(ctx.params.get("catalog", ""))
    change = str(ctx.params.get("change", ""))
    bundle = compiled_bundle_of(ctx.engine)
    catalog = bundle.get("ProductCatalog", name)
    table = bundle.get("DecisionTable", catalog.table.name)
    ruleset = bundle.get("RuleSet", catalog.ruleset.name)
    data = ctx.data
    products = [str(p) for p in data.get("products") or ()]
    before = ctx.source
    product = ""
    if change in ("activate", "deactivate"):
        product = str(data.get("product") or "")
        try:
            item = catalog.item(product)
        except KeyError:
            catalog.resolve(product)  # raises the UsageError with a "did you mean" hint
            raise UsageError(f"{product!r} is not a product id of {name!r}", hint=f"use the id: "
                             f"{catalog.resolve(product).id}") from None
        if change == "activate" and item.id not in products:
            products.append(item.id)
        elif change == "deactivate":
            if item.id not in products:
                raise UsageError(f"{item.label} ({item.id}) is not active",
                                 hint="active: " + (", ".join(products) or "none"))
            products.remove(item.id)
    elif change == "sign_addendum":
        data["addendum_signed"] = True
    else:
        raise UsageError(f"mijnloket.apply: unknown change {change!r}", hint="sign_addendum, activate, deactivate")
    decision = table.decide({"products": products}, ctx.now)
    decided = str(decision.outputs["tier"])
    state_ids = [t.id for t in catalog.tiers]
    if ctx.dest in state_ids and catalog.tier_label(ctx.dest) != decided:
        raise UsageError(f"{catalog.table.name} decides {decided} for {products}, but the transition goes to "
                         f"{ctx.dest!r}", hint="the instance data was changed outside the workflow")
    tier_before = catalog.tier_label(before) if before in state_ids else None
    tier_after = catalog.tier_label(ctx.dest) if ctx.dest in state_ids else None
    signed = bool(data.get("addendum_signed")) or not catalog.requires_addendum
    rules = rules_for(ctx.engine)
    raised: list[Mapping[str, Any]] = []
    events: list[Any] = []
    fired: list[str] = []
    # activate: this product's needs (and a tier change); otherwise every active product's needs again
    posts = [product] if change == "activate" else list(products)
    for posted in posts:
        item = catalog.item(posted)
        facts = {"active": list(products), "tier_before": tier_before or "", "addendum_signed": signed,
                 "tier_after": (tier_after or "") if posted == product else (tier_before or "")}
        outcome = rules.post(ruleset, {"type": "product_activated", "product": item.id, "label": item.label},
                             facts, now=ctx.now, actor=ctx.actor)
        raised.extend(outcome.signals)
        events.extend(outcome.events)
        fired.extend(outcome.rules)
    previous = [w for w in data.get("warnings") or () if isinstance(w, Mapping)]
    kept = previous if change == "activate" else []
    data["warnings"] = _open_warnings(catalog, [*kept, *raised], products)
    data["products"] = products
    data["tier"] = tier_after
    new = [w for w in data["warnings"] if w not in [dict(p) for p in previous]]
    ctx.audit(f"mijnloket.{change}", {
        "catalog": name, "product": product, "from": ctx.source, "to": ctx.dest, "tier_before": tier_before,
        "tier_after": tier_after, "decision": {"table": table.name, "tier": decided,
                                               "matched": list(decision.matched)},
        "rules": fired, "events": _plain(events), "warnings": new})


def register(registry: Any, plugin: str) -> None:
    """Register the ``mijnloket.apply`` action and the two guard functions."""
    from regelwerk.registry import ActionSpec, FunctionSpec

    registry.add_action(ActionSpec(ACTION, plugin, apply_change,
                                   "MijnLoket employer workflow: sign the addendum, (de)activate data.product",
                                   {"type": "object", "required": ["catalog", "change"],
                                    "properties": {"catalog": {"type": "string"},
                                                   "change": {"enum": ["sign_addendum", "activate", "deactivate"]}}}))
    for name, fn in ((WITH, with_product_any), (WITHOUT, without_product_any)):
        registry.add_function(FunctionSpec(name, plugin, fn, (fn.__doc__ or "").strip()))
