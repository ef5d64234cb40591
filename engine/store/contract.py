"""The store contract: one test class every Store implementation must pass.

Subclass it in your own test module and implement ``make_store``::

    from regelwerk.store.contract import StoreContract

    class TestMyStore(StoreContract):
        def make_store(self):
            return MyStore(...)

pytest collects the inherited ``test_*`` methods (the class itself is not collected: its name does
not start with ``Test``). The tests use only the :class:`~regelwerk.store.base.Store` protocol.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from regelwerk.errors import ConflictError, UnknownInstance
from regelwerk.store.base import Store
from regelwerk.store.records import (
    AuditEntry,
    DefinitionRecord,
    DueBatch,
    HistoryEntry,
    IncidentRecord,
    InstanceRecord,
    OutboxEntry,
    PendingFire,
    StartShape,
    TimerRecord,
)
from regelwerk.store.unit import watch_erasures

__all__ = ["StoreContract"]

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _record(instance_id: str = "i1", state: str = "draft", version: int = 1, **data: Any) -> InstanceRecord:
    return InstanceRecord(instance_id, "declaration", "v1", state, {"amount": 10, **data}, version, T0, T0, "anna")


class _Boom(Exception):
    pass


class _Watcher:
    def __init__(self) -> None:
        self.forgotten: list[list[str]] = []

    def forget(self, instance_ids: Sequence[str]) -> None:
        self.forgotten.append(list(instance_ids))


class StoreContract:
    """Behaviour every store must show (persistence, version checks, atomicity, timers, audit)."""

    def make_store(self) -> Store:
        """Return a fresh, empty store (tables created)."""
        raise NotImplementedError

    def _open(self) -> Iterator[Store]:
        store = self.make_store()
        store.setup()
        try:
            yield store
        finally:
            store.close()

    def _store(self) -> Store:
        gen = self._open()
        store = next(gen)
        self._cleanups = [*getattr(self, "_cleanups", []), gen]
        return store

    def teardown_method(self, method: Any = None) -> None:
        """Close the stores a test opened."""
        for gen in getattr(self, "_cleanups", []):
            for _ in gen:
                pass
        self._cleanups = []

    # --- instances -----------------------------------------------------------------------------

    def test_insert_and_get_round_trip(self) -> None:
        store = self._store()
        rec = _record(nested={"a": [1, 2, {"b": "é"}]})
        with store.transaction() as tx:
            tx.insert(rec)
        with store.read() as tx:
            got = tx.get("i1")
        assert got is not None
        assert got.state == "draft" and got.version == 1 and got.workflow == "declaration"
        assert dict(got.data) == {"amount": 10, "nested": {"a": [1, 2, {"b": "é"}]}}
        assert got.created_at == T0 and got.created_at.tzinfo is not None
        assert got.created_by == "anna"

    def test_get_missing_is_none(self) -> None:
        store = self._store()
        with store.read() as tx:
            assert tx.get("nope") is None

    def test_insert_duplicate_is_a_conflict(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record())
        try:
            with store.transaction() as tx:
                tx.insert(_record())
        except ConflictError as exc:
            assert exc.instance_id == "i1"
        else:
            raise AssertionError("a duplicate insert must raise ConflictError")

    def test_a_duplicate_insert_names_the_existing_instance_and_leaves_the_transaction_usable(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record(state="submitted", version=3))
        with store.transaction() as tx:
            try:
                tx.insert(_record())
            except ConflictError as exc:
                assert (exc.instance_id, exc.current_version, exc.current_state) == ("i1", 3, "submitted")
            else:
                raise AssertionError("a duplicate insert must raise ConflictError")
            tx.insert(_record(instance_id="i2"))  # the caller may go on in the same transaction
        with store.read() as tx:
            first, second = tx.get("i1"), tx.get("i2")
        assert first is not None and first.version == 3 and second is not None and second.version == 1

    def test_update_checks_the_version(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record())
        with store.transaction() as tx:
            tx.update(_record(state="submitted", version=2), expected_version=1)
        try:
            with store.transaction() as tx:
                tx.update(_record(state="approved", version=2), expected_version=1)
        except ConflictError as exc:
            assert (exc.expected_version, exc.current_version, exc.current_state) == (1, 2, "submitted")
        else:
            raise AssertionError("a stale update must raise ConflictError")
        with store.read() as tx:
            got = tx.get("i1")
        assert got is not None and got.state == "submitted" and got.version == 2

    def test_a_transition_update_keeps_the_definition_version_and_a_migration_changes_it(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record())
        with store.transaction() as tx:  # a transition: data and definition version as stored
            tx.update(_record(state="submitted", version=2), 1, False, definition_changed=False)
        with store.read() as tx:
            got = tx.get("i1")
        assert got is not None and (got.state, got.version, got.definition_version, dict(got.data)) == (
            "submitted", 2, "v1", {"amount": 10})
        with store.transaction() as tx:  # a migration: another definition version
            tx.update(replace(_record(state="approved", version=3), definition_version="v2"), 2)
        with store.read() as tx:
            got = tx.get("i1")
            moved = tx.instances(definition_version="v2")
        assert got is not None and (got.state, got.version, got.definition_version) == ("approved", 3, "v2")
        assert [r.id for r in moved] == ["i1"]
        try:
            with store.transaction() as tx:
                tx.update(_record(state="draft", version=4), 2, definition_changed=False)
        except ConflictError as exc:
            assert exc.current_version == 3
        else:
            raise AssertionError("a stale transition update must raise ConflictError")

    def test_update_of_missing_instance(self) -> None:
        store = self._store()
        try:
            with store.transaction() as tx:
                tx.update(_record("ghost", version=2), expected_version=1)
        except UnknownInstance as exc:
            assert exc.instance_id == "ghost"
        else:
            raise AssertionError("updating a missing instance must raise UnknownInstance")

    def test_instances_filters_and_order(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record("b", state="draft"))
            tx.insert(_record("a", state="submitted"))
            tx.insert(_record("c", state="draft"))
        with store.read() as tx:
            assert [r.id for r in tx.instances()] == ["a", "b", "c"]
            assert [r.id for r in tx.instances(state="draft")] == ["b", "c"]
            assert [r.id for r in tx.instances(workflow="other")] == []
            assert [r.id for r in tx.instances(definition_version="v1", limit=2)] == ["a", "b"]

    # --- atomicity -----------------------------------------------------------------------------

    def test_a_failed_unit_of_work_leaves_nothing(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record())
        try:
            with store.transaction() as tx:
                tx.update(_record(state="submitted", version=2), expected_version=1)
                tx.add_history(HistoryEntry("i1", "submit", "draft", "submitted", "anna", T0, "v1", 2))
                tx.add_timer(TimerRecord("i1", "submitted", "expire", T0 + timedelta(days=14)))
                tx.add_audit(AuditEntry(T0, "anna", "x", "i1"))
                raise _Boom
        except _Boom:
            pass
        with store.read() as tx:
            got = tx.get("i1")
            assert got is not None and got.state == "draft" and got.version == 1
            assert tx.history("i1") == []
            assert tx.timers("i1") == []
            assert tx.audit("i1") == []

    def test_history_in_order_with_explanation(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record())
            tx.add_history(HistoryEntry("i1", "$start", "", "draft", "anna", T0, "v1", 1))
            tx.add_history(HistoryEntry("i1", "submit", "draft", "submitted", "anna", T0 + timedelta(hours=1),
                                        "v1", 2, {"guard": "amount le 50", "permission": {"allowed": True}}))
        with store.read() as tx:
            rows = tx.history("i1")
        assert [(h.event, h.from_state, h.to_state, h.version) for h in rows] == [
            ("$start", "", "draft", 1), ("submit", "draft", "submitted", 2)]
        assert rows[1].explain["permission"] == {"allowed": True}
        assert rows[1].at == T0 + timedelta(hours=1)

    def test_a_kept_chained_fire_is_taken_once_and_rolls_back_with_its_unit(self) -> None:
        """A chained fire kept in a transition's unit of work is there for the sweep only once that unit committed;
        the unit that takes it gets True, every later one False; a take rolled back leaves it kept."""
        store = self._store()
        actor = {"id": "anna", "roles": ["employee"]}
        try:
            with store.transaction() as tx:
                tx.add_pending_fire(PendingFire("t0", "go", actor, False, "s0", "submit", T0))
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        with store.transaction() as tx:
            first = tx.add_pending_fire(PendingFire("t1", "go", actor, False, "s1", "submit", T0))
            second = tx.add_pending_fire(PendingFire("t2", "close", {"id": "system", "roles": []}, True, "s2",
                                                     "remind", T0 + timedelta(minutes=1)))
        with store.read() as tx:
            kept = tx.pending_fires(T0 + timedelta(hours=1), 10)
            assert tx.pending_fires(T0 + timedelta(seconds=30), 10) == kept[:1]
            assert tx.pending_fires(T0, 10) == []
        assert [(f.id, f.target, f.event, dict(f.actor), f.system, f.source, f.after, f.created_at) for f in kept] == [
            (first, "t1", "go", actor, False, "s1", "submit", T0),
            (second, "t2", "close", {"id": "system", "roles": []}, True, "s2", "remind", T0 + timedelta(minutes=1))]
        try:
            with store.transaction() as tx:
                assert tx.take_pending_fire(first) is True
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        with store.transaction() as tx:
            assert tx.take_pending_fire(first) is True
            assert tx.take_pending_fire(first) is False
        with store.transaction() as tx:
            assert tx.take_pending_fire(first) is False
        with store.read() as tx:
            assert [f.id for f in tx.pending_fires(T0 + timedelta(hours=1), 10)] == [second]

    def test_history_and_audit_rows_read_are_copies_that_cannot_change_the_store(self) -> None:
        """The history and the audit are the trail a decision is checked against afterwards: what a reader does to
        the rows it got (their explanation, their detail, what it handed in) does not change what is kept."""
        store = self._store()
        explain = {"guard": "amount le 50", "permission": {"allowed": True, "roles": ["hr"]}}
        detail = {"action": "approve", "roles": ["employee"]}
        with store.transaction() as tx:
            tx.insert(_record())
            tx.add_history(HistoryEntry("i1", "submit", "draft", "submitted", "anna", T0, "v1", 2, explain))
            tx.add_audit(AuditEntry(T0, "anna", "workflow.permission_denied", "i1", detail))
        explain["permission"]["allowed"] = False  # type: ignore[index]
        detail["roles"].append("hr")  # type: ignore[attr-defined]
        for _ in range(2):
            with store.read() as tx:
                [row], [entry] = tx.history("i1"), tx.audit("i1")
            assert row.explain == {"guard": "amount le 50", "permission": {"allowed": True, "roles": ["hr"]}}
            assert entry.detail == {"action": "approve", "roles": ["employee"]}
            row.explain["permission"]["roles"].append("admin")
            row.explain["guard"] = "true"  # type: ignore[index]
            entry.detail["roles"].clear()

    # --- timers --------------------------------------------------------------------------------

    def test_timers_due_claim_finish_cancel(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record())
            tx.insert(_record("i2"))
            tx.add_timer(TimerRecord("i1", "submitted", "expire", T0 + timedelta(days=14), {"why": "late"}))
            tx.add_timer(TimerRecord("i2", "submitted", "expire", T0 + timedelta(days=1)))
        with store.transaction() as tx:
            assert tx.claim_due_timer(T0) is None
            first = tx.claim_due_timer(T0 + timedelta(days=20))
            assert first is not None and first.instance_id == "i2" and first.id is not None
            tx.finish_timer(first.id, "fired", T0 + timedelta(days=20))
        with store.transaction() as tx:
            second = tx.claim_due_timer(T0 + timedelta(days=20))
            assert second is not None and second.instance_id == "i1" and dict(second.data) == {"why": "late"}
            assert tx.cancel_timers("i1", T0) == 1
            assert tx.cancel_timers("i1", T0) == 0
            assert tx.claim_due_timer(T0 + timedelta(days=20)) is None
        with store.read() as tx:
            assert [t.status for t in tx.timers("i2")] == ["fired"]
            assert [t.status for t in tx.timers("i1")] == ["cancelled"]

    def test_a_timer_is_given_up_while_it_is_pending_or_failed_never_after_it_fired(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record())
            tx.add_timer(TimerRecord("i1", "submitted", "expire", T0))
            tx.add_timer(TimerRecord("i1", "submitted", "remind", T0))
        with store.transaction() as tx:
            fired, waiting = tx.timers("i1")
            assert fired.id is not None and waiting.id is not None
            tx.finish_timer(fired.id, "fired", T0)
            assert tx.give_up_timer(fired.id, T0, "too late") is False
            assert tx.give_up_timer(waiting.id, T0, "resolved by hand") is True
            assert tx.give_up_timer(waiting.id, T0 + timedelta(days=1), "twice") is True  # failed: kept as it is
            tx.add_timer(TimerRecord("i1", "submitted", "later", T0))
            cancelled = tx.timers("i1")[-1]
            assert cancelled.id is not None
            tx.finish_timer(cancelled.id, "cancelled", T0)
            assert tx.give_up_timer(cancelled.id, T0, "too late") is False
        with store.read() as tx:
            assert [(t.status, t.note, t.fired_at) for t in tx.timers("i1")] == [
                ("fired", "", T0), ("failed", "resolved by hand", T0), ("cancelled", "", T0)]

    def test_a_timer_batch_in_bulk(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record())
            tx.insert(_record("i2"))
            for day in (1, 2):
                tx.add_timer(TimerRecord("i1", "submitted", "expire", T0 + timedelta(days=day)))
        with store.transaction() as tx:
            assert set(tx.get_many(["i1", "i2", "nobody"])) == {"i1", "i2"}
            pending = tx.pending_timers(["i1", "i2"])
            assert set(pending) == {"i1", "i2"} and len(pending["i1"]) == 2 and pending["i2"] == set()
            first, second = sorted(pending["i1"])
            tx.finish_timers([(first, "fired", T0, ""), (second, "cancelled", T0, "state left")])
            tx.finish_timers([])
        with store.read() as tx:
            assert [(t.status, t.note) for t in tx.timers("i1")] == [("fired", ""), ("cancelled", "state left")]
            assert tx.pending_timers(["i1"]) == {"i1": set()}

    def test_many_timers_finished_at_once_in_chunks_and_in_order(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record("i2"))
            for minute in range(601):  # more than one chunk of ids
                tx.add_timer(TimerRecord("i2", "submitted", "expire", T0 + timedelta(minutes=minute)))
        with store.transaction() as tx:
            ids = sorted(tx.pending_timers(["i2"])["i2"])
            tx.finish_timers([(i, "fired", T0, "") for i in ids[:-1]])
            # a list that names a timer twice: the last word counts, as written in order
            tx.finish_timers([(ids[-1], "fired", T0, ""), (ids[-1], "cancelled", T0, "state left")])
        with store.read() as tx:
            timers = tx.timers("i2")
            assert [t.status for t in timers[:-1]] == ["fired"] * 600 and timers[-1].status == "cancelled"
            assert {t.fired_at for t in timers} == {T0} and timers[-1].note == "state left"

    def test_many_instances_updated_at_once(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record())
            tx.insert(_record("i2"))
        with store.transaction() as tx:
            one, two = tx.get("i1"), tx.get("i2")
            assert one is not None and two is not None
            tx.update_many([(replace(one, state="approved", version=2), 1, False),
                            (replace(two, data={"x": 2}, version=2), 1, True)], definition_changed=False)
            tx.update_many([])
        with store.read() as tx:
            got_one, got_two = tx.get("i1"), tx.get("i2")
            assert got_one is not None and got_one.state == "approved" and got_one.version == 2
            assert got_two is not None and dict(got_two.data) == {"x": 2} and got_two.version == 2
        try:
            with store.transaction() as tx:
                tx.update_many([(replace(got_one, version=3), 2, False), (replace(got_two, version=3), 1, True)])
        except ConflictError as exc:
            assert (exc.instance_id, exc.expected_version, exc.current_version) == ("i2", 1, 2)
        else:
            raise AssertionError("a stale update_many must raise ConflictError")
        try:
            with store.transaction() as tx:
                tx.update_many([(replace(got_one, id="nobody", version=3), 2, False)])
        except UnknownInstance as exc:
            assert exc.instance_id == "nobody"
        else:
            raise AssertionError("update_many of an unknown instance must raise UnknownInstance")
        with store.read() as tx:  # the failed units changed nothing
            after = tx.get("i1")
            assert after is not None and after.version == 2
        # many updates of one shape (a timer batch's: at the driver's executemany on SQLite), one of them stale or
        # of an unknown instance: found by the rows counted short, the first such the error
        try:
            with store.transaction() as tx:
                tx.update_many([(replace(got_one, version=3), 2, False), (replace(got_two, version=3), 1, False)],
                               definition_changed=False)
        except ConflictError as exc:
            assert (exc.instance_id, exc.expected_version, exc.current_version) == ("i2", 1, 2)
        else:
            raise AssertionError("a stale update_many of one shape must raise ConflictError")
        try:
            with store.transaction() as tx:
                tx.update_many([(replace(got_one, version=3), 2, False),
                                (replace(got_one, id="nobody", version=3), 2, False)])
        except UnknownInstance as exc:
            assert exc.instance_id == "nobody"
        else:
            raise AssertionError("update_many of an unknown instance among others must raise UnknownInstance")
        with store.transaction() as tx:
            tx.update_many([(replace(got_one, state="rejected", version=3), 2, False),
                            (replace(got_two, state="rejected", version=3), 2, False)], definition_changed=False)
        with store.read() as tx:  # the failed units changed nothing; the last wrote both
            assert [(r.state, r.version) for r in (tx.get("i1"), tx.get("i2")) if r is not None] == \
                [("rejected", 3), ("rejected", 3)]

    # --- audit and definitions -----------------------------------------------------------------

    def test_timers_claimed_in_batches_and_rescheduled(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            for n in range(5):
                tx.insert(_record(f"i{n}"))
                tx.add_timer(TimerRecord(f"i{n}", "draft", "expire", T0 + timedelta(hours=n)))
        with store.transaction() as tx:
            batch = tx.claim_due_timers(T0 + timedelta(hours=3), 3)
            assert [t.instance_id for t in batch] == ["i0", "i1", "i2"]
            assert batch[0].id is not None
            tx.finish_timer(batch[0].id, "fired", T0)
            tx.reschedule_timer(batch[1].id or 0, T0 + timedelta(days=1), "retry 1: KeyError")
        with store.transaction() as tx:
            assert [t.instance_id for t in tx.claim_due_timers(T0 + timedelta(hours=3), 10)] == ["i2", "i3"]
            [moved] = tx.timers("i1")
            assert (moved.status, moved.due_at, moved.note) == ("pending", T0 + timedelta(days=1), "retry 1: KeyError")
            # a conditional reschedule changes the timer only while it still has the note its caller read
            assert not tx.reschedule_timer(moved.id or 0, T0, "retry by bob", expected_note="retry 2: KeyError")
            assert tx.reschedule_timer(moved.id or 0, T0, "retry by alice", expected_note="retry 1: KeyError")
            assert not tx.reschedule_timer(moved.id or 0, T0, "retry by bob", expected_note="retry 1: KeyError")
            [moved] = tx.timers("i1")
            assert (moved.status, moved.due_at, moved.note) == ("pending", T0, "retry by alice")

    def test_a_savepoint_rolls_back_alone(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record("i1"))
            try:
                with tx.savepoint():
                    tx.update(_record("i1", state="submitted", version=2), 1)
                    tx.add_audit(AuditEntry(T0, "anna", "inner", "i1"))
                    raise _Boom
            except _Boom:
                pass
            tx.add_audit(AuditEntry(T0, "anna", "outer", "i1"))
        with store.read() as tx:
            got = tx.get("i1")
            assert got is not None and got.version == 1 and got.state == "draft"
            assert [a.action for a in tx.audit("i1")] == ["outer"]

    def test_outbox_and_erasure_of_personal_data(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record("i1", name="Anna Jansen"))
            tx.insert(_record("i2", name="Bob"))
            tx.add_history(HistoryEntry("i1", "submit", "draft", "submitted", "anna", T0, "v1", 2,
                                        {"input": {"name": "Anna Jansen"}}))
            tx.add_audit(AuditEntry(T0, "anna", "note", "i1", {"name": "Anna Jansen"}))
            tx.add_timer(TimerRecord("i1", "draft", "expire", T0 + timedelta(days=1), {"name": "Anna Jansen"}))
            tx.add_outbox(OutboxEntry("m1", T0, "anna@example.nl", "Hallo Anna", "body", "welkom",
                                      subject_ref="candidate:anna", instance_id="i1"))
            tx.add_outbox(OutboxEntry("m2", T0, "anna@example.nl", "Nog eens", "body", subject_ref="candidate:anna"))
            tx.add_outbox(OutboxEntry("m3", T0, "bob@example.nl", "Hallo Bob", "body", instance_id="i2"))
            tx.add_incident(IncidentRecord("i1", "submit", "builtins.KeyError", "'Anna Jansen'", T0, T0,
                                           data={"name": "Anna Jansen"}, note="gebeld met Anna Jansen",
                                           next_retry_at=T0 + timedelta(minutes=5)))
            # chained fires kept from and to the erased instance (the actor's attributes may name the person)
            person = {"id": "anna", "roles": [], "email": "anna@example.nl"}
            tx.add_pending_fire(PendingFire("i1", "remind", person, False, "i2", "submit", T0))
            tx.add_pending_fire(PendingFire("i2", "notify", person, False, "i1", "submit", T0))
            bob = tx.add_pending_fire(PendingFire("i2", "notify", {"id": "bob", "roles": []}, False, "i2", "x", T0))
        with store.read() as tx:
            assert [m.id for m in tx.outbox(subject_ref="candidate:anna")] == ["m1", "m2"]
            assert [m.subject for m in tx.outbox(instance_id="i2")] == ["Hallo Bob"]
        with store.transaction() as tx:
            counts = tx.erase_personal_data(["i1"], ["candidate:anna"])
        assert (counts.instances, counts.history, counts.audit, counts.timers, counts.outbox, counts.incidents,
                counts.chained) == (1, 1, 1, 1, 2, 1, 2)
        with store.read() as tx:
            kept = tx.get("i1")
            assert kept is not None and "Anna Jansen" not in repr(kept.data)
            assert [(h.event, dict(h.explain)) for h in tx.history("i1")] == [("submit", {}), ("$erase", {})]
            assert [(a.action, dict(a.detail)) for a in tx.audit("i1")] == [("note", {})]
            assert tx.timers("i1") == []
            assert [m.id for m in tx.outbox()] == ["m3"]
            [incident] = tx.incidents()
            assert "Anna" not in incident.message and dict(incident.data) == {} and incident.note == ""
            # an erased instance takes no more events: its open incident can never be retried, so it is closed
            assert (incident.status, incident.next_retry_at) == ("resolved", None)
            other = tx.get("i2")
            assert other is not None and other.data["name"] == "Bob"
            assert [f.id for f in tx.pending_fires(T0 + timedelta(hours=1), 10)] == [bob]

    def test_erasure_cuts_a_subjects_lines_out_of_a_mail_that_lists_several(self) -> None:
        """A mail about several subjects (a digest) records a part per line (``regelwerk.outbox.parts``): erasing a
        subject or an instance cuts its lines out of every stored body, pending or sent, in the erasure's unit of
        work (all or nothing, once); the others' lines stay; a pending mail left listing nobody is not sent."""
        from regelwerk.outbox.parts import add_parts

        store = self._store()
        body = "Beste Piet,\n- Anna Jansen\n- Bob de Vries\n- Cor Cornelis\nGroet\n"

        def line(text: str, within: str = body) -> tuple[int, int]:
            start = within.index(text)
            return start, start + len(text)

        with store.transaction() as tx:
            tx.add_outbox(OutboxEntry("d1", T0, "piet@example.nl", "3 zaken", body, "overzicht"))
            add_parts(tx, "d1", [("candidate:anna", "i1", *line("- Anna Jansen\n")),
                                 ("candidate:bob", None, *line("- Bob de Vries\n")),
                                 (None, "i3", *line("- Cor Cornelis\n"))])
            tx.add_outbox(OutboxEntry("d2", T0, "kees@example.nl", "1 zaak", "- Anna Jansen\n", "overzicht"))
            add_parts(tx, "d2", [("candidate:anna", None, 0, 14)])
            sent = "Hoi\n- Anna Jansen\n- Bob de Vries\n"
            tx.add_outbox(OutboxEntry("d3", T0, "lotte@example.nl", "2 zaken", sent, "overzicht", status="sent"))
            add_parts(tx, "d3", [("candidate:bob", None, *line("- Bob de Vries\n", sent)),
                                 ("candidate:anna", None, *line("- Anna Jansen\n", sent))])
        original = {"d1": body, "d2": "- Anna Jansen\n", "d3": sent}
        try:  # killed inside the erasure's unit of work: nothing of it stays
            with store.transaction() as tx:
                tx.erase_personal_data([], ["candidate:anna"])
                raise KeyboardInterrupt("killed")
        except KeyboardInterrupt:
            pass
        with store.read() as tx:
            assert {m.id: m.body for m in tx.outbox()} == original
        with store.transaction() as tx:
            counts = tx.erase_personal_data([], ["candidate:anna"])
        assert (counts.outbox, counts.redacted) == (0, 3)
        with store.read() as tx:  # d2 listed only Anna and was not sent: it never goes out
            assert {m.id: (m.body, m.status) for m in tx.outbox()} == {
                "d1": ("Beste Piet,\n- Bob de Vries\n- Cor Cornelis\nGroet\n", "pending"),
                "d3": ("Hoi\n- Bob de Vries\n", "sent")}
        with store.transaction() as tx:  # once: nothing of her is left to find
            assert tx.erase_personal_data([], ["candidate:anna"]).redacted == 0
        with store.transaction() as tx:  # by instance, at the offsets the first cut moved
            assert tx.erase_personal_data(["i3"]).redacted == 1
        with store.read() as tx:
            assert [m.body for m in tx.outbox() if m.id == "d1"] == ["Beste Piet,\n- Bob de Vries\nGroet\n"]
        with store.transaction() as tx:
            assert tx.erase_personal_data([], ["candidate:bob"]).redacted == 2
        with store.read() as tx:  # the sent one stays (it went), without a name; the pending one listed nobody
            assert {m.id: m.body for m in tx.outbox()} == {"d3": "Hoi\n"}

    def test_an_erasure_moves_the_version_on_and_is_in_the_history_once(self) -> None:
        """The erased instance's version moves on (a decision on an older read fails its version check) and the
        erasure is one history row (``$erase``: from = to = the state, actor, time, the new version, no personal
        data); its state, workflow and definition version stay; other instances are untouched; a missing id is
        passed over; all of it commits with the unit or not at all."""
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record("i1", name="Anna Jansen"))
            tx.update(_record("i1", state="submitted", version=2, name="Anna Jansen"), 1)
            tx.insert(_record("i2", name="Bob"))
        later = T0 + timedelta(days=30)
        watcher = _Watcher()  # a runtime's cache: told which instances to forget
        watch_erasures(store, watcher.forget)
        try:  # version, data and the $erase row commit with the rest of the unit, or not at all
            with store.transaction() as tx:
                tx.erase_personal_data(["i1"], actor="hr-ops", at=later)
                raise _Boom
        except _Boom:
            pass
        with store.read() as tx:
            got = tx.get("i1")
            assert got is not None and got.version == 2 and got.data["name"] == "Anna Jansen"
            assert tx.history("i1") == []
        with store.transaction() as tx:
            counts = tx.erase_personal_data(["i1", "gone"], actor="hr-ops", at=later, reason="retention")
        assert counts.instances == 1
        assert "i1" in watcher.forgotten[-1] and "i2" not in watcher.forgotten[-1]  # (a missing id may be there)
        with store.read() as tx:
            got = tx.get("i1")
            assert got is not None
            assert (got.state, got.version, got.workflow, got.definition_version) == ("submitted", 3, "declaration",
                                                                                       "v1")
            assert dict(got.data) == {"erased": True} and got.updated_at == later and not got.timers_pending
            erase = tx.history("i1")[-1]
            assert (erase.event, erase.from_state, erase.to_state, erase.actor, erase.at, erase.version,
                    erase.definition_version, dict(erase.explain)) == (
                "$erase", "submitted", "submitted", "hr-ops", later, 3, "v1", {"reason": "retention"})
            assert [h.event for h in tx.history("i1")].count("$erase") == 1
            assert tx.history("gone") == [] and tx.get("gone") is None
            other = tx.get("i2")
            assert other is not None and other.version == 1 and tx.history("i2") == []
        # a write decided on the read from before the erasure: refused, the erasure stays
        stale = _record("i1", state="approved", version=3, name="Anna Jansen")
        with store.transaction() as tx:
            try:
                tx.update(stale, 2)
            except ConflictError as exc:
                assert (exc.expected_version, exc.current_version, exc.current_state) == (2, 3, "submitted")
            else:
                raise AssertionError("a stale update after the erasure was written")
        with store.transaction() as tx:
            try:
                tx.update_many([(stale, 2, True)])
            except ConflictError:
                pass
            else:
                raise AssertionError("a stale update_many after the erasure was written")
        with store.read() as tx:
            got = tx.get("i1")
            assert got is not None and dict(got.data) == {"erased": True} and got.version == 3
            assert "Anna" not in repr(tx.history("i1"))

    def test_incidents_count_attempts_and_resolve(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            first = tx.add_incident(IncidentRecord("i1", "expire", "builtins.KeyError", "'x'", T0, T0, timer_id=7,
                                                   next_retry_at=T0 + timedelta(minutes=1)))
            later = T0 + timedelta(minutes=1)
            again = tx.add_incident(IncidentRecord("i1", "expire", "builtins.KeyError", "'y'", later, later,
                                                   timer_id=7))
            other = tx.add_incident(IncidentRecord("i2", "go", "builtins.ValueError", "v", T0, T0, actor="anna"))
        assert first.id == again.id and again.attempts == 2 and other.id != first.id
        with store.transaction() as tx:
            stored = tx.get_incident(first.id or 0)
            assert stored is not None and (stored.attempts, stored.message, stored.first_at) == (2, "'y'", T0)
            tx.set_incident(other.id or 0, "resolved", T0 + timedelta(hours=1), "fixed")
        with store.read() as tx:
            assert [i.id for i in tx.incidents("open")] == [first.id]
            assert [(i.status, i.note) for i in tx.incidents("resolved")] == [("resolved", "fixed")]
            assert [i.instance_id for i in tx.incidents(None, "i2")] == ["i2"]
            # by event (the tick asks for its phase's), oldest first
            assert [i.instance_id for i in tx.incidents(None, event="go")] == ["i2"]
            assert [i.id for i in tx.incidents("open", event="expire")] == [first.id]
            assert tx.incidents("open", event="go") == [] and tx.incidents(event="nothing") == []
            # any of several instances (the tick's batch members), oldest first
            assert [i.instance_id for i in tx.incidents(None, instance_ids=["i2", "i1", "nobody"])] == ["i1", "i2"]
            assert [i.instance_id for i in tx.incidents("open", event="expire",
                                                        instance_ids=[f"x{n}" for n in range(700)] + ["i1"])] == ["i1"]
            assert tx.incidents(instance_ids=[]) == []
            assert tx.get_incident(999) is None
        # a conditional change: only while the status is the expected one (of two resolvers, one changes it)
        with store.transaction() as tx:
            assert tx.set_incident(other.id or 0, "resolved", T0, "again", expected="open") is False
            assert tx.set_incident(first.id or 0, "resolved", T0, "by ops", expected="open") is True
            assert tx.set_incident(first.id or 0, "resolved", T0, "by ops2", expected="open") is False
            assert tx.set_incident(999, "resolved", T0, "nobody", expected="open") is False
        with store.read() as tx:
            assert [(i.id, i.note) for i in tx.incidents("resolved")] == [(first.id, "by ops"), (other.id, "fixed")]

    def test_a_cancel_ends_the_failed_timers_that_wait_for_a_person(self) -> None:
        """A failed timer with an open incident waits for a retry in its state: cancelling the instance's timers
        (its state is left) cancels it too; a failed timer whose incident is closed, or without one, stays."""
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record())
            for day in (1, 2, 3):
                tx.add_timer(TimerRecord("i1", "submitted", "expire", T0 + timedelta(days=day)))
        with store.transaction() as tx:
            waiting, closed, refused = sorted(t.id or 0 for t in tx.timers("i1"))
            tx.finish_timers([(t, "failed", T0, "") for t in (waiting, closed, refused)])
            tx.add_incident(IncidentRecord("i1", "expire", "builtins.KeyError", "'x'", T0, T0, timer_id=waiting))
            gone = tx.add_incident(IncidentRecord("i1", "expire", "builtins.KeyError", "'x'", T0, T0, timer_id=closed))
            tx.set_incident(gone.id or 0, "resolved", T0, "by hand")
            tx.add_incident(IncidentRecord("i2", "expire", "builtins.KeyError", "'x'", T0, T0, timer_id=refused))
            tx.add_timer(TimerRecord("i1", "submitted", "expire", T0 + timedelta(days=4)))
            assert tx.pending_timers(["i1"]) == {"i1": {waiting, max(t.id or 0 for t in tx.timers("i1"))}}
            assert tx.cancel_timers("i1", T0) == 2
            assert tx.cancel_timers("i1", T0) == 0
        with store.read() as tx:
            assert [t.status for t in tx.timers("i1")] == ["cancelled", "failed", "failed", "cancelled"]

    def test_a_due_batch_claimed_with_its_instances_and_what_a_cancel_would_change(self) -> None:
        """``claim_due_batch``: the timers ``claim_due_timers`` claims, their instances as they are now, and per
        instance how many timers a cancel would change: pending ones (claimed or not, due or not) and failed ones
        whose incident is open; not a failed one whose incident is closed, nor a fired one, nor another instance's."""
        store = self._store()
        with store.transaction() as tx:
            for name in ("i1", "i2", "i3", "i4"):
                tx.insert(_record(name, amount=len(name)))
            for day in (1, 2):
                tx.add_timer(TimerRecord("i1", "draft", "expire", T0 + timedelta(days=day)))
            tx.add_timer(TimerRecord("i2", "draft", "remind", T0 + timedelta(days=1), {"n": 1}))
            tx.add_timer(TimerRecord("i2", "draft", "expire", T0 + timedelta(days=30)))  # not due
            for day in (0, 0, 0, 1):
                tx.add_timer(TimerRecord("i3", "draft", "expire", T0 + timedelta(days=day)))
            tx.add_timer(TimerRecord("i4", "draft", "expire", T0 + timedelta(days=9)))  # not due: not claimed
        with store.transaction() as tx:
            waiting, closed, fired, due = sorted(t.id or 0 for t in tx.timers("i3"))
            tx.finish_timers([(waiting, "failed", T0, ""), (closed, "failed", T0, ""), (fired, "fired", T0, "")])
            tx.add_incident(IncidentRecord("i3", "expire", "builtins.KeyError", "'x'", T0, T0, timer_id=waiting))
            gone = tx.add_incident(IncidentRecord("i3", "expire", "builtins.KeyError", "'x'", T0, T0, timer_id=closed))
            tx.set_incident(gone.id or 0, "resolved", T0, "by hand")
            tx.update(replace(_record("i2", amount=7), state="submitted", version=2), 1)
        now = T0 + timedelta(days=5)
        with store.transaction() as tx:
            batch = tx.claim_due_batch(now, 3)  # i1's second timer is left for the next batch
            assert [(t.instance_id, t.event) for t in batch.timers] == [("i1", "expire"), ("i2", "remind"),
                                                                       ("i3", "expire")]
            assert dict(batch.timers[1].data) == {"n": 1} and batch.timers[2].id == due
            assert sorted(batch.instances) == ["i1", "i2", "i3"]
            second = batch.instances["i2"]
            assert (second.state, second.version, dict(second.data)) == ("submitted", 2, {"amount": 7})
            assert batch.instances["i1"] == tx.get("i1")
            assert batch.cancellable == {"i1": 2, "i2": 2, "i3": 2}
            assert {i: len(p) for i, p in tx.pending_timers(sorted(batch.instances)).items()} == batch.cancellable
            for timer in batch.timers:
                tx.finish_timer(timer.id or 0, "fired", now)
        with store.transaction() as tx:
            rest = tx.claim_due_batch(now, 10)
            assert [t.instance_id for t in rest.timers] == ["i1"] and rest.cancellable == {"i1": 1}
            tx.finish_timer(rest.timers[0].id or 0, "fired", now)
        with store.transaction() as tx:
            assert tx.claim_due_batch(now, 10) == DueBatch([], {}, {})

    def test_rows_of_a_declared_table_by_equality(self) -> None:
        store = self._store()
        table = "rw_definitions"  # any table declared on the shared metadata; packs name their own
        with store.transaction() as tx:
            rows = tx.rows(table)
            for name in ("b", "a", "c"):
                rows.insert({"kind": "Workflow", "name": name, "version": "v1", "source": {"n": name},
                             "created_at": T0})
        with store.transaction() as tx:
            rows = tx.rows(table)
            assert [r["name"] for r in rows.find({"kind": "Workflow"}, order_by="name")] == ["a", "b", "c"]
            assert [r["name"] for r in rows.find({"name": ["a", "c"]}, order_by="name")] == ["a", "c"]
            found = rows.first({"name": "b"})
            assert found is not None and found["source"] == {"n": "b"}
            assert rows.first({"name": "zz"}) is None
            assert rows.update({"name": "a"}, {"version": "v2"}) == 1
            assert rows.delete({"name": "c"}) == 1
        try:
            with store.transaction() as tx:
                tx.rows(table).update({"name": "b"}, {"version": "v9"})
                tx.rows(table).delete({"name": "a"})
                raise _Boom
        except _Boom:
            pass
        with store.read() as tx:
            assert sorted((r["name"], r["version"]) for r in tx.rows(table).find()) == [("a", "v2"), ("b", "v1")]

    def test_rows_the_same_shape_with_other_values(self) -> None:
        # a store may build a statement once per shape of match and values: the values must still decide
        store = self._store()
        table = "rw_definitions"
        with store.transaction() as tx:
            rows = tx.rows(table)
            for name, version in (("a", "v1"), ("b", "v1"), ("c", "v2")):
                rows.insert({"kind": "Workflow", "name": name, "version": version, "source": {}, "created_at": T0})
            for _ in range(2):  # the second round runs what the first built
                assert [r["name"] for r in rows.find({"version": "v1"}, order_by="name")] == ["a", "b"]
                assert [r["name"] for r in rows.find({"version": "v2"}, order_by="name")] == ["c"]
                assert [r["name"] for r in rows.find({"name": ["c"]})] == ["c"]
                assert [r["name"] for r in rows.find({"name": ["a", "b", "c"]}, order_by="name")] == ["a", "b", "c"]
                first = rows.first({"name": "c"})
                assert first is not None and first["version"] == "v2"
            assert rows.update({"name": "a"}, {"version": "v3"}) == 1
            assert rows.update({"name": "b"}, {"version": "v4"}) == 1
            assert rows.update({"name": "zz"}, {"version": "v5"}) == 0
            assert sorted((r["name"], r["version"]) for r in rows.find()) == [("a", "v3"), ("b", "v4"), ("c", "v2")]
            assert rows.delete({"name": ["a"]}) == 1
            assert rows.delete({"name": ["b", "c"]}) == 2
            assert rows.find() == []

    def test_bulk_insert_and_existing(self) -> None:
        store = self._store()
        records = [_record(f"b{n}") for n in range(3)]
        history = [HistoryEntry(r.id, "$start", "", "draft", "anna", T0, "v1", 1) for r in records]
        timers = [TimerRecord(r.id, "draft", "expire", T0 + timedelta(days=1)) for r in records]
        with store.transaction() as tx:
            tx.insert(_record("a0"))
            tx.insert_many(records, history, timers)
        with store.read() as tx:
            assert tx.existing(["a0", "b1", "b2", "zz"]) == {"a0", "b1", "b2"}
            assert [h.event for h in tx.history("b2")] == ["$start"]
            assert [t.status for t in tx.timers("b0")] == ["pending"]
            assert [r.id for r in tx.instances()] == ["a0", "b0", "b1", "b2"]

    def test_insert_starts_writes_what_insert_many_of_their_records_writes(self) -> None:
        """A store's optional ``insert_starts`` (the tick's batch of starts, ``StartShape``): the instances, history
        rows and timers of ``insert_many`` of each start's ``shape.records``, in the starts' order."""
        store = self._store()
        with store.read() as tx:
            if not hasattr(tx, "insert_starts"):
                return  # optional: the tick writes such starts' records with insert_many
        cet = timezone(timedelta(hours=1))
        timed = StartShape("declaration", "v1", "invited", "system", T0, "$start",
                           {"actor": {"id": "system", "roles": ["system"]}},
                           (("remind", datetime(2026, 1, 12, 9, 0, tzinfo=cet), {"n": 1}),
                            ("expire", T0 + timedelta(days=30), {})))
        plain = StartShape("leave", "v7", "draft", "anna", (T0 + timedelta(minutes=5)).astimezone(cet), "$start",
                           {"actor": {"id": "anna", "roles": []}})
        given: list[tuple[str, dict[str, Any], StartShape]] = [
            ("1", {"amount": 1, "items": [{"a": None}, 2.5]}, timed), ("2", {"amount": 2}, plain),
            ("3", {"amount": 3, "nested": {"x": [True]}}, timed), ("4", {}, plain)]
        made = [shape.records(f"m{n}", data) for n, data, shape in given]
        with store.transaction() as tx:
            tx.insert(_record("a0"))
            tx.insert_many([m[0] for m in made], [m[1] for m in made], [t for m in made for t in m[2]])
            tx.insert_starts([(f"s{n}", data, shape) for n, data, shape in given])  # type: ignore[attr-defined]
            tx.add_history(HistoryEntry("a0", "submit", "draft", "sent", "anna", T0, "v1", 2))
        with store.read() as tx:
            assert [r.id for r in tx.instances()] == ["a0", "m1", "m2", "m3", "m4", "s1", "s2", "s3", "s4"]
            history: list[HistoryEntry] = []
            timers: list[TimerRecord] = []
            for n, _, _ in given:
                started, twin = tx.get(f"s{n}"), tx.get(f"m{n}")
                assert started is not None and twin is not None and started == replace(twin, id=f"s{n}")
                assert [replace(h, instance_id="", id=None) for h in tx.history(f"s{n}")] == \
                    [replace(h, instance_id="", id=None) for h in tx.history(f"m{n}")]
                assert [replace(t, instance_id="", id=None) for t in tx.timers(f"s{n}")] == \
                    [replace(t, instance_id="", id=None) for t in tx.timers(f"m{n}")]
                history.extend(tx.history(f"s{n}"))
                timers.extend(tx.timers(f"s{n}"))
            assert [(t.event, t.status, dict(t.data)) for t in tx.timers("s3")] == [("remind", "pending", {"n": 1}),
                                                                                  ("expire", "pending", {})]
            second = tx.get("s2")
            assert tx.timers("s2") == [] and second is not None and not second.timers_pending
            for rows in (history, timers):  # the starts' order, where the store numbers its rows
                numbers = [row.id for row in rows]
                assert None in numbers or numbers == sorted(n for n in numbers if n is not None)
        try:
            with store.transaction() as tx:
                tx.insert_starts([("s5", {}, plain), ("s2", {}, plain)])  # type: ignore[attr-defined]
        except ConflictError:
            pass
        else:
            raise AssertionError("an id that exists must raise ConflictError")
        with store.read() as tx:
            assert tx.get("s5") is None and len(tx.history("s2")) == 1

    def test_audit_rows(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            tx.add_audit(AuditEntry(T0, "anna", "workflow.permission_denied", "i1", {"action": "approve"}))
            tx.add_audit(AuditEntry(T0, "root", "workflow.migrate", None, {}))
        with store.read() as tx:
            assert [a.action for a in tx.audit()] == ["workflow.permission_denied", "workflow.migrate"]
            only = tx.audit("i1")
        assert len(only) == 1 and only[0].actor == "anna" and only[0].detail == {"action": "approve"}

    def test_audit_rows_in_bulk_keep_their_order_and_roll_back(self) -> None:
        store = self._store()
        rows = [AuditEntry(T0 + timedelta(seconds=i), f"u{i}", "permission.denied", None, {"n": i}) for i in range(5)]
        with store.transaction() as tx:
            tx.add_audits(rows[:3])
            tx.add_audits([])
        try:
            with store.transaction() as tx:
                tx.add_audits(rows[3:])
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        with store.read() as tx:
            got = tx.audit()
        assert [(a.actor, a.detail["n"], a.at) for a in got] == [(f"u{i}", i, T0 + timedelta(seconds=i))
                                                                  for i in range(3)]

    def test_definitions_are_kept_once(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            tx.put_definition(DefinitionRecord("Workflow", "declaration", "v1", {"states": ["a"]}, T0))
            tx.put_definition(DefinitionRecord("Workflow", "declaration", "v1", {"states": ["b"]}, T0))
        with store.read() as tx:
            got = tx.get_definition("Workflow", "declaration", "v1")
            assert tx.get_definition("Workflow", "declaration", "v2") is None
        assert got is not None and dict(got.source) == {"states": ["a"]}

    # --- concurrency ---------------------------------------------------------------------------

    def test_locked_instances_are_not_changed_by_another_unit_until_the_locking_unit_ends(self) -> None:
        """``lock_instances``: a unit that locked an instance (missing ids passed over) and writes it later is not
        overtaken: another unit's version-checked update of it waits and then finds the version moved on."""
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record())
        locked = threading.Event()
        outcome: list[str] = []

        def other() -> None:
            assert locked.wait(10)
            try:
                with store.transaction() as tx:
                    tx.update(_record(state="rejected", version=2), expected_version=1)
                outcome.append("won")
            except ConflictError:
                outcome.append("conflict")

        thread = threading.Thread(target=other)
        thread.start()
        with store.transaction() as tx:
            tx.lock_instances(["nobody", "i1"])
            locked.set()
            time.sleep(0.3)  # the other unit tries now
            tx.update(_record(state="approved", version=2), expected_version=1)
        thread.join(30)
        assert outcome == ["conflict"]
        with store.read() as tx:
            got = tx.get("i1")
        assert got is not None and (got.state, got.version) == ("approved", 2)

    def test_concurrent_updates_one_wins(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            tx.insert(_record())
        barrier = threading.Barrier(2)
        outcomes: list[str] = []
        lock = threading.Lock()

        def worker(state: str) -> None:
            barrier.wait()
            try:
                with store.transaction() as tx:
                    tx.update(_record(state=state, version=2), expected_version=1)
                result = "won"
            except ConflictError as exc:
                result = f"conflict:{exc.current_state}"
            with lock:
                outcomes.append(result)

        threads = [threading.Thread(target=worker, args=(s,)) for s in ("approved", "rejected")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(o.split(":")[0] for o in outcomes) == ["conflict", "won"], outcomes
        with store.read() as tx:
            got = tx.get("i1")
        assert got is not None and got.version == 2
        assert outcomes[[o.startswith("conflict") for o in outcomes].index(True)] == f"conflict:{got.state}"
