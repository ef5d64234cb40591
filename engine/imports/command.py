"""``regelwerk import organisation``: the CLI over :func:`regelwerk.imports.organisation.import_organisation`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from regelwerk.cli import ISO_MOMENT
from regelwerk.imports.absent import ABSENT_CHOICES

__all__ = ["organisation_command"]


@click.command("organisation")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--store", "store_url", required=True, help="Database URL (sqlite:///file, postgresql+psycopg://...).")
@click.option("--bundle", "bundle_path", type=click.Path(exists=True), default=None,
              help="The customer's bundle: its Import declarations (extra attributes) and permission roles.")
@click.option("--skip-invalid", is_flag=True,
              help="Import the valid rows; write the rejected ones with their errors to --rejected.")
@click.option("--rejected", "rejected_path", type=click.Path(dir_okay=False), default=None,
              help="Where --skip-invalid writes the rejected rows (default: <first file>.afgekeurd.xlsx or .csv).")
@click.option("--absent", type=click.Choice(list(ABSENT_CHOICES)), default="keep", show_default=True,
              help="Employees and units the store has and the files do not: keep them, report them, or end them "
                   "as of the import date (their employment and relations end; nothing is deleted).")
@click.option("--at", default=None, type=ISO_MOMENT, help="The moment of the import (default now): its date is "
                                                           "the import date --absent end ends on.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def organisation_command(files: tuple[str, ...], store_url: str, bundle_path: str | None, skip_invalid: bool,
                         rejected_path: str | None, absent: str, at: str | None, fmt: str) -> None:
    """Import afdelingen, functies, rollen, taken and medewerkers from CSV files (named after what they hold)
    or the sheets of one XLSX workbook. All rows or none, unless --skip-invalid. An import adds and updates;
    whoever the files leave out stays, unless --absent says otherwise."""
    from regelwerk.imports.organisation import ENTITIES, import_organisation, write_rejected
    from regelwerk.imports.specs import import_spec
    from regelwerk.store.sql import create_sa_engine

    compiled: Any = None
    if bundle_path:
        from regelwerk.cli import load_compiled

        compiled = load_compiled(bundle_path)
    sa_engine = create_sa_engine(store_url)  # SQLite: explicit BEGIN, so the checks and the writes are one unit
    try:
        now = None
        if at is not None:
            from regelwerk.scheduling.kind import local_moment

            now = local_moment(at)
        result = import_organisation(sa_engine, list(files), compiled=compiled, skip_invalid=skip_invalid,
                                     absent=absent, now=now)
    finally:
        sa_engine.dispose()
    written: list[Path] = []
    if result.rejected:
        first = Path(files[0])
        suffix = ".xlsx" if first.suffix.lower() in (".xlsx", ".xlsm") or len(files) > 1 else ".csv"
        target = Path(rejected_path) if rejected_path else first.with_name(f"{first.stem}.afgekeurd{suffix}")
        written = write_rejected(result, target, {e: import_spec(e, compiled) for e in ENTITIES})
    if fmt == "json":
        click.echo(json.dumps({**result.to_dict(), "rejected_file": [str(p) for p in written]}, indent=2,
                              ensure_ascii=False))
    else:
        lines = result.lines()
        absent_lines = {str(a) for a in result.absent}
        for line in lines[:-1]:  # rejected rows are problems (stderr); who is absent is a result (stdout)
            click.echo(line, err=line not in absent_lines)
        click.echo(lines[-1], err=not result.ok)
        for path in written:
            click.echo(f"rejected rows written to {path} (fix them and import that file again)")
    if not result.ok:
        raise SystemExit(1)
