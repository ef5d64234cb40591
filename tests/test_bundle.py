"""Bundles: directories, manifests, extends chains and customer overlays with their merge rules."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
import yaml
from _foundation import foundation_registry
from click.testing import CliRunner
from regelwerk.bundle import Bundle, load_bundle, merge_patch, shipped_standard
from regelwerk.compiler import compile_bundle, validate_bundle
from regelwerk.diagnostics import Diagnostic
from regelwerk.registry import Registry
from regelwerk.source import load_text, locate, to_plain


@pytest.fixture(scope="module")
def registry() -> Registry:
    """Core plus the example Checklist plugin (see tests/_foundation.py)."""
    return foundation_registry()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # diagnostics name files relative to the working directory
    # the folders these tests create are bases by name (a bundle never extends a path)
    monkeypatch.setenv("REGELWERK_BASES", ":".join(f"{n}={tmp_path / n}" for n in ("a", "b", "base", "mid")))


def write(path: str, text: str) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dedent(text).lstrip("\n"), encoding="utf-8")
    return target


def checklist(name: str, *task_ids: str, extra: str = "") -> str:
    tasks = "".join(f"    - id: {t}\n      label: {t.title()}\n" for t in task_ids)
    return (f"apiVersion: regelwerk/v1\nkind: Checklist\nmetadata:\n  name: {name}\n{extra}"
            f"spec:\n  tasks:\n{tasks}")


def manifest(name: str, **spec: Any) -> str:
    return yaml.safe_dump({"apiVersion": "regelwerk/v1", "kind": "Bundle", "metadata": {"name": name},
                           "spec": spec}, sort_keys=False)


def where(d: Diagnostic) -> tuple[str, str, int, int, str]:
    return d.code, d.file, d.line, d.column, d.pointer


def task_ids(bundle: Bundle, name: str) -> list[str]:
    doc = bundle.find("Checklist", name)
    assert doc is not None
    return [t["id"] for t in doc.data["spec"]["tasks"]]


# --- directories and manifests ---------------------------------------------------------------


def test_a_directory_is_a_bundle_of_every_yaml_file_in_order() -> None:
    write("b/z.yaml", checklist("zeta", "a"))
    write("b/a.yml", checklist("alpha", "a"))
    write("b/sub/m.yaml", checklist("mid", "a"))
    write("b/.hidden/x.yaml", checklist("hidden", "a"))
    write("b/notes.txt", "not yaml")
    bundle = load_bundle("b")
    assert bundle.diagnostics == []
    assert [d.name for d in bundle.documents] == ["alpha", "zeta", "mid"]  # files, then subfolders
    assert bundle.name == "b" and bundle.chain == ("b",)
    assert bundle.documents[0].file == "b/a.yml"


def test_a_single_file_is_a_bundle() -> None:
    write("one.yaml", checklist("a", "x") + "---\n" + checklist("b", "y"))
    bundle = load_bundle("one.yaml")
    assert [d.name for d in bundle.documents] == ["a", "b"] and bundle.name == "one"


def test_scenarios_and_manifests_are_not_definitions() -> None:
    write("b/bundle.yaml", manifest("mijn-bundel"))
    write("b/c.yaml", checklist("c", "x"))
    write("b/c.scenario.yaml", "apiVersion: regelwerk/v1\nkind: Scenario\nmetadata: {name: s}\nspec: {steps: []}\n")
    bundle = load_bundle("b")
    assert [d.kind for d in bundle.documents] == ["Checklist"]
    assert bundle.name == "mijn-bundel"


def test_include_and_exclude_globs() -> None:
    write("b/bundle.yaml", manifest("b", include=["lists/*.yaml"], exclude=["lists/draft-*"]))
    write("b/lists/a.yaml", checklist("a", "x"))
    write("b/lists/draft-b.yaml", checklist("b", "x"))
    write("b/other.yaml", checklist("c", "x"))
    bundle = load_bundle("b")
    assert bundle.diagnostics == []
    assert [d.name for d in bundle.documents] == ["a"]


def test_missing_path() -> None:
    bundle = load_bundle("nowhere")
    assert [d.code for d in bundle.diagnostics] == ["RW009"]


def test_duplicate_documents_in_one_bundle() -> None:
    write("b/a.yaml", checklist("same", "x"))
    write("b/b.yaml", "# leading comment\n" + checklist("same", "y"))
    bundle = load_bundle("b")
    assert [where(d) for d in bundle.diagnostics] == [("RW200", "b/b.yaml", 5, 9, "/metadata/name")]
    assert "first at b/a.yaml:1" in bundle.diagnostics[0].message


def test_manifest_problems() -> None:
    write("b/bundle.yaml", "apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: b}\nspec:\n"
                           "  extend: standard\n  include: lists/*.yaml\n  extends: 5\n")
    bundle = load_bundle("b")
    assert [where(d) for d in bundle.diagnostics] == [
        ("RW104", "b/bundle.yaml", 5, 3, "/spec/extend"),
        ("RW102", "b/bundle.yaml", 6, 12, "/spec/include"),
        ("RW102", "b/bundle.yaml", 7, 12, "/spec/extends"),
    ]
    assert bundle.diagnostics[0].hint == "did you mean 'extends'?"


def test_manifest_must_hold_one_bundle_document() -> None:
    write("b/bundle.yaml", checklist("x", "a"))
    assert [where(d) for d in load_bundle("b").diagnostics] == [("RW202", "b/bundle.yaml", 1, 1, "")]


def test_manifest_spec_must_be_a_mapping() -> None:
    write("b/bundle.yaml", "apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: b}\nspec: [1]\n")
    assert [where(d) for d in load_bundle("b").diagnostics] == [("RW202", "b/bundle.yaml", 4, 7, "/spec")]


def test_extends_a_path_that_does_not_exist() -> None:
    write("b/bundle.yaml", manifest("b", extends="basis"))
    bundle = load_bundle("b")
    assert [where(d) for d in bundle.diagnostics] == [("RW202", "b/bundle.yaml", 6, 12, "/spec/extends")]
    assert "not a known base" in bundle.diagnostics[0].message


def test_extends_cycle_is_reported_not_followed_forever() -> None:
    write("a/bundle.yaml", manifest("a", extends="b"))
    write("b/bundle.yaml", manifest("b", extends="a"))
    write("a/x.yaml", checklist("x", "t"))
    bundle = load_bundle("a")
    assert [d.code for d in bundle.diagnostics] == ["RW203"]
    assert "cycle" in bundle.diagnostics[0].message


def test_a_bundle_extending_itself() -> None:
    write("a/bundle.yaml", manifest("a", extends="a"))
    assert [d.code for d in load_bundle("a").diagnostics] == ["RW203"]


def test_extends_standard_uses_the_shipped_bundle() -> None:
    assert shipped_standard().is_dir()
    write("c/bundle.yaml", manifest("klant", extends="standard"))
    bundle = load_bundle("c")
    assert bundle.chain[-1] == "klant" and len(bundle.chain) == 2
    assert not [d for d in bundle.diagnostics if d.code in {"RW202", "RW203", "RW009"}]


# --- overlays ----------------------------------------------------------------------------------


def base_and_overlay(overlay: str) -> Bundle:
    write("base/lists.yaml", checklist("onboarding", "contract", "laptop", "intro",
                                       extra="  description: basis\n  labels: {team: hr}\n")
          + "---\n" + checklist("offboarding", "exit"))
    write("klant/bundle.yaml", manifest("klant", extends="base"))
    write("klant/overlay.yaml", overlay)
    return load_bundle("klant")


def test_overlay_adds_a_document() -> None:
    bundle = base_and_overlay(checklist("verlof", "aanvraag"))
    assert bundle.diagnostics == []
    assert [d.name for d in bundle.documents] == ["onboarding", "offboarding", "verlof"]
    assert bundle.overlay_changes == {("Checklist", "verlof"): "added"}
    assert bundle.chain == ("base", "klant")


def test_adding_an_existing_name_without_merge_is_an_error() -> None:
    bundle = base_and_overlay(checklist("onboarding", "x"))
    assert [where(d) for d in bundle.diagnostics] == [("RW200", "klant/overlay.yaml", 4, 9, "/metadata/name")]
    assert "base/lists.yaml:1" in bundle.diagnostics[0].message
    assert "replace" in bundle.diagnostics[0].hint


def test_overlay_replaces_a_document_whole() -> None:
    bundle = base_and_overlay(checklist("onboarding", "alleen", extra="  merge: replace\n"))
    assert bundle.diagnostics == []
    assert task_ids(bundle, "onboarding") == ["alleen"]
    doc = bundle.find("Checklist", "onboarding")
    assert doc is not None
    assert "merge" not in doc.data["metadata"] and "description" not in doc.data["metadata"]
    assert doc.file == "klant/overlay.yaml"
    assert bundle.overlay_changes == {("Checklist", "onboarding"): "replaced"}


def test_overlay_removes_a_document() -> None:
    bundle = base_and_overlay("apiVersion: regelwerk/v1\nkind: Checklist\nmetadata: {name: offboarding, "
                              "merge: remove}\n")
    assert bundle.diagnostics == []
    assert [d.name for d in bundle.documents] == ["onboarding"]
    assert bundle.overlay_changes == {("Checklist", "offboarding"): "removed"}


def test_merge_on_a_document_the_base_lacks() -> None:
    bundle = base_and_overlay("apiVersion: regelwerk/v1\nkind: Checklist\nmetadata:\n  name: nieuw\n"
                              "  merge: patch\nspec: {tasks: [{id: a}]}\n")
    assert [where(d) for d in bundle.diagnostics] == [("RW201", "klant/overlay.yaml", 5, 10, "/metadata/merge")]


def test_the_same_document_twice_in_an_overlay() -> None:
    doc = "apiVersion: regelwerk/v1\nkind: Checklist\nmetadata: {name: offboarding, merge: remove}\n"
    bundle = base_and_overlay(doc + "---\n" + doc)
    assert [where(d) for d in bundle.diagnostics] == [("RW200", "klant/overlay.yaml", 7, 18, "/metadata/name")]


PATCH = """\
apiVersion: regelwerk/v1
kind: Checklist
metadata:
  name: onboarding
  merge: patch
  labels: {regio: noord}
spec:
  tasks:
    - id: laptop
      label: Laptop (klant)
      depends_on: [contract]
    - id: intro
      $remove: true
    - id: badge
      label: Toegangspas
      depends_on: [laptop]
"""


def test_patch_merges_id_keyed_lists() -> None:
    bundle = base_and_overlay(PATCH)
    assert bundle.diagnostics == []
    assert task_ids(bundle, "onboarding") == ["contract", "laptop", "badge"]
    doc = bundle.find("Checklist", "onboarding")
    assert doc is not None
    tasks = doc.data["spec"]["tasks"]
    assert tasks[1] == {"id": "laptop", "label": "Laptop (klant)", "depends_on": ["contract"]}
    assert tasks[0] == {"id": "contract", "label": "Contract"}
    assert bundle.overlay_changes == {("Checklist", "onboarding"): "patched"}
    assert doc.origin == ("klant/overlay.yaml",)


def test_patch_keeps_base_metadata_and_merges_labels() -> None:
    doc = base_and_overlay(PATCH).find("Checklist", "onboarding")
    assert doc is not None
    assert to_plain(doc.data["metadata"]) == {"name": "onboarding", "description": "basis",
                                              "labels": {"team": "hr", "regio": "noord"}}


def test_patched_values_point_at_the_file_that_supplied_them() -> None:
    doc = base_and_overlay(PATCH).find("Checklist", "onboarding")
    assert doc is not None
    data = doc.data
    contract = locate(data, "/spec/tasks/0/label")
    assert (contract.file, contract.line) == ("base/lists.yaml", 10)
    laptop = locate(data, "/spec/tasks/1/label")
    assert (laptop.file, laptop.line, laptop.column) == ("klant/overlay.yaml", 10, 14)
    badge = locate(data, "/spec/tasks/2/depends_on/0")
    assert (badge.file, badge.line) == ("klant/overlay.yaml", 16)
    description = locate(data, "/metadata/description")
    assert (description.file, description.line) == ("base/lists.yaml", 5)
    regio = locate(data, "/metadata/labels/regio")
    assert regio.file == "klant/overlay.yaml"


def test_rfc7396_null_removes_a_key() -> None:
    bundle = base_and_overlay("apiVersion: regelwerk/v1\nkind: Checklist\nmetadata:\n  name: onboarding\n"
                              "  merge: patch\n  description: null\nspec:\n  tasks:\n"
                              "    - {id: contract, label: null}\n")
    assert bundle.diagnostics == []
    doc = bundle.find("Checklist", "onboarding")
    assert doc is not None
    assert "description" not in doc.data["metadata"]
    assert doc.data["spec"]["tasks"][0] == {"id": "contract"}


def test_removing_an_id_the_base_lacks() -> None:
    bundle = base_and_overlay("apiVersion: regelwerk/v1\nkind: Checklist\nmetadata:\n  name: onboarding\n"
                              "  merge: patch\nspec:\n  tasks:\n    - id: nope\n      $remove: true\n")
    assert [where(d) for d in bundle.diagnostics] == [("RW204", "klant/overlay.yaml", 8, 7, "/spec/tasks/0")]


def test_patch_item_without_id() -> None:
    bundle = base_and_overlay("apiVersion: regelwerk/v1\nkind: Checklist\nmetadata:\n  name: onboarding\n"
                              "  merge: patch\nspec:\n  tasks:\n    - label: zonder id\n")
    assert [where(d) for d in bundle.diagnostics] == [("RW204", "klant/overlay.yaml", 8, 7, "/spec/tasks/0")]


def test_overlay_of_an_overlay() -> None:
    write("base/a.yaml", checklist("lijst", "a", "b"))
    write("mid/bundle.yaml", manifest("mid", extends="base"))
    write("mid/p.yaml", "apiVersion: regelwerk/v1\nkind: Checklist\nmetadata: {name: lijst, merge: patch}\n"
                        "spec:\n  tasks:\n    - {id: c}\n")
    write("top/bundle.yaml", manifest("top", extends="mid"))
    write("top/p.yaml", "apiVersion: regelwerk/v1\nkind: Checklist\nmetadata: {name: lijst, merge: patch}\n"
                        "spec:\n  tasks:\n    - {id: a, $remove: true}\n")
    bundle = load_bundle("top")
    assert bundle.diagnostics == [] and bundle.chain == ("base", "mid", "top")
    assert task_ids(bundle, "lijst") == ["b", "c"]


# --- merge_patch as a pure function ---------------------------------------------------------------


def data(text: str, file: str) -> Any:
    docs, problems = load_text(text, file)
    assert problems == []
    return docs[0].data


@pytest.mark.parametrize(("base", "patch", "expected"), [
    ("a: 1\nb: 2\n", "b: 3\n", {"a": 1, "b": 3}),
    ("a: 1\nb: 2\n", "b: null\n", {"a": 1}),
    ("a: {x: 1, y: 2}\n", "a: {y: null, z: 3}\n", {"a": {"x": 1, "z": 3}}),
    ("a: 1\n", "a: {b: null, c: 1}\n", {"a": {"c": 1}}),
    ("a: 1\n", "n: {x: {y: null, z: 1}}\n", {"a": 1, "n": {"x": {"z": 1}}}),
    ("a: [1, 2]\n", "a: [3]\n", {"a": [3]}),
    ("a: {x: 1}\n", "a: [1]\n", {"a": [1]}),
    ("l: [{id: a, v: 1}, {id: b}]\n", "l: [{id: a, v: 2}, {id: c}]\n",
     {"l": [{"id": "a", "v": 2}, {"id": "b"}, {"id": "c"}]}),
    ("l: [{id: a, v: 1}]\n", "l: [{id: a, v: null}]\n", {"l": [{"id": "a"}]}),
    ("l: [{id: a}, {id: b}]\n", "l: [{id: a, $remove: true}]\n", {"l": [{"id": "b"}]}),
    ("l: [{id: a}]\n", "l: [{id: a, $remove: false, v: 1}]\n", {"l": [{"id": "a", "v": 1}]}),
    ("l: [{id: a}]\n", "l: [{id: b, x: null}]\n", {"l": [{"id": "a"}, {"id": "b"}]}),
])
def test_merge_rules(base: str, patch: str, expected: Any) -> None:
    b, p = data(base, "base.yaml"), data(patch, "patch.yaml")
    before_b, before_p = to_plain(b), to_plain(p)
    merged, problems = merge_patch(b, p, "")
    assert problems == []
    assert to_plain(merged) == expected
    assert (to_plain(b), to_plain(p)) == (before_b, before_p)  # never mutates either side


def test_merge_keeps_base_key_order() -> None:
    merged, _ = merge_patch(data("a: 1\nb: 2\nc: 3\n", "b.yaml"), data("d: 4\nb: 9\n", "p.yaml"), "")
    assert list(merged) == ["a", "b", "c", "d"]


# --- validation of the merged result --------------------------------------------------------------


def test_diagnostics_point_at_the_overlay_when_it_caused_them(registry: Any) -> None:
    bundle = base_and_overlay("apiVersion: regelwerk/v1\nkind: Checklist\nmetadata:\n  name: onboarding\n"
                              "  merge: patch\nspec:\n  tasks:\n    - id: laptop\n      depends_on: [contrakt]\n"
                              "    - id: extra\n      lable: x\n")
    problems = validate_bundle(bundle, registry)
    assert [where(d) for d in problems] == [("RW104", "klant/overlay.yaml", 11, 7, "/spec/tasks/3/lable")]
    bundle = base_and_overlay("apiVersion: regelwerk/v1\nkind: Checklist\nmetadata:\n  name: onboarding\n"
                              "  merge: patch\nspec:\n  tasks:\n    - id: laptop\n      depends_on: [contrakt]\n")
    problems = validate_bundle(bundle, registry)
    assert [where(d) for d in problems] == [("RW301", "klant/overlay.yaml", 9, 20, "/spec/tasks/1/depends_on/0")]
    assert problems[0].hint == "did you mean 'contract'?"


def test_diagnostics_point_at_the_base_when_it_caused_them(registry: Any) -> None:
    write("base/a.yaml", checklist("lijst", "a") + "      depends_on: [ontbreekt]\n")
    write("klant/bundle.yaml", manifest("klant", extends="base"))
    write("klant/o.yaml", "apiVersion: regelwerk/v1\nkind: Checklist\nmetadata: {name: lijst, merge: patch}\n"
                          "spec:\n  tasks:\n    - {id: b}\n")
    problems = validate_bundle(load_bundle("klant"), registry)
    assert [where(d) for d in problems] == [("RW301", "base/a.yaml", 9, 20, "/spec/tasks/0/depends_on/0")]


def test_a_clean_overlay_compiles(registry: Any) -> None:
    compiled = compile_bundle(base_and_overlay(PATCH), registry)
    lijst = compiled.get("Checklist", "onboarding")
    assert [t.id for t in lijst.tasks] == ["contract", "laptop", "badge"]
    assert compiled.chain == ("base", "klant")
    assert compiled.overlay_changes == {("Checklist", "onboarding"): "patched"}


# --- regelwerk show --effective ------------------------------------------------------------------


def test_show_effective_prints_the_merged_bundle() -> None:
    from regelwerk.cli import cli

    base_and_overlay(PATCH)
    result = CliRunner().invoke(cli, ["show", "--effective", "klant"])
    assert result.exit_code == 0, result.output
    header, _, body = result.output.partition("\n")
    assert header == "# effective bundle klant: base -> klant"
    docs = list(yaml.safe_load_all(body))
    assert [d["metadata"]["name"] for d in docs] == ["onboarding", "offboarding"]
    assert [t["id"] for t in docs[0]["spec"]["tasks"]] == ["contract", "laptop", "badge"]
    assert "merge" not in docs[0]["metadata"]
    only = CliRunner().invoke(cli, ["show", "--effective", "--kind", "Nope", "klant"])
    assert only.exit_code == 0 and only.output.strip() == "# effective bundle klant: base -> klant"


def test_show_refuses_a_bundle_that_does_not_load() -> None:
    from regelwerk.cli import cli

    write("b/x.yaml", "a: 1\na: 2\n")
    result = CliRunner().invoke(cli, ["show", "--effective", "b"])
    assert result.exit_code == 1
    assert "b/x.yaml:2:1: error RW002" in result.output


# --- safe loading: only regular files inside the bundle and its named bases -----------------------


@pytest.mark.parametrize("target", ["/", "..", "../base", "/etc", "sub/dir", "."])
def test_extends_never_takes_a_path(target: str) -> None:
    write("base/x.yaml", checklist("x", "t"))
    write("klant/bundle.yaml", manifest("klant", extends=target))
    bundle = load_bundle("klant")
    assert [where(d) for d in bundle.diagnostics] == [("RW205", "klant/bundle.yaml", 6, 12, "/spec/extends")]
    assert bundle.documents == []


def test_named_bases_passed_by_the_caller(tmp_path: Path) -> None:
    write("elsewhere/corporate/x.yaml", checklist("x", "t"))
    write("klant/bundle.yaml", manifest("klant", extends="corporate"))
    bundle = load_bundle("klant", bases={"corporate": tmp_path / "elsewhere" / "corporate"})
    assert bundle.diagnostics == [] and [d.name for d in bundle.documents] == ["x"]


def test_a_linked_file_from_outside_is_refused_with_a_word(tmp_path: Path) -> None:
    write("outside/secret.yaml", checklist("secret", "t"))
    write("klant/own.yaml", checklist("own", "t"))
    write("klant/inner/real.yaml", checklist("inner", "t"))
    Path("klant/stolen.yaml").symlink_to(tmp_path / "outside" / "secret.yaml")
    Path("klant/alias.yaml").symlink_to(tmp_path / "klant" / "own.yaml")  # inside: fine
    Path("klant/linked-dir").symlink_to(tmp_path / "outside")
    Path("klant/inner-link").symlink_to(tmp_path / "klant" / "inner")  # inside: not followed, read at its place
    bundle = load_bundle("klant")
    assert sorted(d.name for d in bundle.documents if d.name != "own") == ["inner"]
    assert sorted((d.code, d.file) for d in bundle.diagnostics if d.code != "RW200") == [
        ("RW012", "klant/linked-dir"), ("RW012", "klant/stolen.yaml")]
    assert all("outside the bundle" in d.message for d in bundle.diagnostics if d.code == "RW012")


def test_a_fifo_named_yaml_is_refused_not_waited_on() -> None:
    import os
    import threading

    write("klant/own.yaml", checklist("own", "t"))
    os.mkfifo("klant/pipe.yaml")
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(load_bundle("klant")), daemon=True)
    worker.start()
    worker.join(5)
    assert result, "loading blocked on a FIFO"
    assert [(d.code, d.file) for d in result[0].diagnostics] == [("RW012", "klant/pipe.yaml")]
    direct: list[Any] = []
    worker = threading.Thread(target=lambda: direct.append(load_bundle("klant/pipe.yaml")), daemon=True)
    worker.start()
    worker.join(5)
    assert direct and [d.code for d in direct[0].diagnostics] == ["RW012"]


def test_a_linked_manifest_from_outside_is_refused(tmp_path: Path) -> None:
    write("outside/bundle.yaml", manifest("evil", extends="standard"))
    Path("klant").mkdir()
    Path("klant/bundle.yaml").symlink_to(tmp_path / "outside" / "bundle.yaml")
    assert [d.code for d in load_bundle("klant").diagnostics] == ["RW012"]


def test_the_cli_takes_named_bases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: Registry) -> None:
    import regelwerk.cli
    from regelwerk.cli import cli

    monkeypatch.setattr(regelwerk.cli, "registry", lambda: registry)
    monkeypatch.delenv("REGELWERK_BASES")
    write("corp/x.yaml", checklist("x", "t"))
    write("klant/bundle.yaml", manifest("klant", extends="corp"))
    write("klant/y.yaml", checklist("y", "t"))
    without = CliRunner().invoke(cli, ["validate", "klant"])
    assert without.exit_code == 1 and "RW202" in without.output
    bad = CliRunner().invoke(cli, ["--base", "corp", "validate", "klant"])
    assert bad.exit_code == 2
    ok = CliRunner().invoke(cli, ["--base", f"corp={tmp_path / 'corp'}", "validate", "klant"])
    assert ok.exit_code == 0, ok.output


def test_data_files_have_their_own_larger_limit() -> None:
    from regelwerk.source import DATA_LIMITS, DEFAULT_LIMITS, read_source

    big = "people:\n" + "".join(f"  - {{id: e{i}, name: Medewerker {i}}}\n" for i in range(80_000))
    Path("story.yaml").write_text(big, encoding="utf-8")
    assert len(big) > DEFAULT_LIMITS.max_file_bytes
    text, problems = read_source("story.yaml", "story.yaml")
    assert text is None and [p.code for p in problems] == ["RW005"]
    text, problems = read_source("story.yaml", "story.yaml", DATA_LIMITS)
    assert problems == [] and text == big
