"""Typed runtime refusals: every one carries data, none leaves the store half-written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ActionFailed",
    "ConflictError",
    "IdInUse",
    "InvalidData",
    "NoRecipients",
    "PermissionDenied",
    "PluginError",
    "RegelwerkError",
    "TransitionNotAllowed",
    "UnknownDefinition",
    "UnknownIncident",
    "UnknownInstance",
    "UsageError",
    "is_plugin_fault",
    "storable_text",
]


def is_plugin_fault(exc: BaseException) -> bool:
    """True for what plugin code raised that the runtime isolates as a plugin failure: every ``Exception`` and every
    other ``BaseException`` (``GeneratorExit``, a plugin's own subclass) except those that stop the process or
    task on purpose (``KeyboardInterrupt``, ``SystemExit``, ``asyncio.CancelledError``), which pass through."""
    if isinstance(exc, Exception):
        return True
    import asyncio

    return not isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError))


def storable_text(value: object, limit: int = 1000) -> str:
    """``str(value)`` as text every store can keep: at most ``limit`` characters, NUL (PostgreSQL refuses it)
    and lone surrogates (no encoding takes them) escaped, and a ``__str__`` that raises replaced by a note.

    Error messages of plugin code are written into incidents, timer notes and audit rows; one odd character
    must not make that write fail (it would block the work the incident is meant to isolate).
    """
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception as exc:  # noqa: BLE001  # a broken __str__ of a plugin's exception
        text = f"<{type(value).__name__} whose message could not be read: {type(exc).__name__}>"
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:limit]


class RegelwerkError(Exception):
    """Base class of every runtime error regelwerk raises on purpose."""

    code = "error"
    #: True for an error that leaves the current transaction or run unusable (the work around it must stop
    #: rather than isolate it and go on): a step whose transaction aborted, a simulation's lease taken over
    stops_work = False
    #: True when plugin code raised (or caused) this refusal inside a transition: an action passed it on, or the
    #: data its actions left does not fit. Its caller still gets it as it is; work nobody waits for (a timer)
    #: treats it as the plugin's failure (an incident, retried), not as the transition's own refusal
    from_plugin = False

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


class IdInUse(ConflictError):
    """A new instance's id is taken by an instance that is not the one being started; nothing was written."""

    def __init__(self, instance_id: str, workflow: str = "", wanted: str = "") -> None:
        self.workflow = workflow
        self.wanted = wanted
        ConflictError.__init__(self, instance_id, 0, 1, "")
        found = f" (an instance of {workflow!r})" if workflow else ""
        self.args = (f"instance id {instance_id!r} is in use{found}" + (f", not by {wanted}" if wanted else ""),)

    def to_dict(self) -> dict[str, Any]:
        """The id and the workflow of the instance that has it."""
        return {"error": self.code, "message": str(self), "instance": self.instance_id, "workflow": self.workflow}


class InvalidData(RegelwerkError):
    """Instance or event data does not fit the definition's JSON Schema, or a person's data names a field only the
    workflow itself sets (``system_fields``: those are listed, and the refusal is audited)."""

    code = "invalid_data"

    def __init__(self, message: str, pointer: str = "", errors: Sequence[Mapping[str, str]] = (),
                 system_fields: Sequence[str] = ()) -> None:
        self.pointer = pointer
        self.errors = tuple(errors)
        self.system_fields = tuple(system_fields)
        super().__init__(f"{message}" + (f" at {pointer}" if pointer else ""))

    def to_dict(self) -> dict[str, Any]:
        """Include the JSON pointer and every schema error (and the system fields a person's data named)."""
        out = {**super().to_dict(), "pointer": self.pointer, "errors": [dict(e) for e in self.errors]}
        if self.system_fields:
            out["system_fields"] = list(self.system_fields)
        return out


class NoRecipients(RegelwerkError):
    """A mail addressed to a role (``send_template`` with ``to: {role: ...}``) cannot reach everyone it is for: nobody
    holds the role within the instance's scope, or a holder in scope has no usable address. Fail closed: the
    transition is refused and nothing of it is written (a timer's becomes an incident, retried). The data says who
    was considered and why each was left out."""

    code = "no_recipients"

    def __init__(self, role: str, template: str, instance_id: str, reason: str, *,
                 holders: Sequence[str] = (), without_address: Sequence[str] = (),
                 out_of_scope: Mapping[str, str] | None = None, nobody: bool = False) -> None:
        self.role = role
        #: nobody holds the role, or nobody holding it may read the instance (not: a holder without an address, or
        #: an engine without a role directory): what ``if_nobody: skip`` skips
        self.nobody = nobody
        self.template = template
        self.instance_id = instance_id
        self.reason = reason
        self.holders = tuple(holders)
        self.without_address = tuple(without_address)
        self.out_of_scope = dict(out_of_scope or {})
        super().__init__(f"send_template {template!r} to role {role!r} of instance {instance_id!r}: {reason}")

    def to_dict(self) -> dict[str, Any]:
        """Include the role, the template, who holds the role, who is out of scope (and why), who has no address."""
        return {**super().to_dict(), "role": self.role, "template": self.template, "instance": self.instance_id,
                "reason": self.reason, "holders": list(self.holders), "without_address": list(self.without_address),
                "out_of_scope": dict(self.out_of_scope), "nobody": self.nobody}


class PluginError(RegelwerkError):
    """Plugin code (an action, a condition function, a tick task) raised something that is not a refusal.

    The original exception is chained (``__cause__``) and named in ``error_type``; the change it was part
    of was rolled back. The runtime records it as an incident instead of letting it block other work.
    """

    code = "plugin_error"

    def __init__(self, where: str, original: BaseException, instance_id: str = "", event: str = "") -> None:
        self.where = where
        self.instance_id = instance_id
        self.event = event
        self.error_type = f"{type(original).__module__}.{type(original).__qualname__}"
        self.error_message = storable_text(original)
        #: the id of the incident recorded for this error (None: not recorded yet)
        self.incident_id: int | None = None
        #: the state the instance was in when its fire failed (a fire's guard, permission or action; None: unknown)
        self.state: str | None = None
        super().__init__(f"{where} raised {type(original).__name__}: {self.error_message}")

    @classmethod
    def wrap(cls, where: str, original: BaseException, instance_id: str = "", event: str = "") -> PluginError:
        """Wrap ``original`` (chained); a ``PluginError`` passes through unchanged."""
        if isinstance(original, PluginError):
            return original
        error = cls(where, original, instance_id, event)
        error.__cause__ = original
        return error

    def to_dict(self) -> dict[str, Any]:
        """Include where, the original type and message."""
        return {**super().to_dict(), "where": self.where, "error_type": self.error_type,
                "error_message": self.error_message, "instance": self.instance_id, "event": self.event}


class ActionFailed(PluginError):
    """A registered action raised; its transition was rolled back and an incident recorded."""

    code = "action_failed"


class UnknownIncident(RegelwerkError):
    """No incident with this id."""

    code = "unknown_incident"

    def __init__(self, incident_id: int) -> None:
        self.incident_id = incident_id
        super().__init__(f"no incident {incident_id}")
