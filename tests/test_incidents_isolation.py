"""What plugin code can do wrong, and what the runtime keeps safe, on the memory store, SQLite and PostgreSQL.

Found by attacking the runtime: an error message a store cannot write, an exception whose ``__str__`` raises,
a chained fire that fails after its fire committed, a tick task that raises a refusal, a batch fire whose
action raises, an action that changes nested data in place, and data that is not JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _stores import STORES, T0, Clock, compile_texts, store_urls
from regelwerk.compiler import CompiledBundle
from regelwerk.errors import ActionFailed, ConflictError, InvalidData, PluginError, UsageError
from regelwerk.permissions.policies import UnsafeAllowAll
from regelwerk.registry import ActionSpec, Registry
from regelwerk.runtime import Engine, RetryPolicy

ALLOW = UnsafeAllowAll()  # these tests are about failures, not permissions
#: instance id -> what the action does for it (raise, change data)
BEHAVIOUR: dict[str, Callable[[Any], None]] = {}

WORKFLOWS = {
    "reminder.yaml": """
        apiVersion: regelwerk/v1
        kind: Workflow
        metadata: {name: reminder}
        spec:
          states:
            - id: waiting
              initial: true
              after:
                - {duration: P1D, event: remind}
            - {id: reminded, on_enter: [iso.act]}
            - {id: elsewhere}
          transitions:
            - {id: remind, from: waiting, to: reminded}
            - {id: away, from: waiting, to: elsewhere}
    """,
    "chain.yaml": """
        apiVersion: regelwerk/v1
        kind: Workflow
        metadata: {name: chain}
        spec:
          states:
            - id: waiting
              initial: true
              after:
                - {duration: P1D, event: remind}
            - id: reminded
              on_enter:
                - {action: workflow.fire, with: {event: remind, instance_field: data.target}}
          transitions:
            - {id: remind, from: waiting, to: reminded}
    """,
}
#: a workflow whose first state runs the action (a scheduled start that fails)
WORKFLOWS["entering.yaml"] = """
        apiVersion: regelwerk/v1
        kind: Workflow
        metadata: {name: entering}
        spec:
          retry: {attempts: 3, backoff: PT10M, factor: 2}
          states:
            - {id: begun, initial: true, on_enter: [iso.act]}
            - {id: done}
          transitions:
            - {id: finish, from: begun, to: done}
    """
#: two steps, the second's action the one that fails
WORKFLOWS["steps.yaml"] = """
        apiVersion: regelwerk/v1
        kind: Workflow
        metadata: {name: steps}
        spec:
          states:
            - {id: first, initial: true}
            - {id: mid}
            - {id: done, on_enter: [iso.act]}
          transitions:
            - {id: next, from: first, to: mid}
            - {id: go, from: mid, to: done}
    """
#: the reminder with a second timer in its first state: "away" after three days
_REMIND = "- {duration: P1D, event: remind}"
WORKFLOWS["two_timers.yaml"] = WORKFLOWS["reminder.yaml"].replace("{name: reminder}", "{name: two_timers}").replace(
    _REMIND, _REMIND + "\n                - {duration: P3D, event: away}")


def act(ctx: Any) -> None:
    behaviour = BEHAVIOUR.get(ctx.instance.id)
    if behaviour is not None:
        behaviour(ctx)


class _Plugin:
    name = "test-isolation"

    def register(self, registry: Registry) -> None:
        registry.add_action(ActionSpec("iso.act", self.name, act))


@pytest.fixture(scope="module")
def registry() -> Registry:
    from regelwerk.registry import load_registry

    return load_registry(extra=[_Plugin()])


@pytest.fixture(scope="module")
def bundle(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> CompiledBundle:
    files = {"bundle.yaml": "apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: iso}\n", **WORKFLOWS}
    return compile_texts(tmp_path_factory.mktemp("isolation"), files, registry)  # type: ignore[return-value]



@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    BEHAVIOUR.clear()
    yield from store_urls(request, tmp_path, "isolation")


def _raise(exc: BaseException) -> Callable[[Any], None]:
    def behaviour(ctx: Any) -> None:
        raise exc
    return behaviour


class _Task:
    """A tick task that notes its run in ``ran`` and then raises ``fails`` (when given)."""

    def __init__(self, task_id: str, ran: list[str], fails: Exception | None = None) -> None:
        self.task_id, self.ran, self.fails = task_id, ran, fails

    def run_tick(self, engine: Any, compiled: Any, now: datetime) -> dict[str, int]:
        self.ran.append(self.task_id)
        if self.fails is not None:
            raise self.fails
        return {"ran": 1}


def _with_tasks(bundle: CompiledBundle, *tasks: _Task) -> CompiledBundle:
    return replace(bundle, objects={**bundle.objects, **{("Test", t.task_id): t for t in tasks}})


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")


class _PluginStop(BaseException):
    """A plugin's own BaseException subclass (not a process stop: isolated like any plugin failure)."""


@pytest.mark.parametrize("error", [ValueError("bad\x00byte"), ValueError("bad\ud800surrogate"), _Unprintable(),
                                   GeneratorExit("closed"), _PluginStop("stop")],
                         ids=["nul", "surrogate", "broken-str", "generator-exit", "own-base-exception"])
def test_an_error_message_no_store_can_write_still_becomes_an_incident(bundle: CompiledBundle, registry: Registry,
                                                                       url: str, error: Exception) -> None:
    clock = Clock()
    with Engine(bundle, store=url, registry=registry, clock=clock, permissions=ALLOW) as engine:
        for n in range(3):
            engine.start("reminder", {}, "hr", f"r{n}")
        BEHAVIOUR["r0"] = _raise(error)  # the oldest timer is the poison
        clock.now = T0 + timedelta(days=2)
        outcomes = engine.fire_due_timers(clock.now)
        assert [o.status for o in outcomes] == ["incident", "fired", "fired"]
        [incident] = engine.incidents()
        assert incident.error_type.endswith(type(error).__qualname__)  # the original type, not the __str__'s
        assert "\x00" not in incident.message and incident.message.encode("utf-8")
        engine.start("reminder", {}, "hr", "f")  # the same through a person's fire
        BEHAVIOUR["f"] = _raise(error)
        with pytest.raises(ActionFailed):
            engine.fire("f", "remind", "anna")
        assert engine.get("f").state == "waiting"
        assert [i.instance_id for i in engine.incidents("open", "f")] == ["f"]


def test_a_chained_fire_that_fails_after_commit_is_an_incident_not_an_error_of_the_committed_fire(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    ran: list[str] = []
    with_task = _with_tasks(bundle, _Task("z-task", ran))
    clock = Clock()
    with Engine(with_task, store=url, registry=registry, clock=clock, permissions=ALLOW) as engine:
        clock.now = T0 + timedelta(days=5)
        for n in range(1, 4):
            engine.start("reminder", {}, "hr", f"h{n}")  # healthy targets (their own timers not due yet)
        clock.now = T0
        engine.start("chain", {"target": "missing"}, "hr", "c0")  # its chained fire names no instance
        for n in range(1, 4):
            engine.start("chain", {"target": f"h{n}"}, "hr", f"c{n}")
        engine.start("chain", {"target": "gone"}, "hr", "p")
        # a person's fire: committed, so it returns; the failed chained fire is an incident on its target
        assert engine.fire("p", "remind", "anna").state == "reminded"
        assert [h.event for h in engine.history("p")] == ["$start", "remind"]
        [person] = engine.incidents("open", "gone")
        assert (person.event, person.actor, person.error_type) == ("remind", "anna",
                                                                   "regelwerk.errors.UnknownInstance")
        # the timers' chained fires: the failing one does not keep the others from running, nor the tick tasks
        clock.now = T0 + timedelta(days=2)
        summary = engine.tick(clock.now)
        assert summary.timers_fired == 4 and len(ran) == 1
        assert {i.id: i.state for i in engine.instances() if i.id.startswith("h")} == {
            "h1": "reminded", "h2": "reminded", "h3": "reminded"}
        assert [i.instance_id for i in engine.incidents("open", "missing")] == ["missing"]


def test_a_tick_task_that_raises_a_refusal_is_an_incident_and_the_next_task_runs(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    ran: list[str] = []
    tasks = _with_tasks(bundle, _Task("a-bad", ran, ConflictError("x", 1, 2, "waiting")), _Task("z-good", ran))
    with Engine(tasks, store=url, registry=registry, clock=Clock(), permissions=ALLOW) as engine:
        summary = engine.tick(T0)
        assert ran == ["a-bad", "z-good"]
        assert summary.tasks["a-bad"] == {"incident": "regelwerk.errors.ConflictError"}
        assert summary.tasks["z-good"] == {"ran": 1}
        assert [i.event for i in engine.incidents()] == ["tick:a-bad"]
        # fixed: its retry runs the task again (a tick task's incident names no instance) and resolves it
        tasks.objects[("Test", "a-bad")].fails = None  # type: ignore[attr-defined]
        [incident] = engine.incidents()
        assert engine.retry_incident(incident.id or 0, "ops").status == "resolved"
        assert ran[-1] == "a-bad" and engine.incidents() == []


def test_a_fire_in_a_batch_fails_in_the_state_an_earlier_item_left_and_its_retry_checks_that_state(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    """A batch moves an instance ``first -> mid`` and then fails on ``go`` from ``mid``: the batch rolls back (the
    instance is in ``first`` again) and the incident keeps ``mid``, the state the failing fire saw. Its retry is
    refused while the instance is in ``first`` (before, the state after the rollback was kept, and the retry fired
    ``go`` from a state nobody fired it in); once it is in ``mid`` again, the retry fires and resolves it."""
    with Engine(bundle, store=url, registry=registry, clock=Clock(), permissions=ALLOW) as engine:
        engine.start("steps", {}, "hr", "s1")
        BEHAVIOUR["s1"] = _raise(KeyError("s1"))
        with pytest.raises(ActionFailed):
            engine.fire_batch([("s1", "next", "anna"), ("s1", "go", "anna")])
        [incident] = engine.incidents()
        assert (engine.get("s1").state, incident.event, incident.data.get("$state")) == ("first", "go", "mid")
        BEHAVIOUR.clear()
        with pytest.raises(UsageError):
            engine.retry_incident(incident.id or 0, "ops")
        assert engine.get("s1").state == "first"
        engine.fire("s1", "next", "anna")
        assert engine.retry_incident(incident.id or 0, "ops").status == "resolved"
        assert engine.get("s1").state == "done"


def test_a_batch_fire_whose_action_raises_rolls_back_whole_and_is_an_incident(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    with Engine(bundle, store=url, registry=registry, clock=Clock(), permissions=ALLOW) as engine:
        engine.start("reminder", {}, "hr", "b1")
        engine.start("reminder", {}, "hr", "b2")
        BEHAVIOUR["b2"] = _raise(KeyError("b2"))
        with pytest.raises(ActionFailed) as caught:
            engine.fire_batch([("b1", "remind", "anna"), ("b2", "remind", "anna")])
        assert caught.value.batch_index == 1  # type: ignore[attr-defined]
        assert (engine.get("b1").state, engine.get("b2").state) == ("waiting", "waiting")
        [incident] = engine.incidents()
        assert (incident.instance_id, incident.event, incident.actor) == ("b2", "remind", "anna")


def test_nested_data_an_action_changes_in_place_is_saved_and_rolled_back_with_its_fire(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    def level_up(ctx: Any) -> None:
        ctx.data["profile"]["level"] = 2

    def level_up_then_fail(ctx: Any) -> None:
        level_up(ctx)
        raise KeyError("after the change")

    with Engine(bundle, store=url, registry=registry, clock=Clock(), permissions=ALLOW) as engine:
        engine.start("reminder", {"profile": {"level": 1}}, "hr", "ok")
        engine.start("reminder", {"profile": {"level": 1}}, "hr", "bad")
        BEHAVIOUR.update({"ok": level_up, "bad": level_up_then_fail})
        assert engine.fire("ok", "remind", "anna").data["profile"] == {"level": 2}
        with pytest.raises(ActionFailed):
            engine.fire("bad", "remind", "anna")
    with Engine(bundle, store=url, registry=registry, clock=Clock(), permissions=ALLOW) as again:
        if url != "memory://":  # a new engine reads the store: what was saved, not a cache
            assert again.get("ok").data["profile"] == {"level": 2}
            assert again.get("bad").data["profile"] == {"level": 1}
        else:
            assert engine.get("ok").data["profile"] == {"level": 2}
            assert engine.get("bad").data["profile"] == {"level": 1}
            assert engine.get("bad").state == "waiting"


def test_data_that_is_not_json_is_refused_from_callers_and_an_incident_from_actions(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    with Engine(bundle, store=url, registry=registry, clock=Clock(), permissions=ALLOW) as engine:
        with pytest.raises(InvalidData) as refused:
            engine.start("reminder", {"when": datetime(2026, 1, 1)}, "hr", "s")
        assert refused.value.pointer == "/when"
        engine.start("reminder", {}, "hr", "d")
        for odd in ({"x": {1, 2}}, {"x": float("nan")}, {"x": [{"y": object()}]}):
            with pytest.raises(InvalidData):
                engine.fire("d", "remind", "anna", odd)
        assert engine.get("d").state == "waiting" and engine.get("d").data == {}
        BEHAVIOUR["d"] = lambda ctx: ctx.data.update(seen={"a", "b"})
        with pytest.raises(PluginError) as failed:
            engine.fire("d", "remind", "anna")
        assert failed.value.error_type == "regelwerk.errors.InvalidData"
        assert engine.get("d").state == "waiting"
        assert [i.instance_id for i in engine.incidents()] == ["d"]


@pytest.mark.postgres
def test_a_worker_holding_the_oldest_due_timers_hides_no_later_timer_from_another(
        bundle: CompiledBundle, registry: Registry, pg_url: str) -> None:
    """PostgreSQL: the instances of the oldest due timers are locked by another transaction (a worker busy with
    them); a second worker claims the next due timers instead of finding nothing."""
    import sqlalchemy as sa

    clock = Clock()
    with Engine(bundle, store=pg_url, registry=registry, clock=clock, permissions=ALLOW) as engine:
        for n in range(5):
            engine.start("reminder", {}, "hr", f"busy{n}")
        clock.now = T0 + timedelta(minutes=1)
        engine.start("reminder", {}, "hr", "later")  # due a minute after the others
        clock.now = T0 + timedelta(days=2)
        holder = sa.create_engine(pg_url)
        try:
            with holder.begin() as conn:  # another worker's transaction on the five oldest timers' instances
                conn.execute(sa.text("SELECT id FROM rw_instances WHERE id LIKE 'busy%' FOR UPDATE"))
                fired = engine.fire_due_timers(clock.now, batch_size=5)
                assert [(o.instance_id, o.status) for o in fired] == [("later", "fired")]
        finally:
            holder.dispose()
        assert sorted(o.instance_id for o in engine.fire_due_timers(clock.now, batch_size=5)) == [
            f"busy{n}" for n in range(5)]


def test_an_incident_is_resolved_once_and_never_rewrites_what_its_timer_did(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    clock = Clock()
    retry = RetryPolicy(attempts=3, backoff=timedelta(minutes=10), factor=2.0)
    with Engine(bundle, store=url, registry=registry, clock=clock, permissions=ALLOW, retry=retry) as engine:
        for name in ("fixed", "moved", "twice"):
            engine.start("reminder", {}, "hr", name)
            BEHAVIOUR[name] = _raise(KeyError(name))
        clock.now = T0 + timedelta(days=2)
        assert {o.status for o in engine.fire_due_timers(clock.now)} == {"incident"}
        incidents = {i.instance_id: i for i in engine.incidents()}
        # the cause is fixed and the retry fires it: resolving by hand afterwards is refused, the timer stays fired
        del BEHAVIOUR["fixed"]
        clock.now += timedelta(hours=1)
        engine.fire_due_timers(clock.now)
        with pytest.raises(UsageError, match="not open"):
            engine.resolve_incident(incidents["fixed"].id or 0, "ops")
        assert [t.status for t in engine.timers("fixed")] == ["fired"]
        # the instance moved on: its retry timer is cancelled and the incident resolved with it, in the same
        # unit of work (audited once, by who moved it); retrying or resolving it afterwards is refused
        BEHAVIOUR["moved"] = _raise(KeyError("still broken"))
        engine.fire("moved", "away", "anna")
        moved = engine.incident(incidents["moved"].id or 0)
        assert (moved.status, moved.note) == ("resolved", "its timer was cancelled: moved left waiting by away")
        assert [t.status for t in engine.timers("moved")] == ["cancelled"]
        assert [i.instance_id for i in engine.incidents()] == ["twice"]
        for act_on in (engine.retry_incident, engine.resolve_incident):
            with pytest.raises(UsageError, match="not open"):
                act_on(incidents["moved"].id or 0, "ops")
        # resolved once: the second is refused and audited nowhere
        assert engine.resolve_incident(incidents["twice"].id or 0, "ops").status == "resolved"
        assert [t.status for t in engine.timers("twice")] == ["failed"]
        with pytest.raises(UsageError, match="not open"):
            engine.resolve_incident(incidents["twice"].id or 0, "ops2")
        resolved = [(a.actor, a.instance_id) for a in engine.audit() if a.action == "incident.resolve"]
        assert resolved == [("anna", "moved"), ("ops", "twice")]


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_a_process_stop_from_plugin_code_passes_through_and_leaves_the_timer_pending(
        bundle: CompiledBundle, registry: Registry, url: str, stop: type[BaseException]) -> None:
    clock = Clock()
    with Engine(bundle, store=url, registry=registry, clock=clock, permissions=ALLOW) as engine:
        engine.start("reminder", {}, "hr", "s")
        BEHAVIOUR["s"] = _raise(stop())
        clock.now = T0 + timedelta(days=2)
        with pytest.raises(stop):
            engine.fire_due_timers(clock.now)
        assert engine.get("s").state == "waiting" and not engine.incidents()
        del BEHAVIOUR["s"]  # the next run (after the restart) fires it
        assert [o.status for o in engine.fire_due_timers(clock.now)] == ["fired"]


def test_a_timer_that_leaves_the_state_resolves_the_incident_of_a_retry_that_will_not_come(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    """The timer path: a failing reminder waits for its retry when a later timer moves the instance on. The retry
    is cancelled, and its incident resolved with it (by the system, audited once), not left open for good."""
    clock = Clock()
    retry = RetryPolicy(attempts=5, backoff=timedelta(days=2, hours=2), factor=1.0, max_backoff=timedelta(days=5))
    with Engine(bundle, store=url, registry=registry, clock=clock, permissions=ALLOW, retry=retry) as engine:
        engine.start("two_timers", {}, "hr", "t")
        engine.start("two_timers", {}, "hr", "other")
        BEHAVIOUR["t"] = _raise(KeyError("broken"))
        clock.now = T0 + timedelta(days=1, hours=1)
        assert sorted(o.status for o in engine.fire_due_timers(clock.now)) == ["fired", "incident"]
        (incident,) = engine.incidents()
        # one batch: "away" (day 3) moves it on, then the retry (day 3, a few hours later) finds its state left
        clock.now = T0 + timedelta(days=3, hours=4)
        assert [o.status for o in engine.fire_due_timers(clock.now)] == ["fired", "cancelled"]
        assert engine.get("t").state == "elsewhere"
        assert sorted(t.status for t in engine.timers("t")) == ["cancelled", "fired"]
        done = engine.incident(incident.id or 0)
        assert done.status == "resolved" and done.note.startswith("its timer was cancelled"), done
        assert engine.incidents() == []
        resolved = [(a.actor, a.instance_id) for a in engine.audit() if a.action == "incident.resolve"]
        assert resolved == [("system", "t")]


def test_the_json_check_finds_what_the_walk_with_pointers_finds() -> None:
    """``not_json`` walks plain data without pointers first: same answers as the walk that names the part."""
    from collections import OrderedDict
    from datetime import date

    from regelwerk.workflows.gate import _first_not_json, not_json

    class Text(str):
        pass

    cases: list[Any] = [
        None, "x", 1, True, 1.5, float("nan"), float("inf"), [], {}, {"a": [1, {"b": None}]},
        {"a": {"b": [1, 2, {"c": float("-inf")}]}}, {1: "int key"}, {"a": {2: "deep int key"}}, ("tuple", 1),
        {"a": ("t", date(2026, 1, 1))}, {"a": {1, 2}}, OrderedDict(a=1), {"a": OrderedDict(b=date.today())},
        Text("sub"), {"a": [Text("sub")]}, [1, [2, [3, [b"bytes"]]]], {"ok": [1.0, -2, "é"], "bad": object()},
    ]
    for value in cases:
        assert not_json(value, "/p") == _first_not_json(value, "/p"), value
    assert not_json({"a": {"b": [1, 2, {"c": float("nan")}]}}) == ("/a/b/2/c", "nan")


def test_a_returned_record_cannot_change_what_the_engine_keeps(bundle: CompiledBundle, registry: Registry,
                                                               url: str) -> None:
    """The data of a record that start and fire hand out is read-only (and so is everything the memory store
    returns): changing it in place raises, instead of changing the engine's cached copy, which the next fire
    with a payload would have written without a check (on SQLite) or the memory store's row itself."""
    with Engine(bundle, store=url, registry=registry, clock=Clock(), permissions=ALLOW) as engine:
        started = engine.start("reminder", {"n": {"k": 1}, "tags": ["a"]}, "hr", "r")
        for change in (lambda: started.data["n"].__setitem__("k", 666), lambda: started.data.pop("n"),
                       lambda: started.data["tags"].append("b"), lambda: started.data.update(x=1)):
            with pytest.raises(TypeError, match="read-only"):
                change()
        fired = engine.fire("r", "away", "anna", {"extra": 1})
        with pytest.raises(TypeError, match="read-only"):
            fired.data["n"]["k"] = 666
        assert engine.get("r").data == {"n": {"k": 1}, "tags": ["a"], "extra": 1}
        assert engine.history("r")[-1].to_state == "elsewhere"
        # read-only, and still plain JSON data to a caller
        assert json.loads(json.dumps(fired.data)) == {"n": {"k": 1}, "tags": ["a"], "extra": 1}


LOOP = """
    apiVersion: regelwerk/v1
    kind: Workflow
    metadata: {name: loop}
    spec:
      states:
        - {id: open, initial: true}
      transitions:
        - {id: ping, from: open, to: open, actions: [iso.act]}
"""


def _fire_incident(engine: Engine, instance_id: str) -> int:
    """An open incident of a failed ``ping`` on a new ``loop`` instance (its action fixed afterwards)."""
    engine.start("loop", {}, "hr", instance_id)
    BEHAVIOUR[instance_id] = _raise(KeyError("broken"))
    with pytest.raises(ActionFailed):
        engine.fire(instance_id, "ping", "hr")
    del BEHAVIOUR[instance_id]
    (incident,) = engine.incidents(instance_id=instance_id)
    return incident.id or 0


@pytest.fixture(scope="module")
def loop_bundle(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> CompiledBundle:
    files = {"bundle.yaml": "apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: loop}\n", "loop.yaml": LOOP}
    return compile_texts(tmp_path_factory.mktemp("loop"), files, registry)  # type: ignore[return-value]


def test_a_retry_whose_incident_was_resolved_meanwhile_runs_nothing(loop_bundle: CompiledBundle, registry: Registry,
                                                                    url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry of a failed fire checks the incident is open in the fire's own unit of work: a retry that read it
    open just before another one resolved it (the race of two retries at once) is refused and its fire rolled back,
    so the event runs once. Made deterministic here by handing the retry the stale read."""
    with Engine(loop_bundle, store=url, registry=registry, clock=Clock(), permissions=ALLOW) as engine:
        incident_id = _fire_incident(engine, "i")
        stale = engine.incident(incident_id)
        assert engine.retry_incident(incident_id, "u1").status == "resolved"
        assert [h.event for h in engine.history("i")].count("ping") == 1
        monkeypatch.setattr(engine, "incident", lambda _id: stale)  # the second retry read it before the commit
        with pytest.raises(UsageError, match="resolved, not open"):
            engine.retry_incident(incident_id, "u2")
        monkeypatch.undo()
        assert [h.event for h in engine.history("i")].count("ping") == 1 and engine.get("i").version == 2
        retried = [a.actor for a in engine.audit("i") if a.action == "incident.retry"]
        assert retried == ["u1"]


@pytest.mark.postgres
def test_two_people_acting_on_one_incident_at_once_act_once(loop_bundle: CompiledBundle, registry: Registry,
                                                            pg_url: str) -> None:
    """PostgreSQL, two engines (two processes' connections), two threads released together: of two resolves of
    one incident one succeeds and is audited; of two retries the event runs once. Before, both passed the check
    that the incident is open, so both resolved it (two audits) or both fired the event."""
    import threading
    from functools import partial

    def race(first: Callable[[], object], second: Callable[[], object]) -> list[str]:
        barrier, outcomes = threading.Barrier(2), []

        def run(act_on: Callable[[], object]) -> None:
            barrier.wait()
            try:
                act_on()
                outcomes.append("done")
            except (UsageError, ConflictError):  # found it resolved; or its fire read the instance before the other
                outcomes.append("refused")

        threads = [threading.Thread(target=run, args=(f,)) for f in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sorted(outcomes)

    with Engine(loop_bundle, store=pg_url, registry=registry, clock=Clock(), permissions=ALLOW) as one, \
            Engine(loop_bundle, store=pg_url, registry=registry, clock=Clock(), permissions=ALLOW) as two:
        for n in range(8):
            resolving, retrying = _fire_incident(one, f"res{n}"), _fire_incident(one, f"ret{n}")
            assert race(partial(one.resolve_incident, resolving, "u1"),
                        partial(two.resolve_incident, resolving, "u2")) == ["done", "refused"]
            assert race(partial(one.retry_incident, retrying, "u1"),
                        partial(two.retry_incident, retrying, "u2")) == ["done", "refused"]
            assert [h.event for h in one.history(f"ret{n}")].count("ping") == 1, n
            assert one.incident(retrying).status == "resolved"
        actions = [a.action for a in one.audit() if a.action.startswith("incident.")]
        assert actions.count("incident.resolve") == 8 and actions.count("incident.retry") == 8


def test_the_incident_of_a_timer_out_of_attempts_ends_when_its_state_is_left(bundle: CompiledBundle,
                                                                             registry: Registry, url: str) -> None:
    """A timer that used up its attempts waits (failed) for a person. When the instance leaves its state, by a
    person's fire or by another timer in a batch, that timer is cancelled and its incident resolved with it;
    a retry of it afterwards is refused instead of firing the old state's event in the new one."""
    clock = Clock()
    retry = RetryPolicy(attempts=1, backoff=timedelta(minutes=10))
    with Engine(bundle, store=url, registry=registry, clock=clock, permissions=ALLOW, retry=retry) as engine:
        for name in ("by_hand", "by_timer"):
            engine.start("two_timers", {}, "hr", name)
            BEHAVIOUR[name] = _raise(KeyError(name))
        clock.now = T0 + timedelta(days=1, hours=1)
        assert [o.status for o in engine.fire_due_timers(clock.now)] == ["incident", "incident"]
        incidents = {i.instance_id: i.id or 0 for i in engine.incidents()}
        assert {t.status for name in incidents for t in engine.timers(name) if t.event == "remind"} == {"failed"}
        BEHAVIOUR.clear()
        engine.fire("by_hand", "away", "anna")
        clock.now = T0 + timedelta(days=3, hours=1)  # the second timer moves "by_timer" on
        assert [(o.instance_id, o.status) for o in engine.fire_due_timers(clock.now)] == [("by_timer", "fired")]
        for name, actor in (("by_hand", "anna"), ("by_timer", "system")):
            assert engine.get(name).state == "elsewhere"
            done = engine.incident(incidents[name])
            assert (done.status, done.note.startswith("its timer was cancelled")) == ("resolved", True), done
            assert [t.status for t in engine.timers(name) if t.event == "remind"] == ["cancelled"]
            assert [a.actor for a in engine.audit(name) if a.action == "incident.resolve"] == [actor]
            with pytest.raises(UsageError, match="not open"):
                engine.retry_incident(incidents[name], "ops")
            assert engine.get(name).state == "elsewhere" and engine.get(name).version == 2


def test_copies_of_a_record_are_the_callers_own_and_inner_data_a_caller_keeps_is_copied(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    """``copy.copy``/``copy.deepcopy`` and ``to_dict()`` of read-only data give plain, changeable data;
    ``yaml.safe_dump`` writes it. Data handed in as a ``FrozenDict`` holding a plain dict is copied like any
    other: the caller's later change of that inner dict reaches neither the engine's cache nor the store."""
    import copy

    import yaml
    from regelwerk.frozen import FrozenDict, thaw

    with Engine(bundle, store=url, registry=registry, clock=Clock(), permissions=ALLOW) as engine:
        inner = {"salary": 1000}
        started = engine.start("reminder", {"pay": FrozenDict({"current": inner}), "tags": ["a"]}, "hr", "r")
        inner["salary"] = 999999
        assert started.data["pay"]["current"]["salary"] == 1000
        engine.fire("r", "away", "anna", {"note": "x"})  # writes the data it keeps
        assert engine.get("r").data["pay"] == {"current": {"salary": 1000}}
        data = engine.get("r").data
        deep = copy.deepcopy(data)
        deep["pay"]["current"]["salary"] = 1
        shallow = copy.copy(data)
        shallow["extra"] = 1
        as_dict = engine.get("r").to_dict()["data"]
        as_dict["tags"].append("b")
        assert engine.get("r").data == {"pay": {"current": {"salary": 1000}}, "tags": ["a"], "note": "x"}
        assert yaml.safe_load(yaml.safe_dump(data)) == thaw(data) == {"pay": {"current": {"salary": 1000}},
                                                                     "tags": ["a"], "note": "x"}


# --- found by attacking the runtime again (session of 6 Dec): a conflict raised by an action, an after-commit
# callback raising GeneratorExit, a rule condition's function raising, an item source or a scheduled start
# raising in the tick, a retry claimed by a second worker before its backoff, a migration racing a fire


def test_a_conflict_an_action_raises_fails_the_fire_once_and_leaves_the_store_as_it_was(bundle: CompiledBundle,
                                                                                         registry: Registry,
                                                                                         url: str) -> None:
    """An action's own version-checked write elsewhere lost (a ``ConflictError``): the fire is not decided again on
    top of its own claim (which ran the action twice and kept the first run's audit): it fails as a whole."""
    runs: list[int] = []

    def conflicting(ctx: Any) -> None:
        runs.append(1)
        ctx.audit("first-run", {"run": len(runs)})
        raise ConflictError("another-row", 1, 2, "elsewhere")

    with Engine(bundle, store=url, registry=registry, clock=Clock(), permissions=ALLOW) as engine:
        engine.start("reminder", {}, "hr", "c1")  # kept in the engine's cache: the fire starts from it
        BEHAVIOUR["c1"] = conflicting
        before = (engine.get("c1"), len(engine.history("c1")), len(engine.audit("c1")))
        with pytest.raises(ConflictError) as raised:
            engine.fire("c1", "remind", "hr")
        assert raised.value.instance_id == "another-row"
        assert runs == [1]
        assert (engine.get("c1"), len(engine.history("c1")), len(engine.audit("c1"))) == before


def test_an_after_commit_callback_raising_generator_exit_is_an_incident_and_the_others_run(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    later: list[str] = []

    def with_callbacks(ctx: Any) -> None:
        def closed() -> None:
            raise GeneratorExit("callback closed")
        ctx.after_commit(closed)
        ctx.after_commit(lambda: later.append(ctx.instance.id))

    with Engine(bundle, store=url, registry=registry, clock=Clock(), permissions=ALLOW) as engine:
        engine.start("reminder", {}, "hr", "g1")
        BEHAVIOUR["g1"] = with_callbacks
        assert engine.fire("g1", "remind", "hr").state == "reminded"  # committed: not an error of the fire
        assert later == ["g1"]
        assert [i.error_type for i in engine.incidents()] == ["builtins.GeneratorExit"]


def test_after_commit_failures_of_two_instances_are_two_incidents_that_name_them(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    """Each failing callback is an incident of its own instance (event ``after-commit:<event>``), not one merged
    incident without instance or event that kept only the last message; its retry is refused with the hint to
    resolve it (the change it followed stands: firing its event again would be a second step), and it resolves."""
    def failing(ctx: Any) -> None:
        def lookup() -> None:
            raise KeyError(f"mail server lookup for {ctx.instance.id}")
        ctx.after_commit(lookup)

    with Engine(bundle, store=url, registry=registry, clock=Clock(), permissions=ALLOW) as engine:
        for name in ("a1", "a2"):
            engine.start("reminder", {}, "hr", name)
            BEHAVIOUR[name] = failing
            assert engine.fire(name, "remind", "hr").state == "reminded"
        incidents = engine.incidents()
        assert [(i.instance_id, i.event, i.attempts) for i in incidents] == [
            ("a1", "after-commit:remind", 1), ("a2", "after-commit:remind", 1)]
        assert "lookup for a1" in incidents[0].message
        with pytest.raises(UsageError) as refused:
            engine.retry_incident(incidents[0].id or 0, "ops")
        assert "incidents resolve" in (refused.value.hint or "")
        assert [h.event for h in engine.history("a1")].count("remind") == 1
        assert engine.resolve_incident(incidents[0].id or 0, "ops", "mailed by hand").status == "resolved"
    BEHAVIOUR.clear()


def _with_function(name: str, function: Callable[..., Any]) -> Registry:
    """A registry with the one condition function ``name`` (a plugin's, here broken)."""
    from regelwerk.registry import FunctionSpec, load_registry

    class _Functions:
        def __init__(self) -> None:
            self.name = f"test-{name}"

        def register(self, registry: Registry) -> None:
            registry.add_function(FunctionSpec(name, self.name, function))

    return load_registry(extra=[_Functions()])


def test_a_rule_condition_function_that_raises_is_a_plugin_error(tmp_path: Path) -> None:
    from regelwerk.rules.runtime import RuleEngine

    def broken(*args: Any) -> bool:
        raise ZeroDivisionError("bug in a condition function")

    registry = _with_function("iso.broken", broken)
    compiled: Any = compile_texts(tmp_path, {
        "bundle.yaml": "apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: r}\n",
        "rules.yaml": """
            apiVersion: regelwerk/v1
            kind: RuleSet
            metadata: {name: r}
            spec:
              rules:
                - id: one
                  when: {fn: iso.broken, args: [{field: event.x}]}
                  then: [{action: rules.signal, with: {signal: seen}}]
        """}, registry)
    rules = RuleEngine.from_registry(registry)
    try:
        with pytest.raises(PluginError) as raised:
            rules.post(compiled.get("RuleSet", "r"), {"x": 1}, now=T0, actor="hr")
    finally:
        rules.close()
    assert isinstance(raised.value.__cause__, ZeroDivisionError)
    assert raised.value.error_type == "builtins.ZeroDivisionError"


class _Source:
    """An item source: one moment per employee, due at once, starting the reminder workflow; it raises for the
    employees in ``fails`` (a plugin bug for some people)."""

    source_id = "iso-source"

    def __init__(self) -> None:
        self.fails: set[str] = set()

    def plan(self, employee: Any, now: datetime) -> Any:
        from regelwerk.scheduling.sources import Plan, PlannedItem

        if employee.id in self.fails:
            raise LookupError(f"no cycle for {employee.id}")
        return Plan(items=(PlannedItem(key=f"iso/{employee.id}", source=self.source_id, item_type="moment",
                                       subject=employee.id, due_at=now - timedelta(hours=1),
                                       workflow="entering"),))


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_one_employee_whose_plan_or_start_fails_is_an_incident_and_the_tick_goes_on(
        bundle: CompiledBundle, registry: Registry, store: str, tmp_path: Path, request: pytest.FixtureRequest
        ) -> None:
    """A source that raises for one employee, and a scheduled start whose action raises for another: both are
    skipped with an incident each (``tick:plan``, the employee); the others are planned and started, the tick's
    timers fire and its tasks run, on every tick; once the bug is gone, the next tick plans them and resolves the
    incidents."""
    from regelwerk.scheduling.employees import EmployeeDirectory
    from regelwerk.scheduling.workflows import instance_id_for

    source, ran = _Source(), []
    compiled = replace(bundle, objects={**bundle.objects, ("Test", "src"): source,
                                        ("Test", "task"): _Task("probe", ran)})
    source.fails = {"e2"}
    BEHAVIOUR.clear()
    BEHAVIOUR[instance_id_for("iso/e4")] = _raise(ValueError("on_enter bug"))
    clock = Clock()
    url = next(store_urls(_Param(store, request), tmp_path, "tickiso"))
    with Engine(compiled, store=url, registry=registry, clock=clock, permissions=ALLOW) as engine:
        EmployeeDirectory(engine.store.engine).upsert(
            [{"id": f"e{n}", "hire_date": "2020-01-01"} for n in range(1, 7)], T0)
        engine.start("reminder", {}, "hr", "other")  # an unrelated timer, due tomorrow
        clock.now = T0 + timedelta(days=2)
        for attempt in (1, 2):
            summary = engine.tick(clock.now, batch_size=4)
            assert summary.incidents == 2 and summary.tasks["probe"] == {"ran": 1}
            assert sorted(summary.activated_keys if summary.activated_keys else []) == []
            assert summary.employees_planned == (4 if attempt == 1 else 0)
            open_ = engine.incidents()
            assert sorted((i.instance_id, i.event, i.error_type, i.attempts) for i in open_) == [
                ("e2", "tick:plan", "builtins.LookupError", attempt), ("e4", "tick:plan", "builtins.ValueError",
                                                                      attempt)]
            # retried with the engine's backoff (1 minute after the first attempt): a tick before then passes them
            waits = clock.now + timedelta(minutes=1 if attempt == 1 else 4)
            assert {i.next_retry_at for i in open_} == {waits}
            summary = engine.tick(clock.now + timedelta(seconds=30), batch_size=4)
            assert (summary.incidents, summary.waiting, summary.employees_planned) == (0, 2, 0)
            assert [i.attempts for i in engine.incidents()] == [attempt, attempt]
            clock.now = waits
        assert engine.get("other").state == "reminded" and len(ran) == 4
        started = {i.id for i in engine.instances("entering")}
        assert {instance_id_for(f"iso/e{n}") for n in (1, 3, 5, 6)} <= started
        assert not {instance_id_for(f"iso/e{n}") for n in (2, 4)} & started
        # fixed: the next tick plans and starts them, and resolves their incidents in that batch
        source.fails.clear()
        BEHAVIOUR.clear()
        retried = engine.retry_incident(open_[0].id or 0, "ops")
        assert retried.status == "resolved"
        assert engine.incidents() == []
        assert {instance_id_for(f"iso/e{n}") for n in (2, 4)} <= {i.id for i in engine.instances("entering")}
        audit = [a.action for a in engine.audit() if a.action.startswith("incident.")]
        assert audit.count("incident.retry") == 1 and audit.count("incident.resolve") == 2


class _Param:
    """A stand-in for a parametrised request: ``store_urls`` reads ``param``."""

    def __init__(self, param: str, request: pytest.FixtureRequest) -> None:
        self.param = param
        self._request = request

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


@pytest.mark.postgres
def test_a_timer_retry_another_worker_listed_before_it_failed_waits_for_its_backoff(
        bundle: CompiledBundle, registry: Registry, pg_url: str) -> None:
    """Worker B lists the due timers; worker A fires one, its action fails, A reschedules it a minute later and
    commits; B then claims what it listed. Before, B's claim checked only ``pending`` and fired the retry at once."""
    import threading

    import sqlalchemy as sa

    retry = RetryPolicy(attempts=5, backoff=timedelta(minutes=1), factor=1.0)
    fails = [2]

    def flaky(ctx: Any) -> None:
        if fails[0]:
            fails[0] -= 1
            raise ValueError("not yet")

    with Engine(bundle, store=pg_url, registry=registry, clock=Clock(), permissions=ALLOW, retry=retry) as a, \
            Engine(bundle, store=pg_url, registry=registry, clock=Clock(), permissions=ALLOW, retry=retry) as b:
        a.start("reminder", {}, "hr", "r1")
        BEHAVIOUR["r1"] = flaky
        moment = T0 + timedelta(days=1)
        listed, fired = threading.Event(), threading.Event()

        @sa.event.listens_for(b.store.engine, "after_cursor_execute")
        def pause(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "FROM rw_timers" in statement and "LIMIT" in statement and not listed.is_set():
                listed.set()
                fired.wait(10)

        out: dict[str, Any] = {}
        worker = threading.Thread(target=lambda: out.__setitem__("b", b.fire_due_timers(moment)))
        worker.start()
        listed.wait(10)
        out["a"] = a.fire_due_timers(moment)
        fired.set()
        worker.join()
        assert [o.status for o in out["b"]] == []
        timer = next(t for t in a.timers("r1") if t.event == "remind")
        assert timer.status == "pending" and timer.due_at == moment + timedelta(minutes=1)
        assert a.get("r1").state == "waiting"


@pytest.mark.postgres
def test_a_migration_that_loses_a_race_with_a_fire_reports_it_and_migrates_the_others(
        registry: Registry, pg_url: str, tmp_path: Path) -> None:
    """Another process fires (same state, new version) between the migration's read and its update: that instance
    is reported "changed while planning", the others are migrated; before, ``ConflictError`` ended the run."""
    import threading

    import sqlalchemy as sa

    loop = """
        apiVersion: regelwerk/v1
        kind: Workflow
        metadata: {name: loopy%s}
        spec:
          states:
            - {id: a, initial: true}
          transitions:
            - {id: poke, from: a, to: a}
    """
    head = "apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: mig}\n"
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    v1: Any = compile_texts(tmp_path / "v1", {"bundle.yaml": head, "w.yaml": loop % ""}, registry)
    v2: Any = compile_texts(tmp_path / "v2", {"bundle.yaml": head, "w.yaml": loop.replace(
        "{id: poke, from: a, to: a}", "{id: poke, from: a, to: a}\n            - {id: poke2, from: a, to: a}")
        % ""}, registry)
    with Engine(v1, store=pg_url, registry=registry, clock=Clock(), permissions=ALLOW) as old:
        for n in range(5):
            old.start("loopy", {}, "hr", f"m{n}")
        with Engine(v2, store=pg_url, registry=registry, clock=Clock(), permissions=ALLOW) as new:
            poked = threading.Event()
            seen = [0]

            @sa.event.listens_for(new.store.engine, "after_cursor_execute")
            def race(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
                if statement.lstrip().startswith("SELECT") and "rw_instances" in statement and "m0" in str(params):
                    seen[0] += 1
                    if seen[0] == 1 and not poked.is_set():  # the apply's read of m0 (the plan reads them all)
                        poked.set()
                        threading.Thread(target=old.fire, args=("m0", "poke", "hr")).start()
                        import time
                        time.sleep(0.5)

            items = new.migrate_apply("loopy")
        by_id = {i.instance_id: i for i in items}
        assert by_id["m0"].applied is False and by_id["m0"].problems == ("changed while planning; plan again",)
        assert all(by_id[f"m{n}"].applied for n in range(1, 5))
        assert old.get("m0").version == 2 and old.get("m0").definition_version == by_id["m0"].from_version


def test_a_plugin_store_factory_or_report_section_that_raises_is_a_plugin_error(tmp_path: Path) -> None:
    from datetime import date

    from regelwerk.registry import ReportSectionSpec, StoreSpec, load_registry
    from regelwerk.report.command import write_report
    from regelwerk.store import open_store

    def bad_store(url: str) -> Any:
        raise ValueError(f"bad url {url}")

    def bad_section(page: Any) -> str:
        raise ZeroDivisionError("a section's bug")

    class _Broken:
        name = "test-broken-parts"

        def register(self, registry: Registry) -> None:
            registry.add_store(StoreSpec("brokenstore", self.name, bad_store))
            registry.add_report_section(ReportSectionSpec("broken", self.name, "Broken", bad_section, (), 999))

    registry = load_registry(extra=[_Broken()])
    with pytest.raises(PluginError) as raised:
        open_store("brokenstore://x", registry)
    assert isinstance(raised.value.__cause__, ValueError) and "test-broken-parts" in str(raised.value)
    example = Path(__file__).resolve().parent.parent / "examples" / "scholengroep-horizon"
    with pytest.raises(PluginError) as raised:
        write_report(example, tmp_path / "out", registry, date(2026, 3, 2))
    assert isinstance(raised.value.__cause__, ZeroDivisionError) and "'broken'" in str(raised.value)


class _LaterSource(_Source):
    """Items due a day after the plan: stored as planned, started by a later tick's activate phase."""

    source_id = "iso-later"

    def plan(self, employee: Any, now: datetime) -> Any:
        from regelwerk.scheduling.sources import Plan, PlannedItem

        return Plan(items=(PlannedItem(key=f"later/{employee.id}", source=self.source_id, item_type="moment",
                                       subject=employee.id, due_at=T0 + timedelta(days=1), workflow="entering"),))


def test_an_item_whose_start_fails_when_it_comes_due_is_an_incident_and_the_others_start(
        bundle: CompiledBundle, registry: Registry, tmp_path: Path) -> None:
    """The activate phase (items planned earlier, due now): the item whose workflow's action raises is left planned
    with an incident (``tick:activate``, the instance it would start), the rest of its batch starts. It is retried
    with its workflow's declared backoff (10 minutes, then 20) up to its declared limit (3 attempts), the ticks in
    between pass it over; then it waits for a person, whose retry (after the fix) starts it and resolves the
    incident."""
    from regelwerk.scheduling.employees import EmployeeDirectory
    from regelwerk.scheduling.workflows import instance_id_for

    compiled = replace(bundle, objects={**bundle.objects, ("Test", "later"): _LaterSource()})
    BEHAVIOUR.clear()
    failing = instance_id_for("later/e3")
    clock = Clock()
    with Engine(compiled, store=f"sqlite:///{tmp_path / 'later.sqlite'}", registry=registry, clock=clock,
                permissions=ALLOW) as engine:
        EmployeeDirectory(engine.store.engine).upsert(
            [{"id": f"e{n}", "hire_date": "2020-01-01"} for n in range(1, 8)], T0)
        assert engine.tick(T0).total_created == 7  # planned, due tomorrow
        BEHAVIOUR[failing] = _raise(KeyError("no such field"))
        now = T0 + timedelta(days=2)
        for attempt, wait in ((1, timedelta(minutes=10)), (2, timedelta(minutes=20)), (3, None)):
            summary = engine.tick(now, batch_size=3)
            assert summary.incidents == 1 and summary.activated["started"] == (6 if attempt == 1 else 0)
            assert [(i.instance_id, i.event, i.error_type, i.attempts, dict(i.data), i.next_retry_at)
                    for i in engine.incidents()] == [
                (failing, "tick:activate", "builtins.KeyError", attempt, {"item": "later/e3"},
                 now + wait if wait is not None else None)]
            later = now + (wait or timedelta(days=1)) - timedelta(minutes=1)
            summary = engine.tick(later, batch_size=3)  # before its retry is due (or, used up, ever)
            assert (summary.incidents, summary.waiting, sum(summary.activated.values())) == (0, 1, 0)
            now += wait or timedelta(0)
        assert engine.incidents()[0].attempts == 3
        started = {i.id for i in engine.instances("entering")}
        assert started == {instance_id_for(f"later/e{n}") for n in (1, 2, 4, 5, 6, 7)}
        BEHAVIOUR.clear()
        clock.now = T0 + timedelta(days=3)
        retried = engine.retry_incident(engine.incidents()[0].id or 0, "ops")
        assert retried.status == "resolved" and engine.incidents() == [] and engine.get(failing).state == "begun"


@pytest.mark.parametrize("phase", ["plan", "activate"])
def test_a_failed_batch_is_run_again_in_halves_not_member_by_member(
        bundle: CompiledBundle, registry: Registry, tmp_path: Path, phase: str) -> None:
    """One failing member in a batch of 64: the batch is run again in halves, and only the half that fails is
    halved again, so the tick commits about log2(64) batches on the way to the member (not 63 single ones); the
    other 63 are planned (or started) once and the one is an incident."""
    from regelwerk.scheduling.employees import EmployeeDirectory
    from regelwerk.scheduling.workflows import instance_id_for

    source = _Source() if phase == "plan" else _LaterSource()
    compiled = replace(bundle, objects={**bundle.objects, ("Test", "src"): source})
    BEHAVIOUR.clear()
    ids = [f"e{n:02d}" for n in range(64)]
    committed: list[int] = []

    def progress(name: str, done: int, total: int) -> None:
        if name == phase:
            committed.append(done)

    clock = Clock()
    with Engine(compiled, store=f"sqlite:///{tmp_path / 'halves.sqlite'}", registry=registry, clock=clock,
                permissions=ALLOW) as engine:
        EmployeeDirectory(engine.store.engine).upsert([{"id": i, "hire_date": "2020-01-01"} for i in ids], T0)
        prefix = "iso" if phase == "plan" else "later"
        if phase == "plan":
            source.fails = {"e41"}
        else:
            assert engine.tick(T0).total_created == 64  # planned, due tomorrow
            BEHAVIOUR[instance_id_for("later/e41")] = _raise(KeyError("no such field"))
        summary = engine.tick(T0 + timedelta(days=2), batch_size=64, progress=progress)
        assert summary.incidents == 1
        assert [(i.instance_id, i.event) for i in engine.incidents()] == [
            ("e41" if phase == "plan" else instance_id_for("later/e41"), f"tick:{phase}")]
        started = {i.id for i in engine.instances("entering")}
        assert started == {instance_id_for(f"{prefix}/{i}") for i in ids if i != "e41"}
        # 64 -> 32 (ok) + 32 -> 16 (ok) + 16 -> 8 + 8 -> ... -> 1 (the incident): at most two commits per halving
        assert 1 <= len(committed) <= 2 * 6, committed
        assert committed[-1] == 63


def test_an_incident_another_tick_recorded_meanwhile_is_resolved_by_the_batch_that_plans_its_member(
        bundle: CompiledBundle, registry: Registry, tmp_path: Path) -> None:
    """The open incidents a batch resolves are read in that batch's transaction: one that another tick recorded
    after this tick began (here: between two of its batches) is resolved when this tick plans its member."""
    from regelwerk.errors import PluginError
    from regelwerk.scheduling.employees import EmployeeDirectory
    from regelwerk.workflows.incidents import record_with_backoff

    source = _Source()
    compiled = replace(bundle, objects={**bundle.objects, ("Test", "src"): source})
    clock = Clock()
    with Engine(compiled, store=f"sqlite:///{tmp_path / 'meanwhile.sqlite'}", registry=registry, clock=clock,
                permissions=ALLOW) as engine:
        EmployeeDirectory(engine.store.engine).upsert(
            [{"id": f"e{n}", "hire_date": "2020-01-01"} for n in range(1, 5)], T0)
        now = T0 + timedelta(days=2)

        def progress(name: str, done: int, total: int) -> None:
            if name == "plan" and done == 1:  # after the first batch: "another tick" failed on e3 (an hour ago: its
                # retry is due)
                record_with_backoff(engine.store, PluginError("plan of 'e3'", LookupError("flaky"), "e3", "tick:plan"),
                                    now - timedelta(hours=1), engine.retry, data={"employee": "e3"})

        summary = engine.tick(now, batch_size=1, progress=progress)
        assert summary.employees_planned == 4 and summary.incidents == 0
        assert engine.incidents() == []
        [incident] = engine.incidents("resolved")
        assert (incident.instance_id, incident.note) == ("e3", "ran by the tick without failing")


def test_the_tick_summary_says_how_many_members_it_skipped_with_an_incident(
        bundle: CompiledBundle, registry: Registry, tmp_path: Path) -> None:
    """``regelwerk tick`` prints the summary: its JSON and its lines name the incidents."""
    from regelwerk.scheduling.employees import EmployeeDirectory

    source = _Source()
    source.fails = {"e2"}
    compiled = replace(bundle, objects={**bundle.objects, ("Test", "src"): source})
    with Engine(compiled, store=f"sqlite:///{tmp_path / 'summary.sqlite'}", registry=registry, clock=Clock(),
                permissions=ALLOW) as engine:
        EmployeeDirectory(engine.store.engine).upsert(
            [{"id": f"e{n}", "hire_date": "2020-01-01"} for n in range(1, 4)], T0)
        summary = engine.tick(T0 + timedelta(days=2))
        waited = engine.tick(T0 + timedelta(days=2, seconds=1))
    assert summary.as_dict()["incidents"] == 1
    assert any("incidents: 1" in line and "regelwerk incidents list" in line for line in summary.lines())
    assert summary.as_dict()["employees_planned"] == 2
    assert (waited.as_dict()["waiting"], waited.as_dict()["incidents"]) == (1, 0)
    assert any("waiting: 1" in line and "regelwerk incidents list" in line for line in waited.lines())


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_employee_whose_plan_keeps_failing_waits_for_a_person_after_the_engines_limit(
        bundle: CompiledBundle, registry: Registry, store: str, tmp_path: Path, request: pytest.FixtureRequest
        ) -> None:
    """The engine's ``RetryPolicy`` bounds a failing employee's automatic retries: after its last attempt the
    incident has no retry time, every later tick passes the employee over (it costs no transaction of its own)
    and the others are planned as they become due; a person's retry while the bug is still there is one more
    attempt (audited once), after the fix it plans the employee and resolves the incident."""
    from regelwerk.scheduling.employees import EmployeeDirectory

    source = _Source()
    source.fails = {"e2"}
    compiled = replace(bundle, objects={**bundle.objects, ("Test", "src"): source})
    clock = Clock()
    url = next(store_urls(_Param(store, request), tmp_path, "tickexhaust"))
    policy = RetryPolicy(attempts=2, backoff=timedelta(hours=1))
    with Engine(compiled, store=url, registry=registry, clock=clock, permissions=ALLOW, retry=policy) as engine:
        EmployeeDirectory(engine.store.engine).upsert(
            [{"id": f"e{n}", "hire_date": "2020-01-01"} for n in range(1, 4)], T0)
        clock.now = T0 + timedelta(days=2)
        assert engine.tick(clock.now).incidents == 1
        assert engine.tick(clock.now + timedelta(hours=1)).incidents == 1  # the second and last attempt
        [incident] = engine.incidents()
        assert (incident.attempts, incident.next_retry_at) == (2, None)
        calls = []
        source.plan = lambda employee, now, _plan=source.plan: calls.append(employee.id) or _plan(employee, now)
        for days in (3, 30):
            summary = engine.tick(T0 + timedelta(days=days))
            assert (summary.incidents, summary.waiting) == (0, 1) and "e2" not in calls
        assert engine.incidents()[0].attempts == 2
        clock.now = T0 + timedelta(days=31)
        after = engine.retry_incident(incident.id or 0, "ops")  # still failing: one more attempt, then a person's
        assert (after.status, after.attempts, after.next_retry_at) == ("open", 3, None)
        source.fails.clear()
        assert engine.retry_incident(incident.id or 0, "ops").status == "resolved"
        assert engine.incidents() == []
        audit = [a for a in engine.audit() if a.action.startswith("incident.")]
        assert [(a.action, a.actor) for a in audit] == [("incident.retry", "ops"), ("incident.retry", "ops"),
                                                        ("incident.resolve", "system")]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_members_backoff_follows_the_attempts_the_store_counted(tmp_path: Path, kind: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Attempt ``n`` of a tick member waits the policy's ``n``-th delay. Two units recording the same failure at once
    both read the open incident before either writes: the store counts the attempts under its lock, and the one
    that finds a higher count than it read sets the wait of that attempt."""
    from regelwerk.store.memory import MemoryStore, MemoryTx
    from regelwerk.store.sql import SqlStore, SqlTx
    from regelwerk.workflows.incidents import record_with_backoff

    store: Any = MemoryStore() if kind == "memory" else SqlStore(f"sqlite:///{tmp_path / 'backoff.sqlite'}")
    policy = RetryPolicy(attempts=4, backoff=timedelta(minutes=1), factor=4)

    def failure() -> PluginError:
        return PluginError("plan of 'e1'", LookupError("flaky"), "e1", "tick:plan")

    first = record_with_backoff(store, failure(), T0, policy, data={"employee": "e1"})
    assert (first.attempts, first.next_retry_at) == (1, T0 + timedelta(minutes=1))
    # the second unit's read misses the first's incident (it read before the first committed)
    monkeypatch.setattr(MemoryTx if kind == "memory" else SqlTx, "incidents", lambda self, *a, **k: [])
    record_with_backoff(store, failure(), T0, policy, data={"employee": "e1"})
    monkeypatch.undo()
    with store.transaction() as tx:
        [stored] = tx.incidents("open")
    assert (stored.attempts, stored.next_retry_at) == (2, T0 + timedelta(minutes=4))
    for attempt, wait in ((3, timedelta(minutes=16)), (4, None)):
        again = record_with_backoff(store, failure(), T0, policy)
        assert (again.attempts, again.next_retry_at) == (attempt, T0 + wait if wait is not None else None)


@pytest.mark.postgres
def test_two_units_recording_the_same_failure_at_once_keep_one_open_incident(
        bundle: CompiledBundle, registry: Registry, pg_url: str) -> None:
    """Two ticks (here: two units in two threads) fail on the same member at the same time: the second waits for
    the first's commit and counts an attempt on its incident instead of adding a second open one (which no tick
    would ever resolve)."""
    import threading

    from regelwerk.store.records import IncidentRecord
    from regelwerk.store.unit import UnitOfWork

    def record(at: datetime) -> IncidentRecord:
        return IncidentRecord("e7", "tick:plan", "builtins.LookupError", "no cycle", at, at, 1, "open", None,
                              "system", {"employee": "e7"}, None, "")

    with Engine(bundle, store=pg_url, registry=registry, clock=Clock(), permissions=ALLOW) as first, \
            Engine(bundle, store=pg_url, registry=registry, clock=Clock(), permissions=ALLOW) as second:
        added, release, errors = threading.Event(), threading.Event(), []

        def hold() -> None:
            try:
                with UnitOfWork(first.store) as uow:
                    uow.tx.add_incident(record(T0))
                    added.set()
                    release.wait(10)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
                added.set()

        holder = threading.Thread(target=hold)
        holder.start()
        assert added.wait(10)
        other = threading.Thread(target=lambda: _in_unit(second, record(T0 + timedelta(seconds=1))))
        other.start()
        other.join(0.5)
        waited = other.is_alive()  # the second recording waits for the first unit
        release.set()
        holder.join(10)
        other.join(10)
        assert not errors and waited
        [incident] = second.incidents()
        assert incident.attempts == 2 and incident.instance_id == "e7"


def _in_unit(engine: Engine, incident: Any) -> None:
    from regelwerk.store.unit import UnitOfWork

    with UnitOfWork(engine.store) as uow:
        uow.tx.add_incident(incident)


@pytest.mark.postgres
def test_two_units_storing_the_same_definition_version_at_once_both_succeed(
        bundle: CompiledBundle, registry: Registry, pg_url: str) -> None:
    """The first start of a workflow version in two processes at once: both store its definition, neither fails
    (the second's insert waits for the first and then does nothing)."""
    import threading

    from regelwerk.store.records import DefinitionRecord
    from regelwerk.store.unit import UnitOfWork

    definition = DefinitionRecord("Workflow", "reminder", "v-race", {"states": []}, T0)
    with Engine(bundle, store=pg_url, registry=registry, clock=Clock(), permissions=ALLOW) as first, \
            Engine(bundle, store=pg_url, registry=registry, clock=Clock(), permissions=ALLOW) as second:
        stored, release, errors = threading.Event(), threading.Event(), []

        def hold() -> None:
            with UnitOfWork(first.store) as uow:
                uow.tx.put_definition(definition)
                stored.set()
                release.wait(10)

        def store_again() -> None:
            try:
                with UnitOfWork(second.store) as uow:
                    uow.tx.put_definition(definition)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

        holder = threading.Thread(target=hold)
        holder.start()
        assert stored.wait(10)
        other = threading.Thread(target=store_again)
        other.start()
        other.join(0.5)
        release.set()
        holder.join(10)
        other.join(10)
        assert errors == []
        with second.store.read() as tx:
            assert tx.get_definition("Workflow", "reminder", "v-race") is not None


def test_more_open_incidents_than_a_batch_has_members_are_each_resolved_by_their_members_batch(
        bundle: CompiledBundle, registry: Registry, tmp_path: Path) -> None:
    """Most of the employees failed (a plugin bug for everybody, now fixed): the batches, smaller than the number of
    open incidents, read only their members' and resolve each incident once."""
    from regelwerk.scheduling.employees import EmployeeDirectory

    source = _Source()
    compiled = replace(bundle, objects={**bundle.objects, ("Test", "src"): source})
    ids = [f"e{n}" for n in range(1, 10)]
    with Engine(compiled, store=f"sqlite:///{tmp_path / 'many.sqlite'}", registry=registry, clock=Clock(),
                permissions=ALLOW) as engine:
        EmployeeDirectory(engine.store.engine).upsert([{"id": i, "hire_date": "2020-01-01"} for i in ids], T0)
        source.fails = set(ids[:7])
        assert engine.tick(T0 + timedelta(days=2), batch_size=3).incidents == 7
        source.fails.clear()
        summary = engine.tick(T0 + timedelta(days=3), batch_size=2)
        assert summary.incidents == 0 and summary.employees_planned == 7
        assert engine.incidents() == []
        resolved = engine.incidents("resolved")
        assert sorted(i.instance_id for i in resolved) == ids[:7]
        audit = [a for a in engine.audit() if a.action == "incident.resolve"]
        assert sorted(a.instance_id or "" for a in audit) == ids[:7]


def _refusal(name: str) -> BaseException:
    from regelwerk.errors import PermissionDenied, TransitionNotAllowed, UnknownInstance

    return {"UnknownInstance": lambda: UnknownInstance("elsewhere"),
            "TransitionNotAllowed": lambda: TransitionNotAllowed("elsewhere", "s", "go", ["no"]),
            "PermissionDenied": lambda: PermissionDenied("e9", "fire", "elsewhere"),
            "ConflictError": lambda: ConflictError("elsewhere", 1, 2, "s")}[name]()


class _RefusingSource(_Source):
    """A source whose plan raises one of regelwerk's refusals for the employees in ``fails`` (plugin code that
    calls the engine and passes its refusal on)."""

    refusal = "UnknownInstance"

    def plan(self, employee: Any, now: datetime) -> Any:
        if employee.id in self.fails:
            raise _refusal(self.refusal)
        return super().plan(employee, now)


@pytest.mark.parametrize("where", ["plan", "start"])
@pytest.mark.parametrize("refusal", ["UnknownInstance", "TransitionNotAllowed", "PermissionDenied", "ConflictError"])
def test_a_refusal_plugin_code_raises_in_a_tick_is_the_members_incident_not_a_stalled_tick(
        bundle: CompiledBundle, registry: Registry, tmp_path: Path, where: str, refusal: str) -> None:
    """An item source or a scheduled start's action that raises one of regelwerk's own refusals for one employee:
    that employee is an incident, the others are planned, the due timer fires, on every tick (it used to raise
    out of every tick from then on)."""
    from regelwerk.scheduling.employees import EmployeeDirectory
    from regelwerk.scheduling.workflows import instance_id_for

    source = _RefusingSource()
    source.refusal = refusal
    compiled = replace(bundle, objects={**bundle.objects, ("Test", "src"): source})
    BEHAVIOUR.clear()
    if where == "plan":
        source.fails = {"e2"}
    else:
        BEHAVIOUR[instance_id_for("iso/e2")] = _raise(_refusal(refusal))
    clock = Clock()
    with Engine(compiled, store=f"sqlite:///{tmp_path / 'refusal.sqlite'}", registry=registry, clock=clock,
                permissions=ALLOW) as engine:
        EmployeeDirectory(engine.store.engine).upsert(
            [{"id": f"e{n}", "hire_date": "2020-01-01"} for n in range(1, 6)], T0)
        engine.start("reminder", {}, "hr", "other")  # an unrelated timer, due tomorrow
        for day in (2, 3):
            clock.now = T0 + timedelta(days=day)
            summary = engine.tick(clock.now, batch_size=2)
            assert summary.incidents == 1
        assert [(i.instance_id, i.event, i.attempts) for i in engine.incidents()] == [("e2", "tick:plan", 2)]
        assert engine.get("other").state == "reminded"
        assert {i.id for i in engine.instances("entering")} == {instance_id_for(f"iso/e{n}") for n in (1, 3, 4, 5)}


def test_a_tick_incident_without_a_retry_time_and_with_attempts_left_is_due(
        bundle: CompiledBundle, registry: Registry, tmp_path: Path) -> None:
    """An open ``tick:plan`` incident recorded before members were retried with backoff has no retry time: with
    attempts left it is due (its member is planned, the incident resolved), not taken for one that waits for a
    person."""
    from regelwerk.errors import PluginError
    from regelwerk.scheduling.employees import EmployeeDirectory
    from regelwerk.workflows.incidents import record_incident

    source = _Source()
    compiled = replace(bundle, objects={**bundle.objects, ("Test", "src"): source})
    with Engine(compiled, store=f"sqlite:///{tmp_path / 'legacy.sqlite'}", registry=registry, clock=Clock(),
                permissions=ALLOW) as engine:
        EmployeeDirectory(engine.store.engine).upsert([{"id": "e1", "hire_date": "2020-01-01"}], T0)
        record_incident(engine.store, PluginError("plan of 'e1'", LookupError("old bug"), "e1", "tick:plan"), T0,
                        data={"employee": "e1"})
        summary = engine.tick(T0 + timedelta(days=2))
        assert (summary.employees_planned, summary.waiting, summary.incidents) == (1, 0, 0)
        assert engine.incidents() == []


class _DueSource(_Source):
    """Items of e1 due a day after T0, of e3 two days and 30 seconds after: planned at T0, due later."""

    def plan(self, employee: Any, now: datetime) -> Any:
        from regelwerk.scheduling.sources import Plan, PlannedItem

        due = T0 + (timedelta(days=1) if employee.id == "e1" else timedelta(days=2, seconds=30))
        return Plan(items=(PlannedItem(key=f"later/{employee.id}", source=self.source_id, item_type="moment",
                                       subject=employee.id, due_at=due, workflow="entering"),))


@pytest.mark.parametrize("phase", ["plan", "activate"])
def test_members_passed_over_in_a_batch_that_rolled_back_are_counted_once(
        bundle: CompiledBundle, registry: Registry, tmp_path: Path, phase: str) -> None:
    """A batch with a member whose incident waits and a member that fails on its own rolls back, and the tick goes
    on past both: the one passed over is still counted in ``TickSummary.waiting`` (once)."""
    from regelwerk.scheduling.employees import EmployeeDirectory
    from regelwerk.scheduling.workflows import instance_id_for

    source = _Source() if phase == "plan" else _DueSource()
    compiled = replace(bundle, objects={**bundle.objects, ("Test", "src"): source})
    BEHAVIOUR.clear()
    now = T0 + timedelta(days=2)
    with Engine(compiled, store=f"sqlite:///{tmp_path / 'counted.sqlite'}", registry=registry, clock=Clock(),
                permissions=ALLOW) as engine:
        directory = EmployeeDirectory(engine.store.engine)
        if phase == "plan":
            directory.upsert([{"id": e, "hire_date": "2020-01-01"} for e in ("e1", "e2")], T0)
            source.fails = {"e1"}
            assert engine.tick(now).incidents == 1  # e1 waits a minute now; e2 is planned
            directory.upsert([{"id": "e2", "hire_date": "2020-01-02"}], now)  # e2 is stale again, and fails
            source.fails = {"e1", "e2"}
        else:
            directory.upsert([{"id": e, "hire_date": "2020-01-01"} for e in ("e1", "e3")], T0)
            assert engine.tick(T0).total_created == 2  # planned, not due yet
            BEHAVIOUR[instance_id_for("later/e1")] = _raise(KeyError("first"))
            assert engine.tick(now).incidents == 1  # e1 waits ten minutes; e3 is not due yet
            BEHAVIOUR[instance_id_for("later/e3")] = _raise(KeyError("third"))
        summary = engine.tick(now + timedelta(seconds=30))  # one batch: e1 (waits), then the other (fails alone)
        assert (summary.waiting, summary.incidents) == (1, 1)
        assert sorted(i.attempts for i in engine.incidents()) == [1, 1]


def test_one_new_failure_behind_many_members_that_wait_costs_a_few_transactions(
        bundle: CompiledBundle, registry: Registry, tmp_path: Path) -> None:
    """The parts of a failed batch are sized by the rows a batch reads (the members passed over included), so one
    new failure behind 200 employees that wait for a person is found in about log2 of the batch, not by reading the
    whole batch again and again."""
    import sqlalchemy as sa
    from regelwerk.scheduling.employees import EmployeeDirectory

    source = _Source()
    compiled = replace(bundle, objects={**bundle.objects, ("Test", "src"): source})
    ids = [f"e{n:03d}" for n in range(211)]
    with Engine(compiled, store=f"sqlite:///{tmp_path / 'cost.sqlite'}", registry=registry, clock=Clock(),
                permissions=ALLOW, retry=RetryPolicy(attempts=1)) as engine:
        directory = EmployeeDirectory(engine.store.engine)
        directory.upsert([{"id": e, "hire_date": "2020-01-01"} for e in ids], T0)
        source.fails = set(ids[:200])
        assert engine.tick(T0 + timedelta(days=2)).incidents == 200  # used up at once: they wait for a person
        directory.upsert([{"id": e, "hire_date": "2020-01-02"} for e in ids[200:]], T0 + timedelta(days=2))
        source.fails = set(ids[:200]) | {ids[-1]}
        begun: list[int] = []
        sa.event.listen(engine.store.engine, "begin", lambda _conn: begun.append(1))
        summary = engine.tick(T0 + timedelta(days=3), batch_size=500)
    assert (summary.employees_planned, summary.incidents, summary.waiting) == (10, 1, 200)
    assert len(begun) <= 30, len(begun)


@pytest.mark.postgres
def test_a_resolve_and_a_retry_of_a_used_up_timers_incident_at_once_act_once(
        bundle: CompiledBundle, registry: Registry, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: a person resolves the incident of a timer out of attempts (``failed``) while another retries it,
    the retry's unit committing between the resolve's look at the timer and its write of the incident. The resolve
    locks the failed timer, so the retry waits for it and then finds the incident resolved: the timer stays failed
    and never fires. Before, the retry put the timer back to pending, the resolve closed the incident anyway, and
    the timer fired after the incident was closed by hand (both acted, both audited)."""
    import threading

    from regelwerk.store.sql import SqlTx

    clock = Clock()
    with Engine(bundle, store=pg_url, registry=registry, clock=clock, permissions=ALLOW,
                retry=RetryPolicy(attempts=1)) as alice, \
            Engine(bundle, store=pg_url, registry=registry, clock=clock, permissions=ALLOW,
                   retry=RetryPolicy(attempts=1)) as bob:
        alice.start("reminder", {}, "hr", "i1")
        BEHAVIOUR["i1"] = _raise(KeyError("bug"))
        clock.now = T0 + timedelta(days=2)
        alice.fire_due_timers(clock.now)
        [incident] = alice.incidents()
        assert [t.status for t in alice.timers("i1")] == ["failed"] and incident.id is not None
        BEHAVIOUR.clear()
        outcome: dict[str, str] = {}

        def retry() -> None:
            try:
                outcome["bob"] = bob.retry_incident(incident.id or 0, "bob").status
            except UsageError:
                outcome["bob"] = "refused"

        given_up = SqlTx.give_up_timer
        other = threading.Thread(target=retry)

        def give_up(self: SqlTx, *args: Any, **kwargs: Any) -> bool:
            done = given_up(self, *args, **kwargs)
            if threading.current_thread() is threading.main_thread() and not other.is_alive():
                other.start()
                other.join(3)  # the retry waits for the failed timer this unit locked (before: it committed)
            return done

        monkeypatch.setattr(SqlTx, "give_up_timer", give_up)
        assert alice.resolve_incident(incident.id, "alice", "wont fix").status == "resolved"
        other.join(30)
        assert outcome == {"bob": "refused"}
        assert alice.get("i1").state == "waiting" and [t.status for t in alice.timers("i1")] == ["failed"]
        clock.now += timedelta(days=1)
        bob.fire_due_timers(clock.now)
        assert alice.get("i1").state == "waiting"
        assert [(a.actor, a.action) for a in alice.audit("i1") if a.action.startswith("incident.")] == [
            ("alice", "incident.resolve")]


@pytest.mark.parametrize("raised", [ConflictError("other", 1, 2, "a"), InvalidData("no such amount", "/n"),
                                    "unknown"], ids=["conflict", "invalid", "unknown"])
def test_a_refusal_a_timers_action_raises_is_an_incident_retried_not_a_failed_timer(
        bundle: CompiledBundle, registry: Registry, tmp_path: Path, raised: Any) -> None:
    """A timer's action that passes on a refusal (a lost race, an instance it looked for, data that does not fit)
    fails the plugin's work, not the timer's own decision: the timer is put back with backoff and the failure is an
    incident, retried; once the cause is gone the retry fires it. Before, the timer was ``failed`` for good with
    an audit row and no incident, and nothing retried it."""
    from regelwerk.errors import UnknownInstance

    error = UnknownInstance("elsewhere") if raised == "unknown" else raised
    clock = Clock()
    with Engine(bundle, store=f"sqlite:///{tmp_path / 'refused.sqlite'}", registry=registry, clock=clock,
                permissions=ALLOW) as engine:
        engine.start("reminder", {}, "hr", "t1")
        engine.start("reminder", {}, "hr", "t2")
        BEHAVIOUR.clear()
        BEHAVIOUR["t1"] = _raise(error)
        clock.now = T0 + timedelta(days=2)
        engine.fire_due_timers(clock.now)
        [incident] = engine.incidents()
        assert (incident.instance_id, incident.event, incident.error_type) == (
            "t1", "remind", f"regelwerk.errors.{type(error).__name__}")
        assert [t.status for t in engine.timers("t1")] == ["pending"] and engine.get("t2").state == "reminded"
        BEHAVIOUR.clear()
        clock.now += timedelta(minutes=2)
        engine.fire_due_timers(clock.now)
        assert engine.get("t1").state == "reminded" and engine.incidents() == []


def test_a_guard_function_that_raises_is_a_plugin_error_in_explain_and_available_events(tmp_path: Path) -> None:
    """``explain`` and ``available_events`` (the service's read endpoints) type a raising condition function as a
    fire does (``PluginError``, the original chained): before, the raw ``KeyError`` escaped (HTTP 500)."""
    def broken() -> bool:
        raise KeyError("employee 7")

    registry = _with_function("iso.guard", broken)
    compiled: Any = compile_texts(tmp_path, {
        "bundle.yaml": "apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: g}\n",
        "w.yaml": """
            apiVersion: regelwerk/v1
            kind: Workflow
            metadata: {name: w}
            spec:
              states:
                - {id: a, initial: true}
                - {id: b}
              transitions:
                - {id: go, from: a, to: b, guard: {fn: iso.guard, args: []}}
        """}, registry)
    with Engine(compiled, store="memory://", registry=registry, clock=Clock(), permissions=ALLOW) as engine:
        engine.start("w", {}, "hr", "i1")
        for call in (lambda: engine.fire("i1", "go", "hr"), lambda: engine.explain("i1", "go", "hr"),
                     lambda: engine.available_events("i1", "hr")):
            with pytest.raises(PluginError) as raised:
                call()
            assert isinstance(raised.value.__cause__, KeyError)


def test_a_second_retry_of_a_timers_incident_before_its_timer_fired_is_refused(
        bundle: CompiledBundle, registry: Registry, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two people retry one timer's incident: alice's retry unit commits (the timer due now), then bob's whole retry
    runs before alice's fire of the due timers. The second is refused (``UsageError``, nothing written): the event
    fires once and the retry is audited once, by alice. Before, both were accepted and audited, and alice was
    told "resolved" for a fire bob's call did."""
    clock = Clock()
    with Engine(bundle, store=url, registry=registry, clock=clock, permissions=ALLOW) as engine:
        engine.start("reminder", {}, "hr", "i1")
        BEHAVIOUR["i1"] = _raise(KeyError("bug"))
        clock.now = T0 + timedelta(days=2)
        engine.fire_due_timers(clock.now)
        [incident] = engine.incidents()
        assert incident.id is not None and [t.status for t in engine.timers("i1")] == ["pending"]
        BEHAVIOUR.clear()
        fire = engine.fire_due_timers
        refused: list[str] = []

        def bob_first(now: Any = None, *args: Any, **kwargs: Any) -> Any:
            monkeypatch.setattr(engine, "fire_due_timers", fire)
            before = engine.timers("i1")
            with pytest.raises(UsageError, match="a retry asked by alice is waiting") as caught:
                engine.retry_incident(incident.id or 0, "bob")
            refused.append(str(caught.value))
            assert engine.timers("i1") == before  # the refused retry wrote nothing
            return fire(now, *args, **kwargs)

        monkeypatch.setattr(engine, "fire_due_timers", bob_first)
        assert engine.retry_incident(incident.id, "alice").status == "resolved"
        assert refused and engine.get("i1").state == "reminded"
        assert [h.event for h in engine.history("i1")].count("remind") == 1
        assert [(a.actor, a.action) for a in engine.audit("i1") if a.action.startswith("incident.")] == [
            ("alice", "incident.retry")]
        # a retry that fired and failed again may be retried again
        engine.start("reminder", {}, "hr", "i2")
        BEHAVIOUR["i2"] = _raise(KeyError("bug"))
        clock.now += timedelta(days=2)
        engine.fire_due_timers(clock.now)
        [second] = engine.incidents()
        assert engine.retry_incident(second.id or 0, "alice").attempts == 2
        BEHAVIOUR.clear()
        assert engine.retry_incident(second.id or 0, "bob").status == "resolved"


@pytest.mark.postgres
def test_two_retries_of_a_timers_incident_at_once_on_postgresql_reschedule_it_once(
        bundle: CompiledBundle, registry: Registry, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: bob's retry unit reads the timer, then waits on alice's uncommitted reschedule of it; when alice
    commits, bob's conditional write finds her note and changes nothing (refused), so one retry is audited."""
    import threading

    from regelwerk.store.sql import SqlTx

    clock = Clock()
    with Engine(bundle, store=pg_url, registry=registry, clock=clock, permissions=ALLOW) as alice, \
            Engine(bundle, store=pg_url, registry=registry, clock=clock, permissions=ALLOW) as bob:
        alice.start("reminder", {}, "hr", "i1")
        BEHAVIOUR["i1"] = _raise(KeyError("bug"))
        clock.now = T0 + timedelta(days=2)
        alice.fire_due_timers(clock.now)
        [incident] = alice.incidents()
        BEHAVIOUR.clear()
        outcome: dict[str, str] = {}

        def retry() -> None:
            try:
                outcome["bob"] = bob.retry_incident(incident.id or 0, "bob").status
            except UsageError as exc:
                outcome["bob"] = f"refused: {exc}"

        reschedule = SqlTx.reschedule_timer
        other = threading.Thread(target=retry)

        def held(self: SqlTx, *args: Any, **kwargs: Any) -> bool:
            done = reschedule(self, *args, **kwargs)
            if threading.current_thread() is threading.main_thread() and not other.is_alive():
                other.start()
                other.join(2)  # bob read the timer and now waits for the row alice's unit holds
            return done

        monkeypatch.setattr(SqlTx, "reschedule_timer", held)
        assert alice.retry_incident(incident.id or 0, "alice").status == "resolved"
        other.join(30)
        assert outcome["bob"].startswith("refused"), outcome
        assert [h.event for h in alice.history("i1")].count("remind") == 1
        assert [(a.actor, a.action) for a in alice.audit("i1") if a.action.startswith("incident.")] == [
            ("alice", "incident.retry")]


def test_an_id_the_engine_gives_a_scheduled_item_is_refused_to_a_start_that_names_it(bundle: CompiledBundle,
                                                                                       registry: Registry) -> None:
    """``sched-...`` ids are the instances the tick starts for scheduled items: a caller that could take one first
    would have the tick take its instance (its data, its people) for another person's moment. Refused before
    anything is written; any other id, and no id, start as before."""
    from regelwerk.scheduling.workflows import instance_id_for

    with Engine(bundle, store="memory://", registry=registry, permissions=ALLOW) as engine:
        taken = instance_id_for("iso/e1")
        with pytest.raises(UsageError, match="reserved"):
            engine.start("entering", {"scheduled_item": "iso/e1"}, "hr", taken)
        with pytest.raises(UsageError, match="reserved"):
            engine.start("reminder", {}, "hr", "sched-anything")
        assert engine.instances() == [] and engine.audit() == []
        assert engine.start("reminder", {}, "hr", "schedule-1").id == "schedule-1"


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_instance_under_a_scheduled_items_id_that_is_not_its_own_is_not_taken_for_it(
        bundle: CompiledBundle, registry: Registry, store: str, tmp_path: Path, request: pytest.FixtureRequest
        ) -> None:
    """The tick found an instance under an item's id that another workflow, or a start for another key, left there
    (written around the engine, or before its ids were reserved): it is not taken for the item's. That member's
    start fails with ``IdInUse`` (its incident), the instance is left as it was, and the others start."""
    from regelwerk.scheduling.employees import EmployeeDirectory
    from regelwerk.scheduling.workflows import instance_id_for
    from regelwerk.store.records import InstanceRecord

    source = _Source()
    compiled = replace(bundle, objects={**bundle.objects, ("Test", "src"): source})
    BEHAVIOUR.clear()
    clock = Clock()
    url = next(store_urls(_Param(store, request), tmp_path, "tickids"))
    with Engine(compiled, store=url, registry=registry, clock=clock, permissions=ALLOW) as engine:
        EmployeeDirectory(engine.store.engine).upsert(
            [{"id": f"e{n}", "hire_date": "2020-01-01"} for n in range(1, 5)], T0)
        planted = {instance_id_for("iso/e2"): ("reminder", {"scheduled_item": "iso/e2"}),  # another workflow
                   instance_id_for("iso/e3"): ("entering", {"scheduled_item": "iso/e9"})}  # another item's
        version = engine.start("entering", {}, "hr", "probe").definition_version
        with engine.store.transaction() as tx:
            for iid, (workflow, data) in planted.items():
                tx.insert(InstanceRecord(iid, workflow, version, "waiting", data, 7, T0, T0, "intruder"))
        summary = engine.tick(T0 + timedelta(days=1), batch_size=4)
        assert summary.incidents == 2
        assert sorted((i.instance_id, i.error_type) for i in engine.incidents()) == [
            ("e2", "regelwerk.errors.IdInUse"), ("e3", "regelwerk.errors.IdInUse")]
        for iid, (workflow, data) in planted.items():  # left as they were
            kept = engine.get(iid)
            assert (kept.workflow, dict(kept.data), kept.version, kept.created_by) == (workflow, data, 7, "intruder")
        started = {i.id for i in engine.instances("entering")}
        assert {instance_id_for("iso/e1"), instance_id_for("iso/e4")} <= started


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_instance_started_between_the_ticks_existence_query_and_its_insert_stops_nothing(
        bundle: CompiledBundle, registry: Registry, store: str, tmp_path: Path, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A start of the same id that lands after the batch asked which ids exist (a concurrent start) fails the
    batch's insert: that is ``IdInUse`` of the batch, which rolls back and runs again in parts, not a database
    error that stops the tick. Here the other start is the batch's own transaction's, so it rolls back too and
    every item is then started once, without an incident."""
    from regelwerk.scheduling import batch
    from regelwerk.scheduling.employees import EmployeeDirectory
    from regelwerk.scheduling.workflows import instance_id_for
    from regelwerk.store.records import InstanceRecord

    source = _Source()
    compiled = replace(bundle, objects={**bundle.objects, ("Test", "src"): source})
    BEHAVIOUR.clear()
    url = next(store_urls(_Param(store, request), tmp_path, "tickrace"))
    real, raced = batch.existing_ids, []

    def racing(tx: Any, ids: Any) -> set[str]:
        found = real(tx, ids)
        if not raced:  # the first batch: its second id is started by "someone else" right after the query
            iid = sorted(set(ids))[1]
            raced.append(iid)
            tx.insert(InstanceRecord(iid, "entering", version, "begun", {}, 1, T0, T0, "racer"))
        return found

    monkeypatch.setattr(batch, "existing_ids", racing)
    with Engine(compiled, store=url, registry=registry, permissions=ALLOW) as engine:
        EmployeeDirectory(engine.store.engine).upsert(
            [{"id": f"e{n}", "hire_date": "2020-01-01"} for n in range(1, 5)], T0)
        version = engine.start("reminder", {}, "hr", "probe").definition_version
        summary = engine.tick(T0 + timedelta(days=1), batch_size=4)
        assert raced and summary.incidents == 0 and engine.incidents() == []
        started = engine.instances("entering")
        assert sorted(i.id for i in started) == sorted(instance_id_for(f"iso/e{n}") for n in range(1, 5))
        assert {i.created_by for i in started} == {"system"}
