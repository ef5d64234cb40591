"""The in-memory reference store: the contract's simplest implementation (tests, benchmarks, demos).

One store-wide lock serialises units of work; an undo log rolls a failed unit back, so a
transition, its history row and its timers are kept together or not at all.

History and audit rows, which only grow, are kept packed (:func:`_pack_history`, :func:`_pack_audit`): a tuple
of their fields with the mapping (a history row's ``explain``, an audit row's ``detail``) as ``marshal`` bytes. A
tuple of such values is one the cyclic garbage collector stops tracking, so a store of a million rows is not walked
by every full collection (a third of an in-memory fire's time was the collector walking the growing history), and
every read hands out a fresh copy: a caller that changes a returned row's mapping no longer changes the store's
audit trail (as with the SQL store, which reads it from its row). A mapping ``marshal`` cannot write (not plain
data) is kept as it was given.
"""

from __future__ import annotations

import marshal
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from regelwerk.errors import ConflictError, UnknownInstance
from regelwerk.store.records import (
    ERASE_EVENT,
    ERASED_DATA,
    AuditEntry,
    DefinitionRecord,
    DueBatch,
    ErasureCount,
    HistoryEntry,
    IncidentRecord,
    InstanceRecord,
    OutboxEntry,
    PendingFire,
    StartShape,
    TimerRecord,
    start_records,
)

__all__ = ["MemoryRows", "MemoryStore", "MemoryTx"]

#: a kept history or audit row: packed (a tuple, see the module), or the record as given
_Kept = Any


def _blob(mapping: Mapping[str, Any]) -> bytes | None:
    """``mapping`` as ``marshal`` bytes (empty: b""); None when it holds what ``marshal`` cannot write."""
    if not mapping:
        return b""
    try:
        return marshal.dumps(mapping)  # type: ignore[arg-type]  # any value: ValueError when it cannot
    except ValueError:  # a read-only mapping (regelwerk.frozen) or another type: as plain data, if it is
        from regelwerk.frozen import thaw

        try:
            return marshal.dumps(thaw(mapping))
        except ValueError:
            return None


def _unblob(blob: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = marshal.loads(blob) if blob else {}
    return loaded


def _pack_history(entry: HistoryEntry) -> _Kept:
    blob = _blob(entry.explain)
    if blob is None:
        return entry
    return (entry.instance_id, entry.event, entry.from_state, entry.to_state, entry.actor, entry.at,
            entry.definition_version, entry.version, blob, entry.id)


def _history_entry(kept: _Kept) -> HistoryEntry:
    if type(kept) is not tuple:
        return kept  # type: ignore[no-any-return]
    iid, event, from_state, to_state, actor, at, version_id, version, blob, row_id = kept
    return HistoryEntry(iid, event, from_state, to_state, actor, at, version_id, version, _unblob(blob), row_id)


def _pack_audit(entry: AuditEntry) -> _Kept:
    blob = _blob(entry.detail)
    if blob is None:
        return entry
    return (entry.at, entry.actor, entry.action, entry.instance_id, blob, entry.id)


def _audit_entry(kept: _Kept) -> AuditEntry:
    if type(kept) is not tuple:
        return kept  # type: ignore[no-any-return]
    at, actor, action, instance_id, blob, row_id = kept
    return AuditEntry(at, actor, action, instance_id, _unblob(blob), row_id)


def _audit_instance(kept: _Kept) -> str | None:
    instance_id: str | None = kept[3] if type(kept) is tuple else kept.instance_id
    return instance_id


def _matches(row: Mapping[str, Any], match: Mapping[str, Any] | None) -> bool:
    for name, value in (match or {}).items():
        if isinstance(value, (list, tuple, set, frozenset)):
            if row.get(name) not in value:
                return False
        elif row.get(name) != value:
            return False
    return True


class MemoryRows:
    """:class:`~regelwerk.store.base.Rows` as a list of dicts, undone with the transaction."""

    __slots__ = ("_rows", "_tx")

    def __init__(self, tx: MemoryTx, rows: list[dict[str, Any]]) -> None:
        self._tx = tx
        self._rows = rows

    def _snapshot(self) -> None:
        rows = self._rows
        old = [dict(r) for r in rows]
        self._tx._undo.append(lambda: rows.__setitem__(slice(None), old))

    def insert(self, values: Mapping[str, Any]) -> None:
        """Add a row."""
        self._rows.append(dict(values))
        self._tx._undo.append(self._rows.pop)

    def find(self, match: Mapping[str, Any] | None = None, order_by: str | None = None) -> list[dict[str, Any]]:
        """Matching rows."""
        found = [dict(r) for r in self._rows if _matches(r, match)]
        return sorted(found, key=lambda r: (r.get(order_by) is None, r.get(order_by))) if order_by else found

    def first(self, match: Mapping[str, Any]) -> dict[str, Any] | None:
        """One matching row, or None."""
        return next((dict(r) for r in self._rows if _matches(r, match)), None)

    def update(self, match: Mapping[str, Any], values: Mapping[str, Any]) -> int:
        """Change matching rows."""
        hits = [r for r in self._rows if _matches(r, match)]
        if hits:
            self._snapshot()
            for row in (r for r in self._rows if _matches(r, match)):
                row.update(values)
        return len(hits)

    def delete(self, match: Mapping[str, Any]) -> int:
        """Remove matching rows."""
        kept = [r for r in self._rows if not _matches(r, match)]
        gone = len(self._rows) - len(kept)
        if gone:
            self._snapshot()
            self._rows[:] = kept
        return gone


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

    def existing(self, instance_ids: Sequence[str]) -> set[str]:
        """Which of these ids are instances."""
        return {i for i in instance_ids if i in self._store._instances}

    def insert_many(self, records: Sequence[InstanceRecord], history: Sequence[HistoryEntry] = (),
                    timers: Sequence[TimerRecord] = ()) -> None:
        """One by one (the memory store has no round trips to save)."""
        for record in records:
            self.insert(record)
        for entry in history:
            self.add_history(entry)
        for timer in timers:
            self.add_timer(timer)

    def insert_starts(self, starts: Sequence[tuple[str, Mapping[str, Any], StartShape]]) -> None:
        """The starts' records (``shape.records``), through :meth:`insert_many`."""
        self.insert_many(*start_records(starts))

    def update(self, record: InstanceRecord, expected_version: int, data_changed: bool = True, *,
               definition_changed: bool = True) -> None:
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
        rows.append(_pack_history(entry))
        self._undo.append(rows.pop)

    def history(self, instance_id: str) -> list[HistoryEntry]:
        """History of one instance, oldest first."""
        return [_history_entry(kept) for kept in self._store._history.get(instance_id, ())]

    # timers
    def add_timer(self, timer: TimerRecord) -> None:
        """Store a pending timer (ids are assigned here)."""

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
        """Cancel the instance's pending timers and its failed timers waiting for a person (an open incident)."""

        count = 0
        for timer_id in self.pending_timers([instance_id])[instance_id]:
            self._set_timer(timer_id, replace(self._store._timers[timer_id], status="cancelled", fired_at=at))
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
        """Mark a timer fired, failed or cancelled."""
        self._set_timer(timer_id, replace(self._store._timers[timer_id], status=status, fired_at=at, note=note))

    def finish_timers(self, finished: Sequence[tuple[int, str, datetime, str]]) -> None:
        """:meth:`finish_timer` for many."""
        for timer_id, status, at, note in finished:
            self.finish_timer(timer_id, status, at, note)

    def give_up_timer(self, timer_id: int, at: datetime, note: str = "") -> bool:
        """Mark a pending timer failed (a failed one stays as it is); False when it fired or was cancelled."""
        timer = self._store._timers.get(timer_id)
        if timer is None or timer.status not in ("pending", "failed"):
            return False
        if timer.status == "pending":
            self.finish_timer(timer_id, "failed", at, note)
        return True

    def lock_instances(self, instance_ids: Sequence[str]) -> None:
        """Nothing: the memory store's units hold its one lock."""

    def pending_timers(self, instance_ids: Sequence[str]) -> dict[str, set[int]]:
        """The ids of these instances' timers a cancel would change (pending; failed with an open incident)."""
        found: dict[str, set[int]] = {i: set() for i in instance_ids}
        waiting = {(i.instance_id, i.timer_id) for i in self._store._incidents.values()
                   if i.status == "open" and i.timer_id is not None}
        for timer_id, timer in self._store._timers.items():
            if timer.instance_id in found and (timer.status == "pending" or (
                    timer.status == "failed" and (timer.instance_id, timer_id) in waiting)):
                found[timer.instance_id].add(timer_id)
        return found

    def update_many(self, updates: Sequence[tuple[InstanceRecord, int, bool]], *,
                    definition_changed: bool = True) -> None:
        """:meth:`update` for each, in order."""
        for record, expected, data_changed in updates:
            self.update(record, expected, data_changed)

    def get_many(self, instance_ids: Sequence[str]) -> dict[str, InstanceRecord]:
        """Those of these instances that exist, by id."""
        instances = self._store._instances
        return {i: instances[i] for i in instance_ids if i in instances}

    # audit and definitions
    def add_audit(self, entry: AuditEntry) -> None:
        """Append an audit row."""
        rows = self._store._audit
        rows.append(_pack_audit(entry))
        self._undo.append(rows.pop)

    def add_audits(self, entries: Sequence[AuditEntry]) -> None:
        """Append several audit rows in order."""
        for entry in entries:
            self.add_audit(entry)

    def audit(self, instance_id: str | None = None) -> list[AuditEntry]:
        """Audit rows, oldest first."""
        return [_audit_entry(a) for a in self._store._audit if instance_id is None or _audit_instance(a) == instance_id]

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

    def rows(self, table: str) -> MemoryRows:
        """A pack's own table, kept in memory by name."""
        return MemoryRows(self, self._store._tables.setdefault(table, []))

    # savepoints, timers in batches
    @contextmanager
    def savepoint(self) -> Iterator[MemoryTx]:
        """Undo only what was done inside when it raises."""
        mark = len(self._undo)
        try:
            yield self
        except BaseException:
            while len(self._undo) > mark:
                self._undo.pop()()
            raise

    def claim_due_timers(self, now: datetime, limit: int) -> list[TimerRecord]:
        """The oldest pending due timers (the store lock already excludes others)."""
        due = [t for t in self._store._timers.values() if t.status == "pending" and t.due_at <= now]
        return sorted(due, key=lambda t: (t.due_at, t.id or 0))[:limit]

    def claim_due_batch(self, now: datetime, limit: int) -> DueBatch:
        """The oldest pending due timers, their instances and their counts of timers a cancel would change."""
        timers = self.claim_due_timers(now, limit)
        ids = [timer.instance_id for timer in timers]
        return DueBatch(timers, self.get_many(ids), {i: len(p) for i, p in self.pending_timers(ids).items()})

    def reschedule_timer(self, timer_id: int, due_at: datetime, note: str = "",
                         expected_note: str | None = None) -> bool:
        """Back to pending at ``due_at`` (with ``expected_note``: only a pending or failed timer with that note)."""
        timer = self._store._timers.get(timer_id)
        if timer is None or (expected_note is not None
                             and (timer.status not in ("pending", "failed") or timer.note != expected_note)):
            return False
        self._set_timer(timer_id, replace(timer, status="pending", due_at=due_at, fired_at=None, note=note))
        return True

    # outbox
    def add_outbox(self, entry: OutboxEntry) -> None:
        """Queue a message."""
        rows = self._store._outbox
        rows.append(entry)
        self._undo.append(rows.pop)

    def outbox(self, subject_ref: str | None = None, instance_id: str | None = None) -> list[OutboxEntry]:
        """Queued messages, oldest first."""
        return [m for m in self._store._outbox if (subject_ref is None or m.subject_ref == subject_ref)
                and (instance_id is None or m.instance_id == instance_id)]

    # erasure
    def _replace_list(self, rows: list[Any], new: list[Any]) -> None:
        old = list(rows)
        rows[:] = new
        self._undo.append(lambda: rows.__setitem__(slice(None), old))

    def erase_personal_data(self, instance_ids: Sequence[str], subject_refs: Sequence[str] = (), *,
                            actor: str = "system", at: datetime | None = None, reason: str = "") -> ErasureCount:
        """Scrub instance data, history explanations, audit details and incidents; drop timers and messages; move
        each erased instance's version on and record the erasure in its history."""
        store = self._store
        ids, refs = set(instance_ids), set(subject_refs)
        moment = at if at is not None else datetime.now(UTC)
        instances = history = audit = timers = incidents = 0
        for iid in sorted(ids):
            rec = store._instances.get(iid)
            erased = None
            if rec is not None:
                erased = replace(rec, data=dict(ERASED_DATA), version=rec.version + 1, updated_at=moment,
                                 timers_pending=False)
                self.update(erased, rec.version)
                instances += 1
            rows = store._history.get(iid)
            if rows:
                self._replace_list(rows, [_pack_history(replace(_history_entry(h), explain={})) for h in rows])
                history += len(rows)
            if erased is not None:
                self.add_history(HistoryEntry(iid, ERASE_EVENT, erased.state, erased.state, actor, moment,
                                              erased.definition_version, erased.version,
                                              {"reason": reason} if reason else {}))
        dropped = {k: f for k, f in store._pending.items() if f.target in ids or f.source in ids}
        for fire_id in dropped:
            del store._pending[fire_id]
        if dropped:
            self._undo.append(lambda: store._pending.update(dropped))
        gone = {k: t for k, t in store._timers.items() if t.instance_id in ids}
        for timer_id in gone:
            del store._timers[timer_id]
        timers = len(gone)
        if gone:
            self._undo.append(lambda: store._timers.update(gone))
        scrubbed = [_pack_audit(replace(_audit_entry(a), detail={})) if _audit_instance(a) in ids else a
                    for a in store._audit]
        audit = sum(1 for a in store._audit if _audit_instance(a) in ids)
        if audit:
            self._replace_list(store._audit, scrubbed)
        for incident_id, incident in list(store._incidents.items()):
            if incident.instance_id in ids:
                self._set_incident(incident_id, replace(incident, data={}, message="(erased)", note="",
                                                        status="resolved", next_retry_at=None))
                incidents += 1
        if instances:
            from regelwerk.store.unit import erased as tell_watchers

            tell_watchers(store, sorted(i for i in ids if i in store._instances))
        kept = [m for m in store._outbox if m.instance_id not in ids and m.subject_ref not in refs]
        sent = len(store._outbox) - len(kept)
        if sent:
            self._replace_list(store._outbox, kept)
        redacted = 0
        if store._tables.get("rw_outbox_parts"):  # a digest listed someone (regelwerk.outbox.parts)
            from regelwerk.outbox.parts import redact_parts

            redacted = redact_parts(self, ids, refs, self._outbox_bodies, self._save_outbox_body)
        return ErasureCount(instances, history, audit, timers, sent, incidents, len(dropped), redacted)

    def _outbox_bodies(self, message_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        wanted = set(message_ids)
        return {m.id: (m.body, m.status) for m in self._store._outbox if m.id in wanted}

    def _save_outbox_body(self, message_id: str, body: str | None) -> None:
        rows = self._store._outbox
        self._replace_list(rows, [m for m in rows if m.id != message_id] if body is None else
                           [replace(m, body=body) if m.id == message_id else m for m in rows])

    # incidents
    def _set_incident(self, incident_id: int, new: IncidentRecord) -> None:
        incidents = self._store._incidents
        old = incidents.get(incident_id)
        incidents[incident_id] = new

        def undo() -> None:
            if old is None:
                incidents.pop(incident_id, None)
            else:
                incidents[incident_id] = old

        self._undo.append(undo)

    def add_pending_fire(self, fire: PendingFire) -> int:
        """Keep a chained fire; its id."""
        store = self._store
        store._pending_seq += 1
        fire_id = store._pending_seq
        store._pending[fire_id] = replace(fire, actor=dict(fire.actor), id=fire_id)
        self._undo.append(lambda: store._pending.pop(fire_id, None))
        return fire_id

    def take_pending_fire(self, fire_id: int) -> bool:
        """Remove a kept chained fire: True when it was there."""
        pending = self._store._pending
        taken = pending.pop(fire_id, None)
        if taken is None:
            return False
        self._undo.append(lambda: pending.__setitem__(fire_id, taken))
        return True

    def pending_fires(self, created_before: datetime, limit: int) -> list[PendingFire]:
        """Kept chained fires created before ``created_before``, oldest first."""
        found = sorted((f for f in self._store._pending.values() if f.created_at < created_before),
                       key=lambda f: (f.created_at, f.id or 0))
        return [replace(f, actor=dict(f.actor)) for f in found[:limit]]

    def add_incident(self, incident: IncidentRecord) -> IncidentRecord:
        """Insert, or update the open incident of the same instance, event and timer."""
        for stored in self._store._incidents.values():
            if (stored.status == "open" and stored.instance_id == incident.instance_id
                    and stored.event == incident.event and stored.timer_id == incident.timer_id):
                assert stored.id is not None
                new = replace(incident, id=stored.id, attempts=stored.attempts + 1, first_at=stored.first_at)
                self._set_incident(stored.id, new)
                return new
        self._store._incident_seq += 1
        new = replace(incident, id=self._store._incident_seq)
        self._set_incident(self._store._incident_seq, new)
        return new

    def incidents(self, status: str | None = None, instance_id: str | None = None, *, event: str | None = None,
                  instance_ids: Collection[str] | None = None) -> list[IncidentRecord]:
        """Incidents, oldest first."""
        among = None if instance_ids is None else set(instance_ids)
        return [i for _, i in sorted(self._store._incidents.items())
                if (status is None or i.status == status) and (instance_id is None or i.instance_id == instance_id)
                and (event is None or i.event == event) and (among is None or i.instance_id in among)]

    def get_incident(self, incident_id: int) -> IncidentRecord | None:
        """One incident."""
        return self._store._incidents.get(incident_id)

    def set_incident(self, incident_id: int, status: str, at: datetime, note: str = "",
                     next_retry_at: datetime | None = None, expected: str | None = None) -> bool:
        """Change status, note and next retry (only while the status is ``expected``, if given)."""
        stored = self._store._incidents.get(incident_id)
        if stored is None or (expected is not None and stored.status != expected):
            return False
        self._set_incident(incident_id, replace(stored, status=status, last_at=at, note=note,
                                                next_retry_at=next_retry_at))
        return True


class MemoryStore:
    """Everything in dicts, guarded by one lock; ``memory://`` in URLs."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.RLock()
        self._instances: dict[str, InstanceRecord] = {}
        self._history: dict[str, list[_Kept]] = {}  # packed rows (see the module)
        self._history_seq = 0
        self._timers: dict[int, TimerRecord] = {}
        self._timer_seq = 0
        self._audit: list[_Kept] = []  # packed rows (see the module)
        self._definitions: dict[tuple[str, str, str], DefinitionRecord] = {}
        self._outbox: list[OutboxEntry] = []
        self._incidents: dict[int, IncidentRecord] = {}
        self._incident_seq = 0
        self._pending: dict[int, PendingFire] = {}
        self._pending_seq = 0
        self._relationships: Any = None
        self._tables: dict[str, list[dict[str, Any]]] = {}

    def transaction(self) -> MemoryTx:
        """A unit of work (holds the store lock until it ends)."""
        return MemoryTx(self)

    def read(self) -> MemoryTx:
        """Same as a transaction: reads see a consistent state under the lock."""
        return MemoryTx(self)

    def relationships(self, timezone: Any = None) -> Any:
        """The permission relationship facts this store keeps (one set per store, in memory); dates count in
        ``timezone`` (the organisation's) from the first call on."""
        if self._relationships is None:
            from regelwerk.permissions.relations import MemoryRelationships

            self._relationships = MemoryRelationships(timezone=timezone)
        return self._relationships

    def setup(self) -> None:
        """Nothing to create."""

    def close(self) -> None:
        """Nothing to release."""
