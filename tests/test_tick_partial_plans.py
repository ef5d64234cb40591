"""The tick's partial plans (``plan_with(..., since=...)``): an employee planned again only because its ``next_due``
came gets only what appeared since. Proof: a year and a half of real customers played with and without them
leaves the same rows in every table (items, instances, history, timers, audit of cancellations)."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path

import pytest
from regelwerk.conditions import compile_condition
from regelwerk.simulation import simulate
from regelwerk_packs.talent.model import DevelopmentCycle

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: columns that differ between two runs by design (surrogate ids, wall-clock stamps, run bookkeeping)
_VOLATILE = {"id", "created_at", "updated_at", "applied_at", "expires_at", "at", "fired_at", "acquired_at",
             "holder", "seconds", "totals", "detail"}


def _rows(path: Path) -> dict[str, list[str]]:
    conn = sqlite3.connect(path)
    out: dict[str, list[str]] = {}
    for (table,) in conn.execute("select name from sqlite_master where type = 'table' and name like 'rw_%'"):
        columns = [r[1] for r in conn.execute(f"pragma table_info({table})")]
        keep = [c for c in columns if c not in _VOLATILE or (table == "rw_instances" and c == "id")]
        quoted = ", ".join(f'"{c}"' for c in keep)
        out[table] = sorted(json.dumps([str(v) for v in row]) for row in conn.execute(f"select {quoted} from {table}"))
    conn.close()
    return out


def _play(customer: str, store: Path) -> dict[str, list[str]]:
    simulate(EXAMPLES / customer, date(2026, 1, 1), date(2027, 6, 30), store=f"sqlite:///{store}")
    return _rows(store)


@pytest.mark.parametrize("customer", ["zorggroep-de-linde", "scholengroep-horizon"])
def test_partial_plans_leave_the_same_rows_as_full_ones(customer: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    partial = _play(customer, tmp_path / "partial.sqlite")
    monkeypatch.setattr(DevelopmentCycle, "plans_since", False)  # every re-plan builds everything again
    full = _play(customer, tmp_path / "full.sqlite")
    assert sum(len(rows) for rows in partial.values()) > 100  # the customer really planned something
    assert {t: rows for t, rows in partial.items() if not t.startswith("rw_simulation")} == {
        t: rows for t, rows in full.items() if not t.startswith("rw_simulation")}


def test_a_plan_partial_only_when_nothing_it_reads_moves_with_the_clock() -> None:
    clock, problems = compile_condition({"all": [{"field": "employee.department", "eq": "zorg"},
                                                 {"not": {"field": "employee.hire_date", "gt": {"now": {}}}}]}, "")
    assert not problems and not clock.timeless
    plain, problems = compile_condition({"any": [{"field": "employee.department", "eq": "zorg"},
                                                 {"field": "employee.function", "in": ["a", "b"]}]}, "")
    assert not problems and plain.timeless
