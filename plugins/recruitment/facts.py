"""The recruitment pack's fact types (``vacancy``, ``candidate``) and what its mail contexts can read.

The fact types are what a definition may read of a vacancy or a candidate: a RuleSet's declared
``context`` (``{vacancy: vacancy}``), a PermissionMatrix resource's ``fact: candidate``. A mail context
that recruitment fills (``candidate_mail``, ``consent_mail``, ``questionnaire_mail``) may declare only
the fields :func:`regelwerk_packs.recruitment.mail.candidate_values` provides: :data:`MAIL_SCOPES` is
that scope per context; a field outside it is RW410 with did-you-mean at the field's line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regelwerk.registry import FactSpec, Registry
from regelwerk_packs.recruitment.model import GROUPS

__all__ = ["CANDIDATE", "MAIL_SCOPES", "VACANCY", "mail_fields", "register_facts"]

_STR = {"type": "string"}
_DATE = {"type": "string", "format": "date"}
_TIME = {"type": "string", "format": "date-time"}

VACANCY: dict[str, Any] = {
    "type": "object", "description": "A vacancy (rw_vacancies).", "additionalProperties": False,
    "required": ["id", "title", "function", "department", "manager", "workflow", "team", "status", "opened_at"],
    "properties": {
        "id": {**_STR, "description": "The vacancy number."},
        "title": _STR, "function": _STR, "department": _STR,
        "manager": {**_STR, "description": "The responsible manager's user id."},
        "deadline": {**_DATE, "description": "Closing date for applications."},
        "entity": {**_STR, "description": "The entity of the OrganisationStructure it belongs to."},
        "workflow": {**_STR, "description": "Its RecruitmentWorkflow."},
        "team": {"type": "array", "items": _STR, "description": "Who sees and moves its candidates."},
        "status": {"type": "string", "enum": ["open", "closed"]},
        "opened_at": _TIME, "opened_by": _STR, "closed_at": _TIME, "closed_by": _STR,
    },
}

CANDIDATE: dict[str, Any] = {
    "type": "object", "description": "A candidate: one application to one vacancy (rw_candidates).",
    "additionalProperties": False,
    "required": ["id", "vacancy_id", "first_name", "last_name", "email", "status", "status_group", "archived",
                 "status_since", "applied_at", "consent", "source"],
    "properties": {
        "id": _STR, "vacancy_id": _STR, "first_name": _STR, "last_name": _STR, "email": _STR, "phone": _STR,
        "status": {**_STR, "description": "The status id (CandidateStatusSet)."},
        "status_group": {"type": "string", "enum": list(GROUPS)},
        "archived": {"type": "boolean", "description": "In an archive status."},
        "status_since": _TIME, "applied_at": _TIME,
        "consent": {"type": "boolean", "description": "Consented to longer storage (AVG)."},
        "consent_at": _TIME,
        "source": {"type": "string", "enum": ["web", "manual"]},
        "details": {"type": "object", "description": "The intake form's other answers (open)."},
    },
}


def _view(fact: Mapping[str, Any], fields: Mapping[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """A closed object of some fields of a fact type (types from the fact where it has them)."""
    props = {name: (dict(fact["properties"][name]) if override is None else override)
             for name, override in fields.items()}
    return {"type": "object", "additionalProperties": False, "properties": props,
            "required": [name for name in fields if name not in optional]}


_CANDIDATE_MAIL: dict[str, Any] = {
    "candidate": _view(CANDIDATE, {"first_name": None, "last_name": None,
                                   "full_name": {**_STR, "description": "first and last name"},
                                   "email": None, "phone": None,
                                   "status": {**_STR, "description": "the status label"},
                                   "applied_on": {**_DATE, "description": "the day of the application"}},
                       optional=("phone",)),
    "vacancy": _view(VACANCY, {"title": None, "function": None, "department": None, "manager": None,
                               "deadline": None, "reference": {**_STR, "description": "the vacancy number"}},
                     optional=("deadline",)),
    "entity": {"type": "object", "additionalProperties": False, "properties": {"label": _STR}},
    "company": {"type": "object", "additionalProperties": False, "required": ["name"],
                "properties": {"name": _STR, "website": _STR, "phone": _STR}},
    "sender": {"type": "object", "additionalProperties": False, "required": ["name", "email"],
               "properties": {"name": _STR, "email": _STR, "signature": _STR}},
}


def _scope(roots: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": ["candidate", "vacancy"],
            "properties": dict(roots)}


#: What each mail context recruitment fills can read (mail.candidate_values and the consent/questionnaire mails).
MAIL_SCOPES: Mapping[str, Mapping[str, Any]] = {
    "candidate_mail": _scope(_CANDIDATE_MAIL),
    "consent_mail": _scope({**_CANDIDATE_MAIL, "consent": {
        "type": "object", "additionalProperties": False, "required": ["given_on", "until"],
        "properties": {"given_on": _DATE, "until": _DATE}}}),
    "questionnaire_mail": _scope({**_CANDIDATE_MAIL, "questionnaire": {
        "type": "object", "additionalProperties": False, "required": ["competencies", "questions"],
        "properties": {"competencies": _STR, "questions": _STR}}}),
}


def mail_fields(context: str) -> frozenset[str]:
    """Every leaf path a mail context recruitment fills may declare (``candidate.first_name``...)."""
    scope = MAIL_SCOPES[context]
    return frozenset(f"{root}.{name}" for root, node in scope["properties"].items()
                     for name in node.get("properties", {}))


def register_facts(registry: Registry, plugin: str) -> None:
    """Add the ``vacancy`` and ``candidate`` fact types."""
    registry.add_fact(FactSpec("vacancy", plugin, VACANCY, "a vacancy of the recruitment pack"))
    registry.add_fact(FactSpec("candidate", plugin, CANDIDATE, "a candidate (one application) of the recruitment pack"))
