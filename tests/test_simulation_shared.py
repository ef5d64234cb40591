"""The simulation's shared unit of work: lazy savepoints and deferred releases keep what commits and rolls back.

``shared_unit`` joins every ``connect()``/``begin()`` of the engine to one transaction, a port's unit being a
savepoint. A savepoint is sent only before the first statement that may write, and a committed savepoint's
RELEASE goes with the next SAVEPOINT. These tests
check the statements sent and, on both backends, that exactly the right rows survive.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from regelwerk.simulation import shared
from regelwerk.simulation.shared import shared_unit
from regelwerk.store.sql import create_sa_engine

ROWS = sa.Table("rw_test_rows", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
OTHER = sa.Table("rw_test_other", ROWS.metadata, sa.Column("id", sa.Integer, primary_key=True))
#: written behind as the store's history and outbox rows are: one statement object, so the rows go in one executemany
INSERT_ROW = ROWS.insert()


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    url = f"sqlite:///{tmp_path / 's.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    sa_engine = create_sa_engine(url)
    ROWS.metadata.create_all(sa_engine)
    yield sa_engine
    sa_engine.dispose()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every savepoint command sent to the driver, in order."""
    seen: list[str] = []
    original = shared._driver

    def spy(state: Any, *statements: str) -> None:
        seen.extend(statements)
        original(state, *statements)

    monkeypatch.setattr(shared, "_driver", spy)
    return seen


def _ids(engine: Any) -> list[int]:
    with type(engine).connect(engine) as conn:  # not a joined connection
        return sorted(conn.execute(sa.select(ROWS.c.id)).scalars())


def _insert(engine: Any, row_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(ROWS.insert(), {"id": row_id})


def test_a_unit_that_only_reads_sends_no_savepoint(engine: Any, sent: list[str]) -> None:
    with shared_unit(engine, "t"):
        with engine.begin() as conn:  # e.g. a port's read in its own unit
            assert conn.execute(sa.select(sa.func.count()).select_from(ROWS)).scalar_one() == 0
        with engine.connect() as conn:
            conn.execute(sa.select(ROWS.c.id)).all()
    assert sent == []


def test_nested_units_pending_at_the_first_write_share_one_savepoint_sent_before_it(
        engine: Any, sent: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    trips: list[tuple[str, ...]] = []
    spy = shared._driver

    def count(state: Any, *statements: str) -> None:
        trips.append(statements)
        spy(state, *statements)

    monkeypatch.setattr(shared, "_driver", count)
    # a step, an event in it, a port's unit in that: reads, then writes
    with shared_unit(engine, "t"), engine.begin(), engine.begin() as conn:
        conn.execute(sa.select(ROWS.c.id)).all()
        assert trips == []
        conn.execute(ROWS.insert(), {"id": 1})
    # the event's and the port's unit inside it: nothing was written between their beginnings, one SAVEPOINT
    assert trips == [("SAVEPOINT rw_sp1",)]
    assert _ids(engine) == [1]


def test_an_inner_unit_that_shares_its_savepoint_rolls_back_its_rows_and_the_outer_one_goes_on(
        engine: Any, sent: list[str]) -> None:
    with shared_unit(engine, "t"):
        with engine.begin():  # an event
            with pytest.raises(RuntimeError), engine.begin():  # its fire: writes first, then fails
                _insert(engine, 1)
                raise RuntimeError("the fire fails")
            _insert(engine, 2)  # the event goes on (e.g. audits the refusal) and commits
        with pytest.raises(RuntimeError), engine.begin():  # a second event: the same, then it fails as a whole
            with pytest.raises(RuntimeError), engine.begin():
                _insert(engine, 3)
                raise RuntimeError("the fire fails")
            _insert(engine, 4)
            raise RuntimeError("the event is refused")
        with pytest.raises(RuntimeError), engine.begin():  # a third: its fire commits, the event fails after
            with engine.begin():
                _insert(engine, 5)
            raise RuntimeError("the event is refused")
        with engine.begin(), engine.begin(), engine.begin():  # three pending units: one savepoint
            _insert(engine, 6)
    assert _ids(engine) == [2, 6]
    assert sent == [
        "SAVEPOINT rw_sp1",  # the first event's and its fire's (and the fire's insert's)
        "ROLLBACK TO SAVEPOINT rw_sp1",  # the fire: back to the event's savepoint, which stays set
        "SAVEPOINT rw_sp4",  # the insert after it: the event wrote (its savepoint was set), a savepoint of its own
        "RELEASE SAVEPOINT rw_sp1", "SAVEPOINT rw_sp5",  # the second event (the first's RELEASE was deferred)
        "ROLLBACK TO SAVEPOINT rw_sp5", "SAVEPOINT rw_sp8",
        "ROLLBACK TO SAVEPOINT rw_sp5", "RELEASE SAVEPOINT rw_sp5",  # the event fails as a whole
        "SAVEPOINT rw_sp9", "ROLLBACK TO SAVEPOINT rw_sp9", "RELEASE SAVEPOINT rw_sp9",  # the third
        "SAVEPOINT rw_sp12"]  # the fourth's three units and the insert's


def test_a_unit_begun_after_its_enclosing_unit_wrote_sets_a_savepoint_of_its_own(engine: Any, sent: list[str]) -> None:
    with shared_unit(engine, "t"), engine.begin():
        with engine.begin():
            _insert(engine, 1)
        with pytest.raises(RuntimeError), engine.begin():
            _insert(engine, 2)
            raise RuntimeError("this part fails alone")
        _insert(engine, 3)
    assert _ids(engine) == [1, 3]
    # the outer unit and the first part share the first savepoint; the second part and the insert after it (units
    # begun after the outer one wrote) set their own
    assert sent == ["SAVEPOINT rw_sp1", "SAVEPOINT rw_sp4", "ROLLBACK TO SAVEPOINT rw_sp4", "RELEASE SAVEPOINT rw_sp4",
                    "SAVEPOINT rw_sp6"]


def test_a_failed_write_rolls_back_its_own_unit_and_the_step_goes_on(engine: Any) -> None:
    with shared_unit(engine, "t"):
        _insert(engine, 1)
        with engine.begin():  # an event
            _insert(engine, 2)
            with pytest.raises(sa.exc.IntegrityError):
                _insert(engine, 1)  # a port's unit whose write fails: its savepoint was sent before the write
            _insert(engine, 3)
    assert _ids(engine) == [1, 2, 3]


def test_a_failed_read_without_a_savepoint_rolls_the_whole_step_back_on_postgresql(pg_url: str) -> None:
    # (SQLite: a failed statement does not abort the transaction)
    engine = create_sa_engine(pg_url)
    ROWS.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(ROWS.delete())
    with pytest.raises(shared.StepAborted) as caught, shared_unit(engine, "day:2026-03-01"):
        _insert(engine, 1)
        with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:  # reads only: no savepoint of its own
            conn.execute(sa.select(sa.cast(sa.literal("not a number"), sa.Integer))).all()
        # a port that swallowed its failure: PostgreSQL would turn the COMMIT into a silent rollback
    assert caught.value.to_dict()["step"] == "day:2026-03-01"
    assert _ids(engine) == []
    engine.dispose()


def test_nested_units_commit_and_roll_back_exactly_their_own_rows(engine: Any, sent: list[str]) -> None:
    with shared_unit(engine, "t"):
        with engine.begin():  # an event
            _insert(engine, 1)  # a port's unit inside it, committed (its RELEASE deferred)
            with pytest.raises(RuntimeError), engine.begin():
                _insert(engine, 2)
                raise RuntimeError("this port's part fails alone")
            _insert(engine, 3)
        with pytest.raises(RuntimeError), engine.begin():  # a refused event: everything of it goes
            _insert(engine, 4)
            _insert(engine, 5)
            raise RuntimeError("refused")
        _insert(engine, 6)
    assert _ids(engine) == [1, 3, 6]
    assert any(s.startswith("ROLLBACK TO SAVEPOINT") for s in sent)
    # every savepoint sent was made, and never one released twice or after its enclosing one
    made = [s.split()[-1] for s in sent if s.startswith("SAVEPOINT")]
    released = [s.split()[-1] for s in sent if s.startswith("RELEASE")]
    assert len(released) == len(set(released)) and set(released) <= set(made)


def test_a_release_goes_with_the_next_savepoint_and_an_enclosing_release_covers_the_inner_ones(
        engine: Any, sent: list[str]) -> None:
    with shared_unit(engine, "t"):
        with engine.begin():
            _insert(engine, 1)
        with engine.begin():
            _insert(engine, 2)
    assert _ids(engine) == [1, 2]
    # first event: its savepoint, which the insert's unit shares; second event: the first event's RELEASE then its
    # savepoint; the last RELEASE is made unnecessary by the commit
    assert sent == ["SAVEPOINT rw_sp1", "RELEASE SAVEPOINT rw_sp1", "SAVEPOINT rw_sp3"]


def test_a_rollback_after_a_deferred_release_undoes_the_released_inner_unit(engine: Any) -> None:
    with shared_unit(engine, "t"):
        with pytest.raises(RuntimeError), engine.begin():
            _insert(engine, 1)  # committed inside, its RELEASE deferred
            raise RuntimeError("the enclosing unit fails")
        _insert(engine, 2)
    assert _ids(engine) == [2]


def test_the_whole_step_rolls_back_when_it_raises(engine: Any) -> None:
    with pytest.raises(RuntimeError), shared_unit(engine, "t"):
        _insert(engine, 1)
        raise RuntimeError("killed")
    assert _ids(engine) == []


# --- rows written behind (history, outbox): kept until the step commits or their table is touched -----------


def _counted(engine: Any, table: str) -> Iterator[list[int]]:
    """The number of rows of every INSERT into ``table`` that reaches the driver."""
    seen: list[int] = []

    def spy(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.startswith(f"INSERT INTO {table}"):
            seen.append(len(parameters) if executemany else 1)

    sa.event.listen(engine, "before_cursor_execute", spy)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", spy)


@pytest.fixture
def inserts(engine: Any) -> Iterator[list[int]]:
    """The number of rows of every INSERT into rw_test_rows that reaches the driver."""
    yield from _counted(engine, "rw_test_rows")


@pytest.fixture
def other(engine: Any) -> Iterator[list[int]]:
    """The same for rw_test_other."""
    yield from _counted(engine, "rw_test_other")


def _behind(engine: Any, row_id: int) -> None:
    """A port's unit that writes a row behind (as SqlTx.add_history does)."""
    with engine.begin() as conn:
        assert conn.defer(INSERT_ROW, {"id": row_id})


def test_rows_written_behind_go_in_one_executemany_at_the_commit(engine: Any, inserts: list[int]) -> None:
    with shared_unit(engine, "t"):
        for row_id in (1, 2, 3):
            with engine.begin():  # an event
                _behind(engine, row_id)
                with engine.begin() as conn:  # another table is read and written meanwhile: no flush
                    conn.execute(OTHER.insert(), {"id": row_id})
                    assert conn.execute(sa.select(sa.func.count()).select_from(OTHER)).scalar_one() == row_id
        assert inserts == []
    assert inserts == [3]
    assert _ids(engine) == [1, 2, 3]


def test_rows_of_two_statements_written_behind_go_in_one_executemany_each(engine: Any, inserts: list[int],
                                                                          other: list[int]) -> None:
    insert_other = OTHER.insert()
    with shared_unit(engine, "t"):
        for row_id in (1, 2, 3):  # interleaved, as a move's history row and its mail are
            _behind(engine, row_id)
            with engine.begin() as conn:
                assert conn.defer(insert_other, {"id": row_id})
    assert (inserts, other) == ([3], [3])
    assert _ids(engine) == [1, 2, 3]


def test_a_statement_on_their_table_sees_the_rows_written_behind(engine: Any, inserts: list[int]) -> None:
    with shared_unit(engine, "t"):
        _behind(engine, 1)
        _behind(engine, 2)
        with engine.connect() as conn:
            assert sorted(conn.execute(sa.select(ROWS.c.id)).scalars()) == [1, 2]
        _behind(engine, 3)
        with engine.connect() as conn:  # SQL text cannot be told apart: it sees them too
            assert conn.execute(sa.text("SELECT count(*) FROM rw_test_rows")).scalar_one() == 3
    assert inserts == [2, 1]


def test_a_statement_on_one_table_writes_only_that_tables_rows_behind(engine: Any, inserts: list[int],
                                                                      other: list[int]) -> None:
    insert_other = OTHER.insert()
    with shared_unit(engine, "t"):
        for row_id in (1, 2):
            _behind(engine, row_id)
            with engine.begin() as conn:
                assert conn.defer(insert_other, {"id": row_id})
        with engine.connect() as conn:  # reads rw_test_rows: its rows go now, rw_test_other's stay behind
            assert sorted(conn.execute(sa.select(ROWS.c.id)).scalars()) == [1, 2]
        assert (inserts, other) == ([2], [])
        with engine.begin() as conn:
            assert conn.defer(insert_other, {"id": 3})
    assert (inserts, other) == ([2], [3])  # the others with the step's commit, in one executemany
    with type(engine).connect(engine) as conn:
        assert sorted(conn.execute(sa.select(OTHER.c.id)).scalars()) == [1, 2, 3]


def test_rows_kept_before_a_pending_unit_are_written_outside_it_without_its_savepoint(
        engine: Any, sent: list[str]) -> None:
    with shared_unit(engine, "t"):
        with engine.begin():  # an event whose rows stay behind (its savepoint never set: nothing else written)
            _behind(engine, 1)
        with pytest.raises(RuntimeError), engine.begin():  # the next event: reads the table, then is refused
            with engine.connect() as conn:
                assert list(conn.execute(sa.select(ROWS.c.id)).scalars()) == [1]  # the first event's row, written
            assert sent == []  # not inside this event's savepoint: none was set for it
            _insert(engine, 2)
            raise RuntimeError("refused")
        with engine.begin():  # a third event, whose savepoint is set when its own row is to be read
            _behind(engine, 3)
            with engine.connect() as conn:
                assert sorted(conn.execute(sa.select(ROWS.c.id)).scalars()) == [1, 3]
    assert _ids(engine) == [1, 3]  # the refusal undid its own row only
    assert sent == ["SAVEPOINT rw_sp3", "ROLLBACK TO SAVEPOINT rw_sp3", "RELEASE SAVEPOINT rw_sp3",
                    "SAVEPOINT rw_sp5"]


def test_a_rolled_back_unit_drops_its_rows_written_behind_and_those_of_units_inside_it(engine: Any) -> None:
    with shared_unit(engine, "t"):
        _behind(engine, 1)
        with pytest.raises(RuntimeError), engine.begin():  # a refused event
            _behind(engine, 2)  # committed inside it, still behind
            with engine.begin():
                _behind(engine, 3)
            raise RuntimeError("refused")
        with engine.begin():
            _behind(engine, 4)
            with pytest.raises(RuntimeError), engine.begin():  # a port's part that fails alone
                _behind(engine, 5)
                raise RuntimeError("fails alone")
            _behind(engine, 6)
    assert _ids(engine) == [1, 4, 6]


def test_rows_written_behind_then_read_are_still_undone_with_their_unit(engine: Any) -> None:
    with shared_unit(engine, "t"):
        _behind(engine, 1)
        with pytest.raises(RuntimeError), engine.begin() as conn:  # a refused event
            assert conn.defer(INSERT_ROW, {"id": 2})
            # its read writes what is behind first, inside the event's savepoint (sent before that write)
            assert sorted(conn.execute(sa.select(ROWS.c.id)).scalars()) == [1, 2]
            raise RuntimeError("refused")
        with engine.connect() as conn:  # driver-level SQL on a joined connection sees them too
            _behind(engine, 3)
            assert conn.exec_driver_sql("SELECT count(*) FROM rw_test_rows").scalar_one() == 2
    assert _ids(engine) == [1, 3]


def test_rows_written_inside_a_unit_that_commits_and_then_an_enclosing_one_rolls_back(engine: Any) -> None:
    with shared_unit(engine, "t"):
        _behind(engine, 1)  # the step's own
        with pytest.raises(RuntimeError), engine.begin():  # a refused event
            _behind(engine, 2)  # its port's unit, committed inside it
            with engine.begin() as conn:  # another port's unit reads the table: 1 and 2 are written in here
                assert sorted(conn.execute(sa.select(ROWS.c.id)).scalars()) == [1, 2]
            raise RuntimeError("refused")  # undoes 1 and 2: 1 is kept behind again, 2 was the event's
        _behind(engine, 3)
    assert _ids(engine) == [1, 3]


def test_a_nested_transaction_takes_in_no_row_written_behind_before_it(engine: Any) -> None:
    with shared_unit(engine, "t"), engine.begin() as conn:
        _behind(engine, 1)
        nested = conn.begin_nested()  # SQLAlchemy's own savepoint: the rows behind are written first
        assert not conn.defer(INSERT_ROW, {"id": 2})  # inside it: written at once
        conn.execute(ROWS.insert(), {"id": 2})
        nested.rollback()
    assert _ids(engine) == [1]


def test_a_step_that_raises_writes_none_of_its_rows_behind(engine: Any) -> None:
    with pytest.raises(RuntimeError), shared_unit(engine, "t"):
        _behind(engine, 1)
        raise RuntimeError("killed")
    with shared_unit(engine, "t"):
        _behind(engine, 2)
    assert _ids(engine) == [2]


def test_history_and_outbox_rows_of_a_store_are_written_behind_in_a_shared_unit(engine: Any) -> None:
    from datetime import UTC, datetime

    from regelwerk.store.records import HistoryEntry, OutboxEntry
    from regelwerk.store.sql import SqlStore

    store = SqlStore(engine.url.render_as_string(hide_password=False), engine=engine)
    at = datetime(2026, 3, 1, tzinfo=UTC)

    def step(version: int) -> HistoryEntry:
        return HistoryEntry("i1", "go", "a", "b", "u", at, "v1", version, {"why": version})

    with shared_unit(engine, "t"):
        with store.transaction() as tx:
            tx.add_history(step(1))
            tx.add_outbox(OutboxEntry("m1", at, "a@example.org", "Hello", "Body", instance_id="i1"))
            assert len(shared.joinable(engine).deferred) == 2  # kept
            assert [h.version for h in tx.history("i1")] == [1]  # and seen by a read of its table
            assert [m.id for m in tx.outbox(instance_id="i1")] == ["m1"]
        with store.transaction() as tx:
            tx.add_history(step(2))
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.add_history(step(3))
            tx.add_outbox(OutboxEntry("m2", at, "a@example.org", "Hello", "Body", instance_id="i1"))
            raise RuntimeError("refused")
    with store.transaction() as tx:
        assert [(h.version, dict(h.explain)) for h in tx.history("i1")] == [(1, {"why": 1}), (2, {"why": 2})]
        assert [m.id for m in tx.outbox(instance_id="i1")] == ["m1"]


# --- write_count: what the step's statements may have changed, per table (rows read ahead stay current) ----------


def test_write_count_counts_what_may_have_changed_a_table_and_nothing_else(engine: Any) -> None:
    def count(*tables: str) -> int | None:
        return shared.write_count(engine, tables)

    assert count("rw_test_rows") is None  # no shared unit open
    with shared_unit(engine, "t"):
        assert count("rw_test_rows", "rw_test_other") == 0
        with engine.begin() as conn:  # reads change nothing, also one that locks rows
            conn.execute(sa.select(ROWS.c.id)).all()
            conn.execute(sa.select(OTHER.c.id).with_for_update()).all()
            conn.execute(sa.text("select count(*) from rw_test_rows")).all()
        assert count("rw_test_rows", "rw_test_other") == 0
        _insert(engine, 1)
        assert (count("rw_test_rows"), count("rw_test_other"), count("rw_test_rows", "rw_test_other")) == (1, 0, 1)
        with engine.begin() as conn:  # SQL text: counted from its SQL
            conn.execute(sa.text("UPDATE rw_test_other SET id = id"))
        assert (count("rw_test_rows"), count("rw_test_other")) == (1, 1)
        with engine.begin() as conn:  # driver SQL (no before_execute) and the like: any table
            conn.exec_driver_sql("DELETE FROM rw_test_other WHERE id = -1")
        assert (count("rw_test_rows"), count("rw_test_other")) == (2, 2)
        with engine.begin() as conn:  # a statement that is no INSERT, UPDATE, DELETE or SELECT: any table
            conn.execute(sa.text("WITH x AS (SELECT 1 AS one) SELECT one FROM x")).all()
        assert (count("rw_test_rows"), count("rw_test_other")) == (3, 3)
        with pytest.raises(RuntimeError), engine.begin() as conn:  # a unit rolled back after it wrote: any table
            conn.execute(OTHER.insert(), {"id": 7})
            raise RuntimeError("refused")
        assert (count("rw_test_rows"), count("rw_test_other")) == (4, 5)
        with pytest.raises(RuntimeError), engine.begin():  # rolled back before it wrote: nothing to undo
            raise RuntimeError("refused")
        assert count("rw_test_rows") == 4
        with engine.connect() as conn:  # a SQLAlchemy savepoint rolled back: any table
            nested = conn.begin_nested()
            nested.rollback()
        after = count("rw_test_rows")
        assert after is not None and after > 4
        with engine.begin() as conn:  # rows written behind are counted when they are written
            assert conn.defer(INSERT_ROW, {"id": 2})
        assert count("rw_test_rows") == after
    assert count("rw_test_rows") is None
    with shared_unit(engine, "next"):  # each step counts from 0
        assert count("rw_test_rows") == 0
        with engine.begin() as conn:
            assert conn.defer(INSERT_ROW, {"id": 3})
        with engine.connect() as conn:
            conn.execute(sa.select(ROWS.c.id)).all()  # touches their table: they are written first
        assert count("rw_test_rows") == 1
