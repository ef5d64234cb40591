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
        from engine.rules import kind as rules; rules.register(registry, self.name)  # noqa: E702
        from engine.scheduling import kind as scheduling; scheduling.register(registry, self.name)  # noqa: E702
        from engine.workflows import kind as workflows; workflows.register(registry, self.name)  # noqa: E702
        from engine.permissions import kind as permissions; permissions.register(registry, self.name)  # noqa: E702
        from engine.outbox import registration as outbox; outbox.register(registry, self.name)  # noqa: E702
        from engine.report import command as report; report.register(registry, self.name)  # noqa: E702
        from engine.simulation import command as simulation; simulation.register(registry, self.name)  # noqa: E702


plugin = CorePlugin()
