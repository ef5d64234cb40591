"""The tick's batch of starts (``regelwerk.scheduling.batch.StartBuffer``): starts kept as their shape write the rows
of the starts one at a time, in their order, on every store; a kept start read, changed or followed by a record is
turned into its records first."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _stores import STORES, store_urls
from regelwerk.actors import SYSTEM
from regelwerk.bundle import load_bundle
from regelwerk.compiler import CompiledBundle, compile_bundle
from regelwerk.errors import ConflictError, InvalidData
from regelwerk.permissions.policies import UnsafeAllowAll
from regelwerk.registry import Registry, load_registry
from regelwerk.runtime import Engine
from regelwerk.scheduling.batch import StartBuffer
from regelwerk.store.unit import UnitOfWork

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

FLOWS = {
    "nudge.yaml": """
        apiVersion: regelwerk/v1
        kind: Workflow
        metadata: {name: nudge}
        spec:
          data_schema: {type: object, properties: {n: {type: integer}}}
          states:
            - id: waiting
              initial: true
              after: [{duration: P1D, event: remind}, {duration: P2D, event: expire, data: {why: late}}]
            - {id: reminded}
            - {id: expired, final: true}
          transitions:
            - {id: remind, from: waiting, to: reminded, system_only: true}
            - {id: expire, from: [waiting, reminded], to: expired, system_only: true}
    """,
    "plain.yaml": """
        apiVersion: regelwerk/v1
        kind: Workflow
        metadata: {name: plain}
        spec:
          states:
            - {id: open, initial: true}
            - {id: done, final: true}
          transitions:
            - {id: finish, from: open, to: done, system_only: true}
    """,
    "stamped.yaml": """
        apiVersion: regelwerk/v1
        kind: Workflow
        metadata: {name: stamped}
        spec:
          states:
            - id: open
              initial: true
              on_enter: [{action: workflow.set, with: {field: opened_at, now: true}}]
              after: [{duration: PT1H, event: finish}]
            - {id: done, final: true}
          transitions:
            - {id: finish, from: open, to: done, system_only: true}
    """,
}

#: (workflow, data) of each start, in order: kept starts around one whose initial state runs an action (a tuple: JSON
#: that is not plain, frozen when kept)
STARTS = [("nudge", {"n": 1, "list": [{"a": None}, 2.5]}), ("plain", {"x": "y", "t": (1, "é")}), ("nudge", {"n": 2}),
          ("stamped", {"s": True}), ("plain", {}), ("nudge", {"n": 3})]


@pytest.fixture(scope="module")
def core() -> Registry:
    return load_registry(use_entry_points=False)


@pytest.fixture(scope="module")
def bundle(core: Registry, tmp_path_factory: pytest.TempPathFactory) -> CompiledBundle:
    folder = tmp_path_factory.mktemp("flows")
    for name, text in FLOWS.items():
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return compile_bundle(load_bundle(folder), core)


@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from store_urls(request, tmp_path, "starts")


def _engine(bundle: CompiledBundle, url: str, core: Registry) -> Engine:
    return Engine(bundle, store=url, registry=core, clock=lambda: NOW, permissions=UnsafeAllowAll())


def _start(runtime: Any, tx: Any, workflow: str, data: dict[str, Any], instance_id: str, post: list[Any],
           kept: bool = True) -> None:
    """One start as the tick's starter makes it: its definition row written once (the batch's first start)."""
    version = runtime._current(workflow)
    if kept:
        runtime._start_kept(tx, version, data, SYSTEM, instance_id, NOW, post)
    else:
        runtime._start_tx(tx, version, data, SYSTEM, instance_id, NOW, post)
    runtime._stored_versions.add((workflow, version.version))


def _rows(engine: Engine, instance_id: str) -> tuple[Any, list[Any], list[Any]]:
    """The instance (its id left out), its history and timers (their ids and instance's left out)."""
    with engine.store.read() as tx:
        record = tx.get(instance_id)
        assert record is not None
        return (replace(record, id=""), [replace(h, instance_id="", id=None) for h in tx.history(instance_id)],
                [replace(t, instance_id="", id=None) for t in tx.timers(instance_id)])


def _numbers(engine: Engine, prefix: str) -> list[int | None]:
    """The row numbers of the history rows and timers of the starts ``prefix0``, ``prefix1``... in their order."""
    with engine.store.read() as tx:
        numbers: list[int | None] = []
        for n in range(len(STARTS)):
            numbers += [h.id for h in tx.history(f"{prefix}{n}")]
        timers: list[int | None] = []
        for n in range(len(STARTS)):
            timers += [t.id for t in tx.timers(f"{prefix}{n}")]
        return numbers + timers


def test_kept_starts_write_the_rows_of_the_starts_one_at_a_time(bundle: CompiledBundle, url: str,
                                                                core: Registry) -> None:
    engine = _engine(bundle, url, core)
    runtime = engine.runtime
    try:
        with UnitOfWork(engine.store) as uow:  # one at a time, straight into the store's transaction
            for n, (workflow, data) in enumerate(STARTS):
                _start(runtime, uow.tx, workflow, dict(data), f"one{n}", uow.post, kept=False)
        with UnitOfWork(engine.store) as uow:  # the tick's batch
            buffer = StartBuffer(uow.tx)
            for n, (workflow, data) in enumerate(STARTS):
                _start(runtime, buffer, workflow, dict(data), f"kept{n}", uow.post)
            buffer.flush()
        for n in range(len(STARTS)):
            assert _rows(engine, f"kept{n}") == _rows(engine, f"one{n}")
        nudge = _rows(engine, "kept0")
        assert [(t.event, t.due_at, dict(t.data)) for t in nudge[2]] == [
            ("remind", NOW + timedelta(days=1), {}), ("expire", NOW + timedelta(days=2), {"why": "late"})]
        assert nudge[0].timers_pending and not _rows(engine, "kept1")[0].timers_pending
        assert _rows(engine, "kept3")[0].data["opened_at"] == NOW.isoformat()  # its action ran
        numbers = _numbers(engine, "kept")
        assert None in numbers or (numbers[:len(STARTS)] == sorted(numbers[:len(STARTS)])
                                   and numbers[len(STARTS):] == sorted(numbers[len(STARTS):]))
    finally:
        engine.close()


class _PortOnly:
    """A store transaction with the store port's methods only (no ``insert_starts``): a host's own store."""

    def __init__(self, tx: Any) -> None:
        self._tx = tx
        self.calls: list[str] = []

    def insert_many(self, records: Any, history: Any = (), timers: Any = ()) -> None:
        self.calls.append("insert_many")
        self._tx.insert_many(records, history, timers)

    def __getattr__(self, name: str) -> Any:
        if name == "insert_starts":
            raise AttributeError(name)
        return getattr(self._tx, name)


def test_a_store_without_insert_starts_gets_the_kept_starts_records(bundle: CompiledBundle, url: str,
                                                                    core: Registry) -> None:
    engine = _engine(bundle, url, core)
    runtime = engine.runtime
    try:
        with UnitOfWork(engine.store) as uow:
            for n, (workflow, data) in enumerate(STARTS):
                _start(runtime, uow.tx, workflow, dict(data), f"one{n}", uow.post, kept=False)
        with UnitOfWork(engine.store) as uow:
            port = _PortOnly(uow.tx)
            buffer = StartBuffer(port)
            for n, (workflow, data) in enumerate(STARTS):
                _start(runtime, buffer, workflow, dict(data), f"kept{n}", uow.post)
            buffer.flush()
            assert port.calls == ["insert_many", "insert_many"]  # what came before 'stamped', then the rest
        for n in range(len(STARTS)):
            assert _rows(engine, f"kept{n}") == _rows(engine, f"one{n}")
    finally:
        engine.close()


def test_a_kept_start_read_or_changed_is_its_record(bundle: CompiledBundle, url: str, core: Registry) -> None:
    engine = _engine(bundle, url, core)
    runtime = engine.runtime
    try:
        with UnitOfWork(engine.store) as uow:
            buffer = StartBuffer(uow.tx)
            _start(runtime, buffer, "nudge", {"n": 1}, "k1", uow.post)
            _start(runtime, buffer, "nudge", {"n": 2}, "k2", uow.post)
            with pytest.raises(ConflictError):  # kept already: as insert refuses an id the batch holds
                _start(runtime, buffer, "nudge", {"n": 3}, "k2", uow.post)
            with pytest.raises(InvalidData):  # the data is checked as for any start, nothing kept
                _start(runtime, buffer, "nudge", {"n": "three"}, "k3", uow.post)
            record = buffer.get("k1")
            assert record is not None and record.version == 1 and record.state == "waiting"
            assert record.data == {"n": 1} and record.timers_pending and record.created_by == SYSTEM.id
            with pytest.raises(TypeError):
                record.data["n"] = 5  # type: ignore[index]  # read-only, as every record's data
            buffer.update(replace(record, version=2, state="reminded"), 1, False)
            with pytest.raises(ConflictError):
                buffer.insert(replace(record, id="k2"))
            buffer.flush()
        with engine.store.read() as tx:
            first, second, third = tx.get("k1"), tx.get("k2"), tx.get("k3")
            assert first is not None and (first.version, first.state) == (2, "reminded")
            assert second is not None and (second.version, dict(second.data)) == (1, {"n": 2})
            assert third is None
            assert [h.event for h in tx.history("k1")] == ["$start"] and len(tx.timers("k2")) == 2
    finally:
        engine.close()


def _deep(levels: int) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for _ in range(levels):
        data = {"d": data}
    return data


@pytest.mark.parametrize("data", [{"n": float("nan")}, {"erased": True}, {"s": "lone \ud800"}, _deep(70),
                                  {"n": "not a number"}])
def test_a_kept_start_refuses_what_a_start_refuses(bundle: CompiledBundle, core: Registry,
                                                   data: dict[str, Any]) -> None:
    """The kept start's data check (``Version.checked_plain``) raises what a start one at a time raises."""
    engine = _engine(bundle, "memory://", core)
    runtime = engine.runtime
    try:
        with UnitOfWork(engine.store) as uow:
            with pytest.raises(InvalidData) as one:
                _start(runtime, uow.tx, "nudge", dict(data), "one", uow.post, kept=False)
            buffer = StartBuffer(uow.tx)
            with pytest.raises(InvalidData) as kept:
                _start(runtime, buffer, "nudge", dict(data), "kept", uow.post)
            buffer.flush()
        assert (str(kept.value), kept.value.pointer) == (str(one.value), one.value.pointer)
        with engine.store.read() as tx:
            assert tx.instances() == []
    finally:
        engine.close()
