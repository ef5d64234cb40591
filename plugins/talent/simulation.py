"""The talent pack's part of ``regelwerk simulate`` (docs/simulation.md): the summary's trajectories,
conversation moments (per label and per status) and feedback requests, counted in the store, and how the
timeline names the pack's item types. Registered with ``SimulationPartSpec`` like any plugin's part.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Mapping
from typing import Any

from regelwerk.registry import Registry, SimulationPartSpec

__all__ = ["ITEM_WORDS", "lines", "moment_labels", "register", "summary"]

#: How the timeline names the pack's item types: ``created 3 conversation moments``.
ITEM_WORDS: Mapping[str, tuple[str, str]] = {
    "trajectory": ("trajectory", "trajectories"),
    "moment": ("conversation moment", "conversation moments"),
    "feedback_request": ("feedback request", "feedback requests"),
}


def summary(sim: Any) -> dict[str, Any]:
    """``trajectories``, ``feedback_requests`` and ``moments`` (total, by label, by status) in the store."""
    import sqlalchemy as sa
    from regelwerk.scheduling.tables import scheduled_items
    from regelwerk.scheduling.tick import activated_label

    by_type: Counter[str] = Counter()
    by_status: Counter[str] = Counter()
    moments = scheduled_items.c.item_type == "moment"
    payload, status_column = scheduled_items.c.payload, scheduled_items.c.status
    with sim.sa.connect() as conn:
        per_type = dict(conn.execute(sa.select(scheduled_items.c.item_type, sa.func.count())
                                     .where(scheduled_items.c.item_type.in_(tuple(ITEM_WORDS)))
                                     .group_by(scheduled_items.c.item_type)).all())
        # each payload's label taken out by the database and counted per (label, status): no payload fetched;
        # what it cannot read as JSON is read and labelled here
        counted, rest = moment_labels(conn, payload, status_column, moments)
        for label, status, n in counted:
            by_type[str(label or "moment")] += n  # activated_label's choice
            by_status[status] += n
        for payload_text, status in (conn.execute(sa.select(payload, status_column).where(rest))
                                     if rest is not None else ()):
            by_type[activated_label("moment", payload_text)[1] or "moment"] += 1
            by_status[status] += 1
    return {"trajectories": int(per_type.get("trajectory", 0)),
            "feedback_requests": int(per_type.get("feedback_request", 0)),
            "moments": {"total": int(per_type.get("moment", 0)), "by_type": dict(sorted(by_type.items())),
                        "by_status": dict(sorted(by_status.items()))}}


def moment_labels(conn: Any, payload: Any, status: Any, moments: Any) -> tuple[list[Any], Any]:
    """``(label, status, count)`` per pair (the label as its JSON value, None when absent), counted by the
    database, and the condition of the moments it could not read (None: none left; their payloads are read
    and labelled by ``activated_label``).

    SQLite 3.38+: ``payload -> '$.label'`` (the value as JSON text) of the valid payloads (``json_valid``
    first, in a CASE, which evaluates in order); PostgreSQL: ``payload::json -> 'label'`` for all of them, and
    when one payload is not JSON the query fails (inside a savepoint) and every payload is read as before. The
    label is the one ``activated_label`` gives (a test compares them on odd payloads) but for a JSON object
    that repeats ``label`` on SQLite, which takes the first where Python and PostgreSQL take the last: the
    scheduler writes payloads with ``json.dumps``, which never repeats a key. Other databases: every payload
    is read.
    """
    import sqlalchemy as sa

    dialect = conn.dialect.name
    if dialect == "sqlite" and sqlite3.sqlite_version_info >= (3, 38):
        valid = sa.func.coalesce(sa.func.json_valid(payload), 0) == 1
        label = sa.case((valid, payload.op("->")(sa.literal("$.label"))), else_=None)
        # counted here, not by GROUP BY: SQLite sorts for it, in memory (temp_store=MEMORY), 16 MB at 100,000
        counts: Counter[tuple[str | None, str]] = Counter(conn.execute(sa.select(label, status).where(moments, valid)))
        return ([(json.loads(text) if text is not None else None, state, n) for (text, state), n in counts.items()],
                sa.and_(moments, sa.not_(valid)))
    if dialect == "postgresql":
        document = sa.cast(payload, sa.JSON)
        value = sa.cast(document.op("->")(sa.literal_column("'label'")), sa.Text)
        try:
            with conn.begin_nested():
                rows = conn.execute(sa.select(value, status, sa.func.count()).where(moments)
                                    .group_by(value, status)).all()
        except sa.exc.DBAPIError:  # a payload that is not JSON: read them all
            return [], moments
        return [(json.loads(a) if a is not None else None, state, n) for a, state, n in rows], None
    return [], moments


def lines(s: Mapping[str, Any]) -> list[str]:
    """``trajectories: N``, ``conversation moments: N (per label), by status: ...``, ``feedback requests: N``."""
    moments = s["moments"]
    return [f"  trajectories: {s['trajectories']}",
            f"  conversation moments: {moments['total']}"
            + (" (" + ", ".join(f"{k} {v}" for k, v in moments["by_type"].items()) + ")" if moments["by_type"]
               else "")
            + (", by status: " + ", ".join(f"{k} {v}" for k, v in moments["by_status"].items())
               if moments["by_status"] else ""),
            f"  feedback requests: {s['feedback_requests']}"]


def register(registry: Registry, plugin: str) -> None:
    """The summary section (before the other packs' sections) and the item types' words."""
    registry.add_simulation_part(SimulationPartSpec(
        "talent", plugin, summary=summary, lines=lines, order=100, item_words=ITEM_WORDS, labelled=("moment",),
        description="trajectories, conversation moments (per label and status) and feedback requests"))
