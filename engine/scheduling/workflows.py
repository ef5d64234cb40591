"""The bridge from due items to the workflow runtime (``regelwerk.runtime.Engine``).

A due item with a workflow starts one instance, **inside the tick's transaction** (the store's
unit of work; the tick's own statements run on its ``connection``), so the item's status and
the new instance commit together or not at all. The instance id is derived from the item key
(``sched-<sha256[:32]>``), so even a retried start cannot create a second instance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from regelwerk.actors import SYSTEM

__all__ = ["TxUnit", "engine_starter", "instance_id_for", "unit_of_work"]


def instance_id_for(key: str) -> str:
    """The deterministic workflow instance id of a scheduled item."""
    return "sched-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


class TxUnit:
    """A transaction of the tick: the SQLAlchemy ``connection`` plus (when any) the store's tx handle."""

    def __init__(self, connection: Any, store_tx: Any = None) -> None:
        self.connection = connection
        self.store_tx = store_tx
        self.after_commit: list[Callable[[], None]] = []


@contextmanager
def unit_of_work(sa_engine: Any, workflow_engine: Any = None) -> Iterator[TxUnit]:
    """One transaction: the workflow store's unit of work when there is an engine, else the SQLAlchemy engine's."""
    if workflow_engine is not None:
        with workflow_engine.store.transaction() as tx:
            unit = TxUnit(tx.connection, tx)
            yield unit
        for callback in unit.after_commit:
            callback()
        return
    with sa_engine.begin() as conn:
        yield TxUnit(conn)


def engine_starter(workflow_engine: Any) -> Callable[[TxUnit, Mapping[str, Any], datetime], str]:
    """A starter that starts the item's workflow through ``workflow_engine`` in the tick's transaction.

    Uses ``Engine.start_in(tx, workflow, data, actor, instance_id, now)`` when the runtime offers
    it; otherwise the runtime's internal ``_current``/``_start_tx`` pair (the same code ``start``
    runs, minus opening its own transaction).
    """

    def start(unit: TxUnit, item: Mapping[str, Any], now: datetime) -> str:
        import json

        data = dict(json.loads(item["payload"] or "{}"))
        data["scheduled_item"] = item["key"]
        instance_id = instance_id_for(str(item["key"]))
        tx = unit.store_tx
        if tx is None:
            raise RuntimeError("starting a workflow needs the workflow store's transaction")
        if tx.get(instance_id) is not None:
            return instance_id  # started before a crash or by another ticker: never twice
        start_in = getattr(workflow_engine, "start_in", None)
        if start_in is not None:
            start_in(tx, item["workflow"], data, SYSTEM, instance_id, now)
            return instance_id
        runtime = workflow_engine._current(item["workflow"])
        post: list[Callable[[], None]] = []
        workflow_engine._start_tx(tx, runtime, data, SYSTEM, instance_id, now, post)
        unit.after_commit.extend(post)
        return instance_id

    return start
