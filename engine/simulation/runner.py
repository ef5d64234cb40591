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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from regelwerk.errors import RegelwerkError, UsageError
from regelwerk.simulation.context import (
    EVENT_TIME,
    IMPORT_ACTOR_ID,
    TICK_TIME,
    TIMEZONE,
    SimulationContext,
    SimulationPermissions,
    naive_utc,
)
from regelwerk.simulation.data import DatedEvent
from regelwerk.simulation.lease import Lease
from regelwerk.simulation.shared import executemany, shared_unit, write_behind_now
from regelwerk.simulation.story import Story
from regelwerk.simulation.tables import simulation_events

__all__ = ["EVENT_TIME", "TICK_TIME", "TIMEZONE", "SimulationResult", "default_store_url", "simulate"]

#: Rows per import transaction (employees, relations).
IMPORT_CHUNK = 1000
#: a batch's records (:meth:`_Run.recording`): one statement object, so the bulk writer's plan for it is made once
_INSERT_RECORD = simulation_events.insert()
#: the progress row's update (``_Run.save_progress``; its values bound per call)
_PROGRESS: list[Any] = []
#: the imported relations' insert (``_Run._import_relations``)
_INSERT_RELATION: list[Any] = []
#: ``progress(days_done, days_total)`` after every simulated day.
Progress = Callable[[int, int], None]


def default_store_url(name: str, cwd: str | Path | None = None) -> str:
    """``sqlite:///<cwd>/.regelwerk/<bundle name>.sqlite`` (the directory is created)."""
    folder = Path(cwd or Path.cwd()) / ".regelwerk"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / (name + '.sqlite')}"


def _naive(moment: datetime) -> datetime:
    return naive_utc(moment)


def _parts(registry: Any) -> list[Any]:
    """The registered simulation parts in ``(order, name)`` order."""
    return sorted(registry.simulation_parts.values(), key=lambda p: (p.order, p.name))


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
    #: the summary lines of the simulation parts (recruitment, outbox, MijnLoket...), rendered by the parts
    section_lines: list[str] = field(default_factory=list)

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
        out += self.section_lines
        out.append(f"  story events applied: {s['events']['applied']}; refused: {s['events']['refused']}; "
                   f"data rows applied: {s['events']['data_rows_applied']}")
        for refusal in s["events"]["refusals"]:
            out.append(f"    refused {refusal['day']} {refusal['type']} ({refusal['where']}): {refusal['message']}")
        return out


class _Run(SimulationContext):
    """One simulation run: the context the events see, plus the applied-event bookkeeping and the timeline."""

    #: the records of the open :meth:`recording` batch (None: each record is written at once)
    _records: list[dict[str, Any]] | None = None

    def open_relations(self) -> None:
        from regelwerk.imports.organisation import IMPORT_ACTOR
        from regelwerk.permissions.sql import SqlRelationships

        self.relations = SqlRelationships(self.sa, timezone=self.compiled.timezone)
        self.organisation_ids = {r.subject for r in self.relations.relations("member_of")
                                 if r.created_by == IMPORT_ACTOR} | {
            r.subject for r in self.relations.relations("has_function") if r.created_by == IMPORT_ACTOR}
        self._actors.clear()
        self.permissions = SimulationPermissions(self.compiled, self.relations, self.audit, lambda: self.now)
        self.engine.permissions = self.permissions

    # --- bookkeeping -------------------------------------------------------------------------

    def progress_row(self) -> Any:
        import sqlalchemy as sa
        from regelwerk.simulation.tables import simulations

        with self.sa.connect() as conn:
            return conn.execute(sa.select(simulations).where(simulations.c.name == self.name)).first()

    def save_progress(self, first_day: date, last_day: date | None, imported: bool, step: Any = None) -> None:
        """Write the progress row; ``step``: the step's own connection (the day's), written on it directly instead
        of in a unit of its own (no savepoint: nothing of the step follows it that could fail alone)."""
        import sqlalchemy as sa
        from regelwerk.simulation.tables import simulations as t
        from regelwerk.store.single import execute

        values = {"bundle_version": self.compiled.version, "first_day": first_day, "last_day": last_day,
                  "data_imported": imported, "totals": dict(sorted(self.totals.items())),
                  "updated_at": _naive(datetime.now(UTC))}
        with contextlib.nullcontext(step) if step is not None else self.sa.begin() as conn:
            if not _PROGRESS:  # built once (one built per call costs its cache key each day)
                _PROGRESS.append(sa.update(t).where(t.c.name == sa.bindparam("p_name")))
            done = execute(conn, _PROGRESS[0], {"p_name": self.name, **values}).rowcount
            if not done:
                conn.execute(t.insert().values(name=self.name, **values))

    def recorded(self) -> dict[str, str | None]:
        """Every recorded step's key, with the fingerprint of the event it applied (None: no event, or a record
        written before fingerprints were)."""
        import sqlalchemy as sa
        from regelwerk.simulation.tables import simulation_events as t

        with self.sa.connect() as conn:
            rows = conn.execute(sa.select(t.c.key, t.c.detail).where(t.c.simulation == self.name)).all()
        return {key: (detail or {}).get("fingerprint") if isinstance(detail, Mapping) else None
                for key, detail in rows}

    def record(self, event: DatedEvent, day: date, status: str, message: str, detail: Mapping[str, Any]) -> None:
        self.record_key(event.key, event.type, day, status, message,
                        {**detail, "where": event.where, "fingerprint": fingerprint(event)})

    def record_key(self, key: str, kind: str, day: date, status: str, message: str,
                   detail: Mapping[str, Any]) -> None:
        """Record a step as done, in the step's own transaction (a second insert of the key fails).

        Inside :meth:`recording` the row is kept in memory and written with the batch's other records
        at the end of the batch's transaction (still before its commit).
        """
        row = {"simulation": self.name, "key": key, "day": day, "type": kind, "status": status,
               "message": message[:1000], "detail": dict(detail), "applied_at": _naive(datetime.now(UTC))}
        if self._records is not None:
            self._records.append(row)
            return
        from regelwerk.simulation.tables import simulation_events as t

        with self.sa.begin() as conn:
            conn.execute(t.insert(), row)

    @contextlib.contextmanager
    def recording(self, label: str) -> Iterator[Any]:
        """One transaction (:func:`shared_unit`) for several steps whose records are written together.

        Each :meth:`record_key` inside it is kept in memory; the rows are written with one executemany
        just before the transaction commits, so a step's effects and its record still commit together or
        not at all (a kill before the commit leaves neither).
        """
        self.forget_step()
        try:
            with shared_unit(self.sa, label) as conn:
                records: list[dict[str, Any]] = []
                self._records = records
                try:
                    yield conn
                finally:
                    self._records = None
                if records:
                    executemany(conn, _INSERT_RECORD, records)
        finally:
            self.forget_step()  # what was read in this transaction is not reused after it

    # --- the import --------------------------------------------------------------------------

    def import_data(self, employees: tuple[int, Iterable[Any]] | None, relations: Iterable[Mapping[str, Any]],
                    day: date, done: set[str], lease: Lease | None = None, organisation: Path | None = None) -> None:
        """Import employees (``(count, chunks)`` of the checked file), then relations, in chunks: each chunk is
        written and recorded in one transaction.

        ``done`` holds the keys recorded before (``import:employees:<n>``, ``import:relations:<n>``): those
        chunks are skipped, so a resume after a crash imports every row once.
        """
        from regelwerk.diagnostics import DefinitionError, Diagnostic

        self.at(day, EVENT_TIME)
        imported = 0
        from_workbook: set[str] = set()  # the workbook's employees: its import wrote their reporting lines
        if organisation is not None:
            from regelwerk.imports.organisation import import_organisation

            # one transaction; re-importing the same workbook changes nothing, so a resume after a crash between
            # the import and its key imports it again without writing anything twice
            if "import:organisation" not in done:
                result = import_organisation(self.sa, [organisation], compiled=self.compiled, now=self.now)
                if not result.ok:
                    raise DefinitionError([Diagnostic("SIM014", e.message, e.file, e.row, 1) for e in result.errors])
                from_workbook = set(result.employee_ids)
                with shared_unit(self.sa, "import:organisation") as conn:
                    if lease is not None:  # first: a run whose lease was taken over stops before it writes
                        lease.renew(conn)
                    self.record_key("import:organisation", "import", day, "applied", "organisation workbook",
                                    dict(result.imported))
                imported = result.imported["employees"]
                self.note("import", "organisation workbook: "
                          + ", ".join(f"{n} {e}" for e, n in result.imported.items())
                          + f", {result.relations_added} relation(s)", **dict(result.imported))
            else:  # imported by the run this one resumes: read from the workbook, not the store (which may hold
                # employees of a later step of that run too)
                from regelwerk.imports.organisation import organisation_employee_ids

                from_workbook = set(organisation_employee_ids([organisation], compiled=self.compiled))
        if employees is not None:
            # checked whole with the other data files before anything was written (read_customer_data)
            count, chunks = employees
            imported += count
            for number, chunk in enumerate(chunks):
                key = f"import:employees:{number}"
                if key in done:
                    continue
                with shared_unit(self.sa, key) as conn:
                    if lease is not None:  # first: a run whose lease was taken over stops before it writes
                        lease.renew(conn)
                    self.directory.upsert(chunk, self.now, connection=conn)
                    self.record_key(key, "import", day, "applied", f"{len(chunk)} employee(s)",
                                    {"employees": len(chunk)})
        rows = [dict(r) for r in relations]
        explicit = {r["subject"] for r in rows if r["kind"] == "reports_to"} | from_workbook
        derived = 0
        chunk_rows: list[dict[str, Any]] = []
        number = 0

        def flush() -> None:
            nonlocal chunk_rows, number
            key = f"import:relations:{number}"
            if chunk_rows and key not in done:
                self._import_relations(key, chunk_rows, day, lease)
            chunk_rows, number = [], number + 1

        for row in rows:
            chunk_rows.append(row)
            if len(chunk_rows) >= IMPORT_CHUNK:
                flush()
        for ident, manager in self._managers():
            if manager and ident not in explicit:
                derived += 1
                chunk_rows.append({"kind": "reports_to", "subject": ident, "object": manager,
                                   "valid_from": None, "valid_to": None})
                if len(chunk_rows) >= IMPORT_CHUNK:
                    flush()
        flush()
        self.note("import", f"imported {imported} employee(s), {len(rows)} relation(s) "
                            f"(+{derived} reporting lines from the employees' managers)",
                  employees=imported, relations=len(rows), reporting_lines=derived)

    def _managers(self, batch_size: int = 1000) -> Iterator[tuple[str, str | None]]:
        """``(id, manager)`` of every stored employee, sorted by id, in batches: what the import reads of
        ``directory.iter_all()`` without reading (and decoding) the rest of the rows."""
        import sqlalchemy as sa
        from regelwerk.scheduling.tables import employees

        last = ""
        while True:
            with self.sa.connect() as conn:
                rows = conn.execute(sa.select(employees.c.id, employees.c.manager).where(employees.c.id > last)
                                    .order_by(employees.c.id).limit(batch_size)).all()
            if not rows:
                return
            yield from ((ident, manager) for ident, manager in rows)
            last = rows[-1][0]

    def _import_relations(self, key: str, rows: list[dict[str, Any]], day: date, lease: Lease | None) -> None:
        from regelwerk.permissions.tables import rw_relations

        moment = self.now.astimezone(UTC)
        with shared_unit(self.sa, key) as conn:
            if lease is not None:  # first: a run whose lease was taken over stops before it writes
                lease.renew(conn)
            if not _INSERT_RELATION:
                _INSERT_RELATION.append(rw_relations.insert())
            # on SQLite at the driver's executemany (one statement object: its plan made once)
            executemany(conn, _INSERT_RELATION[0], [{**r, "withdrawn_at": None, "withdrawn_by": "",
                                                     "created_by": IMPORT_ACTOR_ID, "created_at": moment}
                                                    for r in rows])
            self.record_key(key, "import", day, "applied", f"{len(rows)} relation(s)", {"relations": len(rows)})

    # --- events ------------------------------------------------------------------------------

    def apply(self, event: DatedEvent, day: date) -> None:
        """Apply one event through its registered story event and record it, in one transaction: the event
        runs in a savepoint of a :meth:`recording` batch (the day's, when :func:`_play` runs the day's events
        in one; else one of its own), and its record is written with the batch's before the commit.

        A refusal rolls the event's savepoint back as a whole; its record is then the refusal row alone,
        written with the batch's, and the run goes on.
        """
        if self._records is None:  # not inside a day's batch: a transaction of its own
            with self.recording(event.key):
                self.apply(event, day)
            return
        self.at(day, EVENT_TIME)
        self._pending = []
        totals = Counter(self.totals)
        try:
            spec = self.registry.story_events.get(event.type)
            if spec is None:
                raise UsageError(f"unknown event type {event.type!r}")
            with shared_unit(self.sa, event.key):
                message, result = spec.run(self, dict(event.args))
                detail = dict(result)
        except (RegelwerkError, ValueError, KeyError, LookupError) as exc:
            self.totals = totals
            self.forget_memory()
            message = str(exc) or type(exc).__name__
            reason = getattr(exc, "to_dict", None)
            detail = {"error": type(exc).__name__}
            if callable(reason):
                with contextlib.suppress(TypeError, ValueError):
                    detail["detail"] = json.loads(json.dumps(reason(), default=str))
            self._pending = None
            self.record(event, day, "refused", message, detail)  # kept with the batch's records
            self.note("refused", f"refused {event.type} ({event.where}): {message}", type=event.type,
                      where=event.where, reason=type(exc).__name__)
            return
        self.record(event, day, "applied", message, detail)  # after its savepoint was released
        following, self._pending = self._pending, None
        if not event.key.startswith("data:"):
            self.note("event", message, type=event.type, where=event.where)
        self.timeline.extend(following)

    # --- the tick ----------------------------------------------------------------------------

    def tick(self, day: date) -> None:
        self.at(day, TICK_TIME)
        summary = self.engine.tick(self.now, collect_activated=True)
        created = {t: n for t, n in sorted(summary.created.items()) if n}
        if created:
            words = _item_words(self.registry)
            parts = ", ".join(f"{n} {_plural(words, t, n)}" for t, n in created.items())
            self.note("created", f"created {parts}", created=created)
        if summary.cancelled:
            self.note("cancelled", f"{summary.cancelled} planned item(s) cancelled (changed facts, e.g. leaving)",
                      cancelled=summary.cancelled)
        if sum(summary.activated.values()):
            words = _item_words(self.registry)
            named = _activated_labels(summary.activated_items, self.now.date().isoformat(),
                                      {t for part in _parts(self.registry) for t in part.labelled})
            by_type = {key: n for (key, _text), n in named.items()}
            parts = ", ".join(f"{n} {_plural(words, item_type, n) if item_type else label}" + (
                f" (due {due})" if due else "") for (_key, (item_type, label, due)), n in sorted(named.items()))
            self.note("due", f"due today: {parts}", activated=dict(summary.activated), by_type=by_type)
        if summary.skipped:
            self.note("skipped", f"{summary.skipped} missed item(s) skipped (catch-up policy)")
        for part in _parts(self.registry):
            if part.after_tick is not None:
                part.after_tick(self, summary)


def _item_words(registry: Any) -> dict[str, tuple[str, str]]:
    """How the parts name their item types in the timeline: ``{item_type: (one, many)}``."""
    return {t: w for part in _parts(registry) for t, w in part.item_words.items()}


def _plural(words: Mapping[str, tuple[str, str]], item_type: str, n: int) -> str:
    one, many = words.get(item_type, (item_type, item_type))
    return one if n == 1 else many


def _activated_labels(items: Mapping[tuple[str, str, str], int], day: str, labelled: set[str]
                      ) -> dict[tuple[str, tuple[str, str, str]], int]:
    """The activated items counted per ``(key, (item type or "", label or "", due date or ""))``: an item of a
    ``labelled`` type with a payload label is counted by that label, any other by its item type (its words are
    chosen by the caller); an item that appears before it is due keeps its due date. ``key`` is the note's
    ``by_type`` key (the label or item type, with " (due <date>)" when it is not due today)."""
    counts: Counter[tuple[str, tuple[str, str, str]]] = Counter()
    for (item_type, label, due), n in items.items():
        later = due if due and due > day else ""
        text = (label, "") if item_type in labelled and label else ("", item_type)
        base = text[0] or text[1]
        counts[(f"{base} (due {later})" if later else base, (text[1], text[0], later))] += n
    return dict(counts)


# --- the summary (the state of the store) ---------------------------------------------------------


def summarise(run: _Run) -> dict[str, Any]:
    """Counts over the whole store: what the simulation has produced so far (plus each part's section)."""
    import sqlalchemy as sa
    from regelwerk.scheduling.tables import employees
    from regelwerk.simulation.tables import simulation_events, simulations

    out: dict[str, Any] = {}
    with run.sa.connect() as conn:
        row = conn.execute(sa.select(simulations).where(simulations.c.name == run.name)).first()
        out["first_day"] = row.first_day.isoformat() if row is not None else None
        out["last_day"] = row.last_day.isoformat() if row is not None and row.last_day else None
        out["employees"] = conn.execute(sa.select(sa.func.count()).select_from(employees)).scalar_one()
        t = simulation_events
        # counted in the database per (prefix of the key, status); only the refused rows are read
        prefix = sa.case((sa.func.substr(t.c.key, 1, 6) == "story:", "story"),
                         (sa.func.substr(t.c.key, 1, 5) == "data:", "data"), else_="other")
        counts = {(kind, status): int(n) for kind, status, n in conn.execute(
            sa.select(prefix, t.c.status, sa.func.count()).where(t.c.simulation == run.name)
            .group_by(prefix, t.c.status))}
        refused = conn.execute(sa.select(t.c.day, t.c.type, t.c.key, t.c.detail, t.c.message)
                               .where(t.c.simulation == run.name, t.c.status == "refused")
                               .order_by(t.c.day, t.c.id)).all()
    for part in _parts(run.registry):
        if part.summary is not None:
            out.update(part.summary(run))
    out["events"] = {
        "applied": counts.get(("story", "applied"), 0),
        "refused": counts.get(("story", "refused"), 0),
        "data_rows_applied": counts.get(("data", "applied"), 0),
        "refusals": [{"day": e.day.isoformat(), "type": e.type, "key": e.key,
                      "where": (e.detail or {}).get("where", ""), "message": e.message}
                     for e in refused],  # data rows too
    }
    return out


def section_lines(registry: Any, summary: Mapping[str, Any]) -> list[str]:
    """The simulation parts' summary lines, in their order."""
    return [line for part in _parts(registry) if part.lines is not None for line in part.lines(summary)]


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
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.registry import load_registry
    from regelwerk.simulation.data import read_customer_data
    from regelwerk.simulation.story import load_story

    if end < start:
        raise UsageError(f"--to {end} is before --from {start}")
    started = time.perf_counter()
    with _collection_paused():
        registry = registry if registry is not None else load_registry()
        root = Path(path)
        bundle = load_bundle(str(root))
        compiled = compile_bundle(bundle, registry)
        name = bundle.name or root.resolve().name
        story_path = Path(story) if story is not None else root / "story.yaml"
        loaded: Story | None = None
        if story is not None or story_path.exists():
            # the bundle parsed story.yaml already (to see that it is no definition): that parse is reused
            loaded = load_story(story_path, _shown(story_path), registry, bundle.set_aside)
        bundle.set_aside.clear()
        parts = _parts(registry)
        data = read_customer_data(root, [p.read_data for p in parts if p.read_data is not None],
                                  _employee_check(compiled))
    events = list(data.events)
    for item in (loaded.events if loaded else ()):
        events.append(DatedEvent(item.key, item.day, item.type, item.args, item.where(), (len(parts), item.index)))
    # handed over to _play, which lets each part go once used (the data after the import, a day's events once
    # played): a 100,000-employee story's 52,000 events and the data files' rows are not kept for the whole year
    handover: list[Any] = [data, events]
    del data, events, loaded
    url = store or default_store_url(name, cwd)
    run = _Run(compiled, name, url, registry)
    try:
        lease = Lease(run.sa, name)
        lease.acquire()  # SimulationBusy when another run is live on this store (nothing written)
        try:
            with _long_lived_frozen() as freeze:
                return _play(run, handover, start, end, progress, url, started, lease, freeze)
        finally:
            lease.release()
    finally:
        run.close()


def _employee_check(compiled: Any) -> Callable[[Path], tuple[list[Any], int, Iterable[Any]]]:
    """The employee file checked whole against the bundle's import columns (``SIM014`` per row), with the other
    data files' problems; the chunks come from the same read (up to ``KEEP_CHECKED`` employees)."""
    def check(path: Path) -> tuple[list[Any], int, Iterable[Any]]:
        from regelwerk.diagnostics import Diagnostic
        from regelwerk.imports.specs import import_spec
        from regelwerk.scheduling.employees import checked_employee_chunks
        from regelwerk.simulation.data import display_path

        checked, chunks = checked_employee_chunks(path, IMPORT_CHUNK, import_spec("employees", compiled))
        shown = display_path(path)  # as the other data files' problems are shown
        problems = [Diagnostic("SIM014", e.message, shown, e.row, 1) for e in checked.errors]
        return problems, checked.imported, chunks
    return check


@contextlib.contextmanager
def _collection_paused() -> Iterator[None]:
    """The cyclic garbage collector paused while the definitions, story and data are read and imported.

    Reading them makes hundreds of thousands of objects that stay alive (parsed YAML, story events, the
    registry and compiled bundle, the relation index), and each counts towards the collector's next full pass
    over the whole heap: 0.1 s of passes at 10,000 employees that found nothing to collect. The collector
    runs as before after this (it is left alone when it was off already).
    """
    import gc

    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextlib.contextmanager
def _long_lived_frozen() -> Iterator[Callable[[], None]]:
    """``freeze()``: keep every object that exists then (modules, registry, compiled bundle, story, events, what
    the import left: the run's long-lived objects) out of the collector's passes (``gc.freeze``) until the run
    ends, when they are handed back (``gc.unfreeze``).

    Every full pass of the cyclic collector walked them again: 20 full passes in a year at 10,000 employees,
    1.4 s of CPU. What the days make is collected as before; garbage among the frozen objects waits until the
    run ends. A process that froze objects itself (a pre-forking server) is left as it is.

    While the run plays, the collector's young generation is also collected less often (after
    ``_YOUNG_THRESHOLD`` net allocations instead of the interpreter's 700; the older generations' ratios as they
    were), and the thresholds are put back when the run ends. A simulated day allocates and frees millions of short
    lived containers (rows, parameter dictionaries, records) and hardly ever a cycle: at 10,000 employees the
    default made 2,374 collections in a year, 0.85 s of CPU, for 8,161 objects found; with 20,000 it made 28, 0.22 s,
    finding nearly the same (garbage in a cycle waits a little longer; the year's peak RSS did not move).
    """
    import gc

    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], _YOUNG_THRESHOLD), *thresholds[1:])
    try:
        if gc.get_freeze_count():
            yield lambda: None
            return
        try:
            yield gc.freeze
        finally:
            gc.unfreeze()
    finally:
        gc.set_threshold(*thresholds)


#: net container allocations between two collections of the young generation while a simulation plays
_YOUNG_THRESHOLD = 50_000


def _shown(path: Path) -> str:
    import os

    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def _play(run: _Run, handover: list[Any], start: date, end: date, progress: Progress | None,
          url: str, started: float, lease: Lease, freeze: Callable[[], None] = lambda: None) -> SimulationResult:
    """Import (once) and play the days. ``handover``: ``[data, events]``, emptied here, so that the data files' rows
    and the events are referenced from here only and go as soon as they are used."""
    data, events = handover
    handover.clear()
    row = run.progress_row()
    if row is not None:
        run.totals.update({k: int(v) for k, v in dict(row.totals or {}).items()})
    first_day = start if row is None else row.first_day
    recorded = run.recorded()
    _refuse_changed_events(events, recorded)
    applied = set(recorded)
    with _collection_paused():
        if row is None or not row.data_imported:
            run.import_data((data.employee_count, data.employee_chunks) if data.employees is not None else None,
                            data.relations, start, applied, lease, getattr(data, "organisation", None))
            with shared_unit(run.sa, "import:done") as conn:
                lease.renew(conn)
                run.save_progress(first_day, row.last_day if row is not None else None, True)
        else:  # imported by an earlier run: the checked rows are let go now, not kept for the whole run
            close = getattr(data.employee_chunks, "close", None)
            if close is not None:
                close()
        run.open_relations()
    data = None  # imported: its rows are let go
    freeze()  # what lives through the days (see _long_lived_frozen)
    last_done: date | None = row.last_day if row is not None else None
    play_from = start if last_done is None else max(start, last_done + timedelta(days=1))
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
    del pending
    events.clear()  # from here on a day's events live in by_day only, until they are played
    for number in range(days):
        day = play_from + timedelta(days=number)
        # a day is one transaction: its story events (each in a savepoint of its own, so a refusal rolls back that
        # event alone; their records written with one executemany before the commit), then its tick, what the
        # parts note of it and the progress row. A kill before the commit leaves nothing of the day; the resume
        # plays it again, once. One commit a day, not two (a commit is a disk sync on PostgreSQL)
        with run.recording(f"day:{day.isoformat()}") as conn:
            lease.renew(conn)
            todays = by_day.pop(day, ())
            # the day's events, known up front: a story event may read the rows of all of them ahead (day_events)
            run._day_events = tuple((event.type, event.args) for event in todays)
            try:
                for position, event in enumerate(todays):
                    run._day_position = position  # day_run: the events of a type from this one on
                    run.apply(event, day)
            finally:
                run._day_events, run._day_position = (), -1
            # the events' rows kept behind (history, outbox, candidates' statuses) go now, before the tick's many
            # statements, each of which would otherwise first be checked for their tables (shared.write_behind_now)
            write_behind_now(run.sa)
            run.tick(day)
            run.save_progress(first_day, day, True, conn)
        if progress is not None:
            progress(number + 1, days)
    summary = summarise(run)
    return SimulationResult(run.name, _redact(url), start, end, play_from if days else None, days, last_done,
                            run.timeline, summary, time.perf_counter() - started,
                            section_lines(run.registry, summary))


#: the text :func:`fingerprint` hashes (``json.dumps`` with these options, without an encoder made per event)
_FINGERPRINT_TEXT = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))


def fingerprint(event: DatedEvent) -> str:
    """What an event does (type, day, arguments), hashed: stored with its record, compared on a resume."""
    import hashlib

    text = _FINGERPRINT_TEXT.encode([event.type, event.day.isoformat() if event.day else None, event.args])
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:16]


def _refuse_changed_events(events: Iterable[DatedEvent], recorded: Mapping[str, str | None]) -> None:
    """A resume whose story or data rows differ from what this store applied under the same keys is refused
    (``SIM004``, every such event at once): events are keyed by their position (story) or id (data rows), so an
    event inserted in the middle or edited after it was applied would silently run twice or never."""
    from regelwerk.diagnostics import DefinitionError, Diagnostic

    problems = []
    for event in events:
        stored = recorded.get(event.key)
        if stored is not None and stored != fingerprint(event):
            file, _, line = event.where.rpartition(":")
            problems.append(Diagnostic(
                "SIM004", f"{event.key} ({event.type}) is not the event this store applied under that key",
                file or event.where, int(line) if line.isdigit() else 0, 1,
                hint="events already played must stay as they were: add new story events at the end of the story "
                     "(or new data rows), or simulate on a new --store"))
    if problems:
        raise DefinitionError(problems)


def _redact(url: str) -> str:
    """The store URL without a password."""
    try:
        import sqlalchemy as sa

        return str(sa.make_url(url).render_as_string(hide_password=True))
    except (ValueError, ImportError):
        return url
