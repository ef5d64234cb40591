"""Schema and reference diagnostics: the right code, place, pointer and hint, all at once, sorted."""

from __future__ import annotations

import pytest
from _foundation import foundation_registry
from jsonschema import Draft202012Validator
from regelwerk.bundle import Bundle
from regelwerk.compiler import compile_bundle, validate_bundle
from regelwerk.diagnostics import (
    CODES,
    DefinitionError,
    Diagnostic,
    Severity,
    did_you_mean,
    format_diagnostics,
    sort_diagnostics,
)
from regelwerk.registry import IdDecl, KindSpec, RefDecl, Registry
from regelwerk.source import load_text
from regelwerk.validation import API_VERSION, SchemaSet, load_shipped_schema, umbrella_schema


@pytest.fixture(scope="module")
def registry() -> Registry:
    """Core plus the example Checklist plugin (see tests/_foundation.py)."""
    return foundation_registry()

HEAD = "apiVersion: regelwerk/v1\nkind: Checklist\nmetadata:\n  name: lijst\nspec:\n  tasks:\n"


def bundle_of(*files: tuple[str, str]) -> Bundle:
    bundle = Bundle(name="test", root=".")
    for name, text in files:
        docs, problems = load_text(text, name)
        bundle.documents.extend(docs)
        bundle.diagnostics.extend(problems)
    return bundle


def diagnose(registry: Registry, text: str, file: str = "c.yaml") -> list[Diagnostic]:
    return validate_bundle(bundle_of((file, text)), registry)


def rows(problems: list[Diagnostic]) -> list[tuple[str, int, int, str]]:
    return [(d.code, d.line, d.column, d.pointer) for d in problems]


def test_a_valid_document_has_no_diagnostics(registry: Registry) -> None:
    assert diagnose(registry, HEAD + "    - id: a\n    - id: b\n      depends_on: [a]\n") == []


def test_unknown_keys_with_did_you_mean(registry: Registry) -> None:
    problems = diagnose(registry, "apiVersion: regelwerk/v1\nkind: Checklist\nmetdata: {name: x}\nspec:\n"
                                  "  tasks:\n    - id: a\n      lable: A\n      colour: red\n")
    assert rows(problems) == [
        ("RW103", 1, 1, ""),
        ("RW104", 3, 1, "/metdata"),
        ("RW104", 7, 7, "/spec/tasks/0/lable"),
        ("RW104", 8, 7, "/spec/tasks/0/colour"),
    ]
    assert problems[0].message == "missing required field 'metadata'"
    assert problems[1].hint == "did you mean 'metadata'?"
    assert problems[2].hint == "did you mean 'label'?"
    assert problems[3].hint == "allowed keys: depends_on, id, label, when"


def test_unknown_keys_inside_conditions(registry: Registry) -> None:
    problems = diagnose(registry, HEAD + "    - id: a\n      when: {all: [{field: x, eq: 1}, {fiel: y}]}\n")
    assert rows(problems) == [("RW104", 8, 40, "/spec/tasks/0/when/all/1/fiel")]
    assert problems[0].hint == "did you mean 'field'?"


def test_wrong_types(registry: Registry) -> None:
    problems = diagnose(registry, HEAD + "    - id: 5\n      label: [x]\n      depends_on: a\n"
                                         "    - id: b\n      when: 'yes'\n")
    assert rows(problems) == [
        ("RW102", 7, 11, "/spec/tasks/0/id"),
        ("RW102", 8, 14, "/spec/tasks/0/label"),
        ("RW102", 9, 19, "/spec/tasks/0/depends_on"),
        ("RW102", 11, 13, "/spec/tasks/1/when"),
    ]
    assert [p.message for p in problems] == ["expected string, got a number", "expected string, got a list",
                                             "expected array, got a string", "expected boolean or object, got a string"]


def test_spec_of_the_wrong_type(registry: Registry) -> None:
    problems = diagnose(registry, "apiVersion: regelwerk/v1\nkind: Checklist\nmetadata: {name: x}\nspec: [1]\n")
    assert rows(problems) == [("RW102", 4, 7, "/spec")]
    assert problems[0].message == "expected object, got a list"


def test_missing_required_fields(registry: Registry) -> None:
    problems = diagnose(registry, "apiVersion: regelwerk/v1\nkind: Checklist\nmetadata: {labels: {}}\nspec:\n"
                                  "  tasks:\n    - label: zonder id\n")
    assert rows(problems) == [("RW103", 3, 11, "/metadata"), ("RW103", 6, 7, "/spec/tasks/0")]
    assert problems[1].message == "missing required field 'id'"


def test_enum_const_and_pattern(registry: Registry) -> None:
    problems = diagnose(registry, "apiVersion: regelwerk/v1\nkind: Checklist\nmetadata:\n  name: 'met spatie'\n"
                                  "  merge: pach\nspec:\n  tasks:\n    - id: a\n"
                                  "      when: {field: d, plus: 6W, lt: {now: {}}}\n")
    assert rows(problems) == [("RW105", 4, 9, "/metadata/name"), ("RW105", 5, 10, "/metadata/merge"),
                              ("RW105", 9, 30, "/spec/tasks/0/when/plus")]
    assert problems[0].message == '"met spatie" does not have the required form'
    assert "identifier" in problems[0].hint
    assert problems[1].message == '"pach" is not allowed here' and problems[1].hint == "did you mean 'patch'?"
    assert "P6W" in problems[2].hint


def test_enum_hint_lists_the_allowed_values_when_nothing_is_close(registry: Registry) -> None:
    problems = diagnose(registry, "apiVersion: regelwerk/v1\nkind: Checklist\nmetadata: {name: x, merge: zzz}\n"
                                  "spec: {tasks: [{id: a}]}\n")
    assert problems[0].hint == 'allowed: "add", "replace", "patch", "remove"'


def test_other_schema_keywords(registry: Registry) -> None:
    problems = diagnose(registry, HEAD.replace("  tasks:\n", "  tasks: []\n"))
    assert rows(problems) == [("RW106", 6, 10, "/spec/tasks")]
    assert problems[0].message.startswith("minItems:")


def test_unknown_api_version_and_kind_with_hints(registry: Registry) -> None:
    problems = diagnose(registry, "apiVersion: regelwerk/v2\nkind: Cheklist\nmetadata: {name: a}\n---\n"
                                  "kind: Checklist\nmetadata: {name: b}\nspec: {tasks: [{id: a}]}\n---\n"
                                  "apiVersion: regelwerk/v1\nkind: Onbekend\nmetadata: {name: c}\n---\n"
                                  "apiVersion: regelwerk/v1\nmetadata: {name: d}\n")
    assert rows(problems) == [("RW100", 1, 13, "/apiVersion"), ("RW101", 2, 7, "/kind"),
                              ("RW100", 5, 1, "/apiVersion"), ("RW101", 10, 7, "/kind"),
                              ("RW101", 13, 1, "/kind")]
    assert problems[0].hint == f"use 'apiVersion: {API_VERSION}'"
    assert problems[1].hint == "did you mean 'Checklist'?"
    assert problems[2].message == "missing apiVersion"
    assert "Checklist" in problems[3].hint and problems[3].hint.startswith("known kinds: ")
    assert problems[4].message == "missing kind"


def test_non_string_kind(registry: Registry) -> None:
    problems = diagnose(registry, "apiVersion: regelwerk/v1\nkind: [a]\nmetadata: {name: a}\n")
    assert rows(problems) == [("RW101", 2, 7, "/kind")]


def test_references_to_undefined_ids(registry: Registry) -> None:
    problems = diagnose(registry, HEAD + "    - id: contract\n    - id: laptop\n      depends_on: [contrakt, x]\n")
    assert rows(problems) == [("RW301", 9, 20, "/spec/tasks/1/depends_on/0"),
                              ("RW301", 9, 30, "/spec/tasks/1/depends_on/1")]
    assert problems[0].message == "task 'contrakt' does not exist"
    assert problems[0].hint == "did you mean 'contract'?"
    assert problems[1].hint == "known: contract, laptop"


def test_duplicate_ids(registry: Registry) -> None:
    problems = diagnose(registry, HEAD + "    - id: a\n    - id: b\n    - id: a\n")
    assert rows(problems) == [("RW300", 9, 11, "/spec/tasks/2/id")]
    assert problems[0].message == "duplicate task 'a' (first at line 7)"


def test_kind_compiler_problems_are_collected(registry: Registry) -> None:
    problems = diagnose(registry, HEAD + "    - id: a\n      depends_on: [a]\n"
                                         "    - id: b\n      when: {field: x, eq: 1, gt: 2}\n")
    assert rows(problems) == [("CHK001", 8, 19, "/spec/tasks/0/depends_on"), ("RW400", 10, 13, "/spec/tasks/1/when")]


def test_every_problem_of_a_run_at_once_sorted(registry: Registry) -> None:
    bundle = bundle_of(
        ("b.yaml", HEAD + "    - id: a\n      lable: x\n    - id: a\n"),
        ("a.yaml", "x: 1\nx: 2\n---\n" + HEAD + "    - id: z\n      depends_on: [q]\n"),
        ("a.yaml", "apiVersion: regelwerk/v1\nkind: Nope\n"),
    )
    problems = validate_bundle(bundle, registry)
    assert [(d.file, d.line, d.column, d.code) for d in problems] == [
        ("a.yaml", 1, 1, "RW100"), ("a.yaml", 1, 1, "RW101"), ("a.yaml", 2, 1, "RW002"),
        ("a.yaml", 2, 7, "RW101"), ("a.yaml", 11, 20, "RW301"),
        ("b.yaml", 8, 7, "RW104"),
    ]
    assert problems == sort_diagnostics(problems)


def test_duplicate_ids_are_checked_even_if_another_document_is_broken(registry: Registry) -> None:
    bundle = bundle_of(("a.yaml", HEAD + "    - id: a\n    - id: a\n"),
                       ("b.yaml", HEAD.replace("lijst", "ander") + "    - {id: a, lable: x}\n"))
    assert [(d.file, d.code) for d in validate_bundle(bundle, registry)] == [("a.yaml", "RW300"), ("b.yaml", "RW104")]


def test_compile_bundle_raises_one_error_with_everything(registry: Registry) -> None:
    with pytest.raises(DefinitionError) as info:
        compile_bundle(bundle_of(("c.yaml", HEAD + "    - id: a\n      lable: x\n    - {id: b, label: [1]}\n")),
                       registry)
    assert [d.code for d in info.value.diagnostics] == ["RW104", "RW102"]
    assert info.value.exit_code == 1
    assert "2 definition error(s)" in str(info.value)


# --- generic id/ref declarations for any kind -------------------------------------------------------


class _Plugin:
    name = "test"

    def register(self, registry: Registry) -> None:
        schema = {"type": "object", "properties": {"apiVersion": {}, "kind": {}, "metadata": {}, "spec": {}}}
        registry.add_kind(KindSpec("Flow", self.name, schema, ids=(IdDecl("/spec/states/*/id", "state"),),
                                   refs=(RefDecl("/spec/start", target="/spec/states/*/id", what="state"),
                                         RefDecl("/spec/roles", kind="Roles", target="/spec/roles/*", what="role",
                                                 allow=("*",)),
                                         RefDecl("/spec/uses", kind="Flow", what="flow"))))
        registry.add_kind(KindSpec("Roles", self.name, schema))


def test_reference_declarations_cover_documents_and_other_kinds() -> None:
    reg = Registry()
    reg.register_plugin(_Plugin())
    text = ("apiVersion: regelwerk/v1\nkind: Roles\nmetadata: {name: r}\nspec: {roles: [hr, manager]}\n---\n"
            "apiVersion: regelwerk/v1\nkind: Flow\nmetadata: {name: f}\n"
            "spec:\n  states: [{id: open}, {id: done}]\n  start: opn\n  roles: [hr, '*', manger]\n  uses: g\n")
    problems = validate_bundle(bundle_of(("f.yaml", text)), reg)
    assert rows(problems) == [("RW301", 11, 10, "/spec/start"), ("RW301", 12, 20, "/spec/roles/2"),
                              ("RW302", 13, 9, "/spec/uses")]
    assert [p.hint for p in problems] == ["did you mean 'open'?", "did you mean 'manager'?", "known: f"]
    assert problems[2].message == "Flow 'g' does not exist"
    assert problems[1].message == "role 'manger' (in any Roles) does not exist"


# --- schemas -----------------------------------------------------------------------------------


def test_shipped_schemas_are_valid_draft_2020_12(registry: Registry) -> None:
    Draft202012Validator.check_schema(load_shipped_schema("common.json"))
    for spec in registry.kinds.values():
        Draft202012Validator.check_schema(dict(spec.schema))
    Draft202012Validator.check_schema(umbrella_schema(registry))


def test_umbrella_schema_dispatches_on_kind(registry: Registry) -> None:
    umbrella = umbrella_schema(registry)
    assert "Checklist" in umbrella["properties"]["kind"]["enum"]
    branch = next(b for b in umbrella["allOf"] if b["if"] == {"properties": {"kind": {"const": "Checklist"}},
                                                              "required": ["kind"]})
    assert branch["then"]["then"] == {"$ref": "checklist.patch.json"}  # merge: patch | remove
    assert branch["then"]["else"] == {"$ref": "checklist.json"}


def test_schema_set_reuses_validators(registry: Registry) -> None:
    schemas = SchemaSet(registry)
    assert schemas.validator("Checklist") is schemas.validator("Checklist")


# --- the diagnostic shape ---------------------------------------------------------------------------


def test_diagnostic_formats() -> None:
    d = Diagnostic("RW104", "unknown key 'lable'", "a.yaml", 7, 7, "/spec/tasks/0/lable", "did you mean 'label'?")
    w = Diagnostic("RW500", "50%\nline", "a.yaml", 1, 1, severity=Severity.WARNING)
    assert d.format() == ("a.yaml:7:7: error RW104: unknown key 'lable' [at /spec/tasks/0/lable]\n"
                          "    hint: did you mean 'label'?")
    assert d.to_dict() == {"code": "RW104", "severity": "error", "message": "unknown key 'lable'",
                           "file": "a.yaml", "line": 7, "column": 7, "pointer": "/spec/tasks/0/lable",
                           "hint": "did you mean 'label'?"}
    github = format_diagnostics([d, w], "github").splitlines()
    assert github[0] == "::warning file=a.yaml,line=1,col=1,title=RW500::RW500: 50%25%0Aline"
    assert github[1].startswith("::error file=a.yaml,line=7,col=7,title=RW104::RW104: unknown key")
    assert '"valid": false' in format_diagnostics([d], "json")
    assert '"valid": true' in format_diagnostics([w], "json")


def test_sort_deduplicates() -> None:
    a = Diagnostic("RW001", "x", "b.yaml", 2, 1)
    b = Diagnostic("RW001", "x", "a.yaml", 9, 9)
    assert sort_diagnostics([a, b, a]) == [b, a]


def test_did_you_mean() -> None:
    assert did_you_mean("lable", ["label", "id"]) == "did you mean 'label'?"
    assert did_you_mean("zzz", ["label"]) == ""


def test_every_code_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    missing = [code for code in CODES if f"`{code}`" not in doc]
    assert missing == []


def test_inline_refs_makes_recursive_schemas_cyclic_and_falls_back_when_it_must() -> None:
    from regelwerk.validation import inline_refs

    files = {
        "a.json": {"$schema": "x", "type": "object", "properties": {"c": {"$ref": "common.json#/$defs/c",
                                                                          "description": "local"}}},
        "common.json": {"$defs": {"c": {"anyOf": [{"type": "boolean"},
                                                  {"type": "object", "properties": {"not": {"$ref": "#/$defs/c"}}}]}}},
        "bad.json": {"properties": {"x": {"$ref": "https://elsewhere.invalid/s.json"}}},
        "dyn.json": {"$dynamicRef": "#meta"},
    }
    schema = inline_refs("a.json", files)
    assert schema is not None
    c = schema["properties"]["c"]
    assert c["description"] == "local" and c["anyOf"][0] == {"type": "boolean"}
    inner = c["anyOf"][1]["properties"]["not"]
    assert inner["anyOf"][1]["properties"]["not"] is inner  # a cycle, not an endless copy
    assert Draft202012Validator(schema).is_valid({"c": {"not": {"not": True}}})
    assert not Draft202012Validator(schema).is_valid({"c": {"not": {"not": 5}}})
    assert inline_refs("bad.json", files) is None
    assert inline_refs("dyn.json", files) is None
    assert inline_refs("missing.json", files) is None
