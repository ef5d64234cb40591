"""An AVG erasure against decisions made on a read from before it: none of them writes the erased data back.

``StoreTx.erase_personal_data`` moves each erased instance's version on and records itself as a ``$erase`` history
row; an erased instance takes no more events. The cases: a record the runtime cached before the erasure (on every
store), a caller holding the old version, the runtime's cache itself, and (PostgreSQL, whose reads take no lock)
a fire whose unit read the instance before the erasure committed and claims it after.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _stores import STORES, Clock, compile_texts, store_urls
from regelwerk.actors import SYSTEM
from regelwerk.errors import ConflictError, TransitionNotAllowed

_DOSSIER = {
    "dossier.yaml": """\
        apiVersion: regelwerk/v1
        kind: Workflow
        metadata: {name: dossier}
        spec:
          resource_type: dossier
          data_schema:
            type: object
            required: [name]
            properties:
              name: {type: string, minLength: 1}
              note: {type: string}
          states:
            - {id: open, initial: true, after: [{duration: P30D, event: expire}]}
            - {id: closed, final: true}
          transitions:
            - {id: annotate, from: open, to: open, permission: dossier.annotate}
            - {id: close, from: open, to: closed, permission: dossier.close}
            - {id: expire, from: open, to: closed, system_only: true}
        """,
}

ANNA = "Anna Jansen"


@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from store_urls(request, tmp_path, "erasure")


def _engine(url: str, folder: Path, permissions: Any = None) -> Any:
    from regelwerk.permissions.policies import UnsafeAllowAll
    from regelwerk.registry import load_registry
    from regelwerk.runtime import Engine

    registry = load_registry(use_entry_points=False)
    return Engine(compile_texts(folder, _DOSSIER, registry), store=url, registry=registry,
                  permissions=permissions if permissions is not None else UnsafeAllowAll(), clock=Clock())


def _erase(engine: Any, *ids: str) -> None:
    with engine.store.transaction() as tx:
        tx.erase_personal_data(list(ids), actor="hr-ops", at=engine.clock() + timedelta(days=1), reason="request")


def _assert_erased(engine: Any, instance_id: str, version: int) -> None:
    rec = engine.get(instance_id)
    assert dict(rec.data) == {"erased": True} and rec.version == version and rec.state == "open"
    history = engine.history(instance_id)
    assert history[-1].event == "$erase" and history[-1].version == version  # nothing written after it
    assert ANNA not in repr([h.to_dict() for h in history])


def test_a_fire_decided_on_a_record_cached_before_the_erasure_writes_nothing_back(url: str, tmp_path: Path) -> None:
    """The runtime cached the instance (its start) before the erasure; a fire decided on that record fails its
    claim (the version moved on), is decided again on the erased record and refused: the name stays erased."""
    engine = _engine(url, tmp_path)
    try:
        started = engine.start("dossier", {"name": ANNA}, "hr", "d1")
        _erase(engine, "d1")
        # another process's cache, or one filled between the erasure's write and its commit: as it was before
        engine.runtime._cache["d1"] = started
        with pytest.raises(TransitionNotAllowed, match="erased"):
            engine.fire("d1", "annotate", "hr", {"note": "gesprek gehad"})
        _assert_erased(engine, "d1", 2)
        assert "d1" not in engine.runtime._cache
    finally:
        engine.close()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_another_process_erases_while_this_one_holds_the_record(backend: str, request: pytest.FixtureRequest,
                                                               tmp_path: Path) -> None:
    """Two engines (two processes' worth: a store each) on one database. The first cached the instance; the second
    erases it, which the first's cache is not told of. The first's next fire on its cached record fails its claim,
    is refused on the erased record, and drops the stale record."""
    url = (f"sqlite:///{tmp_path / 'two.sqlite'}" if backend == "sqlite"
           else str(request.getfixturevalue("pg_url")))
    holder_dir, eraser_dir = tmp_path / "holder", tmp_path / "eraser"
    holder_dir.mkdir()
    eraser_dir.mkdir()
    holder = _engine(url, holder_dir)
    eraser = _engine(url, eraser_dir)
    try:
        holder.start("dossier", {"name": ANNA}, "hr", "d1")
        assert "d1" in holder.runtime._cache
        _erase(eraser, "d1")
        assert "d1" in holder.runtime._cache  # another process's memory: not reached
        with pytest.raises(TransitionNotAllowed, match="erased"):
            holder.fire("d1", "annotate", "hr", {"note": "gesprek gehad"})
        assert "d1" not in holder.runtime._cache
        _assert_erased(holder, "d1", 2)
    finally:
        holder.close()
        eraser.close()


def test_a_caller_holding_the_version_from_before_the_erasure_gets_a_conflict(url: str, tmp_path: Path) -> None:
    engine = _engine(url, tmp_path)
    try:
        seen = engine.start("dossier", {"name": ANNA}, "hr", "d1").version
        _erase(engine, "d1")
        with pytest.raises(ConflictError) as caught:
            engine.fire("d1", "close", "hr", {"name": ANNA}, expected_version=seen)
        assert (caught.value.expected_version, caught.value.current_version) == (1, 2)
        _assert_erased(engine, "d1", 2)
    finally:
        engine.close()


def test_the_erasure_drops_the_runtimes_cached_records(url: str, tmp_path: Path) -> None:
    """The runtime keeps no copy of an erased instance's personal data in memory (whoever erased it)."""
    engine = _engine(url, tmp_path)
    try:
        engine.start("dossier", {"name": ANNA}, "hr", "d1")
        engine.start("dossier", {"name": "Bob"}, "hr", "d2")
        assert {"d1", "d2"} <= set(engine.runtime._cache)
        _erase(engine, "d1")
        assert "d1" not in engine.runtime._cache and "d2" in engine.runtime._cache
    finally:
        engine.close()


def test_an_erased_instance_takes_no_more_events(url: str, tmp_path: Path) -> None:
    """Whoever fires (a person, the system, with or without data): refused, nothing written; explain and the
    available events say why. Its data is not checked against the data_schema (the erasure is no transition)."""
    engine = _engine(url, tmp_path)
    try:
        engine.start("dossier", {"name": ANNA}, "hr", "d1")
        _erase(engine, "d1")
        for event, data in (("close", None), ("annotate", {"note": "x"}), ("annotate", {"name": "Anna"})):
            with pytest.raises(TransitionNotAllowed, match="erased"):
                engine.fire("d1", event, "hr", data)
        with pytest.raises(TransitionNotAllowed, match="erased"):
            engine.runtime._fire_one("d1", "expire", SYSTEM, None, None, False)  # as a timer fires
        explained = engine.explain("d1", "close", "hr")
        assert explained["allowed"] is False and "erased" in explained["reasons"][0]
        assert all(not option.allowed for option in engine.available_events("d1", "hr"))
        assert engine.timers("d1") == []  # the erasure dropped its timers: nothing fires it later
        _assert_erased(engine, "d1", 2)
    finally:
        engine.close()


class _HoldingPolicy:
    """Allows everything; the first decision about ``d1`` waits (after the fire's unit read the instance)."""

    name = "holding"

    def __init__(self) -> None:
        from regelwerk.permissions.policies import UnsafeAllowAll

        self._allow = UnsafeAllowAll()
        self.reached = threading.Event()
        self.go = threading.Event()

    def check(self, actor: Any, action: str, resource_type: str, resource: Mapping[str, Any],
              context: Mapping[str, Any]) -> Any:
        if resource.get("id") == "d1" and not self.reached.is_set():
            self.reached.set()
            assert self.go.wait(30)
        return self._allow.check(actor, action, resource_type, resource, context)


@pytest.mark.postgres
def test_a_fire_that_read_before_the_erasure_committed_writes_nothing_back(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL (READ COMMITTED: the fire's read takes no lock): a fire reads the instance and decides; the
    erasure commits in between; the fire's claim finds the version moved on, the fire is decided again on the
    erased record and refused. Before, the claim passed and wrote the name back into the instance and history."""
    policy = _HoldingPolicy()
    engine = _engine(pg_url, tmp_path, policy)
    try:
        policy.reached.set()  # the start is not held
        engine.start("dossier", {"name": ANNA}, "hr", "d1")
        policy.reached.clear()
        engine.runtime._cache.clear()  # the fire reads the row in its own unit
        outcome: list[BaseException | None] = []

        def fire() -> None:
            try:
                engine.fire("d1", "annotate", "hr", {"note": "gesprek gehad"})
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                outcome.append(exc)

        thread = threading.Thread(target=fire)
        thread.start()
        assert policy.reached.wait(30)  # the fire's unit has read the instance (version 1) and is deciding
        _erase(engine, "d1")  # committed while the fire's unit is open
        policy.go.set()
        thread.join(60)
        assert not thread.is_alive()
        [error] = outcome
        assert isinstance(error, TransitionNotAllowed) and "erased" in str(error), error
        _assert_erased(engine, "d1", 2)
    finally:
        policy.go.set()
        engine.close()


def test_an_erased_instance_migrates_without_its_data_checked_and_without_timers(tmp_path: Path) -> None:
    """A new definition version: the erased instance moves to it (its data is checked against no schema, so it is
    not blocked forever) and gets no timers of its state (it takes no events)."""
    from regelwerk.permissions.policies import UnsafeAllowAll
    from regelwerk.registry import load_registry
    from regelwerk.runtime import Engine

    url = f"sqlite:///{tmp_path / 'migrate.sqlite'}"
    first = tmp_path / "v1"
    first.mkdir()
    engine = _engine(url, first)
    engine.start("dossier", {"name": ANNA}, "hr", "d1")
    _erase(engine, "d1")
    engine.close()
    second = tmp_path / "v2"
    second.mkdir()
    registry = load_registry(use_entry_points=False)
    extra = "note: {type: string}\n              ref: {type: string}"
    changed = {"dossier.yaml": _DOSSIER["dossier.yaml"].replace("note: {type: string}", extra)}
    engine = Engine(compile_texts(second, changed, registry), store=url, registry=registry,
                    permissions=UnsafeAllowAll(), clock=Clock())
    try:
        [item] = engine.migrate_apply("dossier")
        assert item.applied and not item.problems
        rec = engine.get("d1")
        assert dict(rec.data) == {"erased": True} and rec.version == 3 and not rec.timers_pending
        assert [t.status for t in engine.timers("d1")] == []
    finally:
        engine.close()


def test_a_store_that_cannot_be_watched_still_works() -> None:
    """A host's store that is unhashable (a dataclass with ``eq``) or takes no weak reference: the runtime does not
    watch it (its version check still refuses a stale decision) and an erasure on it tells nobody, without error."""
    from dataclasses import dataclass

    from regelwerk.store.unit import erased, watch_erasures

    @dataclass
    class Unhashable:
        url: str = "host://"

    class Slotted:
        __slots__ = ("url",)

    class Runtime:
        def __init__(self) -> None:
            self.forgotten: list[list[str]] = []

        def forget(self, ids: Any) -> None:
            self.forgotten.append(list(ids))

    runtime = Runtime()
    for store in (Unhashable(), Slotted()):
        watch_erasures(store, runtime.forget)
        erased(store, ["d1"])
    assert runtime.forgotten == []


_OPEN = {
    "note.yaml": """\
        apiVersion: regelwerk/v1
        kind: Workflow
        metadata: {name: note}
        spec:
          states:
            - {id: open, initial: true}
            - {id: done, final: true}
          transitions:
            - {id: annotate, from: open, to: open, permission: note.annotate}
            - {id: finish, from: open, to: done, permission: note.finish}
        """,
}


def test_data_equal_to_the_erasure_marker_is_refused_never_taken_for_an_erasure(url: str, tmp_path: Path) -> None:
    """``{"erased": true}`` is what an erasure leaves, and an instance with it takes no more events: a start, a
    payload or an action that would make an instance's data exactly that is ``InvalidData`` (before, a payload
    of ``{"erased": true}`` on an instance with empty data stopped it for good), and the store is as it was."""
    from regelwerk.errors import InvalidData
    from regelwerk.permissions.policies import UnsafeAllowAll
    from regelwerk.registry import load_registry
    from regelwerk.runtime import Engine

    registry = load_registry(use_entry_points=False)
    engine = Engine(compile_texts(tmp_path, _OPEN, registry), store=url, registry=registry,
                    permissions=UnsafeAllowAll(), clock=Clock())
    try:
        with pytest.raises(InvalidData, match="erasure"):
            engine.start("note", {"erased": True}, SYSTEM)
        with engine.store.read() as tx:
            assert tx.instances("note") == []
        empty = engine.start("note", {}, SYSTEM)
        with pytest.raises(InvalidData, match="erasure"):
            engine.fire(empty.id, "annotate", SYSTEM, {"erased": True})
        rec = engine.get(empty.id)
        assert dict(rec.data) == {} and rec.version == 1 and len(engine.history(empty.id)) == 1
        # the instance is not stopped: it still takes events
        assert engine.fire(empty.id, "annotate", SYSTEM, {"erased": True, "why": "a field of its own"}).version == 2
        assert engine.fire(empty.id, "finish", SYSTEM).state == "done"
    finally:
        engine.close()
