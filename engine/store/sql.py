"""The SQLAlchemy 2.x store: a SQLite file (the embedded default, WAL mode) or PostgreSQL.

Concurrency:

- Every write goes through ``UPDATE ... WHERE id = :id AND version = :expected``; zero rows means
  someone else won and a ``ConflictError`` carries the version and state that won.
- SQLite: write units start with ``BEGIN IMMEDIATE`` (writers queue on the database lock with a
  busy timeout instead of failing late); reads use a deferred transaction and never block writers
  (WAL). PostgreSQL: READ COMMITTED; the version check in the UPDATE decides, and due timers are
  claimed with ``FOR UPDATE SKIP LOCKED`` so several schedulers can run side by side.
- Lock order: an instance row, then its timers. A fire updates the instance (row lock) before it
  cancels or adds timers; a timer worker locks the due timers' instances first (``SKIP LOCKED``:
  a busy instance is left for the next round), then the timers. No cycle, so no deadlock.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from operator import attrgetter
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from regelwerk.errors import ConflictError, IdInUse, UnknownInstance
from regelwerk.limits import critical
from regelwerk.store.records import (
    ERASE_EVENT,
    ERASED_DATA,
    AuditEntry,
    DefinitionRecord,
    DueBatch,
    ErasureCount,
    HistoryEntry,
    IncidentRecord,
    InstanceRecord,
    OutboxEntry,
    PendingFire,
    StartShape,
    TimerRecord,
)
from regelwerk.store.single import execute
from regelwerk.store.workflow_tables import (
    rw_audit,
    rw_definitions,
    rw_history,
    rw_incidents,
    rw_instances,
    rw_pending_fires,
    rw_timers,
)
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, Row

__all__ = ["SqlRows", "SqlStore", "SqlTx", "create_missing", "create_sa_engine", "lock_migrations", "upgrade"]

SQLITE_PRAGMAS = (
    "PRAGMA busy_timeout=30000",  # first: switching a file to WAL needs the lock, so it must be able to wait
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA temp_store=MEMORY",
)


#: how long a connection waits for another process's lock while it sets its pragmas (the busy_timeout's)
_PRAGMA_PATIENCE = 30.0


def _pragma(cursor: Any, pragma: str) -> None:
    """Run one pragma; "database is locked" is retried for up to :data:`_PRAGMA_PATIENCE` seconds. SQLite does
    not always call the busy handler while another connection turns the file to WAL or recovers it: two
    processes opening a new file at once saw ``journal_mode=WAL`` fail at once (1 run in 6)."""
    import sqlite3
    import time

    waited, pause = 0.0, 0.005
    while True:
        try:
            cursor.execute(pragma)
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or waited >= _PRAGMA_PATIENCE:
                raise
        time.sleep(pause)
        waited += pause
        pause = min(pause * 2, 0.1)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    zone = value.tzinfo
    if zone is UTC:  # the engine's own times (its clock, the tick's now): already what is stored
        return value
    return value.replace(tzinfo=UTC) if zone is None else value.astimezone(UTC)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def create_sa_engine(url: str, **kwargs: Any) -> Engine:
    """A SQLAlchemy engine with regelwerk's connection settings (SQLite: WAL, busy timeout, explicit BEGIN).

    A URL that is no database URL, or names a database driver that is not installed, is a ``UsageError``."""
    from regelwerk.store import json_codec
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    kwargs.setdefault("json_serializer", json_codec.dumps)
    kwargs.setdefault("json_deserializer", json_codec.loads)
    try:
        sa_url = sa.make_url(url)
        if sa_url.get_backend_name() != "sqlite":
            kwargs.setdefault("pool_pre_ping", True)
            engine = sa.create_engine(sa_url, **kwargs)
            if sa_url.get_backend_name() == "postgresql":
                event.listen(engine, "connect", _custom_plans)
            return engine
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:  # ImportError: a driver not installed
        from regelwerk.errors import UsageError

        raise UsageError(f"not a usable store URL: {url!r} ({exc})",
                         hint="memory://, sqlite:///path/to/file.sqlite or postgresql+psycopg://user@host/db") from exc
    if sa_url.database in (None, "", ":memory:"):
        kwargs.setdefault("poolclass", sa.pool.StaticPool)
        kwargs.setdefault("connect_args", {"check_same_thread": False})
    engine = sa.create_engine(sa_url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (pysqlite's own is too late)
        cursor = dbapi_connection.cursor()
        try:
            for pragma in SQLITE_PRAGMAS:
                _pragma(cursor, pragma)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN " + str(conn.get_execution_options().get("regelwerk_begin", "IMMEDIATE")))

    return engine


def _custom_plans(dbapi_connection: Any, _record: Any) -> None:
    """PostgreSQL plans every statement for its parameters. psycopg prepares a statement after five runs, and
    the server may then keep one generic plan for every later list bound as an array (``one_of``); a plan made
    while a table was small (a seq scan) stayed for the connection's life: the year's timer lookups took 19 ms
    each instead of 1.4 ms."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET plan_cache_mode = force_custom_plan")
    finally:
        cursor.close()
    dbapi_connection.commit()


def _instance(row: Row[Any]) -> InstanceRecord:
    m = row._mapping
    return InstanceRecord(m["id"], m["workflow"], m["definition_version"], m["state"], m["data"], m["version"],
                          _aware(m["created_at"]), _aware(m["updated_at"]), m["created_by"],
                          bool(m["timers_pending"]))


def _joined_instance(m: Any) -> InstanceRecord:
    """The instance columns of a row that has them as ``i_`` and the column's name (``_CLAIM_BATCH_SQLITE``)."""
    return InstanceRecord(m["i_id"], m["i_workflow"], m["i_definition_version"], m["i_state"], m["i_data"],
                          m["i_version"], _aware(m["i_created_at"]), _aware(m["i_updated_at"]), m["i_created_by"],
                          bool(m["i_timers_pending"]))


def _as_written(current: InstanceRecord, row: Mapping[str, Any]) -> bool:
    """Whether an instance read back is what an update's parameters (``_UPDATES``) wrote."""
    return (current.version == row["version"] and current.state == row["state"]
            and current.timers_pending == row["timers_pending"] and _utc(current.updated_at) == row["updated_at"]
            and ("data" not in row or dict(current.data) == row["data"])
            and ("definition_version" not in row or current.definition_version == row["definition_version"]))


def _naive(value: datetime) -> datetime:
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


#: ``StoreTx.incidents``' statements by which filters they have (built once: the tick asks once or twice per batch)
_INCIDENTS_QUERIES: dict[tuple[bool, bool, bool, bool], Any] = {}


def _incidents_query(status: bool, instance: bool, event: bool, many: bool) -> Any:
    found = _INCIDENTS_QUERIES.get((status, instance, event, many))
    if found is not None:
        return found
    i = rw_incidents.c
    query = sa.select(rw_incidents).order_by(i.id)
    if status:
        query = query.where(i.status == sa.bindparam("p_status"))
    if instance:
        query = query.where(i.instance_id == sa.bindparam("p_instance"))
    if event:
        query = query.where(i.event == sa.bindparam("p_event"))
    if many:
        query = query.where(i.instance_id.in_(sa.bindparam("p_ids", expanding=True)))
    _INCIDENTS_QUERIES[status, instance, event, many] = query
    return query


def _incident(row: Row[Any]) -> IncidentRecord:
    m = row._mapping
    return IncidentRecord(m["instance_id"], m["event"], m["error_type"], m["message"], _aware(m["first_at"]),
                          _aware(m["last_at"]), m["attempts"], m["status"], m["timer_id"], m["actor"], m["data"],
                          _utc(m["next_retry_at"]), m["note"], m["id"])


def _history(row: Row[Any]) -> HistoryEntry:
    m = row._mapping
    return HistoryEntry(m["instance_id"], m["event"], m["from_state"], m["to_state"], m["actor"], _aware(m["at"]),
                        m["definition_version"], m["version"], m["explain"], m["id"])


@lru_cache(maxsize=1024)
def _due(value: datetime) -> datetime:
    """A timer's due moment, aware; equal moments are one object (see :func:`_timer`)."""
    return _aware(value)


def _timer(row: Row[Any]) -> TimerRecord:
    """A timer row as a record. Its state, event and status (a few names) are interned and its due moment shared:
    a tick's timer service keeps what it fired (its outcomes, the keys its loop check compares) for the whole call,
    and a burst fires hundreds of thousands (100,000 employees' appraisal day: 90 MB with a copy of each per timer,
    about a third less without)."""
    m = row._mapping
    return TimerRecord(m["instance_id"], sys.intern(m["state"]), sys.intern(m["event"]), _due(m["due_at"]), m["data"],
                       sys.intern(m["status"]), m["id"], _utc(m["fired_at"]), m["note"])


class _JsonList(sa.types.TypeDecorator[Any]):
    """A list bound as one JSON text (``one_of`` on SQLite: read back by ``json_each``)."""

    impl = sa.String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str:
        return json.dumps(list(value))


def one_of(column: Any, name: str, postgres: bool, *, sole: bool = False) -> Any:
    """``column IN (<the list bound as name>)``. On PostgreSQL ``column = ANY(<array>)``: one parameter however long
    the list, so the statement's text stays the same and psycopg prepares it once (an IN of 500 parameters is
    parsed and planned again on every call); elsewhere an expanding IN.

    ``sole``: on SQLite, when this is the statement's only use of an index (no other condition the planner could
    prefer), ``column IN (SELECT value FROM json_each(<the list as JSON>))``: one parameter as well, the column's
    index searched once per value as with an IN of parameters, without SQLAlchemy writing out and binding a
    placeholder per value on every call (a batch of 500 keys: 1.2 ms against 1.4-2.0 ms). Not beside other
    conditions: SQLite guesses such a list long and may then pick another index (the timers of some instances,
    ``status`` or ``instance_id``, went to the status index). The list's values are strings or integers."""
    if postgres:
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam(name, type_=ARRAY(column.type)))
    if not sole:
        return column.in_(sa.bindparam(name, expanding=True))
    values = sa.func.json_each(sa.bindparam(name, type_=_JsonList())).table_valued("value")
    return column.in_(sa.select(values.c.value).scalar_subquery())


_I = rw_instances.c
_GET = sa.select(rw_instances).where(_I.id == sa.bindparam("p_id"))


def _cancellable(instances: Any, timers: Any = rw_timers) -> Any:
    """A timer a cancel of its instance changes: pending, or failed after its last attempt and waiting for a person
    (its incident still open); neither may fire once the state it belongs to is left. ``instances`` makes the
    caller's condition on the instances for the incidents' instance id column; ``timers``: the timers table or an
    alias of it."""
    return sa.or_(timers.c.status == "pending", sa.and_(timers.c.status == "failed", timers.c.id.in_(
        sa.select(rw_incidents.c.timer_id).where(instances(rw_incidents.c.instance_id),
                                                 rw_incidents.c.status == "open",
                                                 rw_incidents.c.timer_id.is_not(None)))))


_PENDING_OF = {pg: sa.select(rw_timers.c.id, rw_timers.c.instance_id).where(
    one_of(rw_timers.c.instance_id, "p_ids", pg),
    _cancellable(lambda column, pg=pg: one_of(column, "p_ids", pg))) for pg in (False, True)}
_GET_MANY = {pg: sa.select(rw_instances).where(one_of(_I.id, "p_ids", pg, sole=True)) for pg in (False, True)}
_EXISTING = {pg: sa.select(_I.id).where(one_of(_I.id, "p_ids", pg, sole=True)) for pg in (False, True)}
_LOCK_INSTANCES = sa.select(_I.id).where(one_of(_I.id, "p_ids", True)).order_by(_I.id).with_for_update()
#: a transition's update, by (data changed, definition version changed): what is left out is not written (and
#: an index over it, such as (workflow, definition_version), is not touched)
_UPDATES = {(data, definition): rw_instances.update().where(
    _I.id == sa.bindparam("p_id"), _I.version == sa.bindparam("p_expected")).values(
    state=sa.bindparam("state"), version=sa.bindparam("version"), timers_pending=sa.bindparam("timers_pending"),
    updated_at=sa.bindparam("updated_at"), **({"data": sa.bindparam("data")} if data else {}),
    **({"definition_version": sa.bindparam("definition_version")} if definition else {}))
    for data in (True, False) for definition in (True, False)}
_INSERT_HISTORY = rw_history.insert()


def _updates_postgres(data: bool, definition: bool) -> Any:
    """PostgreSQL: :data:`_UPDATES`'s shape for many instances in one statement (``UPDATE .. FROM unnest`` of arrays,
    one per column; the data as JSON text, cast): the same version check, one row per instance."""
    from sqlalchemy.dialects.postgresql import ARRAY

    names = ["p_id", "p_expected", "state", "version", "timers_pending", "updated_at"]
    types: list[Any] = [_I.id.type, _I.version.type, _I.state.type, _I.version.type, _I.timers_pending.type,
                        _I.updated_at.type]
    if data:
        names.append("data")
        types.append(sa.Text())
    if definition:
        names.append("definition_version")
        types.append(_I.definition_version.type)
    given = sa.func.unnest(*(sa.bindparam(f"a_{name}", type_=ARRAY(kind)) for name, kind in zip(names, types,
                                                                                             strict=True))
                           ).table_valued(*names).render_derived(name="given")
    values: dict[str, Any] = {"state": given.c.state, "version": given.c.version,
                              "timers_pending": given.c.timers_pending, "updated_at": given.c.updated_at}
    if data:
        values["data"] = sa.cast(given.c.data, _I.data.type)
    if definition:
        values["definition_version"] = given.c.definition_version
    return rw_instances.update().where(_I.id == given.c.p_id, _I.version == given.c.p_expected).values(**values)


_UPDATES_POSTGRES = {(data, definition): _updates_postgres(data, definition)
                     for data in (True, False) for definition in (True, False)}
#: built once: a statement built per call costs its cache key each time (a chained fire writes and takes one row)
_INSERT_PENDING_FIRE = rw_pending_fires.insert().returning(rw_pending_fires.c.id)
_TAKE_PENDING_FIRE = rw_pending_fires.delete().where(rw_pending_fires.c.id == sa.bindparam("p_id"))
_INSERT_INSTANCE = rw_instances.insert()
#: the tick's sweep asks once a tick (built once: see above)
_PENDING_FIRES = (sa.select(rw_pending_fires).where(rw_pending_fires.c.created_at < sa.bindparam("p_before"))
                  .order_by(rw_pending_fires.c.created_at, rw_pending_fires.c.id).limit(sa.bindparam("p_limit")))


def _insert_new_instance() -> dict[bool, Any]:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` per backend (key: PostgreSQL): a taken key inserts and
    returns no row (an INSERT's rowcount is not reliable across drivers). No conflict target: with tenancy the
    key is the tenant's and the id."""
    from sqlalchemy.dialects import postgresql, sqlite

    return {pg: (postgresql if pg else sqlite).insert(rw_instances).on_conflict_do_nothing().returning(_I.id)
            for pg in (False, True)}


_INSERT_NEW_INSTANCE = _insert_new_instance()


def _insert_definition() -> dict[bool, Any]:
    from sqlalchemy.dialects import postgresql, sqlite

    return {pg: (postgresql if pg else sqlite).insert(rw_definitions).on_conflict_do_nothing() for pg in (False, True)}


_INSERT_DEFINITION = _insert_definition()
#: the one lock every migration transaction takes first on PostgreSQL (the store's, the plugins' branches, the
#: control plane's, row-level security) and every creation of missing tables; database-wide, held until the
#: transaction ends. A migration must work on its own connection (``op.get_bind()``): one that opened another
#: connection and created tables there (a ``SqlStore``) would wait for itself
_MIGRATION_LOCK = sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended("regelwerk migrations", 0)))


def lock_migrations(connection: Any) -> None:
    """In a migration's transaction, before it reads the version table: on PostgreSQL wait for any other process
    migrating the same database (an advisory lock held until this transaction ends), so two ``db upgrade`` runs
    at once (two pods starting) apply each revision once, the second finding the work done; SQLite serialises
    writers itself."""
    if connection.dialect.name == "postgresql":
        connection.execute(_MIGRATION_LOCK)


def create_missing(sa_engine: Any, tables: Any) -> None:
    """Create the tables (a ``MetaData`` or a sequence of ``Table``) that are missing, in one transaction under the
    migrations' lock: processes starting at once on an empty PostgreSQL database (``CREATE TABLE`` of the same
    table twice fails on its row type) create each table once, the others finding it."""
    with sa_engine.begin() as conn:
        lock_migrations(conn)
        if isinstance(tables, sa.MetaData):
            tables.create_all(conn, checkfirst=True)
        else:
            for table in tables:
                table.create(conn, checkfirst=True)


#: PostgreSQL: a lock for the transaction on one (instance, event, timer)'s open incident
_INCIDENT_LOCK = sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(sa.bindparam("p_key"), 0)))
_INSERT_TIMER = rw_timers.insert()
_T = rw_timers.c
# Built once (SQLAlchemy memoizes a statement's cache key on the object): the timer path runs these per timer.
_CANCEL_TIMERS = (rw_timers.update().where(
    _T.instance_id == sa.bindparam("p_instance"), _cancellable(lambda column: column == sa.bindparam("p_instance")))
    .values(status="cancelled", fired_at=sa.bindparam("p_at")))
_FINISH_TIMER = (rw_timers.update().where(_T.id == sa.bindparam("p_id"))
                 .values(status=sa.bindparam("p_status"), fired_at=sa.bindparam("p_at"), note=sa.bindparam("p_note")))
#: many timers with the same outcome in one statement (a batch's timers all fire at one moment); on SQLite the ids
#: are one JSON parameter (``one_of``'s ``sole``: the primary key is the only index it could use), run at the driver
_FINISH_TIMERS = {pg: rw_timers.update().where(one_of(_T.id, "p_ids", pg, sole=True)).values(
    status=sa.bindparam("p_status"), fired_at=sa.bindparam("p_at"), note=sa.bindparam("p_note"))
    for pg in (False, True)}
_DUE_TIMERS = (sa.select(_T.id, _T.instance_id, _T.due_at)
               .where(_T.status == "pending", _T.due_at <= sa.bindparam("p_now"))
               .order_by(_T.due_at, _T.id).limit(sa.bindparam("p_limit")))
#: the next page of due timers after (due_at, id) (PostgreSQL: when the instances of a page were all locked)
_DUE_TIMERS_AFTER = _DUE_TIMERS.where(sa.tuple_(_T.due_at, _T.id) > sa.tuple_(sa.bindparam("p_due"),
                                                                               sa.bindparam("p_id")))
#: SQLite: the due timers themselves, in one statement (a write unit's BEGIN IMMEDIATE holds the database's write
#: lock: no other worker can fail, reschedule or claim one between a list and a claim, so none is made)
_CLAIM_SQLITE = (sa.select(rw_timers).where(_T.status == "pending", _T.due_at <= sa.bindparam("p_now"))
                 .order_by(_T.due_at, _T.id).limit(sa.bindparam("p_limit")))
#: PostgreSQL's claim (``SqlTx._claim_postgres``), built once over arrays (one prepared text whatever the batch): the
#: due timers' instances locked, those another worker holds skipped (by their ids, or their rows); then the timers
_LOCK_DUE_INSTANCES = {rows: sa.select(*([rw_instances] if rows else [_I.id])).where(one_of(_I.id, "p_ids", True))
                       .order_by(_I.id).with_for_update(skip_locked=True) for rows in (False, True)}
_CLAIM_POSTGRES = (sa.select(rw_timers).where(one_of(_T.id, "p_ids", True), _T.status == "pending",
                                              _T.due_at <= sa.bindparam("p_now"))
                   .order_by(_T.due_at, _T.id).with_for_update())
#: SQLite: a claim's timers with their instances (``i_`` and the column's name; none when the instance is missing)
#: and, per timer, how many of its instance's timers a cancel would change (``_cancellable`` over another alias of
#: the timers): ``claim_due_batch`` in one statement
_OTHER = rw_timers.alias("other")
_CANCELLABLE_COUNT = (sa.select(sa.func.count()).select_from(_OTHER).where(
    _OTHER.c.instance_id == _T.instance_id, _cancellable(lambda column: column == _OTHER.c.instance_id, _OTHER))
    .correlate(rw_timers).scalar_subquery())
_CLAIM_BATCH_SQLITE = (
    sa.select(rw_timers, *(column.label(f"i_{column.name}") for column in rw_instances.c),
              _CANCELLABLE_COUNT.label("cancellable"))
    .select_from(rw_timers.outerjoin(rw_instances, _I.id == _T.instance_id))
    .where(_T.status == "pending", _T.due_at <= sa.bindparam("p_now"))
    .order_by(_T.due_at, _T.id).limit(sa.bindparam("p_limit")))
_OUTBOX_INSERT: list[Any] = []


_ROWS_STATEMENTS: dict[tuple[Any, ...], Any] = {}
"""Built statements of :class:`SqlRows` by (table, operation, shape of the match and values): a pack's hot
lookups (``first({"id": ...})``) are built and compiled once, their values bound per call."""


def _match_shape(match: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    shape = []
    for name, value in (match or {}).items():
        kind = ("in" if isinstance(value, (list, tuple, set, frozenset)) else "null" if value is None else "eq")
        shape.append((name, kind))
    return tuple(shape)


def _match_params(match: Mapping[str, Any] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in (match or {}).items():
        if isinstance(value, (list, tuple, set, frozenset)):
            params[f"m_{name}"] = list(value)
        elif value is not None:
            params[f"m_{name}"] = value
    return params


class SqlRows:
    """:class:`~regelwerk.store.base.Rows` on one declared table, on the transaction's connection."""

    __slots__ = ("_conn", "_table")

    def __init__(self, connection: Connection, table: sa.Table) -> None:
        self._conn = connection
        self._table = table

    def _where(self, shape: tuple[tuple[str, str], ...]) -> list[Any]:
        clauses: list[Any] = []
        for name, kind in shape:
            column = self._table.c[name]
            if kind == "in":
                clauses.append(column.in_(sa.bindparam(f"m_{name}", expanding=True)))
            else:
                clauses.append(column.is_(None) if kind == "null" else column == sa.bindparam(f"m_{name}"))
        return clauses

    def _statement(self, op: str, match: Mapping[str, Any] | None, extra: tuple[Any, ...] = ()) -> Any:
        shape = _match_shape(match)
        key = (self._table, op, shape, extra)
        stmt = _ROWS_STATEMENTS.get(key)
        if stmt is None:
            where = self._where(shape)
            if op == "find":
                stmt = sa.select(self._table).where(*where)
                if extra[0] is not None:
                    stmt = stmt.order_by(self._table.c[extra[0]])
            elif op == "first":
                stmt = sa.select(self._table).where(*where).limit(1)
            elif op == "update":
                stmt = self._table.update().where(*where).values(
                    {self._table.c[name]: sa.bindparam(f"v_{name}", type_=self._table.c[name].type)
                     for name in extra})
            else:
                stmt = self._table.delete().where(*where)
            if len(_ROWS_STATEMENTS) > 1024:  # shapes come from code, not data; bounded all the same
                _ROWS_STATEMENTS.clear()
            _ROWS_STATEMENTS[key] = stmt
        return stmt

    def _known(self, names: Mapping[str, Any]) -> None:
        """A column the table does not have is a typed error naming it (never silently dropped)."""
        unknown = sorted(name for name in names if name not in self._table.c)
        if unknown:
            from regelwerk.errors import UsageError

            raise UsageError(f"table {self._table.name} has no column(s) {', '.join(unknown)}",
                             hint="columns: " + ", ".join(c.name for c in self._table.c))

    def insert(self, values: Mapping[str, Any]) -> None:
        """Add a row."""
        row = dict(values)
        self._known(row)
        if not row:
            self._conn.execute(self._table.insert().values())
            return
        statement = _ROWS_STATEMENTS.get((self._table, "insert"))
        if statement is None:  # one statement object per table (SQLAlchemy's cache key is not walked for each row)
            statement = _ROWS_STATEMENTS[(self._table, "insert")] = self._table.insert()
        execute(self._conn, statement, row)

    def find(self, match: Mapping[str, Any] | None = None, order_by: str | None = None) -> list[dict[str, Any]]:
        """Matching rows."""
        query = self._statement("find", match, (order_by,))
        return [dict(row) for row in execute(self._conn, query, _match_params(match)).mappings()]

    def first(self, match: Mapping[str, Any]) -> dict[str, Any] | None:
        """One matching row, or None."""
        row = execute(self._conn, self._statement("first", match), _match_params(match)).mappings().first()
        return dict(row) if row is not None else None

    def update(self, match: Mapping[str, Any], values: Mapping[str, Any]) -> int:
        """Change matching rows."""
        if not values:  # nothing to change: how many match (as the memory store counts)
            return len(self.find(match))
        self._known(values)
        stmt = self._statement("update", match, tuple(values))
        params = _match_params(match)
        params.update({f"v_{name}": value for name, value in values.items()})
        return int(execute(self._conn, stmt, params).rowcount or 0)

    def delete(self, match: Mapping[str, Any]) -> int:
        """Remove matching rows."""
        return int(execute(self._conn, self._statement("delete", match), _match_params(match)).rowcount or 0)


_ERASE: dict[bool, dict[str, Any]] = {}


def _erase_statements(pg: bool) -> dict[str, Any]:
    """``erase_personal_data``'s statements per dialect family (key: PostgreSQL), built once: the ids an expanding
    bound parameter on PostgreSQL; on SQLite one JSON parameter (``one_of``'s ``sole``: each statement's one
    condition is the list, over the column's index), so SQLAlchemy does not write out and bind a placeholder per id
    on every call and ``regelwerk.store.single`` runs them at the driver (a year's retention sweeps run about 1,400)."""
    found = _ERASE.get(pg)
    if found is not None:
        return found
    from regelwerk.outbox.tables import outbox, outbox_parts

    def many(column: Any, name: str = "ids") -> Any:
        return column.in_(sa.bindparam(name, expanding=True)) if pg else one_of(column, name, False, sole=True)

    parts = outbox_parts.c
    # the erasure's own history row per instance, set-based from the instances just moved on (no row to process in
    # Python: a sweep erases thousands); PostgreSQL types the bound JSON for the column
    explain: Any = sa.bindparam("explain", type_=rw_history.c.explain.type)
    found = _ERASE[pg] = {
        # the version moves on: a decision made on a read from before the erasure fails its version check
        "instances": rw_instances.update().where(many(_I.id)).values(
            data=dict(ERASED_DATA), version=_I.version + 1, updated_at=sa.bindparam("at"), timers_pending=False),
        "timers": rw_timers.delete().where(many(rw_timers.c.instance_id)),
        "chained": rw_pending_fires.delete().where(many(rw_pending_fires.c.target) | many(rw_pending_fires.c.source)),
        "history": rw_history.update().where(many(rw_history.c.instance_id)).values(explain={}),
        "audit": rw_audit.update().where(many(rw_audit.c.instance_id)).values(detail={}),
        # the note too: free text by whoever resolved it ("called Anna on ..."; found by attack, it was kept); an
        # open one is closed: an erased instance takes no more events, so it could never be retried
        "incidents": rw_incidents.update().where(many(rw_incidents.c.instance_id))
        .values(data={}, message="(erased)", note="", status="resolved", next_retry_at=None),
        "outbox": outbox.delete().where(many(outbox.c.instance_id)),
        "outbox_refs": outbox.delete().where(many(outbox.c.subject_ref, "refs")),
        # the lines of digests (mails about several subjects) that name them (regelwerk.outbox.parts); on
        # PostgreSQL two arrays (one prepared statement), on SQLite see SqlTx._outbox_parts
        "parts": sa.select(parts.message_id, parts.position).where(
            one_of(parts.subject_ref, "refs", True) | one_of(parts.instance_id, "ids", True)),
        "erase_rows": rw_history.insert().from_select(
            ["instance_id", "version", "event", "from_state", "to_state", "actor", "at", "definition_version",
             "explain"],
            sa.select(_I.id, _I.version, sa.literal(ERASE_EVENT, sa.String), _I.state, _I.state,
                      sa.bindparam("actor", type_=sa.String), sa.bindparam("at", type_=rw_history.c.at.type),
                      _I.definition_version, sa.cast(explain, sa.JSON) if pg else explain)
            .where(many(_I.id)).order_by(_I.id)),
    }
    return found


class SqlTx:
    """A unit of work on one SQLAlchemy ``Connection`` (``tx.connection``)."""

    __slots__ = ("_postgres", "_store", "connection")

    def __init__(self, connection: Connection, postgres: bool, store: SqlStore | None = None) -> None:
        self.connection = connection
        self._postgres = postgres
        self._store = store  # whose watchers an erasure tells (regelwerk.store.unit.erased)

    def get(self, instance_id: str) -> InstanceRecord | None:
        """The instance, or None."""
        row = execute(self.connection, _GET, {"p_id": instance_id}).first()
        return _instance(row) if row is not None else None

    def insert(self, record: InstanceRecord) -> None:
        """Add a new instance (``ConflictError`` when the id exists).

        One statement when the id is free: ``ON CONFLICT DO NOTHING``, and only when it inserted no row
        the existing instance is read for the error (no failed statement, so no aborted PostgreSQL transaction).
        """
        try:
            inserted = execute(self.connection, _INSERT_NEW_INSTANCE[self._postgres], {
                "id": record.id, "workflow": record.workflow, "definition_version": record.definition_version,
                "state": record.state, "data": dict(record.data), "version": record.version,
                "timers_pending": record.timers_pending, "created_by": record.created_by,
                "created_at": _utc(record.created_at), "updated_at": _utc(record.updated_at)}).first()
        except sa.exc.IntegrityError as exc:  # another constraint of the row
            raise ConflictError(record.id, 0, 1, "") from exc
        if inserted is None:
            existing = self.get(record.id)
            raise ConflictError(record.id, 0, existing.version if existing is not None else 1,
                                existing.state if existing is not None else "")

    def existing(self, instance_ids: Sequence[str]) -> set[str]:
        """Which of these ids are instances (one query per 500 ids)."""
        wanted = sorted(set(instance_ids))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            found.update(execute(self.connection, _EXISTING[self._postgres], {"p_ids": chunk}).scalars())
        return found

    def insert_many(self, records: Sequence[InstanceRecord], history: Sequence[HistoryEntry] = (),
                    timers: Sequence[TimerRecord] = ()) -> None:
        """Instances, then history, then timers: one ``executemany`` per table."""
        from regelwerk.store.bulk import executemany

        conn = self.connection
        if records:
            try:
                executemany(conn, _INSERT_INSTANCE, [{
                    "id": r.id, "workflow": r.workflow, "definition_version": r.definition_version, "state": r.state,
                    "data": dict(r.data), "version": r.version, "timers_pending": r.timers_pending,
                    "created_by": r.created_by, "created_at": _utc(r.created_at),
                    "updated_at": _utc(r.updated_at)} for r in records])
            except sa.exc.IntegrityError as exc:
                # an id taken since the caller asked (a concurrent start): the refusal of ``insert``, for the batch
                # (the caller's transaction is spoilt on PostgreSQL and rolls back; the tick runs it again in parts)
                raise IdInUse(records[0].id if len(records) == 1 else f"one of {len(records)} new instances") \
                    from exc
        if history:
            executemany(conn, _INSERT_HISTORY, [{
                "instance_id": e.instance_id, "version": e.version, "event": e.event, "from_state": e.from_state,
                "to_state": e.to_state, "actor": e.actor, "at": _utc(e.at),
                "definition_version": e.definition_version, "explain": dict(e.explain)} for e in history])
        if timers:
            executemany(conn, _INSERT_TIMER, [{
                "instance_id": t.instance_id, "state": t.state, "event": t.event, "data": dict(t.data),
                "due_at": _utc(t.due_at), "status": "pending", "fired_at": None, "note": ""} for t in timers])

    def insert_starts(self, starts: Sequence[tuple[str, Mapping[str, Any], StartShape]]) -> None:
        """New instances ``(id, data, shape)`` started in their initial state: the rows of :meth:`insert_many` of each
        start's ``shape.records(id, data)`` (instances, then history, then timers, in the starts' order), built
        column by column, what a shape shares converted once (one ``executemany`` per table, no row objects)."""
        from regelwerk.store.bulk import executemany_columns

        if not starts:
            return
        conn = self.connection
        count = len(starts)
        ids = [start[0] for start in starts]
        shapes = [start[2] for start in starts]
        distinct = list(dict.fromkeys(shapes))
        at = {shape: _utc(shape.at) for shape in distinct}

        def shared(value: Callable[[StartShape], Any]) -> list[Any]:
            """Each start's value of its shape (computed once per shape)."""
            if len(distinct) == 1:
                return [value(distinct[0])] * count
            of = {shape: value(shape) for shape in distinct}
            return [of[shape] for shape in shapes]

        workflows, versions, states = (shared(attrgetter(name)) for name in ("workflow", "definition_version",
                                                                                "state"))
        actors, times, ones = shared(attrgetter("actor")), shared(at.__getitem__), [1] * count
        try:
            executemany_columns(conn, _INSERT_INSTANCE, {
                "id": ids, "workflow": workflows, "definition_version": versions, "state": states,
                "data": [dict(start[1]) for start in starts], "version": ones,
                "timers_pending": shared(lambda shape: bool(shape.timers)), "created_by": actors, "created_at": times,
                "updated_at": times})
        except sa.exc.IntegrityError as exc:  # as in insert_many
            raise IdInUse(ids[0] if count == 1 else f"one of {count} new instances") from exc
        executemany_columns(conn, _INSERT_HISTORY, {
            "instance_id": ids, "version": ones, "event": shared(attrgetter("event")), "from_state": [""] * count,
            "to_state": states, "actor": actors, "at": times, "definition_version": versions,
            "explain": shared(attrgetter("explain"))})
        if any(shape.timers for shape in distinct):
            timer_ids: list[str] = []
            timer_states: list[str] = []
            events: list[str] = []
            data: list[dict[str, Any]] = []
            dues: list[Any] = []
            due = {shape: [_utc(due_at) for _, due_at, _ in shape.timers] for shape in distinct}
            for instance_id, _, shape in starts:
                for (event, _, timer_data), due_at in zip(shape.timers, due[shape], strict=True):
                    timer_ids.append(instance_id)
                    timer_states.append(shape.state)
                    events.append(event)
                    data.append(dict(timer_data))
                    dues.append(due_at)
            number = len(timer_ids)
            executemany_columns(conn, _INSERT_TIMER, {
                "instance_id": timer_ids, "state": timer_states, "event": events, "data": data, "due_at": dues,
                "status": ["pending"] * number, "fired_at": [None] * number, "note": [""] * number})

    def update(self, record: InstanceRecord, expected_version: int, data_changed: bool = True, *,
               definition_changed: bool = True) -> None:
        """Version-checked replace (``data_changed=False``: the data column is left as it is;
        ``definition_changed=False``: the definition version too)."""
        params = {"p_id": record.id, "p_expected": expected_version, "state": record.state,
                  "version": record.version, "timers_pending": record.timers_pending,
                  "updated_at": _utc(record.updated_at)}
        if definition_changed:
            params["definition_version"] = record.definition_version
        if data_changed:
            params["data"] = dict(record.data)
        result = execute(self.connection, _UPDATES[data_changed, definition_changed], params)
        if result.rowcount != 1:
            current = self.get(record.id)
            if current is None:
                raise UnknownInstance(record.id)
            raise ConflictError(record.id, expected_version, current.version, current.state)

    def update_many(self, updates: Sequence[tuple[InstanceRecord, int, bool]], *,
                    definition_changed: bool = True) -> None:
        """Version-checked replaces: one ``executemany`` per shape (with and without the data column); when the
        rows changed fall short, the first instance not at its expected version is the error."""
        shapes: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
        for record, expected, data_changed in updates:
            params = {"p_id": record.id, "p_expected": expected, "state": record.state, "version": record.version,
                      "timers_pending": record.timers_pending, "updated_at": _utc(record.updated_at)}
            if definition_changed:
                params["definition_version"] = record.definition_version
            if data_changed:
                params["data"] = dict(record.data)
            shapes[data_changed].append(params)
        from regelwerk.store.bulk import executemany

        for data_changed, rows in shapes.items():
            if not rows:
                continue
            if self._postgres and len(rows) > 1 and len({row["p_id"] for row in rows}) == len(rows):
                # one statement over arrays, its rowcount exact (the ids are unique)
                result = self.connection.execute(_UPDATES_POSTGRES[data_changed, definition_changed],
                                                 self._update_arrays(rows))
            else:
                # at the driver's executemany on SQLite (the values processed as SQLAlchemy would, the rowcount the
                # driver's sum): a timer batch's hundred updates without a parameter dictionary built per row
                result = executemany(self.connection, _UPDATES[data_changed, definition_changed], rows)
            if result.rowcount == len(rows):
                continue
            # fewer rows changed, or a driver that does not count an executemany (psycopg's pipeline: -1): every
            # instance must now be as written (the ids are unique within one call). Its version alone does not
            # say so: another unit may have moved it from the same expected version to the same next one (an AVG
            # erasure: version + 1, the data erased) and this row's UPDATE then changed nothing
            versions = self.get_many([row["p_id"] for row in rows])
            for row in rows:
                current = versions.get(row["p_id"])
                if current is None:
                    raise UnknownInstance(row["p_id"])
                if not _as_written(current, row):  # not written: it was not at the expected version
                    raise ConflictError(row["p_id"], row["p_expected"], current.version, current.state)
            if result.rowcount >= 0:  # counted short, yet each row looks written: one of them was not
                first = versions[rows[0]["p_id"]]
                raise ConflictError(rows[0]["p_id"], rows[0]["p_expected"], first.version, first.state)

    def _update_arrays(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """:data:`_UPDATES_POSTGRES`'s parameters: each of the rows' values as one array (the data as the JSON text
        the column's own bind would send: the dialect's serializer)."""
        arrays = {f"a_{name}": [row[name] for row in rows] for name in rows[0]}
        if "a_data" in arrays:
            dumps = getattr(self.connection.dialect, "_json_serializer", None) or json.dumps
            arrays["a_data"] = [dumps(value) for value in arrays["a_data"]]
        return arrays

    def instances(self, workflow: str | None = None, state: str | None = None,
                  definition_version: str | None = None, limit: int | None = None) -> list[InstanceRecord]:
        """Matching instances, by id."""
        query = sa.select(rw_instances).order_by(_I.id)
        if workflow is not None:
            query = query.where(_I.workflow == workflow)
        if state is not None:
            query = query.where(_I.state == state)
        if definition_version is not None:
            query = query.where(_I.definition_version == definition_version)
        if limit is not None:
            query = query.limit(limit)
        return [_instance(r) for r in self.connection.execute(query)]

    def add_history(self, entry: HistoryEntry) -> None:
        """Append a history row."""
        row = {"instance_id": entry.instance_id, "version": entry.version, "event": entry.event,
               "from_state": entry.from_state, "to_state": entry.to_state, "actor": entry.actor,
               "at": _utc(entry.at), "definition_version": entry.definition_version, "explain": dict(entry.explain)}
        if not _written_behind(self.connection, _INSERT_HISTORY, row):
            execute(self.connection, _INSERT_HISTORY, row)

    def history(self, instance_id: str) -> list[HistoryEntry]:
        """History of one instance, oldest first."""
        query = (sa.select(rw_history).where(rw_history.c.instance_id == instance_id)
                 .order_by(rw_history.c.version, rw_history.c.id))
        return [_history(r) for r in self.connection.execute(query)]

    def add_timer(self, timer: TimerRecord) -> None:
        """Store a pending timer."""
        execute(self.connection, _INSERT_TIMER, {
            "instance_id": timer.instance_id, "state": timer.state, "event": timer.event, "data": dict(timer.data),
            "due_at": _utc(timer.due_at), "status": "pending", "fired_at": None, "note": ""})

    def cancel_timers(self, instance_id: str, at: datetime) -> int:
        """Cancel the instance's pending timers and its failed timers waiting for a person (an open incident)."""
        result = execute(self.connection, _CANCEL_TIMERS, {"p_instance": instance_id, "p_at": _utc(at)})
        return int(result.rowcount)

    def timers(self, instance_id: str) -> list[TimerRecord]:
        """Every timer of an instance."""
        query = sa.select(rw_timers).where(rw_timers.c.instance_id == instance_id).order_by(rw_timers.c.id)
        return [_timer(r) for r in self.connection.execute(query)]

    def claim_due_timer(self, now: datetime) -> TimerRecord | None:
        """The oldest due pending timer, row-locked (SKIP LOCKED on PostgreSQL)."""
        t = rw_timers.c
        query = (sa.select(rw_timers).where(t.status == "pending", t.due_at <= _utc(now))
                 .order_by(t.due_at, t.id).limit(1))
        if self._postgres:
            query = query.with_for_update(skip_locked=True)
        row = self.connection.execute(query).first()
        return _timer(row) if row is not None else None

    def finish_timer(self, timer_id: int, status: str, at: datetime, note: str = "") -> None:
        """Mark a timer fired or failed."""
        execute(self.connection, _FINISH_TIMER, {"p_id": timer_id, "p_status": status, "p_at": _utc(at),
                                                 "p_note": note})

    def give_up_timer(self, timer_id: int, at: datetime, note: str = "") -> bool:
        """Mark a pending timer failed, and lock a failed one as it is (one conditional UPDATE); False when it fired
        or was cancelled."""
        pending = _T.status == "pending"
        result = self.connection.execute(
            rw_timers.update().where(_T.id == timer_id, _T.status.in_(("pending", "failed")))
            .values(status="failed", fired_at=sa.case((pending, _utc(at)), else_=_T.fired_at),
                    note=sa.case((pending, note), else_=_T.note)))
        return bool(result.rowcount == 1)

    def finish_timers(self, finished: Sequence[tuple[int, str, datetime, str]]) -> None:
        """:meth:`finish_timer` for many ``(timer id, status, at, note)``: one ``UPDATE ... WHERE id IN (...)`` per
        outcome (status, moment and note; up to 500 ids each), as a batch's timers mostly share one; a list that
        names a timer twice is written in its order (one ``executemany``)."""
        if not finished:
            return
        if len({i for i, _s, _at, _note in finished}) < len(finished):
            self.connection.execute(_FINISH_TIMER, [{"p_id": i, "p_status": s, "p_at": _utc(at), "p_note": note}
                                                    for i, s, at, note in finished])
            return
        outcomes: dict[tuple[str, datetime, str], list[int]] = {}
        for timer_id, status, at, note in finished:
            outcomes.setdefault((status, at, note), []).append(timer_id)
        statement = _FINISH_TIMERS[self._postgres]
        for (status, at, note), ids in outcomes.items():
            for start in range(0, len(ids), 500):
                execute(self.connection, statement, {"p_ids": ids[start:start + 500], "p_status": status,
                                                     "p_at": _utc(at), "p_note": note})

    def pending_timers(self, instance_ids: Sequence[str]) -> dict[str, set[int]]:
        """The ids of the timers a cancel of these instances would change (pending, and failed with an open
        incident), by instance (one query per 500 instances)."""
        wanted = sorted(set(instance_ids))
        found: dict[str, set[int]] = {i: set() for i in wanted}
        for start in range(0, len(wanted), 500):
            chunk = {"p_ids": wanted[start:start + 500]}
            for timer_id, instance_id in self.connection.execute(_PENDING_OF[self._postgres], chunk):
                found[instance_id].add(timer_id)
        return found

    def lock_instances(self, instance_ids: Sequence[str]) -> None:
        """PostgreSQL: ``SELECT ... ORDER BY id FOR UPDATE`` (one statement per 500 ids, in id order); SQLite: nothing
        (a write unit holds the database's write lock from its ``BEGIN IMMEDIATE``)."""
        if not self._postgres:
            return
        wanted = sorted(set(instance_ids))
        for start in range(0, len(wanted), 500):
            self.connection.execute(_LOCK_INSTANCES, {"p_ids": wanted[start:start + 500]}).all()

    def get_many(self, instance_ids: Sequence[str]) -> dict[str, InstanceRecord]:
        """Those of these instances that exist, by id (one query per 500 ids)."""
        wanted = sorted(set(instance_ids))
        found: dict[str, InstanceRecord] = {}
        for start in range(0, len(wanted), 500):
            for row in execute(self.connection, _GET_MANY[self._postgres], {"p_ids": wanted[start:start + 500]}):
                record = _instance(row)
                found[record.id] = record
        return found

    def claim_due_timers(self, now: datetime, limit: int) -> list[TimerRecord]:
        """Up to ``limit`` due timers, oldest first: on PostgreSQL their instances locked first, then the timers; on
        SQLite in one statement (the write unit's ``BEGIN IMMEDIATE`` holds the database's write lock)."""
        if not self._postgres:
            return [_timer(r) for r in execute(self.connection, _CLAIM_SQLITE, {"p_now": _utc(now), "p_limit": limit})
                    .all()]
        return self._claim_postgres(now, limit, None)

    def claim_due_batch(self, now: datetime, limit: int) -> DueBatch:
        """:meth:`claim_due_timers` with the timers' instances and their counts of timers a cancel would change. On
        SQLite one statement (the claim joined with the instances, the count a subquery: the write lock keeps them
        one moment); on PostgreSQL the lock of the instances reads their rows, and the count is
        :meth:`pending_timers`'s, read after the claim (the timers locked, as before)."""
        if not self._postgres:
            timers: list[TimerRecord] = []
            instances: dict[str, InstanceRecord] = {}
            cancellable: dict[str, int] = {}
            for row in execute(self.connection, _CLAIM_BATCH_SQLITE, {"p_now": _utc(now), "p_limit": limit}).all():
                timer = _timer(row)
                timers.append(timer)
                m = row._mapping
                if m["i_id"] is not None and timer.instance_id not in instances:
                    instances[timer.instance_id] = _joined_instance(m)
                    cancellable[timer.instance_id] = m["cancellable"]
            return DueBatch(timers, instances, cancellable)
        locked: dict[str, InstanceRecord] = {}
        timers = self._claim_postgres(now, limit, locked)
        ids = {timer.instance_id for timer in timers}
        pending = self.pending_timers(sorted(ids)) if ids else {}
        return DueBatch(timers, {i: r for i, r in locked.items() if i in ids},
                        {i: len(pending.get(i, ())) for i in ids if i in locked})

    def _claim_postgres(self, now: datetime, limit: int, rows: dict[str, InstanceRecord] | None
                        ) -> list[TimerRecord]:
        """PostgreSQL's claim: the instances of the oldest due timers locked (``SKIP LOCKED``), then the timers; with
        ``rows``, the locked instances' rows (read by their lock) are put there by id."""
        candidates = self.connection.execute(_DUE_TIMERS, {"p_now": _utc(now), "p_limit": limit}).all()
        if not candidates:
            return []
        # the instances of the oldest due timers, those another worker holds skipped; when that leaves too few, the
        # next page of due timers (else a worker busy with the oldest ones would hide every later one)
        ids: list[int] = []
        while True:
            wanted = sorted({row[1] for row in candidates})
            if rows is None:
                locked = set(self.connection.execute(_LOCK_DUE_INSTANCES[False], {"p_ids": wanted}).scalars())
            else:
                found = [_instance(r) for r in self.connection.execute(_LOCK_DUE_INSTANCES[True],
                                                                         {"p_ids": wanted}).all()]
                rows.update((record.id, record) for record in found)
                locked = {record.id for record in found}
            ids.extend(row[0] for row in candidates if row[1] in locked)
            if len(ids) >= limit or len(candidates) < limit:
                break
            last = candidates[-1]
            candidates = self.connection.execute(_DUE_TIMERS_AFTER, {
                "p_now": _utc(now), "p_limit": limit, "p_due": last[2], "p_id": last[0]}).all()
            if not candidates:
                break
        if not ids:
            return []
        ids = ids[:limit]
        # still pending and still due when claimed: a timer another worker failed and rescheduled (its backoff)
        # between the list above and the claim must not fire before its new due moment
        return [_timer(r) for r in self.connection.execute(_CLAIM_POSTGRES, {"p_ids": ids, "p_now": _utc(now)}).all()]

    def reschedule_timer(self, timer_id: int, due_at: datetime, note: str = "",
                         expected_note: str | None = None) -> bool:
        """Back to pending, due at ``due_at`` (with ``expected_note``: only a pending or failed timer with that
        note; PostgreSQL re-checks the condition after waiting for a concurrent writer's row lock)."""
        stmt = rw_timers.update().where(rw_timers.c.id == timer_id)
        if expected_note is not None:
            stmt = stmt.where(_T.status.in_(("pending", "failed")), _T.note == expected_note)
        result = self.connection.execute(stmt.values(status="pending", due_at=_utc(due_at), fired_at=None, note=note))
        return bool(result.rowcount == 1)

    def rows(self, table: str) -> SqlRows:
        """A pack's own table by name (declared on the shared metadata)."""
        from regelwerk.store.tables import metadata

        found = metadata.tables.get(table)
        if found is None:
            from regelwerk.errors import UsageError

            raise UsageError(f"no table {table!r} is declared (is its plugin's table module registered?)")
        return SqlRows(self.connection, found)

    def savepoint(self) -> Any:
        """A SAVEPOINT (``Connection.begin_nested``): rolls back alone on an exception."""
        return self.connection.begin_nested()

    def add_outbox(self, entry: OutboxEntry) -> None:
        """Queue a message in ``rw_outbox`` (times as naive UTC, like the sender reads them)."""
        from regelwerk.outbox.tables import outbox

        stamp = _naive(entry.created_at)
        if not _OUTBOX_INSERT:
            _OUTBOX_INSERT.append(outbox.insert())
        row = {"id": entry.id, "created_at": stamp, "template": entry.template, "subject_ref": entry.subject_ref,
               "instance_id": entry.instance_id, "recipient": entry.recipient, "sender": entry.sender,
               "subject": entry.subject, "body": entry.body, "status": entry.status, "attempts": 0,
               "next_attempt_at": stamp, "secret": entry.secret}
        if not _written_behind(self.connection, _OUTBOX_INSERT[0], row):
            self.connection.execute(_OUTBOX_INSERT[0], row)

    def outbox(self, subject_ref: str | None = None, instance_id: str | None = None) -> list[OutboxEntry]:
        """Queued messages, oldest first."""
        from regelwerk.outbox.tables import outbox

        query = outbox.select().order_by(outbox.c.created_at, outbox.c.id)
        if subject_ref is not None:
            query = query.where(outbox.c.subject_ref == subject_ref)
        if instance_id is not None:
            query = query.where(outbox.c.instance_id == instance_id)
        return [OutboxEntry(m["id"], _aware(m["created_at"]), m["recipient"], m["subject"], m["body"], m["template"],
                            m["sender"], m["subject_ref"], m["instance_id"], m["status"], m["secret"])
                for m in (r._mapping for r in self.connection.execute(query))]

    def erase_personal_data(self, instance_ids: Sequence[str], subject_refs: Sequence[str] = (), *,
                            actor: str = "system", at: datetime | None = None, reason: str = "") -> ErasureCount:
        """Set-based scrub, one statement per table, in the lock order (instances before timers); the instances'
        versions move on in the same statement, and one ``INSERT ... SELECT`` writes their ``$erase`` history rows."""

        ids = sorted(set(instance_ids))
        refs = list(subject_refs)
        if not ids and not refs:
            return ErasureCount()
        conn = self.connection
        erase = _erase_statements(self._postgres)
        params = {"ids": ids}
        moment = _utc(at if at is not None else datetime.now(UTC))
        instances = history = audit = timers = incidents = chained = 0
        if ids:
            instances = execute(conn, erase["instances"], {"ids": ids, "at": moment}).rowcount or 0
            timers = execute(conn, erase["timers"], params).rowcount or 0
            chained = execute(conn, erase["chained"], params).rowcount or 0
            history = execute(conn, erase["history"], params).rowcount or 0
            if instances:  # the erasure itself, once per instance (after the scrub above: its row keeps what it says)
                execute(conn, erase["erase_rows"], {
                    "ids": ids, "actor": actor, "at": moment, "explain": {"reason": reason} if reason else {}})
                if self._store is not None:
                    from regelwerk.store.unit import erased

                    erased(self._store, ids)  # a missing id among them: nothing cached to forget
            audit = execute(conn, erase["audit"], params).rowcount or 0
            incidents = execute(conn, erase["incidents"], params).rowcount or 0
        sent = 0
        if ids:
            sent += execute(conn, erase["outbox"], params).rowcount or 0
        if refs:
            sent += execute(conn, erase["outbox_refs"], {"refs": refs}).rowcount or 0
        from regelwerk.outbox.parts import redact_parts  # the lines of digests that list them

        redacted = redact_parts(self, ids, refs, self._outbox_bodies, self._save_outbox_body, self._outbox_parts)
        return ErasureCount(instances, history, audit, timers, sent, incidents, chained, redacted)

    def _outbox_parts(self, instance_ids: Collection[str], subject_refs: Collection[str]) -> list[tuple[str, int]]:
        """The ``(message_id, position)`` of the mail parts about these instances or subjects: one indexed query
        (SQLite: ``MULTI-INDEX OR``). A sweep asks it once per chunk of a thousand candidates: on SQLite it is the
        driver's own statement, as SQLAlchemy's expanding of two thousand parameters took as long as the query."""
        ids, refs = sorted(set(instance_ids)), sorted(set(subject_refs))
        if self._postgres:
            found = self.connection.execute(_erase_statements(True)["parts"], {"ids": ids, "refs": refs})
            return [(str(r.message_id), int(r.position)) for r in found]
        if not ids and not refs:
            return []
        where = " OR ".join(f"{column} IN ({', '.join('?' * len(values))})"
                            for column, values in (("subject_ref", refs), ("instance_id", ids)) if values)
        rows = self.connection.exec_driver_sql(
            f"SELECT message_id, position FROM rw_outbox_parts WHERE {where}", tuple(refs + ids))
        return [(str(r[0]), int(r[1])) for r in rows]

    def _outbox_bodies(self, message_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """The stored ``(body, status)`` of these messages, locked for the erasure's update (PostgreSQL)."""
        from regelwerk.outbox.tables import outbox

        query = sa.select(outbox.c.id, outbox.c.body, outbox.c.status).where(outbox.c.id.in_(list(message_ids)))
        if self._postgres:
            query = query.with_for_update()
        return {str(r.id): (str(r.body), str(r.status)) for r in self.connection.execute(query)}

    def _save_outbox_body(self, message_id: str, body: str | None) -> None:
        from regelwerk.outbox.tables import outbox

        if body is None:
            self.connection.execute(outbox.delete().where(outbox.c.id == message_id))
        else:
            self.connection.execute(outbox.update().where(outbox.c.id == message_id).values(body=body))

    def add_pending_fire(self, fire: PendingFire) -> int:
        """Keep a chained fire (in the chaining transition's transaction); its id."""
        return int(execute(self.connection, _INSERT_PENDING_FIRE, {
            "target": fire.target, "event": fire.event, "actor": dict(fire.actor), "system": fire.system,
            "source": fire.source, "after": fire.after, "created_at": _utc(fire.created_at)}).scalar_one())

    def take_pending_fire(self, fire_id: int) -> bool:
        """Remove a kept chained fire: True when this transaction took it (on PostgreSQL a concurrent taker's
        DELETE waits for this one's commit and then removes nothing)."""
        return bool(execute(self.connection, _TAKE_PENDING_FIRE, {"p_id": fire_id}).rowcount)

    def pending_fires(self, created_before: datetime, limit: int) -> list[PendingFire]:
        """Kept chained fires created before ``created_before``, oldest first."""
        rows = execute(self.connection, _PENDING_FIRES, {"p_before": _utc(created_before), "p_limit": limit}).all()
        return [PendingFire(r.target, r.event, r.actor, bool(r.system), r.source, r.after, _aware(r.created_at), r.id)
                for r in rows]

    def add_incident(self, incident: IncidentRecord) -> IncidentRecord:
        """Insert, or update the open incident of the same instance, event and timer."""
        from dataclasses import replace

        i = rw_incidents.c
        timer_match = i.timer_id.is_(None) if incident.timer_id is None else i.timer_id == incident.timer_id
        if self._postgres:
            # two units recording the same failure at once (concurrent ticks): the second waits until the first
            # commits and then finds its open incident (READ COMMITTED: the SELECT below sees it) instead of adding
            # a second one. SQLite's write units are serial anyway
            self.connection.execute(_INCIDENT_LOCK, {
                "p_key": f"rw_incidents\x1f{incident.instance_id}\x1f{incident.event}\x1f{incident.timer_id}"})
        row = self.connection.execute(
            sa.select(rw_incidents).where(i.status == "open", i.instance_id == incident.instance_id,
                                          i.event == incident.event, timer_match).order_by(i.id).limit(1)).first()
        values = {"error_type": incident.error_type[:200], "message": incident.message[:2000],
                  "last_at": _utc(incident.last_at), "next_retry_at": _utc(incident.next_retry_at),
                  "note": incident.note, "actor": incident.actor, "data": dict(incident.data)}
        if row is not None:
            stored = _incident(row)
            attempts = stored.attempts + 1
            self.connection.execute(rw_incidents.update().where(i.id == stored.id).values(attempts=attempts, **values))
            return replace(incident, id=stored.id, attempts=attempts, first_at=stored.first_at)
        new_id = self.connection.execute(rw_incidents.insert().returning(i.id).values(
            instance_id=incident.instance_id, event=incident.event, timer_id=incident.timer_id,
            attempts=incident.attempts, status=incident.status, first_at=_utc(incident.first_at), **values)
        ).scalar_one()
        return replace(incident, id=int(new_id))

    def incidents(self, status: str | None = None, instance_id: str | None = None, *, event: str | None = None,
                  instance_ids: Collection[str] | None = None) -> list[IncidentRecord]:
        """Incidents, oldest first (``instance_ids``: one query per 500 of them)."""
        query = _incidents_query(status is not None, instance_id is not None, event is not None,
                                 instance_ids is not None)
        params: dict[str, Any] = {"p_status": status, "p_instance": instance_id, "p_event": event}
        if instance_ids is None:
            return [_incident(r) for r in execute(self.connection, query, params)]
        wanted = sorted(set(instance_ids))
        found = [_incident(r) for start in range(0, len(wanted), 500)
                 for r in self.connection.execute(query, {**params, "p_ids": wanted[start:start + 500]})]
        return sorted(found, key=lambda incident: incident.id or 0)

    def get_incident(self, incident_id: int) -> IncidentRecord | None:
        """One incident."""
        row = self.connection.execute(sa.select(rw_incidents).where(rw_incidents.c.id == incident_id)).first()
        return _incident(row) if row is not None else None

    def set_incident(self, incident_id: int, status: str, at: datetime, note: str = "",
                     next_retry_at: datetime | None = None, expected: str | None = None) -> bool:
        """Change status, note and next retry (only while the status is ``expected``, if given). PostgreSQL
        evaluates the condition again after waiting for a concurrent writer's row lock, so of two resolvers the
        second finds the incident resolved; SQLite's write units are serial anyway."""
        i = rw_incidents.c
        query = rw_incidents.update().where(i.id == incident_id)
        if expected is not None:
            query = query.where(i.status == expected)
        result = self.connection.execute(query.values(status=status, last_at=_utc(at), note=note,
                                                      next_retry_at=_utc(next_retry_at)))
        return bool(result.rowcount)

    def add_audit(self, entry: AuditEntry) -> None:
        """Append an audit row."""
        self.connection.execute(rw_audit.insert(), {
            "at": _utc(entry.at), "actor": entry.actor, "action": entry.action, "instance_id": entry.instance_id,
            "detail": dict(entry.detail)})

    def add_audits(self, entries: Sequence[AuditEntry]) -> None:
        """Append several audit rows in order: one executemany."""
        if not entries:
            return
        self.connection.execute(rw_audit.insert(), [
            {"at": _utc(e.at), "actor": e.actor, "action": e.action, "instance_id": e.instance_id,
             "detail": dict(e.detail)} for e in entries])

    def audit(self, instance_id: str | None = None) -> list[AuditEntry]:
        """Audit rows, oldest first."""
        query = sa.select(rw_audit).order_by(rw_audit.c.id)
        if instance_id is not None:
            query = query.where(rw_audit.c.instance_id == instance_id)
        return [AuditEntry(_aware(m["at"]), m["actor"], m["action"], m["instance_id"], m["detail"], m["id"])
                for m in (r._mapping for r in self.connection.execute(query))]

    def put_definition(self, record: DefinitionRecord) -> None:
        """Keep a definition version (idempotent, also when two units store the same version at once: ``ON
        CONFLICT DO NOTHING``, no target, so that with tenancy the key is the tenant's and the version's)."""
        self.connection.execute(_INSERT_DEFINITION[self._postgres], {
            "kind": record.kind, "name": record.name, "version": record.version, "source": dict(record.source),
            "created_at": _utc(record.created_at)})

    def get_definition(self, kind: str, name: str, version: str) -> DefinitionRecord | None:
        """A stored definition version."""
        d = rw_definitions.c
        row = self.connection.execute(sa.select(rw_definitions).where(
            d.kind == kind, d.name == name, d.version == version)).first()
        if row is None:
            return None
        m = row._mapping
        return DefinitionRecord(m["kind"], m["name"], m["version"], m["source"], _aware(m["created_at"]))


def _written_behind(connection: Any, statement: Any, row: dict[str, Any]) -> bool:
    """Hand an append-only row (history, outbox) to a connection that writes rows behind (the simulation's
    shared unit: written in bulk before anything reads the table and before the commit); False: write it now."""
    defer = getattr(connection, "defer", None)
    return bool(defer(statement, row)) if defer is not None else False


class _Unit:
    """Context manager: a connection, a transaction, a SqlTx; commit on success, roll back on error."""

    __slots__ = ("_begin", "_conn", "_store")

    def __init__(self, store: SqlStore, begin: str) -> None:
        self._store = store
        self._begin = begin
        self._conn: Connection | None = None

    @critical
    def __enter__(self) -> SqlTx:
        conn = self._store.engine.connect()
        if self._begin != "IMMEDIATE":
            # SQLite: BEGIN DEFERRED (no write lock); any backend: a read unit joined to a simulation's shared
            # transaction needs no savepoint of its own (simulation/shared.py)
            conn = conn.execution_options(regelwerk_begin=self._begin)
        conn.begin()
        self._conn = conn
        return SqlTx(conn, self._store.postgres, self._store)

    @critical
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        conn = self._conn
        assert conn is not None
        try:
            if exc_type is None:
                conn.commit()
            else:
                conn.rollback()
        finally:
            conn.close()
            self._conn = None


class SqlStore:
    """The SQLAlchemy store for ``sqlite:///file`` and ``postgresql+psycopg://...`` URLs."""

    def __init__(self, url: str, create_tables: bool = True, engine_options: Mapping[str, Any] | None = None,
                 engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine if engine is not None else create_sa_engine(url, **dict(engine_options or {}))
        backend = self.engine.dialect.name
        self.sqlite = backend == "sqlite"
        self.postgres = backend == "postgresql"
        if create_tables:
            self.setup()

    def transaction(self) -> _Unit:
        """A read-write unit of work."""
        return _Unit(self, "IMMEDIATE")

    def read(self) -> _Unit:
        """A read-only unit of work (deferred on SQLite: does not take the write lock)."""
        return _Unit(self, "DEFERRED")

    def setup(self) -> None:
        """Create every regelwerk table that is missing (``regelwerk.store.tables.all_tables``)."""
        from regelwerk.store.tables import all_tables

        create_missing(self.engine, all_tables())

    def relationships(self, timezone: Any = None) -> Any:
        """The permission relationship facts kept in this database (``rw_relations``), indexed in memory; dates
        count in ``timezone`` (the organisation's)."""
        from regelwerk.permissions.sql import SqlRelationships

        return SqlRelationships(self.engine, timezone=timezone)

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()


def migrations_path() -> str:
    """The Alembic script directory shipped inside the package."""
    from pathlib import Path

    return str(Path(__file__).resolve().parent / "migrations")


def alembic_config(url: str, registry: Any = None) -> Any:
    """An Alembic ``Config`` for the shipped migrations and this database URL (no ini file needed): the core's
    revisions plus every plugin's own branch (``Registry.add_migrations``)."""
    import os
    from pathlib import Path

    from alembic.config import Config
    from regelwerk.registry import load_registry

    plugins = (registry if registry is not None else load_registry()).migration_locations
    config = Config()
    config.set_main_option("script_location", migrations_path())
    config.set_main_option("path_separator", "os")  # Alembic >= 1.16
    config.set_main_option("version_path_separator", "os")  # older Alembic
    config.set_main_option("version_locations", os.pathsep.join(
        [str(Path(migrations_path()) / "versions"), *plugins]).replace("%", "%%"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "heads", registry: Any = None) -> None:
    """Bring a database's regelwerk tables to ``revision`` (``regelwerk db upgrade URL``; by default the heads of
    the core's branch and of every plugin's branch)."""
    from alembic import command

    command.upgrade(alembic_config(url, registry), revision)
