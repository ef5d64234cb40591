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
