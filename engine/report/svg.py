"""Workflow diagrams as SVG, laid out in pure Python (no Graphviz, deterministic output).

Layout (docs/report.md):

1. Transitions that reach a state from every other state ("wildcards", e.g. a recruitment
   workflow where any status may move to any other) are drawn as a short stub into the target
   instead of one arrow per source.
2. The other transitions form a graph; cycles are broken by a depth-first search from the
   initial state (back edges are ignored for layering) and each state gets its longest-path
   layer from the initial state.
3. Columns: with state groups, one labelled background band per group in the definition's
   group order (states inside a band ordered by layer); without groups, one column per layer
   (ordered by the barycentre of their predecessors).
4. Edges leave and enter boxes at ports spread along the box side (sorted by the other end),
   pass intermediate columns through the free gap nearest to their line, and are drawn as
   smooth cubic curves; labels are nudged vertically until they overlap no box and no other label.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from regelwerk.report._text import esc, human_duration, text_width, wrap
from regelwerk.workflows.model import State, Transition, Workflow

__all__ = ["Box", "EdgeLine", "Layout", "edge_label", "is_wildcard", "layer_states", "layout_workflow", "workflow_svg"]

PAD = 20.0
START_ROOM = 34.0
BOX_MIN_W = 120.0
BOX_MAX_W = 180.0
LINE_H = 15.0
BOX_H = 40.0
V_GAP = 40.0
BAND_PAD = 14.0
BAND_HEADER = 30.0
STUB = 24.0
FONT = 12.5
EDGE_FONT = 11.0
LABEL_MAX = 190.0

Point = tuple[float, float]

#: Styles of the diagrams (inside each SVG, so an SVG copied out of the report still looks the same).
DIAGRAM_CSS = (
    ".workflow-diagram{font-family:'Segoe UI','Helvetica Neue',Arial,'Liberation Sans','DejaVu Sans',sans-serif}"
    ".workflow-diagram .band rect{fill:#f3f6fa;stroke:#dde3ec}"
    ".workflow-diagram .band text{font-size:12px;font-weight:600;fill:#4a5a70;letter-spacing:.02em}"
    ".workflow-diagram .state rect{fill:#ffffff;stroke:#2f5d8a;stroke-width:1.6}"
    ".workflow-diagram .state.initial rect{fill:#e8f1fb}"
    ".workflow-diagram .state.final rect{fill:#eef7ee;stroke:#2e7d32}"
    ".workflow-diagram .state.final rect.inner{fill:none;stroke-width:1.1}"
    ".workflow-diagram .state.archive rect{stroke-dasharray:5 3}"
    ".workflow-diagram .state text{font-size:12.5px;fill:#1b2733}"
    ".workflow-diagram .edge path{fill:none;stroke:#6b7a8c;stroke-width:1.3}"
    ".workflow-diagram .edge.internal path{stroke-dasharray:4 3}"
    ".workflow-diagram .edge.stub circle{fill:#b5651d}"
    ".workflow-diagram .edge.stub path{stroke:#b5651d}"
    ".workflow-diagram .edge.stub text{font-size:12px;font-weight:700;fill:#fff}"
    ".workflow-diagram .arrowhead{fill:#6b7a8c}"
    ".workflow-diagram .start circle{fill:#1b2733}"
    ".workflow-diagram .start path{stroke:#1b2733;stroke-width:1.3;fill:none}"
    ".workflow-diagram .edge-label rect{fill:#ffffff;fill-opacity:.92;stroke:none}"
    ".workflow-diagram .edge-label text{font-size:11px;fill:#3b4a5c}"
)


@dataclass(frozen=True, slots=True)
class Box:
    """A state's box: position, size and the label lines drawn in it."""

    state: str
    lines: tuple[str, ...]
    x: float
    y: float
    w: float
    h: float
    column: int
    initial: bool = False
    final: bool = False
    archive: bool = False

    @property
    def cx(self) -> float:
        """Horizontal centre."""
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        """Vertical centre."""
        return self.y + self.h / 2


@dataclass(frozen=True, slots=True)
class EdgeLine:
    """One drawn arrow: a transition from ``source`` (``*`` for any state) to ``dest``."""

    event: str
    label: str
    source: str
    dest: str
    path: str
    label_at: Point
    tooltip: str
    index: int
    stub: bool = False


@dataclass(frozen=True, slots=True)
class Band:
    """A labelled background band holding the states of one group."""

    group: str
    label: str
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True, slots=True)
class Layout:
    """A laid-out workflow: boxes, edges, bands and the canvas size."""

    width: float
    height: float
    boxes: tuple[Box, ...]
    edges: tuple[EdgeLine, ...]
    bands: tuple[Band, ...] = ()
    start: tuple[Point, Point] | None = None
    label_boxes: tuple[tuple[float, float, float, float], ...] = field(default=())


def _fmt(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def is_wildcard(model: Workflow, transition: Transition) -> bool:
    """True when ``transition`` reaches its target from every other state (drawn as a stub)."""
    if transition.internal:  # stays in each source: drawn as a loop on each
        return False
    ids = set(model.state_ids)
    return len(ids) > 3 and (ids - {transition.dest}) <= set(transition.sources)


def _graph_edges(model: Workflow) -> list[tuple[str, str, Transition]]:
    known = set(model.state_ids)
    out = []
    for t in model.transitions:
        if is_wildcard(model, t):
            continue
        for source in t.sources:
            if source in known and t.target(source) in known:
                out.append((source, t.target(source), t))
    return out


def layer_states(model: Workflow) -> dict[str, int]:
    """Longest-path layer of every state from the initial state (cycles broken by a DFS in definition order)."""
    order = list(model.state_ids)
    rank = {s: i for i, s in enumerate(order)}
    edges = [(a, b) for a, b, _ in _graph_edges(model) if a != b]
    succ: dict[str, list[str]] = {s: [] for s in order}
    for a, b in edges:
        if b not in succ[a]:
            succ[a].append(b)
    back: set[tuple[str, str]] = set()
    visited: set[str] = set()
    roots = ([model.initial] if model.initial in succ else []) + order
    for root in roots:
        if root in visited:
            continue
        visited.add(root)
        on_stack = {root}
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, i = stack[-1]
            if i < len(succ[node]):
                stack[-1] = (node, i + 1)
                nxt = succ[node][i]
                if nxt in on_stack:
                    back.add((node, nxt))
                elif nxt not in visited:
                    visited.add(nxt)
                    on_stack.add(nxt)
                    stack.append((nxt, 0))
            else:
                on_stack.discard(node)
                stack.pop()
    dag = [(a, b) for a, b in edges if (a, b) not in back]
    indeg = {s: 0 for s in order}
    for _, b in dag:
        indeg[b] += 1
    layer = {s: 0 for s in order}
    ready = sorted((s for s in order if indeg[s] == 0), key=lambda s: (s != model.initial, rank[s]))
    while ready:
        node = ready.pop(0)
        for a, b in dag:
            if a != node:
                continue
            layer[b] = max(layer[b], layer[a] + 1)
            indeg[b] -= 1
            if indeg[b] == 0:
                ready.append(b)
                ready.sort(key=lambda s: rank[s])
    return layer


def _columns(model: Workflow, layer: dict[str, int]) -> tuple[list[list[State]], list[tuple[str, str]]]:
    """States per column and, for grouped workflows, each column's (group id, label)."""
    rank = {s.id: i for i, s in enumerate(model.states)}
    if any(s.group for s in model.states):
        order = [g for g, _ in model.groups]
        order += [s.group for s in model.states if s.group and s.group not in order]
        cols = [sorted((s for s in model.states if s.group == g), key=lambda s: (layer[s.id], rank[s.id]))
                for g in dict.fromkeys(order)]
        heads = [(g, model.group_label(g)) for g in dict.fromkeys(order)]
        rest = [s for s in model.states if not s.group]
        pairs = [(c, h) for c, h in zip(cols, heads, strict=True) if c]
        if rest:
            pairs.append((sorted(rest, key=lambda s: (layer[s.id], rank[s.id])), ("", "Zonder groep")))
        return [c for c, _ in pairs], [h for _, h in pairs]
    count = max(layer.values(), default=0) + 1
    cols = [[s for s in model.states if layer[s.id] == c] for c in range(count)]
    preds: dict[str, list[str]] = {}
    for a, b, _ in _graph_edges(model):
        if layer[a] < layer[b]:
            preds.setdefault(b, []).append(a)
    position: dict[str, int] = {}
    for c, states in enumerate(cols):
        if c == 0:
            states.sort(key=lambda s: (s.id != model.initial, rank[s.id]))
        else:
            def bary(state: State) -> tuple[float, int]:
                ps = [position[p] for p in preds.get(state.id, []) if p in position]
                return (sum(ps) / len(ps) if ps else 1e9, rank[state.id])
            states.sort(key=bary)
        for i, s in enumerate(states):
            position[s.id] = i
    return [c for c in cols if c], []


def edge_label(model: Workflow, t: Transition, source: str) -> str:
    """An arrow's label: the transition's label (or event), with the timer that fires it ("(na 14 dagen)")."""
    text = t.label or t.event
    if source in model.state_ids:
        for timer in model.state(source).after:
            if timer.event == t.event:
                text += f" (na {human_duration(timer.duration)})"
    return text


def _tooltip(t: Transition, sources: Sequence[str]) -> str:
    where = "blijft in de status (intern)" if t.internal else f"→ {t.dest}"
    parts = [f"{t.label or t.event} [{t.event}]: {', '.join(sources)} {where}"]
    if t.guard is not None:
        parts.append(f"voorwaarde: {t.guard.text}")
    if t.permission:
        parts.append(f"recht: {t.permission}")
    return "; ".join(parts)


def _spread(center: float, count: int, room: float, step: float) -> list[float]:
    if count <= 1:
        return [center]
    gap = min(step, room / (count - 1))
    return [center + (i - (count - 1) / 2) * gap for i in range(count)]


def _curve(points: Sequence[Point]) -> str:
    """Cubic segments with horizontal tangents through ``points`` (x strictly monotone)."""
    x0, y0 = points[0]
    out = [f"M{_fmt(x0)},{_fmt(y0)}"]
    for (xa, ya), (xb, yb) in pairwise(points):
        d = (xb - xa) / 2
        out.append(f"C{_fmt(xa + d)},{_fmt(ya)} {_fmt(xb - d)},{_fmt(yb)} {_fmt(xb)},{_fmt(yb)}")
    return " ".join(out)


def _kind(col_of: dict[str, int], row_of: dict[str, int], a: str, b: str) -> str:
    if a == b:
        return "self"
    if col_of[a] != col_of[b]:
        return "fwd" if col_of[a] < col_of[b] else "back"
    step = row_of[b] - row_of[a]
    return "down" if step == 1 else "up" if step == -1 else "arc"


def layout_workflow(model: Workflow) -> Layout:
    """Place every state and route every transition (pure and deterministic)."""
    layer = layer_states(model)
    cols, heads = _columns(model, layer)
    grouped = bool(heads)
    wildcards = [t for t in model.transitions if is_wildcard(model, t)]
    top = PAD + (BAND_HEADER if grouped else 0) + (STUB + 6 if wildcards else 8)

    # sizes
    sizes: dict[str, tuple[list[str], float]] = {}
    col_w: list[float] = []
    for states in cols:
        width = BOX_MIN_W
        for s in states:
            width = max(width, min(BOX_MAX_W, text_width(s.label, FONT) + 28))
        col_w.append(width)
        for s in states:
            lines = wrap(s.label, width - 20, FONT, 2)
            sizes[s.id] = (lines, BOX_H + LINE_H * (len(lines) - 1))
    col_h = [sum(sizes[s.id][1] for s in states) + V_GAP * (len(states) - 1) for states in cols]
    content_h = max(col_h, default=0.0)

    col_of = {s.id: c for c, states in enumerate(cols) for s in states}
    row_of = {s.id: r for states in cols for r, s in enumerate(states)}
    raw = _graph_edges(model)
    kinds = [_kind(col_of, row_of, a, b) for a, b, _ in raw]
    need = [56.0 if grouped else 64.0] * max(len(cols) - 1, 0)
    for (a, b, t), kind in zip(raw, kinds, strict=True):
        width = text_width(_clip(edge_label(model, t, a)), EDGE_FONT) + 40
        if kind == "fwd":
            for g in range(col_of[a], col_of[b]):
                need[g] = max(need[g], 90.0 if g != col_of[a] else width)
        elif kind == "back":
            for g in range(col_of[b], col_of[a]):
                need[g] = max(need[g], 90.0 if g != col_of[a] - 1 else width)
        elif kind in ("arc", "self") and col_of[a] < len(need):
            need[col_of[a]] = max(need[col_of[a]], width + 40)
    boxes: dict[str, Box] = {}
    x = PAD + START_ROOM + (BAND_PAD if grouped else 0)
    col_x: list[float] = []
    for c, states in enumerate(cols):
        col_x.append(x)
        y = top + (content_h - col_h[c]) / 2
        for s in states:
            lines, h = sizes[s.id]
            boxes[s.id] = Box(s.id, tuple(lines), x, y, col_w[c], h, c, s.id == model.initial, s.final, s.archive)
            y += h + V_GAP
        x += col_w[c] + (need[c] if c < len(need) else 0)
    bottom = top + content_h
    bands = tuple(Band(g, label, col_x[c] - BAND_PAD, PAD, col_w[c] + 2 * BAND_PAD, bottom + BAND_PAD - PAD)
                  for c, (g, label) in enumerate(heads))

    # free vertical gaps per column (for edges passing through)
    gaps: list[list[tuple[float, float]]] = []
    for states in cols:
        spans = [(boxes[s.id].y, boxes[s.id].y + boxes[s.id].h) for s in states]
        free = [(top - 4, spans[0][0])] if spans else []
        free += [(a[1], b[0]) for a, b in pairwise(spans)]
        free.append((spans[-1][1] if spans else top, bottom + 30))
        gaps.append(free)
    gap_use: dict[tuple[int, int], int] = {}

    # ports
    ports: dict[tuple[str, str], list[tuple[float, int, int]]] = {}  # (state, side) -> (other coord, index, end)
    for i, ((a, b, _), kind) in enumerate(zip(raw, kinds, strict=True)):
        ba, bb = boxes[a], boxes[b]
        sides = {"fwd": ("right", "left"), "back": ("left", "right"), "down": ("bottom", "top"),
                 "up": ("top", "bottom"), "arc": ("right", "right")}.get(kind)
        if sides is None:
            continue
        vertical = kind in ("down", "up")
        ports.setdefault((a, sides[0]), []).append((bb.cx if vertical else bb.cy, i, 0))
        ports.setdefault((b, sides[1]), []).append((ba.cx if vertical else ba.cy, i, 1))
    anchor: dict[tuple[int, int], Point] = {}
    for (state, side), items in sorted(ports.items()):
        box = boxes[state]
        items.sort()
        if side in ("left", "right"):
            side_x = box.x if side == "left" else box.x + box.w
            for (_, i, end), y in zip(items, _spread(box.cy, len(items), box.h - 14, 9), strict=True):
                anchor[(i, end)] = (side_x, y)
        else:
            side_y = box.y if side == "top" else box.y + box.h
            for (_, i, end), xv in zip(items, _spread(box.cx, len(items), box.w - 30, 16), strict=True):
                anchor[(i, end)] = (xv, side_y)

    edges: list[EdgeLine] = []
    arc_depth: dict[int, int] = {}
    for i, ((a, b, t), kind) in enumerate(zip(raw, kinds, strict=True)):
        ba, bb = boxes[a], boxes[b]
        label = edge_label(model, t, a)
        tip = _tooltip(t, [a])
        if kind == "self":
            x0, y0 = ba.x + ba.w - 24, ba.y
            path = (f"M{_fmt(x0)},{_fmt(y0)} C{_fmt(x0)},{_fmt(y0 - 30)} {_fmt(ba.x + ba.w + 26)},{_fmt(ba.cy - 8)} "
                    f"{_fmt(ba.x + ba.w)},{_fmt(ba.cy - 6)}")
            edges.append(EdgeLine(t.event, label, a, b, path, (ba.x + ba.w + 12, ba.y - 16), tip, t.index))
            continue
        p0, p1 = anchor[(i, 0)], anchor[(i, 1)]
        if kind in ("down", "up"):
            path = f"M{_fmt(p0[0])},{_fmt(p0[1])} L{_fmt(p1[0])},{_fmt(p1[1])}"
            edges.append(EdgeLine(t.event, label, a, b, path, ((p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2), tip,
                                  t.index))
            continue
        if kind == "arc":
            depth = arc_depth.get(ba.column, 0)
            arc_depth[ba.column] = depth + 1
            bow = 34 + 14 * depth
            path = (f"M{_fmt(p0[0])},{_fmt(p0[1])} C{_fmt(p0[0] + bow)},{_fmt(p0[1])} "
                    f"{_fmt(p1[0] + bow)},{_fmt(p1[1])} {_fmt(p1[0])},{_fmt(p1[1])}")
            edges.append(EdgeLine(t.event, label, a, b, path, (p0[0] + bow * 0.75, (p0[1] + p1[1]) / 2), tip,
                                  t.index))
            continue
        points: list[Point] = [p0]
        step = 1 if kind == "fwd" else -1
        span = range(ba.column + step, bb.column, step)
        n = abs(bb.column - ba.column)
        for k, c in enumerate(span, start=1):
            want = p0[1] + (p1[1] - p0[1]) * k / n
            best = min(range(len(gaps[c])), key=lambda g, w=want, c=c: (  # type: ignore[misc]
                0 if gaps[c][g][0] + 10 <= w <= gaps[c][g][1] - 10 else 1,
                min(abs(w - gaps[c][g][0]), abs(w - gaps[c][g][1])), g))
            lo, hi = gaps[c][best]
            used = gap_use.get((c, best), 0)
            gap_use[(c, best)] = used + 1
            y = min(max(want, lo + 10), hi - 10) if hi - lo > 20 else (lo + hi) / 2
            y += 8 * used * (1 if used % 2 else -1)
            near, far = (col_x[c] - 12, col_x[c] + col_w[c] + 12)
            points += [(near, y), (far, y)] if kind == "fwd" else [(far, y), (near, y)]
        points.append(p1)
        xa, ya = points[0]
        xb, yb = points[1]
        edges.append(EdgeLine(t.event, label, a, b, _curve(points), ((xa + xb) / 2, (ya + yb) / 2), tip, t.index))

    for t in wildcards:
        target = boxes.get(t.dest)
        if target is None:
            continue
        k = sum(1 for e in edges if e.stub and e.dest == t.dest)
        sx = target.x + 16 + 18 * k
        path = f"M{_fmt(sx)},{_fmt(target.y - STUB + 7)} L{_fmt(sx)},{_fmt(target.y)}"
        edges.append(EdgeLine(t.event, t.label or t.event, "*", t.dest, path, (sx, target.y - STUB),
                              _tooltip(t, ["elke status"]), t.index, stub=True))

    start = None
    if model.initial in boxes:
        ib = boxes[model.initial]
        start = ((ib.x - 28, ib.cy), (ib.x, ib.cy))

    # label placement: nudge vertically away from boxes, the bands' titles and earlier labels
    obstacles = [(b.x - 2, b.y - 2, b.x + b.w + 2, b.y + b.h + 2) for b in boxes.values()]
    for band in bands:
        half = text_width(band.label, 12.0) / 2 + 4
        obstacles.append((band.x + band.w / 2 - half, band.y + 4, band.x + band.w / 2 + half, band.y + 26))
    placed: list[tuple[float, float, float, float]] = []
    final_edges: list[EdgeLine] = []
    for edge in edges:
        if edge.stub:
            final_edges.append(edge)
            continue
        text = _clip(edge.label)
        w = text_width(text, EDGE_FONT) + 10
        h = 15.0
        cx, cy = edge.label_at
        chosen = (cx, cy)
        for dy in (0, -13, 13, -26, 26, -39, 39, -52, 52, -65, 65, -78, 78):
            rect = (cx - w / 2, cy + dy - h / 2, cx + w / 2, cy + dy + h / 2)
            if not any(_overlap(rect, o) for o in obstacles + placed):
                chosen = (cx, cy + dy)
                break
        placed.append((chosen[0] - w / 2, chosen[1] - h / 2, chosen[0] + w / 2, chosen[1] + h / 2))
        final_edges.append(EdgeLine(edge.event, text, edge.source, edge.dest, edge.path, chosen, edge.tooltip,
                                    edge.index))

    xs = [b.x + b.w for b in boxes.values()] + [b.x + b.w for b in bands] + [r[2] for r in placed]
    ys = [b.y + b.h for b in boxes.values()] + [b.y + b.h for b in bands] + [r[3] for r in placed]
    for edge in final_edges:
        for num in re.findall(r"(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)", edge.path):
            xs.append(float(num[0]))
            ys.append(float(num[1]))
    width = max(xs, default=200.0) + PAD
    height = max(ys, default=100.0) + PAD
    ordered = tuple(boxes[s.id] for s in model.states if s.id in boxes)
    return Layout(width, height, ordered, tuple(final_edges), bands, start, tuple(placed))


def _clip(text: str) -> str:
    if text_width(text, EDGE_FONT) <= LABEL_MAX:
        return text
    while len(text) > 2 and text_width(text + "…", EDGE_FONT) > LABEL_MAX:
        text = text[:-1]
    return text.rstrip() + "…"


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def workflow_svg(model: Workflow, id_prefix: str = "") -> str:
    """The workflow as an inline SVG element (escaped; ids prefixed so several diagrams share a page)."""
    lay = layout_workflow(model)
    pid = _safe_id(id_prefix or f"wf-{model.name}")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="diagram workflow-diagram" '
           f'data-workflow="{esc(model.name)}" data-states="{len(model.states)}" '
           f'viewBox="0 0 {_fmt(lay.width)} {_fmt(lay.height)}" width="{_fmt(lay.width)}" '
           f'height="{_fmt(lay.height)}" role="img" aria-labelledby="{pid}-title">',
           f'<title id="{pid}-title">{esc(model.label or model.name)}: toestandsdiagram</title>',
           f"<style>{DIAGRAM_CSS}</style>",
           "<defs>",
           f'<marker id="{pid}-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker>',
           "</defs>"]
    for band in lay.bands:
        out.append(f'<g class="band" data-group="{esc(band.group)}">'
                   f'<rect x="{_fmt(band.x)}" y="{_fmt(band.y)}" width="{_fmt(band.w)}" height="{_fmt(band.h)}" '
                   'rx="8"/>'
                   f'<text x="{_fmt(band.x + band.w / 2)}" y="{_fmt(band.y + 19)}" text-anchor="middle">'
                   f"{esc(band.label)}</text></g>")
    if lay.start is not None:
        (sx, sy), (ex, ey) = lay.start
        out.append(f'<g class="start"><circle cx="{_fmt(sx)}" cy="{_fmt(sy)}" r="6"/>'
                   f'<path d="M{_fmt(sx + 6)},{_fmt(sy)} L{_fmt(ex - 1)},{_fmt(ey)}" '
                   f'marker-end="url(#{pid}-arrow)"/></g>')
    internal = {t.index for t in model.transitions if t.internal}  # stays in the state: a dashed loop
    for edge in lay.edges:
        cls = "edge stub" if edge.stub else "edge internal" if edge.index in internal else "edge"
        out.append(f'<g class="{cls}" data-event="{esc(edge.event)}" data-source="{esc(edge.source)}" '
                   f'data-dest="{esc(edge.dest)}"><title>{esc(edge.tooltip)}</title>'
                   f'<path d="{edge.path}" marker-end="url(#{pid}-arrow)"/>')
        if edge.stub:
            lx, ly = edge.label_at
            out.append(f'<circle cx="{_fmt(lx)}" cy="{_fmt(ly)}" r="7"/>'
                       f'<text x="{_fmt(lx)}" y="{_fmt(ly + 4)}" text-anchor="middle">*</text>')
        out.append("</g>")
    for edge in lay.edges:
        if edge.stub:
            continue
        lx, ly = edge.label_at
        w = text_width(edge.label, EDGE_FONT) + 10
        out.append(f'<g class="edge-label"><rect x="{_fmt(lx - w / 2)}" y="{_fmt(ly - 7.5)}" width="{_fmt(w)}" '
                   f'height="15" rx="3"/><text x="{_fmt(lx)}" y="{_fmt(ly + 4)}" text-anchor="middle">'
                   f"{esc(edge.label)}</text></g>")
    for box in lay.boxes:
        classes = ["state"] + [c for c, on in (("initial", box.initial), ("final", box.final),
                                               ("archive", box.archive)) if on]
        out.append(f'<g class="{" ".join(classes)}" data-state="{esc(box.state)}">'
                   f"<title>{esc(box.state)}</title>"
                   f'<rect x="{_fmt(box.x)}" y="{_fmt(box.y)}" width="{_fmt(box.w)}" height="{_fmt(box.h)}" rx="7"/>')
        if box.final:
            out.append(f'<rect class="inner" x="{_fmt(box.x + 3.5)}" y="{_fmt(box.y + 3.5)}" '
                       f'width="{_fmt(box.w - 7)}" height="{_fmt(box.h - 7)}" rx="5"/>')
        first = box.cy - (len(box.lines) - 1) * LINE_H / 2 + 4.5
        for k, line in enumerate(box.lines):
            out.append(f'<text x="{_fmt(box.cx)}" y="{_fmt(first + k * LINE_H)}" text-anchor="middle">'
                       f"{esc(line)}</text>")
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)
