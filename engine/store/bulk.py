"""Many rows of one statement at the driver's ``executemany``, the values processed as SQLAlchemy would.

``Connection.execute(statement, rows)`` builds every row's parameters through the compiled statement
(``construct_params``: a dictionary per row, every bind looked up, escaped and processed): on SQLite that
is about half of what an ``executemany`` of a plain INSERT costs. :func:`executemany` compiles the
statement once per dialect and shape (which row keys it binds), keeps each bind's type processor, and
sends the driver one list of positional tuples through ``exec_driver_sql``: the same SQL, the same values
(a datetime formatted, a JSON column serialised by the column's own type), the same transaction and
connection events.

Only where it pays and is plainly equivalent: SQLite (``qmark``, positional) and statements whose binds are
plain values (no expanding ``IN``, no ``RETURNING``, no escaped bind names). Anything else, and PostgreSQL
(whose dialect batches an INSERT's rows into multi-row statements itself), goes through
``Connection.execute`` unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = ["executemany"]

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

    def as_text(value: Any) -> Any:
        if type(value) is datetime:
            return (value if value.tzinfo is None else value.replace(tzinfo=None)).isoformat(" ", "microseconds")
        return general(value)

    return as_text


def executemany(conn: Any, statement: Any, rows: Sequence[Mapping[str, Any]]) -> Any:
    """``conn.execute(statement, rows)``, at the driver's ``executemany`` where that is equivalent (see the
    module). Every row binds the same keys. Returns the result (its ``rowcount`` is the driver's)."""
    if len(rows) < 2:
        return conn.execute(statement, list(rows))
    keys = tuple(rows[0])
    dialect = conn.dialect
    cache_key = (id(statement), id(dialect), keys)
    entry = _PLANS.get(cache_key)
    if entry is None or entry[0] is not statement or entry[1] is not dialect:
        if len(_PLANS) > 512:
            _PLANS.clear()
        entry = _PLANS[cache_key] = (statement, dialect, _plan(statement, dialect, keys))
    plan = entry[2]
    if plan is None:
        return conn.execute(statement, list(rows))
    sql, getters = plan
    columns: list[list[Any]] = []
    try:
        for name, fixed, process in getters:
            values = [row[name] for row in rows] if fixed is _NO_DEFAULT else [fixed] * len(rows)
            if process is not None:
                values = [process(v) for v in values]
            columns.append(values)
    except KeyError:  # a later row without a key the first has: SQLAlchemy's own error
        return conn.execute(statement, list(rows))
    return conn.exec_driver_sql(sql, list(zip(*columns, strict=True)))
