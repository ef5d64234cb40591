"""Recruitment actions (run INSIDE the transition's transaction, see regelwerk.workflows.actions).

- ``recruitment.sync_status``: keeps ``rw_candidates`` in step with the workflow (added to every state by
  the compiler; on start it stores the applicant, whose data never stays in the instance data).
- ``recruitment.on_apply``: runs the workflow's ``on_apply`` actions, only when an application arrives.
- ``recruitment.send_mail``: ``{purpose: receipt}`` or ``{template: name}``: the vacancy's template for the
  purpose, else the nearest entity's, else the default; written to the outbox in the same transaction.
- ``recruitment.send_questionnaire``: step2HR's questionnaire about the competencies of the vacancy's
  function and department, from the talent pack's competency model (``TalentRole`` per function,
  ``TalentCompetencyProfile.departments``, ``TalentCompetency.questions``; see ``kinds.build_questionnaire``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from regelwerk.errors import UsageError
from regelwerk.outbox.queue import enqueue, utc_naive
from regelwerk_packs.recruitment.kinds import WORKFLOW_PREFIX
from regelwerk_packs.recruitment.mail import candidate_values, resolve_template, settings_of
from regelwerk_packs.recruitment.model import RecruitmentSettings, RecruitmentWorkflow
from regelwerk_packs.recruitment.tables import candidates, questionnaires, vacancies

__all__ = ["mail_candidate", "on_apply", "recruitment_workflow", "send_mail", "send_questionnaire", "sync_status"]

START_EVENT = "$start"


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
    if ctx.event == START_EVENT:
        applicant = ctx.data.pop("applicant", None)
        if not isinstance(applicant, Mapping):
            raise UsageError("recruitment instances start through Recruitment.apply (no applicant data)")
        rows.insert({**dict(applicant), "instance_id": ctx.instance.id, "applied_at": moment,
                     "consent_at": moment if applicant.get("consent") else None, **values})
        return
    rows.update({"instance_id": ctx.instance.id}, values)


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
