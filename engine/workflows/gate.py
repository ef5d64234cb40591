"""One definition version at run time (``Version``) and the guard + permission gate of one fire (``Gate``)."""

from __future__ import annotations

import math
import re
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
from regelwerk.frozen import _JsonDict, _JsonList, freeze_json
from regelwerk.store.records import InstanceRecord, is_erased
from regelwerk.workflows.machine import WorkflowMachine
from regelwerk.workflows.model import Transition, Workflow

if TYPE_CHECKING:
    from regelwerk.workflows.runtime import WorkflowRuntime

__all__ = ["MAX_DATA_DEPTH", "Gate", "Version", "system_fields_refusal"]


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

    def check_data(self, data: Mapping[str, Any], *, schema: bool = True) -> None:
        """The data is a JSON object (not too deep, no NaN), not the erasure marker, and (``schema``) fits the
        workflow's ``data_schema`` (:meth:`check_schema`)."""
        if not isinstance(data, Mapping):
            raise InvalidData("instance data must be a JSON object", "")
        if is_erased(data):  # the mark an AVG erasure leaves: written as data it froze the instance (found by attack)
            raise InvalidData("instance data cannot be only {\"erased\": true}: that is what an AVG erasure leaves "
                              "(StoreTx.erase_personal_data erases an instance)", "/erased")
        odd = not_json(data)
        if odd is not None:
            raise InvalidData(f"instance data must be JSON: {odd[1]} is not", odd[0])
        if schema:
            self.check_schema(data)

    def checked(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """:meth:`check_data` (schema included), and the data's read-only copy (``freeze_json(data)``): a start's data
        (a dict just parsed from a scheduled item's JSON, or the caller's) is walked once for both when it is plain
        JSON (exact dicts, lists and scalars); anything else is checked and frozen as before, the same errors."""
        if type(data) is dict and not is_erased(data):
            frozen = _frozen_plain(data, MAX_DATA_DEPTH)
            if frozen is not None:
                self.check_schema(data)
                checked: Mapping[str, Any] = frozen
                return checked
        self.check_data(data)
        frozen_data: Mapping[str, Any] = freeze_json(data)
        return frozen_data

    def checked_plain(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """:meth:`checked` without the read-only copy when ``data`` is plain JSON (an exact dict of exact dicts, lists
        and scalars, :func:`_plain_json`): the data itself, checked (schema included), for a caller that owns it and
        neither changes nor hands it out before it freezes or writes it (the tick's kept starts: the rows are written
        from it, no copy is made only to be serialised); anything else is :meth:`checked` (the same errors)."""
        if type(data) is dict and not is_erased(data) and _plain_json(data, MAX_DATA_DEPTH):
            self.check_schema(data)
            return data
        return self.checked(data)

    def check_schema(self, data: Mapping[str, Any]) -> None:
        """The data against the workflow's ``data_schema`` (after :meth:`check_data`'s shape checks). A fire asks
        it after the permission: a rule about the merged data (``maxProperties``, ``if``/``then`` on a stored field)
        would otherwise tell an actor the policy refuses something about data not theirs to see."""
        if self.validator is None:
            return
        errors = sorted(self.validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            items = [{"pointer": "".join(f"/{p}" for p in e.absolute_path), "message": _schema_message(e)[:200]}
                     for e in errors]
            raise InvalidData(f"data does not fit {self.model.name}: {items[0]['message']}", items[0]["pointer"],
                              items)


def _schema_message(error: Any) -> str:
    """A schema error's message without the contents of an object or array: a rule about a whole object
    (``maxProperties``, ``anyOf`` at the root) printed the merged data itself, stored values included (found by
    attack: a stranger's fire read the dossier; the schema is now also asked only after the permission)."""
    message = str(error.message)
    if isinstance(error.instance, (Mapping, list, tuple)):
        shown = repr(error.instance)
        if shown in message:
            where = "the data" if not error.absolute_path else "the value"
            message = message.replace(shown, where) + f" ({error.validator})"
    return message


def system_fields_refusal(model: Workflow, data: Mapping[str, Any] | None, *,
                          start: bool = False, event: str | None = None) -> InvalidData | None:
    """The refusal of a person's start data or event payload that names one of ``model``'s ``system_fields`` (the
    fields only the workflow's own work sets: its actions, its timers, the host's ``system_data``), or of an event
    payload (``start`` false) that names one of its ``fixed_fields`` (given at the start, then never changed by a
    person); None when the data names none. Whatever the value, also the stored one: a person never writes these
    fields (there), so the refusal says nothing about the stored value. With ``event``: also a field the event's
    ``input`` does not list (when its transitions declare one)."""
    if not data:
        return None
    if event is not None and not start:
        allowed = next((t.input for t in model.transitions if t.event == event), None)
        if allowed is not None:
            odd = [name for name in data if name not in allowed]
            if odd:
                items = [{"pointer": "/" + name.replace("~", "~0").replace("/", "~1"),
                          "message": f"{name!r} is no input of {model.name}.{event} (input: {', '.join(allowed)})"}
                         for name in odd]
                return InvalidData(f"{', '.join(repr(n) for n in odd)} may not be given with {event!r}: its input is "
                                   f"{', '.join(repr(n) for n in allowed) or 'nothing'}", items[0]["pointer"], items,
                                   odd)
    if not (model.system_fields or (model.fixed_fields and not start)):
        return None
    named = [name for name in model.system_fields if name in data]
    fixed = [] if start else [name for name in model.fixed_fields if name in data and name not in named]
    if fixed and not named:
        items = [{"pointer": "/" + name.replace("~", "~0").replace("/", "~1"),
                  "message": f"{name!r} of {model.name} is given when it starts (a fixed field), never by an event"}
                 for name in fixed]
        return InvalidData(f"{', '.join(repr(n) for n in fixed)} of {model.name} may not be changed: "
                           f"{'it is a fixed field' if len(fixed) == 1 else 'they are fixed fields'}, given when "
                           "the instance starts and set after that only by the workflow's actions and timers and the "
                           "host's own code", items[0]["pointer"], items, fixed)
    if not named:
        return None
    items = [{"pointer": "/" + name.replace("~", "~0").replace("/", "~1"),
              "message": f"{name!r} is set by {model.name} itself (a system field), never by a person's data"}
             for name in named]
    return InvalidData(f"{', '.join(repr(n) for n in named)} of {model.name} may not be given: "
                       f"{'it is a system field' if len(named) == 1 else 'they are system fields'}, set only by the "
                       "workflow's actions and timers and the host's own code", items[0]["pointer"], items, named)


#: how deep instance data may nest (the data object itself is level 1): deeper data is ``InvalidData``. Found by
#: attack: data 300 levels deep was stored and then broke every answer that carried it (the service's listing of the
#: tenant's instances was a 500 from then on), and 2 000 levels were a ``RecursionError`` out of this very check.
MAX_DATA_DEPTH = 64
#: a UTF-16 surrogate code point: half of a character (JSON's ``\\ud83d`` escape alone); no UTF-8 text holds one, so
#: no answer can carry a text with one (found by attack: the service stored it, on every store, and every later
#: listing of the tenant's instances was a 500)
_SURROGATE = re.compile("[\ud800-\udfff]")


def not_json(value: Any, pointer: str = "") -> tuple[str, str] | None:
    """``(JSON pointer, what it is)`` of the first part of ``value`` that is not JSON data (objects with string
    keys, arrays, strings of Unicode text (no lone surrogate), finite numbers, true/false, null) or that nests
    deeper than :data:`MAX_DATA_DEPTH` levels, or None when all of it is.

    Instance data is stored as JSON: a value a store cannot write (a set, a date, NaN) is refused as
    :class:`InvalidData` before anything is written, the same on every store. Plain dicts, lists and scalars
    (nearly all data) are walked without building pointers; the pointer is made only for what is found.
    """
    if _plain_json(value, MAX_DATA_DEPTH):
        return None
    return _first_not_json(value, pointer, MAX_DATA_DEPTH)


def _plain_json(value: Any, room: int = MAX_DATA_DEPTH) -> bool:
    """True when ``value`` is JSON made of exact dicts, lists, str, int, bool, None and finite floats (no
    subclasses, tuples or other mappings: those take the walk with pointers, which says what they are), with
    objects and arrays nested ``room`` levels at most."""
    kind = type(value)
    if kind is str:
        return value.isascii() or _SURROGATE.search(value) is None
    if kind is int or kind is bool or value is None:
        return True
    if kind is dict:
        if room < 1:
            return False
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or _SURROGATE.search(key) is None):
                return False
            kind = type(item)
            if kind is str:
                if item.isascii() or _SURROGATE.search(item) is None:
                    continue
                return False
            if kind is int or kind is bool or item is None:
                continue
            if not _plain_json(item, room - 1):
                return False
        return True
    if kind is list:
        return room >= 1 and all(_plain_json(item, room - 1) for item in value)
    if kind is float:
        return math.isfinite(value)
    return False


#: what :func:`_frozen_value` returns for a value that is not plain JSON
_NOT_PLAIN = object()


def _frozen_plain(value: Any, room: int) -> Any:
    """What ``freeze_json(value)`` returns, when ``value`` (a dict or a list) is what :func:`_plain_json` accepts with
    ``room`` levels; None otherwise (the caller then checks and freezes it the long way). One walk instead of two:
    the same rules as :func:`_plain_json`, the same read-only containers as :func:`~regelwerk.frozen.freeze_json`."""
    if room < 1:
        return None
    if type(value) is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or _SURROGATE.search(key) is None):
                return None
            frozen = _frozen_value(item, room)
            if frozen is _NOT_PLAIN:
                return None
            out[key] = frozen
        return _JsonDict(out)
    items: list[Any] = []
    for item in value:
        frozen = _frozen_value(item, room)
        if frozen is _NOT_PLAIN:
            return None
        items.append(frozen)
    return _JsonList(items)


def _frozen_value(item: Any, room: int) -> Any:
    """One member of a container :func:`_frozen_plain` walks with ``room`` levels: itself (a scalar), its frozen copy
    (a dict or list), or ``_NOT_PLAIN``."""
    kind = type(item)
    if kind is str:
        return item if item.isascii() or _SURROGATE.search(item) is None else _NOT_PLAIN
    if kind is dict or kind is list:
        frozen = _frozen_plain(item, room - 1)
        return _NOT_PLAIN if frozen is None else frozen
    if kind is float:
        return item if math.isfinite(item) else _NOT_PLAIN
    if kind is int or kind is bool or item is None:
        return item
    return _NOT_PLAIN


def _first_not_json(value: Any, pointer: str, room: int = MAX_DATA_DEPTH) -> tuple[str, str] | None:
    if isinstance(value, str):
        return None if _SURROGATE.search(value) is None else (_shown(pointer), "a text with a lone surrogate")
    if value is None or isinstance(value, int):  # bool is an int
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (pointer, repr(value))
    if isinstance(value, (Mapping, list, tuple)) and room < 1:
        return pointer, f"an object or array nested deeper than {MAX_DATA_DEPTH} levels"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{pointer}/{key}", f"a {type(key).__name__} key"
            if _SURROGATE.search(key) is not None:
                return _shown(f"{pointer}/{key}"), "a key with a lone surrogate"
            odd = _first_not_json(item, f"{pointer}/{key}", room - 1)
            if odd is not None:
                return odd
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            odd = _first_not_json(item, f"{pointer}/{index}", room - 1)
            if odd is not None:
                return odd
        return None
    return pointer, f"a {type(value).__name__}"


def _shown(pointer: str) -> str:
    """A pointer that can be written as UTF-8 (a lone surrogate in it as its ``\\udXXX`` escape)."""
    return pointer.encode("utf-8", "backslashreplace").decode("utf-8")


def json_copy(value: Any) -> Any:
    """A deep copy of JSON data (objects and arrays copied, everything else shared): what actions change in place
    must not reach the stored record until the runtime saves it."""
    if isinstance(value, dict):
        return {key: json_copy(item) if isinstance(item, (dict, list)) else item for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) if isinstance(item, (dict, list)) else item for item in value]
    return value


class Gate:
    """Guard and permission of one fire; remembers the winner and the refusals."""

    __slots__ = (
        "_data",
        "_pinned",
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
        self._pinned: dict[str, Any] | bool | None = False  # not computed yet

    @property
    def scope(self) -> dict[str, Any]:
        if self._scope is None:
            rec = self.rec
            self._scope = {"data": self._data, "input": self.input, "actor": self.actor.to_dict(),
                           "event": self.event, "instance": {"id": rec.id, "workflow": rec.workflow,
                                                             "state": rec.state, "version": rec.version}}
        return self._scope

    @property
    def pinned(self) -> dict[str, Any] | None:
        """The guard scope with the fields the permission scopes read at their STORED values, when a person's
        payload changes any of them (None otherwise). A guard must pass on both: a guard about who acts
        (``actor.id ne data.subject``) cannot be passed by renaming the subject in the payload."""
        if self._pinned is False:
            self._pinned = None
            if self.check_permission:
                stored = self.rec.data
                changed = changed_scope_fields(self.engine.permissions, self.rt.model.resource_type, self._data,
                                               stored)
                if changed:
                    data = {k: v for k, v in self._data.items() if k not in changed}
                    data.update({k: stored[k] for k in changed if k in stored})
                    self._pinned = {**self.scope, "data": data}
        return self._pinned if isinstance(self._pinned, dict) else None

    def guard_passes(self, guard: Any) -> tuple[bool, dict[str, Any]]:
        """Whether ``guard`` passes on the event's data and (see :attr:`pinned`) on the stored scope fields;
        the scope it failed on."""
        if not guard(self.scope, self.now):
            return False, self.scope
        pinned = self.pinned
        if pinned is not None and not guard(pinned, self.now):
            return False, pinned
        return True, self.scope

    def admit(self, transition: Transition) -> bool:
        if transition.system_only and self.check_permission:  # a person's fire of a system-only event
            self.refused.append((transition, "permission", system_only_explain(self.rt.model.name, transition,
                                                                               self.actor.id)))
            return False
        guard = transition.guard
        if not transition.permission and self.check_permission:
            refused = self.engine._check_unguarded(self.actor, self.rt.model, self.rec, self._data, transition)
            if refused is not None:
                self.refused.append((transition, "permission", refused.explain))
                return False
        # the permission is decided before the guard: a guard reads the instance's data and its refusal names the
        # values it read, so an actor the policy refuses learns that and nothing else (a 403, audited), never the
        # stored values behind a 409 (found by attack: a stranger's fire answered "data.salary = 4000")
        decision_explain: Any = None
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
        if guard is not None:
            passed, where = self.guard_passes(guard)
            if not passed:
                self.refused.append((transition, "guard", where))
                return False
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
            return PermissionDenied(self.actor.id, transition.permission or f"{self.rt.model.name}.{transition.event}",
                                    f"{self.rt.model.resource_type}:{self.rec.id}", why)
        reasons = []
        for transition, _kind, where in self.refused:
            assert transition.guard is not None
            # a person is told a failing comparison with the actor alone (the rest reads data not theirs to see)
            explain = transition.guard.explain_for_person if self.check_permission else transition.guard.explain
            _ok, parts = explain(where or self.scope, self.now)
            to = transition.target(self.rec.state)
            reasons.append(f"guard of {transition.event} -> {to} failed: " + "; ".join(parts))
        return TransitionNotAllowed(self.rec.id, self.rec.state, self.event, reasons or ["no transition passed"])


def system_only_explain(workflow: str, transition: Transition, actor: str) -> dict[str, Any]:
    """Why a person may not fire a ``system_only`` event (the refusal's explanation, audited)."""
    return {"decision": "deny", "by": "system-only", "actor": actor, "event": transition.event,
            "reason": f"only the system fires {workflow}.{transition.event} (a timer, or a workflow.fire "
                      "chained from one); no person may, whatever the policy grants"}


#: The fields that place a resource in a scope when the policy does not say (``PermissionMatrix`` defaults).
DEFAULT_SCOPE_FIELDS = ("author", "department", "subject")


def changed_scope_fields(port: Any, resource_type: str, data: Mapping[str, Any],
                         stored: Mapping[str, Any]) -> list[str]:
    """The fields ``port``'s scopes read for ``resource_type`` (its ``scope_fields`` when it has one, always with
    the defaults subject, author and department) whose value in ``data`` differs from the ``stored`` one."""
    if data is stored:
        return []
    own = getattr(port, "scope_fields", None)
    fields = {*DEFAULT_SCOPE_FIELDS, *(own(resource_type) if callable(own) else ())}
    return sorted(k for k in fields if data.get(k) != stored.get(k))
