"""The SQL :class:`~regelwerk_packs.recruitment.ports.CandidateStore`: the only module of the pack that builds queries.

It runs SQLAlchemy Core statements on the pack's tables (``tables.py``) on the store transaction's
connection, so they commit or roll back with everything else of that transaction. Each retention rule
becomes SQL predicates (the first matching rule decides: ``NOT`` the earlier rules' matches); chunks are
taken with ``LIMIT ... FOR UPDATE`` (PostgreSQL; SQLite serialises writers anyway) and no ORDER BY, and
erased with one statement per table and chunk (expanding bound parameters, compiled once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from regelwerk.outbox.queue import utc_naive
from regelwerk.store.sql import one_of
from regelwerk.store.workflow_tables import rw_instances
from regelwerk_packs.recruitment.model import RetentionPolicy, RetentionRule
from regelwerk_packs.recruitment.ports import APPLICATION_COLUMNS, DueCandidate, GroupKept, RetentionLogRow
from regelwerk_packs.recruitment.tables import candidates, questionnaires, retention_log, vacancies

__all__ = ["SqlCandidateStore", "rows_busy", "rule_predicates", "sql_candidate_store"]

_C = candidates.c
_IDS: Any = sa.bindparam("ids", expanding=True)
_DUE_COLUMNS = (_C.id, _C.instance_id, _C.vacancy_id, _C.status, _C.status_group, _C.applied_at)
_OF_VACANCY = sa.select(candidates).where(_C.vacancy_id == sa.bindparam("vacancy_id")).order_by(_C.applied_at, _C.id)
_BY_ID = sa.select(candidates).where(_C.id.in_(_IDS)).order_by(_C.id)
_BY_ID_LOCKED = _BY_ID.with_for_update()
_VACANCIES = sa.select(vacancies).where(vacancies.c.id.in_(_IDS))
_VACANCIES_LOCKED = sa.select(vacancies).where(vacancies.c.id.in_(_IDS)).order_by(vacancies.c.id).with_for_update()
_VACANCY_COUNT = sa.select(sa.func.count()).select_from(vacancies)
_WITH_VACANCY = (sa.select(candidates, vacancies)
                 .select_from(candidates.outerjoin(vacancies, vacancies.c.id == _C.vacancy_id))
                 .where(_C.id == sa.bindparam("cid")))
_WITH_VACANCIES = (sa.select(candidates, vacancies)
                   .select_from(candidates.outerjoin(vacancies, vacancies.c.id == _C.vacancy_id))
                   .where(_C.id.in_(_IDS)))
_SHARING = candidates.alias("sharing")
#: :data:`_WITH_VACANCIES` and, last, how many candidate rows name the candidate's instance (indexed)
_WITH_VACANCIES_COUNTED = _WITH_VACANCIES.add_columns(
    sa.select(sa.func.count()).select_from(_SHARING).where(_SHARING.c.instance_id == _C.instance_id)
    .scalar_subquery().label("rows_of_instance"))
_EXISTING_IDS = sa.select(_C.id).where(_C.id.in_(_IDS))
#: by (SQLite): :data:`_WITH_VACANCIES_COUNTED`, :data:`_EXISTING_IDS` and :data:`_VACANCIES`, on SQLite with the
#: id list as one JSON parameter (``one_of(sole=True)``: the list is the only condition on the table, searched by its
#: primary key as the IN of parameters was; the joined vacancy by its key, the count by the instance index), so they
#: run at the driver (``regelwerk.store.single``) as the same text every call; PostgreSQL's as they were
_AHEAD = {False: _WITH_VACANCIES_COUNTED, True: (
    sa.select(candidates, vacancies).select_from(candidates.outerjoin(vacancies, vacancies.c.id == _C.vacancy_id))
    .where(one_of(_C.id, "ids", False, sole=True)).add_columns(
        sa.select(sa.func.count()).select_from(_SHARING).where(_SHARING.c.instance_id == _C.instance_id)
        .scalar_subquery().label("rows_of_instance")))}
_EXISTING = {False: _EXISTING_IDS, True: sa.select(_C.id).where(one_of(_C.id, "ids", False, sole=True))}
_VACANCIES_OF = {False: _VACANCIES, True: sa.select(vacancies).where(one_of(vacancies.c.id, "ids", False, sole=True))}
#: the instances of these candidates, locked in id order (the core's lock order: instances first); a row another
#: transaction holds fails the statement at once, never waited for (``candidates_locked_ahead``)
_LOCK_INSTANCES_NOWAIT = (sa.select(rw_instances.c.id)
                          .where(rw_instances.c.id.in_(sa.select(_C.instance_id).where(_C.id.in_(_IDS))))
                          .order_by(rw_instances.c.id).with_for_update(nowait=True))
#: :data:`_WITH_VACANCIES_COUNTED` of the candidates whose instance this transaction locked, each candidate row locked
#: in id order (the vacancy is not: it is read as the step's vacancy memo reads it); a row held elsewhere: as above
_WITH_VACANCIES_LOCKED = (_WITH_VACANCIES_COUNTED.where(_C.instance_id.in_(sa.bindparam("locked", expanding=True)))
                          .order_by(_C.id).with_for_update(of=candidates, nowait=True))
#: PostgreSQL's lock_not_available: a ``NOWAIT`` lock found its row held
_LOCK_NOT_AVAILABLE = "55P03"
#: an application's row written behind: one statement object, so a day's rows go in one executemany
_INSERT_APPLICATION = candidates.insert()
#: the columns ``sync_status`` sets on a move
STATUS_COLUMNS = ("status", "status_group", "archived", "status_since")
_SET_STATUS = candidates.update().where(_C.instance_id == sa.bindparam("m_instance_id")).values(
    {_C[name]: sa.bindparam(f"v_{name}", type_=_C[name].type) for name in STATUS_COLUMNS})
_PER_GROUP = (sa.select(_C.status_group, sa.func.count(), sa.func.sum(sa.case((_C.consent.is_(sa.true()), 1), else_=0)),
                        sa.func.min(_C.applied_at))
              .group_by(_C.status_group).order_by(_C.status_group))
#: the erasure's two deletes by (SQLite): PostgreSQL's expanding IN as it was; SQLite's the id list as one JSON
#: parameter (``one_of(sole=True)``: the list is each statement's only condition, searched by the candidate id
#: index and the primary key as the IN of parameters was), so the statements are the same text every call and run
#: at the driver (``regelwerk.store.single``) instead of rendering and binding a placeholder per id each time
_ERASE = {sqlite: (questionnaires.delete().where(one_of(questionnaires.c.candidate_id, "ids", False, sole=True)
                                                 if sqlite else questionnaires.c.candidate_id.in_(_IDS)),
                   candidates.delete().where(one_of(_C.id, "ids", False, sole=True) if sqlite else _C.id.in_(_IDS)))
          for sqlite in (False, True)}
#: a retention log row (the sweep's chunks of a day are mostly one row: run as one statement, not an executemany)
_INSERT_LOG = retention_log.insert()
_MARK_ASKED = candidates.update().where(_C.id.in_(_IDS)).values(renewal_requested_at=sa.bindparam("at"))
_SET_CONSENT_AT = candidates.update().where(_C.id == sa.bindparam("cid")).values(consent_at=sa.bindparam("at"))
_RETENTION_DELETIONS = (sa.select(sa.func.count()).select_from(retention_log)
                        .where(retention_log.c.action != "bulk_delete"))


def sql_candidate_store(tx: Any) -> SqlCandidateStore | None:
    """The store for a SQL store transaction (one with a ``connection``), else None."""
    connection = getattr(tx, "connection", None)
    return SqlCandidateStore(connection) if connection is not None else None


#: when the candidate's vacancy closed (NULL while it is open: a rule counting from it is never due before)
_VACANCY_CLOSED = (sa.select(vacancies.c.closed_at).where(vacancies.c.id == _C.vacancy_id)
                   .scalar_subquery().label("vacancy_closed_at"))


def _start(rule: RetentionRule) -> Any:
    if rule.counts_from == "applied":
        return _C.applied_at
    if rule.counts_from == "consent":
        return sa.func.coalesce(_C.consent_at, _C.applied_at)
    if rule.counts_from == "vacancy_closed":
        return _VACANCY_CLOSED
    return _C.status_since


def _in(column: Any, values: Sequence[str], plain: bool) -> Any:
    """``column IN (values)``. ``plain``: one bound parameter per value, each holding its value (``IN (?, ?)``, the
    SQL SQLite is sent either way), instead of one expanding parameter: a statement built once with those is run
    at the driver (``regelwerk.store.single``; an expanding list is rendered and processed again on every call)."""
    if not plain:
        return column.in_(values)
    return column.in_([sa.bindparam(None, value, type_=column.type) for value in values])


def _match(rule: RetentionRule, plain: bool = False) -> Any:
    parts: list[Any] = []
    if rule.consent is not None:
        parts.append(_C.consent.is_(sa.true()) if rule.consent else _C.consent.is_(sa.false()))
    scope: list[Any] = []
    if rule.groups:
        scope.append(_in(_C.status_group, rule.groups, plain))
    if rule.statuses:
        scope.append(_in(_C.status, rule.statuses, plain))
    if scope:
        parts.append(sa.or_(*scope))
    return sa.and_(sa.true(), *parts)


def _rule_parts(policy: RetentionPolicy, rule: RetentionRule, cutoff: Any, window: Any,
                plain: bool = False) -> tuple[Any, Any, Any | None]:
    earlier: list[Any] = []
    for candidate in policy.rules:
        if candidate is rule or candidate == rule:
            break
        earlier.append(_match(candidate, plain))
    else:
        raise ValueError(f"rule {rule.id!r} is not a rule of retention policy {policy.name!r}")
    match = _match(rule, plain)
    base = sa.and_(match, sa.not_(sa.or_(*earlier))) if earlier else match
    start = _start(rule)
    renewal = None
    if rule.renew_before is not None and rule.consent is True:
        not_asked = sa.or_(_C.renewal_requested_at.is_(None), _C.renewal_requested_at < start)
        renewal = sa.and_(base, start > cutoff, start <= window, not_asked)
    return start, sa.and_(base, start <= cutoff), renewal


def _moments(rule: RetentionRule, now: datetime) -> tuple[datetime, datetime | None]:
    """``(cutoff, renewal window end)`` of a rule at ``now``: started on or before the cutoff is due."""
    cutoff = utc_naive(now) - rule.keep.delta()
    window = cutoff + rule.renew_before.delta() if rule.renew_before is not None else None
    return cutoff, window


def rule_predicates(policy: RetentionPolicy, rule: RetentionRule, now: datetime) -> tuple[Any, Any, Any | None]:
    """``(start column, due predicate, renewal predicate or None)`` of one rule of the policy at ``now``.

    ``due``: the rule decides for the candidate (no earlier rule matches) and the keeping time is over.
    ``renewal``: consent rules with ``renew_before``: inside the window and not yet asked for this consent.
    """
    cutoff, window = _moments(rule, now)
    return _rule_parts(policy, rule, cutoff, window)


_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _built(key: tuple[Any, ...], build: Any) -> Any:
    """The sweep's statements, built once per policy and rule with the moments as bound parameters (the sweep
    runs every day: building and compiling them per call cost more than running them)."""
    try:
        found = _STATEMENTS.get(key)
    except TypeError:  # an unhashable policy (not frozen): built per call
        return build()
    if found is None:
        found = build()
        if len(_STATEMENTS) > 256:
            _STATEMENTS.clear()
        _STATEMENTS[key] = found
    return found


def _sweep_statement(policy: RetentionPolicy, rule: RetentionRule, kind: str, sqlite: bool = False) -> Any:
    """The sweep's statement ``kind`` of the rule, built once (``sqlite``: the rules' value lists as plain bound
    parameters, see :func:`_in`; the same SQL on SQLite, and PostgreSQL's statements are left as they were)."""
    def build() -> Any:
        start, due, renewal = _rule_parts(policy, rule, sa.bindparam("cutoff"), sa.bindparam("window"), sqlite)
        if kind == "due":
            return sa.select(*_DUE_COLUMNS, start).where(due).limit(sa.bindparam("lim")).with_for_update()
        if kind == "due-unlocked":
            return sa.select(*_DUE_COLUMNS, start).where(due).limit(sa.bindparam("lim"))
        if kind == "due-among-locked":  # retention_due(among, lock=True) with the moments bound: built once
            return sa.select(*_DUE_COLUMNS, start).where(due, _C.id.in_(_IDS)).order_by(_C.id).with_for_update()
        if renewal is None:
            return None
        return (sa.select(candidates, start.label("retention_start")).where(renewal).limit(sa.bindparam("lim"))
                .with_for_update())

    return _built((policy, rule, kind, sqlite), build)


def _due_rules_statement(policy: RetentionPolicy, sqlite: bool = False) -> Any:
    """One pass over the candidates telling per rule whether it has a deletion due and (a consent rule with
    ``renew_before``) a renewal due: ``max(CASE WHEN <predicate> THEN 1 ELSE 0 END)`` per predicate (an unknown
    predicate is not due, as in a WHERE)."""
    def build() -> Any:
        columns: list[Any] = []
        for i, rule in enumerate(policy.rules):
            _start_column, due, renewal = _rule_parts(policy, rule, sa.bindparam(f"cutoff_{i}"),
                                                      sa.bindparam(f"window_{i}"), sqlite)
            for name, predicate in ((f"due_{i}", due), (f"renew_{i}", renewal)):
                if predicate is not None:
                    columns.append(sa.func.max(sa.case((predicate, 1), else_=0)).label(name))
        return sa.select(*columns).select_from(candidates) if columns else None

    return _built((policy, "due-rules", sqlite), build)


def _moment_params(policy: RetentionPolicy, now: datetime) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for i, rule in enumerate(policy.rules):
        params[f"cutoff_{i}"], params[f"window_{i}"] = _moments(rule, now)
    return params


class SqlCandidateStore:
    """:class:`~regelwerk_packs.recruitment.ports.CandidateStore` on one SQLAlchemy connection (in a transaction)."""

    __slots__ = ("_conn",)

    def __init__(self, connection: Any) -> None:
        self._conn = connection

    def _sqlite(self) -> bool:
        return bool(self._conn.dialect.name == "sqlite")

    def candidates_of_vacancy(self, vacancy_id: str) -> list[dict[str, Any]]:
        """The vacancy's candidates, in order of application, then id."""
        return [dict(r) for r in self._conn.execute(_OF_VACANCY, {"vacancy_id": vacancy_id}).mappings()]

    def candidates_by_id(self, candidate_ids: Sequence[str], lock: bool = False) -> list[dict[str, Any]]:
        """Those of these candidates that exist, by id (``lock``: ``FOR UPDATE``, in id order)."""
        query = _BY_ID_LOCKED if lock else _BY_ID
        return [dict(r) for r in self._conn.execute(query, {"ids": list(candidate_ids)}).mappings()]

    def vacancies_by_id(self, vacancy_ids: Sequence[str], lock: bool = False) -> dict[str, dict[str, Any]]:
        """Those of these vacancies that exist, keyed by id (``lock``: ``FOR UPDATE``, in id order)."""
        query = _VACANCIES_LOCKED if lock else _VACANCIES_OF[self._sqlite()]
        return {r["id"]: dict(r) for r in self._conn.execute(query, {"ids": list(vacancy_ids)}).mappings()}

    def candidate_with_vacancy(self, candidate_id: str) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        """The candidate and its vacancy (None if gone) in one statement (an outer join), or None."""
        row = self._conn.execute(_WITH_VACANCY, {"cid": candidate_id}).first()
        return _candidate_and_vacancy(row) if row is not None else None

    def candidates_with_vacancies(self, candidate_ids: Sequence[str]) -> dict[str, tuple[dict[str, Any],
                                                                                          dict[str, Any] | None]]:
        """:meth:`candidate_with_vacancy` of several candidates in one statement, keyed by id."""
        found = (_candidate_and_vacancy(row) for row in self._conn.execute(_WITH_VACANCIES,
                                                                          {"ids": sorted(set(candidate_ids))}))
        return {candidate["id"]: (candidate, vacancy) for candidate, vacancy in found}

    def candidates_ahead(self, candidate_ids: Sequence[str]) -> dict[str, tuple[dict[str, Any], dict[str, Any] | None,
                                                                                  bool]]:
        """:meth:`candidates_with_vacancies`, each with whether it is the only candidate row of its instance (an
        update by instance id then changes exactly this row), in one statement."""
        out: dict[str, tuple[dict[str, Any], dict[str, Any] | None, bool]] = {}
        for row in self._conn.execute(_AHEAD[self._sqlite()], {"ids": sorted(set(candidate_ids))}):
            values = tuple(row)
            candidate, vacancy = _candidate_and_vacancy(values[:-1])
            out[candidate["id"]] = (candidate, vacancy, values[-1] == 1)
        return out

    def candidates_locked_ahead(self, candidate_ids: Sequence[str]) -> dict[str, tuple[dict[str, Any],
                                                                                         dict[str, Any] | None, bool]]:
        """:meth:`candidates_ahead` with every row locked until the transaction ends (PostgreSQL; elsewhere the same
        read, unlocked), in two statements and the core's lock order: first the candidates' instances, then the
        candidate rows of those instances, each ``FOR UPDATE NOWAIT`` in id order. All or nothing, never waiting: when
        another transaction holds one of the rows the statement fails at once (:func:`rows_busy` tells the error; the
        caller rolls its unit back, which lets go of what was locked) and nothing is read ahead. So the read adds no
        wait to the transaction, and once it has them, the moves of those candidates never wait for each other's
        rows either. While the transaction lasts, no other can change or delete the rows returned, nor fire their
        instances: they are current until this transaction changes them itself (a simulated day's moves, see
        regelwerk_packs.recruitment.simulation)."""
        ids = sorted(set(candidate_ids))
        locked = list(self._conn.execute(_LOCK_INSTANCES_NOWAIT, {"ids": ids}).scalars())
        if not locked:
            return {}
        out: dict[str, tuple[dict[str, Any], dict[str, Any] | None, bool]] = {}
        for row in self._conn.execute(_WITH_VACANCIES_LOCKED, {"ids": ids, "locked": locked}):
            values = tuple(row)
            candidate, vacancy = _candidate_and_vacancy(values[:-1])
            out[candidate["id"]] = (candidate, vacancy, values[-1] == 1)
        return out

    def set_status_behind(self, instance_id: str, values: Mapping[str, Any]) -> bool:
        """Hand the UPDATE of the status columns (``STATUS_COLUMNS``, exactly) of the instance's candidate rows to a
        connection that writes rows behind (the simulation's shared unit: written with the others of the step in
        one ``executemany`` before anything reads the table again and before the commit, dropped with the unit that
        made it if that rolls back). False: nothing was done (another connection, or other columns): update now.
        The caller knows the rows exist (the update's count is not known until it is written)."""
        defer = getattr(self._conn, "defer", None)
        if defer is None or set(values) != set(STATUS_COLUMNS):
            return False
        params = {"m_instance_id": instance_id, **{f"v_{name}": values[name] for name in STATUS_COLUMNS}}
        return bool(defer(_SET_STATUS, params))

    def existing_ids(self, candidate_ids: Sequence[str]) -> set[str]:
        """Which of these candidate ids have a row (one statement)."""
        return set(self._conn.execute(_EXISTING[self._sqlite()], {"ids": sorted(set(candidate_ids))}).scalars())

    def insert_behind(self, row: Mapping[str, Any]) -> bool:
        """Hand the INSERT of an application's candidate row (exactly ``APPLICATION_COLUMNS``) to a connection that
        writes rows behind (as :meth:`set_status_behind`: with the step's others in one ``executemany``). False:
        nothing was done (another connection, or other columns): insert now. The caller knows no row has the id."""
        defer = getattr(self._conn, "defer", None)
        if defer is None or len(row) != len(APPLICATION_COLUMNS) or not all(n in row for n in APPLICATION_COLUMNS):
            return False
        return bool(defer(_INSERT_APPLICATION, {name: row[name] for name in APPLICATION_COLUMNS}))

    def vacancy_count(self) -> int:
        """How many vacancies there are."""
        return int(self._conn.execute(_VACANCY_COUNT).scalar_one())

    def kept_per_group(self) -> list[GroupKept]:
        """Count, with consent and oldest application per status group."""
        return [GroupKept(r[0], int(r[1]), int(r[2] or 0), r[3]) for r in self._conn.execute(_PER_GROUP)]

    def _listed(self, predicate: Any, start: Any, among: Sequence[str] | None,
                lock: bool = False) -> list[DueCandidate]:
        query = sa.select(*_DUE_COLUMNS, start).where(predicate).order_by(_C.id)
        if among is not None:
            query = query.where(_C.id.in_(list(among)))
        if lock:
            query = query.with_for_update()
        return [DueCandidate._make(r) for r in self._conn.execute(query)]

    def retention_due(self, policy: RetentionPolicy, rule: RetentionRule, now: datetime,
                      among: Sequence[str] | None = None, lock: bool = False) -> list[DueCandidate]:
        """Every candidate the rule deletes at ``now``, by id (``lock``: ``FOR UPDATE``, in id order)."""
        start, due, _renewal = rule_predicates(policy, rule, now)
        return self._listed(due, start, among, lock)

    def renewal_due(self, policy: RetentionPolicy, rule: RetentionRule, now: datetime,
                    among: Sequence[str] | None = None) -> list[DueCandidate]:
        """Every candidate the rule asks to renew consent at ``now``, by id."""
        start, _due, renewal = rule_predicates(policy, rule, now)
        return self._listed(renewal, start, among) if renewal is not None else []

    def next_due(self, policy: RetentionPolicy, rule: RetentionRule, now: datetime, limit: int,
                 lock: bool = True) -> list[DueCandidate]:
        """Up to ``limit`` due candidates, locked for update (unless ``lock`` is False), in no particular order."""
        cutoff, _window = _moments(rule, now)
        query = _sweep_statement(policy, rule, "due" if lock else "due-unlocked", self._sqlite())
        return [DueCandidate._make(r) for r in self._conn.execute(query, {"cutoff": cutoff, "lim": limit})]

    def next_renewals(self, policy: RetentionPolicy, rule: RetentionRule, now: datetime,
                      limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` candidates to ask for consent renewal (with ``retention_start``), locked for update."""
        query = _sweep_statement(policy, rule, "renewal", self._sqlite())
        if query is None:
            return []
        cutoff, window = _moments(rule, now)
        return [dict(r) for r in self._conn.execute(query, {"cutoff": cutoff, "window": window, "lim": limit})
                .mappings()]

    def still_due(self, policy: RetentionPolicy, rule: RetentionRule, now: datetime,
                  found: Sequence[DueCandidate]) -> list[DueCandidate]:
        """Those of ``found`` (:meth:`next_due` in this write transaction) the rule still deletes, locked, by id.

        PostgreSQL: read again ``FOR UPDATE`` (a move or another worker may have come first). SQLite: ``found`` as
        it is, without a read: a write transaction holds the database's write lock from its ``BEGIN IMMEDIATE``, so
        nothing but this transaction has changed the rows since they were read (as ``SqlTx.lock_instances``)."""
        if not found:
            return []
        if self._conn.dialect.name == "sqlite":
            return sorted(found, key=lambda row: row.id)
        query = _sweep_statement(policy, rule, "due-among-locked")
        cutoff, _window = _moments(rule, now)
        return [DueCandidate._make(r) for r in self._conn.execute(query, {"cutoff": cutoff,
                                                                          "ids": sorted({r.id for r in found})})]

    def due_rules(self, policy: RetentionPolicy, now: datetime) -> tuple[frozenset[int], frozenset[int]]:
        """One read: the positions (in ``policy.rules``) of the rules with a deletion due, and of those with a
        renewal due at ``now``."""
        query = _due_rules_statement(policy, self._sqlite())
        if query is None:
            return frozenset(), frozenset()
        row = self._conn.execute(query, _moment_params(policy, now)).one()._mapping
        deletions, renewals = set(), set()
        for i in range(len(policy.rules)):
            if row.get(f"due_{i}"):
                deletions.add(i)
            if row.get(f"renew_{i}"):
                renewals.add(i)
        return frozenset(deletions), frozenset(renewals)

    def erase(self, candidate_ids: Sequence[str]) -> int:
        """Delete the candidates' questionnaires, then the candidates (one statement each)."""
        params = {"ids": list(candidate_ids)}
        if not params["ids"]:
            return 0
        erase_questionnaires, erase_candidates = _ERASE[self._sqlite()]
        self._conn.execute(erase_questionnaires, params)
        return int(self._conn.execute(erase_candidates, params).rowcount or 0)

    def log_retention(self, rows: Sequence[RetentionLogRow]) -> None:
        """Append anonymous log rows (executemany)."""
        if len(rows) == 1:
            self._conn.execute(_INSERT_LOG, dict(rows[0]))
        elif rows:
            self._conn.execute(_INSERT_LOG, list(rows))

    def retention_deletions(self) -> int:
        """Logged deletions that were not by hand."""
        return int(self._conn.execute(_RETENTION_DELETIONS).scalar_one())

    def mark_renewal_requested(self, candidate_ids: Sequence[str], at: datetime) -> int:
        """Set ``renewal_requested_at`` of these candidates (one statement)."""
        ids = list(candidate_ids)
        if not ids:
            return 0
        return int(self._conn.execute(_MARK_ASKED, {"ids": ids, "at": utc_naive(at)}).rowcount or 0)

    def set_consent_at(self, candidate_id: str, at: datetime) -> int:
        """Set the candidate's ``consent_at``."""
        return int(self._conn.execute(_SET_CONSENT_AT, {"cid": candidate_id, "at": utc_naive(at)}).rowcount or 0)


#: the join's columns by position: every candidate column, then every vacancy column (``select(candidates, vacancies)``)
_CANDIDATE_NAMES = tuple(c.name for c in candidates.c)
_VACANCY_NAMES = tuple(c.name for c in vacancies.c)
_VACANCY_ID_AT = len(_CANDIDATE_NAMES) + _VACANCY_NAMES.index("id")


def rows_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``NOWAIT`` lock that found its row held by another transaction (PostgreSQL's
    lock_not_available), as :meth:`SqlCandidateStore.candidates_locked_ahead` raises it."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == _LOCK_NOT_AVAILABLE


def _candidate_and_vacancy(row: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A row of the candidate-with-vacancy join as (candidate, vacancy or None when it is gone), by position (the two
    tables share column names such as ``id``)."""
    values = tuple(row)
    split = len(_CANDIDATE_NAMES)
    vacancy = dict(zip(_VACANCY_NAMES, values[split:], strict=True)) if values[_VACANCY_ID_AT] is not None else None
    return dict(zip(_CANDIDATE_NAMES, values[:split], strict=True)), vacancy
