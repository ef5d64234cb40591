"""``preview``: what would arise when, for given employees, without writing anything."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from regelwerk.scheduling.directory import MemoryDirectory
from regelwerk.scheduling.employees import EmployeeFacts, parse_employee
from regelwerk.scheduling.schedule import describe
from regelwerk.scheduling.sources import PlannedItem, item_sources, plan_with

__all__ = ["PreviewRow", "preview", "preview_schedules"]


@dataclass(frozen=True, slots=True)
class PreviewRow:
    """One item that would arise: when, what, for whom."""

    due_at: datetime
    key: str
    item_type: str
    subject: str
    label: str
    start_mode: str
    workflow: str | None
    deadline: datetime | None = None
    """When the work is due (a conversation's due date); None: at ``due_at``."""

    @property
    def due(self) -> datetime:
        """The due date of the work itself (``deadline``, else ``due_at``)."""
        return self.deadline or self.due_at

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``due_at`` is when the item appears (the tick creates and activates it), ``due`` when the
        work is due."""
        return {"due_at": self.due_at.isoformat(), "due": self.due.isoformat(), "key": self.key,
                "item_type": self.item_type, "subject": self.subject, "label": self.label,
                "start_mode": self.start_mode, "workflow": self.workflow}


def _row(item: PlannedItem) -> PreviewRow:
    return PreviewRow(item.due_at, item.key, item.item_type, item.subject, item.label, item.start_mode, item.workflow,
                      item.deadline)


def preview(compiled: Any, employees: Iterable[EmployeeFacts | Mapping[str, Any]], start: datetime,
            end: datetime) -> list[PreviewRow]:
    """Items of every item source due in ``[start, end)`` for ``employees``, sorted by time and key.

    Each employee is planned as the tick at ``end`` would plan them (work years whose planning
    moment has come by then); nothing is stored.
    """
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    sources = item_sources(compiled.objects)
    rows: dict[str, PreviewRow] = {}
    people = [raw if isinstance(raw, EmployeeFacts) else parse_employee(raw) for raw in employees]
    directory = MemoryDirectory(people)
    for facts in people:
        for source in sources:
            # plan at every year boundary in the window so years that have ended by ``end`` show too
            moment = start
            while True:
                for item in plan_with(source, [facts], min(moment, end), directory)[0].items:
                    if start <= item.due_at < end:
                        rows.setdefault(item.key, _row(item))
                if moment >= end:
                    break
                moment = min(moment + timedelta(days=180), end)
    return sorted(rows.values(), key=lambda r: (r.due_at, r.key))


def preview_schedules(compiled: Any, start: datetime, end: datetime, limit: int = 50) -> list[tuple[str, datetime]]:
    """Occurrences of the bundle's named ``Schedule`` documents in ``[start, end)``."""
    out: list[tuple[str, datetime]] = []
    for name, schedule in compiled.of_kind("Schedule").items():
        for i, moment in enumerate(schedule.occurrences(start, end)):
            if i >= limit:
                break
            out.append((f"{name} ({describe(schedule)})", moment))
    return sorted(out, key=lambda pair: (pair[1], pair[0]))
