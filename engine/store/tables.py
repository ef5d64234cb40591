"""The one SQLAlchemy ``MetaData`` every part of regelwerk declares its tables on.

Each area declares its tables in its own module on :data:`metadata` (workflow instances,
history and timers in ``regelwerk.store``; scheduler items in ``regelwerk.scheduling``; the outbox
in the recruitment/templates part...). :func:`all_tables` imports those modules so that
``create_all`` and the Alembic migrations see every table. A host application can include
the tables in its own metadata with ``metadata.tables[...].to_metadata(host_metadata)``.
Plugins declare their tables the same way and name the module with ``Registry.add_table_module``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from sqlalchemy import MetaData

if TYPE_CHECKING:
    from regelwerk.registry import Registry

__all__ = ["TABLE_MODULES", "all_tables", "metadata"]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: The core's modules that declare tables on ``metadata``. Plugins add theirs with
#: ``registry.add_table_module("package.tables")`` (the recruitment and MijnLoket packs do).
TABLE_MODULES: tuple[str, ...] = (
    "regelwerk.store.workflow_tables",
    "regelwerk.scheduling.tables",
    "regelwerk.permissions.tables",
    "regelwerk.outbox.tables",
    "regelwerk.simulation.tables",
    "regelwerk.imports.tables",
)


def all_tables(registry: Registry | None = None) -> MetaData:
    """Import every table module (the core's and the plugins') and return the shared metadata."""
    from regelwerk.registry import load_registry

    plugin_modules = (registry if registry is not None else load_registry()).table_modules
    for module in (*TABLE_MODULES, *plugin_modules):
        importlib.import_module(module)
    return metadata
