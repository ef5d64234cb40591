"""Scenario steps of the permission area.

- ``can``: ask a matrix; expect ``allowed`` or ``denied``, the deciding rule (``by``) and a reason text.
- ``relate`` / ``unrelate``: add or end relationship facts (reporting lines, departments, consent links
  with dates, per-user roles and rights). With ``as:`` the change goes through the matrix (a consent
  link is created by ``create`` on ``consent_link``), so "the employer cannot create the link" is tested.
- ``invite_user`` / ``resend_user_invitation`` / ``accept_user_invitation``: user invitations with their validity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regelwerk.errors import PermissionDenied, RegelwerkError
from regelwerk.permissions.facts import actor_from_facts, pick_matrix, resource_from_facts
from regelwerk.permissions.model import Decision, PermissionMatrix
from regelwerk.permissions.relations import MemoryRelationships, relations_from_facts
from regelwerk.registry import Registry, StepSpec
from regelwerk.scenarios import ScenarioContext, StepFailure, parse_moment

__all__ = ["register", "scenario_relations"]

_NAME = {"type": "string", "minLength": 1}
_DATE = {"$ref": "common.json#/$defs/dateTime"}


def scenario_relations(ctx: ScenarioContext) -> MemoryRelationships:
    """The scenario's relationship facts (service ``permissions.relations``), dated in the bundle's zone."""
    def build(c: ScenarioContext) -> MemoryRelationships:
        items = c.facts.get("relations")
        for i, item in enumerate(items if isinstance(items, list) else [], 1):
            if isinstance(item, Mapping) and item.get("kind") == "has_role":
                _known_role(c, item.get("object"), f"relation {i} (has_role {item.get('subject')!r})")
        return relations_from_facts(c.facts, getattr(c.compiled, "timezone", None))

    rel: MemoryRelationships = ctx.service("permissions.relations", build)
    return rel


def _known_roles(ctx: ScenarioContext) -> set[str]:
    """The roles of every matrix of the bundle and of the scenario's ``permissions`` table."""
    known = {r for m in ctx.compiled.of_kind("PermissionMatrix").values() for r in m.roles}
    table = ctx.facts.get("permissions")
    if isinstance(table, Mapping):
        known.update(str(r) for roles in table.values() if isinstance(roles, list) for r in roles)
    return known


def _known_role(ctx: ScenarioContext, role: Any, what: str) -> None:
    """A ``has_role`` fact for a role no matrix has gives nobody anything: the person is then refused everywhere
    and the scenario seems to prove a refusal (praktijkopleidr for praktijkopleider). Without any matrix or
    ``permissions`` table there is nothing to check against."""
    from regelwerk.diagnostics import did_you_mean

    known = _known_roles(ctx)
    if known and str(role) not in known:
        raise StepFailure(f"{what} names role {role!r}, which no permission matrix of the bundle has"
                          + _hint(did_you_mean(str(role), sorted(known))))


_relations = scenario_relations


def _matrix(ctx: ScenarioContext, args: Any) -> PermissionMatrix:
    try:
        matrix: PermissionMatrix = pick_matrix(ctx.compiled, args.get("matrix"))
    except RegelwerkError as exc:
        raise StepFailure(str(exc)) from None
    return matrix


def _ports(ctx: ScenarioContext, args: Any) -> Any:
    from regelwerk.permissions.adapter import MatrixPermissions

    matrix = _matrix(ctx, args)
    return ctx.service(f"permissions.port.{matrix.name}",
                       lambda c: MatrixPermissions(matrix, _relations(c), clock=lambda: c.now))


def _summary(decision: Decision) -> str:
    info = decision.explain
    return (f"{'allowed' if decision.allowed else 'denied'} by {info.get('by')}"
            + (f" ({info.get('reason')})" if info.get("reason") else ""))


def step_can(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Ask the matrix and compare with the expectation."""
    matrix = _matrix(ctx, args)
    actor = actor_from_facts(args["actor"], ctx.facts)
    resource_type, resource = resource_from_facts(args["resource"], ctx.facts, args.get("data"))
    if "reason" not in args:  # a step that expects the reason ("has no action") asks about it on purpose
        _known_question(ctx, matrix, args, actor, resource_type)
    now = parse_moment(args["at"]) if "at" in args else ctx.now
    context = {**dict(ctx.facts.get("context") or {}), **dict(args.get("context") or {})}
    rel = _relations(ctx)
    fast = matrix.decide(actor, args["action"], resource_type, resource, rel, now, context,
                         field_group=args.get("field_group"))
    full = matrix.decide(actor, args["action"], resource_type, resource, rel, now, context,
                         field_group=args.get("field_group"), explain=True)
    if fast.allowed != full.allowed or fast.by != full.by:
        raise StepFailure(f"fast and explained decisions differ: {_summary(fast)} vs {_summary(full)}")
    expected = args["expect"] == "allowed"
    problems = []
    if full.allowed != expected:
        problems.append(f"expected {args['expect']}, got {_summary(full)}")
    if "by" in args and full.by != args["by"]:
        problems.append(f"expected the decision by {args['by']!r}, got {full.by!r}")
    if "reason" in args and str(args["reason"]) not in str(full.explain.get("reason", "")):
        problems.append(f"expected the reason to mention {args['reason']!r}, got {full.explain.get('reason')!r}")
    if problems:
        considered = "; ".join(f"{c['rule']}: {c['why']}" for c in full.explain.get("considered", []))
        raise StepFailure("; ".join(problems) + (f" [considered: {considered}]" if considered else ""))


def _known_question(ctx: ScenarioContext, matrix: Any, args: Any, actor: Any, resource_type: str) -> None:
    """A question about a resource, action or field group the matrix does not have, or for an actor with a role
    no matrix of the bundle (nor the scenario's ``permissions`` table) knows, is a mistake in the scenario: the
    matrix denies it (deny by default), so ``expect: denied`` would pass for the wrong reason. A step that names
    the ``reason`` it expects (``reason: has no action``) asks on purpose and is not checked."""
    from regelwerk.diagnostics import did_you_mean

    resource = matrix.resources.get(resource_type)
    if resource is None:
        raise StepFailure(f"matrix {matrix.name!r} has no resource {resource_type!r}"
                          + _hint(did_you_mean(resource_type, sorted(matrix.resources))))
    action = str(args["action"])
    if action not in resource.actions:
        raise StepFailure(f"resource {resource_type!r} of matrix {matrix.name!r} has no action {action!r}"
                          + _hint(did_you_mean(action, resource.actions) or "actions: " + ", ".join(resource.actions)))
    group = args.get("field_group")
    if group is not None and group not in resource.field_groups:
        raise StepFailure(f"resource {resource_type!r} of matrix {matrix.name!r} has no field group {group!r}"
                          + _hint(did_you_mean(str(group), sorted(resource.field_groups))))
    known = _known_roles(ctx)
    for role in actor.roles:
        if role not in known:
            raise StepFailure(f"actor {actor.id!r} has role {role!r}, which no permission matrix of the bundle has"
                              + _hint(did_you_mean(role, sorted(known))))


def _hint(text: str) -> str:
    return f" ({text})" if text else ""


def _expect_refusal(args: Any, exc: RegelwerkError | None, what: str) -> None:
    expect = args.get("expect", "allowed")
    if exc is None and expect != "allowed":
        raise StepFailure(f"expected {what} to be {expect}, but it succeeded")
    if exc is not None and expect == "allowed":
        raise StepFailure(f"expected {what} to succeed, got {type(exc).__name__}: {exc}")
    if exc is not None and "by" in args and isinstance(exc, PermissionDenied):
        by = (exc.explanation or {}).get("by")
        if by != args["by"]:
            raise StepFailure(f"expected the refusal by {args['by']!r}, got {by!r}")


def step_relate(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Add a relationship fact (directly, or as an actor through the matrix)."""
    rel = _relations(ctx)
    kind = args.get("kind", "consent")
    if kind == "has_role":
        _known_role(ctx, args["object"], f"relate (has_role {args['subject']!r})")
    if "as" not in args:
        rel.relate(kind, str(args["subject"]), str(args["object"]), valid_from=args.get("from"),
                   valid_to=args.get("until"), now=ctx.now)
        return
    port = _ports(ctx, args)
    actor = actor_from_facts(args["as"], ctx.facts)
    error: RegelwerkError | None = None
    try:
        port.link(actor, str(args["subject"]), str(args["object"]), valid_from=args.get("from"),
                  valid_to=args.get("until"), kind=kind, resource_type=args.get("resource", "consent_link"),
                  context={"now": ctx.now, "resource": args.get("data") or {},
                           **dict(ctx.facts.get("context") or {})})
    except PermissionDenied as exc:
        error = exc
    _expect_refusal(args, error, f"{actor.id} linking {args['subject']} to {args['object']}")


def step_unrelate(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """End a relationship fact now (withdrawal); with ``as:`` through the matrix (withdraw or remove)."""
    rel = _relations(ctx)
    kind = args.get("kind", "consent")
    at = parse_moment(args["at"]) if "at" in args else ctx.now
    if "as" not in args:
        ended = rel.unrelate(kind, str(args["subject"]), str(args["object"]), at=at)
        if not ended and args.get("expect", "allowed") == "allowed":
            raise StepFailure(f"no active {kind} relation {args['subject']} -> {args['object']} to end")
        return
    port = _ports(ctx, args)
    actor = actor_from_facts(args["as"], ctx.facts)
    error: RegelwerkError | None = None
    try:
        port.unlink(actor, str(args["subject"]), str(args["object"]), action=args.get("action", "withdraw"),
                    kind=kind, resource_type=args.get("resource", "consent_link"),
                    context={"now": at, "resource": args.get("data") or {}, **dict(ctx.facts.get("context") or {})})
    except PermissionDenied as exc:
        error = exc
    _expect_refusal(args, error, f"{actor.id} ending {args['subject']} -> {args['object']}")


def _invitations(ctx: ScenarioContext, args: Any) -> Any:
    from regelwerk.permissions.invitations import MemoryInvitations

    matrix = _matrix(ctx, args)
    counter = iter(range(1, 1_000_000))
    return ctx.service(f"permissions.invitations.{matrix.name}", lambda c: MemoryInvitations(
        matrix.invitation_valid_for or "PT48H", token_factory=lambda: f"token-{next(counter)}",
        timezone=matrix.timezone))


def step_invite(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Invite a user (checked: ``invite`` on ``user``); remember the invitation under ``name``."""
    port = _ports(ctx, args)
    actor = actor_from_facts(args["as"], ctx.facts)
    error: RegelwerkError | None = None
    try:
        port.require(actor, "invite", args.get("resource", "user"), {"role": args.get("role", ""),
                                                                      "account": args.get("account", "")},
                     {"now": ctx.now, **dict(ctx.facts.get("context") or {})})
    except PermissionDenied as exc:
        error = exc
    _expect_refusal(args, error, f"{actor.id} inviting {args['email']}")
    if error is None:
        invitation = _invitations(ctx, args).invite(args["email"], args.get("role", ""), args.get("account", ""),
                                                    actor.id, ctx.now)
        ctx.services.setdefault("permissions.invitation_names", {})[args["name"]] = invitation


def step_resend_invitation(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Send an invitation again: a new link under ``name``; the old one is superseded."""
    names = ctx.services.setdefault("permissions.invitation_names", {})
    if args["invitation"] not in names:
        raise StepFailure(f"no invitation named {args['invitation']!r}")
    old = names[args["invitation"]]
    names[args["name"]] = _invitations(ctx, args).resend(old.id, str(args.get("as", "system")), ctx.now)


def step_accept_invitation(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Use an invitation link; expect ``accepted`` or the typed refusal (expired, used, superseded, unknown)."""
    names = ctx.services.setdefault("permissions.invitation_names", {})
    token = names[args["invitation"]].token if args["invitation"] in names else "no-such-token"
    outcome = "accepted"
    message = ""
    try:
        _invitations(ctx, args).accept(token, ctx.now)
    except RegelwerkError as exc:
        outcome = getattr(exc, "code", "error").removeprefix("invitation_")
        message = str(exc)
    if outcome != args["expect"]:
        raise StepFailure(f"expected {args['expect']}, got {outcome}" + (f": {message}" if message else ""))
    if "message" in args and str(args["message"]) not in message:
        raise StepFailure(f"expected the message to mention {args['message']!r}, got {message!r}")


def step_use_permissions(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Let the scenario's workflow engine ask this matrix (over the scenario's relationship facts)."""
    port = _ports(ctx, args)
    ctx.services["permissions"] = port
    engine = ctx.services.get("engine")
    if engine is not None:
        engine.permissions = port


def register(registry: Registry, plugin: str) -> None:
    """Add the permission steps (and the test tables of :mod:`regelwerk.permissions.policytests`)."""
    from regelwerk.permissions import policytests

    policytests.register(registry, plugin)
    registry.add_step(StepSpec("use_permissions", plugin, step_use_permissions, {
        "type": "object", "additionalProperties": False, "properties": {"matrix": _NAME},
    }, "workflow transitions in this scenario are decided by this permission matrix"))
    outcome = {"enum": ["allowed", "denied"]}
    registry.add_step(StepSpec("can", plugin, step_can, {
        "type": "object", "required": ["actor", "action", "resource", "expect"], "additionalProperties": False,
        "properties": {
            "matrix": _NAME, "actor": {"anyOf": [_NAME, {"type": "object"}]}, "action": _NAME,
            "resource": {"type": "string", "description": "TYPE or TYPE:ID (data from facts.resources)"},
            "data": {"type": "object", "description": "resource fields (subject, author, ...)"},
            "context": {"type": "object"}, "field_group": _NAME, "at": _DATE, "expect": outcome,
            "by": {"type": "string", "description": "the deciding grant or deny id, or 'default'"},
            "reason": {"type": "string", "description": "text the reason must contain"},
        },
    }, "ask a permission matrix: may this actor do this action on this resource?"))
    relation_props = {
        "matrix": _NAME, "kind": _NAME, "subject": _NAME, "object": _NAME, "as": _NAME,
        "resource": _NAME, "data": {"type": "object"}, "expect": outcome, "by": {"type": "string"},
    }
    registry.add_step(StepSpec("relate", plugin, step_relate, {
        "type": "object", "required": ["subject", "object"], "additionalProperties": False,
        "properties": {**relation_props, "from": {"$ref": "common.json#/$defs/date"},
                       "until": {"$ref": "common.json#/$defs/date"}},
    }, "add a relationship fact (kind default consent); with 'as' through the matrix"))
    registry.add_step(StepSpec("unrelate", plugin, step_unrelate, {
        "type": "object", "required": ["subject", "object"], "additionalProperties": False,
        "properties": {**relation_props, "at": _DATE, "action": _NAME},
    }, "end (withdraw) a relationship fact; with 'as' through the matrix"))
    registry.add_step(StepSpec("invite_user", plugin, step_invite, {
        "type": "object", "required": ["as", "email", "name"], "additionalProperties": False,
        "properties": {"matrix": _NAME, "as": _NAME, "email": _NAME, "role": _NAME, "account": _NAME,
                       "name": _NAME, "resource": _NAME, "expect": outcome, "by": {"type": "string"}},
    }, "invite a user (checked against the matrix); the link is valid for spec.invitations.valid_for"))
    registry.add_step(StepSpec("resend_user_invitation", plugin, step_resend_invitation, {
        "type": "object", "required": ["invitation", "name"], "additionalProperties": False,
        "properties": {"matrix": _NAME, "invitation": _NAME, "name": _NAME, "as": _NAME},
    }, "send an invitation again: a new link, the old one superseded"))
    registry.add_step(StepSpec("accept_user_invitation", plugin, step_accept_invitation, {
        "type": "object", "required": ["invitation", "expect"], "additionalProperties": False,
        "properties": {"matrix": _NAME, "invitation": _NAME, "message": {"type": "string"},
                       "expect": {"enum": ["accepted", "expired", "used", "superseded", "unknown"]}},
    }, "use an invitation link and expect it accepted or refused"))
