"""CLI commands: ``regelwerk can`` and ``regelwerk render matrix``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click
from regelwerk.cli import ISO_MOMENT
from regelwerk.registry import Registry

__all__ = ["can_command", "register", "render_group"]


def _facts(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    from regelwerk.diagnostics import format_diagnostics
    from regelwerk.source import load_text, read_source, to_plain

    text, problems = read_source(path, path)
    docs: list[Any] = []
    if text is not None:
        docs, more = load_text(text, path)
        problems = problems + more
    if problems or len(docs) != 1:
        click.echo(format_diagnostics(problems) or f"error: {path} must hold one mapping of facts", err=True)
        sys.exit(2)
    from regelwerk.permissions.facts import check_facts

    problems = check_facts(docs[0].data, path)
    if problems:
        click.echo(format_diagnostics(problems), err=True)
        sys.exit(2)
    data: dict[str, Any] = to_plain(docs[0].data)
    return data


@click.command("can")
@click.argument("path", type=click.Path(exists=True))
@click.option("--as", "actor_id", required=True, help="The actor id (roles from the facts file's actors).")
@click.option("--role", "roles", multiple=True, help="Extra role of the actor (repeatable).")
@click.option("--action", required=True, help="The action, e.g. read or write.")
@click.option("--resource", required=True, help="TYPE or TYPE:ID (data from the facts file's resources).")
@click.option("--field-group", default=None, help="Ask about one field group of the resource.")
@click.option("--facts", "facts_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML/JSON with actors, relations, resources and context.")
@click.option("--matrix", default=None, help="The PermissionMatrix name (needed when the bundle has several).")
@click.option("--at", "at", default=None, type=ISO_MOMENT, help="The moment to decide at (ISO; default now).")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="json", show_default=True)
def can_command(path: str, actor_id: str, roles: tuple[str, ...], action: str, resource: str,
                field_group: str | None, facts_path: str | None, matrix: str | None, at: str | None,
                fmt: str) -> None:
    """May ACTOR do ACTION on RESOURCE? Prints {"allowed": bool, "explain": ...}; exit 0 allowed, 1 denied."""
    from regelwerk.cli import load_compiled
    from regelwerk.errors import RegelwerkError
    from regelwerk.permissions.facts import actor_from_facts, pick_matrix, resource_from_facts
    from regelwerk.permissions.relations import relations_from_facts
    from regelwerk.scenarios import parse_moment

    facts = _facts(facts_path)
    compiled = load_compiled(path)
    try:
        chosen = pick_matrix(compiled, matrix)
        actor = actor_from_facts(actor_id, facts, roles)
        resource_type, data = resource_from_facts(resource, facts)
        now = parse_moment(at) if at else datetime.now(UTC)
        relations = relations_from_facts(facts, compiled.timezone)
    except (RegelwerkError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    decision = chosen.decide(actor, action, resource_type, data, relations, now, facts.get("context") or {},
                             field_group=field_group, explain=True)
    if fmt == "json":
        click.echo(json.dumps(decision.to_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        info = decision.explain
        click.echo(f"{'ALLOWED' if decision.allowed else 'DENIED'} by {info.get('by')}"
                   + (f": {info.get('reason')}" if info.get("reason") else ""))
        for item in info.get("considered", []):
            click.echo(f"  {'*' if item['applies'] else '-'} {item['rule']} ({item['effect']}): {item['why']}")
    sys.exit(0 if decision.allowed else 1)


@click.group("render")
def render_group() -> None:
    """Render definitions as documents for people (tables for sign-off)."""


@render_group.command("matrix")
@click.argument("path")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["markdown", "html"]), default="markdown", show_default=True)
def render_matrix(path: str, name: str, fmt: str) -> None:
    """Print the PermissionMatrix NAME of the bundle at PATH as a table."""
    from regelwerk.cli import load_definition, path_then_name
    from regelwerk.permissions.render import render_html, render_markdown

    path, name = path_then_name(path, name, "render matrix")
    matrix = load_definition(path, "PermissionMatrix", name)
    click.echo(render_markdown(matrix) if fmt == "markdown" else render_html(matrix), nl=False)


def register(registry: Registry) -> None:
    """Add the commands; ``render`` may already exist (another area's render subcommands): then join it."""
    registry.add_command(can_command)
    from regelwerk.permissions.accounts_cli import accounts_group

    registry.add_command(accounts_group)
    existing = registry.commands.get("render")
    if existing is None:
        registry.add_command(render_group)
    elif isinstance(existing, click.Group) and "matrix" not in existing.commands:
        existing.add_command(render_matrix)
