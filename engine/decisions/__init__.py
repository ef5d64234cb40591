"""Decision tables (DMN hit policies), compiled to a fast pure-Python evaluator.

Public API: a compiled bundle's ``DecisionTable`` objects (``bundle.get("DecisionTable", name)``)
answer ``decide(inputs, now=None) -> Decision`` with ``.outputs``, ``.matched`` and ``.explain``.
"""

from __future__ import annotations

from regelwerk.decisions.table import (
    AGGREGATIONS,
    HIT_POLICIES,
    Decision,
    DecisionConflict,
    DecisionTable,
    Entry,
    InputColumn,
    OutputColumn,
    Row,
)

__all__ = [
    "AGGREGATIONS",
    "HIT_POLICIES",
    "Decision",
    "DecisionConflict",
    "DecisionTable",
    "Entry",
    "InputColumn",
    "OutputColumn",
    "Row",
]
