"""The recruitment pack's part of ``regelwerk simulate`` (docs/simulation.md).

Story events ``open_vacancy``, ``close_vacancy``, ``apply``, ``move``, ``vacancy_facts``, ``candidate_facts``,
``consent`` through ``Recruitment`` (one per run: ``sim.service("recruitment", ...)``); the customer's
``data/vacancies.csv`` and ``data/candidates.csv`` as dated ``open_vacancy``/``apply`` events; the
retention notes of the nightly tick; the summary's vacancies, candidates per status group and
retention counts. Registered with ``StoryEventSpec``/``SimulationPartSpec`` like any plugin's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regelwerk.actors import Actor
from regelwerk.registry import Registry, SimulationPartSpec, StoryEventSpec
from regelwerk.simulation.story import ACTOR_SCHEMA, DATE_SCHEMA, ID_SCHEMA, LIST_SCHEMA

__all__ = ["CANDIDATE_COLUMNS", "VACANCY_COLUMNS", "read_data", "register"]

VACANCY_COLUMNS = ("id", "title", "function", "department", "entity", "manager", "deadline", "team", "opened_on")
CANDIDATE_COLUMNS = ("id", "vacancy", "first_name", "last_name", "email", "phone", "applied_on", "consent",
                     "consent_until")
Result = tuple[str, dict[str, Any]]

if TYPE_CHECKING:
    from regelwerk_packs.recruitment.ports import CandidateStore


# --- story events ---------------------------------------------------------------------------------


def recruitment(sim: Any) -> Any:
    """The run's ``Recruitment`` service over the simulation's engine."""
    def make(sim: Any) -> Any:
        from regelwerk_packs.recruitment.service import Recruitment

        # vacancy rows are read once per day's transaction (the step memo), not once per move or application; the
        # candidates a day's moves name are read ahead, in one statement (DayOfMoves)
        return Recruitment(sim.engine, vacancy_memo=sim.step_memo("recruitment.vacancies"),
                           read_ahead=DayOfMoves(sim))

    return sim.service("recruitment", make)


#: the tables whose rows are read ahead: while no statement of the step may have changed them, the rows are current
_AHEAD_TABLES = ("rw_candidates", "rw_vacancies")


def _reads_ahead(sim: Any) -> bool:
    """Rows are read ahead on SQLite: the step's transaction holds the database's write lock from its start, so
    only its own statements (counted by ``sim.writes``) can change them. On PostgreSQL another process could
    change a row between the read ahead and its use: there a day's moves read ahead only rows they lock
    (:func:`_locks_ahead`); an application reads its rows when it runs, as before (an absent row cannot be locked)."""
    return bool(sim.sa.dialect.name == "sqlite")


def _locks_ahead(sim: Any) -> bool:
    """The moves' rows are read ahead under row locks (PostgreSQL, see :class:`DayOfMoves`)."""
    return bool(sim.sa.dialect.name == "postgresql")


class DayOfMoves:
    """The candidates (with their vacancies) a simulated day's ``move`` events name, read in one statement at the
    day's first move instead of one statement per move (``Recruitment(read_ahead=...)``).

    A row is handed out only while it is what the store holds, which is provable here: read in the day's
    transaction, and while ``sim.writes(rw_candidates, rw_vacancies)`` is what it was when the rows were read, no
    statement of that transaction has changed (or rolled back) a row of those tables, and no other writer exists
    (SQLite, see :func:`_reads_ahead`). The move's own write is the one exception, accounted for: ``moved`` accepts
    the count going up by exactly one when ``sync_status`` confirmed that its UPDATE matched exactly one row, the
    moved candidate's (its rows are dropped: a second move of it the same day reads it again). Any other change
    (an event that wrote a candidate or vacancy, SQL text, a savepoint rolled back) and the rows left are dropped:
    each move reads its candidate as before. An event refused empties the step memos (``forget_memory``), the next
    move reads the day's candidates again. Each row is handed out once.

    On PostgreSQL other processes write too, so rows are read ahead only under their locks
    (``CandidateStore.candidates_locked_ahead``): the candidates' instances, then the candidate rows, each in id order
    (the core's lock order) and ``NOWAIT``, all or nothing: when another transaction holds one of them the read's unit
    rolls back (letting go of what it locked) and nothing is read ahead (each move reads, and waits for, its own rows
    as before). Locked, no other transaction can change or delete the rows or fire their instances (a host's fire of
    one waits for the day's commit, then finds the version changed: ``ConflictError``) until the day commits, so while
    ``sim.writes`` stands still they are what the store holds, as on SQLite. A lock taken in a savepoint that is
    rolled back is let go with it: that rollback changes ``sim.writes``, and the rows are dropped. The locks are taken
    for the *run* of moves the day plays next (the move being applied and the moves right after it,
    ``sim.day_run``), not the whole day. Why this cannot deadlock where reading one by one would not: a deadlock
    needs the day to wait for a transaction that waits for a row locked ahead. The read itself never waits; with
    every row of the run held, its moves wait for none of them; and the day runs nothing but those moves (which lock
    only their own instance's rows) until the last of them, from when the day holds what it would hold anyway. (A
    partial lock would not do: a move waiting for its instance held elsewhere, while holding a later move's instance
    early that the other transaction waits for, closes a cycle. A day's story events follow its data rows, so a
    day's moves are one run unless the story interleaves other events.)
    """

    MEMO = "recruitment.moves_ahead"

    def __init__(self, sim: Any) -> None:
        self.sim = sim

    def take(self, candidate_id: str) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        """The candidate's rows as read ahead (and still current), or None: read them now."""
        memo = self.sim.step_memo(self.MEMO)
        memo.pop("before", None)
        writes = self.sim.writes(*_AHEAD_TABLES)
        if writes is None:  # not in a step's transaction
            return None
        memo.pop("sole", None)
        run = self.sim.day_run("move")[0] if _locks_ahead(self.sim) else None
        if "rows" not in memo or memo.get("run") != run:
            memo["rows"] = read = self._read()
            memo["run"] = run
            # the candidates read, per instance (moved() drops an instance's rows)
            by_instance: dict[str, list[str]] = {}
            for ident, (candidate, _vacancy, _sole) in read.items():
                by_instance.setdefault(str(candidate["instance_id"]), []).append(ident)
            memo["by_instance"] = by_instance
            # counted after the read: the read's SELECT first writes the rows the step kept behind (a move's status)
            memo["writes"] = writes = self.sim.writes(*_AHEAD_TABLES)
        rows: dict[str, Any] = memo["rows"]
        if not rows:
            return None
        if memo["writes"] != writes:  # a statement of the step may have changed them: each move reads its own
            rows.clear()
            return None
        memo["before"] = writes
        found = rows.pop(candidate_id, None)
        if found is None:
            return None
        candidate, vacancy, sole = found
        memo["sole"] = sole
        return candidate, vacancy

    def still_current(self) -> bool:
        """Whether the row the last :meth:`take` handed out is still what the store holds and the only candidate row
        of its instance: no statement of the step may have changed a candidate or vacancy since (``sync_status`` may
        then write the move's status behind, see ``KnownRows.current``)."""
        memo = self.sim.step_memo(self.MEMO)
        before = memo.get("before")
        return memo.get("sole") is True and before is not None and self.sim.writes(*_AHEAD_TABLES) == before

    def moved(self, instance_id: str, confirmed: bool, behind: bool = False) -> None:
        """After a move of ``instance_id``: the rows read ahead stay current only if the move's one write to the
        tables was its own candidate's row (``confirmed``: sync_status's UPDATE matched exactly that row; ``behind``:
        it was handed to the step to write behind, so it is not counted yet)."""
        memo = self.sim.step_memo(self.MEMO)
        before = memo.pop("before", None)
        memo.pop("sole", None)
        rows = memo.get("rows")
        if not rows:
            return
        writes = self.sim.writes(*_AHEAD_TABLES)
        if before is None or not confirmed or writes != before + (0 if behind else 1):
            rows.clear()
            return
        # the UPDATE matched by instance id: every row of that instance read ahead is no longer current
        for candidate_id in memo["by_instance"].pop(instance_id, ()):
            rows.pop(candidate_id, None)
        memo["writes"] = writes

    #: the day's applications' candidate ids without a row (read ahead) and the write count when they were read
    ABSENT = "recruitment.applications_ahead"

    def known_absent(self, candidate_id: str) -> bool:
        """Whether provably no candidate row has this id, so an application's row may be written behind (its INSERT
        cannot fail when it is written): the ids the day's applications name that had no row when read (in one
        statement, at the first application that asks), while ``sim.writes(rw_candidates)`` is what it was then (no
        statement of the step has written a candidate since; SQLite only, see :func:`_reads_ahead`). The rows the
        step writes behind meanwhile are not counted until written; each id is handed out once, so two
        applications naming one id (the second is refused: its instance exists) are never both written behind.
        Any change, and the ids left are forgotten: each application inserts its row at once, as before."""
        sim = self.sim
        writes = sim.writes("rw_candidates")
        if writes is None or not _reads_ahead(sim):
            return False
        memo = sim.step_memo(self.ABSENT)
        if "ids" not in memo:
            ids = sorted({str(a["id"]) for a in sim.day_events("apply") if a.get("id") is not None})
            absent: set[str] = set()
            if len(ids) >= 2:  # one application: as many statements either way
                with sim.engine.store.read() as tx:
                    absent = set(ids) - _store(tx).existing_ids(ids)
                writes = sim.writes("rw_candidates")  # after the read (which first writes the rows kept behind)
            memo["ids"], memo["writes"] = absent, writes
        found: set[str] = memo["ids"]
        if memo["writes"] != writes:
            found.clear()
            return False
        if candidate_id not in found:
            return False
        found.discard(candidate_id)
        return True

    def _read(self) -> dict[str, tuple[dict[str, Any], dict[str, Any] | None, bool]]:
        sim = self.sim
        locks = _locks_ahead(sim)
        if not locks and not _reads_ahead(sim):
            return {}
        # the story's arguments, unchecked until their move runs: here only ids to read (a move's own checks stand)
        moves = sim.day_run("move")[1] if locks else sim.day_events("move")
        ids = sorted({str(a["candidate"]) for a in moves if isinstance(a.get("candidate"), str)})
        if len(ids) < 2:  # one move: as many statements either way
            return {}
        if not locks:
            with sim.engine.store.read() as tx:
                return _store(tx).candidates_ahead(ids)
        from regelwerk_packs.recruitment.sqlstore import rows_busy

        try:
            # a unit of its own: if a row is held elsewhere, its rollback (to the savepoint its statements set, or
            # share with the move's unit, which has written nothing yet) lets go of what it locked
            with sim.engine.store.read() as tx:
                return _store(tx).candidates_locked_ahead(ids)
        except Exception as exc:  # the driver's error, told by the SQL store (no SQL here)
            if not rows_busy(exc):
                raise
            return {}  # another transaction holds one of the rows: each move reads (and waits for) its own


def _vacancy_ahead(sim: Any, vacancy_id: str) -> None:
    """Put the vacancy of an application in the service's vacancy memo from the rows of the day's applications'
    vacancies read ahead in one statement (at the day's first application), while it is current (see
    :class:`DayOfMoves`: no statement of the day's transaction may have changed a vacancy since; else it is read
    when the application runs, as before)."""
    memo = sim.step_memo("recruitment.vacancies")
    if vacancy_id in memo or not _reads_ahead(sim):
        return
    ahead = sim.step_memo("recruitment.vacancies_ahead")
    writes = sim.writes("rw_vacancies")
    if writes is None:
        return
    if "rows" not in ahead:
        ids = sorted({str(a["vacancy"]) for a in sim.day_events("apply") if isinstance(a.get("vacancy"), str)}
                     - memo.keys())
        rows: dict[str, dict[str, Any]] = {}
        if len(ids) >= 2:  # one application: as many statements either way
            with sim.engine.store.read() as tx:
                rows = _store(tx).vacancies_by_id(ids)
        ahead["rows"], ahead["writes"] = rows, writes
    if ahead["writes"] != writes:
        ahead["rows"].clear()
        return
    row = ahead["rows"].pop(vacancy_id, None)
    if row is not None:
        memo[vacancy_id] = row


def admin(sim: Any) -> Actor:
    """The actor of imported data: an administrator of the customer's recruitment."""
    from regelwerk.simulation.context import IMPORT_ACTOR_ID

    roles: tuple[str, ...] = ("system",)
    if sim.compiled.of_kind("RecruitmentSettings"):
        roles = tuple(recruitment(sim).settings.vacancy_admins) + roles
    return Actor(IMPORT_ACTOR_ID, roles)


def open_vacancy(sim: Any, a: Mapping[str, Any]) -> Result:
    """``Recruitment.open_vacancy`` (default actor: the import administrator)."""
    from regelwerk.simulation.data import split_list

    vid = recruitment(sim).open_vacancy(
        sim.actor(a.get("actor"), admin(sim)), title=str(a["title"]), function=str(a["function"]),
        department=str(a["department"]), manager=str(a["manager"]), deadline=a.get("deadline"),
        entity=a.get("entity") or None, workflow=a.get("workflow"), templates=a.get("templates"),
        team=split_list(a.get("team")), vacancy_id=str(a["id"]))
    return f"vacancy {vid} opened: {a['title']}", {"vacancy": vid}


def close_vacancy(sim: Any, a: Mapping[str, Any]) -> Result:
    """``Recruitment.close_vacancy``."""
    recruitment(sim).close_vacancy(sim.actor(a.get("actor"), admin(sim)), str(a["vacancy"]))
    return f"vacancy {a['vacancy']} closed", {"vacancy": str(a["vacancy"])}


def apply(sim: Any, a: Mapping[str, Any]) -> Result:
    """``Recruitment.apply`` (+ consent, dated with ``consent_until``)."""
    from regelwerk.simulation.data import as_bool

    consent = as_bool(a.get("consent", False))
    _vacancy_ahead(sim, str(a["vacancy"]))
    cid = recruitment(sim).apply(
        str(a["vacancy"]), first_name=str(a["first_name"]), last_name=str(a.get("last_name") or ""),
        email=str(a["email"]), phone=str(a["phone"]) if a.get("phone") else None, consent=consent,
        source=str(a.get("source") or "web"), actor=sim.actor(a.get("actor")) if a.get("actor") else None,
        candidate_id=str(a["id"]))
    if consent:
        # the application's row was written just now with the consent given now (consent, consent_at = now, no
        # renewal asked): exactly what give_consent would write again, so only its date is set (until)
        _consent(sim, cid, a.get("consent_until"), given=True)
    return f"candidate {cid} applied for {a['vacancy']}", {"candidate": cid}


def move(sim: Any, a: Mapping[str, Any]) -> Result:
    """``Recruitment.move``: the workflow's moves decide who may and when (with the move's ``input``)."""
    state = recruitment(sim).move(sim.actor(a["actor"]), str(a["candidate"]), str(a["to"]), a.get("note"),
                                  a.get("input"))
    return f"candidate {a['candidate']} moved to {state} by {sim.actor(a['actor']).id}", {
        "candidate": str(a["candidate"]), "status": state}


def vacancy_facts(sim: Any, a: Mapping[str, Any]) -> Result:
    """``Recruitment.set_vacancy_facts`` (the declared facts a move's condition reads, e.g. budget_approved)."""
    who = sim.actor(a.get("actor"), admin(sim))
    facts = recruitment(sim).set_vacancy_facts(who, str(a["vacancy"]), dict(a["facts"]))
    return f"vacancy {a['vacancy']} facts set by {who.id}", {"vacancy": str(a["vacancy"]), "facts": facts}


def candidate_facts(sim: Any, a: Mapping[str, Any]) -> Result:
    """``Recruitment.set_candidate_facts`` (e.g. reference_check: done)."""
    who = sim.actor(a["actor"])
    recruitment(sim).set_candidate_facts(who, str(a["candidate"]), dict(a["facts"]))  # values not in the record
    return f"candidate {a['candidate']} facts set by {who.id}", {"candidate": str(a["candidate"])}


def consent(sim: Any, a: Mapping[str, Any]) -> Result:
    """``Recruitment.give_consent`` (dated with ``until``)."""
    _consent(sim, str(a["candidate"]), a.get("until"))
    return f"candidate {a['candidate']} consents" + (f" until {a['until']}" if a.get("until") else ""), {
        "candidate": str(a["candidate"])}


def _consent(sim: Any, candidate: str, until: Any, given: bool = False) -> None:
    """Consent (again); with ``until``, the policy's consent period is made to end on that day. ``given``: the
    candidate's row holds the consent of now already (its application, just written)."""
    from datetime import time

    from regelwerk.simulation.context import local_time

    service = recruitment(sim)
    if not given:
        service.give_consent(candidate)
    if not until:
        return
    end = date.fromisoformat(str(until))
    policy = service.policy()
    keep = next((r.keep for r in (policy.rules if policy else ()) if r.consent is True
                 and r.counts_from == "consent"), None)
    if keep is None:
        return
    start = local_time(end, time(0, 0)) + keep.delta(-1)
    with sim.engine.store.transaction() as tx:
        _store(tx).set_consent_at(candidate, start)


# --- data files -----------------------------------------------------------------------------------


def read_data(data: Path) -> tuple[list[Any], list[Any]]:
    """``vacancies.csv`` and ``candidates.csv`` as ``open_vacancy``/``apply`` events (SIM010..SIM013)."""
    from regelwerk.diagnostics import Diagnostic
    from regelwerk.simulation.data import DatedEvent, as_bool, display_path, parse_day, read_table, split_list

    problems: list[Diagnostic] = []
    events: list[DatedEvent] = []
    seen: dict[str, dict[str, int]] = {"vacancies": {}, "candidates": {}}

    def once(kind: str, ident: str, number: int, shown: str) -> bool:
        if ident in seen[kind]:
            problems.append(Diagnostic("SIM012", f"id {ident!r} also in row {seen[kind][ident]}", shown, number, 1))
            return False
        seen[kind][ident] = number
        return True

    vacancies = data / "vacancies.csv"
    if vacancies.exists():
        shown = display_path(vacancies)
        for number, row in read_table(vacancies, VACANCY_COLUMNS, ("id", "title", "function", "department",
                                                                   "manager"), problems):
            try:
                opened = parse_day(row.get("opened_on"), "opened_on")
                deadline = parse_day(row.get("deadline"), "deadline")
            except ValueError as exc:
                problems.append(Diagnostic("SIM010", str(exc), shown, number, 1))
                continue
            if not once("vacancies", str(row["id"]), number, shown):
                continue
            args = {"id": row["id"], "title": row["title"], "function": row["function"],
                    "department": row["department"], "manager": row["manager"],
                    "entity": row.get("entity") or None, "deadline": deadline.isoformat() if deadline else None,
                    "team": split_list(row.get("team"))}
            events.append(DatedEvent(f"data:vacancies:{row['id']}", opened, "open_vacancy", args,
                                     f"{shown}:{number}", (0, number)))
    candidates = data / "candidates.csv"
    if candidates.exists():
        shown = display_path(candidates)
        for number, row in read_table(candidates, CANDIDATE_COLUMNS, ("id", "vacancy", "first_name", "email"),
                                      problems):
            try:
                applied = parse_day(row.get("applied_on"), "applied_on")
                until = parse_day(row.get("consent_until"), "consent_until")
                consent = as_bool(row.get("consent"))
            except ValueError as exc:
                problems.append(Diagnostic("SIM010", str(exc), shown, number, 1))
                continue
            if row["vacancy"] not in seen["vacancies"]:
                problems.append(Diagnostic("SIM013", f"vacancy {row['vacancy']!r} is not in vacancies.csv", shown,
                                           number, 1))
                continue
            if not once("candidates", str(row["id"]), number, shown):
                continue
            args = {"id": row["id"], "vacancy": row["vacancy"], "first_name": row["first_name"],
                    "last_name": row.get("last_name") or "", "email": row["email"], "phone": row.get("phone") or None,
                    "consent": consent, "consent_until": until.isoformat() if until else None}
            events.append(DatedEvent(f"data:candidates:{row['id']}", applied, "apply", args, f"{shown}:{number}",
                                     (1, number)))
    return events, problems


# --- summary and the nightly retention notes ------------------------------------------------------


def _store(tx: Any) -> CandidateStore:
    """The pack's candidate store in the simulation's (SQL) store transaction."""
    from regelwerk_packs.recruitment.ports import candidate_store

    store = candidate_store(tx)
    if store is None:
        from regelwerk.errors import UsageError

        raise UsageError("the recruitment simulation needs a SQL store")
    return store



def summary(sim: Any) -> dict[str, Any]:
    """Vacancies and candidates per status group, counted in the store."""
    with sim.engine.store.read() as tx:
        store = _store(tx)
        count = store.vacancy_count()
        groups = {row.group: row.candidates for row in store.kept_per_group()}
    return {"vacancies": count, "candidates": {"total": sum(groups.values()), "by_group": dict(sorted(groups.items()))}}


def lines(s: Mapping[str, Any]) -> list[str]:
    """``vacancies: N`` and ``candidates: N (group n, ...)``."""
    groups = s["candidates"]
    return [f"  vacancies: {s['vacancies']}",
            f"  candidates: {groups['total']}"
            + (" (" + ", ".join(f"{k} {v}" for k, v in groups["by_group"].items()) + ")" if groups["by_group"] else "")]


def after_tick(sim: Any, tick: Any) -> None:
    """Note the retention task's deletions and consent-renewal requests (and count the renewals)."""
    for task, counts in sorted(tick.tasks.items()):
        deleted = int(counts.get("deleted", 0) or 0)
        renewals = int(counts.get("renewals_requested", 0) or 0)
        if deleted:
            sim.note("deleted", f"retention: {deleted} candidate(s) deleted", task=task, deleted=deleted)
        sim.totals["renewals_requested"] += renewals
        if renewals:
            sim.note("renewal", f"retention: consent renewal asked of {renewals} candidate(s)", task=task,
                     renewals=renewals)


def retention_summary(sim: Any) -> dict[str, Any]:
    """Candidates deleted under retention (in the store) and consent renewals asked (over all runs)."""
    with sim.engine.store.read() as tx:
        deleted = _store(tx).retention_deletions()
    return {"retention": {"deleted": int(deleted),
                          "renewals_requested": int(sim.totals.get("renewals_requested", 0))}}


def retention_lines(s: Mapping[str, Any]) -> list[str]:
    """``deletions under retention: N; consent renewals asked: M``."""
    return [f"  deletions under retention: {s['retention']['deleted']}; consent renewals asked: "
            f"{s['retention']['renewals_requested']}"]


# --- registration ---------------------------------------------------------------------------------


def _object(properties: Mapping[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": dict(properties),
            "required": list(required)}


def register(registry: Registry, plugin: str) -> None:
    """Register the story events and the two simulation parts (recruitment, recruitment.retention)."""
    text = {"type": "string", "minLength": 1}
    for name, run, schema, description in (
        ("open_vacancy", open_vacancy, _object({
            "id": ID_SCHEMA, "title": text, "function": text, "department": text, "entity": {"type": "string"},
            "manager": ID_SCHEMA, "deadline": DATE_SCHEMA, "team": LIST_SCHEMA, "workflow": {"type": "string"},
            "templates": {"type": "object", "additionalProperties": {"type": "string"}}, "actor": ACTOR_SCHEMA,
            "opened_on": {**DATE_SCHEMA,
                          "description": "As in vacancies.csv; the vacancy opens on the event's day (`on`)."},
        }, ("id", "title", "function", "department", "manager")),
         "Open a vacancy (the columns of data/vacancies.csv)."),
        ("close_vacancy", close_vacancy, _object({"vacancy": ID_SCHEMA, "actor": ACTOR_SCHEMA}, ("vacancy",)),
         "Close a vacancy."),
        ("apply", apply, _object({
            "id": ID_SCHEMA, "vacancy": ID_SCHEMA, "first_name": text, "last_name": {"type": "string"},
            "email": text, "phone": {"type": ["string", "integer"]},
            "consent": {"anyOf": [{"type": "boolean"}, {"enum": ["ja", "nee", "yes", "no"]}]},
            "consent_until": DATE_SCHEMA, "source": {"enum": ["web", "manual"]}, "actor": ACTOR_SCHEMA,
            "applied_on": {**DATE_SCHEMA,
                           "description": "As in candidates.csv; the application arrives on the event's day (`on`)."},
        }, ("id", "vacancy", "first_name", "email")), "An application (the columns of data/candidates.csv)."),
        ("move", move, _object({"candidate": ID_SCHEMA, "to": text, "actor": ACTOR_SCHEMA, "note": {"type": "string"},
                                "input": {"type": "object", "description": "What the move's input lists, e.g. "
                                                                          "{reason: ...}."}},
                               ("candidate", "to", "actor")),
         "Move a candidate to another status (the workflow decides who may, and when)."),
        ("vacancy_facts", vacancy_facts, _object({"vacancy": ID_SCHEMA, "facts": {"type": "object"},
                                                  "actor": ACTOR_SCHEMA}, ("vacancy", "facts")),
         "Set a vacancy's declared facts (Facts named vacancy; null removes one); by the recruitment's admin unless "
         "an actor is named."),
        ("candidate_facts", candidate_facts, _object({"candidate": ID_SCHEMA, "facts": {"type": "object"},
                                                      "actor": ACTOR_SCHEMA}, ("candidate", "facts", "actor")),
         "Set a candidate's declared facts (Facts named candidate; null removes one)."),
        ("consent", consent, _object({"candidate": ID_SCHEMA, "until": DATE_SCHEMA}, ("candidate",)),
         "The candidate consents to longer storage (until a date)."),
    ):
        registry.add_story_event(StoryEventSpec(name, plugin, run, schema, description))
    registry.add_simulation_part(SimulationPartSpec(
        "recruitment", plugin, read_data=read_data, summary=summary, lines=lines, order=200,
        description="vacancies.csv and candidates.csv; vacancies and candidates per status group"))
    registry.add_simulation_part(SimulationPartSpec(
        "recruitment.retention", plugin, after_tick=after_tick, summary=retention_summary, lines=retention_lines,
        order=400,
        description="AVG retention: deletions and consent renewals per night and in total"))
