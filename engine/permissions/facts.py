"""Facts data for the CLI's ``--facts`` file and for scenarios: actors, relations, resources, context.

Shape (YAML or JSON)::

    actors:
      anna: {roles: [leidinggevende], department: verkoop}
    relations:
      - {kind: reports_to, subject: bram, object: anna}
      - {kind: consent, subject: pim, object: manager-1, from: 2026-01-01, until: 2026-03-31}
    resources:
      manager_log:n1: {subject: bram, author: anna}
    context:
      settings: {support_access: true}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regelwerk.actors import actor_from_facts
from regelwerk.errors import UsageError

__all__ = ["actor_from_facts", "parse_resource", "pick_matrix", "resource_from_facts"]


def parse_resource(text: str) -> tuple[str, str | None]:
    """``TYPE[:ID]`` into its parts."""
    resource_type, sep, resource_id = str(text).partition(":")
    if not resource_type:
        raise UsageError(f"resource {text!r} must be TYPE or TYPE:ID")
    return resource_type, (resource_id if sep else None)


def resource_from_facts(text: str, facts: Mapping[str, Any], data: Mapping[str, Any] | None = None
                        ) -> tuple[str, dict[str, Any]]:
    """The resource type and data: ``facts.resources["TYPE:ID"]`` merged with inline ``data`` and ``id``."""
    resource_type, resource_id = parse_resource(text)
    stored = (facts.get("resources") or {}).get(str(text)) or {}
    resource: dict[str, Any] = dict(stored) if isinstance(stored, Mapping) else {}
    if resource_id is not None:
        resource.setdefault("id", resource_id)
    resource.update(dict(data or {}))
    return resource_type, resource


def pick_matrix(compiled: Any, name: str | None) -> Any:
    """The named PermissionMatrix of a compiled bundle, or the only one."""
    if name:
        return compiled.get("PermissionMatrix", name)
    matrices = compiled.of_kind("PermissionMatrix")
    if len(matrices) != 1:
        raise UsageError("name the matrix (--matrix / matrix:)",
                         hint="matrices in this bundle: " + (", ".join(matrices) or "none"))
    return next(iter(matrices.values()))
