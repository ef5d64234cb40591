"""Recruitment actions (run INSIDE the transition's transaction, see regelwerk.workflows.actions).

- ``recruitment.sync_status``: keeps ``rw_candidates`` in step with the workflow (added to every state by
  the compiler; on start it stores the applicant, whose data is never part of the instance data: handed over
  by ``Recruitment.apply``, or taken out of a start's data before the instance is saved). A move of a candidate
  whose row is gone (erased) is refused (``UsageError``, as the mail actions refuse it): nothing is written over
  the erased instance.
- ``recruitment.on_apply``: runs the workflow's ``on_apply`` actions, only when an application arrives.
- ``recruitment.send_mail``: ``{purpose: receipt}`` or ``{template: name}``: the vacancy's template for the
  purpose, else the nearest entity's, else the default; written to the outbox in the same transaction.
- ``recruitment.send_questionnaire``: step2HR's questionnaire about the competencies of the vacancy's
  function and department, from the talent pack's competency model (``TalentRole`` per function,
  ``TalentCompetencyProfile.departments``, ``TalentCompetency.questions``; see ``kinds.build_questionnaire``).

The mail actions need the candidate and its vacancy. ``Recruitment.move``/``apply`` have just read them for
the fire they make, so they hand them over (:func:`known_rows`) instead of the actions reading them again:
the vacancy as the service read it (what a mail reads of it, its workflow, templates, entity, title,
function, department, manager and deadline, is fixed when the vacancy opens), the candidate only once
``sync_status`` has written its row in the fire's own transaction (inserted on start; on a move, updated
with the new status, one row matched), so its status is this transaction's and it still exists. Any other
fire (a timer, ``workflow.fire``, another instance) reads the rows as before.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from regelwerk.errors import UsageError
from regelwerk.outbox.queue import enqueue, utc_naive
from regelwerk_packs.recruitment.kinds import WORKFLOW_PREFIX
from regelwerk_packs.recruitment.mail import candidate_values, resolve_template, settings_of
from regelwerk_packs.recruitment.model import RecruitmentSettings, RecruitmentWorkflow
from regelwerk_packs.recruitment.ports import candidate_store
from regelwerk_packs.recruitment.tables import candidates, questionnaires, vacancies

__all__ = ["KnownRows", "known_rows", "mail_candidate", "on_apply", "recruitment_workflow", "send_mail",
           "send_questionnaire", "sync_status"]

START_EVENT = "$start"


@dataclass(slots=True)
class KnownRows:
    """The rows the service read for the fire it is making on ``instance_id`` (see the module docstring)."""

    instance_id: str
    vacancy: dict[str, Any]
    candidate: dict[str, Any] | None = None
    #: ``sync_status`` wrote the candidate's row in the fire's transaction (``candidate`` is that row)
    confirmed: bool = False
    #: the application's data for the start (``Recruitment.apply``): never part of the instance data
    applicant: dict[str, Any] | None = None
    #: True while ``candidate`` is provably what the store holds in this transaction and the only candidate row of
    #: the instance (the simulation's day of moves read ahead, see regelwerk_packs.recruitment.simulation)
    current: Callable[[], bool] | None = None
    #: ``sync_status`` handed its update to the transaction to write behind (its own write is not counted yet)
    behind: bool = False
    #: True when provably no candidate row has the applicant's id (the simulation's day of applications read ahead):
    #: the application's row may then be written behind (its INSERT cannot fail when written)
    absent: Callable[[], bool] | None = None


_KNOWN: ContextVar[KnownRows | None] = ContextVar("regelwerk_recruitment_known_rows", default=None)


@contextmanager
def known_rows(instance_id: str, vacancy: Mapping[str, Any], candidate: Mapping[str, Any] | None = None,
               applicant: Mapping[str, Any] | None = None, current: Callable[[], bool] | None = None,
               absent: Callable[[], bool] | None = None) -> Iterator[KnownRows]:
    """Hand the vacancy (and candidate) just read to the actions of the fire made inside the block; on a start,
    the applicant's data for ``sync_status``; ``current``, ``absent``: see :class:`KnownRows`."""
    known = KnownRows(instance_id, dict(vacancy), dict(candidate) if candidate is not None else None,
                      applicant=dict(applicant) if applicant is not None else None, current=current, absent=absent)
    token = _KNOWN.set(known)
    try:
        yield known
    finally:
        _KNOWN.reset(token)


def _known(ctx: Any) -> KnownRows | None:
    known = _KNOWN.get()
    return known if known is not None and known.instance_id == ctx.instance.id else None


def recruitment_workflow(compiled: Any, workflow_name: str) -> RecruitmentWorkflow:
    """The RecruitmentWorkflow behind an emitted core Workflow name (``recruitment.<name>``)."""
    if not workflow_name.startswith(WORKFLOW_PREFIX):
        raise UsageError(f"workflow {workflow_name!r} is not a recruitment workflow")
    return compiled.get("RecruitmentWorkflow", workflow_name[len(WORKFLOW_PREFIX):])  # type: ignore[no-any-return]


def mail_candidate(tx: Any, compiled: Any, settings: RecruitmentSettings, candidate: Mapping[str, Any],
                   vacancy: Mapping[str, Any], template_name: str, now: datetime,
                   extra: Mapping[str, Any] | None = None) -> str:
    """Render ``template_name`` for a candidate and queue it in the outbox; the message id.

    ``tx`` is the store's transaction (``StoreTx``): the message commits with it.
    """
    template = compiled.get("Template", template_name)
    workflow = compiled.get("RecruitmentWorkflow", vacancy["workflow"])
    try:
        label = workflow.status(candidate["status"]).label
    except KeyError:
        label = str(candidate["status"])
    values = candidate_values(compiled, settings, candidate, vacancy, label)
    values.update(extra or {})
    mail = template.render(values)
    return enqueue(tx, mail, recipient=str(candidate["email"]), now=now, sender=settings.sender_address,
                   subject_ref=f"candidate:{candidate['id']}", instance_id=str(candidate["instance_id"]))


def _compiled(ctx: Any) -> Any:
    return ctx.engine.bundle


def sync_status(ctx: Any) -> None:
    """Store the applicant (on start) or the new status (on a move) in ``rw_candidates``."""
    rows = ctx.tx.rows(candidates.name)
    workflow = recruitment_workflow(_compiled(ctx), ctx.instance.workflow)
    status = workflow.status(ctx.dest)
    moment = utc_naive(ctx.now)
    values = {"status": status.id, "status_group": status.group, "archived": status.archive,
              "status_since": moment}
    known = _known(ctx)
    if ctx.event == START_EVENT:
        # from Recruitment.apply (never in the instance data), else from the start's data (removed from it)
        applicant = known.applicant if known is not None and known.applicant is not None else \
            ctx.data.pop("applicant", None)
        if not isinstance(applicant, Mapping):
            raise UsageError("recruitment instances start through Recruitment.apply (no applicant data)")
        row = {**dict(applicant), "instance_id": ctx.instance.id, "applied_at": moment,
               "consent_at": moment if applicant.get("consent") else None, **values}
        behind = False
        if known is not None and known.applicant is not None and known.absent is not None and known.absent():
            # no row has its id (read in this transaction, no candidate written since): the INSERT cannot fail, so it
            # may wait to go with the day's others in one executemany (dropped if this start rolls back)
            port = candidate_store(ctx.tx)
            behind = port is not None and port.insert_behind(row)
        if not behind:
            rows.insert(row)
        if known is not None:
            known.candidate, known.confirmed = row, True
        return
    # the facts a move's condition read (Recruitment.move's system data) were decided on and are kept in the move's
    # history row; they are not kept in the instance data, where a later fire outside the service (which passes
    # none) would find them stale: missing there, its condition is unknown and refuses
    for root in ("vacancy", "candidate"):
        if root in ctx.data:
            del ctx.data[root]
    if known is not None and known.candidate is not None and known.current is not None and known.current():
        # the row exists and is the instance's only one (read in this transaction, nothing changed it since): the
        # UPDATE is known to change exactly it, so it may wait to go with the day's others in one executemany
        port = candidate_store(ctx.tx)
        if port is not None and port.set_status_behind(ctx.instance.id, values):
            known.candidate, known.confirmed, known.behind = {**known.candidate, **values}, True, True
            return
    changed = rows.update({"instance_id": ctx.instance.id}, values)
    if not changed:
        # the candidate was erased (AVG: retention sweep, bulk delete), also between the caller's read and this
        # fire (on PostgreSQL this UPDATE waits for the erasure's DELETE, then matches nothing): the move is
        # refused and rolls back, so it cannot write its data (a note about the person) over the erased instance
        raise UsageError(f"no candidate for instance {ctx.instance.id!r} (erased): the move is refused")
    if known is not None and known.candidate is not None and changed == 1:
        known.candidate, known.confirmed = {**known.candidate, **values}, True


def on_apply(ctx: Any) -> None:
    """Run the workflow's on_apply actions, only for the start of an application."""
    if ctx.event != START_EVENT:
        return
    for item in ctx.params.get("actions", ()):
        spec = ctx.engine.registry.actions.get(item["action"])
        if spec is None:
            raise UsageError(f"action {item['action']!r} is not registered")
        spec.run(replace(ctx, params=dict(item.get("with") or {})))


def _candidate_and_vacancy(ctx: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    known = _known(ctx)
    if known is not None and known.confirmed and known.candidate is not None:
        candidate = known.candidate
        if known.vacancy.get("id") == candidate["vacancy_id"]:
            return candidate, known.vacancy
    else:
        candidate = ctx.tx.rows(candidates.name).first({"instance_id": ctx.instance.id})
    if candidate is None:
        raise UsageError(f"no candidate for instance {ctx.instance.id!r}")
    vacancy = ctx.tx.rows(vacancies.name).first({"id": candidate["vacancy_id"]})
    if vacancy is None:
        raise UsageError(f"no vacancy {candidate['vacancy_id']!r}")
    return candidate, vacancy


def send_mail(ctx: Any) -> None:
    """Mail the candidate: the template for ``purpose`` (vacancy, entity, default) or the named ``template``."""
    compiled = _compiled(ctx)
    settings = settings_of(compiled)
    candidate, vacancy = _candidate_and_vacancy(ctx)
    purpose = str(ctx.params.get("purpose", "general"))
    name = ctx.params.get("template") or resolve_template(compiled, settings, vacancy, purpose)
    if not name:
        ctx.audit("recruitment.mail_skipped", {"purpose": purpose, "reason": "no template for this purpose"})
        return
    mail_candidate(ctx.tx, compiled, settings, candidate, vacancy, str(name), ctx.now)


def send_questionnaire(ctx: Any) -> None:
    """step2HR: send the questionnaire about the competencies of the vacancy's function and department."""
    compiled = _compiled(ctx)
    settings = settings_of(compiled)
    candidate, vacancy = _candidate_and_vacancy(ctx)
    chosen = settings.questionnaire.for_vacancy(vacancy["function"], vacancy["department"])
    if not chosen:
        ctx.audit("recruitment.questionnaire_skipped",
                  {"reason": "no competencies with questions for this function/department"})
        return
    name = ctx.params.get("template") or resolve_template(compiled, settings, vacancy, "questionnaire")
    if not name:
        raise UsageError("no questionnaire template: set templates.questionnaire in the RecruitmentSettings")
    questions = [q for c in chosen for q in c.questions]
    ctx.tx.rows(questionnaires.name).insert({
        "id": uuid.uuid4().hex, "candidate_id": candidate["id"], "vacancy_id": vacancy["id"],
        "competencies": [c.name for c in chosen], "sent_at": utc_naive(ctx.now)})
    extra = {"questionnaire": {
        "competencies": ", ".join(c.label for c in chosen),
        "questions": [f"{i}. {q}" for i, q in enumerate(questions, 1)],
    }}
    mail_candidate(ctx.tx, compiled, settings, candidate, vacancy, str(name), ctx.now, extra)
