"""Persistence: the ``Store`` port, the SQLAlchemy store (SQLite/PostgreSQL), an in-memory store.

``open_store(url)`` picks the implementation from the URL: ``memory://`` for the in-memory reference
store, any SQLAlchemy URL (``sqlite:///file``, ``postgresql+psycopg://...``) for :class:`SqlStore`.
Heavy imports (SQLAlchemy) happen only when a SQL store is opened.
"""

from __future__ import annotations

from typing import Any

from regelwerk.store.base import Store, StoreTx
from regelwerk.store.records import AuditEntry, DefinitionRecord, HistoryEntry, InstanceRecord, TimerRecord

__all__ = [
    "AuditEntry",
    "DefinitionRecord",
    "HistoryEntry",
    "InstanceRecord",
    "Store",
    "StoreTx",
    "TimerRecord",
    "open_store",
]


def open_store(url: str, registry: Any = None, **options: Any) -> Store:
    """A store for a URL: ``memory://``, a registered ``StoreSpec`` scheme, or a SQLAlchemy URL."""
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme == "memory":
        from regelwerk.store.memory import MemoryStore

        return MemoryStore(url)
    if registry is not None and scheme in getattr(registry, "stores", {}):
        from regelwerk.errors import PluginError, RegelwerkError, is_plugin_fault

        spec = registry.stores[scheme]
        try:
            store: Store = spec.factory(url)
        except RegelwerkError:
            raise
        except BaseException as exc:  # a plugin's store factory: typed at the boundary, the original chained
            if not is_plugin_fault(exc):
                raise
            raise PluginError(f"store {scheme!r} of plugin {spec.plugin!r}", exc) from exc
        return store
    from regelwerk.store.sql import SqlStore

    return SqlStore(url, **options)
