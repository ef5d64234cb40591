"""Decision graphs: tables and calculations taking other decisions' outputs, evaluated and explained."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from regelwerk.registry import load_registry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from bench_decisions import GRAPH, compile_text


@pytest.fixture(scope="module")
def graph() -> Any:
    load_registry()
    return compile_text(GRAPH)


@pytest.mark.parametrize(("department", "amount", "approver", "level", "grade"), [
    ("finance", 1000, "director", 3, "A"), ("sales", 150, "head", 2, "B"), ("it", 150, "manager", 1, "C"),
    ("it", 6000, "director", 3, "C"), ("sales", 99, "manager", 1, "B"),
])
def test_a_table_takes_the_outputs_of_the_tables_it_needs(graph: Any, department: str, amount: int,
                                                          approver: str, level: int, grade: str) -> None:
    decision = graph.get("DecisionTable", "approver").decide({"department": department, "amount": amount})
    assert decision.outputs["approver"] == approver
    assert [(step.explain["table"], dict(step.outputs)) for step in decision.steps] == [
        ("grade", {"grade": grade}), ("level", {"level": level})]
    explain = decision.explain
    assert [s["table"] for s in explain["requires"]] == ["grade", "level"]
    assert explain["inputs"]["level"] == level


def test_each_required_decision_is_taken_once() -> None:
    compiled = compile_text("""\
apiVersion: regelwerk/v1
kind: Calculation
metadata: {name: a}
spec:
  inputs: [{id: x, type: number}]
  output: {id: v}
  expression: {mul: [{field: x}, 2]}
---
apiVersion: regelwerk/v1
kind: Calculation
metadata: {name: b}
spec:
  inputs: [{id: a, from: a}]
  output: {id: v}
  expression: {add: [{field: a}, 1]}
---
apiVersion: regelwerk/v1
kind: Calculation
metadata: {name: top}
spec:
  inputs: [{id: a, from: a.v}, {id: b, from: b.v}]
  output: {id: v}
  expression: {concat: [{field: a}, "/", {field: b}]}
""")
    result = compiled.get("Calculation", "top").decide({"x": 5})
    assert result.outputs == {"v": "10/11"}
    assert [step.explain["decision"] for step in result.steps] == ["a", "b"]  # a once, though two need it


EQUIVALENCE = """\
apiVersion: regelwerk/v1
kind: DecisionTable
metadata: {name: grade}
spec:
  hitPolicy: FIRST
  inputs: [{id: department}]
  outputs: [{id: grade, default: C}]
  rows:
    - {when: {department: [finance, legal]}, then: {grade: A}}
    - {when: {department: sales}, then: {grade: B}}
---
apiVersion: regelwerk/v1
kind: Calculation
metadata: {name: doubled}
spec:
  inputs: [{id: amount, type: number}]
  output: {id: v}
  expression: {mul: [{field: amount}, 2]}
---
apiVersion: regelwerk/v1
kind: DecisionTable
metadata: {name: level}
spec:
  hitPolicy: FIRST
  inputs:
    - {id: grade, from: grade.grade}
    - {id: doubled, from: doubled.v, type: number}
    - {id: channel}
  outputs: [{id: level, default: 1}]
  rows:
    - {when: {grade: A, doubled: {ge: 2000}}, then: {level: 3}}
    - {when: {doubled: {gt: 10000}, channel: web}, then: {level: 3}}
    - {when: {grade: [A, B], doubled: {ge: 200, lt: 900}}, then: {level: 2}}
    - {when: {channel: [shop, phone], doubled: {le: 100}}, then: {level: 0}}
---
apiVersion: regelwerk/v1
kind: DecisionTable
metadata: {name: route}
spec:
  hitPolicy: PRIORITY
  inputs:
    - {id: level, from: level.level, type: number}
    - {id: grade}
  outputs: [{id: route, values: [board, director, head, desk], default: desk}]
  rows:
    - {when: {level: 3}, then: {route: director}}
    - {when: {level: [2, 3], grade: A}, then: {route: board}}
    - {when: {level: 2}, then: {route: head}}
---
apiVersion: regelwerk/v1
kind: DecisionTable
metadata: {name: approver}
spec:
  hitPolicy: FIRST
  inputs:
    - {id: route, from: route.route}
    - {id: level, from: level.level, type: number}
    - {id: age, field: person.age, type: number}
  outputs: [{id: approver, default: manager}, {id: note, default: ""}]
  rows:
    - {when: {route: board, age: {lt: 18}}, then: {approver: guardian, note: minor}}
    - {when: {route: [board, director]}, then: {approver: director}}
    - {when: {level: 0}, then: {approver: nobody, note: small}}
"""


TWO_OUTPUTS = """\
apiVersion: regelwerk/v1
kind: DecisionTable
metadata: {name: grade}
spec:
  hitPolicy: FIRST
  inputs: [{id: department}]
  outputs: [{id: grade, default: C}, {id: band, default: 1}]
  rows:
    - {when: {department: [finance, legal]}, then: {grade: A, band: 3}}
    - {when: {department: sales}, then: {grade: B, band: 2}}
---
apiVersion: regelwerk/v1
kind: DecisionTable
metadata: {name: approver}
spec:
  hitPolicy: FIRST
  inputs:
    - {id: grade, from: grade.grade}
    - {id: band, from: grade.band, type: number}
    - {id: amount, type: number}
  outputs: [{id: approver, default: manager}]
  rows:
    - {when: {grade: A, band: {ge: 3}, amount: {ge: 1000}}, then: {approver: director}}
    - {when: {grade: [A, B], band: {ge: 2}}, then: {approver: head}}
    - {when: {band: {lt: 2}, amount: {gt: 5000}}, then: {approver: director}}
"""


def _reference(decision: Any, inputs: dict[str, Any]) -> Any:
    """Decide as if by hand: every required decision first, each over the inputs and its own bindings."""
    values = dict(inputs)
    for input_id, required, output in decision.requires:
        values[input_id] = _reference(required, inputs).outputs[output]
    return decision.decide(values, None, {})  # any memo: this decision only


@pytest.mark.parametrize("text", [GRAPH, EQUIVALENCE, TWO_OUTPUTS], ids=["folded", "mixed", "two-outputs"])
def test_the_compiled_graph_decides_and_explains_as_deciding_each_table_by_hand(text: str) -> None:
    """The benchmark's graph (a lookup folded into the next table's index, the last lookup folded into its
    rows) and a mixed one: scans with inline tests, a calculation and a PRIORITY table in between, an input
    the caller passes under a name another table binds (route reads the caller's grade)."""
    import random

    compiled = compile_text(text)
    top = compiled.get("DecisionTable", "approver")
    rng = random.Random(13)
    for _ in range(400):
        inputs: dict[str, Any] = {
            "department": rng.choice(["finance", "legal", "sales", "it", None, 7, True]),
            "amount": rng.choice([10, 50, 120, 449.5, 1000, 6000, None, "1000", True]),
            "channel": rng.choice(["web", "shop", "phone", None]),
            "grade": rng.choice(["A", "B", None]),
            "person": rng.choice([{"age": 16}, {"age": 40}, {}, None])}
        got, want = top.decide(inputs), _reference(top, inputs)
        assert dict(got.outputs) == dict(want.outputs), inputs
        assert got.matched == want.matched, inputs
        steps = {s.explain.get("table") or s.explain.get("decision"): s.explain for s in got.steps}
        for input_id, required, _ in top.requires:
            assert steps[required.name] == _reference(required, inputs).explain, (input_id, inputs)
        explain = dict(got.explain)
        assert [s.get("table") or s.get("decision") for s in explain.pop("requires")] == [
            d.name for d, _ in top._plan[0]]
        assert explain == want.explain, inputs
