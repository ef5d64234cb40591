"""RuleSet kind on durable-rules: deciding, explaining, and every durable-rules sharp edge contained."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from regelwerk.bundle import Bundle
from regelwerk.compiler import compile_bundle
from regelwerk.diagnostics import DefinitionError
from regelwerk.rules import (
    DurableRules,
    RuleEngine,
    RulesEngineError,
    RuleSetLimit,
    RuleSetModel,
    durable_name,
    to_durable_ruleset,
)
from regelwerk.source import load_text

RULESET = """\
apiVersion: regelwerk/v1
kind: RuleSet
metadata: {name: leave}
spec:
  rules:
    - id: long-leave
      priority: 10
      when:
        all:
          - {field: event.type, eq: leave_requested}
          - {field: event.days, ge: 10}
      then:
        - {action: rules.signal, with: {signal: needs_director, employee: {field: event.employee}}}
    - id: any-leave
      when: {field: event.type, eq: leave_requested}
      then:
        - {action: rules.emit, with: {event: leave_logged, days: {field: event.days}}}
        - {action: rules.set, with: {field: employee.on_leave, value: true}}
    - id: not-sales
      priority: 20
      when:
        all:
          - {field: event.type, eq: leave_requested}
          - not: {field: employee.department, eq: sales}
      then:
        - {action: rules.fire_workflow, with: {workflow: leave, event: submit, instance: {field: event.employee}}}
    - id: recent-hire
      when:
        all:
          - {field: event.type, eq: leave_requested}
          - {field: employee.hire_date, ge: {now: {minus: P6M}}}
      then:
        - {action: rules.send_template, with: {template: welcome-leave, to: {field: event.employee}}}
"""


def compile_text(text: str, registry: Any) -> Any:
    docs, problems = load_text(textwrap.dedent(text), "rules.yaml")
    assert not problems
    return compile_bundle(Bundle("test", ".", documents=docs), registry)


def diagnostics_of(text: str, registry: Any) -> list[Any]:
    with pytest.raises(DefinitionError) as info:
        compile_text(text, registry)
    return list(info.value.diagnostics)


@pytest.fixture
def model(registry: Any) -> RuleSetModel:
    result: RuleSetModel = compile_text(RULESET, registry).get("RuleSet", "leave")
    return result


@pytest.fixture
def engine(registry: Any) -> Any:
    rule_engine = RuleEngine.from_registry(registry)
    yield rule_engine
    rule_engine.close()


def test_post_fires_every_matching_rule_by_priority_and_explains(engine: RuleEngine, model: RuleSetModel) -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 6, 1, tzinfo=UTC)
    outcome = engine.post(model, {"type": "leave_requested", "employee": "e1", "days": 12},
                          {"employee": {"department": "hr", "hire_date": "2026-03-01"}}, now=now)
    assert outcome.rules == ["not-sales", "long-leave", "any-leave", "recent-hire"]
    assert outcome.signals == [{"signal": "needs_director", "rule": "long-leave", "employee": "e1"}]
    assert outcome.events == [{"type": "leave_logged", "rule": "any-leave", "days": 12}]
    assert outcome.changes == {"employee.on_leave": True}
    assert outcome.workflow_events == [{"workflow": "leave", "event": "submit", "instance": "e1", "data": {},
                                        "rule": "not-sales"}]
    assert outcome.templates[0]["template"] == "welcome-leave"
    explain = outcome.explain()
    assert explain["fired"][1]["because"]
    assert explain["version"] == model.version
    # durable matched the pre-filter of not-sales and recent-hire; regelwerk's full check rejects them here
    outcome = engine.post(model, {"type": "leave_requested", "employee": "e2", "days": 2},
                          {"employee": {"department": "sales", "hire_date": "2020-01-01"}}, now=now)
    assert outcome.rules == ["any-leave"]
    assert sorted(r["rule"] for r in outcome.rejected) == ["not-sales", "recent-hire"]


def test_nothing_matches_is_an_answer_not_an_error(engine: RuleEngine, model: RuleSetModel) -> None:
    """durable raises MessageNotHandledException when no rule matches; the port translates it."""
    outcome = engine.post(model, {"type": "something_else"})
    assert outcome.rules == [] and outcome.rejected == []


def test_identical_events_are_not_deduplicated(engine: RuleEngine, model: RuleSetModel) -> None:
    """durable de-duplicates identical facts (MessageObservedException); the same event twice fires twice."""
    event = {"type": "leave_requested", "employee": "e1", "days": 12}
    context = {"employee": {"department": "sales"}}
    first = engine.post(model, event, context)
    second = engine.post(model, event, context)
    assert first.rules == second.rules == ["long-leave", "any-leave"]


def test_more_than_1024_subjects(engine: RuleEngine, model: RuleSetModel) -> None:
    """durable allows at most 1024 live sids per ruleset: regelwerk never uses one sid per subject."""
    for n in range(1100):
        outcome = engine.post(model, {"type": "leave_requested", "employee": f"e{n}", "days": 1},
                              {"employee": {"department": "sales", "id": f"e{n}"}})
        assert outcome.rules == ["any-leave"]
    port = engine.port
    assert isinstance(port, DurableRules)
    assert port.session_size(durable_name(model)) < port.flush_every


def test_raw_durable_really_has_the_sid_limit() -> None:
    """The edge exists (so the test above means something): raw durable fails past ~1024 sids."""
    import durable.engine

    class Host(durable.engine.Host):  # type: ignore[misc]
        def _run(self) -> None:
            pass

        def get_action(self, name: str) -> Any:
            return lambda c: None

    host = Host()
    host.register_rulesets({"raw": {"r": {"all": [{"m": {"a": 1}}], "run": "x"}}})
    with pytest.raises(MemoryError):
        for n in range(1100):
            host.post("raw", {"sid": f"s{n}", "a": 1})


def test_changed_definition_is_a_new_ruleset_and_identical_is_reused(registry: Any, engine: RuleEngine,
                                                                     model: RuleSetModel) -> None:
    engine.post(model, {"type": "x"})
    engine.post(model, {"type": "y"})
    assert engine.port.loaded() == {durable_name(model)}
    changed = compile_text(RULESET.replace("ge: 10", "ge: 15"), registry).get("RuleSet", "leave")
    assert changed.version != model.version
    outcome = engine.post(changed, {"type": "leave_requested", "employee": "e1", "days": 12},
                          {"employee": {"department": "sales"}})
    assert outcome.rules == ["any-leave"]  # the new definition answers
    assert engine.port.loaded() == {durable_name(model), durable_name(changed)}
    # the old one still answers as before (durable can never replace a ruleset)
    assert engine.post(model, {"type": "leave_requested", "employee": "e1", "days": 12},
                       {"employee": {"department": "sales"}}).rules == ["long-leave", "any-leave"]


def test_number_of_rulesets_is_bounded(registry: Any, model: RuleSetModel) -> None:
    port = DurableRules(max_rulesets=2)
    rule_engine = RuleEngine.from_registry(registry, port=port)
    try:
        rule_engine.load(model)
        rule_engine.load(model)  # same content: no new ruleset
        second = compile_text(RULESET.replace("ge: 10", "ge: 11"), registry).get("RuleSet", "leave")
        rule_engine.load(second)
        third = compile_text(RULESET.replace("ge: 10", "ge: 12"), registry).get("RuleSet", "leave")
        with pytest.raises(RuleSetLimit):
            rule_engine.load(third)
    finally:
        rule_engine.close()


def test_registered_dict_is_copied_and_actions_take_one_argument(model: RuleSetModel) -> None:
    """durable deletes 'run' from the dict it registers, and treats 2-argument actions as asynchronous."""
    ruleset = to_durable_ruleset(model)
    before = json.dumps(ruleset, sort_keys=True)
    with DurableRules() as port:
        port.load("copy-test", ruleset)
        assert json.dumps(ruleset, sort_keys=True) == before
        action = port._host.get_action("copy-test/long-leave")
        assert len(inspect.signature(action).parameters) == 1
        durable_rule = port._host.get_ruleset("copy-test")
        assert all(p._sync for p in durable_rule._actions.values())


def test_durable_errors_are_translated(model: RuleSetModel) -> None:
    with DurableRules() as port:
        with pytest.raises(RulesEngineError) as info:
            port.load("bad", {"r": {"all": [{"m": {"a": [1, 2]}}], "run": "bad/r"}})
        assert info.value.error_code == 102
        with pytest.raises(RulesEngineError):
            port.match("never-loaded", {"a": 1})


def test_no_background_threads_and_idle_cpu_near_zero(registry: Any, model: RuleSetModel) -> None:
    """durable's Host starts self-rescheduling timer threads; the port starts none."""
    threads_before = threading.active_count()
    rule_engine = RuleEngine.from_registry(registry)
    try:
        for n in range(100):
            customer = compile_text(RULESET.replace("ge: 10", f"ge: {100 + n}"), registry).get("RuleSet", "leave")
            rule_engine.load(customer)
        assert len(rule_engine.port.loaded()) == 100
        cpu = time.process_time()
        time.sleep(0.3)
        idle = time.process_time() - cpu
        assert threading.active_count() == threads_before
        assert idle < 0.05
    finally:
        rule_engine.close()


def test_concurrent_posts_are_serialised(engine: RuleEngine, model: RuleSetModel) -> None:
    errors: list[BaseException] = []
    results: list[list[str]] = []

    def worker(k: int) -> None:
        try:
            for n in range(200):
                days = 12 if (n + k) % 2 else 1
                outcome = engine.post(model, {"type": "leave_requested", "employee": f"{k}-{n}", "days": days},
                                      {"employee": {"department": "sales"}})
                results.append(outcome.rules)
                assert outcome.rules == (["long-leave", "any-leave"] if days == 12 else ["any-leave"])
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert len(results) == 800


def test_match_many_runs_every_message_in_the_caller(model: RuleSetModel) -> None:
    """durable's post_batch runs only the first sid's actions in the caller; the port never uses it."""
    with DurableRules() as port:
        name = durable_name(model)
        port.load(name, to_durable_ruleset(model))
        messages = [{"rw_message": 1, "rw": {"event": {"type": "leave_requested", "days": d}}} for d in (1, 20, 3)]
        fired = port.match_many(name, messages)
        assert [sorted(f) for f in fired] == [["any-leave", "not-sales", "recent-hire"],
                                              ["any-leave", "long-leave", "not-sales", "recent-hire"],
                                              ["any-leave", "not-sales", "recent-hire"]]


def test_importing_the_rules_package_does_not_import_durable() -> None:
    code = "import sys, regelwerk.rules, regelwerk.rules.kind; print(sorted(m for m in sys.modules if 'durable' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_other_module_imports_durable() -> None:
    import re
    from pathlib import Path

    pattern = re.compile(r"^\s*(import durable|from durable)", re.MULTILINE)
    root = Path(__file__).resolve().parent.parent
    offenders = [str(p.relative_to(root)) for folder in ("engine", "plugins") for p in (root / folder).rglob("*.py")
                 if p.name != "port.py" and pattern.search(p.read_text())]
    assert offenders == []


def test_hooks_receive_workflow_events_and_templates(registry: Any, model: RuleSetModel) -> None:
    calls: list[tuple[str, ...]] = []

    class Hooks:
        def fire_workflow(self, workflow: str, event: str, instance: str | None, data: Any, actor: Any) -> str:
            calls.append(("fire", workflow, event, str(instance), actor.id))
            return "fired"

        def send_template(self, template: str, to: Any, data: Any, actor: Any) -> str:
            calls.append(("send", template, str(to), actor.id))
            return "sent"

    rule_engine = RuleEngine.from_registry(registry, hooks=Hooks())
    try:
        from datetime import UTC, datetime

        outcome = rule_engine.post(model, {"type": "leave_requested", "employee": "e9", "days": 1},
                                   {"employee": {"department": "hr", "hire_date": "2026-05-01"}},
                                   now=datetime(2026, 6, 1, tzinfo=UTC), actor={"id": "hr-1", "roles": ["hr"]})
    finally:
        rule_engine.close()
    assert calls == [("fire", "leave", "submit", "e9", "hr-1"), ("send", "welcome-leave", "e9", "hr-1")]
    assert "fired" in outcome.results and "sent" in outcome.results


def test_an_action_missing_from_the_engine_is_a_usage_error(model: RuleSetModel) -> None:
    from regelwerk.errors import UsageError

    rule_engine = RuleEngine(actions={})
    try:
        with pytest.raises(UsageError):
            rule_engine.post(model, {"type": "leave_requested", "days": 1}, {"employee": {"department": "sales"}})
    finally:
        rule_engine.close()


def test_workflow_hooks_fire_or_start_through_the_workflow_runtime(registry: Any, model: RuleSetModel) -> None:
    from regelwerk.rules import WorkflowHooks

    class FakeWorkflows:  # the two methods of regelwerk.runtime.Engine that the hook uses
        def __init__(self) -> None:
            self.calls: list[tuple[Any, ...]] = []

        def fire(self, instance_id: str, event: str, actor: Any, data: Any = None) -> str:
            self.calls.append(("fire", instance_id, event, actor.id))
            return "fired"

        def start(self, workflow: str, data: Any = None, actor: Any = None) -> str:
            self.calls.append(("start", workflow, actor.id))
            return "started"

    workflows = FakeWorkflows()
    rule_engine = RuleEngine.from_registry(registry, hooks=WorkflowHooks(workflows))
    try:
        rule_engine.post(model, {"type": "leave_requested", "employee": "e3", "days": 1},
                         {"employee": {"department": "hr"}}, actor="hr-2")
    finally:
        rule_engine.close()
    assert workflows.calls == [("fire", "e3", "submit", "hr-2")]


# --- sessions of facts and join rules ---------------------------------------------------------------------------

JOINS = """\
apiVersion: regelwerk/v1
kind: RuleSet
metadata: {name: certs}
spec:
  rules:
    - id: expiring
      priority: 5
      match:
        cert: {all: [{field: type, eq: certificate}, {field: expires_on, lt: {now: {plus: P30D}}}]}
        shift: {all: [{field: type, eq: shift}, {field: employee, eq: {field: cert.employee}}]}
      then: [{action: rules.signal, with: {signal: uncovered_shift, employee: {field: cert.employee}}}]
    - id: logged
      when: {field: event.type, eq: shift}
      then: [{action: rules.emit, with: {event: logged}}]
"""


@pytest.fixture
def joins(registry: Any) -> RuleSetModel:
    result: RuleSetModel = compile_text(JOINS, registry).get("RuleSet", "certs")
    return result


def at(day: int) -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 5, day, tzinfo=UTC)


def test_join_fires_per_combination_and_rechecks_in_python(engine: RuleEngine, joins: RuleSetModel) -> None:
    with engine.session() as session:
        cert = session.assert_fact(joins, {"type": "certificate", "employee": "e1", "expires_on": "2026-05-20"},
                                   now=at(1))
        assert cert.rules == [] and cert.fact == 1
        other = session.assert_fact(joins, {"type": "shift", "employee": "e2"}, now=at(1))
        assert other.rules == [] and other.rejected == []  # durable's join key already kept it out
        shift = session.assert_fact(joins, {"type": "shift", "employee": "e1"}, now=at(1))
        assert shift.rules == ["expiring"]
        assert shift.signals == [{"signal": "uncovered_shift", "rule": "expiring", "employee": "e1"}]
        fired = shift.explain()["fired"][0]
        assert fired["facts"] == {"cert": 1, "shift": 3}
        assert fired["because"][0].startswith("cert: ")
        # a second valid certificate joins with both shifts of e1 (one each), not with e2's
        late = session.assert_fact(joins, {"type": "certificate", "employee": "e1", "expires_on": "2027-01-01"},
                                   now=at(1))
        assert late.rules == [] and [r["rule"] for r in late.rejected] == ["expiring"]  # the clock: re-checked


def test_identical_facts_are_two_facts_and_retract_removes_one(engine: RuleEngine, joins: RuleSetModel) -> None:
    shift = {"type": "shift", "employee": "e1"}
    with engine.session() as session:
        first = session.assert_fact(joins, shift)
        second = session.assert_fact(joins, shift)
        assert first.fact != second.fact
        cert = session.assert_fact(joins, {"type": "certificate", "employee": "e1", "expires_on": "2026-05-20"},
                                   now=at(1))
        assert [f.facts["shift"] for f in cert.fired] == [first.fact, second.fact]
        assert session.retract_fact(joins, shift)  # the oldest equal fact
        assert session.retract_fact(joins, cert.fact or 0)
        assert not session.retract_fact(joins, {"type": "nothing"})
        again = session.assert_fact(joins, {"type": "certificate", "employee": "e1", "expires_on": "2026-05-21"},
                                    now=at(1))
        assert [f.facts["shift"] for f in again.fired] == [second.fact]


def test_posted_event_joins_but_is_not_kept(engine: RuleEngine, joins: RuleSetModel) -> None:
    with engine.session() as session:
        session.assert_fact(joins, {"type": "certificate", "employee": "e1", "expires_on": "2026-05-20"}, now=at(1))
        outcome = session.post(joins, {"type": "shift", "employee": "e1"}, now=at(1))
        assert outcome.rules == ["logged", "expiring"]
        assert len(session.facts(joins)) == 1
        # plain RuleEngine.post has no facts: only the when-rules
        assert engine.post(joins, {"type": "shift", "employee": "e1"}, now=at(1)).rules == ["logged"]


def test_sessions_are_bounded_and_closing_frees_durable_sids(registry: Any, joins: RuleSetModel) -> None:
    """durable holds at most 1024 live sids per ruleset: sessions come from a bounded pool, closed ones return."""
    from regelwerk.rules import SessionLimit

    port = DurableRules(max_sessions=3)
    rule_engine = RuleEngine.from_registry(registry, port=port)
    try:
        open_ = [rule_engine.session() for _ in range(3)]
        for session in open_:
            session.assert_fact(joins, {"type": "shift", "employee": "e1"})
        with pytest.raises(SessionLimit):
            rule_engine.session().assert_fact(joins, {"type": "shift"})
        for session in open_:
            session.close()
        assert port.open_sessions(durable_name(joins)) == 0
        for n in range(1100):  # more sessions over time than durable's 1024 live sids
            with rule_engine.session() as session:
                session.assert_fact(joins, {"type": "certificate", "employee": f"e{n}", "expires_on": "2026-05-02"},
                                    now=at(1))
                assert session.assert_fact(joins, {"type": "shift", "employee": f"e{n}"}, now=at(1)).rules == \
                    ["expiring"]
    finally:
        rule_engine.close()


def test_closing_sessions_with_partial_joins_does_not_crash(registry: Any, joins: RuleSetModel) -> None:
    """durable's delete_state segfaults on a session where nothing fired (a lone fact of a join): contained."""
    port = DurableRules(max_sessions=2)
    rule_engine = RuleEngine.from_registry(registry, port=port)
    try:
        for n in range(1100):
            with rule_engine.session() as session:
                session.assert_fact(joins, {"type": "certificate", "employee": f"e{n}", "expires_on": "2026-05-02"},
                                    now=at(1))  # a cert without a shift: a partial join in durable
                session.assert_fact(joins, {"type": "shift", "employee": f"other{n}"})
        left_open = rule_engine.session()
        left_open.assert_fact(joins, {"type": "certificate", "employee": "e", "expires_on": "2026-05-02"}, now=at(1))
    finally:
        rule_engine.close()  # closes the sessions left open before releasing the ruleset


def test_flushing_a_scratch_session_where_nothing_fired_does_not_crash(model: RuleSetModel) -> None:
    """The scratch session is deleted every flush_every messages, also when none of them matched anything."""
    with DurableRules(flush_every=4) as port:
        name = durable_name(model)
        port.load(name, to_durable_ruleset(model))
        for n in range(20):
            assert port.match(name, {"rw_message": 1, "rw": {"event": {"type": f"nothing-{n}"}}}) == []


def test_raw_durable_really_crashes_deleting_a_session_where_nothing_fired() -> None:
    """The edge exists (so the tests above mean something); run in a child process, it kills the process."""
    code = textwrap.dedent("""
        import durable.engine as de
        class H(de.Host):
            def _run(self): pass
            def get_action(self, name): return lambda c: None
        h = H()
        h.register_rulesets({"j": {"r": {"all": [{"a": {"t": "c"}}, {"b": {"t": "s"}}], "run": "x"}}})
        try:
            h.assert_fact("j", {"sid": "1", "t": "nothing matches this"})
        except de.MessageNotHandledException:
            pass
        h.delete_state("j", "1")  # no action ever fired in sid 1
        print("survived")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode != 0 and "survived" not in out.stdout


def test_a_closed_session_is_a_usage_error(engine: RuleEngine, joins: RuleSetModel) -> None:
    from regelwerk.errors import UsageError

    session = engine.session()
    session.close()
    with pytest.raises(UsageError):
        session.assert_fact(joins, {"type": "shift"})


def test_concurrent_sessions_are_serialised(engine: RuleEngine, joins: RuleSetModel) -> None:
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            with engine.session() as session:
                for n in range(50):
                    session.assert_fact(joins, {"type": "certificate", "employee": f"{k}-{n}",
                                                "expires_on": "2026-05-02"}, now=at(1))
                    assert session.post(joins, {"type": "shift", "employee": f"{k}-{n}"}, now=at(1)).rules == \
                        ["logged", "expiring"]
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_an_action_that_raises_is_typed_with_the_original_chained(model: RuleSetModel) -> None:
    from regelwerk.errors import ActionFailed

    def broken(ctx: Any) -> None:
        raise KeyError("employee")

    rule_engine = RuleEngine(actions={"rules.signal": broken, "rules.emit": broken, "rules.set": broken,
                                      "rules.fire_workflow": broken, "rules.send_template": broken})
    try:
        with pytest.raises(ActionFailed) as failed:
            rule_engine.post(model, {"type": "leave_requested", "days": 1}, {"employee": {"department": "x"}})
    finally:
        rule_engine.close()
    assert isinstance(failed.value.__cause__, KeyError) and failed.value.error_type == "builtins.KeyError"
