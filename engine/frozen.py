"""Read-only containers for compiled definitions: a compiled bundle is shared by every caller of an Engine, so
nothing reachable from it may be changed in place (an action that edits its ``ctx.params`` would change the
definition for every later call).

``FrozenDict`` and ``FrozenList`` subclass ``dict`` and ``list`` so that ``isinstance`` checks, ``json.dumps``
equality and ``repr`` (content hashes of compiled objects) keep working; every mutating method raises
:class:`TypeError`. :func:`deep_freeze` converts
plain dicts, lists and sets inside a value, recursing into dataclass instances (public fields only: fields whose
name starts with ``_`` are a compiled object's private caches).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn, SupportsIndex, TypeVar

__all__ = ["FrozenDict", "FrozenList", "Sealed", "deep_freeze", "freeze_json"]

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


def _refuse(self: object, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError(f"{type(self).__name__} is read-only: compiled definitions and the data of an instance record "
                    "cannot be changed in place (a fire with data= changes an instance)")


class FrozenDict(dict[K, V]):
    """A dict that refuses writes."""

    __slots__ = ()
    __setitem__ = _refuse
    __delitem__ = _refuse
    __ior__ = _refuse
    clear = _refuse
    pop = _refuse
    popitem = _refuse
    setdefault = _refuse
    update = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __copy__(self) -> FrozenDict[K, V]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict[K, V]:
        return self


class FrozenList(list[T]):
    """A list that refuses writes."""

    __slots__ = ()
    __setitem__ = _refuse
    __delitem__ = _refuse
    __iadd__ = _refuse
    __imul__ = _refuse
    append = _refuse
    extend = _refuse
    insert = _refuse
    remove = _refuse
    clear = _refuse
    sort = _refuse
    reverse = _refuse

    def pop(self, index: SupportsIndex = -1) -> T:
        _refuse(self)

    def __init__(self, items: Iterable[T] = ()) -> None:
        list.extend(self, items)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (list(self),))

    def __copy__(self) -> FrozenList[T]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenList[T]:
        return self


_SCALARS = frozenset({str, int, float, bool, type(None), bytes})


class Sealed:
    """A compiled object whose attributes are set by its ``__init__`` only (it ends with ``self._seal()``): after
    that, setting or deleting an attribute raises ``AttributeError``. For the compiled parts that are plain
    classes with ``__slots__`` rather than frozen dataclasses (decision tables, calculations, expressions,
    conditions): a compiled bundle is shared by every caller, so a write by one must not reach the others."""

    __slots__ = ("_sealed",)

    def _seal(self) -> None:
        object.__setattr__(self, "_sealed", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_sealed", False):
            raise AttributeError(f"{type(self).__name__} is compiled and immutable: {name!r} cannot be set")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if getattr(self, "_sealed", False):
            raise AttributeError(f"{type(self).__name__} is compiled and immutable: {name!r} cannot be deleted")
        object.__delattr__(self, name)


def freeze_json(value: Any) -> Any:
    """JSON data (dicts, lists, scalars) made read-only throughout; a ``FrozenDict`` or ``FrozenList`` is taken as
    frozen already. The data of the instance records the runtime hands out and keeps: a caller that changes a
    returned record's data in place gets a ``TypeError`` instead of changing the engine's cached copy (which the
    next fire would write) or the memory store's row."""
    kind = type(value)
    if kind is dict:
        return FrozenDict({k: v if type(v) in _SCALARS else freeze_json(v) for k, v in value.items()})
    if kind is list:
        return FrozenList([v if type(v) in _SCALARS else freeze_json(v) for v in value])
    if kind in _SCALARS or kind is FrozenDict or kind is FrozenList:
        return value
    if isinstance(value, Mapping):  # another mapping (an OrderedDict a caller passed): a read-only copy too
        return FrozenDict({k: freeze_json(v) for k, v in value.items()})
    if isinstance(value, list):
        return FrozenList([freeze_json(v) for v in value])
    if isinstance(value, tuple):
        return tuple(freeze_json(v) for v in value)
    return value


def deep_freeze(value: Any, _seen: set[int] | None = None) -> Any:
    """``value`` with every plain dict, list and set inside it made read-only (dataclass fields in place)."""
    kind = type(value)
    if kind in _SCALARS:  # most of a compiled bundle: nothing to freeze
        return value
    seen = set() if _seen is None else _seen
    if kind is dict:
        return FrozenDict({k: deep_freeze(v, seen) for k, v in value.items()})
    if kind is FrozenDict:
        return value
    if kind is list:
        return FrozenList(deep_freeze(v, seen) for v in value)
    if kind is tuple:
        items = tuple(deep_freeze(v, seen) for v in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if kind is set:
        return frozenset(deep_freeze(v, seen) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if id(value) in seen:
            return value
        seen.add(id(value))
        for field in dataclasses.fields(value):
            if field.name.startswith("_"):
                continue
            try:
                old = getattr(value, field.name)
            except AttributeError:
                continue
            new = deep_freeze(old, seen)
            if new is not old:
                object.__setattr__(value, field.name, new)
    return value
