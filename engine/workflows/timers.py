"""Durable timers: claimed in bounded batches in the lock order, fired each in a savepoint, retried as incidents."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from regelwerk.actors import SYSTEM
from regelwerk.errors import PluginError, RegelwerkError, storable_text
from regelwerk.limits import critical
from regelwerk.store.base import StoreTx
from regelwerk.store.records import (
    AuditEntry,
    DueBatch,
    HistoryEntry,
    IncidentRecord,
    InstanceRecord,
    TimerRecord,
)
from regelwerk.store.unit import UnitOfWork
from regelwerk.workflows.chains import sweep
from regelwerk.workflows.incidents import resolve_timer_incidents
from regelwerk.workflows.model import RetrySpec
from regelwerk.workflows.runtime import WorkflowRuntime

__all__ = ["RetryPolicy", "TimerOutcome", "TimerService"]


@dataclass(frozen=True, slots=True)
class TimerOutcome:
    """What happened to one due timer."""

    timer_id: int
    instance_id: str
    event: str
    status: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a failing timer is tried (``attempts`` in all) and how long to wait before each retry.

    The n-th retry waits ``backoff * factor ** (n - 1)``, at most ``max_backoff``. After the last attempt
    the timer is ``failed`` and its incident waits for a person (``regelwerk incidents retry``).
    """

    attempts: int = 5
    backoff: timedelta = timedelta(minutes=1)
    factor: float = 4.0
    max_backoff: timedelta = timedelta(hours=6)

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff <= timedelta(0) or self.factor < 1:
            raise ValueError("RetryPolicy needs attempts >= 1, a positive backoff and factor >= 1")

    def declared(self, spec: RetrySpec | None) -> RetryPolicy:
        """This policy with a workflow's declared limits (``spec.retry``) over it. Never raises: a declared value
        this policy could not hold (the compiler refuses them; a record stored before it did) is left out, so
        recording a failure can never fail on the limits."""
        if spec is None:
            return self
        attempts = spec.attempts if spec.attempts is not None and spec.attempts >= 1 else self.attempts
        backoff = spec.backoff if spec.backoff is not None and spec.backoff > timedelta(0) else self.backoff
        factor = spec.factor if spec.factor is not None and spec.factor >= 1 else self.factor
        longest = spec.max_backoff if spec.max_backoff is not None and spec.max_backoff > timedelta(0) else max(
            self.max_backoff, backoff)
        return RetryPolicy(attempts, backoff, factor, longest)

    def delay(self, attempt: int) -> timedelta | None:
        """The wait after failed attempt number ``attempt`` (1-based); None when no attempt is left."""
        if attempt >= self.attempts:
            return None
        # in seconds, capped before it becomes a timedelta (factor ** attempt overflows for limits the schema allows)
        try:
            seconds = self.backoff.total_seconds() * (self.factor ** (attempt - 1))
        except OverflowError:
            return self.max_backoff
        return self.max_backoff if seconds >= self.max_backoff.total_seconds() else timedelta(seconds=seconds)


class _Isolate(Exception):  # control flow inside fire_due_timers, never raised to callers
    """A timer of a straight-through batch failed: roll the attempt back and isolate each timer."""


class _TimerBuffer:
    """The batch's ``StoreTx`` while a claimed batch fires straight through: the writes nothing in the batch reads
    back (history rows, the timers' own finish, new timers) are kept and written in bulk when the batch ends; the
    batch's instances are read with its claim (``StoreTx.claim_due_batch``), and their updates (version-checked,
    the instances locked by the claim) are written together at the end. The cancel of pending timers runs at once;
    every other method (and ``connection``) first writes what is kept and forgets what was read, so an action
    reading the store sees its own batch. The rows are the same as one timer at a time."""

    def __init__(self, tx: Any, batch: DueBatch) -> None:
        self._tx = tx
        self._read: dict[str, InstanceRecord] = dict(batch.instances)
        # the instances whose pending timers are all claimed by this batch: cancelling them changes no row in the
        # end (each claimed timer's finish sets status, fired_at and note), so the UPDATE is left out. The claimed
        # timers are among those a cancel would change: all of them are claimed when the counts are equal
        claimed: dict[str, int] = {}
        for timer in batch.timers:
            claimed[timer.instance_id] = claimed.get(timer.instance_id, 0) + 1
        self._alone = {i for i, count in batch.cancellable.items() if claimed.get(i) == count}
        self._history: list[HistoryEntry] = []
        self._timers: list[TimerRecord] = []
        self._timer_instances: set[str] = set()  # instances given a timer in this batch: always really cancelled
        self._finished: list[tuple[int, str, datetime, str]] = []
        self._updates: dict[str, tuple[InstanceRecord, int, bool]] = {}  # id -> (latest, first expected, data?)
        self._definition_changed = False  # whether any kept update moves an instance to another definition version

    def get(self, instance_id: str) -> InstanceRecord | None:
        found = self._read.get(instance_id)
        if found is not None:
            return found
        result: InstanceRecord | None = self._tx.get(instance_id)
        return result

    def update(self, record: InstanceRecord, expected_version: int, data_changed: bool = True, *,
               definition_changed: bool = True) -> None:
        # the batch's instances are locked (claim_due_timers): the version-checked update is kept and written with
        # the others when the batch ends; two changes of one instance in the batch are one update
        known = self._read.get(record.id)
        if known is None or known.version != expected_version:
            self._read.pop(record.id, None)
            self._tx.update(record, expected_version, data_changed, definition_changed=definition_changed)
            return
        self._definition_changed = self._definition_changed or definition_changed
        first = self._updates.get(record.id)
        if first is None:
            self._updates[record.id] = (record, expected_version, data_changed)
        else:
            self._updates[record.id] = (record, first[1], first[2] or data_changed)
        self._read[record.id] = record

    def add_history(self, entry: HistoryEntry) -> None:
        self._history.append(entry)

    def add_timer(self, timer: TimerRecord) -> None:
        self._timers.append(timer)
        self._timer_instances.add(timer.instance_id)

    def cancel_timers(self, instance_id: str, at: datetime) -> int:
        if instance_id not in self._timer_instances and instance_id in self._alone:
            # each is a claimed timer of this batch, which finishes it itself (fired, or cancelled as its state was
            # left: _fire_on): nothing is cancelled here
            return 0
        if any(timer.instance_id == instance_id for timer in self._timers):  # kept: must be there to be cancelled
            self.flush()
        self._alone.discard(instance_id)
        return int(self._tx.cancel_timers(instance_id, at))

    def incidents(self, status: str | None = None, instance_id: str | None = None, *, event: str | None = None,
                  instance_ids: Collection[str] | None = None) -> list[IncidentRecord]:
        # incidents are never kept here: read as they are, and what is kept stays valid (a read changes nothing)
        found: list[IncidentRecord] = self._tx.incidents(status, instance_id, event=event, instance_ids=instance_ids)
        return found

    def timers(self, instance_id: str) -> list[TimerRecord]:
        self.flush()  # the kept timers and finishes first; what is cached stays valid (a read changes nothing)
        found: list[TimerRecord] = self._tx.timers(instance_id)
        return found

    def finish_timer(self, timer_id: int, status: str, at: datetime, note: str = "") -> None:
        # the timer's own row: a cancel of its instance's pending timers before this is written leaves the same
        # row (status, fired_at and note are all set here)
        self._finished.append((timer_id, status, at, note))

    def __getattr__(self, name: str) -> Any:
        self.flush()
        self._read.clear()
        self._alone.clear()  # anything else may add or change timers: cancel for real from here on
        return getattr(self._tx, name)

    def flush(self) -> None:
        """Write what is kept: the instances' updates (``update_many``), history and new timers (``insert_many``),
        then the timers' finish."""
        history, timers, finished, updates = self._history, self._timers, self._finished, self._updates
        self._history, self._timers, self._finished, self._updates = [], [], [], {}
        definition_changed, self._definition_changed = self._definition_changed, False
        if updates:
            self._tx.update_many(list(updates.values()), definition_changed=definition_changed)
        if history or timers:
            self._tx.insert_many((), history, timers)
        if finished:
            self._tx.finish_timers(finished)


class _Loops:
    """The timers one ``fire_due_timers`` call fired, to tell a timer its own firing set again from new work.

    A one-off moment that has passed, set again by the transition its own firing caused (its event goes back into
    the state that sets it, RW520, or round two states that set each other), would fire forever in one call. Such a
    timer has the (instance, state, event, moment) of one this call fired, and nobody else has written its instance
    since this call's last fire of it (its version is the one that fire left): it is not fired again. Another
    state's timer for the same moment and event fires (stages keyed on one date: a chain, not a loop), and so does
    one a person's fire set again meanwhile (another worker moved the version on: new work). Kept per batch and
    taken over when the batch commits (a rolled-back attempt fired nothing)."""

    __slots__ = ("_keys", "_pending", "_versions")

    def __init__(self) -> None:
        self._keys: set[tuple[str, str, str, datetime]] = set()
        self._versions: dict[str, int] = {}  # instance -> its version after this call's last fire of it
        self._pending: list[tuple[tuple[str, str, str, datetime], int]] = []

    def again(self, timer: TimerRecord, current: InstanceRecord | None) -> bool:
        """Whether ``timer`` is one this call's own firing set again (see the class)."""
        return (current is not None and (timer.instance_id, timer.state, timer.event, timer.due_at) in self._keys
                and self._versions.get(timer.instance_id) == current.version)

    def fired(self, timer: TimerRecord, version: int) -> None:
        """``timer`` fired in the running batch, leaving its instance at ``version``."""
        self._pending.append(((timer.instance_id, timer.state, timer.event, timer.due_at), version))

    def committed(self) -> None:
        for key, version in self._pending:
            self._keys.add(key)
            self._versions[key[0]] = version
        self._pending.clear()

    def rolled_back(self) -> None:
        self._pending.clear()


class TimerService:
    """Fires due timers through the workflow runtime."""

    def __init__(self, runtime: WorkflowRuntime, retry: RetryPolicy) -> None:
        self.runtime = runtime
        self.retry = retry

    @critical  # units of work, their commits and after-commit work: finished once begun
    def fire_due_timers(self, now: datetime | None = None, limit: int | None = None,
                        batch_size: int = 100) -> list[TimerOutcome]:
        """Fire every pending timer due at ``now`` (idempotent: each timer fires once; safe to run in parallel).

        Timers fire as the system actor; guards apply, permission checks are skipped (recorded as such).
        They are claimed ``batch_size`` at a time, one unit of work per batch. A batch is first fired straight
        through (no savepoint per timer: most batches have nothing to isolate); if any timer raises or is
        refused, that attempt is rolled back whole and the batch is fired again with each timer in its own
        savepoint: a refused timer (a guard, a state left) is marked ``failed`` and audited; a timer whose
        action raises is rolled back alone, recorded as an incident and retried later (``retry``); the
        others go on either way. Outcomes: ``fired``, ``failed``, ``incident``. First, the chained fires
        (``workflow.fire``) that a process which died after its commit left (kept longer than
        ``regelwerk.workflows.chains.GRACE``) are run, once each.
        """
        moment = now or self.runtime.clock()
        fired = _Loops()  # timers this call fired: one set again by its own firing ends the call (see _Loops)
        # the chained fires (workflow.fire) a process that died after its commit left behind: run once, here
        sweep(self.runtime, moment)
        outcomes: list[TimerOutcome] = []
        while limit is None or len(outcomes) < limit:
            want = batch_size if limit is None else min(batch_size, limit - len(outcomes))
            try:
                with UnitOfWork(self.runtime.store) as uow:
                    due = uow.tx.claim_due_batch(moment, max(want, 1))
                    claimed = due.timers
                    batch = self._fire_straight(uow, due, moment, fired)
            except _Isolate:  # nothing of the attempt was kept: fire the batch again, each timer on its own
                self.runtime._forget(timer.instance_id for timer in claimed)
                fired.rolled_back()
                with UnitOfWork(self.runtime.store) as uow:
                    claimed = uow.tx.claim_due_timers(moment, max(want, 1))
                    batch = [self._fire_timer(uow, timer, moment, fired) for timer in claimed]
            if not claimed:
                break
            self.runtime._forget(timer.instance_id for timer in claimed)
            fired.committed()
            outcomes.extend(batch)
            uow.run_post(self.runtime.post_failed)
        return outcomes

    def _fire_straight(self, uow: UnitOfWork, due: DueBatch, moment: datetime,
                       fired: _Loops) -> list[TimerOutcome]:
        """Fire a claimed batch without savepoints; any failure raises :class:`_Isolate` (the unit rolls back)."""
        outcomes = []
        tx: Any = _TimerBuffer(uow.tx, due) if due.timers else uow.tx
        for timer in due.timers:
            assert timer.id is not None
            try:
                status = self._fire_on(tx, uow, timer, moment, fired)
            except Exception as exc:  # refused or raised: redo the batch timer by timer
                uow.refusals.clear()  # the isolated run decides (and audits) again
                uow.post.clear()
                raise _Isolate from exc
            outcomes.append(TimerOutcome(timer.id, timer.instance_id, timer.event, status))
        if isinstance(tx, _TimerBuffer):
            try:
                tx.flush()
            except Exception as exc:  # the bulk write failed: redo the batch timer by timer
                uow.refusals.clear()
                uow.post.clear()
                raise _Isolate from exc
        return outcomes

    def _fire_on(self, tx: Any, uow: UnitOfWork, timer: TimerRecord, moment: datetime,
                 fired: _Loops | None = None) -> str:
        """Mark the claimed timer fired and fire its event as the system on ``tx``; a retry resolves its incident.

        A timer whose state the instance has left meanwhile (an earlier timer of the same batch moved it on) is
        cancelled instead, as leaving the state would have cancelled it: ``cancelled``; otherwise ``fired``.
        """
        assert timer.id is not None
        current = tx.get(timer.instance_id)
        if current is not None and timer.state and current.state != timer.state:
            left = f"state {timer.state!r} left before it fired"
            tx.finish_timer(timer.id, "cancelled", moment, left)
            if timer.note.startswith("retry"):  # a retry that will not come: its incident is resolved with it
                resolve_timer_incidents(tx, timer.instance_id, {timer.id}, moment, SYSTEM.id,
                                        f"its timer was cancelled: {left}")
            return "cancelled"
        if fired is not None and fired.again(timer, current):
            # set again for the moment it just fired at (its event went back into the state that sets it): firing
            # it would set it again, forever; it fails, audited, and the workflow's author sees RW520
            loop = (f"timer {timer.event!r} was set again for the moment it fired at in this run (a timer that "
                    "re-arms itself, RW520): not fired again")
            tx.finish_timer(timer.id, "failed", moment, loop)
            uow.audit(AuditEntry(moment, SYSTEM.id, "workflow.timer_failed", timer.instance_id,
                                 {"timer": timer.id, "event": timer.event, "error": {"code": "RW520",
                                                                                     "message": loop}}))
            return "failed"
        tx.finish_timer(timer.id, "fired", moment)
        after = self.runtime._fire_tx(tx, timer.instance_id, timer.event, SYSTEM, timer.data or None, timer.due_at,
                                      None, uow.post, False)
        if fired is not None:
            fired.fired(timer, after.version)
        if timer.note.startswith("retry"):
            for incident in tx.incidents("open", timer.instance_id):
                if incident.timer_id == timer.id and incident.id is not None:
                    tx.set_incident(incident.id, "resolved", moment, "fired on retry", expected="open")
        return "fired"

    def _fire_timer(self, uow: UnitOfWork, timer: TimerRecord, moment: datetime,
                    fired: _Loops | None = None) -> TimerOutcome:
        """One claimed timer inside the batch's unit of work (its own savepoint)."""
        assert timer.id is not None
        try:
            with uow.savepoint() as tx:
                status = self._fire_on(tx, uow, timer, moment, fired)
        except PluginError as exc:
            return self._timer_incident(uow.tx, timer, exc, moment)
        except RegelwerkError as exc:
            if exc.from_plugin and not exc.stops_work:
                # raised by an action (a lost race, an instance it looked for), or data the actions left does not
                # fit: the plugin's failure, retried as any other, not the timer's own refusal
                return self._timer_incident(uow.tx, timer, PluginError.wrap(
                    f"timer {timer.event!r}", exc, timer.instance_id, timer.event), moment)
            # a refusal (guard, state left): the timer is done, audited
            uow.tx.finish_timer(timer.id, "failed", moment, storable_text(exc, 500))
            uow.audit(AuditEntry(moment, SYSTEM.id, "workflow.timer_failed", timer.instance_id,
                                 {"timer": timer.id, "event": timer.event, "error": exc.to_dict()}))
            return TimerOutcome(timer.id, timer.instance_id, timer.event, "failed", str(exc))
        except Exception as exc:  # noqa: BLE001  # a condition function or engine fault: never blocks the others
            return self._timer_incident(uow.tx, timer, PluginError.wrap(f"timer {timer.event!r}", exc,
                                                                        timer.instance_id, timer.event), moment)
        return TimerOutcome(timer.id, timer.instance_id, timer.event, status)

    def policy_for(self, tx: StoreTx, instance_id: str) -> RetryPolicy:
        """The retry policy of the instance's workflow version: its declared ``retry`` over the engine's."""
        rec = tx.get(instance_id)
        if rec is None:
            return self.retry
        try:
            model = self.runtime._runtime(tx, rec.workflow, rec.definition_version).model
        except RegelwerkError:
            return self.retry
        return self.retry.declared(model.retry)

    def _timer_incident(self, tx: StoreTx, timer: TimerRecord, exc: PluginError, moment: datetime) -> TimerOutcome:
        assert timer.id is not None
        known = [i for i in tx.incidents("open", timer.instance_id) if i.timer_id == timer.id]
        attempt = (known[0].attempts + 1) if known else 1
        delay = self.policy_for(tx, timer.instance_id).delay(attempt)
        retry_at = moment + delay if delay is not None else None
        if retry_at is not None:
            tx.reschedule_timer(timer.id, retry_at, f"retry {attempt}: {exc.error_type}")
        else:
            tx.finish_timer(timer.id, "failed", moment, storable_text(f"incident after {attempt} attempts: {exc}", 500))
        tx.add_incident(IncidentRecord(timer.instance_id, timer.event, exc.error_type, exc.error_message, moment,
                                       moment, attempt, "open", timer.id, SYSTEM.id, dict(timer.data), retry_at,
                                       storable_text(exc, 500)))
        return TimerOutcome(timer.id, timer.instance_id, timer.event, "incident", str(exc))
