"""The recruitment pack's store port: what its service, retention sweep and simulation need of its own tables.

The core's :class:`~regelwerk.store.base.StoreTx` keeps the workflow's rows (instances, history, timers, audit,
outbox) and erases personal data from them (``erase_personal_data``); simple reads and writes of the pack's
tables go through ``tx.rows(table)``. What ``Rows`` cannot say (ordered lists, aggregates, the retention
rules as set-based predicates, chunks locked for update, bulk erasure) is a :class:`CandidateStore`, bound to
one store transaction and obtained with :func:`candidate_store`. The one implementation,
:mod:`regelwerk_packs.recruitment.sqlstore`, is the only module of the pack that builds queries; every
implementation must pass :class:`regelwerk_packs.recruitment.contract.CandidateStoreContract`.

Times are naive UTC, as stored (``regelwerk.outbox.queue.utc_naive``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypedDict, runtime_checkable

from regelwerk_packs.recruitment.model import RetentionPolicy, RetentionRule

__all__ = ["APPLICATION_COLUMNS", "CandidateStore", "DueCandidate", "GroupKept", "RetentionLogRow", "candidate_store"]

#: the columns of a candidate row an application writes (``sync_status`` on the start of ``Recruitment.apply``'s
#: instance): every column but the renewal request and the declared facts, which stay NULL
APPLICATION_COLUMNS = ("id", "vacancy_id", "first_name", "last_name", "email", "phone", "details", "source", "consent",
                       "instance_id", "applied_at", "consent_at", "status", "status_group", "archived", "status_since")


class DueCandidate(NamedTuple):
    """A candidate a retention rule acts on: what the sweep, the preview and the anonymous log need."""

    id: str
    instance_id: str
    vacancy_id: str
    status: str
    status_group: str
    applied_at: datetime
    retention_start: datetime
    """The moment the rule's keeping time counts from (status change, application or consent)."""


class GroupKept(NamedTuple):
    """Candidates of one status group: how many, how many consented, the oldest application."""

    group: str
    candidates: int
    with_consent: int
    oldest_application: datetime | None


class RetentionLogRow(TypedDict):
    """One anonymous ``rw_retention_log`` row: nothing in it identifies the person."""

    at: datetime
    actor: str
    action: str
    policy: str
    rule: str
    status: str
    status_group: str
    vacancy_id: str | None
    applied_month: str
    kept_days: int


@runtime_checkable
class CandidateStore(Protocol):
    """The pack's tables (vacancies, candidates, questionnaires, retention log) in one store transaction.

    A retention rule is named by the policy and the rule itself: a rule decides for the candidates it
    matches that no earlier rule of the policy matches (the first matching rule decides). *Due*: the rule's
    keeping time is over at ``now``. *Renewal*: a consent rule with ``renew_before``, inside that window
    and not yet asked for this consent.
    """

    def candidates_of_vacancy(self, vacancy_id: str) -> list[dict[str, Any]]:
        """The vacancy's candidates (every column), in order of application, then id."""

    def candidates_by_id(self, candidate_ids: Sequence[str], lock: bool = False) -> list[dict[str, Any]]:
        """Those of these candidates that exist (every column), by id; ``lock``: locked for update (in id order)
        where the database has row locks, so a concurrent erasure waits, or this read waits for it and then
        finds the rows it deleted gone."""

    def vacancies_by_id(self, vacancy_ids: Sequence[str], lock: bool = False) -> dict[str, dict[str, Any]]:
        """Those of these vacancies that exist (every column), keyed by id; ``lock``: locked for update (in id
        order) where the database has row locks, so two changes of a vacancy's facts follow each other (each merges
        into what the other wrote)."""

    def candidate_with_vacancy(self, candidate_id: str) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        """The candidate (every column) and its vacancy (every column; None if it is gone) in one read, or None
        when there is no such candidate (a move needs both)."""

    def candidates_with_vacancies(self, candidate_ids: Sequence[str]) -> dict[str, tuple[dict[str, Any],
                                                                                          dict[str, Any] | None]]:
        """:meth:`candidate_with_vacancy` of several candidates in one read: those that exist, keyed by id (a
        simulated day's moves read ahead)."""

    def candidates_ahead(self, candidate_ids: Sequence[str]) -> dict[str, tuple[dict[str, Any], dict[str, Any] | None,
                                                                                  bool]]:
        """:meth:`candidates_with_vacancies` in one read, each with whether the candidate is the only candidate row
        that names its instance (a simulated day's moves read ahead: their status update by instance id is then
        known to change exactly that row)."""

    def candidates_locked_ahead(self, candidate_ids: Sequence[str]) -> dict[str, tuple[dict[str, Any],
                                                                                         dict[str, Any] | None, bool]]:
        """:meth:`candidates_ahead` with the candidates' instances and rows locked until the transaction ends
        (instances first, in id order), all or nothing and without waiting: a row another transaction holds fails
        the read at once, and the caller rolls its unit back (a simulated day's moves read ahead on PostgreSQL)."""

    def set_status_behind(self, instance_id: str, values: Mapping[str, Any]) -> bool:
        """Write the status columns of the instance's candidate row behind, where the transaction writes rows behind
        (in bulk, before anything reads the table and before the commit); False when it does not (nothing done)."""

    def existing_ids(self, candidate_ids: Sequence[str]) -> set[str]:
        """Which of these candidate ids have a row (one read)."""

    def insert_behind(self, row: Mapping[str, Any]) -> bool:
        """Write a new application's candidate row (exactly :data:`APPLICATION_COLUMNS`) behind, where the transaction
        writes rows behind (as :meth:`set_status_behind`); False when it does not, or for other columns (nothing
        done). The caller knows that no row has its id (the insert cannot fail when it is written)."""

    def vacancy_count(self) -> int:
        """How many vacancies there are (open or closed)."""

    def kept_per_group(self) -> list[GroupKept]:
        """Per status group that has candidates: count, with consent, oldest application (by group)."""

    def retention_due(self, policy: RetentionPolicy, rule: RetentionRule, now: datetime,
                      among: Sequence[str] | None = None, lock: bool = False) -> list[DueCandidate]:
        """Every candidate (among these ids, if given) the rule deletes at ``now``, by id (for previews; ``lock``:
        locked for update, in id order; the sweep itself checks with :meth:`still_due`)."""

    def renewal_due(self, policy: RetentionPolicy, rule: RetentionRule, now: datetime,
                    among: Sequence[str] | None = None) -> list[DueCandidate]:
        """Every candidate the rule asks to renew consent at ``now``, by id (none for a rule without renewal)."""

    def next_due(self, policy: RetentionPolicy, rule: RetentionRule, now: datetime, limit: int,
                 lock: bool = True) -> list[DueCandidate]:
        """Up to ``limit`` candidates the rule deletes at ``now``, locked for this transaction (``FOR UPDATE``
        where the database has it; not with ``lock=False``), in no particular order. The caller erases them in the
        same transaction, so the next call finds the next ones."""

    def next_renewals(self, policy: RetentionPolicy, rule: RetentionRule, now: datetime,
                      limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` candidates (every column, plus ``retention_start``) the rule asks to renew consent
        at ``now``, locked like :meth:`next_due`; the caller marks them asked in the same transaction."""

    def still_due(self, policy: RetentionPolicy, rule: RetentionRule, now: datetime,
                  found: Sequence[DueCandidate]) -> list[DueCandidate]:
        """Those of ``found`` (read by :meth:`next_due` in this write transaction, their instances locked since) that
        the rule still deletes at ``now``, locked for update, by id: a move or another worker may have come first.
        A database whose write transaction excludes every other writer from its start may answer without a read."""

    def due_rules(self, policy: RetentionPolicy, now: datetime) -> tuple[frozenset[int], frozenset[int]]:
        """In one read, which rules have work at ``now``: the positions (in ``policy.rules``) of those with a
        candidate to delete, and of those with a candidate to ask to renew consent (the sweep runs only those)."""

    def erase(self, candidate_ids: Sequence[str]) -> int:
        """Delete these candidates and their questionnaires, set-based (one statement per table); how many
        candidates went. The workflow's copies go through ``StoreTx.erase_personal_data``."""

    def log_retention(self, rows: Sequence[RetentionLogRow]) -> None:
        """Append anonymous retention-log rows (one statement)."""

    def retention_deletions(self) -> int:
        """How many candidates were deleted under a retention policy (logged, not by hand)."""

    def mark_renewal_requested(self, candidate_ids: Sequence[str], at: datetime) -> int:
        """Record that these candidates were asked to renew consent at ``at`` (one statement); how many."""

    def set_consent_at(self, candidate_id: str, at: datetime) -> int:
        """Date the candidate's consent (the retention period of consent rules counts from it); how many."""


def candidate_store(tx: Any) -> CandidateStore | None:
    """The pack's :class:`CandidateStore` in this store transaction, or None for a store that is not SQL (the
    memory store: its candidate rows are reachable only through ``tx.rows``; the retention sweep skips it)."""
    from regelwerk_packs.recruitment.sqlstore import sql_candidate_store

    return sql_candidate_store(tx)


def require_candidate_store(tx: Any) -> CandidateStore:
    """:func:`candidate_store`, or a ``UsageError`` on a store without one (the memory store)."""
    found = candidate_store(tx)
    if found is None:
        from regelwerk.errors import UsageError

        raise UsageError("the recruitment pack's candidates need a SQL store (its candidate store port)",
                         hint="use a sqlite:/// or postgresql+psycopg:// store")
    return found
