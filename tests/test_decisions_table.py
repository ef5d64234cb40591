"""DecisionTable: hit policies, entries, explanations, load-time and run-time UNIQUE checks."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from regelwerk.bundle import Bundle
from regelwerk.compiler import compile_bundle
from regelwerk.decisions import DecisionConflict, DecisionTable
from regelwerk.diagnostics import DefinitionError
from regelwerk.source import load_text


def compile_table(text: str, registry: Any, name: str = "t") -> DecisionTable:
    docs, problems = load_text(textwrap.dedent(text), "table.yaml")
    assert not problems
    compiled = compile_bundle(Bundle("test", ".", documents=docs), registry)
    table: DecisionTable = compiled.get("DecisionTable", name)
    return table


def diagnostics_of(text: str, registry: Any) -> list[Any]:
    docs, _ = load_text(textwrap.dedent(text), "table.yaml")
    with pytest.raises(DefinitionError) as info:
        compile_bundle(Bundle("test", ".", documents=docs), registry)
    return list(info.value.diagnostics)


def table_yaml(policy: str, rows: str, extra: str = "", outputs: str = "") -> str:
    return f"""\
apiVersion: regelwerk/v1
kind: DecisionTable
metadata: {{name: t}}
spec:
  hitPolicy: {policy}
{extra}  inputs:
    - {{id: dept}}
    - {{id: amount, type: number}}
  outputs:
{outputs or "    - {id: approver, values: [director, manager, none], default: none}"}
  rows:
{textwrap.indent(textwrap.dedent(rows), "    ")}"""


ROWS = """\
- id: big
  when: {amount: {ge: 1000}}
  then: {approver: director}
- id: sales-mid
  when: {dept: sales, amount: {ge: 100, lt: 1000}}
  then: {approver: manager}
- id: other-mid
  when: {dept: [hr, it], amount: {ge: 100, lt: 1000}}
  then: {approver: manager}
- id: small
  when: {amount: {lt: 100}}
  then: {approver: none}
"""


def test_unique_decides_and_explains(registry: Any) -> None:
    table = compile_table(table_yaml("UNIQUE", ROWS), registry)
    decision = table.decide({"dept": "sales", "amount": 250})
    assert decision.outputs == {"approver": "manager"}
    assert decision.matched == ("sales-mid",)
    explain = decision.explain
    assert explain["hit_policy"] == "UNIQUE"
    assert explain["inputs"] == {"dept": "sales", "amount": 250}
    assert explain["matched"][0]["row"] == "sales-mid"
    assert "amount >= 100" in explain["matched"][0]["because"][1]
    assert table.decide({"dept": "finance", "amount": 250}).outputs == {"approver": "none"}  # default
    assert table.decide({"dept": "finance", "amount": 250}).matched == ()
    assert table.decide({"dept": "hr", "amount": 5000}).matched == ("big",)


def test_unique_overlap_is_a_load_time_diagnostic(registry: Any) -> None:
    rows = ROWS + """\
- id: sales-any
  when: {dept: sales}
  then: {approver: manager}
"""
    diags = diagnostics_of(table_yaml("UNIQUE", rows), registry)
    codes = [(d.code, d.line) for d in diags]
    assert codes == [("RW620", 24)] * 3, [d.format() for d in diags]
    assert sorted(d.message.split(" overlap")[0] for d in diags) == [
        "rows big and sales-any", "rows sales-mid and sales-any", "rows small and sales-any"]


def test_unique_overlap_undetectable_at_load_is_a_runtime_error(registry: Any) -> None:
    rows = """\
- id: a
  when: {dept: {matches: "^s"}}
  then: {approver: manager}
- id: b
  when: {dept: {matches: "s$"}}
  then: {approver: director}
"""
    table = compile_table(table_yaml("UNIQUE", rows), registry)
    assert table.decide({"dept": "sx"}).matched == ("a",)
    with pytest.raises(DecisionConflict) as info:
        table.decide({"dept": "sales"})
    assert info.value.rows == ("a", "b")
    assert info.value.to_dict()["hit_policy"] == "UNIQUE"


OVERLAPPING = """\
- id: any-big
  when: {amount: {ge: 1000}}
  then: {approver: manager}
- id: sales-big
  when: {dept: sales, amount: {ge: 1000}}
  then: {approver: director}
- id: sales
  when: {dept: sales}
  then: {approver: manager}
- id: rest
  then: {approver: none}
"""


@pytest.mark.parametrize(("policy", "inputs", "outputs", "matched"), [
    ("FIRST", {"dept": "sales", "amount": 5000}, {"approver": "manager"}, ("any-big",)),  # stops at the first
    ("PRIORITY", {"dept": "sales", "amount": 5000}, {"approver": "director"},
     ("any-big", "sales-big", "sales", "rest")),
    ("PRIORITY", {"dept": "hr", "amount": 5}, {"approver": "none"}, ("rest",)),
    ("RULE ORDER", {"dept": "sales", "amount": 5000}, {"approver": ["manager", "director", "manager", "none"]},
     ("any-big", "sales-big", "sales", "rest")),
    ("OUTPUT ORDER", {"dept": "sales", "amount": 5000}, {"approver": ["director", "manager", "manager", "none"]},
     ("any-big", "sales-big", "sales", "rest")),
    ("COLLECT", {"dept": "sales", "amount": 5}, {"approver": ["manager", "none"]}, ("sales", "rest")),
])
def test_hit_policies(registry: Any, policy: str, inputs: dict[str, Any], outputs: dict[str, Any],
                      matched: tuple[str, ...]) -> None:
    table = compile_table(table_yaml(f'"{policy}"', OVERLAPPING), registry)
    decision = table.decide(inputs)
    assert decision.outputs == outputs
    assert decision.matched == matched
    assert decision.explain["chose"].startswith(policy if decision.matched else "no row")


def test_any_policy_agrees_or_conflicts(registry: Any) -> None:
    rows = """\
- id: a
  when: {dept: sales}
  then: {approver: manager}
- id: b
  when: {amount: {ge: 10}}
  then: {approver: manager}
- id: c
  when: {amount: {ge: 1000}}
  then: {approver: director}
"""
    table = compile_table(table_yaml("ANY", rows), registry)
    assert table.decide({"dept": "sales", "amount": 50}).outputs == {"approver": "manager"}
    with pytest.raises(DecisionConflict):
        table.decide({"dept": "sales", "amount": 5000})


@pytest.mark.parametrize(("aggregation", "expected"), [("SUM", 35), ("MIN", 5), ("MAX", 20), ("COUNT", 3)])
def test_collect_aggregations(registry: Any, aggregation: str, expected: int) -> None:
    rows = """\
- {id: base, then: {points: 5}}
- {id: sales, when: {dept: sales}, then: {points: 10}}
- {id: big, when: {amount: {gt: 100}}, then: {points: 20}}
- {id: never, when: {dept: none}, then: {points: 40}}
"""
    text = table_yaml("COLLECT", rows, extra=f"  aggregation: {aggregation}\n",
                      outputs="    - {id: points, default: 0}")
    table = compile_table(text, registry)
    decision = table.decide({"dept": "sales", "amount": 500})
    assert decision.outputs == {"points": expected}
    assert decision.matched == ("base", "sales", "big")
    assert decision.explain["hit_policy"] == f"COLLECT {aggregation}"


def test_entries_match_the_condition_language(registry: Any) -> None:
    rows = """\
- id: flag
  when: {dept: true}
  then: {approver: director}
- id: one
  when: {dept: 1}
  then: {approver: manager}
- id: tags
  when: {dept: {contains: x}}
  then: {approver: none}
- id: cond
  when: {amount: {condition: {field: amount, gt: {field: limit}}}}
  then: {approver: director}
- id: dated
  when: {dept: {lt: {now: {minus: P1Y}}}}
  then: {approver: manager}
"""
    table = compile_table(table_yaml("RULE ORDER", rows), registry)
    assert table.decide({"dept": True}).matched == ("flag",)
    assert table.decide({"dept": 1}).matched == ("one",)  # 1 is not True
    assert table.decide({"dept": ["x", "y"]}).matched == ("tags",)
    assert table.decide({"dept": "xyz"}).matched == ("tags",)  # substring, as in the condition language
    assert table.decide({"amount": 10, "limit": 5}).matched == ("cond",)
    assert table.decide({"amount": 10, "limit": 50}).matched == ()
    from datetime import UTC, datetime

    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert table.decide({"dept": "2024-01-01"}, now).matched == ("dated",)
    assert table.decide({"dept": "2026-01-01"}, now).matched == ()


def test_index_gives_the_same_answers_as_a_scan(registry: Any) -> None:
    rows = "\n".join(f"- {{id: r{i}, when: {{dept: d{i % 7}, amount: {{ge: {i}}}}}, then: {{approver: none}}}}"
                     for i in range(30)) + "\n- {id: wild, when: {amount: {lt: 3}}, then: {approver: manager}}\n"
    table = compile_table(table_yaml('"RULE ORDER"', rows), registry)
    assert table._index_path == ("dept",)
    for dept in ["d0", "d3", "zz", 5, None]:
        for amount in [0, 2, 10, 29]:
            inputs = {"dept": dept, "amount": amount}
            expected = [i for i, row in enumerate(table.rows)
                        if all(t(inputs.get(p[0])) for p, t in table._all_tests[i])]
            assert list(table.matching_rows(inputs)) == expected


@pytest.mark.parametrize(("rows", "code", "line"), [
    ("- {id: a, when: {nope: 1}, then: {approver: none}}\n", "RW621", 12),
    ("- {id: a, when: {dept: x}, then: {approvr: none}}\n", "RW622", 12),
    ("- {id: a, when: {dept: x}, then: {approver: boss}}\n", "RW623", 12),
    ("- {id: a, when: {amount: {ge: 10, lt: 5}}, then: {approver: none}}\n", "RW625", 12),
    ("- {id: a, when: {amount: {between: 5}}, then: {approver: none}}\n", "RW104", 12),
])
def test_broken_rows_are_diagnostics(registry: Any, rows: str, code: str, line: int) -> None:
    diags = diagnostics_of(table_yaml("FIRST", rows), registry)
    assert [(d.code, d.line) for d in diags if d.is_error][:1] == [(code, line)], [d.format() for d in diags]


def test_priority_needs_output_values(registry: Any) -> None:
    text = table_yaml("PRIORITY", "- {id: a, then: {points: 1}}\n", outputs="    - {id: points}")
    assert [d.code for d in diagnostics_of(text, registry)] == ["RW626"]
    text = table_yaml("FIRST", "- {id: a, then: {points: 1}}\n", extra="  aggregation: SUM\n",
                      outputs="    - {id: points}")
    assert [d.code for d in diagnostics_of(text, registry)] == ["RW624"]


@pytest.mark.parametrize("policy", ["FIRST", "PRIORITY"])
@pytest.mark.parametrize("contains", [True, False])
def test_fast_lookup_path_agrees_with_the_general_path(registry: Any, policy: str, contains: bool) -> None:
    import random

    entry = "{{contains: {v}}}" if contains else "{v}"
    rows = "".join(f"- {{id: r{i}, when: {{dept: {entry.format(v='d' + str(i % 5))}}}, "
                   f"then: {{approver: {['director', 'manager', 'none'][i % 3]}}}}}\n" for i in range(12))
    rows += "- {id: wild, then: {approver: none}}\n- {id: lst, when: {dept: [d1, d7]}, then: {approver: director}}\n" \
        if not contains else "- {id: wild, then: {approver: none}}\n"
    text = table_yaml(policy, rows)
    fast = compile_table(text, registry)
    slow = compile_table(text, registry)
    assert fast._fast is not None
    object.__setattr__(slow, "_fast", None)  # compiled objects are sealed: the test takes the general path on purpose
    rng = random.Random(1)
    values: list[Any] = ["d0", "d1", "d4", "d7", "zz", 3, None, True, "d"]
    for _ in range(300):
        value = rng.sample(values, rng.randint(0, 3)) if contains and rng.random() < 0.8 else rng.choice(values)
        got, want = fast.decide({"dept": value}), slow.decide({"dept": value})
        assert dict(got.outputs) == dict(want.outputs), value
        assert got.matched == want.matched
