"""The in-memory reference store: the contract's simplest implementation (tests, benchmarks, demos).

One store-wide lock serialises units of work; an undo log rolls a failed unit back, so a
transition, its history row and its timers are kept together or not at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any

from regelwerk.errors import ConflictError, UnknownInstance
from regelwerk.store.records import AuditEntry, DefinitionRecord, HistoryEntry, InstanceRecord, TimerRecord

__all__ = ["MemoryStore", "MemoryTx"]


class MemoryTx:
    """A unit of work on a :class:`MemoryStore` (also its own context manager)."""

    __slots__ = ("_store", "_undo", "connection")

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._undo: list[Callable[[], object]] = []
        self.connection: Any = None

    def __enter__(self) -> MemoryTx:
        self._store._lock.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is not None:
                for undo in reversed(self._undo):
                    undo()
        finally:
            self._undo.clear()
            self._store._lock.release()

    # instances
    def get(self, instance_id: str) -> InstanceRecord | None:
        """The instance, or None."""
        return self._store._instances.get(instance_id)

    def insert(self, record: InstanceRecord) -> None:
        """Add a new instance."""
        instances = self._store._instances
        existing = instances.get(record.id)
        if existing is not None:
            raise ConflictError(record.id, 0, existing.version, existing.state)
        instances[record.id] = record
        self._undo.append(lambda: instances.pop(record.id, None))

    def update(self, record: InstanceRecord, expected_version: int, data_changed: bool = True) -> None:
        """Replace the instance if the stored version matches."""
        instances = self._store._instances
        current = instances.get(record.id)
        if current is None:
            raise UnknownInstance(record.id)
        if current.version != expected_version:
            raise ConflictError(record.id, expected_version, current.version, current.state)
        instances[record.id] = record
        self._undo.append(lambda: instances.__setitem__(record.id, current))

    def instances(self, workflow: str | None = None, state: str | None = None,
                  definition_version: str | None = None, limit: int | None = None) -> list[InstanceRecord]:
        """Matching instances by id."""
        out = [r for _, r in sorted(self._store._instances.items())
               if (workflow is None or r.workflow == workflow) and (state is None or r.state == state)
               and (definition_version is None or r.definition_version == definition_version)]
        return out[:limit] if limit is not None else out

    # history
    def add_history(self, entry: HistoryEntry) -> None:
        """Append a history row."""
        store = self._store
        store._history_seq += 1
        rows = store._history.setdefault(entry.instance_id, [])
        rows.append(entry)
        self._undo.append(rows.pop)

    def history(self, instance_id: str) -> list[HistoryEntry]:
        """History of one instance, oldest first."""
        return list(self._store._history.get(instance_id, ()))

    # timers
    def add_timer(self, timer: TimerRecord) -> None:
        """Store a pending timer (ids are assigned here)."""
        from dataclasses import replace

        store = self._store
        store._timer_seq += 1
        stored = replace(timer, id=store._timer_seq, status="pending")
        store._timers[stored.id or 0] = stored
        self._undo.append(lambda: store._timers.pop(stored.id or 0, None))

    def _set_timer(self, timer_id: int, new: TimerRecord) -> None:
        timers = self._store._timers
        old = timers[timer_id]
        timers[timer_id] = new
        self._undo.append(lambda: timers.__setitem__(timer_id, old))

    def cancel_timers(self, instance_id: str, at: datetime) -> int:
        """Cancel the instance's pending timers."""
        from dataclasses import replace

        count = 0
        for timer_id, timer in list(self._store._timers.items()):
            if timer.instance_id == instance_id and timer.status == "pending":
                self._set_timer(timer_id, replace(timer, status="cancelled", fired_at=at))
                count += 1
        return count

    def timers(self, instance_id: str) -> list[TimerRecord]:
        """Every timer of an instance."""
        return [t for _, t in sorted(self._store._timers.items()) if t.instance_id == instance_id]

    def claim_due_timer(self, now: datetime) -> TimerRecord | None:
        """The oldest pending due timer (the store lock already excludes others)."""
        due = [t for t in self._store._timers.values() if t.status == "pending" and t.due_at <= now]
        return min(due, key=lambda t: (t.due_at, t.id or 0)) if due else None

    def finish_timer(self, timer_id: int, status: str, at: datetime, note: str = "") -> None:
        """Mark a timer fired or failed."""
        from dataclasses import replace

        self._set_timer(timer_id, replace(self._store._timers[timer_id], status=status, fired_at=at, note=note))

    # audit and definitions
    def add_audit(self, entry: AuditEntry) -> None:
        """Append an audit row."""
        rows = self._store._audit
        rows.append(entry)
        self._undo.append(rows.pop)

    def audit(self, instance_id: str | None = None) -> list[AuditEntry]:
        """Audit rows, oldest first."""
        return [a for a in self._store._audit if instance_id is None or a.instance_id == instance_id]

    def put_definition(self, record: DefinitionRecord) -> None:
        """Keep a definition version."""
        key = (record.kind, record.name, record.version)
        definitions = self._store._definitions
        if key not in definitions:
            definitions[key] = record
            self._undo.append(lambda: definitions.pop(key, None))

    def get_definition(self, kind: str, name: str, version: str) -> DefinitionRecord | None:
        """A stored definition version."""
        return self._store._definitions.get((kind, name, version))


class MemoryStore:
    """Everything in dicts, guarded by one lock; ``memory://`` in URLs."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.RLock()
        self._instances: dict[str, InstanceRecord] = {}
        self._history: dict[str, list[HistoryEntry]] = {}
        self._history_seq = 0
        self._timers: dict[int, TimerRecord] = {}
        self._timer_seq = 0
        self._audit: list[AuditEntry] = []
        self._definitions: dict[tuple[str, str, str], DefinitionRecord] = {}

    def transaction(self) -> MemoryTx:
        """A unit of work (holds the store lock until it ends)."""
        return MemoryTx(self)

    def read(self) -> MemoryTx:
        """Same as a transaction: reads see a consistent state under the lock."""
        return MemoryTx(self)

    def setup(self) -> None:
        """Nothing to create."""

    def close(self) -> None:
        """Nothing to release."""
