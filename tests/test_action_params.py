"""Every action's ``with:`` parameters are checked at compile time against the action's schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.diagnostics import DefinitionError

WORKFLOW = """\
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: w}
spec:
  states:
    - id: a
      initial: true
      on_enter:
        - {action: send_template, with: {to: data.email}}
    - {id: b, final: true}
  transitions:
    - {id: go, from: a, to: b}
"""


def test_missing_action_parameter_is_reported_at_the_with(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "w.yaml").write_text(WORKFLOW, encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        compile_bundle(load_bundle(tmp_path), registry)
    [diag] = [d for d in caught.value.diagnostics if d.code == "RW305"]
    assert (diag.line, diag.pointer) == (9, "/spec/states/0/on_enter/0/with")
    assert "'template' is a required property" in diag.message


def test_fitting_parameters_pass(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    fixed = WORKFLOW.replace("with: {to: data.email}", "with: {template: x, to: data.email}")
    (tmp_path / "w.yaml").write_text(fixed, encoding="utf-8")
    compiled = compile_bundle(load_bundle(tmp_path), registry)
    assert compiled.get("Workflow", "w").states[0].on_enter[0].params == {"template": "x", "to": "data.email"}
