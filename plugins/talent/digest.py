"""The talent pack's digest source ``talent.conversations``: the development conversations due soon or overdue.

A ``Digest`` lists them per manager (docs/scheduling.md, "Digests"); the pack reads the cases, the digest keeps per
recipient those the permission policy lets them ``read`` (the conversation's workflow resource, decided on its
stored data as a fire is: a matrix granting ``read`` on ``talent-conversation`` with ``scope: direct_reports``
makes a manager's list his team's).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from regelwerk.conditions import parse_duration
from regelwerk.registry import DigestCase

__all__ = ["FIELDS", "PARAMS_SCHEMA", "conversations"]

FIELDS: dict[str, str] = {
    "employee": "the employee's id",
    "employee_name": "the employee's name (the employee directory's)",
    "moment": "the conversation moment's label (Doelstellingsgesprek)",
    "due_date": "the day the conversation is due",
    "overdue": "ja when the due day has passed",
}
PARAMS_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {"within": {"type": "string", "pattern": "^P(?:\\d+W|\\d+D)$",
                              "description": "List conversations due within this many days or weeks from the "
                                             "digest's day (P14D, default), and every overdue one."}},
}
_TZ = ZoneInfo("Europe/Amsterdam")


def _day(text: Any) -> date | None:
    try:
        return date.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def conversations(engine: Any, tx: Any, now: datetime, params: Mapping[str, Any]) -> Iterator[DigestCase]:
    """Every stored conversation moment of the bundle's development cycles that is open (its conversation not yet
    held, cancelled or signed off) and due by ``now`` + ``within``, or overdue; in due-date order."""
    import regelwerk.scheduling.tables  # noqa: F401  # declares rw_scheduled_items and rw_employees

    within = parse_duration(str(params.get("within", "P14D")))
    if within is None:  # the digest's compiler checked it against PARAMS_SCHEMA
        raise ValueError(f"talent.conversations: 'within' is not a duration: {params.get('within')!r}")
    today = now.astimezone(_TZ).date()
    horizon = today + within.day_delta()
    compiled = engine.bundle
    sources = {m.source_id for m in compiled.of_kind("DevelopmentCycle").values()}
    rows = [r for r in tx.rows("rw_scheduled_items").find({"item_type": "moment", "status": ["started", "ready"]},
                                                           order_by="key") if r["source"] in sources]
    found: list[tuple[date, str, DigestCase]] = []
    people: set[str] = set()
    workflows = engine.workflows()
    due_rows: list[tuple[Mapping[str, Any], Mapping[str, Any], date]] = []
    for row in rows:
        payload = json.loads(row["payload"]) if isinstance(row["payload"], str) else dict(row["payload"])
        due = _day(payload.get("due_date"))
        if due is not None and due <= horizon:
            due_rows.append((row, payload, due))
    started = [str(r["instance_id"]) for r, _, _ in due_rows if r["status"] == "started" and r["instance_id"]]
    instances: dict[str, Any] = {}
    for start in range(0, len(started), 500):  # one query per 500 conversations, not one each
        instances.update(tx.get_many(started[start:start + 500]))
    for row, payload, due in due_rows:
        workflow = workflows.get(row["workflow"]) if row["workflow"] else None
        resource_type = str(getattr(workflow, "resource_type", "") or row["workflow"] or "talent-conversation")
        if row["status"] == "started" and row["instance_id"]:
            instance = instances.get(str(row["instance_id"]))
            if instance is None or (workflow is not None and instance.state != workflow.initial):
                continue  # held, signed off or cancelled: nothing to do
            data = dict(instance.data)
            resource = {**data, "id": instance.id, "workflow": instance.workflow, "state": instance.state,
                        "data": data, "created_by": instance.created_by}
        else:  # ready: waits for a person to start it
            data = dict(payload)
            resource = {**data, "id": row["key"], "state": "ready", "data": data}
        employee = str(row["subject"])
        people.add(employee)
        values = {"employee": employee, "moment": str(payload.get("label") or payload.get("moment") or ""),
                  "due_date": due, "overdue": due < today}
        instance_id = str(row["instance_id"]) if row["status"] == "started" and row["instance_id"] else None
        found.append((due, row["key"], DigestCase(str(resource["id"]), resource_type, resource, values,
                                                  subject_ref=f"employee:{employee}", instance_id=instance_id)))
    names = {str(r["id"]): r.get("name") for r in tx.rows("rw_employees").find({"id": sorted(people)})} \
        if people else {}
    for _, _, case in sorted(found, key=lambda f: (f[0], f[1])):
        employee = str(case.values["employee"])
        yield DigestCase(case.id, case.resource_type, case.resource,
                         {**case.values, "employee_name": names.get(employee) or employee},
                         subject_ref=case.subject_ref, instance_id=case.instance_id)
