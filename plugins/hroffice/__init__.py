"""HROffice pack: Super Admin for whoever creates the account, invitations valid for 48 hours, support access.

The matrix is shipped as YAML (``definitions/standard/permissions/hroffice.yaml``). This pack adds
:func:`create_account` (the creator becomes Super Admin through a ``has_role`` fact), :func:`invitations`
(an invitation store with the matrix's validity) and the scenario step ``create_account``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from regelwerk.registry import Registry, StepSpec

__all__ = ["MATRIX", "HROfficePlugin", "create_account", "invitations", "plugin"]

MATRIX = "hroffice"


def create_account(relationships: Any, creator: str, account: str, now: datetime) -> None:
    """Record that ``creator`` made ``account``: they become its Super Admin."""
    from regelwerk.permissions.relations import local_date, relate_all, zone

    today = local_date(now, getattr(relationships, "zone", None) or zone(None))  # the organisation's date
    # both facts or neither (one transaction where the store offers it): a refused 'authored' left the creator
    # Super Admin of nothing it could name, and a retry made a second has_role
    relate_all(relationships, [{"kind": "has_role", "subject": creator, "object": "super_admin", "valid_from": today},
                               {"kind": "authored", "subject": creator, "object": account}], by=creator, now=now)


def invitations(matrix: Any, url_or_engine: Any = None, **kwargs: Any) -> Any:
    """An invitation store using the matrix's ``invitations.valid_for`` (SQL when a URL/engine is given)."""
    from regelwerk.permissions.invitations import MemoryInvitations, SqlInvitations

    valid_for = matrix.invitation_valid_for or "PT48H"
    kwargs.setdefault("timezone", matrix.timezone)  # day-based validity counts days in the organisation's zone
    if url_or_engine is None:
        return MemoryInvitations(valid_for, **kwargs)
    return SqlInvitations(url_or_engine, valid_for, **kwargs)


def step_create_account(ctx: Any, args: Any, info: Any) -> None:
    """Scenario step: ``actor`` creates the HROffice account ``account``."""
    from regelwerk.permissions.steps import scenario_relations

    rel = scenario_relations(ctx)
    create_account(rel, str(args["actor"]), str(args.get("account", "account")), ctx.now)


class HROfficePlugin:
    """Registers the HROffice pack's scenario step."""

    name = "hroffice"

    def register(self, registry: Registry) -> None:
        """Add the ``create_account`` step."""
        registry.add_step(StepSpec("create_account", self.name, step_create_account, {
            "type": "object", "required": ["actor"], "additionalProperties": False,
            "properties": {"actor": {"type": "string"}, "account": {"type": "string"}},
        }, "HROffice: someone creates the account and so becomes Super Admin"))


plugin = HROfficePlugin()
