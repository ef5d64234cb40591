"""The two policies that are not a matrix: the default that refuses, and the loudly named allow-all.

An :class:`~regelwerk.runtime.Engine` built without ``permissions=`` uses :class:`NoPolicy`: every
permission-guarded start and fire is refused with an explanation that says why. Allowing everything is
never a default; :class:`UnsafeAllowAll` exists for tests and demos that are not about permissions, and
its name and every explanation it gives say so (the history and audit rows carry that text).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from regelwerk.actors import Actor

__all__ = ["NO_POLICY_REASON", "NoPolicy", "PolicyDecision", "UnsafeAllowAll"]

NO_POLICY_REASON = (
    "no permission policy configured: this engine refuses every permission-guarded start and event "
    "(deny by default); build it with permissions='<matrix name>' (a PermissionMatrix of the bundle) "
    "or a PermissionPort")


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """A decision of one of these policies: allowed or not, and a JSON-able explanation."""

    allowed: bool
    explain: Mapping[str, Any]


class NoPolicy:
    """The default policy: refuses everything, naming the missing policy as the reason."""

    name = "no-policy"

    def check(self, actor: Actor, action: str, resource_type: str, resource: Mapping[str, Any],
              context: Mapping[str, Any]) -> PolicyDecision:
        """Always refused."""
        return PolicyDecision(False, {"decision": "deny", "by": self.name, "action": action,
                                      "resource": resource_type, "reason": NO_POLICY_REASON})


class UnsafeAllowAll:
    """UNSAFE: allows every action to everyone. Tests and demos only; never use it in front of real data."""

    name = "UNSAFE-allow-all"

    def check(self, actor: Actor, action: str, resource_type: str, resource: Mapping[str, Any],
              context: Mapping[str, Any]) -> PolicyDecision:
        """Always allowed (and the explanation says it was this policy)."""
        return PolicyDecision(True, {"decision": "allow", "by": self.name, "action": action,
                                     "resource": resource_type,
                                     "reason": "UNSAFE allow-all policy (tests and demos only)"})
