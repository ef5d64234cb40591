"""How the templates and outbox part joins the core plugin (one line in engine/core_plugin.py)."""

from __future__ import annotations

from regelwerk.registry import Registry

__all__ = ["register"]


def register(registry: Registry, plugin: str) -> None:
    """Register the Template and MailContext kinds, the ``send_template`` action, ``regelwerk outbox`` and the
    ``expect_outbox`` scenario step."""
    from regelwerk.outbox import action, commands, steps
    from regelwerk.registry import ActionSpec
    from regelwerk.templates import kind

    kind.register(registry, plugin)
    registry.add_action(ActionSpec("send_template", plugin, action.send_template,
                                   "render a Template and put it in the outbox, in the transition's transaction",
                                   action.PARAMS_SCHEMA))
    registry.add_command(commands.outbox_group)
    steps.register(registry, plugin)
