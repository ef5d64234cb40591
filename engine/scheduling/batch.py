"""Starting many workflow instances in one transaction: their rows written with ``executemany``.

The tick's activation phase starts up to a batch of instances per transaction. Each start runs the
runtime's own code (``Engine._start_tx``: data check, on-enter actions, timers, history) against a
:class:`StartBuffer` instead of the store's transaction: new instances, their history rows and their
timers are kept and written per table in one ``executemany`` each when the batch ends (or as soon as
anything else is asked of the transaction: every other method, and ``connection``, first writes what is
kept, so an action reading the store sees its own batch). Whether an instance exists is asked once per
batch (:func:`existing_ids`). The store's rows are the same as with one start at a time.

The bulk writes go through the store port (``StoreTx.existing`` and ``insert_many``): the SQL store
writes one ``executemany`` per table, the memory store one row at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from regelwerk.errors import ConflictError
from regelwerk.store.records import HistoryEntry, InstanceRecord, TimerRecord

__all__ = ["StartBuffer", "existing_ids"]


def existing_ids(tx: Any, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` are instances in the store (the store port's ``existing``: one query per 500 ids on SQL)."""
    found: set[str] = tx.existing(sorted(set(ids)))
    return found


class StartBuffer:
    """A ``StoreTx`` that keeps new instances, history and timers and writes them in bulk (module docstring)."""

    def __init__(self, tx: Any) -> None:
        self._tx = tx
        self._new: dict[str, InstanceRecord] = {}
        self._history: list[HistoryEntry] = []
        self._timers: list[TimerRecord] = []

    def get(self, instance_id: str) -> InstanceRecord | None:
        if instance_id in self._new:
            return self._new[instance_id]
        self.flush()
        result: InstanceRecord | None = self._tx.get(instance_id)
        return result

    def insert(self, record: InstanceRecord) -> None:
        """Keep a new instance (the caller made sure it does not exist: :func:`existing_ids`)."""
        if record.id in self._new:
            raise ConflictError(record.id, 0, self._new[record.id].version, self._new[record.id].state)
        self._new[record.id] = record

    def update(self, record: InstanceRecord, expected_version: int, data_changed: bool = True, *,
               definition_changed: bool = True) -> None:
        kept = self._new.get(record.id)
        if kept is not None and kept.version == expected_version:
            self._new[record.id] = record
            return
        self.flush()
        self._tx.update(record, expected_version, data_changed, definition_changed=definition_changed)

    def add_history(self, entry: HistoryEntry) -> None:
        self._history.append(entry)

    def add_timer(self, timer: TimerRecord) -> None:
        self._timers.append(timer)

    def __getattr__(self, name: str) -> Any:
        self.flush()
        return getattr(self._tx, name)

    def flush(self) -> None:
        """Write what is kept: instances, then history, then timers (one ``executemany`` each)."""
        if not (self._new or self._history or self._timers):
            return
        new, history, timers = list(self._new.values()), self._history, self._timers
        self._new, self._history, self._timers = {}, [], []
        self._tx.insert_many(new, history, timers)
