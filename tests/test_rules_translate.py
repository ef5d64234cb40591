"""to_durable_ruleset: the pure translation, the pre-filter property and durable's limits as diagnostics."""

from __future__ import annotations

import random
import textwrap
from datetime import UTC, datetime
from typing import Any

import pytest
from regelwerk.bundle import Bundle
from regelwerk.compiler import compile_bundle
from regelwerk.conditions import compile_condition
from regelwerk.diagnostics import DefinitionError
from regelwerk.rules import DurableRules, Rule, RuleSetModel, to_durable_ruleset
from regelwerk.rules.translate import MARKER, PAYLOAD, durable_condition
from regelwerk.source import load_text


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


# --- join rules (match: named patterns over a session's facts) -----------------------------------------------

def join_rule(rule_id: str, first: Any, second: Any, index: int = 0) -> Rule:
    from regelwerk.conditions import Condition, Const
    from regelwerk.rules.model import Pattern
    from regelwerk.rules.translate import field_paths

    second_cond = cond(second)
    refs = tuple(sorted({p[0] for p in field_paths(second_cond.model) if p[0] == "a"}))
    return Rule(rule_id, Condition(Const(True), {}), (), index=index,
                patterns=(Pattern("a", cond(first)), Pattern("b", second_cond, refs)))


def test_golden_join_translation() -> None:
    rule = join_rule("j", {"field": "type", "eq": "cert"},
                     {"all": [{"field": "type", "eq": "shift"}, {"field": "employee", "eq": {"field": "a.employee"}},
                              {"field": "a.day", "le": {"field": "day"}}]})
    model = RuleSetModel("r", (rule,), "v")
    assert to_durable_ruleset(model) == {"j": {
        "all": [{"a": {"rf.type": "cert"}},
                {"b": {"$and": [{"rf.type": "shift"}, {"rfk.k0": {"a": "rfk.k0"}}]}}],
        "pri": 0, "run": "r@v/j#join"}}


@pytest.mark.parametrize(("a", "b"), [
    (1, 1.0), ("2026-01-01", "2026-01-01T10:00:00Z"), ("2026-01-01T23:00:00-05:00", "2026-01-02T04:00:00Z"),
    ([1], [1.0]), ({"x": 1}, {"x": 1.0}), ("e1", "e1"), (True, True), ("P1D", "PT24H"), ("16:11", "16:11:00"),
])
def test_join_key_agrees_with_regelwerk_equality(a: Any, b: Any) -> None:
    from regelwerk.rules.translate import join_key

    equal = cond({"field": "x", "eq": {"field": "y"}})({"x": a, "y": b}, datetime(2026, 1, 1, tzinfo=UTC))
    assert equal and join_key(a) == join_key(b)


JOIN_VALUES = [1, 2, 2.0, "1", "a", "b", True, False, None, "2026-01-01", "2026-01-01T10:00:00Z", [1], {"k": 1}]
JOIN_LEAVES = [
    {"field": "n", "eq": {"field": "a.n"}}, {"field": "a.s", "eq": {"field": "s"}},
    {"field": "n", "ne": {"field": "a.n"}}, {"field": "n", "lt": {"field": "a.n"}},
    {"field": "s", "eq": {"field": "a.n"}}, {"field": "a.s", "eq": "a"},
]


def random_join_condition(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 2 and roll < 0.25:
        return {"all": [random_join_condition(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if depth < 2 and roll < 0.4:
        return {"any": [random_join_condition(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if depth < 2 and roll < 0.45:
        return {"not": random_join_condition(rng, depth + 1)}
    return rng.choice(JOIN_LEAVES + LEAVES_FACT)


LEAVES_FACT = [{"field": "n", "ge": 2}, {"field": "s", "in": ["a", "b"]}, {"field": "n", "exists": True}]


def test_durable_join_prefilter_never_loses_a_match() -> None:
    """Random join rules over random facts: every combination regelwerk accepts, durable completed too."""
    from regelwerk.rules.translate import FACT_KEYS, FACT_MARKER, FACT_PAYLOAD, fact_keys, join_paths

    rng = random.Random(11)
    rules = tuple(join_rule(f"j{i}", random_condition_fact(rng), random_join_condition(rng), i) for i in range(40))
    model = RuleSetModel("joins", rules, "v1")
    keys = join_paths(model)
    assert keys  # the property covers durable-side joins, not only the re-check
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with DurableRules() as port:
        port.load("joins", to_durable_ruleset(model))
        for _round in range(6):
            sid = port.open_session("joins")
            facts: dict[int, dict[str, Any]] = {}
            seen: set[tuple[str, int, int]] = set()
            for seq in range(1, 16):
                fact = {k: rng.choice(JOIN_VALUES) for k in ("n", "s") if rng.random() < 0.85}
                facts[seq] = fact
                for rule_id, bound in port.assert_fact("joins", sid, {FACT_MARKER: 1, "rw_seq": seq,
                                                                      FACT_PAYLOAD: fact,
                                                                      FACT_KEYS: fact_keys(fact, keys)}):
                    seen.add((rule_id, bound["a"], bound["b"]))
            for rule in rules:
                first, second = rule.patterns
                for x, fa in facts.items():
                    for y, fb in facts.items():
                        if x != y and first.when(fa, now) and second.when({**fb, "a": fa}, now):
                            assert (rule.id, x, y) in seen, (rule.id, fa, fb, to_durable_ruleset(model)[rule.id])
            port.close_session("joins", sid)


def random_condition_fact(rng: random.Random) -> Any:
    return rng.choice([{"field": "n", "ge": 2}, {"field": "s", "eq": "a"}, {"field": "n", "exists": True},
                       {"not": {"field": "s", "eq": "b"}}])


def join_yaml(match: str, then: str = "[{action: rules.signal, with: {signal: x}}]") -> str:
    return ruleset_yaml(f"- id: j\n  match:\n{textwrap.indent(textwrap.dedent(match), '    ')}  then: {then}\n")


@pytest.mark.parametrize(("text", "code", "line"), [
    (join_yaml("a: {field: b.x, eq: 1}\nb: {field: y, eq: 1}\n"), "RW608", 8),
    (join_yaml("a: {field: x, eq: 1}\nb: {field: b.y, eq: 1}\n"), "RW608", 9),
    (join_yaml("a: {field: x, eq: 1}\nb: {field: y, eq: {field: a.x}}\n",
               "[{action: rules.signal, with: {signal: x, who: {field: c.y}}}]"), "RW609", 10),
    (join_yaml("".join(f"p{n}: {{field: x, eq: {n}}}\n" for n in range(5))), "RW607", 8),
    (join_yaml("a: {field: $x, eq: 1}\n"), "RW603", 8),
    (ruleset_yaml("- id: j\n  when: {field: event.a, eq: 1}\n  match: {a: {field: x, eq: 1}}\n"
                  "  then: [{action: rules.signal, with: {signal: x}}]\n"), "RW610", 6),
    (ruleset_yaml("- id: j\n  then: [{action: rules.signal, with: {signal: x}}]\n"), "RW610", 6),
])
def test_join_rules_are_checked_at_the_yaml_line(registry: Any, text: str, code: str, line: int) -> None:
    diags = diagnostics_of(text, registry)
    assert [(d.code, d.line) for d in diags] == [(code, line)], [d.format() for d in diags]


def test_the_largest_accepted_join_loads_into_durable(registry: Any) -> None:
    match = "".join(f"p{n}: {{all: [{{field: x, eq: {n}}}"
                    + (f", {{field: y, eq: {{field: p{n - 1}.y}}}}" if n else "") + "]}\n" for n in range(4))
    model = compile_text(join_yaml(match), registry).get("RuleSet", "bad")
    assert len(model.rules[0].patterns) == 4
    with DurableRules() as port:
        assert port.load("ok", to_durable_ruleset(model))
