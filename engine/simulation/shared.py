"""One transaction for everything a step does, whichever port does it: the simulation's unit of work.

A story event reaches the database through several ports (the workflow store's ``transaction()``, the
employee directory and the relationship facts on the SQLAlchemy engine, a pack's service); each opens
its own transaction. To apply the event **and** record it in one transaction, :func:`shared_unit` opens
one connection and transaction on the SQLAlchemy engine and, while it is open, every
``engine.connect()`` / ``engine.begin()`` of this thread joins it: their ``begin`` is a SAVEPOINT, their
``commit`` releases it, their ``rollback`` rolls back to it (so a port that catches its own failure and
goes on, such as the timers marking a timer failed, still undoes only its own part), and their ``close``
leaves the shared connection open. The shared transaction commits when the ``with`` block ends and
rolls back as a whole when it raises: then nothing of the step is in the store, its record included.

A joined unit takes its savepoint lazily: the ``SAVEPOINT`` is sent just before the first statement that
can write (anything but a plain ``SELECT`` without ``FOR UPDATE``), so a unit that only reads, or that is
refused before it writes, costs no savepoint round trips, and a unit that writes costs one shared with the
units it is nested in. Rolling back a unit that did not write has nothing to undo. The pending units are
nested ones begun since the last write: only the outermost sends its ``SAVEPOINT``, and the units inside it
share that savepoint (nothing was written between their beginnings, so theirs would be set at the same
place; an inner one rolls back to it, which stays set for the outer one, and a commit has nothing to
release): an event whose fire writes first sends one SAVEPOINT, not two. (Measured on the year of 10,000
employees on PostgreSQL: 18,500 savepoint round trips became 10,900 with the lazy savepoints.)

A failed *write* therefore always has its own unit's savepoint to roll back to. A failed *read* on
PostgreSQL (which aborts the transaction up to the last savepoint sent) may have none: the transaction
then stays aborted, every later statement of the step fails, and a step that would commit in that state
raises :class:`StepAborted` instead (PostgreSQL would silently turn the ``COMMIT`` into a rollback): the
step is rolled back as a whole, never reported done without its rows.

A committed unit's ``RELEASE`` is deferred too: it goes with the next ``SAVEPOINT`` (PostgreSQL: in the
same round trip), and is not sent at all when an enclosing savepoint is released first (which releases
what was made inside it), rolled back, or the shared transaction commits. Until then the released
savepoint merely stays on the database's savepoint stack, which changes nothing of what commits or
rolls back; at most one such savepoint per nesting level is kept.

Rows written behind: a port may hand an append-only row to the unit (:meth:`_Joined.defer`; the workflow
store does so for history rows and outbox messages) instead of inserting it. The kept rows are written with
one ``executemany`` per statement before the step commits, or as soon as a statement of the step touches
their table (those of the tables it touches; all of them when it cannot be told: SQL text), or a SQLAlchemy
savepoint (``begin_nested``) begins. A unit that rolls back drops the rows kept in it and in the units inside
it; rows written inside a unit's savepoint that were kept before it began are kept behind again when it rolls
back (its rollback undid them). Rows kept before the pending units began are written without setting their
savepoints (the rows are not theirs).

On SQLite the unit's connection runs a statement executed with one row of parameters (or none) through
``regelwerk.store.single``: at the driver, its ``before_execute`` listeners called as for SQLAlchemy's execute (the
same write-behind and write count), where that is equivalent; the step's statements are many and small, and
SQLAlchemy's own work per statement outweighed the driver's.

Writes counted: :func:`write_count` tells how many statements of the open unit may have changed a table so far (an
INSERT, UPDATE or DELETE its table; anything but those and a SELECT, and every savepoint rolled back, any table),
so that rows read ahead in the step (a day's story events known up front) are used only while nothing can have
changed them.

Every begin/commit inside and around the unit is a transaction boundary of
:mod:`regelwerk.simulation.faults` (the kill -9 harness).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from types import TracebackType
from typing import Any

from regelwerk.errors import RegelwerkError
from regelwerk.simulation.faults import boundary
from regelwerk.store.single import execute as execute_single
from sqlalchemy import event
from sqlalchemy.sql.elements import ReleaseSavepointClause, SavepointClause, TextClause

__all__ = ["StepAborted", "executemany", "joinable", "shared_unit", "write_behind_now", "write_count"]

_ATTR = "_regelwerk_shared"


class StepAborted(RegelwerkError):
    """A statement failed inside a step without a savepoint of its own to roll back to (PostgreSQL): the
    step's transaction is unusable and is rolled back as a whole."""

    code = "step_aborted"
    stops_work = True

    def __init__(self, label: str) -> None:
        self.label = label
        super().__init__(f"a statement failed in step {label!r} and aborted its transaction: the step is rolled "
                         "back as a whole")

    def to_dict(self) -> dict[str, Any]:
        """Include the step."""
        return {**super().to_dict(), "step": self.label}


class _Shared(threading.local):
    connection: Any = None
    label = ""
    savepoints = 0
    #: the open joined units that hold a savepoint (sent or pending), outermost first
    open: list[_Joined]
    #: numbers of committed savepoints whose RELEASE is deferred (sent with the next SAVEPOINT)
    released: list[int]
    #: the driver takes one statement at a time (SQLite); else the savepoint commands go in one round trip
    one_by_one = False

    #: rows written behind (:meth:`_Joined.defer`): (number of the innermost open unit, statement, parameters)
    deferred: list[tuple[int, Any, dict[str, Any]]]
    #: the tables of the rows written behind: a statement that touches one first writes them
    deferred_tables: set[str]
    flushing = False
    #: statements of the shared transaction per table they may have changed ("": any table, e.g. a WITH or DDL, and
    #: every savepoint rolled back; None: a SELECT, which changes none): what :func:`write_count` counts
    writes: Counter[str | None]

    def __init__(self) -> None:
        self.open = []
        self.released = []
        self.deferred = []
        self.deferred_tables = set()
        self.writes = Counter()


class _SavepointTx:
    """What ``begin()`` returns inside the unit: a savepoint, as a context manager."""

    def __init__(self, joined: _Joined) -> None:
        self._joined = joined

    @property
    def is_active(self) -> bool:
        return self._joined.savepoint is not None

    def commit(self) -> None:
        self._joined.commit()

    def rollback(self) -> None:
        self._joined.rollback()

    def __enter__(self) -> _SavepointTx:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()


#: attributes of the shared connection that neither read nor write (no savepoint needed to hand them out)
_INERT = frozenset({"dialect", "engine", "info", "closed", "invalidated", "default_isolation_level"})


def _reads_only(statement: Any) -> bool:
    """A plain SELECT (no row locks): running it needs no savepoint."""
    return bool(getattr(statement, "is_select", False)) and getattr(statement, "_for_update_arg", None) is None


def _driver(shared: _Shared, *statements: str) -> None:
    """Send savepoint commands (PostgreSQL: in one round trip; SQLite's driver takes one at a time)."""
    cursor = shared.connection.connection.dbapi_connection.cursor()
    try:
        if shared.one_by_one:
            for sql in statements:
                cursor.execute(sql)
        else:
            cursor.execute("; ".join(statements))
    finally:
        cursor.close()


def _send_pending(shared: _Shared) -> None:
    """Send the pending savepoint of the open units (before a statement that may write), after the deferred
    releases: the outermost pending unit's ``SAVEPOINT``; the pending units inside it share it (see
    :meth:`_Joined.share`)."""
    # the oldest deferred release covers the later ones: they were made after it, so inside it
    statements = [f"RELEASE SAVEPOINT rw_sp{min(shared.released)}"] if shared.released else []
    shared.released.clear()
    first: _Joined | None = None
    for joined in shared.open:
        if not joined.sent and joined.savepoint is not None:
            if first is None:
                statements.append(f"SAVEPOINT {joined.savepoint}")
                first = joined
            else:
                joined.share(first)
            joined.sent = True
    if statements:
        _driver(shared, *statements)


#: statement -> the names of the tables it reads or writes (None: cannot tell, e.g. SQL text); keyed by id, the
#: statement kept alive beside its entry (most are module constants; the cache is emptied when it grows)
_TABLES: dict[int, tuple[Any, frozenset[str] | None]] = {}


def _tables_of(statement: Any) -> frozenset[str] | None:
    found = _TABLES.get(id(statement))
    if found is not None and found[0] is statement:
        return found[1]
    from sqlalchemy.sql.elements import ClauseElement, TextClause
    from sqlalchemy.sql.expression import TableClause
    from sqlalchemy.sql.util import find_tables

    names: frozenset[str] | None = None
    if isinstance(statement, ClauseElement) and not isinstance(statement, TextClause):
        try:
            names = frozenset(t.name for t in find_tables(statement, include_aliases=True, include_joins=True,
                                                          include_crud=True, check_columns=True)
                              if isinstance(t, TableClause))
        except Exception:  # noqa: BLE001 - an element find_tables does not know: treat it as touching anything
            names = None
    if len(_TABLES) > 2048:
        _TABLES.clear()
    _TABLES[id(statement)] = (statement, names)
    return names


def _flush(shared: _Shared, tables: frozenset[str] | None = None) -> None:
    """Write the rows written behind, those of ``tables`` only when given (a statement about to touch them: the
    others stay behind until their own tables are touched or the step ends).

    Rows kept in a pending unit (or one inside it) belong inside its savepoint: the pending savepoints are sent
    first. When every row to write was kept before the first pending unit began (in units that have committed
    since, or that are open with their savepoint set), no savepoint is due: they are written inside the innermost
    unit whose savepoint is set, which remembers them, not inside the pending ones (whose rollback must not undo
    them); the pending savepoints are then set after them."""
    rows: list[tuple[int, Any, dict[str, Any]]]
    if tables is None:
        rows, shared.deferred = shared.deferred, []
        shared.deferred_tables = set()
    else:
        rows = []
        kept: list[tuple[int, Any, dict[str, Any]]] = []
        for row in shared.deferred:
            (rows if row[1].table.name in tables else kept).append(row)
        shared.deferred = kept
        shared.deferred_tables = {row[1].table.name for row in kept}
    if not rows:
        return
    # the pending units are the innermost open ones (see _Joined._pending)
    pending = next((joined for joined in shared.open if not joined.sent), None)
    if pending is not None and any(row[0] >= pending.number for row in rows):
        _send_pending(shared)
        _write_rows(shared, rows, shared.open[-1])
        return
    # else no SAVEPOINT is due: a deferred RELEASE stays deferred (the rows go inside the released savepoint, which
    # is inside the innermost set one's: its rollback undoes them, as it must), not sent alone (one round trip on
    # PostgreSQL before most steps' commits)
    inside = next((joined for joined in reversed(shared.open) if joined.sent), None)
    _write_rows(shared, rows, inside)


def _write_rows(shared: _Shared, rows: list[tuple[int, Any, dict[str, Any]]], inside: _Joined | None) -> None:
    """One ``executemany`` per statement, in the order the statements first came; each keeps its rows' order (the
    rows written behind are append-only rows of tables that do not refer to each other).

    The rows are now inside the savepoint of ``inside`` (an open unit; None: outside any), also those kept before it
    began (in a unit that has committed since, or outside any): the unit remembers them, and if it rolls back, the
    rows that were not its own are kept behind again (its rollback undid them)."""
    by_statement: dict[int, tuple[Any, list[dict[str, Any]]]] = {}
    for _tag, statement, parameters in rows:
        by_statement.setdefault(id(statement), (statement, []))[1].append(parameters)
    flushing, shared.flushing = shared.flushing, True
    try:
        for statement, parameters_list in by_statement.values():
            executemany(shared.connection, statement, parameters_list)
    finally:
        shared.flushing = flushing
    if inside is not None:
        inside.written.extend(rows)


def executemany(connection: Any, statement: Any, rows: list[dict[str, Any]]) -> None:
    """``connection.execute(statement, rows)``; on SQLite at the driver's ``executemany`` where equivalent (the same
    stored values, without SQLAlchemy building a parameter dictionary per row: ``regelwerk.store.bulk``). On
    PostgreSQL as SQLAlchemy sends it (psycopg pipelines it; whether a COPY pays for a step's few rows per statement
    is not measured)."""
    if connection.dialect.name == "sqlite":
        from regelwerk.store import bulk

        bulk.executemany(connection, statement, rows)
    else:
        connection.execute(statement, rows)


class _Joined:
    """What ``engine.connect()`` returns while a shared unit is open (delegates to the unit's connection).

    Savepoints are sent straight to the driver (``SAVEPOINT`` / ``RELEASE`` / ``ROLLBACK TO``): the
    shared transaction stays SQLAlchemy's, the savepoints inside it are ours (named ``rw_sp<n>``).
    A savepoint is sent lazily (see the module docstring): ``sent`` tells whether it was.
    """

    def __init__(self, connection: Any, shared: _Shared) -> None:
        self._connection = connection
        self._shared = shared
        self.savepoint: str | None = None
        self.number = 0
        self.sent = False
        #: the name and number of the enclosing unit's savepoint this one shares (None: its own; see :meth:`share`)
        self.shares: tuple[str, int] | None = None
        #: rows written behind that were written while this unit was the innermost open one (see _write_rows)
        self.written: list[tuple[int, Any, dict[str, Any]]] = []

    def _pending(self) -> bool:
        # the pending units are the innermost ones (begun since the last SAVEPOINT was sent, which sent every pending
        # one): one is pending exactly when the innermost is
        open_units = self._shared.open
        return bool(open_units) and not open_units[-1].sent

    def begin(self) -> _SavepointTx:
        self._shared.savepoints += 1
        self.number = self._shared.savepoints
        self.savepoint = f"rw_sp{self.number}"
        self.sent = False
        self.shares = None
        self._shared.open.append(self)  # its SAVEPOINT is sent before its first write (the module docstring)
        return _SavepointTx(self)

    def share(self, outer: _Joined) -> None:
        """Take ``outer``'s savepoint as this unit's own instead of sending one: both were pending until now, so the
        two would be set at the same place, one right after the other (nothing of either unit was written yet: a
        write, and a flush of rows kept in a pending unit, sends the pending savepoints first). Rolling
        back to ``outer``'s undoes exactly what rolling back to this unit's would; a commit has nothing to release
        (``outer`` is still open: the units are nested). An event and the port's unit inside it that writes first
        (a fire's) take one SAVEPOINT, not two."""
        assert outer.savepoint is not None
        self.shares = (outer.savepoint, outer.number)

    def _close_savepoint(self) -> tuple[str | None, bool]:
        savepoint, sent, self.savepoint, self.sent = self.savepoint, self.sent, None, False
        if savepoint is not None:
            with contextlib.suppress(ValueError):
                self._shared.open.remove(self)
        return savepoint, sent

    def commit(self) -> None:
        savepoint, sent = self._close_savepoint()
        shares, self.shares = self.shares, None
        if self.written:  # now inside the enclosing unit's savepoint (or the step's transaction)
            if self._shared.open:
                self._shared.open[-1].written.extend(self.written)
            self.written = []
        if savepoint is not None:
            boundary(f"savepoint:{self._shared.label}")
            if sent and shares is None:
                # RELEASE is deferred: sent with the next SAVEPOINT (one round trip), or made unnecessary by
                # the release or rollback of an enclosing savepoint or by the commit; savepoints made after
                # this one (inside it) are released with it
                released = self._shared.released
                released[:] = [n for n in released if n < self.number]
                released.append(self.number)

    def rollback(self) -> None:
        savepoint, sent = self._close_savepoint()
        shares, self.shares = self.shares, None
        shared = self._shared
        deferred = shared.deferred
        if savepoint is not None and deferred and any(row[0] >= self.number for row in deferred):
            # rows written behind in this unit or a unit inside it (numbered after it) go with it
            deferred[:] = [row for row in deferred if row[0] < self.number]
        if self.written:
            # its ROLLBACK undoes what was written inside it: the rows kept before it began are kept behind again
            again = [row for row in self.written if row[0] < self.number]
            self.written = []
            if again:
                deferred.extend(again)
                shared.deferred_tables.update(row[1].table.name for row in again)
        if sent:
            released = self._shared.released
            shared.writes[""] += 1  # rows of any table may be as they were before it (write_count)
            if shares is not None:
                # the enclosing unit's savepoint (set where this one's would be): back to it, which stays set
                name, number = shares
                released[:] = [n for n in released if n < number]  # undone with it
                _driver(shared, f"ROLLBACK TO SAVEPOINT {name}")
                return
            released[:] = [n for n in released if n < self.number]  # undone with it
            _driver(shared, f"ROLLBACK TO SAVEPOINT {savepoint}", f"RELEASE SAVEPOINT {savepoint}")

    def close(self) -> None:
        self.rollback()

    def in_transaction(self) -> bool:
        return True

    def execution_options(self, **options: Any) -> _Joined:
        # the shared transaction already began (with the write lock on SQLite): a read unit's
        # ``regelwerk_begin=DEFERRED`` (see store/sql.py) changes nothing here
        return self

    # --- statements: a pending savepoint is sent before anything that may write -----------------

    def defer(self, statement: Any, parameters: dict[str, Any]) -> bool:
        """Write an INSERT's row behind (or an UPDATE's parameters, where the caller knows what the UPDATE matches
        and that it cannot fail): kept until the step commits or a statement touches its table, then
        written with the others of its statement in one ``executemany`` (in the order they came); dropped when its
        unit (or one it is in) rolls back. False (write it now) inside a SQLAlchemy savepoint (``begin_nested``),
        which would not drop it."""
        if self._connection.in_nested_transaction():
            return False
        shared = self._shared
        shared.deferred.append((shared.open[-1].number if shared.open else 0, statement, parameters))
        shared.deferred_tables.add(statement.table.name)
        return True

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        conn = self.statement_connection(statement)
        if self._shared.one_by_one and not kwargs and (not args or (len(args) == 1 and isinstance(args[0], dict))):
            # one statement, one row of parameters: at the driver where that is equivalent (regelwerk.store.single;
            # the step's statements are many and small: SQLAlchemy's work per statement outweighed the driver's)
            return execute_single(conn, statement, args[0] if args else None)
        return conn.execute(statement, *args, **kwargs)

    def statement_connection(self, statement: Any) -> Any:
        """The shared connection, to run ``statement`` on, with the pending savepoint sent first when the statement
        may write (every statement of the unit goes through here; ``regelwerk.store.single`` asks for it too)."""
        if not _reads_only(statement) and self._pending():
            _send_pending(self._shared)
        return self._connection

    def scalar(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        return self.statement_connection(statement).scalar(statement, *args, **kwargs)

    def scalars(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        return self.statement_connection(statement).scalars(statement, *args, **kwargs)

    def __enter__(self) -> _Joined:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        if name not in _INERT:
            # driver-level SQL (exec_driver_sql: SQLAlchemy calls no before_execute for it), the DBAPI connection...:
            # could change any table (write_count)
            self._shared.writes[""] += 1
            if self._pending():
                _send_pending(self._shared)  # driver-level SQL, nested transactions...: could write
            if self._shared.deferred and not self._shared.flushing:
                _flush(self._shared)  # e.g. a begin_nested() savepoint must not take in rows written before it
        return getattr(self._connection, name)


def joinable(sa_engine: Any) -> _Shared:
    """Make ``sa_engine``'s ``connect()`` join an open shared unit (once per engine; idempotent)."""
    shared: _Shared | None = getattr(sa_engine, _ATTR, None)
    if shared is not None:
        return shared
    shared = _Shared()
    shared.one_by_one = sa_engine.dialect.name == "sqlite"
    original = sa_engine.connect

    def connect() -> Any:
        connection = shared.connection
        return original() if connection is None else _Joined(connection, shared)

    sa_engine.connect = connect
    setattr(sa_engine, _ATTR, shared)

    def before_execute(conn: Any, statement: Any, *_: Any) -> None:
        if conn is not shared.connection:
            return
        shared.writes[_written_by(statement)] += 1  # for write_count
        # a statement of the shared transaction that reads or writes a table with rows written behind (or that
        # cannot be told: SQL text) sees them: they are written first
        if shared.deferred and not shared.flushing:
            names = _tables_of(statement)
            if names is None or not names.isdisjoint(shared.deferred_tables):
                _flush(shared, names)

    def rollback_savepoint(conn: Any, *_: Any) -> None:
        if conn is shared.connection:  # a SQLAlchemy savepoint (begin_nested) rolled back: rows as they were
            shared.writes[""] += 1

    # one listener for both (each listener SQLAlchemy calls costs microseconds per statement: a before_cursor_execute
    # one made the 10,000-employee year's ~100,000 statements measurably slower)
    event.listen(sa_engine, "before_execute", before_execute)
    event.listen(sa_engine, "rollback_savepoint", rollback_savepoint)
    return shared


def _written_by(statement: Any) -> str | None:
    """The table a statement may change (see :func:`write_count`): an INSERT, UPDATE or DELETE its target table, a
    SELECT none (also one that locks rows), SQL text and driver SQL as :func:`_written` reads them, a savepoint set
    or released none, anything else any table ("")."""
    if isinstance(statement, str):  # exec_driver_sql
        return _written(statement)
    if getattr(statement, "is_select", False):
        return None
    if getattr(statement, "is_dml", False):
        name = getattr(getattr(statement, "table", None), "name", None)
        # with a WITH of its own (add_cte): it could change more than its table
        return name if isinstance(name, str) and not getattr(statement, "_independent_ctes", None) else ""
    if isinstance(statement, TextClause):
        return _written(statement.text)
    if isinstance(statement, (SavepointClause, ReleaseSavepointClause)):
        return None
    return ""


#: ``INSERT INTO t``, ``UPDATE t``, ``DELETE FROM t`` (SQLite's ``OR REPLACE`` forms too): the table they change
_DML = re.compile(r'\s*(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)\s+'
                  r'(?:(?:"\w+"|\w+)\.)?(?:"(\w+)"|(\w+))(?=[\s(]|$)', re.IGNORECASE)
#: statements that change no rows: a SELECT, a SAVEPOINT set or released (a ROLLBACK TO is "any table")
_SELECT = re.compile(r"\s*(?:SELECT|SAVEPOINT|RELEASE)\b", re.IGNORECASE)
@lru_cache(maxsize=4096)  # the engine's statements are few and repeat
def _written(sql: str) -> str | None:
    """The table a statement may change, from its SQL: an INSERT, UPDATE or DELETE changes its target table (the
    tables it reads otherwise, a subquery or ``UPDATE .. FROM``, it does not change); a SELECT changes none (also
    one that locks rows), nor does setting or releasing a savepoint; any other statement (``WITH``, which may hold a
    data-modifying part, ``ROLLBACK TO``, DDL, PRAGMA...) is counted as changing any table ("")."""
    dml = _DML.match(sql)
    return (dml.group(1) or dml.group(2)) if dml else None if _SELECT.match(sql) else ""


def write_count(sa_engine: Any, tables: Iterable[str]) -> int | None:
    """How many statements of the open shared unit may have changed rows of ``tables`` so far: every INSERT, UPDATE
    or DELETE of one of them, every statement that is none of those nor a SELECT (it could change any table), and
    every savepoint rolled back. Counted for every statement the unit's connection executes (executemany included),
    whoever executes it (a port, SQL text, driver SQL). None outside a shared unit. A SELECT changes nothing on
    SQLite (no data-modifying WITH, no functions that write); on PostgreSQL a SELECT calling a function that writes
    or holding a data-modifying WITH in its FROM is not counted (the engine sends neither; rows read ahead on
    PostgreSQL are read under their row locks, see the recruitment pack's ``DayOfMoves``).

    For rows read ahead in the step's transaction: while the count is what it was when they were read, no statement
    of this transaction has changed them (nor, on SQLite, any other: the step holds the database's write lock)."""
    shared: _Shared | None = getattr(sa_engine, _ATTR, None)
    if shared is None or shared.connection is None:
        return None
    writes = shared.writes
    return writes[""] + sum(writes[name] for name in tables)  # writes[None]: the SELECTs, which change nothing


def write_behind_now(sa_engine: Any) -> None:
    """Write the rows the open shared unit keeps behind now (nothing outside one, or with none kept).

    For a step before a phase of many statements that will not touch their tables soon: while rows are kept,
    every statement of the unit is first looked at for the tables it touches (:func:`_tables_of`, a walk of the
    statement for one built per call), so rows kept from a day's events into its tick made every statement of the
    tick pay that walk until one wrote history. Written now they are in the same place of the same tables (before
    anything the tick writes to them) as they would be at the tick's first statement touching them."""
    shared: _Shared | None = getattr(sa_engine, _ATTR, None)
    if shared is not None and shared.connection is not None and shared.deferred and not shared.flushing:
        _flush(shared)


def _aborted(conn: Any) -> bool:
    """The transaction is in the failed state (PostgreSQL, after a statement failed without a savepoint)."""
    if conn.dialect.name != "postgresql":
        return False
    info = getattr(conn.connection.dbapi_connection, "info", None)
    status = getattr(info, "transaction_status", None)
    return status is not None and getattr(status, "name", "") == "INERROR"


@contextmanager
def shared_unit(sa_engine: Any, label: str) -> Iterator[Any]:
    """One transaction on ``sa_engine`` that every connection of this thread joins until the block ends.

    Yields the shared connection. Nested use joins the outer unit (a savepoint).
    """
    shared = joinable(sa_engine)
    if shared.connection is not None:
        with sa_engine.begin() as joined:
            yield joined
        return
    conn = type(sa_engine).connect(sa_engine)  # a connection of its own (the class's, not the joining one)
    try:
        conn.begin()
        shared.connection, shared.label, shared.open, shared.released = conn, label, [], []
        shared.deferred, shared.deferred_tables = [], set()
        shared.writes = Counter()
        try:
            yield conn
            _flush(shared)
            if _aborted(conn):
                raise StepAborted(label)
            boundary(f"before-commit:{label}")
        finally:
            shared.connection = None
            shared.deferred, shared.deferred_tables = [], set()
        conn.commit()
    finally:
        conn.close()  # rolls back what was not committed
    boundary(f"after-commit:{label}")
