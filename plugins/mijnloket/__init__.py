"""The MijnLoket pack: Loket.nl's MijnLoket product catalog and its tier (Start, Plus, Pro)."""

from __future__ import annotations

from engine.registry import Registry

__all__ = ["MijnLoketPlugin", "plugin"]


class MijnLoketPlugin:
    """Registers the ProductCatalog kind, the ``tier`` scenario step and ``regelwerk tier``."""

    name = "mijnloket"

    def register(self, registry: Registry) -> None:
        """Add the pack's kind, step and command."""
        from plugins.mijnloket import kind

        kind.register(registry, self.name)


plugin = MijnLoketPlugin()
