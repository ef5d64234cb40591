"""Gemeente Waterland (tests/scenarios/gemeente-waterland): a customer written from a short brief by a new consultant.

The fixture validates without a diagnostic and its scenarios pass (they also run in tests/test_scenarios.py with every
scenario file; here the fixture is pinned: its five scenarios by name, and not one warning). The other tests are the
engine's answers to what writing it found:

- a core workflow action's unknown parameter (``workflow.set`` with ``vlaue``, or ``from`` before it existed) was
  ignored and the field set to null: RW305 at the key, with did-you-mean (tests/broken/action-unknown-parameter);
- who acted could not be written into the data, so "every committee member scored" and "HR and the department head
  are two people" could not be said: ``workflow.set``/``workflow.add`` with ``from: actor.id`` and the condition
  function ``includes_all``;
- a payload could change what the guards trust about the case (``{source: intern}`` took an external candidate past
  the internal period, ``{scale: 9}`` skipped the 4-eyes approval): ``fixed_fields``, given at the start only;
- a grant with ``field_groups`` naming a workflow's permission never allows the fire: RW524;
- ``context.*`` in a matrix's conditions was never checked: a matrix may declare its ``context``;
- a RecruitmentWorkflow move ``by`` a role no matrix declares (``hrr``) validated: RW914.
"""

from __future__ import annotations

import shutil
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from regelwerk.actors import Actor
from regelwerk.bundle import load_bundle
from regelwerk.compiler import CompiledBundle, compile_bundle, validate_bundle
from regelwerk.diagnostics import DefinitionError
from regelwerk.errors import InvalidData, TransitionNotAllowed
from regelwerk.permissions.policies import UnsafeAllowAll
from regelwerk.registry import Registry
from regelwerk.runtime import Engine
from regelwerk.scenarios import find_scenario_files, run_scenario_file
from regelwerk.store.memory import MemoryStore

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "scenarios" / "gemeente-waterland"
NOW = datetime(2027, 4, 1, 9, 0, tzinfo=UTC)


def test_the_fixture_validates_without_a_diagnostic(registry: Registry) -> None:
    assert [str(d) for d in validate_bundle(load_bundle(FIXTURE), registry)] == []


def test_the_fixtures_scenarios_pass(registry: Registry) -> None:
    files = find_scenario_files([FIXTURE])
    results = [r for path in files for r in run_scenario_file(path, registry)]
    assert sorted(r.name for r in results) == [
        "waterland-afwijzing-en-bewaartermijnen", "waterland-commissie-referenties-vier-ogen",
        "waterland-interne-periode", "waterland-modules", "waterland-wie-ziet-welke-kandidaat"]
    failures = [line for r in results for line in r.failures()]
    assert failures == [], "\n".join(failures)


# --- who acted, written into the data; every member of a list -------------------------------------------------

FOUR_EYES = """\
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: offer}
spec:
  data_schema:
    type: object
    properties:
      committee: {type: array, items: {type: string}}
      score: {type: integer}
      scored_by: {type: array, items: {type: string}}
      scores: {type: array}
      hr_approved_by: {type: string}
      head_approved_by: {type: string}
      scale: {type: integer}
  fixed_fields: [committee, scale]
  system_fields: [scored_by, scores, hr_approved_by, head_approved_by]
  states:
    - {id: open, initial: true}
    - {id: offered, final: true}
  transitions:
    - id: score
      from: open
      internal: true
      guard: {field: actor.id, in: {field: data.committee}}
      actions:
        - {action: workflow.add, with: {field: scored_by, from: actor.id}}
        - {action: workflow.add, with: {field: scores, from: {by: actor.id, score: data.score}}}
    - id: approve_hr
      from: open
      internal: true
      guard: {field: actor.roles, contains: hr}
      actions: [{action: workflow.set, with: {field: hr_approved_by, from: actor.id}}]
    - id: approve_head
      from: open
      internal: true
      guard: {field: actor.roles, contains: head}
      actions: [{action: workflow.set, with: {field: head_approved_by, from: actor.id}}]
    - id: offer
      from: open
      to: offered
      guard:
        all:
          - {field: actor.roles, contains: hr}
          - {fn: includes_all, args: [{field: data.scored_by}, {field: data.committee}]}
          - {field: data.hr_approved_by, exists: true}
          - {field: data.head_approved_by, exists: true}
          - {field: data.hr_approved_by, ne: {field: data.head_approved_by}}
"""


def _compiled(tmp_path: Path, registry: Registry, text: str) -> CompiledBundle:
    (tmp_path / "offer.yaml").write_text(text, encoding="utf-8")
    return compile_bundle(load_bundle(tmp_path), registry)


def _engine(compiled: CompiledBundle, registry: Registry) -> Engine:
    return Engine(compiled, store=MemoryStore(), registry=registry, clock=lambda: NOW, permissions=UnsafeAllowAll())


def test_who_acted_is_written_into_the_data_and_every_member_must_have_scored(tmp_path: Path,
                                                                              registry: Registry) -> None:
    with _engine(_compiled(tmp_path, registry, FOUR_EYES), registry) as engine:
        engine.start("offer", {"committee": ["tim", "cor"], "scale": 11}, Actor("hanna", ("hr",)), "o1")
        engine.fire("o1", "score", Actor("tim"), {"score": 8})
        engine.fire("o1", "score", Actor("tim"), {"score": 8})  # added once
        dirk = Actor("dirk", ("hr", "head"))
        engine.fire("o1", "approve_hr", dirk)
        engine.fire("o1", "approve_head", dirk)
        with pytest.raises(TransitionNotAllowed):  # cor has not scored, and dirk approved twice
            engine.fire("o1", "offer", dirk)
        engine.fire("o1", "score", Actor("cor"), {"score": 6})
        with pytest.raises(TransitionNotAllowed):  # one person is not four eyes
            engine.fire("o1", "offer", dirk)
        engine.fire("o1", "approve_hr", Actor("hanna", ("hr",)))
        record = engine.fire("o1", "offer", dirk)
    assert record.state == "offered"
    assert record.data["scored_by"] == ["tim", "cor"]
    assert record.data["scores"] == [{"by": "tim", "score": 8}, {"by": "cor", "score": 6}]
    assert (record.data["hr_approved_by"], record.data["head_approved_by"]) == ("hanna", "dirk")


def test_includes_all_needs_two_lists() -> None:
    from regelwerk.functions import includes_all

    assert includes_all(["a", "b", "c"], ["c", "a"]) is True
    assert includes_all(["a"], ["a", "b"]) is False
    assert includes_all(["a"], []) is True
    assert includes_all(None, ["a"]) is False
    assert includes_all("ab", ["a"]) is False  # a text is no list: no substring test


# --- fixed fields -------------------------------------------------------------------------------------------------


def test_a_fixed_field_is_given_at_the_start_and_never_by_a_payload(tmp_path: Path, registry: Registry) -> None:
    with _engine(_compiled(tmp_path, registry, FOUR_EYES), registry) as engine:
        engine.start("offer", {"committee": ["tim", "cor"], "scale": 11}, Actor("hanna", ("hr",)), "o1")
        before = engine.get("o1")
        for payload in ({"scale": 9}, {"committee": ["tim"]}, {"scale": 11}):
            with pytest.raises(InvalidData) as caught:
                engine.fire("o1", "approve_hr", Actor("hanna", ("hr",)), payload)
            assert caught.value.pointer == "/" + next(iter(payload))
            assert "fixed field" in str(caught.value)
        after = engine.get("o1")
        assert (after.version, dict(after.data)) == (before.version, dict(before.data))
        refusals = [a for a in engine.audit("o1") if a.action == "workflow.system_fields_refused"]
        assert [a.detail["fields"] for a in refusals] == [["scale"], ["committee"], ["scale"]]
        # the workflow's own work and the host's code still may
        engine.fire("o1", "approve_hr", Actor("hanna", ("hr",)), system_data={"scale": 10})
        assert engine.get("o1").data["scale"] == 10


# --- what an event's data may carry ---------------------------------------------------------------------------


def test_an_events_input_limits_what_a_persons_data_may_carry(tmp_path: Path, registry: Registry) -> None:
    text = FOUR_EYES.replace("      scale: {type: integer}\n",
                             "      scale: {type: integer}\n      salary_expectation: {type: number}\n")
    text = text.replace("""    - id: score
      from: open
      internal: true
""", """    - id: score
      from: open
      internal: true
      input: [score]
""")
    with _engine(_compiled(tmp_path, registry, text), registry) as engine:
        engine.start("offer", {"committee": ["tim", "cor"], "scale": 11, "salary_expectation": 4000},
                     Actor("hanna", ("hr",)), "o1")
        before = engine.get("o1")
        with pytest.raises(InvalidData) as caught:  # a committee member's score may not carry anything else
            engine.fire("o1", "score", Actor("cor"), {"score": 7, "salary_expectation": 1})
        assert caught.value.pointer == "/salary_expectation" and caught.value.system_fields == ("salary_expectation",)
        after = engine.get("o1")
        assert (after.version, dict(after.data)) == (before.version, dict(before.data))
        assert [a.detail["fields"] for a in engine.audit("o1") if a.action == "workflow.system_fields_refused"] \
            == [["salary_expectation"]]
        explained = engine.explain("o1", "score", Actor("cor"), {"score": 7, "salary_expectation": 1})
        assert explained["allowed"] is False and "salary_expectation" in explained["reasons"][0]
        assert engine.fire("o1", "score", Actor("cor"), {"score": 7}).data["scores"] == [{"by": "cor", "score": 7}]
        # an event without input takes any field that is neither a system nor a fixed field
        assert engine.fire("o1", "approve_hr", Actor("hanna", ("hr",)), {"salary_expectation": 4100}).data[
            "salary_expectation"] == 4100


# --- the validator: what a first draft got wrong and validated -------------------------------------------------


def test_an_unknown_parameter_of_a_core_action_is_reported_at_the_key(tmp_path: Path, registry: Registry) -> None:
    text = FOUR_EYES.replace("{field: hr_approved_by, from: actor.id}", "{field: hr_approved_by, form: actor.id}")
    with pytest.raises(DefinitionError) as caught:
        _compiled(tmp_path, registry, text)
    [diag] = caught.value.diagnostics
    assert (diag.code, diag.pointer, diag.hint) == ("RW305", "/spec/transitions/1/actions/0/with/form",
                                                    "did you mean 'from'?")


def _broken(case: str, tmp_path: Path) -> Path:
    """A case of tests/broken, without its expected.yaml (as tests/test_broken_corpus.py validates it)."""
    copy = tmp_path / case
    shutil.copytree(ROOT / "tests" / "broken" / case, copy, ignore=shutil.ignore_patterns("expected.yaml"))
    return copy


def test_a_grant_only_for_field_groups_on_a_workflow_permission_is_rw524(tmp_path: Path, registry: Registry) -> None:
    [diag] = validate_bundle(load_bundle(_broken("grant-field-groups-on-a-workflow-permission", tmp_path)), registry)
    assert (diag.code, diag.is_error, diag.pointer) == ("RW524", False, "/spec/grants/0/field_groups")
    assert "'invite'" in diag.message and "never allows" in diag.message


def test_a_declared_context_checks_the_conditions_paths(tmp_path: Path, registry: Registry) -> None:
    problems = validate_bundle(load_bundle(_broken("matrix-context-unknown-path", tmp_path)), registry)
    assert [(d.code, d.hint) for d in problems if d.code == "RW410"] == [("RW410", "did you mean 'modules'?")]


def test_a_move_by_a_role_no_matrix_declares_is_rw914(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: w}\n"
                                          "spec: {extends: standard}\n", encoding="utf-8")
    (tmp_path / "workflow.yaml").write_text(textwrap.dedent("""\
        apiVersion: regelwerk/v1
        kind: RecruitmentWorkflow
        metadata: {name: waterland}
        spec:
          statuses: standard
          active: [new, screening, offer]
          archive: [hired, rejected]
          moves:
            - {from: "*", to: [offer, hired], by: [administratr, manager]}
            - {from: "*", to: "*", by: [team, beheerder]}
        """), encoding="utf-8")
    (tmp_path / "settings.yaml").write_text(textwrap.dedent("""\
        apiVersion: regelwerk/v1
        kind: RecruitmentSettings
        metadata: {name: default, merge: patch}
        spec:
          vacancy_admins: [beheerder, adminstrator]
        """), encoding="utf-8")
    problems = validate_bundle(load_bundle(tmp_path), registry)
    assert sorted((d.code, d.pointer, d.hint) for d in problems) == [
        ("RW914", "/spec/moves/0/by/0", "did you mean 'administrator'?"),
        ("RW914", "/spec/vacancy_admins/1", "did you mean 'administrator'?")]


# --- a scenario step that does not fit: its own type's schema says why -------------------------------------------


def test_a_malformed_step_is_explained_by_its_own_types_schema(tmp_path: Path, registry: Registry) -> None:
    scenario = tmp_path / "bad.scenario.yaml"
    scenario.write_text(textwrap.dedent(f"""\
        apiVersion: regelwerk/v1
        kind: Scenario
        metadata: {{name: bad}}
        spec:
          bundle: {FIXTURE}
          steps:
            - permission_table:
                matrix: step2hr
                tests:
                  - input: {{principals: [a], resources: [b], actions: [read], field_group: dossier}}
            - can: {{matrix: step2hr, actor: a, action: read, resource: x, expect: alowed}}
        """), encoding="utf-8")
    [result] = run_scenario_file(scenario, registry)
    assert result.error is not None and "accept_user_invitation" not in result.error
    assert ":10:20: Additional properties are not allowed ('field_group' was unexpected) " \
           "[at /spec/steps/0/permission_table/tests/0/input]" in result.error
    assert ":11:75: 'alowed' is not one of ['allowed', 'denied'] [at /spec/steps/1/can/expect]" in result.error
