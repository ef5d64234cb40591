"""AVG retention: which candidates' data must go (or be asked to renew consent), and really erasing it.

The plan is computed in SQL, one query per rule: a rule covers the candidates it matches and no
earlier rule matched (first matching rule decides). Erasure works in chunks, each in one
transaction: outbox rows about the candidate, questionnaires, workflow payloads (instance data,
history explanations, audit details, timers) and finally the candidate row are removed, and an
anonymous row in ``rw_retention_log`` records that it happened, under which rule and how long
the data had been kept. Nothing in that row identifies the person.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from engine.actors import SYSTEM, Actor
from engine.outbox.queue import utc_naive
from plugins.recruitment.model import GROUPS, RetentionPolicy, RetentionRule
from plugins.recruitment.tables import candidates, questionnaires, retention_log

__all__ = [
    "RetentionItem",
    "RetentionPlan",
    "RetentionReport",
    "erase_candidates",
    "overview",
    "plan_retention",
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
    """What a sweep did."""

    deleted: int = 0
    renewals_requested: int = 0
    outbox_rows_erased: int = 0
    preview: RetentionPlan | None = None


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


def plan_retention(connection: Any, policy: RetentionPolicy, now: datetime,
                   candidate_ids: Sequence[str] | None = None) -> RetentionPlan:
    """Every candidate due for deletion or a consent-renewal request at ``now`` (optionally among some ids)."""
    plan = RetentionPlan(policy.name, now)
    moment = utc_naive(now)
    earlier: list[Any] = []
    cols = (_C.id, _C.vacancy_id, _C.instance_id, _C.status, _C.status_group, _C.applied_at)
    for rule in policy.rules:
        match = _match(rule)
        base = sa.and_(match, sa.not_(sa.or_(*earlier))) if earlier else match
        if candidate_ids is not None:
            base = sa.and_(base, _C.id.in_(list(candidate_ids)))
        start = _column(rule)
        keep = rule.keep.delta()
        cutoff = moment - keep
        for row in connection.execute(sa.select(*cols, start.label("start")).where(base, start <= cutoff)
                                      .order_by(_C.id)):
            plan.deletions.append(RetentionItem(row[0], row[1], row[2], row[3], row[4], rule.id, "delete",
                                                _aware(row[6] + keep), _aware(row[5])))
        if rule.renew_before is not None and rule.consent is True:
            window = cutoff + rule.renew_before.delta()
            not_asked = sa.or_(_C.renewal_requested_at.is_(None), _C.renewal_requested_at < start)
            for row in connection.execute(sa.select(*cols, start.label("start"))
                                          .where(base, start > cutoff, start <= window, not_asked).order_by(_C.id)):
                plan.renewals.append(RetentionItem(row[0], row[1], row[2], row[3], row[4], rule.id, "renew",
                                                   _aware(row[6]) + rule.keep.delta(), _aware(row[5])))
        earlier.append(match)
    return plan


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _erase_workflow_payloads(connection: Any, instance_ids: Sequence[str]) -> None:
    """Scrub the workflow store's copies: instance data, history explanations, audit details, timers."""
    try:
        from engine.store.workflow_tables import rw_audit, rw_history, rw_instances, rw_timers
    except ImportError:  # a host without the SQL workflow store has nothing to scrub here
        return
    connection.execute(rw_timers.delete().where(rw_timers.c.instance_id.in_(instance_ids)))
    connection.execute(rw_instances.update().where(rw_instances.c.id.in_(instance_ids))
                       .values(data={"erased": True}))
    connection.execute(rw_history.update().where(rw_history.c.instance_id.in_(instance_ids)).values(explain={}))
    connection.execute(rw_audit.update().where(rw_audit.c.instance_id.in_(instance_ids)).values(detail={}))


def erase_candidates(connection: Any, items: Iterable[RetentionItem], *, now: datetime, actor: Actor = SYSTEM,
                     policy: str = "", reason: str = "retention") -> tuple[int, int]:
    """Really delete these candidates' personal data (in the caller's transaction); log anonymously.

    Returns (candidates deleted, outbox rows erased).
    """
    from engine.outbox.queue import erase_subjects

    batch = list(items)
    if not batch:
        return 0, 0
    ids = [i.candidate_id for i in batch]
    moment = utc_naive(now)
    outbox_rows = erase_subjects(connection, (f"candidate:{cid}" for cid in ids))
    connection.execute(questionnaires.delete().where(questionnaires.c.candidate_id.in_(ids)))
    _erase_workflow_payloads(connection, [i.instance_id for i in batch])
    deleted = connection.execute(candidates.delete().where(_C.id.in_(ids))).rowcount or 0
    connection.execute(retention_log.insert(), [
        {"at": moment, "actor": actor.id, "action": reason, "policy": policy, "rule": i.rule, "status": i.status,
         "status_group": i.group, "vacancy_id": i.vacancy_id, "applied_month": i.applied_at.strftime("%Y-%m"),
         "kept_days": max((now - i.applied_at).days, 0)}
        for i in batch
    ])
    return deleted, outbox_rows


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
