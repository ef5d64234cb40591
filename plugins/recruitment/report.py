"""The recruitment pack's sections of the configuration report: candidate statuses, who may move candidates,
and AVG retention."""

from __future__ import annotations

from typing import TYPE_CHECKING

from regelwerk.registry import Registry, ReportSectionSpec

if TYPE_CHECKING:
    from regelwerk.report.page import ReportPage

__all__ = ["GLOSSARY", "register"]

COUNTS_FROM = {"status": "statuswijziging", "consent": "toestemming", "applied": "sollicitatie",
               "vacancy_closed": "sluiting van de vacature"}
GLOSSARY = {
    "statuses": "kandidaatstatus", "moves": "verplaatsing", "by": "wie het mag", "keep": "de bewaartermijn",
    "consent": "de toestemming", "counts_from": "het beginpunt van de termijn", "renew_before": "het verlengverzoek",
    "renew_template": "het sjabloon van het verlengverzoek", "templates": "sjabloon", "subject": "het onderwerp",
    "body": "de tekst", "sender": "de afzender", "regions": "regio", "entities": "organisatieonderdeel",
    "company": "de organisatiegegevens", "vacancy_admins": "de vacaturebeheerders", "organisation": "de organisatie",
    "active": "de actieve statussen", "kind:RecruitmentSettings": "Instellingen werving",
}


def statuses(page: ReportPage) -> str:
    """Each candidate status set: per status group its active and archive statuses."""
    from regelwerk.report.page import esc

    parts = []
    for name, sset in page.of_kind("CandidateStatusSet").items():
        rows = []
        for group, label in sset.group_labels.items():
            members = [s for s in sset.statuses if s.group == group]
            active = "".join(f'<span class="chip">{esc(s.label)}</span>' for s in members if not s.archive)
            archive = "".join(f'<span class="chip archive">{esc(s.label)}</span>' for s in members if s.archive)
            rows.append((f"<b>{esc(label)}</b>", active or '<span class="empty">—</span>',
                         archive or '<span class="empty">—</span>'))
        body = page.table(["Statusgroep", "Actieve statussen", "Archiefstatussen"], rows)
        parts.append(page.item("CandidateStatusSet", name, "Kandidaatstatussen", body))
    return "".join(parts)


def moves(page: ReportPage) -> str:
    """Each recruitment workflow: who may move candidates from which statuses to which (its diagram is under
    Workflows)."""
    from regelwerk.report.page import esc

    parts = []
    for name, rw in page.of_kind("RecruitmentWorkflow").items():
        wf = page.compiled.objects.get(("Workflow", rw.workflow))
        conditional = any(getattr(mv, "when", None) is not None or getattr(mv, "input", None) for mv in rw.moves)
        rows = []
        for mv in rw.moves:
            row = [", ".join(esc(page.state_label(wf, s)) for s in mv.sources),
                   ", ".join(esc(page.state_label(wf, s)) for s in mv.targets),
                   esc(", ".join(page.words.label(b) for b in mv.by))]
            if conditional:  # a move's condition and what the mover gives (a workflow without them: as before)
                row.append(esc(page.words.condition(mv.when)) if mv.when is not None else "—")
                row.append(esc(", ".join(mv.input or ())) or "—")
            rows.append(tuple(row))
        body = (f'<p class="meta">Het diagram staat bij de workflow '
                f'<a href="#workflow-{esc(rw.workflow)}">{esc(wf.label if wf is not None else rw.workflow)}</a>.')
        if conditional:
            body += (" De eerste regel die past beslist, met wie het mag én de voorwaarde; een feit dat niet is "
                     "ingevuld telt als niet voldaan.")
        body += "</p>"
        header = ["Van", "Naar", "Door", "Voorwaarde", "Invoer"] if conditional else ["Van", "Naar", "Door"]
        body += page.table(header, rows) if rows else (
            '<p class="note">Iedereen met toegang tot de vacature mag kandidaten naar elke status verplaatsen.</p>')
        parts.append(page.item("RecruitmentWorkflow", name, getattr(rw, "label", "") or name, body))
    return "".join(parts)


def retention(page: ReportPage) -> str:
    """Each retention policy: its rules, first match decides."""
    from regelwerk.report.page import esc

    parts = []
    groups: dict[str, str] = {}
    for sset in page.of_kind("CandidateStatusSet").values():
        groups.update(sset.group_labels)
    for name, policy in page.of_kind("RetentionPolicy").items():
        rows = []
        for rule in policy.rules:
            scope = [groups.get(g, g) for g in rule.groups] + [page.words.label(s) for s in rule.statuses]
            consent = "ongeacht" if rule.consent is None else "ja" if rule.consent else "nee"
            renew = (f"{page.duration(rule.renew_before)} vooraf vragen" if rule.renew_before is not None else "—")
            rows.append((f"<b>{esc(rule.label)}</b>", esc(", ".join(scope)) or "alle kandidaten", esc(consent),
                         esc(page.duration(rule.keep)), esc(COUNTS_FROM.get(rule.counts_from, rule.counts_from)),
                         esc(renew)))
        body = '<p class="meta">De eerste regel die past beslist; past geen regel, dan blijven de gegevens.</p>'
        body += page.table(["Regel", "Geldt voor", "Toestemming", "Bewaren", "Vanaf", "Verlengen"], rows)
        parts.append(page.item("RetentionPolicy", name, policy.label, body))
    return "".join(parts)


def register(registry: Registry, plugin: str) -> None:
    """Contribute the recruitment sections to the report."""
    registry.add_report_section(ReportSectionSpec(
        "statussen", plugin, "Statusgroepen en kandidaatstatussen", statuses, ("CandidateStatusSet",), 20,
        glossary=GLOSSARY))
    registry.add_report_section(ReportSectionSpec(
        "werving", plugin, "Werving: wie mag kandidaten verplaatsen", moves,
        ("RecruitmentWorkflow", "RecruitmentSettings"), 35))
    registry.add_report_section(ReportSectionSpec(
        "bewaartermijnen", plugin, "Bewaartermijnen (AVG)", retention, ("RetentionPolicy",), 80))
