"""Fuzzing: whatever bytes or text come in, only documents and diagnostics come out."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from _foundation import foundation_registry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from regelwerk.bundle import Bundle, load_bundle
from regelwerk.compiler import validate_bundle
from regelwerk.diagnostics import CODES, Diagnostic
from regelwerk.registry import Registry
from regelwerk.source import (
    Limits,
    SourceDocument,
    YMap,
    _CParser,
    _Dumper,
    _load_text,
    decode_source,
    dump_yaml,
    load_text,
    locate,
    to_plain,
)


@pytest.fixture(scope="module")
def registry() -> Registry:
    """Core plus the example Checklist plugin (see tests/_foundation.py)."""
    return foundation_registry()

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])
SMALL = Limits(max_file_bytes=4096, max_depth=16, max_aliases=20, max_expanded_nodes=500, max_documents=20)


def assert_diagnostics(problems: list[Diagnostic], file: str) -> None:
    for d in problems:
        assert isinstance(d, Diagnostic)
        assert d.code in CODES or d.code == "CHK001", d
        assert d.file == file and d.line >= 1 and d.column >= 1, d
        assert d.message


def assert_located(docs: list[SourceDocument]) -> None:
    def walk(node: Any) -> None:
        if isinstance(node, YMap):
            assert set(node.key_locs) == set(node) == set(node.value_locs)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            assert len(node.item_locs) == len(node)  # type: ignore[attr-defined]
            for value in node:
                walk(value)

    for doc in docs:
        walk(doc.data)


def check_text(text: str, limits: Limits = SMALL) -> None:
    docs, problems = load_text(text, "fuzz.yaml", limits)
    assert_diagnostics(problems, "fuzz.yaml")
    assert_located(docs)
    for doc in docs:
        assert isinstance(doc.data, YMap)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(raw: bytes) -> None:
    text, problems = decode_source(raw, "fuzz.yaml")
    assert (text is None) == bool(problems)
    assert_diagnostics(problems, "fuzz.yaml")
    if text is not None:
        check_text(text)


TOKENS = [*":-[]{}&*!|>'\"#%@`,?~<= \t\nabkvxy019\r\ufeff\x07\x85é",
          "---", "...", "<<", "!!str", "!!python/object:os.system", "&a", "*a", "- ", ": ", "\n  ", "\n    "]
YAMLISH = st.lists(st.sampled_from(TOKENS), max_size=120).map("".join)


@FUZZ
@given(YAMLISH)
def test_random_yaml_ish_text(text: str) -> None:
    check_text(text)


@FUZZ
@given(st.text(max_size=300))
def test_random_unicode_text(text: str) -> None:
    check_text(text)


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=20), st.sampled_from(["no", "yes", "2026-01-31", "P6W", "~", "0o17", "<<"]))
keys = st.one_of(st.text(string.ascii_letters + "_-./~", min_size=1, max_size=12),
                 st.sampled_from(["apiVersion", "kind", "metadata", "name", "spec", "tasks", "id", "when",
                                  "depends_on", "field", "eq", "all", "not", "fn", "args", "merge"]))
trees = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(keys, inner, max_size=4)), max_leaves=25)


@FUZZ
@given(st.dictionaries(keys, trees, max_size=5), st.sampled_from([None, False, True]))
def test_dumped_data_round_trips_with_positions(data: dict[str, Any], flow: bool | None) -> None:
    text = dump_yaml([data]) if flow is None else yaml.dump(data, Dumper=_Dumper, default_flow_style=flow)
    docs, problems = load_text(text, "fuzz.yaml")
    assert problems == []
    assert len(docs) == 1 and docs[0].data == data
    assert_located(docs)
    for key in data:
        assert locate(docs[0].data, "/" + key.replace("~", "~0").replace("/", "~1"), key=True).line >= 1


documents = st.fixed_dictionaries(
    {"apiVersion": st.sampled_from(["regelwerk/v1", "regelwerk/v2"]),
     "kind": st.sampled_from(["Checklist", "Cheklist", "Bundle"]),
     "metadata": st.one_of(st.fixed_dictionaries({"name": st.sampled_from(["a", "b", "c d"])},
                                                 optional={"merge": st.sampled_from(["patch", "add", "x"])}),
                           trees)},
    optional={"spec": st.one_of(
        st.fixed_dictionaries({"tasks": st.lists(st.dictionaries(keys, trees, max_size=4) | st.fixed_dictionaries(
            {"id": st.sampled_from(["a", "b", "c"])},
            optional={"depends_on": st.lists(st.sampled_from(["a", "b", "x"]), max_size=3),
                      "when": trees, "label": scalars}), max_size=4)}),
        trees)})


@FUZZ
@given(st.lists(documents, min_size=1, max_size=4))
def test_validate_pipeline_only_yields_diagnostics(registry: Registry, docs: list[dict[str, Any]]) -> None:
    text = yaml.safe_dump_all(docs, sort_keys=False)
    loaded, problems = load_text(text, "fuzz.yaml")
    bundle = Bundle(name="fuzz", root=".", documents=loaded, diagnostics=problems)
    result = validate_bundle(bundle, registry)
    assert_diagnostics(result, "fuzz.yaml")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(documents, min_size=1, max_size=3), st.lists(documents, min_size=1, max_size=3))
def test_overlays_only_yield_diagnostics(registry: Registry, tmp_path_factory: Any, base: list[Any],
                                         overlay: list[Any]) -> None:
    root: Path = tmp_path_factory.mktemp("fuzz")
    (root / "base").mkdir()
    (root / "klant").mkdir()
    (root / "base" / "a.yaml").write_text(yaml.safe_dump_all(base), encoding="utf-8")
    (root / "klant" / "bundle.yaml").write_text(
        "apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: k}\nspec: {extends: base}\n", encoding="utf-8")
    (root / "klant" / "b.yaml").write_text(yaml.safe_dump_all(overlay), encoding="utf-8")
    for d in validate_bundle(load_bundle(root / "klant", bases={"base": root / "base"}), registry):
        assert d.code in CODES or d.code == "CHK001", d
        assert d.line >= 1 and d.file.endswith(".yaml"), d


def both_parsers(text: str) -> tuple[Any, Any]:
    fast_docs, fast_problems = _load_text(text, "fuzz.yaml", SMALL, fast=True)
    slow_docs, slow_problems = _load_text(text, "fuzz.yaml", SMALL, fast=False)
    fast = ([(d.index, d.location, to_plain(d.data)) for d in fast_docs], fast_problems)
    slow = ([(d.index, d.location, to_plain(d.data)) for d in slow_docs], slow_problems)
    return fast, slow


@pytest.mark.skipif(_CParser is None, reason="PyYAML was built without libyaml")
@FUZZ
@given(YAMLISH)
def test_libyaml_and_pure_python_parsers_agree(text: str) -> None:
    fast, slow = both_parsers(text)
    syntax_error = any(d.code in {"RW001", "RW003"} for d in slow[1])
    # libyaml is a little more lenient (it takes "|#", for one); wherever PyYAML accepts the text, or
    # libyaml refuses it (the loader then reruns PyYAML), the results are identical
    if not syntax_error or any(d.code in {"RW001", "RW003"} for d in fast[1]):
        assert repr(fast) == repr(slow)  # repr: NaN != NaN


@pytest.mark.skipif(_CParser is None, reason="PyYAML was built without libyaml")
@FUZZ
@given(st.dictionaries(keys, trees, max_size=5))
def test_parsers_agree_on_positions_of_real_yaml(data: dict[str, Any]) -> None:
    fast, slow = both_parsers(dump_yaml([data]) + "---\n" + yaml.dump(data, Dumper=_Dumper, default_flow_style=True))
    assert repr(fast) == repr(slow)
    fast_docs, _ = _load_text(dump_yaml([data]), "fuzz.yaml", SMALL, fast=True)
    slow_docs, _ = _load_text(dump_yaml([data]), "fuzz.yaml", SMALL, fast=False)

    def locations(node: Any) -> list[Any]:
        if isinstance(node, YMap):
            return [node.loc, node.key_locs, node.value_locs] + [locations(v) for v in node.values()]
        if isinstance(node, list):
            return [node.loc, node.item_locs] + [locations(v) for v in node]  # type: ignore[attr-defined]
        return []

    assert [locations(d.data) for d in fast_docs] == [locations(d.data) for d in slow_docs]


@FUZZ
@given(st.lists(documents, min_size=1, max_size=3))
def test_inlined_schemas_validate_like_referenced_ones(registry: Registry, docs: list[dict[str, Any]]) -> None:
    from jsonschema import Draft202012Validator
    from regelwerk.validation import SCHEMA_BASE, SchemaSet

    schemas = SchemaSet(registry)
    referenced = Draft202012Validator({"$ref": SCHEMA_BASE + "checklist.json"}, registry=schemas._refs)
    inlined = schemas.validator("Checklist")
    assert inlined.schema.get("$ref") is None  # the fast path is in use
    for doc in docs:
        by_ref = sorted((list(e.absolute_path), str(e.validator), e.message) for e in referenced.iter_errors(doc))
        by_inline = sorted((list(e.absolute_path), str(e.validator), e.message) for e in inlined.iter_errors(doc))
        assert by_inline == by_ref
