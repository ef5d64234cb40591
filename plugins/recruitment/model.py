"""The compiled recruitment model: statuses and groups, workflows, organisation, settings, retention."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from regelwerk.conditions import Duration
from regelwerk.workflows.model import ActionRef

__all__ = [
    "GROUPS",
    "GROUP_LABELS",
    "CandidateStatus",
    "Entity",
    "Move",
    "OrganisationStructure",
    "Questionnaire",
    "RecruitmentSettings",
    "RecruitmentWorkflow",
    "RetentionPolicy",
    "RetentionRule",
    "StatusSet",
]

#: The standard status groups (ids are what rules and reports key on; labels are Dutch and may be relabelled).
GROUPS: tuple[str, ...] = ("new", "in_progress", "interview", "offer", "hired", "rejected", "other")
GROUP_LABELS: Mapping[str, str] = {
    "new": "Nieuw", "in_progress": "In behandeling", "interview": "Interview", "offer": "Aanbieding",
    "hired": "Aangenomen", "rejected": "Afgewezen", "other": "Overig",
}


@dataclass(frozen=True, slots=True)
class CandidateStatus:
    """One candidate status: in exactly one group, active or archive."""

    id: str
    label: str
    group: str
    archive: bool = False


@dataclass(frozen=True, slots=True)
class StatusSet:
    """A customer's candidate statuses and (possibly relabelled) groups."""

    name: str
    statuses: tuple[CandidateStatus, ...]
    group_labels: Mapping[str, str]

    def status(self, status_id: str) -> CandidateStatus:
        """The status with this id (KeyError if unknown)."""
        for status in self.statuses:
            if status.id == status_id:
                return status
        raise KeyError(status_id)


@dataclass(frozen=True, slots=True)
class Move:
    """Allowed moves: from these statuses to these, by these parties (team, manager or role names), when its
    condition holds (``when``: over ``vacancy.*``, ``candidate.*``, ``input.*`` and ``actor.*``; None: always).

    ``input`` lists what the mover's data may carry (``[reason]``); ``parts`` are the condition's top-level parts
    (the items of an ``all``, else the condition itself) with their pointers, compiled against the same scope as
    the service builds, so a refusal can say which of them failed (:meth:`RecruitmentWorkflow.refusal`)."""

    sources: tuple[str, ...]
    targets: tuple[str, ...]
    by: tuple[str, ...]
    label: str = ""
    when: Any = None
    input: tuple[str, ...] | None = None
    parts: tuple[tuple[str, Any], ...] = ()
    index: int = 0


@dataclass(frozen=True, slots=True)
class RecruitmentWorkflow:
    """A compiled recruitment workflow; ``workflow`` names the core Workflow it was compiled into."""

    name: str
    label: str
    workflow: str
    status_set: str
    statuses: tuple[CandidateStatus, ...]
    initial: str
    moves: tuple[Move, ...]
    on_apply: tuple[ActionRef, ...] = ()
    #: the vacancy's and the candidate's fields the moves' conditions read (``{"vacancy": ("budget_approved",)}``):
    #: what :meth:`Recruitment.move` hands the guard; empty when no move has a ``when`` (nothing is read or passed)
    reads: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def status(self, status_id: str) -> CandidateStatus:
        """The status with this id (KeyError if not in this workflow)."""
        for status in self.statuses:
            if status.id == status_id:
                return status
        raise KeyError(status_id)

    def who_may_move(self, source: str, target: str) -> tuple[str, ...] | None:
        """The parties allowed to move from ``source`` to ``target`` (None when the move is not allowed)."""
        move = self.deciding_move(source, target)
        return move.by if move is not None else None

    def deciding_move(self, source: str, target: str) -> Move | None:
        """The first move from ``source`` to ``target``, which decides it (None when no move allows it)."""
        for move in self.moves:
            if source in move.sources and target in move.targets and source != target:
                return move
        return None


@dataclass(frozen=True, slots=True)
class Entity:
    """One entity of the organisation tree with its own templates (by purpose) and workflow."""

    id: str
    label: str
    type: str
    parent: str | None
    templates: Mapping[str, str] = field(default_factory=dict)
    workflow: str | None = None


@dataclass(frozen=True, slots=True)
class OrganisationStructure:
    """The organisation as a tree of entities."""

    name: str
    entities: tuple[Entity, ...]

    def entity(self, entity_id: str) -> Entity:
        """The entity with this id (KeyError if unknown)."""
        for entity in self.entities:
            if entity.id == entity_id:
                return entity
        raise KeyError(entity_id)

    def path_up(self, entity_id: str) -> tuple[Entity, ...]:
        """The entity and its ancestors, nearest first."""
        out: list[Entity] = []
        current: str | None = entity_id
        while current is not None and len(out) <= len(self.entities):
            entity = self.entity(current)
            out.append(entity)
            current = entity.parent
        return tuple(out)


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """How long data of candidates matching this rule may be kept."""

    id: str
    label: str
    groups: tuple[str, ...]
    statuses: tuple[str, ...]
    consent: bool | None
    keep: Duration
    counts_from: str = "status"
    renew_before: Duration | None = None
    renew_template: str | None = None

    def matches(self, status: str, group: str, consent: bool) -> bool:
        """Does this rule cover a candidate in ``status`` (of ``group``) with/without consent?"""
        if self.consent is not None and self.consent != consent:
            return False
        if not self.groups and not self.statuses:
            return True
        return group in self.groups or status in self.statuses


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """AVG retention rules; the first matching rule decides."""

    name: str
    label: str
    rules: tuple[RetentionRule, ...]

    def rule_for(self, status: str, group: str, consent: bool) -> RetentionRule | None:
        """The deciding rule, or None when no rule applies (the data is kept)."""
        for rule in self.rules:
            if rule.matches(status, group, consent):
                return rule
        return None


@dataclass(frozen=True, slots=True)
class Questionnaire:
    """step2HR's questionnaire, derived from the talent pack's competency model at compile time.

    The values are the talent pack's compiled ``TalentCompetency`` objects (``name``, ``label``,
    ``questions``), only those with questions: ``functions`` by function (roles generated from that
    function), ``every_function`` (roles generated from ``"*"``), ``departments`` by department
    (``TalentCompetencyProfile.departments``).
    """

    functions: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    every_function: tuple[Any, ...] = ()
    departments: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def for_vacancy(self, function: str | None, department: str | None) -> tuple[Any, ...]:
        """The competencies to ask about: the function's own, the general ones, the department's (no repeats)."""
        chosen = (*self.functions.get(function or "", ()), *self.every_function,
                  *self.departments.get(department or "", ()))
        unique: dict[str, Any] = {}
        for competency in chosen:
            unique.setdefault(competency.name, competency)
        return tuple(unique.values())


@dataclass(frozen=True, slots=True)
class RecruitmentSettings:
    """The company profile: defaults for every vacancy."""

    name: str
    company: Mapping[str, str]
    sender_address: str
    sender_name: str
    signature: str
    workflow: str
    organisation: str | None
    templates: Mapping[str, str]
    retention: str | None
    vacancy_admins: tuple[str, ...]
    questionnaire: Questionnaire = field(default_factory=Questionnaire)
    #: the customer's declared facts the host sets (``Facts`` documents named ``vacancy`` / ``candidate``): attribute
    #: name -> fact-model type (``{"budget_approved": {"type": "boolean"}}``)
    vacancy_facts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    candidate_facts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def task_id(self) -> str:
        """The scheduler's tick runs the AVG retention sweep through this (``regelwerk.scheduling.TickTask``)."""
        return f"recruitment.retention.{self.name}"

    def run_tick(self, engine: Any, compiled: Any, now: datetime) -> Mapping[str, Any]:
        """The retention sweep at ``now`` (idempotent: what was deleted is gone, renewals are asked once)."""
        if not self.retention:
            return {}
        from regelwerk_packs.recruitment.service import retention_sweep

        report = retention_sweep(engine, compiled, now, settings=self)
        summary = {"deleted": report.deleted, "renewals_requested": report.renewals_requested}
        if report.renewals_failed:
            summary["renewals_failed"] = report.renewals_failed
        return summary
