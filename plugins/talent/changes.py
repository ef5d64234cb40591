"""Unprocessed changes per work year and the explicit apply action ("Bijwerken competenties").

A trajectory keeps the competencies of its role as they were when it arose (its ``version`` is
the role's content version: role, profile and competencies). Later changes to profiles or
roles reach a running work year only when an administrator applies them; until then
:func:`pending_changes` lists them per cycle, work year and role.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from regelwerk.actors import SYSTEM, Actor

__all__ = ["PendingChange", "apply_changes", "apply_timing", "pending_changes", "timing_changes"]


@dataclass(frozen=True, slots=True)
class PendingChange:
    """Trajectories of one cycle, work year and role whose competencies are behind the definitions."""

    cycle: str
    work_year: str
    role: str
    trajectories: int
    stored_version: str
    current_version: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    change: str = "competencies"
    """competencies (a role or profile changed) or timing (a moment's lead time changed)."""
    timing: tuple[tuple[str, str, str], ...] = ()
    """timing: (moment, lead time pinned by the trajectories, lead time in the definitions)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {"cycle": self.cycle, "work_year": self.work_year, "role": self.role, "change": self.change,
                "trajectories": self.trajectories, "from": self.stored_version, "to": self.current_version,
                "added": list(self.added), "removed": list(self.removed),
                "timing": {m: {"from": a, "to": b} for m, a, b in self.timing}}


def _sa(target: Any) -> Any:
    from regelwerk.scheduling.tick import resolve_target

    return resolve_target(target).sa_engine


def pending_changes(target: Any, compiled: Any, cycle: str | None = None,
                    work_year: str | None = None) -> list[PendingChange]:
    """Per cycle, work year and role: trajectories whose competencies differ from the current definitions."""
    from regelwerk.scheduling.tables import scheduled_items as items
    from sqlalchemy import func, select

    cycles = compiled.of_kind("DevelopmentCycle")
    out: list[PendingChange] = []
    with _sa(target).connect() as conn:
        for name, model in cycles.items():
            if cycle is not None and name != cycle:
                continue
            query = (select(items.c.period, items.c.series, items.c.version, func.count(), func.min(items.c.key))
                     .where(items.c.source == model.source_id, items.c.item_type == "trajectory")
                     .group_by(items.c.period, items.c.series, items.c.version))
            if work_year is not None:
                query = query.where(items.c.period == work_year)
            for period, series, version, count, sample in conn.execute(query).all():
                role_name = str(series).rsplit("/", 1)[-1]
                role = model.roles.get(role_name) or compiled.objects.get(("TalentRole", role_name))
                if role is None or role.version == version:
                    continue
                payload = conn.execute(select(items.c.payload).where(items.c.key == sample)).scalar_one()
                before = set(json.loads(payload).get("competencies", []))
                now_set = set(role.competencies)
                out.append(PendingChange(name, period, role_name, int(count), version, role.version,
                                         tuple(sorted(now_set - before)), tuple(sorted(before - now_set))))
    out.extend(timing_changes(target, compiled, cycle, work_year))
    return sorted(out, key=lambda c: (c.cycle, c.work_year, c.role, c.change))


def _timing_rows(conn: Any, model: Any, work_year: str | None,
                 lock: bool = False) -> list[tuple[str, str, str, str, dict[str, str]]]:
    """(key, subject, period, role, pinned timing) of a cycle's open trajectories that pinned a timing.

    ``lock``: the rows are locked (``FOR UPDATE``, in key order) for the caller's transaction, which writes them."""
    from regelwerk.scheduling.tables import scheduled_items as items
    from sqlalchemy import select

    query = select(items.c.key, items.c.subject, items.c.period, items.c.series, items.c.payload).where(
        items.c.source == model.source_id, items.c.item_type == "trajectory",
        items.c.status.notin_(("cancelled", "closed")))
    if work_year is not None:
        query = query.where(items.c.period == work_year)
    if lock:
        query = query.order_by(items.c.key).with_for_update()
    out = []
    for key, subject, period, series, payload in conn.execute(query):
        pinned = json.loads(payload).get("timing")
        if isinstance(pinned, dict):
            role = str(series).rsplit("/", 1)[-1]
            out.append((key, subject, period, role, {str(k): str(v) for k, v in pinned.items()}))
    return out


def timing_changes(target: Any, compiled: Any, cycle: str | None = None,
                   work_year: str | None = None) -> list[PendingChange]:
    """Per cycle, work year and role: trajectories whose pinned lead times differ from the definitions.

    A running work year keeps the lead times its trajectories pinned when they arose; a changed
    ``appears_before`` reaches it only through :func:`apply_timing`.
    """
    out: list[PendingChange] = []
    with _sa(target).connect() as conn:
        for name, model in sorted(compiled.of_kind("DevelopmentCycle").items()):
            if cycle is not None and name != cycle:
                continue
            current = model.timing()
            groups: dict[tuple[str, str, str], int] = {}
            for _key, _subject, period, role, pinned in _timing_rows(conn, model, work_year):
                if {k: pinned.get(k, v) for k, v in current.items()} == current:
                    continue
                group = (period, role, json.dumps(pinned, sort_keys=True))
                groups[group] = groups.get(group, 0) + 1
            for (period, role, pinned_text), count in sorted(groups.items()):
                pinned = json.loads(pinned_text)
                diff = tuple((m, str(pinned.get(m, lead)), lead) for m, lead in sorted(current.items())
                             if pinned.get(m, lead) != lead)
                out.append(PendingChange(name, period, role, count, "", "", change="timing", timing=diff))
    return out


def apply_timing(target: Any, compiled: Any, cycle: str, work_year: str, actor: Actor = SYSTEM,
                 now: datetime | None = None) -> int:
    """Apply changed lead times to a running work year: its trajectories pin the definitions' lead times and
    their employees are planned again by the next tick (moments appear on the new dates; a moment whose
    new appearance date has passed appears at that tick). Audited per trajectory; returns how many."""
    from regelwerk.scheduling.tables import employees as emp
    from regelwerk.scheduling.tables import scheduled_events as events
    from regelwerk.scheduling.tables import scheduled_items as items
    from sqlalchemy import bindparam, select, update

    model = compiled.get("DevelopmentCycle", cycle)
    current = model.timing()
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    with _sa(target).begin() as conn:
        # locked: a second apply at the same moment (PostgreSQL, READ COMMITTED) waits here for this one's commit
        # and then reads the lead times it pinned, so it applies and audits nothing twice
        rows = [r for r in _timing_rows(conn, model, work_year, lock=True)
                if {k: r[4].get(k, v) for k, v in current.items()} != current]
        if not rows:
            return 0
        params = []
        for key, *_ in rows:
            data = json.loads(conn.execute(select(items.c.payload).where(items.c.key == key)).scalar_one())
            data["timing"] = current
            params.append({"b_key": key, "b_payload": json.dumps(data, sort_keys=True, separators=(",", ":"))})
        conn.execute(update(items).where(items.c.key == bindparam("b_key"))
                     .values(payload=bindparam("b_payload"), updated_at=moment), params)
        subjects = sorted({r[1] for r in rows})
        for start in range(0, len(subjects), 500):
            conn.execute(update(emp).where(emp.c.id.in_(subjects[start:start + 500])).values(plan_version=None))
        conn.execute(events.insert(), [{"item_key": r[0], "event": "apply_timing", "actor": actor.id, "at": moment,
                                        "detail": json.dumps({"from": r[4], "to": current}, sort_keys=True)}
                                       for r in rows])
    return len(rows)


def apply_changes(target: Any, compiled: Any, cycle: str, work_year: str, role: str | None = None,
                  actor: Actor = SYSTEM, now: datetime | None = None) -> int:
    """Bring the trajectories of one cycle and work year (optionally one role) up to date; audited per item.

    Returns the number of trajectories updated. Conversation moments that already run keep
    their workflow instance (workflow definition changes go through the runtime's migration).
    """
    from regelwerk.scheduling.tables import scheduled_events as events
    from regelwerk.scheduling.tables import scheduled_items as items
    from sqlalchemy import bindparam, select, update

    model = compiled.get("DevelopmentCycle", cycle)
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    changes = [c for c in pending_changes(target, compiled, cycle, work_year)
               if c.change == "competencies" and (role is None or c.role == role)]
    updated = 0
    with _sa(target).begin() as conn:
        for change in changes:
            current = model.roles.get(change.role) or compiled.get("TalentRole", change.role)
            # locked in key order: a second apply at the same moment (PostgreSQL, READ COMMITTED) waits for this one's
            # commit, finds the version moved on and updates and audits nothing (before, both updated and audited
            # every trajectory, and both counted them)
            rows = conn.execute(select(items.c.key, items.c.payload).where(
                items.c.source == model.source_id, items.c.item_type == "trajectory",
                items.c.period == work_year, items.c.series == f"talent/{cycle}/{work_year}/role/{change.role}",
                items.c.version == change.stored_version).order_by(items.c.key).with_for_update()).all()
            if not rows:
                continue
            params = []
            for key, payload in rows:
                data = json.loads(payload)
                data["competencies"] = list(current.competencies)
                data["profile"] = current.profile
                params.append({"b_key": key, "b_payload": json.dumps(data, sort_keys=True, separators=(",", ":")),
                               "b_version": current.version})
            conn.execute(update(items).where(items.c.key == bindparam("b_key"))
                         .values(payload=bindparam("b_payload"), version=bindparam("b_version"), updated_at=moment),
                         params)
            parents = [r.key for r in rows]
            for start in range(0, len(parents), 500):
                conn.execute(update(items).where(items.c.parent_key.in_(parents[start:start + 500]))
                             .values(version=current.version, updated_at=moment))
            detail = json.dumps(change.to_dict(), sort_keys=True)
            conn.execute(events.insert(), [{"item_key": r.key, "event": "apply_changes", "actor": actor.id,
                                            "at": moment, "detail": detail} for r in rows])
            updated += len(rows)
    return updated
