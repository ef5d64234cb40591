"""Benchmarks of decisions with typed values and decision graphs (issue 13).

Run: ``python benchmarks/bench_decisions.py [--quick]`` (prints a markdown table; --quick < 20 s).

1. A three-table decision graph (grade from the department, a level from grade and amount, the approver
   from the level: each table takes the previous one's output with ``from:``) against the same three
   decisions written by hand as chained Python functions, side by side in one run (target >= 0.3x).
2. A typed decision: a table over durations and dates (``PT8H``, ``P6M``, ISO dates as text, compared as
   values) against a hand-written function that parses and compares the same values.
"""

from __future__ import annotations

import argparse
import random
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GRAPH = """\
apiVersion: regelwerk/v1
kind: DecisionTable
metadata: {name: grade}
spec:
  hitPolicy: FIRST
  inputs: [{id: department}]
  outputs: [{id: grade, default: C}]
  rows:
    - {when: {department: [finance, legal]}, then: {grade: A}}
    - {when: {department: [sales, marketing]}, then: {grade: B}}
---
apiVersion: regelwerk/v1
kind: DecisionTable
metadata: {name: level}
spec:
  hitPolicy: FIRST
  inputs:
    - {id: grade, from: grade.grade}
    - {id: amount, type: number}
  outputs: [{id: level, default: 1}]
  rows:
    - {when: {grade: A, amount: {ge: 1000}}, then: {level: 3}}
    - {when: {amount: {ge: 5000}}, then: {level: 3}}
    - {when: {grade: [A, B], amount: {ge: 100}}, then: {level: 2}}
---
apiVersion: regelwerk/v1
kind: DecisionTable
metadata: {name: approver}
spec:
  hitPolicy: FIRST
  inputs: [{id: level, from: level.level, type: number}]
  outputs: [{id: approver, default: manager}]
  rows:
    - {when: {level: 3}, then: {approver: director}}
    - {when: {level: 2}, then: {approver: head}}
"""

TYPED = """\
apiVersion: regelwerk/v1
kind: DecisionTable
metadata: {name: shift}
spec:
  hitPolicy: FIRST
  inputs:
    - {id: length, type: duration}
    - {id: seniority, type: duration}
    - {id: day, type: date}
  outputs: [{id: allowance, default: none}]
  rows:
    - {when: {length: {gt: PT10H}, day: {ge: "2026-07-01"}}, then: {allowance: long-summer}}
    - {when: {length: {gt: PT10H}}, then: {allowance: long}}
    - {when: {seniority: {ge: P5Y}}, then: {allowance: senior}}
"""


def best_rates(fns: list[Callable[[], int]], repeat: int) -> list[float]:
    """Best rate of each function, running them interleaved so machine noise hits both alike."""
    best = [0.0] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            count = fn()
            best[k] = max(best[k], count / (time.perf_counter() - start))
    return best


def compile_text(text: str) -> Any:
    from regelwerk.bundle import Bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.registry import load_registry
    from regelwerk.source import load_text

    docs, problems = load_text(textwrap.dedent(text), "bench.yaml")
    assert not problems, problems
    return compile_bundle(Bundle("bench", ".", documents=docs), load_registry())


def loop(fn: Callable[[dict[str, Any]], Any], samples: list[dict[str, Any]], rounds: int) -> Callable[[], int]:
    def run() -> int:
        for _ in range(rounds):
            for sample in samples:
                fn(sample)
        return rounds * len(samples)

    return run


def bench_graph(n: int, repeat: int) -> list[tuple[str, float, str]]:
    approver = compile_text(GRAPH).get("DecisionTable", "approver")
    rng = random.Random(13)
    departments = ["finance", "legal", "sales", "marketing", "it", "hr"]
    samples = [{"department": rng.choice(departments), "amount": rng.choice([10, 150, 999, 1000, 4999, 6000])}
               for _ in range(1000)]

    def grade(department: str) -> str:
        if department in ("finance", "legal"):
            return "A"
        if department in ("sales", "marketing"):
            return "B"
        return "C"

    def level(g: str, amount: float) -> int:
        if g == "A" and amount >= 1000:
            return 3
        if amount >= 5000:
            return 3
        if g in ("A", "B") and amount >= 100:
            return 2
        return 1

    def approve(lv: int) -> str:
        return {3: "director", 2: "head"}.get(lv, "manager")

    def hand(inputs: dict[str, Any]) -> str:
        return approve(level(grade(inputs["department"]), inputs["amount"]))

    for sample in samples:
        assert approver.decide(sample).outputs["approver"] == hand(sample), sample
    rounds = max(1, n // len(samples))
    graph_rate, hand_rate = best_rates([loop(approver.decide, samples, rounds), loop(hand, samples, rounds)], repeat)
    return [
        ("three-table decision graph, DecisionTable.decide", graph_rate, ""),
        ("the same three decisions, hand-written and chained", hand_rate, "baseline"),
        ("ratio graph / hand-written", graph_rate / hand_rate, "target >= 0.3x"),
    ]


def bench_typed(n: int, repeat: int) -> list[tuple[str, float, str]]:
    from regelwerk.values import parse_value_duration

    table = compile_text(TYPED).get("DecisionTable", "shift")
    rng = random.Random(36)
    samples = [{"length": rng.choice(["PT8H", "PT10H", "PT11H", "PT12H30M"]),
                "seniority": rng.choice(["P1Y", "P4Y11M", "P5Y", "P12Y"]),
                "day": rng.choice(["2026-03-01", "2026-07-01", "2026-12-31"])} for _ in range(1000)]
    ten_hours, five_years, summer = parse_value_duration("PT10H"), parse_value_duration("P5Y"), date(2026, 7, 1)

    def hand(inputs: dict[str, Any]) -> str:
        length = parse_value_duration(inputs["length"])
        if length is not None and length > ten_hours:
            return "long-summer" if date.fromisoformat(inputs["day"]) >= summer else "long"
        seniority = parse_value_duration(inputs["seniority"])
        return "senior" if seniority is not None and seniority >= five_years else "none"

    for sample in samples:
        assert table.decide(sample).outputs["allowance"] == hand(sample), sample
    rounds = max(1, n // len(samples))
    table_rate, hand_rate = best_rates([loop(table.decide, samples, rounds), loop(hand, samples, rounds)], repeat)
    return [
        ("typed decision (durations, dates as ISO text), DecisionTable.decide", table_rate, ""),
        ("the same decision, hand-written (parses the same values)", hand_rate, "baseline"),
        ("ratio typed table / hand-written", table_rate / hand_rate, "no target; for reference"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (< 20 s)")
    args = parser.parse_args()
    n, repeat = (50_000, 3) if args.quick else (300_000, 5)
    rows = bench_graph(n, repeat) + bench_typed(n // 5, repeat)
    print("| measure | value | note |")
    print("|---|---:|---|")
    for name, value, note in rows:
        shown = f"{value:.2f}x" if name.startswith("ratio") else f"{value:,.0f}/s"
        print(f"| {name} | {shown} | {note} |")


if __name__ == "__main__":
    main()
