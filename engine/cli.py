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
def cli() -> None:
    """regelwerk: HR workflows and rules from declarative YAML."""


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
@click.option("--coverage", "coverage_on", is_flag=True,
              help="Report which states, transitions, guards, table rows and rules the scenarios exercised.")
@click.option("--coverage-format", "coverage_fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="The coverage report's format.")
@click.option("--coverage-file", type=click.Path(dir_okay=False), default=None,
              help="Also write the coverage report as JSON to this file.")
@click.option("--min-coverage", type=click.FloatRange(0, 100), default=None,
              help="Fail (exit 1) when the coverage is below this percentage.")
def test_command(paths: Sequence[str], junit: str | None, quiet: bool, coverage_on: bool, coverage_fmt: str,
                 coverage_file: str | None, min_coverage: float | None) -> None:
    """Run scenario files (``kind: Scenario``) found under PATHS."""
    from contextlib import nullcontext

    from regelwerk import coverage
    from regelwerk.scenarios import iter_results_lines, junit_xml, run_scenarios

    wanted = coverage_on or coverage_file is not None or min_coverage is not None
    with coverage.collecting() if wanted else nullcontext() as collector:
        results = run_scenarios(paths, registry())
    if not results:
        fail("no scenario files found under " + ", ".join(paths), 1)
    for line in iter_results_lines(results):
        if quiet and line.startswith("PASS"):
            continue
        click.echo(line)
    if junit:
        Path(junit).write_text(junit_xml(results), encoding="utf-8")
    ok = all(r.passed for r in results)
    if collector is not None:
        report = coverage.report(collector)
        if coverage_file:
            Path(coverage_file).write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False),
                                           encoding="utf-8")
        if coverage_on and coverage_fmt == "json":
            click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        elif coverage_on or min_coverage is not None:
            for line in report.lines():
                click.echo(line)
        if min_coverage is not None and report.percent < min_coverage:
            click.echo(f"coverage {report.percent:.1f} % is below the minimum of {min_coverage:g} %", err=True)
            ok = False
    sys.exit(0 if ok else 1)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: plugins' commands (``Registry.commands``) join the group here."""
    for name, command in registry().commands.items():
        if name not in cli.commands:
            cli.add_command(command, name)
    cli.main(args=list(argv) if argv is not None else None, prog_name="regelwerk")
