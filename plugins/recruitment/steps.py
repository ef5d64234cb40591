"""Scenario steps: open a vacancy, apply, move a candidate, expect mails in the outbox, run the retention tick.

They share the workflow steps' per-scenario ``engine`` service (a temporary SQLite store with the
scenario clock) and add a ``recruitment`` service on top of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from regelwerk.errors import RegelwerkError
from regelwerk.registry import Registry, StepSpec
from regelwerk.scenarios import ScenarioContext, StepFailure

__all__ = ["recruitment_tick", "register_steps"]


def recruitment_tick(engine: Any, compiled: Any, now: datetime) -> Any:
    """What a host's periodic tick does for recruitment: the scheduler's tick, whose tick tasks include the
    retention sweep of the settings (``RecruitmentSettings.run_tick``)."""
    from regelwerk.scheduling.tick import tick

    return tick(engine, compiled, now)


def _service(ctx: ScenarioContext) -> Any:
    def make(ctx: ScenarioContext) -> Any:
        from regelwerk.workflows.steps import get_engine
        from regelwerk_packs.recruitment.service import Recruitment

        engine = get_engine(ctx)
        engine.store.setup()
        counter = iter(range(1, 1 << 30))
        return Recruitment(engine, id_factory=lambda: f"r{next(counter)}")

    return ctx.service("recruitment", make)


def _actor(value: Any) -> Any:
    from regelwerk.actors import SYSTEM, Actor

    return SYSTEM if value is None else Actor.of(value)


def _expecting_error(args: Mapping[str, Any], run: Any) -> Any:
    wanted = args.get("expect_error")
    try:
        result = run()
    except RegelwerkError as exc:
        if wanted is None:
            raise
        if wanted not in [kind.__name__ for kind in type(exc).__mro__]:  # MoveRefused is a TransitionNotAllowed
            raise StepFailure(f"expected {wanted}, got {type(exc).__name__}: {exc}") from exc
        return None
    if wanted is not None:
        raise StepFailure(f"expected {wanted}, but it succeeded")
    return result


def step_open_vacancy(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Open a vacancy as ``as`` (a beheerder/administrator)."""
    rec = _service(ctx)
    _expecting_error(args, lambda: rec.open_vacancy(
        _actor(args.get("as")), vacancy_id=args["id"], title=args["title"], function=args["function"],
        department=args["department"], manager=args["manager"], deadline=args.get("deadline"),
        entity=args.get("entity"), workflow=args.get("workflow"), templates=args.get("templates"),
        team=args.get("team", ())))


def step_close_vacancy(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Close a vacancy as ``as`` (who may close vacancies); applications are refused afterwards."""
    rec = _service(ctx)
    _expecting_error(args, lambda: rec.close_vacancy(_actor(args.get("as")), args["id"]))


def step_apply(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """An application arrives (web form by default, or ``source: manual`` by a user)."""
    rec = _service(ctx)
    _expecting_error(args, lambda: rec.apply(
        args["vacancy"], candidate_id=args["candidate"], first_name=args["first_name"],
        last_name=args.get("last_name", ""), email=args["email"], phone=args.get("phone"),
        consent=bool(args.get("consent", False)), source=args.get("source", "web"),
        actor=_actor(args["as"]) if "as" in args else None))


def step_move_candidate(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Move a candidate to a status as ``as`` (with the move's ``input``); ``expect_failed`` lists the conditions a
    refused move names (``MoveRefused.failed``: the condition text, or ``by ...`` when the mover is no party)."""
    from regelwerk_packs.recruitment.service import MoveRefused

    rec = _service(ctx)
    failed: list[Any] = []

    def run() -> Any:
        try:
            return rec.move(_actor(args.get("as")), args["candidate"], args["to"], args.get("note"),
                            args.get("input"))
        except MoveRefused as exc:
            failed.extend(exc.failed)
            raise

    _expecting_error(args, run)
    if "expect_failed" in args:
        wanted = [item if isinstance(item, Mapping) else {"condition": item} for item in args["expect_failed"]]
        got = [{key: item[key] for key in want if key in item} for want, item in zip(wanted, failed, strict=False)]
        if len(failed) != len(wanted) or got != wanted:
            raise StepFailure(f"expected the refusal to name {wanted}, it named {failed}")


def step_set_vacancy_facts(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Set a vacancy's declared facts as ``as`` (HR: who manages the vacancy)."""
    rec = _service(ctx)
    _expecting_error(args, lambda: rec.set_vacancy_facts(_actor(args.get("as")), args["vacancy"], args["facts"]))


def step_set_candidate_facts(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Set a candidate's declared facts as ``as`` (the vacancy's team, or who may move its candidates)."""
    rec = _service(ctx)
    _expecting_error(args, lambda: rec.set_candidate_facts(_actor(args.get("as")), args["candidate"],
                                                           args["facts"]))


def step_give_consent(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """The candidate (re)consents to longer storage."""
    _service(ctx).give_consent(args["candidate"])


def step_expect_candidate(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """A candidate's status and group, or that their data is gone (``deleted: true``)."""
    from regelwerk.errors import UnknownInstance

    rec = _service(ctx)
    try:
        row = rec.candidate(args["candidate"])
    except UnknownInstance:
        row = None
    if args.get("deleted"):
        if row is not None:
            raise StepFailure(f"candidate {args['candidate']!r} still exists (status {row['status']!r})")
        return
    if row is None:
        raise StepFailure(f"candidate {args['candidate']!r} does not exist (deleted?)")
    for key, column in (("status", "status"), ("group", "status_group"), ("consent", "consent")):
        if key in args and row[column] != args[key]:
            raise StepFailure(f"expected {key} {args[key]!r}, got {row[column]!r}")
    if "facts" in args and (row.get("facts") or {}) != args["facts"]:
        raise StepFailure(f"expected facts {args['facts']!r}, got {row.get('facts')!r}")
    engine = rec.engine
    if "data" in args:
        data = engine.get(row["instance_id"]).data
        odd = {key: data.get(key, "<missing>") for key, value in args["data"].items() if data.get(key) != value}
        if odd:
            raise StepFailure(f"expected instance data {args['data']!r}, got {odd!r}")
    if "moves" in args:  # the history of its moves: {to, actor, input: {...}} (a subset of the move's input)
        rows = [h for h in engine.history(row["instance_id"]) if not h.event.startswith("$")]
        if len(rows) != len(args["moves"]):
            raise StepFailure(f"expected {len(args['moves'])} moves in the history, got "
                              f"{[(h.to_state, h.actor) for h in rows]}")
        for i, (want, entry) in enumerate(zip(args["moves"], rows, strict=True)):
            given = dict(entry.explain.get("input") or {})
            got = {"to": entry.to_state, "actor": entry.actor,
                   "input": {k: given.get(k) for k in (want.get("input") or {})}}
            if any(got[key] != value for key, value in want.items()):
                raise StepFailure(f"move {i + 1} in the history: expected {want!r}, got {got!r}")


def step_expect_mails(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """The outbox holds exactly these templates for a recipient (in order), optionally with text checks."""
    rec = _service(ctx)
    with rec.engine.store.read() as tx:
        messages = [m for m in tx.outbox() if args.get("to") is None or m.recipient == args.get("to")]
    actual = [m.template for m in messages]
    if "templates" in args and sorted(actual) != sorted(args["templates"]):
        raise StepFailure(f"expected mails {args['templates']} to {args.get('to', 'anyone')}, outbox has {actual}")
    for text in args.get("subject_contains", ()):
        if not any(text in m.subject for m in messages):
            raise StepFailure(f"no subject contains {text!r}: {[m.subject for m in messages]}")
    for text in args.get("body_contains", ()):
        if not any(text in m.body for m in messages):
            raise StepFailure(f"no body contains {text!r}")


def step_retention_tick(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Advance the clock (``by`` a duration) and run the tick with the retention sweep."""
    from regelwerk.conditions import parse_duration
    from regelwerk.workflows.steps import get_engine

    rec = _service(ctx)
    if args.get("by"):
        duration = parse_duration(str(args["by"]))
        if duration is None:
            raise StepFailure(f"{args['by']!r} is not an ISO-8601 duration")
        ctx.now = ctx.now + duration.delta()
    summary = recruitment_tick(get_engine(ctx), rec.compiled, ctx.now)
    counts: dict[str, Any] = {}
    for task_counts in summary.tasks.values():
        for key, value in task_counts.items():
            counts[key] = counts.get(key, 0) + value
    for key, actual in (("deleted", counts.get("deleted", 0)), ("renewals", counts.get("renewals_requested", 0))):
        if key in args and args[key] != actual:
            raise StepFailure(f"expected {key} {args[key]}, the sweep did {actual}")


def register_steps(registry: Registry, plugin: str) -> None:
    """Register the recruitment scenario steps."""
    text = {"type": "string"}
    actor: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "object"}]}
    error = {"type": "string", "description": "The error type the step must raise."}

    def obj(required: list[str], props: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "required": required, "additionalProperties": False, "properties": props}

    registry.add_step(StepSpec("open_vacancy", plugin, step_open_vacancy, obj(
        ["id", "title", "function", "department", "manager"],
        {"id": text, "title": text, "function": text, "department": text, "manager": text, "deadline": text,
         "entity": text, "workflow": text, "templates": {"type": "object"},
         "team": {"type": "array", "items": text}, "as": actor, "expect_error": error}),
        "open a vacancy (needs beheerder/administrator)"))
    registry.add_step(StepSpec("close_vacancy", plugin, step_close_vacancy, obj(
        ["id"], {"id": text, "as": actor, "expect_error": error}),
        "close a vacancy (needs the right to close it); a retention rule 'from: vacancy_closed' counts from now"))
    registry.add_step(StepSpec("apply", plugin, step_apply, obj(
        ["vacancy", "candidate", "first_name", "email"],
        {"vacancy": text, "candidate": text, "first_name": text, "last_name": text, "email": text, "phone": text,
         "consent": {"type": "boolean"}, "source": {"enum": ["web", "manual"]}, "as": actor,
         "expect_error": error}),
        "an application arrives (receipt confirmation goes out)"))
    registry.add_step(StepSpec("move_candidate", plugin, step_move_candidate, obj(
        ["candidate", "to"], {"candidate": text, "to": text, "as": actor, "note": text, "input": {"type": "object"},
                              "expect_error": error,
                              "expect_failed": {"type": "array", "items": {"anyOf": [text, {"type": "object"}]},
                                                "description": "what a refused move names: each failed condition "
                                                               "(its text, or {condition, result, pointer})"}}),
        "move a candidate to another status (with the move's input)"))
    facts = {"type": "object", "description": "fact name -> value (null removes it)"}
    registry.add_step(StepSpec("set_vacancy_facts", plugin, step_set_vacancy_facts, obj(
        ["vacancy", "facts"], {"vacancy": text, "facts": facts, "as": actor, "expect_error": error}),
        "set a vacancy's declared facts (Facts named vacancy)"))
    registry.add_step(StepSpec("set_candidate_facts", plugin, step_set_candidate_facts, obj(
        ["candidate", "facts"], {"candidate": text, "facts": facts, "as": actor, "expect_error": error}),
        "set a candidate's declared facts (Facts named candidate)"))
    registry.add_step(StepSpec("give_consent", plugin, step_give_consent, obj(["candidate"], {"candidate": text}),
                               "the candidate (re)consents to longer storage"))
    registry.add_step(StepSpec("expect_candidate", plugin, step_expect_candidate, obj(
        ["candidate"], {"candidate": text, "status": text, "group": text, "consent": {"type": "boolean"},
                        "deleted": {"type": "boolean"}, "facts": {"type": "object"}, "data": {"type": "object"},
                        "moves": {"type": "array", "items": obj(["to"], {"to": text, "actor": text,
                                                                         "input": {"type": "object"}})}}),
        "a candidate's status and group, or that the data is gone"))
    registry.add_step(StepSpec("expect_mails", plugin, step_expect_mails, obj(
        [], {"to": text, "templates": {"type": "array", "items": text},
             "subject_contains": {"type": "array", "items": text},
             "body_contains": {"type": "array", "items": text}}),
        "the outbox holds these mails"))
    registry.add_step(StepSpec("retention_tick", plugin, step_retention_tick, obj(
        [], {"by": {"$ref": "common.json#/$defs/duration"}, "deleted": {"type": "integer"},
             "renewals": {"type": "integer"}}),
        "advance the clock and run the tick with the AVG retention sweep"))
