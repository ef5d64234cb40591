"""The core plugin: the generic kinds, actions, functions, scenario steps and commands regelwerk ships.

It registers through the same entry-point group as every other plugin
(``regelwerk.plugins``), so the core has no privileges an outside plugin lacks.
"""

from __future__ import annotations

import importlib

from regelwerk.registry import Registry

__all__ = ["CORE_AREAS", "CorePlugin", "plugin"]

#: Each core area's module with a ``register(registry, plugin_name)`` function, in registration order
#: (workflows before permissions: the ``render`` command group is the workflows' and permissions join it).
CORE_AREAS = (
    "regelwerk.functions",
    "regelwerk.facts_kind",
    "regelwerk.workflows.kind",
    "regelwerk.rules.kind",
    "regelwerk.permissions.kind",
    "regelwerk.scheduling.kind",
    "regelwerk.outbox.registration",
    "regelwerk.digests.kind",
    "regelwerk.imports.kind",
    "regelwerk.report.command",
    "regelwerk.simulation.command",
    "regelwerk.service.command",
)


class CorePlugin:
    """Registers the core areas (workflows, rules, decision tables, permissions, schedules, templates...)."""

    name = "core"

    def register(self, registry: Registry) -> None:
        """Add every core area's kinds, actions, functions, steps and commands."""
        from regelwerk import scenarios

        scenarios.register_core_steps(registry, self.name)
        for module in CORE_AREAS:
            importlib.import_module(module).register(registry, self.name)


plugin = CorePlugin()
