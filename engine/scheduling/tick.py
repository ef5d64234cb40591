"""``tick``: do everything that is due, exactly once, also with several processes at a time.

Three phases, each in small transactions (a crash loses at most one uncommitted batch,
which the next tick redoes):

1. **plan**: employees whose plan is stale (new, facts changed, definitions changed, or
   ``next_due`` reached) are read in batches (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
   concurrent ticks share the work); every item their sources call for is inserted with
   ``INSERT .. ON CONFLICT (key) DO NOTHING``; planned items that no longer apply are
   cancelled, cancelled ones that apply again are reinstated; the employee gets a new plan
   stamp and ``next_due``.
2. **activate**: items that are due (``status = planned, due_at <= now``) are claimed in
   batches (again SKIP LOCKED); the catch-up policy drops occurrences missed during downtime;
   the rest become ``active`` (no workflow), ``ready`` (manual start) or ``started`` (a
   workflow instance is started through the workflow runtime, in the same transaction).
3. **timers**: the workflow runtime's ``fire_due_timers(now)``.

On SQLite every batch transaction starts with a write so that it holds the database's
write lock from its first read (SQLite has no row locks); ticks there run one at a time.
"""

from __future__ import annotations

import json
import time as _time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from regelwerk.actors import SYSTEM, Actor
from regelwerk.errors import PluginError, RegelwerkError, is_plugin_fault
from regelwerk.limits import limited

if TYPE_CHECKING:
    from regelwerk.workflows.timers import RetryPolicy

__all__ = ["Progress", "Starter", "TickSummary", "plan_stamp", "resolve_target", "start_item", "tick"]

#: ``progress(phase, done, total)`` after every batch (phase: "plan" or "activate").
Progress = Callable[[str, int, int], None]
#: ``starter(unit, item, now) -> instance id``: starts the workflow of a due item inside the tick's
#: transaction (``unit`` is an :class:`regelwerk.scheduling.workflows.TxUnit`).
Starter = Callable[[Any, Mapping[str, Any], datetime], str]


@dataclass
class TickSummary:
    """What one tick did."""

    now: datetime
    employees_planned: int = 0
    created: Counter[str] = field(default_factory=Counter)
    created_keys: list[str] = field(default_factory=list)
    cancelled: int = 0
    closed: int = 0
    reinstated: int = 0
    activated: Counter[str] = field(default_factory=Counter)
    activated_keys: list[str] = field(default_factory=list)
    skipped: int = 0
    timers_fired: int = 0
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: employees (plan) and due items (activate) whose plugin code failed: skipped this tick, each an incident
    #: (event ``tick:plan`` / ``tick:activate``) resolved by the tick that plans or starts them again
    incidents: int = 0
    #: employees and due items passed over because their open incident waits: for its retry's backoff, or (its
    #: attempts used up) for a person (``regelwerk incidents retry``)
    waiting: int = 0
    seconds: float = 0.0
    #: With ``collect_activated``: how many items were activated (started, active, ready) per
    #: ``(item_type, label, due_date)`` read from their payloads (a count, not the payloads: a first tick of a
    #: large organisation activates hundreds of thousands of items)
    activated_items: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    @property
    def total_created(self) -> int:
        """How many items were created."""
        return sum(self.created.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (keys left out)."""
        return {
            "now": self.now.isoformat(), "employees_planned": self.employees_planned,
            "created": dict(sorted(self.created.items())), "cancelled": self.cancelled,
            "reinstated": self.reinstated, "closed": self.closed, "activated": dict(sorted(self.activated.items())),
            "skipped": self.skipped, "timers_fired": self.timers_fired, "tasks": self.tasks,
            "incidents": self.incidents, "waiting": self.waiting, "seconds": round(self.seconds, 3),
        }

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        created = ", ".join(f"{n} {t}" for t, n in sorted(self.created.items())) or "nothing"
        activated = ", ".join(f"{n} {s}" for s, n in sorted(self.activated.items())) or "nothing"
        return [
            f"tick at {self.now.isoformat()}: {self.employees_planned} employee(s) planned",
            f"  created: {created}",
            f"  activated: {activated}; skipped (catch-up): {self.skipped}",
            f"  cancelled: {self.cancelled}; closed: {self.closed}; reinstated: {self.reinstated}; "
            f"timers fired: {self.timers_fired}",
            *(f"  {task}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
              for task, counts in sorted(self.tasks.items())),
            *([f"  incidents: {self.incidents} employee(s) or item(s) skipped because plugin code failed "
               "(regelwerk incidents list)"] if self.incidents else []),
            *([f"  waiting: {self.waiting} employee(s) or item(s) passed over: their incident waits for its retry "
               "or for a person (regelwerk incidents list)"] if self.waiting else []),
            f"  took {self.seconds:.2f} s",
        ]


def _aware(moment: datetime) -> datetime:
    """A stored moment as an aware UTC datetime (stores hand back naive UTC or aware)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _naive(moment: datetime) -> datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).replace(tzinfo=None)


def plan_stamp(sources: Sequence[Any], fallback: str) -> str:
    """The stamp an employee's plan carries: changes whenever a source's definition changes."""
    from regelwerk.compiler import content_hash

    return content_hash(sorted(f"{s.source_id}@{getattr(s, 'version', '') or fallback}" for s in sources))


@dataclass
class _Target:
    sa_engine: Any
    workflow_engine: Any = None
    starter: Starter | None = None
    owned: bool = False


def resolve_target(target: Any, starter: Starter | None = None) -> _Target:
    """Accept a URL, a SQLAlchemy engine, a store (with ``sa_engine``/``engine``) or a workflow engine."""
    import sqlalchemy as sa

    if isinstance(target, str):
        from regelwerk.store.sql import create_sa_engine

        # the store's connection settings: SQLite's busy timeout and WAL, PostgreSQL's custom plans
        return _Target(create_sa_engine(target), None, starter, owned=True)
    if isinstance(target, sa.engine.Engine):
        return _Target(target, None, starter)
    workflow_engine = target if hasattr(target, "fire_due_timers") else None
    store = getattr(target, "store", target)
    for attr in ("engine", "sa_engine"):
        candidate = getattr(store, attr, None)
        if isinstance(candidate, sa.engine.Engine):
            if starter is None and workflow_engine is not None:
                from regelwerk.scheduling.workflows import engine_starter

                starter = engine_starter(workflow_engine)
            return _Target(candidate, workflow_engine, starter)
    if workflow_engine is not None:  # a store without SQL (memory): timers and tick tasks, no planned items
        return _Target(None, workflow_engine, starter)
    raise TypeError(f"cannot tick {type(target).__name__}: pass a database URL, a SQLAlchemy engine, "
                    "a SQL store or a workflow Engine on a SQL store")


def _take_write_lock(conn: Any) -> None:
    """SQLite: a no-op UPDATE of the items, which takes the database's write lock for the transaction (a batch holds
    it from its first statement). Built once and run at the driver (``regelwerk.store.single``): a batch of the plan
    and of the activation phases each runs one."""
    if conn.dialect.name == "sqlite":
        from regelwerk.store.single import execute

        if not _WRITE_LOCK:
            from regelwerk.scheduling.tables import scheduled_items as items
            from sqlalchemy import update

            _WRITE_LOCK.append(update(items).where(items.c.id == -1).values(id=items.c.id))
        execute(conn, _WRITE_LOCK[0], {})


#: the statement of :func:`_take_write_lock` (built on first use: the items' table module loads with the tick)
_WRITE_LOCK: list[Any] = []


def tick(target: Any, compiled: Any, now: datetime, *, progress: Progress | None = None, batch_size: int = 500,
         actor: Actor = SYSTEM, starter: Starter | None = None, collect_keys: bool = False,
         collect_activated: bool = False) -> TickSummary:
    """Generate what the schedules call for, activate what is due and fire due workflow timers.

    ``target``: a database URL, a SQLAlchemy engine, a SQL store, or the workflow ``Engine``
    (then due items start their workflows through it and its timers are fired). Idempotent
    and safe to run in several processes at once (see the module docstring). ``collect_keys``: the
    created and activated keys in the summary; ``collect_activated``: the activated items' type and payload.
    """
    from regelwerk.scheduling.sources import item_sources, tick_tasks

    started = _time.perf_counter()
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    summary = TickSummary(now=now)
    resolved = resolve_target(target, starter)
    try:
        sources = item_sources(compiled.objects)
        if resolved.sa_engine is not None:
            if sources:
                _plan_phase(resolved, sources, plan_stamp(sources, compiled.version), now, batch_size,
                            summary, progress, actor, collect_keys, collect_activated)
            _activate_phase(resolved, now, batch_size, summary, progress, actor, collect_keys, collect_activated)
        if resolved.workflow_engine is not None:
            fired = resolved.workflow_engine.fire_due_timers(now)
            summary.timers_fired = fired if isinstance(fired, int) else len(list(fired or ()))
            for task in tick_tasks(compiled.objects):
                summary.tasks[task.task_id] = _run_task(resolved.workflow_engine, task, compiled, now)
    finally:
        if resolved.owned:
            resolved.sa_engine.dispose()
    summary.seconds = _time.perf_counter() - started
    return summary


def _run_task(workflow_engine: Any, task: Any, compiled: Any, now: datetime) -> dict[str, Any]:
    """One tick task; a task that raises is recorded as an incident and does not stop the tick."""

    try:
        return dict(limited(getattr(workflow_engine, "plugin_time_limit", None), f"tick task {task.task_id!r}",
                            task.run_tick, workflow_engine, compiled, now))
    except BaseException as exc:  # plugin code: isolated as an incident, the tick goes on (a refusal in a task too)
        if not is_plugin_fault(exc) or (isinstance(exc, RegelwerkError) and exc.stops_work):
            raise  # the tick's own transaction or run is unusable (an aborted step, a lost simulation lease)
        error = PluginError.wrap(f"tick task {task.task_id!r}", exc, "", f"tick:{task.task_id}")
        record = getattr(workflow_engine, "record_incident", None)
        if record is None:
            raise error from exc
        record(error, now)
        return {"incident": error.error_type}


_PLAN_STATEMENTS: dict[bool, dict[str, Any]] = {}
#: ``INSERT .. ON CONFLICT DO NOTHING`` of new items, by dialect and conflict target
_INSERT_ITEMS: dict[tuple[str, tuple[str, ...]], Any] = {}


@cache
def _copy_items() -> Any:
    """The plain ``INSERT`` of items that ``bulk.copy_new`` writes with ``COPY`` (built once: bulk keeps its plan
    by the statement)."""
    from regelwerk.scheduling.tables import scheduled_items

    return scheduled_items.insert()


def _plan_statements(pg: bool) -> dict[str, Any]:
    """The plan phase's statements, built once per dialect family (version, moment, last id and batch size as
    bound parameters): the tick runs them every day."""
    found = _PLAN_STATEMENTS.get(pg)
    if found is not None:
        return found
    from regelwerk.scheduling.employees import employee_columns
    from regelwerk.scheduling.tables import employees as emp
    from regelwerk.scheduling.tables import scheduled_items as items
    from regelwerk.store.sql import one_of
    from sqlalchemy import String, and_, bindparam, case, func, or_, select, type_coerce, union_all, update

    open_status = case((and_(items.c.status.in_(("planned", "cancelled")), items.c.due_at > bindparam("p_now")),
                        items.c.status), else_=None)
    stale = or_(emp.c.plan_version.is_(None), emp.c.plan_version != bindparam("p_version"),
                emp.c.next_due <= bindparam("p_now"))
    # SQLite keeps time stamps as text: the guard compares updated_at as read, without parsing and formatting a
    # hundred thousand of them in Python (PostgreSQL's driver converts them natively)
    raw = () if pg else ("updated_at",)
    seen = (emp.c.updated_at == bindparam("b_seen")) if pg else (
        type_coerce(emp.c.updated_at, String) == type_coerce(bindparam("b_seen"), String))
    walk = (select(*employee_columns(*raw)).where(stale, emp.c.id > bindparam("p_last")).order_by(emp.c.id)
            .limit(bindparam("p_limit")))
    found = {"count": select(func.count()).select_from(emp).where(stale)}
    if pg:
        found["batch"] = found["walk"] = walk.with_for_update(skip_locked=True, of=emp)
    else:
        # SQLite: the stale plans as four disjoint ranges of the index (plan_version, next_due, id): no version, an
        # older or a newer one, or this one with next_due reached; a batch is the first of them after the last
        # batch's id (the IN list is sorted: no sort of the rows). Most days few are stale, and the walk of every
        # employee in id order that the OR above needs read the whole table's index twice a day. Each batch reads
        # every stale id after the last one, though: a tick with many stale plans walks in id order instead (the
        # same rows), and ``few`` counts them up to where that pays
        stale_ids = union_all(*(select(emp.c.id).where(arm, emp.c.id > bindparam("p_last")) for arm in (
            emp.c.plan_version.is_(None), emp.c.plan_version < bindparam("p_version"),
            emp.c.plan_version > bindparam("p_version"),
            and_(emp.c.plan_version == bindparam("p_version"), emp.c.next_due <= bindparam("p_now")))))
        found["batch"] = (select(*employee_columns(*raw)).where(emp.c.id.in_(stale_ids)).order_by(emp.c.id)
                          .limit(bindparam("p_limit")))
        found["walk"] = walk
        found["count"] = select(func.count()).select_from(stale_ids.subquery())
        found["few"] = select(func.count()).select_from(stale_ids.limit(bindparam("p_limit")).subquery())
    found.update({
        "stamp": (update(emp).where(emp.c.id == bindparam("b_id"), seen)
                  .values(plan_version=bindparam("b_version"), next_due=bindparam("b_next"))),
        # every item of the (fully planned) employees: its key, and its status when it is still to come (planned
        # or cancelled, due after now: what the plan may cancel or reinstate). The database compares the times, so
        # the thousands of rows of a batch are not parsed into datetimes
        "items": select(items.c.key, open_status, items.c.source, items.c.subject
                        ).where(one_of(items.c.subject, "p_subjects", pg, sole=True)),
        # the planned items that are stored already (by their unique key), with the same status
        "desired": select(items.c.key, open_status).where(one_of(items.c.key, "p_keys", pg, sole=True)),
        "open": select(items.c.key).where(one_of(items.c.key, "p_keys", pg),
                                          items.c.status.in_(("planned", "ready", "active"))),
    })
    if pg:
        # a batch's stamps as one statement over three arrays (unnest): PostgreSQL runs one UPDATE for the batch
        # instead of one per employee (48,507 a year at 10,000 employees); the same guard on updated_at
        from sqlalchemy.dialects.postgresql import ARRAY

        given = func.unnest(bindparam("p_ids", type_=ARRAY(String)),
                            bindparam("p_seen", type_=ARRAY(emp.c.updated_at.type)),
                            bindparam("p_next", type_=ARRAY(emp.c.next_due.type))
                            ).table_valued("id", "seen", "next_due").render_derived(name="given")
        found["stamps"] = (update(emp).where(emp.c.id == given.c.id, emp.c.updated_at == given.c.seen)
                           .values(plan_version=bindparam("p_version"), next_due=given.c.next_due))
    _PLAN_STATEMENTS[pg] = found
    return found


#: what a batch adds to a tick's summary (undone when the batch rolls back)
_COUNTED = ("employees_planned", "created", "created_keys", "cancelled", "closed", "reinstated", "activated",
            "activated_keys", "skipped", "activated_items")


#: a failed batch of at most this many members is run again one member at a time, a larger one in halves
_SINGLES = 8


class _Faults:
    """Plugin failures in a phase's batches, isolated (``_plan_phase``, ``_activate_phase``).

    A batch that fails with a plugin's error or a refusal raised on a member's behalf (a ``PluginError``; a
    payload that does not fit its workflow; an action that is not registered or passes on ``UnknownInstance``)
    rolled back. It is then run again in halves, and a half that fails in halves again down to ``_SINGLES``
    members, then one by one (``k`` failing members of a batch of ``B`` cost about ``k log B`` transactions,
    not ``B``); a member that fails on its own is skipped for this tick and recorded as an incident (``event``:
    ``tick:plan`` with the employee, or ``tick:activate`` with the instance its item would start), so one bug
    stops neither the others nor the tick's timers and tasks. The tick that later runs it without failing
    resolves its incident in that batch's unit of work. Without a workflow engine (a tick of the schedules
    alone) there is nowhere to record an incident: the error is raised, as before.

    A member's incident is retried with backoff up to a declared limit, as a failing timer is: attempt ``n``
    waits the engine's ``RetryPolicy`` delay (for an item's start, its workflow's declared ``retry`` over it),
    and until then every tick passes the member over (:meth:`waiting`: counted in the summary, neither run nor
    resolved); after the last attempt it waits for a person (``regelwerk incidents retry`` makes it due now).
    """

    def __init__(self, target: _Target, event: str, now: datetime) -> None:
        self.engine = target.workflow_engine
        self.event = event
        self.now = now
        #: the members (employee ids, item keys) of the batch being run, and the cursor before it
        self.batch: list[str] = []
        self.start = ""
        #: the sizes of the next batches while a failed batch is run again in parts (front first)
        self.parts: list[int] = []
        self._many = False  # more open incidents of the phase than a batch has members: read them per member
        self._mark: dict[str, Any] = {}
        #: the workflow of each item of the activate phase's batch (its declared retry limits)
        self.workflows: dict[str, str] = {}
        #: how many rows the batch read (its members and those passed over); the members passed over this tick
        self.read = 0
        self.passed: set[str] = set()
        # SQLite: a batch holds the database's write lock from its first statement (``_take_write_lock``), so an
        # open incident of the phase that the batch's read did not find cannot appear before the batch ends
        self._sole_writer = target.sa_engine is not None and target.sa_engine.dialect.name == "sqlite"
        self._none_open = False  # the batch's transaction read the phase's open incidents and found none

    def mark(self, summary: TickSummary) -> None:
        """Before a batch: what the summary says, to undo a batch that rolls back (a list's length, a counter's
        copy, a number)."""
        self._mark = {}
        self._none_open = False
        for name in _COUNTED:
            value = getattr(summary, name)
            self._mark[name] = len(value) if isinstance(value, list) else value.copy() if isinstance(
                value, Counter) else value

    def restore(self, summary: TickSummary) -> None:
        """After a batch rolled back: the summary as before it."""
        for name, kept in self._mark.items():
            current = getattr(summary, name)
            if isinstance(current, list):
                del current[kept:]
            else:
                setattr(summary, name, kept)

    def isolate(self, exc: BaseException) -> bool:
        """Whether ``exc`` of the batch just rolled back is a member's own failure (else: raise it)."""
        if self.engine is None or not self.batch or not hasattr(self.engine, "store"):
            return False
        # a plugin's error, or one of regelwerk's refusals raised on the member's behalf (a payload that does not
        # fit, an action that refuses: UnknownInstance, TransitionNotAllowed, PermissionDenied, ConflictError):
        # the member's own; only what stops the whole run (an aborted step, a lost lease) is not
        return isinstance(exc, RegelwerkError) and not exc.stops_work

    def after_failure(self, exc: BaseException, summary: TickSummary) -> str:
        """Run the failed batch again in two halves; a lone member that failed is skipped with its incident. The
        cursor to go on from."""
        from regelwerk.workflows.incidents import record_with_backoff

        if self.parts:
            self.parts.pop(0)
        if len(self.batch) > 1:
            # the parts are sizes of reads, and a read holds the members passed over (their incident waits) too
            size = max(self.read, len(self.batch))
            if size > _SINGLES:
                half = (size + 1) // 2
                self.parts[0:0] = [half, size - half]
            else:  # a few left: one by one (halving on would cost more where most of them fail)
                self.parts[0:0] = [1] * size
            return self.start
        member = self.batch[0]
        subject, data = self.subject(member)
        # the member's own incident (its subject and phase), naming what the plugin code raised
        original = exc.__cause__ if isinstance(exc, PluginError) and exc.__cause__ is not None else exc
        error = PluginError(f"{self.event.removeprefix('tick:')} of {member!r}", original, subject, self.event)
        error.__cause__ = exc
        record_with_backoff(self.engine.store, error, self.now, self.policy(member), data=data)
        summary.incidents += 1
        return member

    def policy(self, member: str) -> RetryPolicy:
        """The retry policy of a member's incident: the engine's, with an item's workflow's declared ``retry``
        over it."""
        from regelwerk.workflows.timers import RetryPolicy

        base = getattr(self.engine, "retry", None)
        base = base if isinstance(base, RetryPolicy) else RetryPolicy()
        workflow = self.workflows.get(member)
        if not workflow:
            return base
        runtime = getattr(self.engine, "runtime", self.engine)
        try:
            return base.declared(runtime._current(workflow).model.retry)
        except (RegelwerkError, AttributeError):  # not a workflow of this engine: the start failed for that
            return base

    def waiting(self, unit: Any, members: Sequence[str]) -> set[str]:
        """Of the members just read (in the batch's unit of work), those whose open incident of this phase waits:
        its retry is not due yet (``next_retry_at`` after now), or its attempts are used up (none: a person's)."""
        tx = unit.store_tx
        if self.engine is None or tx is None or not members:
            return set()
        found = {i.instance_id: i for i in self._open(tx, members)}
        now = self.now
        waits = set()
        for member in members:
            incident = found.get(self.subject(member)[0])
            if incident is None:
                continue
            if incident.next_retry_at is not None:
                if _aware(incident.next_retry_at) > now:
                    waits.add(member)
            elif incident.attempts >= self.policy(member).attempts:
                # used up: a person's. An incident without a retry time and with attempts left (recorded before
                # members were retried with backoff, or the limit was raised since) is due
                waits.add(member)
        self.passed.update(waits)
        return waits

    def _open(self, tx: Any, members: Sequence[str]) -> list[Any]:
        """The open incidents of this phase of ``members`` (read in ``tx``): by event while the phase has few, by
        the members once it found more than a batch has members."""
        subjects = {self.subject(member)[0] for member in members}
        if self._many:
            return [i for i in tx.incidents("open", event=self.event, instance_ids=subjects) if i.id is not None]
        found = tx.incidents("open", event=self.event)
        self._none_open = not found
        self._many = len(found) > len(members)
        return [i for i in found if i.instance_id in subjects and i.id is not None]

    def size(self, batch_size: int) -> int:
        """The next batch's size: the next part of a failed batch while there are any, else ``batch_size``."""
        return self.parts[0] if self.parts else batch_size

    def succeeded(self, batch_size: int) -> int:
        """A batch committed (a part of a failed batch did not fail again); the next size."""
        if self.parts:
            self.parts.pop(0)
        return self.size(batch_size)

    def subject(self, member: str) -> tuple[str, dict[str, object]]:
        """The incident's instance id and data for a member."""
        if self.event == "tick:activate":
            from regelwerk.scheduling.workflows import instance_id_for

            return instance_id_for(member), {"item": member}
        return member, {"employee": member}

    def resolve_done(self, unit: Any) -> None:
        """In a batch's unit of work: resolve the open incidents of its members (they ran without failing). Read
        for the batch's members in its own transaction, so an incident another tick recorded meanwhile is found
        too (and every open one of a member, should there be more than one). On SQLite, where nobody else can write
        while the batch holds the write lock, the batch's first read (:meth:`waiting`) that found none answers."""
        tx = unit.store_tx
        if self.engine is None or tx is None or not self.batch:
            return
        if self._none_open and self._sole_writer:
            return  # read in this transaction already (``waiting``), none; nobody else can have written one since
        # the phase's open incidents: one read that most batches find empty; once it found more than a batch has
        # members (many failing), the batch's members' only (by instance, in chunks)
        found = self._open(tx, self.batch)
        if not found:
            return
        from regelwerk.workflows.incidents import resolve_open

        for incident in found:
            assert incident.id is not None
            resolve_open(tx, incident.id, incident.instance_id, SYSTEM.id, self.now, "ran by the tick without failing")


def _plan_rows(unit: Any, rows: Sequence[Any], target: _Target, sources: Sequence[Any], version: str,
               now: datetime, statements: Mapping[str, Any], summary: TickSummary, actor: Actor,
               collect_keys: bool, collect_activated: bool) -> None:
    """Plan one batch of stale employees (``rows``) in the batch's unit of work: their items written (the due ones
    in their final status, workflows started), what their plans no longer call for cancelled or closed, and their
    plan stamps."""
    from regelwerk.scheduling.directory import StoreDirectory
    from regelwerk.scheduling.employees import dialect_insert, facts_of_rows
    from regelwerk.scheduling.sources import plan_with
    from regelwerk.scheduling.tables import scheduled_items as items
    from regelwerk.tenancy.rls import conflict_columns

    conn = unit.connection
    now_naive = _naive(now)
    desired: dict[str, Any] = {}  # key -> planned item; its row is built only when it is new
    stamps = []
    people = facts_of_rows(rows)
    next_due: list[datetime | None] = [None] * len(rows)
    directory = StoreDirectory(conn)
    directory.know(people)
    closes: list[str] = []
    # an employee planned before with the same facts and definitions, again because its next_due came:
    # what appeared before that next_due was planned then (sources that can, build only what is new)
    since = [row.next_due.replace(tzinfo=UTC) if row.plan_version == version and row.next_due is not None
             else None for row in rows]
    partial: set[tuple[str, str]] = set()  # (subject, source) planned partially: nothing to cancel there
    # as UTC: the items' moments are UTC, and comparing datetimes of different zones asks the zone each time
    now_utc = now.astimezone(UTC)
    planned_fully: set[str] = set()  # employees with a full plan of a source: what to cancel is looked up
    for source in sources:
        try:
            plans = limited(getattr(target.workflow_engine, "plugin_time_limit", None),
                            f"item source {source.source_id!r}", plan_with, source, people, now, directory,
                            appeared_only=True, since=since)
        except RegelwerkError:
            raise
        except BaseException as exc:  # plugin code (an item source), typed at the boundary
            if not is_plugin_fault(exc):
                raise
            raise PluginError.wrap(f"item source {source.source_id!r}", exc) from exc
        for i, plan in enumerate(plans):
            if plan.partial:
                partial.add((rows[i].id, source.source_id))
            else:
                planned_fully.add(rows[i].id)
            closes.extend(plan.closes)
            for item in plan.items:
                if item.appears_at is not None and item.appears_at > now_utc:
                    # not yet: the employee is planned again when it appears
                    if next_due[i] is None or item.appears_at < next_due[i]:  # type: ignore[operator]
                        next_due[i] = item.appears_at
                    continue
                desired[item.key] = item
            due = plan.next_due
            current = next_due[i]
            if due is not None and (current is None or due < current):
                next_due[i] = due
    naive: dict[datetime, datetime] = {}  # most employees share a few next_dues
    for row, due in zip(rows, next_due, strict=True):
        stamp = None if due is None else naive.get(due) or naive.setdefault(due, _naive(due))
        stamps.append({"b_id": row.id, "b_seen": row.updated_at, "b_version": version, "b_next": stamp})
    # what the plans call for that is stored already (and whether it is cancelled, to reinstate it)
    wanted = list(desired)
    stored: dict[str, str | None] = {}
    for start in range(0, len(wanted), 500):
        stored.update(conn.execute(statements["desired"], {"p_keys": wanted[start:start + 500],
                                                           "p_now": now_naive}).all())
    reinstate = [k for k, s in stored.items() if s == "cancelled"]
    present = stored.keys()
    # what a full plan no longer calls for: the employee's planned items not in it (a partial plan left out
    # what appeared before its since, so nothing of its source is cancelled). Filter on the subject only
    # (its index), status and due date by CASE, so that SQLite does not pick the (status, due_at) index and
    # scan every planned item of the whole store per batch
    full = sorted(planned_fully)
    cancel: list[str] = []
    if full:
        found = conn.execute(statements["items"], {"p_subjects": full, "p_now": now_naive}).all()
        cancel = [k for k, s, source_id, subject in found if s == "planned" and k not in desired
                  and (subject, source_id) not in partial]
    stamp_at = now.astimezone(UTC).replace(tzinfo=None)
    values = [item.row(now, stamp_at) for key, item in desired.items() if key not in present]  # only new
    if values:
        # what is due already goes in in its final status (active, ready, started, skipped): one INSERT
        # per item instead of an INSERT, a read-back, an UPDATE and an audit row (a status it is born
        # with is no change: rw_scheduled_events audits the changes after creation)
        _activate_new(conn, values, now_naive, target.starter is not None, summary, collect_keys,
                      collect_activated, desired)
        starts = [v for v in values if v["status"] == "started"]
        # tenant-bound connections (regelwerk.tenancy) key items by (tenant, key)
        conflict = tuple(conflict_columns(conn, ["key"]))
        stmt = _INSERT_ITEMS.get((conn.dialect.name, conflict))
        if stmt is None:  # built once: a statement's compiled form is cached by the statement
            stmt = _INSERT_ITEMS[conn.dialect.name, conflict] = dialect_insert(conn, items).on_conflict_do_nothing(
                index_elements=list(conflict))
        inserted = _insert_items(conn, stmt, values, summary, collect_keys)
        if inserted is not None:  # never for the locked employees' own keys; kept exact anyway
            starts = [v for v in starts if v["key"] in inserted]
        if starts:
            _start_new(target, unit, starts, now)
    for keys, status in ((cancel, "cancelled"), (reinstate, "planned")):
        if keys:
            _set_status(conn, keys, status, now_naive, actor, "cancel" if status == "cancelled" else
                        "reinstate")
    if closes:
        open_keys = [k for (k,) in conn.execute(statements["open"], {"p_keys": closes})]
        if open_keys:
            _set_status(conn, open_keys, "closed", now_naive, actor, "close")
        summary.closed += len(open_keys)
    summary.cancelled += len(cancel)
    summary.reinstated += len(reinstate)
    _stamp(conn, statements, version, stamps)


def _insert_items(conn: Any, stmt: Any, values: list[dict[str, Any]], summary: TickSummary,
                  collect_keys: bool) -> set[str] | None:
    """Insert a batch's new rows (``stmt``: the ``INSERT .. ON CONFLICT DO NOTHING``) and count them in the summary
    (and their keys with ``collect_keys``); the keys inserted when some were not (another writer had inserted
    them), else None.

    The batch holds the database's write lock (SQLite) or its employees' rows (PostgreSQL: ``FOR UPDATE``) and
    read their keys: as a rule all are new. Not by construction, though: two employees' plans may call for one key,
    another writer (a digest, a host through the store's API) may use the table, and the read saw only what was
    committed before it (READ COMMITTED). On PostgreSQL the rows therefore go in with ``COPY`` (about a third of
    the pipelined ``INSERT``'s time: 65,039 rows a year at 10,000 employees took 2.9 s) inside a savepoint; one
    that meets a key already there rolls back to it, and the rows go in again with ``ON CONFLICT DO NOTHING ..
    RETURNING``, which counts exactly what was inserted. Where COPY does not apply (SQLite, row-level security,
    a tenant-bound connection) the statement runs as before. The rows go in in one order either way (by item type,
    or as given with ``collect_keys``): the same ids."""
    from regelwerk.scheduling.tables import scheduled_items as items
    from regelwerk.store.bulk import copy_new, executemany
    from sqlalchemy.exc import IntegrityError

    by_type: dict[str, list[dict[str, Any]]] = {}
    for value in values:
        by_type.setdefault(value["item_type"], []).append(value)
    ordered = values if collect_keys else [row for _, group in sorted(by_type.items()) for row in group]
    exact = collect_keys
    try:
        copied = copy_new(conn, _copy_items(), ordered) if len(ordered) > 1 else None
    except IntegrityError:  # a key someone else wrote: nothing of the COPY stays; counted exactly with RETURNING
        copied, exact = None, True
    if copied is not None:
        summary.created.update({item_type: len(group) for item_type, group in by_type.items()})
        if collect_keys:
            summary.created_keys.extend(row["key"] for row in ordered)
        return None
    if exact:
        # INSERT .. RETURNING (PostgreSQL batches it into multi-row statements: insertmanyvalues)
        created = conn.execute(stmt.returning(items.c.key, items.c.item_type), ordered).all()
        summary.created.update(t for _, t in created)
        if collect_keys:
            summary.created_keys.extend(k for k, _ in created)
        return {k for k, _ in created} if len(created) < len(values) else None
    # plain executemany (no RETURNING) is faster; the drivers sum the rowcount per type
    for item_type, group in sorted(by_type.items()):
        written = executemany(conn, stmt, group).rowcount
        # psycopg's pipelined executemany does not count (-1): all are new, as said above
        summary.created[item_type] += written if written >= 0 else len(group)
    return None


def _stamp(conn: Any, statements: Mapping[str, Any], version: str, stamps: Sequence[Mapping[str, Any]]) -> None:
    """Write a batch's plan stamps (``b_id``, ``b_seen``, ``b_version`` = ``version``, ``b_next``): the version and
    next_due of each employee whose ``updated_at`` is still ``b_seen`` (one changed meanwhile stays stale).
    PostgreSQL: one statement for the batch (``stamps``, over arrays); else one ``executemany``."""
    from regelwerk.store.bulk import executemany

    if "stamps" in statements and len(stamps) > 1:
        conn.execute(statements["stamps"], {"p_version": version, "p_ids": [r["b_id"] for r in stamps],
                                            "p_seen": [r["b_seen"] for r in stamps],
                                            "p_next": [r["b_next"] for r in stamps]})
    else:
        executemany(conn, statements["stamp"], stamps)


def _plan_phase(target: _Target, sources: Sequence[Any], version: str, now: datetime, batch_size: int,
                summary: TickSummary, progress: Progress | None, actor: Actor, collect_keys: bool,
                collect_activated: bool = False) -> None:
    from regelwerk.scheduling.workflows import unit_of_work

    sa_engine = target.sa_engine
    now_naive = _naive(now)
    pg = sa_engine.dialect.name == "postgresql"
    statements = _plan_statements(pg)
    stale_params = {"p_version": version, "p_now": now_naive, "p_last": ""}
    # SQLite: at most this many stale plans are read as ranges of their index, more in a walk in id order
    # (``_plan_statements``): a batch of ranges reads every stale id after the last batch's
    many = 4 * batch_size
    # PostgreSQL without progress asks nothing first: the first batch's read finds the stale plans or none. Most
    # days some are stale, and a probe for whether any is (it stopped at the first) was a read of its own ahead of
    # that one: 365 a year at 10,000 employees, 0.30 s, for the few days that find none
    total = 1
    if progress is not None or "few" in statements:
        with sa_engine.connect() as conn:
            if progress is not None:
                total = int(conn.execute(statements["count"], stale_params).scalar_one())
            else:  # SQLite: how many, up to where the walk pays (the count is for progress alone)
                total = int(conn.execute(statements["few"], {**stale_params, "p_limit": many + 1}).scalar_one())
        if not total:
            return
    read = statements["walk"] if total > many else statements["batch"]
    done = 0
    last_id = ""
    faults = _Faults(target, "tick:plan", now)
    size = batch_size
    while True:
        faults.batch, faults.start = [], last_id
        faults.mark(summary)
        try:
            with unit_of_work(sa_engine, target.workflow_engine) as unit:
                conn = unit.connection
                _take_write_lock(conn)
                rows = conn.execute(read, {**stale_params, "p_last": last_id,
                                                          "p_limit": size}).all()
                if not rows:
                    break
                last_id = rows[-1].id
                # a short batch was the last: the query walked every employee after the previous batch (not asking
                # again saves a scan of the table a day; what turns stale meanwhile is the next tick's)
                more = len(rows) >= size
                # an employee whose incident waits (backoff, or a person) stays stale and unplanned
                faults.read = len(rows)
                waiting = faults.waiting(unit, [row.id for row in rows])
                if waiting:
                    rows = [row for row in rows if row.id not in waiting]
                faults.batch = [row.id for row in rows]
                if rows:
                    _plan_rows(unit, rows, target, sources, version, now, statements, summary, actor, collect_keys,
                               collect_activated)
                faults.resolve_done(unit)
                done += len(rows) + len(waiting)
                summary.employees_planned += len(rows)
        except RegelwerkError as exc:
            # plugin code failed for someone in the batch (a source's plan, a start's action, a payload that does
            # not fit its workflow): the batch rolled back; it is planned again in halves, and the one that fails
            # on its own is skipped (an incident; planned again by the next tick), so the others are planned and
            # the tick goes on to its timers and tasks
            if not faults.isolate(exc):
                raise
            faults.restore(summary)
            last_id = faults.after_failure(exc, summary)
            size, more = faults.size(batch_size), True
            continue
        size = faults.succeeded(batch_size)
        if progress is not None:
            progress("plan", done, total)
        if not more:
            break
    summary.waiting += len(faults.passed)


def _final_status(row: Mapping[str, Any], now_naive: datetime, latest: Mapping[str, datetime],
                  can_start: bool) -> tuple[str, str]:
    """``(status, audit event)`` of a due item: skipped (caught up), active, ready or started."""
    late = row["due_at"] < now_naive - timedelta(seconds=row["grace_seconds"])
    if late and (row["catch_up"] == "skip" or (
            row["catch_up"] == "once" and row["due_at"] < latest.get(row["series"], row["due_at"]))):
        return "skipped", "skip"
    if row["start_mode"] == "none" or not row["workflow"]:
        return "active", "activate"
    if row["start_mode"] == "manual" or not can_start:
        return "ready", "ready"
    return "started", "start"


def _latest_of_late_series(conn: Any, rows: Sequence[Mapping[str, Any]], now_naive: datetime,
                           extra: Sequence[Mapping[str, Any]] = ()) -> dict[str, datetime]:
    """For ``catch_up: once``: the latest due moment (up to now) of every series with a late item in ``rows``,
    over the stored items and ``extra`` (items of the same transaction not yet stored)."""
    from regelwerk.scheduling.tables import scheduled_items as items
    from sqlalchemy import func, select

    late_once = {r["series"] for r in rows if r["catch_up"] == "once"
                 and r["due_at"] < now_naive - timedelta(seconds=r["grace_seconds"])}
    if not late_once:
        return {}
    found = conn.execute(select(items.c.series, func.max(items.c.due_at))
                         .where(items.c.series.in_(sorted(late_once)), items.c.due_at <= now_naive)
                         .group_by(items.c.series)).all()
    latest: dict[str, datetime] = {s: d for s, d in found}
    for r in extra:
        series = r["series"]
        if series in late_once and r["due_at"] <= now_naive and (series not in latest or r["due_at"] > latest[series]):
            latest[series] = r["due_at"]
    return latest


def _activate_new(conn: Any, values: list[dict[str, Any]], now_naive: datetime, can_start: bool,
                  summary: TickSummary, collect_keys: bool, collect_activated: bool,
                  planned: Mapping[str, Any] | None = None) -> None:
    """Give the new rows that are due their final status (what the activate phase would give them in the same
    tick); a row to start gets ``started`` and its instance id here, its workflow is started by
    :func:`_start_new` once the rows are written."""
    from regelwerk.scheduling.workflows import instance_id_for

    due = [v for v in values if v["due_at"] <= now_naive]
    if not due:
        return
    latest = _latest_of_late_series(conn, due, now_naive, due)
    for row in due:
        status, _ = _final_status(row, now_naive, latest, can_start)
        row["status"] = status
        if status == "started":
            row["instance_id"] = instance_id_for(str(row["key"]))
        if status == "skipped":
            summary.skipped += 1
            continue
        summary.activated[status] += 1
        if collect_keys:
            summary.activated_keys.append(row["key"])
        if collect_activated:
            # the planned item's payload as planned (``planned``: by key), not its JSON parsed back
            item = planned.get(row["key"]) if planned is not None else None
            summary.activated_items[activated_label(row["item_type"], item.payload if item is not None
                                                    else row["payload"])] += 1


def activated_label(item_type: str, payload: str | Mapping[str, Any] | None) -> tuple[str, str, str]:
    """``(item_type, label, due_date)`` of an item's payload (JSON text or the mapping): the payload's ``label``
    as text ("" when it has none) and its ``due_date``. Whether the label names the item is the reader's choice
    (``regelwerk simulate`` uses it for the item types a simulation part lists in ``labelled``): for a plan of a
    ``Schedule`` the payload is the workflow's data, whose ``label`` may mean anything."""
    try:
        data = payload if isinstance(payload, Mapping) else json.loads(payload or "{}")
    except ValueError:
        data = {}
    if not isinstance(data, Mapping):
        data = {}
    label = str(data.get("label") or "")
    return item_type, label, str(data.get("due_date") or "")


def _start_new(target: _Target, unit: Any, starts: list[dict[str, Any]], now: datetime) -> None:
    """Start the workflows of new rows written as ``started`` (in the batch's transaction, as the activate phase
    does); a starter that names another instance than the deterministic one has its id written back."""
    from regelwerk.scheduling.tables import scheduled_items as items
    from sqlalchemy import bindparam, update

    starter = target.starter
    assert starter is not None
    prepare = getattr(starter, "prepare", None)
    if prepare is not None:  # a batch of starts: one existence query, rows written with executemany
        prepare(unit, starts)
    moved: dict[str, str] = {}
    for row in starts:
        instance = starter(unit, row, now)
        if instance != row["instance_id"]:
            moved[str(row["key"])] = instance
    finish = getattr(starter, "finish", None)
    if finish is not None:
        finish(unit)
    if moved:
        unit.connection.execute(update(items).where(items.c.key == bindparam("b_key"))
                                .values(instance_id=bindparam("b_instance")),
                                [{"b_key": k, "b_instance": v} for k, v in moved.items()])


def _set_status(conn: Any, keys: Iterable[str], status: str, now_naive: datetime, actor: Actor, event: str,
                detail: Mapping[str, Any] | None = None) -> None:
    from regelwerk.scheduling.tables import scheduled_events as events
    from regelwerk.scheduling.tables import scheduled_items as items
    from sqlalchemy import update

    keys = list(keys)
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        conn.execute(update(items).where(items.c.key.in_(chunk)).values(status=status, updated_at=now_naive))
    text = json.dumps(dict(detail or {}), sort_keys=True, default=str)
    conn.execute(events.insert(), [{"item_key": k, "event": event, "actor": actor.id, "at": now_naive,
                                    "detail": text} for k in keys])


def _execute_rows(conn: Any, statement: Any, rows: list[dict[str, Any]]) -> Any:
    """``conn.execute(statement, rows)``."""
    return conn.execute(statement, rows)


#: the activation phase's statements per dialect family (key: PostgreSQL), built once
_ACTIVATE_STATEMENTS: dict[bool, dict[str, Any]] = {}


def _activate_statements(pg: bool) -> dict[str, Any]:
    """The activation phase's statements, the moment, batch size and cursor as bound parameters (built once: one
    built per call costs SQLAlchemy its cache key on every call, and cannot be run at the driver by
    ``regelwerk.store.single``): ``count`` of the due items, a ``batch`` of them (``batch_after``: after the cursor's
    ``(due_at, id)``; PostgreSQL: the rows locked, those another tick holds skipped), their ``change`` and the
    ``audit`` rows."""
    found = _ACTIVATE_STATEMENTS.get(pg)
    if found is not None:
        return found
    from regelwerk.scheduling.tables import scheduled_events as events
    from regelwerk.scheduling.tables import scheduled_items as items
    from sqlalchemy import and_, bindparam, func, or_, select, update

    due = (items.c.status == "planned") & (items.c.due_at <= bindparam("p_now"))
    batch = select(items).where(due).order_by(items.c.due_at, items.c.id).limit(bindparam("p_limit"))
    after = batch.where(or_(items.c.due_at > bindparam("p_due"),
                            and_(items.c.due_at == bindparam("p_due"), items.c.id > bindparam("p_id"))))
    found = {
        "count": select(func.count()).select_from(items).where(due),
        "batch": batch.with_for_update(skip_locked=True) if pg else batch,
        "batch_after": after.with_for_update(skip_locked=True) if pg else after,
        "change": (update(items).where(items.c.key == bindparam("b_key"), items.c.status == "planned")
                   .values(status=bindparam("b_status"), instance_id=bindparam("b_instance"),
                           updated_at=bindparam("b_at"))),
        "audit": events.insert(),
    }
    _ACTIVATE_STATEMENTS[pg] = found
    return found


def _activate_phase(target: _Target, now: datetime, batch_size: int, summary: TickSummary,
                    progress: Progress | None, actor: Actor, collect_keys: bool, collect_activated: bool = False
                    ) -> None:
    from regelwerk.scheduling.workflows import unit_of_work
    from regelwerk.store.bulk import executemany
    from regelwerk.store.single import execute

    sa_engine = target.sa_engine
    now_naive = _naive(now)
    pg = sa_engine.dialect.name == "postgresql"
    statements = _activate_statements(pg)
    # SQLite: the driver's executemany (one row: one execute at the driver), the values processed as SQLAlchemy would
    many = _execute_rows if pg else executemany
    with sa_engine.connect() as conn:
        total = int(execute(conn, statements["count"], {"p_now": now_naive}).scalar_one())
    if not total:
        return
    done = 0
    faults = _Faults(target, "tick:activate", now)
    # what a batch activates is no longer due, so batches read from the start of what is due; only past an item
    # that failed on its own (an incident; left planned for the next tick) or whose incident waits the cursor
    # moves: (due_at, id) after it
    cursor: tuple[datetime, int] | None = None
    positions: dict[str, tuple[datetime, int]] = {}
    passed: tuple[datetime, int] | None = None
    while True:
        faults.batch = []
        faults.mark(summary)
        try:
            with unit_of_work(sa_engine, target.workflow_engine) as unit:
                conn = unit.connection
                _take_write_lock(conn)
                params: dict[str, Any] = {"p_now": now_naive, "p_limit": faults.size(batch_size)}
                if cursor is not None:
                    params.update(p_due=cursor[0], p_id=cursor[1])
                query = statements["batch" if cursor is None else "batch_after"]
                rows = [dict(r._mapping) for r in execute(conn, query, params).all()]
                if not rows:
                    break
                positions = {r["key"]: (r["due_at"], r["id"]) for r in rows}
                faults.workflows = {r["key"]: r["workflow"] for r in rows}
                # an item whose incident waits (backoff, or a person) stays planned; the batches go on past it
                faults.read = len(rows)
                waiting = faults.waiting(unit, [r["key"] for r in rows])
                passed = positions[rows[-1]["key"]] if waiting else None
                if waiting:
                    rows = [r for r in rows if r["key"] not in waiting]
                faults.batch = [r["key"] for r in rows]
                latest = _latest_of_late_series(conn, rows, now_naive)
                prepare = getattr(target.starter, "prepare", None)
                if prepare is not None:  # a batch of starts: one existence query, rows written with executemany
                    prepare(unit, [r for r in rows if r["start_mode"] not in ("none", "manual") and r["workflow"]])
                changes, audit = [], []
                for row in rows:
                    instance = None
                    status, event = _final_status(row, now_naive, latest, target.starter is not None)
                    if status == "started":
                        assert target.starter is not None
                        instance = target.starter(unit, row, now)
                    elif status == "skipped":
                        summary.skipped += 1
                    if status != "skipped":
                        summary.activated[status] += 1
                        if collect_keys:
                            summary.activated_keys.append(row["key"])
                        if collect_activated:
                            summary.activated_items[activated_label(row["item_type"], row["payload"])] += 1
                    changes.append({"b_key": row["key"], "b_status": status, "b_instance": instance,
                                    "b_at": now_naive})
                    audit.append({"item_key": row["key"], "event": event, "actor": actor.id, "at": now_naive,
                                  "detail": json.dumps({"instance": instance} if instance else {})})
                finish = getattr(target.starter, "finish", None)
                if finish is not None:
                    finish(unit)
                if changes:
                    many(conn, statements["change"], changes)
                    many(conn, statements["audit"], audit)
                faults.resolve_done(unit)
                done += len(rows) + len(waiting)
        except RegelwerkError as exc:  # as in the plan phase (``_Faults``)
            if not faults.isolate(exc):
                raise
            faults.restore(summary)
            cursor = positions.get(faults.after_failure(exc, summary), cursor)
            continue
        if passed is not None:  # what the batch did is no longer due; what waits is passed by the cursor
            cursor = passed if cursor is None or passed > cursor else cursor
        faults.succeeded(batch_size)
        if progress is not None:
            progress("activate", done, total)
    summary.waiting += len(faults.passed)


def start_item(target: Any, key: str, now: datetime, actor: Actor = SYSTEM, starter: Starter | None = None) -> str:
    """Start a ``ready`` item (a manual-start moment) by hand; returns the workflow instance id."""
    from regelwerk.errors import UsageError
    from regelwerk.scheduling.tables import scheduled_events as events
    from regelwerk.scheduling.tables import scheduled_items as items
    from regelwerk.scheduling.workflows import unit_of_work
    from sqlalchemy import select, update

    resolved = resolve_target(target, starter)
    if resolved.starter is None:
        raise UsageError("starting an item needs the workflow engine", hint="pass the Engine as target")
    now_naive = _naive(now)
    try:
        with unit_of_work(resolved.sa_engine, resolved.workflow_engine) as unit:
            conn = unit.connection
            _take_write_lock(conn)
            query = select(items).where(items.c.key == key)
            if resolved.sa_engine.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                raise UsageError(f"no scheduled item {key!r}")
            if row.status != "ready":
                raise UsageError(f"item {key!r} is {row.status}, not ready to start",
                                 hint="only items with start: manual wait in status 'ready'")
            instance = resolved.starter(unit, dict(row._mapping), now)
            conn.execute(update(items).where(items.c.key == key)
                         .values(status="started", instance_id=instance, updated_at=now_naive))
            conn.execute(events.insert().values(item_key=key, event="start", actor=actor.id, at=now_naive,
                                                detail=json.dumps({"instance": instance, "manual": True})))
    finally:
        if resolved.owned:
            resolved.sa_engine.dispose()
    return instance
