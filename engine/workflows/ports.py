"""The permission port: how the workflow runtime asks "may this actor do this?".

The permissions area (engine/permissions) provides the real matrix; without a port the engine uses
:class:`~regelwerk.permissions.policies.NoPolicy` (refuses everything guarded). :class:`RoleTable` is a
tiny deny-by-default port (action -> roles) for scenarios, tests and simple hosts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from regelwerk.actors import Actor

__all__ = ["Decision", "DecisionLike", "PermissionPort", "RoleTable"]


class DecisionLike(Protocol):
    """What a permission check returns: allowed or not, and a JSON-able explanation."""

    @property
    def allowed(self) -> bool:
        """True when the action is permitted."""

    @property
    def explain(self) -> Any:
        """Why (JSON-able: recorded in history and audit rows)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """A permission decision."""

    allowed: bool
    explain: Any = None


@runtime_checkable
class PermissionPort(Protocol):
    """Checks one action of an actor on one resource."""

    def check(self, actor: Actor, action: str, resource_type: str, resource: Mapping[str, Any],
              context: Mapping[str, Any]) -> DecisionLike:
        """Decide; never raise for a plain "no" (return ``allowed=False`` with an explanation)."""


class RoleTable:
    """Deny by default: an action is allowed to the actors holding one of its listed roles."""

    def __init__(self, table: Mapping[str, Iterable[str]]) -> None:
        self.table = {action: frozenset(roles) for action, roles in table.items()}

    def check(self, actor: Actor, action: str, resource_type: str, resource: Mapping[str, Any],
              context: Mapping[str, Any]) -> Decision:
        """Allowed when the actor has a role listed for the action."""
        roles = self.table.get(action)
        if roles is None:
            return Decision(False, {"rule": "deny-by-default", "action": action})
        matched = sorted(roles.intersection(actor.roles))
        if matched:
            return Decision(True, {"rule": "role", "action": action, "roles": matched})
        return Decision(False, {"rule": "role", "action": action, "needs_one_of": sorted(roles),
                                "actor_roles": list(actor.roles)})
