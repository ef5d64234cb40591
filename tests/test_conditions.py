"""The shared condition language: operators, field references, the clock, durations, explain()."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from regelwerk.conditions import (
    AllOf,
    AnyOf,
    Call,
    Compare,
    Condition,
    Const,
    Duration,
    FieldRef,
    Literal,
    NotOf,
    NowRef,
    compile_condition,
    parse_duration,
    resolve_path,
    to_temporal,
)
from regelwerk.functions import is_empty, is_weekday, same_date, within_days

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
FUNCTIONS = {"is_weekday": is_weekday, "within_days": within_days, "is_empty": is_empty, "same_date": same_date}


def cond(data: Any) -> Condition:
    compiled, problems = compile_condition(data, "/when", FUNCTIONS)
    assert problems == [], problems
    return compiled


def check(data: Any, scope: dict[str, Any], now: datetime = NOW) -> bool:
    return cond(data)(scope, now)


def problems_of(data: Any) -> list[tuple[str, str]]:
    _, problems = compile_condition(data, "/when", FUNCTIONS)
    return [(p.code, p.pointer) for p in problems]


# --- operators ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("op", "right", "value", "expected"), [
    ("eq", 5, 5, True), ("eq", 5, 6, False), ("eq", "a", "a", True), ("eq", 1, 1.0, True),
    ("eq", 1, True, False), ("eq", True, True, True), ("eq", None, None, True), ("eq", [1, 2], [1, 2], True),
    ("ne", 5, 6, True), ("ne", 5, 5, False),
    ("lt", 10, 9, True), ("lt", 10, 10, False), ("le", 10, 10, True), ("le", 10, 11, False),
    ("gt", 10, 11, True), ("gt", 10, 10, False), ("ge", 10, 10, True), ("ge", 10, 9, False),
    ("lt", "b", "a", True), ("lt", 5, "abc", False), ("gt", "10", 9, False),
    ("in", ["a", "b"], "a", True), ("in", ["a", "b"], "c", False), ("in", [], "a", False),
    ("not_in", ["a", "b"], "c", True), ("not_in", ["a", "b"], "a", False),
    ("contains", "x", ["x", "y"], True), ("contains", "z", ["x", "y"], False),
    ("contains", "ver", "verlof", True), ("contains", 1, 5, False),
    ("exists", True, 0, True), ("exists", False, 0, False),
    ("matches", "^[0-9]{4}[A-Z]{2}$", "1234AB", True), ("matches", "^[0-9]{4}[A-Z]{2}$", "1234 AB", False),
    ("matches", "^12", 1234, True),
])
def test_every_operator(op: str, right: Any, value: Any, expected: bool) -> None:
    assert check({"field": "v", op: right}, {"v": value}) is expected


@pytest.mark.parametrize(("op", "right", "expected"), [
    ("eq", 1, False), ("ne", 1, False), ("lt", 1, False), ("le", 1, False), ("gt", 1, False), ("ge", 1, False),
    ("in", [1], False), ("not_in", [1], False), ("contains", 1, False), ("exists", True, False),
    ("exists", False, True), ("matches", ".*", False), ("eq", None, True), ("ne", None, False),
])
def test_missing_fields(op: str, right: Any, expected: bool) -> None:
    """DMN null semantics: a missing value never satisfies a comparison (only exists and eq/ne null test it)."""
    assert check({"field": "nope.deeper", op: right}, {"other": 1}) is expected
    if op not in ("exists",) and right is not None:
        # not even negated: not(unknown) is unknown
        assert check({"not": {"field": "nope.deeper", op: right}}, {"other": 1}) is False


@pytest.mark.parametrize(("op", "right", "value"), [
    ("eq", "5", 5), ("ne", "5", 5), ("ne", 5, "5"), ("ne", "draft", 0), ("ne", "u1", ["u1"]),
    ("ne", "u1", {"id": "u1"}), ("ne", True, "true"), ("ne", "true", True), ("ne", 1, True),
    ("not_in", ["5", "6"], 5), ("in", ["5"], 5), ("not_in", ["a", None], "b"),
    ("contains", 5, ["5"]), ("contains", "a", [["a"]]),
])
def test_values_of_different_kinds_never_compare(op: str, right: Any, value: Any) -> None:
    """A number against a text (a list, a mapping, a boolean) is unknown, as in DMN: neither the comparison nor its
    negation holds. Found by attack: ``5 ne "5"`` held, so a grant under ``owner ne actor.id`` or ``status ne
    draft`` let a person through when the host sent the value as another type."""
    assert check({"field": "v", op: right}, {"v": value}) is False
    assert check({"not": {"field": "v", op: right}}, {"v": value}) is False


def test_field_paths_walk_mappings_lists_and_attributes() -> None:
    class Person:
        name = "Anna"

    scope = {"employee": {"contracts": [{"hours": 32}, {"hours": 8}], "person": Person()}}
    assert check({"field": "employee.contracts.0.hours", "eq": 32}, scope)
    assert check({"field": "employee.contracts.-1.hours", "eq": 8}, scope)
    assert check({"field": "employee.person.name", "eq": "Anna"}, scope)
    assert resolve_path(scope, ["employee", "contracts", "5"]) is None
    assert resolve_path({"a": "text"}, ["a", "upper"]) is None  # no attribute access on strings


def test_field_references_on_the_right() -> None:
    scope = {"a": 5, "b": 7, "roles": ["hr", "manager"], "role": "hr"}
    assert check({"field": "a", "lt": {"field": "b"}}, scope)
    assert not check({"field": "a", "eq": {"field": "b"}}, scope)
    assert check({"field": "role", "in": {"field": "roles"}}, scope)
    assert check({"field": "roles", "contains": {"field": "role"}}, scope)
    assert check({"field": "role", "matches": {"field": "pattern"}}, {"role": "hr", "pattern": "^h"})
    assert not check({"field": "role", "matches": {"field": "pattern"}}, {"role": "hr", "pattern": "("})


# --- booleans -------------------------------------------------------------------------------------


def test_all_any_not_and_constants() -> None:
    scope = {"a": 1, "b": 2}
    assert check({"all": [{"field": "a", "eq": 1}, {"field": "b", "eq": 2}]}, scope)
    assert not check({"all": [{"field": "a", "eq": 1}, {"field": "b", "eq": 3}]}, scope)
    assert check({"any": [{"field": "a", "eq": 9}, {"field": "b", "eq": 2}]}, scope)
    assert not check({"any": [{"field": "a", "eq": 9}]}, scope)
    assert check({"not": {"field": "a", "eq": 9}}, scope)
    assert check({"all": []}, scope) and not check({"any": []}, scope)
    assert check(True, scope) and not check(False, scope)
    assert check({"field": "a", "eq": 1, "description": "uitleg voor de lezer"}, scope)


# --- the clock and durations ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "parts"), [
    ("P6W", {"weeks": 6}), ("P3M", {"months": 3}), ("P1Y2M10D", {"years": 1, "months": 2, "days": 10}),
    ("PT48H", {"hours": 48}), ("PT30M", {"minutes": 30}), ("P1DT2H3M4S", {"days": 1, "hours": 2, "minutes": 3,
                                                                          "seconds": 4}),
    ("P0D", {}),
])
def test_parse_duration(text: str, parts: dict[str, int]) -> None:
    assert parse_duration(text) == Duration(text=text, **parts)


@pytest.mark.parametrize("text", ["P", "PT", "6W", "P1.5D", "p1d", "P1H", "PT1D", "P-1D", "", "P1M1Y"])
def test_invalid_durations(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(("start", "duration", "expected"), [
    ("2026-01-31", "P1M", date(2026, 2, 28)),
    ("2024-01-31", "P1M", date(2024, 2, 29)),
    ("2026-03-31", "P1M", date(2026, 4, 30)),
    ("2024-02-29", "P1Y", date(2025, 2, 28)),
    ("2026-01-31", "P6W", date(2026, 3, 14)),
    ("2026-10-31", "P3M", date(2027, 1, 31)),
])
def test_month_ends_are_clipped(start: str, duration: str, expected: date) -> None:
    assert check({"field": "d", "plus": duration, "eq": expected.isoformat()}, {"d": start})
    assert check({"field": "d", "plus": duration, "eq": {"field": "e"}}, {"d": start, "e": expected})


def test_minus_and_now() -> None:
    scope = {"hired": "2026-01-19"}  # six weeks before NOW's date
    assert check({"field": "hired", "ge": {"now": {"minus": "P6W"}}}, scope)
    assert not check({"field": "hired", "gt": {"now": {"minus": "P6W"}}}, scope)
    assert check({"field": "hired", "plus": "P6W", "le": {"now": {}}}, scope)
    assert check({"field": "hired", "plus": "P6W", "eq": {"now": None}}, scope)
    assert check({"field": "deadline", "lt": {"now": {"plus": "PT1H"}}}, {"deadline": "2026-03-02T09:30:00Z"})
    assert not check({"field": "deadline", "lt": {"now": {}}}, {"deadline": "2026-03-02T09:30:00Z"})


def test_now_is_injected() -> None:
    rule = cond({"field": "d", "lt": {"now": {}}})
    assert rule({"d": "2026-01-01"}, NOW)
    assert not rule({"d": "2026-01-01"}, datetime(2025, 6, 1, tzinfo=UTC))


def test_date_and_datetime_compare_at_the_coarser_precision() -> None:
    assert check({"field": "d", "eq": {"now": {}}}, {"d": "2026-03-02"})
    assert check({"field": "d", "ge": {"now": {}}}, {"d": date(2026, 3, 2)})
    assert not check({"field": "d", "lt": {"now": {}}}, {"d": "2026-03-02"})
    assert check({"field": "d", "eq": "2026-03-02"}, {"d": "2026-03-02T23:59:00+01:00"})
    assert check({"field": "d", "in": ["2026-03-02"]}, {"d": datetime(2026, 3, 2, 17, tzinfo=UTC)})


def test_iso_strings_compare_as_moments_not_as_text() -> None:
    # 23:30Z is later than 00:00+01:00 (23:00Z) although it sorts earlier as text
    assert not check({"field": "d", "lt": "2026-03-01T00:00:00+01:00"}, {"d": "2026-02-28T23:30:00Z"})
    assert check({"field": "d", "gt": "2026-03-01T00:00:00+01:00"}, {"d": "2026-02-28T23:30:00Z"})
    assert check({"field": "d", "lt": "b"}, {"d": "a"})  # other strings still compare as text


def test_naive_datetimes_are_utc_and_offsets_are_respected() -> None:
    amsterdam = timezone(timedelta(hours=1))
    assert check({"field": "d", "eq": {"now": {}}}, {"d": datetime(2026, 3, 2, 9, 0)})
    assert check({"field": "d", "eq": {"now": {}}}, {"d": datetime(2026, 3, 2, 10, 0, tzinfo=amsterdam)})


def test_time_durations_on_dates_start_at_midnight_utc() -> None:
    assert check({"field": "d", "plus": "PT48H", "eq": "2026-03-03T00:00:00Z"}, {"d": "2026-03-01"})


def test_a_shift_on_a_non_date_is_missing() -> None:
    assert not check({"field": "d", "plus": "P1D", "eq": "2026-03-01"}, {"d": "geen datum"})
    assert check({"field": "d", "plus": "P1D", "exists": False}, {"d": "geen datum"})


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-03-02", date(2026, 3, 2)),
    ("2026-03-02T10:00:00Z", datetime(2026, 3, 2, 10, tzinfo=UTC)),
    ("2026-03-02 10:00", datetime(2026, 3, 2, 10, tzinfo=UTC)),
    ("2026-03-02T10:00:00+0100", datetime(2026, 3, 2, 9, tzinfo=UTC)),
    ("20260302", None), ("2026-02-30", None), ("morgen", None), (5, None), (None, None),
    (date(2026, 3, 2), date(2026, 3, 2)),
])
def test_to_temporal(value: Any, expected: Any) -> None:
    assert to_temporal(value) == expected


# --- functions ------------------------------------------------------------------------------------


def test_functions() -> None:
    assert check({"fn": "is_weekday", "args": [{"now": {}}]}, {})
    assert not check({"fn": "is_weekday", "args": [{"now": {"minus": "P1D"}}]}, {})
    assert check({"fn": "within_days", "args": [{"field": "d"}, {"now": {}}, 7]}, {"d": "2026-03-09"})
    assert not check({"fn": "within_days", "args": [{"field": "d"}, {"now": {}}, 7]}, {"d": "2026-03-10"})
    assert check({"fn": "is_empty", "args": [{"field": "missing"}]}, {})
    assert check({"fn": "same_date", "args": [{"field": "d"}, {"now": {}}]}, {"d": "2026-03-02T23:00:00Z"})
    assert check({"fn": "is_empty", "args": [[]]}, {})


# --- the model and explain() -------------------------------------------------------------------------


def test_the_compiled_model_is_a_frozen_value() -> None:
    data = {"all": [{"field": "a.b", "plus": "P1D", "ge": {"now": {"minus": "P2W"}}},
                    {"not": {"fn": "is_empty", "args": [{"field": "x"}, 3]}}, True, {"any": []}]}
    model = cond(data).model
    d1 = parse_duration("P1D")
    d2 = parse_duration("P2W")
    assert d1 is not None and d2 is not None
    from regelwerk.conditions import Shift

    assert model == AllOf((
        Compare(FieldRef(("a", "b"), Shift(1, d1)), "ge", NowRef(Shift(-1, d2))),
        NotOf(Call("is_empty", (FieldRef(("x",)), Literal(3)))),
        Const(True),
        AnyOf(()),
    ))
    assert cond(data) == cond(data) and hash(cond(data)) == hash(cond(data))
    assert repr(cond({"field": "a", "eq": 1})) == "Condition(a eq 1)"
    with pytest.raises(AttributeError):
        model.items = ()  # type: ignore[misc]


def test_explain_names_the_failing_leaves() -> None:
    rule = cond({"all": [{"field": "a", "eq": 1}, {"field": "b", "gt": 5}, {"field": "c", "exists": True}]})
    ok, reasons = rule.explain({"a": 1, "b": 3}, NOW)
    assert ok is False
    assert reasons == ["b gt 5 is false (b = 3)", "c exists True is false (c = None)"]
    ok, reasons = rule.explain({"a": 1, "b": 9, "c": 0}, NOW)
    assert ok is True and reasons == ["(a eq 1 and b gt 5 and c exists True)"]


def test_explain_any_not_and_calls() -> None:
    rule = cond({"any": [{"field": "a", "eq": 1}, {"not": {"fn": "is_empty", "args": [{"field": "b"}]}}]})
    ok, reasons = rule.explain({"a": 2, "b": ""}, NOW)
    assert ok is False
    assert reasons == ["none of: a eq 1 is false (a = 2); not (is_empty(b) is true)"]
    ok, reasons = rule.explain({"a": 1}, NOW)
    assert ok is True and reasons == ["a eq 1 is true (a = 1)"]
    assert cond({"any": []}).explain({}, NOW) == (False, ["false (empty any)"])


def test_explain_shows_durations() -> None:
    ok, reasons = cond({"field": "d", "plus": "P6W", "le": {"now": {"minus": "P1D"}}}).explain({"d": "2026-01-01"},
                                                                                                 NOW)
    assert ok and reasons[0].startswith("d + P6W le now - P1D is true")


# --- compile problems -----------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "expected"), [
    ("text", [("RW400", "/when")]),
    (5, [("RW400", "/when")]),
    ({}, [("RW400", "/when")]),
    ({"all": [], "any": []}, [("RW400", "/when")]),
    ({"all": {"field": "a"}}, [("RW400", "/when/all")]),
    ({"all": [{"field": "a", "eq": 1}, "x"]}, [("RW400", "/when/all/1")]),
    ({"not": {"field": "a", "eq": 1}, "extra": 1}, [("RW400", "/when/extra")]),
    ({"field": "a"}, [("RW400", "/when")]),
    ({"field": "a", "eq": 1, "gt": 2}, [("RW400", "/when")]),
    ({"field": "a", "equals": 1}, [("RW400", "/when/equals"), ("RW400", "/when")]),
    ({"field": "", "eq": 1}, [("RW400", "/when/field")]),
    ({"field": "a..b", "eq": 1}, [("RW400", "/when/field")]),
    ({"field": 5, "eq": 1}, [("RW400", "/when/field")]),
    ({"field": "a", "plus": "P1X", "eq": 1}, [("RW402", "/when/plus")]),
    ({"field": "a", "plus": "P1D", "minus": "P1D", "eq": 1}, [("RW400", "/when")]),
    ({"field": "a", "eq": {"now": {"plus": "soon"}}}, [("RW402", "/when/eq/now/plus")]),
    ({"field": "a", "eq": {"now": "today"}}, [("RW400", "/when/eq/now")]),
    ({"field": "a", "eq": {"field": "b", "times": 2}}, [("RW400", "/when/eq")]),
    ({"field": "a", "eq": {"value": 1}}, [("RW400", "/when/eq")]),
    ({"field": "a", "in": "abc"}, [("RW400", "/when/in")]),
    ({"field": "a", "not_in": 5}, [("RW400", "/when/not_in")]),
    ({"field": "a", "exists": "yes"}, [("RW400", "/when/exists")]),
    ({"field": "a", "matches": "(unclosed"}, [("RW403", "/when/matches")]),
    ({"fn": "is_wekday"}, [("RW401", "/when/fn")]),
    ({"fn": "is_weekday", "args": "x"}, [("RW400", "/when/args")]),
    ({"any": [{"not": {"field": "a", "plus": "3 weeks", "eq": 1}}]}, [("RW402", "/when/any/0/not/plus")]),
])
def test_compile_problems_carry_pointers(data: Any, expected: list[tuple[str, str]]) -> None:
    assert problems_of(data) == expected


def test_compile_problems_have_hints() -> None:
    _, problems = compile_condition({"fn": "is_wekday"}, "", FUNCTIONS)
    assert problems[0].hint == "did you mean 'is_weekday'?"
    _, problems = compile_condition({"field": "a", "plus": "6 weken", "eq": 1}, "", FUNCTIONS)
    assert "P6W" in problems[0].hint
    _, problems = compile_condition({"field": "a", "eq": 1, "descripton": "x"}, "", FUNCTIONS)
    assert problems[0].hint == "did you mean 'description'?"


def test_a_condition_with_problems_is_false() -> None:
    compiled, problems = compile_condition({"field": "a", "eq": 1, "gt": 0}, "", {})
    assert problems and compiled.model == Const(False) and compiled({"a": 1}, NOW) is False


# --- properties -----------------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["a", "b", "2026-03-02"]))
leaf = st.builds(lambda op, v: {"field": "x", op: v},
                 st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge"]), scalars) | st.booleans().map(
    lambda b: b) | st.builds(lambda v: {"field": "x", "in": v}, st.lists(scalars, max_size=3))
conditions = st.recursive(leaf, lambda inner: st.one_of(
    st.builds(lambda items: {"all": items}, st.lists(inner, max_size=3)),
    st.builds(lambda items: {"any": items}, st.lists(inner, max_size=3)),
    st.builds(lambda item: {"not": item}, inner),
), max_leaves=8)
scopes = st.fixed_dictionaries({}, optional={"x": scalars})


@settings(max_examples=150, deadline=None)
@given(conditions, scopes)
def test_not_inverts(data: Any, scope: dict[str, Any]) -> None:
    """Three-valued: not(unknown) is unknown, so 'not' holds only when the inner condition is false."""
    truth = cond(data).truth(scope, NOW)
    assert cond({"not": data}).truth(scope, NOW) is (None if truth is None else not truth)
    assert check({"not": data}, scope) is (truth is False)


@settings(max_examples=150, deadline=None)
@given(st.lists(conditions, max_size=4), scopes)
def test_all_and_any_agree_with_python(items: list[Any], scope: dict[str, Any]) -> None:
    values = [cond(item).truth(scope, NOW) for item in items]
    kleene_all = False if False in values else (None if None in values else True)
    kleene_any = True if True in values else (None if None in values else False)
    assert cond({"all": items}).truth(scope, NOW) is kleene_all
    assert cond({"any": items}).truth(scope, NOW) is kleene_any
    assert check({"not": {"any": items}}, scope) is check({"all": [{"not": i} for i in items]}, scope)


@settings(max_examples=150, deadline=None)
@given(conditions, scopes)
def test_explain_agrees_with_evaluation(data: Any, scope: dict[str, Any]) -> None:
    rule = cond(data)
    ok, reasons = rule.explain(scope, NOW)
    assert ok is rule(scope, NOW)
    assert reasons


@settings(max_examples=100, deadline=None)
@given(scalars, scalars)
def test_ordering_operators_are_consistent(a: Any, b: Any) -> None:
    scope = {"x": a}
    lt, ge = check({"field": "x", "lt": b}, scope), check({"field": "x", "ge": b}, scope)
    assert not (lt and ge)
    eq, ne = check({"field": "x", "eq": b}, scope), check({"field": "x", "ne": b}, scope)
    assert not (eq and ne)
    if cond({"field": "x", "eq": b}).truth(scope, NOW) is not None:
        assert eq is not ne
