"""The MijnLoket pack's part of ``regelwerk simulate`` (docs/simulation.md, docs/kinds/productcatalog.md).

Story events ``sign_addendum`` and ``activate_product`` on the employer's workflow instance
(:class:`~regelwerk_packs.mijnloket.products.EmployerProducts` over the run's workflow engine; workflow
``<catalog>-employer``); an activation that changes the tier adds a ``tier`` line to the timeline, the
catalog's warnings ``warning`` lines; the summary's ``tier_changes`` are read from the workflow history.
Registered with ``StoryEventSpec``/``SimulationPartSpec`` like any plugin's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from regelwerk.registry import Registry, SimulationPartSpec, StoryEventSpec
from regelwerk.simulation.story import ACTOR_SCHEMA, ID_SCHEMA

__all__ = ["activate_product", "register", "sign_addendum", "summary"]

Result = tuple[str, dict[str, Any]]


def products(sim: Any) -> Any:
    """The run's ``EmployerProducts`` on the simulation's workflow engine."""
    def make(sim: Any) -> Any:
        from regelwerk_packs.mijnloket.products import EmployerProducts

        return EmployerProducts(sim.engine)

    return sim.service("mijnloket.products", make)


def sign_addendum(sim: Any, a: Mapping[str, Any]) -> Result:
    """Record that the employer signed the catalog's addendum."""
    products(sim).sign_addendum(str(a["employer"]), a.get("catalog"), sim.actor(a.get("actor")))
    return f"{a['employer']} signed the addendum", {"employer": str(a["employer"])}


def activate_product(sim: Any, a: Mapping[str, Any]) -> Result:
    """Activate a product: refused without a required addendum; the tier is decided again."""
    done = products(sim).activate(str(a["employer"]), str(a["product"]), a.get("catalog"),
                                  sim.actor(a.get("actor")))
    warnings = [json.loads(json.dumps(w, default=str)) for w in done.warnings]
    if done.tier_changed:
        sim.note("tier", f"tier of {done.employer}: {done.tier_before} -> {done.tier_after}",
                 employer=done.employer, tier_before=done.tier_before, tier_after=done.tier_after)
    for warning in warnings:
        sim.note("warning", f"{done.employer}: {warning.get('message') or warning}", warning=warning)
    return (f"{done.employer} activated {done.product} (tier {done.tier_after})",
            {"employer": done.employer, "product": done.product, "tier_before": done.tier_before,
             "tier_after": done.tier_after, "warnings": warnings})


def summary(sim: Any) -> dict[str, Any]:
    """Every activation that changed an employer's tier, in order (the employer workflows' history)."""
    from regelwerk.simulation.context import TIMEZONE

    if not sim.compiled.of_kind("ProductCatalog"):
        return {"tier_changes": []}
    changes = products(sim).tier_changes()
    return {"tier_changes": [{"employer": c.employer, "catalog": c.catalog, "product": c.product,
                              "from": c.tier_before, "to": c.tier_after,
                              "day": (c.at if c.at.tzinfo else c.at.replace(tzinfo=UTC)).astimezone(TIMEZONE)
                              .date().isoformat()} for c in changes]}


def lines(s: Mapping[str, Any]) -> list[str]:
    """``tier changes: N (employer A -> B on DAY; ...)``."""
    tiers = s["tier_changes"]
    return [f"  tier changes: {len(tiers)}" + ("" if not tiers else " (" + "; ".join(
        f"{t['employer']} {t['from']} -> {t['to']} on {t['day']}" for t in tiers) + ")")]


def register(registry: Registry, plugin: str) -> None:
    """Register the two story events and the tier-changes summary section."""
    base = {"employer": ID_SCHEMA}
    for name, run, properties, required, description in (
        ("sign_addendum", sign_addendum, {**base, "catalog": {"type": "string"}, "actor": ACTOR_SCHEMA},
         ["employer"], "MijnLoket: the employer signed the addendum."),
        ("activate_product", activate_product,
         {**base, "product": {"type": "string", "minLength": 1}, "actor": ACTOR_SCHEMA, "catalog": {"type": "string"}},
         ["employer", "product"], "MijnLoket: activate a product (id or label) for an employer; the tier is decided "
                                  "again."),
    ):
        schema = {"type": "object", "additionalProperties": False, "properties": properties, "required": required}
        registry.add_story_event(StoryEventSpec(name, plugin, run, schema, description))
    registry.add_simulation_part(SimulationPartSpec("mijnloket", plugin, summary=summary, lines=lines, order=500,
                                                    description="tier changes of employers"))
