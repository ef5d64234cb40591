"""``regelwerk report PATH -o DIR``: build the configuration report, and the function behind it."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

import click
from regelwerk.cli import ISO_DATE, format_option
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
    """Build the report and write ``DIR/index.html``; returns the file.

    Atomic: the page is built first (a definition error leaves everything as it was), written into a temporary
    directory beside ``DIR`` and moved into place; a previous report is replaced whole, never left truncated.
    """
    import os
    import shutil
    import tempfile

    page, _ = build_report(path, registry, today)
    target = Path(out_dir)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} is not a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (staging / REPORT_FILE).write_text(page, encoding="utf-8")
        os.chmod(staging, 0o755)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            old.rmdir()
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target / REPORT_FILE


@click.command("report")
@click.argument("path", type=click.Path(exists=True))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False, writable=True),
              help="Directory to write index.html into (created when missing; replaced whole).")
@click.option("--date", "on", default=None, type=ISO_DATE,
              help="Date printed on the report; also picks the work year of the timelines. Default: today.")
@format_option()
def report_command(path: str, out_dir: str, on: date | None, fmt: str) -> None:
    """Write a static HTML report of a bundle's effective configuration for the customer's sign-off."""
    from regelwerk.cli import echo_json, fail, registry
    from regelwerk.diagnostics import DefinitionError, format_diagnostics

    try:
        written = write_report(path, out_dir, registry(), on or date.today())
    except DefinitionError as exc:
        click.echo(format_diagnostics(exc.diagnostics), err=True)
        sys.exit(1)
    except OSError as exc:
        fail(f"cannot write the report to {out_dir}: {exc}", 2)
    if fmt == "json":
        echo_json({"report": str(written)})
    else:
        click.echo(f"wrote {written}")


def register(registry: Registry, plugin: str) -> None:
    """Add the ``report`` command to the CLI."""
    del plugin  # the command belongs to the core; the parameter keeps the areas' register signature
    registry.add_command(report_command)
