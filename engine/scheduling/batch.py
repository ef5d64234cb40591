"""Starting many workflow instances in one transaction: their rows written with ``executemany``.

The tick's activation phase starts up to a batch of instances per transaction. Each start runs the
runtime's own code (``Engine._start_tx``: data check, on-enter actions, timers, history) against a
:class:`StartBuffer` instead of the store's transaction: new instances, their history rows and their
timers are kept and written per table in one ``executemany`` each when the batch ends (or as soon as
anything else is asked of the transaction: every other method, and ``connection``, first writes what is
kept, so an action reading the store sees its own batch). Whether an instance exists is asked once per
batch (:func:`existing_ids`). The store's rows are the same as with one start at a time.

A start whose initial state runs no action is kept as its id, its data and its :class:`StartShape` (what the
batch's starts of one definition version share: made once per batch, :meth:`StartBuffer.shape`), not as records:
the SQL store builds its rows column by column (``insert_starts``). Anything else asked of a kept start (``get``,
``update``) or a record kept after it turns the kept starts into their records first, so the rows and their order
are those of the starts one at a time.

The bulk writes go through the store port (``StoreTx.existing`` and ``insert_many``; ``insert_starts`` where the
store has it, else the kept starts' records through ``insert_many``): the SQL store writes one ``executemany`` per
table, the memory store one row at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from regelwerk.errors import ConflictError
from regelwerk.store.records import HistoryEntry, InstanceRecord, StartShape, TimerRecord, start_records

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
        #: starts kept as ``(id, data, shape)`` (all after what ``_new``, ``_history`` and ``_timers`` hold), by id
        self._starts: dict[str, tuple[str, Mapping[str, Any], StartShape]] = {}
        #: the batch's shapes: (workflow, version) -> (its definition version object, actor, moment, shape)
        self._shapes: dict[tuple[str, str], tuple[Any, Any, datetime, StartShape]] = {}

    def shape(self, definition: Any, actor: Any, now: datetime) -> StartShape | None:
        """The shape kept for starts of ``definition`` (a ``Version``) by this ``actor`` at this ``now`` (the same
        objects), or None."""
        kept = self._shapes.get((definition.model.name, definition.version))
        if kept is not None and kept[0] is definition and kept[1] is actor and kept[2] is now:
            return kept[3]
        return None

    def keep_shape(self, definition: Any, actor: Any, now: datetime, shape: StartShape) -> None:
        """Keep ``shape`` for :meth:`shape`."""
        self._shapes[definition.model.name, definition.version] = (definition, actor, now, shape)

    def keep_start(self, instance_id: str, data: Mapping[str, Any], shape: StartShape) -> None:
        """Keep a new instance started as ``shape`` says (the caller made sure it does not exist: :func:`existing_ids`;
        one this batch already keeps is ``ConflictError``, as :meth:`insert`)."""
        kept = self._new.get(instance_id)
        if kept is not None:
            raise ConflictError(instance_id, 0, kept.version, kept.state)
        if instance_id in self._starts:
            raise ConflictError(instance_id, 0, 1, self._starts[instance_id][2].state)
        self._starts[instance_id] = (instance_id, data, shape)

    def _records(self) -> None:
        """The kept starts as records (their instances, history rows and timers after what is kept)."""
        starts = self._starts
        self._starts = {}
        for instance_id, data, shape in starts.values():
            record, entry, timers = shape.records(instance_id, data)
            self._new[instance_id] = record
            self._history.append(entry)
            self._timers.extend(timers)

    def get(self, instance_id: str) -> InstanceRecord | None:
        if instance_id in self._starts:
            self._records()
        if instance_id in self._new:
            return self._new[instance_id]
        self.flush()
        result: InstanceRecord | None = self._tx.get(instance_id)
        return result

    def insert(self, record: InstanceRecord) -> None:
        """Keep a new instance (the caller made sure it does not exist: :func:`existing_ids`)."""
        if self._starts:
            self._records()
        if record.id in self._new:
            raise ConflictError(record.id, 0, self._new[record.id].version, self._new[record.id].state)
        self._new[record.id] = record

    def update(self, record: InstanceRecord, expected_version: int, data_changed: bool = True, *,
               definition_changed: bool = True) -> None:
        if record.id in self._starts:
            self._records()
        kept = self._new.get(record.id)
        if kept is not None and kept.version == expected_version:
            self._new[record.id] = record
            return
        self.flush()
        self._tx.update(record, expected_version, data_changed, definition_changed=definition_changed)

    def add_history(self, entry: HistoryEntry) -> None:
        if self._starts:
            self._records()
        self._history.append(entry)

    def add_timer(self, timer: TimerRecord) -> None:
        if self._starts:
            self._records()
        self._timers.append(timer)

    def __getattr__(self, name: str) -> Any:
        self.flush()
        return getattr(self._tx, name)

    def flush(self) -> None:
        """Write what is kept: instances, then history, then timers (one ``executemany`` each), then the kept starts
        (``insert_starts``: theirs, in the same order)."""
        if not (self._new or self._history or self._timers or self._starts):
            return
        new, history, timers = list(self._new.values()), self._history, self._timers
        starts = list(self._starts.values())
        self._new, self._history, self._timers, self._starts = {}, [], [], {}
        if new or history or timers:
            self._tx.insert_many(new, history, timers)
        if starts:
            insert_starts = getattr(self._tx, "insert_starts", None)
            if insert_starts is not None:
                insert_starts(starts)
                return
            self._tx.insert_many(*start_records(starts))
