"""The compiled ``RuleSet``: frozen rules, each a condition, a priority and named actions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from regelwerk.conditions import Condition

__all__ = ["ActionCall", "Pattern", "Rule", "RuleSetModel"]


@dataclass(frozen=True, slots=True)
class ActionCall:
    """A named action with its parameters (``params`` is a sorted tuple of (name, value) pairs)."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        """The parameters as a fresh dict."""
        return {k: _thaw(v) for k, v in self.params}


@dataclass(frozen=True, slots=True)
class Pattern:
    """One named pattern of a join rule: a condition over a candidate fact and the facts matched before it.

    ``refs`` are the earlier patterns' names this pattern's condition reads (``cert.employee``).
    """

    name: str
    when: Condition
    refs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: fires when ``when`` holds for a posted event; runs ``then`` in order.

    A join rule has ``patterns`` instead (``match:`` in YAML; ``when`` is then always true): it fires once
    per combination of distinct facts of a session, one per pattern, that satisfies every pattern in order.
    """

    id: str
    when: Condition
    then: tuple[ActionCall, ...]
    priority: int = 0
    index: int = 0
    label: str = ""
    patterns: tuple[Pattern, ...] = ()

    @property
    def joins(self) -> bool:
        """True for a join rule (``match:``), evaluated over a session's facts."""
        return bool(self.patterns)


@dataclass(frozen=True, slots=True)
class RuleSetModel:
    """A compiled rule set. ``version`` is the content hash that names it inside durable-rules."""

    name: str
    rules: tuple[Rule, ...]
    version: str
    label: str = ""
    description: str = ""

    by_id: Mapping[str, Rule] = field(init=False, repr=False, compare=False, hash=False)
    has_joins: bool = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", MappingProxyType({r.id: r for r in self.rules}))
        object.__setattr__(self, "has_joins", any(r.patterns for r in self.rules))

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id (KeyError when unknown)."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


def freeze(value: Any) -> Any:
    """Plain data into hashable, immutable data (mappings become sorted pair tuples marked as such)."""
    if isinstance(value, Mapping):
        return _Frozen(tuple(sorted((str(k), freeze(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


class _Frozen(tuple):  # type: ignore[type-arg]  # a mapping stored as sorted (key, value) pairs
    __slots__ = ()


def _thaw(value: Any) -> Any:
    if isinstance(value, _Frozen):
        return {k: _thaw(v) for k, v in value}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value
