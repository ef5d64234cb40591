"""``regelwerk simulate PATH --from DATE --to DATE``: the command over :func:`regelwerk.simulation.simulate`."""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Any

import click
from regelwerk.registry import Registry

__all__ = ["register", "simulate_command"]


def _day(value: str, flag: str) -> date:
    from regelwerk.cli import ISO_DATE

    try:
        return ISO_DATE.convert(value, None, None)
    except click.BadParameter as exc:
        raise click.BadParameter(exc.message, param_hint=flag) from None


@click.command("simulate")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--from", "start", required=True, metavar="DATE", help="First day to simulate (YYYY-MM-DD).")
@click.option("--to", "end", required=True, metavar="DATE", help="Last day to simulate, inclusive (YYYY-MM-DD).")
@click.option("--store", "store_url", default=None, metavar="URL",
              help="Database URL (default: sqlite file .regelwerk/<bundle name>.sqlite under the current directory).")
@click.option("--story", "story", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Story file (default: PATH/story.yaml when present).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="Only the summary (text), no progress bar.")
def simulate_command(path: str, start: str, end: str, store_url: str | None, story: str | None, fmt: str,
                     quiet: bool) -> None:
    """Play a customer's calendar forward day by day: import its data, apply its story, tick every day.

    Prints a timeline and a summary. Re-running on the same store continues after the last simulated day.
    Exit codes: 0 done, 1 definition/story/data problems, 2 usage errors.
    """
    from regelwerk.diagnostics import DefinitionError, format_diagnostics
    from regelwerk.errors import RegelwerkError, UsageError
    from regelwerk.simulation.runner import simulate

    first, last = _day(start, "--from"), _day(end, "--to")
    if last < first:
        raise click.UsageError(f"--to {last} is before --from {first}")
    bar: Any = None
    progress = None
    if not quiet and sys.stderr.isatty():
        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = click.progressbar(length=total, label="simulating", file=sys.stderr)
                bar.__enter__()
            bar.update(1)
    try:
        result = simulate(path, first, last, store=store_url, story=story, progress=progress)
    except DefinitionError as exc:
        click.echo(format_diagnostics(exc.diagnostics), err=True)
        sys.exit(1)
    except UsageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except RegelwerkError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str))
        return
    lines = result.lines()
    if quiet:
        lines = lines[lines.index("") + 1:] if "" in lines else lines
    click.echo("\n".join(lines))


def register(registry: Registry, plugin: str) -> None:
    """Add ``regelwerk simulate`` and the core's story events."""
    from regelwerk.simulation import events

    registry.add_command(simulate_command)
    events.register(registry, plugin)
