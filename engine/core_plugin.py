"""The core plugin: the generic kinds, actions, functions and scenario steps regelwerk ships.

It registers through the same entry-point group as every other plugin
(``regelwerk.plugins``), so the core has no privileges an outside plugin lacks.
"""

from __future__ import annotations

from engine.registry import Registry

__all__ = ["CorePlugin", "plugin"]


class CorePlugin:
    """Registers the core kinds (workflows, rules, decision tables, permissions, schedules)."""

    name = "core"

    def register(self, registry: Registry) -> None:
        """Add the core's kinds, actions, functions and steps."""
        from engine import functions, scenarios

        scenarios.register_core_steps(registry, self.name)
        functions.register(registry, self.name)
        # Each core area registers itself here (one line each).


plugin = CorePlugin()
