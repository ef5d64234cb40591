"""Condition functions shipped with the core (``{fn: name, args: [...]}``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from regelwerk.conditions import to_temporal
from regelwerk.registry import FunctionSpec, Registry

__all__ = ["register"]


def is_weekday(value: Any) -> bool:
    """True when the date is Monday to Friday."""
    moment = to_temporal(value)
    return moment is not None and moment.weekday() < 5


def within_days(value: Any, now: Any, days: Any) -> bool:
    """True when ``value`` lies between ``now`` and ``now + days`` (inclusive), by calendar date."""
    moment, current = to_temporal(value), to_temporal(now)
    if moment is None or current is None or not isinstance(days, int):
        return False
    a = moment.date() if isinstance(moment, datetime) else moment
    b = current.date() if isinstance(current, datetime) else current
    return 0 <= (a - b).days <= days


def is_empty(value: Any) -> bool:
    """True for None, an empty string, list or mapping."""
    return value is None or (isinstance(value, (str, list, dict, tuple)) and len(value) == 0)


def same_date(a: Any, b: Any) -> bool:
    """True when two moments fall on the same calendar date."""
    x, y = to_temporal(a), to_temporal(b)
    if x is None or y is None:
        return False
    dx = x.date() if isinstance(x, datetime) else x
    dy = y.date() if isinstance(y, datetime) else y
    return isinstance(dx, date) and dx == dy


def includes_all(items: Any, required: Any) -> bool:
    """True when the list ``items`` holds every item of the list ``required`` (every committee member scored);
    false when either is not a list."""
    if not isinstance(items, (list, tuple)) or not isinstance(required, (list, tuple)):
        return False
    return all(item in items for item in required)


def register(registry: Registry, plugin: str) -> None:
    """Add the core condition functions."""
    for fn in (is_weekday, within_days, is_empty, same_date, includes_all):
        registry.add_function(FunctionSpec(fn.__name__, plugin, fn, (fn.__doc__ or "").strip()))
