"""What the recruitment pack registers; the action bodies (and SQLAlchemy) load on first use."""

from __future__ import annotations

from typing import Any

from regelwerk.registry import ActionSpec, Registry, lazy

__all__ = ["register_actions"]

_ACTIONS = "regelwerk_packs.recruitment.actions"


def register_actions(registry: Registry, plugin: str) -> None:
    """Register the recruitment actions."""
    obj: dict[str, Any] = {"type": "object", "additionalProperties": False}
    mail = {**obj, "properties": {"purpose": {"type": "string"}, "template": {"type": "string"}}}
    for name, run, description, schema in (
        ("recruitment.sync_status", lazy(f"{_ACTIONS}:sync_status"),
         "keep rw_candidates in step with the workflow (automatic)", obj),
        ("recruitment.on_apply", lazy(f"{_ACTIONS}:on_apply"),
         "run the on_apply actions when an application arrives (automatic)",
         {**obj, "properties": {"actions": {"type": "array"}}}),
        ("recruitment.send_mail", lazy(f"{_ACTIONS}:send_mail"),
         "mail the candidate (template by purpose or name) via the outbox", mail),
        ("recruitment.send_questionnaire", lazy(f"{_ACTIONS}:send_questionnaire"),
         "step2HR: mail the questionnaire about the competencies of function and department",
         {**obj, "properties": {"template": {"type": "string"}}}),
    ):
        registry.add_action(ActionSpec(name, plugin, run, description, schema))
