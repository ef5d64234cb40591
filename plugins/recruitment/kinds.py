"""Recruitment kinds: schemas, ids, references and compilers (pure).

Diagnostic codes (documented in docs/recruitment.md):

- RW910 a status is not in the workflow's status set (or not in the workflow).
- RW911 a status is listed twice in a workflow.
- RW912 an archive status is listed as active, or an active status as archive.
- RW913 the initial status is not an active status of the workflow.
- RW914 warning: a move's ``by`` names a role no PermissionMatrix of the bundle declares (nor ``team`` or
  ``manager``): unless the host gives people that role, the move is never allowed (``by: [hrr]``); likewise a
  ``vacancy_admins`` role of RecruitmentSettings.
- RW915 a move's condition (``when``) reads a vacancy or candidate fact that is not declared (neither a field of the
  pack's fact type nor an attribute of a ``Facts`` document named after it), an ``input.*`` field the move does not
  list in its ``input``, or a root other than ``vacancy``, ``candidate``, ``input`` and ``actor`` (did-you-mean).
- RW920 the organisation tree has a cycle.
- RW921 the organisation tree needs exactly one top entity.
- RW930 warning: a template is used for another purpose than it declares.
- RW931 a template's mail context cannot be filled by the recruitment pack.
- RW410 a mail context recruitment fills declares a field the pack cannot provide (the fact model's code).
- RW940 warning: renew_before on a rule that does not require consent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from regelwerk.conditions import Duration, parse_duration
from regelwerk.diagnostics import did_you_mean
from regelwerk.registry import IdDecl, KindSpec, PlaceSpec, RefDecl, Registry
from regelwerk_packs.recruitment.facts import CANDIDATE, MAIL_SCOPES, VACANCY, mail_fields
from regelwerk_packs.recruitment.model import (
    GROUP_LABELS,
    GROUPS,
    CandidateStatus,
    Entity,
    Move,
    OrganisationStructure,
    Questionnaire,
    RecruitmentSettings,
    RecruitmentWorkflow,
    RetentionPolicy,
    RetentionRule,
    StatusSet,
)

if TYPE_CHECKING:
    from regelwerk.compiler import CompileContext
    from regelwerk.source import SourceDocument

__all__ = ["PROVIDED_FIELDS", "WORKFLOW_PREFIX", "build_questionnaire", "register_kinds"]

#: The emitted core Workflow of RecruitmentWorkflow ``x`` is named ``recruitment.x``.
WORKFLOW_PREFIX = "recruitment."

#: What the recruitment pack can fill in, per mail context it knows (the contexts themselves are data);
#: derived from the mail scopes of :mod:`regelwerk_packs.recruitment.facts`.
PROVIDED_FIELDS: Mapping[str, frozenset[str]] = {name: mail_fields(name) for name in MAIL_SCOPES}


def _duration(text: str) -> Duration:
    parsed = parse_duration(text)
    if parsed is None:  # the schema's pattern already rejected it; keep the type honest
        raise ValueError(text)
    return parsed


def compile_status_set(ctx: CompileContext, doc: SourceDocument) -> StatusSet:
    """Compile a CandidateStatusSet."""
    spec = doc.spec
    labels = dict(GROUP_LABELS)
    for group, item in (spec.get("groups") or {}).items():
        labels[group] = item["label"]
    statuses = tuple(CandidateStatus(s["id"], s.get("label", s["id"]), s["group"], bool(s.get("archive", False)))
                     for s in spec["statuses"])
    return StatusSet(doc.name, statuses, labels)


def _status_list(value: Any, universe: tuple[str, ...]) -> tuple[str, ...]:
    return universe if value == "*" else tuple(value)


def compile_recruitment_workflow(ctx: CompileContext, doc: SourceDocument) -> RecruitmentWorkflow | None:
    """Compile a RecruitmentWorkflow and emit the core Workflow ``recruitment.<name>`` it runs as."""
    from regelwerk.workflows.model import ActionRef, State, Transition, Workflow

    spec = doc.spec
    status_set: StatusSet | None = ctx.compiled("CandidateStatusSet", spec["statuses"])
    if status_set is None:
        return None
    known = {s.id: s for s in status_set.statuses}
    chosen: list[CandidateStatus] = []
    seen: set[str] = set()
    for part, archive in (("active", False), ("archive", True)):
        for i, status_id in enumerate(spec.get(part, [])):
            pointer = f"/spec/{part}/{i}"
            status = known.get(status_id)
            if status is None:
                ctx.report("RW910", f"status {status_id!r} is not in status set {status_set.name!r}", pointer,
                           hint=did_you_mean(status_id, known) or "known: " + ", ".join(known))
                continue
            if status_id in seen:
                ctx.report("RW911", f"status {status_id!r} is listed twice", pointer)
                continue
            if status.archive != archive:
                ctx.report("RW912", f"status {status_id!r} is {'an archive' if status.archive else 'an active'} "
                                    f"status; list it under {'archive' if status.archive else 'active'}", pointer)
            seen.add(status_id)
            chosen.append(status)
    ids = tuple(s.id for s in chosen)
    initial = spec.get("initial") or (spec["active"][0] if spec.get("active") else "")
    if initial not in ids or known.get(initial, CandidateStatus("", "", "", True)).archive:
        ctx.report("RW913", f"initial status {initial!r} is not an active status of this workflow",
                   "/spec/initial" if "initial" in spec else "/spec/active")

    def check_in_workflow(value: Any, pointer: str) -> None:
        if value == "*":
            return
        for i, status_id in enumerate(value):
            if status_id not in ids:
                ctx.report("RW910", f"status {status_id!r} is not in this workflow", f"{pointer}/{i}",
                           hint=did_you_mean(status_id, ids) or "in the workflow: " + ", ".join(ids))

    raw_moves = spec.get("moves") or [{"from": "*", "to": "*", "by": ["team"]}]
    roles = _bundle_roles(ctx)
    moves: list[Move] = []
    for i, raw in enumerate(raw_moves):
        check_in_workflow(raw["from"], f"/spec/moves/{i}/from")
        check_in_workflow(raw["to"], f"/spec/moves/{i}/to")
        for j, party in enumerate(raw.get("by") or ()):
            if roles and party not in PARTIES and party not in roles:
                ctx.warn("RW914", f"move {i} is allowed to {party!r}: neither 'team', 'manager' nor a role of the "
                                  "bundle's permission matrices; unless the host gives people that role, the move "
                                  "is never allowed",
                         f"/spec/moves/{i}/by/{j}",
                         hint=did_you_mean(party, [*PARTIES, *roles]) or "roles: " + ", ".join(sorted(roles)))
        moves.append(_move(ctx, i, raw, _status_list(raw["from"], ids), _status_list(raw["to"], ids)))
    on_enter = spec.get("on_enter") or {}
    for status_id in on_enter:
        if status_id not in ids:
            ctx.report("RW910", f"status {status_id!r} is not in this workflow", f"/spec/on_enter/{status_id}",
                       hint=did_you_mean(status_id, ids), key=True)

    def actions(items: Any, pointer: str) -> tuple[ActionRef, ...]:
        out = []
        for i, item in enumerate(items or ()):
            name = item if isinstance(item, str) else item["action"]
            params = {} if isinstance(item, str) else dict(item.get("with") or {})
            ctx.check_action(name, f"{pointer}/{i}", params, f"{pointer}/{i}" if isinstance(item, str)
                             else f"{pointer}/{i}/with")
            out.append(ActionRef(name, params))
        return tuple(out)

    on_apply_raw = spec.get("on_apply")
    on_apply = actions(on_apply_raw, "/spec/on_apply") if on_apply_raw is not None else (
        ActionRef("recruitment.send_mail", {"purpose": "receipt"}),)
    reads = _reads(moves)
    model = RecruitmentWorkflow(doc.name, spec.get("label", doc.name), WORKFLOW_PREFIX + doc.name, status_set.name,
                                tuple(chosen), initial, tuple(moves), on_apply, reads)
    sync = ActionRef("recruitment.sync_status", {})
    applied = ActionRef("recruitment.on_apply", {"actions": [{"action": a.name, "with": dict(a.params)}
                                                             for a in on_apply]})
    for i, item in enumerate(on_apply_raw or ()):
        _check_mail_action(ctx, item, f"/spec/on_apply/{i}")
    for status_id, items in on_enter.items():
        for i, item in enumerate(items or ()):
            _check_mail_action(ctx, item, f"/spec/on_enter/{status_id}/{i}")
    states = tuple(
        State(id=s.id, label=s.label, group=s.group, tags=("archive" if s.archive else "active",),
              initial=s.id == initial, archive=s.archive,
              on_enter=(sync,) + ((applied,) if s.id == initial and on_apply else ())
              + actions(on_enter.get(s.id), f"/spec/on_enter/{s.id}"))
        for s in chosen)
    transitions: list[Transition] = []
    for target in chosen:
        # one transition per deciding party list; a move with a condition has its own (its guard: who and when)
        groups: dict[tuple[tuple[str, ...], int | None], list[str]] = {}
        deciding: dict[tuple[tuple[str, ...], int | None], Move] = {}
        for source in ids:
            move = model.deciding_move(source, target.id)
            if move is not None:
                key = (move.by, move.index if move.when is not None else None)
                groups.setdefault(key, []).append(source)
                deciding.setdefault(key, move)
        # what a person's data may carry on this event: nothing declared on its moves leaves it open (as before);
        # else the note (Recruitment.move's) and every input its moves list (one input per event: RW525)
        declared = [m.input for m in deciding.values() if m.input is not None]
        event_input = tuple(dict.fromkeys(("note", *(name for names in declared for name in names)))) \
            if declared else None
        for (parties, conditional), sources in groups.items():
            move = deciding[(parties, conditional)]
            condition = _party_condition(parties)
            pointer = "/spec/moves"
            if move.when is not None:
                condition = {"all": [condition, _guard_paths(_plain(raw_moves[move.index]["when"]))]}
                pointer = f"/spec/moves/{move.index}/when"
            transitions.append(Transition(
                index=len(transitions), event=f"to_{target.id}", sources=tuple(sources), dest=target.id,
                label=f"Naar {target.label}", guard=ctx.condition(condition, pointer, _OPEN_SCOPE), permission="",
                pointer=pointer, guard_source=condition, input=event_input,
            ))
    used_groups = {s.group for s in chosen}
    workflow = Workflow(
        name=model.workflow, label=model.label, initial=initial, states=states, transitions=tuple(transitions),
        resource_type="candidate", start_permission="register", data_schema=None,
        # the guards trust data.team and data.manager: only the service (from the vacancy row) sets them; and
        # data.vacancy / data.candidate, the facts the moves' conditions read, when a move has one
        system_fields=SYSTEM_FIELDS + tuple(root for root in FACT_ROOTS if root in reads),
        description=spec.get("description", ""),
        groups=tuple((g, status_set.group_labels.get(g, g)) for g in
                     [*GROUPS, *sorted(set(status_set.group_labels) - set(GROUPS))] if g in used_groups),
    )
    ctx.emit("Workflow", model.workflow, workflow)
    return model


#: Who may move besides a role: the vacancy's team and its responsible manager.
PARTIES = ("team", "manager")


def _bundle_roles(ctx: CompileContext) -> set[str]:
    """The role ids the bundle's permission matrices declare (empty without matrices: roles from the host only)."""
    out: set[str] = set()
    for doc in ctx.documents("PermissionMatrix"):
        for role in doc.spec.get("roles") or ():
            if isinstance(role, Mapping) and isinstance(role.get("id"), str):
                out.add(role["id"])
    return out


#: The instance data the service writes (``system_data``) and no person's data may: the moves' guards read the team
#: and the manager, so a payload ``{"team": ["me"]}`` through the generic engine or the HTTP API would move anyone.
SYSTEM_FIELDS = ("candidate_id", "vacancy_id", "team", "manager")


#: What a move's condition reads besides the actor: the vacancy's and the candidate's facts (the pack's fact types
#: with the customer's ``Facts`` attributes) and the move's own input.
FACT_ROOTS = ("vacancy", "candidate")

#: The scope the emitted guard is compiled against (checked already, against the move's own scope).
_OPEN_SCOPE: Mapping[str, Any] = {"type": "object"}


def _plain(value: Any) -> Any:
    from regelwerk.source import to_plain

    return to_plain(value)


def move_scope(inputs: tuple[str, ...]) -> dict[str, Any]:
    """What a move's ``when`` reads: ``vacancy.*`` and ``candidate.*`` (their fact types), ``input.*`` (the fields
    the move lists in ``input``, of any type) and ``actor.*``."""
    return {"type": "object", "additionalProperties": False, "required": ["vacancy", "candidate", "input", "actor"],
            "properties": {"vacancy": {"$fact": "vacancy"}, "candidate": {"$fact": "candidate"},
                           "input": {"type": "object", "additionalProperties": False,
                                     "properties": {name: {} for name in inputs}},
                           "actor": {"$fact": "actor"}}}


def _move_scope_of(data: Any, pointer: str) -> dict[str, Any] | None:
    """:func:`move_scope` of the move at ``pointer`` (``/spec/moves/<i>/when``) of a document's plain data."""
    try:
        move = data["spec"]["moves"][int(pointer.split("/")[3])]
        names = move.get("input") or ()
        return move_scope(tuple(str(name) for name in names))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None


def _move(ctx: CompileContext, i: int, raw: Mapping[str, Any], sources: tuple[str, ...],
          targets: tuple[str, ...]) -> Move:
    """One move: who (``by``), when (its condition, checked against :func:`move_scope`: RW915 for a fact or input
    it does not declare, RW411/RW412 as anywhere) and what its data may carry (``input``)."""
    from regelwerk.conditions import AllOf, Condition, compile_condition
    from regelwerk.facts import check_condition

    by = tuple(raw.get("by") or ("team",))
    inputs = tuple(raw["input"]) if raw.get("input") is not None else None
    for j, name in enumerate(inputs or ()):
        if name in SYSTEM_FIELDS or name in FACT_ROOTS:
            ctx.warn("RW518", f"move {i}'s input {name!r} is set by the recruitment service (from the vacancy and the "
                              "candidate), never by the mover's data: it can never be given",
                     f"/spec/moves/{i}/input/{j}", hint="leave it out; a condition reads the vacancy's and the "
                                                         "candidate's facts as vacancy.* and candidate.*")
    if raw.get("when") is None:
        return Move(sources, targets, by, raw.get("label", ""), input=inputs, index=i)
    pointer = f"/spec/moves/{i}/when"
    data = _plain(raw["when"])
    when, problems = compile_condition(data, pointer, ctx.functions)
    for problem in problems:
        ctx.report(problem.code, problem.message, problem.pointer, problem.hint)
    if problems:
        return Move(sources, targets, by, raw.get("label", ""), input=inputs, index=i)

    def report(code: str, message: str, where: str = "", hint: str = "", *rest: Any) -> None:
        if code != "RW410":
            ctx.report(code, message, where, hint)
            return
        root = message.rsplit("(in ", 1)[-1].split(".", 1)[0]
        extra = {"vacancy": "declare it as an attribute of a Facts document named vacancy "
                            "(kind: Facts, metadata: {name: vacancy})",
                 "candidate": "declare it as an attribute of a Facts document named candidate "
                              "(kind: Facts, metadata: {name: candidate})",
                 "input": "list it in the move's input (input: [reason])"}.get(
                     root, "a move's condition reads vacancy.*, candidate.*, input.* or actor.*")
        ctx.report("RW915", f"move {i}: {message}", where, f"{hint}; {extra}" if hint else extra)

    check_condition(data, pointer, ctx.facts, move_scope(inputs or ()), report, ctx.warn)
    for where, root in _whole_roots(data, pointer):
        ctx.report("RW915", f"move {i}: reads all of {root}; a condition reads one of its fields", where,
                   hint=f"e.g. {root}.status")
    items = data["all"] if isinstance(data, Mapping) and isinstance(data.get("all"), list) else None
    if items is not None and isinstance(when.model, AllOf):
        parts = tuple((f"{pointer}/all/{j}", Condition(node, ctx.functions))
                      for j, node in enumerate(when.model.items))
    else:
        parts = ((pointer, when),)
    return Move(sources, targets, by, raw.get("label", ""), when, inputs, parts, i)


def _whole_roots(data: Any, pointer: str) -> list[tuple[str, str]]:
    """``(pointer to its 'field', root)`` of every ``{field: vacancy}`` or ``{field: candidate}`` in a condition: the
    whole fact, which the service never hands the guard (it hands the fields the conditions name)."""
    out: list[tuple[str, str]] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            if key == "field" and value in FACT_ROOTS:
                out.append((f"{pointer}/field", str(value)))
            else:
                out.extend(_whole_roots(value, f"{pointer}/{key}"))
    elif isinstance(data, list):
        for j, item in enumerate(data):
            out.extend(_whole_roots(item, f"{pointer}/{j}"))
    return out


def _reads(moves: list[Move]) -> dict[str, tuple[str, ...]]:
    """The vacancy's and the candidate's fields the moves' conditions read (what the service hands the guard)."""
    from regelwerk.conditions import field_paths

    out: dict[str, set[str]] = {}
    for move in moves:
        if move.when is None:
            continue
        for path in field_paths(move.when.model):
            if path[0] in FACT_ROOTS and len(path) > 1:
                out.setdefault(path[0], set()).add(path[1])
    return {root: tuple(sorted(names)) for root, names in out.items()}


def _guard_paths(data: Any) -> Any:
    """A move's condition as the emitted workflow's guard reads it: ``vacancy.x`` and ``candidate.x`` are
    ``data.vacancy.x`` and ``data.candidate.x`` (what the service passes as system data); ``input`` and ``actor``
    are the guard's own roots."""
    if isinstance(data, Mapping):
        out = {}
        for key, value in data.items():
            if key == "field" and isinstance(value, str) and value.split(".", 1)[0] in FACT_ROOTS:
                out[key] = "data." + value
            else:
                out[key] = _guard_paths(value)
        return out
    if isinstance(data, list):
        return [_guard_paths(item) for item in data]
    return data


def _party_condition(parties: tuple[str, ...]) -> dict[str, Any]:
    """Who may move: ``team`` (data.team), ``manager`` (data.manager) or a role the actor holds."""
    checks: list[dict[str, Any]] = []
    for party in parties:
        if party == "team":
            checks.append({"field": "actor.id", "in": {"field": "data.team"}})
        elif party == "manager":
            checks.append({"field": "actor.id", "eq": {"field": "data.manager"}})
        else:
            checks.append({"field": "actor.roles", "contains": party})
    return {"any": checks}


def _check_mail_action(ctx: CompileContext, item: Any, pointer: str) -> None:
    if isinstance(item, Mapping) and item.get("action") in ("recruitment.send_mail", "recruitment.send_questionnaire"):
        params = item.get("with") or {}
        if params.get("template"):
            _check_template(ctx, str(params["template"]), params.get("purpose"), f"{pointer}/with/template")


def compile_organisation(ctx: CompileContext, doc: SourceDocument) -> OrganisationStructure | None:
    """Compile an OrganisationStructure: one top entity, no cycles."""
    entities = tuple(Entity(e["id"], e.get("label", e["id"]), e.get("type", ""), e.get("parent"),
                            dict(e.get("templates") or {}), e.get("workflow")) for e in doc.spec["entities"])
    roots = [i for i, e in enumerate(entities) if e.parent is None]
    if len(roots) != 1:
        ctx.report("RW921", f"the organisation needs exactly one top entity (without parent), found {len(roots)}",
                   f"/spec/entities/{roots[1]}/id" if len(roots) > 1 else "/spec/entities",
                   hint="start with the head office and give every other entity a parent")
    for i, raw in enumerate(doc.spec["entities"]):
        for purpose, name in (raw.get("templates") or {}).items():
            _check_template(ctx, name, purpose, f"/spec/entities/{i}/templates/{purpose}")
    parents = {e.id: e.parent for e in entities}
    for i, entity in enumerate(entities):
        seen = {entity.id}
        current = entity.parent
        while current is not None and current in parents:
            if current in seen:
                ctx.report("RW920", f"entity {entity.id!r} is its own ancestor", f"/spec/entities/{i}/parent")
                break
            seen.add(current)
            current = parents[current]
    return OrganisationStructure(doc.name, entities)


def compile_retention(ctx: CompileContext, doc: SourceDocument) -> RetentionPolicy:
    """Compile a RetentionPolicy."""
    rules = []
    for i, raw in enumerate(doc.spec["rules"]):
        consent = raw.get("consent")
        if "renew_before" in raw and consent is not True:
            ctx.warn("RW940", "renew_before only applies to candidates who consented: add 'consent: true'",
                     f"/spec/rules/{i}/renew_before")
        if raw.get("renew_template"):
            _check_template(ctx, raw["renew_template"], None, f"/spec/rules/{i}/renew_template")
        rules.append(RetentionRule(
            raw["id"], raw.get("label", raw["id"]), tuple(raw.get("groups", ())), tuple(raw.get("statuses", ())),
            consent, _duration(raw["keep"]), raw.get("from", "status"),
            _duration(raw["renew_before"]) if "renew_before" in raw else None, raw.get("renew_template"),
        ))
    return RetentionPolicy(doc.name, doc.spec.get("label", doc.name), tuple(rules))


def build_questionnaire(ctx: CompileContext) -> Questionnaire:
    """The questionnaire index from the talent pack's compiled competency model (one competency model).

    A function's competencies are those of the talent roles generated from it (``TalentRole`` with
    ``origin: function``, not blocked: profile first, then its own); roles for every function
    (``functions: ["*"]``) count for every vacancy; a department's are those of the
    ``TalentCompetencyProfile`` documents listing it under ``departments``. Only competencies with
    ``questions`` are asked about. Without the talent pack (or its documents) the index is empty.
    """
    def with_questions(names: Any) -> tuple[Any, ...]:
        found = (ctx.compiled("TalentCompetency", name) for name in names)
        return tuple(c for c in found if c is not None and c.questions)

    if "TalentRole" not in ctx.registry.kinds:
        return Questionnaire()
    functions: dict[str, list[str]] = {}
    every: list[str] = []
    for doc in ctx.documents("TalentRole"):
        role = ctx.compiled("TalentRole", doc.name)
        if role is None:
            continue
        if role.covers_function(None):  # a role for every function ("*")
            every.extend(role.competencies)
        for function in role.functions:
            if function != "*" and role.covers_function(function, wildcard=False):
                functions.setdefault(function, []).extend(role.competencies)
    departments: dict[str, list[str]] = {}
    for doc in ctx.documents("TalentCompetencyProfile"):
        profile = ctx.compiled("TalentCompetencyProfile", doc.name)
        for department in getattr(profile, "departments", ()):
            departments.setdefault(department, []).extend(profile.competencies)
    return Questionnaire({f: with_questions(dict.fromkeys(names)) for f, names in functions.items()},
                         with_questions(dict.fromkeys(every)),
                         {d: with_questions(dict.fromkeys(names)) for d, names in departments.items()})


def _check_template(ctx: CompileContext, name: str, purpose: str | None, pointer: str) -> None:
    template = ctx.compiled("Template", name)
    if template is None:
        return
    if purpose is not None and template.purpose != purpose:
        ctx.warn("RW930", f"template {name!r} is for {template.purpose!r}, used here for {purpose!r}", pointer)
    provided = PROVIDED_FIELDS.get(template.context)
    if provided is None:
        ctx.report("RW931", f"template {name!r} uses mail context {template.context!r}, which recruitment cannot "
                            "fill", pointer, hint="use one of: " + ", ".join(sorted(PROVIDED_FIELDS)))
        return
    context = ctx.compiled("MailContext", template.context)
    if context is None:
        return
    _check_mail_context(ctx, template.context)


def _check_mail_context(ctx: CompileContext, name: str) -> None:
    """Every field a mail context recruitment fills declares (itself or through ``extends``) is one the pack
    provides: else RW410 at the field's line, with did-you-mean (once per field)."""
    from regelwerk.facts import check_path
    from regelwerk.source import locate

    scope = MAIL_SCOPES[name]
    seen: set[str] = set()
    current: str | None = name
    while current and current not in seen:
        seen.add(current)
        doc = next((d for d in ctx.documents("MailContext") if d.name == current), None)
        if doc is None:
            return
        for i, item in enumerate(doc.spec.get("fields") or ()):
            path = str(item.get("path", "")) if isinstance(item, Mapping) else ""
            if not path or not all(path.split(".")):
                continue
            found = check_path(ctx.facts, scope, path.split("."))
            if found.error:
                pointer = f"/spec/fields/{i}/path"
                at = locate(doc.data, pointer)
                if not any(d.code == "RW410" and d.pointer == pointer and (d.file, d.line, d.column) ==
                           (at.file or doc.file, at.line, at.column) for d in ctx.diagnostics):
                    ctx.report("RW410", f"{found.error} (in {path}): not a field recruitment fills in its mails",
                               pointer, found.hint, doc=doc)
        extends = doc.spec.get("extends")
        current = str(extends) if extends else None


def compile_settings(ctx: CompileContext, doc: SourceDocument) -> RecruitmentSettings:
    """Compile RecruitmentSettings; check that every template it or the organisation uses can be filled."""
    spec = doc.spec
    templates = dict(spec.get("templates") or {})
    for purpose, name in templates.items():
        _check_template(ctx, name, purpose, f"/spec/templates/{purpose}")
    roles = _bundle_roles(ctx)
    for i, role in enumerate(spec.get("vacancy_admins") or ()):
        if roles and role not in roles:
            ctx.warn("RW914", f"vacancy admin role {role!r} is no role of the bundle's permission matrices; unless "
                              "the host gives people that role, it opens and closes no vacancy",
                     f"/spec/vacancy_admins/{i}",
                     hint=did_you_mean(str(role), roles) or "roles: " + ", ".join(sorted(roles)))
    organisation = spec.get("organisation")
    retention = spec.get("retention")
    sender = spec["sender"]
    return RecruitmentSettings(
        doc.name, dict(spec["company"]), sender["address"], sender.get("name", spec["company"]["name"]),
        sender.get("signature", ""), spec["workflow"], organisation, templates, retention,
        tuple(spec.get("vacancy_admins") or ("beheerder", "administrator")), build_questionnaire(ctx),
        _declared_facts(ctx, "vacancy", VACANCY), _declared_facts(ctx, "candidate", CANDIDATE),
    )


def _declared_facts(ctx: CompileContext, name: str, base: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The attributes ``Facts`` documents declare for fact type ``name`` beyond the pack's own fields: what the host
    may set on a vacancy or candidate (``Recruitment.set_vacancy_facts`` / ``set_candidate_facts``)."""
    fact = ctx.facts.fact(name) or {}
    own = set(base.get("properties") or ())
    return {key: dict(value) for key, value in (fact.get("properties") or {}).items() if key not in own}


def register_kinds(registry: Registry, plugin: str) -> None:
    """Register the recruitment kinds."""
    from regelwerk.validation import load_shipped_schema

    def spec(kind: str, compile_fn: Any, description: str, ids: tuple[IdDecl, ...] = (),
             refs: tuple[RefDecl, ...] = ()) -> KindSpec:
        file = kind.lower() + ".json"
        return KindSpec(kind=kind, plugin=plugin, schema=load_shipped_schema(file), compile=compile_fn, ids=ids,
                        refs=refs, description=description, schema_file=file)

    registry.add_kind(spec("CandidateStatusSet", compile_status_set,
                           "candidate statuses, each in one status group, active or archive",
                           ids=(IdDecl("/spec/statuses/*/id", "status"),)))
    registry.add_kind(spec("RecruitmentWorkflow", compile_recruitment_workflow,
                           "a recruitment workflow over candidate statuses (emits a core Workflow)",
                           refs=(RefDecl("/spec/statuses", kind="CandidateStatusSet"),)))
    registry.add_place(PlaceSpec(
        "RecruitmentWorkflow", "/spec/moves/*/when", plugin, move_scope(("<each name the move lists in input>",)),
        "a move's condition: the vacancy's and the candidate's facts, the move's input, the actor (RW915)",
        scope_of=_move_scope_of))
    registry.add_kind(spec("OrganisationStructure", compile_organisation,
                           "the organisation as a tree of entities with their own templates",
                           ids=(IdDecl("/spec/entities/*/id", "entity"),),
                           refs=(RefDecl("/spec/entities/*/parent", target="/spec/entities/*/id", what="entity"),
                                 RefDecl("/spec/entities/*/templates/*", kind="Template"),
                                 RefDecl("/spec/entities/*/workflow", kind="RecruitmentWorkflow"))))
    registry.add_kind(spec("RecruitmentSettings", compile_settings,
                           "the recruitment company profile: defaults for every vacancy",
                           refs=(RefDecl("/spec/workflow", kind="RecruitmentWorkflow"),
                                 RefDecl("/spec/organisation", kind="OrganisationStructure"),
                                 RefDecl("/spec/templates/*", kind="Template"),
                                 RefDecl("/spec/retention", kind="RetentionPolicy"))))
    registry.add_kind(spec("RetentionPolicy", compile_retention,
                           "AVG retention of candidate data per status group or status",
                           ids=(IdDecl("/spec/rules/*/id", "rule"),),
                           refs=(RefDecl("/spec/rules/*/renew_template", kind="Template"),)))
