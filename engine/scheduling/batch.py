"""Starting many workflow instances in one transaction: their rows written with ``executemany``.

The tick's activation phase starts up to a batch of instances per transaction. Each start runs the
runtime's own code (``Engine._start_tx``: data check, on-enter actions, timers, history) against a
:class:`StartBuffer` instead of the store's transaction: new instances, their history rows and their
timers are kept and written per table in one ``executemany`` each when the batch ends (or as soon as
anything else is asked of the transaction: every other method, and ``connection``, first writes what is
kept, so an action reading the store sees its own batch). Whether an instance exists is asked once per
batch (:func:`existing_ids`). The store's rows are the same as with one start at a time.

The SQL writes use the store's own tables when the transaction is a SQL store's (it has a
``connection``); any other store gets the same calls one by one through its ``StoreTx``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from regelwerk.errors import ConflictError
from regelwerk.store.records import HistoryEntry, InstanceRecord, TimerRecord

__all__ = ["StartBuffer", "existing_ids"]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sql(tx: Any) -> Any:
    return getattr(tx, "connection", None)


def existing_ids(tx: Any, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` are instances in the store (one query per 500 ids on SQL)."""
    wanted = sorted(set(ids))
    conn = _sql(tx)
    if conn is None:
        return {i for i in wanted if tx.get(i) is not None}
    import sqlalchemy as sa
    from regelwerk.store.workflow_tables import rw_instances

    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        found.update(conn.execute(sa.select(rw_instances.c.id).where(rw_instances.c.id.in_(chunk))).scalars())
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

    def update(self, record: InstanceRecord, expected_version: int, data_changed: bool = True) -> None:
        kept = self._new.get(record.id)
        if kept is not None and kept.version == expected_version:
            self._new[record.id] = record
            return
        self.flush()
        self._tx.update(record, expected_version, data_changed)

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
        conn = _sql(self._tx)
        if conn is None:
            for record in new:
                self._tx.insert(record)
            for entry in history:
                self._tx.add_history(entry)
            for timer in timers:
                self._tx.add_timer(timer)
            return
        from regelwerk.store.workflow_tables import rw_history, rw_instances, rw_timers

        if new:
            conn.execute(rw_instances.insert(), [{
                "id": r.id, "workflow": r.workflow, "definition_version": r.definition_version, "state": r.state,
                "data": dict(r.data), "version": r.version, "timers_pending": r.timers_pending,
                "created_by": r.created_by, "created_at": _utc(r.created_at), "updated_at": _utc(r.updated_at)}
                for r in new])
        if history:
            conn.execute(rw_history.insert(), [{
                "instance_id": e.instance_id, "version": e.version, "event": e.event, "from_state": e.from_state,
                "to_state": e.to_state, "actor": e.actor, "at": _utc(e.at),
                "definition_version": e.definition_version, "explain": dict(e.explain)} for e in history])
        if timers:
            conn.execute(rw_timers.insert(), [{
                "instance_id": t.instance_id, "state": t.state, "event": t.event, "data": dict(t.data),
                "due_at": _utc(t.due_at), "status": "pending", "fired_at": None, "note": ""} for t in timers])
