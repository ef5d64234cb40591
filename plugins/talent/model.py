"""The talent pack's compiled models and the planning of trajectories, moments and feedback requests.

Everything here is pure: ``DevelopmentCycle.plan(employee, now)`` says which items have
arisen for one employee by ``now`` (the scheduler's ``ItemSource`` hook); the tick stores them.

Keys (deterministic, unique in ``rw_scheduled_items``)::

    talent/<cycle>/<work year>/<employee>/<role>                         trajectory
    talent/<cycle>/<work year>/<employee>/<role>/<moment>[/<date>]       conversation moment
    .../<moment>/feedback/<round>/<invitee>                              feedback before a moment
    talent/<cycle>/<work year>/<employee>/<role>/feedback/<round>/<date>/<invitee>   fixed round

Rules for people who do not work the whole year (docs/packs/talent.md):
- a trajectory exists for every work year in which the employee is employed at least one day;
  it arises at the later of the work-year start and the hire date;
- a moment only arises inside its work year; a moment falling before the hire date is
  skipped (``before_hire: skip``, the default) or moved to the hire date (``move``); a moment on
  or after the leaving date is skipped (default) or moved to the last working day; moments
  already planned are cancelled when a leaving date is registered later;
- 29 February: dates are shifted with calendar arithmetic, so hire date + P1Y of 29 February
  2028 is 28 February 2029 (and each anniversary is computed from the hire date).
"""

from __future__ import annotations

from bisect import bisect_left
from calendar import monthrange
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, ClassVar

from dateutil.relativedelta import relativedelta
from regelwerk.conditions import Condition, Duration, parse_duration
from regelwerk.scheduling.directory import MemoryDirectory
from regelwerk.scheduling.employees import EmployeeFacts
from regelwerk.scheduling.schedule import Schedule, local_to_utc
from regelwerk.scheduling.sources import Directory, Plan, PlannedItem

__all__ = [
    "Competency",
    "CompetencyProfile",
    "ConversationMoment",
    "CyclePolicies",
    "DevelopmentCycle",
    "FeedbackRound",
    "InviteeSet",
    "MatrixPlacement",
    "MomentWindow",
    "TalentMatrix",
    "TalentRole",
    "WorkYear",
    "WorkYearCalendar",
    "WorkYearSpec",
    "moment_scope",
]

DEFAULT_CONVERSATION_WORKFLOW = "talent-conversation"
DEFAULT_FEEDBACK_WORKFLOW = "talent-feedback-request"


@dataclass(frozen=True, slots=True)
class WorkYear:
    """One work year: its id (2026 or 2026-2027), first day, middle and last day."""

    id: str
    start: date
    end: date
    middle: date

    def facts(self) -> dict[str, Any]:
        """The ``work_year`` facts schedules anchor on."""
        return {"id": self.id, "start": self.start, "middle": self.middle, "end": self.end}

    def contains(self, day: date) -> bool:
        """True when ``day`` lies in this work year."""
        return self.start <= day <= self.end


@dataclass(frozen=True, slots=True)
class WorkYearCalendar:
    """The period table: calendar years (start_month 1) or school years (e.g. start_month 9)."""

    name: str
    type: str
    start_month: int
    label: str = ""

    def year(self, first_year: int) -> WorkYear:
        """The work year starting in ``first_year``."""
        return _calendar_year(self.start_month, first_year)

    def _year(self, first_year: int) -> WorkYear:
        start = date(first_year, self.start_month, 1)
        after = start + relativedelta(years=1)
        # the middle: half the months on (1 July, 1 March for Sep-Aug)
        middle = start + relativedelta(months=6)
        ident = str(first_year) if self.start_month == 1 else f"{first_year}-{first_year + 1}"
        return WorkYear(ident, start, after - timedelta(days=1), middle)

    def year_of(self, day: date) -> WorkYear:
        """The work year containing ``day``."""
        return self.year(self.first_year_of(day))

    def first_year_of(self, day: date) -> int:
        """The calendar year in which the work year containing ``day`` starts."""
        return day.year if day.month >= self.start_month else day.year - 1

    def parse(self, ident: str) -> WorkYear | None:
        """A work year by id (``2026`` or ``2026-2027``), None when the id does not fit this calendar."""
        parts = ident.split("-")
        if self.start_month == 1:
            return self.year(int(parts[0])) if len(parts) == 1 else None
        if len(parts) != 2 or int(parts[1]) != int(parts[0]) + 1:
            return None
        return self.year(int(parts[0]))


@dataclass(frozen=True, slots=True)
class Competency:
    """A competency with its explanation per score (1-5 stars) and optional ESCO concept."""

    name: str
    label: str
    type: str
    scores: Mapping[int, str]
    description: str = ""
    esco_uri: str = ""
    questions: tuple[str, ...] = ()
    """Questions for applicants (the recruitment pack's questionnaire asks them)."""


@dataclass(frozen=True, slots=True)
class CompetencyProfile:
    """Competencies bundled for reuse by roles; ``departments`` link it to vacancies' questionnaires."""

    name: str
    label: str
    competencies: tuple[str, ...]
    departments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TalentRole:
    """A role: generated from functions or added by hand; blockable; with its competencies resolved."""

    name: str
    label: str
    origin: str
    functions: tuple[str, ...]
    blocked: bool
    profile: str | None
    competencies: tuple[str, ...]
    version: str = ""

    def held_by(self, employee: EmployeeFacts) -> bool:
        """True when the employee holds this role (by function, or listed in the ``roles`` fact)."""
        if self.blocked:
            return False
        if self.name in employee.roles:
            return True
        return self.covers_function(employee.function)

    def covers_function(self, function: str | None, *, wildcard: bool = True) -> bool:
        """True when this (unblocked) role is generated from ``function`` (``"*"`` counts unless ``wildcard=False``)."""
        if self.blocked or self.origin != "function":
            return False
        return (wildcard and "*" in self.functions) or (function is not None and function in self.functions)


@dataclass(frozen=True, slots=True)
class InviteeSet:
    """Who a feedback round asks about an employee: one set with its minimum and maximum.

    ``kind``: self, manager, managers_manager, colleagues (``same``: department or team = same manager),
    nominated (the peers listed in the employee fact ``fact``), role (holders of ``role``).
    """

    kind: str
    same: str = "department"
    role: str = ""
    fact: str = "feedback_peers"
    minimum: int = 0
    maximum: int | None = None

    @property
    def name(self) -> str:
        """The set's name in keys and payloads (``role-<role>`` for a role)."""
        return f"role-{self.role}" if self.kind == "role" else self.kind


@dataclass(frozen=True, slots=True)
class FeedbackRound:
    """A 360-degree feedback round."""

    name: str
    label: str
    timing: str
    moment: str | None
    days_ahead: int
    arises: Schedule | None
    invite: tuple[InviteeSet, ...]
    questions: tuple[Mapping[str, str], ...]
    workflow: str
    start: str
    appears_before: Duration | None = None
    """Requests appear this long before the moment they prepare (default: ``days_ahead`` days)."""
    reminders: tuple[Duration, ...] = ()
    """A reminder item this long before the requests are due (the moment's due date, or ``answer_within``)."""
    answer_within: Duration | None = None
    """Fixed and on-demand requests: due this long after they appear (default P14D)."""
    visibility: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per invitee set: who may read its answers (subject, manager, managers_manager, hr, invitee)."""
    reminder_workflow: str | None = None

    def lead(self) -> relativedelta:
        """How long before the prepared moment the requests appear."""
        return self.appears_before.delta() if self.appears_before is not None else relativedelta(days=self.days_ahead)

    @property
    def lead_text(self) -> str:
        """The lead time as ISO text."""
        return self.appears_before.text if self.appears_before is not None else f"P{self.days_ahead}D"


@dataclass(frozen=True, slots=True)
class MomentWindow:
    """When a moment with a ``window`` is open: from the day ``opens`` gives up to and including its due day.

    The moment's ``arises`` is the window's last day (``until``, at the window's time), so everything a due
    date decides (hire, leaving, the work year, ``when``) reads the end of the window; ``opens`` is a
    one-point anchor schedule (``from``): the day the moment appears, instead of a lead time.
    """

    opens: Schedule

    def first_day(self, facts: Mapping[str, Any]) -> date | None:
        """The window's first day for these facts (None when its anchor fact is absent)."""
        base = self.opens.anchor_date(facts)
        if base is None:
            return None
        return base + self.opens.offset.delta(self.opens.sign) if self.opens.offset is not None else base


@dataclass(frozen=True, slots=True)
class ConversationMoment:
    """A conversation moment of a cycle (nulmeting, doelstellingsgesprek...).

    ``arises`` is when it is *due*; it *appears* (the tick creates and starts it) ``appears_before``
    earlier (default: the cycle's), or on the first day of its ``window``, and only for employees for whom
    ``when`` holds, in the trajectory of every role of the work year it is for (``roles``; none: all of them).
    With ``once_per_person`` a person holding several of those roles gets it once, in the trajectory of the
    first of them (in the work year's order).
    """

    id: str
    label: str
    dossier_item_type: str
    creation_profile: str
    arises: Schedule
    start: str
    workflow: str
    before_hire: str
    after_leaving: str
    feedback_round: str | None = None
    appears_before: Duration | None = None
    when: Condition | None = None
    roles: tuple[str, ...] = ()
    """The roles of the work year it is for; empty: all of them."""
    window: MomentWindow | None = None
    """Open from its first day up to the due date (``arises``); late after that."""
    once_per_person: bool = False
    """One per person and work year (the first role's trajectory), not one per role's trajectory."""


@dataclass(frozen=True, slots=True)
class CyclePolicies:
    """What a cycle does where work-year boundaries bite (docs/packs/talent.md, "Policies").

    ``hire_year``: a moment anchored on the hire date belongs to the work year of the hire (``hire``,
    default: the nulmeting of someone hired on 31 December is part of that year's trajectory) or of its
    due date (``due``). ``leaving``: a moment due on or after the leaving date is cancelled (``cancel``,
    default), kept (``keep``) or moved to the last working day (``move``); a moment's own
    ``after_leaving`` overrides it. ``transfer``: on a role change, close the old role's trajectory and
    open the new one from the date in the employee fact ``transfer_fact`` (``close_and_open``, default), or
    let the new trajectory start with the work year (``whole_year``).
    """

    hire_year: str = "hire"
    leaving: str = "cancel"
    transfer: str = "close_and_open"
    transfer_fact: str = "role_since"


@dataclass(frozen=True, slots=True)
class WorkYearSpec:
    """A work year (``year``) or every year from one on (``from_year``), with its roles."""

    year: WorkYear | None
    from_year: WorkYear | None
    roles: tuple[str, ...]


def role_series(cycle: str, year: str, role: str) -> str:
    """The ``series`` of a cycle's trajectories for one work year and role (used to list unapplied changes)."""
    return f"talent/{cycle}/{year}/role/{role}"


@lru_cache(maxsize=16384)
def _day_at(day: date, tz_name: str, at: time = time(0, 0)) -> datetime:
    """``day`` at ``at`` in ``tz_name``, as UTC (a pure function of few distinct days: cached)."""
    from zoneinfo import ZoneInfo

    return local_to_utc(day, at, ZoneInfo(tz_name))


@lru_cache(maxsize=16384)
def _local_date(moment: datetime, tz_name: str) -> date:
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(tz_name)).date()


class _LazyFacts(Mapping[str, Any]):
    """The facts a schedule anchors on (``employee``, ``work_year``), built only when a schedule reads them."""

    __slots__ = ("_data", "_employee", "_year")

    def __init__(self, employee: EmployeeFacts, year: WorkYear) -> None:
        self._employee = employee
        self._year = year
        self._data: dict[str, Any] | None = None

    def _built(self) -> dict[str, Any]:
        if self._data is None:
            e = self._employee
            self._data = {"employee": {"hire_date": e.hire_date, "leaving_date": e.leaving_date, **e.attributes},
                          "work_year": self._year.facts()}
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._built()[key]

    def __iter__(self) -> Any:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())

    def anchor_value(self, anchor: Sequence[str]) -> Any:
        """The value at ``anchor`` (a path, as :meth:`DevelopmentCycle._occurrences` walks it), read from the
        employee without building the facts when it is one of the employee's own (``employee.<name>``): most
        trajectories only ask for the hire date to find their cached occurrences. The built facts put the
        attributes over ``hire_date`` and ``leaving_date``, so an attribute of that name wins here too."""
        if self._data is None and len(anchor) == 2 and anchor[0] == "employee":
            employee, name = self._employee, anchor[1]
            if name in employee.attributes:
                return employee.attributes[name]
            return employee.hire_date if name == "hire_date" else employee.leaving_date if name == "leaving_date" \
                else None
        value: Any = self
        for part in anchor:
            value = value.get(part) if isinstance(value, Mapping) else None
        return value


@lru_cache(maxsize=1024)
def _calendar_year(start_month: int, first_year: int) -> WorkYear:
    return WorkYearCalendar("", "", start_month)._year(first_year)


@lru_cache(maxsize=256)
def _plan_at(start: date, ahead: Duration, tz_name: str) -> datetime:
    return _day_at(start - ahead.delta(), tz_name)


def _days(duration: Duration | None) -> relativedelta:
    return duration.delta() if duration is not None else relativedelta()


@dataclass(frozen=True, slots=True)
class DevelopmentCycle:
    """A development cycle; implements the scheduler's ``ItemSource`` (with a directory of colleagues)."""

    name: str
    label: str
    calendar: WorkYearCalendar
    groups: tuple[str, ...]
    when: Condition | None
    plan_ahead: Duration
    work_years: tuple[WorkYearSpec, ...]
    moments: tuple[ConversationMoment, ...]
    roles: Mapping[str, TalentRole]
    feedback_rounds: tuple[FeedbackRound, ...]
    version: str = ""
    timezone: str = "Europe/Amsterdam"
    rounds_by_name: Mapping[str, FeedbackRound] = field(default_factory=dict)
    appears_before: Duration | None = None
    policies: CyclePolicies = field(default_factory=CyclePolicies)

    uses_directory: ClassVar[bool] = True
    plans_since: ClassVar[bool] = True

    @property
    def source_id(self) -> str:
        """The scheduler's name for this source."""
        return f"DevelopmentCycle/{self.name}"

    def coverage_moments(self) -> tuple[tuple[str, str], ...]:
        """What scenario coverage counts of this cycle: each conversation moment and each feedback round."""
        return (tuple((m.id, m.label) for m in self.moments)
                + tuple((f"feedback/{r.name}", r.label) for r in self.feedback_rounds))

    @staticmethod
    def coverage_moment(item_type: str, payload: Mapping[str, Any]) -> str | None:
        """The moment (or ``feedback/<round>``) a fired item of this cycle stands for; None for a trajectory."""
        if item_type == "moment" and payload.get("moment"):
            return str(payload["moment"])
        if item_type == "feedback_request" and payload.get("round"):
            return f"feedback/{payload['round']}"
        return None

    def timing(self) -> dict[str, str]:
        """Each moment's lead time as ISO text: what a trajectory pins when it arises."""
        out = {}
        for moment in self.moments:
            if moment.window is not None:
                continue  # it appears on its window's first day: no lead time to pin
            lead = moment.appears_before or self.appears_before
            out[moment.id] = lead.text if lead is not None else "P0D"
        return out

    def applies_to(self, employee: EmployeeFacts, now: datetime) -> bool:
        """The cycle's groups and condition hold for the employee."""
        if self.groups and not set(self.groups) & set(employee.groups):
            return False
        return self.when is None or bool(self.when({"employee": employee.to_dict()}, now))

    def plan_moment(self, year: WorkYear) -> datetime:
        """When a work year's items are planned (its start minus ``plan_ahead``)."""
        return _plan_at(year.start, self.plan_ahead, self.timezone)

    def years_until(self, now: datetime) -> tuple[list[tuple[WorkYear, tuple[str, ...], bool]], datetime | None]:
        """Work years to plan at ``now`` (planning moment reached, not yet over) and the next planning moment.

        The flag says the year is over but still reaches hire-anchored moments of people hired in it
        (policy ``hire_year: hire``).
        """
        today = now.astimezone(UTC).date()
        out: dict[str, tuple[WorkYear, tuple[str, ...], bool]] = {}
        reach = _HIRE_MOMENT_REACH if self.policies.hire_year == "hire" and self._hire_anchored() else timedelta(0)
        next_due: datetime | None = None
        for spec in self.work_years:
            if spec.year is not None:
                candidates = [spec.year]
            else:
                assert spec.from_year is not None
                first = spec.from_year.start.year
                current = self.calendar.year_of(today).start.year
                candidates = [self.calendar.year(y) for y in range(first, max(first, current) + 2)]
            for year in candidates:
                moment = self.plan_moment(year)
                if moment <= now:
                    if year.end >= today - timedelta(days=1):
                        out.setdefault(year.id, (year, spec.roles, False))
                    elif year.end >= today - timedelta(days=1) - reach:
                        out.setdefault(year.id, (year, spec.roles, True))
                elif next_due is None or moment < next_due:
                    next_due = moment
        return [out[k] for k in sorted(out)], next_due

    def covers(self, day: date) -> bool:
        """True when the work year containing ``day`` is one of this cycle's work years."""
        year = self.calendar.year_of(day)
        return any((spec.year is not None and spec.year.id == year.id)
                   or (spec.from_year is not None and spec.from_year.start <= year.start) for spec in self.work_years)

    def _covers_memo(self, day: date, memo: dict[Any, Any]) -> bool:
        """:meth:`covers` of ``day``, kept in a batch's ``memo`` by the work year it falls in (all ``covers`` reads of
        it: hire dates are mostly distinct, their work years few)."""
        key = ("covers", self.calendar.first_year_of(day))
        found = memo.get(key)
        if found is None:
            found = memo[key] = self.covers(day)
        return bool(found)

    def _hire_anchored(self) -> bool:
        return any(m.arises.form == "anchor" and m.arises.anchor == ("employee", "hire_date") for m in self.moments)

    def plan(self, employee: EmployeeFacts, now: datetime) -> Plan:
        """Trajectories, moments and feedback requests arisen for ``employee`` by ``now``."""
        return self.plan_batch([employee], now)[0]

    def plan_batch(self, employees: Sequence[EmployeeFacts], now: datetime,
                   directory: Directory | None = None, appeared_only: bool = False,
                   since: Sequence[datetime | None] | None = None) -> list[Plan]:
        """``plan`` for many employees; the work years and fact-independent occurrences are computed once.

        With a ``directory`` (the tick's), colleagues can be invited and a running year keeps the lead
        times its trajectories pinned until they are applied (``regelwerk talent apply --timing``).
        With ``since`` (the tick's, per employee; see ``plan_with``) a plan leaves out the trajectories planned
        before it and the moment occurrences (with their rounds and reminders) whose last item appeared before
        it, unless the cycle's condition reads the clock (then whether it applies may have changed).
        """
        years, next_due = self.years_until(now)
        cache = _occurrence_cache(self)
        prep = _Prepared(self.timing(), {y.id: self.plan_moment(y) for y, _, _ in years}, {
            m.id: tuple([self.rounds_by_name[m.feedback_round]] if m.feedback_round else [])
            + tuple(r for r in self.feedback_rounds if r.timing == "before_moment" and r.moment == m.id
                    and r.name != m.feedback_round) for m in self.moments},
            # as UTC: the items' moments are UTC, and comparing datetimes of different zones asks the zone each time
            now.astimezone(UTC) if appeared_only else None,
            tuple((m, m.arises.form == "cron" or m.arises.repeat is not None or len(m.arises.dates) > 1,
                   m.arises.form == "anchor" and m.arises.anchor == ("employee", "hire_date"),
                   int(m.arises.grace_delta.total_seconds()),
                   not (m.arises.form == "anchor" and m.arises.anchor[0] != "work_year"), m.roles,
                   m.window is not None and m.window.opens.anchor[0] == "work_year") for m in self.moments))
        partial_ok = appeared_only and since is not None and (self.when is None or self.when.timeless)
        sinces = since if partial_ok and since is not None else [None] * len(employees)
        stored: Mapping[str, Mapping[str, Any]] = {}
        if directory is not None and years and hasattr(directory, "stored"):
            # what the plan reads of them: a trajectory's pinned lead times; that a moment is one. A full plan reads
            # every stored trajectory of the employee (what it closes), a partial one (``since``) only the pinned
            # lead times of the trajectories it plans: those are looked up by their keys
            whole = [e.id for e, after in zip(employees, sinces, strict=True) if after is None]
            if whole:
                stored = directory.stored(self.source_id, "trajectory", whole, fields=("timing",))
            part = [e.id for e, after in zip(employees, sinces, strict=True) if after is not None]
            if part:
                wanted = [self._owner(year.id, ident) + self.roles[role].name for ident in part
                          for year, roles, _ in years for role in roles if role in self.roles]
                stored = {**stored, **directory.stored(self.source_id, "trajectory", part, fields=("timing",),
                                                       keys=wanted)}
            # moments of leavers that appeared before the leaving date was registered: the policy decides (a full
            # plan's: a partial one closes nothing)
            leavers = [e.id for e, after in zip(employees, sinces, strict=True)
                       if e.leaving_date is not None and after is None]
            if leavers:
                stored = {**stored, **directory.stored(self.source_id, "moment", leavers, fields=("moment",))}
        people = MemoryDirectory(employees) if directory is None else directory
        if directory is not None and years and self.feedback_rounds:
            prefetch_invitees(self.feedback_rounds, employees, directory)
        keys = sorted(stored)  # a person's stored items are one range of it (bisect), not a scan per person
        nested = _nested_ids([e.id for e in employees]) if keys else {}
        return [self._plan_one(e, now, years, next_due, cache, people, stored, prep, keys, after,
                               nested.get(e.id, ()))
                for e, after in zip(employees, sinces, strict=True)]

    def _owner(self, year_id: str, employee_id: str) -> str:
        """The start of the keys of an employee's items of a work year (a trajectory's key: this and the role)."""
        return f"talent/{self.name}/{year_id}/{employee_id}/"

    def _plan_one(self, employee: EmployeeFacts, now: datetime, years: list[tuple[WorkYear, tuple[str, ...], bool]],
                  next_due: datetime | None, cache: dict[Any, list[datetime]], directory: Directory,
                  stored: Mapping[str, Mapping[str, Any]], prep: _Prepared, keys: Sequence[str] = (),
                  since: datetime | None = None, nested: Sequence[str] = ()) -> Plan:
        if not years or not self.applies_to(employee, now):
            return Plan((), next_due)
        items: list[PlannedItem] = []
        closes: list[str] = []
        soon: list[datetime] = []
        for year, role_names, late in years:
            if late and (employee.hire_date is None or not year.contains(employee.hire_date)):
                continue
            if employee.hire_date is not None and employee.hire_date > year.end:
                continue
            if employee.leaving_date is not None and employee.leaving_date <= year.start:
                continue
            held_roles = []
            for role_name in role_names:
                role = self.roles.get(role_name)
                if role is not None and role.held_by(employee):
                    held_roles.append(role)
            # one trajectory per role held (its moments); a moment once_per_person in the first of them it is for
            held = tuple([r.name for r in held_roles])
            prefix = self._owner(year.id, employee.id)
            for role in held_roles:
                key = prefix + role.name
                found = stored.get(key) if stored else None
                pinned = found.get("timing") if found is not None else None
                self._trajectory(items, key, employee, year, role, cache, directory,
                                 pinned if pinned is not None and isinstance(pinned, Mapping) else None, prep, late,
                                 soon, since, held)
            if since is not None or not keys:
                continue  # facts and definitions as at the last plan, which closed what they no longer call for
            own = _prefixed(keys, prefix)
            if nested:  # ids of the batch that extend this one ("x/y" of "x"): their keys are under its prefix too
                theirs = tuple(self._owner(year.id, other) for other in nested)
                own = [k for k in own if not k.startswith(theirs)]
            if self.policies.transfer == "close_and_open" and not late:
                closes.extend(k for k in own if "moment" not in stored[k] and k[len(prefix):] not in held)
            if employee.leaving_date is not None and not late:
                wanted = {i.key for i in items}
                closes.extend(k for k in own if "moment" in stored[k] and k not in wanted)
        if soon:
            next_due = min(soon) if next_due is None else min(next_due, *soon)
        return Plan(tuple(items), next_due, tuple(sorted(closes)) if closes else (), partial=since is not None)

    @staticmethod
    def _occurrences(schedule: Schedule, cache_key: tuple[str, str], start: datetime, end: datetime,
                     facts: Mapping[str, Any], cache: dict[Any, list[datetime]]) -> list[datetime]:
        # cron, fixed dates and work-year anchors do not depend on the employee: computed once per batch;
        # an employee anchor depends only on its value (most people share a few hire dates)
        key: Any = cache_key
        if schedule.form == "anchor" and schedule.anchor[0] != "work_year":
            if isinstance(facts, _LazyFacts):
                value = facts.anchor_value(schedule.anchor)
            else:
                value = facts
                for part in schedule.anchor:
                    value = value.get(part) if isinstance(value, Mapping) else None  # type: ignore[assignment]
            # a date (the usual anchor) is its own key: no text made and hashed per employee
            key = (cache_key, value if type(value) is date else str(value), start, end)
        found = cache.get(key)
        if found is None:
            found = cache[key] = list(schedule.occurrences(start, end, facts))
        return found

    def _role_start(self, employee: EmployeeFacts, year: WorkYear) -> date:
        """The first day of a trajectory: year start, hire date or (transfer policy) the date of the role."""
        first = max(year.start, employee.hire_date or year.start)
        since = employee.attributes.get(self.policies.transfer_fact)
        if since:
            try:
                day = since if isinstance(since, date) else date.fromisoformat(str(since))
            except ValueError:
                day = None
            if day is not None and year.contains(day):
                first = max(first, day)
        return first

    def _trajectory(self, out: list[PlannedItem], key: str, employee: EmployeeFacts, year: WorkYear,
                    role: TalentRole, cache: dict[Any, list[datetime]], directory: Directory,
                    pinned: Mapping[str, Any] | None, prep: _Prepared, late: bool = False,
                    soon: list[datetime] | None = None, since: datetime | None = None,
                    held: tuple[str, ...] = ()) -> None:
        """The trajectory of one role (its ``key``) and its moments, added to ``out``: the moments for this role (a
        moment's ``roles``); with ``held`` (the employee's roles of the year, in its order) a ``once_per_person``
        moment only in the first held role it is for."""
        held = held or (role.name,)
        several = len(held) > 1
        first_day = self._role_start(employee, year)
        timing = prep.timing
        soon = [] if soon is None else soon
        common = {"employee": employee.id, "manager": employee.manager, "role": role.name, "work_year": year.id,
                  "cycle": self.name}
        planned_at = prep.planned_at[year.id]
        # what depends on the year (and role) alone, once per batch: its window and reach, the title, the series
        per_year = prep.memo.get(("year", year.id, role.name))
        if per_year is None:
            per_year = prep.memo[("year", year.id, role.name)] = (
                _day_at(year.start, self.timezone), _day_at(year.end + timedelta(days=1), self.timezone),
                _day_at(year.end + _HIRE_MOMENT_REACH + timedelta(days=1), self.timezone),
                f"{self.label} {year.id}", role_series(self.name, year.id, role.name))
        window_start, window_end, hire_end, title, series = per_year
        source_id = self.source_id
        if since is None or planned_at >= since:
            out.append(PlannedItem(
                key=key, source=source_id, item_type="trajectory", subject=employee.id,
                due_at=_day_at(first_day, self.timezone), period=year.id, start_mode="none", catch_up="all",
                series=series, version=role.version, label=title,
                payload={**common, "title": title, "profile": role.profile,
                         "competencies": list(role.competencies), "timing": timing, "opened": first_day.isoformat()},
            ))
        if pinned is not None:
            # the batch's stored trajectories share the parsed lead times of equal payloads (StoreDirectory.stored):
            # merged once per pinned object, which the batch's stored answer keeps alive (so its id is its own)
            merged = prep.memo.get(("pinned", id(pinned)))
            if merged is None or merged[0] is not pinned:
                merged = prep.memo[("pinned", id(pinned))] = (pinned, {**timing, **{k: str(v) for k, v in
                                                                                  pinned.items()}})
            timing = merged[1]
        facts: _LazyFacts | None = None  # made when a schedule or window reads the employee's facts
        hire_in_year = employee.hire_date is not None and year.contains(employee.hire_date)
        hire_policy = self.policies.hire_year == "hire"
        hire_year_owns: bool | None = None  # computed once, when a hire-anchored moment asks
        employee_scope: dict[str, Any] | None = None
        for moment, repeating, hire_anchored, grace, same_for_all, for_roles, window_fixed in prep.moments:
            if for_roles and role.name not in for_roles:
                continue  # not for this role
            if several and moment.once_per_person and role.name != next(
                    (r for r in held if not for_roles or r in for_roles), role.name):
                continue  # once per person: another of the employee's roles has it
            schedule = moment.arises
            start, end = window_start, window_end
            if hire_anchored and hire_policy and hire_year_owns is None:
                hire_year_owns = hire_in_year or (employee.hire_date is not None and self._covers_memo(
                    employee.hire_date, prep.memo))
            if hire_anchored and hire_policy and hire_year_owns:
                if not hire_in_year:
                    continue  # the moment belongs to the trajectory of the hire year
                end = hire_end
            elif late:
                continue  # an ended year only still reaches its hire-anchored moments
            stretch = end != window_end
            lead_text = timing.get(moment.id, "P0D")
            opens: date | None = None
            if moment.window is not None:
                # the window's first day: per year when it counts from the work year, else from the employee
                opens_key = ("opens", year.id, moment.id)
                opens = prep.memo.get(opens_key) if window_fixed else None
                if opens is None:
                    facts = _LazyFacts(employee, year) if facts is None else facts
                    opens = moment.window.first_day(facts)
                    if window_fixed:
                        prep.memo[opens_key] = opens
            # what does not depend on the employee was computed for an earlier one (the same cache entry)
            occurrences = cache.get((year.id, moment.id)) if same_for_all else None
            if occurrences is None:
                facts = _LazyFacts(employee, year) if facts is None else facts
                occurrences = self._occurrences(schedule, (year.id, moment.id), start, end, facts, cache)
            if not occurrences:
                continue  # e.g. the intake of someone hired years ago: nothing in this year
            # the dates of its occurrences depend only on these (most employees share them): computed once per
            # batch. The occurrence list is keyed by identity: it is the batch cache's, alive till the batch ends.
            # The hire date counts only through first_day (never before it: no day of the trajectory is before
            # the hire), so people hired before the year share one entry
            group_key = (moment.id, id(occurrences), year.id, first_day, employee.leaving_date, stretch, lead_text,
                         opens)
            entries = prep.memo.get(group_key)
            if entries is None:
                entries = []
                rounds = prep.rounds[moment.id]
                for when in occurrences:
                    dates = self._occurrence_dates(moment, when, employee, year, schedule, first_day, stretch,
                                                   lead_text, planned_at, opens)
                    if dates is None:
                        continue
                    # and, as they depend on the same: when its last item appears and when it is first due to be
                    # planned (the moment or a round, not before the year's planning moment)
                    due, day, appear = dates
                    # a round prepares the conversation: a window's first day (any day of it may be the one), else
                    # the due date
                    prepared, prepared_day = ((appear, _local_date(appear, schedule.timezone)) if opens is not None
                                              else (due, day))
                    first = min([appear, *(_day_at(max(prepared_day - _lead(r.lead_text), first_day), schedule.timezone,
                                                   schedule.at) for r in rounds)]) if rounds else appear
                    # a round's requests and reminders appear on or before the prepared day, at the schedule's
                    # time (plan_round), and not before the planning moment; the moment itself at ``appear``
                    last = max(appear, _day_at(prepared_day, schedule.timezone, schedule.at), planned_at) \
                        if rounds else appear
                    # a window is not missed while it is open: the catch-up policy applies only after its end
                    late_after = grace if opens is None else max(grace, int(
                        (_day_at(day + timedelta(days=1), schedule.timezone) - appear).total_seconds()))
                    # and the payload's texts of its days (the moment's item of every employee of the group)
                    entries.append((due, day, appear, last, max(first, planned_at), late_after,
                                    prepared, day.isoformat(), _local_date(appear, schedule.timezone).isoformat()))
                prep.memo[group_key] = entries
            for due, day, appear, last, ready, late_after, prepared, day_text, appears_text in entries:
                if since is not None and last < since:
                    # every item of this occurrence (the moment, its rounds' requests and reminders) appeared
                    # before the last plan's next_due: that plan (or an earlier one) made them
                    continue
                if prep.now is not None and ready > prep.now:
                    # the tick asks only for what has appeared: a moment still to come (with its rounds) only
                    # says when to plan this employee again - no condition, no items
                    soon.append(ready)
                    continue
                if moment.when is not None:
                    if employee_scope is None:
                        employee_scope = employee.to_dict()
                    if not moment.when(moment_scope(employee, year, moment.id, day, employee_scope), due):
                        continue
                mkey = f"{key}/{moment.id}" + (f"/{day_text}" if repeating else "")
                if prep.now is not None and appear > prep.now and (since is not None or employee.leaving_date is None):
                    # ready for its rounds, the moment itself still to come: the tick would leave its item out and
                    # plan the employee again when it appears, which is what this says (a leaver's full plan names
                    # it all the same: its stored moments not named are closed)
                    soon.append(appear)
                else:
                    out.append(PlannedItem(
                        key=mkey, source=source_id, item_type="moment", subject=employee.id, due_at=appear,
                        period=year.id, parent_key=key, series=f"{key}/{moment.id}", start_mode=moment.start,
                        catch_up=schedule.catch_up, grace_seconds=late_after,
                        workflow=moment.workflow, version=role.version, label=moment.label,
                        appears_at=appear, deadline=due,
                        payload={**common, "moment": moment.id, "label": moment.label,
                                 "dossier_item_type": moment.dossier_item_type,
                                 "creation_profile": moment.creation_profile, "trajectory": key,
                                 "date": day_text, "due_date": day_text, "appears": appears_text},
                    ))
                for fround in prep.rounds[moment.id]:
                    out.extend(plan_round(self, fround, f"{mkey}/feedback/{fround.name}", prepared, employee, year, key,
                                          common, schedule, directory, first_day=first_day, since=since,
                                          memo=prep.memo, grace=grace))
        for fround in self.feedback_rounds:
            if late or fround.timing != "fixed" or fround.arises is None:
                continue
            facts = _LazyFacts(employee, year) if facts is None else facts
            for when in self._occurrences(fround.arises, (year.id, f"feedback/{fround.name}"), window_start,
                                          window_end, facts, cache):
                day = when.astimezone(fround.arises.tz).date()
                if not employee.employed_on(day) or day < first_day:
                    continue
                within = fround.answer_within.delta() if fround.answer_within is not None else relativedelta(days=14)
                deadline = local_to_utc(day + within, fround.arises.at, fround.arises.tz)
                if since is not None and max(deadline + timedelta(days=1), planned_at) < since:
                    continue  # its requests and reminders (all before the deadline) were planned before
                out.extend(plan_round(self, fround, f"{key}/feedback/{fround.name}/{day.isoformat()}", deadline,
                                      employee, year, key, common, fround.arises, directory, ask_at=when,
                                      first_day=first_day, since=since))

    def _occurrence_dates(self, moment: ConversationMoment, when: datetime, employee: EmployeeFacts, year: WorkYear,
                          schedule: Schedule, first_day: date, stretch: bool, lead_text: str, planned_at: datetime,
                          opens: date | None = None) -> tuple[datetime, date, datetime] | None:
        """``(due moment, due day, appearance moment)`` of one occurrence for this employee, or None.

        With ``opens`` (a window's first day) the moment appears then (not after its due day) instead of a lead
        time before it."""
        due = self._employment_adjusted(moment, when, employee, year, schedule, first_day, stretch=stretch)
        if due is None:
            return None
        day = _local_date(due, schedule.timezone)
        appear_day = max(min(opens, day) if opens is not None else day - _lead(lead_text), first_day)
        appear = _day_at(appear_day, schedule.timezone, schedule.at) if appear_day != day else due
        return due, day, max(appear, planned_at)

    def _employment_adjusted(self, moment: ConversationMoment, when: datetime, employee: EmployeeFacts,
                             year: WorkYear, schedule: Schedule, first_day: date, stretch: bool = False
                             ) -> datetime | None:
        day = original = _local_date(when, schedule.timezone)
        start = first_day
        if day < start:
            if moment.before_hire != "move":
                return None
            day = start
        leaving = moment.after_leaving if moment.after_leaving != "default" else self.policies.leaving
        if employee.leaving_date is not None and day >= employee.leaving_date:
            if leaving == "move":
                day = employee.leaving_date - timedelta(days=1)
            elif leaving != "keep":
                return None
        if not (year.contains(day) or (stretch and day > year.end)):
            return None
        if leaving != "keep" and not employee.employed_on(day):
            return None
        if day == original:
            return when
        return _day_at(day, schedule.timezone, schedule.at)


#: how far after its work year a moment anchored on a hire in that year may fall (policy hire_year: hire)
_HIRE_MOMENT_REACH = timedelta(days=366)
_NO_LEAD = Duration(text="P0D")


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What a batch computes once: the lead times, each year's planning moment, the rounds per moment."""

    timing: Mapping[str, str]
    planned_at: Mapping[str, datetime]
    rounds: Mapping[str, tuple[FeedbackRound, ...]]
    now: datetime | None = None
    """Set when only appeared items are wanted (the tick): later ones only give the next planning moment."""
    moments: tuple[tuple[Any, bool, bool, int, bool, tuple[str, ...], bool], ...] = ()
    """Per moment, what does not depend on the employee: ``(moment, repeating, hire_anchored, grace seconds,
    whether its occurrences are the same for every employee, the roles it is for, whether its window opens on a
    day of the work year alone)``."""
    memo: dict[Any, Any] = field(default_factory=dict)
    """The dates of occurrences, by what they depend on (``_trajectory``); one batch long."""


_OCCURRENCE_CACHES: dict[int, tuple[DevelopmentCycle, dict[Any, list[datetime]]]] = {}
_OCCURRENCE_LIMIT = 100_000


def _occurrence_cache(cycle: DevelopmentCycle) -> dict[Any, list[datetime]]:
    """The occurrences ``cycle`` computed (of its schedules per work year, of an employee anchor per value): pure
    functions of its definition, kept across batches and ticks (a tick re-plans most employees a few times a year).

    The entry holds the cycle itself, so its ``id`` stays unique while cached. A full cache is replaced, never
    emptied: a batch keeps the dictionary it started with, whose lists ``_trajectory`` memoises by identity.
    """
    found = _OCCURRENCE_CACHES.get(id(cycle))
    if found is None or found[0] is not cycle or len(found[1]) > _OCCURRENCE_LIMIT:
        if found is None and len(_OCCURRENCE_CACHES) >= 16:
            _OCCURRENCE_CACHES.pop(next(iter(_OCCURRENCE_CACHES)), None)
        found = (cycle, {})
        _OCCURRENCE_CACHES[id(cycle)] = found
    return found[1]


def _nested_ids(ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Per id, the ids among ``ids`` that extend it with a slash (``x`` -> ``x/y``): a talent key names its employee
    between slashes, so ``x``'s keys are a prefix of ``x/y``'s. Empty when no id holds a slash (the usual case)."""
    if not any("/" in ident for ident in ids):
        return {}
    ordered = sorted(set(ids))
    return {ident: tuple(found) for ident in ordered if (found := _prefixed(ordered, ident + "/"))}


def _prefixed(keys: Sequence[str], prefix: str) -> list[str]:
    """The keys starting with ``prefix``, from sorted ``keys`` (one bisect and the run of matches)."""
    out: list[str] = []
    for i in range(bisect_left(keys, prefix), len(keys)):
        if not keys[i].startswith(prefix):
            break
        out.append(keys[i])
    return out


@lru_cache(maxsize=256)
def _lead(text: str) -> timedelta | relativedelta:
    """A lead time as a delta to take from a date (``Duration.day_delta``)."""
    return (parse_duration(text) or _NO_LEAD).day_delta()


def _whole_months(start: date, end: date) -> int:
    """Whole calendar months from ``start`` to ``end`` (month ends clipped, as relativedelta counts them)."""
    months = (end.year - start.year) * 12 + end.month - start.month
    while months > 0:
        year, month = divmod(start.month - 1 + months, 12)
        last = monthrange(start.year + year, month + 1)[1]
        if date(start.year + year, month + 1, min(start.day, last)) <= end:
            break
        months -= 1
    return max(months, 0)


def moment_scope(employee: EmployeeFacts, year: WorkYear, moment: str, due: date,
                 employee_scope: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a moment's ``when`` reads: ``employee``, ``work_year``, ``moment`` and ``employment`` facts.

    ``employment`` is computed for the due date: ``days_in_work_year`` / ``months_in_work_year`` (employed
    days / whole months of the work year up to and including the due date), ``months_of_service`` (whole
    months since the hire date), ``employed_on_due_date``.
    """
    hire = employee.hire_date
    start = max(year.start, hire) if hire is not None else year.start
    last = due
    if employee.leaving_date is not None:
        last = min(last, employee.leaving_date - timedelta(days=1))
    days = max((last - start).days + 1, 0)
    months = _whole_months(start, last + timedelta(days=1)) if days else 0
    service = _whole_months(hire, due) if hire is not None and hire <= due else 0
    return {
        "employee": employee.to_dict() if employee_scope is None else employee_scope, "work_year": year.facts(),
        "moment": {"id": moment, "due_date": due},
        "employment": {"days_in_work_year": days, "months_in_work_year": months, "months_of_service": service,
                       "employed_on_due_date": employee.employed_on(due)},
    }


@dataclass(frozen=True, slots=True)
class MatrixPlacement:
    """Where an appraisal lands: the levels on both axes, the cell and its profile, and why."""

    performance: str
    potential: str
    profile: str
    profile_label: str
    cell_label: str
    explain: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (with the decision table's explanation)."""
        return {"performance": self.performance, "potential": self.potential, "profile": self.profile,
                "profile_label": self.profile_label, "cell_label": self.cell_label, "explain": dict(self.explain)}


@dataclass(frozen=True, slots=True)
class TalentMatrix:
    """HR3P or 9-GRID: levels per axis (low to high, with minimum scores), profiles and the cell mapping.

    ``table`` is the core ``DecisionTable`` the matrix compiled into (``<name>-placement``, also in
    the compiled bundle): it decides and explains every placement.
    """

    name: str
    model: str
    performance: tuple[tuple[str, str, float | None], ...]
    potential: tuple[tuple[str, str, float | None], ...]
    profiles: Mapping[str, str]
    cells: Mapping[tuple[str, str], tuple[str, str]]
    label: str = ""
    table: Any = None

    def place(self, performance: Any, potential: Any) -> MatrixPlacement:
        """The decision: an appraisal's performance and potential (level ids or 1-5 scores) -> its cell.

        ``ValueError`` names the axis whose value is neither a level nor a score within the levels.
        """
        decision = self.table.decide({"performance": performance, "potential": potential})
        outputs = decision.outputs
        if outputs["profile"] is None:
            for axis, value, levels in (("performance", performance, self.performance),
                                        ("potential", potential, self.potential)):
                probe = {"performance": self.performance[0][0], "potential": self.potential[0][0], axis: value}
                if self.table.decide(probe).outputs["profile"] is None:
                    raise ValueError(f"{axis} {value!r} is not a level ({', '.join(lv for lv, _, _ in levels)}) "
                                     "or a score within the levels")
        profile = str(outputs["profile"])
        _, cell_label = self.cells[(outputs["performance"], outputs["potential"])]
        return MatrixPlacement(str(outputs["performance"]), str(outputs["potential"]), profile,
                               self.profiles[profile], cell_label or self.profiles[profile], decision.explain)


from regelwerk_packs.talent.feedback import plan_round, prefetch_invitees  # noqa: E402  (feedback reads the models above)
