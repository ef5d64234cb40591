"""The workflow runtime (Engine) on the memory store and a SQLite file (internal transitions also on PostgreSQL)."""

from __future__ import annotations

import gc
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _stores import STORES, store_urls
from regelwerk.actors import Actor
from regelwerk.bundle import load_bundle
from regelwerk.compiler import CompiledBundle, compile_bundle
from regelwerk.errors import (
    ActionFailed,
    ConflictError,
    InvalidData,
    PermissionDenied,
    TransitionNotAllowed,
    UnknownInstance,
)
from regelwerk.permissions.policies import UnsafeAllowAll
from regelwerk.registry import ActionSpec, Registry, load_registry
from regelwerk.runtime import Engine
from regelwerk.store.memory import MemoryStore
from regelwerk.workflows.ports import RoleTable

ROOT = Path(__file__).resolve().parent.parent
STANDARD_WORKFLOWS = ROOT / "definitions" / "standard" / "workflows"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ANNA = Actor("anna", ("medewerker",))
BERT = Actor("bert", ("leidinggevende",))
PERMS = RoleTable({"declaration.start": ["medewerker"], "declaration.submit": ["medewerker"],
                   "declaration.approve": ["leidinggevende"]})


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def core() -> Registry:
    return load_registry(use_entry_points=False)


@pytest.fixture(scope="module")
def declaration(core: Registry) -> CompiledBundle:
    return compile_bundle(load_bundle(STANDARD_WORKFLOWS), core)


@pytest.fixture(params=["memory", "sqlite"])
def engine(request: Any, declaration: CompiledBundle, core: Registry, sqlite_url: str) -> Any:
    store = "memory://" if request.param == "memory" else sqlite_url
    eng = Engine(declaration, store=store, registry=core, clock=Clock(), permissions=PERMS)
    yield eng
    eng.close()


def compile_text(tmp_path: Path, text: str, registry: Registry, name: str = "wf") -> CompiledBundle:
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    (folder / "wf.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return compile_bundle(load_bundle(folder), registry)


def test_start_fire_and_history(engine: Engine) -> None:
    inst = engine.start("declaration", {"employee": "anna", "amount": 20}, ANNA, "d1")
    assert (inst.state, inst.version, inst.definition_version) == ("draft", 1, engine.current_version("declaration"))
    done = engine.fire("d1", "submit", ANNA)
    assert done.state == "submitted" and done.version == 2
    assert done.data["submitted_at"] == T0.isoformat()  # on_enter action workflow.set
    engine.fire("d1", "approve", BERT)
    rows = engine.history("d1")
    assert [(h.event, h.from_state, h.to_state, h.actor) for h in rows] == [
        ("$start", "", "draft", "anna"), ("submit", "draft", "submitted", "anna"),
        ("approve", "submitted", "approved", "bert")]
    approve = rows[-1]
    assert approve.explain["permission"]["action"] == "declaration.approve"
    assert approve.explain["permission"]["explain"]["roles"] == ["leidinggevende"]
    assert rows[1].explain["guard"].startswith("(data.amount le 50 or")
    assert all(h.definition_version == inst.definition_version for h in rows)
    assert [a.action for a in engine.audit("d1")] == ["declaration.approved"]


def test_guard_refusal_has_reasons(engine: Engine) -> None:
    engine.start("declaration", {"employee": "anna", "amount": 120}, ANNA, "d1")
    with pytest.raises(TransitionNotAllowed) as info:
        engine.fire("d1", "submit", ANNA)
    assert info.value.state == "draft" and info.value.event == "submit"
    assert "data.receipt eq True is false" in " ".join(info.value.reasons)
    assert engine.get("d1").version == 1
    assert engine.fire("d1", "submit", ANNA, {"receipt": True}).state == "submitted"


def test_wrong_state_and_unknown_event(engine: Engine) -> None:
    engine.start("declaration", {"employee": "anna", "amount": 20}, ANNA, "d1")
    with pytest.raises(TransitionNotAllowed, match="fires from: submitted"):
        engine.fire("d1", "approve", BERT)
    with pytest.raises(TransitionNotAllowed, match="no event 'fly'"):
        engine.fire("d1", "fly", BERT)
    with pytest.raises(UnknownInstance):
        engine.fire("nope", "submit", ANNA)


def test_permission_denied_is_audited_and_changes_nothing(engine: Engine) -> None:
    engine.start("declaration", {"employee": "anna", "amount": 20}, ANNA, "d1")
    engine.fire("d1", "submit", ANNA)
    with pytest.raises(PermissionDenied) as info:
        engine.fire("d1", "approve", ANNA)
    assert info.value.action == "declaration.approve" and info.value.actor == "anna"
    assert info.value.explanation["needs_one_of"] == ["leidinggevende"]
    assert engine.get("d1").state == "submitted"
    denied = [a for a in engine.audit("d1") if a.action == "workflow.permission_denied"]
    assert len(denied) == 1 and denied[0].actor == "anna" and denied[0].detail["event"] == "approve"


def test_invalid_data_has_a_pointer(engine: Engine) -> None:
    with pytest.raises(InvalidData) as info:
        engine.start("declaration", {"employee": "anna", "amount": -5}, ANNA)
    assert info.value.pointer == "/amount"
    engine.start("declaration", {"employee": "anna", "amount": 5}, ANNA, "d1")
    with pytest.raises(InvalidData) as info:
        engine.fire("d1", "submit", ANNA, {"receipt": "yes"})
    assert info.value.pointer == "/receipt"


def test_available_events_and_explain(engine: Engine) -> None:
    engine.start("declaration", {"employee": "anna", "amount": 120}, ANNA, "d1")
    options = {o.event: o for o in engine.available_events("d1", ANNA)}
    assert set(options) == {"submit", "withdraw"}
    assert not options["submit"].allowed and "data.receipt" in options["submit"].reasons[0]
    assert options["withdraw"].allowed and options["withdraw"].to == "withdrawn"
    as_bert = {o.event: o for o in engine.available_events("d1", BERT)}
    assert not as_bert["withdraw"].allowed and "lacks permission" in as_bert["withdraw"].reasons[0]
    explained = engine.explain("d1", "submit", ANNA, {"receipt": True})
    assert explained["allowed"] and explained["to"] == "submitted"
    assert explained["candidates"][0]["permission"]["allowed"] is True
    assert not engine.explain("d1", "approve", BERT)["allowed"]


def test_expected_version_conflict(engine: Engine) -> None:
    engine.start("declaration", {"employee": "anna", "amount": 20}, ANNA, "d1")
    engine.fire("d1", "submit", ANNA, expected_version=1)
    with pytest.raises(ConflictError) as info:
        engine.fire("d1", "withdraw", ANNA, expected_version=1)
    assert (info.value.current_version, info.value.current_state) == (2, "submitted")


def test_timer_fires_once_and_is_cancelled_on_leaving(engine: Engine) -> None:
    clock: Clock = engine.clock  # type: ignore[assignment]
    engine.start("declaration", {"employee": "anna", "amount": 20}, ANNA, "late")
    engine.start("declaration", {"employee": "anna", "amount": 20}, ANNA, "quick")
    engine.fire("late", "submit", ANNA)
    engine.fire("quick", "submit", ANNA)
    engine.fire("quick", "approve", BERT)
    assert engine.fire_due_timers(T0 + timedelta(days=13)) == []
    fired = engine.fire_due_timers(T0 + timedelta(days=14))
    assert [(o.instance_id, o.event, o.status) for o in fired] == [("late", "expire", "fired")]
    assert engine.fire_due_timers(T0 + timedelta(days=30)) == []
    assert engine.get("late").state == "draft"
    assert engine.history("late")[-1].actor == "system"
    assert [t.status for t in engine.timers("quick")] == ["cancelled"]
    assert clock.now == T0


def test_batch_is_one_unit_of_work(engine: Engine) -> None:
    for i in range(3):
        engine.start("declaration", {"employee": "anna", "amount": 20}, ANNA, f"d{i}")
    records = engine.fire_batch([("d0", "submit", ANNA), {"instance": "d1", "event": "submit", "actor": ANNA}])
    assert [r.state for r in records] == ["submitted", "submitted"]
    with pytest.raises(TransitionNotAllowed) as info:
        engine.fire_batch([("d2", "submit", ANNA), ("d0", "submit", ANNA)])
    assert info.value.batch_index == 1  # type: ignore[attr-defined]
    assert engine.get("d2").state == "draft"  # rolled back with the failing item
    assert [h.event for h in engine.history("d2")] == ["$start"]


def test_failing_action_rolls_everything_back(tmp_path: Path, core: Registry) -> None:
    registry = Registry()
    for table in ("kinds", "actions", "functions", "steps", "stores"):
        getattr(registry, table).update(getattr(core, table))
    writes: list[str] = []

    def explode(ctx: Any) -> None:
        ctx.audit("before.explosion")
        ctx.schedule_timer("go", after="P1D")
        writes.append(ctx.phase)
        raise RuntimeError("boom")

    registry.add_action(ActionSpec("test.explode", "test", explode))
    bundle = compile_text(tmp_path, """
        apiVersion: regelwerk/v1
        kind: Workflow
        metadata: {name: boom}
        spec:
          states:
            - {id: a, initial: true}
            - {id: b, final: true, on_enter: [test.explode]}
          transitions:
            - {id: go, from: a, to: b}
    """, registry)
    for store in ("memory://", f"sqlite:///{tmp_path / 'boom.sqlite'}"):
        with Engine(bundle, store=store, registry=registry, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
            eng.start("boom", {}, "u", "x")
            with pytest.raises(ActionFailed) as failed:
                eng.fire("x", "go", "u")
            assert isinstance(failed.value.__cause__, RuntimeError)
            assert failed.value.error_type == "builtins.RuntimeError"
            assert eng.get("x").state == "a" and eng.get("x").version == 1
            assert eng.audit("x") == [] and eng.timers("x") == []
            assert [h.event for h in eng.history("x")] == ["$start"]
            [incident] = eng.incidents()
            assert (incident.instance_id, incident.event, incident.error_type, incident.message, incident.attempts,
                    incident.actor) == ("x", "go", "builtins.RuntimeError", "boom", 1, "u")
    assert writes == ["enter", "enter"]


WF_V1 = """
    apiVersion: regelwerk/v1
    kind: Workflow
    metadata: {name: review}
    spec:
      states:
        - {id: open, initial: true}
        - {id: checking}
        - {id: done, final: true}
      transitions:
        - {id: check, from: open, to: checking}
        - {id: finish, from: checking, to: done}
"""
WF_V2 = """
    apiVersion: regelwerk/v1
    kind: Workflow
    metadata: {name: review}
    spec:
      data_schema: {type: object, required: [owner]}
      states:
        - {id: open, initial: true}
        - {id: reviewing}
        - {id: done, final: true}
      transitions:
        - {id: review, from: open, to: reviewing}
        - {id: finish, from: reviewing, to: done}
"""


def test_pinned_versions_and_migration(tmp_path: Path, core: Registry) -> None:
    url = f"sqlite:///{tmp_path / 'pin.sqlite'}"
    v1 = compile_text(tmp_path, WF_V1, core, "v1")
    with Engine(v1, store=url, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
        eng.start("review", {"owner": "x"}, "u", "a")
        eng.start("review", {"owner": "x"}, "u", "b")
        eng.fire("b", "check", "u")
        eng.start("review", {}, "u", "c")
    v2 = compile_text(tmp_path, WF_V2, core, "v2")
    with Engine(v2, store=url, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
        old = eng.get("a").definition_version
        assert old != eng.current_version("review")
        # a running instance keeps its version: it still fires v1's events
        assert eng.fire("a", "check", "u").state == "checking"
        assert eng.fire("a", "finish", "u").state == "done"
        plan = {i.instance_id: i for i in eng.migrate_plan("review")}
        assert plan["b"].action == "blocked" and "checking" in plan["b"].problems[0]
        assert plan["c"].action == "blocked" and "owner" in plan["c"].problems[0]
        assert plan["a"].action == "keep"
        mapped = {i.instance_id: i for i in eng.migrate_plan("review", {"checking": "reviewing"})}
        assert mapped["b"].action == "map" and mapped["b"].target_state == "reviewing"
        applied = {i.instance_id: i for i in eng.migrate_apply("review", {"checking": "reviewing"}, actor="admin")}
        assert applied["b"].applied and applied["a"].applied and not applied["c"].applied
        b = eng.get("b")
        assert b.definition_version == eng.current_version("review") and b.state == "reviewing"
        assert eng.history("b")[-1].event == "$migrate" and eng.history("b")[-1].actor == "admin"
        assert [a.action for a in eng.audit("b")] == ["workflow.migrate"]
        assert eng.fire("b", "finish", "u").state == "done"
        assert eng.get("c").definition_version == old
        assert [i.instance_id for i in eng.migrate_plan("review")] == ["c"]


def test_one_machine_per_version_and_no_models(tmp_path: Path, declaration: CompiledBundle, core: Registry) -> None:
    eng = Engine(declaration, store=MemoryStore(), registry=core, clock=Clock(), permissions=PERMS)
    for i in range(200):
        eng.start("declaration", {"employee": "e", "amount": 1}, ANNA, f"d{i}")
        eng.fire(f"d{i}", "submit", ANNA)
    assert len(eng._runtimes) == 1
    machine = next(iter(eng._runtimes.values())).machine.machine
    assert machine.models == []
    gc.collect()


def test_thread_safety_of_fire(tmp_path: Path, declaration: CompiledBundle, core: Registry) -> None:
    import threading

    eng = Engine(declaration, store=f"sqlite:///{tmp_path / 't.sqlite'}", registry=core, clock=Clock(),
                 permissions=PERMS)
    for i in range(20):
        eng.start("declaration", {"employee": "e", "amount": 1}, ANNA, f"d{i}")
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(offset, 20, 4):
                eng.fire(f"d{i}", "submit", ANNA)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert {r.state for r in eng.instances("declaration")} == {"submitted"}
    eng.close()


CHAIN = """
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: parent}
spec:
  start_permission: parent.start
  data_schema:
    type: object
    properties: {child: {type: string}}
  states:
    - {id: open, initial: true, after: [{duration: P7D, event: expire}]}
    - id: expired
      final: true
      on_enter:
        - {action: workflow.fire, with: {event: close, instance_field: data.child}}
    - {id: done, final: true}
  transitions:
    - {id: expire, from: open, to: expired}
    - id: finish
      from: open
      to: done
      permission: parent.finish
      actions:
        - {action: workflow.fire, with: {event: close, instance_field: data.child}}
---
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: child}
spec:
  start_permission: child.start
  states:
    - {id: open, initial: true}
    - {id: closed, final: true}
  transitions:
    - {id: close, from: open, to: closed, permission: child.close}
"""


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_workflow_fire_chained_from_a_timer_runs_as_the_system(tmp_path: Path, core: Registry, store: str) -> None:
    """A timer's transition has no person to decide for: its chained fire goes on as the system."""
    bundle = compile_text(tmp_path, CHAIN, core)
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path}/chain.sqlite"
    policy = RoleTable({"parent.start": ["medewerker"], "child.start": ["medewerker"],
                        "parent.finish": ["medewerker"]})  # nobody may close a child by hand
    clock = Clock()
    with Engine(bundle, store=url, registry=core, clock=clock, permissions=policy) as eng:
        eng.start("child", {}, ANNA, "c1")
        eng.start("parent", {"child": "c1"}, ANNA, "p1")
        clock.now = T0 + timedelta(days=8)
        eng.fire_due_timers(clock.now)
        assert eng.get("p1").state == "expired"
        assert eng.get("c1").state == "closed"
        assert [(h.event, h.actor) for h in eng.history("c1")][-1] == ("close", "system")
        # a person's fire chains as that person, decided by the policy: refused, the child stays open. The
        # parent's own change committed before the chained fire: the person's fire succeeds, the refused chained
        # fire is audited once and becomes an incident on the child (retried as the same person)
        eng.start("child", {}, ANNA, "c2")
        eng.start("parent", {"child": "c2"}, ANNA, "p2")
        assert eng.fire("p2", "finish", ANNA).state == "done"
        assert eng.get("p2").state == "done"
        assert eng.get("c2").state == "open"
        [incident] = eng.incidents("open", "c2")
        assert (incident.event, incident.actor, incident.error_type) == (
            "close", ANNA.id, "regelwerk.errors.PermissionDenied")
        assert [a.action for a in eng.audit("c2") if a.action == "workflow.permission_denied"] == [
            "workflow.permission_denied"]
    if store == "memory":
        return
    # the same store under an engine without any policy: a person's fire is refused
    with Engine(bundle, store=url, registry=core, clock=clock) as bare:
        assert bare.runtime.permissions.__class__.__name__ == "NoPolicy"
        with pytest.raises(PermissionDenied):
            bare.fire("c2", "close", ANNA)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_a_system_only_event_is_the_timers_alone(tmp_path: Path, declaration: CompiledBundle, core: Registry,
                                                  store: str) -> None:
    """declaration.expire (system_only): no person fires it, whatever the policy grants; the timer still does."""
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path}/system.sqlite"
    everyone = RoleTable({"declaration.start": ["medewerker"], "declaration.submit": ["medewerker"],
                          "declaration.approve": ["leidinggevende"], "declaration.expire": ["medewerker",
                                                                                            "leidinggevende"]})
    clock = Clock()
    with Engine(declaration, store=url, registry=core, clock=clock, permissions=everyone) as eng:
        eng.start("declaration", {"employee": "anna", "amount": 20}, ANNA, "d1")
        eng.fire("d1", "submit", ANNA)
        with pytest.raises(PermissionDenied) as refused:
            eng.fire("d1", "expire", BERT)
        assert refused.value.explanation["by"] == "system-only"
        assert eng.get("d1").state == "submitted" and eng.get("d1").version == 2
        denials = [a for a in eng.audit("d1") if a.action == "workflow.permission_denied"]
        assert [(a.actor, a.detail["event"]) for a in denials] == [("bert", "expire")]
        assert "expire" not in [o.event for o in eng.available_events("d1", BERT)]
        explained = eng.explain("d1", "expire", BERT)
        assert not explained["allowed"] and "only the system" in explained["reasons"][0]
        with pytest.raises(PermissionDenied):  # nor inside a batch
            eng.fire_batch([("d1", "expire", ANNA)])
        fired = eng.fire_due_timers(T0 + timedelta(days=14))
        assert [(o.instance_id, o.event, o.status) for o in fired] == [("d1", "expire", "fired")]
        assert eng.get("d1").state == "draft" and eng.history("d1")[-1].actor == "system"


TWO_TIMERS = """
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: nudge}
spec:
  states:
    - id: waiting
      initial: true
      after: [{duration: P1D, event: remind}, {duration: P2D, event: expire}]
    - {id: reminded}
    - {id: expired, final: true}
  transitions:
    - {id: remind, from: waiting, to: reminded, system_only: true}
    - {id: expire, from: [waiting, reminded], to: expired, system_only: true}
"""


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_a_timer_whose_state_was_left_in_the_same_batch_does_not_fire(tmp_path: Path, core: Registry,
                                                                       store: str) -> None:
    """Both timers of 'waiting' are due when the tick comes late: remind leaves the state, so expire (a timer of
    'waiting') is cancelled, not fired on 'reminded' (leaving a state cancels its timers)."""
    bundle = compile_text(tmp_path, TWO_TIMERS, core)
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path}/nudge.sqlite"
    with Engine(bundle, store=url, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
        eng.start("nudge", {}, ANNA, "n1")
        outcomes = eng.fire_due_timers(T0 + timedelta(days=3))
        assert [(o.event, o.status) for o in outcomes] == [("remind", "fired"), ("expire", "cancelled")]
        assert eng.get("n1").state == "reminded"
        assert sorted(t.status for t in eng.timers("n1")) == ["cancelled", "fired"]



@pytest.mark.parametrize(("batch_size", "note"), [(100, "state 'waiting' left before it fired"), (1, "")])
def test_a_state_left_by_a_timer_cancels_its_other_timers_unless_its_batch_claimed_them(
        tmp_path: Path, core: Registry, url: str, batch_size: int, note: str) -> None:
    """Remind leaves 'waiting': its other timer (expire) is cancelled. Claimed in remind's batch (all of the
    instance's cancellable timers are), the cancel is left out and expire finishes itself, cancelled with its note;
    claimed in a later batch (batch size 1: the instance has a cancellable timer its batch did not claim), the cancel
    of leaving the state writes it, without a note. No expire fires either way."""
    bundle = compile_text(tmp_path, TWO_TIMERS, core)
    with Engine(bundle, store=url, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
        eng.start("nudge", {}, ANNA, "n1")
        outcomes = eng.fire_due_timers(T0 + timedelta(days=3), batch_size=batch_size)
        assert [(o.event, o.status) for o in outcomes] == [("remind", "fired")] + (
            [("expire", "cancelled")] if batch_size > 1 else [])
        assert eng.get("n1").state == "reminded"
        assert [(t.event, t.status, t.note) for t in eng.timers("n1")] == [("remind", "fired", ""),
                                                                           ("expire", "cancelled", note)]


PING_PONG = """
    apiVersion: regelwerk/v1
    kind: Workflow
    metadata: {name: pingpong}
    spec:
      data_schema: {type: object, properties: {start_date: {type: string, format: date}}}
      states:
        - id: ping
          initial: true
          on_enter:
            - {action: workflow.schedule, with: {event: to_pong, schedule: {anchor: data.start_date}}}
        - id: pong
          on_enter:
            - {action: workflow.schedule, with: {event: to_ping, schedule: {anchor: data.start_date}}}
      transitions:
        - {id: to_pong, from: ping, to: pong, system_only: true}
        - {id: to_ping, from: pong, to: ping, system_only: true}
"""


COUNTER = """
    apiVersion: regelwerk/v1
    kind: Workflow
    metadata: {name: counter}
    spec:
      states:
        - id: counting
          initial: true
          after:
            - {duration: PT1M, event: tock}
      transitions:
        - {id: poke, from: counting, to: counting}
        - {id: tock, from: counting, to: counting, system_only: true}
"""


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_a_timer_a_person_set_again_meanwhile_is_new_work_not_a_loop(tmp_path: Path, core: Registry, store: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop guard takes only what the call's own firing set again: between two batches of one fire_due_timers
    call, another worker's poke (its clock at T0) re-enters the state and sets the timer for the moment that just
    fired (T0 + 1 min). That timer is new work and fires; keyed on (instance, state, event, moment) alone it failed
    as a loop (seen in the five-process concurrency test on PostgreSQL)."""
    from regelwerk.store.unit import UnitOfWork

    bundle = compile_text(tmp_path, COUNTER, core)
    shared: Any = MemoryStore() if store == "memory" else f"sqlite:///{tmp_path}/counter.sqlite"
    with Engine(bundle, store=shared, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng, \
            Engine(bundle, store=shared if store == "memory" else str(shared), registry=core, clock=Clock(),
                   permissions=UnsafeAllowAll()) as other:
        eng.start("counter", {}, ANNA, "c1")
        original = UnitOfWork.run_post
        poked: list[int] = []

        def run_post(self: Any, failed: Any = None) -> None:  # after a batch committed: the other worker pokes once
            original(self, failed)
            if not poked:
                poked.append(0)  # the poke's own unit passes here too
                poked[0] = other.fire("c1", "poke", ANNA).version

        monkeypatch.setattr(UnitOfWork, "run_post", run_post)
        outcomes = eng.fire_due_timers(T0 + timedelta(seconds=90), batch_size=1)
        assert poked == [3]
        assert [(o.event, o.status) for o in outcomes] == [("tock", "fired"), ("tock", "fired")]
        assert [h.event for h in eng.history("c1")] == ["$start", "tock", "poke", "tock"]


STAGES = """
    apiVersion: regelwerk/v1
    kind: Workflow
    metadata: {name: stages}
    spec:
      data_schema: {type: object, properties: {start_date: {type: string, format: date}}}
      states:
        - id: one
          initial: true
          on_enter:
            - {action: workflow.schedule, with: {event: advance, schedule: {anchor: data.start_date}}}
        - id: two
          on_enter:
            - {action: workflow.schedule, with: {event: advance, schedule: {anchor: data.start_date}}}
        - {id: three, final: true}
      transitions:
        - {id: advance, from: one, to: two, system_only: true}
        - {id: advance, from: two, to: three, system_only: true}
"""


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_stages_keyed_on_one_date_all_catch_up_in_one_tick(tmp_path: Path, core: Registry, store: str) -> None:
    """The loop guard above is per state: two stages that each set the same event for the same (passed) date are a
    chain, not a loop, and an instance catches up both in one tick (keyed without the state, the second failed)."""
    bundle = compile_text(tmp_path, STAGES, core)
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path}/stages.sqlite"
    with Engine(bundle, store=url, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
        eng.start("stages", {"start_date": "2026-03-01"}, ANNA, "s1")
        outcomes = eng.fire_due_timers(T0 + timedelta(days=1), limit=50)
        assert [(o.event, o.status) for o in outcomes] == [("advance", "fired"), ("advance", "fired")]
        assert eng.get("s1").state == "three"


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_a_timer_set_again_for_the_moment_it_fired_at_ends_the_tick(tmp_path: Path, core: Registry,
                                                                     store: str) -> None:
    """Two one-off timers that set each other again for the same (passed) moment through two states (RW520 sees
    only a timer going straight back into its own state): the tick fires each once, then the re-armed one fails
    (audited) instead of firing forever. Before, fire_due_timers never returned (here: the limit of 50 was used)."""
    bundle = compile_text(tmp_path, PING_PONG, core)
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path}/pingpong.sqlite"
    with Engine(bundle, store=url, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
        eng.start("pingpong", {"start_date": "2026-03-01"}, ANNA, "p1")
        outcomes = eng.fire_due_timers(T0 + timedelta(days=1), limit=50)
        assert [(o.event, o.status) for o in outcomes] == [("to_pong", "fired"), ("to_ping", "fired"),
                                                           ("to_pong", "failed")]
        assert eng.get("p1").state == "ping"
        assert any(a.action == "workflow.timer_failed" and "RW520" in str(a.detail) for a in eng.audit("p1"))
        # the next tick has nothing left to do
        assert eng.fire_due_timers(T0 + timedelta(days=2), limit=50) == []


@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store of the internal-transition tests: memory, SQLite and PostgreSQL (skipped without a server)."""
    yield from store_urls(request, tmp_path, "internal")


VOG = """
    apiVersion: regelwerk/v1
    kind: Workflow
    metadata: {name: vog}
    spec:
      system_fields: [hr_reminded]
      data_schema:
        type: object
        properties:
          start_date: {type: string, format: date}
          hr_reminded: {type: boolean}
          entered: {type: string}
          exited: {type: boolean}
          note: {type: string}
      states:
        - id: waiting_for_vog
          initial: true
          on_enter:
            - {action: workflow.set, with: {field: entered, now: true}}
            - {action: workflow.schedule, with: {event: remind_hr, schedule: {anchor: data.start_date, minus: P5D}}}
            - {action: workflow.schedule, with: {event: block, schedule: {anchor: data.start_date}}}
          on_exit:
            - {action: workflow.set, with: {field: exited, value: true}}
          after:
            - {duration: P1D, event: nudge}
        - id: blocked
        - {id: cleared, final: true}
      transitions:
        - id: remind_hr
          from: waiting_for_vog
          internal: true
          system_only: true
          actions:
            - {action: workflow.set, with: {field: hr_reminded, value: true}}
        - {id: nudge, from: waiting_for_vog, internal: true, system_only: true}
        - id: add_note
          from: [waiting_for_vog, blocked]
          internal: true
          guard: {field: actor.id, eq: hr}
        - {id: block, from: waiting_for_vog, to: blocked, system_only: true}
        - {id: clear, from: [waiting_for_vog, blocked], to: cleared, guard: {field: actor.id, eq: hr}}
"""


def _pending(eng: Engine, instance_id: str) -> list[tuple[str, datetime]]:
    return sorted((t.event, t.due_at) for t in eng.timers(instance_id) if t.status == "pending")


def test_an_internal_transition_stays_in_the_state(tmp_path: Path, core: Registry, url: str) -> None:
    """A person's internal event: no on_exit/on_enter, the state's timers (after and workflow.schedule) stay as they
    are, the history has from = to with the actor, the version moves on; guards apply; the payload is written."""
    bundle = compile_text(tmp_path, VOG, core)
    assert bundle.warnings == ()
    clock = Clock()
    with Engine(bundle, store=url, registry=core, clock=clock, permissions=UnsafeAllowAll()) as eng:
        started = eng.start("vog", {"start_date": "2026-03-20"}, "hr", "v1")
        timers = _pending(eng, "v1")
        assert [e for e, _ in timers] == ["block", "nudge", "remind_hr"]
        clock.now = T0 + timedelta(hours=2)
        record = eng.fire("v1", "add_note", "hr", {"note": "gebeld met de kandidaat"})
        assert (record.state, record.version) == ("waiting_for_vog", 2)
        assert record.data["entered"] == started.data["entered"] and "exited" not in record.data
        assert record.data["note"] == "gebeld met de kandidaat"
        assert _pending(eng, "v1") == timers
        assert [t.status for t in eng.timers("v1")] == ["pending"] * 3
        last = eng.history("v1")[-1]
        assert (last.event, last.from_state, last.to_state, last.actor, last.version) == (
            "add_note", "waiting_for_vog", "waiting_for_vog", "hr", 2)
        with pytest.raises(TransitionNotAllowed):  # the guard applies as to any transition
            eng.fire("v1", "add_note", "anna", {"note": "x"})
        with pytest.raises(PermissionDenied):  # system_only applies as to any transition
            eng.fire("v1", "remind_hr", "hr")
        with pytest.raises(InvalidData):  # a system field in a person's payload, as for any transition
            eng.fire("v1", "add_note", "hr", {"hr_reminded": True})
        assert eng.get("v1").version == 2
        options = {o.event: o for o in eng.available_events("v1", "hr")}
        assert (options["add_note"].internal, options["add_note"].to) == (True, "waiting_for_vog")
        assert (options["clear"].internal, options["clear"].to) == (False, "cleared")
        assert options["add_note"].to_dict()["internal"] is True
        explained = eng.explain("v1", "add_note", "hr")
        assert explained["allowed"] and explained["internal"] and explained["to"] == "waiting_for_vog"
        assert explained["candidates"][0]["internal"] is True


def test_internal_timer_events_leave_their_sibling_timers_alone(tmp_path: Path, core: Registry, url: str) -> None:
    """The VOG reminder: an internal timer event (after, workflow.schedule) fires, runs its actions and leaves the
    state's other timers pending; a fired 'after' timer is not set again (no on_enter), so it fires once; the block
    timer set on entry still fires on the start date. Before, the reminder had to leave the state (cancelling the
    block timer) or re-armed itself (RW520)."""
    bundle = compile_text(tmp_path, VOG, core)
    with Engine(bundle, store=url, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
        eng.start("vog", {"start_date": "2026-03-20"}, "hr", "v1")
        entered = eng.get("v1").data["entered"]
        outcomes = eng.fire_due_timers(T0 + timedelta(days=2))
        assert [(o.event, o.status) for o in outcomes] == [("nudge", "fired")]
        assert eng.fire_due_timers(T0 + timedelta(days=4)) == []  # the after timer is not set again
        assert [e for e, _ in _pending(eng, "v1")] == ["block", "remind_hr"]
        outcomes = eng.fire_due_timers(T0 + timedelta(days=13))
        assert [(o.event, o.status) for o in outcomes] == [("remind_hr", "fired")]
        record = eng.get("v1")
        assert (record.state, record.data["hr_reminded"], record.data["entered"]) == ("waiting_for_vog", True,
                                                                                      entered)
        assert [e for e, _ in _pending(eng, "v1")] == ["block"]
        outcomes = eng.fire_due_timers(T0 + timedelta(days=18))
        assert [(o.event, o.status) for o in outcomes] == [("block", "fired")]
        assert eng.get("v1").state == "blocked" and eng.get("v1").data["exited"] is True
        assert [(h.event, h.from_state, h.to_state, h.actor) for h in eng.history("v1")][1:] == [
            ("nudge", "waiting_for_vog", "waiting_for_vog", "system"),
            ("remind_hr", "waiting_for_vog", "waiting_for_vog", "system"),
            ("block", "waiting_for_vog", "blocked", "system")]
        # several sources: the instance stays in whichever it is in
        assert eng.fire("v1", "add_note", "hr", {"note": "VOG alsnog aangevraagd"}).state == "blocked"


def test_all_timers_of_an_internal_state_due_at_once_fire_in_one_tick(tmp_path: Path, core: Registry, url: str) -> None:
    """A late tick: nudge and remind_hr (internal) and block are all due; the internal ones fire without cancelling
    block, which fires in the same tick (straight through, one batch)."""
    bundle = compile_text(tmp_path, VOG, core)
    with Engine(bundle, store=url, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
        eng.start("vog", {"start_date": "2026-03-20"}, "hr", "v1")
        outcomes = eng.fire_due_timers(T0 + timedelta(days=30))
        assert [(o.event, o.status) for o in outcomes] == [("nudge", "fired"), ("remind_hr", "fired"),
                                                           ("block", "fired")]
        assert eng.get("v1").state == "blocked"
        assert [h.version for h in eng.history("v1")] == [1, 2, 3, 4]


def test_internal_transitions_in_the_machine_and_the_stored_form(tmp_path: Path, core: Registry) -> None:
    """transitions' own internal transition (dest None) in the pure config; the stored form keeps 'internal'."""
    import json

    from regelwerk.workflows.machine import to_transitions_config
    from regelwerk.workflows.model import workflow_from_dict, workflow_to_dict

    model = compile_text(tmp_path, VOG, core).get("Workflow", "vog")
    config = to_transitions_config(model)
    assert [t["dest"] for t in config["transitions"]] == [None, None, None, "blocked", "cleared"]
    stored = json.loads(json.dumps(workflow_to_dict(model)))
    assert workflow_from_dict(stored, core.function_table()) == model
    assert [t.internal for t in workflow_from_dict(stored, core.function_table()).transitions] == [
        True, True, True, False, False]


INTERNAL_PING_PONG = """
    apiVersion: regelwerk/v1
    kind: Workflow
    metadata: {name: chatter}
    spec:
      data_schema: {type: object, properties: {start_date: {type: string, format: date}}}
      states:
        - id: waiting
          initial: true
          on_enter:
            - {action: workflow.schedule, with: {event: ping, schedule: {anchor: data.start_date}}}
        - {id: done, final: true}
      transitions:
        - id: ping
          from: waiting
          internal: true
          system_only: true
          actions:
            - {action: workflow.schedule, with: {event: pong, schedule: {anchor: data.start_date}}}
        - id: pong
          from: waiting
          internal: true
          system_only: true
          actions:
            - {action: workflow.schedule, with: {event: ping, schedule: {anchor: data.start_date}}}
        - {id: finish, from: waiting, to: done, system_only: true}
"""


def test_two_internal_events_that_set_each_other_for_a_passed_moment_end_the_tick(core: Registry, url: str,
                                                                                 tmp_path: Path) -> None:
    """RW520 sees an internal transition that sets its own event again; two that set each other (ping, pong) for
    the same passed moment are stopped at run time by the loop guard, as two states that do: each fires once, then
    the one set again fails (audited); the tick ends."""
    bundle = compile_text(tmp_path, INTERNAL_PING_PONG, core)
    with Engine(bundle, store=url, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
        eng.start("chatter", {"start_date": "2026-03-01"}, ANNA, "c1")
        outcomes = eng.fire_due_timers(T0 + timedelta(days=1), limit=50)
        assert [(o.event, o.status) for o in outcomes] == [("ping", "fired"), ("pong", "fired"), ("ping", "failed")]
        assert eng.get("c1").state == "waiting"
        assert any(a.action == "workflow.timer_failed" and "RW520" in str(a.detail) for a in eng.audit("c1"))
        assert eng.fire_due_timers(T0 + timedelta(days=2), limit=50) == []


CHAINED = """
    apiVersion: regelwerk/v1
    kind: Workflow
    metadata: {name: ticket}
    spec:
      data_schema: {type: object, properties: {done: {type: boolean}, closed_at: {type: string}}}
      states:
        - id: open
          initial: true
          after:
            - {duration: P7D, event: expire}
        - id: closed
          on_enter:
            - {action: workflow.set, with: {field: closed_at, now: true}}
        - {id: expired, final: true}
      transitions:
        - id: comment
          from: [open, closed]
          internal: true
          guard: {field: actor.id, eq: anna}
          actions:
            - {action: workflow.fire, with: {event: close, instance_field: instance.id}}
        - {id: close, from: open, to: closed, guard: {all: [{field: actor.id, eq: anna}, {field: data.done, eq: true}]}}
        - {id: expire, from: open, to: expired, system_only: true}
"""


def test_an_internal_transition_fires_a_chained_event(tmp_path: Path, core: Registry, url: str) -> None:
    """An internal transition's actions may fire a chained event (workflow.fire, after commit, as the same actor):
    a comment without 'done' stays open with its timer; one with 'done' closes the ticket by the chained close."""
    bundle = compile_text(tmp_path, CHAINED, core)
    with Engine(bundle, store=url, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
        eng.start("ticket", {}, ANNA, "t1")
        assert eng.fire("t1", "comment", ANNA).state == "open"
        assert eng.get("t1").state == "open"  # the chained close was refused by its guard (not done yet)
        assert [t.status for t in eng.timers("t1")] == ["pending"]
        assert [i.event for i in eng.incidents(instance_id="t1")] == ["close"]  # a refused chained fire, as always
        eng.fire("t1", "comment", ANNA, {"done": True})
        record = eng.get("t1")
        assert record.state == "closed" and "closed_at" in record.data
        assert [(h.event, h.from_state, h.to_state) for h in eng.history("t1")][-2:] == [
            ("comment", "open", "open"), ("close", "open", "closed")]
        assert [t.status for t in eng.timers("t1")] == ["cancelled"]
