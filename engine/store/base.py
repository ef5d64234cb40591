"""The store port: what the workflow runtime needs from persistence.

A host application can implement :class:`Store` against its own database; every implementation
must pass :class:`regelwerk.store.contract.StoreContract`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from regelwerk.store.records import (
    AuditEntry,
    DefinitionRecord,
    DueBatch,
    ErasureCount,
    HistoryEntry,
    IncidentRecord,
    InstanceRecord,
    OutboxEntry,
    PendingFire,
    TimerRecord,
)

__all__ = ["Rows", "Store", "StoreTx"]


@runtime_checkable
class Rows(Protocol):
    """Rows of one table in a transaction, by column equality (a list value matches any of its items).

    How a pack reads and writes its own rows without touching SQL: the SQL store runs Core statements
    on the table its module declared on ``regelwerk.store.tables.metadata``; the memory store keeps dicts.
    """

    def insert(self, values: Mapping[str, Any]) -> None:
        """Add a row."""

    def find(self, match: Mapping[str, Any] | None = None, order_by: str | None = None) -> list[dict[str, Any]]:
        """Every matching row (ordered by a column, if given)."""

    def first(self, match: Mapping[str, Any]) -> dict[str, Any] | None:
        """One matching row, or None."""

    def update(self, match: Mapping[str, Any], values: Mapping[str, Any]) -> int:
        """Change the matching rows; how many."""

    def delete(self, match: Mapping[str, Any]) -> int:
        """Remove the matching rows; how many."""


@runtime_checkable
class StoreTx(Protocol):
    """One transaction: everything written through it commits together or not at all.

    The runtime wraps it in a :class:`~regelwerk.store.unit.UnitOfWork`. Lock order (every store,
    every caller): an instance row first, then its timers; never the other way round.

    ``connection`` is the SQLAlchemy ``Connection`` for SQL stores and None for others. It is there
    for a pack's own tables only; the core's rows (instances, history, timers, audit, outbox,
    incidents) and erasure of personal data go through the methods below.
    """

    connection: Any

    def get(self, instance_id: str) -> InstanceRecord | None:
        """The instance, or None."""

    def insert(self, record: InstanceRecord) -> None:
        """Add a new instance; ``ConflictError`` (expected version 0) when the id exists."""

    def existing(self, instance_ids: Sequence[str]) -> set[str]:
        """Which of these ids are instances (one query per chunk on SQL)."""

    def insert_many(self, records: Sequence[InstanceRecord], history: Sequence[HistoryEntry] = (),
                    timers: Sequence[TimerRecord] = ()) -> None:
        """Add new instances (known not to exist), then history rows, then pending timers, in bulk. An id that
        exists after all (started concurrently since it was asked) is ``ConflictError`` and the transaction
        is not to be committed."""

    def update(self, record: InstanceRecord, expected_version: int, data_changed: bool = True, *,
               definition_changed: bool = True) -> None:
        """Replace the instance if its stored version is ``expected_version``; else ``ConflictError``
        carrying the current version and state (``UnknownInstance`` when it is gone).

        ``data_changed=False`` promises that ``record.data`` equals the stored data, ``definition_changed=False``
        that ``record.definition_version`` equals the stored one (a transition: only a migration moves an
        instance to another version); a store may skip writing them (SQL: an indexed column left out of the
        UPDATE is an index entry SQLite does not rewrite).
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
        """Cancel the instance's pending timers, and its failed timers whose incident is still open (their retry
        belongs to the state being left); how many were cancelled."""

    def timers(self, instance_id: str) -> list[TimerRecord]:
        """Every timer of an instance (any status), oldest first."""

    def claim_due_timer(self, now: datetime) -> TimerRecord | None:
        """The oldest pending timer due at ``now``, locked for this transaction (others skip it)."""

    def claim_due_timers(self, now: datetime, limit: int) -> list[TimerRecord]:
        """Up to ``limit`` pending timers due at ``now``, oldest first, locked for this transaction.

        In the lock order: their instances are locked first (instances another transaction holds are
        skipped, not waited for), then the timers. Several workers claim disjoint batches.
        """

    def claim_due_batch(self, now: datetime, limit: int) -> DueBatch:
        """:meth:`claim_due_timers`, with what firing the batch reads first: the claimed timers' instances (as
        :meth:`get_many`, after the claim has locked them) and per instance how many timers a cancel would change
        (as :meth:`pending_timers`, counted). SQL reads them with the claim (SQLite: one statement)."""

    def reschedule_timer(self, timer_id: int, due_at: datetime, note: str = "",
                         expected_note: str | None = None) -> bool:
        """Put a timer back to pending, due at ``due_at`` (a retry after a failure). With ``expected_note``, only
        while it is pending or failed with that note (one conditional write: of two units asking at once, the
        second finds the first's note and changes nothing). False when nothing was changed."""

    def finish_timer(self, timer_id: int, status: str, at: datetime, note: str = "") -> None:
        """Mark a claimed timer ``fired``, ``failed`` or ``cancelled``."""

    def finish_timers(self, finished: Sequence[tuple[int, str, datetime, str]]) -> None:
        """:meth:`finish_timer` for many ``(timer id, status, at, note)`` (one ``executemany`` on SQL)."""

    def give_up_timer(self, timer_id: int, at: datetime, note: str = "") -> bool:
        """Mark a timer ``failed`` if it is still ``pending`` (a person resolved the incident it waits to retry); a
        timer ``failed`` already (its attempts used up) stays as it is, but is locked all the same, so a retry of its
        incident that would put it back to pending waits for this unit (SQL: one conditional ``UPDATE``). True when
        the timer is failed now; False, and nothing changed, when it fired or was cancelled meanwhile."""

    def pending_timers(self, instance_ids: Sequence[str]) -> dict[str, set[int]]:
        """The ids of the timers :meth:`cancel_timers` would change for these instances (pending, and failed with
        an open incident), by instance (every asked instance is a key)."""

    def get_many(self, instance_ids: Sequence[str]) -> dict[str, InstanceRecord]:
        """Those of these instances that exist, by id."""

    def lock_instances(self, instance_ids: Sequence[str]) -> None:
        """Lock these instances' rows until the transaction ends (in id order; missing ids are passed over), where
        the database has row locks (PostgreSQL: ``FOR UPDATE``; SQLite's write units are serial already). The lock
        order starts with an instance row (a fire claims its instance before its actions write a pack's rows), so a
        pack's own work that locks its rows of these instances and then writes the instances (an AVG erasure) locks
        the instances first: else it and a fire of one of them each wait for the other (a deadlock)."""

    def update_many(self, updates: Sequence[tuple[InstanceRecord, int, bool]], *,
                    definition_changed: bool = True) -> None:
        """:meth:`update` for many ``(record, expected version, data changed)`` (one ``executemany`` per shape on
        SQLite, one ``UPDATE`` over arrays per shape on PostgreSQL; ``definition_changed`` as for :meth:`update`,
        for all of them). Raises ``ConflictError`` or ``UnknownInstance`` for an instance not at its expected
        version; what was written before is then undone only by the unit of work rolling back (as after any error
        in it)."""

    def add_audit(self, entry: AuditEntry) -> None:
        """Append an audit row."""

    def add_audits(self, entries: Sequence[AuditEntry]) -> None:
        """Append several audit rows in order (one statement where the driver allows: executemany)."""

    def audit(self, instance_id: str | None = None) -> list[AuditEntry]:
        """Audit rows (of one instance, if given), oldest first."""

    def put_definition(self, record: DefinitionRecord) -> None:
        """Keep a definition version's source (a no-op if that version is stored already)."""

    def get_definition(self, kind: str, name: str, version: str) -> DefinitionRecord | None:
        """A stored definition version."""

    def rows(self, table: str) -> Rows:
        """A pack's own table (declared on the shared metadata), by equality filters, in this transaction."""

    def savepoint(self) -> AbstractContextManager[Any]:
        """A nested part of this transaction: an exception inside rolls back only that part."""

    def add_outbox(self, entry: OutboxEntry) -> None:
        """Queue a message (sent after commit by the outbox sender)."""

    def outbox(self, subject_ref: str | None = None, instance_id: str | None = None) -> list[OutboxEntry]:
        """Queued messages (about one data subject / of one instance, if given), oldest first."""

    def erase_personal_data(self, instance_ids: Sequence[str], subject_refs: Sequence[str] = (), *,
                            actor: str = "system", at: datetime | None = None, reason: str = "") -> ErasureCount:
        """AVG erasure: scrub these instances' data, history explanations, audit details and incidents (message,
        data and note; an open one is resolved, without a retry time: nothing can retry it),
        delete their timers, the chained fires kept from or to them and every message about them or about
        ``subject_refs``. The rows that say *that* something happened stay (state, event, time, actor); what it
        was about goes.

        Each erased instance's data becomes ``ERASED_DATA`` and its version moves on (version + 1, ``updated_at``
        ``at``, no pending timers), so every decision made on a read from before the erasure (a cached record,
        a caller's expected version, a fire that read it just before) fails its version check
        (``ConflictError``) instead of writing the old data back. The erasure itself is recorded once, as a
        history row per instance (``ERASE_EVENT``, from = to = its state, ``actor``, ``at`` (default: now, UTC),
        the new version; its explanation holds ``reason`` only, if given, which must name no person). Missing ids
        are passed over."""

    def add_pending_fire(self, fire: PendingFire) -> int:
        """Keep a chained fire until it ran (in the transaction of the transition that chained it); its id."""

    def take_pending_fire(self, fire_id: int) -> bool:
        """Remove a kept chained fire, in the unit of work that runs it (or records its failure): True when this
        unit took it, False when another already had (it ran, or runs now: on PostgreSQL this waits for that
        unit and then finds it gone). The unit that gets False must not run it."""

    def pending_fires(self, created_before: datetime, limit: int) -> list[PendingFire]:
        """Kept chained fires created before ``created_before``, oldest first (the ones whose process died)."""

    def add_incident(self, incident: IncidentRecord) -> IncidentRecord:
        """Record a failure. An open incident of the same instance, event and timer is updated instead
        (attempts + 1, the new error and retry time); the stored incident is returned."""

    def incidents(self, status: str | None = None, instance_id: str | None = None, *, event: str | None = None,
                  instance_ids: Collection[str] | None = None) -> list[IncidentRecord]:
        """Incidents (filtered: by status, one instance, event, any of ``instance_ids``), oldest first."""

    def get_incident(self, incident_id: int) -> IncidentRecord | None:
        """One incident."""

    def set_incident(self, incident_id: int, status: str, at: datetime, note: str = "",
                     next_retry_at: datetime | None = None, expected: str | None = None) -> bool:
        """Change an incident's status (``open``/``resolved``), note and next retry time; with ``expected``, only
        while its status is still that (one conditional write: of two units that resolve the same open incident,
        the one that comes second changes nothing). Whether it changed."""


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
