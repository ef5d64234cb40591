"""The ``Workflow`` kind: schema, declared ids/references, compiler and validation diagnostics.

Diagnostic codes (documented in docs/kinds/workflow.md):

- RW501 error: no initial state, or more than one.
- RW502 error: ``data_schema`` is not a valid JSON Schema.
- RW503 error: a state's timeout names an event that cannot fire from that state.
- RW511 warning: a state cannot be reached from the initial state.
- RW512 warning: a state that is not final has no way out.
- RW513 warning: an event can never fire (all its source states are unreachable, or its guard is ``false``).
- RW514 error: two transitions for the same event leave the same state with overlapping guards
  (the later one would never fire).
- RW515 warning: a transition leaves a final state.
- RW516 warning: a timer's event (``after``, or set by the ``workflow.schedule`` action) that a person could
  fire too: neither a ``permission`` nor ``system_only``.
- RW518 warning: a ``system_fields`` or ``fixed_fields`` entry the ``data_schema`` does not declare (a typo protects
  nothing), or a field in both lists.
- RW519 warning: a transition any person could fire: neither a ``permission`` nor ``system_only``, and its guard
  does not say who acts (no comparison of ``actor`` that every way to pass it needs).
- RW801-RW804 error: an inline schedule of the ``workflow.schedule`` action that does not compile (a time of day
  that is not HH:MM, a duration that is not ISO 8601), as in a ``Schedule``.
- RW301 / RW503 error, also for the ``workflow.schedule`` action: the event it sets a timer for does not exist, or
  cannot fire from the state the timer waits in (the state whose ``on_enter`` sets it, the state a transition
  whose ``actions`` set it enters).
- RW521 error: a ``permission`` or ``start_permission`` that is no action of the workflow's ``resource_type`` in
  the bundle's permission matrices that declare that resource (deny by default: nobody could ever do it); warning:
  a ``resource_type`` that no matrix of a bundle with matrices declares.
- RW522 (at the matrix rule) error for a deny, warning for a grant: a rule on the workflow's resource type whose
  scope reads a field of the resource (the subject for ``own``, ``direct_reports``, ``all_reports``, ``consent``;
  ``department`` or the subject for ``department``; the ``department`` field for ``represented``; ``of``) that
  the workflow's ``data_schema`` does not declare: the scope never holds on its instances, so a deny never applies
  (the "no self-approval" deny let an HR employee approve the own case) and a grant never allows.
- RW524 (at the matrix grant) warning: a grant on the workflow's resource type that names one of its permissions
  (or its start permission) only for ``field_groups``: the runtime asks for a start or a fire without a field group,
  so the grant never allows it (a team lead's ``invite`` granted with ``field_groups: [dossier]``).
- RW525 error: the transitions of one event declare different ``input`` (what a person's event data may carry is
  checked per event, before a transition is chosen); RW518 also for an ``input`` field the ``data_schema`` does not
  declare, or one that is a system or fixed field.
- RW520 error: a timer that re-arms itself at the same moment: its event leads back into the state whose entry
  sets it again, for a one-off moment (``anchor`` without ``repeat``) that has passed by then, so it would fire
  again at once, forever (the tick never ends). An internal event (``internal: true``) does not enter the state
  again, so a timer set in the state's ``on_enter`` is no loop; one the internal transition's own actions set again
  is.
- RW523 error: an internal transition whose ``to`` is not the state it stays in (``to`` is left out; written, it
  must be the transition's only source state).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from regelwerk.compiler import CompileContext
from regelwerk.conditions import AllOf, AnyOf, Call, Compare, Condition, Const, Node, parse_duration, reads_actor
from regelwerk.diagnostics import Severity, did_you_mean
from regelwerk.registry import IdDecl, KindSpec, RefDecl, Registry
from regelwerk.source import SourceDocument, to_plain
from regelwerk.workflows.model import ActionRef, RetrySpec, State, TimerSpec, Transition, Workflow

__all__ = ["KIND", "compile_workflow", "kind_spec", "register"]

KIND = "Workflow"


def kind_spec(plugin: str) -> KindSpec:
    """The KindSpec of ``Workflow`` (schema ``schemas/v1/workflow.json``)."""
    from regelwerk.validation import load_shipped_schema

    return KindSpec(
        kind=KIND,
        plugin=plugin,
        schema=load_shipped_schema("workflow.json"),
        compile=compile_workflow,
        ids=(IdDecl("/spec/states/*/id", "state"),),
        refs=(
            RefDecl("/spec/transitions/*/from", target="/spec/states/*/id", allow=("*",), what="state"),
            RefDecl("/spec/transitions/*/to", target="/spec/states/*/id", what="state"),
            RefDecl("/spec/states/*/after/*/event", target="/spec/transitions/*/id", what="event"),
        ),
        description="a state machine with guards, permissions, actions and timeouts",
        schema_file="workflow.json",
    )


def _actions(ctx: CompileContext, items: Any, pointer: str) -> tuple[ActionRef, ...]:
    out = []
    for i, item in enumerate(items or ()):
        if isinstance(item, str):
            ctx.check_action(item, f"{pointer}/{i}", {}, f"{pointer}/{i}")
            out.append(ActionRef(item))
        else:
            ctx.check_action(item["action"], f"{pointer}/{i}/action", item.get("with") or {}, f"{pointer}/{i}/with")
            out.append(ActionRef(str(item["action"]), to_plain(item.get("with") or {})))
    return tuple(out)


def _always_true(guard: Condition | None) -> bool:
    if guard is None:
        return True
    model = guard.model
    return (isinstance(model, Const) and model.value) or (isinstance(model, AllOf) and not model.items)


def _always_false(guard: Condition | None) -> bool:
    return guard is not None and isinstance(guard.model, Const) and not guard.model.value


_SIMPLE_TYPES = frozenset({"array", "boolean", "integer", "null", "number", "object", "string"})
_TEXT_KEYWORDS = frozenset({"format", "title", "description"})
#: the action that sets a timer from a Schedule (regelwerk.workflows.actions): its events are timer events (RW516)
SCHEDULE_ACTION = "workflow.schedule"
_BOUNDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
_COUNTS = frozenset({"minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"})


def _plainly_valid(schema: Any, depth: int = 0) -> bool:
    """True when a data_schema uses only plain keywords with well-formed values, so it is valid against the
    2020-12 metaschema without building that validator (a few ms per workflow); anything else (and every
    invalid schema) is left to the full metaschema check, which names the problem."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict) or depth > 32:
        return False
    for key, value in schema.items():
        if key == "type":
            names = [value] if isinstance(value, str) else value
            ok = (isinstance(names, list) and bool(names) and all(isinstance(n, str) and n in _SIMPLE_TYPES
                                                                  for n in names) and len(set(names)) == len(names))
        elif key == "properties":
            ok = isinstance(value, dict) and all(isinstance(k, str) and _plainly_valid(v, depth + 1)
                                                 for k, v in value.items())
        elif key in ("items", "additionalProperties"):
            ok = _plainly_valid(value, depth + 1)
        elif key == "required":
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value) and len(set(value)) == len(value)
        elif key == "enum":
            ok = isinstance(value, list)
        elif key in _TEXT_KEYWORDS:
            ok = isinstance(value, str)
        elif key in _BOUNDS:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif key in _COUNTS:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        else:
            ok = key in ("default", "const")
        if not ok:
            return False
    return True


def compile_workflow(ctx: CompileContext, doc: SourceDocument) -> Workflow | None:
    """Compile a Workflow document (schema, ids and references were checked by the core)."""
    spec = doc.spec
    states: list[State] = []
    for i, raw in enumerate(spec["states"]):
        pointer = f"/spec/states/{i}"
        timers = []
        for j, timer in enumerate(raw.get("after") or ()):
            duration = parse_duration(timer["duration"])
            if duration is None:  # not ISO-8601 (the schema pattern rejects that too), or longer than 100 years
                ctx.report("RW402", f"{timer['duration']!r} is not an ISO-8601 duration of at most 100 years",
                           f"{pointer}/after/{j}")
                continue
            timers.append(TimerSpec(duration, str(timer["event"]), to_plain(timer.get("data") or {})))
        states.append(State(
            id=str(raw["id"]), label=str(raw.get("label") or raw["id"]), group=str(raw.get("group", "")),
            tags=tuple(str(t) for t in raw.get("tags") or ()), initial=bool(raw.get("initial", False)),
            final=bool(raw.get("final", False)), archive=bool(raw.get("archive", False)),
            on_enter=_actions(ctx, raw.get("on_enter"), f"{pointer}/on_enter"),
            on_exit=_actions(ctx, raw.get("on_exit"), f"{pointer}/on_exit"),
            after=tuple(timers),
        ))
    known = {s.id for s in states}
    non_final = tuple(s.id for s in states if not s.final)
    pointer_of_state = {str(raw["id"]): f"/spec/states/{i}" for i, raw in enumerate(spec["states"])}

    initials = [s for s in states if s.initial]
    if len(initials) != 1:
        where = "/spec/states" if not initials else f"{pointer_of_state[initials[1].id]}/initial"
        ctx.report("RW501", "a workflow needs exactly one initial state"
                   + (f" (found {', '.join(s.id for s in initials)})" if initials else " (none is marked)"),
                   where, hint="mark one state with 'initial: true'")
        return None

    transitions: list[Transition] = []
    for i, raw in enumerate(spec["transitions"]):
        pointer = f"/spec/transitions/{i}"
        source = raw["from"]
        sources = non_final if source == "*" else tuple(str(s) for s in ([source] if isinstance(source, str)
                                                                           else source))
        sources = tuple(s for s in dict.fromkeys(sources) if s in known)
        internal = raw.get("internal") is True
        if internal:
            dest = ""
            if "to" in raw:  # written, it must be where the instance stays: its one source state
                _check_internal_to(ctx, raw, sources, pointer)
            if not sources:
                continue  # the core reported the dangling reference (RW301)
        else:
            if "to" not in raw:
                continue  # the schema reported the missing 'to'
            dest = str(raw["to"])
            if dest not in known or not sources:
                continue  # the core reported the dangling reference (RW301)
        guard = ctx.condition(raw["guard"], f"{pointer}/guard") if "guard" in raw else None
        transitions.append(Transition(
            index=len(transitions), event=str(raw["id"]), sources=sources, dest=dest,
            label=str(raw.get("label") or raw["id"]), guard=guard, permission=str(raw.get("permission", "")),
            actions=_actions(ctx, raw.get("actions"), f"{pointer}/actions"), pointer=pointer,
            guard_source=to_plain(raw["guard"]) if "guard" in raw else None,
            system_only=bool(raw.get("system_only", False)), internal=internal,
            input=tuple(str(f) for f in raw["input"]) if isinstance(raw.get("input"), list) else None,
        ))

    data_schema = to_plain(spec["data_schema"]) if "data_schema" in spec else None
    if data_schema is not None and not _plainly_valid(data_schema):
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(data_schema)
        except SchemaError as exc:
            inner = "".join(f"/{p}" for p in exc.absolute_path)
            ctx.report("RW502", f"data_schema is not a valid JSON Schema: {exc.message[:160]}",
                       f"/spec/data_schema{inner}")

    system_fields = tuple(str(f) for f in spec.get("system_fields") or ())
    fixed_fields = tuple(str(f) for f in spec.get("fixed_fields") or ())
    declared = data_schema.get("properties") if isinstance(data_schema, Mapping) else None
    if isinstance(declared, Mapping):
        for key, names, what in (("system_fields", system_fields, "system field"),
                                 ("fixed_fields", fixed_fields, "fixed field")):
            for i, name in enumerate(names):
                if name not in declared:
                    ctx.warn("RW518", f"{what} {name!r} is not a property of the data_schema", f"/spec/{key}/{i}",
                             hint=did_you_mean(name, [str(k) for k in declared])
                             or "declare it under data_schema.properties")
    _check_inputs(ctx, spec, declared if isinstance(declared, Mapping) else None, system_fields, fixed_fields)
    for i, name in enumerate(fixed_fields):
        if name in system_fields:
            ctx.warn("RW518", f"{name!r} is a system field and a fixed field: as a system field no person gives it, "
                              "not even at the start", f"/spec/fixed_fields/{i}",
                     hint="keep it in one of the two lists")

    groups = tuple((str(g["id"]), str(g.get("label") or g["id"])) for g in spec.get("groups") or ())
    if groups:
        known_groups = {g for g, _ in groups}
        for i, raw in enumerate(spec["states"]):
            if raw.get("group") and raw["group"] not in known_groups:
                ctx.report("RW301", f"group {raw['group']!r} does not exist", f"/spec/states/{i}/group",
                           hint=did_you_mean(str(raw["group"]), known_groups) or
                           "known groups: " + ", ".join(sorted(known_groups)))
    model = Workflow(
        name=doc.name, label=str(spec.get("label") or doc.name), initial=initials[0].id, states=tuple(states),
        transitions=tuple(transitions), resource_type=str(spec.get("resource_type") or doc.name),
        data_schema=data_schema, description=str(spec.get("description", "")), groups=groups,
        start_permission=str(spec.get("start_permission") or ""), retry=_retry(ctx, spec.get("retry")),
        system_fields=system_fields, fixed_fields=fixed_fields,
    )
    _check_graph(ctx, model, pointer_of_state)
    _check_scheduled_events(ctx, model, spec)
    _check_permissions(ctx, model, spec)
    return model


def _check_internal_to(ctx: CompileContext, raw: Mapping[str, Any], sources: tuple[str, ...], pointer: str) -> None:
    """RW523: an internal transition stays in the state it fires from; a ``to`` is then at most that state again."""
    dest = str(raw["to"])
    others = [s for s in sources if s != dest]
    if not others:
        return
    where = ", ".join(repr(s) for s in others)
    ctx.report("RW523", f"internal transition {raw['id']!r} stays in the state it fires from, but its 'to' names "
                        f"{dest!r} and it fires from {where}", f"{pointer}/to",
               hint=f"leave 'to' out (internal: the instance stays in whichever state it is in), or drop "
                    f"'internal: true' to move it to {dest!r} (leaving the state, cancelling its timers)")


#: the resource fields a scope reads: the person (``of``, else the subject) and the resource's department field
_SCOPE_READS: dict[str, tuple[bool, bool]] = {
    "own": (True, False), "direct_reports": (True, False), "all_reports": (True, False), "consent": (True, False),
    "department": (True, True), "represented": (False, True)}


def _check_scope_fields(ctx: CompileContext, model: Workflow, spec: Mapping[str, Any],
                        matrices: list[SourceDocument]) -> None:
    """RW522: the rules on the workflow's resource type read fields its instance data has (see the module)."""
    schema = spec.get("data_schema")
    declared = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(declared, Mapping):
        return  # no declared fields: nothing to check against
    rtype = model.resource_type
    for doc in matrices:
        resource = next((r for r in doc.spec["resources"] if isinstance(r, Mapping) and r.get("id") == rtype), None)
        if resource is None:
            continue
        subject = str(resource.get("subject", "subject"))
        department = str(resource.get("department", "department"))
        rules: list[tuple[Any, str]] = []
        for section in ("grants", "denies"):
            rules.extend((rule, f"/spec/{section}/{i}") for i, rule in enumerate(doc.spec.get(section) or ()))
        for i, right in enumerate(doc.spec.get("rights") or ()):
            if isinstance(right, Mapping):
                rules.extend((rule, f"/spec/rights/{i}/grants/{j}") for j, rule in enumerate(right.get("grants") or ()))
        for rule, pointer in rules:
            if not isinstance(rule, Mapping) or rule.get("resource") != rtype:
                continue
            scope = str(rule.get("scope", "organisation"))
            if scope not in _SCOPE_READS:
                continue
            person, unit = _SCOPE_READS[scope]
            of = rule.get("of")
            wanted = ([str(of)] if of else [subject] if person else []) + ([department] if unit and not of else [])
            if not wanted or any(name in declared for name in wanted):
                continue
            deny = pointer.startswith("/spec/denies/")
            ctx.report("RW522", f"{'deny' if deny else 'grant'} {rule.get('id')!r} (scope {scope}) reads "
                                f"{' or '.join(repr(n) for n in wanted)} of resource {rtype!r}, which the data_schema "
                                f"of workflow {model.name!r} does not declare: "
                                + ("this deny never applies to its instances" if deny
                                   else "this grant never allows on its instances"),
                       f"{pointer}/scope" if "scope" in rule else pointer,
                       hint=did_you_mean(wanted[0], [str(k) for k in declared])
                       or f"name the field in the resource ({'of' if of else 'subject/department'}: <field>) or "
                          f"declare it in the data_schema of {model.name!r}",
                       severity=Severity.ERROR if deny else Severity.WARNING, doc=doc)


def _check_inputs(ctx: CompileContext, spec: Mapping[str, Any], declared: Mapping[str, Any] | None,
                  system_fields: tuple[str, ...], fixed_fields: tuple[str, ...]) -> None:
    """RW525: every transition of an event declares the same ``input`` (or none does); RW518: an ``input`` field the
    data_schema does not declare, or one no person may give anyway (a system or fixed field)."""
    first: dict[str, tuple[Any, str]] = {}
    for i, raw in enumerate(spec.get("transitions") or ()):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str):
            continue
        pointer = f"/spec/transitions/{i}"
        given = tuple(str(f) for f in raw["input"]) if isinstance(raw.get("input"), list) else None
        seen = first.setdefault(raw["id"], (given, pointer))
        if seen[1] != pointer and (None if seen[0] is None else sorted(seen[0])) != (
                None if given is None else sorted(given)):
            ctx.report("RW525", f"event {raw['id']!r} declares another input here than at {seen[1]} "
                                f"({'none' if seen[0] is None else list(seen[0])}): what a person's data may carry "
                                "is decided per event, before the transition is chosen",
                       f"{pointer}/input" if "input" in raw else f"{pointer}/id",
                       hint="give every transition of the event the same 'input' (or none)")
        for j, name in enumerate(given or ()):
            where = f"{pointer}/input/{j}"
            if declared is not None and name not in declared:
                ctx.warn("RW518", f"input field {name!r} is not a property of the data_schema", where,
                         hint=did_you_mean(name, [str(k) for k in declared])
                         or "declare it under data_schema.properties")
            elif name in system_fields or name in fixed_fields:
                ctx.warn("RW518", f"input field {name!r} is a {'system' if name in system_fields else 'fixed'} field: "
                                  "no person's event data may name it anyway", where,
                         hint="leave it out of 'input'")


def _check_field_group_grants(ctx: CompileContext, model: Workflow, matrices: list[SourceDocument],
                              asked: set[str]) -> None:
    """RW524: a grant on the workflow's resource type that names one of its permissions but only for
    ``field_groups``: a start or a fire asks without a field group, so the grant never allows it."""
    rtype = model.resource_type
    for doc in matrices:
        rules: list[tuple[Any, str]] = [(rule, f"/spec/grants/{i}")
                                        for i, rule in enumerate(doc.spec.get("grants") or ())]
        for i, right in enumerate(doc.spec.get("rights") or ()):
            if isinstance(right, Mapping):
                rules.extend((rule, f"/spec/rights/{i}/grants/{j}") for j, rule in enumerate(right.get("grants") or ()))
        for rule, pointer in rules:
            if not isinstance(rule, Mapping) or rule.get("resource") != rtype or not rule.get("field_groups"):
                continue
            named = [str(a) for a in rule.get("actions") or () if a in asked]
            if not named:
                continue
            ctx.report("RW524", f"grant {rule.get('id')!r} gives {', '.join(repr(a) for a in named)} on "
                                f"{rtype!r} only for field groups ({', '.join(map(str, rule['field_groups']))}), but "
                                f"workflow {model.name!r} asks for {'it' if len(named) == 1 else 'them'} without a "
                                "field group: this grant never allows a start or a fire",
                       f"{pointer}/field_groups",
                       hint="give the workflow's actions in a grant without field_groups, and keep field_groups for "
                            "what is read per part (read)", severity=Severity.WARNING, doc=doc)


def _check_permissions(ctx: CompileContext, model: Workflow, spec: Mapping[str, Any]) -> None:
    """RW521: the permissions the workflow asks for are actions of its resource type in the bundle's matrices.

    The runtime asks the permission port for ``(resource_type, permission)``; a matrix denies an action its
    resource does not have, so a typo in either is a transition (or a start) nobody can ever do. Checked only
    against the ``PermissionMatrix`` documents of the bundle; a bundle without matrices (permissions from the
    host) is not checked."""
    matrices = [d for d in ctx.documents("PermissionMatrix") if isinstance(d.spec.get("resources"), list)]
    if not matrices:
        return
    actions: dict[str, set[str]] = {}
    for doc in matrices:
        for resource in doc.spec["resources"]:
            if isinstance(resource, Mapping) and isinstance(resource.get("id"), str):
                actions.setdefault(resource["id"], set()).update(
                    str(a) for a in resource.get("actions") or () if isinstance(a, str))
    rtype = model.resource_type
    names = ", ".join(sorted(d.name for d in matrices))
    if rtype not in actions:
        where = "/spec/resource_type" if "resource_type" in spec else "/metadata/name"
        ctx.warn("RW521", f"resource type {rtype!r} is no resource of the bundle's permission matrices ({names}): "
                          "they deny every permission of this workflow", where,
                 hint=did_you_mean(rtype, sorted(actions))
                 or f"declare a resource {rtype!r} with the workflow's permissions as its actions in a matrix, "
                    "or set resource_type")
        return
    _check_scope_fields(ctx, model, spec, matrices)
    known = actions[rtype]
    asked = [(t.permission, f"{t.pointer}/permission") for t in model.transitions if t.permission]
    if model.start_permission:
        asked.insert(0, (model.start_permission, "/spec/start_permission"))
    _check_field_group_grants(ctx, model, matrices, {p for p, _ in asked})
    for permission, pointer in asked:
        if permission not in known:
            ctx.report("RW521", f"permission {permission!r} is no action of resource {rtype!r} in the permission "
                                f"matrices ({names}): nobody could ever be allowed it", pointer,
                       hint=did_you_mean(permission, sorted(known))
                       or f"actions of {rtype!r}: " + ", ".join(sorted(known)))


def _scheduled(raw_actions: Any, pointer: str) -> list[tuple[str, str, Any]]:
    """``(pointer, event, schedule)`` of each ``workflow.schedule`` action in ``raw_actions`` naming an event."""
    out = []
    for j, item in enumerate(raw_actions or ()):
        if not isinstance(item, Mapping) or item.get("action") != SCHEDULE_ACTION:
            continue
        params = item.get("with")
        if isinstance(params, Mapping) and isinstance(params.get("event"), str):
            out.append((f"{pointer}/{j}/with", str(params["event"]), params.get("schedule")))
    return out


def _one_off(ctx: CompileContext, schedule: Any) -> bool:
    """True for a schedule with one moment that, once passed, the action fires at once: an ``anchor`` without
    ``repeat`` and without ``catch_up: skip`` (inline, or a named ``Schedule`` of the bundle)."""
    if isinstance(schedule, str):
        named = [d for d in ctx.documents("Schedule") if d.name == schedule]
        schedule = named[0].spec if named else None
    return (isinstance(schedule, Mapping) and "anchor" in schedule and not schedule.get("repeat")
            and schedule.get("catch_up") != "skip")


def _check_scheduled_events(ctx: CompileContext, model: Workflow, spec: Mapping[str, Any]) -> None:
    """The events the ``workflow.schedule`` action sets timers for: they exist (RW301), can fire from the state the
    timer waits in (RW503), and do not re-arm themselves at a passed moment (RW520)."""
    known = {s.id for s in model.states}
    # (pointer, the state the timer waits in, event, schedule, re-armed by entering that state)
    places: list[tuple[str, str, str, Any, bool]] = []
    for i, raw in enumerate(spec["states"]):
        places.extend((p, str(raw["id"]), e, sch, True)
                      for p, e, sch in _scheduled(raw.get("on_enter"), f"/spec/states/{i}/on_enter"))
    compiled = {t.pointer: t for t in model.transitions}
    for i, raw in enumerate(spec["transitions"]):
        # the state the timer waits in: the one the transition enters; an internal one's each state it stays in
        found = compiled.get(f"/spec/transitions/{i}")
        waits = found.targets() if found is not None else (str(raw["to"]),) if "to" in raw else ()
        places.extend((p, state, e, sch, False) for state in waits
                      for p, e, sch in _scheduled(raw.get("actions"), f"/spec/transitions/{i}/actions"))
    armed_by = {f"/spec/transitions/{i}": {e for _, e, _ in _scheduled(raw.get("actions"), "")}
                for i, raw in enumerate(spec["transitions"])}
    from regelwerk.scheduling.schedule import compile_schedule

    for pointer, _, _, schedule, _ in places:
        if isinstance(schedule, Mapping):  # an inline schedule: its times and durations, as a Schedule's (RW801-804)
            compile_schedule(schedule, f"{pointer}/schedule", ctx.report)
    for pointer, state, event, schedule, on_entry in places:
        if state not in known:
            continue  # a dangling 'to' (RW301 at the transition)
        if event not in model.events:
            ctx.report("RW301", f"event {event!r} does not exist", f"{pointer}/event",
                       hint=did_you_mean(event, sorted(model.events))
                       or "known events: " + ", ".join(sorted(model.events)))
            continue
        leaving = model.transitions_from(state, event)
        if not leaving:
            ctx.report("RW503", f"scheduled event {event!r} cannot fire from state {state!r}, where its timer waits",
                       f"{pointer}/event", hint=f"add {state!r} to the 'from' of a transition {event!r}")
            continue
        if not _one_off(ctx, schedule):
            continue
        for t in leaving:
            if t.internal:
                # an internal event stays in the state without entering it again: no on_enter sets the timer again,
                # only the transition's own actions could (a reminder that schedules itself)
                if event in armed_by.get(t.pointer, ()):
                    ctx.report("RW520", f"timer {event!r} re-arms itself: the internal transition {event!r} sets "
                                        f"it again in {state!r} for the same moment; once that moment has passed "
                                        "it fires again at once, forever",
                               f"{pointer}/event",
                               hint=f"set the timer in the state's on_enter (an internal {event!r} does not enter "
                                    "the state again), or use a schedule with 'repeat'")
                    break
                continue
            if t.dest == state and (on_entry or event in armed_by.get(t.pointer, ())):
                ctx.report("RW520", f"timer {event!r} re-arms itself: {event!r} goes from {state!r} back into "
                                    f"{state!r}, which sets it again for the same moment; once that moment has "
                                    "passed it fires again at once, forever",
                           f"{pointer}/event",
                           hint=f"make {event!r} an internal transition ('internal: true', no 'to': the state is "
                                f"not left, its timers stay), let it go to another state (e.g. 'reminded'), or "
                                "leave the timer to 'after' or a schedule with 'repeat'")
                break


def _retry(ctx: CompileContext, raw: Any) -> RetrySpec | None:
    """``spec.retry``: the waits must be exact (weeks, days, hours...; a month or a year has no fixed length)."""
    if not isinstance(raw, Mapping) or not raw:
        return None
    waits: dict[str, timedelta | None] = {}
    for key in ("backoff", "max_backoff"):
        text = raw.get(key)
        duration = parse_duration(str(text)) if text is not None else None
        if text is None or duration is None:  # absent, or a schema error reported already
            waits[key] = None
            continue
        if duration.years or duration.months:
            ctx.report("RW517", f"retry {key} {text!r} has months or years, which have no fixed length",
                       f"/spec/retry/{key}", hint="write it in weeks, days or hours (P4W, P30D, PT6H)")
            waits[key] = None
            continue
        wait = timedelta(weeks=duration.weeks, days=duration.days, hours=duration.hours,
                         minutes=duration.minutes, seconds=duration.seconds)
        if wait <= timedelta(0):
            # no wait would retry at once, in the same run, until the attempts are used up
            ctx.report("RW517", f"retry {key} {text!r} is no wait at all", f"/spec/retry/{key}",
                       hint="a retry waits for the cause to be fixed: give a wait, e.g. PT1M")
            waits[key] = None
            continue
        waits[key] = wait
    backoff, longest = waits["backoff"], waits["max_backoff"]
    if backoff is not None and longest is not None and longest < backoff:
        ctx.report("RW517", f"retry max_backoff {raw.get('max_backoff')!r} is shorter than backoff "
                            f"{raw.get('backoff')!r}", "/spec/retry/max_backoff",
                   hint="the longest wait must be at least the first")
    attempts = raw.get("attempts")
    factor = raw.get("factor")
    return RetrySpec(int(attempts) if isinstance(attempts, int) else None, backoff,
                     float(factor) if isinstance(factor, (int, float)) else None, longest)


def _check_graph(ctx: CompileContext, model: Workflow, pointer_of_state: Mapping[str, str]) -> None:
    """Reachability, dead ends, events that never fire, overlapping guards, timer events."""
    reachable = {model.initial}
    frontier = [model.initial]
    while frontier:
        current = frontier.pop()
        targets = [t.dest for t in model.transitions
                   if current in t.sources and not t.internal and not _always_false(t.guard)]
        for dest in targets:
            if dest not in reachable:
                reachable.add(dest)
                frontier.append(dest)
    for state in model.states:
        pointer = pointer_of_state[state.id]
        if state.id not in reachable:
            ctx.warn("RW511", f"state {state.id!r} cannot be reached from the initial state {model.initial!r}",
                     f"{pointer}/id", hint="add a transition into it, or remove it")
        leaves = [t for t in model.transitions_from(state.id) if not t.internal]  # an internal one stays
        if not state.final and not leaves:
            stays = " (its internal transitions stay in it)" if model.transitions_from(state.id) else ""
            ctx.warn("RW512", f"state {state.id!r} has no way out and is not final{stays}", f"{pointer}/id",
                     hint="mark it 'final: true' or add a transition from it")
        for timer_index, timer in enumerate(state.after):
            if timer.event in model.events and not model.transitions_from(state.id, timer.event):
                ctx.report("RW503", f"timeout event {timer.event!r} cannot fire from state {state.id!r}",
                           f"{pointer}/after/{timer_index}/event",
                           hint=f"add {state.id!r} to the 'from' of a transition {timer.event!r}")
    timed = {(state.id, timer.event) for state in model.states for timer in state.after}
    # and the timers the workflow.schedule action sets: in a state's on_enter for that state, in a transition's
    # actions for the state it enters (both cancelled when that state is left)
    timed.update((state.id, str(ref.params["event"])) for state in model.states for ref in state.on_enter
                 if ref.name == SCHEDULE_ACTION and isinstance(ref.params.get("event"), str))
    timed.update((state, str(ref.params["event"])) for t in model.transitions for ref in t.actions
                 if ref.name == SCHEDULE_ACTION and isinstance(ref.params.get("event"), str) for state in t.targets())
    for t in model.transitions:
        if not t.permission and not t.system_only and any((s, t.event) in timed for s in t.sources):
            ctx.warn("RW516", f"timer event {t.event!r} can also be fired by anyone: it has no permission and "
                              "is not system_only", f"{t.pointer}/id",
                     hint="add 'system_only: true' when only the timer fires it, or a 'permission' for people")
    for t in model.transitions:
        if not t.permission and not t.system_only and not any((s, t.event) in timed for s in t.sources) \
                and not (t.guard is not None and _names_actor(t.guard.model)) and not _always_false(t.guard):
            ctx.warn("RW519", f"event {t.event!r} can be fired by any person: it has no permission, is not "
                              "system_only and its guard does not say who acts", f"{t.pointer}/id",
                     hint="add a 'permission' the matrix grants, 'system_only: true' when only the engine fires "
                          "it, or a guard on the actor (e.g. field: actor.id, eq: {field: data.subject})")
    for t in model.transitions:
        if _always_false(t.guard):
            ctx.warn("RW513", f"event {t.event!r} can never fire: its guard is always false", f"{t.pointer}/guard")
        elif not any(s in reachable for s in t.sources):
            ctx.warn("RW513", f"event {t.event!r} can never fire: none of its source states can be reached",
                     f"{t.pointer}/from")
        finals = [s for s in t.sources if model.state(s).final]
        if finals and t.pointer and not t.internal:  # an internal transition does not leave the final state
            ctx.warn("RW515", f"transition {t.event!r} leaves final state(s) {', '.join(finals)}",
                     f"{t.pointer}/from")
    seen_pairs: set[tuple[int, int]] = set()
    for state in model.states:
        for event in model.events:
            candidates = model.transitions_from(state.id, event)
            for i, first in enumerate(candidates):
                for later in candidates[i + 1:]:
                    if (first.index, later.index) in seen_pairs:
                        continue
                    same_guard = first.guard is not None and later.guard is not None and first.guard == later.guard
                    shadows = (_always_true(first.guard) or same_guard) and (
                        not first.permission or first.permission == later.permission)
                    if shadows:
                        seen_pairs.add((first.index, later.index))
                        ctx.report("RW514", f"event {event!r} from state {state.id!r} has overlapping guards: "
                                   f"the transition at {first.pointer} always wins, so this one never fires",
                                   f"{later.pointer}/id",
                                   hint="give the earlier transition a guard that excludes this one's case")


#: comparisons that narrow who passes (``ne``/``not_in`` only leave one out, ``exists`` and orders nobody)
_NARROWING = frozenset({"eq", "in", "contains", "matches"})


def _names_actor(node: Node) -> bool:
    """Whether every way to pass ``node`` compares the actor with something (``actor.id eq data.subject``, a role
    in a list, a function called with the actor): a guard that says who acts. A negation says only who does not."""
    if isinstance(node, AllOf):
        return any(_names_actor(item) for item in node.items)
    if isinstance(node, AnyOf):
        return bool(node.items) and all(_names_actor(item) for item in node.items)
    if isinstance(node, Compare):
        return node.op in _NARROWING and (reads_actor(node.left) or reads_actor(node.right))
    if isinstance(node, Call):
        return any(reads_actor(arg) for arg in node.args)
    return False


def register(registry: Registry, plugin: str) -> None:
    """Register the Workflow kind, its core actions, scenario steps and CLI commands."""
    from regelwerk.workflows import actions, commands, steps

    registry.add_kind(kind_spec(plugin))
    actions.register(registry, plugin)
    steps.register(registry, plugin)
    commands.register(registry, plugin)
