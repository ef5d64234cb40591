"""State groups: declared with labels, checked, kept in stored versions, rendered as clusters."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.diagnostics import DefinitionError
from regelwerk.workflows.model import workflow_from_dict, workflow_to_dict
from regelwerk.workflows.render import render

WORKFLOW = """\
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: intake}
spec:
  groups:
    - {id: new, label: Nieuw}
    - {id: done, label: Afgerond}
  states:
    - {id: received, label: Ontvangen, group: new, initial: true}
    - {id: accepted, label: Aangenomen, group: done, final: true}
    - {id: declined, label: Afgewezen, group: {group}, final: true}
  transitions:
    - {id: accept, from: received, to: accepted}
    - {id: decline, from: received, to: declined}
"""


def _compile(tmp_path: Path, registry, group: str):  # type: ignore[no-untyped-def]
    (tmp_path / "wf.yaml").write_text(textwrap.dedent(WORKFLOW).replace("{group}", group), encoding="utf-8")
    return compile_bundle(load_bundle(tmp_path), registry).get("Workflow", "intake")


def test_groups_render_as_clusters_in_order(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    model = _compile(tmp_path, registry, "done")
    assert model.groups == (("new", "Nieuw"), ("done", "Afgerond"))
    dot = render(model, "dot")
    assert dot.index('label="Nieuw"') < dot.index('label="Afgerond"')
    assert dot.count("subgraph cluster_") == 2
    mermaid = render(model, "mermaid")
    assert 'state "Afgerond" as group_done {' in mermaid
    assert workflow_from_dict(workflow_to_dict(model), registry.function_table()).groups == model.groups


def test_unknown_group_is_reported_at_its_line(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DefinitionError) as caught:
        _compile(tmp_path, registry, "dnoe")
    [diag] = [d for d in caught.value.diagnostics if d.is_error]
    assert (diag.code, diag.line, diag.pointer) == ("RW301", 11, "/spec/states/2/group")
    assert "did you mean 'done'" in diag.hint


def test_recruitment_workflow_is_grouped_by_status_group(registry) -> None:  # type: ignore[no-untyped-def]
    root = Path(__file__).resolve().parent.parent
    compiled = compile_bundle(load_bundle(root / "definitions" / "standard"), registry)
    dot = render(compiled.get("Workflow", "recruitment.standard"), "dot")
    labels = [line.split('"')[1] for line in dot.splitlines() if line.strip().startswith('label="')]
    assert labels[:3] == ["Nieuw", "In behandeling", "Interview"]
