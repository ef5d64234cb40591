"""``regelwerk report PATH -o DIR``: build the configuration report, and the function behind it."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import click
from regelwerk.cli import ISO_DATE, format_option
from regelwerk.coverage import ScenarioRun, run_scenarios
from regelwerk.registry import Registry

__all__ = ["build_report", "derived_changes", "register", "report_command", "write_report"]

REPORT_FILE = "index.html"


def derived_changes(compiled: Any, base_compiled: Any | None) -> dict[tuple[str, str], str]:
    """``overlay_changes`` plus every compiled object (emitted ones too) whose content differs from the base;
    a document the overlay patched or replaced into exactly the standard's content is not a change."""
    changes: dict[tuple[str, str], str] = dict(compiled.overlay_changes)
    if base_compiled is None:
        return changes
    for key, version in compiled.versions.items():
        if key in changes:
            if changes[key] in ("patched", "replaced") and base_compiled.versions.get(key) == version:
                del changes[key]  # changed-but-identical: nothing to sign for
            continue
        if key not in base_compiled.versions:
            changes[key] = "added"
        elif base_compiled.versions[key] != version:
            changes[key] = "changed"
    for key in base_compiled.versions:
        if key not in compiled.versions and key not in changes:
            changes[key] = "removed"
    return changes


def _manifest_spec(path: str | Path) -> dict[str, Any]:
    from regelwerk.bundle import BUNDLE_MANIFEST
    from regelwerk.source import load_text, read_source, to_plain

    manifest = Path(path) / BUNDLE_MANIFEST
    if not manifest.is_file():
        return {}
    text, _ = read_source(str(manifest), str(manifest))
    docs, _ = load_text(text or "", str(manifest))
    for doc in docs:
        spec = to_plain(doc.data).get("spec")
        if doc.kind == "Bundle" and isinstance(spec, dict):
            return spec
    return {}


def _labels(compiled: Any) -> dict[str, str]:
    """Labels of every id the bundle's documents define (states, roles, rights, statuses...), and of each
    permission ``resource.action`` ("goedkeuren (Declaratie)")."""
    from regelwerk.report.sections import ACTION_WORDS
    from regelwerk.source import to_plain

    labels: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ident, label = node.get("id"), node.get("label")
            if isinstance(ident, str) and isinstance(label, str) and label:
                labels.setdefault(ident, label)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for doc in compiled.documents:
        spec = to_plain(doc.data).get("spec")
        walk(spec)
        if doc.kind == "Facts" and isinstance(spec, dict) and isinstance(spec.get("attributes"), dict):
            # a declared attribute's label names it in conditions ("fact:candidate.internal": "Interne kandidaat")
            for name, decl in spec["attributes"].items():
                if isinstance(decl, dict) and isinstance(decl.get("label"), str) and decl["label"]:
                    labels.setdefault(f"fact:{doc.name}.{name}", decl["label"])
        if isinstance(spec, dict) and isinstance(spec.get("label"), str) and doc.name:
            labels.setdefault(doc.name, spec["label"])
    for matrix in compiled.of_kind("PermissionMatrix").values():
        for resource in matrix.resources.values():
            for action in resource.actions:
                word = resource.action_labels.get(action) or ACTION_WORDS.get(action, action)
                labels.setdefault(f"{resource.id}.{action}", f"{word} ({resource.label})")
    return labels


def _in_use(compiled: Any, changes: Mapping[tuple[str, str], str], root: Path | None,
            uses: Sequence[str]) -> tuple[frozenset[tuple[str, str]], list[str]]:
    """What the report leaves out: the base's documents outside ``uses`` that the customer did not change, and the
    parts of the base not in use (its top-level entries)."""
    if root is None or not uses:
        return frozenset(), []
    base = root.resolve()
    wanted = [u.strip("/") for u in uses]
    hidden = set()
    for doc in compiled.documents:
        try:
            rel = Path(doc.file).resolve().relative_to(base).as_posix()
        except ValueError:
            continue  # the customer's own file
        key = (doc.kind, doc.name)
        if key not in changes and not any(rel == w or rel.startswith(w + "/") for w in wanted):
            hidden.add(key)
    unused = sorted(p.name for p in base.iterdir() if not p.name.startswith((".", "_")) and p.name != "bundle.yaml"
                    and not any(w == p.name or w.startswith(p.name + "/") for w in wanted))
    unused += sorted(w for w in {f"{p.parent.name}/{p.name}" for p in base.glob("*/*.yaml")}
                     if not any(w == u or w.startswith(u + "/") for u in wanted)
                     and any(u.startswith(w.split("/")[0] + "/") for u in wanted))
    return frozenset(hidden), [u.replace(".yaml", "") for u in unused]


def build_report(path: str | Path, registry: Registry, today: date,
                 scenarios: Sequence[str | Path] | ScenarioRun | None = None) -> tuple[str, Any]:
    """The report page of the bundle at ``path`` and its compiled bundle (``DefinitionError`` if invalid).

    ``scenarios``: run the scenario files under these paths with coverage on (or take such a run) and show, per
    definition, what they tested ("Door de scenario's getest"); None leaves coverage out of the report.
    """
    from importlib.metadata import PackageNotFoundError, version

    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.diagnostics import DefinitionError
    from regelwerk.report.diff import load_base, overlay_differences, root_base_path
    from regelwerk.report.page import ReportData, render_report
    from regelwerk.report.words import CORE_GLOSSARY, Words
    from regelwerk.source import to_plain

    compiled = compile_bundle(load_bundle(path), registry)
    tested = scenarios if isinstance(scenarios, ScenarioRun) or scenarios is None else \
        run_scenarios(scenarios, registry)
    base = load_base(path)
    base_compiled = None
    if base is not None:
        try:
            base_compiled = compile_bundle(base, registry)
        except DefinitionError:
            base_compiled = None  # the differences still come from the documents; derived ones are unknown
    changes = derived_changes(compiled, base_compiled)
    differences = [c for c in overlay_differences(compiled.documents, compiled.overlay_changes, base)
                   if c.mode not in ("patched", "replaced") or c.fields or (c.kind, c.name) in changes]
    spec = _manifest_spec(path) if Path(path).is_dir() else {}
    uses = [u for u in spec.get("uses") or [] if isinstance(u, str)]
    hidden, unused = _in_use(compiled, changes, root_base_path(path) if Path(path).is_dir() else None, uses)
    glossary = dict(CORE_GLOSSARY)
    for section in registry.report_sections.values():
        glossary.update(section.glossary)
    try:
        package = version("regelwerk")
    except PackageNotFoundError:
        package = "?"
    standard_version = (f"regelwerk {package}, inhoud {base_compiled.version}" if base_compiled is not None
                        else f"regelwerk {package}, inhoud {compiled.version}")
    data = ReportData(
        compiled=compiled, today=today, differences=differences, changes=changes,
        extends=base is not None, base_name="de standaard" if base is not None else "",
        customer=str(spec.get("customer") or ""), standard_version=standard_version, hidden=hidden, unused=unused,
        base_documents={(d.kind, d.name): to_plain(d.data) for d in (base.documents if base is not None else ())},
        effective_documents={(d.kind, d.name): to_plain(d.data) for d in compiled.documents},
        words=Words(functions=registry.function_table(), labels=_labels(compiled), glossary=glossary),
        coverage=tested,
    )
    return render_report(data, registry), compiled


def write_report(path: str | Path, out_dir: str | Path, registry: Registry, today: date,
                 scenarios: Sequence[str | Path] | ScenarioRun | None = None) -> Path:
    """Build the report (with the coverage of ``scenarios``, see :func:`build_report`) and write
    ``DIR/index.html``; returns the file.

    Atomic: the page is built first (a definition error leaves everything as it was), written into a temporary
    directory beside ``DIR`` and moved into place; a previous report is replaced whole, never left truncated.
    """
    import os
    import shutil
    import tempfile

    page, _ = build_report(path, registry, today, scenarios)
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
@click.option("--scenarios", "scenario_paths", multiple=True, type=click.Path(exists=True),
              help="Where the scenarios are whose coverage the report shows (repeatable). Default: PATH itself.")
@click.option("--no-coverage", is_flag=True, help="Do not run the scenarios; the report shows no coverage.")
@format_option()
def report_command(path: str, out_dir: str, on: date | None, scenario_paths: Sequence[str], no_coverage: bool,
                   fmt: str) -> None:
    """Write a static HTML report of a bundle's effective configuration for the customer's sign-off.

    The bundle's scenarios (the scenario files under PATH, or under --scenarios) are run first, and the report
    shows per section what they tested; --no-coverage skips that.
    """
    from regelwerk.cli import echo_json, fail, registry
    from regelwerk.diagnostics import DefinitionError, format_diagnostics

    if not no_coverage:  # a broken bundle is reported as such, before any scenario runs against it
        from regelwerk.bundle import load_bundle
        from regelwerk.compiler import compile_bundle

        try:
            compile_bundle(load_bundle(path), registry())
        except DefinitionError as exc:
            click.echo(format_diagnostics(exc.diagnostics), err=True)
            sys.exit(1)
    tested = None if no_coverage else run_scenarios(list(scenario_paths or [path]), registry())
    if tested is not None and tested.failed:
        click.echo(f"warning: {len(tested.failed)} of {len(tested.scenarios)} scenarios failed "
                   f"({', '.join(tested.failed)}); the report says so", err=True)
    try:
        written = write_report(path, out_dir, registry(), on or date.today(), tested)
    except DefinitionError as exc:
        click.echo(format_diagnostics(exc.diagnostics), err=True)
        sys.exit(1)
    except OSError as exc:
        fail(f"cannot write the report to {out_dir}: {exc}", 2)
    if fmt == "json":
        echo_json({"report": str(written),
                   "scenarios": None if tested is None else {"run": len(tested.scenarios),
                                                             "failed": list(tested.failed)}})
    else:
        click.echo(f"wrote {written}")


def register(registry: Registry, plugin: str) -> None:
    """Add the ``report`` command to the CLI and the core's report sections."""
    from regelwerk.report import sections

    registry.add_command(report_command)
    sections.register(registry, plugin)
