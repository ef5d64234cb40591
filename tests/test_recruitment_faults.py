"""The recruitment pack's write paths under faults: a move racing the AVG erasure of its candidate, the retention
sweep under concurrent workers (threads; SQLite file and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from regelwerk.actors import Actor
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.errors import TransitionNotAllowed
from regelwerk.runtime import Engine
from regelwerk.store.sql import SqlStore
from regelwerk.workflows.ports import RoleTable
from regelwerk_packs.recruitment.service import Recruitment
from test_recruitment_runtime import BEA, STANDARD, Clock, _dump

INTAKE = RoleTable({"register": ["intake"]})


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'r.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def services(url: str, registry: Any) -> Iterator[tuple[Recruitment, Recruitment]]:
    """Two services on one store: one engine each (two workers), sharing the compiled bundle and clock."""
    clock = Clock()
    compiled = compile_bundle(load_bundle(STANDARD), registry)
    stores = [SqlStore(url), SqlStore(url)]
    stores[0].setup()
    pair = [Recruitment(Engine(compiled, store=store, registry=registry, clock=clock, permissions=INTAKE))
            for store in stores]
    yield pair[0], pair[1]
    for store in stores:
        store.close()


def _move_while_erased(mover: Recruitment, eraser: Recruitment, monkeypatch: pytest.MonkeyPatch,
                       status: str, note: str) -> BaseException | None:
    """``mover`` moves zoe in one thread; it has read her when ``eraser`` erases her (AVG bulk delete) in another,
    and fires after the erasure committed. The move's outcome (its exception, or None)."""
    read, erased = threading.Event(), threading.Event()
    original = Recruitment._candidate_with_vacancy

    def reads_then_waits(self: Recruitment, candidate_id: str) -> Any:
        found = original(self, candidate_id)
        if self is mover:
            read.set()
            assert erased.wait(20)
        return found

    monkeypatch.setattr(Recruitment, "_candidate_with_vacancy", reads_then_waits)
    outcome: list[BaseException | None] = []

    def move() -> None:
        try:
            mover.move("tom", "zoe", status, note=note)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - the outcome is the test's to judge
            outcome.append(exc)

    def erase() -> None:
        assert read.wait(20)
        try:
            assert eraser.bulk_delete(BEA, ["zoe"], preview=False) == ["zoe"]
        finally:
            erased.set()

    threads = [threading.Thread(target=move), threading.Thread(target=erase)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcome, "the move did not finish"
    return outcome[0]


@pytest.mark.parametrize("workers", ["one engine", "two engines"])
@pytest.mark.parametrize("status", ["on_hold", "interview_1"], ids=["no-mail", "with-mail"])
def test_a_move_racing_the_erasure_of_its_candidate_writes_nothing_personal_back(
        services: tuple[Recruitment, Recruitment], monkeypatch: pytest.MonkeyPatch, workers: str,
        status: str) -> None:
    """A recruiter moves a candidate (with a note about her) while an administrator erases her (AVG): the move
    read her before the erasure committed and fires after it. The move is refused and nothing of hers is in the
    store afterwards. Before, a move into a status without a mail was a transition on the erased instance: the
    cached or re-read instance's version was the same, so the fire wrote its data (the note) back over the erasure
    and kept the note in a new history row, a live instance of nobody. The pack's ``sync_status`` then refused
    (the candidate is gone); since the core's erasure moves the version on and an erased instance takes no more
    events, the core refuses it first (the fire decided on the cached record fails its claim, and the erased
    record is refused)."""
    first, second = services
    mover = first
    eraser = first if workers == "one engine" else second
    vid = first.open_vacancy(BEA, title="Kok", function="kok", department="keuken", manager="mo", team=["tom"])
    first.apply(vid, first_name="Zoë", last_name="Uniekenaam", email="zoe@example.nl", candidate_id="zoe")
    first.move("tom", "zoe", "screening")  # the mover's engine holds the instance as it was
    outcome = _move_while_erased(mover, eraser, monkeypatch, status, note="Zoë Uniekenaam belt terug op 0612345678")
    assert isinstance(outcome, TransitionNotAllowed) and "erased" in str(outcome), outcome
    dump = _dump(first)
    for personal in ("Uniekenaam", "zoe@example.nl", "0612345678", "Zoë"):
        assert personal not in dump, personal
    [instance] = first.engine.instances()
    assert (instance.state, dict(instance.data)) == ("screening", {"erased": True})
    # the erasure is in the history once, with who and when (the engines' clock) and why, nothing of hers
    last = first.engine.history(instance.id)[-1]
    assert (last.event, last.from_state, last.to_state, last.actor, last.version, dict(last.explain)) == (
        "$erase", "screening", "screening", Actor.of(BEA).id, instance.version, {"reason": "bulk_delete"})
    assert last.at == first.engine.clock()
    assert [h.event for h in first.engine.history(instance.id)].count("$erase") == 1


def _pool(rec: Recruitment, count: int) -> None:
    vid = rec.open_vacancy(BEA, title="Kok", function="kok", department="keuken", manager="mo", team=["tom"])
    for i in range(count):
        rec.apply(vid, first_name=f"Pool{i}", last_name="Poolnaam", email=f"pool{i}@example.nl", consent=True,
                  candidate_id=f"p{i}")
        rec.move("tom", f"p{i}", "rejected")


def _set_email(rec: Recruitment, candidate_id: str, email: str) -> None:
    with rec.engine.store.transaction() as tx:  # a row written before the intake checked addresses (an import)
        assert tx.rows("rw_candidates").update({"id": candidate_id}, {"email": email}) == 1


def _renewal_mails(rec: Recruitment) -> list[str]:
    with rec.engine.store.read() as tx:
        return sorted(m.subject_ref or "" for m in tx.outbox() if m.template == "toestemming-verlengen")


def test_one_candidate_whose_renewal_mail_fails_does_not_stall_the_others(
        services: tuple[Recruitment, Recruitment]) -> None:
    """The consent-renewal sweep (a tick task) mails a chunk of candidates in one transaction. One candidate whose
    mail cannot be written (an address the outbox refuses, from a row imported before the intake checked them) is
    that candidate's incident: the others of its chunk are asked, and it is tried again on the next tick, which
    resolves the incident once it goes. Before, the whole chunk rolled back and the task was one incident, every
    tick: nobody in that chunk was ever asked to renew."""
    rec, _ = services
    _pool(rec, 5)
    _set_email(rec, "p1", "pool1@example.nl\r\nBcc: x@example.nl")
    clock = rec.engine.clock
    clock.now += timedelta(weeks=49)  # inside the consented rule's renewal window
    summary = rec.engine.tick(clock.now)
    task = next(iter(summary.tasks.values()))
    assert task.get("renewals_requested") == 4, task
    assert _renewal_mails(rec) == [f"candidate:p{i}" for i in (0, 2, 3, 4)]
    [incident] = rec.engine.incidents()
    assert (incident.instance_id, incident.event) == ("cand-p1", "recruitment:consent_renewal")
    # the next tick tries it again (still failing: the same incident, one more attempt)
    clock.now += timedelta(days=1)
    rec.engine.tick(clock.now)
    [incident] = rec.engine.incidents()
    assert incident.attempts == 2 and len(_renewal_mails(rec)) == 4
    _set_email(rec, "p1", "pool1@example.nl")
    clock.now += timedelta(days=1)
    task = next(iter(rec.engine.tick(clock.now).tasks.values()))
    assert task.get("renewals_requested") == 1, task
    assert _renewal_mails(rec) == [f"candidate:p{i}" for i in range(5)]
    assert rec.engine.incidents() == []


def test_two_workers_sweeping_at_once_erase_and_ask_each_candidate_once(
        services: tuple[Recruitment, Recruitment]) -> None:
    """Two workers run the retention task at the same moment (two engines, threads, small chunks): every due
    candidate is erased once and logged once, every consenting candidate is asked once (one mail)."""
    first, second = services
    vid = first.open_vacancy(BEA, title="Kok", function="kok", department="keuken", manager="mo", team=["tom"])
    for i in range(12):
        first.apply(vid, first_name=f"Weg{i}", last_name="Wegnaam", email=f"weg{i}@example.nl", candidate_id=f"r{i}")
        first.move("tom", f"r{i}", "rejected")
    for i in range(12):
        first.apply(vid, first_name=f"Pool{i}", last_name="Poolnaam", email=f"pool{i}@example.nl", consent=True,
                    candidate_id=f"p{i}")
        first.move("tom", f"p{i}", "rejected")
    first.engine.clock.now += timedelta(weeks=49)
    barrier = threading.Barrier(2)
    reports: list[Any] = []
    errors: list[BaseException] = []

    def sweep(rec: Recruitment) -> None:
        try:
            barrier.wait(10)
            reports.append(rec.retention_sweep(chunk=3))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sweep, args=(rec,)) for rec in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and len(reports) == 2
    assert sum(r.deleted for r in reports) == 12 and sum(r.renewals_requested for r in reports) == 12
    with first.engine.store.read() as tx:
        logged = tx.connection.exec_driver_sql("SELECT count(*) FROM rw_retention_log").scalar()
    assert logged == 12
    assert _renewal_mails(first) == sorted(f"candidate:p{i}" for i in range(12))
    assert "Wegnaam" not in _dump(first)


def _sweep_killed_at(url: str, registry: Any, now: Any, method: str, call: int) -> None:
    """A worker's retention sweep (chunks of 2) whose process kills itself (SIGKILL) at the ``call``-th call of
    ``SqlCandidateStore.<method>``: inside a chunk's transaction before its commit (erase, mark_renewal_requested)
    or at the start of the next one, after a commit (next_due, next_renewals)."""
    import os
    import signal

    from regelwerk_packs.recruitment.sqlstore import SqlCandidateStore

    original = getattr(SqlCandidateStore, method)
    calls = iter(range(1, 1000))

    def killing(self: Any, *args: Any, **kwargs: Any) -> Any:
        if next(calls) == call:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kwargs)

    setattr(SqlCandidateStore, method, killing)
    store = SqlStore(url)
    clock = Clock()
    clock.now = now
    engine = Engine(compile_bundle(load_bundle(STANDARD), registry), store=store, registry=registry, clock=clock,
                    permissions=INTAKE)
    Recruitment(engine).retention_sweep(chunk=2)


@pytest.mark.parametrize(("method", "call"), [("erase", 2), ("next_due", 3), ("mark_renewal_requested", 2),
                                              ("next_renewals", 3)],
                         ids=["erasure-before-commit", "erasure-after-commit", "renewal-before-commit",
                              "renewal-after-commit"])
def test_a_sweep_killed_mid_way_and_run_again_erases_logs_and_asks_each_candidate_once(
        services: tuple[Recruitment, Recruitment], url: str, registry: Any, method: str, call: int) -> None:
    """SIGKILL in a worker's retention sweep, inside a chunk's transaction or just after its commit; the next sweep
    finishes the work: every due candidate erased and logged once, every consenting candidate mailed once."""
    import multiprocessing
    import signal

    rec, _ = services
    vid = rec.open_vacancy(BEA, title="Kok", function="kok", department="keuken", manager="mo", team=["tom"])
    for i in range(7):
        rec.apply(vid, first_name=f"Weg{i}", last_name="Wegnaam", email=f"weg{i}@example.nl", candidate_id=f"r{i}")
        rec.move("tom", f"r{i}", "rejected")
    for i in range(7):
        rec.apply(vid, first_name=f"Pool{i}", last_name="Poolnaam", email=f"pool{i}@example.nl", consent=True,
                  candidate_id=f"p{i}")
        rec.move("tom", f"p{i}", "rejected")
    rec.engine.clock.now += timedelta(weeks=49)
    child = multiprocessing.get_context("fork").Process(
        target=_sweep_killed_at, args=(url, registry, rec.engine.clock.now, method, call))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    rec.retention_sweep(chunk=2)
    with rec.engine.store.read() as tx:
        logged = tx.connection.exec_driver_sql("SELECT count(*) FROM rw_retention_log").scalar()
        left = tx.connection.exec_driver_sql("SELECT count(*) FROM rw_candidates").scalar()
    assert (logged, left) == (7, 7)
    assert _renewal_mails(rec) == sorted(f"candidate:p{i}" for i in range(7))
    assert "Wegnaam" not in _dump(rec)


def test_a_bulk_delete_racing_the_sweep_logs_each_erasure_once(services: tuple[Recruitment, Recruitment],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """An administrator bulk-deletes candidates the retention sweep (another worker) erases at the same moment: the
    bulk delete has read them when the sweep commits. Each erasure is in the anonymous retention log once. Before,
    on PostgreSQL the bulk delete's DELETE found the rows gone (it read them without a lock) and logged them all
    again, and said it had deleted them."""
    first, second = services
    vid = first.open_vacancy(BEA, title="Kok", function="kok", department="keuken", manager="mo", team=["tom"])
    ids = [f"r{i}" for i in range(4)]
    for cid in ids:
        first.apply(vid, first_name="Weg", last_name="Wegnaam", email=f"{cid}@example.nl", candidate_id=cid)
        first.move("tom", cid, "rejected")
    first.engine.clock.now += timedelta(weeks=49)
    read, swept = threading.Event(), threading.Event()
    from regelwerk_packs.recruitment.sqlstore import SqlCandidateStore

    original = SqlCandidateStore.candidates_by_id

    def reads_then_waits(self: Any, *args: Any, **kwargs: Any) -> Any:
        rows = original(self, *args, **kwargs)
        if threading.current_thread().name == "bulk":
            read.set()
            swept.wait(3)  # the sweep commits now, unless the rows this read locked make it wait
        return rows

    monkeypatch.setattr(SqlCandidateStore, "candidates_by_id", reads_then_waits)
    outcome: dict[str, Any] = {}

    def bulk() -> None:
        outcome["bulk"] = first.bulk_delete(BEA, ids, preview=False)

    def sweep() -> None:
        assert read.wait(10)
        outcome["sweep"] = second.retention_sweep()
        swept.set()

    threads = [threading.Thread(target=bulk, name="bulk"), threading.Thread(target=sweep, name="sweep")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(outcome["bulk"]) + outcome["sweep"].deleted == 4
    with first.engine.store.read() as tx:
        logged = tx.connection.exec_driver_sql("SELECT count(*) FROM rw_retention_log").scalar()
    assert logged == 4
    assert "Wegnaam" not in _dump(first)


@pytest.mark.parametrize("eraser", ["sweep", "bulk delete"])
def test_a_move_and_an_erasure_of_its_candidate_at_once_do_not_deadlock(
        services: tuple[Recruitment, Recruitment], eraser: str) -> None:
    """A move has claimed the candidate's instance and is about to update the candidate row when an erasure (the
    retention sweep or a bulk delete, another worker) starts on that candidate. Both finish: the move first, then
    the erasure of what is still to be erased. Before, on PostgreSQL the erasure locked the candidate rows first and
    then waited for the instance, the move waited for the candidate row: a deadlock, and the move failed as an
    incident (``DeadlockDetected``) whose data kept the move's input after the erasure."""
    mover, other = services
    vid = mover.open_vacancy(BEA, title="Kok", function="kok", department="keuken", manager="mo", team=["tom"])
    mover.apply(vid, first_name="Zoë", last_name="Uniekenaam", email="zoe@example.nl", candidate_id="zoe")
    mover.move("tom", "zoe", "rejected")
    mover.engine.clock.now += timedelta(weeks=49)
    claimed = threading.Event()

    @sa.event.listens_for(mover.engine.store.engine, "before_cursor_execute")
    def hold(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if threading.current_thread().name == "mover" and statement.lstrip().upper().startswith("UPDATE RW_CANDIDATES"):
            claimed.set()
            time.sleep(1.5)  # the instance is claimed; the erasure starts now

    outcome: dict[str, Any] = {}

    def move() -> None:
        try:
            outcome["move"] = mover.move("tom", "zoe", "talent_pool", note="belt terug")
        except BaseException as exc:  # noqa: BLE001 - judged below
            outcome["move"] = exc

    def erase() -> None:
        assert claimed.wait(10)
        try:
            if eraser == "sweep":
                outcome["erase"] = other.retention_sweep().deleted
            else:
                outcome["erase"] = len(other.bulk_delete(BEA, ["zoe"], preview=False))
        except BaseException as exc:  # noqa: BLE001 - judged below
            outcome["erase"] = exc

    threads = [threading.Thread(target=move, name="mover"), threading.Thread(target=erase, name="eraser")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcome["move"] == "talent_pool", outcome
    assert outcome["erase"] in (0, 1), outcome
    assert mover.engine.incidents() == []
    if outcome["erase"] == 1:
        assert "belt terug" not in _dump(mover) and "Uniekenaam" not in _dump(mover)
