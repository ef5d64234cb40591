"""The configuration report as one self-contained HTML page (inline CSS and SVG, no scripts, no network).

Pack models (talent, recruitment, MijnLoket) are read by their attributes: the engine does not
import packs, and a section is left out when the bundle has no documents of its kinds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from regelwerk.report._text import dutch_date, esc, human_duration, short_json
from regelwerk.report.diff import DocumentChange
from regelwerk.report.svg import is_wildcard, workflow_svg
from regelwerk.report.timeline import describe_schedule, reference_year, timeline_svg

__all__ = ["CHANGE_LABELS", "ReportData", "render_report"]

CHANGE_LABELS = {"added": "Toegevoegd", "replaced": "Vervangen", "patched": "Aangepast", "removed": "Verwijderd",
                 "changed": "Gewijzigd"}
INVITEE_LABELS = {"self": "medewerker zelf", "manager": "leidinggevende"}
START_LABELS = {"automatic": "automatisch", "manual": "handmatig", "none": "geen"}
COUNTS_FROM = {"status": "statuswijziging", "consent": "toestemming", "application": "sollicitatie"}

CSS = """
:root{--ink:#1b2733;--muted:#5b6b7e;--line:#dde3ec;--soft:#f5f7fa;--brand:#1f4e79;--accent:#b5651d;
--ok:#2e7d32;--bad:#b3261e;--chg:#fff4d6;--chg-line:#e0a800}
*{box-sizing:border-box}
html{font-size:15px}
body{margin:0;color:var(--ink);background:#eef1f5;line-height:1.5;
font-family:"Segoe UI","Helvetica Neue",Arial,"Liberation Sans","DejaVu Sans",sans-serif}
.page{max-width:1200px;margin:0 auto;background:#fff;min-height:100vh;box-shadow:0 0 0 1px var(--line)}
header.cover{background:var(--brand);color:#fff;padding:32px 48px 28px}
header.cover .eyebrow{text-transform:uppercase;letter-spacing:.12em;font-size:12px;opacity:.8}
header.cover h1{margin:4px 0 14px;font-size:30px;font-weight:600}
header.cover dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:0;font-size:14px}
header.cover dt{opacity:.75}header.cover dd{margin:0}
.chain span{display:inline-block;padding:1px 10px;border-radius:12px;background:rgba(255,255,255,.15)}
.chain span.self{background:#fff;color:var(--brand);font-weight:600}
main{padding:8px 48px 48px}
nav.toc{margin:24px 0 8px;padding:16px 20px;background:var(--soft);border:1px solid var(--line);border-radius:8px}
nav.toc h2{margin:0 0 8px;font-size:15px;border:0;padding:0}
nav.toc ol{margin:0;padding-left:22px;columns:2;column-gap:40px}
nav.toc a{color:var(--brand);text-decoration:none}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px;margin:18px 0}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px}
.card b{display:block;font-size:24px;color:var(--brand);font-weight:600}
.card span{font-size:13px;color:var(--muted)}
.card.highlight{background:var(--chg);border-color:var(--chg-line)}
section{margin-top:34px}
h2{font-size:22px;font-weight:600;color:var(--brand);border-bottom:2px solid var(--brand);padding-bottom:6px;
margin:0 0 14px}
h3{font-size:17px;margin:0 0 4px;font-weight:600}
.item{border:1px solid var(--line);border-radius:8px;padding:16px 18px;margin:14px 0;background:#fff}
.item.changed{border-left:5px solid var(--chg-line);background:linear-gradient(90deg,var(--chg),#fff 220px)}
.meta{color:var(--muted);font-size:13px;margin:0 0 10px}
.meta code,td code{font-size:12px;background:var(--soft);padding:0 4px;border-radius:3px}
.desc{margin:4px 0 10px}
.badge{display:inline-block;font-size:11.5px;font-weight:600;padding:1px 8px;border-radius:10px;margin-left:8px;
vertical-align:middle;background:#e3e8ef;color:var(--ink)}
.badge.added{background:#d9f0dc;color:#1b5e20}.badge.replaced{background:#fde2cf;color:#8a3b00}
.badge.patched,.badge.changed{background:var(--chg);color:#6d4c00;border:1px solid var(--chg-line)}
.badge.removed{background:#f9d6d3;color:var(--bad)}
table{border-collapse:collapse;width:100%;margin:8px 0 4px;font-size:13.5px}
th,td{border:1px solid var(--line);padding:6px 9px;text-align:left;vertical-align:top;background:#fff}
th{background:var(--soft);font-weight:600}
tbody tr:nth-child(even) td{background:#fafbfd}
td.none{color:#9aa6b4;text-align:center}.deny{color:var(--bad);font-weight:600}
.allow{color:#1b5e20}
h3 code{font-size:12.5px;font-weight:400;color:var(--muted);background:var(--soft);padding:1px 6px;border-radius:4px;
margin-left:6px}
.chip{display:inline-block;padding:1px 9px;margin:2px 4px 2px 0;border-radius:11px;font-size:12.5px;
border:1px solid #b8c7d9;background:#f3f7fb}
.chip.archive{border-style:dashed;background:#fff;color:var(--muted)}
.diagram-wrap{overflow-x:auto;border:1px solid var(--line);border-radius:6px;padding:8px;background:#fff;margin:8px 0}
.diagram-wrap svg{display:block;max-width:100%;height:auto}
.legend{font-size:12.5px;color:var(--muted);margin:6px 0 10px}
.legend span{margin-right:16px;white-space:nowrap}
.sw{display:inline-block;width:18px;height:11px;border:1.5px solid #2f5d8a;border-radius:3px;vertical-align:-1px;
margin-right:4px}
.sw.final{border:3px double var(--ok)}.sw.archive{border-style:dashed}
.sw.star{width:11px;height:11px;border-radius:50%;background:var(--accent);border-color:var(--accent)}
.sw.fb{width:10px;height:10px;transform:rotate(45deg);background:var(--accent);border-color:var(--accent)}
.sw.mo{width:11px;height:11px;border-radius:50%;background:#2f5d8a}
.sw.dot{width:10px;height:10px;border-radius:50%;background:#1b2733;border-color:#1b2733}
.diff td.ptr{font-family:Consolas,"DejaVu Sans Mono",monospace;font-size:12px;white-space:nowrap}
.diff td.ptr small{font-family:"Segoe UI",Arial,"Liberation Sans",sans-serif;color:var(--muted)}
.diff .old{color:var(--bad);text-decoration:line-through;text-decoration-color:rgba(179,38,30,.5)}
.diff .new{color:#1b5e20;font-weight:600}
.note{background:var(--soft);border-left:4px solid var(--brand);padding:8px 12px;border-radius:4px;font-size:14px}
.empty{color:var(--muted);font-style:italic}
.signoff{display:grid;grid-template-columns:1fr 1fr;gap:28px;margin-top:10px}
.signoff div{border:1px solid var(--line);border-radius:8px;padding:14px 18px;min-height:150px}
.signoff p{margin:14px 0 0;border-bottom:1px solid #9aa6b4;padding-bottom:18px;color:var(--muted);font-size:13px}
footer{color:var(--muted);font-size:12px;padding:16px 48px;border-top:1px solid var(--line)}
@media print{body{background:#fff}.page{box-shadow:none;max-width:none}section{break-inside:auto}
.item{break-inside:avoid}header.cover{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


@dataclass
class ReportData:
    """Everything the report shows: the effective compiled bundle and the overlay's differences."""

    compiled: Any
    today: date
    differences: Sequence[DocumentChange] = ()
    changes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    extends: bool = False
    base_name: str = ""


class _Page:
    def __init__(self, data: ReportData) -> None:
        self.data = data
        self.compiled = data.compiled
        self.sections: list[tuple[str, str, str]] = []  # (anchor, title, html)

    # helpers -----------------------------------------------------------------------------
    def of_kind(self, kind: str) -> dict[str, Any]:
        found: dict[str, Any] = self.compiled.of_kind(kind)
        return found

    def badge(self, kind: str, name: str) -> str:
        change = self.data.changes.get((kind, name))
        if not change:
            return ""
        return f'<span class="badge {esc(change)}">{esc(CHANGE_LABELS.get(change, change))}</span>'

    def item(self, kind: str, name: str, title: str, body: str, anchor: str = "") -> str:
        changed = " changed" if (kind, name) in self.data.changes else ""
        ident = f' id="{esc(anchor)}"' if anchor else ""
        shown = f"{esc(title)} <code>{esc(name)}</code>" if title and title != name else f"<code>{esc(name)}</code>"
        fields = next((c.fields for c in self.data.differences if (c.kind, c.name) == (kind, name)), ())
        note = ""
        if fields:
            listed = ", ".join(f"<code>{esc(f.path)}</code>" for f in fields[:8])
            more = f" en {len(fields) - 8} meer" if len(fields) > 8 else ""
            note = f'<p class="meta">Anders dan de standaard: {listed}{more} (zie Afwijkingen).</p>'
        return (f'<div class="item{changed}"{ident} data-kind="{esc(kind)}" data-name="{esc(name)}">'
                f"<h3>{shown}{self.badge(kind, name)}</h3>{note}{body}</div>")

    @staticmethod
    def table(header: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
        """A table; cells are already-escaped HTML."""
        head = "".join(f"<th>{h}</th>" for h in header)
        body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>"
                       for row in rows)
        attr = f' class="{cls}"' if cls else ""
        return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def add(self, anchor: str, title: str, body: str) -> None:
        if body:
            self.sections.append((anchor, title, body))

    # sections ----------------------------------------------------------------------------
    def differences(self) -> str:
        data = self.data
        if not data.extends:
            return ('<p class="note">Deze bundel breidt geen andere bundel uit: dit is de standaardconfiguratie '
                    "zelf, er zijn geen afwijkingen.</p>")
        if not data.differences and not data.changes:
            return f'<p class="note">Geen afwijkingen van <code>{esc(data.base_name)}</code>.</p>'
        rows = []
        for change in data.differences:
            detail = ""
            if change.fields:
                fields = [(f'<td class="ptr">{esc(f.pointer)}<br><small>{esc(f.path)}'
                           f'{" (standaard)" if f.change == "removed" else ""}</small></td>',
                           f'<span class="old">{esc(short_json(f.old))}</span>' if f.change != "added" else "—",
                           f'<span class="new">{esc(short_json(f.new))}</span>' if f.change != "removed" else
                           '<span class="old">verwijderd</span>') for f in change.fields]
                detail = self.table(["Veld (JSON pointer)", "Standaard", "Klant"], fields, "diff")
            elif change.mode == "replaced":
                detail = '<span class="empty">geen verschillen in de velden</span>'
            title = f"{esc(change.label)}<br><code>{esc(change.name)}</code>" if change.label else \
                f"<code>{esc(change.name)}</code>"
            rows.append((esc(change.kind), title,
                         f'<span class="badge {esc(change.mode)}">{esc(CHANGE_LABELS.get(change.mode, change.mode))}'
                         "</span>", detail))
        documented = {(c.kind, c.name) for c in data.differences}
        derived = [(k, n, c) for (k, n), c in sorted(data.changes.items()) if (k, n) not in documented]
        out = (f'<p class="meta">Vergeleken met <code>{esc(data.base_name)}</code>. Gewijzigde definities zijn in '
               "het hele rapport geel gemarkeerd.</p>")
        out += self.table(["Soort", "Definitie", "Wijziging", "Verschillen"], rows, "diff")
        if derived:
            out += ("<p class=\"meta\">Afgeleide objecten die daardoor ook anders zijn (bijvoorbeeld de workflow "
                    "van een wervingsproces):</p>")
            out += self.table(["Soort", "Naam", "Wijziging"], [
                (esc(k), f"<code>{esc(n)}</code>", f'<span class="badge {esc(c)}">{esc(CHANGE_LABELS.get(c, c))}'
                 "</span>") for k, n, c in derived])
        return out

    def statuses(self) -> str:
        parts = []
        for name, sset in self.of_kind("CandidateStatusSet").items():
            rows = []
            for group, label in sset.group_labels.items():
                members = [s for s in sset.statuses if s.group == group]
                active = "".join(f'<span class="chip">{esc(s.label)}</span>' for s in members if not s.archive)
                archive = "".join(f'<span class="chip archive">{esc(s.label)}</span>' for s in members if s.archive)
                rows.append((f"<b>{esc(label)}</b><br><code>{esc(group)}</code>", active or '<span class="empty">'
                             "—</span>", archive or '<span class="empty">—</span>'))
            body = self.table(["Statusgroep", "Actieve statussen", "Archiefstatussen"], rows)
            parts.append(self.item("CandidateStatusSet", name, "Kandidaatstatussen", body))
        return "".join(parts)

    def workflows(self) -> str:
        parts = []
        origins = {rw.workflow: (n, rw) for n, rw in self.of_kind("RecruitmentWorkflow").items()}
        for index, (name, wf) in enumerate(self.of_kind("Workflow").items()):
            meta = [f"{len(wf.states)} statussen", f"{len(wf.transitions)} overgangen",
                    f"begint in <b>{esc(_state_label(wf, wf.initial))}</b>"]
            if wf.resource_type:
                meta.append(f"voor <code>{esc(wf.resource_type)}</code>")
            origin = origins.get(name)
            if origin:
                meta.append(f"afgeleid van wervingsproces <code>{esc(origin[0])}</code>")
            body = f'<p class="meta">{" · ".join(meta)}</p>'
            if wf.description:
                body += f'<p class="desc">{esc(wf.description)}</p>'
            body += f'<div class="diagram-wrap">{workflow_svg(wf, f"wf{index}")}</div>'
            body += _legend(any(is_wildcard(wf, t) for t in wf.transitions))
            rows = []
            for t in wf.transitions:
                sources = ("<i>elke andere status</i>" if is_wildcard(wf, t)
                           else ", ".join(esc(_state_label(wf, s)) for s in t.sources))
                rows.append((f"<code>{esc(t.event)}</code>", esc(t.label or ""), sources,
                             esc(_state_label(wf, t.dest)), esc(t.guard.text) if t.guard is not None else "—",
                             esc(t.permission) or "—", esc(", ".join(a.name for a in t.actions)) or "—"))
            body += self.table(["Gebeurtenis", "Omschrijving", "Van", "Naar", "Voorwaarde", "Recht", "Acties"], rows)
            timers = [(esc(s.label), esc(human_duration(tm.duration)), f"<code>{esc(tm.event)}</code>")
                      for s in wf.states for tm in s.after]
            if timers:
                body += self.table(["Status", "Na", "Gebeurtenis"], timers)
            if origin:
                rw = origin[1]
                moves = [(", ".join(esc(_state_label(wf, s)) for s in mv.sources),
                          ", ".join(esc(_state_label(wf, s)) for s in mv.targets), esc(", ".join(mv.by)))
                         for mv in rw.moves]
                if moves:
                    body += "<p class=\"meta\">Wie mag kandidaten verplaatsen:</p>"
                    body += self.table(["Van", "Naar", "Door"], moves)
            changed_doc = origin and ("RecruitmentWorkflow", origin[0]) in self.data.changes
            kind = "RecruitmentWorkflow" if changed_doc and origin else "Workflow"
            item_name = origin[0] if changed_doc and origin else name
            html = self.item(kind, item_name, wf.label, body, f"workflow-{name}")
            if kind != "Workflow":
                html = html.replace(f"<code>{esc(item_name)}</code>", f"<code>{esc(name)}</code>", 1)
            parts.append(html)
        return "".join(parts)

    def cycles(self) -> str:
        parts = []
        for index, (name, cycle) in enumerate(self.of_kind("DevelopmentCycle").items()):
            year = reference_year(cycle, self.data.today)
            cal = cycle.calendar
            meta = [f"werkjaar: {esc(cal.label or cal.name)} ({esc(dutch_date(year.start))} t/m "
                    f"{esc(dutch_date(year.end))})",
                    f"trajecten {esc(human_duration(cycle.plan_ahead)) or 'direct'} vooraf gepland",
                    "rollen: " + (", ".join(esc(r.label) for r in cycle.roles.values()) or "—")]
            if cycle.groups:
                meta.append("groepen: " + esc(", ".join(cycle.groups)))
            if cycle.when is not None:
                meta.append("voorwaarde: " + esc(cycle.when.text))
            body = f'<p class="meta">{" · ".join(meta)}</p>'
            body += f'<div class="diagram-wrap">{timeline_svg(cycle, year, f"cycle{index}")}</div>'
            body += ('<p class="legend"><span><i class="sw mo"></i>gespreksmoment</span>'
                     '<span><i class="sw fb"></i>feedbackronde</span><span>gestreept: ontstaat per medewerker '
                     "(bijvoorbeeld na indiensttreding)</span></p>")
            rows = []
            for m in cycle.moments:
                rounds = [r.label for r in cycle.feedback_rounds if r.name == m.feedback_round
                          or (r.timing == "before_moment" and r.moment == m.id)]
                rows.append((esc(m.label), esc(describe_schedule(m.arises)), esc(START_LABELS.get(m.start, m.start)),
                             f"<code>{esc(m.workflow)}</code>", esc(m.dossier_item_type),
                             esc(", ".join(rounds)) or "—"))
            body += self.table(["Gespreksmoment", "Ontstaat", "Start", "Workflow", "Dossieritem", "Feedbackronde"],
                               rows)
            parts.append(self.item("DevelopmentCycle", name, cycle.label, body))
        return "".join(parts)

    def feedback(self) -> str:
        parts = []
        for name, fround in self.of_kind("FeedbackRound").items():
            if fround.timing == "before_moment":
                when = f"{fround.days_ahead} dagen vóór het gespreksmoment <code>{esc(fround.moment)}</code>"
            elif fround.arises is not None:
                when = esc(describe_schedule(fround.arises))
            else:
                when = esc(fround.timing)
            invite = ", ".join(esc(INVITEE_LABELS.get(w, w)) for w in fround.invite)
            body = (f'<p class="meta">{when} · uitgenodigd: {invite} · start: '
                    f"{esc(START_LABELS.get(fround.start, fround.start))} · workflow "
                    f"<code>{esc(fround.workflow)}</code></p>")
            body += self.table(["Vraag", "Tekst"], [(f"<code>{esc(q.get('id', ''))}</code>", esc(q.get("text", "")))
                                                    for q in fround.questions])
            parts.append(self.item("FeedbackRound", name, fround.label, body))
        return "".join(parts)

    def matrices(self) -> str:
        parts = []
        for name, matrix in self.of_kind("TalentMatrix").items():
            perf = list(matrix.performance)
            pot = list(reversed(matrix.potential))
            rows = []
            for pid, plabel, _ in pot:
                cells = []
                for fid, _, _ in perf:
                    profile, cell = matrix.cells.get((fid, pid), ("", ""))
                    cells.append(esc(cell or matrix.profiles.get(profile, profile)))
                rows.append([f"<b>{esc(plabel)}</b>"] + cells)
            body = f'<p class="meta">model {esc(matrix.model)} · rijen: potentieel · kolommen: prestatie</p>'
            body += self.table(["Potentieel \\ Prestatie"] + [esc(label) for _, label, _ in perf], rows)
            parts.append(self.item("TalentMatrix", name, matrix.label, body))
        return "".join(parts)

    def permissions(self) -> str:
        from regelwerk.permissions.render import _extras, matrix_rows

        parts = []
        for name, matrix in self.of_kind("PermissionMatrix").items():
            header, rows = matrix_rows(matrix)
            cells = []
            for i, row in enumerate(rows):
                out = []
                if i == 0 or rows[i - 1][0] != row[0]:
                    span = 1
                    while i + span < len(rows) and rows[i + span][0] == row[0]:
                        span += 1
                    out.append(f'<td rowspan="{span}"><b>{esc(row[0])}</b></td>')
                out.append(esc(row[1]))
                for cell in row[2:]:
                    if cell == "—":
                        out.append('<td class="none">—</td>')
                        continue
                    parts = [f'<span class="{"deny" if p.startswith("✗") else "allow"}">{esc(p)}</span>'
                             for p in cell.split("; ")]
                    out.append("<td>" + "<br>".join(parts) + "</td>")
                cells.append(out)
            body = self.table([esc(h) for h in header], cells)
            for title, items in _extras(matrix):
                body += f'<p class="meta"><b>{esc(title)}</b></p><ul>' + "".join(
                    f"<li>{esc(i)}</li>" for i in items) + "</ul>"
            parts.append(self.item("PermissionMatrix", name, matrix.label, body))
        return "".join(parts)

    def catalogs(self) -> str:
        parts = []
        for name, catalog in self.of_kind("ProductCatalog").items():
            rows = []
            for tier in catalog.tiers:
                products = [i for i in catalog.products if i.tier == tier.id]
                prefix = catalog.label_prefix
                rows.append((f"<b>{esc(tier.label)}</b>",
                             "".join(f'<span class="chip">{esc(i)}</span>' for i in tier.includes) or "—",
                             "".join(f'<span class="chip">{esc(_unprefixed(p.label, prefix))}</span>'
                                     for p in products) or "—"))
            body = self.table(["Variant", "Altijd inbegrepen", "Producten die deze variant vereisen"], rows)
            supporting = [i for i in catalog.items if i.kind == "supporting"]
            if supporting:
                srows = []
                for item in supporting:
                    needed_by = [p.label for p in catalog.products if item.id in p.needs]
                    variants = [catalog.item(v).label for v in item.variants]
                    srows.append((esc(item.label), esc(item.purpose) or "—", esc(", ".join(variants)) or "—",
                                  esc(", ".join(needed_by)) or "—"))
                body += "<p class=\"meta\"><b>Aanvullende (ondersteunende) producten</b></p>"
                body += self.table(["Product", "Doel", "Varianten", "Nodig voor"], srows)
            if catalog.rights:
                body += self.table(["Recht", "Omschrijving", "Toe te kennen aan"], [
                    (esc(r.label), esc(r.description), esc(", ".join(r.grantable_to))) for r in catalog.rights])
            if catalog.requires_addendum:
                body += f'<p class="note"><b>Addendum vereist.</b> {esc(catalog.addendum)}</p>'
            if catalog.where:
                body += f'<p class="meta">Activeren via: {esc(catalog.where)}</p>'
            parts.append(self.item("ProductCatalog", name, catalog.label, body))
        return "".join(parts)

    def retention(self) -> str:
        parts = []
        groups: dict[str, str] = {}
        for sset in self.of_kind("CandidateStatusSet").values():
            groups.update(sset.group_labels)
        for name, policy in self.of_kind("RetentionPolicy").items():
            rows = []
            for rule in policy.rules:
                scope = [groups.get(g, g) for g in rule.groups] + list(rule.statuses)
                consent = "ongeacht" if rule.consent is None else "ja" if rule.consent else "nee"
                renew = (f"{human_duration(rule.renew_before)} vooraf vragen"
                         + (f" (sjabloon {rule.renew_template})" if rule.renew_template else "")
                         if rule.renew_before is not None else "—")
                rows.append((f"<b>{esc(rule.label)}</b><br><code>{esc(rule.id)}</code>",
                             esc(", ".join(scope)) or "alle kandidaten", esc(consent),
                             esc(human_duration(rule.keep)), esc(COUNTS_FROM.get(rule.counts_from, rule.counts_from)),
                             esc(renew)))
            body = '<p class="meta">De eerste regel die past beslist; past geen regel, dan blijven de gegevens.</p>'
            body += self.table(["Regel", "Geldt voor", "Toestemming", "Bewaren", "Vanaf", "Verlengen"], rows)
            parts.append(self.item("RetentionPolicy", name, policy.label, body))
        return "".join(parts)

    def decisions(self) -> str:
        parts = []
        for name, table in self.of_kind("DecisionTable").items():
            header = ["#"] + [f"{esc(c.label or c.id)}<br><code>{esc(c.id)}</code>" for c in table.inputs]
            header += [f"→ {esc(c.label or c.id)}<br><code>{esc(c.id)}</code>" for c in table.outputs]
            with_cond = any(r.condition is not None for r in table.rows)
            header += (["Extra voorwaarde"] if with_cond else []) + ["Toelichting"]
            rows = []
            for row in table.rows:
                entries = {e.input: e.text for e in row.entries}
                outputs = dict(row.outputs)
                cells = [f"<code>{esc(row.id)}</code>"]
                cells += [esc(entries.get(c.id, "–")) for c in table.inputs]
                cells += [f"<b>{esc(short_json(outputs.get(c.id)))}</b>" for c in table.outputs]
                if with_cond:
                    cells.append(esc(row.condition.text) if row.condition is not None else "—")
                cells.append(esc(row.description))
                rows.append(cells)
            policy = table.hit_policy + (f" ({table.aggregation})" if table.aggregation else "")
            body = f'<p class="meta">hit policy {esc(policy)} · {len(table.rows)} regels</p>'
            if table.description:
                body += f'<p class="desc">{esc(table.description)}</p>'
            body += self.table(header, rows)
            parts.append(self.item("DecisionTable", name, table.label, body))
        return "".join(parts)

    def rulesets(self) -> str:
        parts = []
        for name, ruleset in self.of_kind("RuleSet").items():
            rows = [(f"<code>{esc(r.id)}</code>" + (f"<br>{esc(r.label)}" if r.label else ""), esc(r.priority),
                     esc(r.when.text), "<br>".join(esc(a.name + (" " + short_json(dict(a.params), 120)
                                                                 if a.params else "")) for a in r.then))
                    for r in ruleset.rules]
            body = f'<p class="desc">{esc(ruleset.description)}</p>' if ruleset.description else ""
            body += self.table(["Regel", "Prioriteit", "Wanneer", "Dan"], rows)
            parts.append(self.item("RuleSet", name, ruleset.label, body))
        return "".join(parts)

    def others(self, shown: set[str]) -> str:
        rows = []
        for (kind, name), obj in sorted(self.compiled.objects.items()):
            if kind in shown:
                continue
            label = getattr(obj, "label", "")
            rows.append((esc(kind), f"<code>{esc(name)}</code>", esc(label if isinstance(label, str) else ""),
                         self.badge(kind, name) or "—"))
        if not rows:
            return ""
        return self.table(["Soort", "Naam", "Omschrijving", "Ten opzichte van de standaard"], rows)

    # the page ------------------------------------------------------------------------------
    def render(self) -> str:
        compiled = self.compiled
        self.add("afwijkingen", "Afwijkingen van de standaard", self.differences())
        self.add("statussen", "Statusgroepen en kandidaatstatussen", self.statuses())
        self.add("workflows", "Workflows", self.workflows())
        self.add("ontwikkelcyclus", "Ontwikkelcyclus", self.cycles())
        self.add("feedback", "Feedbackrondes", self.feedback())
        self.add("talentmatrix", "Talentmatrix", self.matrices())
        self.add("rechten", "Rechten (permissiematrix)", self.permissions())
        self.add("mijnloket", "MijnLoket: varianten en producten", self.catalogs())
        self.add("bewaartermijnen", "Bewaartermijnen (AVG)", self.retention())
        self.add("beslistabellen", "Beslistabellen", self.decisions())
        self.add("regels", "Regelsets", self.rulesets())
        shown = {"CandidateStatusSet", "Workflow", "DevelopmentCycle", "FeedbackRound", "TalentMatrix",
                 "PermissionMatrix", "ProductCatalog", "RetentionPolicy", "DecisionTable", "RuleSet"}
        self.add("overig", "Overige definities", self.others(shown))
        self.add("akkoord", "Akkoord", _signoff())

        chain = " → ".join(f'<span class="{"self" if i == len(compiled.chain) - 1 else ""}">{esc(n)}</span>'
                           for i, n in enumerate(compiled.chain or (compiled.name,)))
        counts = [(len(self.of_kind("Workflow")), "workflows"), (len(self.of_kind("PermissionMatrix")),
                                                                 "permissiematrices"),
                  (len(self.of_kind("DecisionTable")), "beslistabellen"), (len(self.of_kind("RuleSet")), "regelsets"),
                  (len(compiled.objects), "definities in totaal")]
        cards = "".join(f'<div class="card"><b>{n}</b><span>{esc(label)}</span></div>' for n, label in counts)
        cards += (f'<div class="card{" highlight" if self.data.changes else ""}"><b>{len(self.data.changes)}</b>'
                  "<span>afwijkingen van de standaard</span></div>")
        toc = "".join(f'<li><a href="#{a}">{esc(t)}</a></li>' for a, t, _ in self.sections)
        body = "".join(f'<section id="{a}"><h2>{esc(t)}</h2>{html}</section>' for a, t, html in self.sections)
        title = f"Configuratierapport {compiled.name}"
        return (
            "<!DOCTYPE html>\n<html lang=\"nl\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><div class=\"page\">"
            '<header class="cover"><div class="eyebrow">Configuratierapport ter ondertekening</div>'
            f"<h1>{esc(compiled.name)}</h1><dl>"
            f'<dt>Opbouw</dt><dd class="chain">{chain}</dd>'
            f"<dt>Versie</dt><dd><code>{esc(compiled.version)}</code></dd>"
            f"<dt>Datum</dt><dd>{esc(dutch_date(self.data.today))}</dd></dl></header>"
            f'<main><div class="cards">{cards}</div><nav class="toc"><h2>Inhoud</h2><ol>{toc}</ol></nav>{body}</main>'
            f"<footer>Gegenereerd door regelwerk uit de effectieve configuratie (standaard plus klantaanpassingen) "
            f"van {esc(compiled.name)}, versie {esc(compiled.version)}.</footer></div></body></html>\n"
        )


def _state_label(wf: Any, state_id: str) -> str:
    try:
        label: str = wf.state(state_id).label
    except KeyError:
        return state_id
    return label or state_id


def _unprefixed(label: str, prefix: str) -> str:
    return label[len(prefix):].strip() if prefix and label.startswith(prefix) and len(label) > len(prefix) else label


def _legend(wildcards: bool) -> str:
    items = ['<span><i class="sw"></i>status</span>', '<span><i class="sw final"></i>eindstatus</span>',
             '<span><i class="sw archive"></i>archiefstatus</span>', '<span><i class="sw dot"></i>begin</span>']
    if wildcards:
        items.append('<span><i class="sw star"></i>bereikbaar vanuit elke andere status</span>')
    return f'<p class="legend">{"".join(items)}</p>'


def _signoff() -> str:
    return ('<p>Met ondertekening verklaren partijen dat deze configuratie (versie en afwijkingen zoals hierboven '
            'beschreven) overeenkomt met de gemaakte afspraken.</p><div class="signoff">'
            "<div><b>Namens de klant</b><p>Naam</p><p>Datum</p><p>Handtekening</p></div>"
            "<div><b>Namens de implementatieconsultant</b><p>Naam</p><p>Datum</p><p>Handtekening</p></div></div>")


def render_report(data: ReportData) -> str:
    """The whole report page (HTML5, inline CSS and SVG, no scripts)."""
    return _Page(data).render()
