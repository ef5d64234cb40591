"""``regelwerk retention overview|preview|apply --store URL PATH``: AVG retention from the command line."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click
from regelwerk.cli import echo_json, format_option

__all__ = ["retention_group"]


def _recruitment(path: str, store_url: str) -> Any:
    from regelwerk.cli import load_compiled, registry
    from regelwerk.runtime import Engine
    from regelwerk_packs.recruitment.service import Recruitment

    engine = Engine(load_compiled(path), store=store_url, registry=registry())
    engine.store.setup()
    return Recruitment(engine)


def _store_option(fn: Any) -> Any:
    fn = click.option("--store", "store_url", required=True, help="The store's database URL.")(fn)
    return click.argument("path", type=click.Path(exists=True))(fn)


@click.group("retention")
def retention_group() -> None:
    """AVG retention of candidate data: overview, preview, apply."""


@retention_group.command("overview")
@_store_option
@format_option()
def overview_command(store_url: str, path: str, fmt: str) -> None:
    """How long candidates have been kept, per status group."""
    rec = _recruitment(path, store_url)
    try:
        rows = rec.retention_overview()
    finally:
        rec.engine.close()
    if fmt == "json":
        echo_json(rows)
        return
    click.echo(f"{'group':<12} {'candidates':>10} {'consent':>8}  {'oldest':<10}  {'days':>5}")
    for r in rows:
        click.echo(f"{r['group']:<12} {r['candidates']:>10} {r['with_consent']:>8}  "
                   f"{r['oldest_application'] or '-':<10}  {r['longest_kept_days']:>5}")


@retention_group.command("preview")
@_store_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def preview_command(store_url: str, path: str, fmt: str) -> None:
    """What the sweep would delete or ask now (changes nothing)."""
    rec = _recruitment(path, store_url)
    try:
        plan = rec.retention_preview()
    finally:
        rec.engine.close()
    rows = plan.to_rows()
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['action']:<7} {row['candidate']:<34} {row['group']:<10} {row['rule']:<12} due {row['due']}")
    click.echo(f"{len(plan.deletions)} to delete, {len(plan.renewals)} to ask for renewed consent", err=True)


@retention_group.command("apply")
@_store_option
@click.option("--yes", is_flag=True, help="Really delete (without it: the preview only).")
@format_option()
def apply_command(store_url: str, path: str, yes: bool, fmt: str) -> None:
    """Delete what is due and send the consent-renewal requests."""
    from regelwerk_packs.recruitment.service import retention_sweep

    rec = _recruitment(path, store_url)
    try:
        if not yes:
            plan = rec.retention_preview()
            if fmt == "json":
                echo_json({"applied": False, "would_delete": len(plan.deletions), "would_ask": len(plan.renewals)})
            else:
                click.echo(f"would delete {len(plan.deletions)}, ask {len(plan.renewals)}; add --yes to apply")
            sys.exit(1 if plan.deletions else 0)
        report = retention_sweep(rec.engine, rec.compiled, datetime.now(UTC))
    finally:
        rec.engine.close()
    if fmt == "json":
        echo_json({"applied": True, "deleted": report.deleted, "outbox_rows_erased": report.outbox_rows_erased,
                   "renewals_requested": report.renewals_requested})
        return
    click.echo(f"deleted {report.deleted} candidate(s) ({report.outbox_rows_erased} outbox rows), "
               f"asked {report.renewals_requested} to renew consent")
