"""Where each stored conversation moment stands on a day: open, late, done (docs/packs/talent.md, "Windows").

A moment is open from the day it appears (``appears`` in its payload: its window's first day, or its due date
minus the lead time) up to and including its due day (``due_date``: the window's last day); after that it is
late while its conversation has not moved on from the first state of its workflow (not held). Read-only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

__all__ = ["MOMENT_STATES", "MomentState", "moment_state", "moment_states"]

#: open: appeared, its due day not passed; late: past its due day and not done; done: its workflow moved on from
#: its first state (or the item, having no workflow, is active); waiting: stored, not yet activated (ready to be
#: started by hand counts as open or late); and the item's own end statuses: cancelled, closed, skipped.
MOMENT_STATES = ("waiting", "open", "late", "done", "cancelled", "closed", "skipped")


@dataclass(frozen=True, slots=True)
class MomentState:
    """One stored moment on one day: who, which moment, its window (``appears`` to ``due``) and its state."""

    key: str
    employee: str
    moment: str
    appears: date | None
    due: date | None
    state: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data (dates as ISO text)."""
        return {"key": self.key, "employee": self.employee, "moment": self.moment,
                "appears": self.appears.isoformat() if self.appears else None,
                "due": self.due.isoformat() if self.due else None, "state": self.state}


def moment_state(status: str, due: date | None, day: date, moved_on: bool) -> str:
    """The state of a moment with item ``status`` and due day ``due`` on ``day``; ``moved_on``: its workflow
    instance has left its first state (the conversation was held)."""
    if status in ("cancelled", "closed", "skipped"):
        return status
    if status == "planned":
        return "waiting"
    if moved_on:
        return "done"
    return "late" if due is not None and day > due else "open"


def _day(text: Any) -> date | None:
    try:
        return date.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def moment_states(target: Any, compiled: Any, day: date, keys: list[str] | None = None,
                  cycle: str | None = None) -> list[MomentState]:
    """The stored moments of the bundle's development cycles (or the given ``keys``) and their state on ``day``,
    sorted by key. ``target`` is the workflow ``Engine`` (it reads the conversations' states) or a store."""
    from regelwerk.scheduling.tables import scheduled_items as items
    from regelwerk.scheduling.tick import resolve_target
    from sqlalchemy import select

    cycles = compiled.of_kind("DevelopmentCycle")
    sources = [m.source_id for n, m in sorted(cycles.items()) if cycle is None or n == cycle]
    query = select(items.c.key, items.c.subject, items.c.status, items.c.workflow, items.c.instance_id,
                   items.c.payload).where(items.c.item_type == "moment", items.c.source.in_(sources))
    if keys is not None:
        query = query.where(items.c.key.in_(keys))
    with resolve_target(target).sa_engine.connect() as conn:
        rows = conn.execute(query.order_by(items.c.key)).all()
    getter = getattr(target, "get", None)
    out = []
    for key, subject, status, workflow, instance_id, payload in rows:
        data: Mapping[str, Any] = json.loads(payload)
        due = _day(data.get("due_date"))
        moved_on = status == "active"  # a moment without a workflow: nothing to hold
        if status == "started" and instance_id and callable(getter):
            model = compiled.objects.get(("Workflow", workflow)) if workflow else None
            initial = getattr(model, "initial", None)
            moved_on = initial is not None and getter(instance_id).state != initial
        out.append(MomentState(key, subject, str(data.get("moment", "")), _day(data.get("appears")), due,
                               moment_state(status, due, day, moved_on)))
    return out
