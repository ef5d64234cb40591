"""``regelwerk.store.sql.one_of``: a list bound as one parameter; on SQLite, where ``sole``, read back with
``json_each``: the same rows as an IN of parameters, and the column's index searched as with one."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from regelwerk.store.sql import one_of


@pytest.fixture()
def table(tmp_path: Path) -> Any:
    metadata = sa.MetaData()
    rows = sa.Table("t", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("key", sa.String(20)),
                    sa.Column("status", sa.String(10)), sa.Index("ix_t_key", "key"), sa.Index("ix_t_status", "status"))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'one_of.sqlite'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(rows.insert(), [{"id": n, "key": f"k{n % 50}", "status": "open" if n % 3 else "done"}
                                     for n in range(1, 301)])
    yield engine, rows
    engine.dispose()


@pytest.mark.parametrize("values", [[], ["k1"], ["k1", "k7", "missing", "k1"], [f"k{n}" for n in range(60)],
                                    ["k'1", 'k"2', "k\\3", "ké"]])
def test_the_json_list_finds_what_an_in_of_parameters_finds(table: Any, values: list[str]) -> None:
    engine, rows = table
    with engine.connect() as conn:
        found = {}
        for sole in (False, True):
            query = sa.select(rows.c.id).where(one_of(rows.c.key, "p_keys", False, sole=sole)).order_by(rows.c.id)
            found[sole] = conn.execute(query, {"p_keys": values}).scalars().all()
        assert found[True] == found[False]
        by_id = sa.select(rows.c.key).where(one_of(rows.c.id, "p_ids", False, sole=True)).order_by(rows.c.id)
        assert conn.execute(by_id, {"p_ids": [3, 1, 999]}).scalars().all() == ["k1", "k3"]  # integers as integers


def test_the_json_list_searches_the_columns_index(table: Any) -> None:
    engine, rows = table
    plans = []

    @sa.event.listens_for(engine, "before_cursor_execute", retval=True)
    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> Any:
        return f"EXPLAIN QUERY PLAN {statement}", parameters

    with engine.connect() as conn:
        query = sa.select(rows.c.id).where(one_of(rows.c.key, "p_keys", False, sole=True))
        plans = [row[3] for row in conn.execute(query, {"p_keys": ["k1", "k2"]})]
    assert any("USING INDEX ix_t_key (key=?)" in step or "USING COVERING INDEX ix_t_key (key=?)" in step
               for step in plans), plans
    assert not any(step.startswith("SCAN t") for step in plans), plans


def test_the_tick_and_the_store_read_their_lists_by_index_on_sqlite(tmp_path: Path) -> None:
    """The statements that bind a JSON list (``sole``) keep the plans an IN of parameters had."""
    from regelwerk.scheduling.directory import _stored_query
    from regelwerk.scheduling.tick import _plan_statements
    from regelwerk.store import sql
    from regelwerk.store.tables import all_tables

    engine = sql.create_sa_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
    all_tables().create_all(engine)

    @sa.event.listens_for(engine, "before_cursor_execute", retval=True)
    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> Any:
        return f"EXPLAIN QUERY PLAN {statement}", parameters

    plan = _plan_statements(False)
    expected = {
        "items": (plan["items"], "ix_rw_scheduled_items_subject (subject=?)"),
        "desired": (plan["desired"], "sqlite_autoindex_rw_scheduled_items_1 (key=?)"),
        "stored by key": (_stored_query(False, ("timing",), True), "sqlite_autoindex_rw_scheduled_items_1 (key=?)"),
        "stored by subject": (_stored_query(False, ("timing",), False), "ix_rw_scheduled_items_subject (subject=?)"),
        "get_many": (sql._GET_MANY[False], "sqlite_autoindex_rw_instances_1 (id=?)"),
        "existing": (sql._EXISTING[False], "sqlite_autoindex_rw_instances_1 (id=?)"),
    }
    try:
        with engine.connect() as conn:
            for name, (statement, index) in expected.items():
                binds = statement.compile(dialect=conn.dialect).binds
                params = {k: ["a", "b"] for k in binds if k in ("p_ids", "p_keys", "p_subjects")}
                params.update({k: v for k, v in (("p_now", datetime(2026, 1, 1)), ("p_type", "trajectory"))
                               if k in binds})
                steps = [row[3] for row in conn.execute(statement, params)]
                assert any(index in step for step in steps), (name, steps)
    finally:
        engine.dispose()
