"""Compiled Workflow -> ``transitions``: a pure config function and ONE shared Machine per definition version.

Instances are never models of the Machine (transitions keeps a strong reference to every model it
knows, see pytransitions issues #146 and #434), so the machine's memory does not grow with the number
of instances. Each transition's single condition asks the per-call :class:`Gate` (guard and
permission) whether it may pass; as in transitions, the first transition whose conditions hold wins.
The hot path reads the machine's own transition table; the full ``Event.trigger`` on a throw-away
slotted token (never registered with the machine) is used for whatever the table cannot answer, so
transitions' ``MachineError`` is translated at this boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from regelwerk.errors import TransitionNotAllowed
from regelwerk.workflows.model import Transition, Workflow

__all__ = ["Gate", "WorkflowMachine", "to_transitions_config"]


def to_transitions_config(model: Workflow) -> dict[str, Any]:
    """The keyword arguments of ``transitions.Machine`` for a workflow (pure data).

    Conditions are named ``admit:<index>``; :class:`WorkflowMachine` binds each name to a callable
    that asks the gate of the current fire.
    """
    return {
        "states": [state.id for state in model.states],
        "initial": model.initial,
        "transitions": [
            # an internal transition is transitions' own (dest None: the state is not left, no exit/enter callbacks)
            {"trigger": t.event, "source": list(t.sources), "dest": None if t.internal else t.dest,
             "conditions": [f"admit:{t.index}"]}
            for t in model.transitions
        ],
        "auto_transitions": False,
        "send_event": True,
        "ignore_invalid_triggers": False,
    }


class Gate(Protocol):
    """Decides, per fire, whether one candidate transition may pass (guard and permission)."""

    def admit(self, transition: Transition) -> bool:
        """True when the transition may fire; the gate remembers why (not)."""


class _Token:
    """The instance's state for the duration of one trigger; never registered with the machine."""

    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


class WorkflowMachine:
    """The shared ``transitions.Machine`` of one workflow definition version."""

    def __init__(self, model: Workflow, version: str) -> None:
        from transitions import Machine

        self.model = model
        self.version = version
        config = to_transitions_config(model)
        by_index = {t.index: t for t in model.transitions}
        for item in config["transitions"]:
            item["conditions"] = [self._condition(by_index[int(name.split(":", 1)[1])]) for name in item["conditions"]]
        self.machine = Machine(model=None, **config)
        self._events = self.machine.events
        by_condition = {id(item["conditions"][0]): by_index[i] for i, item in enumerate(config["transitions"])}
        self._table: dict[tuple[str, str], tuple[Transition, ...]] = {}
        for event_name, handler in self._events.items():
            for source, found in handler.transitions.items():
                self._table[(source, event_name)] = tuple(by_condition[id(t.conditions[0].func)] for t in found)
        self._states = frozenset(model.state_ids)
        self._states_by_id = {s.id: s for s in model.states}

    @staticmethod
    def _condition(transition: Transition) -> Callable[[Any], bool]:
        def admit(event_data: Any) -> bool:
            gate: Gate = event_data.args[0]
            return gate.admit(transition)

        return admit

    def state(self, state_id: str) -> Any:
        """The model State (KeyError if unknown)."""
        return self._states_by_id[state_id]

    def step(self, instance_id: str, state: str, event: str, gate: Gate) -> str | None:
        """Fire ``event`` from ``state``; the new state, or None when every candidate was refused.

        The hot path walks the shared machine's own transition table (``machine.events[e].transitions``,
        in the machine's order) and asks the gate; anything the table cannot answer (unknown event,
        unknown state, invalid source) goes through ``Event.trigger`` so that transitions' own
        ``MachineError`` is what gets translated into ``TransitionNotAllowed``.
        """
        candidates = self._table.get((state, event))
        if candidates:
            for transition in candidates:
                if gate.admit(transition):
                    return transition.target(state)
            return None
        return self.trigger(instance_id, state, event, gate)

    def trigger(self, instance_id: str, state: str, event: str, gate: Gate) -> str | None:
        """The same as :meth:`step`, through ``transitions``' full ``Event.trigger`` on a throw-away token."""
        from transitions.core import MachineError

        handler = self._events.get(event)
        if handler is None:
            raise TransitionNotAllowed(instance_id, state, event, [
                f"{self.model.name} has no event {event!r}; events: {', '.join(self.model.events) or 'none'}"])
        if state not in self._states:
            raise TransitionNotAllowed(instance_id, state, event, [
                f"state {state!r} does not exist in this version of {self.model.name}"])
        token = _Token(state)
        try:
            fired = handler.trigger(token, gate)
        except MachineError as exc:
            froms = sorted({s for t in self.model.transitions if t.event == event for s in t.sources})
            raise TransitionNotAllowed(instance_id, state, event, [
                f"{event!r} cannot fire from state {state!r}; it fires from: {', '.join(froms)}"]) from exc
        return token.state if fired else None

    def candidates(self, state: str, event: str) -> tuple[Transition, ...]:
        """The transitions for ``event`` from ``state``, in the order the machine tries them."""
        return self.model.transitions_from(state, event)
