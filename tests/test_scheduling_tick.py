"""tick: idempotent, crash-safe, catch-up, cancellation, workflows started once; SQLite file and PostgreSQL."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from regelwerk.bundle import load_bundle
from regelwerk.compiler import CompiledBundle, compile_bundle
from regelwerk.scheduling.employees import EmployeeDirectory
from regelwerk.scheduling.preview import preview
from regelwerk.scheduling.tables import scheduled_events, scheduled_items
from regelwerk.scheduling.tick import tick

ROOT = Path(__file__).resolve().parent.parent
SCHOOL = ROOT / "tests" / "scenarios" / "talent" / "schooljaar"
PLAN_AT = datetime(2026, 8, 20, tzinfo=UTC)  # planning moment of 2026-2027 passed, nothing due yet


@pytest.fixture(scope="module")
def compiled(registry: Any) -> CompiledBundle:
    return compile_bundle(load_bundle(SCHOOL), registry)


def teachers(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": f"t{i:05d}", "hire_date": "2015-08-01", "function": "docent", "manager": "dir",
             "groups": ["onderwijzend"], **extra} for i in range(n)]


def expected_keys(compiled: CompiledBundle, people: list[dict[str, Any]], now: datetime) -> set[str]:
    # everything arisen by ``now``, independent of the tick: the trajectories of the planned 2026-2027 year
    # and whatever has appeared (moments and requests appear on their own dates)
    window = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))
    return {r.key for r in preview(compiled, people, *window) if r.item_type == "trajectory" or r.due_at <= now}


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: Any, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tick.sqlite'}"
    else:
        yield request.getfixturevalue("pg_url")


def make_engine(compiled: CompiledBundle, url: str, registry: Any) -> Any:
    from regelwerk.runtime import Engine

    return Engine(compiled, store=url, registry=registry, clock=lambda: PLAN_AT)


def stored(url: str) -> list[tuple[str, str]]:
    sa_engine = sa.create_engine(url)
    try:
        with sa_engine.connect() as conn:
            return [(k, s) for k, s in conn.execute(sa.select(scheduled_items.c.key, scheduled_items.c.status))]
    finally:
        sa_engine.dispose()


def test_tick_twice_creates_nothing_twice(compiled: CompiledBundle, db_url: str, registry: Any) -> None:
    engine = make_engine(compiled, db_url, registry)
    try:
        people = teachers(30)
        EmployeeDirectory(engine.store.engine).upsert(people, PLAN_AT)
        phases: list[tuple[str, int, int]] = []
        first = tick(engine, compiled, PLAN_AT, batch_size=7, progress=lambda *p: phases.append(p))
        second = tick(engine, compiled, PLAN_AT, batch_size=7)
        assert first.total_created == len(expected_keys(compiled, people, PLAN_AT)) == 30
        assert first.employees_planned == 30
        assert phases[-1] == ("plan", 30, 30) and len(phases) == 5
        assert second.total_created == 0 and second.employees_planned == 0 and not second.activated
        keys = [k for k, _ in stored(db_url)]
        assert sorted(keys) == sorted(expected_keys(compiled, people, PLAN_AT))
        # at the start of the year: trajectories become active; on 1 October goal-setting appears (created that
        # day, not before) and waits for a manual start
        october = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
        summary = tick(engine, compiled, october)
        assert summary.activated == {"active": 30, "ready": 30} and +summary.created == {"moment": 30}
    finally:
        engine.close()


def test_the_plan_phase_stops_after_a_short_batch(compiled: CompiledBundle, db_url: str, registry: Any) -> None:
    engine = make_engine(compiled, db_url, registry)
    batches: list[str] = []
    stale_reads: list[str] = []

    def spy(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "rw_employees.plan_version IS NULL" in statement:
            stale_reads.append(statement)
        if (statement.lstrip().startswith("SELECT") and "rw_employees.id >" in statement
                and "count(" not in statement):
            batches.append(statement)

    sqlite = db_url.startswith("sqlite")
    try:
        EmployeeDirectory(engine.store.engine).upsert(teachers(30), PLAN_AT)
        sa.event.listen(engine.store.engine, "before_cursor_execute", spy)
        assert tick(engine, compiled, PLAN_AT, batch_size=7).employees_planned == 30
        assert len(batches) == 5  # 7, 7, 7, 7 and 2: the short one was the last, the table is not walked again
        # more stale plans than four batches: walked in id order (SQLite too)
        assert all("UNION ALL" not in statement for statement in batches)
        EmployeeDirectory(engine.store.engine).upsert(teachers(30, function="leraar"), PLAN_AT)  # all stale again
        batches.clear()
        assert tick(engine, compiled, PLAN_AT, batch_size=10).employees_planned == 30
        assert len(batches) == 4  # three full batches, then one that finds nothing
        # at most four batches' worth: SQLite reads them as ranges of their index
        assert all(("UNION ALL" in statement) == sqlite for statement in batches)
        # nothing stale: PostgreSQL asks no probe first, its one batch read finds none (SQLite counts, bounded)
        stale_reads.clear()
        assert tick(engine, compiled, PLAN_AT, batch_size=10).employees_planned == 0
        assert len(stale_reads) == 1 and ("FOR UPDATE" in stale_reads[0]) != sqlite
    finally:
        sa.event.remove(engine.store.engine, "before_cursor_execute", spy)
        engine.close()


def test_crash_half_way_then_rerun_misses_nothing(compiled: CompiledBundle, db_url: str, registry: Any) -> None:
    engine = make_engine(compiled, db_url, registry)
    try:
        people = teachers(25)
        EmployeeDirectory(engine.store.engine).upsert(people, PLAN_AT)
        cycle = compiled.get("DevelopmentCycle", "docenten")
        calls = {"n": 0}

        class Crashing:
            source_id = cycle.source_id
            version = cycle.version

            def plan(self, employee: Any, now: datetime) -> Any:
                calls["n"] += 1
                if calls["n"] == 15:
                    raise KeyboardInterrupt("power cut")  # the process stops (a plugin's error is an incident)
                return cycle.plan(employee, now)

        crashing = CompiledBundle("x", {("DevelopmentCycle", "docenten"): Crashing()}, {}, (), version=compiled.version)
        with pytest.raises(KeyboardInterrupt):
            tick(engine, crashing, PLAN_AT, batch_size=10)
        partial = stored(db_url)
        assert 0 < len(partial) < len(expected_keys(compiled, people, PLAN_AT))  # the first batch committed
        again = tick(engine, compiled, PLAN_AT, batch_size=10)
        assert again.employees_planned == 15
        assert sorted(k for k, _ in stored(db_url)) == sorted(expected_keys(compiled, people, PLAN_AT))
    finally:
        engine.close()


def test_workflows_start_once_and_catch_up_policies(compiled: CompiledBundle, db_url: str, registry: Any) -> None:
    engine = make_engine(compiled, db_url, registry)
    try:
        EmployeeDirectory(engine.store.engine).upsert(teachers(3), PLAN_AT)
        tick(engine, compiled, PLAN_AT)
        # down from 2 October until 2 April: the fixed feedback (1 Feb) and mid-year review (1 Mar) run once now
        late = datetime(2027, 4, 2, 8, 0, tzinfo=UTC)
        summary = tick(engine, compiled, late)
        assert summary.activated["started"] == 6
        again = tick(engine, compiled, late)
        assert not again.activated
        started = [k for k, s in stored(db_url) if s == "started"]
        assert len(started) == 6
        assert len(engine.instances()) == 6  # one instance per started item, ids derived from the keys
        with engine.store.engine.connect() as conn:
            events = conn.execute(sa.select(sa.func.count()).select_from(scheduled_events)
                                  .where(scheduled_events.c.event == "start")).scalar_one()
        assert events == 0  # the six appeared after the first tick: inserted as started, no change to audit
    finally:
        engine.close()


def test_skip_policy_drops_missed_occurrences_and_once_keeps_the_latest(tmp_path: Path, registry: Any) -> None:
    from regelwerk.scheduling.sources import Plan, PlannedItem

    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    sa_engine = sa.create_engine(url)
    EmployeeDirectory(sa_engine).setup()
    EmployeeDirectory(sa_engine).upsert([{"id": "e1"}])

    class Weekly:
        source_id = "Test/weekly"
        version = "1"

        def plan(self, employee: Any, now: datetime) -> Plan:
            items = []
            for policy in ("once", "skip", "all"):
                for week in range(4):
                    due = datetime(2026, 1, 5 + 7 * week, 9, tzinfo=UTC)
                    items.append(PlannedItem(f"w/{policy}/{week}", self.source_id, "reminder", employee.id, due,
                                             series=f"w/{policy}", catch_up=policy, start_mode="none"))
            return Plan(tuple(items))

    bundle = CompiledBundle("t", {("Test", "weekly"): Weekly()}, {}, ())
    tick(sa_engine, bundle, datetime(2026, 1, 1, tzinfo=UTC))
    summary = tick(sa_engine, bundle, datetime(2026, 1, 30, tzinfo=UTC))  # after all four weeks
    status = dict(stored(url))
    assert [status[f"w/once/{w}"] for w in range(4)] == ["skipped", "skipped", "skipped", "active"]
    assert [status[f"w/skip/{w}"] for w in range(4)] == ["skipped", "skipped", "skipped", "skipped"]
    assert [status[f"w/all/{w}"] for w in range(4)] == ["active"] * 4
    assert summary.skipped == 7
    sa_engine.dispose()


def _tick_process(url: str, bundle: str, barrier: Any, out: Any) -> None:
    from regelwerk.registry import load_registry
    from regelwerk.runtime import Engine

    registry = load_registry()
    compiled = compile_bundle(load_bundle(bundle), registry)
    moment = datetime(2026, 10, 2, 9, tzinfo=UTC)
    engine = Engine(compiled, store=url, registry=registry, clock=lambda: moment)
    barrier.wait()
    summary = tick(engine, compiled, moment, batch_size=20)
    out.put((summary.total_created, summary.employees_planned, sum(summary.activated.values())))
    engine.close()


@pytest.mark.postgres
def test_four_processes_tick_at_once_on_postgresql(compiled: CompiledBundle, pg_url: str, registry: Any) -> None:
    people = teachers(400)
    engine = make_engine(compiled, pg_url, registry)
    EmployeeDirectory(engine.store.engine).upsert(people, PLAN_AT)
    engine.close()
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_tick_process, args=(pg_url, str(SCHOOL), barrier, out)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    results = [out.get(timeout=5) for _ in procs]
    expected = expected_keys(compiled, people, datetime(2026, 10, 2, 9, tzinfo=UTC))  # the processes' moment
    keys = [k for k, _ in stored(pg_url)]
    assert len(keys) == len(set(keys)) == len(expected)
    assert set(keys) == expected
    assert sum(r[0] for r in results) == len(expected)  # every item created by exactly one process
    assert sum(r[1] for r in results) == 400  # every employee planned by exactly one process
    assert sum(1 for r in results if r[1]) >= 2  # the work was shared
    # activated: 400 trajectories + 400 goal-setting conversations (ready), each by one process
    assert sum(r[2] for r in results) == 800


def test_items_due_when_they_arise_are_inserted_in_their_final_status(tmp_path: Path, registry: Any) -> None:
    """A first tick after the due dates: the same statuses as a tick before them and one after, written with one
    INSERT per item (no planned row updated later, no audit event: nothing changed after creation)."""
    from regelwerk.scheduling.sources import Plan, PlannedItem

    class Weekly:
        source_id = "Test/weekly"
        version = "1"

        def plan(self, employee: Any, now: datetime) -> Plan:
            items = [PlannedItem(f"w/{policy}/{week}", self.source_id, "reminder", employee.id,
                                 datetime(2026, 1, 5 + 7 * week, 9, tzinfo=UTC), series=f"w/{policy}", catch_up=policy,
                                 start_mode=mode, workflow="wf" if mode != "none" else None)
                     for policy in ("once", "skip", "all") for week in range(4) for mode in ("none",)]
            items.append(PlannedItem("w/manual", self.source_id, "reminder", employee.id,
                                     datetime(2026, 1, 29, 9, tzinfo=UTC), start_mode="manual", workflow="wf"))
            items.append(PlannedItem("w/later", self.source_id, "reminder", employee.id,
                                     datetime(2026, 3, 1, 9, tzinfo=UTC), start_mode="none"))
            return Plan(tuple(items))

    bundle = CompiledBundle("t", {("Test", "weekly"): Weekly()}, {}, ())
    results = []
    for name, moments in (("two", [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 30, tzinfo=UTC)]),
                          ("one", [datetime(2026, 1, 30, tzinfo=UTC)])):
        url = f"sqlite:///{tmp_path / (name + '.sqlite')}"
        sa_engine = sa.create_engine(url)
        EmployeeDirectory(sa_engine).setup()
        EmployeeDirectory(sa_engine).upsert([{"id": "e1"}])
        summaries = [tick(sa_engine, bundle, moment, collect_keys=True) for moment in moments]
        with sa_engine.connect() as conn:
            events = [tuple(r) for r in conn.execute(sa.select(scheduled_events.c.item_key, scheduled_events.c.event))]
        results.append((dict(stored(url)), summaries[-1], events))
        sa_engine.dispose()
    (two, last_of_two, events_two), (one, only, events_one) = results
    assert one == two
    assert [one[f"w/once/{w}"] for w in range(4)] == ["skipped", "skipped", "skipped", "active"]
    assert one["w/manual"] == "ready" and one["w/later"] == "planned"
    assert (only.skipped, dict(only.activated)) == (last_of_two.skipped, dict(last_of_two.activated)) == (
        7, {"active": 5, "ready": 1})
    assert sorted(only.activated_keys) == sorted(last_of_two.activated_keys)
    assert len(events_two) == 13 and events_one == []  # planned first: 13 status changes; born final: none


def test_a_first_tick_after_the_due_dates_starts_each_workflow_once(compiled: CompiledBundle, db_url: str,
                                                                    registry: Any) -> None:
    from regelwerk.scheduling.workflows import instance_id_for

    engine = make_engine(compiled, db_url, registry)
    try:
        EmployeeDirectory(engine.store.engine).upsert(teachers(3), PLAN_AT)
        late = datetime(2027, 4, 2, 8, 0, tzinfo=UTC)
        summary = tick(engine, compiled, late, collect_keys=True)
        started = sorted(k for k, s in stored(db_url) if s == "started")
        assert started and summary.activated["started"] == len(started) == len(engine.instances())
        assert sorted(summary.activated_keys) == sorted(k for k, s in stored(db_url)
                                                        if s not in {"planned", "skipped", "cancelled"})
        with engine.store.engine.connect() as conn:
            ids = dict(conn.execute(sa.select(scheduled_items.c.key, scheduled_items.c.instance_id)
                                    .where(scheduled_items.c.status == "started")).all())
        assert ids == {k: instance_id_for(k) for k in started}
        assert {i.id for i in engine.instances()} == set(ids.values())
        again = tick(engine, compiled, late)
        assert not again.activated and not again.total_created and len(engine.instances()) == len(started)
        assert again.employees_planned == 0  # the plan stamps were written (their updated_at guard matched)
    finally:
        engine.close()


def test_a_started_item_derives_its_instance_id_once(compiled: CompiledBundle, tmp_path: Path, registry: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The tick needs a started item's id for its status, for the batch's existence query and for the start: the
    hash of its key is made once (``instance_id_for`` is a pure function of the key, kept)."""
    import hashlib

    from regelwerk.scheduling import workflows

    clear = getattr(workflows.instance_id_for, "cache_clear", None)
    if clear is not None:
        clear()  # keys an earlier test hashed are hashed again here
    hashed: list[bytes] = []
    real = hashlib.sha256

    def counting(data: bytes = b"", **kwargs: Any) -> Any:
        hashed.append(bytes(data))
        return real(data, **kwargs)

    url = f"sqlite:///{tmp_path / 'ids.sqlite'}"
    engine = make_engine(compiled, url, registry)
    try:
        EmployeeDirectory(engine.store.engine).upsert(teachers(3), PLAN_AT)
        monkeypatch.setattr(hashlib, "sha256", counting)
        tick(engine, compiled, datetime(2027, 4, 2, 8, 0, tzinfo=UTC))
        monkeypatch.undo()
        started = [k for k, s in stored(url) if s == "started"]
        assert started and len(engine.instances()) == len(started)
        assert {key: hashed.count(key.encode()) for key in started} == dict.fromkeys(started, 1)
    finally:
        engine.close()


def test_a_batchs_plan_stamps_skip_an_employee_changed_since_it_was_read(compiled: CompiledBundle, db_url: str,
                                                                        registry: Any) -> None:
    """The stamps of a batch (on PostgreSQL one statement over arrays, else one executemany) write the version and
    next_due of each employee still as read; one whose facts changed since (its updated_at moved) stays stale."""
    from regelwerk.scheduling.tables import employees
    from regelwerk.scheduling.tick import _plan_statements, _stamp

    engine = make_engine(compiled, db_url, registry)
    try:
        EmployeeDirectory(engine.store.engine).upsert(teachers(3), PLAN_AT)
        sa_engine = engine.store.engine
        pg = sa_engine.dialect.name == "postgresql"
        with sa_engine.begin() as conn:
            # as the plan phase reads them: SQLite's stamps as stored text (compared as text), PostgreSQL's parsed
            seen = employees.c.updated_at if pg else sa.type_coerce(employees.c.updated_at, sa.String)
            read = {i: at for i, at in conn.execute(sa.select(employees.c.id, seen))}
            conn.execute(employees.update().where(employees.c.id == "t00001")
                         .values(updated_at=PLAN_AT.replace(tzinfo=None) + timedelta(seconds=1)))
            due = datetime(2026, 10, 1, 6, 0)
            _stamp(conn, _plan_statements(pg), "v1", [
                {"b_id": i, "b_seen": read[i], "b_version": "v1", "b_next": due if i != "t00002" else None}
                for i in sorted(read)])
        with sa_engine.connect() as conn:
            got = {i: (v, n) for i, v, n in conn.execute(sa.select(employees.c.id, employees.c.plan_version,
                                                                   employees.c.next_due))}
        assert got == {"t00000": ("v1", due), "t00001": (None, None), "t00002": ("v1", None)}
    finally:
        engine.close()


def test_the_stale_plans_are_read_in_id_order_batch_by_batch(compiled: CompiledBundle, db_url: str,
                                                              registry: Any) -> None:
    """The plan phase's reads find exactly the stale plans: no version, an older or newer bundle's, or this one with
    next_due reached (not one with next_due ahead or none); in id order after the last batch's, a batch at a time
    (on SQLite as four ranges of the index (plan_version, next_due, id) or walked in id order, on PostgreSQL one
    filter)."""
    from regelwerk.scheduling.tables import employees
    from regelwerk.scheduling.tick import _plan_statements

    now = datetime(2026, 9, 1, 6, 0)
    states = {"t00000": (None, None), "t00001": ("v0", now + timedelta(days=9)), "t00002": ("v2", None),
              "t00003": ("v1", now), "t00004": ("v1", now + timedelta(seconds=1)), "t00005": ("v1", None),
              "t00006": ("v1", now - timedelta(days=30)), "t00007": (None, now + timedelta(days=1))}
    engine = make_engine(compiled, db_url, registry)
    try:
        EmployeeDirectory(engine.store.engine).upsert(teachers(len(states)), PLAN_AT)
        sa_engine = engine.store.engine
        statements = _plan_statements(sa_engine.dialect.name == "postgresql")
        with sa_engine.begin() as conn:
            for ident, (version, due) in states.items():
                conn.execute(employees.update().where(employees.c.id == ident)
                             .values(plan_version=version, next_due=due))
        params = {"p_version": "v1", "p_now": now, "p_last": ""}
        with sa_engine.begin() as conn:
            assert conn.execute(statements["count"], params).scalar_one() == 6
            if "few" in statements:  # SQLite: counted up to a limit
                assert [conn.execute(statements["few"], {**params, "p_limit": n}).scalar_one() for n in (1, 5, 9)
                        ] == [1, 5, 6]
            for read in ("batch", "walk"):  # as ranges of the index (SQLite) and in id order: the same batches
                batches, last = [], ""
                while True:
                    rows = conn.execute(statements[read], {**params, "p_last": last, "p_limit": 2}).all()
                    if not rows:
                        break
                    batches.append([row.id for row in rows])
                    last = rows[-1].id
                assert batches == [["t00000", "t00001"], ["t00002", "t00003"], ["t00006", "t00007"]], read
        with sa_engine.begin() as conn:
            conn.execute(employees.update().values(plan_version="v1", next_due=now + timedelta(days=1)))
            assert conn.execute(statements["count"], params).scalar_one() == 0
            assert conn.execute(statements["batch"], {**params, "p_limit": 2}).all() == []
            assert conn.execute(statements["walk"], {**params, "p_limit": 2}).all() == []
    finally:
        engine.close()


def test_sqlite_reads_the_stale_plans_from_their_index(tmp_path: Path) -> None:
    """Most days few plans are stale: SQLite reads them from the index (plan_version, next_due, id), four ranges,
    and never walks every employee (a scan, or the primary key's index in id order)."""
    from regelwerk.scheduling.tick import _plan_statements
    from regelwerk.store.sql import create_sa_engine
    from regelwerk.store.tables import metadata

    sa_engine = create_sa_engine(f"sqlite:///{tmp_path / 'plan.sqlite'}")
    try:
        metadata.create_all(sa_engine)
        EmployeeDirectory(sa_engine).upsert(teachers(50), PLAN_AT)
        statements = _plan_statements(False)
        params = {"p_version": "v1", "p_now": datetime(2026, 9, 1), "p_last": "", "p_limit": 500}
        with sa_engine.connect() as conn:
            for name in ("batch", "count", "few"):
                compiled_sql = statements[name].compile(dialect=conn.dialect)
                bound = compiled_sql.construct_params(params)
                args = [bound[n] for n in compiled_sql.positiontup]
                plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled_sql}", tuple(args))]
                employee_reads = [step for step in plan if "rw_employees" in step]
                assert employee_reads, plan
                assert all("ix_rw_employees_stale" in step or "(id=?)" in step for step in employee_reads), (name, plan)
                assert sum("ix_rw_employees_stale" in step for step in employee_reads) == 4, (name, plan)
    finally:
        sa_engine.dispose()


def test_a_store_directory_reads_stored_payloads_by_subject_or_by_key(compiled: CompiledBundle, db_url: str,
                                                                      registry: Any) -> None:
    """``StoreDirectory.stored``: the items of a source and type of the subjects (not cancelled or closed), with
    the fields asked for; with ``keys`` only those keys' items, and only of the subjects."""
    from regelwerk.scheduling.directory import StoreDirectory

    engine = make_engine(compiled, db_url, registry)
    at = PLAN_AT.replace(tzinfo=None)
    rows = [("a/1", "src", "trajectory", "e1", "planned", '{"timing": {"m": "P1W"}, "x": 1}'),
            ("a/2", "src", "trajectory", "e1", "cancelled", '{"timing": {"m": "P2W"}}'),
            ("a/3", "src", "trajectory", "e2", "active", '{"x": 2}'),
            ("a/4", "other", "trajectory", "e2", "planned", '{"timing": {}}'),
            ("a/5", "src", "moment", "e2", "planned", '{"timing": {}}'),
            ("a/6", "src", "trajectory", "e3", "closed", '{"timing": {}}'),
            ("a/7", "src", "trajectory", "e4", "planned", '{"timing": null}')]
    try:
        with engine.store.engine.begin() as conn:
            conn.execute(scheduled_items.insert(), [
                {"key": k, "source": s, "item_type": t, "subject": subject, "status": status, "payload": payload,
                 "series": k, "due_at": at, "created_at": at, "updated_at": at}
                for k, s, t, subject, status, payload in rows])
        with engine.store.engine.connect() as conn:
            directory = StoreDirectory(conn)
            subjects = ["e1", "e2", "e3", "e4"]
            assert directory.stored("src", "trajectory", subjects, fields=("timing",)) == {
                "a/1": {"timing": {"m": "P1W"}}, "a/3": {}, "a/7": {}}
            assert directory.stored("src", "trajectory", ["e2"]) == {"a/3": {"x": 2}}
            keys = ["a/1", "a/2", "a/3", "a/4", "a/5", "a/6", "a/7", "a/9"]
            assert directory.stored("src", "trajectory", ["e1", "e3"], fields=("timing",), keys=keys) == {
                "a/1": {"timing": {"m": "P1W"}}}
            assert directory.stored("src", "trajectory", subjects, keys=["a/3", "a/7"]) == {
                "a/3": {"x": 2}, "a/7": {"timing": None}}
            assert directory.stored("src", "trajectory", subjects, keys=[]) == {}
    finally:
        engine.close()


@pytest.mark.postgres
def test_postgresql_items_another_writer_inserted_meanwhile_are_counted_exactly(compiled: CompiledBundle,
                                                                               pg_url: str, registry: Any) -> None:
    """PostgreSQL writes a batch's new items with COPY inside a savepoint. A key another writer inserted after the
    batch read its keys (READ COMMITTED: a host through the store, a digest, another employee's plan) makes the
    COPY fail: its savepoint rolls back and the rows go in with ``ON CONFLICT DO NOTHING .. RETURNING``: the other
    writer's row is kept as it wrote it, the summary counts exactly what this tick created, and the tick goes on.
    Without a conflict the COPY writes them all (the counts as before)."""
    from regelwerk.store import bulk

    engine = make_engine(compiled, pg_url, registry)
    people = teachers(6)
    expected = expected_keys(compiled, people, PLAN_AT)
    taken: list[str] = []
    copied: list[int | None] = []
    original = bulk.copy_new

    def meanwhile(conn: Any, statement: Any, rows: Any) -> int | None:
        if not taken:  # another writer commits one of the batch's keys now
            row = {**rows[0], "payload": '{"by": "someone else"}'}
            taken.append(row["key"])
            other = sa.create_engine(pg_url)
            try:
                with other.begin() as writer:
                    writer.execute(scheduled_items.insert(), [row])
            finally:
                other.dispose()
        try:
            result = original(conn, statement, rows)
        except sa.exc.IntegrityError:
            copied.append(None)
            raise
        copied.append(result)
        return result

    try:
        EmployeeDirectory(engine.store.engine).upsert(people, PLAN_AT)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(bulk, "copy_new", meanwhile)
            first = tick(engine, compiled, PLAN_AT, batch_size=3)
        assert copied == [None, 3]  # the first batch's COPY met the key (its rows went in with ON CONFLICT)
        assert first.employees_planned == 6
        assert first.total_created == len(expected) - 1
        assert sorted(k for k, _ in stored(pg_url)) == sorted(expected)
        with engine.store.engine.connect() as conn:
            payload = conn.execute(sa.select(scheduled_items.c.payload).where(scheduled_items.c.key == taken[0]))
            assert payload.scalar_one() == '{"by": "someone else"}'
        assert tick(engine, compiled, PLAN_AT).total_created == 0
    finally:
        engine.close()
