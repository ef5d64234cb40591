"""The bridge from due items to the workflow runtime (``regelwerk.runtime.Engine``).

A due item with a workflow starts one instance, **inside the tick's transaction** (the store's
unit of work; the tick's own statements run on its ``connection``), so the item's status and
the new instance commit together or not at all. The instance id is derived from the item key
(``sched-<sha256[:32]>``), so even a retried start cannot create a second instance. That prefix is the
engine's: a start that names its own id may not use it (``WorkflowRuntime.start``), and an instance found under an
item's id that is not that item's (another workflow, or no ``scheduled_item`` of its key) is not taken for it: the
start fails with ``IdInUse``, the item's incident.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any

from regelwerk.actors import SYSTEM
from regelwerk.errors import IdInUse
from regelwerk.limits import critical
from regelwerk.store import json_codec
from regelwerk.workflows.runtime import ENGINE_ID_PREFIX

__all__ = ["EngineStarter", "TxUnit", "engine_starter", "instance_id_for", "unit_of_work"]


@lru_cache(maxsize=1024)
def instance_id_for(key: str) -> str:
    """The deterministic workflow instance id of a scheduled item (a pure function of the key: kept for the keys of
    the last batches, which ask it three times per started item: its status, the existence query, the start)."""
    return ENGINE_ID_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


class TxUnit:
    """A transaction of the tick: the SQLAlchemy ``connection`` plus (when any) the store's tx handle."""

    def __init__(self, connection: Any, store_tx: Any = None) -> None:
        self.connection = connection
        self.store_tx = store_tx
        self.after_commit: list[Callable[[], None]] = []
        self.on_rollback: list[Callable[[], None]] = []
        #: set by a starter's ``prepare`` for a batch: the write-behind transaction and the ids that exist
        self.buffer: Any = None
        self.existing: set[str] | None = None


@contextmanager
@critical  # opening, committing and the after-commit work: finished once begun (not the body)
def unit_of_work(sa_engine: Any, workflow_engine: Any = None) -> Iterator[TxUnit]:
    """One transaction: the workflow store's unit of work when there is an engine, else the SQLAlchemy engine's."""
    if workflow_engine is not None:
        from regelwerk.store.unit import UnitOfWork

        unit = TxUnit(None)
        try:
            with UnitOfWork(workflow_engine.store) as uow:  # the runtime's unit: refusals audited once, in it
                unit.connection, unit.store_tx = uow.tx.connection, uow.tx
                yield unit
        except BaseException:
            for undo in unit.on_rollback:
                undo()
            raise
        from regelwerk.store.unit import run_after_commit

        runtime = getattr(workflow_engine, "runtime", workflow_engine)  # the Engine front's workflow runtime
        run_after_commit(unit.after_commit, getattr(runtime, "post_failed", None))
        return
    with sa_engine.begin() as conn:
        yield TxUnit(conn)


class EngineStarter:
    """Starts the due items' workflows through ``workflow_engine`` inside the tick's transaction.

    ``prepare(unit, items)`` before a batch asks once which instances exist and opens a
    :class:`~regelwerk.scheduling.batch.StartBuffer`; each call then runs the runtime's own start
    (``Engine.start_in(tx, ...)`` when the runtime offers it, else its ``_start_tx``) against that
    buffer; ``finish(unit)`` writes the batch's instances, history and timers with ``executemany``.
    Without ``prepare`` every call checks and writes on its own (one item at a time).
    """

    def __init__(self, workflow_engine: Any) -> None:
        self.workflow_engine = workflow_engine

    def prepare(self, unit: TxUnit, items: list[Mapping[str, Any]]) -> None:
        """Open the batch: one existence query, a write-behind transaction."""
        from regelwerk.scheduling.batch import StartBuffer, existing_ids

        if unit.store_tx is None:
            return
        unit.existing = existing_ids(unit.store_tx, [instance_id_for(str(i["key"])) for i in items])
        unit.buffer = StartBuffer(unit.store_tx)

    @staticmethod
    def finish(unit: TxUnit) -> None:
        """Write the batch (before the tick's own statements of the same transaction)."""
        if unit.buffer is not None:
            unit.buffer.flush()

    def __call__(self, unit: TxUnit, item: Mapping[str, Any], now: datetime) -> str:
        engine = self.workflow_engine
        data = json_codec.loads(item["payload"] or "{}")
        if type(data) is not dict:  # a new dict from the parse is the start's own; anything else as before
            data = dict(data)
        data["scheduled_item"] = item["key"]
        instance_id = instance_id_for(str(item["key"]))
        tx = unit.buffer if unit.buffer is not None else unit.store_tx
        if tx is None:
            raise RuntimeError("starting a workflow needs the workflow store's transaction")
        exists = instance_id in unit.existing if unit.existing is not None else tx.get(instance_id) is not None
        if exists:
            _own(tx, instance_id, item)  # started for this item before (never twice), or someone else's: refused
            return instance_id
        start_in = getattr(engine, "start_in", None)
        if start_in is not None:
            start_in(tx, item["workflow"], data, SYSTEM, instance_id, now)
            return instance_id
        runtime = engine._current(item["workflow"])
        post: list[Callable[[], None]] = []
        start_kept = getattr(engine, "_start_kept", None) if unit.buffer is not None else None
        if start_kept is not None:  # kept in the batch's buffer, its rows written column by column
            start_kept(tx, runtime, data, SYSTEM, instance_id, now, post)
        else:
            engine._start_tx(tx, runtime, data, SYSTEM, instance_id, now, post)
        stored = getattr(engine, "_stored_versions", None)
        key = (runtime.model.name, runtime.version)
        if isinstance(stored, set) and key not in stored:  # its definition row is written once per batch
            stored.add(key)
            unit.on_rollback.append(lambda: stored.discard(key))
        unit.after_commit.extend(post)
        return instance_id


def _own(tx: Any, instance_id: str, item: Mapping[str, Any]) -> None:
    """The instance under an item's id is that item's: its workflow, started for its key (``scheduled_item``);
    else ``IdInUse`` (the engine never takes another instance for the item's)."""
    record = tx.get(instance_id)
    if record is None:
        return  # gone since the existence query (erased): nothing to take
    if record.workflow != item["workflow"] or record.data.get("scheduled_item") != item["key"]:
        raise IdInUse(instance_id, record.workflow, f"the workflow of scheduled item {item['key']!r}")


def engine_starter(workflow_engine: Any) -> Callable[[TxUnit, Mapping[str, Any], datetime], str]:
    """A starter that starts the item's workflow through ``workflow_engine`` in the tick's transaction."""
    return EngineStarter(workflow_engine)
