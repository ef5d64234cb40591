"""Registerplein pack: consent-based access of employers and managers (seed 003_ce1df3da22612629.txt).

The matrix is shipped as YAML (``definitions/standard/permissions/registerplein.yaml``): the professional
creates every link (an explicit deny stops anyone else), a manager sees only the professionals who chose
him or her until the link ends or is withdrawn, and the employer can remove a professional who does not
belong. This pack adds :func:`remove_professional`: the employer's "prullenbak" ends the professional's
link to the organisation and to the organisation's managers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from regelwerk.registry import Registry

__all__ = ["MATRIX", "RegisterpleinPlugin", "groups_within", "plugin", "remove_professional",
           "step_remove_professional"]

MATRIX = "registerplein"


def remove_professional(port: Any, employer: Any, professional: str, organisation: str, now: datetime) -> list[Any]:
    """End ``professional``'s consent links to ``organisation`` and to managers in its branches.

    ``port`` is a :class:`~regelwerk.permissions.MatrixPermissions` over the Registerplein matrix; the
    employer's ``remove`` on ``consent_link`` is checked (and a refusal audited) first. Which branches
    belong to the organisation is a relation in the store (``member_of(branch, organisation)``, nested
    groups followed), never the spelling of an id.
    """
    ended = list(port.unlink(employer, professional, organisation, action="remove", context={"now": now}))
    rel = port.relationships
    org_branches = groups_within(rel, organisation, now)
    for link in rel.relations("consent", subject=professional):
        if link.withdrawn_at is not None or not link.active(now) or link.object == organisation:
            continue
        if not rel.groups_of(link.object, now).isdisjoint(org_branches):
            ended += rel.unrelate("consent", professional, link.object, at=now, by=port_actor_id(employer))
    return ended


def groups_within(relationships: Any, organisation: str, now: datetime) -> set[str]:
    """``organisation`` and every group that is (transitively) ``member_of`` it at ``now``."""
    found = {organisation}
    frontier = [organisation]
    while frontier:
        group = frontier.pop()
        for relation in relationships.relations("member_of", object=group):
            if relation.active(now) and relation.subject not in found:
                found.add(relation.subject)
                frontier.append(relation.subject)
    return found


def port_actor_id(actor: Any) -> str:
    """The id of an actor given as an Actor, a mapping or a plain id."""
    from regelwerk.actors import Actor

    return Actor.of(actor).id


class RegisterpleinPlugin:
    """The Registerplein pack (its norms and progress categories are shipped as decision tables)."""

    name = "registerplein"

    def register(self, registry: Registry) -> None:
        """The scenario step ``remove_professional`` (the core kinds carry the rest)."""
        from regelwerk.registry import StepSpec

        name = {"type": "string", "minLength": 1}
        registry.add_step(StepSpec("remove_professional", self.name, step_remove_professional, {
            "type": "object", "additionalProperties": False, "required": ["as", "subject", "object"],
            "properties": {"matrix": name, "as": name, "subject": name, "object": name,
                           "expect": {"enum": ["allowed", "denied"]}, "by": name},
        }, "the employer's prullenbak: end a professional's links to the organisation and its managers"))


def step_remove_professional(ctx: Any, args: Any, info: Any) -> None:
    """Scenario step: ``remove_professional: {matrix, as, subject, object, expect?, by?}`` runs
    :func:`remove_professional` over the scenario's relationship facts, so a consultant can show that a removed
    professional is seen by none of the organisation's managers either (a plain ``unrelate ... action: remove``
    ends only the link to the organisation)."""
    from regelwerk.errors import PermissionDenied, RegelwerkError
    from regelwerk.permissions.adapter import MatrixPermissions
    from regelwerk.permissions.facts import actor_from_facts, pick_matrix
    from regelwerk.permissions.steps import scenario_relations
    from regelwerk.scenarios import StepFailure

    try:
        matrix = pick_matrix(ctx.compiled, args.get("matrix"))
    except RegelwerkError as exc:  # an unknown or ambiguous matrix name: the step's mistake, said as such
        raise StepFailure(str(exc)) from exc
    port = MatrixPermissions(matrix, scenario_relations(ctx), clock=lambda: ctx.now)
    actor = actor_from_facts(args["as"], ctx.facts)
    expect = args.get("expect", "allowed")
    try:
        remove_professional(port, actor, str(args["subject"]), str(args["object"]), ctx.now)
    except PermissionDenied as exc:
        if expect == "allowed":
            raise StepFailure(f"expected {actor.id} to remove {args['subject']}, got PermissionDenied: {exc}") from exc
        by = (exc.explanation or {}).get("by")
        if "by" in args and by != args["by"]:
            raise StepFailure(f"expected the refusal by {args['by']!r}, got {by!r}") from exc
        return
    if expect != "allowed":
        raise StepFailure(f"expected {actor.id} removing {args['subject']} to be {expect}, but it succeeded")


plugin = RegisterpleinPlugin()
