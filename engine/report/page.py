"""The configuration report as one self-contained HTML page (inline CSS and SVG, no scripts, no network).

Written in Dutch for the HR manager who signs it: the customer's name and the standard's version on the cover,
only the sections the customer uses, the differences from the standard as sentences (``words.py``), the
technical detail folded away for the consultant. The sections come from the registry
(``Registry.add_report_section``): the core contributes workflows, permissions, decision tables and rule sets
(``sections.py``), the packs theirs; the page itself names no kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from regelwerk.coverage import Coverable, ScenarioRun
from regelwerk.errors import PluginError, RegelwerkError, is_plugin_fault
from regelwerk.report._text import dutch_date, esc, human_duration, short_json, text_width
from regelwerk.report.diff import DocumentChange, FieldChange
from regelwerk.report.words import Words, sentence_for

# dutch_date, esc, human_duration, text_width: text helpers for the plugins' report sections
__all__ = ["CHANGE_LABELS", "ReportData", "ReportPage", "dutch_date", "esc", "human_duration", "render_report",
           "text_width"]

CHANGE_LABELS = {"added": "Toegevoegd", "replaced": "Vervangen", "patched": "Aangepast", "removed": "Verwijderd",
                 "changed": "Gewijzigd"}

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
.diagram-wrap svg{display:block;max-width:none;height:auto}
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
ul.changes{margin:6px 0 10px;padding-left:22px}ul.changes li{margin:3px 0}
details.tech{margin:8px 0 4px;font-size:13px}details.tech summary{cursor:pointer;color:var(--muted)}
.unused{color:var(--muted);font-size:13.5px}
.coverage{margin:12px 0 0;padding:8px 12px;border-top:1px dashed var(--line);background:#fbfcfe}
.coverage .meta{margin:2px 0}ul.untested{margin:2px 0 6px;padding-left:22px;font-size:13px;color:var(--ink)}
ul.untested li{margin:2px 0}.coverage-total{font-size:16px;margin:8px 0}
@page{size:A4;margin:16mm 14mm 18mm;@bottom-right{content:"Pagina " counter(page) " van " counter(pages);
font-size:10px;color:#5b6b7e;font-family:"Segoe UI","Helvetica Neue",Arial,"Liberation Sans",sans-serif}}
@media print{html{font-size:12px}body{background:#fff}.page{box-shadow:none;max-width:none}section{break-inside:auto}
h2{break-after:avoid}nav.toc{break-after:page}
.item{break-inside:avoid}header.cover{-webkit-print-color-adjust:exact;print-color-adjust:exact}
details.tech{display:none}.diagram-wrap{overflow:visible;border:0;padding:0}.diagram-wrap svg{max-width:100%}
main{padding:0 4px}footer{padding:8px 4px}}
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
    customer: str = ""
    standard_version: str = ""
    hidden: frozenset[tuple[str, str]] = frozenset()
    unused: Sequence[str] = ()
    base_documents: Mapping[tuple[str, str], Any] = field(default_factory=dict)  # plain data of the base's
    effective_documents: Mapping[tuple[str, str], Any] = field(default_factory=dict)  # ... and the effective ones
    words: Words = field(default_factory=Words)
    coverage: ScenarioRun | None = None  # the bundle's scenarios run with coverage on; None: not measured


class ReportPage:
    """What a report section gets: the bundle, the overlay's changes, and helpers for items and tables.

    A section (``ReportSectionSpec.render``) returns HTML built with these helpers; every text from a definition
    goes through ``esc``. Items of a kind the customer changed are highlighted and badged by ``item``.
    """

    def __init__(self, data: ReportData) -> None:
        self.data = data
        self.compiled = data.compiled
        self.today = data.today
        self.words = data.words
        self.sections: list[tuple[str, str, str]] = []  # (anchor, title, html)
        self.coverage_items: dict[tuple[str, str], list[Coverable]] | None = None  # coverable items per definition

    def of_kind(self, kind: str) -> dict[str, Any]:
        """The compiled objects of one kind the report shows (the customer uses them), by name."""
        found: dict[str, Any] = self.compiled.of_kind(kind)
        return {n: o for n, o in found.items() if (kind, n) not in self.data.hidden}

    def label_of(self, kind: str, name: str) -> str:
        """The label of a compiled definition (its name when it has none)."""
        obj = self.compiled.objects.get((kind, name))
        label = getattr(obj, "label", "") if obj is not None else ""
        return label if isinstance(label, str) and label else name

    def title_of(self, kind: str, name: str) -> str:
        """How the report names a definition: its label, else the kind's Dutch name and its name."""
        label = self.label_of(kind, name)
        if label != name:
            return label
        noun = self.words.glossary.get(f"kind:{kind}", "")
        return f"{noun} ‘{name}’" if noun else name

    @staticmethod
    def state_label(wf: Any, state_id: str) -> str:
        """The label of a workflow state (its id when unknown)."""
        try:
            label: str = wf.state(state_id).label
        except (KeyError, AttributeError):
            return state_id
        return label or state_id

    @staticmethod
    def duration(value: Any) -> str:
        """A compiled duration in Dutch words ("6 weken")."""
        return human_duration(value)

    @staticmethod
    def date(day: date) -> str:
        """A date in Dutch ("1 maart 2026")."""
        return dutch_date(day)

    def changed(self, kind: str, name: str) -> str:
        """How the customer changed this definition ("", added, patched, replaced, removed, changed)."""
        return self.data.changes.get((kind, name), "")

    def badge(self, kind: str, name: str) -> str:
        """The badge of a changed definition ("" when unchanged)."""
        change = self.changed(kind, name)
        if not change:
            return ""
        return f'<span class="badge {esc(change)}">{esc(CHANGE_LABELS.get(change, change))}</span>'

    def item(self, kind: str, name: str, title: str, body: str, anchor: str = "") -> str:
        """One definition as a card: title, badge, the sentences of its differences, then ``body``."""
        changed = " changed" if (kind, name) in self.data.changes else ""
        ident = f' id="{esc(anchor)}"' if anchor else ""
        change = next((c for c in self.data.differences if (c.kind, c.name) == (kind, name)), None)
        note = ""
        if change is not None and change.fields:
            sentences = self.sentences(change)
            shown = "".join(f"<li>{esc(s)}</li>" for s in sentences[:6])
            more = (f"<li>en {len(sentences) - 6} andere wijzigingen (zie Afwijkingen)</li>"
                    if len(sentences) > 6 else "")
            note = f'<p class="meta">Anders dan de standaard:</p><ul class="changes">{shown}{more}</ul>'
        from regelwerk.report.coverage import block

        return (f'<div class="item{changed}"{ident} data-kind="{esc(kind)}" data-name="{esc(name)}">'
                f"<h3>{esc(title or name)}{self.badge(kind, name)}</h3>{note}{body}{block(self, kind, name)}</div>")

    @staticmethod
    def table(header: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
        """A table; header and cells are already-escaped HTML (a cell may be a whole ``<td ...>``)."""
        head = "".join(f"<th>{h}</th>" for h in header)
        body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>"
                       for row in rows)
        attr = f' class="{cls}"' if cls else ""
        return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    # the differences in words -----------------------------------------------------------------
    def sentences(self, change: DocumentChange) -> list[str]:
        """Every field difference of a document as a Dutch sentence (one per changed field of an item)."""
        key = (change.kind, change.name)
        base = self.data.base_documents.get(key)
        effective = self.data.effective_documents.get(key)
        subject_doc = change.label or self.title_of(change.kind, change.name)
        out: list[str] = []
        for fc in change.fields:
            text = _sentence(self.words, subject_doc, fc, base, effective)
            if text not in out:
                out.append(text)
        return out

    def add(self, anchor: str, title: str, body: str) -> None:
        """Add a section (left out when ``body`` is empty)."""
        if body:
            self.sections.append((anchor, title, body))


def _segments(path: str) -> list[str | tuple[str]]:
    """``spec.moments[x].arises`` -> ["spec", "moments", ("x",), "arises"] (ids of keyed items as 1-tuples)."""
    import re

    out: list[str | tuple[str]] = []
    for name, ident in re.findall(r"([^.\[\]]+)|\[([^\]]*)\]", path.replace(" (volgorde)", "")):
        out.append((ident,) if ident or not name else name)
    return out


def _resolve(data: Any, segments: Sequence[str | tuple[str]]) -> Any:
    node = data
    for seg in segments:
        if isinstance(seg, tuple):
            if isinstance(node, list):
                ident = seg[0]
                match = [i for i in node if isinstance(i, Mapping) and str(i.get("id")) == ident]
                if match:
                    node = match[0]
                    continue
                if ident.isdigit() and int(ident) < len(node):
                    node = node[int(ident)]
                    continue
            return None
        if not isinstance(node, Mapping) or seg not in node:
            return None
        node = node[seg]
    return node


def _sentence(words: Words, subject_doc: str, fc: FieldChange, base: Any, effective: Any) -> str:
    segs = _segments(fc.path)
    keyed = [i for i, s in enumerate(segs) if isinstance(s, tuple) and not s[0].isdigit()]
    if fc.path.endswith("(volgorde)"):
        list_key = str(segs[-1]) if segs and isinstance(segs[-1], str) else ""
        return sentence_for(words, subject_doc, "", list_key, "order", None, None)
    if keyed:
        i = keyed[-1]
        list_key = str(segs[i - 1]) if i > 0 else ""
        item = _resolve(effective, segs[: i + 1]) or _resolve(base, segs[: i + 1]) or {}
        ident = segs[i][0] if isinstance(segs[i], tuple) else ""
        name = item.get("label") if isinstance(item, Mapping) and isinstance(item.get("label"), str) else \
            words.label(ident)
        subject = f"{words.glossary_noun(list_key).capitalize()} ‘{name}’"
        rest = segs[i + 1:]
        if not rest:
            return sentence_for(words, subject_doc, "", list_key, fc.change, fc.old, fc.new)
        field_segs = segs[: i + 2]
    else:
        subject = subject_doc
        start = 1 if segs and segs[0] in ("spec", "metadata") and len(segs) > 1 else 0
        field_segs = segs[: start + 1]
    key = str(field_segs[-1]) if isinstance(field_segs[-1], str) else ""
    old, new = _resolve(base, field_segs), _resolve(effective, field_segs)
    change = "added" if old is None else "removed" if new is None else "changed"
    return sentence_for(words, subject, key, "", change, old, new)


def _consultant_detail(page: ReportPage, change: DocumentChange) -> str:
    if not change.fields:
        return ""
    rows = [(f'<td class="ptr">{esc(f.pointer)}<br><small>{esc(f.path)}</small></td>',
             f'<span class="old">{esc(short_json(f.old))}</span>' if f.change != "added" else "—",
             f'<span class="new">{esc(short_json(f.new))}</span>' if f.change != "removed" else
             '<span class="old">verwijderd</span>') for f in change.fields]
    return ('<details class="tech"><summary>Technische details voor de consultant</summary>'
            + page.table(["Veld (JSON pointer)", "Standaard", "Klant"], rows, "diff") + "</details>")


def differences(page: ReportPage) -> str:
    """The section "Afwijkingen van de standaard": per changed definition its differences in sentences."""
    data = page.data
    if not data.extends:
        return ('<p class="note">Deze configuratie breidt geen andere uit: dit is de standaardconfiguratie zelf, '
                "er zijn geen afwijkingen.</p>")
    shown = [c for c in data.differences if c.mode != "patched" or c.fields]
    if not shown and not data.changes:
        return '<p class="note">Geen afwijkingen van de standaard.</p>'
    parts = ['<p class="meta">Wat voor deze klant anders is dan in de standaard. Gewijzigde onderdelen zijn in '
             "het hele rapport geel gemarkeerd.</p>"]
    for change in shown:
        label = change.label or page.title_of(change.kind, change.name)
        badge = (f'<span class="badge {esc(change.mode)}">{esc(CHANGE_LABELS.get(change.mode, change.mode))}'
                 "</span>")
        if change.mode == "added":
            body = '<p class="desc">Nieuw voor deze klant; de standaard heeft dit niet.</p>'
        elif change.mode == "removed":
            body = '<p class="desc">Uit de standaard weggelaten: geldt niet voor deze klant.</p>'
        elif not change.fields:
            body = '<p class="desc">Vervangen door een eigen versie met dezelfde inhoud.</p>'
        else:
            body = '<ul class="changes">' + "".join(f"<li>{esc(s)}</li>" for s in page.sentences(change)) + "</ul>"
        parts.append(f'<div class="item changed"><h3>{esc(label)}{badge}</h3>{body}'
                     f"{_consultant_detail(page, change)}</div>")
    documented = {(c.kind, c.name) for c in data.differences}
    derived = [(k, n, c) for (k, n), c in sorted(data.changes.items()) if (k, n) not in documented
               and (k, n) not in data.hidden]
    if derived:
        items = "".join(f"<li>{esc(page.label_of(k, n))} {page.badge(k, n)}</li>" for k, n, _ in derived)
        parts.append('<p class="meta">Daardoor ook anders (afgeleid, bijvoorbeeld de workflow van een '
                     f'wervingsproces):</p><ul class="changes">{items}</ul>')
    return "".join(parts)


def others(page: ReportPage, shown: set[str]) -> str:
    """Every definition no section shows, in one table."""
    rows = []
    for (kind, name), obj in sorted(page.compiled.objects.items()):
        if kind in shown or (kind, name) in page.data.hidden:
            continue
        label = getattr(obj, "label", "")
        rows.append((esc(label if isinstance(label, str) and label else name), page.badge(kind, name) or "—"))
    if not rows:
        return ""
    return page.table(["Onderdeel", "Ten opzichte van de standaard"], rows)


def _signoff() -> str:
    return ('<p>Met ondertekening verklaren partijen dat deze configuratie (versie en afwijkingen zoals hierboven '
            'beschreven) overeenkomt met de gemaakte afspraken.</p><div class="signoff">'
            "<div><b>Namens de klant</b><p>Naam</p><p>Datum</p><p>Handtekening</p></div>"
            "<div><b>Namens de implementatieconsultant</b><p>Naam</p><p>Datum</p><p>Handtekening</p></div></div>")


def render_report(data: ReportData, registry: Any) -> str:
    """The whole report page (HTML5, inline CSS and SVG, no scripts) with the registry's sections."""
    page = ReportPage(data)
    compiled = data.compiled
    page.add("afwijkingen", "Afwijkingen van de standaard", differences(page))
    shown: set[str] = set()
    for spec in sorted(registry.report_sections.values(), key=lambda s: (s.order, s.name)):
        try:
            html = spec.render(page)
        except RegelwerkError:
            raise
        except BaseException as exc:  # a pack's section: typed at the boundary, the original chained
            if not is_plugin_fault(exc):
                raise
            raise PluginError(f"report section {spec.name!r}", exc) from exc
        page.add(spec.name, spec.title, html)
        shown.update(spec.kinds)
    page.add("overig", "Overige onderdelen", others(page, shown))
    if data.coverage is not None:
        from regelwerk.report.coverage import overview

        tested = overview(page, shown)
        if tested:  # right after the differences: what the customer signs was tested this far
            page.sections.insert(1, ("getest", "Getest met scenario's", tested))
    if data.unused:
        page.add("niet-gebruikt", "Niet in gebruik",
                 '<p class="unused">Deze onderdelen van de standaard gebruikt de klant niet; ze staan niet in dit '
                 "rapport: " + esc(", ".join(data.unused)) + ".</p>")
    page.add("akkoord", "Akkoord", _signoff())

    customer = data.customer or compiled.name
    toc = "".join(f'<li><a href="#{a}">{esc(t)}</a></li>' for a, t, _ in page.sections)
    body = "".join(f'<section id="{a}"><h2>{esc(t)}</h2>{html}</section>' for a, t, html in page.sections)
    standard = (f"{esc(data.base_name)} (versie {esc(data.standard_version)})" if data.extends
                else f"deze configuratie is de standaard (versie {esc(data.standard_version)})")
    count = len([c for c in data.differences if c.mode != "patched" or c.fields])
    title = f"Configuratierapport {customer}"
    return (
        "<!DOCTYPE html>\n<html lang=\"nl\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><div class=\"page\">"
        '<header class="cover"><div class="eyebrow">Configuratierapport ter ondertekening</div>'
        f"<h1>{esc(customer)}</h1><dl>"
        f"<dt>Standaard</dt><dd>{standard}</dd>"
        f"<dt>Afwijkingen</dt><dd>{count} onderdelen anders dan de standaard</dd>"
        f"<dt>Datum</dt><dd>{esc(dutch_date(data.today))}</dd>"
        f'<dt>Kenmerk</dt><dd>{esc(compiled.name)}, inhoud {esc(compiled.version)}</dd></dl></header>'
        f'<main><nav class="toc"><h2>Inhoud</h2><ol>{toc}</ol></nav>{body}</main>'
        f"<footer>Gegenereerd door regelwerk uit de configuratie van {esc(customer)} (de standaard met de "
        f"aanpassingen voor deze klant), kenmerk {esc(compiled.version)}.</footer></div></body></html>\n"
    )
