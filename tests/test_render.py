"""``render workflow --format dot|mermaid``: every shipped workflow through Graphviz and Mermaid's own parser.

Graphviz is Debian's ``dot``; Mermaid's parser is the ``mermaid`` npm package (tests/js, with jsdom for the
DOMPurify it loads; no browser). Both skip without the tool, and fail under CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.workflows.render import to_dot, to_mermaid

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "tests" / "js"
BUNDLES = [ROOT / "definitions" / "standard", *sorted(p.parent for p in (ROOT / "examples").glob("*/bundle.yaml"))]


def _need(tool: str, reason: str) -> None:
    if shutil.which(tool) is None or (tool == "node" and not (JS / "node_modules" / "mermaid").is_dir()):
        if os.environ.get("CI"):
            pytest.fail(reason + " -- must not skip in CI")
        pytest.skip(reason)


def _workflows(registry: Any) -> dict[str, Any]:
    out = {}
    for bundle in BUNDLES:
        for name, wf in compile_bundle(load_bundle(bundle), registry).of_kind("Workflow").items():
            out[f"{bundle.name}/{name}"] = wf
    return out


def _mermaid_parse(files: list[Path]) -> list[dict[str, Any]]:
    proc = subprocess.run(["node", str(JS / "mermaid_parse.mjs"), *map(str, files)], capture_output=True,
                          text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result: list[dict[str, Any]] = json.loads(proc.stdout)
    return result


NASTY = """\
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: nasty}
spec:
  label: "Lastig: \\"quotes\\" % {x}"
  states:
    - {id: a, label: "Stap 1: indienen\\n    a --> b: ingevoegd", group: "Groep; één", initial: true}
    - {id: b, label: "Klaar\\\\n\\"}", group: "Groep; één"}
    - {id: c, label: "<b>vet</b> | #1", final: true}
  transitions:
    - {id: go, label: "Verder\\n    c --> a: nep", from: a, to: b}
    - {id: end, label: "Af -- > [klaar]", from: b, to: c}
"""


def test_every_shipped_workflow_renders_through_graphviz(registry: Any, tmp_path: Path) -> None:
    _need("dot", "Graphviz is not installed (apt-get install graphviz)")
    workflows = _workflows(registry)
    assert len(workflows) >= 20
    for key, wf in workflows.items():
        proc = subprocess.run(["dot", "-Tjson"], input=to_dot(wf), capture_output=True, text=True, check=False)
        assert proc.returncode == 0 and not proc.stderr.strip(), (key, proc.stderr)
        graph = json.loads(proc.stdout)
        clusters = [o for o in graph.get("objects", []) if str(o.get("name", "")).startswith("cluster_")]
        groups = {s.group for s in wf.states if s.group}
        assert len(clusters) == len(groups), key  # each group once, not once per state
        edges = sum(len(t.sources) for t in wf.transitions) + 1  # + the start arrow
        assert len(graph.get("edges", [])) == edges, key


def test_every_shipped_workflow_parses_in_mermaid(registry: Any, tmp_path: Path) -> None:
    _need("node", "node or tests/js/node_modules missing (npm ci --prefix tests/js)")
    files = []
    for key, wf in _workflows(registry).items():
        text = to_mermaid(wf)
        groups = {s.group for s in wf.states if s.group}
        assert sum(1 for line in text.splitlines() if line.lstrip().startswith("state ")) == len(groups), key
        path = tmp_path / (key.replace("/", "__") + ".mmd")
        path.write_text(text, encoding="utf-8")
        files.append(path)
    failures = [r for r in _mermaid_parse(files) if not r["ok"]]
    assert failures == []


def test_labels_cannot_inject_statements(registry: Any, tmp_path: Path) -> None:
    _need("dot", "Graphviz is not installed (apt-get install graphviz)")
    _need("node", "node or tests/js/node_modules missing (npm ci --prefix tests/js)")
    (tmp_path / "nasty.yaml").write_text(NASTY, encoding="utf-8")
    wf = compile_bundle(load_bundle(tmp_path / "nasty.yaml"), registry).get("Workflow", "nasty")
    mermaid = to_mermaid(wf)
    arrows = [line for line in mermaid.splitlines() if "-->" in line]
    assert len(arrows) == 4, mermaid  # [*] --> a, a --> b, b --> c, c --> [*]: nothing injected
    assert sum(1 for line in mermaid.splitlines() if line.lstrip().startswith("state ")) == 1
    path = tmp_path / "nasty.mmd"
    path.write_text(mermaid, encoding="utf-8")
    assert _mermaid_parse([path]) == [{"file": str(path), "ok": True, "error": ""}]
    proc = subprocess.run(["dot", "-Tjson"], input=to_dot(wf), capture_output=True, text=True, check=True)
    graph = json.loads(proc.stdout)
    assert len(graph["edges"]) == 3
    labels = {o["name"]: o.get("label", "") for o in graph["objects"] if "label" in o}
    assert labels["a"].startswith("Stap 1: indienen")
    assert labels["a"] == "Stap 1: indienen\\n    a --> b: ingevoegd"  # the newline is dot's line break escape
    assert labels["b"] == 'Klaar\\\\n"}'  # the label's own backslash is escaped: it stays text
