"""The one SQLAlchemy ``MetaData`` every part of regelwerk declares its tables on.

Each area declares its tables in its own module on :data:`metadata` (workflow instances,
history and timers in ``engine.store``; scheduler items in ``engine.scheduling``; the outbox
in the recruitment/templates part...). :func:`all_tables` imports those modules so that
``create_all`` and the Alembic migrations see every table. A host application can include
the tables in its own metadata with ``metadata.tables[...].to_metadata(host_metadata)``.
"""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

__all__ = ["TABLE_MODULES", "all_tables", "metadata"]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: Modules that declare tables on ``metadata`` (each area adds its module here, one line each).
TABLE_MODULES: list[str] = [
    "engine.store.workflow_tables",
    "engine.scheduling.tables",
    "engine.permissions.tables",
    "engine.outbox.tables",
    "plugins.recruitment.tables",
    "engine.simulation.tables",
    "plugins.mijnloket.tables",
]


def all_tables() -> MetaData:
    """Import every table module and return the shared metadata."""
    for module in TABLE_MODULES:
        importlib.import_module(module)
    return metadata
