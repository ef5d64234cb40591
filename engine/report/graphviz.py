"""Workflow diagrams laid out by Graphviz (``dot``, top to bottom) for workflows too wide for the page.

The hand-written layout (``svg.py``) puts each state group in a column: a workflow with many groups grows wider
than the page, and a diagram scaled to fit has text too small to read. Graphviz is a real layout engine: ranked
top to bottom, such a workflow fits the page width at its natural size. Used when ``dot`` is installed (Debian:
``graphviz``); without it the report keeps the hand-written layout. The output is deterministic for one Graphviz
version, and post-processed into the same shape as the hand-written SVG (``svg.workflow-diagram`` with a
``g.state`` per state, ids prefixed so several diagrams share a page).
"""

from __future__ import annotations

import re
import shutil
import subprocess

from regelwerk.report._text import esc
from regelwerk.report.svg import edge_label, is_wildcard
from regelwerk.workflows.model import Workflow

__all__ = ["graphviz_available", "graphviz_svg", "report_dot"]

#: Graphviz measures labels with its own metrics for Helvetica; browsers draw Helvetica with a metric-compatible
#: font (Liberation Sans, Arial), so the boxes Graphviz reserves fit the text the reader sees.
FONT = "Helvetica"
_TIMEOUT = 30


def graphviz_available() -> bool:
    """True when Graphviz's ``dot`` is on the PATH."""
    return shutil.which("dot") is not None


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def report_dot(model: Workflow, rankdir: str = "TB") -> str:
    """The dot source of the report's diagram: nodes ``s<i>`` (so titles need no escaping), clusters per group,
    a stub marked ``*`` above each state reachable from every other state instead of one edge per source."""
    index = {s.id: i for i, s in enumerate(model.states)}
    lines = [
        "digraph workflow {",
        f'  graph [rankdir={rankdir}, newrank=true, nodesep=0.4, ranksep=0.5, fontname={_q(FONT)}, fontsize=12];',
        f'  node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#2f5d8a", penwidth=1.4, '
        f'fontname={_q(FONT)}, fontsize=12.5, margin="0.18,0.06"];',
        f'  edge [color="#6b7a8c", arrowsize=0.7, fontname={_q(FONT)}, fontsize=11, fontcolor="#3b4a5c"];',
        '  start [shape=point, width=0.14, color="#1b2733", fillcolor="#1b2733", label=""];',
    ]
    groups = list(dict.fromkeys([g for g, _ in model.groups] + [s.group for s in model.states if s.group]))

    def node(state_id: str) -> str:
        state = model.state(state_id)
        attrs = [f"label={_q(state.label or state.id)}", f"tooltip={_q(state.id)}"]
        if state.final:
            attrs += ["peripheries=2", 'color="#2e7d32"', 'fillcolor="#eef7ee"']
        if state.archive:
            attrs.append('style="rounded,dashed,filled"')
        if state.id == model.initial:
            attrs.append('fillcolor="#e8f1fb"')
        return f"s{index[state_id]} [{', '.join(attrs)}];"

    for number, group in enumerate(groups):
        lines.append(f"  subgraph cluster_{number} {{")
        lines.append(f'    label={_q(model.group_label(group))}; labeljust=l; style="rounded,filled"; '
                     'fillcolor="#f3f6fa"; color="#dde3ec"; fontcolor="#4a5a70";')
        lines += [f"    {node(s.id)}" for s in model.states if s.group == group]
        lines.append("  }")
    lines += [f"  {node(s.id)}" for s in model.states if not s.group]
    if model.initial in index:
        lines.append(f"  start -> s{index[model.initial]};")
    stubs = set()
    for t in model.transitions:
        if is_wildcard(model, t):
            if t.dest not in stubs and t.dest in index:
                stubs.add(t.dest)
                lines.append(f'  w{index[t.dest]} [shape=circle, label="*", width=0.22, fixedsize=true, '
                             'style=filled, fillcolor="#b5651d", color="#b5651d", fontcolor="#ffffff", fontsize=12];')
                lines.append(f'  w{index[t.dest]} -> s{index[t.dest]} [color="#b5651d", arrowsize=0.5];')
            continue
        for source in t.sources:
            target = t.target(source)  # an internal transition: a loop on each state it stays in
            if source in index and target in index:
                label = edge_label(model, t, source)
                style = ", style=dashed" if t.internal else ""
                lines.append(f"  s{index[source]} -> s{index[target]} [label={_q(label)}, tooltip={_q(label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _run_dot(source: str) -> str | None:
    dot = shutil.which("dot")
    if dot is None:
        return None
    try:
        proc = subprocess.run([dot, "-Tsvg"], input=source, capture_output=True, text=True, timeout=_TIMEOUT,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0 or "<svg" not in proc.stdout:
        return None
    return proc.stdout[proc.stdout.index("<svg"):]


def _width(svg: str) -> float:
    match = re.match(r'<svg width="([\d.]+)pt"', svg)
    return float(match.group(1)) if match else float("inf")


def graphviz_svg(model: Workflow, id_prefix: str, max_width: float = float("inf")) -> str | None:
    """The diagram as inline SVG laid out by ``dot``, top to bottom, or left to right when that fits
    ``max_width`` and top to bottom does not; None when Graphviz is missing or fails."""
    candidates = []
    for rankdir in ("TB", "LR"):
        out = _run_dot(report_dot(model, rankdir))
        if out is not None:
            candidates.append(out)
            if _width(out) <= max_width:
                break
    if not candidates:
        return None
    svg = min(candidates, key=_width) if all(_width(c) > max_width for c in candidates) else candidates[-1]
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S).replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "")
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", id_prefix)
    svg = re.sub(r'\bid="', f'id="{prefix}-', svg)
    # points as pixels: the text keeps the size it was laid out with (11-12.5 px), never scaled below it
    head = (f'<svg class="diagram workflow-diagram" data-layout="graphviz" data-workflow="{esc(model.name)}" '
            f'role="img" aria-label="{esc(model.label or model.name)}" ')
    svg = re.sub(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"',
                 lambda m: f'{head}width="{m.group(1)}" height="{m.group(2)}"', svg, count=1)
    states = {f"s{i}": s.id for i, s in enumerate(model.states)}

    def mark(match: re.Match[str]) -> str:
        node = match.group(2)
        if node in states:
            return f'<g class="state node" {match.group(1)} data-state="{esc(states[node])}">\n<title>{node}'
        return match.group(0)

    svg = re.sub(r'<g (id="[^"]*") class="node">\s*<title>(\w+)(?=</title>)', mark, svg)
    return svg.strip()
