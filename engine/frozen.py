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

__all__ = ["FrozenDict", "FrozenList", "Sealed", "deep_freeze", "freeze_json", "thaw"]

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

    def __copy__(self) -> dict[K, V]:  # a copy is the caller's own, to change: a plain dict (as ``dict(d)``)
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:  # the caller's own, all the way down
        return thaw(self)


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

    def __copy__(self) -> list[T]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return thaw(self)


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


class _JsonDict(FrozenDict[K, V]):
    """Made by :func:`freeze_json` only: read-only all the way down, so it is taken as it is. A ``FrozenDict``
    anyone else made may hold a plain dict that its maker still changes: that one is walked."""

    __slots__ = ()


class _JsonList(FrozenList[T]):
    """The list counterpart of :class:`_JsonDict`."""

    __slots__ = ()


def freeze_json(value: Any) -> Any:
    """JSON data (dicts, lists, scalars) made read-only throughout; what an earlier call returned is taken as it
    is. The data of the instance records the runtime hands out and keeps: a caller that changes a returned
    record's data in place gets a ``TypeError`` instead of changing the engine's cached copy (which the next fire
    would write) or the memory store's row. ``copy.copy`` of it is a plain dict or list, ``copy.deepcopy`` and
    :func:`thaw` plain all the way down."""
    kind = type(value)
    if kind is _JsonDict or kind is _JsonList or kind in _SCALARS:
        return value
    if kind is dict:
        return _JsonDict({k: v if type(v) in _SCALARS else freeze_json(v) for k, v in value.items()})
    if kind is list:
        return _JsonList([v if type(v) in _SCALARS else freeze_json(v) for v in value])
    if isinstance(value, Mapping):  # another mapping (a FrozenDict or OrderedDict a caller made): walked too
        return _JsonDict({k: freeze_json(v) for k, v in value.items()})
    if isinstance(value, list):
        return _JsonList([freeze_json(v) for v in value])
    if isinstance(value, tuple):
        return tuple(freeze_json(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """A plain, changeable deep copy of read-only data (dicts and lists; tuples stay tuples, scalars as they are):
    what a host edits or hands to a library that knows only ``dict`` and ``list``."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thaw(v) for v in value]
    if isinstance(value, tuple):
        return tuple(thaw(v) for v in value)
    return value


def _register_yaml() -> None:
    """``yaml.safe_dump`` (and ``yaml.dump``) write read-only data as the mappings and sequences it is."""
    import yaml

    dumpers = [yaml.SafeDumper, yaml.Dumper, getattr(yaml, "CSafeDumper", None), getattr(yaml, "CDumper", None)]
    for dumper in dumpers:
        if dumper is None:
            continue
        for mapping in (FrozenDict, _JsonDict):
            dumper.add_representer(mapping, yaml.representer.SafeRepresenter.represent_dict)
        for sequence in (FrozenList, _JsonList):
            dumper.add_representer(sequence, yaml.representer.SafeRepresenter.represent_list)


_register_yaml()


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
