"""AVG retention: which candidates' data must go (or be asked to renew consent), and really erasing it.

Each rule is a SQL predicate: a rule covers the candidates it matches and no earlier rule matched
(the first matching rule decides). The sweep streams: per rule it takes the next ``chunk`` due
candidates (locked ``FOR UPDATE`` where the database supports it) and erases them set-based in
the same transaction, one statement per table for the whole chunk. Removed: outbox rows about the
candidate and workflow payloads (instance data, history explanations, audit details, timers,
incidents) through the store port's ``erase_personal_data``, questionnaires and finally the
candidate row; an anonymous row in ``rw_retention_log`` records that it
happened, under which rule and how long the data had been kept. Nothing in that row identifies
the person. Only one chunk is ever held in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from regelwerk.actors import SYSTEM, Actor
from regelwerk.outbox.queue import utc_naive
from regelwerk_packs.recruitment.model import GROUPS, RetentionPolicy, RetentionRule
from regelwerk_packs.recruitment.tables import candidates, questionnaires, retention_log

__all__ = [
    "RetentionItem",
    "RetentionPlan",
    "RetentionReport",
    "erase_candidates",
    "erase_due",
    "next_chunk",
    "overview",
    "plan_retention",
    "retention_rules",
]

_C = candidates.c


@dataclass(frozen=True, slots=True)
class RetentionItem:
    """One candidate the policy acts on: delete, or ask to renew consent."""

    candidate_id: str
    vacancy_id: str
    instance_id: str
    status: str
    group: str
    rule: str
    action: str
    due: datetime
    applied_at: datetime


@dataclass
class RetentionPlan:
    """What a sweep would do at ``now``."""

    policy: str
    now: datetime
    deletions: list[RetentionItem] = field(default_factory=list)
    renewals: list[RetentionItem] = field(default_factory=list)

    def to_rows(self) -> list[dict[str, Any]]:
        """Rows for the CLI preview."""
        return [{"candidate": i.candidate_id, "vacancy": i.vacancy_id, "status": i.status, "group": i.group,
                 "rule": i.rule, "action": i.action, "due": i.due.isoformat()}
                for i in self.deletions + self.renewals]


@dataclass
class RetentionReport:
    """What a sweep did (``by_rule``: candidates deleted per rule). The sweep streams, so it keeps no plan."""

    deleted: int = 0
    renewals_requested: int = 0
    outbox_rows_erased: int = 0
    preview: RetentionPlan | None = None
    by_rule: dict[str, int] = field(default_factory=dict)


def _column(rule: RetentionRule) -> Any:
    if rule.counts_from == "applied":
        return _C.applied_at
    if rule.counts_from == "consent":
        return sa.func.coalesce(_C.consent_at, _C.applied_at)
    return _C.status_since


def _match(rule: RetentionRule) -> Any:
    parts: list[Any] = []
    if rule.consent is not None:
        parts.append(_C.consent.is_(sa.true()) if rule.consent else _C.consent.is_(sa.false()))
    scope: list[Any] = []
    if rule.groups:
        scope.append(_C.status_group.in_(rule.groups))
    if rule.statuses:
        scope.append(_C.status.in_(rule.statuses))
    if scope:
        parts.append(sa.or_(*scope))
    return sa.and_(sa.true(), *parts)


def retention_rules(policy: RetentionPolicy, now: datetime) -> Iterator[tuple[RetentionRule, Any, Any, Any | None]]:
    """Per rule, in order: ``(rule, start column, due predicate, renewal predicate or None)``.

    ``due``: the rule decides for the candidate (no earlier rule matches) and the keeping time is over.
    ``renewal``: consent rules with ``renew_before``: inside the window and not yet asked for this consent.
    """
    moment = utc_naive(now)
    earlier: list[Any] = []
    for rule in policy.rules:
        match = _match(rule)
        base = sa.and_(match, sa.not_(sa.or_(*earlier))) if earlier else match
        start = _column(rule)
        cutoff = moment - rule.keep.delta()
        renewal = None
        if rule.renew_before is not None and rule.consent is True:
            window = cutoff + rule.renew_before.delta()
            not_asked = sa.or_(_C.renewal_requested_at.is_(None), _C.renewal_requested_at < start)
            renewal = sa.and_(base, start > cutoff, start <= window, not_asked)
        earlier.append(match)
        yield rule, start, sa.and_(base, start <= cutoff), renewal


def plan_retention(connection: Any, policy: RetentionPolicy, now: datetime,
                   candidate_ids: Sequence[str] | None = None) -> RetentionPlan:
    """Every candidate due for deletion or a consent-renewal request at ``now`` (optionally among some ids).

    For previews (CLI, API); the sweep itself streams with the same predicates (``retention_rules``).
    """
    plan = RetentionPlan(policy.name, now)
    cols = (_C.id, _C.vacancy_id, _C.instance_id, _C.status, _C.status_group, _C.applied_at)
    among = _C.id.in_(list(candidate_ids)) if candidate_ids is not None else sa.true()
    for rule, start, due, renewal in retention_rules(policy, now):
        keep = rule.keep.delta()
        for row in connection.execute(sa.select(*cols, start.label("start")).where(due, among).order_by(_C.id)):
            plan.deletions.append(RetentionItem(row[0], row[1], row[2], row[3], row[4], rule.id, "delete",
                                                _aware(row[6] + keep), _aware(row[5])))
        if renewal is not None:
            for row in connection.execute(sa.select(*cols, start.label("start")).where(renewal, among)
                                          .order_by(_C.id)):
                plan.renewals.append(RetentionItem(row[0], row[1], row[2], row[3], row[4], rule.id, "renew",
                                                   _aware(row[6] + keep), _aware(row[5])))
    return plan


def next_chunk(connection: Any, predicate: Any, chunk: int, *columns: Any) -> list[Any]:
    """Up to ``chunk`` candidates matching ``predicate``, locked for update (in no particular order).

    The caller removes them from the predicate in the same transaction (deletes them or marks them
    asked), so the next call finds the next ones; no ORDER BY, so the database may use any index.
    """
    return list(connection.execute(sa.select(*columns).where(predicate).limit(chunk).with_for_update()))


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _erase(tx: Any, ids: Sequence[str], instance_ids: Sequence[str]) -> tuple[int, int]:
    """Erase these candidates and what was derived from them, set-based (one statement per table).

    ``tx`` is the store's transaction: the workflow store's copies (instance data, history explanations,
    audit details, timers, incidents) and the outbox messages about the candidates go through the store
    port (``erase_personal_data``); the pack's own tables (questionnaires, then the candidate rows) on
    the same transaction. Returns (candidates deleted, outbox rows erased).
    """
    connection = tx.connection
    found: Any = sa.bindparam("ids", expanding=True)
    erased = tx.erase_personal_data(list(instance_ids), [f"candidate:{cid}" for cid in ids])
    connection.execute(questionnaires.delete().where(questionnaires.c.candidate_id.in_(found)), {"ids": ids})
    deleted = connection.execute(candidates.delete().where(_C.id.in_(found)), {"ids": ids}).rowcount or 0
    return deleted, int(erased.outbox)


def _log_rows(rows: Iterable[tuple[str, str, str, str, datetime]], *, now: datetime, actor: Actor, policy: str,
              reason: str) -> list[dict[str, Any]]:
    """Anonymous retention-log rows from ``(rule, vacancy_id, status, status_group, applied_at)`` tuples."""
    moment = utc_naive(now)
    return [{"at": moment, "actor": actor.id, "action": reason, "policy": policy, "rule": rule, "status": status,
             "status_group": group, "vacancy_id": vacancy_id, "applied_month": applied.strftime("%Y-%m"),
             "kept_days": max((moment - utc_naive(applied)).days, 0)}
            for rule, vacancy_id, status, group, applied in rows]


def erase_candidates(tx: Any, items: Iterable[RetentionItem], *, now: datetime, actor: Actor = SYSTEM,
                     policy: str = "", reason: str = "retention") -> tuple[int, int]:
    """Really delete these candidates' personal data (in the caller's store transaction); log anonymously.

    Returns (candidates deleted, outbox rows erased). Used for hand-picked candidates (bulk delete);
    the sweep uses :func:`erase_due`, which shares the erasure itself.
    """
    batch = list(items)
    if not batch:
        return 0, 0
    deleted, outbox_rows = _erase(tx, [i.candidate_id for i in batch], [i.instance_id for i in batch])
    tx.connection.execute(retention_log.insert(), _log_rows(
        ((i.rule, i.vacancy_id, i.status, i.group, i.applied_at) for i in batch), now=now, actor=actor,
        policy=policy, reason=reason))
    return deleted, outbox_rows


def erase_due(store: Any, policy: RetentionPolicy, now: datetime, *, actor: Actor = SYSTEM, chunk: int = 1000,
              report: RetentionReport | None = None) -> RetentionReport:
    """Stream the policy's deletions at ``now``: per rule, chunk after chunk, each in its own transaction.

    ``store`` is the engine's SQL store (``store.transaction()`` yields ``.connection``).
    """
    report = report if report is not None else RetentionReport()
    columns = (_C.id, _C.instance_id, _C.vacancy_id, _C.status, _C.status_group, _C.applied_at)
    for rule, _start, due, _renewal in retention_rules(policy, now):
        while True:
            with store.transaction() as tx:
                connection = tx.connection
                rows = next_chunk(connection, due, chunk, *columns)
                if not rows:
                    break
                deleted, outbox_rows = _erase(tx, [r[0] for r in rows], [r[1] for r in rows])
                connection.execute(retention_log.insert(), _log_rows(
                    ((rule.id, *r[2:]) for r in rows), now=now, actor=actor, policy=policy.name,
                    reason="retention"))
            report.deleted += deleted
            report.outbox_rows_erased += outbox_rows
            report.by_rule[rule.id] = report.by_rule.get(rule.id, 0) + deleted
            if deleted < len(rows):  # rows that did not go would be found again: never loop on them
                raise RuntimeError(f"retention rule {rule.id!r}: {len(rows) - deleted} due candidate(s) "
                                   "could not be deleted")
    return report


def overview(connection: Any, now: datetime) -> list[dict[str, Any]]:
    """How long candidates have been kept, per status group: count, oldest application, average days."""
    moment = utc_naive(now)
    rows = connection.execute(sa.select(_C.status_group, sa.func.count(), sa.func.min(_C.applied_at),
                                        sa.func.sum(sa.case((_C.consent.is_(sa.true()), 1), else_=0)))
                              .group_by(_C.status_group)).fetchall()
    by_group = {r[0]: r for r in rows}
    out = []
    for group in GROUPS:
        row = by_group.get(group)
        if row is None:
            continue
        oldest = row[2]
        out.append({"group": group, "candidates": int(row[1]), "with_consent": int(row[3] or 0),
                    "oldest_application": oldest.date().isoformat() if oldest else None,
                    "longest_kept_days": (moment - oldest).days if oldest else 0})
    return out
