"""When a schedule fires, in Dutch words (the report's descriptions of schedules; docs/report.md)."""

from __future__ import annotations

from typing import Any

from regelwerk.report._text import dutch_date, human_duration

__all__ = ["ANCHOR_LABELS", "describe_schedule"]

ANCHOR_LABELS = {
    "employee.hire_date": "datum in dienst", "employee.leaving_date": "datum uit dienst",
    "employee.birth_date": "geboortedatum", "work_year.start": "begin werkjaar", "work_year.middle": "midden werkjaar",
    "work_year.end": "einde werkjaar",
}


def describe_schedule(schedule: Any) -> str:
    """A Dutch description of when a schedule fires."""
    form = getattr(schedule, "form", "")
    if form == "cron":
        return f"volgens rooster {schedule.cron} ({schedule.timezone})"
    if form == "dates":
        return "op " + ", ".join(dutch_date(d) for d in schedule.dates)
    anchor = ".".join(schedule.anchor)
    text = ANCHOR_LABELS.get(anchor, anchor)
    if schedule.offset is not None and human_duration(schedule.offset):
        text = f"{human_duration(schedule.offset)} {'na' if schedule.sign > 0 else 'vóór'} {text}"
    else:
        text = f"op {text}"
    if schedule.repeat is not None:
        text += f", daarna elke {human_duration(schedule.repeat)}"
    return text + f", om {schedule.at.strftime('%H:%M')}"
