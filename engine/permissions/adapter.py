"""The permission port the workflow runtime and hosts call: ``check(actor, action, resource_type, resource, context)``.

:class:`MatrixPermissions` binds one compiled matrix to a relationship store and an audit sink. Every
denied *write* (an action that is not one of the resource's read actions) is passed to the audit sink;
:func:`store_audit` writes those to the workflow store's audit table (``rw_audit``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from regelwerk.actors import Actor
from regelwerk.errors import PermissionDenied
from regelwerk.permissions.model import Decision, PermissionMatrix
from regelwerk.permissions.relations import Relation, Relationships

__all__ = ["LINK_KINDS", "AuditSink", "MatrixPermissions", "store_audit"]

#: The relation kinds an actor may create or end through :meth:`MatrixPermissions.link` / ``unlink`` (the matrix
#: decides the act on the resource type, e.g. ``create`` a ``consent_link``): their own consent. The facts that give
#: roles, rights or tasks or place people in the organisation (``has_role``, ``reports_to``...) are the host's.
LINK_KINDS = frozenset({"consent"})

#: Receives one plain record per audited decision:
#: ``{at, actor, action: "permission.denied", detail: {action, resource_type, resource_id, explain}}``.
AuditSink = Callable[[Mapping[str, Any]], None]


def store_audit(store: Any) -> AuditSink:
    """An audit sink writing to a workflow store's audit table.

    Inside a unit of work on ``store`` (a refused fire) the row joins that unit as a refusal: written
    once, kept when the unit rolls back, and never in a second write transaction while the first is
    open. Outside one it gets its own transaction.
    """
    from regelwerk.store.records import AuditEntry
    from regelwerk.store.unit import current_unit

    def sink(record: Mapping[str, Any]) -> None:
        entry = AuditEntry(at=record["at"], actor=record["actor"], action=record["action"],
                           instance_id=record.get("instance_id"), detail=record["detail"])
        unit = current_unit(store)
        if unit is not None:
            unit.refuse(entry)
            return
        with store.transaction() as tx:
            tx.add_audit(entry)

    return sink


def _now() -> datetime:
    return datetime.now(UTC)


class MatrixPermissions:
    """A permission port over one compiled ``PermissionMatrix``.

    ``bundle_or_matrix`` is a ``CompiledBundle`` (the matrix is looked up by ``matrix_name``) or a
    compiled :class:`PermissionMatrix`. ``context["now"]`` overrides the clock for one question;
    ``context["instance_id"]`` is copied into audit records.
    """

    def __init__(self, bundle_or_matrix: Any, relationships: Relationships, matrix_name: str = "",
                 audit: AuditSink | None = None, clock: Callable[[], datetime] = _now,
                 audit_reads: bool = False) -> None:
        if isinstance(bundle_or_matrix, PermissionMatrix):
            self.matrix = bundle_or_matrix
        else:
            self.matrix = bundle_or_matrix.get("PermissionMatrix", matrix_name)
        self.relationships = relationships
        self.audit = audit
        self.clock = clock
        self.audit_reads = audit_reads
        self.audited: list[Mapping[str, Any]] = []  # the last records (kept when no sink is given)

    def check(self, actor: Actor | str | Mapping[str, Any], action: str, resource_type: str,
              resource: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None) -> Decision:
        """Decide (with a full explanation when denied); audit a denied write."""
        context = context or {}
        actor = Actor.of(actor)
        now = context.get("now") or self.clock()
        field_group = context.get("field_group")
        decision = self.matrix.decide(actor, action, resource_type, resource, self.relationships, now, context,
                                      field_group=field_group)
        if not decision.allowed:
            decision = self.matrix.decide(actor, action, resource_type, resource, self.relationships, now, context,
                                          field_group=field_group, explain=True)
            if self.audit_reads or self.matrix.is_write(resource_type, action):
                self._audit(actor, action, resource_type, resource, context, now, decision)
        return decision

    def scope_fields(self, resource_type: str) -> tuple[str, ...]:
        """The resource fields this matrix's scopes read for ``resource_type`` (its subject, author and department
        fields, and the fields rules name with ``of``); the workflow runtime keeps payloads from changing them
        through transitions no permission decides."""
        return self.matrix.scope_fields(resource_type)

    def check_many(self, actor: Actor | str | Mapping[str, Any],
                   questions: Sequence[tuple[str, str, Mapping[str, Any] | None]],
                   context: Mapping[str, Any] | None = None, *, explain: bool = False) -> list[Decision]:
        """Decide many ``(action, resource_type, resource)`` questions for one actor at one moment (a batch).

        The same answers as :meth:`check` one by one, and every denied write is audited once, in order. A
        denial carries the deciding rule and reason; ``explain=True`` gives each denial the full explanation
        (every rule considered), as :meth:`check` does.
        """
        context = context or {}
        actor = Actor.of(actor)
        now = context.get("now") or self.clock()
        field_group = context.get("field_group")
        matrix, relationships = self.matrix, self.relationships
        bound = matrix.bound
        deciders: dict[tuple[str, str], Callable[..., Decision]] = {}
        out: list[Decision] = []
        for action, resource_type, resource in questions:
            key = (resource_type, action)
            fn = deciders.get(key)
            if fn is None:
                fn = deciders[key] = bound(resource_type, action, field_group)
            decision = fn(actor, resource, relationships, now, context)
            if not decision.allowed:
                if explain:
                    decision = matrix.decide(actor, action, resource_type, resource, relationships, now, context,
                                             field_group=field_group, explain=True)
                if self.audit_reads or matrix.is_write(resource_type, action):
                    self._audit(actor, action, resource_type, resource, context, now, decision)
            out.append(decision)
        return out

    def require(self, actor: Actor | str | Mapping[str, Any], action: str, resource_type: str,
                resource: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None) -> Decision:
        """Like :meth:`check`, but raise :class:`~regelwerk.errors.PermissionDenied` when not allowed."""
        decision = self.check(actor, action, resource_type, resource, context)
        if not decision.allowed:
            rid = (resource or {}).get("id")
            raise PermissionDenied(Actor.of(actor).id, action, resource_type + (f":{rid}" if rid is not None else ""),
                                   dict(decision.explain))
        return decision

    def _audit(self, actor: Actor, action: str, resource_type: str, resource: Mapping[str, Any] | None,
               context: Mapping[str, Any], now: datetime, decision: Decision) -> None:
        record = {
            "at": now, "actor": actor.id, "action": "permission.denied",
            "instance_id": context.get("instance_id"),
            "detail": {"action": action, "resource_type": resource_type,
                       "resource_id": (resource or {}).get("id"), "roles": list(actor.roles),
                       "by": decision.by, "reason": decision.explain.get("reason", ""),
                       "matrix": self.matrix.name},
        }
        self.audited.append(record)
        del self.audited[:-100]
        if self.audit is not None:
            self.audit(record)

    # --- consent links through the matrix (the professional's initiative is enforced here) -------

    def _linkable(self, actor: Actor, action: str, kind: str, resource_type: str, context: Mapping[str, Any],
                  now: datetime) -> None:
        """An actor links or unlinks only the kinds in :data:`LINK_KINDS`: the matrix decides ``create`` on a consent
        link, not which fact it becomes. Anything else is ``PermissionDenied`` (``by: kind``), audited (found by
        attack: a story event or scenario step ``link`` with ``kind: has_role`` was decided as the nurse creating her
        own consent link and made her HR)."""
        if kind in LINK_KINDS:
            return
        decision = Decision(False, {
            "decision": "deny", "by": "kind", "actor": actor.id, "action": action, "resource": resource_type,
            "kind": kind, "reason": f"a person links or unlinks only {', '.join(sorted(LINK_KINDS))} facts; {kind!r} "
                                    "facts (roles, rights, tasks, the organisation) are the host's to write"})
        self._audit(actor, action, resource_type, None, context, now, decision)
        raise PermissionDenied(actor.id, action, f"{resource_type}:{kind}", dict(decision.explain))

    def link(self, actor: Actor | str | Mapping[str, Any], subject: str, target: str, *, valid_from: Any = None,
             valid_to: Any = None, kind: str = "consent", resource_type: str = "consent_link",
             context: Mapping[str, Any] | None = None) -> Relation:
        """Create a relation after checking ``create`` on ``resource_type`` (e.g. only the professional links); only
        a kind of :data:`LINK_KINDS`."""
        context = dict(context or {})
        now = context.get("now") or self.clock()
        context["now"] = now
        actor = Actor.of(actor)
        self._linkable(actor, "create", kind, resource_type, context, now)
        resource = {"subject": subject, "target": target, "valid_from": valid_from, "valid_to": valid_to,
                    **dict(context.get("resource") or {})}
        self.require(actor, "create", resource_type, resource, context)
        return self.relationships.relate(kind, subject, target, valid_from=valid_from, valid_to=valid_to,
                                         by=actor.id, now=now)

    def unlink(self, actor: Actor | str | Mapping[str, Any], subject: str, target: str, *, action: str = "withdraw",
               kind: str = "consent", resource_type: str = "consent_link",
               context: Mapping[str, Any] | None = None) -> list[Relation]:
        """End a relation after checking ``action`` (``withdraw`` by the professional, ``remove`` by the employer);
        only a kind of :data:`LINK_KINDS`."""
        context = dict(context or {})
        now = context.get("now") or self.clock()
        context["now"] = now
        actor = Actor.of(actor)
        self._linkable(actor, action, kind, resource_type, context, now)
        resource = {"subject": subject, "target": target, **dict(context.get("resource") or {})}
        self.require(actor, action, resource_type, resource, context)
        return self.relationships.unrelate(kind, subject, target, at=now, by=actor.id)
