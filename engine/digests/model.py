"""The compiled ``Digest`` (a tick task) and when its periods are due."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from regelwerk.scheduling.schedule import Schedule, local_to_utc

__all__ = ["ONCE_PER", "Digest", "DigestList", "DigestPeriod", "due_period"]

#: What one digest mail covers: each occurrence of its schedule, or the first occurrence of each week or month.
ONCE_PER = ("occurrence", "week", "month")
#: How far back the tick looks for the latest occurrence of a digest sent once per occurrence.
LOOKBACK = timedelta(days=35)


@dataclass(frozen=True, slots=True)
class DigestList:
    """One list of a digest: ``name`` (the template loops over it), the case ``source`` and its ``with:``."""

    name: str
    source: str
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class DigestPeriod:
    """A period a digest is due for: its ``key`` (``2027-W06``, ``2027-02``, or the occurrence's local time), the
    moment it became due (UTC) and that moment's local day."""

    key: str
    moment: datetime
    day: date


@dataclass(frozen=True, slots=True)
class Digest:
    """A compiled digest; the tick runs it as a ``regelwerk.scheduling.TickTask`` (``run_tick``)."""

    name: str
    label: str
    schedule: Schedule
    once_per: str
    role: str
    if_nobody: str
    template: str
    lists: tuple[DigestList, ...]
    limit: int

    @property
    def task_id(self) -> str:
        """The tick task's id (and the incident's event ``tick:digest.<name>``)."""
        return f"digest.{self.name}"

    def run_tick(self, engine: Any, compiled: Any, now: datetime) -> Mapping[str, Any]:
        """Send this digest's mails that are due at ``now`` (idempotent: each recipient once per period)."""
        from regelwerk.digests.run import run_digest

        return run_digest(self, engine, now)


def due_period(schedule: Schedule, once_per: str, now: datetime) -> DigestPeriod | None:
    """The period due at ``now``: the latest occurrence at or before ``now`` (``occurrence``), or the first
    occurrence of ``now``'s week (from Monday) or month when it is at or before ``now``; None when nothing is due.
    A period is due until the next one begins, so a tick that comes late (downtime) still sends it, once."""
    tz = schedule.tz
    local = now.astimezone(tz)
    if once_per == "occurrence":
        latest = None
        for moment in schedule.occurrences(now - LOOKBACK, now + timedelta(microseconds=1)):
            latest = moment
        if latest is None:
            return None
        at = latest.astimezone(tz)
        return DigestPeriod(at.strftime("%Y-%m-%dT%H:%M"), latest, at.date())
    if once_per == "week":
        start_day = local.date() - timedelta(days=local.weekday())
        end_day = start_day + timedelta(days=7)
        iso = start_day.isocalendar()
        key = f"{iso.year}-W{iso.week:02d}"
    else:
        start_day = local.date().replace(day=1)
        end_day = (start_day + timedelta(days=32)).replace(day=1)
        key = start_day.strftime("%Y-%m")
    start = local_to_utc(start_day, datetime.min.time(), tz)
    end = local_to_utc(end_day, datetime.min.time(), tz)
    first = next(iter(schedule.occurrences(start, end)), None)
    if first is None or first > now:
        return None
    return DigestPeriod(key, first, first.astimezone(tz).date())
