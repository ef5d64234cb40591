"""Feedback rounds as customers run them: invitee sets with a minimum and maximum, an appearance window
before the moment a round prepares, reminders, who may read which answers, and on-demand requests.

Everything that plans is pure (``plan_round``); ``request_feedback`` writes one on-demand request.
Nobody is asked outside employment: not before the employee's hire date (nor the first day of the
trajectory), not on or after the leaving date, and no invitee who is not employed on the day of asking.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dateutil.relativedelta import relativedelta
from regelwerk.errors import RegelwerkError
from regelwerk.scheduling.employees import EmployeeFacts
from regelwerk.scheduling.schedule import Schedule, local_to_utc
from regelwerk.scheduling.sources import Directory, PlannedItem

if TYPE_CHECKING:
    from regelwerk_packs.talent.model import DevelopmentCycle, FeedbackRound, InviteeSet, WorkYear

__all__ = ["DEFAULT_VISIBILITY", "FeedbackRefused", "Invitation", "invitees", "plan_round", "request_feedback",
           "visible_to"]

#: Who may read the answers of a set when the round says nothing (deny by default: never the colleagues
#: who answered, never the employee for colleagues' answers unless the round says so).
DEFAULT_VISIBILITY: Mapping[str, tuple[str, ...]] = {
    "self": ("subject", "manager"), "manager": ("subject", "manager"), "managers_manager": ("manager",),
}
READERS = ("subject", "manager", "managers_manager", "invitee", "hr")


class FeedbackRefused(RegelwerkError):
    """An on-demand feedback request that may not be made (outside employment, unknown round or person)."""

    code = "feedback_refused"

    def __init__(self, reason: str, employee: str, invitee: str | None = None) -> None:
        self.reason = reason
        self.employee = employee
        self.invitee = invitee
        super().__init__(f"feedback about {employee!r}" + (f" from {invitee!r}" if invitee else "") + f": {reason}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {**super().to_dict(), "reason": self.reason, "employee": self.employee, "invitee": self.invitee}


@dataclass(frozen=True, slots=True)
class Invitation:
    """One person asked, from which set."""

    set: str
    invitee: str
    key_suffix: str


def _rank(round_name: str, subject: str, period: str, invitee: str) -> str:
    # deterministic but not alphabetical: the same colleagues are chosen on every plan, different ones
    # for different employees and years
    return hashlib.sha256(f"{round_name}/{subject}/{period}/{invitee}".encode()).hexdigest()


def _listed(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value)
    for sep in (";", "|", ","):
        if sep in text:
            return [p.strip() for p in text.split(sep) if p.strip()]
    return [text.strip()]


def _candidates(spec: InviteeSet, employee: EmployeeFacts, directory: Directory) -> list[str]:
    kind = spec.kind
    if kind == "self":
        return [employee.id]
    if kind == "manager":
        return [employee.manager] if employee.manager else []
    if kind == "managers_manager":
        manager = directory.get(employee.manager) if employee.manager else None
        return [manager.manager] if manager is not None and manager.manager else []
    if kind == "colleagues":
        value = employee.department if spec.same == "department" else employee.manager
        if not value:
            return []
        field_name = "department" if spec.same == "department" else "manager"
        return [p.id for p in directory.where(field_name, value) if p.id not in (employee.id, employee.manager)]
    if kind == "nominated":
        return [p for p in _listed(employee.attributes.get(spec.fact)) if p != employee.id]
    if kind == "role":
        return [p.id for p in directory.where("roles", spec.role) if p.id != employee.id]
    return []


def prefetch_invitees(rounds: Sequence[FeedbackRound], employees: Sequence[EmployeeFacts], directory: Directory
                      ) -> None:
    """Tell ``directory`` whom the rounds may ask about ``employees`` (their managers, their managers' managers,
    their teams): a store reads them in a few queries for the whole batch instead of one per employee."""
    prefetch = getattr(directory, "prefetch", None)
    if prefetch is None:
        return
    kinds = {(spec.kind, spec.same) for fround in rounds for spec in fround.invite}
    managers = {e.manager for e in employees if e.manager}
    if any(kind in ("manager", "managers_manager") for kind, _ in kinds):
        prefetch("id", managers)
    if any(kind == "managers_manager" for kind, _ in kinds):
        prefetch("id", {m.manager for m in (directory.get(i) for i in managers) if m is not None and m.manager})
    if any(kind == "colleagues" and same != "department" for kind, same in kinds):
        prefetch("manager", managers)
    if ("colleagues", "department") in kinds:
        prefetch("department", {e.department for e in employees if e.department})


def invitees(fround: FeedbackRound, employee: EmployeeFacts, day: date, period: str,
             directory: Directory) -> tuple[list[Invitation], list[dict[str, Any]]]:
    """Who is asked on ``day`` and, per set short of its minimum, a shortfall record."""
    chosen: list[Invitation] = []
    seen: set[str] = set()
    shortfalls: list[dict[str, Any]] = []
    for spec in fround.invite:
        found = []
        for ident in _candidates(spec, employee, directory):
            if ident in seen:
                continue
            person = directory.get(ident) if ident != employee.id else employee
            if spec.kind not in ("self", "manager") and person is None:
                continue  # nobody we know: never invited
            if person is not None and not person.employed_on(day):
                continue
            found.append(ident)
        if spec.maximum is not None and len(found) > spec.maximum:
            found = sorted(found, key=lambda i: _rank(fround.name, employee.id, period, i))[:spec.maximum]
        for ident in sorted(found):
            seen.add(ident)
            suffix = spec.kind if spec.kind in ("self", "manager", "managers_manager") else f"{spec.name}/{ident}"
            chosen.append(Invitation(spec.name, ident, suffix))
        if len(found) < spec.minimum:
            shortfalls.append({"set": spec.name, "minimum": spec.minimum, "found": len(found)})
    return chosen, shortfalls


def visible_to(fround: FeedbackRound, set_name: str) -> list[str]:
    """Who may read the answers of ``set_name`` in this round (``DEFAULT_VISIBILITY`` when not declared)."""
    return list(fround.visibility.get(set_name, DEFAULT_VISIBILITY.get(set_name, ("hr",))))


def _lead_of(fround: FeedbackRound) -> timedelta | relativedelta:
    """How long before the prepared moment the round's requests appear (``FeedbackRound.lead``, as a fast delta)."""
    return fround.appears_before.day_delta() if fround.appears_before is not None else timedelta(days=fround.days_ahead)


#: the days of a round: ``(ask moment, ask day, due day, reminder days)``, or None when it has no items to plan
_RoundDays = tuple[datetime, date, date, tuple[date, ...]] | None


def _round_days(cycle: DevelopmentCycle, fround: FeedbackRound, deadline: datetime, employee: EmployeeFacts,
                year: WorkYear, schedule: Schedule, ask_at: datetime | None, first_day: date | None,
                since: datetime | None) -> _RoundDays:
    """When a round asks and reminds (see :func:`plan_round`); None when there is nothing to plan."""
    tz = schedule.tz
    due_day = deadline.astimezone(tz).date()
    if ask_at is None:
        ask_day = due_day - _lead_of(fround)
        start = first_day or employee.hire_date
        if start is not None and ask_day < start:
            ask_day = start  # never before employment: ask on the first day instead
        if ask_day > due_day:
            return None
        ask_at = local_to_utc(ask_day, schedule.at, tz)
    ask_day = ask_at.astimezone(tz).date()
    if not employee.employed_on(ask_day):
        return None
    ask_at = max(ask_at, cycle.plan_moment(year))
    reminder_days = tuple(day for day in (due_day - before.day_delta() for before in fround.reminders)
                          if ask_day < day < due_day and employee.employed_on(day))
    if since is not None and ask_at < since and all(local_to_utc(day, schedule.at, tz) < since
                                                    for day in reminder_days):
        return None
    return ask_at, ask_day, due_day, reminder_days


def plan_round(cycle: DevelopmentCycle, fround: FeedbackRound, prefix: str, deadline: datetime, employee: EmployeeFacts,
               year: WorkYear, trajectory: str, common: Mapping[str, Any], schedule: Schedule,
               directory: Directory, ask_at: datetime | None = None, first_day: date | None = None,
               since: datetime | None = None, memo: dict[Any, Any] | None = None, grace: int | None = None
               ) -> list[PlannedItem]:
    """The requests (one per invitee), reminders and shortfall reports of one round before ``deadline``.

    ``since`` (the tick's partial plan): nothing when every item of the round appeared before it (the requests
    and the last reminder), so the invitees are not looked up again. ``memo`` (a batch's, of one cycle): the days
    of a round asked about its first day are kept there for the employees that share them. ``grace``: the
    schedule's grace in seconds, when the caller has it (a batch computes it once per schedule)."""
    key: tuple[Any, ...] | None = None
    if memo is not None and ask_at is None and first_day is not None and (
            employee.hire_date is None or employee.hire_date <= first_day):
        # asked from the first day on (never before it), the hire date on or before it does not count: the days
        # depend on the leaving date alone of the employee (most people of a batch share them)
        key = ("round", id(fround), id(schedule), deadline, first_day, employee.leaving_date, year.id, since)
        if key in memo:
            days = memo[key]
        else:
            days = memo[key] = _round_days(cycle, fround, deadline, employee, year, schedule, ask_at, first_day,
                                           since)
    else:
        days = _round_days(cycle, fround, deadline, employee, year, schedule, ask_at, first_day, since)
    if days is None:
        return []
    ask_at, ask_day, due_day, reminder_days = days
    tz = schedule.tz
    chosen, shortfalls = invitees(fround, employee, ask_day, year.id, directory)
    base = dict(common, round=fround.name, trajectory=trajectory, due_date=due_day.isoformat(),
                appears=ask_day.isoformat())
    grace = int(schedule.grace_delta.total_seconds()) if grace is None else grace
    out = []
    for invite in chosen:
        out.append(PlannedItem(
            key=f"{prefix}/{invite.key_suffix}", source=cycle.source_id, item_type="feedback_request",
            subject=employee.id, due_at=ask_at, period=year.id, parent_key=trajectory,
            series=f"{prefix}/{invite.key_suffix}", start_mode=fround.start, catch_up=schedule.catch_up,
            grace_seconds=grace, workflow=fround.workflow, label=f"{fround.label} ({invite.set})",
            appears_at=ask_at, deadline=deadline,
            payload={**base, "invitee": invite.invitee, "invitee_role": invite.set,
                     "visible_to": visible_to(fround, invite.set),
                     "questions": [dict(q) for q in fround.questions]},
        ))
    for shortfall in shortfalls:
        out.append(PlannedItem(
            key=f"{prefix}/shortfall/{shortfall['set']}", source=cycle.source_id, item_type="feedback_shortfall",
            subject=employee.id, due_at=ask_at, period=year.id, parent_key=trajectory,
            start_mode="none", catch_up="all", grace_seconds=grace,
            label=f"{fround.label}: te weinig {shortfall['set']} ({shortfall['found']} van {shortfall['minimum']})",
            appears_at=ask_at, deadline=deadline, payload={**base, **shortfall},
        ))
    if chosen:
        for day in reminder_days:
            at = local_to_utc(day, schedule.at, tz)
            out.append(PlannedItem(
                key=f"{prefix}/reminder/{day.isoformat()}", source=cycle.source_id, item_type="feedback_reminder",
                subject=employee.id, due_at=at, period=year.id, parent_key=trajectory,
                start_mode="automatic" if fround.reminder_workflow else "none", catch_up="skip", grace_seconds=grace,
                workflow=fround.reminder_workflow, label=f"{fround.label}: herinnering", appears_at=at,
                deadline=deadline, payload={**base, "invitees": [i.invitee for i in chosen]},
            ))
    return out


def request_feedback(target: Any, compiled: Any, cycle_name: str, round_name: str, employee_id: str,
                     invitee_ids: Sequence[str], now: datetime, actor: Any = None) -> list[str]:
    """An on-demand request (a ``continuous`` round): one item per invitee, due now; the next tick starts it.

    Refused with :class:`FeedbackRefused` (nothing written) when the round is not continuous in the cycle,
    the employee or an invitee is unknown or not employed today, or the employee has no trajectory
    this work year. Returns the keys written (an identical request the same day is written and audited once: asked
    again, it returns no keys).
    """
    from regelwerk.actors import SYSTEM
    from regelwerk.scheduling.directory import StoreDirectory
    from regelwerk.scheduling.employees import dialect_insert
    from regelwerk.scheduling.tables import scheduled_events as events
    from regelwerk.scheduling.tables import scheduled_items as items
    from regelwerk.scheduling.tick import resolve_target
    from sqlalchemy import select

    actor = actor or SYSTEM
    cycle = compiled.get("DevelopmentCycle", cycle_name)
    fround = cycle.rounds_by_name.get(round_name)
    if fround is None or fround.timing != "continuous":
        raise FeedbackRefused(f"round {round_name!r} is not a continuous round of cycle {cycle_name!r}", employee_id)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    from zoneinfo import ZoneInfo

    today = now.astimezone(ZoneInfo(cycle.timezone)).date()
    resolved = resolve_target(target)
    keys: list[str] = []
    try:
        with resolved.sa_engine.begin() as conn:
            directory = StoreDirectory(conn)
            employee = directory.get(employee_id)
            if employee is None:
                raise FeedbackRefused("unknown employee", employee_id)
            if not employee.employed_on(today):
                raise FeedbackRefused(f"not employed on {today.isoformat()}", employee_id)
            year = cycle.calendar.year_of(today)
            trajectory = conn.execute(select(items.c.key).where(
                items.c.source == cycle.source_id, items.c.item_type == "trajectory", items.c.subject == employee_id,
                items.c.period == year.id, items.c.status.in_(("planned", "active"))).order_by(items.c.key)
            ).scalars().first()
            if trajectory is None:
                raise FeedbackRefused(f"no open trajectory in work year {year.id}", employee_id)
            for ident in invitee_ids:
                person = directory.get(ident)
                if person is None or not person.employed_on(today) or ident == employee_id:
                    raise FeedbackRefused("the invitee is unknown, not employed today, or the employee"
                                          " themselves", employee_id, ident)
            within = fround.answer_within.delta() if fround.answer_within is not None else relativedelta(days=14)
            stamp = now.astimezone(UTC).replace(tzinfo=None)
            rows = []
            for ident in sorted(set(invitee_ids)):
                key = f"{trajectory}/feedback/{fround.name}/on-demand/{today.isoformat()}/{ident}"
                deadline = datetime.combine(today + within, datetime.min.time()).isoformat()
                item = PlannedItem(
                    key=key, source=cycle.source_id, item_type="feedback_request", subject=employee_id, due_at=now,
                    period=year.id, parent_key=trajectory, start_mode=fround.start, catch_up="all",
                    workflow=fround.workflow, label=f"{fround.label} (op verzoek)",
                    payload={"employee": employee_id, "manager": employee.manager, "cycle": cycle.name,
                             "work_year": year.id, "round": fround.name, "trajectory": trajectory, "invitee": ident,
                             "invitee_role": "on_demand", "requested_by": actor.id, "due_date": deadline[:10],
                             "visible_to": visible_to(fround, "on_demand"),
                             "questions": [dict(q) for q in fround.questions]})
                rows.append(item.row(now))
                keys.append(key)
            # only what this call inserted is audited and returned: an identical request (a client's retry after a
            # lost answer, or one at the same moment: on PostgreSQL its INSERT waits for this one's key and then
            # inserts nothing) writes no second item and no second 'request' event
            stmt = dialect_insert(conn, items).on_conflict_do_nothing(index_elements=["key"]).returning(items.c.key)
            written = set(conn.execute(stmt, rows).scalars())
            keys = [k for k in keys if k in written]
            if keys:
                conn.execute(events.insert(), [{"item_key": k, "event": "request", "actor": actor.id, "at": stamp,
                                                "detail": "{}"} for k in keys])
    finally:
        if resolved.owned:
            resolved.sa_engine.dispose()
    return keys

