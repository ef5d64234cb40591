"""A fire a transition chains (``workflow.fire``) runs exactly once: also when the process is killed (a real
SIGKILL) between the transition's commit and the chained fire, when two runners race for it, and when it fails.

Found by a chaos soak on PostgreSQL: kept only in memory, the chained fire of a process killed just after its commit
was lost without an incident (one or two in a two-minute run: a parent missed a child's ``child_done``)."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _stores import STORES, T0, Clock, compile_texts, store_urls
from regelwerk.compiler import CompiledBundle
from regelwerk.permissions.policies import UnsafeAllowAll
from regelwerk.registry import ActionSpec, Registry
from regelwerk.runtime import Engine

ALLOW = UnsafeAllowAll()
#: what the parent's action does: "raise" fails the chained fire
PARENT: dict[str, str] = {}

FILES = {
    "bundle.yaml": "apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: chains}\n",
    "child.yaml": """
        apiVersion: regelwerk/v1
        kind: Workflow
        metadata: {name: child}
        spec:
          states:
            - {id: open, initial: true}
            - id: done
              on_enter:
                - {action: chain.die_after_commit}
                - {action: workflow.fire, with: {event: child_done, instance_field: data.parent}}
            - id: waiting
              after: [{duration: PT1H, event: time_up}]
          transitions:
            - {id: finish, from: open, to: done}
            - {id: wait, from: open, to: waiting}
            - {id: time_up, from: waiting, to: done, system_only: true}
    """,
    "parent.yaml": """
        apiVersion: regelwerk/v1
        kind: Workflow
        metadata: {name: parent}
        spec:
          states:
            - {id: collecting, initial: true}
          transitions:
            - {id: child_done, from: collecting, to: collecting, actions: [chain.count]}
    """,
}


def _die_after_commit(ctx: Any) -> None:
    """Kills its own process right after the commit, before the chained fire (the callbacks run in order)."""
    if os.environ.get("CHAIN_DIE") == "1":
        ctx.after_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))


#: every run of the parent's action (also the ones that roll back): a side effect outside the store
RAN: list[str] = []


def _count(ctx: Any) -> None:
    RAN.append(ctx.instance.id)
    if PARENT.get("mode") == "raise":
        raise LookupError("the parent's action is broken")
    if PARENT.get("mode") == "slow":
        import time

        time.sleep(0.3)  # holds the kept row (and the parent) while the other runner starts
    ctx.data["children"] = int(ctx.data.get("children", 0)) + 1


class _Plugin:
    name = "test-chains"

    def register(self, registry: Registry) -> None:
        registry.add_action(ActionSpec("chain.die_after_commit", self.name, _die_after_commit))
        registry.add_action(ActionSpec("chain.count", self.name, _count))


@pytest.fixture(scope="module")
def registry() -> Registry:
    from regelwerk.registry import load_registry

    return load_registry(extra=[_Plugin()])


@pytest.fixture(scope="module")
def bundle(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> CompiledBundle:
    return compile_texts(tmp_path_factory.mktemp("chains"), FILES, registry)  # type: ignore[return-value]


@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from store_urls(request, tmp_path, "chains")


def _finish_and_die(bundle: CompiledBundle, registry: Registry, url: str) -> None:
    os.environ["CHAIN_DIE"] = "1"
    clock = Clock()
    with Engine(bundle, store=url, registry=registry, clock=clock, permissions=ALLOW) as engine:
        engine.fire("c1", "finish", "anna")


@pytest.mark.parametrize("url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_chained_fire_whose_process_was_killed_after_the_commit_runs_once_by_the_sweep(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    """The child's fire commits, then its process is killed (SIGKILL) before the chained ``child_done``: the kept
    chained fire is not run before its grace, then the next timer run runs it once, as the person it was chained
    for; later runs find nothing."""
    from regelwerk.workflows.chains import GRACE

    PARENT.clear()
    clock = Clock()
    with Engine(bundle, store=url, registry=registry, clock=clock, permissions=ALLOW) as engine:
        engine.start("parent", {}, "hr", "p1")
        engine.start("child", {"parent": "p1"}, "hr", "c1")
        process = multiprocessing.get_context("fork").Process(target=_finish_and_die, args=(bundle, registry, url))
        process.start()
        process.join(60)
        assert process.exitcode == -signal.SIGKILL
        assert engine.get("c1").state == "done" and engine.get("p1").version == 1  # committed; the chain not run
        engine.fire_due_timers(T0 + GRACE - timedelta(seconds=1))  # its own process may still be about to run it
        assert engine.get("p1").version == 1
        for _ in range(2):
            engine.fire_due_timers(T0 + GRACE + timedelta(seconds=1))
        parent = engine.get("p1")
        assert (parent.version, parent.data.get("children")) == (2, 1)
        [chained] = [h for h in engine.history("p1") if h.event == "child_done"]
        assert chained.actor == "anna" and engine.incidents(None) == []


def test_two_runners_of_one_chained_fire_fire_it_once(bundle: CompiledBundle, registry: Registry, url: str) -> None:
    """The committing process and the sweep (or two sweeps) run the same kept chained fire: the one that takes the
    kept row commits the fire; the other finds it taken and rolls its fire back."""
    from regelwerk.workflows import chains

    PARENT.clear()
    clock = Clock()
    with Engine(bundle, store=url, registry=registry, clock=clock, permissions=ALLOW) as engine:
        engine.start("parent", {}, "hr", "p1")
        with engine.store.transaction() as tx:
            from regelwerk.actors import Actor

            fire = chains.keep(tx, "p1", "child_done", Actor.of("anna"), False, "c9", "finish", T0)
        chains.run(engine.runtime, fire)
        chains.run(engine.runtime, fire)  # a second runner: nothing
        assert engine.fire_due_timers(T0 + timedelta(hours=1)) == []  # and nothing left to sweep
        parent = engine.get("p1")
        assert (parent.version, parent.data.get("children")) == (2, 1)


def test_a_failing_chained_fire_is_one_incident_that_the_sweep_does_not_repeat(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    """The chained fire's action raises: one incident on its target (``child_done``), recorded in the unit that takes
    the kept fire, so no sweep runs it again; the child's committed fire stays. Its retry fires it (as the person who
    retries, as for any failed fire)."""
    PARENT["mode"] = "raise"
    clock = Clock()
    try:
        with Engine(bundle, store=url, registry=registry, clock=clock, permissions=ALLOW) as engine:
            engine.start("parent", {}, "hr", "p1")
            engine.start("child", {"parent": "p1"}, "hr", "c1")
            engine.fire("c1", "finish", "anna")  # the chained fire's failure is not the child's
            assert engine.get("c1").state == "done"
            for _ in range(2):
                engine.fire_due_timers(T0 + timedelta(hours=1))
            [incident] = engine.incidents()
            assert (incident.instance_id, incident.event, incident.attempts) == ("p1", "child_done", 1)
            PARENT.clear()
            assert engine.retry_incident(incident.id or 0, "ops").status == "resolved"
            assert engine.get("p1").data.get("children") == 1
            assert [h.actor for h in engine.history("p1") if h.event == "child_done"] == ["ops"]
    finally:
        PARENT.clear()


def test_a_taken_chained_fire_held_by_a_late_runner_takes_no_later_fire(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    """The sweep ran a kept chained fire whose process was still to run it; then another fire is kept. The late
    runner's fire was taken: it runs nothing and leaves the new one alone. Before, SQLite gave the new row the taken
    row's id again (the highest id plus one), so the late runner took it: the first fire ran twice, the second never
    (its own runner found its row gone)."""
    from regelwerk.actors import Actor
    from regelwerk.workflows import chains

    PARENT.clear()
    clock = Clock()
    with Engine(bundle, store=url, registry=registry, clock=clock, permissions=ALLOW) as engine:
        engine.start("parent", {}, "hr", "p1")
        engine.start("parent", {}, "hr", "p2")
        with engine.store.transaction() as tx:
            late = chains.keep(tx, "p1", "child_done", Actor.of("anna"), False, "c1", "finish", T0)
        engine.fire_due_timers(T0 + chains.GRACE + timedelta(seconds=1))  # the sweep runs it
        with engine.store.transaction() as tx:
            new = chains.keep(tx, "p2", "child_done", Actor.of("bob"), False, "c2", "finish", T0 + timedelta(minutes=1))
        assert new.id != late.id
        chains.run(engine.runtime, late)  # the late runner: its fire ran already
        chains.run(engine.runtime, new)
        assert [engine.get(p).data.get("children") for p in ("p1", "p2")] == [1, 1]


def test_a_timers_chained_fire_is_kept_at_the_time_it_is_written(
        bundle: CompiledBundle, registry: Registry, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A timer's transition happens at its due time; the fire it chains is kept at the time it is written, so another
    worker's tick at the same moment leaves it to the process that committed it. Before, it was kept at the timer's due
    time: a tick catching up on a timer due hours ago kept a fire that any other tick swept at once, beside the
    committing process's own run."""
    from regelwerk.workflows import chains

    PARENT.clear()
    clock = Clock()
    monkeypatch.setattr(chains, "run", lambda runtime, fire: None)  # the committing process has yet to run it
    with Engine(bundle, store=url, registry=registry, clock=clock, permissions=ALLOW) as engine:
        engine.start("parent", {}, "hr", "p1")
        engine.start("child", {"parent": "p1"}, "hr", "c1")
        engine.fire("c1", "wait", "anna")
        clock.now = T0 + timedelta(hours=5)  # the timer was due at T0 + 1 hour
        assert [o.status for o in engine.fire_due_timers(clock.now)] == ["fired"]
        with engine.store.read() as tx:
            assert tx.pending_fires(clock.now - chains.GRACE, 10) == []  # another tick now: not its to run
            [kept] = tx.pending_fires(clock.now + timedelta(seconds=1), 10)
        assert kept.created_at == clock.now


def test_a_chain_to_an_id_no_instance_can_have_fails_the_transition_alike_on_every_store(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    """A target longer than any instance id (64 characters) is refused by the action itself: the transition rolls
    back with a ``UsageError`` on every store. Before, PostgreSQL failed on the kept row's column (a ``DataError``,
    the person's fire an ``ActionFailed``) while SQLite committed and left an incident it could not store there."""
    from regelwerk.errors import UsageError

    PARENT.clear()
    with Engine(bundle, store=url, registry=registry, clock=Clock(), permissions=ALLOW) as engine:
        engine.start("child", {"parent": "p" * 80}, "hr", "c1")
        with pytest.raises(UsageError, match="no instance id"):
            engine.fire("c1", "finish", "anna")
        assert engine.get("c1").state == "open"
        with engine.store.read() as tx:
            assert tx.pending_fires(T0 + timedelta(days=1), 10) == []


@pytest.mark.parametrize("url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_two_runners_at_once_run_the_chained_fires_actions_once(bundle: CompiledBundle, registry: Registry,
                                                                 url: str) -> None:
    """Two runners of one kept chained fire at the same moment (its own process and a sweep, two threads on two
    engines): the first takes the kept row before it reads the target, so the second waits for that row (on
    PostgreSQL its DELETE, on SQLite the write lock) and finds it gone: it decides nothing and runs no action. With
    the row taken at the end instead, the second decided the fire again on the committed parent and ran its
    actions, then rolled back: an action's effect outside the store happened twice (and a refusal it met was
    audited for a fire that ran)."""
    import threading

    from regelwerk.actors import Actor
    from regelwerk.workflows import chains

    PARENT["mode"] = "slow"
    RAN.clear()
    try:
        with Engine(bundle, store=url, registry=registry, clock=Clock(), permissions=ALLOW) as first, \
                Engine(bundle, store=url, registry=registry, clock=Clock(), permissions=ALLOW) as second:
            first.start("parent", {}, "hr", "p1")
            with first.store.transaction() as tx:
                fire = chains.keep(tx, "p1", "child_done", Actor.of("anna"), False, "c9", "finish", T0)
            errors: list[BaseException] = []

            def run(engine: Engine, delay: float) -> None:
                import time

                time.sleep(delay)
                try:
                    chains.run(engine.runtime, fire)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=run, args=(first, 0.0)),
                       threading.Thread(target=run, args=(second, 0.1))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert errors == []
            parent = first.get("p1")
            assert (parent.version, parent.data.get("children")) == (2, 1)
            assert RAN == ["p1"]  # the action ran once: the second runner never decided the fire
            assert [a for a in first.audit() if a.action.endswith("denied")] == [] and first.incidents(None) == []
    finally:
        PARENT.clear()
        RAN.clear()

