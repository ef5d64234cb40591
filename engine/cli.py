"""The ``regelwerk`` command line (click).

Exit codes for every command: 0 success, 1 a definition or runtime problem was found,
2 a usage error (bad flag, missing path).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

__all__ = ["cli", "main", "subcommand"]

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = click.Choice(["text", "json", "github"])


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="regelwerk")
@click.option("--base", "bases", multiple=True, metavar="NAME=PATH",
              help="A base a bundle may extend by name besides 'standard' (repeatable).")
def cli(bases: Sequence[str]) -> None:
    """regelwerk: HR workflows and rules from declarative YAML."""
    if bases:
        import os

        from regelwerk.bundle import BASES_ENV

        pairs = []
        for pair in bases:
            name, sep, where = pair.partition("=")
            if not sep or not name or not where:
                raise click.BadParameter(f"{pair!r} is not NAME=PATH", param_hint="--base")
            if not Path(where).is_dir():
                raise click.BadParameter(f"{where!r} is not a folder", param_hint="--base")
            pairs.append(f"{name}={Path(where).resolve()}")
        # every command of this process loads bundles through load_bundle, which reads the named bases here
        os.environ[BASES_ENV] = os.pathsep.join(pairs)


def subcommand(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    """Register a command on the ``regelwerk`` group (used by the engine's parts to add theirs)."""
    decorator: Callable[[F], F] = cli.command(*args, **kwargs)
    return decorator


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error to stderr and exit."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def registry() -> Any:
    """The plugin registry (entry points loaded here, not at import)."""
    from regelwerk.registry import load_registry

    return load_registry()


def load_compiled(path: str) -> Any:
    """Load and compile a bundle or exit 1 printing every diagnostic."""
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.diagnostics import DefinitionError, format_diagnostics

    try:
        return compile_bundle(load_bundle(path), registry())
    except DefinitionError as exc:
        click.echo(format_diagnostics(exc.diagnostics), err=True)
        sys.exit(1)


def load_definition(path: str, kind: str, name: str) -> Any:
    """The compiled ``kind`` named ``name`` of the bundle at ``path``: exit 1 with every diagnostic when the
    bundle is invalid, exit 2 (a usage error, with the known names) when it has no such definition."""
    from regelwerk.errors import UnknownDefinition

    compiled = load_compiled(path)
    try:
        return compiled.get(kind, name)
    except UnknownDefinition as exc:
        fail(str(exc), 2)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True, help="Output format.")
def validate(paths: Sequence[str], fmt: str) -> None:
    """Validate bundles (directories) or definition files; report every problem at once."""
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import validate_bundle
    from regelwerk.diagnostics import format_diagnostics
    from regelwerk.validation import SchemaSet

    reg = registry()
    schemas = SchemaSet(reg)
    diagnostics = []
    for path in paths:
        diagnostics.extend(validate_bundle(load_bundle(path), reg, schemas))
    errors = [d for d in diagnostics if d.is_error]
    text = format_diagnostics(diagnostics, fmt)
    if fmt == "json":
        click.echo(text)
    else:
        if text:
            click.echo(text)
        if fmt == "text":
            warnings = len(diagnostics) - len(errors)
            status = "valid" if not errors else "invalid"
            click.echo(f"{', '.join(paths)}: {status} ({len(errors)} error(s), {warnings} warning(s))", err=True)
    sys.exit(1 if errors else 0)


@cli.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--effective", is_flag=True, help="Print the merged bundle (base plus overlays).")
@click.option("--kind", default=None, help="Only documents of this kind.")
def show(path: str, effective: bool, kind: str | None) -> None:
    """Print a bundle's documents as YAML (``--effective``: after merging overlays)."""
    from regelwerk.bundle import load_bundle
    from regelwerk.diagnostics import format_diagnostics
    from regelwerk.source import dump_yaml, to_plain

    bundle = load_bundle(path)
    errors = [d for d in bundle.diagnostics if d.is_error]
    if errors:
        click.echo(format_diagnostics(errors), err=True)
        sys.exit(1)
    docs = [d for d in bundle.documents if kind is None or d.kind == kind]
    header = f"# effective bundle {bundle.name}: {' -> '.join(bundle.chain)}\n" if effective else ""
    click.echo(header + dump_yaml([to_plain(d.data) for d in docs]), nl=False)


@cli.command()
@click.argument("kind", required=False)
def schema(kind: str | None) -> None:
    """Print the JSON Schema of a kind (or the umbrella schema of every kind; ``Scenario`` for scenarios,
    ``Story`` for the stories of ``regelwerk simulate``)."""
    from regelwerk.diagnostics import did_you_mean
    from regelwerk.scenarios import scenario_schema
    from regelwerk.simulation.story import story_schema
    from regelwerk.validation import document_schema, load_shipped_schema, umbrella_schema

    reg = registry()
    if kind is None:
        data = umbrella_schema(reg)
    elif kind == "Scenario":
        data = scenario_schema(reg)
    elif kind == "Story":
        data = story_schema(reg)
    elif kind == "common":
        data = load_shipped_schema("common.json")
    elif kind in reg.kinds:
        data = document_schema(reg.kinds[kind])
    else:
        hint = did_you_mean(kind, list(reg.kinds) + ["Scenario", "Story"])
        fail(f"unknown kind {kind!r}" + (f"; {hint}" if hint else ""), 2)
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def kinds(fmt: str) -> None:
    """List the document kinds with the plugin that provides each."""
    reg = registry()
    rows = [{"kind": k, "plugin": s.plugin, "description": s.description} for k, s in sorted(reg.kinds.items())]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    width = max((len(r["kind"]) for r in rows), default=4)
    for row in rows:
        click.echo(f"{row['kind']:<{width}}  {row['plugin']:<14}  {row['description']}")


@cli.command("test")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--junit", "junit", type=click.Path(dir_okay=False), default=None, help="Write a JUnit XML report.")
@click.option("-q", "--quiet", is_flag=True, help="Only failures and the summary.")
def test_command(paths: Sequence[str], junit: str | None, quiet: bool) -> None:
    """Run scenario files (``kind: Scenario``) found under PATHS."""
    from regelwerk.scenarios import iter_results_lines, junit_xml, run_scenarios

    results = run_scenarios(paths, registry())
    if not results:
        fail("no scenario files found under " + ", ".join(paths), 1)
    for line in iter_results_lines(results):
        if quiet and line.startswith("PASS"):
            continue
        click.echo(line)
    if junit:
        Path(junit).write_text(junit_xml(results), encoding="utf-8")
    sys.exit(0 if all(r.passed for r in results) else 1)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: plugins' commands (``Registry.commands``) join the group here."""
    for name, command in registry().commands.items():
        if name not in cli.commands:
            cli.add_command(command, name)
    cli.main(args=list(argv) if argv is not None else None, prog_name="regelwerk")
