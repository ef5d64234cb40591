"""Play a customer's calendar forward, day by day, against a real store.

For every day from the first day to play up to ``end``: apply that day's events (data rows dated
that day, then the story's events in file order) with the clock at 09:00 Europe/Amsterdam, then run
the scheduler's tick at 23:59 (trajectories, conversation moments, feedback requests, workflow timers,
tick tasks such as AVG retention). Progress is kept in ``rw_simulations`` / ``rw_simulation_events``,
so a second run continues after the last simulated day and applies every event once.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from engine.actors import SYSTEM, Actor
from engine.errors import RegelwerkError, UsageError
from engine.simulation.data import DatedEvent, as_bool, split_list
from engine.simulation.story import Story

__all__ = ["EVENT_TIME", "TICK_TIME", "TIMEZONE", "SimulationResult", "default_store_url", "simulate"]

TIMEZONE = ZoneInfo("Europe/Amsterdam")
#: Story and data events happen at this local time of their day.
EVENT_TIME = dtime(9, 0)
#: The nightly tick of every simulated day.
TICK_TIME = dtime(23, 59)
#: ``progress(days_done, days_total)`` after every simulated day.
Progress = Callable[[int, int], None]
IMPORT_ACTOR_ID = "regelwerk-simulate"


def default_store_url(name: str, cwd: str | Path | None = None) -> str:
    """``sqlite:///<cwd>/.regelwerk/<bundle name>.sqlite`` (the directory is created)."""
    folder = Path(cwd or Path.cwd()) / ".regelwerk"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / (name + '.sqlite')}"


def pack(module: str) -> Any:
    """A module of a shipped HR pack, imported at run time (the engine does not depend on packs statically)."""
    import importlib

    return importlib.import_module(module)


def _local(day: date, at: dtime) -> datetime:
    return datetime.combine(day, at, TIMEZONE)


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


@dataclass
class SimulationResult:
    """What a simulation run did (timeline of this run) and the state of the store (summary)."""

    name: str
    store: str
    start: date
    end: date
    first_day: date | None
    days: int
    resumed_after: date | None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON printed by ``regelwerk simulate --format json``."""
        return {"name": self.name, "store": self.store, "from": self.start.isoformat(), "to": self.end.isoformat(),
                "first_day_played": self.first_day.isoformat() if self.first_day else None,
                "days_played": self.days,
                "resumed_after": self.resumed_after.isoformat() if self.resumed_after else None,
                "seconds": round(self.seconds, 2),
                "timeline": self.timeline, "summary": self.summary}

    def lines(self) -> list[str]:
        """The timeline and the summary as text."""
        out = []
        if self.resumed_after is not None and self.days:
            out.append(f"resuming {self.name}: days up to {self.resumed_after} were simulated before")
        if not self.days:
            out.append(f"nothing new to simulate: {self.name} is simulated up to {self.summary.get('last_day')}")
        out += [f"{entry['day']}  {entry['text']}" for entry in self.timeline]
        s = self.summary
        out.append("")
        out.append(f"summary of {self.name} ({s['first_day']} .. {s['last_day']}, {self.days} day(s) played in "
                   f"{self.seconds:.1f} s; store {self.store})")
        out.append(f"  employees: {s['employees']}")
        out.append(f"  trajectories: {s['trajectories']}")
        moments = s["moments"]
        out.append(f"  conversation moments: {moments['total']}"
                   + (" (" + ", ".join(f"{k} {v}" for k, v in moments["by_type"].items()) + ")"
                      if moments["by_type"] else "")
                   + (", by status: " + ", ".join(f"{k} {v}" for k, v in moments["by_status"].items())
                      if moments["by_status"] else ""))
        out.append(f"  feedback requests: {s['feedback_requests']}")
        out.append(f"  vacancies: {s['vacancies']}")
        groups = s["candidates"]
        out.append(f"  candidates: {groups['total']}"
                   + (" (" + ", ".join(f"{k} {v}" for k, v in groups["by_group"].items()) + ")"
                      if groups["by_group"] else ""))
        mails = s["mails"]
        out.append(f"  mails in the outbox: {mails['total']}"
                   + (" (" + ", ".join(f"{k} {v}" for k, v in mails["by_template"].items()) + ")"
                      if mails["by_template"] else ""))
        out.append(f"  deletions under retention: {s['retention']['deleted']}; consent renewals asked: "
                   f"{s['retention']['renewals_requested']}")
        tiers = s["tier_changes"]
        out.append(f"  tier changes: {len(tiers)}" + ("" if not tiers else " (" + "; ".join(
            f"{t['employer']} {t['from']} -> {t['to']} on {t['day']}" for t in tiers) + ")"))
        out.append(f"  story events applied: {s['events']['applied']}; refused: {s['events']['refused']}; "
                   f"data rows applied: {s['events']['data_rows_applied']}")
        for refusal in s["events"]["refusals"]:
            out.append(f"    refused {refusal['day']} {refusal['type']} ({refusal['where']}): {refusal['message']}")
        return out


class _Permissions:
    """The simulation's permission port: the bundle's matrices that declare the resource type decide.

    No matrix declares it: allowed (like the engine's default). Several do: allowed when one allows.
    """

    def __init__(self, compiled: Any, relations: Any, audit: Any, clock: Callable[[], datetime]) -> None:
        from engine.permissions.adapter import MatrixPermissions

        self.ports = {name: MatrixPermissions(matrix, relations, audit=audit, clock=clock)
                      for name, matrix in sorted(compiled.of_kind("PermissionMatrix").items())}

    def declaring(self, resource_type: str) -> list[str]:
        return [name for name, port in self.ports.items() if resource_type in port.matrix.resources]

    def check(self, actor: Actor, action: str, resource_type: str, resource: Mapping[str, Any],
              context: Mapping[str, Any]) -> Any:
        from engine.workflows.ports import Decision

        names = self.declaring(resource_type)
        if not names:
            return Decision(True, {"rule": "no matrix declares " + resource_type})
        first = None
        for name in names:
            decision = self.ports[name].check(actor, action, resource_type, resource, context)
            if decision.allowed:
                return decision
            first = first or decision
        return first


class _Run:
    """One simulation run: engine, services, the applied-event bookkeeping, the timeline."""

    def __init__(self, compiled: Any, name: str, store_url: str, registry: Any) -> None:
        from engine.permissions.adapter import store_audit
        from engine.permissions.sql import SqlRelationships
        from engine.runtime import Engine
        from engine.scheduling.employees import EmployeeDirectory
        from engine.simulation.employers import EmployerProducts

        self.compiled = compiled
        self.name = name
        self.now = datetime.now(UTC)
        self.engine = Engine(compiled, store=store_url, registry=registry, clock=lambda: self.now)
        self.sa = self.engine.store.engine  # type: ignore[attr-defined]
        self.directory = EmployeeDirectory(self.sa)
        self.relations: Any = None
        self._relations_factory: Callable[[], Any] = lambda: SqlRelationships(self.sa)
        self.audit = store_audit(self.engine.store)
        self.products = EmployerProducts(self.sa, compiled)
        self._recruitment: Any = None
        self._actors: dict[str, Actor] = {}
        self.timeline: list[dict[str, Any]] = []
        self.totals: Counter[str] = Counter()

    # --- services ----------------------------------------------------------------------------

    def open_relations(self) -> None:
        self.relations = self._relations_factory()
        self.engine.permissions = _Permissions(self.compiled, self.relations, self.audit, lambda: self.now)

    @property
    def recruitment(self) -> Any:
        if self._recruitment is None:
            self._recruitment = pack("plugins.recruitment.service").Recruitment(self.engine)
        return self._recruitment

    def admin(self) -> Actor:
        """The actor of imported data: an administrator of the customer's recruitment."""
        roles: tuple[str, ...] = ("system",)
        if self.compiled.of_kind("RecruitmentSettings"):
            roles = tuple(self.recruitment.settings.vacancy_admins) + roles
        return Actor(IMPORT_ACTOR_ID, roles)

    def actor(self, value: Any, default: Actor | None = None) -> Actor:
        """An id (roles and attributes from the employee data), a mapping ``{id, roles}``, or the default."""
        if value is None or value == "":
            return default or SYSTEM
        if isinstance(value, Mapping):
            return Actor.of(dict(value))
        ident = str(value)
        if ident not in self._actors:
            facts = self.directory.get(ident)
            if facts is None:
                self._actors[ident] = Actor(ident)
            else:
                attrs = {k: v for k, v in {"department": facts.department, "function": facts.function,
                                           "manager": facts.manager, "groups": list(facts.groups)}.items() if v}
                self._actors[ident] = Actor(ident, tuple(facts.roles), attrs)
        return self._actors[ident]

    def close(self) -> None:
        if self._recruitment is not None:
            self._recruitment = None
        self.engine.close()

    # --- bookkeeping -------------------------------------------------------------------------

    def progress_row(self) -> Any:
        import sqlalchemy as sa

        from engine.simulation.tables import simulations

        with self.sa.connect() as conn:
            return conn.execute(sa.select(simulations).where(simulations.c.name == self.name)).first()

    def save_progress(self, first_day: date, last_day: date | None, imported: bool) -> None:
        import sqlalchemy as sa

        from engine.simulation.tables import simulations as t

        values = {"bundle_version": self.compiled.version, "first_day": first_day, "last_day": last_day,
                  "data_imported": imported, "totals": dict(sorted(self.totals.items())),
                  "updated_at": _naive(datetime.now(UTC))}
        with self.sa.begin() as conn:
            done = conn.execute(sa.update(t).where(t.c.name == self.name).values(**values)).rowcount
            if not done:
                conn.execute(t.insert().values(name=self.name, **values))

    def applied_keys(self) -> set[str]:
        import sqlalchemy as sa

        from engine.simulation.tables import simulation_events as t

        with self.sa.connect() as conn:
            return set(conn.execute(sa.select(t.c.key).where(t.c.simulation == self.name)).scalars())

    def record(self, event: DatedEvent, day: date, status: str, message: str, detail: Mapping[str, Any]) -> None:
        from engine.simulation.tables import simulation_events as t

        with self.sa.begin() as conn:
            conn.execute(t.insert().values(simulation=self.name, key=event.key, day=day, type=event.type,
                                           status=status, message=message[:1000],
                                           detail={**detail, "where": event.where},
                                           applied_at=_naive(datetime.now(UTC))))

    def note(self, day: date, kind: str, text: str, **detail: Any) -> None:
        self.timeline.append({"day": day.isoformat(), "kind": kind, "text": text, **detail})

    # --- the import --------------------------------------------------------------------------

    def import_data(self, employees: Path | None, relations: Iterable[Mapping[str, Any]], day: date) -> None:
        from engine.diagnostics import DefinitionError, Diagnostic
        from engine.permissions.tables import rw_relations
        from engine.scheduling.employees import import_employees

        self.now = _local(day, EVENT_TIME)
        imported = 0
        if employees is not None:
            result = import_employees(self.directory, employees, self.now)
            if not result.ok:
                raise DefinitionError([Diagnostic("SIM014", e.message, str(employees), e.row, 1)
                                       for e in result.errors])
            imported = result.imported
        rows = [dict(r) for r in relations]
        explicit = {r["subject"] for r in rows if r["kind"] == "reports_to"}
        derived = [{"kind": "reports_to", "subject": f.id, "object": f.manager, "valid_from": None,
                    "valid_to": None} for f in self.directory.iter_all() if f.manager and f.id not in explicit]
        facts = rows + derived
        if facts:
            moment = self.now.astimezone(UTC)
            with self.sa.begin() as conn:
                conn.execute(rw_relations.insert(), [{**r, "withdrawn_at": None, "withdrawn_by": "",
                                                      "created_by": IMPORT_ACTOR_ID, "created_at": moment}
                                                     for r in facts])
        self.note(day, "import", f"imported {imported} employee(s), {len(rows)} relation(s) "
                                 f"(+{len(derived)} reporting lines from the employees' managers)",
                  employees=imported, relations=len(rows), reporting_lines=len(derived))

    # --- events ------------------------------------------------------------------------------

    def apply(self, event: DatedEvent, day: date) -> None:
        self.now = _local(day, EVENT_TIME)
        try:
            message, detail = self._apply(event, day)
        except (RegelwerkError, ValueError, KeyError, LookupError) as exc:
            message = str(exc) or type(exc).__name__
            reason = getattr(exc, "to_dict", None)
            detail = {"error": type(exc).__name__}
            if callable(reason):
                with contextlib.suppress(TypeError, ValueError):
                    detail["detail"] = json.loads(json.dumps(reason(), default=str))
            self.record(event, day, "refused", message, detail)
            self.note(day, "refused", f"refused {event.type} ({event.where}): {message}", type=event.type,
                      where=event.where, reason=type(exc).__name__)
            return
        self.record(event, day, "applied", message, detail)
        if not event.key.startswith("data:"):
            self.note(day, "event", message, type=event.type, where=event.where)
        if "tier_after" in detail and detail.get("tier_before") != detail["tier_after"]:
            self.note(day, "tier", f"tier of {detail['employer']}: {detail['tier_before']} -> {detail['tier_after']}",
                      employer=detail["employer"], tier_before=detail["tier_before"], tier_after=detail["tier_after"])
        for warning in detail.get("warnings", ()):
            self.note(day, "warning", f"{detail.get('employer', '')}: {warning.get('message') or warning}",
                      warning=warning)

    def _apply(self, event: DatedEvent, day: date) -> tuple[str, dict[str, Any]]:
        a = dict(event.args)
        kind = event.type
        if kind in ("hire", "update_employee"):
            return self._employee(a, day, hire=kind == "hire")
        if kind == "leave":
            who = str(a["employee"])
            facts = self.directory.get(who)
            if facts is None:
                raise UsageError(f"no employee {who!r}")
            leaving = a.get("date") or day.isoformat()
            self.directory.upsert([{**facts.to_dict(), "leaving_date": leaving}], self.now)
            self._actors.pop(who, None)
            return f"{who} leaves on {leaving}", {"employee": who}
        if kind == "open_vacancy":
            vid = self.recruitment.open_vacancy(
                self.actor(a.get("actor"), self.admin()), title=str(a["title"]), function=str(a["function"]),
                department=str(a["department"]), manager=str(a["manager"]), deadline=a.get("deadline"),
                entity=a.get("entity") or None, workflow=a.get("workflow"), templates=a.get("templates"),
                team=split_list(a.get("team")), vacancy_id=str(a["id"]))
            return f"vacancy {vid} opened: {a['title']}", {"vacancy": vid}
        if kind == "close_vacancy":
            self.recruitment.close_vacancy(self.actor(a.get("actor"), self.admin()), str(a["vacancy"]))
            return f"vacancy {a['vacancy']} closed", {"vacancy": str(a["vacancy"])}
        if kind == "apply":
            consent = as_bool(a.get("consent", False))
            source = str(a.get("source") or "web")
            cid = self.recruitment.apply(
                str(a["vacancy"]), first_name=str(a["first_name"]), last_name=str(a.get("last_name") or ""),
                email=str(a["email"]), phone=str(a["phone"]) if a.get("phone") else None, consent=consent,
                source=source, actor=self.actor(a.get("actor")) if a.get("actor") else None,
                candidate_id=str(a["id"]))
            if consent:
                self._consent(cid, a.get("consent_until"))
            return f"candidate {cid} applied for {a['vacancy']}", {"candidate": cid}
        if kind == "move":
            state = self.recruitment.move(self.actor(a["actor"]), str(a["candidate"]), str(a["to"]), a.get("note"))
            return f"candidate {a['candidate']} moved to {state} by {self.actor(a['actor']).id}", {
                "candidate": str(a["candidate"]), "status": state}
        if kind == "consent":
            self._consent(str(a["candidate"]), a.get("until"))
            return f"candidate {a['candidate']} consents" + (f" until {a['until']}" if a.get("until") else ""), {
                "candidate": str(a["candidate"])}
        if kind == "sign_addendum":
            self.products.sign_addendum(str(a["employer"]), a.get("catalog"), self.actor(a.get("actor")), self.now)
            return f"{a['employer']} signed the addendum", {"employer": str(a["employer"])}
        if kind == "activate_product":
            done = self.products.activate(str(a["employer"]), str(a["product"]), a.get("catalog"),
                                          self.actor(a.get("actor")), self.now)
            return (f"{done.employer} activated {done.product} (tier {done.tier_after})",
                    {"employer": done.employer, "product": done.product, "tier_before": done.tier_before,
                     "tier_after": done.tier_after,
                     "warnings": [json.loads(json.dumps(w, default=str)) for w in done.warnings]})
        if kind in ("link", "unlink"):
            return self._link(a, kind)
        if kind == "fire":
            record = self.engine.fire(str(a["instance"]), str(a["event"]), self.actor(a["actor"]), a.get("data"))
            return f"{a['instance']}: {a['event']} -> {record.state}", {"instance": record.id, "state": record.state}
        if kind == "start":
            record = self.engine.start(str(a["workflow"]), a.get("data") or {}, self.actor(a.get("actor")),
                                       instance_id=str(a["id"]))
            return f"started {a['workflow']} {record.id} in {record.state}", {"instance": record.id,
                                                                               "state": record.state}
        raise UsageError(f"unknown event type {kind!r}")

    def _employee(self, a: dict[str, Any], day: date, hire: bool) -> tuple[str, dict[str, Any]]:
        ident = str(a["id"])
        current = self.directory.get(ident)
        if hire and current is not None:
            raise UsageError(f"employee {ident!r} already exists", hint="use update_employee")
        if not hire and current is None:
            raise UsageError(f"no employee {ident!r}")
        record = {**(current.to_dict() if current is not None else {}), **a}
        if hire and not record.get("hire_date"):
            record["hire_date"] = day.isoformat()
        self.directory.upsert([record], self.now)
        self._actors.pop(ident, None)
        new_manager = record.get("manager")
        old_manager = current.manager if current is not None else None
        if self.relations is not None and new_manager != old_manager:
            if old_manager:
                self.relations.unrelate("reports_to", ident, old_manager, at=self.now, by=IMPORT_ACTOR_ID)
            if new_manager:
                self.relations.relate("reports_to", ident, str(new_manager), by=IMPORT_ACTOR_ID, now=self.now)
        changed = sorted(k for k in a if k != "id")
        text = f"hired {ident}" + (f" ({a['name']})" if a.get("name") else "") if hire else \
            f"{ident} updated: {', '.join(changed)}"
        return text, {"employee": ident}

    def _consent(self, candidate: str, until: Any) -> None:
        """Consent (again); with ``until``, the policy's consent period is made to end on that day."""
        import sqlalchemy as sa

        candidates = pack("plugins.recruitment.tables").candidates
        self.recruitment.give_consent(candidate)
        if not until:
            return
        end = date.fromisoformat(str(until))
        policy = self.recruitment.policy()
        keep = next((r.keep for r in (policy.rules if policy else ()) if r.consent is True
                     and r.counts_from == "consent"), None)
        if keep is None:
            return
        start = _local(end, dtime(0, 0)) + keep.delta(-1)
        with self.engine.store.transaction() as tx:
            tx.connection.execute(sa.update(candidates).where(candidates.c.id == candidate).values(
                consent_at=_naive(start)))

    def _link(self, a: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
        from engine.permissions.adapter import MatrixPermissions

        subject, target = str(a["subject"]), str(a["object"])
        relation = str(a.get("kind") or "consent")
        port = self.engine.permissions
        assert isinstance(port, _Permissions)
        name = a.get("matrix")
        if not name:
            names = port.declaring("consent_link")
            if len(names) != 1:
                raise UsageError("name the matrix of the link (matrix: ...)",
                                 hint="matrices declaring consent_link: " + (", ".join(names) or "none"))
            name = names[0]
        if name not in port.ports:
            raise UsageError(f"no PermissionMatrix {name!r}")
        matrix: MatrixPermissions = port.ports[name]
        actor = self.actor(a.get("actor") or subject)
        context = {"now": self.now}
        if kind == "link":
            matrix.link(actor, subject, target, valid_from=a.get("from"), valid_to=a.get("until"), kind=relation,
                        context=context)
            return (f"{subject} linked to {target}" + (f" until {a['until']}" if a.get("until") else ""),
                    {"subject": subject, "object": target})
        ended = matrix.unlink(actor, subject, target, action=str(a.get("action") or "withdraw"), kind=relation,
                              context=context)
        return f"{subject} unlinked from {target} ({len(ended)} link(s) ended)", {"subject": subject, "object": target}

    # --- the tick ----------------------------------------------------------------------------

    def tick(self, day: date) -> None:
        self.now = _local(day, TICK_TIME)
        summary = self.engine.tick(self.now)
        created = {t: n for t, n in sorted(summary.created.items()) if n}
        if created:
            parts = ", ".join(f"{n} {_plural(t, n)}" for t, n in created.items())
            self.note(day, "created", f"created {parts}", created=created)
        if summary.cancelled:
            self.note(day, "cancelled", f"{summary.cancelled} planned item(s) cancelled (changed facts, e.g. leaving)",
                      cancelled=summary.cancelled)
        if sum(summary.activated.values()):
            by_type = self._activated_today(self.now)
            parts = ", ".join(f"{n} {_plural(label, n)}" for label, n in sorted(by_type.items()))
            self.note(day, "due", f"due today: {parts}", activated=dict(summary.activated), by_type=by_type)
        if summary.skipped:
            self.note(day, "skipped", f"{summary.skipped} missed item(s) skipped (catch-up policy)")
        for task, counts in sorted(summary.tasks.items()):
            deleted = int(counts.get("deleted", 0) or 0)
            renewals = int(counts.get("renewals_requested", 0) or 0)
            if deleted:
                self.note(day, "deleted", f"retention: {deleted} candidate(s) deleted", task=task, deleted=deleted)
            self.totals["renewals_requested"] += renewals
            if renewals:
                self.note(day, "renewal", f"retention: consent renewal asked of {renewals} candidate(s)", task=task,
                          renewals=renewals)

    def _activated_today(self, now: datetime) -> dict[str, int]:
        import sqlalchemy as sa

        from engine.scheduling.tables import scheduled_items as items

        stamp = _naive(now)
        counts: Counter[str] = Counter()
        with self.sa.connect() as conn:
            rows = conn.execute(sa.select(items.c.item_type, items.c.payload).where(
                items.c.status.in_(("started", "active", "ready")), items.c.due_at <= stamp,
                items.c.updated_at == stamp))
            for item_type, payload in rows:
                counts[_item_label(item_type, payload)] += 1
        return dict(counts)


def _plural(item_type: str, n: int) -> str:
    words = {"trajectory": ("trajectory", "trajectories"), "moment": ("conversation moment", "conversation moments"),
             "feedback_request": ("feedback request", "feedback requests")}
    one, many = words.get(item_type, (item_type, item_type))
    return one if n == 1 else many


def _item_label(item_type: str, payload: str) -> str:
    if item_type == "moment":
        try:
            data = json.loads(payload or "{}")
        except ValueError:
            data = {}
        return str(data.get("label") or data.get("moment") or "moment")
    return item_type


# --- the summary (the state of the store) ---------------------------------------------------------


def summarise(run: _Run) -> dict[str, Any]:
    """Counts over the whole store: what the simulation has produced so far."""
    import sqlalchemy as sa

    from engine.outbox.tables import outbox
    from engine.scheduling.tables import employees, scheduled_items
    from engine.simulation.tables import employer_products, simulation_events, simulations
    recruitment_tables = pack("plugins.recruitment.tables")
    candidates, retention_log = recruitment_tables.candidates, recruitment_tables.retention_log
    vacancies = recruitment_tables.vacancies

    out: dict[str, Any] = {}
    with run.sa.connect() as conn:
        row = conn.execute(sa.select(simulations).where(simulations.c.name == run.name)).first()
        out["first_day"] = row.first_day.isoformat() if row is not None else None
        out["last_day"] = row.last_day.isoformat() if row is not None and row.last_day else None
        out["employees"] = conn.execute(sa.select(sa.func.count()).select_from(employees)).scalar_one()
        per_type = dict(conn.execute(sa.select(scheduled_items.c.item_type, sa.func.count())
                                     .group_by(scheduled_items.c.item_type)).all())
        out["trajectories"] = int(per_type.get("trajectory", 0))
        out["feedback_requests"] = int(per_type.get("feedback_request", 0))
        by_type: Counter[str] = Counter()
        by_status: Counter[str] = Counter()
        for payload, status in conn.execute(sa.select(scheduled_items.c.payload, scheduled_items.c.status)
                                            .where(scheduled_items.c.item_type == "moment")):
            by_type[_item_label("moment", payload)] += 1
            by_status[status] += 1
        out["moments"] = {"total": int(per_type.get("moment", 0)), "by_type": dict(sorted(by_type.items())),
                          "by_status": dict(sorted(by_status.items()))}
        out["vacancies"] = conn.execute(sa.select(sa.func.count()).select_from(vacancies)).scalar_one()
        groups = dict(conn.execute(sa.select(candidates.c.status_group, sa.func.count())
                                   .group_by(candidates.c.status_group)).all())
        out["candidates"] = {"total": sum(groups.values()), "by_group": dict(sorted(groups.items()))}
        mails = dict(conn.execute(sa.select(outbox.c.template, sa.func.count()).group_by(outbox.c.template)).all())
        out["mails"] = {"total": sum(mails.values()), "by_template": dict(sorted(mails.items()))}
        deleted = conn.execute(sa.select(sa.func.count()).select_from(retention_log)
                               .where(retention_log.c.action != "bulk_delete")).scalar_one()
        out["retention"] = {"deleted": int(deleted)}
        tiers = conn.execute(sa.select(employer_products).where(employer_products.c.action == "activate",
                                                                employer_products.c.tier_before
                                                                != employer_products.c.tier_after)
                             .order_by(employer_products.c.id)).all()
        out["tier_changes"] = [{"employer": t.employer, "catalog": t.catalog, "product": t.product,
                                "from": t.tier_before, "to": t.tier_after,
                                "day": t.at.replace(tzinfo=UTC).astimezone(TIMEZONE).date().isoformat()}
                               for t in tiers]
        events = conn.execute(sa.select(simulation_events).where(simulation_events.c.simulation == run.name)
                              .order_by(simulation_events.c.day, simulation_events.c.id)).all()
    out["retention"]["renewals_requested"] = int(run.totals.get("renewals_requested", 0))
    story = [e for e in events if e.key.startswith("story:")]
    out["events"] = {
        "applied": sum(1 for e in story if e.status == "applied"),
        "refused": sum(1 for e in story if e.status == "refused"),
        "data_rows_applied": sum(1 for e in events if e.key.startswith("data:") and e.status == "applied"),
        "refusals": [{"day": e.day.isoformat(), "type": e.type, "key": e.key,
                      "where": (e.detail or {}).get("where", ""), "message": e.message}
                     for e in events if e.status == "refused"],  # data rows too
    }
    return out


# --- the entry point --------------------------------------------------------------------------------


def simulate(path: str | Path, start: date, end: date, *, store: str | None = None, story: str | Path | None = None,
             progress: Progress | None = None, registry: Any = None, cwd: str | Path | None = None
             ) -> SimulationResult:
    """Simulate the customer directory ``path`` from ``start`` to ``end`` (inclusive) on ``store``.

    ``store`` defaults to :func:`default_store_url` (``./.regelwerk/<bundle name>.sqlite``); ``story``
    to ``path/story.yaml`` when present. Raises ``DefinitionError`` (invalid bundle, story or data) and
    ``UsageError`` (``end`` before ``start``). A second call on the same store continues where the first
    stopped; events are applied once.
    """
    from engine.bundle import load_bundle
    from engine.compiler import compile_bundle
    from engine.registry import load_registry
    from engine.simulation.data import read_customer_data
    from engine.simulation.story import load_story

    if end < start:
        raise UsageError(f"--to {end} is before --from {start}")
    started = time.perf_counter()
    registry = registry if registry is not None else load_registry()
    root = Path(path)
    bundle = load_bundle(str(root))
    compiled = compile_bundle(bundle, registry)
    name = bundle.name or root.resolve().name
    story_path = Path(story) if story is not None else root / "story.yaml"
    loaded: Story | None = None
    if story is not None or story_path.exists():
        loaded = load_story(story_path, _shown(story_path))
    data = read_customer_data(root)
    events = list(data.events)
    for item in (loaded.events if loaded else ()):
        events.append(DatedEvent(item.key, item.day, item.type, item.args, item.where(), (2, item.index)))
    url = store or default_store_url(name, cwd)
    run = _Run(compiled, name, url, registry)
    try:
        return _play(run, data, events, start, end, progress, url, started)
    finally:
        run.close()


def _shown(path: Path) -> str:
    import os

    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def _play(run: _Run, data: Any, events: list[DatedEvent], start: date, end: date, progress: Progress | None,
          url: str, started: float) -> SimulationResult:
    row = run.progress_row()
    if row is not None:
        run.totals.update({k: int(v) for k, v in dict(row.totals or {}).items()})
    first_day = start if row is None else row.first_day
    if row is None or not row.data_imported:
        run.import_data(data.employees, data.relations, start)
        run.save_progress(first_day, row.last_day if row is not None else None, True)
    run.open_relations()
    last_done: date | None = row.last_day if row is not None else None
    play_from = start if last_done is None else max(start, last_done + timedelta(days=1))
    applied = run.applied_keys()
    pending = sorted((e for e in events if e.key not in applied), key=lambda e: (e.day or first_day, e.order))
    days = (end - play_from).days + 1 if play_from <= end else 0
    # what is dated before the first day to play (history, or a story extended backwards) goes first
    for event in pending:
        when = event.day or first_day
        if when < play_from:
            run.apply(event, when)
    by_day: dict[date, list[DatedEvent]] = {}
    for event in pending:
        when = event.day or first_day
        if play_from <= when <= end:
            by_day.setdefault(when, []).append(event)
    for number in range(days):
        day = play_from + timedelta(days=number)
        for event in by_day.get(day, ()):
            run.apply(event, day)
        run.tick(day)
        run.save_progress(first_day, day, True)
        if progress is not None:
            progress(number + 1, days)
    summary = summarise(run)
    return SimulationResult(run.name, _redact(url), start, end, play_from if days else None, days, last_done,
                            run.timeline, summary, time.perf_counter() - started)


def _redact(url: str) -> str:
    """The store URL without a password."""
    try:
        import sqlalchemy as sa

        return str(sa.make_url(url).render_as_string(hide_password=True))
    except (ValueError, ImportError):
        return url
