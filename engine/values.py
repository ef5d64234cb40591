"""Typed values of the condition and decision languages: dates, date-times, times of day and durations.

YAML and JSON carry these as ISO-8601 text; regelwerk compares and adds them as what they are:

* ``2026-03-01`` is a :class:`datetime.date`; ``2026-03-01T09:00:00+01:00`` an aware :class:`datetime.datetime`
  (naive ones are read as UTC); equal instants written with different offsets are equal.
* ``16:11:00`` (optionally ``Z`` or ``+02:00``) is a :class:`datetime.time`.
* Durations follow DMN: ``P1Y6M`` is a :class:`YearsMonths` (a whole number of months: P10M > P9M, P1Y = P12M);
  ``P3DT4H``, ``PT48H`` and ``P6W`` are a :class:`DaysTime` (an exact span: P1D = PT24H). The two kinds never
  compare with each other (a month has no fixed length), and a duration that mixes them (``P1M2D``) is not
  a comparable value.

Nothing here parses definition text as code; every parse is a regular expression over ISO forms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from dateutil.relativedelta import relativedelta

__all__ = [
    "TEMPORAL_TYPES",
    "DaysTime",
    "YearsMonths",
    "add",
    "coerce",
    "looks_typed",
    "parse_date",
    "parse_datetime",
    "parse_time",
    "parse_typed",
    "parse_value_duration",
    "subtract",
    "type_name",
]


@dataclass(frozen=True, slots=True, order=True)
class YearsMonths:
    """A years-and-months duration: a whole (possibly negative) number of months."""

    months: int

    def __str__(self) -> str:
        sign = "-" if self.months < 0 else ""
        years, months = divmod(abs(self.months), 12)
        body = (f"{years}Y" if years else "") + (f"{months}M" if months or not years else "")
        return f"{sign}P{body}"

    def __repr__(self) -> str:
        return f"YearsMonths({self})"

    def __add__(self, other: object) -> YearsMonths:
        if isinstance(other, YearsMonths):
            return YearsMonths(self.months + other.months)
        return NotImplemented

    def __sub__(self, other: object) -> YearsMonths:
        if isinstance(other, YearsMonths):
            return YearsMonths(self.months - other.months)
        return NotImplemented

    def __neg__(self) -> YearsMonths:
        return YearsMonths(-self.months)

    def __mul__(self, factor: object) -> YearsMonths:
        if isinstance(factor, int) and not isinstance(factor, bool):
            return YearsMonths(self.months * factor)
        return NotImplemented

    __rmul__ = __mul__

    def delta(self) -> relativedelta:
        """The calendar step (31 Jan + P1M = 28/29 Feb)."""
        return relativedelta(months=self.months)


@dataclass(frozen=True, slots=True, order=True)
class DaysTime:
    """A days-and-time duration: an exact span in seconds (P1D = PT24H = 86400 s)."""

    seconds: Decimal

    def __str__(self) -> str:
        total = self.seconds
        sign = "-" if total < 0 else ""
        total = abs(total)
        days, rest = divmod(total, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        out = f"{sign}P" + (f"{int(days)}D" if days else "")
        clock = (f"{int(hours)}H" if hours else "") + (f"{int(minutes)}M" if minutes else "") + (
            f"{_plain_decimal(seconds)}S" if seconds else "")
        if clock:
            out += "T" + clock
        return out if (days or clock) else f"{sign}PT0S"

    def __repr__(self) -> str:
        return f"DaysTime({self})"

    def __add__(self, other: object) -> DaysTime:
        if isinstance(other, DaysTime):
            return DaysTime(self.seconds + other.seconds)
        return NotImplemented

    def __sub__(self, other: object) -> DaysTime:
        if isinstance(other, DaysTime):
            return DaysTime(self.seconds - other.seconds)
        return NotImplemented

    def __neg__(self) -> DaysTime:
        return DaysTime(-self.seconds)

    def __mul__(self, factor: object) -> DaysTime:
        if isinstance(factor, (int, float, Decimal)) and not isinstance(factor, bool):
            return DaysTime(self.seconds * Decimal(str(factor)))
        return NotImplemented

    __rmul__ = __mul__

    def delta(self) -> timedelta:
        """The exact step as a timedelta."""
        return timedelta(seconds=float(self.seconds))


def _plain_decimal(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


TEMPORAL_TYPES: tuple[type, ...] = (date, datetime, time, YearsMonths, DaysTime)

_DATE = re.compile(r"^-?\d{4,9}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?$")
_TIME = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_DURATION = re.compile(
    r"^(?P<sign>-)?P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_date(text: str) -> date | None:
    """``2026-03-01`` -> date; None when not a valid calendar date."""
    if not _DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def parse_datetime(text: str) -> datetime | None:
    """An extended ISO-8601 date-time -> aware datetime (naive is read as UTC); None otherwise."""
    if not _DATETIME.match(text):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_time(text: str) -> time | None:
    """``16:11``, ``16:11:00``, ``16:11:00Z``, ``16:11:00+02:00`` -> time (aware when an offset is given)."""
    match = _TIME.match(text)
    if not match:
        return None
    try:
        parsed = time.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_value_duration(text: str) -> YearsMonths | DaysTime | None:
    """An ISO-8601 duration as a DMN value: years-months or days-time; None when invalid or mixed."""
    match = _DURATION.match(text)
    if not match:
        return None
    parts = match.groupdict()
    sign = -1 if parts["sign"] else 1
    ym = [parts["years"], parts["months"]]
    dt = [parts["weeks"], parts["days"], parts["hours"], parts["minutes"], parts["seconds"]]
    has_ym = any(p is not None for p in ym)
    has_dt = any(p is not None for p in dt)
    if has_ym and has_dt:
        return None
    if has_ym:
        return YearsMonths(sign * (int(parts["years"] or 0) * 12 + int(parts["months"] or 0)))
    seconds = (Decimal(int(parts["weeks"] or 0) * 7 + int(parts["days"] or 0)) * 86400
               + int(parts["hours"] or 0) * 3600 + int(parts["minutes"] or 0) * 60 + Decimal(parts["seconds"] or 0))
    return DaysTime(sign * seconds)


def looks_typed(text: str) -> bool:
    """True when the text has the shape of a date, date-time, time of day or duration (cheap pre-check)."""
    head = text[:1]
    if head == "P":
        return True
    if head == "-":
        return text[1:2] == "P"
    if head.isdigit():
        return text[2:3] == ":" or text[4:5] == "-"
    return False


def parse_typed(text: str) -> Any:
    """The typed value an ISO text stands for (date, datetime, time, duration), or None."""
    if not looks_typed(text):
        return None
    head = text[:1]
    if head in {"P", "-"}:
        return parse_value_duration(text)
    if text[2:3] == ":":
        return parse_time(text)
    if len(text) == 10:
        return parse_date(text)
    return parse_datetime(text)


def type_name(value: Any) -> str:
    """The value's type in the fact model's words: string, number, boolean, date, datetime, time, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    if isinstance(value, time):
        return "time"
    if isinstance(value, YearsMonths):
        return "years-months duration"
    if isinstance(value, DaysTime):
        return "days-time duration"
    if isinstance(value, str):
        typed = parse_typed(value)
        return type_name(typed) if typed is not None else "string"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


_COERCE_NAMES = {"date", "datetime", "time", "duration", "years-months duration", "days-time duration"}


def coerce(value: Any, kind: str) -> Any:
    """Read ``value`` as a value of ``kind`` (a typed kind or 'any'); None when it is not one."""
    if value is None or kind not in _COERCE_NAMES:
        return value
    if isinstance(value, str):
        typed: Any = parse_typed(value)
    else:
        typed = value
    if kind == "date":
        if isinstance(typed, datetime):
            return typed.date()
        return typed if isinstance(typed, date) else None
    if kind == "datetime":
        if isinstance(typed, datetime):
            return typed if typed.tzinfo else typed.replace(tzinfo=UTC)
        if isinstance(typed, date):
            return datetime(typed.year, typed.month, typed.day, tzinfo=UTC)
        return None
    if kind == "time":
        return typed if isinstance(typed, time) else None
    if kind == "years-months duration":
        return typed if isinstance(typed, YearsMonths) else None
    if kind == "days-time duration":
        return typed if isinstance(typed, DaysTime) else None
    return typed if isinstance(typed, (YearsMonths, DaysTime)) else None


def _as_typed(value: Any) -> Any:
    if isinstance(value, str):
        typed = parse_typed(value)
        return value if typed is None else typed
    return value


def add(a: Any, b: Any) -> Any:
    """DMN addition over numbers, strings (concatenation), durations and dates; None when undefined."""
    a, b = _as_typed(a), _as_typed(b)
    if a is None or b is None:
        return None
    if isinstance(a, (YearsMonths, DaysTime)) and isinstance(b, (date, datetime)):
        a, b = b, a
    if isinstance(a, bool) or isinstance(b, bool):
        return None
    if isinstance(a, (int, float, Decimal)) and isinstance(b, (int, float, Decimal)):
        return _number(a, b, "+")
    if isinstance(a, str) and isinstance(b, str):
        return a + b
    if isinstance(a, YearsMonths) and isinstance(b, YearsMonths):
        return a + b
    if isinstance(a, DaysTime) and isinstance(b, DaysTime):
        return a + b
    if isinstance(a, (date, datetime)) and isinstance(b, YearsMonths):
        return a + b.delta()
    if isinstance(a, datetime) and isinstance(b, DaysTime):
        return a + b.delta()
    if isinstance(a, date) and isinstance(b, DaysTime):
        if b.seconds % 86400 == 0:
            return a + timedelta(days=int(b.seconds // 86400))
        return datetime(a.year, a.month, a.day, tzinfo=UTC) + b.delta()
    if isinstance(a, time) and isinstance(b, DaysTime):
        anchor = datetime.combine(date(2000, 1, 1), a)
        return (anchor + b.delta()).timetz()
    return None


def subtract(a: Any, b: Any) -> Any:
    """DMN subtraction: numbers, durations, date/date-time minus duration, and the span between two moments."""
    a, b = _as_typed(a), _as_typed(b)
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return None
    if isinstance(a, (int, float, Decimal)) and isinstance(b, (int, float, Decimal)):
        return _number(a, b, "-")
    if isinstance(b, (YearsMonths, DaysTime)) and isinstance(a, (date, datetime, time, YearsMonths, DaysTime)):
        if type(a) is type(b):
            return a - b
        return add(a, -b)
    if isinstance(a, (date, datetime)) and isinstance(b, (date, datetime)):
        x = a if isinstance(a, datetime) else datetime(a.year, a.month, a.day, tzinfo=UTC)
        y = b if isinstance(b, datetime) else datetime(b.year, b.month, b.day, tzinfo=UTC)
        span = x - y
        return DaysTime(Decimal(span.days) * 86400 + span.seconds + Decimal(span.microseconds) / 1000000)
    if isinstance(a, time) and isinstance(b, time):
        x = datetime.combine(date(2000, 1, 1), a)
        y = datetime.combine(date(2000, 1, 1), b)
        span = x - y
        return DaysTime(Decimal(span.days) * 86400 + span.seconds + Decimal(span.microseconds) / 1000000)
    return None


def _number(a: Any, b: Any, op: str) -> Any:
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        a, b = Decimal(str(a)), Decimal(str(b))
    result = a + b if op == "+" else a - b
    return result
