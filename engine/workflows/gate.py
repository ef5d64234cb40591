"""One definition version at run time (``Version``) and the guard + permission gate of one fire (``Gate``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from regelwerk.actors import Actor
from regelwerk.errors import (
    InvalidData,
    PermissionDenied,
    RegelwerkError,
    TransitionNotAllowed,
)
from regelwerk.store.records import (
    InstanceRecord,
)
from regelwerk.workflows.machine import WorkflowMachine
from regelwerk.workflows.model import Transition, Workflow

if TYPE_CHECKING:
    from regelwerk.workflows.runtime import WorkflowRuntime

__all__ = ["Gate", "Version"]


class Version:
    """One definition version: the compiled model, its shared machine and its data validator."""

    __slots__ = ("machine", "model", "validator", "version")

    def __init__(self, model: Workflow, version: str) -> None:
        self.model = model
        self.version = version
        self.machine = WorkflowMachine(model, version)
        self.validator: Any = None
        if model.data_schema is not None:
            from jsonschema import Draft202012Validator

            self.validator = Draft202012Validator(model.data_schema)

    def check_data(self, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise InvalidData("instance data must be a JSON object", "")
        if self.validator is None:
            return
        errors = sorted(self.validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            items = [{"pointer": "".join(f"/{p}" for p in e.absolute_path), "message": e.message[:200]}
                     for e in errors]
            raise InvalidData(f"data does not fit {self.model.name}: {items[0]['message']}", items[0]["pointer"],
                              items)


class Gate:
    """Guard and permission of one fire; remembers the winner and the refusals."""

    __slots__ = (
        "_data",
        "_scope",
        "actor",
        "check_permission",
        "chosen",
        "engine",
        "event",
        "explain",
        "input",
        "now",
        "rec",
        "refused",
        "rt",
    )

    def __init__(self, engine: WorkflowRuntime, rt: Version, rec: InstanceRecord, event: str, actor: Actor,
                 data: Mapping[str, Any], input_data: Mapping[str, Any], now: datetime, check_permission: bool) -> None:
        self.engine = engine
        self.rt = rt
        self.rec = rec
        self.event = event
        self.actor = actor
        self.input = input_data
        self.now = now
        self.check_permission = check_permission
        self.chosen: Transition | None = None
        self.explain: dict[str, Any] = {}
        self.refused: list[tuple[Transition, str, Any]] = []
        self._scope: dict[str, Any] | None = None
        self._data = data

    @property
    def scope(self) -> dict[str, Any]:
        if self._scope is None:
            rec = self.rec
            self._scope = {"data": self._data, "input": self.input, "actor": self.actor.to_dict(),
                           "event": self.event, "instance": {"id": rec.id, "workflow": rec.workflow,
                                                             "state": rec.state, "version": rec.version}}
        return self._scope

    def admit(self, transition: Transition) -> bool:
        guard = transition.guard
        if guard is not None and not guard(self.scope, self.now):
            self.refused.append((transition, "guard", None))
            return False
        decision_explain: Any = None
        if not transition.permission and self.check_permission:
            refused = self.engine._check_unguarded(self.actor, self.rt.model, self.rec, self._data, transition)
            if refused is not None:
                self.refused.append((transition, "permission", refused.explain))
                return False
        if transition.permission:
            if self.check_permission:
                decision = self.engine._check(self.actor, transition.permission, self.rt.model, self.rec,
                                              self._data, transition, self.now)
                if not decision.allowed:
                    self.refused.append((transition, "permission", decision.explain))
                    return False
                decision_explain = decision.explain
            else:
                decision_explain = "skipped: fired by the system (timer)"
        self.chosen = transition
        self.explain = {
            "guard": guard.text if guard is not None else None,
            "permission": ({"action": transition.permission, "allowed": True, "explain": decision_explain}
                           if transition.permission else None),
        }
        return True

    def refusal(self) -> RegelwerkError:
        denied = [(t, why) for t, kind, why in self.refused if kind == "permission"]
        if denied:
            transition, why = denied[0]
            return PermissionDenied(self.actor.id, transition.permission or transition.event,
                                    f"{self.rt.model.resource_type}:{self.rec.id}", why)
        reasons = []
        for transition, _kind, _why in self.refused:
            assert transition.guard is not None
            _ok, parts = transition.guard.explain(self.scope, self.now)
            reasons.append(f"guard of {transition.event} -> {transition.dest} failed: " + "; ".join(parts))
        return TransitionNotAllowed(self.rec.id, self.rec.state, self.event, reasons or ["no transition passed"])
