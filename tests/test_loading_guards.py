"""What a bundle, its data files and its scenarios may make regelwerk read or build (found by attacking the loader).

Data files under ``data/`` follow the bundle's rule (regular files inside its root: a FIFO never blocks, a link
out is never read); a number or a duration no runtime can hold is a diagnostic, not a crash; an impossible date
in a PermissionMatrix is a diagnostic; registries never share mutable schemas; a scenario file linked in from
elsewhere is not picked up.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from datetime import date
from pathlib import Path

import pytest
from regelwerk.diagnostics import DefinitionError
from regelwerk.registry import load_registry
from regelwerk.simulation import simulate
from regelwerk.source import load_text

FIXTURE = Path(__file__).parent / "fixtures" / "simulation"


@pytest.mark.parametrize("make", ["fifo", "link-out", "link-device"])
def test_a_data_file_that_is_no_regular_file_inside_the_bundle_is_refused_unread(tmp_path: Path, make: str) -> None:
    folder = tmp_path / "customer"
    shutil.copytree(FIXTURE, folder)
    target = folder / "data" / "relations.csv"
    target.unlink()
    secret = tmp_path / "secret.csv"
    secret.write_text("kind,subject,object\nreports_to,e1,TOPSECRET\n", encoding="utf-8")
    if make == "fifo":
        os.mkfifo(target)  # reading it would block forever
    elif make == "link-out":
        target.symlink_to(secret)
    else:
        target.symlink_to("/dev/zero")
    with pytest.raises(DefinitionError) as caught:
        simulate(folder, date(2026, 1, 1), date(2026, 1, 3), store=f"sqlite:///{tmp_path / 's.sqlite'}")
    [problem] = caught.value.diagnostics
    assert problem.code == "RW012" and problem.file.endswith("relations.csv")
    assert "TOPSECRET" not in str(caught.value)


def test_a_number_too_long_to_convert_is_a_diagnostic() -> None:
    docs, problems = load_text(f"apiVersion: regelwerk/v1\nkind: X\nvalue: {'9' * 5000}\nquoted: '{'9' * 5000}'\n",
                               "big.yaml")
    assert [(p.code, p.line, p.column) for p in problems] == [("RW013", 3, 8)]
    assert docs[0].data["quoted"] == "9" * 5000


def _bundle(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: b}\n",
                                        encoding="utf-8")
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


def _problems(folder: Path) -> list[tuple[str, str]]:
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle

    try:
        compile_bundle(load_bundle(folder), load_registry())
    except DefinitionError as exc:
        return [(d.code, d.pointer) for d in exc.diagnostics if d.is_error]
    return []


@pytest.mark.parametrize("duration", ["P9999999999999D", "P8000Y", "PT99999999999H"])
def test_a_duration_no_date_can_take_is_refused_by_the_compiler(tmp_path: Path, duration: str) -> None:
    folder = _bundle(tmp_path, {"w.yaml": f"""
        apiVersion: regelwerk/v1
        kind: Workflow
        metadata: {{name: w}}
        spec:
          states:
            - id: open
              initial: true
              after:
                - {{duration: {duration}, event: close}}
            - {{id: closed, final: true}}
          transitions:
            - {{id: close, from: open, to: closed}}
    """})
    assert ("RW402", "/spec/states/0/after/0") in _problems(folder)


def test_an_impossible_date_of_a_user_right_is_a_diagnostic(tmp_path: Path) -> None:
    folder = _bundle(tmp_path, {"p.yaml": """
        apiVersion: regelwerk/v1
        kind: PermissionMatrix
        metadata: {name: p}
        spec:
          roles: [{id: hr}]
          resources: [{id: doc, actions: [read]}]
          rights: [{id: lezen, grants: [{id: g1, resource: doc, actions: [read], roles: [hr]}]}]
          user_rights: [{user: anna, right: lezen, valid_from: "2027-02-30"}]
    """})
    assert ("RW708", "/spec/user_rights/0/valid_from") in _problems(folder)


def test_registries_share_no_mutable_schema() -> None:
    first, second = load_registry(), load_registry()
    first.kinds["Workflow"].schema["properties"]["spec"]["additionalProperties"] = True
    assert second.kinds["Workflow"].schema["properties"]["spec"].get("additionalProperties") is not True
    assert load_registry().kinds["Workflow"].schema["properties"]["spec"].get("additionalProperties") is not True
    for name, step in first.steps.items():
        assert step.schema is not second.steps[name].schema or not step.schema
    for key, place in first.places.items():
        assert place.scope is not second.places[key].scope or not place.scope


def test_a_scenario_file_linked_in_from_elsewhere_is_not_run(tmp_path: Path) -> None:
    from regelwerk.scenarios import find_scenario_files

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    text = "apiVersion: regelwerk/v1\nkind: Scenario\nmetadata: {name: s}\nspec: {steps: [{advance_clock: P1D}]}\n"
    (outside / "x.scenario.yaml").write_text(text, encoding="utf-8")
    tested = tmp_path / "tested"
    (tested / "sub").mkdir(parents=True)
    (tested / "linked.scenario.yaml").symlink_to(outside / "x.scenario.yaml")
    (tested / "sub" / "own.scenario.yaml").write_text(text, encoding="utf-8")
    (tested / "inner.scenario.yaml").symlink_to(tested / "sub" / "own.scenario.yaml")  # a link inside: fine
    assert [p.name for p in find_scenario_files([tested])] == ["inner.scenario.yaml", "own.scenario.yaml"]
