"""``regelwerk.store.single.execute``: the same rows, values, counts, errors and events as ``Connection.execute``.

On SQLite a statement it can plan runs at the driver (the SQL reaches the cursor without an execution context); the
rows it returns and writes are compared with SQLAlchemy's own, value by value and (stored) byte by byte.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from regelwerk.simulation.shared import shared_unit
from regelwerk.store import single
from regelwerk.store.sql import create_sa_engine
from sqlalchemy import event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

META = sa.MetaData()
ROWS = sa.Table(
    "rw_single_rows", META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(40), nullable=False, unique=True),
    sa.Column("at", sa.DateTime(), nullable=True),
    sa.Column("at_tz", sa.DateTime(timezone=True), nullable=True),
    sa.Column("day", sa.Date(), nullable=True),
    sa.Column("data", sa.JSON(), nullable=True),
    sa.Column("flag", sa.Boolean(), nullable=True),
    sa.Column("n", sa.Integer(), nullable=True),
)
_C = ROWS.c
INSERT = ROWS.insert()
BY_KEY = sa.select(ROWS).where(_C.key == sa.bindparam("p_key"))
LABELLED = (sa.select(_C.key.label("k"), _C.at.label("when"), (_C.n + 1).label("next"), sa.func.count().label("c"))
            .where(_C.n >= sa.bindparam("p_min")).group_by(_C.key, _C.at, _C.n).order_by(_C.key)
            .limit(sa.bindparam("p_limit")))
UPDATE = ROWS.update().where(_C.key == sa.bindparam("p_key")).values(n=_C.n + sa.bindparam("p_add"),
                                                                        flag=sa.bindparam("p_flag"))
DELETE = ROWS.delete().where(_C.n > sa.bindparam("p_n"))
RETURNING = sqlite_insert(ROWS).on_conflict_do_nothing().returning(_C.id, _C.at)
EXPANDING = sa.select(_C.key).where(_C.key.in_(sa.bindparam("p_keys", expanding=True))).order_by(_C.key)
FIXED = sa.select(_C.key, _C.data).where(_C.flag.is_(True), _C.n == 3)


def _row(i: int) -> dict[str, Any]:
    base = datetime(2026, 3, 1, 9, 30, 0, 123456)
    return {"key": f"k{i}",
            "at": [base + timedelta(hours=i), (base + timedelta(hours=i)).replace(tzinfo=UTC),
                   base.replace(tzinfo=timezone(timedelta(hours=2))), base.replace(microsecond=0), None][i % 5],
            "at_tz": (base + timedelta(days=i)).replace(tzinfo=UTC) if i % 3 else None,
            "day": date(2026, 1, 1) + timedelta(days=i) if i % 4 else None,
            "data": [{"n": i, "s": "é"}, [1, 2], "text", None][i % 4],
            "flag": [True, False, None][i % 3],
            "n": i}


@pytest.fixture(autouse=True)
def _no_sql_log() -> Iterator[None]:
    """SQLAlchemy's SQL log off (another test may have left it on): with it on, every statement goes through
    SQLAlchemy, which logs it (see :func:`test_a_logging_engine_goes_through_sqlalchemy`)."""
    logger = logging.getLogger("sqlalchemy.engine")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    made = create_sa_engine(f"sqlite:///{tmp_path / 'single.sqlite'}")
    META.create_all(made)
    yield made
    made.dispose()


@pytest.fixture
def contexts(engine: sa.Engine) -> Iterator[list[Any]]:
    """The execution context of every statement at the cursor (None: run by ``single`` at the driver)."""
    seen: list[Any] = []

    def before(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        if not statement.startswith(("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK")):
            seen.append(context)

    event.listen(engine, "before_cursor_execute", before)
    yield seen
    event.remove(engine, "before_cursor_execute", before)


def _stored(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM rw_single_rows ORDER BY id")]


def _seen(engine: sa.Engine, *statements: tuple[Any, dict[str, Any]]) -> None:
    """Each statement with these parameters' keys as if run once (``single`` plans a statement the second time)."""
    for statement, params in statements:
        single._plan_of(statement, engine.dialect, frozenset(params))


def _fill(engine: sa.Engine, run: Any) -> None:
    with engine.begin() as conn:
        for i in range(12):
            run(conn, INSERT, _row(i))


def test_rows_written_are_stored_byte_for_byte_as_sqlalchemy_writes_them(engine: sa.Engine, tmp_path: Path,
                                                                         contexts: list[Any]) -> None:
    _fill(engine, single.execute)
    assert contexts[0] is not None  # the first time through SQLAlchemy
    assert contexts[1:] and all(context is None for context in contexts[1:])  # then at the driver
    fast = _stored(engine)
    other = create_sa_engine(f"sqlite:///{tmp_path / 'other.sqlite'}")
    META.create_all(other)
    _fill(other, lambda conn, statement, params: conn.execute(statement, params))
    assert fast == _stored(other)
    other.dispose()


@pytest.mark.parametrize(("statement", "params"), [
    (BY_KEY, {"p_key": "k4"}), (BY_KEY, {"p_key": "none"}), (LABELLED, {"p_min": 2, "p_limit": 5}),
    (FIXED, {}), (sa.select(ROWS).order_by(_C.id), {}),
])
def test_rows_read_are_sqlalchemys_rows(engine: sa.Engine, contexts: list[Any], statement: Any,
                                        params: dict[str, Any]) -> None:
    _fill(engine, single.execute)
    _seen(engine, (statement, params))
    contexts.clear()
    with engine.begin() as conn:
        expected = conn.execute(statement, params).all()
        got = single.execute(conn, statement, params).all()
    assert contexts[0] is not None and contexts[1] is None
    assert got == expected
    assert [tuple(type(v) for v in row) for row in got] == [tuple(type(v) for v in row) for row in expected]
    for fast, slow in zip(got, expected, strict=True):
        assert fast._mapping == slow._mapping
        for column in statement.selected_columns:  # by the column object too
            assert fast._mapping[column] == slow._mapping[column]


def test_results_scalars_mappings_and_first(engine: sa.Engine) -> None:
    _fill(engine, single.execute)
    with engine.begin() as conn:
        assert single.execute(conn, BY_KEY, {"p_key": "k1"}).mappings().first()["data"] == [1, 2]
        assert single.execute(conn, BY_KEY, {"p_key": "k1"}).scalar_one() == 2
        assert list(single.execute(conn, LABELLED, {"p_min": 9, "p_limit": 9}).scalars()) == ["k10", "k11", "k9"]
        assert single.execute(conn, BY_KEY, {"p_key": "none"}).first() is None


def test_changed_rows_are_counted_as_the_driver_counts_them(engine: sa.Engine, contexts: list[Any]) -> None:
    _fill(engine, single.execute)
    _seen(engine, (UPDATE, {"p_key": 0, "p_add": 0, "p_flag": 0}), (DELETE, {"p_n": 0}), (RETURNING, _row(0)))
    contexts.clear()
    with engine.begin() as conn:
        assert single.execute(conn, UPDATE, {"p_key": "k3", "p_add": -10, "p_flag": None}).rowcount == 1
        assert single.execute(conn, UPDATE, {"p_key": "none", "p_add": 10, "p_flag": True}).rowcount == 0
        assert single.execute(conn, DELETE, {"p_n": 9}).rowcount == 2
        inserted = single.execute(conn, RETURNING, _row(20)).all()
        again = single.execute(conn, RETURNING, _row(20)).first()
    assert all(context is None for context in contexts)
    assert len(inserted) == 1 and inserted[0].at == _row(20)["at"] and again is None
    with engine.connect() as conn:
        assert conn.execute(BY_KEY, {"p_key": "k3"}).one()._mapping["n"] == -7
        assert conn.execute(sa.select(sa.func.count()).select_from(ROWS)).scalar_one() == 11


def test_what_it_cannot_plan_goes_through_sqlalchemy(engine: sa.Engine, contexts: list[Any]) -> None:
    _fill(engine, single.execute)
    contexts.clear()
    with engine.begin() as conn:
        assert single.execute(conn, EXPANDING, {"p_keys": ["k2", "k1"]}).scalars().all() == ["k1", "k2"]
        assert single.execute(conn, sa.text("SELECT count(*) FROM rw_single_rows")).scalar_one() == 12
        # an option of the connection's own (SQLAlchemy's to honour)
        assert single.execute(conn.execution_options(stream_results=True), BY_KEY, {"p_key": "k2"}).one().n == 2
    with engine.connect() as conn:  # not begun: SQLAlchemy begins it
        assert single.execute(conn, BY_KEY, {"p_key": "k1"}).one().n == 1
    assert contexts and all(context is not None for context in contexts)


def test_a_driver_error_is_sqlalchemys(engine: sa.Engine) -> None:
    _fill(engine, single.execute)
    with engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):
        single.execute(conn, INSERT, _row(1))


def test_before_execute_listeners_see_the_statement_and_may_replace_it(engine: sa.Engine) -> None:
    _fill(engine, single.execute)
    _seen(engine, (BY_KEY, {"p_key": 0}), (FIXED, {}))
    seen: list[Any] = []

    def listener(_conn: Any, statement: Any, _multi: Any, params: Any, _options: Any) -> Any:
        seen.append(statement)
        return (BY_KEY, [], {"p_key": "k2"}) if statement is FIXED else (statement, _multi, params)

    event.listen(engine, "before_execute", listener, retval=True)
    try:
        with engine.begin() as conn:
            assert single.execute(conn, BY_KEY, {"p_key": "k1"}).one().n == 1
            assert single.execute(conn, FIXED, {}).one().n == 2  # what the listener gave
    finally:
        event.remove(engine, "before_execute", listener)
    assert seen == [BY_KEY, FIXED]


def test_in_a_shared_unit_rows_written_behind_are_read_and_a_write_has_its_savepoint(engine: sa.Engine,
                                                                                     contexts: list[Any]) -> None:
    _fill(engine, single.execute)
    _seen(engine, (BY_KEY, {"p_key": 0}), (UPDATE, {"p_key": 0, "p_add": 0, "p_flag": 0}))
    contexts.clear()
    with shared_unit(engine, "t") as _:
        with engine.begin() as unit:
            assert unit.defer(INSERT, _row(40))
            # the SELECT touches the table: the kept row is written first and found
            assert single.execute(unit, BY_KEY, {"p_key": "k40"}).one().n == 40
        with pytest.raises(RuntimeError), engine.begin() as unit:
            single.execute(unit, UPDATE, {"p_key": "k40", "p_add": 1, "p_flag": True})
            raise RuntimeError  # the unit rolls back to the savepoint sent before its UPDATE
    assert contexts[-2:] == [None, None]  # the SELECT and the UPDATE at the driver (the kept row's INSERT before)
    with engine.connect() as conn:
        assert conn.execute(BY_KEY, {"p_key": "k40"}).one().n == 40


def test_a_shared_units_execute_of_one_row_runs_at_the_driver(engine: sa.Engine, contexts: list[Any]) -> None:
    """The simulation's joined connection hands ``execute`` of one statement and one row of parameters to ``single``
    (what it cannot plan to SQLAlchemy), whichever port executes it."""
    _fill(engine, single.execute)
    _seen(engine, (BY_KEY, {"p_key": 0}), (UPDATE, {"p_key": 0, "p_add": 0, "p_flag": 0}),
          (EXPANDING, {"p_keys": 0}))
    contexts.clear()
    with shared_unit(engine, "t") as _, engine.begin() as unit:
        assert unit.execute(BY_KEY, {"p_key": "k5"}).one().n == 5
        assert unit.execute(UPDATE, {"p_key": "k5", "p_add": 1, "p_flag": False}).rowcount == 1
        assert unit.execute(EXPANDING, {"p_keys": ["k5"]}).scalars().all() == ["k5"]
        assert unit.execute(INSERT, [_row(50), _row(51)]).rowcount == 2  # many rows: SQLAlchemy's executemany
    assert [context is None for context in contexts] == [True, True, False, False]


def test_a_statement_built_per_call_goes_through_sqlalchemy(engine: sa.Engine, contexts: list[Any]) -> None:
    """Planned the second time a statement object comes: one built anew per call (never seen again) is not compiled
    twice (SQLAlchemy's cache has it by its cache key)."""
    _fill(engine, single.execute)
    contexts.clear()
    with engine.begin() as conn:
        for i in range(3):
            assert single.execute(conn, sa.select(_C.n).where(_C.key == f"k{i}"), {}).scalar_one() == i
    assert contexts and all(context is not None for context in contexts)


def test_a_logging_engine_goes_through_sqlalchemy(tmp_path: Path) -> None:
    """With the SQL log on (``echo``), SQLAlchemy runs and logs every statement."""
    logging_engine = create_sa_engine(f"sqlite:///{tmp_path / 'echo.sqlite'}", echo=True)
    META.create_all(logging_engine)
    seen: list[Any] = []
    event.listen(logging_engine, "before_cursor_execute", lambda _c, _cur, statement, _p, context, _m: (
        seen.append(context) if "rw_single" in statement else None))
    _seen(logging_engine, (INSERT, _row(0)))
    with logging_engine.begin() as conn:
        single.execute(conn, INSERT, _row(0))
    logging_engine.dispose()
    assert seen and seen[-1] is not None
