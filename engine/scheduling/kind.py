"""Registration of the scheduler: the ``Schedule`` kind, the scenario steps and the CLI commands."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from regelwerk.registry import KindSpec, RefDecl, Registry, StepSpec
from regelwerk.scenarios import ScenarioContext, StepFailure, parse_moment
from regelwerk.source import SourceDocument

__all__ = ["compile_schedule_document", "local_moment", "register", "scenario_target", "sync_employees"]


def compile_schedule_document(ctx: Any, doc: SourceDocument) -> Any:
    """A named ``Schedule`` document; with ``when:`` a plan that makes items arise (``regelwerk.scheduling.plans``)."""
    from regelwerk.scheduling.schedule import compile_schedule

    if "when" in doc.spec:
        from regelwerk.compiler import content_hash
        from regelwerk.scheduling.plans import compile_plan

        return compile_plan(ctx, doc.spec, doc.name, content_hash(doc.spec))
    return compile_schedule(doc.spec, "/spec", ctx.report)


# --- scenario steps --------------------------------------------------------------------------


def _plain_store(ctx: ScenarioContext) -> Any:
    import sqlalchemy as sa
    from regelwerk.scheduling.employees import EmployeeDirectory

    workdir = Path(tempfile.mkdtemp(prefix="regelwerk-schedule-"))
    sa_engine = sa.create_engine(f"sqlite:///{workdir / 'schedule.sqlite'}")
    EmployeeDirectory(sa_engine).setup()

    def cleanup() -> None:
        sa_engine.dispose()
        shutil.rmtree(workdir, ignore_errors=True)

    ctx.cleanups.append(cleanup)
    return sa_engine


def scenario_target(ctx: ScenarioContext) -> Any:
    """What the scenario ticks: the workflow ``engine`` service when workflows are installed, else a SQLite file."""
    if "Workflow" in ctx.registry.kinds:
        from regelwerk.workflows.steps import get_engine

        return get_engine(ctx)
    return ctx.service("schedule_store", _plain_store)


def _sa_engine(target: Any) -> Any:
    from regelwerk.scheduling.tick import resolve_target

    return resolve_target(target).sa_engine


def sync_employees(ctx: ScenarioContext, target: Any) -> None:
    """Store the scenario fact ``employees`` (a list of records); only changed records are written."""
    from regelwerk.scheduling.employees import EmployeeDirectory

    seen: dict[str, str] = ctx.services.setdefault("schedule_employee_hashes", {})
    changed = []
    for record in ctx.facts.get("employees") or []:
        digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
        if seen.get(str(record.get("id"))) != digest:
            changed.append(record)
            seen[str(record.get("id"))] = digest
    if changed:
        EmployeeDirectory(_sa_engine(target)).upsert(changed, ctx.now)


def _items(target: Any, keys: list[str] | None = None) -> dict[str, dict[str, Any]]:
    from regelwerk.scheduling.tables import scheduled_items as items
    from sqlalchemy import select

    query = select(items.c.key, items.c.status, items.c.item_type, items.c.due_at, items.c.instance_id)
    if keys is not None:
        query = query.where(items.c.key.in_(keys))
    with _sa_engine(target).connect() as conn:
        return {r.key: dict(r._mapping) for r in conn.execute(query)}


def _check_keys(what: str, expected: list[str], actual: list[str], exactly: bool) -> list[str]:
    problems = []
    missing = [k for k in expected if k not in actual]
    if missing:
        problems.append(f"expected {what} but not: {', '.join(missing)}")
    if exactly:
        extra = sorted(set(actual) - set(expected))
        if extra:
            problems.append(f"{what} but not expected: {', '.join(extra[:20])}" + (" ..." if len(extra) > 20 else ""))
    return problems


def step_tick(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Move the clock to ``at`` and tick; compare what was created/started with the expectations."""
    from regelwerk.scheduling.tick import tick

    if "at" in args:
        ctx.now = local_moment(args["at"])
    target = scenario_target(ctx)
    sync_employees(ctx, target)
    summary = tick(target, ctx.compiled, ctx.now, collect_keys=True)
    ctx.services["last_tick"] = summary
    problems: list[str] = []
    exactly = bool(args.get("exactly", False))
    if "created" in args:
        problems += _check_keys("created", list(args["created"]), summary.created_keys, exactly)
    if "activated" in args:
        problems += _check_keys("activated", list(args["activated"]), summary.activated_keys, exactly)
    for key, wanted in (args.get("counts") or {}).items():
        actual = {"cancelled": summary.cancelled, "closed": summary.closed, "skipped": summary.skipped,
                  "reinstated": summary.reinstated,
                  "created": summary.total_created}.get(key, summary.created.get(key, summary.activated.get(key, 0)))
        if actual != wanted:
            problems.append(f"expected {wanted} {key}, got {actual}")
    for key, status in (args.get("status") or {}).items():
        found = _items(target, [key]).get(key)
        if found is None or found["status"] != status:
            problems.append(f"expected {key} {status}, found {found['status'] if found else 'nothing'}")
    if problems:
        raise StepFailure("; ".join(problems) + "\n" + "\n".join(summary.lines()))


def step_preview(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Preview items due in ``[from, to)`` for the scenario's employees (nothing stored); compare keys and dates."""
    from regelwerk.scheduling.preview import preview

    employees: Any = ctx.facts.get("employees") or []
    if ctx.services.get("schedule_imported"):
        # employees imported from a file (step import_employees) are previewed as stored, facts on top
        from regelwerk.scheduling.employees import EmployeeDirectory, parse_employee

        stored = {e.id: e for e in EmployeeDirectory(_sa_engine(scenario_target(ctx))).iter_all()}
        stored.update({(p := parse_employee(r)).id: p for r in employees})
        employees = list(stored.values())
    rows = preview(ctx.compiled, employees, local_moment(args["from"]), local_moment(args["to"]))
    by_key = {r.key: r for r in rows}
    problems = []
    for want in args.get("expect", []):
        row = by_key.get(want["key"])
        if row is None:
            problems.append(f"{want['key']} does not arise")
            continue
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(want.get("timezone", "Europe/Amsterdam"))
        for field_name, moment, verb in (("date", row.due_at, "arises"), ("due", row.due, "is due")):
            if field_name in want:
                day = moment.astimezone(tz).date().isoformat()
                if day != want[field_name]:
                    problems.append(f"{want['key']} {verb} on {day}, expected {want[field_name]}")
    for key in args.get("absent", []):
        if key in by_key:
            problems.append(f"{key} arises on {by_key[key].due_at.isoformat()}, expected it not to")
    if "count" in args and len(rows) != args["count"]:
        problems.append(f"expected {args['count']} item(s), previewed {len(rows)}")
    if problems:
        raise StepFailure("; ".join(problems) + "\npreviewed:\n" + "\n".join(
            f"  {r.due_at.isoformat()} (due {r.due.date().isoformat()}) {r.key}" for r in rows[:60]))


def step_start_item(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Start a ready (manual-start) item by hand: ``{key, actor?}``."""
    from regelwerk.actors import SYSTEM, Actor
    from regelwerk.scheduling.tick import start_item

    actor = Actor.of(args["actor"]) if "actor" in args else SYSTEM
    start_item(scenario_target(ctx), args["key"], ctx.now, actor)


def step_expect_items(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Compare stored items: ``{key: status}`` or ``{key: status/workflow state}``; ``absent``: no such item."""
    target = scenario_target(ctx)
    found = _items(target, list(args))
    problems = []
    for key, wanted in args.items():
        status, _, state = str(wanted).partition("/")
        item = found.get(key, {})
        actual = item.get("status", "absent")
        if state and item.get("instance_id") and hasattr(target, "get"):
            actual += "/" + target.get(item["instance_id"]).state
        if actual != (f"{status}/{state}" if state else status):
            problems.append(f"{key}: expected {wanted}, found {actual}")
    if problems:
        raise StepFailure("; ".join(problems))


def step_import_employees(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Import a CSV/XLSX file of employees (relative to the scenario) into the scenario's store:
    ``{file, expect?: count, expect_errors?: [text], absent?: keep|end|report, expect_absent?: [id]}`` (all rows
    or none, as ``regelwerk import employees``)."""
    from regelwerk.imports.specs import import_spec
    from regelwerk.scheduling.employees import EmployeeDirectory, import_employees

    path = ctx.resolve(str(args["file"]))
    if not path.is_relative_to(ctx.file.parent.resolve().parent):
        raise StepFailure(f"{args['file']}: only files beside the scenario's folder can be imported")
    result = import_employees(EmployeeDirectory(_sa_engine(scenario_target(ctx))), path, ctx.now,
                              import_spec("employees", ctx.compiled), absent=str(args.get("absent", "keep")),
                              timezone=getattr(ctx.compiled, "timezone", None))
    ctx.services["schedule_imported"] = True
    errors = [str(e) for e in result.errors]
    wanted = list(args.get("expect_errors") or [])
    missing = [w for w in wanted if not any(w in e for e in errors)]
    if missing or (errors and not wanted):
        raise StepFailure(f"import errors {errors}, expected {wanted}")
    if "expect" in args and result.imported != args["expect"]:
        raise StepFailure(f"expected {args['expect']} employee(s) imported, got {result.imported}")
    if "expect_absent" in args:
        found = sorted(a.id for a in result.absent)
        if found != sorted(str(i) for i in args["expect_absent"]):
            raise StepFailure(f"absent: expected {sorted(args['expect_absent'])}, found {found}")


def step_use_bundle(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Switch the scenario to another bundle (relative path): definitions change, the stored work stays."""
    ctx.bundle_path = ctx.resolve(str(args))
    ctx._compiled = None
    _ = ctx.compiled


# --- CLI -----------------------------------------------------------------------------------------


def local_moment(value: Any, timezone: str = "Europe/Amsterdam") -> datetime:
    """A scenario/CLI moment; a plain date means local midnight in ``timezone`` (not UTC)."""
    if isinstance(value, str) and len(value.strip()) == 10:
        from datetime import date, time
        from zoneinfo import ZoneInfo

        day = date.fromisoformat(value.strip())
        return datetime.combine(day, time(0, 0), tzinfo=ZoneInfo(timezone)).astimezone(UTC)
    return parse_moment(value)


def _moment(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return local_moment(value)


def _commands() -> list[Any]:
    import click
    from regelwerk.cli import ISO_DATE, ISO_MOMENT, format_option

    @click.command("tick")
    @click.argument("path", type=click.Path(exists=True))
    @click.option("--store", "store_url", required=True, help="Database URL (sqlite:///file, postgresql+psycopg://...).")
    @click.option("--at", "at", default=None, type=ISO_MOMENT,
                  help="The moment to tick at (ISO date or date-time; default now).")
    @click.option("--batch", default=500, show_default=True, help="Employees/items per transaction.")
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
    @click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
    @click.option("--plugin-time-limit", "plugin_time_limit", default=None, type=click.FloatRange(min=0, min_open=True),
                  help="Seconds one call of plugin code (action, guard, tick task, item source) may run before it "
                       "is failed as its work's incident (default: no limit).")
    def tick_command(path: str, store_url: str, at: str | None, batch: int, fmt: str, quiet: bool,
                     plugin_time_limit: float | None) -> None:
        """Generate what the schedules call for, start what is due and fire due workflow timers."""
        from regelwerk.cli import load_compiled
        from regelwerk.scheduling.tick import tick

        compiled = load_compiled(path)
        try:
            now = _moment(at)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None

        def progress(phase: str, done: int, total: int) -> None:
            if not quiet:
                click.echo(f"{phase}: {done}/{total}", err=True)

        target: Any
        if compiled.of_kind("Workflow"):
            from regelwerk.runtime import Engine

            target = Engine(compiled, store=store_url, clock=lambda: now, plugin_time_limit=plugin_time_limit)
        else:
            from regelwerk.store.sql import SqlStore

            target = SqlStore(store_url)
        try:
            summary = tick(target, compiled, now, progress=progress, batch_size=batch)
        finally:
            target.close()
        if fmt == "json":
            click.echo(json.dumps(summary.as_dict(), indent=2))
        else:
            click.echo("\n".join(summary.lines()))

    @click.group("schedule")
    def schedule_group() -> None:
        """Schedules: preview what would arise when."""

    @schedule_group.command("preview")
    @click.argument("path", type=click.Path(exists=True))
    @click.option("--from", "start", required=True, type=ISO_DATE, help="First day (ISO date).")
    @click.option("--to", "end", required=True, type=ISO_DATE, help="Last day, inclusive (ISO date).")
    @click.option("--facts", "facts_file", type=click.Path(exists=True, dir_okay=False), default=None,
                  help="YAML/JSON file with `employees: [...]`.")
    @click.option("--store", "store_url", default=None, help="Read the employees from this store instead.")
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
    def preview_command(path: str, start: date, end: date, facts_file: str | None, store_url: str | None,
                        fmt: str) -> None:
        """What would arise from --from to --to, both days included (writing nothing)."""
        from regelwerk.cli import load_compiled
        from regelwerk.scheduling.preview import preview, preview_schedules

        if end < start:
            raise click.UsageError(f"--to {end} is before --from {start}")
        compiled = load_compiled(path)
        try:  # --to is inclusive, as everywhere in the CLI: the window ends at the start of the next day
            begin, finish = local_moment(start.isoformat()), local_moment((end + timedelta(days=1)).isoformat())
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        employees: Any = []
        if facts_file:
            employees = _read_facts(facts_file).get("employees") or []
        elif store_url:
            from regelwerk.scheduling.employees import EmployeeDirectory
            from regelwerk.store.sql import create_sa_engine

            employees = EmployeeDirectory(create_sa_engine(store_url)).iter_all()
        try:
            rows = preview(compiled, employees, begin, finish)
        except ValueError as exc:
            raise click.UsageError(f"facts: {exc}") from None
        named = preview_schedules(compiled, begin, finish)
        if fmt == "json":
            click.echo(json.dumps({"items": [r.to_dict() for r in rows],
                                   "schedules": [{"schedule": n, "at": m.isoformat()} for n, m in named]}, indent=2))
            return
        from zoneinfo import ZoneInfo

        tz = ZoneInfo("Europe/Amsterdam")
        for row in rows:
            click.echo(f"{row.due_at.astimezone(tz):%Y-%m-%d %H:%M}  due {row.due.astimezone(tz):%Y-%m-%d}  "
                       f"{row.item_type:<16} {row.subject:<10} {row.label}  [{row.start_mode}] {row.key}")
        for name, moment in named:
            click.echo(f"{moment.astimezone(tz):%Y-%m-%d %H:%M}                  schedule         {name}")
        click.echo(f"{len(rows)} item(s), {len(named)} schedule occurrence(s)", err=True)

    @click.group("import")
    def import_group() -> None:
        """Import data into a store."""

    @import_group.command("employees")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--store", "store_url", required=True, help="Database URL.")
    @click.option("--bundle", "bundle_path", type=click.Path(exists=True), default=None,
                  help="The customer's bundle (its `Import employees` declares extra attributes).")
    @click.option("--absent", type=click.Choice(["keep", "end", "report"]), default="keep", show_default=True,
                  help="Stored employees the file does not have: keep them, report them, or end their "
                       "employment (and imported relations) as of the import date; nothing is deleted.")
    @click.option("--at", default=None, type=ISO_MOMENT,
                  help="The moment of the import (default now): its date is the date --absent end ends on.")
    @format_option()
    def import_command(file: str, store_url: str, bundle_path: str | None, absent: str, at: str | None,
                       fmt: str) -> None:
        """Import employees from CSV or XLSX (all rows or none; errors by row number). An import adds and
        updates; whoever the file leaves out stays, unless --absent says otherwise."""
        from regelwerk.imports.specs import import_spec
        from regelwerk.scheduling.employees import EmployeeDirectory, import_employees
        from regelwerk.store.sql import create_sa_engine

        spec = None
        timezone = None
        if bundle_path:
            from regelwerk.cli import load_compiled

            compiled = load_compiled(bundle_path)
            spec = import_spec("employees", compiled)
            timezone = compiled.timezone
        sa_engine = create_sa_engine(store_url)  # SQLite: explicit BEGIN, so the absent check and writes are one unit
        try:
            directory = EmployeeDirectory(sa_engine)
            directory.setup()
            result = import_employees(directory, file, _moment(at), spec=spec, absent=absent, timezone=timezone)
        finally:
            sa_engine.dispose()
        if fmt == "json":
            click.echo(json.dumps({"file": file, "imported": result.imported if result.ok else 0,
                                   "errors": [str(e) for e in result.errors],
                                   "absent": [a.to_dict() for a in result.absent]}, indent=2, ensure_ascii=False))
            raise SystemExit(0 if result.ok else 1)
        if not result.ok:
            for error in result.errors:
                click.echo(f"{file}: {error}", err=True)
            click.echo(f"{file}: nothing imported ({len(result.errors)} error(s))", err=True)
            raise SystemExit(1)
        for item in result.absent:
            click.echo(f"{file}: {item}")
        click.echo(f"{file}: {result.imported} employee(s) imported"
                   + (f"; {len(result.absent)} absent from the file" if result.absent else ""))

    return [tick_command, schedule_group, import_group]


def _read_facts(path: str) -> Mapping[str, Any]:
    from regelwerk.source import load_text, read_source, to_plain

    text, problems = read_source(path, path)
    if text is None:
        raise SystemExit(f"error: cannot read {path}: {problems[0].message if problems else ''}")
    docs, problems = load_text(text, path)
    if problems or not docs:
        raise SystemExit(f"error: {path}: " + "; ".join(p.message for p in problems) if problems else "empty")
    data: Mapping[str, Any] = to_plain(docs[0].data)
    return data


def register(registry: Registry, plugin: str) -> None:
    """Add the Schedule kind, the scheduler's scenario steps and its commands."""
    from regelwerk.validation import load_shipped_schema

    registry.add_kind(KindSpec(
        kind="Schedule", plugin=plugin, schema=load_shipped_schema("schedule.json"),
        compile=compile_schedule_document, schema_file="schedule.json",
        refs=(RefDecl("/spec/start/workflow", kind="Workflow", what="workflow"),),
        description="a named schedule (cron, relative date or fixed dates); the fragment other kinds $ref",
    ))
    keys = {"type": "array", "items": {"type": "string"}}
    registry.add_step(StepSpec("tick", plugin, step_tick, {
        "type": "object", "additionalProperties": False,
        "properties": {
            "at": {"$ref": "common.json#/$defs/dateTime", "description": "Move the clock here first."},
            "created": {**keys, "description": "Keys this tick must create."},
            "activated": {**keys, "description": "Keys this tick must activate (start, ready, active)."},
            "exactly": {"type": "boolean", "description": "Nothing else may be created/activated."},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"},
                       "description": "Created per item type (trajectory, moment, feedback_request), activated "
                                      "per status (started, ready, active), or cancelled/skipped/reinstated/created."},
            "status": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }, "tick the scheduler at a moment; expect items created, activated, cancelled (by key)"))
    registry.add_step(StepSpec("preview", plugin, step_preview, {
        "type": "object", "required": ["from", "to"], "additionalProperties": False,
        "properties": {
            "from": {"$ref": "common.json#/$defs/dateTime"}, "to": {"$ref": "common.json#/$defs/dateTime"},
            "count": {"type": "integer"}, "absent": keys,
            "expect": {"type": "array", "items": {
                "type": "object", "required": ["key"], "additionalProperties": False,
                "properties": {"key": {"type": "string"},
                               "date": {"$ref": "common.json#/$defs/date", "description": "The day it appears."},
                               "due": {"$ref": "common.json#/$defs/date", "description": "The day it is due."},
                               "timezone": {"type": "string"}}}},
        },
    }, "preview what would arise in a window (nothing stored)"))
    registry.add_step(StepSpec("start_item", plugin, step_start_item, {
        "type": "object", "required": ["key"], "additionalProperties": False,
        "properties": {"key": {"type": "string"}, "actor": {}},
    }, "start a manual-start item by hand"))
    registry.add_step(StepSpec("expect_items", plugin, step_expect_items, {
        "type": "object", "additionalProperties": {"type": "string"},
    }, "expect stored scheduled items in a status (or absent)"))
    registry.add_step(StepSpec("import_employees", plugin, step_import_employees, {
        "type": "object", "required": ["file"], "additionalProperties": False,
        "properties": {"file": {"type": "string"}, "expect": {"type": "integer"},
                       "expect_errors": {"type": "array", "items": {"type": "string"}},
                       "absent": {"enum": ["keep", "end", "report"],
                                  "description": "What happens to stored employees the file does not have."},
                       "expect_absent": {"type": "array", "items": {"type": "string"}}},
    }, "import employees from a CSV/XLSX file into the scenario's store"))
    registry.add_step(StepSpec("use_bundle", plugin, step_use_bundle, {"type": "string"},
                               "switch to another bundle (a definition change between ticks)"))
    for command in _commands():
        registry.add_command(command)
