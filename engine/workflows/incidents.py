"""Incidents: failures of plugin code (an action, a timer, a tick task), isolated from other work.

A failing action rolls back only its own change (its fire, or its timer's savepoint inside a batch);
the failure is then recorded here as an :class:`~regelwerk.store.records.IncidentRecord` (instance,
event, error type and message, attempts). A failed timer is retried automatically with the engine's
:class:`~regelwerk.runtime.RetryPolicy` backoff until its attempts are used up; a failed fire (the
caller got the error at once) and a tick task wait for a person. People see them with
``regelwerk incidents list`` and act with ``retry`` (after fixing the cause) or ``resolve``.

These functions work on any store; ``Engine.incidents/retry_incident/resolve_incident`` are the API.
"""

from __future__ import annotations

from datetime import datetime

from regelwerk.actors import Actor
from regelwerk.errors import PluginError, UnknownIncident
from regelwerk.store.base import Store
from regelwerk.store.records import AuditEntry, IncidentRecord
from regelwerk.store.unit import UnitOfWork

__all__ = ["get_incident", "list_incidents", "record_incident", "resolve_incident"]


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
                    data: dict[str, object] | None = None) -> IncidentRecord:
    """Record a failure in its own unit of work (after the failed change rolled back)."""
    with UnitOfWork(store) as uow:
        return uow.tx.add_incident(IncidentRecord(error.instance_id, error.event, error.error_type,
                                                  error.error_message, now, now, 1, "open", None, actor,
                                                  dict(data or {}), None, str(error)[:500]))


def resolve_incident(store: Store, incident_id: int, actor: Actor, now: datetime, note: str = "") -> IncidentRecord:
    """Close an incident by hand (its work is not retried; a timer waiting for a retry is marked failed); audited."""
    incident = get_incident(store, incident_id)
    with UnitOfWork(store) as uow:
        uow.tx.set_incident(incident_id, "resolved", now, note or f"resolved by {actor.id}")
        if incident.timer_id is not None and incident.next_retry_at is not None:
            uow.tx.finish_timer(incident.timer_id, "failed", now, f"incident {incident_id} resolved by hand")
        uow.audit(AuditEntry(now, actor.id, "incident.resolve", incident.instance_id or None,
                             {"incident": incident_id, "note": note}))
    return get_incident(store, incident_id)
