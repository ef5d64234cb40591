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
    original = shared._Joined._driver

    def spy(self: Any, *statements: str) -> None:
        seen.extend(statements)
        original(self, *statements)

    monkeypatch.setattr(shared._Joined, "_driver", spy)
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


def test_the_pending_savepoints_of_nested_units_go_in_one_round_trip_before_the_first_write(
        engine: Any, sent: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    trips: list[tuple[str, ...]] = []
    spy = shared._Joined._driver

    def count(self: Any, *statements: str) -> None:
        trips.append(statements)
        spy(self, *statements)

    monkeypatch.setattr(shared._Joined, "_driver", count)
    # a step, an event in it, a port's unit in that: reads, then writes
    with shared_unit(engine, "t"), engine.begin(), engine.begin() as conn:
        conn.execute(sa.select(ROWS.c.id)).all()
        assert trips == []
        conn.execute(ROWS.insert(), {"id": 1})
    assert trips == [("SAVEPOINT rw_sp1", "SAVEPOINT rw_sp2")]
    assert _ids(engine) == [1]


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
    # first event: its savepoint and the insert's; second event: the first event's RELEASE (which covers
    # the insert's) then its two savepoints; the last RELEASE is made unnecessary by the commit
    releases = [s for s in sent if s.startswith("RELEASE")]
    assert len(releases) == 1
    assert sent.index(releases[0]) == 2


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
