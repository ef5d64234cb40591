"""Schedule plans: a named ``Schedule`` document that makes items arise for the employees it applies to.

A plain ``kind: Schedule`` document only names a moment. With ``when:`` (the schedule) and optionally
``applies_to:`` (a condition over ``employee``) and ``start:`` (a workflow and its data) it becomes an
:class:`~regelwerk.scheduling.sources.ItemSource`: the tick creates one item per occurrence and employee
and starts the workflow when it is due. This is how a consultant plans work for individuals,
departments or functions from YAML alone (step2HR: "Toetsen inplannen voor individuele medewerkers,
afdelingen en medewerkers met bepaalde functies")::

    kind: Schedule
    metadata: {name: toets-samenwerken-verkoop}
    spec:
      when: {dates: ["2026-04-01"], at: "08:00", catch_up: skip}
      applies_to: {field: employee.department, eq: verkoop}
      start:
        workflow: elearning_assignment
        data: {subject: {field: employee.id}, module: samenwerken, due_date: "2026-04-15"}

Planning window: occurrences from a year before ``now`` up to ``PLAN_AHEAD`` after it are planned
(future ones wait as ``planned``); the employee is planned again when the next occurrence enters the
window. Planned items of an employee the plan no longer applies to are cancelled by the tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from regelwerk.conditions import Condition, resolve_path
from regelwerk.scheduling.schedule import Schedule
from regelwerk.scheduling.sources import Plan, PlannedItem

if TYPE_CHECKING:
    from regelwerk.scheduling.employees import EmployeeFacts

__all__ = ["LOOK_BACK", "PLAN_AHEAD", "SchedulePlan", "compile_plan"]

PLAN_AHEAD = timedelta(days=31)
LOOK_BACK = timedelta(days=366)


def _resolve(value: Any, scope: Mapping[str, Any]) -> Any:
    """``{field: path}`` read from the scope (recursively in mappings and lists); anything else as is."""
    if isinstance(value, Mapping):
        if set(value) == {"field"}:
            found = resolve_path(scope, str(value["field"]).split("."))
            return found.isoformat() if hasattr(found, "isoformat") else found
        return {str(k): _resolve(v, scope) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_resolve(v, scope) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class SchedulePlan:
    """A compiled schedule plan: when, for whom, and which workflow starts (an ``ItemSource``)."""

    name: str
    schedule: Schedule
    applies_to: Condition | None = None
    workflow: str | None = None
    start_mode: str = "automatic"
    data: Mapping[str, Any] = field(default_factory=dict)
    item_type: str = "scheduled"
    label: str = ""
    version: str = ""

    @property
    def source_id(self) -> str:
        """The scheduler's name for this source."""
        return f"Schedule/{self.name}"

    def plan(self, employee: EmployeeFacts, now: datetime) -> Plan:
        """Items for ``employee`` from a year back up to ``PLAN_AHEAD`` ahead (none when it does not apply)."""
        scope = {"employee": employee.to_dict()}
        if self.applies_to is not None and not self.applies_to(scope, now):
            return Plan((), None)
        end = now + PLAN_AHEAD
        items = []
        for due in self.schedule.occurrences(now - LOOK_BACK, end, scope):
            key = f"{self.source_id}/{employee.id}/{due.strftime('%Y%m%dT%H%MZ')}"
            items.append(PlannedItem(
                key=key, source=self.source_id, item_type=self.item_type, subject=employee.id, due_at=due,
                series=f"{self.source_id}/{employee.id}", start_mode=self.start_mode if self.workflow else "none",
                catch_up=self.schedule.catch_up, grace_seconds=int(self.schedule.grace_delta.total_seconds()),
                workflow=self.workflow, version=self.version, payload=_resolve(dict(self.data), scope),
                label=self.label or self.name))
        following = self.schedule.next_fire(end - timedelta(microseconds=1), scope)
        return Plan(tuple(items), None if following is None else following - PLAN_AHEAD)


def compile_plan(ctx: Any, spec: Mapping[str, Any], name: str, version: str) -> SchedulePlan | None:
    """Compile the plan form of a ``Schedule`` document (``when``, ``applies_to``, ``start``)."""
    from regelwerk.scheduling.schedule import compile_schedule

    schedule = compile_schedule(spec["when"], "/spec/when", ctx.report)
    applies_to = ctx.condition(spec["applies_to"], "/spec/applies_to") if "applies_to" in spec else None
    start = spec.get("start") or {}
    if schedule is None:
        return None
    from regelwerk.source import to_plain

    return SchedulePlan(name=name, schedule=schedule, applies_to=applies_to, workflow=start.get("workflow"),
                        start_mode=str(start.get("mode", "automatic")), data=to_plain(start.get("data") or {}),
                        item_type=str(spec.get("item_type", "scheduled")), label=str(spec.get("label", "")),
                        version=version)
