"""A permission matrix as a table for the customer's sign-off (markdown or HTML).

Rows are resource actions (and field groups), columns the roles with inheritance applied; a cell
lists the scopes under which the role may act, or a deny. Below: the explicit denies, the extra
rights and the users holding them in the definition.
"""

from __future__ import annotations

import html

from regelwerk.permissions.model import PermissionMatrix, Rule

__all__ = ["matrix_rows", "render_html", "render_markdown"]

#: Dutch words for the scopes: the one map the matrix rendering and the sign-off report share.
SCOPE_LABELS = {
    "own": "eigen", "authored": "eigen aantekening", "direct_reports": "directe medewerkers",
    "all_reports": "hele lijn eronder", "department": "afdeling", "organisation": "hele organisatie",
    "consent": "met toestemming", "represented": "eigen organisatie(onderdeel)",
}


def _cell(rule: Rule) -> str:
    text = SCOPE_LABELS.get(rule.scope, rule.scope)
    if rule.of:
        text += f" ({rule.of})"
    if rule.field_groups:
        text += " [" + ", ".join(rule.field_groups) + "]"
    if rule.condition is not None:
        text += " *"
    return text


def matrix_rows(matrix: PermissionMatrix) -> tuple[list[str], list[list[str]]]:
    """The header (roles) and one row per resource action: plain strings."""
    roles = list(matrix.roles)
    header = ["Resource", "Action"] + [matrix.roles[r].label for r in roles]
    rows: list[list[str]] = []
    for rt in matrix.resources.values():
        for action in rt.actions:
            row = [rt.label, rt.action_labels.get(action, action) + (" (lezen)" if action in rt.read_actions
                                                                     else " (wijzigen)")]
            for role in roles:
                effective = set(matrix.effective_roles.get(role, (role,)))
                cells: list[str] = []
                for rule in matrix.grants:
                    if rule.resource == rt.id and (action in rule.actions or "*" in rule.actions) and (
                            "*" in rule.roles or effective & set(rule.roles)):
                        cells.append(_cell(rule))
                for right in (r for er in matrix.effective_roles.get(role, (role,)) for r in matrix.roles[er].rights):
                    for rule in matrix.rights[right].grants:
                        if rule.resource == rt.id and (action in rule.actions or "*" in rule.actions):
                            cells.append(_cell(rule) + f" (recht {right})")
                for rule in matrix.denies:
                    if rule.resource == rt.id and (action in rule.actions or "*" in rule.actions) and (
                            "*" in rule.roles or effective & set(rule.roles)) and not (
                            effective & set(rule.except_roles)):
                        cells.append("✗ " + (f"niet: {SCOPE_LABELS.get(rule.scope, rule.scope)}"
                                             if rule.scope != "organisation" else "nee")
                                     + (f", behalve {SCOPE_LABELS.get(rule.except_scope, rule.except_scope)}"
                                        if rule.except_scope else ""))
                row.append("; ".join(dict.fromkeys(cells)) or "—")
            rows.append(row)
    return header, rows


def _extras(matrix: PermissionMatrix) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    if matrix.denies:
        out.append(("Expliciete weigeringen (gaan altijd voor)", [
            f"{d.id}: {', '.join(d.roles)} · {d.resource}.{'/'.join(d.actions)} · "
            f"{SCOPE_LABELS.get(d.scope, d.scope)}" + (f" behalve {d.except_scope}" if d.except_scope else "")
            + (f" behalve rol {', '.join(d.except_roles)}" if d.except_roles else "")
            + (f" — {d.reason}" if d.reason else "") for d in matrix.denies]))
    if matrix.rights:
        out.append(("Extra rechten (per gebruiker toe te kennen)", [
            f"{r.id}: {r.label} — " + "; ".join(f"{g.resource}.{'/'.join(g.actions)} ({_cell(g)})" for g in r.grants)
            for r in matrix.rights.values()]))
    if matrix.user_rights:
        out.append(("Toegekende extra rechten", [
            f"{u.user}: {u.right}" + (f" van {u.valid_from}" if u.valid_from else "")
            + (f" tot en met {u.valid_to}" if u.valid_to else "") for u in matrix.user_rights]))
    conditions = [f"{g.id}: {g.condition.text}" for g in matrix.grants if g.condition is not None]
    if conditions:
        out.append(("* Voorwaarden", conditions))
    return out


def render_markdown(matrix: PermissionMatrix) -> str:
    """The matrix as a markdown table plus lists."""
    header, rows = matrix_rows(matrix)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [f"# {matrix.label} ({matrix.name})", "", line(header), "| " + " | ".join("---" for _ in header) + " |"]
    out += [line(r) for r in rows]
    for title, items in _extras(matrix):
        out += ["", f"## {title}", ""] + [f"- {i}" for i in items]
    return "\n".join(out) + "\n"


def render_html(matrix: PermissionMatrix) -> str:
    """The matrix as a standalone HTML page (escaped)."""
    header, rows = matrix_rows(matrix)
    esc = html.escape
    parts = ["<!DOCTYPE html>", "<html lang=\"nl\"><head><meta charset=\"utf-8\">",
             f"<title>{esc(matrix.label)}</title>",
             "<style>table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px}</style>",
             "</head><body>", f"<h1>{esc(matrix.label)} ({esc(matrix.name)})</h1>", "<table>",
             "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows]
    parts.append("</table>")
    for title, items in _extras(matrix):
        parts.append(f"<h2>{esc(title)}</h2><ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
