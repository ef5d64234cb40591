"""The MijnLoket pack: Loket.nl's MijnLoket product catalog and its tier (Start, Plus, Pro)."""

from __future__ import annotations

from regelwerk.registry import Registry

__all__ = ["MijnLoketPlugin", "plugin"]


class MijnLoketPlugin:
    """Registers the ProductCatalog kind (with its employer workflow's action and guard functions), the
    ``tier`` scenario step, ``regelwerk tier`` and the ``sign_addendum``/``activate_product`` story events
    of ``regelwerk simulate``. The pack has no tables of its own: employers' activations are workflow
    instances (``<catalog>-employer``)."""

    name = "mijnloket"

    def register(self, registry: Registry) -> None:
        """Add the pack's kind, step, command and story events."""
        from regelwerk_packs.mijnloket import kind, report, simulation

        report.register(registry, self.name)

        kind.register(registry, self.name)
        simulation.register(registry, self.name)


plugin = MijnLoketPlugin()
