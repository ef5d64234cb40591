"""One statement with one row of parameters, at the driver's ``execute``, the values processed as SQLAlchemy would.

On SQLite the simulation is bound by Python, not by the database: the 10,000-employee year runs about 25,000 single
statements, and ``Connection.execute`` spends more of its time on each in SQLAlchemy than in the driver (the compiled
cache's key built from the statement, an execution context, ``construct_params``' dictionary, a result's metadata).
:func:`execute` keeps, per statement, dialect and bound keys, what that work always comes to for a statement object
that comes again (the first time it goes through SQLAlchemy: one built anew per call would be compiled here every
time, where SQLAlchemy's cache finds it by its key): the compiled SQL, each positional parameter's row key (or the
value the statement fixes) and type processor, and for a SELECT the result's keys and the columns' result processors
(datetimes, JSON, booleans: SQLAlchemy's own, applied as SQLAlchemy applies them). Then it calls the connection's
``before_execute`` listeners with the statement (the simulation's shared unit writes the rows it keeps behind first,
and counts the write), runs the SQL on a cursor of the connection through ``Connection._cursor_execute`` (SQLAlchemy's
own path for a statement without an execution context: ``before_cursor_execute`` and ``after_cursor_execute`` are
called, with no context, and a driver error is raised as SQLAlchemy's, ``IntegrityError`` ...), and returns the rows
as an SQLAlchemy ``Result`` (``first()``, ``all()``, ``scalars()``, ``mappings()``, rows by name, position and column)
with the driver's ``rowcount``.

Only where it is plainly equivalent: SQLite (``qmark``), a connection in a transaction that is active (else
``Connection.execute`` begins it, or raises what SQLAlchemy raises), without execution options of its own but
``regelwerk_begin`` (a ``schema_translate_map``, streaming, echo: SQLAlchemy's path), without ``after_execute``
listeners (they are handed SQLAlchemy's result); a SELECT whose columns are compiled in order, or an INSERT, UPDATE or
DELETE (its RETURNING's rows as a SELECT's), whose binds are plain values (no expanding ``IN``, no Python default
computed per row, no escaped bind names). A result from this path has no ``inserted_primary_key`` nor ``lastrowid``: a
caller that reads them uses ``Connection.execute``. Anything else goes through ``Connection.execute`` unchanged
(PostgreSQL included: there the time is the server's round trip, not SQLAlchemy's).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData

__all__ = ["Executed", "execute"]


class Executed(IteratorResult[Any]):
    """The rows of a statement run by :func:`execute` (none for an INSERT, UPDATE or DELETE) and the driver's count
    of the rows it changed."""

    def __init__(self, metadata: SimpleResultMetaData, rows: list[Any], rowcount: int) -> None:
        super().__init__(metadata, iter(rows))
        self.rowcount = rowcount


#: the SQL; per positional parameter (row key or None, fixed value, bind processor); the result's metadata (None: the
#: statement returns no rows)
_Plan = tuple[str, tuple[tuple[str | None, Any, Callable[[Any], Any] | None], ...], SimpleResultMetaData | None]
#: (id of the statement, id of the dialect, bound keys) -> (the statement and the dialect, kept alive so that their
#: ids are not reused while the entry exists, and the plan; None: through SQLAlchemy)
_PLANS: dict[tuple[int, int, frozenset[str]], tuple[Any, Any, Any]] = {}
#: the connection's own execution options this path honours (the store's BEGIN mode, used when the unit begins)
_OPTIONS = frozenset({"regelwerk_begin"})
_NO_ROWS = SimpleResultMetaData([])
#: a statement seen once (see :func:`_plan_of`)
_ONCE: Any = object()


def _plan(statement: Any, dialect: Any, keys: frozenset[str]) -> _Plan | None:
    """The compiled SQL, its parameters' sources and processors, and the result's metadata; None when the statement
    is not one this path handles (see the module)."""
    from regelwerk.store.bulk import _processor
    from sqlalchemy.sql.elements import ClauseElement, TextClause

    if not isinstance(statement, ClauseElement) or isinstance(statement, TextClause) or \
            getattr(statement, "_execution_options", None):
        return None
    # an INSERT, UPDATE or DELETE returns rows only with RETURNING (SQLite's own: the rows at the cursor)
    returning = bool(getattr(statement, "is_dml", False)) and bool(getattr(statement, "_returning", ()))
    dml = bool(getattr(statement, "is_dml", False)) and not returning
    if not dml and not returning and not getattr(statement, "is_select", False):
        return None
    compiled: Any = statement.compile(dialect=dialect, column_keys=sorted(keys))
    if getattr(compiled, "escaped_bind_names", None) or getattr(compiled, "_render_postcompile", False) or \
            compiled.literal_execute_params or compiled.post_compile_params or compiled.insert_prefetch or \
            compiled.update_prefetch or bool(getattr(compiled, "effective_returning", None)) != returning:
        return None
    getters: list[tuple[str | None, Any, Callable[[Any], Any] | None]] = []
    for name in compiled.positiontup or ():
        bind = compiled.binds.get(name)
        if bind is None or bind.expanding or bind.callable is not None:
            return None
        # construct_params: the bind's key, else its compiled name, among the given keys; else the statement's value
        key = bind.key if bind.key in keys else name if name in keys else None
        if key is None and bind.value is None and bind.required:
            return None  # a bind no row gives and the statement does not fix: let SQLAlchemy say so
        getters.append((key, None if key is not None else bind.value, _processor(bind.type, dialect)))
    metadata = None if dml else _metadata(compiled, dialect)
    if not dml and metadata is None:
        return None
    return compiled.string, tuple(getters), metadata


def _metadata(compiled: Any, dialect: Any) -> SimpleResultMetaData | None:
    """A SELECT's result keys (each also found by the column objects SQLAlchemy's result finds it by) and the
    columns' result processors, as ``CursorResultMetaData`` takes them in its positional case (the compiled columns
    in order, one per column of the cursor); None for textual or unordered columns and for repeated keys."""
    columns = compiled._result_columns
    if not columns or not compiled._ordered_columns or compiled._textual_ordered_columns or \
            compiled._ad_hoc_textual or compiled._loose_column_name_matching:
        return None
    keys = [column[0] for column in columns]
    if len(set(keys)) != len(keys):
        return None
    # SQLite's cursor.description carries no type: the processor is the one SQLAlchemy takes for its None
    processors = [column[3]._cached_result_processor(dialect, None) for column in columns]
    return SimpleResultMetaData(keys, extra=[tuple(column[2]) for column in columns],
                                _processors=processors if any(processors) else None)


def _usable(conn: Any) -> bool:
    """Whether ``conn`` (a SQLAlchemy ``Connection``) may run a statement on this path now (see the module)."""
    from sqlalchemy.engine.util import TransactionalContext

    transaction = conn._transaction
    nested = conn._nested_transaction
    if conn.dialect.name != "sqlite" or transaction is None or not transaction.is_active or \
            (nested is not None and not nested.is_active) or conn._dbapi_connection is None or conn._echo:
        return False
    options = conn._execution_options
    if options and not _OPTIONS.issuperset(options):
        return False
    if conn.dispatch.after_execute:
        return False
    if conn._trans_context_manager:
        TransactionalContext._trans_ctx_check(conn)  # raises as SQLAlchemy's execute would
    return True


def _plan_of(statement: Any, dialect: Any, keys: frozenset[str]) -> _Plan | None:
    """The statement's plan; None (through SQLAlchemy) the first time a statement object comes with these keys: a
    statement built anew per call never comes again, and compiling it here would cost more than SQLAlchemy's compiled
    cache (a cache key, then a hit); the plan is made when it comes the second time."""
    cache_key = (id(statement), id(dialect), keys)
    entry = _PLANS.get(cache_key)
    if entry is None or entry[0] is not statement or entry[1] is not dialect:
        if len(_PLANS) > 1024:
            _PLANS.clear()
        _PLANS[cache_key] = (statement, dialect, _ONCE)
        return None
    plan = entry[2]
    if plan is _ONCE:
        plan = _plan(statement, dialect, keys)
        _PLANS[cache_key] = (statement, dialect, plan)
    return plan  # type: ignore[no-any-return]


def execute(conn: Any, statement: Any, parameters: Mapping[str, Any] | None = None) -> Any:
    """``conn.execute(statement, parameters)``: at the driver on SQLite where that is equivalent (see the module),
    else through SQLAlchemy. ``conn`` is a SQLAlchemy ``Connection`` or one that hands the statement's connection
    out (``statement_connection``: the simulation's joined unit, which first sends its pending savepoint for a
    statement that may write)."""
    params: Mapping[str, Any] = parameters if parameters is not None else {}
    handing = getattr(type(conn), "statement_connection", None)
    real = handing(conn, statement) if handing is not None else conn
    # SQLAlchemy's path on the statement's own connection (the pending savepoint sent already): through ``conn``
    # again, a joined unit would hand the statement back here and it would be planned as if seen twice
    if not _usable(real):
        return real.execute(statement, params) if parameters is not None else real.execute(statement)
    dialect = real.dialect
    plan = _plan_of(statement, dialect, frozenset(params))
    if plan is None:
        return real.execute(statement, params) if parameters is not None else real.execute(statement)
    if (real._has_events or real.engine._has_events) and real.dispatch.before_execute:
        elem, distilled, _, _ = real._invoke_before_exec_event(statement, [params], real._execution_options)
        if elem is not statement or (distilled[0] if distilled else params) is not params:
            # a listener gave another statement or parameters (retval=True): run what it gave, as SQLAlchemy
            return _through_sqlalchemy(real, elem, distilled)
    sql, getters, metadata = plan
    values = tuple((params[key] if key is not None else fixed) if process is None
                   else process(params[key] if key is not None else fixed) for key, fixed, process in getters)
    cursor = real._dbapi_connection.cursor()
    try:
        real._cursor_execute(cursor, sql, values)
        if metadata is None:
            return Executed(_NO_ROWS, [], cursor.rowcount)
        return Executed(metadata, cursor.fetchall(), cursor.rowcount)
    finally:
        cursor.close()


def _through_sqlalchemy(conn: Any, statement: Any, distilled: list[Any]) -> Any:
    """What ``Connection._execute_clauseelement`` does after its ``before_execute`` listeners (already called)."""
    keys = sorted(distilled[0]) if distilled else []
    options = statement._execution_options.merge_with(conn._execution_options)
    from sqlalchemy.sql.compiler import WARN_LINTING

    dialect = conn.dialect
    compiled, extracted, param_dict, cache_hit = statement._compile_w_cache(
        dialect=dialect, compiled_cache=options.get("compiled_cache", conn.engine._compiled_cache),
        column_keys=keys, for_executemany=len(distilled) > 1, schema_translate_map=None,
        linting=dialect.compiler_linting | WARN_LINTING)
    return conn._execute_context(dialect, dialect.execution_ctx_cls._init_compiled, compiled, distilled, options,
                                 compiled, distilled, statement, extracted, cache_hit=cache_hit,
                                 param_dict=param_dict)
