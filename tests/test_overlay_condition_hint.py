"""A customer overlay that patches a condition merges it key by key into the base's: the overlay's ``all`` beside the
base's ``field`` is RW400, reported where the base wrote the condition (Zorggroep Meander's retake guard). The hint
now names both files and the fix (null the base's keys in the overlay); before it said "wrap several checks in
'all:'", which the consultant had done."""

from __future__ import annotations

from pathlib import Path

from regelwerk.bundle import load_bundle
from regelwerk.compiler import validate_bundle
from regelwerk.registry import Registry

PATCH = """\
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: elearning_assignment, merge: patch}
spec:
  transitions:
    - id: retake
      guard:
        all:
          - {field: actor.id, eq: {field: data.subject}}
          - {field: data.score, lt: 2}
"""


def _customer(tmp_path: Path, patch: str) -> Path:
    root = tmp_path / "klant"
    root.mkdir()
    (root / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: klant}\n"
                                      "spec: {extends: standard}\n", encoding="utf-8")
    (root / "patch.yaml").write_text(patch, encoding="utf-8")
    return root


def test_a_merged_condition_names_both_files_and_the_fix(tmp_path: Path, registry: Registry) -> None:
    found = [d for d in validate_bundle(load_bundle(_customer(tmp_path, PATCH)), registry) if d.code == "RW400"]
    assert len(found) == 1
    assert found[0].file.endswith("lms/elearning.yaml") and found[0].pointer.endswith("/guard")
    assert "a patch merged two conditions key by key (all at " in found[0].hint
    assert "patch.yaml:8, field at " in found[0].hint and "set its keys to null" in found[0].hint


def test_nulling_the_base_keys_replaces_the_condition(tmp_path: Path, registry: Registry) -> None:
    fixed = PATCH.replace("      guard:\n", "      guard:\n        field: null\n        eq: null\n")
    assert [d.code for d in validate_bundle(load_bundle(_customer(tmp_path, fixed)), registry)] == []
