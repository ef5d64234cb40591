"""The recruitment pack's digest source ``recruitment.waiting_candidates``: candidates waiting in one status.

A ``Digest`` lists them per vacancy manager (docs/scheduling.md, "Digests"); the pack reads the cases, the digest
keeps per recipient those the permission policy lets them ``read`` as a ``candidate`` (with the vacancy's manager,
team and department on the resource: a matrix granting ``read`` on ``candidate`` where ``resource.manager eq
actor.id`` makes a manager's list his vacancies' candidates).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from regelwerk.registry import DigestCase

__all__ = ["FIELDS", "PARAMS_SCHEMA", "waiting_candidates"]

FIELDS: dict[str, str] = {
    "candidate": "the candidate's first and last name",
    "vacancy": "the vacancy's title",
    "status": "the status the candidate waits in (its label)",
    "since": "the day the candidate came into that status",
    "days": "how many days the candidate has waited",
}
PARAMS_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 365,
                            "description": "List candidates that have been in the same status for more than this "
                                           "many days (calendar days; default 5)."}},
}
_TZ = ZoneInfo("Europe/Amsterdam")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def waiting_candidates(engine: Any, tx: Any, now: datetime, params: Mapping[str, Any]) -> Iterator[DigestCase]:
    """Every active (not archived) candidate of an open vacancy whose status has not changed for more than
    ``days`` days at ``now``; longest waiting first."""
    import regelwerk_packs.recruitment.tables  # noqa: F401  # declares rw_candidates and rw_vacancies

    days = int(params.get("days", 5))
    cutoff = now - timedelta(days=days)
    labels: dict[str, str] = {}
    for status_set in engine.bundle.of_kind("CandidateStatusSet").values():
        labels.update({s.id: s.label for s in status_set.statuses})
    waiting = [c for c in tx.rows("rw_candidates").find({"archived": False}, order_by="status_since")
               if _aware(c["status_since"]) < cutoff]
    if not waiting:
        return
    vacancies = {v["id"]: v for v in tx.rows("rw_vacancies").find({"id": sorted({c["vacancy_id"] for c in waiting}),
                                                                   "status": "open"})}
    today = now.astimezone(_TZ).date()
    for row in waiting:
        vacancy = vacancies.get(row["vacancy_id"])
        if vacancy is None:
            continue
        since = _aware(row["status_since"]).astimezone(_TZ).date()
        resource = {"id": row["instance_id"], "candidate_id": row["id"], "vacancy_id": vacancy["id"],
                    "vacancy": vacancy["id"], "manager": vacancy["manager"], "team": list(vacancy["team"]),
                    "department": vacancy["department"], "status": row["status"],
                    "status_group": row["status_group"]}
        values = {"candidate": f"{row['first_name']} {row['last_name']}".strip(), "vacancy": vacancy["title"],
                  "status": labels.get(row["status"], row["status"]), "since": since,
                  "days": (today - since).days}
        yield DigestCase(str(row["id"]), "candidate", resource, values, subject_ref=f"candidate:{row['id']}",
                         instance_id=str(row["instance_id"]) if row["instance_id"] else None)
