"""Who a mail addressed to a role goes to: the role's holders within the instance's scope, and their addresses.

``send_template`` with ``to: {role: hr}`` (see docs/templates.md, "Mail to a role") resolves its recipients when
the action runs, inside the transition's unit of work:

1. **Holders**: who holds the role at that moment, from the engine's :class:`RoleDirectory`. The default,
   :class:`FactsDirectory`, reads the active ``has_role`` facts (and ``has_task`` facts of the tasks the matrix role
   lists in ``tasks``) of the relationship facts the engine's permission policy decides with (``rw_relations`` on
   a SQL store, written by the host or ``regelwerk import organisation`` from the Rechtenniveau and Taken columns;
   a scenario's ``facts.relations``). A host or pack whose people live elsewhere
   passes its own directory: ``Engine(..., recipients=MyDirectory())``.
2. **Scope**: a holder is mailed only when the engine's permission policy lets that person ``read`` the instance,
   decided as a fire's permission is (the instance's data as the resource, the person's stored roles). So a
   location manager's grant ``scope: department`` makes ``{role: locatiemanager}`` the manager of the instance's
   location, and nobody is mailed about a case they may not open (AVG: need to know).
3. **Addresses**: the holder's active account's address (``rw_accounts`` by ``subject``), else the e-mail of the
   employee directory (``rw_employees``, the organisation import's E-mailadres column), read through the
   transaction.

Fail closed: no directory, no holder, no holder in scope, a holder the policy refuses ``by: malformed`` (the
instance's data has a declared field of another type: whether they may read it is unknown), or a holder in scope
without a usable address is
:class:`~regelwerk.errors.NoRecipients` (the transition is refused and nothing of it is written; a timer's
becomes an incident that is retried). Mailing only the holders that happen to have an address would look like
"HR was told" while one of them never was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from regelwerk.actors import Actor
from regelwerk.errors import NoRecipients

if TYPE_CHECKING:
    from regelwerk.permissions.relations import Relationships
    from regelwerk.store.base import StoreTx

__all__ = ["SCOPE_ACTION", "FactsDirectory", "Recipient", "RoleDirectory", "directory_of", "role_recipients",
           "usable_address"]

#: The action a holder must be allowed on the instance to be mailed about it.
SCOPE_ACTION = "read"


@dataclass(frozen=True, slots=True)
class Recipient:
    """One person a role mail goes to, and the address it goes to."""

    person: str
    address: str


@runtime_checkable
class RoleDirectory(Protocol):
    """Where a role's holders and their mail addresses are found."""

    def holders(self, role: str, now: datetime, tx: StoreTx) -> Sequence[str]:
        """The ids of the people holding ``role`` at ``now`` (each once)."""

    def addresses(self, people: Sequence[str], tx: StoreTx) -> Mapping[str, str]:
        """The mail address of each of ``people`` who has one (the others are absent)."""


def usable_address(value: Any) -> bool:
    """True for text that can be a recipient: the address of one mailbox (``x@y``; no list, display name, space or
    line break: :func:`regelwerk.outbox.queue.address_problem`, which the outbox checks too)."""
    from regelwerk.outbox.queue import address_problem

    return address_problem(value) is None


class FactsDirectory:
    """Holders from ``has_role`` relationship facts; addresses from accounts, then the employee directory."""

    def __init__(self, relationships: Relationships, tasks: Mapping[str, Sequence[str]] | None = None) -> None:
        self.relationships = relationships
        #: role -> the tasks whose holders hold it (the matrix role's ``tasks``)
        self.tasks = dict(tasks or {})

    def holders(self, role: str, now: datetime, tx: StoreTx) -> Sequence[str]:
        """Everyone with a ``has_role`` fact for ``role`` active at ``now``, or an active ``has_task`` fact for a task
        the matrix role lists in its ``tasks`` (sorted)."""
        found = {r.subject for r in self.relationships.relations("has_role", object=role) if r.active(now)}
        for task in self.tasks.get(role, ()):
            found.update(r.subject for r in self.relationships.relations("has_task", object=task) if r.active(now))
        return sorted(found)

    def addresses(self, people: Sequence[str], tx: StoreTx) -> Mapping[str, str]:
        """An active account's address (the first by username), else the employee directory's ``email``."""
        import regelwerk.permissions.tables
        import regelwerk.scheduling.tables  # noqa: F401  # both declare their tables on the shared metadata

        found: dict[str, str] = {}
        for row in tx.rows("rw_accounts").find({"subject": list(people), "status": "active"}, order_by="username"):
            if usable_address(row.get("email")):
                found.setdefault(str(row["subject"]), str(row["email"]))
        rest = [p for p in people if p not in found]
        if rest:
            for row in tx.rows("rw_employees").find({"id": rest}):
                attributes = row.get("attributes")
                email = attributes.get("email") if isinstance(attributes, Mapping) else None
                if usable_address(email):
                    found[str(row["id"])] = str(email)
        return found


def directory_of(engine: Any) -> RoleDirectory | None:
    """The engine's role directory: the one it was given, else one over its permission policy's relationship facts
    (None when the policy keeps none: ``NoPolicy``, a ``RoleTable``)."""
    given = getattr(engine, "recipients", None)
    if given is not None:
        return given  # type: ignore[no-any-return]
    port = getattr(engine, "permissions", None)
    relationships = getattr(port, "relationships", None)
    if relationships is None:
        return None
    roles = getattr(getattr(port, "matrix", None), "roles", None)
    tasks = {r.id: r.tasks for r in roles.values() if getattr(r, "tasks", ())} if isinstance(roles, Mapping) else {}
    return FactsDirectory(relationships, tasks)


def _why(explain: Any) -> str:
    if isinstance(explain, Mapping):
        by, reason = explain.get("by") or explain.get("rule"), explain.get("reason")
        return f"{by}: {reason}" if by and reason else str(by or reason or "denied")
    return "denied"


def role_recipients(ctx: Any, role: str, template: str) -> tuple[list[Recipient], dict[str, str]]:
    """The recipients of a mail to ``role`` about the action's instance, and the holders left out as out of scope
    (person -> why); :class:`NoRecipients` when the mail cannot reach everyone it is for (see the module docstring).
    ``ctx`` is the workflow action's :class:`~regelwerk.workflows.actions.ActionContext`."""
    instance = ctx.instance
    directory = directory_of(ctx.engine)
    if directory is None:
        raise NoRecipients(role, template, instance.id,
                           "the engine has no role directory: its permission policy keeps no relationship facts "
                           "(build the Engine with permissions='<matrix>', or pass recipients=<a RoleDirectory>)")
    holders = list(dict.fromkeys(directory.holders(role, ctx.now, ctx.tx)))
    if not holders:
        raise NoRecipients(role, template, instance.id, "nobody holds the role (no active has_role fact)",
                           nobody=True)
    workflow = ctx.engine.workflows().get(instance.workflow)
    resource_type = str(getattr(workflow, "resource_type", "") or instance.workflow)
    # the resource as a fire's permission sees it (WorkflowRuntime._ask), with the data this transition leaves
    resource = {**ctx.data, "id": instance.id, "workflow": instance.workflow, "state": ctx.dest, "data": ctx.data,
                "created_by": instance.created_by}
    context = {"event": ctx.event, "from": ctx.source, "to": ctx.dest, "now": ctx.now, "instance_id": instance.id}
    port = ctx.engine.permissions
    in_scope: list[str] = []
    out_of_scope: dict[str, str] = {}
    malformed: list[str] = []
    for person in holders:
        decision = port.check(Actor(person), SCOPE_ACTION, resource_type, resource, context)
        if decision.allowed:
            in_scope.append(person)
        else:
            out_of_scope[person] = _why(decision.explain)
            if isinstance(decision.explain, Mapping) and decision.explain.get("by") == "malformed":
                malformed.append(person)
    if malformed:  # not out of scope: whether they may read it is unknown (never skipped, never mailed around)
        raise NoRecipients(role, template, instance.id,
                           f"the instance's data is malformed for the permission policy, so whether "
                           f"{', '.join(malformed)} may {SCOPE_ACTION} it is unknown ("
                           + "; ".join(out_of_scope[p] for p in malformed) + ")",
                           holders=holders, out_of_scope=out_of_scope)
    if not in_scope:
        raise NoRecipients(role, template, instance.id,
                           f"no holder of the role may {SCOPE_ACTION} this {resource_type} (out of scope: "
                           + "; ".join(f"{p}: {why}" for p, why in out_of_scope.items()) + ")",
                           holders=holders, out_of_scope=out_of_scope, nobody=True)
    addresses = directory.addresses(in_scope, ctx.tx)
    missing = [p for p in in_scope if not usable_address(addresses.get(p))]
    if missing:
        raise NoRecipients(role, template, instance.id,
                           f"no usable mail address for {', '.join(missing)} (an active account or the employee "
                           "directory's e-mail)", holders=holders, without_address=missing,
                           out_of_scope=out_of_scope)
    return [Recipient(p, addresses[p]) for p in in_scope], out_of_scope
