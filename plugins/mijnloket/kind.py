"""Registration of the ProductCatalog kind, the ``tier`` scenario step and ``regelwerk tier``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from regelwerk.registry import IdDecl, KindSpec, Registry, StepSpec

__all__ = ["register", "step_tier"]


def _catalog(compiled: Any, name: str | None) -> Any:
    from regelwerk.errors import UsageError

    found = compiled.of_kind("ProductCatalog")
    if name:
        return compiled.get("ProductCatalog", name)
    if len(found) != 1:
        raise UsageError("name the catalog with --catalog" if found else "the bundle has no ProductCatalog",
                         "catalogs: " + ", ".join(found) if found else "")
    return next(iter(found.values()))


def step_tier(ctx: Any, args: Mapping[str, Any], info: Any) -> None:
    """Scenario step: activate products in order and compare tier, warnings and tier changes."""
    from regelwerk.rules.runtime import RuleEngine
    from regelwerk.scenarios import StepFailure, matches_subset

    catalog = _catalog(ctx.compiled, args.get("catalog"))
    engine = ctx.service("rules.engine", lambda s: _engine(s, RuleEngine))
    answer = catalog.tier(list(args["products"]), bool(args.get("addendum_signed", True)), engine=engine,
                          now=ctx.now)
    problems = []
    if "tier" in args and answer.tier != args["tier"]:
        problems.append(f"tier: expected {args['tier']!r}, got {answer.tier!r}")
    for key, got in (("activatable", answer.activatable), ("warnings", answer.warnings), ("events", answer.events),
                     ("would_be", answer.would_be)):
        if key in args and not matches_subset(args[key], got):
            problems.append(f"{key}: expected {json.dumps(args[key], ensure_ascii=False)}, "
                            f"got {json.dumps(got, ensure_ascii=False)}")
    if problems:
        raise StepFailure("; ".join(problems) + f" (explain: {answer.explain})")


def _engine(scenario: Any, factory: Any) -> Any:
    engine = factory.from_registry(scenario.registry)
    scenario.cleanups.append(engine.close)
    return engine


def _command() -> Any:
    import click

    @click.command("tier")
    @click.argument("path", type=click.Path(exists=True))
    @click.option("--product", "-p", "products", multiple=True, metavar="NAME",
                  help="A product to activate: id or label, with or without 'MijnLoket - ' (repeat, in order).")
    @click.option("--addendum-signed", is_flag=True, help="The employer signed the MijnLoket addendum.")
    @click.option("--catalog", default=None, help="The ProductCatalog's name (when the bundle has several).")
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
    def tier(path: str, products: Sequence[str], addendum_signed: bool, catalog: str | None, fmt: str) -> None:
        """The MijnLoket variant (Start, Plus, Pro) for the activated products, with warnings."""
        from regelwerk.cli import fail, load_compiled
        from regelwerk.errors import UnknownDefinition, UsageError

        compiled = load_compiled(path)
        try:
            model = _catalog(compiled, catalog)
            answer = model.tier(list(products), addendum_signed)
        except (UsageError, UnknownDefinition) as exc:
            fail(str(exc), 2)
        if fmt == "json":
            click.echo(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
            return
        click.echo(f"tier: {answer.tier if answer.activatable else 'cannot be activated'}")
        for line in answer.explain:
            click.echo(f"  - {line}")
        for warning in answer.warnings:
            click.echo(f"waarschuwing: {warning['message']}")

    return tier


def register(registry: Registry, plugin: str) -> None:
    """Add the ProductCatalog kind, the ``tier`` step and the ``tier`` command."""
    from regelwerk.validation import load_shipped_schema
    from regelwerk_packs.mijnloket import workflow
    from regelwerk_packs.mijnloket.catalog import compile_catalog

    workflow.register(registry, plugin)

    registry.add_kind(KindSpec(
        kind="ProductCatalog", plugin=plugin, schema=load_shipped_schema("productcatalog.json"),
        compile=compile_catalog,
        ids=(IdDecl("/spec/tiers/*/id", "tier"), IdDecl("/spec/products/*/id", "product"),
             IdDecl("/spec/supporting/*/id", "supporting product"), IdDecl("/spec/rights/*/id", "right")),
        description="a product catalog with tiers (MijnLoket: Start < Plus < Pro)",
    ))
    registry.add_step(StepSpec("tier", plugin, step_tier, {
        "type": "object", "required": ["products"], "additionalProperties": False,
        "properties": {
            "catalog": {"type": "string"},
            "products": {"type": "array", "items": {"type": "string"}, "description": "Activated in this order."},
            "addendum_signed": {"type": "boolean", "default": True},
            "tier": {"type": ["string", "null"]},
            "activatable": {"type": "boolean"},
            "would_be": {"type": "string"},
            "warnings": {"type": "array", "description": "Expected warnings (the keys given must match), in order."},
            "events": {"type": "array", "description": "Expected tier_changed events, in order."},
        },
    }, "the tier for activated products, with warnings"))
    registry.add_command(_command())
