"""The talent pack's sections of the configuration report: development cycles, feedback rounds, the talent matrix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regelwerk.registry import Registry, ReportSectionSpec

if TYPE_CHECKING:
    from regelwerk.report.page import ReportPage

__all__ = ["GLOSSARY", "register"]

INVITEE_LABELS = {"self": "medewerker zelf", "manager": "leidinggevende",
                  "managers_manager": "leidinggevende van de leidinggevende", "nominated": "voorgedragen collega's"}
SAME_LABELS = {"department": "collega's van de afdeling", "team": "collega's van het team"}


def invitee_text(page: ReportPage, invitee: Any) -> str:
    """An invitee set in words ("collega's van de afdeling (ten minste 2, ten hoogste 4)")."""
    kind = str(getattr(invitee, "kind", invitee))
    if kind == "colleagues":
        text = SAME_LABELS.get(str(getattr(invitee, "same", "")), "collega's")
    elif kind == "role":
        text = f"rol {page.words.label(getattr(invitee, 'role', ''))}"
    else:
        text = INVITEE_LABELS.get(kind, kind)
    low, high = getattr(invitee, "minimum", 0) or 0, getattr(invitee, "maximum", None)
    bounds = ([f"ten minste {low}"] if low else []) + ([f"ten hoogste {high}"] if high is not None else [])
    return text + (f" ({', '.join(bounds)})" if bounds else "")
START_LABELS = {"automatic": "automatisch", "manual": "handmatig", "none": "geen"}
GLOSSARY = {
    "moments": "gespreksmoment", "plan_ahead": "de planning vooraf", "start": "de start",
    "dossier_item_type": "het dossieritem", "creation_profile": "het aanmaakprofiel", "workflow": "de workflow",
    "work_years": "werkjaar", "feedback_round": "de feedbackronde", "invite": "de genodigden",
    "days_ahead": "het aantal dagen vooraf", "questions": "vraag", "text": "de tekst", "performance": "prestatieniveau",
    "potential": "potentieelniveau", "cells": "cel", "profiles": "profiel", "scale": "de schaal",
    "competencies": "competentie", "profile": "het competentieprofiel", "functions": "de functies",
    "model": "het model", "min_score": "de ondergrens", "timing": "het moment",
    "after_leaving": "wat er na uitdiensttreding met het gesprek gebeurt", "=move": "verplaatsen naar de nieuwe "
    "leidinggevende", "=cancel": "vervallen", "=keep": "blijven staan", "=before_moment": "vóór het gespreksmoment",
    "kind:DevelopmentCycle": "Ontwikkelcyclus", "kind:TalentMatrix": "Talentmatrix",
}


def cycles(page: ReportPage) -> str:
    """Each development cycle: its calendar, a timeline over the work year and its conversation moments."""
    from regelwerk.report.page import esc
    from regelwerk_packs.talent.timeline import reference_year, timeline_svg

    parts = []
    for index, (name, cycle) in enumerate(page.of_kind("DevelopmentCycle").items()):
        year = reference_year(cycle, page.today)
        cal = cycle.calendar
        meta = [f"werkjaar: {esc(cal.label or cal.name)} ({esc(page.date(year.start))} t/m "
                f"{esc(page.date(year.end))})",
                f"trajecten {esc(page.duration(cycle.plan_ahead)) or 'direct'} vooraf gepland",
                "rollen: " + (", ".join(esc(r.label) for r in cycle.roles.values()) or "—")]
        if cycle.when is not None:
            meta.append("voorwaarde: " + esc(page.words.condition(cycle.when)))
        body = f'<p class="meta">{" · ".join(meta)}</p>'
        body += f'<div class="diagram-wrap">{timeline_svg(cycle, year, f"cycle{index}")}</div>'
        body += ('<p class="legend"><span><i class="sw mo"></i>gespreksmoment</span>'
                 '<span><i class="sw fb"></i>feedbackronde</span><span>gestreept: ontstaat per medewerker '
                 "(bijvoorbeeld na indiensttreding)</span></p>")
        rows = []
        for m in cycle.moments:
            rounds = [r.label for r in cycle.feedback_rounds if r.name == m.feedback_round
                      or (r.timing == "before_moment" and r.moment == m.id)]
            only = ", ".join(cycle.roles[r].label if r in cycle.roles else r for r in m.roles)
            label = m.label + (f" (alleen {only})" if only else "")
            rows.append((esc(label), esc(moment_when(m)), esc(START_LABELS.get(m.start, m.start)),
                         esc(page.label_of("Workflow", m.workflow)), esc(m.dossier_item_type) or "—",
                         esc(", ".join(rounds)) or "—"))
        body += page.table(["Gespreksmoment", "Ontstaat", "Start", "Workflow", "Dossieritem", "Feedbackronde"], rows)
        parts.append(page.item("DevelopmentCycle", name, cycle.label, body))
    return "".join(parts)


def moment_when(moment: Any) -> str:
    """When a moment arises in words: its due date, or its window ("open van ... tot en met ...")."""
    from regelwerk.report.schedules import describe_schedule

    if getattr(moment, "window", None) is None:
        return describe_schedule(moment.arises)
    opens = describe_schedule(moment.window.opens).rsplit(", om ", 1)[0]
    return f"open van {opens} tot en met {describe_schedule(moment.arises).removeprefix('op ')}"


def feedback(page: ReportPage) -> str:
    """Each feedback round: when, who is invited, its questions."""
    from regelwerk.report.page import esc
    from regelwerk.report.schedules import describe_schedule

    parts = []
    for name, fround in page.of_kind("FeedbackRound").items():
        if fround.timing == "before_moment":
            when = f"{fround.days_ahead} dagen vóór het gespreksmoment {esc(page.words.label(fround.moment))}"
        elif fround.arises is not None:
            when = esc(describe_schedule(fround.arises))
        else:
            when = esc(fround.timing)
        invite = ", ".join(esc(invitee_text(page, w)) for w in fround.invite)
        body = (f'<p class="meta">{when} · uitgenodigd: {invite} · start: '
                f"{esc(START_LABELS.get(fround.start, fround.start))} · workflow "
                f"{esc(page.label_of('Workflow', fround.workflow))}</p>")
        body += page.table(["Vraag", "Tekst"], [(esc(q.get("label") or q.get("id", "")), esc(q.get("text", "")))
                                                for q in fround.questions])
        parts.append(page.item("FeedbackRound", name, fround.label, body))
    return "".join(parts)


def matrices(page: ReportPage) -> str:
    """Each talent matrix as its grid: potential in rows, performance in columns."""
    from regelwerk.report.page import esc

    parts = []
    for name, matrix in page.of_kind("TalentMatrix").items():
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
        body += page.table(["Potentieel \\ Prestatie"] + [esc(label) for _, label, _ in perf], rows)
        parts.append(page.item("TalentMatrix", name, matrix.label, body))
    return "".join(parts)


def register(registry: Registry, plugin: str) -> None:
    """Contribute the talent sections to the report."""
    sections: list[tuple[str, str, Any, tuple[str, ...], int]] = [
        ("ontwikkelcyclus", "Ontwikkelcyclus", cycles, ("DevelopmentCycle", "WorkYearCalendar"), 40),
        ("feedback", "Feedbackrondes", feedback, ("FeedbackRound",), 45),
        ("talentmatrix", "Talentmatrix", matrices, ("TalentMatrix",), 50),
    ]
    for name, title, render, kinds, order in sections:
        registry.add_report_section(ReportSectionSpec(name, plugin, title, render, kinds, order,
                                                      glossary=GLOSSARY if name == "ontwikkelcyclus" else {}))
