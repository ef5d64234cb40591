"""The rows a store keeps, as frozen value objects (no database types leak out of a store)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from regelwerk.frozen import freeze_json, thaw

__all__ = [
    "ERASED_DATA",
    "ERASE_EVENT",
    "INSTANCE_ID_LENGTH",
    "AuditEntry",
    "DefinitionRecord",
    "DueBatch",
    "ErasureCount",
    "HistoryEntry",
    "IncidentRecord",
    "InstanceRecord",
    "OutboxEntry",
    "PendingFire",
    "StartShape",
    "TimerRecord",
    "is_erased",
    "start_records",
]


#: the longest instance id a store keeps (``rw_instances.id``): no instance has a longer one
INSTANCE_ID_LENGTH = 64

#: the history event of an AVG erasure (``StoreTx.erase_personal_data``): from = to = the state the instance was in
ERASE_EVENT = "$erase"
#: what an erased instance's data is afterwards (no personal data; not validated against any ``data_schema``)
ERASED_DATA: Mapping[str, Any] = {"erased": True}


def is_erased(data: Mapping[str, Any]) -> bool:
    """Whether an instance's data is what an erasure left (``ERASED_DATA``): such an instance takes no more events."""
    return len(data) == 1 and data.get("erased") is True


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """A workflow instance: pinned to the definition version it started under."""

    id: str
    workflow: str
    definition_version: str
    state: str
    data: Mapping[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    created_by: str = ""
    timers_pending: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly data."""
        return {"id": self.id, "workflow": self.workflow, "definition_version": self.definition_version,
                "state": self.state, "data": thaw(self.data), "version": self.version,
                "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
                "created_by": self.created_by}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One state change of an instance (start, transition, migration), with who, when and why."""

    instance_id: str
    event: str
    from_state: str
    to_state: str
    actor: str
    at: datetime
    definition_version: str
    version: int
    explain: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly data."""
        return {"instance": self.instance_id, "event": self.event, "from": self.from_state, "to": self.to_state,
                "actor": self.actor, "at": self.at.isoformat(), "definition_version": self.definition_version,
                "version": self.version, "explain": thaw(self.explain)}


@dataclass(frozen=True, slots=True)
class TimerRecord:
    """A durable timer: fire ``event`` on the instance at ``due_at`` unless the state was left first."""

    instance_id: str
    state: str
    event: str
    due_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    status: str = "pending"
    id: int | None = None
    fired_at: datetime | None = None
    note: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class StartShape:
    """What the new instances of one definition version share when one actor starts them at one moment and their
    initial state runs no action: every value of their rows but the id and the data (``StoreTx.insert_starts``).

    A start of this shape is the instance ``InstanceRecord(id, workflow, definition_version, state, data, 1, at, at,
    actor, bool(timers))``, its history row ``HistoryEntry(id, event, "", state, actor, at, definition_version, 1,
    explain)`` and one pending ``TimerRecord(id, state, event, due_at, data)`` per ``timers`` member
    (:meth:`records`). Compared by identity (a batch's starts refer to one shape each)."""

    workflow: str
    definition_version: str
    state: str
    actor: str
    at: datetime
    event: str
    #: the history row's explanation (each row gets its own copy)
    explain: Mapping[str, Any]
    #: ``(event, due_at, data)`` of each timer the state sets, in order
    timers: tuple[tuple[str, datetime, Mapping[str, Any]], ...] = ()

    def records(self, instance_id: str, data: Mapping[str, Any]) -> tuple[InstanceRecord, HistoryEntry,
                                                                           list[TimerRecord]]:
        """The instance, history row and timers of the start of ``instance_id`` with ``data`` (the class's text; the
        instance's data read-only: ``freeze_json(data)``)."""
        return (InstanceRecord(instance_id, self.workflow, self.definition_version, self.state, freeze_json(data), 1,
                               self.at, self.at, self.actor, bool(self.timers)),
                HistoryEntry(instance_id, self.event, "", self.state, self.actor, self.at, self.definition_version, 1,
                             thaw(self.explain)),
                [TimerRecord(instance_id, self.state, event, due_at, dict(timer_data))
                 for event, due_at, timer_data in self.timers])


def start_records(starts: Sequence[tuple[str, Mapping[str, Any], StartShape]]
                  ) -> tuple[list[InstanceRecord], list[HistoryEntry], list[TimerRecord]]:
    """The records of starts ``(id, data, shape)`` (:meth:`StartShape.records`): their instances, history rows and
    timers, each list in the starts' order (what ``StoreTx.insert_many`` takes; ``insert_starts`` writes the same)."""
    made = [shape.records(instance_id, data) for instance_id, data, shape in starts]
    return [m[0] for m in made], [m[1] for m in made], [t for m in made for t in m[2]]


@dataclass(frozen=True, slots=True)
class DueBatch:
    """A claimed batch of due timers (``StoreTx.claim_due_batch``): the timers, oldest first; those of their
    instances that exist, by id; and for each of these instances how many of its timers a ``cancel_timers`` would
    change (pending, and failed with an open incident), the batch's own among them."""

    timers: list[TimerRecord]
    instances: dict[str, InstanceRecord]
    cancellable: dict[str, int]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An audited act that is not a plain transition (refusal, migration, cancelled timer, action note)."""

    at: datetime
    actor: str
    action: str
    instance_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True, slots=True)
class DefinitionRecord:
    """The source of one definition version, kept so pinned instances can run after the file changed."""

    kind: str
    name: str
    version: str
    source: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A message to send, written in the transaction of the change that caused it."""

    id: str
    created_at: datetime
    recipient: str
    subject: str
    body: str
    template: str = ""
    sender: str | None = None
    subject_ref: str | None = None
    instance_id: str | None = None
    status: str = "pending"
    secret: str | None = None  # made only at delivery (the body holds the outbox's SECRET_MARKER)


@dataclass(frozen=True, slots=True)
class PendingFire:
    """A fire one instance's transition chained to another (``workflow.fire``), kept in that transition's unit of
    work until the chained fire ran: whoever runs it (the committing process just after its commit, or the tick's
    sweep when that process died) takes the row in the chained fire's own unit of work, so it runs exactly once.

    ``actor`` is the person it is decided for (``{"id", "roles", ...}``); ``system`` when a timer's transition
    chained it (guards apply, no permission); ``source`` and ``after`` name the instance and event it followed.
    """

    target: str
    event: str
    actor: Mapping[str, Any]
    system: bool
    source: str
    after: str
    created_at: datetime
    id: int | None = None


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """A failure isolated from other work: an action or timer that raised, with its retries.

    ``status`` is ``open`` (waiting for an automatic retry at ``next_retry_at``, or for a person when
    that is None) or ``resolved``. ``timer_id`` is set for a failed timer, which stays pending until
    its retries are used up; ``actor`` and ``data`` let a failed fire be retried as it was asked.
    """

    instance_id: str
    event: str
    error_type: str
    message: str
    first_at: datetime
    last_at: datetime
    attempts: int = 1
    status: str = "open"
    timer_id: int | None = None
    actor: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    next_retry_at: datetime | None = None
    note: str = ""
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly data."""
        return {"id": self.id, "instance": self.instance_id, "event": self.event, "timer": self.timer_id,
                "error_type": self.error_type, "message": self.message, "attempts": self.attempts,
                "status": self.status, "actor": self.actor, "data": thaw(self.data),
                "first_at": self.first_at.isoformat(), "last_at": self.last_at.isoformat(),
                "next_retry_at": self.next_retry_at.isoformat() if self.next_retry_at else None,
                "note": self.note}


@dataclass(frozen=True, slots=True)
class ErasureCount:
    """What an erasure of personal data touched, per kind of row."""

    instances: int = 0
    history: int = 0
    audit: int = 0
    timers: int = 0
    outbox: int = 0
    incidents: int = 0
    #: kept chained fires (``workflow.fire``) from or to an erased instance, dropped like its timers
    chained: int = 0
    #: mails that list several subjects (digests) whose erased lines were cut out (or that were dropped unsent:
    #: every line they had was erased); ``regelwerk.outbox.parts``
    redacted: int = 0
