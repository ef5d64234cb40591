"""The store port: what the workflow runtime needs from persistence.

A host application can implement :class:`Store` against its own database; every implementation
must pass :class:`regelwerk.store.contract.StoreContract`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from regelwerk.store.records import AuditEntry, DefinitionRecord, HistoryEntry, InstanceRecord, TimerRecord

__all__ = ["Store", "StoreTx"]


@runtime_checkable
class StoreTx(Protocol):
    """One unit of work: everything written through it commits together or not at all.

    ``connection`` is the SQLAlchemy ``Connection`` for SQL stores (other areas write their rows in the
    same transaction through it) and None for stores without one.
    """

    connection: Any

    def get(self, instance_id: str) -> InstanceRecord | None:
        """The instance, or None."""

    def insert(self, record: InstanceRecord) -> None:
        """Add a new instance; ``ConflictError`` (expected version 0) when the id exists."""

    def update(self, record: InstanceRecord, expected_version: int, data_changed: bool = True) -> None:
        """Replace the instance if its stored version is ``expected_version``; else ``ConflictError``
        carrying the current version and state (``UnknownInstance`` when it is gone).

        ``data_changed=False`` promises that ``record.data`` equals the stored data (a store may skip it).
        """

    def instances(self, workflow: str | None = None, state: str | None = None,
                  definition_version: str | None = None, limit: int | None = None) -> list[InstanceRecord]:
        """Instances matching every given filter, ordered by id."""

    def add_history(self, entry: HistoryEntry) -> None:
        """Append a history row."""

    def history(self, instance_id: str) -> list[HistoryEntry]:
        """Every history row of an instance, oldest first."""

    def add_timer(self, timer: TimerRecord) -> None:
        """Store a pending timer."""

    def cancel_timers(self, instance_id: str, at: datetime) -> int:
        """Cancel the instance's pending timers; how many were cancelled."""

    def timers(self, instance_id: str) -> list[TimerRecord]:
        """Every timer of an instance (any status), oldest first."""

    def claim_due_timer(self, now: datetime) -> TimerRecord | None:
        """The oldest pending timer due at ``now``, locked for this transaction (others skip it)."""

    def finish_timer(self, timer_id: int, status: str, at: datetime, note: str = "") -> None:
        """Mark a claimed timer ``fired`` or ``failed``."""

    def add_audit(self, entry: AuditEntry) -> None:
        """Append an audit row."""

    def audit(self, instance_id: str | None = None) -> list[AuditEntry]:
        """Audit rows (of one instance, if given), oldest first."""

    def put_definition(self, record: DefinitionRecord) -> None:
        """Keep a definition version's source (a no-op if that version is stored already)."""

    def get_definition(self, kind: str, name: str, version: str) -> DefinitionRecord | None:
        """A stored definition version."""


@runtime_checkable
class Store(Protocol):
    """A persistence adapter: hands out units of work."""

    url: str

    def transaction(self) -> AbstractContextManager[StoreTx]:
        """A read-write unit of work (commits on normal exit, rolls back on an exception)."""

    def read(self) -> AbstractContextManager[StoreTx]:
        """A read-only unit of work (never blocks writers longer than needed)."""

    def setup(self) -> None:
        """Create the tables if they are missing (embedded use; production uses migrations)."""

    def close(self) -> None:
        """Release connections."""


def sort_instances(records: Sequence[InstanceRecord]) -> list[InstanceRecord]:
    """Instances in id order (the order every store returns)."""
    return sorted(records, key=lambda r: r.id)
