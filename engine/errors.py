"""Typed runtime refusals: every one carries data, none leaves the store half-written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ConflictError",
    "InvalidData",
    "PermissionDenied",
    "RegelwerkError",
    "TransitionNotAllowed",
    "UnknownDefinition",
    "UnknownInstance",
    "UsageError",
]


class RegelwerkError(Exception):
    """Base class of every runtime error regelwerk raises on purpose."""

    code = "error"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description for CLIs and host applications."""
        return {"error": self.code, "message": str(self)}


class UsageError(RegelwerkError):
    """The caller asked for something that does not make sense (exit code 2 in the CLI)."""

    code = "usage"

    def __init__(self, message: str, hint: str = "") -> None:
        self.hint = hint
        super().__init__(message + (f" (hint: {hint})" if hint else ""))


class UnknownDefinition(UsageError):
    """A kind/name that the loaded bundle does not define (a usage error: exit 2 in the CLI)."""

    code = "unknown_definition"

    def __init__(self, kind: str, name: str, known: Sequence[str] = ()) -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(known)
        super().__init__(f"no {kind} named {name!r}" + (f"; known: {', '.join(self.known)}" if self.known else ""))


class UnknownInstance(RegelwerkError):
    """No instance with this id exists in the store."""

    code = "unknown_instance"

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"no instance {instance_id!r}")


class TransitionNotAllowed(RegelwerkError):
    """The event cannot fire from the instance's current state (guards, state, timing)."""

    code = "transition_not_allowed"

    def __init__(self, instance_id: str, state: str, event: str, reasons: Sequence[str]) -> None:
        self.instance_id = instance_id
        self.state = state
        self.event = event
        self.reasons = tuple(reasons)
        super().__init__(f"event {event!r} not allowed in state {state!r}: " + "; ".join(self.reasons))

    def to_dict(self) -> dict[str, Any]:
        """Include the state, event and every reason."""
        return {**super().to_dict(), "instance": self.instance_id, "state": self.state,
                "event": self.event, "reasons": list(self.reasons)}


class PermissionDenied(RegelwerkError):
    """The actor may not perform this action on this resource (deny by default)."""

    code = "permission_denied"

    def __init__(self, actor: str, action: str, resource: str, explanation: Any = None) -> None:
        self.actor = actor
        self.action = action
        self.resource = resource
        self.explanation = explanation
        super().__init__(f"{actor!r} may not {action!r} on {resource!r}")

    def to_dict(self) -> dict[str, Any]:
        """Include who, what, on what, and why not."""
        return {**super().to_dict(), "actor": self.actor, "action": self.action,
                "resource": self.resource, "explain": self.explanation}


class ConflictError(RegelwerkError):
    """Someone else changed the instance first (optimistic concurrency); nothing was written."""

    code = "conflict"

    def __init__(self, instance_id: str, expected_version: int, current_version: int, current_state: str) -> None:
        self.instance_id = instance_id
        self.expected_version = expected_version
        self.current_version = current_version
        self.current_state = current_state
        super().__init__(
            f"instance {instance_id!r} changed concurrently: expected version {expected_version}, "
            f"found {current_version} in state {current_state!r}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Include the versions and the state that won."""
        return {**super().to_dict(), "instance": self.instance_id, "expected_version": self.expected_version,
                "current_version": self.current_version, "current_state": self.current_state}


class InvalidData(RegelwerkError):
    """Instance or event data does not fit the definition's JSON Schema."""

    code = "invalid_data"

    def __init__(self, message: str, pointer: str = "", errors: Sequence[Mapping[str, str]] = ()) -> None:
        self.pointer = pointer
        self.errors = tuple(errors)
        super().__init__(f"{message}" + (f" at {pointer}" if pointer else ""))

    def to_dict(self) -> dict[str, Any]:
        """Include the JSON pointer and every schema error."""
        return {**super().to_dict(), "pointer": self.pointer, "errors": [dict(e) for e in self.errors]}
