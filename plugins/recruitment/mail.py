"""Which template a vacancy uses (vacancy, else nearest entity, else default) and the values it is filled with."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from regelwerk.errors import UsageError
from regelwerk.outbox.queue import to_utc
from regelwerk_packs.recruitment.model import OrganisationStructure, RecruitmentSettings

__all__ = ["candidate_values", "resolve_template", "resolve_workflow", "settings_of"]


def settings_of(compiled: Any, name: str | None = None) -> RecruitmentSettings:
    """The bundle's RecruitmentSettings (``name``, else ``default``, else the only one)."""
    found: dict[str, RecruitmentSettings] = compiled.of_kind("RecruitmentSettings")
    if name is not None:
        return compiled.get("RecruitmentSettings", name)  # type: ignore[no-any-return]
    if "default" in found:
        return found["default"]
    if len(found) == 1:
        return next(iter(found.values()))
    raise UsageError("the bundle needs one RecruitmentSettings document (or one named 'default')",
                     hint="the standard bundle ships definitions/standard/recruitment/settings.yaml")


def _organisation(compiled: Any, settings: RecruitmentSettings) -> OrganisationStructure | None:
    return compiled.get("OrganisationStructure", settings.organisation) if settings.organisation else None


def resolve_template(compiled: Any, settings: RecruitmentSettings, vacancy: Mapping[str, Any],
                     purpose: str) -> str | None:
    """The template for ``purpose``: the vacancy's own, else the nearest entity's, else the default."""
    own = (vacancy.get("templates") or {}).get(purpose)
    if own:
        return str(own)
    organisation = _organisation(compiled, settings)
    if organisation is not None and vacancy.get("entity"):
        for entity in organisation.path_up(str(vacancy["entity"])):
            if purpose in entity.templates:
                return entity.templates[purpose]
    return settings.templates.get(purpose)


def resolve_workflow(compiled: Any, settings: RecruitmentSettings, entity: str | None, chosen: str | None) -> str:
    """The RecruitmentWorkflow of a new vacancy: chosen, else the nearest entity's, else the default."""
    if chosen:
        compiled.get("RecruitmentWorkflow", chosen)
        return chosen
    organisation = _organisation(compiled, settings)
    if organisation is not None and entity:
        for item in organisation.path_up(entity):
            if item.workflow:
                return item.workflow
    return settings.workflow


def _date(value: Any) -> Any:
    if isinstance(value, datetime):
        return (to_utc(value) or value).date()
    return value


def candidate_values(compiled: Any, settings: RecruitmentSettings, candidate: Mapping[str, Any],
                     vacancy: Mapping[str, Any], status_label: str) -> dict[str, Any]:
    """The values of the ``candidate_mail`` context (see kinds.PROVIDED_FIELDS)."""
    entity_label = None
    organisation = _organisation(compiled, settings)
    if organisation is not None and vacancy.get("entity"):
        entity_label = organisation.entity(str(vacancy["entity"])).label
    return {
        "candidate": {
            "first_name": candidate["first_name"], "last_name": candidate["last_name"],
            "full_name": f"{candidate['first_name']} {candidate['last_name']}".strip(),
            "email": candidate["email"], "phone": candidate.get("phone"), "status": status_label,
            "applied_on": _date(candidate["applied_at"]),
        },
        "vacancy": {
            "title": vacancy["title"], "function": vacancy["function"], "department": vacancy["department"],
            "manager": vacancy["manager"], "deadline": vacancy.get("deadline"), "reference": vacancy["id"],
        },
        "entity": {"label": entity_label},
        "company": {"name": settings.company.get("name"), "website": settings.company.get("website"),
                    "phone": settings.company.get("phone")},
        "sender": {"name": settings.sender_name, "email": settings.sender_address,
                   "signature": settings.signature},
    }
