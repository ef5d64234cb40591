"""The compiled Workflow model: frozen, slotted dataclasses of tuples and mappings (no library objects)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from regelwerk.conditions import Condition, Duration, compile_condition, parse_duration

__all__ = ["ActionRef", "State", "TimerSpec", "Transition", "Workflow", "workflow_from_dict", "workflow_to_dict"]


@dataclass(frozen=True, slots=True)
class ActionRef:
    """A named action call with its parameters (``with:`` in YAML)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TimerSpec:
    """A timeout of a state: after ``duration`` in the state, ``event`` fires (as the system)."""

    duration: Duration
    event: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class State:
    """One state of a workflow."""

    id: str
    label: str
    group: str = ""
    tags: tuple[str, ...] = ()
    initial: bool = False
    final: bool = False
    archive: bool = False
    on_enter: tuple[ActionRef, ...] = ()
    on_exit: tuple[ActionRef, ...] = ()
    after: tuple[TimerSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class Transition:
    """One transition: ``event`` moves an instance from one of ``sources`` to ``dest``.

    ``index`` is the transition's position in the definition; among transitions for the same event
    and source state the first whose guard and permission pass wins.
    """

    index: int
    event: str
    sources: tuple[str, ...]
    dest: str
    label: str = ""
    guard: Condition | None = None
    permission: str = ""
    actions: tuple[ActionRef, ...] = ()
    pointer: str = ""
    guard_source: Any = None
    #: Only the system fires it (a timer, a scheduled start, a chained fire from one): a person's fire is refused.
    system_only: bool = False
    #: An internal transition (``internal: true``): the instance stays in the state it fires from, which is not left
    #: (no ``on_exit``/``on_enter``, its pending timers stay); only the transition's own actions run. ``dest`` is
    #: then "" (each source is its own target, see :meth:`target`).
    internal: bool = False
    #: The fields a person's event data may carry (``input: [score]``); None: any. Every transition of an event
    #: declares the same (RW525), so the check needs no state: another field is ``InvalidData``, nothing written.
    input: tuple[str, ...] | None = None

    def target(self, source: str) -> str:
        """The state an instance in ``source`` is in after this transition: ``source`` itself when internal."""
        return source if self.internal else self.dest

    def targets(self) -> tuple[str, ...]:
        """Every state this transition can end in: its sources when internal, else its destination."""
        return self.sources if self.internal else (self.dest,)


@dataclass(frozen=True, slots=True)
class RetrySpec:
    """A workflow's declared retry limits for its failing timers (``spec.retry``); None: the engine's default."""

    attempts: int | None = None
    backoff: timedelta | None = None
    factor: float | None = None
    max_backoff: timedelta | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (seconds for the waits), as stored with the definition version."""
        out: dict[str, Any] = {}
        if self.attempts is not None:
            out["attempts"] = self.attempts
        if self.backoff is not None:
            out["backoff_seconds"] = self.backoff.total_seconds()
        if self.factor is not None:
            out["factor"] = self.factor
        if self.max_backoff is not None:
            out["max_backoff_seconds"] = self.max_backoff.total_seconds()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RetrySpec | None:
        """The inverse of :meth:`to_dict` (None for no data)."""
        if not data:
            return None
        backoff, longest = data.get("backoff_seconds"), data.get("max_backoff_seconds")
        return cls(data.get("attempts"), timedelta(seconds=backoff) if backoff is not None else None,
                   data.get("factor"), timedelta(seconds=longest) if longest is not None else None)


@dataclass(frozen=True, slots=True)
class Workflow:
    """A compiled workflow definition (one per definition version)."""

    name: str
    label: str
    initial: str
    states: tuple[State, ...]
    transitions: tuple[Transition, ...]
    resource_type: str = ""
    data_schema: Mapping[str, Any] | None = None
    description: str = ""
    groups: tuple[tuple[str, str], ...] = ()
    start_permission: str = ""
    retry: RetrySpec | None = None
    #: Data fields only the workflow's own work sets (its actions, timers, the host's ``system_data``): a person's
    #: start data or event payload that names one is refused (``InvalidData``), so no guard, action or host reads
    #: a value a person chose there.
    system_fields: tuple[str, ...] = ()
    #: Data fields a person gives when starting an instance (decided by the start permission) and no person's event
    #: payload may name after that (``InvalidData``): what the guards trust about the case, such as whether a
    #: candidate is internal or the scale of the offer.
    fixed_fields: tuple[str, ...] = ()

    @property
    def start_action(self) -> str:
        """The permission action that starting an instance needs: ``start_permission``, else ``<name>.start``."""
        return self.start_permission or f"{self.name}.start"

    def group_label(self, group: str) -> str:
        """The label of a state group (its id when the definition gives none)."""
        return dict(self.groups).get(group, group)

    def state(self, state_id: str) -> State:
        """The state with this id (KeyError if unknown)."""
        for state in self.states:
            if state.id == state_id:
                return state
        raise KeyError(state_id)

    @property
    def state_ids(self) -> tuple[str, ...]:
        """Every state id, in definition order."""
        return tuple(s.id for s in self.states)

    @property
    def events(self) -> tuple[str, ...]:
        """Every event name, in first-definition order."""
        return tuple(dict.fromkeys(t.event for t in self.transitions))

    def transitions_from(self, state_id: str, event: str | None = None) -> tuple[Transition, ...]:
        """The transitions that leave ``state_id`` (for one event, if given), in definition order."""
        return tuple(t for t in self.transitions
                     if state_id in t.sources and (event is None or t.event == event))


def _action_dict(action: ActionRef) -> dict[str, Any]:
    return {"action": action.name, "with": dict(action.params)}


def workflow_to_dict(model: Workflow) -> dict[str, Any]:
    """Plain JSON data of a compiled workflow (stored per definition version, see ``workflow_from_dict``)."""
    out: dict[str, Any] = {
        "name": model.name, "label": model.label, "initial": model.initial, "resource_type": model.resource_type,
        "description": model.description, "data_schema": model.data_schema, "start_permission": model.start_permission,
        "retry": model.retry.to_dict() if model.retry is not None else None,
        "groups": [{"id": g, "label": label} for g, label in model.groups],
        "states": [{"id": s.id, "label": s.label, "group": s.group, "tags": list(s.tags), "initial": s.initial,
                    "final": s.final, "archive": s.archive, "on_enter": [_action_dict(a) for a in s.on_enter],
                    "on_exit": [_action_dict(a) for a in s.on_exit],
                    "after": [{"duration": t.duration.text, "event": t.event, "data": dict(t.data)}
                              for t in s.after]} for s in model.states],
        "transitions": [{"index": t.index, "event": t.event, "sources": list(t.sources), "dest": t.dest,
                         "label": t.label, "guard": t.guard_source,
                         "guard_missing": t.guard is not None and t.guard_source is None, "permission": t.permission,
                         "actions": [_action_dict(a) for a in t.actions], "pointer": t.pointer,
                         "system_only": t.system_only, **({"internal": True} if t.internal else {}),
                         **({"input": list(t.input)} if t.input is not None else {})}
                        for t in model.transitions],
    }
    if model.system_fields:  # only when declared: the stored form (and a derived workflow's hash) of others as before
        out["system_fields"] = list(model.system_fields)
    if model.fixed_fields:  # likewise
        out["fixed_fields"] = list(model.fixed_fields)
    return out


def _action_refs(items: Any) -> tuple[ActionRef, ...]:
    return tuple(ActionRef(str(a["action"]), dict(a.get("with") or {})) for a in items or ())


def workflow_from_dict(data: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]]) -> Workflow:
    """Rebuild a compiled workflow from ``workflow_to_dict`` data (guards are compiled again)."""
    states = []
    for s in data["states"]:
        timers = []
        for t in s.get("after") or ():
            duration = parse_duration(t["duration"])
            if duration is None:
                raise ValueError(f"stored timer duration {t['duration']!r} is not an ISO-8601 duration")
            timers.append(TimerSpec(duration, t["event"], dict(t.get("data") or {})))
        states.append(State(s["id"], s["label"], s.get("group", ""), tuple(s.get("tags") or ()),
                            bool(s.get("initial")), bool(s.get("final")), bool(s.get("archive")),
                            _action_refs(s.get("on_enter")), _action_refs(s.get("on_exit")), tuple(timers)))
    transitions = []
    for t in data["transitions"]:
        guard = None
        if t.get("guard_missing"):
            raise ValueError(f"the guard of {t['event']!r} was not stored (the compiler set no guard_source)")
        if t.get("guard") is not None:
            guard, problems = compile_condition(t["guard"], f"{t.get('pointer', '')}/guard", functions)
            if problems:
                raise ValueError(f"stored guard of {t['event']!r} does not compile: {problems[0].message}")
        transitions.append(Transition(int(t["index"]), t["event"], tuple(t["sources"]), t.get("dest") or "",
                                      t.get("label", ""),
                                      guard, t.get("permission", ""), _action_refs(t.get("actions")),
                                      t.get("pointer", ""), t.get("guard"), bool(t.get("system_only")),
                                      bool(t.get("internal")),
                                      tuple(str(f) for f in t["input"]) if t.get("input") is not None else None))
    return Workflow(data["name"], data["label"], data["initial"], tuple(states), tuple(transitions),
                    data.get("resource_type", ""), data.get("data_schema"), data.get("description", ""),
                    tuple((g["id"], g["label"]) for g in data.get("groups") or ()),
                    str(data.get("start_permission") or ""), RetrySpec.from_dict(data.get("retry")),
                    tuple(str(f) for f in data.get("system_fields") or ()),
                    tuple(str(f) for f in data.get("fixed_fields") or ()))
