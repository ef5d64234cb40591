"""``regelwerk.store.bulk.executemany``: the same rows as ``Connection.execute`` writes, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from regelwerk.store import bulk
from regelwerk.store.sql import create_sa_engine
from sqlalchemy.dialects.sqlite import insert as sqlite_insert


def _table(metadata: sa.MetaData, name: str) -> sa.Table:
    return sa.Table(
        name, metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(40), nullable=False, unique=True),
        sa.Column("at", sa.DateTime(), nullable=True),
        sa.Column("at_tz", sa.DateTime(timezone=True), nullable=True),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("flag", sa.Boolean(), nullable=True),
        sa.Column("status", sa.String(20), nullable=True),
    )


def _rows(n: int) -> list[dict[str, Any]]:
    base = datetime(2026, 3, 1, 9, 30, 0, 123456)
    return [{
        "key": f"k{i}",
        # naive, aware UTC, aware in another zone (its own fields are stored, as SQLAlchemy does), no microseconds,
        # a date where a datetime goes, a year below 1000, None
        "at": [base + timedelta(hours=i), (base + timedelta(hours=i)).replace(tzinfo=UTC),
               base.replace(tzinfo=timezone(timedelta(hours=2))), base.replace(microsecond=0), date(2026, 1, 2),
               datetime(999, 1, 1), None][i % 7],
        "at_tz": (base + timedelta(days=i)).replace(tzinfo=UTC) if i % 3 else None,
        "day": date(2026, 1, 1) + timedelta(days=i) if i % 4 else None,
        # JSON: a mapping, a list, a string, and None (JSON null, as SQLAlchemy's JSON type writes it)
        "data": [{"n": i, "s": "é"}, [1, 2], "text", None][i % 4],
        "flag": [True, False, None][i % 3],
        "status": "new",
    } for i in range(n)]


def _contents(engine: sa.Engine, table: sa.Table) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        # the stored text as well as the values read back: the same bytes, not only equal values
        raw = conn.exec_driver_sql(f"SELECT * FROM {table.name} ORDER BY id").all() if engine.dialect.name == \
            "sqlite" else []
        return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.id))] + [tuple(r) for r in raw]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    url = f"sqlite:///{tmp_path / 'bulk.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    made = create_sa_engine(url)
    yield made
    made.dispose()


def _two_tables(engine: sa.Engine, name: str) -> tuple[sa.Table, sa.Table]:
    """Two tables of the same shape: one written by the fast path, one by ``Connection.execute``."""
    metadata = sa.MetaData()
    ours, theirs = _table(metadata, f"t_{name}_ours"), _table(metadata, f"t_{name}_theirs")
    metadata.create_all(engine)
    return ours, theirs


def test_insert_writes_what_execute_writes(engine: sa.Engine) -> None:
    ours, theirs = _two_tables(engine, "bulk")
    rows = _rows(50)
    with engine.begin() as conn:
        result = bulk.executemany(conn, ours.insert(), rows)
        conn.execute(theirs.insert(), rows)
    assert result.rowcount in (50, -1)
    assert _contents(engine, ours) == _contents(engine, theirs)
    # a plan was made (and cached) on both: SQLite's executemany, PostgreSQL's COPY
    planned = [e for e in bulk._PLANS.values() if e[2] is not None and getattr(e[0], "table", None) is ours]
    assert planned


def _copy_rows(n: int) -> list[dict[str, Any]]:
    """Rows COPY takes (no aware datetime in a column without a time zone), with text COPY must escape."""
    rows = _rows(n)
    for i, row in enumerate(rows):
        if isinstance(row["at"], datetime) and row["at"].tzinfo is not None:
            row["at"] = row["at"].replace(tzinfo=None)
        row["status"] = ["tab\there", "new\nline", "back\\slash", "\\N", "", "é ü"][i % 6]
        if i % 5 == 0:
            row["data"] = {"text": "quote \" and \\ and \t", "n": None}
    return rows


@pytest.mark.parametrize("made", [_rows, _copy_rows], ids=["any", "copy"])
@pytest.mark.parametrize("count", [1, 2, 50])
def test_rows_given_column_by_column_write_what_execute_writes(engine: sa.Engine, made: Any, count: int) -> None:
    """``executemany_columns``: the rows of ``Connection.execute`` (SQLite's executemany, PostgreSQL's COPY, and what
    goes through SQLAlchemy: one row, an aware datetime for a column without a time zone on PostgreSQL)."""
    ours, theirs = _two_tables(engine, f"cols{count}")
    rows = made(count)
    with engine.begin() as conn:
        result = bulk.executemany_columns(conn, ours.insert(), {key: [row[key] for row in rows] for key in rows[0]})
        conn.execute(theirs.insert(), rows)
    assert result.rowcount in (count, -1)
    assert _contents(engine, ours) == _contents(engine, theirs)
    with engine.connect() as conn:
        texts = [conn.exec_driver_sql(f"SELECT CAST(data AS TEXT) FROM {t.name} ORDER BY id").scalars().all()
                 for t in (ours, theirs)]
    assert texts[0] == texts[1]


def test_postgresql_copies_what_execute_writes(pg_url: str) -> None:
    """PostgreSQL: plain INSERTs of whole rows go in with COPY, and the rows read back are the ones
    ``Connection.execute`` writes (datetimes, dates, JSON null and values, booleans, text with tabs, newlines,
    backslashes and ``\\N``)."""
    engine = create_sa_engine(pg_url)
    try:
        ours, theirs = _two_tables(engine, "copy")
        rows = _copy_rows(60)
        copies: list[str] = []
        with engine.begin() as conn:
            raw = conn.connection.dbapi_connection
            original = type(raw.cursor()).copy

            def spy(self: Any, statement: Any, *args: Any, **kwargs: Any) -> Any:
                copies.append(str(statement))
                return original(self, statement, *args, **kwargs)

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(type(raw.cursor()), "copy", spy)
                result = bulk.executemany(conn, ours.insert(), rows)
            conn.execute(theirs.insert(), rows)
        assert result.rowcount == 60
        assert copies == ['COPY t_copy_ours (key, at, at_tz, day, data, flag, status) FROM STDIN']
        assert _contents(engine, ours) == _contents(engine, theirs)
        # JSON as stored, not only as parsed back: the same text
        with engine.connect() as conn:
            texts = [conn.exec_driver_sql(f"SELECT data::text FROM {t.name} ORDER BY id").scalars().all()
                     for t in (ours, theirs)]
        assert texts[0] == texts[1]
    finally:
        engine.dispose()


def test_postgresql_copy_falls_back_or_fails_as_execute_would(pg_url: str) -> None:
    """An aware datetime for a column without a time zone goes through ``Connection.execute`` (the driver converts
    it to the session's zone, COPY would drop the offset); a tenant-bound connection too (row-level security
    refuses COPY FROM); a duplicate key is SQLAlchemy's ``IntegrityError`` and nothing of the COPY stays."""
    from regelwerk.tenancy.rls import TENANT_OPTION

    engine = create_sa_engine(pg_url)
    try:
        ours, theirs = _two_tables(engine, "copy_fb")
        rows = _rows(14)  # aware datetimes in "at", in another zone too
        with engine.begin() as conn:
            bulk.executemany(conn, ours.insert(), rows)
            conn.execute(theirs.insert(), rows)
        assert _contents(engine, ours) == _contents(engine, theirs)
        with engine.connect() as conn:
            stored = conn.execute(sa.select(ours.c.at).where(ours.c.key == "k2")).scalar_one()
        assert stored == datetime(2026, 3, 1, 7, 30, 0, 123456)  # 09:30+02:00 as UTC (the session's zone)
        with engine.begin() as conn:
            bound = conn.execution_options(**{TENANT_OPTION: "acme"})
            statement = ours.insert()
            calls: list[Any] = []
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(bulk, "_copy", lambda *a: calls.append(a))
                bulk.executemany(bound, statement, [{**r, "key": f"t{i}"} for i, r in enumerate(_copy_rows(3))])
            assert calls == []
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            bulk.executemany(conn, ours.insert(), [{**r, "key": f"new{i}"} for i, r in enumerate(_copy_rows(3))])
            bulk.executemany(conn, ours.insert(), [{**r, "key": f"dup{i % 2}"} for i, r in enumerate(_copy_rows(3))])
        with engine.connect() as conn:
            keys = conn.execute(sa.select(ours.c.key).where(ours.c.key.like("new%") | ours.c.key.like("dup%")))
            assert keys.scalars().all() == []
    finally:
        engine.dispose()


def test_postgresql_copy_inside_a_shared_unit(pg_url: str) -> None:
    """In the simulation's shared unit a COPY goes inside the unit's savepoint (its rollback drops the rows) and
    after the rows the unit keeps behind for the same table (their order is kept)."""
    from regelwerk.simulation.shared import shared_unit

    engine = create_sa_engine(pg_url)
    try:
        ours, _ = _two_tables(engine, "copy_unit")
        with shared_unit(engine, "test") as step:
            with engine.begin() as unit:
                assert unit.defer(ours.insert(), {**_copy_rows(1)[0], "key": "behind"})
                bulk.executemany(unit, ours.insert(), [{**r, "key": f"c{i}"} for i, r in enumerate(_copy_rows(3))])
            try:
                with engine.begin() as unit:
                    bulk.executemany(unit, ours.insert(), [{**r, "key": f"x{i}"} for i, r in
                                                           enumerate(_copy_rows(3))])
                    raise RuntimeError("refused")
            except RuntimeError:
                pass
            assert step is not None
        with engine.connect() as conn:
            keys = conn.execute(sa.select(ours.c.key).order_by(ours.c.id)).scalars().all()
        assert keys == ["behind", "c0", "c1", "c2"]
    finally:
        engine.dispose()


def test_a_plan_is_used_only_with_its_own_statement_and_dialect(tmp_path: Any, pg_url: str) -> None:
    """The plans are keyed by the statement's and dialect's ids; an id Python reuses for another object (an engine
    disposed, another created) never hands a SQLite plan to PostgreSQL."""
    metadata = sa.MetaData()
    table = _table(metadata, "t_bulk_ids")
    statement = table.insert()
    sqlite_engine = create_sa_engine(f"sqlite:///{tmp_path / 'ids.sqlite'}")
    pg_engine = create_sa_engine(pg_url)
    try:
        for made in (sqlite_engine, pg_engine):
            metadata.create_all(made)
        rows = _rows(4)
        with sqlite_engine.begin() as conn:
            bulk.executemany(conn, statement, rows)
        [(key, entry)] = [(k, e) for k, e in bulk._PLANS.items() if e[0] is statement]
        assert entry[2] is not None and "?" in entry[2][0]
        # as if the PostgreSQL dialect had been given the id the SQLite one had
        bulk._PLANS[(id(statement), id(pg_engine.dialect), key[2])] = entry
        with pg_engine.begin() as conn:
            assert bulk.executemany(conn, statement, rows).rowcount in (4, -1)
        with pg_engine.connect() as conn:
            assert sorted(conn.execute(sa.select(table.c.key)).scalars()) == ["k0", "k1", "k2", "k3"]
    finally:
        sqlite_engine.dispose()
        pg_engine.dispose()


def test_rows_whose_key_the_database_generates_are_counted(tmp_path: Any) -> None:
    """A primary key from a server default: compiled for executemany, no RETURNING, and the rowcount counts the
    rows (the tick adds it to what it created)."""
    engine = create_sa_engine(f"sqlite:///{tmp_path / 'server.sqlite'}")
    metadata = sa.MetaData()
    table = sa.Table("t_bulk_server", metadata,
                     sa.Column("id", sa.String(16), primary_key=True,
                               server_default=sa.text("(lower(hex(randomblob(8))))")),
                     sa.Column("k", sa.String(10), nullable=False))
    metadata.create_all(engine)
    with engine.begin() as conn:
        assert bulk.executemany(conn, table.insert(), [{"k": "a"}, {"k": "b"}]).rowcount == 2
    # a later row without a key the first has: SQLAlchemy's own error, nothing written
    with pytest.raises(sa.exc.StatementError, match="A value is required"), engine.begin() as conn:
        bulk.executemany(conn, table.insert(), [{"k": "c"}, {}])
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.select(table.c.k)).scalars()) == ["a", "b"]
    engine.dispose()


def test_update_with_fixed_values_and_bound_keys(engine: sa.Engine) -> None:
    ours, theirs = _two_tables(engine, "bulk_upd")
    rows = _rows(20)
    stamp = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    changes = [{"b_key": f"k{i}", "b_data": {"changed": i}} for i in range(0, 20, 2)]
    changes.append({"b_key": "missing", "b_data": None})  # matches no row
    with engine.begin() as conn:
        for table in (ours, theirs):
            conn.execute(table.insert(), rows)
    for table, run in ((ours, bulk.executemany), (theirs, lambda c, s, r: c.execute(s, r))):
        statement = (sa.update(table).where(table.c.key == sa.bindparam("b_key"), table.c.status == "new")
                     .values(data=sa.bindparam("b_data"), at=stamp, status="seen"))
        with engine.begin() as conn:
            result = run(conn, statement, changes)
        assert result.rowcount in (10, -1)
    assert _contents(engine, ours) == _contents(engine, theirs)


def test_what_the_fast_path_leaves_to_sqlalchemy(tmp_path: Any) -> None:
    engine = create_sa_engine(f"sqlite:///{tmp_path / 'bulk.sqlite'}")
    metadata = sa.MetaData()
    table = _table(metadata, "t_bulk_other")
    metadata.create_all(engine)
    with engine.begin() as conn:
        # RETURNING: SQLAlchemy's result rows
        returned = bulk.executemany(conn, table.insert().returning(table.c.key), _rows(3)).all()
        assert sorted(k for (k,) in returned) == ["k0", "k1", "k2"]
        # ON CONFLICT DO NOTHING: the driver's rowcount counts what was inserted
        again = bulk.executemany(conn, sqlite_insert(table).on_conflict_do_nothing(index_elements=["key"]),
                                 _rows(5))
        assert again.rowcount == 2
        # an expanding IN: SQLAlchemy's own refusal (no executemany of it), not a different statement
        with pytest.raises(sa.exc.StatementError, match="expanding"):
            bulk.executemany(conn, sa.delete(table).where(table.c.key.in_(sa.bindparam("b_keys", expanding=True))),
                             [{"b_keys": ["k0", "k1"]}, {"b_keys": ["k2"]}])
        conn.execute(sa.delete(table).where(table.c.key.in_(["k0", "k1", "k2"])))
        # a bind no row gives: SQLAlchemy's own error, nothing written
        with pytest.raises(sa.exc.StatementError):
            bulk.executemany(conn, sa.update(table).where(table.c.key == sa.bindparam("b_key"))
                             .values(status=sa.bindparam("b_status")), [{"b_key": "k3"}, {"b_key": "k4"}])
        # a column default SQLAlchemy fills in per row for a key the rows leave out: its own executemany
        defaults = sa.Table("t_bulk_defaults", metadata, sa.Column("id", sa.Integer, primary_key=True),
                            sa.Column("k", sa.String(10)), sa.Column("roles", sa.JSON, default=lambda: []),
                            sa.Column("n", sa.Integer, default=5))
        defaults.create(conn)
        bulk.executemany(conn, defaults.insert(), [{"k": "a"}, {"k": "b"}])
        assert conn.execute(sa.select(defaults.c.k, defaults.c.roles, defaults.c.n)).all() == [("a", [], 5),
                                                                                                ("b", [], 5)]
        # one row: a plain execute
        assert bulk.executemany(conn, table.insert(), [{**_rows(1)[0], "key": "single"}]).rowcount == 1
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.select(table.c.key)).scalars()) == ["k3", "k4", "single"]
    engine.dispose()


def _count(engine: sa.Engine, name: str) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one())


def test_postgresql_copy_on_a_connection_without_a_transaction_is_committed_with_it(pg_url: str) -> None:
    """``Connection.execute`` on a connection that has not begun begins SQLAlchemy's transaction, which
    ``commit()`` then commits. A COPY sent straight to the driver began only the driver's: SQLAlchemy's
    ``commit()`` found nothing to commit and the rows were rolled back when the connection went back to the pool
    (found by an attack on the COPY path: ``engine.connect()``, the bulk rows, ``commit()``: 0 rows of 3)."""
    engine = create_sa_engine(pg_url)
    try:
        ours, theirs = _two_tables(engine, "copy_autobegin")
        rows = _copy_rows(3)
        for table, run in ((ours, bulk.executemany), (theirs, lambda c, s, r: c.execute(s, r))):
            with engine.connect() as conn:
                run(conn, table.insert(), rows)
                conn.commit()
        assert _count(engine, theirs.name) == 3
        assert _contents(engine, ours) == _contents(engine, theirs)
    finally:
        engine.dispose()


def test_postgresql_copy_follows_the_schema_translate_map(pg_url: str) -> None:
    """A connection with ``schema_translate_map`` (a host's engine handed to ``SqlStore(engine=...)``, one schema
    per customer) writes where ``Connection.execute`` would: the translated schema. The COPY named the table as
    compiled without the map and wrote the rows into the default schema's table (another customer's)."""
    import uuid

    other = f"t_other_{uuid.uuid4().hex[:10]}"
    engine = create_sa_engine(pg_url)
    try:
        ours, _ = _two_tables(engine, "copy_translate")
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{other}"')
            ours.to_metadata(sa.MetaData(), schema=other).create(conn)
        translated = engine.execution_options(schema_translate_map={None: other})
        with translated.begin() as conn:
            bulk.executemany(conn, ours.insert(), _copy_rows(4))
        assert (_count(engine, f'"{other}".{ours.name}'), _count(engine, ours.name)) == (4, 0)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{other}" CASCADE')
        engine.dispose()


def test_postgresql_rows_for_a_table_under_row_level_security_go_in_as_execute_writes_them(pg_url: str) -> None:
    """Row-level security refuses ``COPY FROM`` whoever sets the rows' tenant: not only on a connection bound with
    the tenant option but on any connection the policy applies to (a store opened on a session whose tenant is set
    by the URL or the role, the tables' owner under FORCE). There ``Connection.execute`` writes the rows, so the
    bulk rows go in that way too; before, a tick's batch of starts failed with ``NotSupportedError`` where one
    start succeeded (found by opening a store on the service's database with ``-cregelwerk.tenant=a``)."""
    engine = create_sa_engine(pg_url)
    try:
        with engine.connect() as conn:
            if conn.exec_driver_sql("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
                                    ).scalar():
                pytest.skip("row-level security does not apply to a superuser or a BYPASSRLS role")
        ours, theirs = _two_tables(engine, "copy_rls")
        with engine.begin() as conn:
            for table in (ours, theirs):
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ENABLE ROW LEVEL SECURITY")
                conn.exec_driver_sql(f"ALTER TABLE {table.name} FORCE ROW LEVEL SECURITY")
                conn.exec_driver_sql(f"CREATE POLICY p_open ON {table.name} USING (true) WITH CHECK (true)")
        rows = _copy_rows(5)
        for table, run in ((ours, bulk.executemany), (theirs, lambda c, s, r: c.execute(s, r))):
            with engine.begin() as conn:
                run(conn, table.insert(), rows)
        assert _contents(engine, ours) == _contents(engine, theirs)
        assert _count(engine, ours.name) == 5
    finally:
        engine.dispose()


def test_postgresql_copy_on_a_lost_connection_fails_as_execute_fails(pg_url: str) -> None:
    """The server ends the connection (a restart, a failover, ``pg_terminate_backend``) just before the bulk rows:
    as with ``Connection.execute`` the error raised is the statement's, marked ``connection_invalidated`` (the
    connection is invalidated at once, so the unit's rollback does not talk to the dead connection), and the next
    transaction gets a working connection. Before, the COPY's error left the connection valid and the rollback's
    own error (``the connection is lost``, no statement) replaced it."""
    engine = create_sa_engine(pg_url, pool_size=1, max_overflow=0)
    admin = sa.create_engine(pg_url)
    try:
        ours, theirs = _two_tables(engine, "copy_lost")
        for table, run in ((ours, bulk.executemany), (theirs, lambda c, s, r: c.execute(s, r))):
            with engine.connect() as conn, conn.begin():  # the one pooled connection has written rows before
                run(conn, table.insert(), _copy_rows(2))
                conn.rollback()
            with pytest.raises(sa.exc.OperationalError) as lost, engine.begin() as conn:
                pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
                with admin.begin() as other:
                    other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
                run(conn, table.insert(), _copy_rows(3))
            assert lost.value.connection_invalidated
            assert f"{table.name} (key" in str(lost.value.statement)
            assert _count(engine, table.name) == 0
    finally:
        admin.dispose()
        engine.dispose()


def test_sqlite_datetime_text_is_made_once_per_value(tmp_path: Any) -> None:
    """A batch's rows share few times (the tick's now, one due moment for many items): the text of a naive or UTC
    datetime is kept by value (equal ones have equal fields); an equal time of another zone keeps its own fields."""
    made = create_sa_engine(f"sqlite:///{tmp_path / 'texts.sqlite'}")
    try:
        process = bulk._processor(sa.DateTime(), made.dialect)
        assert process is not None
        naive = datetime(2026, 3, 1, 9, 30, 0, 123456)
        text = process(naive)
        assert text == "2026-03-01 09:30:00.123456"
        assert process(datetime(2026, 3, 1, 9, 30, 0, 123456)) is text  # another object, the same value: kept
        utc = naive.replace(tzinfo=UTC)
        assert process(utc) == text and process(naive.replace(tzinfo=UTC)) is process(utc)
        # the same instant in another zone is stored with its own fields (as SQLAlchemy does), never the UTC text
        other = utc.astimezone(timezone(timedelta(hours=2)))
        assert other == utc and process(other) == "2026-03-01 11:30:00.123456"
        assert process(naive.replace(microsecond=0)) == "2026-03-01 09:30:00.000000"
        # more values than are kept: each still its own text
        many = [naive + timedelta(seconds=i) for i in range(bulk._TEXTS_KEPT + 10)]
        assert [process(v) for v in many] == [v.isoformat(" ", "microseconds") for v in many]
        assert process(date(2026, 1, 2)) == "2026-01-02 00:00:00.000000" and process(None) is None
    finally:
        made.dispose()


def test_postgresql_copy_new_rolls_back_its_own_savepoint_on_a_taken_key(pg_url: str, tmp_path: Any) -> None:
    """``copy_new``: rows the caller expects to be new go in with COPY inside a savepoint; a key already there is
    SQLAlchemy's ``IntegrityError`` with none of the rows written, and the transaction goes on (what it wrote
    before stays, it commits). Where COPY does not apply (SQLite, a tenant-bound connection) nothing is written:
    None."""
    from regelwerk.tenancy.rls import TENANT_OPTION

    engine = create_sa_engine(pg_url)
    try:
        ours, _ = _two_tables(engine, "copy_new")
        with engine.begin() as conn:
            assert bulk.copy_new(conn, ours.insert(), [{**r, "key": f"a{i}"} for i, r in enumerate(_copy_rows(3))]) == 3
            with pytest.raises(sa.exc.IntegrityError):
                bulk.copy_new(conn, ours.insert(), [{**r, "key": f"{k}"} for k, r in zip(("b0", "a1", "b2"),
                                                                                         _copy_rows(3), strict=True)])
            conn.execute(ours.insert(), [{**_copy_rows(1)[0], "key": "after"}])
            bound = conn.execution_options(**{TENANT_OPTION: "acme"})
            assert bulk.copy_new(bound, ours.insert(), [{**r, "key": f"t{i}"} for i, r in enumerate(_copy_rows(2))]) \
                is None
        with engine.connect() as conn:
            keys = conn.execute(sa.select(ours.c.key).order_by(ours.c.id)).scalars().all()
        assert keys == ["a0", "a1", "a2", "after"]
    finally:
        engine.dispose()
    lite = create_sa_engine(f"sqlite:///{tmp_path / 'new.sqlite'}")
    try:
        table, _ = _two_tables(lite, "copy_new")
        with lite.begin() as conn:
            assert bulk.copy_new(conn, table.insert(), _copy_rows(2)) is None
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0
    finally:
        lite.dispose()
