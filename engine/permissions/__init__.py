"""Permission matrices: roles, scopes, consent, explicit denies and per-user rights.

Public API (import from here; SQL stores from :mod:`regelwerk.permissions.sql` and
:mod:`regelwerk.permissions.invitations`, which import SQLAlchemy lazily)::

    matrix = compiled.get("PermissionMatrix", "step2hr")
    decision = matrix.decide(actor, "read", "manager_log", {"subject": "bram", "author": "anna"}, relations, now)
    decision.allowed, decision.explain

    port = MatrixPermissions(compiled, relations, "step2hr", audit=store_audit(store))
    port.check(actor, "write", "manager_log", resource, {"now": now})   # -> Decision; denied writes audited
"""

from __future__ import annotations

from regelwerk.permissions.adapter import AuditSink, MatrixPermissions, store_audit
from regelwerk.permissions.model import SCOPES, Decision, PermissionMatrix, ResourceType, Right, Role, Rule, UserRight
from regelwerk.permissions.relations import MemoryRelationships, Relation, RelationIndex, Relationships

__all__ = [
    "SCOPES",
    "AuditSink",
    "Decision",
    "MatrixPermissions",
    "MemoryRelationships",
    "PermissionMatrix",
    "Relation",
    "RelationIndex",
    "Relationships",
    "ResourceType",
    "Right",
    "Role",
    "Rule",
    "UserRight",
    "store_audit",
]
