"""Diagrams of a compiled workflow: Mermaid ``stateDiagram-v2`` and Graphviz dot (pure text)."""

from __future__ import annotations

import re

from regelwerk.workflows.model import State, Transition, Workflow

__all__ = ["render", "to_dot", "to_mermaid"]


def _mermaid_id(state_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", state_id)


def _edge_label(t: Transition) -> str:
    parts = [t.label or t.event]
    if t.internal:  # stays in the state: drawn as a loop on it
        parts.append("(intern)")
    if t.guard is not None:
        parts.append(f"[{t.guard.text}]")
    if t.permission:
        parts.append(f"({t.permission})")
    return " ".join(parts)


def _quote(text: str) -> str:
    """Text inside a double-quoted dot string: backslashes and quotes escaped, line breaks as dot's ``\\n``."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return re.sub(r"\r\n|[\r\n\v\f\u2028\u2029]", "\\\\n", text)


#: Characters Mermaid's state-diagram grammar reads as syntax inside a label, as its entity codes (``#35;``).
_MERMAID_SYNTAX = re.compile(r'[#;"{}<>%|:\\]|-(?=-)')


def _mermaid_text(text: str) -> str:
    """One line of label text for Mermaid: every line break and tab becomes a space (a newline would start a new
    statement, e.g. a fake transition), syntax characters become Mermaid entity codes."""
    flat = " ".join(text.split())
    return _MERMAID_SYNTAX.sub(lambda m: f"#{ord(m.group(0))};", flat)


def _grouped(model: Workflow) -> list[tuple[str, list[State]]]:
    """States by group, groups in the definition's order (ungrouped states last, under "")."""
    # dict keys keep the first occurrence: each group once, declared groups first
    order = list(dict.fromkeys([g for g, _ in model.groups] + [s.group for s in model.states if s.group]))
    out = [(g, [s for s in model.states if s.group == g]) for g in order]
    out = [(g, states) for g, states in out if states]
    rest = [s for s in model.states if not s.group]
    return out + ([("", rest)] if rest else [])


def to_mermaid(model: Workflow) -> str:
    """A Mermaid state diagram (paste into Markdown); grouped states become composite states."""
    lines = ["stateDiagram-v2", f"    %% {' '.join(f'{model.name}: {model.label}'.split())}"]
    for group, states in _grouped(model):
        indent = "        " if group else "    "
        if group:
            lines.append(f'    state "{_mermaid_text(model.group_label(group))}" as group_{_mermaid_id(group)} {{')
        for state in states:
            sid = _mermaid_id(state.id)
            label = _mermaid_text(state.label)
            lines.append(f"{indent}{sid}: {label}" if label != state.id else f"{indent}{sid}")
        if group:
            lines.append("    }")
    lines.append(f"    [*] --> {_mermaid_id(model.initial)}")
    for t in model.transitions:
        label = _mermaid_text(_edge_label(t))
        for source in t.sources:
            lines.append(f"    {_mermaid_id(source)} --> {_mermaid_id(t.target(source))}: {label}")
    for state in model.states:
        for timer in state.after:
            lines.append(f"    note right of {_mermaid_id(state.id)}: "
                         + _mermaid_text(f"na {timer.duration.text} naar {timer.event}"))
        if state.final:
            lines.append(f"    {_mermaid_id(state.id)} --> [*]")
    return "\n".join(lines) + "\n"


def to_dot(model: Workflow) -> str:
    """A Graphviz digraph (``dot -Tsvg``)."""
    # newrank: the ranking that copes with clusters and many edges between them (else "trouble in init_rank")
    lines = [f'digraph "{_quote(model.name)}" {{', "    rankdir=LR; newrank=true;",
             '    node [shape=box, style=rounded];', '    __start [shape=point, label=""];']
    for index, (group, states) in enumerate(_grouped(model)):
        indent = "        " if group else "    "
        if group:
            lines.append(f"    subgraph cluster_{index} {{")
            lines.append(f'        label="{_quote(model.group_label(group))}"; style=rounded; color=gray;')
        for state in states:
            attrs = [f'label="{_quote(state.label)}"']
            if state.final:
                attrs.append("peripheries=2")
            if state.archive:
                attrs.append('style="rounded,dashed"')
            if state.after:
                attrs[0] = f'label="{_quote(state.label)}\\n' + "\\n".join(
                    f"na {t.duration.text} -> {_quote(t.event)}" for t in state.after) + '"'
            lines.append(f'{indent}"{_quote(state.id)}" [{", ".join(attrs)}];')
        if group:
            lines.append("    }")
    lines.append(f'    __start -> "{_quote(model.initial)}";')
    for t in model.transitions:
        for source in t.sources:
            style = ", style=dashed" if t.internal else ""
            lines.append(f'    "{_quote(source)}" -> "{_quote(t.target(source))}" '
                         f'[label="{_quote(_edge_label(t))}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(model: Workflow, fmt: str = "mermaid") -> str:
    """Render in ``mermaid`` or ``dot``."""
    if fmt == "dot":
        return to_dot(model)
    if fmt == "mermaid":
        return to_mermaid(model)
    raise ValueError(f"unknown diagram format {fmt!r} (mermaid, dot)")
