"""The report's scenario coverage: "Door de scenario's getest" per definition and an overview section.

``regelwerk report`` runs the bundle's scenarios with coverage on (``regelwerk.coverage.run_scenarios``) and
hands the hits to the page. Each definition card that has coverable items gets a short block (what share of
its statuses, transitions, outcomes of conditions, table rules, rules, permission rules and planning moments the
scenarios exercised, and what they did not, by label); the ids stay in folded consultant detail. The overview
section sums it up per kind of item and per definition, and says which scenarios ran and whether they passed.
Everything here reads the core's compiled models generically; a pack's items come with their own labels
(an item source's ``coverage_moments()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from regelwerk.coverage import Coverable

if TYPE_CHECKING:
    from regelwerk.report.page import ReportPage

__all__ = ["CATEGORY_WORDS", "block", "item_label", "overview", "summary"]

#: category -> (singular, plural, heading in the overview); in the order the report lists them.
CATEGORY_WORDS: dict[str, tuple[str, str, str]] = {
    "states": ("status", "statussen", "Statussen van workflows"),
    "transitions": ("overgang", "overgangen", "Overgangen (stappen) van workflows"),
    "guard branches": ("uitkomst van een voorwaarde", "uitkomsten van voorwaarden",
                       "Voorwaarden bij stappen: voldaan én niet voldaan"),
    "rows": ("regel", "regels", "Regels van beslistabellen"),
    "calculations": ("berekening", "berekeningen", "Berekeningen"),
    "rules": ("regel", "regels", "Regels van regelsets"),
    "permission rules": ("rechtenregel", "rechtenregels", "Rechtenregels (toekenningen en weigeringen)"),
    "schedule moments": ("planmoment", "planmomenten", "Planmomenten (gesprekken, feedbackrondes, planningen)"),
}
#: How many untested items a card names before it says "en nog N".
SHOWN = 12


def percent(covered: int, total: int) -> str:
    """A Dutch percentage without decimals ("70 %")."""
    return f"{round(100 * covered / total) if total else 100} %"


def _count(covered: int, total: int, category: str) -> str:
    singular, plural, _ = CATEGORY_WORDS.get(category, (category, category, category))
    return f"{covered} van {total} {singular if total == 1 else plural} ({percent(covered, total)})"


def _doc_items(page: ReportPage, kind: str, name: str) -> list[Coverable]:
    if page.coverage_items is None:
        from regelwerk.coverage import coverables

        cache: dict[tuple[str, str], list[Coverable]] = {}
        for item in coverables(page.compiled):
            cache.setdefault((item.kind, item.document), []).append(item)
        page.coverage_items = cache
    return page.coverage_items.get((kind, name), [])


def _ordered(items: Sequence[Coverable]) -> list[tuple[str, list[Coverable]]]:
    groups: dict[str, list[Coverable]] = {}
    for item in items:
        groups.setdefault(item.category, []).append(item)
    order = list(CATEGORY_WORDS)
    return sorted(groups.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))


def _state(page: ReportPage, wf: Any, state: str) -> str:
    return page.state_label(wf, state)


def _transition(page: ReportPage, wf: Any, t: Any) -> str:
    from regelwerk.report.svg import is_wildcard

    name = str(t.label or t.event.replace("_", " "))
    if wf is None:
        return name
    sources = ("elke andere status" if is_wildcard(wf, t)
               else ", ".join(_state(page, wf, s) for s in t.sources))
    if t.internal:
        return f"{name} ({sources}, blijft in de status)"
    return f"{name} ({sources} → {_state(page, wf, t.dest)})"


def _permission_rule(page: ReportPage, matrix: Any, rule: Any) -> str:
    from regelwerk.report.sections import SCOPE_WORDS, _action_word

    if rule.label:
        return str(rule.label)
    roles = getattr(matrix, "roles", {})
    who = ", ".join("iedereen" if r == "*" else roles[r].label if r in roles else page.words.label(r)
                    for r in rule.roles)
    if not who:
        owner = next((right for right in getattr(matrix, "rights", {}).values() if rule in right.grants), None)
        who = f"met extra recht ‘{owner.label}’" if owner is not None else "—"
    resources = getattr(matrix, "resources", {})
    resource = resources[rule.resource].label if rule.resource in resources else page.words.label(rule.resource)
    actions = ", ".join("alles" if a == "*" else _action_word(matrix, rule.resource, a) for a in rule.actions)
    verb = "mag niet" if rule.effect == "deny" else "mag"
    scope = SCOPE_WORDS.get(rule.scope, rule.scope)
    return f"{who} {verb} {actions}: {resource} ({scope})"


def item_label(page: ReportPage, item: Coverable) -> str:
    """An item the way the person who signs knows it: its labels, never its id (the id is folded away)."""
    from regelwerk.report.schedules import describe_schedule

    obj = page.compiled.objects.get((item.kind, item.document))
    ref = item.ref
    if item.category == "states":
        return item.label or item.item
    if item.category == "transitions":
        return _transition(page, obj, ref)
    if item.category == "guard branches":
        transition, branch = ref
        return f"{_transition(page, obj, transition)}, voorwaarde {'voldaan' if branch else 'niet voldaan'}"
    if item.category == "rows":
        rows = list(getattr(obj, "rows", ()))
        number = next((i + 1 for i, row in enumerate(rows) if row is ref), 0)
        if item.label:
            return f"regel {number}: {item.label}"
        outputs = [page.words.value(v) for _, v in getattr(ref, "outputs", ())]
        return f"regel {number}" + (f" (uitkomst {', '.join(outputs)})" if outputs else "")
    if item.category == "calculations":
        return item.label or page.label_of(item.kind, item.document)
    if item.category == "rules":
        return item.label or item.item.replace("_", " ")
    if item.category == "permission rules":
        return _permission_rule(page, obj, ref)
    if item.category == "schedule moments":
        if item.label:
            return item.label
        meta = (page.data.effective_documents.get((item.kind, item.document)) or {}).get("metadata") or {}
        description = meta.get("description") if isinstance(meta, dict) else None
        if isinstance(description, str) and description:
            return description.rstrip(".")
        return describe_schedule(ref) if ref is not None else page.words.label(item.item)
    return item.label or item.item


def _guards(page: ReportPage, group: Sequence[Coverable]) -> list[str]:
    """Untested guard branches, one line per transition ("…: voldaan en niet voldaan")."""
    branches: dict[int, tuple[Any, list[bool]]] = {}
    for item in group:
        transition, branch = item.ref
        branches.setdefault(id(transition), (item, []))[1].append(branch)
    out = []
    for first, flags in branches.values():
        obj = page.compiled.objects.get((first.kind, first.document))
        words = " en ".join("voldaan" if f else "niet voldaan" for f in sorted(flags, reverse=True))
        out.append(f"{_transition(page, obj, first.ref[0])}: voorwaarde {words}")
    return out


def summary(page: ReportPage, items: Sequence[Coverable]) -> str:
    """"14 van 20 overgangen (70 %) · 3 van 3 statussen (100 %)" for these items."""
    run = page.data.coverage
    assert run is not None
    return " · ".join(_count(sum(run.covered(i) for i in group), len(group), category)
                      for category, group in _ordered(items))


def _detail(page: ReportPage, untested: Sequence[Coverable], title: str) -> str:
    from regelwerk.report.page import esc

    if not untested:
        return ""
    rows = [(esc(CATEGORY_WORDS.get(i.category, (i.category,) * 3)[1]), esc(item_label(page, i)),
             f"<code>{esc(i.item)}</code>") for i in untested]
    return (f'<details class="tech coverage"><summary>{esc(title)}</summary>'
            + page.table(["Soort", "Niet getest", "Kenmerk"], rows) + "</details>")


def block(page: ReportPage, kind: str, name: str) -> str:
    """The card's "Door de scenario's getest" block ("" without coverage or without coverable items)."""
    from regelwerk.report.page import esc

    run = page.data.coverage
    items = _doc_items(page, kind, name)
    if run is None or not run.scenarios or not items:
        return ""  # nothing measured: the overview says so once, the cards stay quiet
    untested = [i for i in items if not run.covered(i)]
    parts = [f'<div class="coverage"><p class="meta"><b>Door de scenario\'s getest:</b> '
             f"{esc(summary(page, items))}</p>"]
    if untested:
        lines = []
        for category, group in _ordered(untested):
            labels = _guards(page, group) if category == "guard branches" else [item_label(page, i) for i in group]
            shown = "; ".join(labels[:SHOWN]) + (f"; en nog {len(labels) - SHOWN}" if len(labels) > SHOWN else "")
            lines.append(f"<li>{esc(CATEGORY_WORDS.get(category, (category,) * 3)[1].capitalize())}: "
                         f"{esc(shown)}</li>")
        parts.append(f'<p class="meta">Niet getest:</p><ul class="untested">{"".join(lines)}</ul>')
        parts.append(_detail(page, untested, "Technische details: niet geteste onderdelen met hun kenmerk"))
    else:
        parts.append('<p class="meta">Alles hiervan is door de scenario\'s getest.</p>')
    return "".join(parts) + "</div>"


def overview(page: ReportPage, carded: set[str]) -> str:
    """The section "Getest met scenario's": which scenarios ran, the share per kind of item and per definition,
    and the blocks of definitions that have no card of their own (their kind is in no section)."""
    from regelwerk.report.page import esc

    run = page.data.coverage
    if run is None:
        return ""
    if not run.scenarios:
        return ('<p class="note">Bij deze configuratie zijn geen scenario\'s (testgevallen) gevonden: wat er getest '
                "is, is niet gemeten.</p>")
    docs: dict[tuple[str, str], list[Coverable]] = {}
    for key, obj in page.compiled.objects.items():
        if key in page.data.hidden:
            continue
        items = _doc_items(page, *key)
        if items and obj is not None:
            docs[key] = items
    every = [i for items in docs.values() for i in items]
    covered = sum(run.covered(i) for i in every)
    total = len(every)
    count = len(run.scenarios)
    what = ("1 scenario (een testgeval met een verwacht resultaat)" if count == 1
            else f"{count} scenario’s (testgevallen met een verwacht resultaat)")
    parts = [f'<p class="desc">De consultant heeft deze configuratie getest met {what}. ']
    if run.failed:
        parts.append(f"<b>Let op:</b> {len(run.failed)} van de {count} slagen niet: "
                     f"{esc(', '.join(run.failed))}.</p>")
    else:
        parts.append("Het slaagt.</p>" if count == 1 else "Ze slagen allemaal.</p>")
    parts.append(f'<p class="coverage-total"><b>Door de scenario\'s getest: {covered} van {total} onderdelen '
                 f"({percent(covered, total)})</b></p>")
    rows = []
    for category, group in _ordered(every):
        hit = sum(run.covered(i) for i in group)
        rows.append((esc(CATEGORY_WORDS.get(category, (category,) * 3)[2]), str(hit), str(len(group)),
                     percent(hit, len(group))))
    parts.append(page.table(["Soort onderdeel", "Getest", "Totaal", "Getest (%)"], rows))
    per_doc = []
    for (kind, name), items in docs.items():
        hit = sum(run.covered(i) for i in items)
        per_doc.append((esc(page.title_of(kind, name)), f"{hit} van {len(items)}", percent(hit, len(items))))
    parts.append('<p class="meta"><b>Per onderdeel</b> (wat niet getest is, staat bij het onderdeel zelf)</p>')
    parts.append(page.table(["Onderdeel", "Getest", "Getest (%)"], per_doc))
    loose = [(k, n) for (k, n) in docs if k not in carded]
    for kind, name in loose:
        parts.append(f'<div class="item"><h3>{esc(page.title_of(kind, name))}</h3>{block(page, kind, name)}</div>')
    parts.append('<p class="meta">Een overgang telt als getest als een scenario hem heeft laten plaatsvinden; een '
                 "voorwaarde telt twee keer: één keer voldaan en één keer niet voldaan. Een planmoment telt als een "
                 "scenario het heeft laten ontstaan.</p>")
    return "".join(parts)
