"""``regelwerk report PATH -o DIR``: build the configuration report, and the function behind it."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

import click
from regelwerk.registry import Registry

__all__ = ["build_report", "derived_changes", "register", "report_command", "write_report"]

REPORT_FILE = "index.html"


def derived_changes(compiled: Any, base_compiled: Any | None) -> dict[tuple[str, str], str]:
    """``overlay_changes`` plus every compiled object (emitted ones too) whose content differs from the base."""
    changes: dict[tuple[str, str], str] = dict(compiled.overlay_changes)
    if base_compiled is None:
        return changes
    for key, version in compiled.versions.items():
        if key in changes:
            continue
        if key not in base_compiled.versions:
            changes[key] = "added"
        elif base_compiled.versions[key] != version:
            changes[key] = "changed"
    for key in base_compiled.versions:
        if key not in compiled.versions and key not in changes:
            changes[key] = "removed"
    return changes


def build_report(path: str | Path, registry: Registry, today: date) -> tuple[str, Any]:
    """The report page of the bundle at ``path`` and its compiled bundle (``DefinitionError`` if invalid)."""
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.diagnostics import DefinitionError
    from regelwerk.report.diff import load_base, overlay_differences
    from regelwerk.report.page import ReportData, render_report

    compiled = compile_bundle(load_bundle(path), registry)
    base = load_base(path)
    base_compiled = None
    if base is not None:
        try:
            base_compiled = compile_bundle(base, registry)
        except DefinitionError:
            base_compiled = None  # the differences still come from the documents; derived ones are unknown
    data = ReportData(
        compiled=compiled, today=today,
        differences=overlay_differences(compiled.documents, compiled.overlay_changes, base),
        changes=derived_changes(compiled, base_compiled),
        extends=base is not None, base_name=base.name if base is not None else "",
    )
    return render_report(data), compiled


def write_report(path: str | Path, out_dir: str | Path, registry: Registry, today: date) -> Path:
    """Build the report and write ``DIR/index.html`` (the directory is created); returns the file."""
    page, _ = build_report(path, registry, today)
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    out = target / REPORT_FILE
    out.write_text(page, encoding="utf-8")
    return out


@click.command("report")
@click.argument("path", type=click.Path(exists=True))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False, writable=True),
              help="Directory to write index.html into (created when missing).")
@click.option("--date", "on", default=None, metavar="YYYY-MM-DD",
              help="Date printed on the report; also picks the work year of the timelines. Default: today.")
def report_command(path: str, out_dir: str, on: str | None) -> None:
    """Write a static HTML report of a bundle's effective configuration for the customer's sign-off."""
    from regelwerk.cli import fail, registry
    from regelwerk.diagnostics import DefinitionError, format_diagnostics

    try:
        today = date.fromisoformat(on) if on else date.today()
    except ValueError:
        fail(f"--date {on!r} is not a date (YYYY-MM-DD)", 2)
    try:
        written = write_report(path, out_dir, registry(), today)
    except DefinitionError as exc:
        click.echo(format_diagnostics(exc.diagnostics), err=True)
        sys.exit(1)
    except OSError as exc:
        fail(f"cannot write the report to {out_dir}: {exc}", 2)
    click.echo(f"wrote {written}")


def register(registry: Registry, plugin: str) -> None:
    """Add the ``report`` command to the CLI."""
    del plugin  # the command belongs to the core; the parameter keeps the areas' register signature
    registry.add_command(report_command)
