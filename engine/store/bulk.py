"""Many rows of one statement at the driver's ``executemany``, the values processed as SQLAlchemy would.

``Connection.execute(statement, rows)`` builds every row's parameters through the compiled statement
(``construct_params``: a dictionary per row, every bind looked up, escaped and processed): on SQLite that
is about half of what an ``executemany`` of a plain INSERT costs. :func:`executemany` compiles the
statement once per dialect and shape (which row keys it binds), keeps each bind's type processor, and
sends the driver one list of positional tuples through ``exec_driver_sql``: the same SQL, the same values
(a datetime formatted, a JSON column serialised by the column's own type), the same transaction and
connection events.

Only where it pays and is plainly equivalent: SQLite (``qmark``, positional) and statements whose binds are
plain values (no expanding ``IN``, no ``RETURNING``, no escaped bind names).

On PostgreSQL a plain ``INSERT`` of whole rows (``table.insert()``: no ``ON CONFLICT``, no ``RETURNING``, no
fixed values, no column default SQLAlchemy computes per row) goes in with ``COPY ... FROM STDIN`` (psycopg's
``Cursor.copy``), the values processed by the columns' own bind processors as for ``Connection.execute``: the
server parses one stream instead of executing an ``INSERT`` per row (20,000 instance rows: 0.66 s with the
driver's pipelined ``executemany``, 0.20-0.31 s with COPY). Its ``before_execute`` listeners are called as for
an execute (the simulation's shared unit writes the rows it keeps behind first), a driver error is raised as
SQLAlchemy's (``IntegrityError`` ...), and the result's ``rowcount`` is the rows copied. Not on a tenant-bound
connection nor for a table whose row-level security applies to the session (it refuses ``COPY FROM``; asked once
per connection and table), nor on a connection with a ``schema_translate_map`` (the COPY would name the table
untranslated) or one that has not begun (SQLAlchemy's ``commit()`` would not commit it), nor when an aware datetime
goes to a column without a time zone (the driver converts it to the session's zone, COPY's text would drop the
offset).

Anything else goes through ``Connection.execute`` unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = ["copy_new", "executemany", "executemany_columns"]

#: the SQL and, per position, (row key, fixed value, bind processor)
_Plan = tuple[str, tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]]
#: (id of the statement, id of the dialect, bound keys) -> (the statement and the dialect, kept alive so that
#: their ids are not reused while the entry exists, and the plan; None: through SQLAlchemy)
_PLANS: dict[tuple[int, int, tuple[str, ...]], tuple[Any, Any, _Plan | None]] = {}
_NO_DEFAULT = object()


def _plan(statement: Any, dialect: Any, keys: tuple[str, ...]) -> _Plan | None:
    """The compiled SQL and, per positional parameter, the row key, its fixed value and its type processor;
    None when the statement is not one this fast path handles."""
    if dialect.paramstyle != "qmark" or getattr(statement, "_returning", ()):
        return None
    compiled = statement.compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
    names = compiled.positiontup
    if not names or getattr(compiled, "escaped_bind_names", None) or getattr(
            compiled, "_render_postcompile", False) or compiled.literal_execute_params or \
            compiled.post_compile_params or compiled.insert_prefetch or compiled.update_prefetch or \
            getattr(compiled, "effective_returning", None):
        # prefetch: a column default SQLAlchemy computes per row for a key the rows leave out; RETURNING (a server
        # generated key, return_defaults()): rows SQLAlchemy reads back
        return None
    getters: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
    wanted = set(keys)
    for name in names:
        bind = compiled.binds.get(name)
        if bind is None or bind.expanding or bind.callable is not None:
            return None
        if name in wanted:
            fixed = _NO_DEFAULT
        elif bind.value is not None or not bind.required:
            fixed = bind.value
        else:
            return None  # a bind no row gives and the statement does not fix: let SQLAlchemy say so
        getters.append((name, fixed, _processor(bind.type, dialect)))
    return compiled.string, tuple(getters)


def _processor(type_: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """The bind processor of ``type_`` on ``dialect``; SQLite's default datetime text by ``isoformat`` (the same
    text: ``YYYY-MM-DD HH:MM:SS.ffffff`` of the value's own fields, its zone ignored) instead of a ``%``
    format of a dictionary per value."""
    process: Callable[[Any], Any] | None = type_._cached_bind_processor(dialect)
    if process is None or dialect.name != "sqlite":
        return process
    from sqlalchemy.dialects.sqlite import DATETIME

    impl = type_.dialect_impl(dialect)
    if not isinstance(impl, DATETIME) or impl._storage_format != DATETIME._storage_format:
        return process
    general = process
    # a batch's rows share few times (the tick's now in every created_at, one due moment for many items): their
    # text is kept by value. Only naive and UTC datetimes are keys: two equal ones of either kind have the same
    # fields, so the same text (an aware time of another zone, equal to one in UTC, has other fields: formatted)
    texts: dict[datetime, str] = {}

    def as_text(value: Any) -> Any:
        if type(value) is datetime:
            zone = value.tzinfo
            if zone is not None and zone is not UTC:
                return value.replace(tzinfo=None).isoformat(" ", "microseconds")
            text = texts.get(value)
            if text is None:
                if len(texts) >= _TEXTS_KEPT:
                    texts.clear()
                text = texts[value] = (value if zone is None else value.replace(tzinfo=None)).isoformat(
                    " ", "microseconds")
            return text
        return general(value)

    return as_text


#: how many datetimes' texts one column's processor keeps (then it starts again)
_TEXTS_KEPT = 256


def _copy_plan(statement: Any, dialect: Any, keys: tuple[str, ...]) -> _Plan | None:
    """PostgreSQL: the ``COPY`` command and, per column, the row key and its bind processor (the fixed value is
    the marker of a column without a time zone); None when the statement is not a plain INSERT of whole rows."""
    from sqlalchemy.sql.dml import Insert
    from sqlalchemy.types import DateTime

    if not isinstance(statement, Insert) or statement._returning or statement._post_values_clause is not None \
            or statement._values or statement._multi_values or getattr(statement, "_select_names", None) \
            or not hasattr(dialect.loaded_dbapi, "Cursor") or not hasattr(dialect.loaded_dbapi.Cursor, "copy"):
        return None
    compiled = statement.compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
    if compiled.insert_prefetch or getattr(compiled, "effective_returning", None) or compiled.post_compile_params \
            or compiled.literal_execute_params or getattr(compiled, "escaped_bind_names", None) \
            or set(compiled.binds) != set(keys):
        return None  # a value SQLAlchemy adds per row (a Python default, a fixed value) or reads back
    table = statement.table
    prepare = dialect.identifier_preparer
    getters: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
    for key in keys:
        column = table.c.get(key)
        if column is None:
            return None
        naive = isinstance(column.type, DateTime) and not column.type.timezone
        getters.append((key, _NAIVE if naive else _NO_DEFAULT, column.type._cached_bind_processor(dialect)))
    listed = ", ".join(prepare.format_column(table.c[key]) for key in keys)
    return f"COPY {prepare.format_table(table)} ({listed}) FROM STDIN", tuple(getters)


_NAIVE = object()
#: the savepoint a :func:`copy_new` is written in (released at once: nested ones shadow it, as SQL says)
_SAVEPOINT = "rw_copy"
#: the key, in the DBAPI connection's ``info`` (kept as long as the connection), of the tables whose row-level
#: security applies on that connection
_ROW_SECURITY = "regelwerk.bulk.row_security"


def _row_security(conn: Any, table: Any) -> bool:
    """Whether row-level security applies to ``table`` on this connection (PostgreSQL's ``row_security_active``:
    enabled and the session's user neither owns the table without FORCE nor bypasses it), when ``COPY FROM`` is
    refused whatever sets the rows' tenant (a session setting from the URL or the role, not the tenant option):
    asked once per connection and table."""
    known: dict[str, bool] = conn.connection.info.setdefault(_ROW_SECURITY, {})
    name = table.fullname
    active = known.get(name)
    if active is None:
        quoted = conn.dialect.identifier_preparer.format_table(table)
        active = known[name] = bool(conn.exec_driver_sql(
            "SELECT row_security_active(to_regclass(%(t)s))", {"t": quoted}).scalar())
    return active


class _Copied:
    """What :func:`executemany` returns for rows written with ``COPY``: their count."""

    __slots__ = ("rowcount",)

    def __init__(self, rowcount: int) -> None:
        self.rowcount = rowcount


def _columns(getters: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...],
             rows: Sequence[Mapping[str, Any]]) -> list[list[Any]] | None:
    """The plan's values, column by column, through their bind processors; None (the rows go through
    ``Connection.execute``) when a later row lacks a key the first has (SQLAlchemy's own error) or an aware datetime
    goes to a COPY's column without a time zone (the driver would convert it to the session's zone)."""
    columns: list[list[Any]] = []
    for name, fixed, process in getters:
        if fixed is _NO_DEFAULT or fixed is _NAIVE:
            try:
                values = [row[name] for row in rows]
            except KeyError:
                return None
            if fixed is _NAIVE and any(type(v) is datetime and v.tzinfo is not None for v in values):
                return None
        else:
            values = [fixed] * len(rows)
        if process is not None:
            values = [process(v) for v in values]
        columns.append(values)
    return columns


def _given_columns(getters: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...],
                   given: Mapping[str, Sequence[Any]], count: int) -> list[list[Any]] | None:
    """:func:`_columns` of rows given column by column (``given``: each key's values, ``count`` of them)."""
    columns: list[list[Any]] = []
    for name, fixed, process in getters:
        if fixed is _NO_DEFAULT or fixed is _NAIVE:
            values = given[name]
            if fixed is _NAIVE and any(type(v) is datetime and v.tzinfo is not None for v in values):
                return None
        else:
            values = [fixed] * count
        columns.append([process(v) for v in values] if process is not None else list(values))
    return columns


def _copy(conn: Any, statement: Any, plan: _Plan, rows: Sequence[Mapping[str, Any]]) -> Any:
    """Write ``rows`` with ``COPY`` (see the module); None when a value needs the driver's conversion."""
    columns = _columns(plan[1], rows)
    if columns is None:
        return None
    return _copy_columns(conn, statement, plan[0], columns, len(rows))


def _copy_columns(conn: Any, statement: Any, sql: str, columns: list[list[Any]], count: int,
                  savepoint: bool = False) -> Any:
    """Write the processed ``columns`` (``count`` rows) with the ``COPY`` command ``sql``; ``savepoint``: inside a
    savepoint of its own, rolled back when the COPY fails (the transaction goes on as before it)."""
    from sqlalchemy.exc import DBAPIError

    # the listeners an execute of the statement would call (the simulation's shared unit: rows it keeps behind for
    # this table are written first); on the simulation's joined connection, the attribute access below also sends
    # the unit's pending savepoint, so the rows go inside it
    for listener in conn.dispatch.before_execute:
        listener(conn, statement, (), {}, {})
    dbapi = conn.dialect.loaded_dbapi
    raw = conn.connection.dbapi_connection
    try:
        with raw.cursor() as cursor:
            if savepoint:
                cursor.execute(f"SAVEPOINT {_SAVEPOINT}")
            try:
                with cursor.copy(sql) as copy:
                    for record in zip(*columns, strict=True):
                        copy.write_row(record)
            except dbapi.Error as exc:
                if savepoint and not conn.dialect.is_disconnect(exc, raw, None):
                    cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}")
                raise
            written = cursor.rowcount
            if savepoint:
                cursor.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
    except dbapi.Error as exc:
        # a lost connection is invalidated at once, as Connection.execute does: the rollback that follows does not
        # talk to it (its own error would replace this one) and the pool does not hand it out again
        lost = bool(conn.dialect.is_disconnect(exc, raw, None))
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(sql, None, exc, dbapi.Error, connection_invalidated=lost,
                                  dialect=conn.dialect) from exc
    return _Copied(written if written >= 0 else count)


def executemany(conn: Any, statement: Any, rows: Sequence[Mapping[str, Any]]) -> Any:
    """``conn.execute(statement, rows)``, at the driver's ``executemany`` (SQLite) or ``COPY`` (PostgreSQL) where
    that is equivalent (see the module). Every row binds the same keys. Returns the result (its ``rowcount`` is
    the driver's)."""
    if len(rows) < 2:
        if rows:  # one row: one execute, at the driver where that is equivalent (regelwerk.store.single)
            from regelwerk.store.single import execute

            return execute(conn, statement, rows[0])
        return conn.execute(statement, list(rows))
    plan = _usable_plan(conn, statement, tuple(rows[0]))
    if plan is None:
        return conn.execute(statement, list(rows))
    if conn.dialect.name == "postgresql":
        copied = _copy(conn, statement, plan, rows)
        return copied if copied is not None else conn.execute(statement, list(rows))
    sql, getters = plan
    columns = _columns(getters, rows)
    if columns is None:
        return conn.execute(statement, list(rows))
    return conn.exec_driver_sql(sql, list(zip(*columns, strict=True)))


def copy_new(conn: Any, statement: Any, rows: Sequence[Mapping[str, Any]]) -> int | None:
    """PostgreSQL: ``rows`` of a plain ``INSERT`` (``statement``, see the module) that the caller expects to be new
    under a unique key that other writers may also insert (its ``ON CONFLICT DO NOTHING`` twin is the exact way),
    written with ``COPY`` inside a savepoint of their own. Returns how many were written (all), or None where
    :func:`executemany` would not copy them (SQLite, row-level security, a tenant-bound connection ...: nothing
    written). A row that violates a constraint (a key someone else wrote meanwhile) raises SQLAlchemy's
    ``IntegrityError`` as an ``INSERT`` would, with the savepoint rolled back: none of the rows is written and the
    transaction goes on, so the caller can write them again with ``ON CONFLICT``."""
    if conn.dialect.name != "postgresql" or not rows:
        return None
    plan = _usable_plan(conn, statement, tuple(rows[0]))
    columns = _columns(plan[1], rows) if plan is not None else None
    if plan is None or columns is None:
        return None
    written: int = _copy_columns(conn, statement, plan[0], columns, len(rows), savepoint=True).rowcount
    return written


def executemany_columns(conn: Any, statement: Any, given: Mapping[str, Sequence[Any]]) -> Any:
    """:func:`executemany` of rows given column by column: ``given`` maps each bound key to every row's value of it
    (all of one length), in the order of the row keys. The same statement, values and result, without a dictionary
    per row where the fast paths take the rows (else the rows are made and go through :func:`executemany`)."""
    keys = tuple(given)
    count = len(given[keys[0]]) if keys else 0
    plan = _usable_plan(conn, statement, keys) if count >= 2 else None
    if plan is not None:
        sql, getters = plan
        columns = _given_columns(getters, given, count)
        if columns is not None:
            if conn.dialect.name == "postgresql":
                return _copy_columns(conn, statement, sql, columns, count)
            return conn.exec_driver_sql(sql, list(zip(*columns, strict=True)))
    rows = [dict(zip(keys, values, strict=True)) for values in zip(*given.values(), strict=True)]
    return conn.execute(statement, rows) if plan is not None else executemany(conn, statement, rows)


def _usable_plan(conn: Any, statement: Any, keys: tuple[str, ...]) -> _Plan | None:
    """The plan of ``statement`` binding ``keys`` on ``conn`` (its ``executemany`` or ``COPY``), or None when the rows
    go through ``Connection.execute`` (see the module)."""
    dialect = conn.dialect
    cache_key = (id(statement), id(dialect), keys)
    entry = _PLANS.get(cache_key)
    if entry is None or entry[0] is not statement or entry[1] is not dialect:
        if len(_PLANS) > 512:
            _PLANS.clear()
        made = _copy_plan(statement, dialect, keys) if dialect.name == "postgresql" else _plan(statement, dialect,
                                                                                             keys)
        entry = _PLANS[cache_key] = (statement, dialect, made)
    plan = entry[2]
    if plan is not None and dialect.name == "postgresql":
        from regelwerk.tenancy.rls import TENANT_OPTION

        # row-level security refuses COPY FROM; a connection that has not begun: Connection.execute begins
        # SQLAlchemy's transaction (its commit() then commits the rows), a COPY would begin only the driver's; a
        # schema_translate_map: the COPY names the table as compiled without it
        options = conn.get_execution_options()
        if options.get(TENANT_OPTION) or options.get("schema_translate_map") or not conn.in_transaction() or \
                _row_security(conn, statement.table):
            return None
    return plan
