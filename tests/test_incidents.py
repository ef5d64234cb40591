"""Failures as incidents: a poison timer is rolled back alone, retried with backoff, and never blocks other work."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _stores import STORES, T0, Clock, compile_texts, store_urls
from click.testing import CliRunner
from regelwerk.compiler import CompiledBundle
from regelwerk.permissions.policies import UnsafeAllowAll
from regelwerk.registry import ActionSpec, FunctionSpec, Registry
from regelwerk.runtime import Engine, RetryPolicy

ALLOW = UnsafeAllowAll()  # these tests are about failures, not permissions
BROKEN: set[str] = set()

REMINDER = """
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: reminder}
spec:
  states:
    - id: waiting
      initial: true
      after:
        - {duration: P1D, event: remind}
    - {id: reminded, final: true, on_enter: [test.remind]}
  transitions:
    - {id: remind, from: waiting, to: reminded}
"""


GUARDED = """
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: guarded}
spec:
  states:
    - {id: open, initial: true}
    - {id: done, final: true}
  transitions:
    - {id: close, from: open, to: done, guard: {fn: test.explodes, args: []}}
"""


def explodes() -> bool:
    """A condition function with a bug."""
    raise ValueError("no such employee")


def remind(ctx: Any) -> None:
    """Fails with a KeyError for the instances in BROKEN (a plugin bug), else audits."""
    if ctx.instance.id in BROKEN:
        raise KeyError(ctx.instance.id)
    ctx.audit("reminded")


class _Plugin:
    name = "test-incidents"

    def register(self, registry: Registry) -> None:
        registry.add_action(ActionSpec("test.remind", self.name, remind))
        registry.add_function(FunctionSpec("test.explodes", self.name, explodes))


@pytest.fixture(scope="module")
def registry() -> Registry:
    from regelwerk.registry import load_registry

    return load_registry(extra=[_Plugin()])


@pytest.fixture(scope="module")
def bundle(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> CompiledBundle:
    bundle = """
        apiVersion: regelwerk/v1
        kind: Bundle
        metadata: {name: poison}
        spec: {extends: standard}
    """
    return compile_texts(tmp_path_factory.mktemp("poison"),  # type: ignore[return-value]
                         {"bundle.yaml": bundle, "reminder.yaml": REMINDER, "guarded.yaml": GUARDED}, registry)



@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from store_urls(request, tmp_path, "poison")


def test_a_poison_timer_blocks_nothing_and_is_retried(bundle: CompiledBundle, registry: Registry, url: str) -> None:
    clock = Clock()
    policy = RetryPolicy(attempts=3, backoff=timedelta(minutes=10), factor=2.0)
    BROKEN.clear()
    BROKEN.add("r0")  # the oldest timer: claimed first, every time
    with Engine(bundle, store=url, registry=registry, clock=clock, retry=policy, permissions=ALLOW) as engine:
        for n in range(6):
            engine.start("reminder", {}, "hr", f"r{n}")
        clock.now = T0 + timedelta(days=2)
        summary = engine.tick(clock.now)
        assert summary.timers_fired == 6
        assert {i.id: i.state for i in engine.instances("reminder")} == {
            "r0": "waiting", **{f"r{n}": "reminded" for n in range(1, 6)}}
        assert "recruitment" in " ".join(summary.tasks)  # the retention sweep ran after the timers
        assert all("incident" not in result for result in summary.tasks.values())
        [incident] = engine.incidents()
        assert (incident.instance_id, incident.event, incident.error_type, incident.attempts) == (
            "r0", "remind", "builtins.KeyError", 1)
        assert incident.message == "'r0'" and incident.next_retry_at == clock.now + timedelta(minutes=10)
        assert [a.action for a in engine.audit("r0")] == []  # the failed action's writes were rolled back
        assert engine.history("r0")[-1].event == "$start"

        # retried with backoff: not before it is due, then 10 and 20 minutes later; then it waits for a person
        assert engine.fire_due_timers(clock.now + timedelta(minutes=9)) == []
        clock.now += timedelta(minutes=10)
        assert [o.status for o in engine.fire_due_timers(clock.now)] == ["incident"]
        clock.now += timedelta(minutes=20)
        assert [o.status for o in engine.fire_due_timers(clock.now)] == ["incident"]
        [incident] = engine.incidents()
        assert incident.attempts == 3 and incident.next_retry_at is None
        assert [t.status for t in engine.timers("r0")] == ["failed"]
        assert engine.fire_due_timers(clock.now + timedelta(days=30)) == []

        BROKEN.clear()  # the bug is fixed
        after = engine.retry_incident(incident.id or 0, actor="ops")
        assert after.status == "resolved"
        assert engine.get("r0").state == "reminded" and engine.incidents() == []
        assert [a.action for a in engine.audit("r0")] == ["incident.retry", "reminded"]


def test_a_failing_fire_is_an_incident_that_can_be_retried_or_resolved(bundle: CompiledBundle,
                                                                       registry: Registry) -> None:
    from regelwerk.errors import ActionFailed

    clock = Clock()
    BROKEN.clear()
    BROKEN.update({"a", "b"})
    with Engine(bundle, store="memory://", registry=registry, clock=clock, permissions=ALLOW) as engine:
        engine.start("reminder", {}, "hr", "a")
        engine.start("reminder", {}, "hr", "b")
        with pytest.raises(ActionFailed) as failed:
            engine.fire("a", "remind", "anna", {"note": "x"})
        assert isinstance(failed.value.__cause__, KeyError)
        with pytest.raises(ActionFailed):
            engine.fire("b", "remind", "bert")
        first, second = engine.incidents()
        # the fire's payload, and the state it failed in
        assert (first.instance_id, first.actor, dict(first.data), first.timer_id) == (
            "a", "anna", {"note": "x", "$state": "waiting"}, None)
        # still broken: the retry fails again (one more attempt), and who retried is audited all the same
        assert engine.retry_incident(first.id or 0, "ops").attempts == 2
        assert [(a.actor, a.action, a.detail.get("failed")) for a in engine.audit("a")
                if a.action.startswith("incident.")] == [("ops", "incident.retry", "builtins.KeyError")]
        BROKEN.discard("a")
        # fired again as the one who retries it (their own permission decides), never in anna's name
        assert engine.retry_incident(first.id or 0, "ops").status == "resolved"
        assert engine.history("a")[-1].actor == "ops"
        assert engine.resolve_incident(second.id or 0, "ops", "handled by hand").status == "resolved"
        assert engine.incidents() == [] and len(engine.incidents(None)) == 2
        assert engine.get("b").state == "waiting"


def test_incidents_cli(bundle: CompiledBundle, registry: Registry, tmp_path: Path) -> None:
    group = registry.commands["incidents"]
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    BROKEN.clear()
    BROKEN.add("c")
    clock = Clock()
    with Engine(bundle, store=url, registry=registry, clock=clock, permissions=ALLOW) as engine:
        engine.start("reminder", {}, "hr", "c")
        engine.fire_due_timers(T0 + timedelta(days=2))
    runner = CliRunner()
    listed = runner.invoke(group, ["list", "--store", url, "--format", "json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert (row["instance"], row["event"], row["error_type"], row["attempts"]) == (
        "c", "remind", "builtins.KeyError", 1)
    text = runner.invoke(group, ["list", "--store", url])
    assert "builtins.KeyError" in text.output and "c" in text.output
    missing = runner.invoke(group, ["resolve", "999", "--store", url])
    assert missing.exit_code != 0 and "no incident 999" in missing.output
    done = runner.invoke(group, ["resolve", str(row["id"]), "--store", url, "--note", "known",
                                "--format", "json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["status"] == "resolved"
    empty = runner.invoke(group, ["list", "--store", url, "--format", "json"])
    assert json.loads(empty.output) == []


def test_a_condition_function_that_raises_is_typed_and_recorded(bundle: CompiledBundle, registry: Registry) -> None:
    from regelwerk.errors import PluginError

    with Engine(bundle, store="memory://", registry=registry, clock=Clock(), permissions=ALLOW) as engine:
        engine.start("guarded", {}, "hr", "g1")
        with pytest.raises(PluginError) as failed:
            engine.fire("g1", "close", "hr")
        assert isinstance(failed.value.__cause__, ValueError)
        [incident] = engine.incidents()
        assert (incident.instance_id, incident.event, incident.error_type) == ("g1", "close", "builtins.ValueError")
        assert engine.get("g1").state == "open"


DECLARED = """
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: declared}
spec:
  retry: {attempts: 2, backoff: PT2H}
  states:
    - id: waiting
      initial: true
      after:
        - {duration: P1D, event: remind}
    - {id: reminded, final: true, on_enter: [test.remind]}
  transitions:
    - {id: remind, from: waiting, to: reminded}
"""


def test_retry_limits_are_declared_in_the_workflow(registry: Registry, tmp_path: Path) -> None:
    """A workflow's ``retry`` overrides the engine's policy for its own timers; the others keep the engine's."""
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle

    (tmp_path / "declared.yaml").write_text(DECLARED, encoding="utf-8")
    (tmp_path / "reminder.yaml").write_text(REMINDER, encoding="utf-8")
    compiled = compile_bundle(load_bundle(tmp_path), registry)
    clock = Clock()
    BROKEN.clear()
    BROKEN.update({"d", "r"})
    engine_policy = RetryPolicy(attempts=5, backoff=timedelta(minutes=10))
    url = f"sqlite:///{tmp_path / 'declared.sqlite'}"
    with Engine(compiled, store=url, registry=registry, clock=clock, retry=engine_policy, permissions=ALLOW) as eng:
        eng.start("declared", {}, "hr", "d")
        eng.start("reminder", {}, "hr", "r")
        clock.now = T0 + timedelta(days=2)
        eng.fire_due_timers(clock.now)
        retry_at = {i.instance_id: i.next_retry_at for i in eng.incidents()}
        assert retry_at == {"d": clock.now + timedelta(hours=2), "r": clock.now + timedelta(minutes=10)}
        clock.now += timedelta(hours=2)
        eng.fire_due_timers(clock.now)
        by_instance = {i.instance_id: i for i in eng.incidents()}
        assert by_instance["d"].attempts == 2 and by_instance["d"].next_retry_at is None  # 2 attempts in all
        assert [t.status for t in eng.timers("d")] == ["failed"]
        assert by_instance["r"].attempts == 2 and by_instance["r"].next_retry_at is not None  # the engine's 5
    BROKEN.clear()


def test_retry_waits_must_have_a_fixed_length(registry: Registry, tmp_path: Path) -> None:
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.diagnostics import DefinitionError

    (tmp_path / "declared.yaml").write_text(DECLARED.replace("backoff: PT2H", "backoff: P1M, max_backoff: PT1H"),
                                            encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        compile_bundle(load_bundle(tmp_path), registry)
    codes = [(d.code, d.pointer) for d in caught.value.diagnostics]
    assert ("RW517", "/spec/retry/backoff") in codes


def test_a_retry_without_any_wait_is_refused_and_a_stored_one_cannot_stall_the_timers(registry: Registry,
                                                                                      tmp_path: Path) -> None:
    """``backoff: PT0S`` would retry at once until the attempts are used up; it is RW517 at its line. A zero wait
    that reaches the runtime anyway (a definition stored before the check) is left out of the limits instead of
    raising while a failure is recorded: that error rolled back every timer batch and every tick."""
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.diagnostics import DefinitionError
    from regelwerk.runtime import RetryPolicy
    from regelwerk.workflows.model import RetrySpec

    (tmp_path / "declared.yaml").write_text(DECLARED.replace("backoff: PT2H", "backoff: PT0S, max_backoff: P0D"),
                                            encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        compile_bundle(load_bundle(tmp_path), registry)
    codes = [(d.code, d.pointer) for d in caught.value.diagnostics]
    assert ("RW517", "/spec/retry/backoff") in codes and ("RW517", "/spec/retry/max_backoff") in codes
    base = RetryPolicy()
    stored = RetrySpec(attempts=0, backoff=timedelta(0), factor=0.5, max_backoff=timedelta(0))
    assert base.declared(stored) == base
    assert base.declared(RetrySpec(attempts=2, backoff=timedelta(0))) == RetryPolicy(attempts=2)


def test_a_fires_incident_is_not_retried_once_the_instance_has_left_the_state_it_failed_in(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    """The fire failed in ``waiting``; fixed, someone fires the event by hand (the instance moves on) and the
    incident stays open. Its retry is then refused (``UsageError`` with the hint to resolve it) and changes nothing:
    before, it fired the event again from the new state, a step nobody asked for, and said the incident was
    resolved."""
    from regelwerk.errors import ActionFailed, UsageError

    BROKEN.clear()
    BROKEN.add("m")
    with Engine(bundle, store=url, registry=registry, clock=Clock(), permissions=ALLOW) as engine:
        engine.start("reminder", {}, "hr", "m")
        with pytest.raises(ActionFailed):
            engine.fire("m", "remind", "anna")
        [incident] = engine.incidents()
        BROKEN.clear()
        assert engine.fire("m", "remind", "anna").state == "reminded"  # by hand
        before = [h.event for h in engine.history("m")]
        with pytest.raises(UsageError) as refused:
            engine.retry_incident(incident.id or 0, "ops")
        assert "not 'waiting'" in str(refused.value) and "incidents resolve" in (refused.value.hint or "")
        assert [h.event for h in engine.history("m")] == before and engine.incidents()[0].status == "open"
        assert engine.resolve_incident(incident.id or 0, "ops", "done by hand").status == "resolved"


def test_a_fires_incident_keeps_a_payload_with_its_own_dollar_keys_whole_and_retries_with_exactly_it(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    """The incident keeps the state the fire failed in as ``$state`` beside the payload's keys; a payload that has a
    ``$state`` key of its own (or any ``$`` key) is kept whole under ``$payload``. Before, the state overwrote the
    payload's ``$state`` and the retry fired without it."""
    from regelwerk.errors import ActionFailed

    BROKEN.clear()
    BROKEN.add("p")
    payload = {"$state": "theirs", "$payload": [1], "note": "x"}
    with Engine(bundle, store=url, registry=registry, clock=Clock(), permissions=ALLOW) as engine:
        engine.start("reminder", {}, "hr", "p")
        with pytest.raises(ActionFailed):
            engine.fire("p", "remind", "anna", payload)
        [incident] = engine.incidents()
        assert incident.data == {"$payload": payload, "$state": "waiting"}
        BROKEN.clear()
        assert engine.retry_incident(incident.id or 0, "ops").status == "resolved"
        after = engine.get("p")
        assert after.state == "reminded" and {k: after.data[k] for k in payload} == payload
        # a plain payload stays flat beside the state, as before
        BROKEN.add("q")
        engine.start("reminder", {}, "hr", "q")
        with pytest.raises(ActionFailed):
            engine.fire("q", "remind", "anna", {"note": "y"})
        assert engine.incidents()[0].data == {"note": "y", "$state": "waiting"}
        BROKEN.clear()


def test_retrying_or_resolving_an_incident_is_decided_by_the_policy_deny_by_default(
        bundle: CompiledBundle, registry: Registry, url: str) -> None:
    """An actor may retry or resolve an incident only when the policy grants ``retry`` / ``resolve`` on resource
    type ``incident``: without a grant both are ``PermissionDenied`` (audited once each) and change nothing. Before,
    anyone named could close a failed timer's incident (dropping its work) or have the system fire it. The engine's
    own ``SYSTEM`` (in-process code) is not asked."""
    from regelwerk.errors import PermissionDenied
    from regelwerk.workflows.ports import RoleTable

    BROKEN.clear()
    BROKEN.add("p")
    clock = Clock()
    # a workflow's own "resolve" (a plain role table names actions without their resource) grants nothing here
    policy = RoleTable({"incident.resolve": ["beheerder"], "incident.retry": ["beheerder"], "resolve": ["medewerker"],
                        "retry": ["medewerker"], "reminder.start": ["hr"]})
    with Engine(bundle, store=url, registry=registry, clock=clock, permissions=policy) as engine:
        engine.start("reminder", {}, {"id": "hr", "roles": ["hr"]}, "p")
        clock.now = T0 + timedelta(days=2)
        engine.fire_due_timers(clock.now)
        [incident] = engine.incidents()
        for act in (engine.retry_incident, engine.resolve_incident):
            with pytest.raises(PermissionDenied):
                act(incident.id or 0, {"id": "mallory", "roles": ["medewerker"]})
        assert engine.incident(incident.id or 0).status == "open" and engine.get("p").state == "waiting"
        denied = [a for a in engine.audit("p") if "denied" in a.action]
        assert [(a.actor, a.detail.get("action")) for a in denied] == [("mallory", "incident.retry"),
                                                                        ("mallory", "incident.resolve")]
        BROKEN.clear()
        done = engine.resolve_incident(incident.id or 0, {"id": "ops", "roles": ["beheerder"]}, "handled")
        assert done.status == "resolved"
    BROKEN.clear()


def test_a_retry_wait_is_capped_before_it_could_overflow() -> None:
    """``attempts: 100`` (the schema's most) with the default factor, or a factor of 100: the n-th wait is the cap,
    not an ``OverflowError`` raised while a failure is recorded (which rolled back every timer batch)."""
    from regelwerk.runtime import RetryPolicy

    assert RetryPolicy(attempts=100).delay(99) == timedelta(hours=6)
    assert RetryPolicy(attempts=30, factor=100, max_backoff=timedelta(days=1)).delay(29) == timedelta(days=1)
    assert RetryPolicy(attempts=3, backoff=timedelta(minutes=10), factor=2).delay(2) == timedelta(minutes=20)
