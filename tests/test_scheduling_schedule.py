"""The Schedule construct: cron and relative occurrences, DST in Europe/Amsterdam, 29 February, compile errors."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from regelwerk.scheduling.schedule import Schedule, compile_schedule, local_to_utc, next_fire, occurrences

AMS = ZoneInfo("Europe/Amsterdam")


def build(data: dict[str, Any]) -> Schedule:
    problems: list[tuple[str, ...]] = []
    schedule = compile_schedule(data, "/s", lambda *p: problems.append(p))
    assert schedule is not None, problems
    assert not problems
    return schedule


def problems_of(data: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    compile_schedule(data, "/s", lambda code, *_: problems.append(code))
    return problems


def local(moments: list[datetime]) -> list[str]:
    return [m.astimezone(AMS).isoformat() for m in moments]


def test_daily_cron_in_the_spring_gap_fires_shifted_forward_once() -> None:
    s = build({"cron": "30 2 * * *"})
    got = local(list(s.occurrences(datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))))
    assert got == ["2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"]


def test_daily_cron_in_the_repeated_autumn_hour_fires_once_at_the_first_occurrence() -> None:
    s = build({"cron": "30 2 * * *"})
    got = local(list(s.occurrences(datetime(2026, 10, 24, tzinfo=UTC), datetime(2026, 10, 27, tzinfo=UTC))))
    assert got == ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]


def test_half_hourly_cron_across_the_gap_has_no_duplicates() -> None:
    s = build({"cron": "0,30 * * * *"})
    got = local(list(s.occurrences(datetime(2026, 3, 29, 0, 0, tzinfo=UTC), datetime(2026, 3, 29, 2, 0, tzinfo=UTC))))
    assert got == ["2026-03-29T01:00:00+01:00", "2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00",
                   "2026-03-29T03:30:00+02:00"]


def test_hourly_cron_across_the_repeat_runs_the_repeated_hour_once() -> None:
    s = build({"cron": "0 * * * *"})
    start = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)  # 01:00 CEST
    got = list(s.occurrences(start, start + timedelta(hours=4)))
    assert local(got) == ["2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00"]


def test_window_opening_inside_the_repeated_hour() -> None:
    s = build({"cron": "15 * * * *"})
    start = datetime(2026, 10, 25, 0, 10, tzinfo=UTC)  # 02:10 CEST, the first 02:xx
    assert local(list(s.occurrences(start, start + timedelta(hours=1)))) == ["2026-10-25T02:15:00+02:00"]


def test_anchor_time_in_the_gap_is_shifted_forward() -> None:
    s = build({"anchor": "event.day", "at": "02:30"})
    got = list(s.occurrences(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC),
                             {"event": {"day": "2026-03-29"}}))
    assert local(got) == ["2026-03-29T03:30:00+02:00"]
    assert local_to_utc(date(2026, 10, 25), datetime(2000, 1, 1, 2, 30).time(), AMS).isoformat() == \
        "2026-10-25T00:30:00+00:00"


def test_relative_dates_certificate_and_registration() -> None:
    expiry = build({"anchor": "certificate.expiry_date", "minus": "P90D", "at": "09:00"})
    registration = build({"anchor": "registration.end_date", "minus": "P3M"})
    facts = {"certificate": {"expiry_date": "2027-03-31"}, "registration": {"end_date": "2027-05-31"}}
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC)
    assert local(list(expiry.occurrences(start, end, facts))) == ["2026-12-31T09:00:00+01:00"]
    assert local(list(registration.occurrences(start, end, facts))) == ["2027-02-28T00:00:00+01:00"]
    assert list(expiry.occurrences(start, end, {})) == []  # no fact, no occurrence


def test_work_year_end_minus_one_month() -> None:
    s = build({"anchor": "work_year.end", "minus": "P1M", "at": "09:00"})
    facts = {"work_year": {"end": date(2026, 12, 31)}}
    assert local(list(s.occurrences(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), facts))) == \
        ["2026-11-30T09:00:00+01:00"]


def test_anniversaries_of_29_february() -> None:
    s = build({"anchor": "employee.hire_date", "plus": "P1Y", "repeat": "P1Y"})
    days = [m.astimezone(AMS).date().isoformat() for m in s.occurrences(
        datetime(2024, 1, 1, tzinfo=UTC), datetime(2033, 1, 1, tzinfo=UTC), {"employee": {"hire_date": "2024-02-29"}})]
    assert days == ["2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29", "2029-02-28", "2030-02-28",
                    "2031-02-28", "2032-02-29"]


def test_next_fire_is_strictly_after() -> None:
    s = build({"cron": "0 9 * * MON"})
    monday_9 = datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # 09:00 CEST
    assert next_fire(s, monday_9) == monday_9 + timedelta(days=7)
    assert s.next_fire(monday_9 - timedelta(seconds=1)) == monday_9
    fixed = build({"dates": ["2026-05-01"]})
    assert fixed.next_fire(datetime(2026, 6, 1, tzinfo=UTC)) is None


def test_fixed_dates_in_window() -> None:
    s = build({"dates": ["2026-05-01", "2026-02-01"], "at": "08:00"})
    assert local(list(occurrences(s, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)))) == \
        ["2026-02-01T08:00:00+01:00", "2026-05-01T08:00:00+02:00"]


@pytest.mark.parametrize(("data", "code"), [
    ({"cron": "61 * * * *"}, "RW801"),
    ({"cron": "0 9 * * *", "timezone": "Europe/Atlantis"}, "RW802"),
    ({"anchor": "employee.hire_date", "at": "25:00"}, "RW803"),
    ({"cron": "0 9 * * *", "at": "09:00"}, "RW803"),
    ({"anchor": "work_year.begin"}, "RW804"),
    ({"anchor": "employee.hire_date", "plus": "PT4H"}, "RW804"),
    ({"anchor": "employee.hire_date", "plus": "P1D", "minus": "P1D"}, "RW804"),
    ({"dates": ["2026-02-30"]}, "RW804"),
])
def test_compile_problems(data: dict[str, Any], code: str) -> None:
    assert problems_of(data) == [code]


@settings(max_examples=60, deadline=None)
@given(minute=st.integers(0, 59), hour=st.integers(0, 23), offset_days=st.integers(0, 400))
def test_cron_occurrences_are_increasing_and_match_next_fire(minute: int, hour: int, offset_days: int) -> None:
    s = build({"cron": f"{minute} {hour} * * *"})
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=offset_days)
    got = list(s.occurrences(start, start + timedelta(days=5)))
    # five UTC days hold 4 to 6 local days' occurrences: a window that starts on an occurrence and spans the
    # spring change (a 23-hour local day) holds six (e.g. 01:00 Amsterdam from 25 to 30 March 2026)
    assert 4 <= len(got) <= 6
    assert len({moment.astimezone(AMS).date() for moment in got}) == len(got)  # once per local day
    assert all(a < b for a, b in itertools.pairwise(got))
    assert next_fire(s, start - timedelta(microseconds=1)) == got[0]
    for moment in got:  # every occurrence shows the wall-clock time asked for, or is shifted by a gap
        wall = moment.astimezone(AMS)
        assert (wall.hour, wall.minute) == (hour, minute) or wall.utcoffset() == timedelta(hours=2)


def test_importing_the_scheduler_is_light() -> None:
    import subprocess
    import sys

    code = ("import sys, regelwerk.scheduling, regelwerk.scheduling.schedule; "
            "print(sorted(m for m in ('sqlalchemy', 'croniter', 'openpyxl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
    from regelwerk import scheduling

    assert sorted(scheduling.__all__) == scheduling.__all__
    assert all(getattr(scheduling, name) is not None for name in scheduling.__all__)
