"""Employers' product activations, kept in the store (``rw_employer_products``, ``plugins/mijnloket/tables.py``).

The pack decides tiers in memory (:class:`plugins.mijnloket.catalog.Employer`); this is the smallest
persistent record around it: every activation and signed addendum is a row, and an employer's state
(active products, addendum signed, tier) is the replay of its rows. Works for any ``ProductCatalog`` of
the bundle. ``regelwerk simulate`` uses it for the ``sign_addendum`` and ``activate_product`` story
events (``plugins/mijnloket/simulation.py``); a host application may use it the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.actors import SYSTEM, Actor
from engine.errors import UsageError

__all__ = ["Activation", "AddendumMissing", "EmployerProducts"]


class AddendumMissing(UsageError):
    """A product of a catalog that requires a signed addendum, for an employer who has not signed it."""

    code = "addendum_required"


@dataclass(frozen=True, slots=True)
class Activation:
    """What one activation did: the tier before and after, and the catalog's warnings."""

    employer: str
    catalog: str
    product: str
    tier_before: str
    tier_after: str
    warnings: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    @property
    def tier_changed(self) -> bool:
        """True when the activation moved the employer to another tier."""
        return self.tier_before != self.tier_after


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


class EmployerProducts:
    """Activations and addenda per employer and catalog on a SQLAlchemy engine."""

    def __init__(self, sa_engine: Any, compiled: Any) -> None:
        self.sa_engine = sa_engine
        self.compiled = compiled

    def catalog(self, name: str | None) -> Any:
        """The named ProductCatalog, or the bundle's only one."""
        found: Mapping[str, Any] = self.compiled.of_kind("ProductCatalog")
        if name:
            if name not in found:
                raise UsageError(f"no ProductCatalog {name!r}", hint="catalogs: " + ", ".join(sorted(found)))
            return found[name]
        if len(found) != 1:
            raise UsageError("name the catalog (the bundle has " + (f"{len(found)}: {', '.join(sorted(found))})"
                                                                    if found else "none)"))
        return next(iter(found.values()))

    def state(self, employer: str, catalog: str) -> tuple[list[str], bool]:
        """The employer's active product ids (in activation order) and whether the addendum is signed."""
        import sqlalchemy as sa

        from plugins.mijnloket.tables import employer_products as t

        with self.sa_engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.action, t.c.product).where(t.c.employer == employer,
                                                                         t.c.catalog == catalog)
                                .order_by(t.c.id)).all()
        active = list(dict.fromkeys(r.product for r in rows if r.action == "activate"))
        return active, any(r.action == "sign_addendum" for r in rows)

    def tier(self, employer: str, catalog: str | None = None) -> str:
        """The employer's current tier label."""
        model = self.catalog(catalog)
        active, _signed = self.state(employer, model.name)
        return str(model.decide_tier(active))

    def sign_addendum(self, employer: str, catalog: str | None = None, actor: Actor = SYSTEM,
                      now: datetime | None = None) -> None:
        """Record that the employer signed the catalog's addendum."""
        model = self.catalog(catalog)
        self._write(employer, model.name, "sign_addendum", "", "", "", {}, actor, now)

    def activate(self, employer: str, product: str, catalog: str | None = None, actor: Actor = SYSTEM,
                 now: datetime | None = None) -> Activation:
        """Activate a product (id or label): refused without a required addendum; the tier is decided again."""
        from plugins.mijnloket.catalog import Employer

        model = self.catalog(catalog)
        item = model.resolve(product)
        active, signed = self.state(employer, model.name)
        if model.requires_addendum and not signed and item.kind == "product":
            raise AddendumMissing(f"{model.label} cannot be activated for {employer!r}: the addendum is not signed",
                                  hint=model.addendum)
        moment = now or datetime.now(UTC)
        runner = Employer(model, addendum_signed=signed, employer_id=employer)
        try:
            runner.active = list(active)
            outcome = runner.activate(item.id, actor=actor, now=moment)
        finally:
            runner.close()
        warnings = tuple(dict(w) for w in outcome["warnings"])
        detail = {"warnings": [{k: str(v) for k, v in w.items()} for w in warnings]}
        self._write(employer, model.name, "activate", item.id, str(outcome["tier_before"]),
                    str(outcome["tier_after"]), detail, actor, moment)
        return Activation(employer, model.name, item.id, str(outcome["tier_before"]), str(outcome["tier_after"]),
                          warnings)

    def _write(self, employer: str, catalog: str, action: str, product: str, before: str, after: str,
               detail: Mapping[str, Any], actor: Actor, now: datetime | None) -> None:
        from plugins.mijnloket.tables import employer_products as t

        with self.sa_engine.begin() as conn:
            conn.execute(t.insert().values(employer=employer, catalog=catalog, action=action, product=product,
                                           tier_before=before, tier_after=after, detail=dict(detail),
                                           actor=actor.id, at=_naive(now or datetime.now(UTC))))
