"""The talent pack (AFAS Profit Talentmanagement made declarative).

Kinds: WorkYearCalendar, TalentCompetency, TalentCompetencyProfile, TalentRole,
DevelopmentCycle (an item source for the scheduler's tick), FeedbackRound, TalentMatrix.
Steps: talent_changes, apply_competencies, apply_timing, request_feedback, place_in_matrix, moment_states.
Commands: ``regelwerk talent ...``.
See docs/packs/talent.md.
"""

from __future__ import annotations

import json
from typing import Any

from regelwerk.registry import IdDecl, KindSpec, RefDecl, Registry, StepSpec
from regelwerk.scenarios import ScenarioContext, StepFailure

__all__ = ["TalentPlugin", "plugin"]


def step_talent_changes(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Expect the unprocessed changes: ``{expect: [{cycle, work_year, role, trajectories?, added?, removed?}]}``."""
    from regelwerk.scheduling.kind import scenario_target
    from regelwerk_packs.talent.changes import pending_changes

    actual = [c.to_dict() for c in pending_changes(scenario_target(ctx), ctx.compiled)]
    expected = args.get("expect", [])
    problems = []
    for want in expected:
        match = [a for a in actual if all(a.get(k) == v for k, v in want.items())]
        if not match:
            problems.append(f"no pending change like {want}")
    if len(actual) != len(expected):
        problems.append(f"expected {len(expected)} pending change(s), found {len(actual)}")
    if problems:
        raise StepFailure("; ".join(problems) + f"\nfound: {json.dumps(actual)}")


def step_apply_competencies(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """'Bijwerken competenties': apply a work year's pending changes: ``{cycle, work_year, role?, expect?}``."""
    from regelwerk.actors import SYSTEM, Actor
    from regelwerk.scheduling.kind import scenario_target
    from regelwerk_packs.talent.changes import apply_changes

    actor = Actor.of(args["actor"]) if "actor" in args else SYSTEM
    count = apply_changes(scenario_target(ctx), ctx.compiled, args["cycle"], str(args["work_year"]),
                          args.get("role"), actor, ctx.now)
    if "expect" in args and count != args["expect"]:
        raise StepFailure(f"expected {args['expect']} trajectories updated, got {count}")


def step_apply_timing(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Apply changed lead times to a running work year: ``{cycle, work_year, expect?}``."""
    from regelwerk.actors import SYSTEM, Actor
    from regelwerk.scheduling.kind import scenario_target
    from regelwerk_packs.talent.changes import apply_timing

    actor = Actor.of(args["actor"]) if "actor" in args else SYSTEM
    count = apply_timing(scenario_target(ctx), ctx.compiled, args["cycle"], str(args["work_year"]), actor, ctx.now)
    if "expect" in args and count != args["expect"]:
        raise StepFailure(f"expected {args['expect']} trajectories updated, got {count}")


def step_request_feedback(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """An on-demand feedback request: ``{cycle, round, employee, invitees, expect_refused?}``."""
    from regelwerk.actors import SYSTEM, Actor
    from regelwerk.scheduling.kind import scenario_target, sync_employees
    from regelwerk_packs.talent.feedback import FeedbackRefused, request_feedback

    actor = Actor.of(args["actor"]) if "actor" in args else SYSTEM
    target = scenario_target(ctx)
    sync_employees(ctx, target)
    try:
        keys = request_feedback(target, ctx.compiled, args["cycle"], args["round"], str(args["employee"]),
                                [str(i) for i in args["invitees"]], ctx.now, actor)
    except FeedbackRefused as exc:
        if "expect_refused" in args:
            if args["expect_refused"] not in exc.reason:
                raise StepFailure(f"refused for another reason: {exc.reason}") from None
            return
        raise StepFailure(str(exc)) from None
    if "expect_refused" in args:
        raise StepFailure(f"expected a refusal ({args['expect_refused']}), got {keys}")


def step_place_in_matrix(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Place an appraisal in the organisation's talent matrix: ``{performance, potential, expect}``."""
    matrices = ctx.compiled.of_kind("TalentMatrix")
    if len(matrices) != 1:
        raise StepFailure(f"expected one TalentMatrix in the bundle, found {len(matrices)}")
    matrix = next(iter(matrices.values()))
    try:
        placement = matrix.place(args["performance"], args["potential"])
    except ValueError as exc:
        if "expect_error" in args:
            return
        raise StepFailure(str(exc)) from None
    if "expect_error" in args:
        raise StepFailure(f"expected an error, got {placement.profile}")
    if placement.profile != args.get("expect", placement.profile):
        raise StepFailure(f"expected profile {args['expect']!r}, got {placement.profile!r} "
                          f"({placement.performance} x {placement.potential})")


def step_moment_states(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Where stored moments stand on a day: ``{at?: date or date-time (default the scenario's now),
    expect: {key: open|late|done|waiting|cancelled|closed|skipped|absent}}``."""
    from zoneinfo import ZoneInfo

    from regelwerk.scheduling.kind import local_moment, scenario_target
    from regelwerk_packs.talent.progress import moment_states

    moment = local_moment(args["at"]) if "at" in args else ctx.now
    day = moment.astimezone(ZoneInfo("Europe/Amsterdam")).date()
    wanted = {str(k): str(v) for k, v in args["expect"].items()}
    found = {s.key: s for s in moment_states(scenario_target(ctx), ctx.compiled, day, list(wanted))}
    problems = []
    for key, state in wanted.items():
        actual = found[key].state if key in found else "absent"
        if actual != state:
            window = f" (open {found[key].appears} to {found[key].due})" if key in found else ""
            problems.append(f"{key} on {day.isoformat()}: expected {state}, found {actual}{window}")
    if problems:
        raise StepFailure("; ".join(problems))


def _commands() -> list[Any]:
    import click
    from regelwerk.cli import echo_json, format_option

    @click.group("talent")
    def talent() -> None:
        """Talent management: unprocessed changes, 'Bijwerken competenties', the matrix, roles from functions."""

    @talent.command("changes")
    @click.argument("path", type=click.Path(exists=True))
    @click.option("--store", "store_url", required=True)
    @click.option("--cycle", default=None)
    @click.option("--work-year", default=None)
    @format_option()
    def changes(path: str, store_url: str, cycle: str | None, work_year: str | None, fmt: str) -> None:
        """Show unprocessed competency changes per cycle and work year (exit 1 when there are any)."""
        from regelwerk.cli import load_compiled
        from regelwerk.store.sql import create_sa_engine
        from regelwerk_packs.talent.changes import pending_changes

        sa_engine = create_sa_engine(store_url)
        try:
            found = pending_changes(sa_engine, load_compiled(path), cycle, work_year)
        finally:
            sa_engine.dispose()
        if fmt == "json":
            echo_json([c.to_dict() for c in found])
            raise SystemExit(1 if found else 0)
        for c in found:
            if c.change == "timing":
                moved = ", ".join(f"{m} {a} -> {b}" for m, a, b in c.timing)
                click.echo(f"{c.cycle} {c.work_year} {c.role}: {c.trajectories} trajectory(ies) on old lead times; "
                           f"{moved} (apply with --timing)")
                continue
            click.echo(f"{c.cycle} {c.work_year} {c.role}: {c.trajectories} trajectory(ies) behind; "
                       f"added {', '.join(c.added) or '-'}; removed {', '.join(c.removed) or '-'}")
        if not found:
            click.echo("no unprocessed changes")
        raise SystemExit(1 if found else 0)

    @talent.command("apply")
    @click.argument("path", type=click.Path(exists=True))
    @click.option("--store", "store_url", required=True)
    @click.option("--cycle", required=True)
    @click.option("--work-year", required=True)
    @click.option("--role", default=None)
    @click.option("--actor", default="admin", show_default=True, help="Who applies (audited).")
    @click.option("--timing", is_flag=True, help="Apply changed lead times (appears_before) instead of competencies.")
    @format_option()
    def apply(path: str, store_url: str, cycle: str, work_year: str, role: str | None, actor: str,
              timing: bool, fmt: str) -> None:
        """'Bijwerken competenties': apply the changes to the work year's trajectories now."""
        from regelwerk.actors import Actor
        from regelwerk.cli import load_compiled
        from regelwerk.store.sql import create_sa_engine
        from regelwerk_packs.talent.changes import apply_changes, apply_timing

        sa_engine = create_sa_engine(store_url)
        try:
            if timing:
                count = apply_timing(sa_engine, load_compiled(path), cycle, work_year, Actor.of(actor))
            else:
                count = apply_changes(sa_engine, load_compiled(path), cycle, work_year, role, Actor.of(actor))
        finally:
            sa_engine.dispose()
        if fmt == "json":
            echo_json({"updated": count})
            return
        click.echo(f"{count} trajectory(ies) updated")

    @talent.command("moments")
    @click.argument("path", type=click.Path(exists=True))
    @click.option("--store", "store_url", required=True)
    @click.option("--at", "at", default=None, help="The day (ISO date; default today).")
    @click.option("--cycle", default=None)
    @click.option("--state", "states", multiple=True, help="Only moments in this state (late, open, ...); repeatable.")
    @format_option()
    def moments(path: str, store_url: str, at: str | None, cycle: str | None, states: tuple[str, ...],
                fmt: str) -> None:
        """Stored conversation moments and where they stand on a day: open (in their window), late, done."""
        from datetime import date, datetime
        from zoneinfo import ZoneInfo

        from regelwerk.cli import EXIT_USAGE, fail, load_compiled
        from regelwerk.store.sql import create_sa_engine
        from regelwerk_packs.talent.progress import moment_states

        try:
            day = date.fromisoformat(at) if at else datetime.now(ZoneInfo("Europe/Amsterdam")).date()
        except ValueError:
            fail(f"--at {at!r} is not a date (YYYY-MM-DD)", EXIT_USAGE)
        sa_engine = create_sa_engine(store_url)
        try:
            found = [s for s in moment_states(sa_engine, load_compiled(path), day, cycle=cycle)
                     if not states or s.state in states]
        finally:
            sa_engine.dispose()
        if fmt == "json":
            echo_json([s.to_dict() for s in found])
            return
        for s in found:
            click.echo(f"{s.state:9} {s.appears} .. {s.due}  {s.key}")
        if not found:
            click.echo("no moments")

    @talent.command("place")
    @click.argument("path", type=click.Path(exists=True))
    @click.option("--performance", required=True)
    @click.option("--potential", required=True)
    @format_option(default="json")
    def place(path: str, performance: str, potential: str, fmt: str) -> None:
        """Place an appraisal (levels or 1-5 scores) in the organisation's talent matrix."""
        from regelwerk.cli import load_compiled

        matrices = load_compiled(path).of_kind("TalentMatrix")
        if len(matrices) != 1:
            raise click.UsageError(f"the bundle holds {len(matrices)} TalentMatrix documents; one is needed")

        def value(text: str) -> Any:
            try:
                return float(text)
            except ValueError:
                return text

        try:
            placement = next(iter(matrices.values())).place(value(performance), value(potential))
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        if fmt == "json":
            click.echo(json.dumps(placement.to_dict(), ensure_ascii=False))
            return
        click.echo(f"{placement.profile} ({placement.performance} x {placement.potential})")

    @talent.command("roles")
    @click.option("--store", "store_url", required=True)
    @click.option("--profile", default=None, help="Link every generated role to this competency profile.")
    @click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True,
                  help="Output: YAML documents (a definition file) or JSON.")
    def roles(store_url: str, profile: str | None, fmt: str) -> None:
        """Print TalentRole documents generated from the employees' functions (origin: function)."""
        import sqlalchemy as sa
        import yaml
        from regelwerk.scheduling.tables import employees
        from regelwerk.store.sql import create_sa_engine

        sa_engine = create_sa_engine(store_url)
        try:
            with sa_engine.connect() as conn:
                functions = sorted(f for (f,) in conn.execute(sa.select(employees.c.function).distinct()) if f)
        finally:
            sa_engine.dispose()
        docs = []
        for function in functions:
            name = "".join(ch if ch.isalnum() else "-" for ch in function.lower()).strip("-") or "role"
            spec: dict[str, Any] = {"label": function, "origin": "function", "functions": [function]}
            spec.update({"profile": profile} if profile else {"competencies": []})
            docs.append({"apiVersion": "regelwerk/v1", "kind": "TalentRole",
                         "metadata": {"name": f"function-{name}"}, "spec": spec})
        if fmt == "json":
            echo_json(docs)
            return
        click.echo(yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True), nl=False)

    return [talent]


def _register_facts(registry: Registry, plugin: str) -> None:
    """The work year and the places of a DevelopmentCycle that read facts (checked at compile time)."""
    from regelwerk.registry import FactSpec, PlaceSpec

    day = {"type": "string", "format": "date"}
    registry.add_fact(FactSpec("work_year", plugin, {
        "type": "object", "required": ["start", "middle", "end"], "additionalProperties": False,
        "description": "A work year of the cycle's calendar (calendar or school year).",
        "properties": {"start": {**day, "description": "its first day"}, "middle": {**day, "description": "its middle"},
                       "end": {**day, "description": "its last day"}}}, "a work year of a WorkYearCalendar"))
    registry.add_fact(FactSpec("trajectory", plugin, {
        "type": "object", "additionalProperties": False,
        "description": "A trajectory: one employee's development in one role and one work year of a cycle.",
        "required": ["employee", "role", "work_year", "cycle", "title", "competencies", "opened"],
        "properties": {
            "employee": {"type": "string", "description": "the employee's id"},
            "manager": {"type": "string", "description": "the manager's employee id"},
            "role": {"type": "string", "description": "the TalentRole"},
            "work_year": {"type": "string", "description": "the work year's id (e.g. 2026 or 2026-2027)"},
            "cycle": {"type": "string", "description": "the DevelopmentCycle"},
            "title": {"type": "string"},
            "profile": {"type": "string", "description": "the competency profile of the role"},
            "competencies": {"type": "array", "items": {"type": "string"}},
            "opened": {**day, "description": "its first day (year start, hire date or role date)"},
            "timing": {"type": "object", "description": "each moment's lead time as ISO text (open)"}}},
        "a trajectory of the talent pack (DevelopmentCycle)"))
    employee = {"$fact": "employee"}
    whole = {"type": "integer"}
    registry.add_place(PlaceSpec("DevelopmentCycle", "/spec/moments/*/when", plugin, {
        "type": "object", "additionalProperties": False, "required": ["employee", "work_year", "moment", "employment"],
        "properties": {
            "employee": employee, "work_year": {"$fact": "work_year"},
            "moment": {"type": "object", "additionalProperties": False, "required": ["id", "due_date"],
                       "properties": {"id": {"type": "string"}, "due_date": {**day, "description": "its due date"}}},
            "employment": {
                "type": "object", "additionalProperties": False,
                "required": ["days_in_work_year", "months_in_work_year", "months_of_service", "employed_on_due_date"],
                "properties": {
                    "days_in_work_year": {**whole, "description": "employed days of the work year up to the due date"},
                    "months_in_work_year": {**whole, "description": "whole months of it up to the due date"},
                    "months_of_service": {**whole, "description": "whole months since the hire date"},
                    "employed_on_due_date": {"type": "boolean"}}}}},
        "whether a moment arises for an employee (checked for its due date)"))
    registry.add_place(PlaceSpec("DevelopmentCycle", "/spec/when", plugin, {
        "type": "object", "additionalProperties": False, "required": ["employee"],
        "properties": {"employee": employee}}, "which employees the cycle follows"))
    registry.add_place(PlaceSpec("DevelopmentCycle", "/spec/moments/*/arises/anchor", plugin, {
        "type": "object", "additionalProperties": False, "required": ["employee", "work_year"],
        "properties": {"employee": employee, "work_year": {"$fact": "work_year"}}},
        "the date a conversation moment counts from", form="path", want="date"))
    for bound in ("from", "until"):
        registry.add_place(PlaceSpec("DevelopmentCycle", f"/spec/moments/*/window/{bound}/anchor", plugin, {
            "type": "object", "additionalProperties": False, "required": ["employee", "work_year"],
            "properties": {"employee": employee, "work_year": {"$fact": "work_year"}}},
            f"the date a conversation moment's window {'opens' if bound == 'from' else 'ends'} counts from",
            form="path", want="date"))


class TalentPlugin:
    """Registers the talent kinds, steps and commands."""

    name = "talent"

    def register(self, registry: Registry) -> None:
        """Add the kinds (schemas from schemas/v1), scenario steps and the ``talent`` command group."""
        from regelwerk.registry import DigestSourceSpec, lazy
        from regelwerk.validation import load_shipped_schema
        from regelwerk_packs.talent import kinds, report, simulation
        from regelwerk_packs.talent.digest import FIELDS as TALENT_DIGEST_FIELDS
        from regelwerk_packs.talent.digest import PARAMS_SCHEMA as TALENT_DIGEST_PARAMS
        from regelwerk_packs.talent.progress import MOMENT_STATES

        report.register(registry, self.name)
        simulation.register(registry, self.name)
        registry.add_digest_source(DigestSourceSpec(
            "talent.conversations", self.name, lazy("regelwerk_packs.talent.digest:conversations"),
            fields=TALENT_DIGEST_FIELDS, params_schema=TALENT_DIGEST_PARAMS,
            description="development conversations not yet held that are due within `within` (P14D) or overdue"))

        def spec(kind: str, compile_fn: Any, description: str, ids: tuple[IdDecl, ...] = (),
                 refs: tuple[RefDecl, ...] = ()) -> KindSpec:
            return KindSpec(kind=kind, plugin=self.name, schema=load_shipped_schema(f"{kind.lower()}.json"),
                            compile=compile_fn, ids=ids, refs=refs, description=description)

        registry.add_kind(spec("WorkYearCalendar", kinds.compile_calendar,
                               "the period table: work years as calendar or school years"))
        registry.add_kind(spec("TalentCompetency", kinds.compile_competency,
                               "a competency with an explanation per score (1-5 stars), optional ESCO URI"))
        registry.add_kind(spec("TalentCompetencyProfile", kinds.compile_profile, "competencies bundled for roles",
                               refs=(RefDecl("/spec/competencies", kind="TalentCompetency"),)))
        registry.add_kind(spec("TalentRole", kinds.compile_role,
                               "a role (from functions or by hand), blockable, with a profile or competencies",
                               refs=(RefDecl("/spec/profile", kind="TalentCompetencyProfile"),
                                     RefDecl("/spec/competencies", kind="TalentCompetency"))))
        registry.add_kind(spec("FeedbackRound", kinds.compile_feedback_round,
                               "a 360-degree feedback round (before a moment, continuous, fixed)",
                               ids=(IdDecl("/spec/questions/*/id", "question"),)))
        _register_facts(registry, self.name)
        registry.add_kind(spec("DevelopmentCycle", kinds.compile_cycle,
                               "a development cycle: trajectories per work year and role, conversation moments",
                               ids=(IdDecl("/spec/moments/*/id", "moment"),),
                               refs=(RefDecl("/spec/calendar", kind="WorkYearCalendar"),
                                     RefDecl("/spec/roles", kind="TalentRole"),
                                     RefDecl("/spec/work_years/*/roles", kind="TalentRole"),
                                     RefDecl("/spec/feedback_rounds", kind="FeedbackRound"),
                                     RefDecl("/spec/moments/*/feedback_round", kind="FeedbackRound"))))
        registry.add_kind(spec("TalentMatrix", kinds.compile_matrix,
                               "the organisation's talent matrix: HR3P or 9-GRID with its cell-to-profile mapping",
                               ids=(IdDecl("/spec/profiles/*/id", "profile"), IdDecl("/spec/performance/*/id", "level"),
                                    IdDecl("/spec/potential/*/id", "level"))))
        registry.add_step(StepSpec("talent_changes", self.name, step_talent_changes, {
            "type": "object", "additionalProperties": False,
            "properties": {"expect": {"type": "array", "items": {"type": "object"}}},
        }, "expect the unprocessed competency changes per cycle, work year and role"))
        registry.add_step(StepSpec("apply_competencies", self.name, step_apply_competencies, {
            "type": "object", "required": ["cycle", "work_year"], "additionalProperties": False,
            "properties": {"cycle": {"type": "string"}, "work_year": {"type": ["string", "integer"]},
                           "role": {"type": "string"}, "actor": {}, "expect": {"type": "integer"}},
        }, "'Bijwerken competenties': apply pending changes to a work year"))
        registry.add_step(StepSpec("apply_timing", self.name, step_apply_timing, {
            "type": "object", "required": ["cycle", "work_year"], "additionalProperties": False,
            "properties": {"cycle": {"type": "string"}, "work_year": {"type": ["string", "integer"]},
                           "actor": {}, "expect": {"type": "integer"}},
        }, "apply changed lead times (appears_before) to a running work year"))
        registry.add_step(StepSpec("request_feedback", self.name, step_request_feedback, {
            "type": "object", "required": ["cycle", "round", "employee", "invitees"], "additionalProperties": False,
            "properties": {"cycle": {"type": "string"}, "round": {"type": "string"},
                           "employee": {"type": ["string", "integer"]},
                           "invitees": {"type": "array", "items": {"type": ["string", "integer"]}},
                           "actor": {}, "expect_refused": {"type": "string"}},
        }, "request feedback on demand (a continuous round); refused outside employment"))
        registry.add_step(StepSpec("moment_states", self.name, step_moment_states, {
            "type": "object", "required": ["expect"], "additionalProperties": False,
            "properties": {"at": {"type": "string"},
                           "expect": {"type": "object", "additionalProperties": {"enum": ["absent", *MOMENT_STATES]}}},
        }, "where stored conversation moments stand on a day: open (in their window), late, done"))
        registry.add_step(StepSpec("place_in_matrix", self.name, step_place_in_matrix, {
            "type": "object", "required": ["performance", "potential"], "additionalProperties": False,
            "properties": {"performance": {"type": ["string", "number"]}, "potential": {"type": ["string", "number"]},
                           "expect": {"type": "string"}, "expect_error": {"type": "boolean"}},
        }, "place an appraisal in the talent matrix"))
        for command in _commands():
            registry.add_command(command)


plugin = TalentPlugin()
