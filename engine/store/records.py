"""The rows a store keeps, as frozen value objects (no database types leak out of a store)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["AuditEntry", "DefinitionRecord", "HistoryEntry", "InstanceRecord", "TimerRecord"]


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
                "state": self.state, "data": dict(self.data), "version": self.version,
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
                "version": self.version, "explain": dict(self.explain)}


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
