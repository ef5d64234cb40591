"""Incidents: failures of plugin code (an action, a timer, a tick task), isolated from other work.

A failing action rolls back only its own change (its fire, or its timer's savepoint inside a batch);
the failure is then recorded here as an :class:`~regelwerk.store.records.IncidentRecord` (instance,
event, error type and message, attempts). A failed timer, and an employee's plan or an item's start that
failed in a tick (:func:`record_with_backoff`), are retried automatically with the engine's
:class:`~regelwerk.runtime.RetryPolicy` backoff (a workflow's declared ``retry`` over it) until their attempts
are used up; a failed fire (the caller got the error at once) and a tick task wait for a person. People see them with
``regelwerk incidents list`` and act with ``retry`` (after fixing the cause) or ``resolve``.

These functions work on any store; ``Engine.incidents/retry_incident/resolve_incident`` are the API.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from regelwerk.actors import SYSTEM, Actor
from regelwerk.errors import PluginError, RegelwerkError, UnknownIncident, UsageError, is_plugin_fault, storable_text
from regelwerk.store.base import Store, StoreTx
from regelwerk.store.records import AuditEntry, IncidentRecord
from regelwerk.store.unit import UnitOfWork

__all__ = ["PAYLOAD_KEY", "STATE_KEY", "IncidentService", "cancel_timers", "get_incident", "incident_data",
           "incident_payload", "list_incidents", "record_incident", "record_with_backoff", "resolve_incident",
           "resolve_timer_incidents"]


def list_incidents(store: Store, status: str | None = "open", instance_id: str | None = None) -> list[IncidentRecord]:
    """Incidents (``open`` by default; None: all), oldest first."""
    with store.read() as tx:
        return tx.incidents(status, instance_id)


def get_incident(store: Store, incident_id: int) -> IncidentRecord:
    """One incident (``UnknownIncident`` if there is none)."""
    with store.read() as tx:
        found = tx.get_incident(incident_id)
    if found is None:
        raise UnknownIncident(incident_id)
    return found


def record_incident(store: Store, error: PluginError, now: datetime, actor: str = "system",
                    data: dict[str, object] | None = None, *,
                    also: Callable[[StoreTx], object] | None = None) -> IncidentRecord:
    """Record a failure in its own unit of work (after the failed change rolled back); ``also`` first, in that unit
    (what must commit with the incident or not at all: a kept chained fire taken)."""
    with UnitOfWork(store) as uow:
        if also is not None:
            also(uow.tx)
        record = uow.tx.add_incident(IncidentRecord(error.instance_id, error.event, error.error_type,
                                                    error.error_message, now, now, 1, "open", None, actor,
                                                    dict(data or {}), None, storable_text(error, 500)))
    error.incident_id = record.id
    return record


def record_with_backoff(store: Store, error: PluginError, now: datetime, policy: RetryPolicy,
                        data: dict[str, object] | None = None) -> IncidentRecord:
    """Record a failure that is retried automatically (a tick's member: an employee's plan, an item's start), in
    its own unit of work: attempt ``n`` (one more than the open incident of the same instance and event has)
    waits ``policy.delay(n)`` for its retry (``next_retry_at``, before which the tick passes the member over);
    after the last attempt ``next_retry_at`` is None, and the incident waits for a person
    (``regelwerk incidents retry``, after fixing the cause)."""
    with UnitOfWork(store) as uow:
        known = [i for i in uow.tx.incidents("open", error.instance_id, event=error.event) if i.timer_id is None]
        attempt = known[0].attempts + 1 if known else 1
        record = uow.tx.add_incident(IncidentRecord(error.instance_id, error.event, error.error_type,
                                                    error.error_message, now, now, attempt, "open", None, SYSTEM.id,
                                                    dict(data or {}), _retry_at(policy, attempt, now),
                                                    storable_text(error, 500)))
        if record.attempts != attempt and record.id is not None:
            # another unit recorded this failure between the read and the write (the store counts the attempts
            # under its lock): the wait is the one of the attempt it counted
            uow.tx.set_incident(record.id, "open", now, record.note, _retry_at(policy, record.attempts, now),
                                expected="open")
    error.incident_id = record.id
    return record


def _retry_at(policy: RetryPolicy, attempt: int, now: datetime) -> datetime | None:
    delay = policy.delay(attempt)
    return now + delay if delay is not None else None


def _open_incident(tx: StoreTx, incident_id: int) -> IncidentRecord:
    """The incident as the unit of work sees it; ``UnknownIncident``, or ``UsageError`` when it is not open."""
    incident = tx.get_incident(incident_id)
    if incident is None:
        raise UnknownIncident(incident_id)
    if incident.status != "open":
        raise UsageError(f"incident {incident_id} is {incident.status}, not open")
    return incident


def resolve_incident(store: Store, incident_id: int, actor: Actor, now: datetime, note: str = "") -> IncidentRecord:
    """Close an open incident by hand (its work is not retried; a timer still waiting for a retry is marked
    failed); audited once. ``UsageError`` when it is not open (resolved already, or its timer's retry fired it).

    In the lock order of the timers (instance, timer, then incident): the timer is given up before the incident
    is written (a pending one marked failed, a failed one locked as it is), so a worker firing the retry at the
    same moment, or a person's retry putting a used-up timer back to pending, is waited for, never overwritten
    and never deadlocked with.
    """
    with UnitOfWork(store) as uow:
        incident = _open_incident(uow.tx, incident_id)
        if incident.timer_id is not None and not uow.tx.give_up_timer(
                incident.timer_id, now, f"incident {incident_id} resolved by hand"):
            incident = _open_incident(uow.tx, incident_id)  # the retry may have fired it meanwhile
        if not uow.tx.set_incident(incident_id, "resolved", now, note or f"resolved by {actor.id}", expected="open"):
            _open_incident(uow.tx, incident_id)  # another unit resolved it first: says how it ended
        uow.audit(AuditEntry(now, actor.id, "incident.resolve", incident.instance_id or None,
                             {"incident": incident_id, "note": note}))
    return get_incident(store, incident_id)


def cancel_timers(tx: StoreTx, instance_id: str, now: datetime, actor_id: str, why: str) -> int:
    """Cancel the instance's pending timers (the state they wait in was left) and resolve the open incidents of
    those timers in the same unit of work (:func:`resolve_timer_incidents`): their retries will not come, so
    nobody has to close them by hand. Returns how many timers were cancelled; incidents are looked up only
    when any was."""
    cancelled = tx.cancel_timers(instance_id, now)
    if cancelled:
        resolve_timer_incidents(tx, instance_id, None, now, actor_id, f"its timer was cancelled: {why}")
    return cancelled


def resolve_timer_incidents(tx: StoreTx, instance_id: str, timer_ids: Collection[int] | None, now: datetime,
                            actor_id: str, note: str) -> int:
    """Resolve the open incidents of the instance's cancelled timers (``timer_ids``: of these timers, which the
    caller cancelled; None: of every cancelled timer of the instance), each audited once as
    ``incident.resolve`` by ``actor_id``. How many were resolved."""
    waiting = [i for i in tx.incidents("open", instance_id)
               if i.id is not None and i.timer_id is not None and (timer_ids is None or i.timer_id in timer_ids)]
    if waiting and timer_ids is None:
        cancelled = {t.id for t in tx.timers(instance_id) if t.status == "cancelled"}
        waiting = [i for i in waiting if i.timer_id in cancelled]
    resolved = 0
    for incident in waiting:
        assert incident.id is not None
        resolved += resolve_open(tx, incident.id, instance_id, actor_id, now, note)  # not if a person was first
    return resolved


def resolve_open(tx: StoreTx, incident_id: int, instance_id: str, actor_id: str, now: datetime, note: str) -> bool:
    """In ``tx``: resolve the incident while it is still open, audited once (``incident.resolve`` by
    ``actor_id``); False when it was not open (someone else resolved it first)."""
    if not tx.set_incident(incident_id, "resolved", now, note, expected="open"):
        return False
    tx.add_audit(AuditEntry(now, actor_id, "incident.resolve", instance_id, {"incident": incident_id, "note": note}))
    return True


if TYPE_CHECKING:
    from regelwerk.runtime import Engine
    from regelwerk.workflows.timers import RetryPolicy

ActorLike = Actor | str | Mapping[str, Any]
START_EVENT = "$start"
#: a timer's note while a person's retry waits for it to fire (``retry by <actor>``)
_RETRY_NOTE = "retry by "
#: in a fire's incident's data: the state the instance was in when the fire failed (the rest is the fire's payload)
STATE_KEY = "$state"
#: in a fire's incident's data, when the payload has keys of its own that start with ``$``: the payload, whole
PAYLOAD_KEY = "$payload"


def incident_data(payload: Mapping[str, Any] | None, state: str | None) -> dict[str, Any]:
    """A failed fire's incident data: its payload and the state it failed in (``STATE_KEY``). The payload's keys sit
    beside it, unless one of them starts with ``$`` (it could be ``$state`` itself): then the payload is kept whole
    under ``PAYLOAD_KEY``, so its retry fires with exactly the payload that failed."""
    kept: dict[str, Any] = dict(payload or {})
    if any(key.startswith("$") for key in kept):
        kept = {PAYLOAD_KEY: kept}
    if state is not None:
        kept[STATE_KEY] = state
    return kept


def incident_payload(data: Mapping[str, Any]) -> dict[str, Any]:
    """The payload of a failed fire that :func:`incident_data` kept."""
    nested = data.get(PAYLOAD_KEY)
    if isinstance(nested, Mapping):
        return dict(nested)
    return {k: v for k, v in data.items() if k != STATE_KEY}


class IncidentService:
    """Retries an incident's failed work through the engine front (fire, due timers, tick tasks)."""

    def __init__(self, front: Engine) -> None:
        self.front = front

    def retry_incident(self, incident_id: int, actor: ActorLike = SYSTEM) -> IncidentRecord:
        """Try the failed work again now (after the cause was fixed); the incident as it is afterwards.

        A timer's incident puts the timer back to pending, due now, and fires due timers (as the system, as
        timers fire); a fire's incident fires its event again as ``actor``, the one who retries it, whose own
        permission decides (never as the incident's first actor: a retry is no way to act in someone else's
        name, and the incident keeps only that actor's id, not the roles a policy reads). Success resolves
        the incident; another failure counts one more attempt.
        """
        who = Actor.of(actor)
        incident = self.front.incident(incident_id)
        if incident.status != "open":
            raise UsageError(f"incident {incident_id} is {incident.status}, not open")
        now = self.front.clock()
        if incident.timer_id is not None:
            with UnitOfWork(self.front.store) as uow:
                incident = _open_incident(uow.tx, incident_id)
                timer = next((t for t in uow.tx.timers(incident.instance_id) if t.id == incident.timer_id), None)
                current = uow.tx.get(incident.instance_id)
                if (timer is None or timer.id is None or timer.status == "cancelled" or current is None
                        or (timer.state and current.state != timer.state)):  # the instance left its state
                    raise UsageError(f"incident {incident_id}: its timer was cancelled (the instance left the "
                                     "state it belonged to), so there is nothing to retry",
                                     hint=f"regelwerk incidents resolve {incident_id}")
                waiting = timer.status == "pending" and timer.note.startswith(_RETRY_NOTE)
                if waiting or not uow.tx.reschedule_timer(timer.id, now, f"{_RETRY_NOTE}{who.id}",
                                                          expected_note=timer.note):
                    # a person's retry is waiting for the timer to fire (it fires with the next due timers), or
                    # another retry changed the timer since it was read: one retry, audited once
                    asked = timer.note.removeprefix(_RETRY_NOTE) if timer.note.startswith(_RETRY_NOTE) else "someone"
                    raise UsageError(f"incident {incident_id}: a retry asked by {asked} is waiting for its timer to "
                                     "fire (with the next due timers)", hint="regelwerk tick")
                if not uow.tx.set_incident(incident_id, "open", now, f"retry asked by {who.id}", now, expected="open"):
                    _open_incident(uow.tx, incident_id)
                uow.audit(AuditEntry(now, who.id, "incident.retry", incident.instance_id, {"incident": incident_id}))
            self.front.fire_due_timers(now)  # its success resolves the incident (the timer's note says retry)
            return self.front.incident(incident_id)
        try:
            if incident.event in ("tick:plan", "tick:activate"):
                # an employee's plan or an item's start that failed in a tick: the next tick runs it again, and
                # resolves the incident in that batch when it no longer fails
                # (due now: the tick passes over a member whose incident waits for its backoff or for a person)
                with UnitOfWork(self.front.store) as uow:
                    _open_incident(uow.tx, incident_id)
                    if not uow.tx.set_incident(incident_id, "open", now, f"retry asked by {who.id}", now,
                                               expected="open"):
                        _open_incident(uow.tx, incident_id)
                    uow.audit(AuditEntry(now, who.id, "incident.retry", incident.instance_id,
                                         {"incident": incident_id}))
                self.front.tick(now)
                return self.front.incident(incident_id)
            if incident.event.startswith("after-commit:") or (
                    not incident.instance_id and not incident.event.startswith("tick:")):
                raise UsageError(f"incident {incident_id}: work that ran after its change committed cannot be run "
                                 "again from here (the change stands); do it by hand, then resolve the incident",
                                 hint=f"regelwerk incidents resolve {incident_id}")
            if incident.event.startswith("tick:"):
                self._run_tick_task(incident.event.removeprefix("tick:"), now)
            elif incident.event == START_EVENT:
                raise UsageError(f"incident {incident_id}: a failed start is not kept with its data; start "
                                 f"{incident.data.get('workflow')!r} again, then resolve the incident")
            else:
                payload = incident_payload(incident.data)
                failed_in = incident.data.get(STATE_KEY)
                current = self.front.get(incident.instance_id)
                if failed_in is not None and current.state != failed_in:
                    # the instance moved on (someone fired the event, or another, since): repeating the event now
                    # would act in a state it was never asked for
                    raise UsageError(f"incident {incident_id}: {incident.instance_id} is in state {current.state!r} "
                                     f"now, not {failed_in!r} where {incident.event!r} failed, so there is nothing "
                                     "to retry", hint=f"regelwerk incidents resolve {incident_id}")
                # the fire and the incident's resolution are one unit of work: of two retries at once, the second
                # finds the incident resolved and its fire is rolled back (the event runs once)
                self.front.runtime.fire_settling(incident.instance_id, incident.event, who, payload or None,
                                                 lambda uow: self._resolve_retried(uow, incident_id, who, now),
                                                 failed_in if isinstance(failed_in, str) else None)
                return self.front.incident(incident_id)
        except PluginError as exc:
            if incident.event.startswith("tick:"):
                self.front.record_incident(exc, now)
            else:  # the retried fire rolled back, its audit with it: who retried and that it failed, on its own
                with UnitOfWork(self.front.store) as uow:
                    uow.audit(AuditEntry(now, who.id, "incident.retry", incident.instance_id,
                                         {"incident": incident_id, "failed": exc.error_type}))
            return self.front.incident(incident_id)
        with UnitOfWork(self.front.store) as uow:
            self._resolve_retried(uow, incident_id, who, now)
        return self.front.incident(incident_id)

    @staticmethod
    def _resolve_retried(uow: UnitOfWork, incident_id: int, who: Actor, now: datetime) -> None:
        """In the retried work's unit of work: resolve the incident, only while it is open (else ``UsageError``,
        and the unit rolls back), audited once."""
        if not uow.tx.set_incident(incident_id, "resolved", now, f"fired on retry by {who.id}", expected="open"):
            _open_incident(uow.tx, incident_id)
            raise UsageError(f"incident {incident_id} changed while it was retried")
        found = uow.tx.get_incident(incident_id)
        uow.audit(AuditEntry(now, who.id, "incident.retry", found.instance_id if found else None,
                             {"incident": incident_id}))

    def _run_tick_task(self, task_id: str, now: datetime) -> None:
        from regelwerk.scheduling.sources import tick_tasks

        for task in tick_tasks(self.front.bundle.objects):
            if task.task_id == task_id:
                try:
                    task.run_tick(self.front, self.front.bundle, now)
                except RegelwerkError:
                    raise
                except BaseException as exc:  # plugin code, typed at the boundary (as the tick does)
                    if not is_plugin_fault(exc):
                        raise
                    raise PluginError.wrap(f"tick task {task_id!r}", exc, "", f"tick:{task_id}") from exc
                return
        raise UsageError(f"no tick task {task_id!r} in this bundle")
