"""The core's sections of the configuration report: workflows, permissions, decision tables, rule sets.

Registered like a pack's (``Registry.add_report_section``); each reads only the core's compiled models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regelwerk.permissions.render import SCOPE_LABELS
from regelwerk.registry import Registry, ReportSectionSpec

if TYPE_CHECKING:
    from regelwerk.report.page import ReportPage

__all__ = ["ACTION_WORDS", "register"]

#: Dutch names of actions a resource type leaves unlabelled.
ACTION_WORDS = {"read": "inzien", "write": "wijzigen", "create": "aanmaken", "update": "wijzigen",
                "delete": "verwijderen", "approve": "goedkeuren", "reject": "afkeuren", "submit": "indienen",
                "list": "opvragen", "export": "exporteren", "manage": "beheren", "view": "inzien",
                "edit": "wijzigen", "sign": "ondertekenen", "assign": "toewijzen", "archive": "archiveren",
                "publish": "publiceren", "move": "verplaatsen", "download": "downloaden", "upload": "uploaden",
                "invite": "uitnodigen", "start": "starten", "close": "sluiten", "open": "openen"}
#: The width a diagram has on the page (the report's content column) before it would need scrolling.
PAGE_WIDTH = 1080.0
SCOPE_WORDS = SCOPE_LABELS


def _legend(wildcards: bool) -> str:
    items = ['<span><i class="sw"></i>status</span>', '<span><i class="sw final"></i>eindstatus</span>',
             '<span><i class="sw archive"></i>archiefstatus</span>', '<span><i class="sw dot"></i>begin</span>']
    if wildcards:
        items.append('<span><i class="sw star"></i>bereikbaar vanuit elke andere status</span>')
    return f'<p class="legend">{"".join(items)}</p>'


def workflows(page: ReportPage) -> str:
    """Every workflow: a diagram, its transitions and timers in words."""
    from regelwerk.report.graphviz import graphviz_svg
    from regelwerk.report.page import esc
    from regelwerk.report.svg import is_wildcard, layout_workflow, workflow_svg

    parts = []
    for index, (name, wf) in enumerate(page.of_kind("Workflow").items()):
        meta = [f"{len(wf.states)} statussen", f"{len(wf.transitions)} overgangen",
                f"begint in <b>{esc(page.state_label(wf, wf.initial))}</b>"]
        body = f'<p class="meta">{" · ".join(meta)}</p>'
        if wf.description:
            body += f'<p class="desc">{esc(wf.description)}</p>'
        # wider than the page: let Graphviz rank it top to bottom rather than scale the text down
        wide = layout_workflow(wf).width > PAGE_WIDTH
        svg = (graphviz_svg(wf, f"wf{index}", PAGE_WIDTH) if wide else None) or workflow_svg(wf, f"wf{index}")
        body += f'<div class="diagram-wrap">{svg}</div>'
        body += _legend(any(is_wildcard(wf, t) for t in wf.transitions))
        rows = []
        for t in wf.transitions:
            sources = ("<i>elke andere status</i>" if is_wildcard(wf, t)
                       else ", ".join(esc(page.state_label(wf, s)) for s in t.sources))
            target = "<i>blijft in de status</i>" if t.internal else esc(page.state_label(wf, t.dest))
            rows.append((esc(t.label or t.event.replace("_", " ")), sources, target,
                         esc(page.words.condition(t.guard)) if t.guard is not None else "—",
                         esc(page.words.label(t.permission)) if t.permission else "—"))
        body += page.table(["Stap", "Van", "Naar", "Voorwaarde", "Wie mag dit (recht)"], rows)
        timers = [(esc(page.state_label(wf, s.id)), esc(page.duration(tm.duration)),
                   esc(next((t.label for t in wf.transitions if t.event == tm.event and t.label), tm.event)))
                  for s in wf.states for tm in s.after]
        if timers:
            body += page.table(["Status", "Na", "Dan automatisch"], timers)
        parts.append(page.item("Workflow", name, wf.label, body, f"workflow-{name}"))
    return "".join(parts)


def _rule_text(page: ReportPage, rule: Any) -> str:
    text = str(SCOPE_WORDS.get(rule.scope, rule.scope))
    if rule.of:
        text += f" ({page.words.label(rule.of)})"
    if rule.field_groups:
        text += " [" + ", ".join(page.words.label(g) for g in rule.field_groups) + "]"
    if rule.condition is not None:
        text += " *"
    return text


def _cells(page: ReportPage, matrix: Any, resource: Any, action: str, role: str) -> list[tuple[str, bool]]:
    effective = set(matrix.effective_roles.get(role, (role,)))
    cells: list[tuple[str, bool]] = []

    def covers(rule: Any) -> bool:
        return rule.resource == resource.id and (action in rule.actions or "*" in rule.actions)

    for rule in matrix.grants:
        if covers(rule) and ("*" in rule.roles or effective & set(rule.roles)):
            cells.append((_rule_text(page, rule), True))
    for held in matrix.effective_roles.get(role, (role,)):
        for right in matrix.roles[held].rights:
            for rule in matrix.rights[right].grants:
                if covers(rule):
                    cells.append((f"{_rule_text(page, rule)} (extra recht {matrix.rights[right].label})", True))
    for rule in matrix.denies:
        if covers(rule) and ("*" in rule.roles or effective & set(rule.roles)) and not (
                effective & set(rule.except_roles)):
            text = "nee" if rule.scope == "organisation" else f"niet: {SCOPE_WORDS.get(rule.scope, rule.scope)}"
            if rule.except_scope:
                text += f", behalve {SCOPE_WORDS.get(rule.except_scope, rule.except_scope)}"
            cells.append(("✗ " + text, False))
    return list(dict.fromkeys(cells))


def _action_word(matrix: Any, resource: str, action: str) -> str:
    rt = matrix.resources.get(resource)
    label = rt.action_labels.get(action) if rt is not None else None
    return str(label or ACTION_WORDS.get(action, action.replace("_", " ")))


def permissions(page: ReportPage) -> str:
    """Each permission matrix: who may do what (Dutch headers, labels), then denies, extra rights, conditions."""
    from regelwerk.report.page import esc

    parts = []
    for name, matrix in page.of_kind("PermissionMatrix").items():
        roles = list(matrix.roles)
        header = ["Onderdeel", "Handeling"] + [esc(matrix.roles[r].label) for r in roles]
        rows = []
        for resource in matrix.resources.values():
            for i, action in enumerate(resource.actions):
                row = []
                if i == 0:
                    row.append(f'<td rowspan="{len(resource.actions)}"><b>{esc(resource.label)}</b></td>')
                word = _action_word(matrix, resource.id, action)
                row.append(esc(word))
                for role in roles:
                    cells = _cells(page, matrix, resource, action, role)
                    if not cells:
                        row.append('<td class="none">—</td>')
                        continue
                    spans = [f'<span class="{"allow" if ok else "deny"}">{esc(text)}</span>' for text, ok in cells]
                    row.append("<td>" + "<br>".join(spans) + "</td>")
                rows.append(row)
        body = page.table(header, rows)
        extras = []
        if matrix.denies:
            extras.append(("Uitdrukkelijk niet toegestaan (gaat altijd voor)", [
                (d.label or ", ".join(page.words.label(r) for r in d.roles)) + ": "
                + f"{matrix.resources[d.resource].label if d.resource in matrix.resources else d.resource}, "
                + ", ".join(_action_word(matrix, d.resource, a) for a in d.actions)
                + (f" — {d.reason}" if getattr(d, "reason", "") else "") for d in matrix.denies]))
        tasks = [f"{role.label}: wie de taak {', '.join(role.tasks)} heeft" for role in matrix.roles.values()
                 if getattr(role, "tasks", ())]
        if tasks:
            extras.append(("Rollen die ook via een taak gelden", tasks))
        if matrix.rights:
            extras.append(("Extra rechten (per gebruiker toe te kennen)", [
                r.label + (f": {r.description}" if r.description else "") for r in matrix.rights.values()]))
        if matrix.user_rights:
            extras.append(("Toegekende extra rechten", [
                f"{u.user}: {matrix.rights[u.right].label if u.right in matrix.rights else u.right}"
                + (f" vanaf {page.date(u.valid_from)}" if u.valid_from else "")
                + (f" tot en met {page.date(u.valid_to)}" if u.valid_to else "") for u in matrix.user_rights]))
        conditions = [(g.label or SCOPE_WORDS.get(g.scope, g.scope)) + ": " + page.words.condition(g.condition)
                      for g in matrix.grants if g.condition is not None]
        if conditions:
            extras.append(("* Voorwaarden", conditions))
        for title, items in extras:
            body += f'<p class="meta"><b>{esc(title)}</b></p><ul>' + "".join(
                f"<li>{esc(i)}</li>" for i in items) + "</ul>"
        parts.append(page.item("PermissionMatrix", name, matrix.label, body))
    return "".join(parts)


def _entry(page: ReportPage, entry: Any) -> str:
    """A decision-table entry in words."""
    words = page.words
    if entry.op == "any":
        return "–"
    if entry.op == "eq" and entry.literals:
        return words.value(entry.literals[0])
    if entry.op in ("in", "not_in") and entry.literals:
        return ("een van " if entry.op == "in" else "geen van ") + words.value(list(entry.literals))
    if entry.op == "condition" and entry.node is not None:
        return words.condition(_Compiled(entry.node))
    if entry.op == "range":
        parts = []
        if entry.low is not None:
            parts.append(("groter dan " if entry.low_open else "ten minste ") + words.value(entry.low))
        if entry.high is not None:
            parts.append(("kleiner dan " if entry.high_open else "ten hoogste ") + words.value(entry.high))
        return " en ".join(parts)
    return words.code(entry.text.replace(f"{entry.input} ", "", 1))


class _Compiled:
    """A condition node in the shape ``Words.condition`` reads (``.model``)."""

    def __init__(self, model: Any) -> None:
        self.model = model


def decisions(page: ReportPage) -> str:
    """Each decision table with its rows, outputs in words."""
    from regelwerk.report.page import esc

    parts = []
    for name, table in page.of_kind("DecisionTable").items():
        header = [esc(c.label or c.id) for c in table.inputs] + [f"→ {esc(c.label or c.id)}" for c in table.outputs]
        with_cond = any(r.condition is not None for r in table.rows)
        header += (["Extra voorwaarde"] if with_cond else []) + ["Toelichting"]
        rows = []
        for row in table.rows:
            entries = {e.input: e for e in row.entries}
            outputs = dict(row.outputs)
            cells = [esc(_entry(page, entries[c.id])) if c.id in entries else "–" for c in table.inputs]
            cells += [f"<b>{esc(page.words.value(outputs.get(c.id)))}</b>" for c in table.outputs]
            if with_cond:
                cells.append(esc(page.words.condition(row.condition)) if row.condition is not None else "—")
            cells.append(esc(row.description))
            rows.append(cells)
        body = f'<p class="meta">{len(table.rows)} regels</p>'
        if table.description:
            body += f'<p class="desc">{esc(table.description)}</p>'
        body += page.table(header, rows)
        parts.append(page.item("DecisionTable", name, table.label, body))
    return "".join(parts)


def rulesets(page: ReportPage) -> str:
    """Each rule set: when a rule applies and what it then does, in words."""
    from regelwerk.report.page import esc

    parts = []
    for name, ruleset in page.of_kind("RuleSet").items():
        rows = [(esc(r.label or r.id.replace("_", " ")), esc(page.words.condition(r.when)),
                 "<br>".join(esc(a.name.replace("_", " ") + (": " + page.words.value(dict(a.params)) if a.params
                                                             else "")) for a in r.then))
                for r in ruleset.rules]
        body = f'<p class="desc">{esc(ruleset.description)}</p>' if ruleset.description else ""
        body += page.table(["Regel", "Wanneer", "Dan"], rows)
        parts.append(page.item("RuleSet", name, ruleset.label, body))
    return "".join(parts)


def register(registry: Registry, plugin: str) -> None:
    """Contribute the core's sections to the report."""
    for name, title, render, kinds, order in (
        ("workflows", "Workflows", workflows, ("Workflow",), 30),
        ("rechten", "Rechten: wie mag wat", permissions, ("PermissionMatrix",), 60),
        ("beslistabellen", "Beslistabellen", decisions, ("DecisionTable",), 90),
        ("regels", "Regels", rulesets, ("RuleSet",), 95),
    ):
        registry.add_report_section(ReportSectionSpec(name, plugin, title, render, kinds, order))
