"""Employers' MijnLoket, kept by the workflow runtime: one ``<catalog>-employer`` instance per employer.

::

    from regelwerk.runtime import Engine
    from regelwerk_packs.mijnloket.products import EmployerProducts

    with Engine("definitions/standard", store="sqlite:///regelwerk.sqlite") as engine:
        products = EmployerProducts(engine)
        werkgever = products.employer("123")              # the instance starts on first use
        werkgever.sign_addendum(actor="consultant")
        werkgever.activate("MijnLoket - Verlofaanvragen", actor="consultant").tier_after   # "Plus"
        engine.history(werkgever.instance_id)              # the audit trail: event, from, to, actor, time

The instance id is derived from the employer id (``mijnloket-employer:123``). Refusals are the runtime's:
activating a MijnLoket product before the addendum is ``TransitionNotAllowed`` (its reason is the
catalog's addendum text); an unknown product name is a ``UsageError`` with a "did you mean" hint;
deactivating a product that is not active is a ``UsageError``. Times are the engine's clock.
``regelwerk simulate`` uses this for its ``sign_addendum``/``activate_product`` story events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from regelwerk.actors import SYSTEM, Actor
from regelwerk.errors import ConflictError, IdInUse, TransitionNotAllowed, UnknownInstance, UsageError

__all__ = ["Activation", "Employer", "EmployerProducts", "TierChange"]

ActorLike = Actor | str | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Activation:
    """What one activation or deactivation did: the tier before and after, and the new warnings."""

    employer: str
    catalog: str
    product: str
    tier_before: str | None
    tier_after: str | None
    warnings: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    change: str = "activate"

    @property
    def tier_changed(self) -> bool:
        """True when the change moved the employer to another tier."""
        return self.tier_before != self.tier_after


@dataclass(frozen=True, slots=True)
class TierChange:
    """One tier change of an employer, read from the workflow history."""

    employer: str
    catalog: str
    product: str
    change: str
    tier_before: str
    tier_after: str
    actor: str
    at: Any

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {"employer": self.employer, "catalog": self.catalog, "product": self.product, "change": self.change,
                "from": self.tier_before, "to": self.tier_after, "actor": self.actor, "at": self.at.isoformat()}


class EmployerProducts:
    """Every employer's MijnLoket on a workflow :class:`regelwerk.runtime.Engine` (whose bundle has the catalog)."""

    def __init__(self, engine: Any, rules: Any = None) -> None:
        self.engine = engine
        if rules is not None:
            from regelwerk_packs.mijnloket.workflow import rules_for

            rules_for(engine, rules)

    # --- catalogs and instances ----------------------------------------------------------------

    def catalog(self, name: str | None = None) -> Any:
        """The named ProductCatalog, or the bundle's only one."""
        found: Mapping[str, Any] = self.engine.bundle.of_kind("ProductCatalog")
        if name:
            if name not in found:
                raise UsageError(f"no ProductCatalog {name!r}", hint="catalogs: " + ", ".join(sorted(found)))
            return found[name]
        if len(found) != 1:
            raise UsageError("name the catalog (the bundle has " + (f"{len(found)}: {', '.join(sorted(found))})"
                                                                    if found else "none)"))
        return next(iter(found.values()))

    @staticmethod
    def instance_id(employer: str, catalog: Any) -> str:
        """The employer's instance id: ``<workflow>:<employer>`` (hashed when longer than the store allows)."""
        ident = f"{catalog.workflow}:{employer}"
        if len(ident) <= 64:
            return ident
        return f"{catalog.workflow[:40]}:{hashlib.sha256(employer.encode('utf-8')).hexdigest()[:23]}"

    def employer(self, employer: str, catalog: str | None = None) -> Employer:
        """A handle on one employer (nothing is written until it is used)."""
        return Employer(self, str(employer), self.catalog(catalog))

    def record(self, employer: str, catalog: str | None = None, actor: ActorLike = SYSTEM) -> Any:
        """The employer's instance, started on first use (``InstanceRecord``)."""
        model = self.catalog(catalog)
        iid = self.instance_id(employer, model)
        try:
            return self._own(self.engine.get(iid), employer, model)
        except UnknownInstance:
            pass
        try:
            # the person names the employer (what the start permission decides); the rest is the pack's own
            return self.engine.start(model.workflow, {"employer": employer}, actor, instance_id=iid,
                                     system_data={"catalog": model.name, "products": [], "warnings": [],
                                                  "addendum_signed": False,
                                                  "tier": None if model.requires_addendum else model.tiers[0].label})
        except ConflictError:  # started concurrently by another process
            return self._own(self.engine.get(iid), employer, model)

    @staticmethod
    def _own(record: Any, employer: str, catalog: Any) -> Any:
        """The instance under the employer's id, when it is the employer's instance of the catalog's workflow; an
        instance someone else started under that id (another workflow, another employer) is ``IdInUse``."""
        if record.workflow != catalog.workflow or record.data.get("employer") != employer:
            raise IdInUse(record.id, record.workflow, f"the {catalog.name!r} catalog of employer {employer!r}")
        return record

    # --- changes -------------------------------------------------------------------------------

    def sign_addendum(self, employer: str, catalog: str | None = None, actor: ActorLike = SYSTEM) -> Any:
        """The employer signed the catalog's addendum: MijnLoket is activated (the lowest tier)."""
        model = self.catalog(catalog)
        rec = self.record(employer, model.name, actor)
        if not model.requires_addendum:
            raise UsageError(f"{model.label} needs no addendum", hint="activate products directly")
        return self.engine.fire(rec.id, "sign_addendum", actor)

    def activate(self, employer: str, product: str, catalog: str | None = None,
                 actor: ActorLike = SYSTEM) -> Activation:
        """Activate a product (id or label); the tier is decided again through the catalog's table."""
        return self._change("activate", employer, product, catalog, actor)

    def deactivate(self, employer: str, product: str, catalog: str | None = None,
                   actor: ActorLike = SYSTEM) -> Activation:
        """Deactivate a product: the tier becomes what the remaining products demand (it may go down)."""
        return self._change("deactivate", employer, product, catalog, actor)

    def _change(self, change: str, employer: str, product: str, catalog: str | None, actor: ActorLike) -> Activation:
        model = self.catalog(catalog)
        item = model.resolve(product)  # UsageError with a hint for an unknown name
        rec = self.record(employer, model.name, actor)
        try:
            after = self.engine.fire(rec.id, change, actor, {"product": item.id})
        except TransitionNotAllowed as exc:
            if exc.state == "not_activated" and change == "activate":
                why = model.addendum or "het addendum is niet ondertekend"
                raise TransitionNotAllowed(exc.instance_id, exc.state, exc.event, [
                    f"{item.label} kan niet worden geactiveerd voor {employer!r}: {why}", *exc.reasons]) from exc
            raise
        previous = [dict(w) for w in rec.data.get("warnings") or ()]
        new = tuple(w for w in after.data.get("warnings") or () if dict(w) not in previous)
        return Activation(employer, model.name, item.id, _tier(model, rec.state), _tier(model, after.state), new,
                          change)

    # --- reading -------------------------------------------------------------------------------

    def state(self, employer: str, catalog: str | None = None) -> tuple[list[str], bool]:
        """The employer's active product ids (in activation order) and whether the addendum is signed."""
        model = self.catalog(catalog)
        try:
            rec = self.engine.get(self.instance_id(employer, model))
        except UnknownInstance:
            return [], False
        return list(rec.data.get("products") or ()), rec.state != "not_activated"

    def tier(self, employer: str, catalog: str | None = None) -> str | None:
        """The employer's tier label (None while MijnLoket is not activated)."""
        model = self.catalog(catalog)
        try:
            rec = self.engine.get(self.instance_id(employer, model))
        except UnknownInstance:
            return None if model.requires_addendum else model.tiers[0].label
        return _tier(model, rec.state)

    def tier_changes(self, catalog: str | None = None) -> list[TierChange]:
        """Every tier change of every employer (from the workflow history), oldest first."""
        names = [catalog] if catalog else list(self.engine.bundle.of_kind("ProductCatalog"))
        out: list[tuple[Any, int, TierChange]] = []
        for name in names:
            model = self.catalog(name)
            tier_ids = {t.id for t in model.tiers}
            for rec in self.engine.instances(workflow=model.workflow):
                for row in self.engine.history(rec.id):
                    if row.from_state in tier_ids and row.to_state in tier_ids and row.from_state != row.to_state:
                        change = TierChange(str(rec.data.get("employer", rec.id)), model.name,
                                            str((row.explain.get("input") or {}).get("product", "")), row.event,
                                            model.tier_label(row.from_state), model.tier_label(row.to_state),
                                            row.actor, row.at)
                        out.append((row.at, row.id or 0, change))
        return [c for _at, _id, c in sorted(out, key=lambda x: (x[0], x[1]))]


def _tier(catalog: Any, state: str) -> str | None:
    return catalog.tier_label(state) if state in {t.id for t in catalog.tiers} else None


class Employer:
    """One employer's MijnLoket (a handle: the state lives in the workflow instance)."""

    def __init__(self, products: EmployerProducts, employer_id: str, catalog: Any) -> None:
        self.products = products
        self.employer_id = employer_id
        self.catalog = catalog

    @property
    def instance_id(self) -> str:
        """The workflow instance id."""
        return self.products.instance_id(self.employer_id, self.catalog)

    @property
    def tier(self) -> str | None:
        """The current tier label (None while MijnLoket is not activated)."""
        return self.products.tier(self.employer_id, self.catalog.name)

    @property
    def active(self) -> list[str]:
        """The active product ids, in activation order."""
        return self.products.state(self.employer_id, self.catalog.name)[0]

    @property
    def warnings(self) -> list[dict[str, Any]]:
        """The warnings that hold now (missing supporting products)."""
        return [dict(w) for w in self.products.record(self.employer_id, self.catalog.name).data.get("warnings") or ()]

    def sign_addendum(self, actor: ActorLike = SYSTEM) -> Any:
        """Sign the addendum."""
        return self.products.sign_addendum(self.employer_id, self.catalog.name, actor)

    def activate(self, product: str, actor: ActorLike = SYSTEM) -> Activation:
        """Activate a product (id or label)."""
        return self.products.activate(self.employer_id, product, self.catalog.name, actor)

    def deactivate(self, product: str, actor: ActorLike = SYSTEM) -> Activation:
        """Deactivate a product (id or label)."""
        return self.products.deactivate(self.employer_id, product, self.catalog.name, actor)

    def history(self) -> list[Any]:
        """The instance's history rows (the audit trail), oldest first; empty before first use."""
        try:
            return list(self.products.engine.history(self.instance_id))
        except UnknownInstance:
            return []
