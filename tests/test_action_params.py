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


TEMPLATE_X = """\
---
apiVersion: regelwerk/v1
kind: MailContext
metadata: {name: w_mail}
spec:
  fields:
    - {path: data.email, label: E-mail}
---
apiVersion: regelwerk/v1
kind: Template
metadata: {name: x}
spec:
  label: X
  context: w_mail
  purpose: x
  language: nl
  subject: Hallo
  body: Voor {{ data.email }}
"""


def test_fitting_parameters_pass(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    fixed = WORKFLOW.replace("with: {to: data.email}", "with: {template: x, to: data.email}")
    (tmp_path / "w.yaml").write_text(fixed + TEMPLATE_X, encoding="utf-8")
    compiled = compile_bundle(load_bundle(tmp_path), registry)
    assert compiled.get("Workflow", "w").states[0].on_enter[0].params == {"template": "x", "to": "data.email"}


def test_a_parameter_naming_a_missing_document_is_reported(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    """send_template's template, decisions.decide's table and workflow.schedule's named schedule name documents:
    one the bundle does not have is RW302 at the parameter (before, the typo was valid and failed at run time)."""
    wrong = (WORKFLOW.replace("with: {to: data.email}", "with: {template: y, to: data.email}")
             .replace("    - {id: b, final: true}\n",
                      "    - id: b\n      final: true\n      on_enter:\n"
                      "        - {action: decisions.decide, with: {table: nothing}}\n"
                      "        - {action: workflow.schedule, with: {event: go, schedule: weekly}}\n"))
    (tmp_path / "w.yaml").write_text(wrong + TEMPLATE_X, encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        compile_bundle(load_bundle(tmp_path), registry)
    found = [(d.line, d.pointer, d.hint) for d in caught.value.diagnostics if d.code == "RW302"]
    assert found == [(9, "/spec/states/0/on_enter/0/with/template", "known: x"),
                     (13, "/spec/states/1/on_enter/0/with/table", "the bundle has no DecisionTable"),
                     (14, "/spec/states/1/on_enter/1/with/schedule", "the bundle has no Schedule")]
