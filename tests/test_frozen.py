"""Compiled means immutable: a compiled bundle and everything reachable from it refuse writes, and every
``load_registry()`` call builds a registry of its own (issue 17)."""

from __future__ import annotations

import copy
import json
import math
import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.frozen import FrozenDict, FrozenList, deep_freeze
from regelwerk.registry import ActionSpec, load_registry

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compiled():  # type: ignore[no-untyped-def]
    return compile_bundle(load_bundle(ROOT / "definitions" / "standard"), load_registry())


def test_the_compiled_bundle_refuses_writes(compiled) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match="read-only"):
        compiled.objects[("Workflow", "x")] = object()
    with pytest.raises(TypeError):
        compiled.versions.clear()
    with pytest.raises(TypeError):
        compiled.overlay_changes.update({("a", "b"): "added"})


def test_action_params_deep_inside_a_workflow_refuse_writes(compiled) -> None:  # type: ignore[no-untyped-def]
    workflow = compiled.get("Workflow", "declaration")
    submitted = next(s for s in workflow.states.values() if s.id == "submitted") if isinstance(
        workflow.states, dict) else next(s for s in workflow.states if s.id == "submitted")
    params = submitted.on_enter[0].params
    assert params["field"] == "submitted_at"
    with pytest.raises(TypeError):
        params["field"] = "amount"  # type: ignore[index]
    with pytest.raises((TypeError, AttributeError)):  # a tuple or a FrozenList
        submitted.on_enter.append(None)
    assert compiled.get("Workflow", "declaration").states  # unchanged, still readable


def test_frozen_containers_behave_as_their_plain_kinds_for_readers() -> None:
    frozen = deep_freeze({"a": [1, {"b": 2}], "c": {3}})
    assert isinstance(frozen, dict) and isinstance(frozen["a"], list) and isinstance(frozen["a"][1], dict)
    assert frozen == {"a": [1, {"b": 2}], "c": frozenset({3})}
    assert json.loads(json.dumps({"a": frozen["a"]})) == {"a": [1, {"b": 2}]}
    assert repr(frozen["a"]) == "[1, {'b': 2}]"  # content hashes of compiled objects use repr
    assert pickle.loads(pickle.dumps(frozen)) == frozen
    # a copy is the caller's own: copy.copy changeable at the top, copy.deepcopy all the way down
    shallow, deep = copy.copy(frozen), copy.deepcopy(frozen)
    assert type(shallow) is dict and shallow == frozen and shallow["a"] is frozen["a"]
    assert deep == frozen and type(deep) is dict and type(deep["a"]) is list and type(deep["a"][1]) is dict
    deep["a"][1]["b"] = 3
    assert frozen["a"][1]["b"] == 2 and type(copy.copy(frozen["a"])) is list
    items, inner = frozen["a"], frozen["a"][1]
    for mutate in (lambda: items.append(3), items.pop, lambda: frozen.pop("a"), lambda: frozen.setdefault("z", 1),
                   items.sort, inner.clear):
        with pytest.raises(TypeError):
            mutate()
    assert isinstance(frozen, FrozenDict) and isinstance(frozen["a"], FrozenList)


def test_every_load_registry_call_builds_its_own_registry() -> None:
    first = load_registry()
    first.add_action(ActionSpec("leak.test", "tests", lambda ctx: None))
    second = load_registry()
    assert first is not second
    assert "leak.test" in first.actions and "leak.test" not in second.actions
    assert sorted(first.kinds) == sorted(second.kinds)


def test_compiled_decisions_and_conditions_refuse_attribute_writes(compiled) -> None:  # type: ignore[no-untyped-def]
    """Decision tables, calculations, expressions and conditions are plain classes with slots, not dataclasses:
    sealed once built, so no caller can swap a table's rows or a guard's function for everybody."""
    from regelwerk.conditions import Condition
    from regelwerk.decisions.expression import Expression
    from regelwerk.decisions.graph import Calculation
    from regelwerk.decisions.table import DecisionTable

    sealed: dict[type, object] = {}
    seen: set[int] = set()

    def walk(value: object, depth: int = 0) -> None:
        if id(value) in seen or depth > 12 or isinstance(value, (str, bytes, int, float)):
            return
        seen.add(id(value))
        if isinstance(value, (DecisionTable, Calculation, Expression, Condition)):
            sealed.setdefault(type(value), value)
        if isinstance(value, dict):
            for item in value.values():
                walk(item, depth + 1)
        elif isinstance(value, (list, tuple, frozenset)):
            for item in value:
                walk(item, depth + 1)
        elif hasattr(value, "__dataclass_fields__"):
            for name in value.__dataclass_fields__:
                walk(getattr(value, name, None), depth + 1)
        elif hasattr(type(value), "__slots__"):
            for name in getattr(type(value), "__slots__", ()):
                walk(getattr(value, name, None), depth + 1)

    walk(dict(compiled.objects))
    assert {DecisionTable, Condition} <= set(sealed), sorted(t.__name__ for t in sealed)
    for kind, value in sealed.items():
        name = "name" if kind in (DecisionTable, Calculation) else "text"
        with pytest.raises(AttributeError, match="immutable"):
            setattr(value, name, "changed")
        with pytest.raises(AttributeError, match="immutable"):
            delattr(value, name)


def test_of_kind_answers_as_before_from_an_index_made_once(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = compile_bundle(load_bundle(ROOT / "definitions" / "standard"), load_registry())
    kinds = sorted({kind for kind, _name in compiled.objects} | {"NoSuchKind"})
    expected = {kind: {n: obj for (k, n), obj in sorted(compiled.objects.items()) if k == kind} for kind in kinds}
    reads: list[int] = []
    items = FrozenDict.items

    def counted(self: Any) -> Any:
        reads.append(1)
        return items(self)

    monkeypatch.setattr(FrozenDict, "items", counted)
    answers = {kind: compiled.of_kind(kind) for kind in kinds for _ in range(3)}
    assert answers == expected and list(answers["Workflow"]) == sorted(answers["Workflow"])
    assert len(reads) == 1  # every object read once, not once per question (before: 3 per kind)
    answers["Workflow"].clear()  # the answer is the caller's: the next one is whole again
    assert compiled.of_kind("Workflow") == expected["Workflow"]


_TEXTS = st.sampled_from(["a", "é", "\ud800", "x\udfffy", ""])
_SCALARS = st.one_of(_TEXTS, st.integers(min_value=-(2**70), max_value=2**70), st.booleans(), st.none(),
                     st.floats(allow_nan=True, allow_infinity=True), st.just(b"x"), st.just((1, 2)), st.just({1}))
_KEYS = st.one_of(_TEXTS, st.sampled_from(["k", "l", "erased"]), st.integers(0, 3))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=3),
    st.builds(FrozenDict, st.dictionaries(st.sampled_from(["k", "l"]), inner, max_size=2))),
    max_leaves=12)


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (a float NaN equal to itself)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a is b or a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)))


@pytest.fixture(scope="module")
def versions(compiled):  # type: ignore[no-untyped-def]
    """A workflow with a data_schema (declaration) and one without (talent-conversation)."""
    from regelwerk.workflows.gate import Version

    return [Version(compiled.get("Workflow", name), "v") for name in ("declaration", "talent-conversation")]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(_KEYS, _VALUES, max_size=4), fits=st.booleans())
def test_checked_is_check_data_then_freeze_json_in_one_walk(versions, data: dict[Any, Any],  # type: ignore[no-untyped-def]
                                                            fits: bool) -> None:
    """A start's data checked and frozen in one walk (Version.checked): the same refusal as check_data, else the same
    read-only copy as freeze_json, whatever the data holds (lone surrogates, NaN, tuples, sets, frozen mappings)."""
    from regelwerk.errors import InvalidData
    from regelwerk.frozen import freeze_json

    if fits:  # what the declaration's schema requires
        data = {"employee": "e1", "amount": 12.5, **data}
    for version in versions:
        try:
            version.check_data(data)
        except InvalidData as exc:
            with pytest.raises(InvalidData) as caught:
                version.checked(data)
            assert (str(caught.value), caught.value.pointer) == (str(exc), exc.pointer)
            continue
        assert _same(version.checked(data), freeze_json(data))


def test_checked_refuses_data_nested_too_deep_as_check_data_does(versions) -> None:  # type: ignore[no-untyped-def]
    from regelwerk.errors import InvalidData
    from regelwerk.workflows.gate import MAX_DATA_DEPTH

    declaration = versions[1]  # no data_schema: the depth alone decides

    for depth in (MAX_DATA_DEPTH - 1, MAX_DATA_DEPTH, MAX_DATA_DEPTH + 1):
        data: dict[str, Any] = {}
        inner = data
        for _ in range(depth - 1):
            inner["a"] = {}
            inner = inner["a"]
        try:
            declaration.check_data(data)
        except InvalidData as exc:
            with pytest.raises(InvalidData, match="deeper"):
                declaration.checked(data)
            assert exc.pointer
        else:
            assert declaration.checked(data) == data
