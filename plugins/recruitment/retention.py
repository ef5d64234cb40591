"""AVG retention: which candidates' data must go (or be asked to renew consent), and really erasing it.

A rule covers the candidates it matches and no earlier rule matched (the first matching rule decides);
the pack's store port (:class:`~regelwerk_packs.recruitment.ports.CandidateStore`) evaluates the rules
set-based. The sweep streams: per rule it takes the next ``chunk`` due candidates (locked ``FOR UPDATE``
where the database supports it) and erases them set-based in the same transaction, one statement per
table for the whole chunk. Removed: outbox rows about the candidate and workflow payloads (instance data,
history explanations, audit details, timers, incidents) through the core store port's
``erase_personal_data``, questionnaires and finally the candidate row (``CandidateStore.erase``); an
anonymous row in ``rw_retention_log`` records that it happened, under which rule and how long the data
had been kept. Nothing in that row identifies the person. Only one chunk is ever held in memory.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from regelwerk.actors import SYSTEM, Actor
from regelwerk.outbox.queue import utc_naive
from regelwerk_packs.recruitment.model import GROUPS, RetentionPolicy
from regelwerk_packs.recruitment.ports import CandidateStore, RetentionLogRow, candidate_store, require_candidate_store

__all__ = [
    "RetentionItem",
    "RetentionPlan",
    "RetentionReport",
    "erase_candidates",
    "erase_due",
    "overview",
    "plan_retention",
]



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
    #: candidates whose renewal mail could not be written (each an incident; asked again on the next sweep)
    renewals_failed: int = 0
    outbox_rows_erased: int = 0
    preview: RetentionPlan | None = None
    by_rule: dict[str, int] = field(default_factory=dict)


def plan_retention(store: CandidateStore, policy: RetentionPolicy, now: datetime,
                   candidate_ids: Sequence[str] | None = None) -> RetentionPlan:
    """Every candidate due for deletion or a consent-renewal request at ``now`` (optionally among some ids).

    For previews (CLI, API); the sweep itself streams with the same rules (``CandidateStore.next_due``).
    """
    plan = RetentionPlan(policy.name, now)
    for rule in policy.rules:
        keep = rule.keep.delta()
        for row in store.retention_due(policy, rule, now, candidate_ids):
            plan.deletions.append(RetentionItem(row.id, row.vacancy_id, row.instance_id, row.status, row.status_group,
                                                rule.id, "delete", _aware(row.retention_start + keep),
                                                _aware(row.applied_at)))
        for row in store.renewal_due(policy, rule, now, candidate_ids):
            plan.renewals.append(RetentionItem(row.id, row.vacancy_id, row.instance_id, row.status, row.status_group,
                                               rule.id, "renew", _aware(row.retention_start + keep),
                                               _aware(row.applied_at)))
    return plan


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


_candidates = require_candidate_store


def _erase(tx: Any, candidates: CandidateStore, ids: Sequence[str], instance_ids: Sequence[str], *, now: datetime,
           actor: Actor, reason: str) -> tuple[int, int]:
    """Erase these candidates and what was derived from them, set-based (one statement per table).

    ``tx`` is the store's transaction: the workflow store's copies (instance data, history explanations,
    audit details, timers, incidents) and the outbox messages about the candidates go through the store
    port (``erase_personal_data``, which moves the instances' versions on and writes each a ``$erase`` history
    row with ``actor``, ``now`` and ``reason``); the pack's own tables (questionnaires, then the candidate rows)
    through the pack's port on the same transaction. Returns (candidates deleted, outbox rows erased).
    """
    erased = tx.erase_personal_data(list(instance_ids), [f"candidate:{cid}" for cid in ids], actor=actor.id, at=now,
                                    reason=reason)
    deleted = candidates.erase(ids)
    return deleted, int(erased.outbox)


def _log_rows(rows: Iterable[tuple[str, str | None, str, str, datetime]], *, now: datetime, actor: Actor,
              policy: str, reason: str) -> list[RetentionLogRow]:
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
    candidates = _candidates(tx)
    deleted, outbox_rows = _erase(tx, candidates, [i.candidate_id for i in batch], [i.instance_id for i in batch],
                                  now=now, actor=actor, reason=reason)
    candidates.log_retention(_log_rows(
        ((i.rule, i.vacancy_id, i.status, i.group, i.applied_at) for i in batch), now=now, actor=actor,
        policy=policy, reason=reason))
    return deleted, outbox_rows


def erase_due(store: Any, policy: RetentionPolicy, now: datetime, *, actor: Actor = SYSTEM, chunk: int = 1000,
              report: RetentionReport | None = None, rules: Collection[int] | None = None) -> RetentionReport:
    """Stream the policy's deletions at ``now``: per rule, chunk after chunk, each in its own transaction.

    ``store`` is the engine's store (a ``Store``); one without the pack's candidate store (memory) has
    nothing to delete. ``rules``: the positions of the rules to run (``CandidateStore.due_rules``: the others have
    nothing due, so their read is skipped); None: every rule.
    """
    report = report if report is not None else RetentionReport()
    for index, rule in enumerate(policy.rules):
        if rules is not None and index not in rules:
            continue
        while True:
            with store.transaction() as tx:
                candidates = candidate_store(tx)
                if candidates is None:
                    return report
                found = candidates.next_due(policy, rule, now, chunk, lock=False)
                if not found:
                    break
                # the core's lock order: their instances first, then the candidate rows (a move claims the instance,
                # then its sync_status updates the candidate: locking the candidates first deadlocked with it on
                # PostgreSQL); then only those still due once locked (a move or another worker may have come first)
                tx.lock_instances(sorted({r.instance_id for r in found}))
                rows = candidates.still_due(policy, rule, now, found)
                deleted = outbox_rows = 0
                if rows:
                    deleted, outbox_rows = _erase(tx, candidates, [r.id for r in rows],
                                                  [r.instance_id for r in rows], now=now, actor=actor,
                                                  reason="retention")
                    candidates.log_retention(_log_rows(
                        ((rule.id, r.vacancy_id, r.status, r.status_group, r.applied_at) for r in rows), now=now,
                        actor=actor, policy=policy.name, reason="retention"))
            if rows:
                report.deleted += deleted
                report.outbox_rows_erased += outbox_rows
                report.by_rule[rule.id] = report.by_rule.get(rule.id, 0) + deleted
            if deleted < len(rows):  # rows that did not go would be found again: never loop on them
                raise RuntimeError(f"retention rule {rule.id!r}: {len(rows) - deleted} due candidate(s) "
                                   "could not be deleted")
            if len(found) < chunk:  # the read found every candidate due: one more would find none (a day's sweep
                break  # erases a few: this read was a statement and a transaction per rule and day)
    return report


def overview(store: CandidateStore, now: datetime) -> list[dict[str, Any]]:
    """How long candidates have been kept, per status group: count, with consent, oldest application, days."""
    moment = utc_naive(now)
    by_group = {row.group: row for row in store.kept_per_group()}
    out = []
    for group in GROUPS:
        row = by_group.get(group)
        if row is None:
            continue
        oldest = row.oldest_application
        out.append({"group": group, "candidates": row.candidates, "with_consent": row.with_consent,
                    "oldest_application": oldest.date().isoformat() if oldest else None,
                    "longest_kept_days": (moment - oldest).days if oldest else 0})
    return out
