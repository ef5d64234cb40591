"""The ``Schedule`` construct: when something arises, as pure occurrence computation.

Three forms share one JSON Schema fragment (``schemas/v1/schedule.json#/$defs/schedule``):

- ``cron``: a cron expression evaluated on the wall clock of ``timezone``;
- ``anchor``: a date relative to a fact (``employee.hire_date`` plus P6W,
  ``work_year.end`` minus P1M, ``certificate.expiry_date`` minus P90D), optionally
  repeating (``repeat: P1Y``);
- ``dates``: fixed calendar dates.

Daylight-saving policy (documented in docs/scheduling.md): wall-clock times are
resolved with ``fold=0``. A time inside a spring-forward gap (02:30 on the last
Sunday of March in Europe/Amsterdam) fires at the same distance after the gap's
start, i.e. shifted forward by the gap (03:30 CEST); a time that occurs twice
(02:30 on the last Sunday of October) fires once, at its first occurrence (CEST).
Occurrences are strictly increasing instants: shifted times that land on an
instant already produced are dropped.

Nothing here touches a clock, a database or a file: the caller passes the window.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from regelwerk.conditions import Duration, parse_duration, resolve_path, to_temporal

__all__ = [
    "CATCH_UP_POLICIES",
    "DEFAULT_TIMEZONE",
    "Schedule",
    "compile_schedule",
    "local_to_utc",
    "next_fire",
    "occurrences",
]

DEFAULT_TIMEZONE = "Europe/Amsterdam"
CATCH_UP_POLICIES = ("once", "skip", "all")
WORK_YEAR_ANCHORS = ("work_year.start", "work_year.middle", "work_year.end")
_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_MAX_REPEATS = 10_000
ONE_DAY = Duration(days=1, text="P1D")


@dataclass(frozen=True, slots=True)
class Schedule:
    """A compiled schedule: when occurrences fall, and what to do with missed ones.

    ``catch_up`` says what a tick does with occurrences older than ``grace`` that were
    never run (downtime): ``once`` runs only the latest missed occurrence of a series,
    ``skip`` runs none of them, ``all`` runs every one.
    """

    form: str
    cron: str = ""
    anchor: tuple[str, ...] = ()
    sign: int = 1
    offset: Duration | None = None
    repeat: Duration | None = None
    dates: tuple[date, ...] = ()
    at: time = time(0, 0)
    timezone: str = DEFAULT_TIMEZONE
    catch_up: str = "once"
    grace: Duration = ONE_DAY

    @property
    def tz(self) -> ZoneInfo:
        """The schedule's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def grace_delta(self) -> timedelta:
        """``grace`` as a fixed timedelta (calendar months count as 31 days, years as 366)."""
        g = self.grace
        return timedelta(days=g.years * 366 + g.months * 31 + g.weeks * 7 + g.days,
                         hours=g.hours, minutes=g.minutes, seconds=g.seconds)

    def anchor_date(self, facts: Mapping[str, Any] | None) -> date | None:
        """The anchor's date read from the facts (None when absent or not a date)."""
        value = resolve_path(facts or {}, self.anchor)
        temporal = to_temporal(value)
        if temporal is None:
            return None
        if isinstance(temporal, datetime):
            return temporal.astimezone(self.tz).date()
        return temporal

    def occurrences(self, start: datetime, end: datetime, facts: Mapping[str, Any] | None = None,
                    ) -> Iterator[datetime]:
        """Occurrences in ``[start, end)`` as aware UTC datetimes, increasing."""
        return occurrences(self, start, end, facts)

    def next_fire(self, after: datetime, facts: Mapping[str, Any] | None = None,
                  limit: timedelta = timedelta(days=366 * 30)) -> datetime | None:
        """The first occurrence strictly after ``after`` (None when there is none within ``limit``)."""
        return next_fire(self, after, facts, limit)


@lru_cache(maxsize=8192)
def local_to_utc(day: date, at: time, tz: ZoneInfo) -> datetime:
    """A wall-clock moment in ``tz`` as UTC, with the gap/repeat policy (fold=0, see module doc)."""
    return datetime.combine(day, at).replace(tzinfo=tz, fold=0).astimezone(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _cron_occurrences(schedule: Schedule, start: datetime, end: datetime) -> Iterator[datetime]:
    from croniter import croniter

    tz = schedule.tz
    # Start two hours early on the naive wall clock so that a window opening inside a repeated
    # hour still sees that hour's first occurrence; results before ``start`` are filtered out.
    naive = (start.astimezone(tz) - timedelta(hours=2)).replace(tzinfo=None)
    it = croniter(schedule.cron, naive - timedelta(seconds=1))
    last: datetime | None = None
    while True:
        local: datetime = it.get_next(datetime)
        moment = local_to_utc(local.date(), local.time(), tz)
        if moment >= end:
            # A gap shifts an occurrence forward by at most the gap (an hour, two at most in any
            # zone), so a later wall-clock time may still map inside the window: look a little on.
            if moment >= end + timedelta(hours=3):
                return
            continue
        if moment < start or (last is not None and moment <= last):
            continue
        last = moment
        yield moment


def _anchor_occurrences(schedule: Schedule, start: datetime, end: datetime,
                        facts: Mapping[str, Any] | None) -> Iterator[datetime]:
    base = schedule.anchor_date(facts)
    if base is None:
        return
    offset = schedule.offset.delta(schedule.sign) if schedule.offset is not None else Duration().delta()
    for k in range(_MAX_REPEATS if schedule.repeat else 1):
        # Each repetition is computed from the anchor in one step (not from the previous one), so an
        # anniversary of 29 February falls on 28 February in common years and on 29 February again
        # in leap years.
        delta = offset if k == 0 or schedule.repeat is None else offset + _repeat_delta(schedule.repeat, k)
        day = base + delta
        moment = local_to_utc(day, schedule.at, schedule.tz)
        if moment >= end:
            return
        if moment >= start:
            yield moment


def _repeat_delta(repeat: Duration, k: int) -> Any:
    return Duration(years=repeat.years * k, months=repeat.months * k, weeks=repeat.weeks * k,
                    days=repeat.days * k).delta()


def occurrences(schedule: Schedule, start: datetime, end: datetime,
                facts: Mapping[str, Any] | None = None) -> Iterator[datetime]:
    """Every occurrence of ``schedule`` in ``[start, end)`` (aware UTC, increasing)."""
    start, end = _aware(start).astimezone(UTC), _aware(end).astimezone(UTC)
    if end <= start:
        return iter(())
    if schedule.form == "cron":
        return _cron_occurrences(schedule, start, end)
    if schedule.form == "anchor":
        return _anchor_occurrences(schedule, start, end, facts)
    moments = sorted({local_to_utc(d, schedule.at, schedule.tz) for d in schedule.dates})
    return iter([m for m in moments if start <= m < end])


def next_fire(schedule: Schedule, after: datetime, facts: Mapping[str, Any] | None = None,
              limit: timedelta = timedelta(days=366 * 30)) -> datetime | None:
    """The first occurrence strictly after ``after`` within ``limit``."""
    after = _aware(after).astimezone(UTC)
    start = after + timedelta(microseconds=1)
    return next(occurrences(schedule, start, after + limit, facts), None)


Report = Callable[[str, str, str, str], None]


def compile_schedule(data: Mapping[str, Any], pointer: str, report: Report,
                     default_catch_up: str = "once") -> Schedule | None:
    """Compile a schedule fragment (already schema-checked); problems go to ``report(code, msg, ptr, hint)``.

    Codes: RW801 bad cron expression, RW802 unknown time zone, RW803 bad time of day,
    RW804 bad anchor or duration.
    """
    ok = True
    timezone = str(data.get("timezone", DEFAULT_TIMEZONE))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        report("RW802", f"unknown time zone {timezone!r}", f"{pointer}/timezone",
               "use an IANA name such as Europe/Amsterdam")
        ok = False
    at = time(0, 0)
    if "at" in data:
        match = _AT.match(str(data["at"]))
        if not match:
            report("RW803", f"time of day {data['at']!r} is not HH:MM", f"{pointer}/at", "for example \"09:00\"")
            ok = False
        else:
            at = time(int(match.group(1)), int(match.group(2)))
    catch_up = str(data.get("catch_up", default_catch_up))
    grace = parse_duration(str(data.get("grace", "P1D"))) or Duration(days=1, text="P1D")
    common: dict[str, Any] = {"at": at, "timezone": timezone, "catch_up": catch_up, "grace": grace}
    if "cron" in data:
        from croniter import croniter

        expr = str(data["cron"])
        if not croniter.is_valid(expr):
            report("RW801", f"invalid cron expression {expr!r}", f"{pointer}/cron",
                   "five fields: minute hour day-of-month month day-of-week, e.g. \"0 9 * * MON\"")
            return None
        if "at" in data:
            report("RW803", "'at' cannot be combined with 'cron' (the expression holds the time)", f"{pointer}/at", "")
            return None
        return Schedule("cron", cron=expr, **common) if ok else None
    if "dates" in data:
        days = []
        for i, raw in enumerate(data["dates"]):
            value = to_temporal(raw)
            if not isinstance(value, date) or isinstance(value, datetime):
                report("RW804", f"{raw!r} is not a date (YYYY-MM-DD)", f"{pointer}/dates/{i}", "")
                ok = False
            else:
                days.append(value)
        return Schedule("dates", dates=tuple(sorted(set(days))), **common) if ok else None
    anchor = str(data.get("anchor", ""))
    if not anchor or any(not part for part in anchor.split(".")):
        report("RW804", f"anchor {anchor!r} is not a fact path such as employee.hire_date",
               f"{pointer}/anchor", "known work-year anchors: " + ", ".join(WORK_YEAR_ANCHORS))
        return None
    if anchor.startswith("work_year.") and anchor not in WORK_YEAR_ANCHORS:
        report("RW804", f"unknown work-year anchor {anchor!r}", f"{pointer}/anchor",
               "use one of " + ", ".join(WORK_YEAR_ANCHORS))
        return None
    sign, offset = 1, None
    if "plus" in data and "minus" in data:
        report("RW804", "use either 'plus' or 'minus', not both", f"{pointer}/minus", "")
        return None
    for key, key_sign in (("plus", 1), ("minus", -1)):
        if key in data:
            offset = parse_duration(str(data[key]))
            sign = key_sign
            if offset is None or offset.has_time:
                report("RW804", f"{data[key]!r} is not a duration in days, weeks, months or years",
                       f"{pointer}/{key}", "for example P6W, P1M, P90D")
                return None
    repeat = parse_duration(str(data["repeat"])) if "repeat" in data else None
    if "repeat" in data and (repeat is None or repeat.has_time or repeat == Duration(text=repeat.text)):
        report("RW804", f"repeat {data['repeat']!r} must be a non-zero duration in days or more",
               f"{pointer}/repeat", "for example P1Y")
        return None
    if not ok:
        return None
    return Schedule("anchor", anchor=tuple(anchor.split(".")), sign=sign, offset=offset, repeat=repeat, **common)


def describe(schedule: Schedule) -> str:
    """A short human description (for previews and docs)."""
    if schedule.form == "cron":
        return f"cron {schedule.cron!r} ({schedule.timezone})"
    if schedule.form == "dates":
        return "on " + ", ".join(d.isoformat() for d in schedule.dates)
    text = ".".join(schedule.anchor)
    if schedule.offset is not None:
        text += f" {'+' if schedule.sign > 0 else '-'} {schedule.offset.text}"
    if schedule.repeat is not None:
        text += f", every {schedule.repeat.text}"
    return text + f" at {schedule.at.strftime('%H:%M')} ({schedule.timezone})"
