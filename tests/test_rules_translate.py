"""to_durable_ruleset: the pure translation, the pre-filter property and durable's limits as diagnostics."""

from __future__ import annotations

import random
import textwrap
from datetime import UTC, datetime
from typing import Any

import pytest

from engine.bundle import Bundle
from engine.compiler import compile_bundle
from engine.conditions import compile_condition
from engine.diagnostics import DefinitionError
from engine.rules import DurableRules, Rule, RuleSetModel, to_durable_ruleset
from engine.rules.translate import MARKER, PAYLOAD, durable_condition
from engine.source import load_text


def compile_text(text: str, registry: Any) -> Any:
    docs, problems = load_text(textwrap.dedent(text), "rules.yaml")
    assert not problems
    return compile_bundle(Bundle("test", ".", documents=docs), registry)


def diagnostics_of(text: str, registry: Any) -> list[Any]:
    with pytest.raises(DefinitionError) as info:
        compile_text(text, registry)
    return list(info.value.diagnostics)


def cond(data: Any) -> Any:
    compiled, problems = compile_condition(data, "/when", {"is_weekday": lambda value: True})
    assert not problems
    return compiled


def test_golden_translation() -> None:
    when = cond({"all": [
        {"field": "event.type", "eq": "hired"},
        {"field": "event.days", "ge": 10},
        {"field": "event.dept", "in": ["hr", "it"]},
        {"any": [{"field": "event.a", "lt": 1}, {"field": "event.b", "exists": True}]},
        {"not": {"field": "event.c", "eq": 1}},
        {"field": "event.start", "le": {"now": {}}},
        {"field": "event.label", "matches": "^x"},
        {"field": "event.date", "eq": "2026-01-01"},
    ]})
    model = RuleSetModel("r", (Rule("one", when, (), priority=5),), "abc")
    assert to_durable_ruleset(model) == {"one": {
        "all": [{"m": {"$and": [
            {"rw.event.type": "hired"},
            {"$gte": {"rw.event.days": 10}},
            {"$or": [{"rw.event.dept": "hr"}, {"rw.event.dept": "it"}]},
            {"$or": [{"$lt": {"rw.event.a": 1}}, {"$ex": {"rw.event.b": 1}}]},
        ]}}],
        "pri": -5,
        "run": "r@abc/one",
    }}


def test_inexpressible_condition_prefilters_on_the_marker_only() -> None:
    model = RuleSetModel("r", (Rule("one", cond({"not": {"field": "event.x", "eq": 1}}), ()),), "v")
    assert to_durable_ruleset(model)["one"]["all"] == [{"m": {MARKER: 1}}]
    assert durable_condition(cond({"any": [{"field": "a", "eq": 1}, {"fn": "is_weekday", "args": [1]}]}).model) \
        is None


LEAVES = [
    {"field": "event.n", "eq": 3}, {"field": "event.n", "ge": 2}, {"field": "event.n", "lt": 4},
    {"field": "event.s", "eq": "a"}, {"field": "event.s", "in": ["a", "b"]}, {"field": "event.s", "gt": "a"},
    {"field": "event.b", "eq": True}, {"field": "event.n", "exists": True}, {"field": "event.n", "exists": False},
    {"field": "event.n", "ne": 3}, {"field": "event.s", "matches": "^a"}, {"field": "event.s", "contains": "b"},
    {"field": "event.d", "ge": "2026-01-01"}, {"field": "event.n", "le": 2.5},
]


def random_condition(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.25:
        return {"all": [random_condition(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if depth < 3 and roll < 0.45:
        return {"any": [random_condition(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if depth < 3 and roll < 0.55:
        return {"not": random_condition(rng, depth + 1)}
    return rng.choice(LEAVES)


def random_event(rng: random.Random) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for key, values in (("n", [1, 2, 3, 4, 2.5, "3", True, None]), ("s", ["a", "b", "ab", "c", 1]),
                        ("b", [True, False, 1]), ("d", ["2025-12-31", "2026-01-01", "2026-01-01T10:00:00"])):
        if rng.random() < 0.8:
            event[key] = rng.choice(values)
    return event


def test_durable_prefilter_never_loses_a_match() -> None:
    """For random conditions and events: regelwerk true implies durable matched (durable may add candidates)."""
    rng = random.Random(4)
    rules = tuple(Rule(f"r{i}", cond(random_condition(rng)), (), index=i) for i in range(150))
    model = RuleSetModel("prop", rules, "v1")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with DurableRules() as port:
        port.load("prop", to_durable_ruleset(model))
        for _ in range(300):
            event = random_event(rng)
            durable = set(port.match("prop", {MARKER: 1, PAYLOAD: {"event": event}}))
            exact = {r.id for r in rules if r.when({"event": event}, now)}
            assert exact <= durable, (event, exact - durable)


def ruleset_yaml(rules: str) -> str:
    return "apiVersion: regelwerk/v1\nkind: RuleSet\nmetadata: {name: bad}\nspec:\n  rules:\n" + textwrap.indent(
        textwrap.dedent(rules), "    ")


def nested(depth: int) -> str:
    text = "{field: event.a, eq: 1}"
    for n in range(depth):
        text = f"{{any: [{{field: event.b{n}, eq: {n}}}, {text}]}}"
    return text


@pytest.mark.parametrize(("rules", "code", "line"), [
    (f"- id: deep\n  when: {nested(14)}\n  then: [{{action: rules.signal, with: {{signal: x}}}}]\n", "RW602", 7),
    ("- id: dollar\n  when: {field: event.$and, eq: 1}\n  then: [{action: rules.signal, with: {signal: x}}]\n",
     "RW603", 7),
    ("- id: wide\n  when: {any: [" + ", ".join(f"{{field: event.a, eq: {n}}}" for n in range(101))
     + "]}\n  then: [{action: rules.signal, with: {signal: x}}]\n", "RW604", 7),
    ("- id: inf\n  when: {field: event.a, lt: .inf}\n  then: [{action: rules.signal, with: {signal: x}}]\n",
     "RW605", 7),
    ("- id: noparam\n  when: {field: event.a, eq: 1}\n  then: [{action: rules.signal}]\n", "RW305", 8),
    ("- id: unknown\n  when: {field: event.a, eq: 1}\n  then: [rules.sgnal]\n", "RW500", 8),
])
def test_what_durable_would_reject_is_a_diagnostic(registry: Any, rules: str, code: str, line: int) -> None:
    diags = diagnostics_of(ruleset_yaml(rules), registry)
    assert [(d.code, d.line) for d in diags] == [(code, line)], [d.format() for d in diags]


def test_too_many_rules(registry: Any) -> None:
    rules = "".join(f"- {{id: r{n}, when: {{field: event.a, eq: {n}}}, then: [{{action: rules.signal, "
                    f"with: {{signal: x}}}}]}}\n" for n in range(201))
    assert [d.code for d in diagnostics_of(ruleset_yaml(rules), registry)] == ["RW601"]


def test_what_is_accepted_loads_into_durable(registry: Any) -> None:
    """The limits are on the safe side: the deepest/widest accepted rule set really loads."""
    rules = (f"- id: deep\n  when: {nested(10)}\n  then: [{{action: rules.signal, with: {{signal: x}}}}]\n"
             "- id: wide\n  when: {any: [" + ", ".join(f"{{field: event.a, eq: {n}}}" for n in range(100))
             + "]}\n  then: [{action: rules.signal, with: {signal: x}}]\n")
    model = compile_text(ruleset_yaml(rules), registry).get("RuleSet", "bad")
    with DurableRules() as port:
        assert port.load("ok", to_durable_ruleset(model))
