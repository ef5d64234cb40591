"""The ``regelwerk`` command line (click): one grammar, one exit-code table (docs/cli.md).

Grammar: ``regelwerk VERB [SUBVERB] PATH [NAME...] [options]``; the bundle path comes first, then the names
inside it. Exit codes for every command:

- 0 ok;
- 1 findings or refusals (definition errors, failed scenarios, a denied permission, a refused event);
- 2 usage or input errors (bad flag or value, a date outside 0001-9998, a missing file, an unknown name);
- 3 internal errors: one short line on stderr and the traceback in a log file, never a bare traceback.

Shared pieces for every command (the engine's and the packs'): ``format_option``, ``ISO_DATE`` and
``ISO_MOMENT``, ``echo_json``, ``fail``, ``load_compiled``, ``load_definition``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_USAGE",
    "ISO_DATE",
    "ISO_MOMENT",
    "build_cli",
    "cli",
    "echo_json",
    "echo_result",
    "fail",
    "format_option",
    "main",
    "subcommand",
]

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
#: Dates a command accepts: four-digit years, with room for a day's arithmetic at the end.
FIRST_DATE = date(1, 1, 1)
LAST_DATE = date(9998, 12, 31)
LOG_DIR_ENV = "REGELWERK_LOG_DIR"

FORMATS = click.Choice(["text", "json", "github"])


def format_option(*extra: str, default: str = "text") -> Callable[[F], F]:
    """``--format text|json`` (plus ``extra`` choices, e.g. ``github`` where findings have files)."""
    choices = ["text", "json", *extra]
    help_text = "Output: text for people, json for tools" + (
        ", github for GitHub Actions annotations" if "github" in extra else "") + "."
    decorator: Callable[[F], F] = click.option("--format", "fmt", type=click.Choice(choices), default=default,
                                               show_default=True, help=help_text)
    return decorator


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON (dates and other values as strings)."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def echo_result(data: Any, fmt: str, text: Callable[[Any], str] | None = None) -> None:
    """Print a command's result: JSON for ``json``; for ``text`` the command's own rendering, else plain YAML."""
    if fmt == "json":
        echo_json(data)
        return
    if text is not None:
        click.echo(text(data))
        return
    import yaml
    from regelwerk.source import to_plain

    plain = json.loads(json.dumps(to_plain(data), default=str))
    click.echo(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, default_flow_style=False), nl=False)


def _in_range(value: date, text: str) -> None:
    if not FIRST_DATE <= value <= LAST_DATE:
        raise ValueError(f"{text!r} is outside the supported dates ({FIRST_DATE} to {LAST_DATE})")


class IsoDate(click.ParamType[date, Any]):
    """A ``YYYY-MM-DD`` date between 0001-01-01 and 9998-12-31 (a usage error otherwise)."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            day = date.fromisoformat(str(value))
            _in_range(day, str(value))
        except ValueError as exc:
            self.fail(str(exc) if "outside" in str(exc) else f"{value!r} is not a date (YYYY-MM-DD)", param, ctx)
        return day


class IsoMoment(click.ParamType[str, Any]):
    """An ISO date or date-time between 0001 and 9998, passed on as the text given (commands parse it)."""

    name = "ISO"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            _in_range(moment.date(), text)
        except ValueError as exc:
            self.fail(str(exc) if "outside" in str(exc) else f"{text!r} is not an ISO date or date-time", param, ctx)
        return text


ISO_DATE = IsoDate()
ISO_MOMENT = IsoMoment()


def _log_internal_error(exc: BaseException) -> Path | None:
    directory = Path(os.environ.get(LOG_DIR_ENV) or Path(tempfile.gettempdir()) / "regelwerk")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f"regelwerk-{datetime.now():%Y%m%d-%H%M%S}-", suffix=".log",
                                        dir=directory)
        with os.fdopen(handle, "w", encoding="utf-8") as log:
            log.write("regelwerk " + " ".join(sys.argv[1:]) + "\n\n")
            log.write("".join(traceback.format_exception(exc)))
    except OSError:
        return None
    return Path(name)


class RegelwerkGroup(click.Group):
    """The command group that maps every exception to the exit-code table (module docstring)."""

    def invoke(self, ctx: click.Context) -> Any:
        from regelwerk.diagnostics import DefinitionError, format_diagnostics
        from regelwerk.errors import RegelwerkError, UsageError, is_plugin_fault, storable_text

        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except DefinitionError as exc:
            click.echo(format_diagnostics(exc.diagnostics), err=True)
            ctx.exit(EXIT_FINDINGS)
        except UsageError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_USAGE)
        except RegelwerkError as exc:
            click.echo(f"refused: {exc}", err=True)
            ctx.exit(EXIT_FINDINGS)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_USAGE)
        except OverflowError as exc:  # date arithmetic past year 9999 on a value the user gave
            click.echo(f"error: a date is out of range ({exc})", err=True)
            ctx.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except BaseException as exc:  # the last resort: a short line, the traceback in a log file
            if not is_plugin_fault(exc):
                raise
            log = _log_internal_error(exc)
            where = f" (details in {log})" if log else ""
            # the message as the stores keep it: bounded, and a __str__ that raises does not raise again here
            click.echo(f"internal error: {type(exc).__name__}: {storable_text(exc, 300)}{where}", err=True)
            ctx.exit(EXIT_INTERNAL)


@click.group(cls=RegelwerkGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="regelwerk")
@click.option("--base", "bases", multiple=True, metavar="NAME=PATH",
              help="A base a bundle may extend by name besides 'standard' (repeatable).")
def cli(bases: Sequence[str]) -> None:
    """regelwerk: HR workflows and rules from declarative YAML.

    Every command reads `regelwerk VERB PATH [NAME] [options]` and exits 0 (ok), 1 (findings or refusals),
    2 (usage or input errors) or 3 (internal error; details in a log file). See docs/cli.md.
    """
    if bases:
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


def fail(message: str, code: int = EXIT_FINDINGS) -> NoReturn:
    """Print an error to stderr and exit with ``code`` (``EXIT_USAGE`` for usage and input errors)."""
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
        sys.exit(EXIT_FINDINGS)


def load_definition(path: str, kind: str, name: str) -> Any:
    """The compiled ``kind`` named ``name`` of the bundle at ``path``: exit 1 with every diagnostic when the
    bundle is invalid, exit 2 (a usage error, with the known names) when it has no such definition."""
    from regelwerk.errors import UnknownDefinition

    compiled = load_compiled(path)
    try:
        return compiled.get(kind, name)
    except UnknownDefinition as exc:
        fail(str(exc), EXIT_USAGE)


def path_then_name(path: str, name: str, verb: str) -> tuple[str, str]:
    """``PATH NAME`` as the grammar has it; the old ``NAME PATH`` order still works, with a warning."""
    if not Path(path).exists() and Path(name).exists():
        click.echo(f"warning: `regelwerk {verb} NAME PATH` is deprecated; write `regelwerk {verb} PATH NAME`",
                   err=True)
        return name, path
    if not Path(path).exists():
        fail(f"no such file or directory: {path}", EXIT_USAGE)
    return path, name


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
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True,
              help="Output: YAML (reads back as a bundle) or JSON.")
def show(path: str, effective: bool, kind: str | None, fmt: str) -> None:
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
    if fmt == "json":
        echo_json([to_plain(d.data) for d in docs])
        return
    header = f"# effective bundle {bundle.name}: {' -> '.join(bundle.chain)}\n" if effective else ""
    click.echo(header + dump_yaml([to_plain(d.data) for d in docs]), nl=False)


@cli.command()
@click.argument("kind", required=False)
@click.option("--write", "write_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Write every schema (the umbrella, each kind and its patch form, Bundle, Scenario, Story, "
                   "common) into DIR and print the modeline to put at the top of YAML files.")
def schema(kind: str | None, write_dir: str | None) -> None:
    """Print the JSON Schema of a kind (or the umbrella schema of every document; ``Scenario``, ``Story`` and
    ``Bundle`` too), or write the whole set for an editor with ``--write DIR``."""
    from regelwerk.diagnostics import did_you_mean
    from regelwerk.schemafiles import UMBRELLA_FILE, modeline, partial_file_name, schema_files, write_schema_set
    from regelwerk.validation import schema_file_name

    reg = registry()
    if write_dir is not None:
        if kind is not None:
            fail("give either KIND or --write DIR", 2)
        written = write_schema_set(reg, write_dir)
        click.echo(f"wrote {len(written)} schema files to {write_dir}", err=True)
        click.echo(modeline(write_dir))
        click.echo(f"(relative to the YAML file: from a sub-directory use the path to {Path(write_dir) / UMBRELLA_FILE}"
                   " as seen from there)", err=True)
        return
    files = schema_files(reg)
    names = {"Bundle": "bundle.json", "Scenario": "scenario.json", "Story": "story.json", "common": "common.json"}
    names.update({k: schema_file_name(s) for k, s in reg.kinds.items()})
    names.update({f"{k}.patch": partial_file_name(schema_file_name(s)) for k, s in reg.kinds.items()})
    if kind is None:
        data = files[UMBRELLA_FILE]
    elif kind in names:
        data = files[names[kind]]
    else:
        hint = did_you_mean(kind, sorted(names))
        fail(f"unknown kind {kind!r}" + (f"; {hint}" if hint else ""), 2)
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@cli.command()
@format_option()
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
              help="Report which states, transitions, guard outcomes (true and false), table rows, rules, permission "
                   "rules and schedule moments the scenarios exercised.")
@click.option("--coverage-format", "coverage_fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="The coverage report's format.")
@click.option("--coverage-file", type=click.Path(dir_okay=False), default=None,
              help="Also write the coverage report as JSON to this file.")
@click.option("--min-coverage", type=click.FloatRange(0, 100), default=None,
              help="Fail (exit 1) when the coverage is below this percentage.")
@format_option("github")
def test_command(paths: Sequence[str], junit: str | None, quiet: bool, coverage_on: bool, coverage_fmt: str,
                 coverage_file: str | None, min_coverage: float | None, fmt: str) -> None:
    """Run scenario files (``kind: Scenario``) found under PATHS (none found: exit 0 with a note)."""
    from contextlib import nullcontext
    from dataclasses import asdict

    from regelwerk import coverage
    from regelwerk.scenarios import iter_results_lines, junit_xml, run_scenarios

    wanted = coverage_on or coverage_file is not None or min_coverage is not None
    with coverage.collecting() if wanted else nullcontext() as collector:
        results = run_scenarios(paths, registry())
    if fmt == "json":
        echo_json({"passed": all(r.passed for r in results),
                   "scenarios": [{**asdict(r), "passed": r.passed} for r in results]})
    elif fmt == "github":
        for r in results:
            failed = [(r.line, r.error)] if r.error else []
            failed += [(s.line, f"step {s.index + 1} ({s.kind}): {s.message}") for s in r.steps if not s.passed]
            for at, message in failed:
                text = f"{r.name}: {message}".replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
                click.echo(f"::error file={r.file},line={at},title=scenario failed::{text}")
    if fmt != "json" and not results:
        click.echo("note: no scenario files (kind: Scenario) under " + ", ".join(paths) + "; nothing to test",
                   err=True)
    for line in iter_results_lines(results) if fmt == "text" and results else ():
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


def build_cli() -> click.Group:
    """The ``regelwerk`` group with the plugins' commands (``Registry.commands``) joined."""
    for name, command in registry().commands.items():
        if name not in cli.commands:
            cli.add_command(command, name)
    return cli


_FROZE: list[bool] = []


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    import gc

    if _FROZE:  # a second run in one process (tests): as usual
        build_cli().main(args=list(argv) if argv is not None else None, prog_name="regelwerk")
        return
    # Loading the plugins creates long-lived objects (modules, classes, the registry): no cyclic garbage
    # collection while they load, and none of them traversed again by a later collection (gc.freeze,
    # once per process) -- about 15 ms of a cold `regelwerk validate`.
    enabled = gc.isenabled()
    gc.disable()
    try:
        group = build_cli()
    finally:
        gc.freeze()
        _FROZE.append(True)
        if enabled:
            gc.enable()
    group.main(args=list(argv) if argv is not None else None, prog_name="regelwerk")


if __name__ == "__main__":
    main()
