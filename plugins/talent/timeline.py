"""A development cycle as a timeline over one work year (SVG, pure Python), for the talent pack's report
section (docs/report.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from regelwerk.report.page import dutch_date, esc, human_duration, text_width
from regelwerk.report.schedules import describe_schedule
from regelwerk_packs.talent.report import moment_when

__all__ = ["TimelineRow", "cycle_rows", "reference_year", "timeline_svg"]

MAX_MARKS = 24
MONTH_ABBR = ("jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec")


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """One lane: a moment, a feedback round or the planning, with its dates in the work year or a text."""

    kind: str  # planning | moment | feedback
    label: str
    dates: tuple[date, ...]
    when: str


def _employee_relative(schedule: Any) -> bool:
    return getattr(schedule, "form", "") == "anchor" and tuple(schedule.anchor)[:1] == ("employee",)


def reference_year(cycle: Any, today: date) -> Any:
    """The work year shown: the one containing ``today`` when the cycle runs then, else its first work year."""
    calendar = cycle.calendar
    firsts = [spec.year or spec.from_year for spec in cycle.work_years]
    firsts = [y for y in firsts if y is not None]
    current = calendar.year_of(today)
    for spec in cycle.work_years:
        if spec.year is not None and spec.year.id == current.id:
            return current
        if spec.from_year is not None and spec.from_year.start <= current.start:
            return current
    return min(firsts, key=lambda y: y.start) if firsts else current


def _dates(schedule: Any, year: Any) -> tuple[date, ...]:
    start = datetime.combine(year.start, datetime.min.time(), tzinfo=UTC) - timedelta(days=1)
    end = datetime.combine(year.end, datetime.min.time(), tzinfo=UTC) + timedelta(days=2)
    found = []
    for moment in schedule.occurrences(start, end, {"work_year": year.facts()}):
        day = moment.astimezone(schedule.tz).date()
        if year.start <= day <= year.end:
            found.append(day)
        if len(found) > 366:
            break
    return tuple(sorted(set(found)))


def cycle_rows(cycle: Any, year: Any) -> list[TimelineRow]:
    """The lanes of a cycle's timeline for one work year (planning, moments, feedback rounds)."""
    plan_day = year.start - cycle.plan_ahead.delta()
    rows = [TimelineRow("planning", "Trajecten aangemaakt", (plan_day,),
                        f"{human_duration(cycle.plan_ahead)} vóór het begin van het werkjaar"
                        if human_duration(cycle.plan_ahead) else "bij het begin van het werkjaar")]
    by_moment: dict[str, tuple[date, ...]] = {}
    for moment in cycle.moments:
        relative = _employee_relative(moment.arises)
        dates = () if relative else _dates(moment.arises, year)
        by_moment[moment.id] = dates
        rows.append(TimelineRow("moment", moment.label, dates, moment_when(moment)))
    for fround in cycle.feedback_rounds:
        if fround.timing == "before_moment" and fround.moment:
            dates = tuple(d - timedelta(days=fround.days_ahead) for d in by_moment.get(fround.moment, ()))
            target = next((m.label for m in cycle.moments if m.id == fround.moment), fround.moment)
            rows.append(TimelineRow("feedback", fround.label, dates, f"{fround.days_ahead} dagen vóór {target}"))
        elif fround.arises is not None:
            rows.append(TimelineRow("feedback", fround.label, _dates(fround.arises, year),
                                    describe_schedule(fround.arises)))
    return rows


def _short(day: date) -> str:
    return f"{day.day} {MONTH_ABBR[day.month - 1]}"


def timeline_svg(cycle: Any, year: Any, id_prefix: str = "") -> str:
    """The cycle's lanes over the work year as an inline SVG element."""
    rows = cycle_rows(cycle, year)
    left = max(150.0, max((text_width(r.label, 12.5) for r in rows), default=0.0) + 30)
    right, top, lane = 40.0, 46.0, 34.0
    axis_w = 700.0
    width = left + axis_w + right
    height = top + lane * len(rows) + 20
    days: int = (year.end - year.start).days + 1

    def xpos(day: date) -> float:
        offset: int = (day - year.start).days
        return left + axis_w * (offset + 0.5) / days

    pid = esc(id_prefix or f"cycle-{cycle.name}")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="diagram timeline" data-cycle="{esc(cycle.name)}" '
           f'data-rows="{len(rows)}" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
           f'height="{height:.0f}" role="img" aria-labelledby="{pid}-title">',
           f'<title id="{pid}-title">{esc(cycle.label)}: tijdlijn werkjaar {esc(year.id)}</title>',
           "<style>.timeline{font-family:'Segoe UI','Helvetica Neue',Arial,'Liberation Sans','DejaVu Sans',"
           "sans-serif}.timeline .month{fill:#f3f6fa}.timeline .month.alt{fill:#e9eef5}"
           ".timeline .mlabel{font-size:11px;fill:#4a5a70}.timeline .lane-label{font-size:12.5px;fill:#1b2733}"
           ".timeline .lane line{stroke:#dde3ec}.timeline .mark.moment{fill:#2f5d8a}"
           ".timeline .mark.feedback{fill:#b5651d}.timeline .mark.planning{fill:#6b7a8c}"
           ".timeline .dlabel{font-size:10.5px;fill:#3b4a5c}.timeline .relative{font-size:11.5px;fill:#4a5a70;"
           "font-style:italic}.timeline .relbar{fill:#fff6e5;stroke:#e7c27d;stroke-dasharray:4 3}"
           ".timeline .before{font-size:10.5px;fill:#3b4a5c}</style>"]
    # months as alternating background columns with their names
    month = date(year.start.year, year.start.month, 1)
    k = 0
    while month <= year.end:
        nxt = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
        x0 = left + axis_w * (month - year.start).days / days
        x1 = left + axis_w * (min(nxt, year.end + timedelta(days=1)) - year.start).days / days
        out.append(f'<rect class="month{" alt" if k % 2 else ""}" x="{x0:.1f}" y="{top - 22:.1f}" '
                   f'width="{x1 - x0:.1f}" height="{lane * len(rows) + 22:.1f}"/>')
        out.append(f'<text class="mlabel" x="{(x0 + x1) / 2:.1f}" y="{top - 8:.1f}" text-anchor="middle">'
                   f"{esc(MONTH_ABBR[month.month - 1])}</text>")
        month, k = nxt, k + 1
    for i, row in enumerate(rows):
        cy = top + lane * i + lane / 2
        out.append(f'<g class="lane {esc(row.kind)}" data-kind="{esc(row.kind)}">'
                   f'<line x1="{left:.0f}" y1="{cy:.1f}" x2="{left + axis_w:.0f}" y2="{cy:.1f}"/>'
                   f'<text class="lane-label" x="{left - 10:.0f}" y="{cy + 4:.1f}" text-anchor="end">'
                   f"<title>{esc(row.when)}</title>{esc(row.label)}</text>")
        if not row.dates and row.kind != "planning":
            text = f"per medewerker: {row.when}"
            w = min(axis_w - 20, text_width(text, 11.5) + 24)
            out.append(f'<rect class="relbar" x="{left + 10:.1f}" y="{cy - 10:.1f}" width="{w:.1f}" height="20" '
                       f'rx="10"/><text class="relative" x="{left + 22:.1f}" y="{cy + 4:.1f}">{esc(text)}</text>')
        shown = row.dates[:MAX_MARKS]
        for day in shown:
            if day < year.start:
                out.append(f'<text class="before" x="{left + 6:.1f}" y="{cy + 4:.1f}">'
                           f"{esc(dutch_date(day))} ({esc(row.when)})</text>")
                continue
            x = xpos(day)
            shape = (f'<circle class="mark {esc(row.kind)}" cx="{x:.1f}" cy="{cy:.1f}" r="6"/>'
                     if row.kind != "feedback" else
                     f'<path class="mark feedback" d="M{x:.1f},{cy - 7:.1f} L{x + 7:.1f},{cy:.1f} '
                     f'L{x:.1f},{cy + 7:.1f} L{x - 7:.1f},{cy:.1f} z"/>')
            out.append(f"<g><title>{esc(row.label)}: {esc(dutch_date(day))} ({esc(row.when)})</title>{shape}")
            if len(shown) <= 4:
                anchor = "end" if x > left + axis_w - 60 else "start"
                dx = -10 if anchor == "end" else 10
                out.append(f'<text class="dlabel" x="{x + dx:.1f}" y="{cy + 4:.1f}" text-anchor="{anchor}">'
                           f"{esc(_short(day))}</text>")
            out.append("</g>")
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)
