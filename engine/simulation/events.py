"""The core's story events (employees, consent links, any workflow) and the outbox's summary section.

Registered through the same extension points as a plugin's (``StoryEventSpec``, ``SimulationPartSpec``);
each event is ``run(sim, args) -> (text, detail)`` on a :class:`~regelwerk.simulation.context.SimulationContext`.
Importing this module is light: the runtime is imported when an event runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from regelwerk.errors import UsageError
from regelwerk.registry import Registry, SimulationPartSpec, StoryEventSpec
from regelwerk.simulation.story import ACTOR_SCHEMA, DATE_SCHEMA, ID_SCHEMA, LIST_SCHEMA

if TYPE_CHECKING:
    from regelwerk.simulation.context import SimulationContext

__all__ = ["fire", "hire", "leave", "link", "register", "start", "unlink", "update_employee"]

Result = tuple[str, dict[str, Any]]

_EMPLOYEE: dict[str, Any] = {
    "id": ID_SCHEMA, "name": {"type": "string"}, "hire_date": DATE_SCHEMA,
    "leaving_date": {"anyOf": [DATE_SCHEMA, {"type": "null"}]}, "function": {"type": ["string", "null"]},
    "department": {"type": ["string", "null"]}, "manager": {"type": ["string", "integer", "null"]},
    "roles": LIST_SCHEMA, "groups": LIST_SCHEMA, "attributes": {"type": "object"},
}


def _object(properties: Mapping[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": dict(properties),
            "required": list(required)}


def _employee(sim: SimulationContext, a: Mapping[str, Any], hire: bool) -> Result:
    from regelwerk.simulation.context import IMPORT_ACTOR_ID

    ident = str(a["id"])
    current = sim.directory.get(ident)
    if hire and current is not None:
        raise UsageError(f"employee {ident!r} already exists", hint="use update_employee")
    if not hire and current is None:
        raise UsageError(f"no employee {ident!r}")
    record = {**(current.to_dict() if current is not None else {}), **a}
    if hire and not record.get("hire_date"):
        record["hire_date"] = sim.day.isoformat()
    sim.directory.upsert([record], sim.now)
    sim.forget_actor(ident)
    new_manager = record.get("manager")
    old_manager = current.manager if current is not None else None
    if sim.relations is not None and new_manager != old_manager:
        if old_manager:
            sim.relations.unrelate("reports_to", ident, old_manager, at=sim.now, by=IMPORT_ACTOR_ID)
        if new_manager:
            sim.relations.relate("reports_to", ident, str(new_manager), by=IMPORT_ACTOR_ID, now=sim.now)
    changed = sorted(k for k in a if k != "id")
    text = f"hired {ident}" + (f" ({a['name']})" if a.get("name") else "") if hire else \
        f"{ident} updated: {', '.join(changed)}"
    return text, {"employee": ident}


def hire(sim: SimulationContext, args: Mapping[str, Any]) -> Result:
    """A new employee (``EmployeeDirectory.upsert``); refused when the id exists."""
    return _employee(sim, args, hire=True)


def update_employee(sim: SimulationContext, args: Mapping[str, Any]) -> Result:
    """Change an employee's facts; a new manager also moves the ``reports_to`` fact."""
    return _employee(sim, args, hire=False)


def leave(sim: SimulationContext, args: Mapping[str, Any]) -> Result:
    """Set an employee's leaving date (the next tick cancels what no longer applies)."""
    who = str(args["employee"])
    facts = sim.directory.get(who)
    if facts is None:
        raise UsageError(f"no employee {who!r}")
    leaving = args.get("date") or sim.day.isoformat()
    sim.directory.upsert([{**facts.to_dict(), "leaving_date": leaving}], sim.now)
    sim.forget_actor(who)
    return f"{who} leaves on {leaving}", {"employee": who}


def _matrix(sim: SimulationContext, a: Mapping[str, Any]) -> Any:
    port = sim.permissions
    if port is None:
        raise UsageError("the simulation's permissions are not open")
    name = a.get("matrix")
    if not name:
        names = port.declaring("consent_link")
        if len(names) != 1:
            raise UsageError("name the matrix of the link (matrix: ...)",
                             hint="matrices declaring consent_link: " + (", ".join(names) or "none"))
        name = names[0]
    if name not in port.ports:
        raise UsageError(f"no PermissionMatrix {name!r}")
    return port.ports[name]


def link(sim: SimulationContext, args: Mapping[str, Any]) -> Result:
    """``MatrixPermissions.link``: the matrix decides (the actor defaults to the subject)."""
    subject, target = str(args["subject"]), str(args["object"])
    _matrix(sim, args).link(sim.actor(args.get("actor") or subject), subject, target, valid_from=args.get("from"),
                            valid_to=args.get("until"), kind=str(args.get("kind") or "consent"),
                            context={"now": sim.now})
    return (f"{subject} linked to {target}" + (f" until {args['until']}" if args.get("until") else ""),
            {"subject": subject, "object": target})


def unlink(sim: SimulationContext, args: Mapping[str, Any]) -> Result:
    """``MatrixPermissions.unlink`` (withdraw by the professional, remove by the employer)."""
    subject, target = str(args["subject"]), str(args["object"])
    ended = _matrix(sim, args).unlink(sim.actor(args.get("actor") or subject), subject, target,
                                      action=str(args.get("action") or "withdraw"),
                                      kind=str(args.get("kind") or "consent"), context={"now": sim.now})
    return f"{subject} unlinked from {target} ({len(ended)} link(s) ended)", {"subject": subject, "object": target}


def fire(sim: SimulationContext, args: Mapping[str, Any]) -> Result:
    """``Engine.fire``."""
    record = sim.engine.fire(str(args["instance"]), str(args["event"]), sim.actor(args["actor"]), args.get("data"))
    return f"{args['instance']}: {args['event']} -> {record.state}", {"instance": record.id, "state": record.state}


def start(sim: SimulationContext, args: Mapping[str, Any]) -> Result:
    """``Engine.start``."""
    record = sim.engine.start(str(args["workflow"]), args.get("data") or {}, sim.actor(args.get("actor")),
                              instance_id=str(args["id"]))
    return f"started {args['workflow']} {record.id} in {record.state}", {"instance": record.id,
                                                                          "state": record.state}


def outbox_summary(sim: SimulationContext) -> dict[str, Any]:
    """The mails in the outbox per template."""
    import sqlalchemy as sa
    from regelwerk.outbox.tables import outbox

    with sim.sa.connect() as conn:
        mails = dict(conn.execute(sa.select(outbox.c.template, sa.func.count()).group_by(outbox.c.template)).all())
    return {"mails": {"total": sum(mails.values()), "by_template": dict(sorted(mails.items()))}}


def outbox_lines(summary: Mapping[str, Any]) -> list[str]:
    """``mails in the outbox: N (template n, ...)``."""
    mails = summary["mails"]
    return [f"  mails in the outbox: {mails['total']}"
            + (" (" + ", ".join(f"{k} {v}" for k, v in mails["by_template"].items()) + ")"
               if mails["by_template"] else "")]


def register(registry: Registry, plugin: str) -> None:
    """Register the core's story events and the outbox's summary section."""
    link_props = {"subject": ID_SCHEMA, "object": ID_SCHEMA, "kind": {"type": "string"}}
    for name, run, schema, description in (
        ("hire", hire, _object(_EMPLOYEE, ("id",)),
         "A new employee (the columns of data/employees.csv); hire_date defaults to the event's day."),
        ("leave", leave, _object({"employee": ID_SCHEMA, "date": DATE_SCHEMA}, ("employee",)),
         "An employee leaves; date (the leaving date, exclusive) defaults to the event's day."),
        ("update_employee", update_employee, _object(_EMPLOYEE, ("id",)),
         "Change an employee's facts (only the fields given)."),
        ("link", link, _object({**link_props, "from": DATE_SCHEMA, "until": DATE_SCHEMA, "actor": ACTOR_SCHEMA,
                                "matrix": {"type": "string"}}, ("subject", "object")),
         "A consent link, checked by the permission matrix (the professional's initiative: the actor defaults to "
         "the subject)."),
        ("unlink", unlink, _object({**link_props, "action": {"enum": ["withdraw", "remove"]}, "actor": ACTOR_SCHEMA,
                                    "matrix": {"type": "string"}}, ("subject", "object")),
         "End a consent link (withdraw by the professional, remove by the employer)."),
        ("fire", fire, _object({"instance": ID_SCHEMA, "event": {"type": "string", "minLength": 1},
                                "actor": ACTOR_SCHEMA, "data": {"type": "object"}}, ("instance", "event", "actor")),
         "Fire any workflow event."),
        ("start", start, _object({"workflow": {"type": "string", "minLength": 1}, "id": ID_SCHEMA,
                                  "actor": ACTOR_SCHEMA, "data": {"type": "object"}}, ("workflow", "id")),
         "Start a workflow instance."),
    ):
        registry.add_story_event(StoryEventSpec(name, plugin, run, schema, description))
    registry.add_simulation_part(SimulationPartSpec("outbox", plugin, summary=outbox_summary, lines=outbox_lines,
                                                    order=300, description="mails in the outbox per template"))
