"""PermissionMatrix: compile, decide (precedence, scopes, rights, field groups), explanations, render, CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from regelwerk.actors import Actor
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.permissions import MemoryRelationships, PermissionMatrix
from regelwerk.permissions.render import render_html, render_markdown
from regelwerk.registry import load_registry

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "definitions" / "standard" / "permissions"
NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.fixture(scope="module")
def compiled():  # type: ignore[no-untyped-def]
    return compile_bundle(load_bundle(SHIPPED), load_registry(use_entry_points=False))


@pytest.fixture(scope="module")
def step2hr(compiled) -> PermissionMatrix:  # type: ignore[no-untyped-def]
    return compiled.get("PermissionMatrix", "step2hr")


@pytest.fixture
def line() -> MemoryRelationships:
    return MemoryRelationships([
        {"kind": "reports_to", "subject": "lotte", "object": "dirk"},
        {"kind": "reports_to", "subject": "mark", "object": "lotte"},
        {"kind": "reports_to", "subject": "eva", "object": "mark"},
    ])


def test_every_shipped_matrix_compiles(compiled) -> None:  # type: ignore[no-untyped-def]
    assert sorted(compiled.of_kind("PermissionMatrix")) == ["hroffice", "mijnloket", "registerplein", "step2hr"]


def test_inheritance_is_transitive(step2hr: PermissionMatrix) -> None:
    assert step2hr.effective_roles["beheerder"] == ("beheerder", "directie", "leidinggevende", "medewerker")
    assert step2hr.effective_roles["medewerker"] == ("medewerker",)


def test_deny_beats_allow_and_names_the_rule(step2hr: PermissionMatrix, line: MemoryRelationships) -> None:
    note = {"id": "n1", "subject": "eva", "author": "mark"}
    hr = Actor("hanna", ("beheerder",))
    assert step2hr.decide(hr, "read", "manager_log", note, line, NOW).by == "manager_log_hr"
    denied = step2hr.decide(hr, "write", "manager_log", note, line, NOW)
    assert not denied.allowed and denied.by == "manager_log_only_author_edits"
    assert denied.explain["effect"] == "deny"


def test_explicit_deny_beats_an_extra_right(step2hr: PermissionMatrix) -> None:
    rel = MemoryRelationships([{"kind": "has_right", "subject": "petra", "object": "approve_training"}])
    petra = Actor("petra", ("medewerker",))
    assert step2hr.decide(petra, "approve", "training_record", {"subject": "eva"}, rel, NOW).allowed
    own = step2hr.decide(petra, "approve", "training_record", {"subject": "petra"}, rel, NOW)
    assert (own.allowed, own.by) == (False, "training_no_self_approval")


def test_deny_by_default_explains_each_candidate(step2hr: PermissionMatrix, line: MemoryRelationships) -> None:
    decision = step2hr.decide(Actor("sam", ("medewerker",)), "read", "manager_log",
                              {"subject": "eva", "author": "mark"}, line, NOW, explain=True)
    assert not decision.allowed and decision.by == "default"
    assert "deny by default" in decision.explain["reason"]
    json.dumps(decision.to_dict())  # JSON-able
    lotte = step2hr.decide(Actor("lotte", ("leidinggevende",)), "read", "manager_log",
                           {"subject": "dirk", "author": "x"}, line, NOW, explain=True)
    reasons = {c["rule"]: c["why"] for c in lotte.explain["considered"]}
    assert "above x: []" in reasons["manager_log_line_above"]


def test_all_reports_uses_the_closure_index(step2hr: PermissionMatrix, line: MemoryRelationships) -> None:
    assert line.ancestors("eva") == {"mark", "lotte", "dirk"}
    dirk = Actor("dirk", ("directie",))
    note = {"subject": "eva", "author": "mark"}
    assert step2hr.decide(dirk, "read", "manager_log", note, line, NOW).by == "manager_log_line_above"
    line.unrelate("reports_to", "lotte", "dirk", at=NOW)
    assert line.ancestors("eva") == {"mark", "lotte"}
    assert not step2hr.decide(dirk, "read", "manager_log", note, line, NOW).allowed
    line.relate("reports_to", "lotte", "dirk")
    assert step2hr.decide(dirk, "read", "manager_log", note, line, NOW).allowed


def test_fast_and_explained_decisions_agree(step2hr: PermissionMatrix, line: MemoryRelationships) -> None:
    actors = [Actor(a, (r,)) for a, r in [("dirk", "directie"), ("lotte", "leidinggevende"),
                                           ("mark", "leidinggevende"), ("eva", "medewerker"),
                                           ("hanna", "beheerder")]]
    resources = [("manager_log", {"subject": "eva", "author": "mark"}), ("personal_log", {"author": "eva"}),
                 ("p_and_o_note", {"subject": "eva"}), ("employee", {"subject": "eva"}),
                 ("training_record", {"subject": "eva", "state": "approved"})]
    checked = 0
    for actor in actors:
        for rtype, res in resources:
            for action in step2hr.resources[rtype].actions:
                fast = step2hr.decide(actor, action, rtype, res, line, NOW)
                full = step2hr.decide(actor, action, rtype, res, line, NOW, explain=True)
                assert (fast.allowed, fast.by) == (full.allowed, full.by), (actor, action, rtype)
                checked += 1
    assert checked > 50


def test_decider_agrees_with_decide(compiled, line: MemoryRelationships) -> None:  # type: ignore[no-untyped-def]
    line.relate("has_right", "petra", "approve_training")
    for name, matrix in compiled.of_kind("PermissionMatrix").items():
        for rtype, resource_type in matrix.resources.items():
            for action in resource_type.actions:
                bound = matrix.decider(rtype, action)
                for actor in [Actor("eva", ("medewerker",)), Actor("dirk", ("directie",)), Actor("petra", ()),
                              Actor("x", tuple(matrix.roles)[:1])]:
                    for res in ({"subject": "eva", "author": "mark"}, {"subject": "petra", "author": "eva"}, None):
                        want = matrix.decide(actor, action, rtype, res, line, NOW)
                        got = bound(actor, res, line, NOW)
                        assert (got.allowed, got.by) == (want.allowed, want.by), (name, rtype, action, actor)


def test_unknown_names_are_denied_with_a_reason(step2hr: PermissionMatrix) -> None:
    actor = {"id": "hanna", "roles": ["beheerder"]}
    unknown = step2hr.decide(actor, "read", "salaris", None, None, NOW)
    assert not unknown.allowed and "unknown resource type" in unknown.explain["reason"]
    no_action = step2hr.decide(actor, "fly", "vacancy", None, None, NOW)
    assert not no_action.allowed and "has no action" in no_action.explain["reason"]


def test_field_groups(step2hr: PermissionMatrix, line: MemoryRelationships) -> None:
    lotte = Actor("lotte", ("leidinggevende",))
    groups = step2hr.readable_field_groups(lotte, "employee", {"subject": "eva"}, line, NOW)
    assert groups == ("personal", "employment")
    assert not step2hr.decide(lotte, "read", "employee", {"subject": "eva"}, line, NOW).allowed


def test_condition_reads_resource_and_context(compiled) -> None:  # type: ignore[no-untyped-def]
    hroffice = compiled.get("PermissionMatrix", "hroffice")
    support = Actor("s", ("hroffice_support",))
    off = hroffice.decide(support, "read", "account", {}, None, NOW, {"company_profile": {"support_access": False}},
                          explain=True)
    assert not off.allowed and "support_access" in off.explain["reason"]
    assert hroffice.decide(support, "read", "account", {}, None, NOW,
                           {"company_profile": {"support_access": True}}).by == "support_access"


def test_user_rights_in_the_definition(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("""
apiVersion: regelwerk/v1
kind: PermissionMatrix
metadata: {name: m}
spec:
  roles: [{id: medewerker}]
  resources: [{id: doc, actions: [read]}]
  rights: [{id: r, grants: [{id: rg, resource: doc, actions: [read]}]}]
  user_rights: [{user: u1, right: r, valid_from: "2026-03-01", valid_to: "2026-03-31"}]
""", encoding="utf-8")
    matrix = compile_bundle(load_bundle(tmp_path), load_registry(use_entry_points=False)).get("PermissionMatrix", "m")
    assert matrix.decide("u1", "read", "doc", None, None, NOW).by == "rg"
    assert not matrix.decide("u1", "read", "doc", None, None, datetime(2026, 4, 1, tzinfo=UTC)).allowed
    assert not matrix.decide("u2", "read", "doc", None, None, NOW).allowed


def test_render_markdown_and_html(step2hr: PermissionMatrix) -> None:
    markdown = render_markdown(step2hr)
    assert "| Logboek over medewerkers | read (lezen) |" in markdown
    assert "manager_log_only_author_edits" in markdown
    page = render_html(step2hr)
    assert page.startswith("<!DOCTYPE html>") and "Aantekeningen door P&amp;O" in page


def test_cli_can_and_render(tmp_path: Path) -> None:
    from regelwerk.permissions.cli import can_command, render_group

    facts = tmp_path / "facts.yaml"
    facts.write_text("""
actors: {dirk: {roles: [directie]}}
relations:
  - {kind: reports_to, subject: eva, object: mark}
  - {kind: reports_to, subject: mark, object: dirk}
resources:
  manager_log:n1: {subject: eva, author: mark}
""", encoding="utf-8")
    runner = CliRunner()
    args = [str(SHIPPED), "--matrix", "step2hr", "--as", "dirk", "--resource", "manager_log:n1",
            "--facts", str(facts), "--format", "json"]
    result = runner.invoke(can_command, [*args, "--action", "read"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["explain"]["by"] == "manager_log_line_above"
    result = runner.invoke(can_command, [*args, "--action", "write"])
    assert result.exit_code == 1
    assert json.loads(result.output) ["allowed"] is False
    result = runner.invoke(can_command, [str(SHIPPED), "--as", "dirk", "--action", "read", "--resource", "x"])
    assert result.exit_code == 2 and "name the matrix" in result.output
    result = runner.invoke(render_group, ["matrix", "mijnloket", str(SHIPPED), "--format", "markdown"])
    assert result.exit_code == 0 and "Raadplegen MijnLoket e-mailadres" in result.output


@pytest.mark.parametrize(("text", "expected"), [
    ("relations:\n  - {kind: reports_to, subject: bram}\n", ":2:5: error RW710: relation 1 needs a non-empty"),
    ("relations:\n  - {kind: reports_to, subject: bram, object: ''}\n", ":2:47: error RW710: relation 1 needs"),
    ("relations:\n  - {kind: consent, subject: p, object: m, until: morgen}\n", ":2:51: error RW710: relation 1:"),
    ("relations:\n  - {kind: consent, subject: p, object: m, from: 2026-03-02, until: 2026-03-01}\n",
     "error RW710: relation 1: ends (2026-03-01) before it starts (2026-03-02)"),
    ("relations:\n  - just-text\n", ":2:5: error RW710: relation 1 must be a mapping"),
    ("relations: {kind: consent}\n", ":1:12: error RW710: relations must be a list"),
    ("actors:\n  anna: [leidinggevende]\n", ":2:9: error RW710: actor 'anna' must be a mapping"),
    ("actors:\n  anna: {roles: leidinggevende}\n", "error RW710: roles of actor 'anna' must be a list"),
    ("resources:\n  manager_log:n1: [1, 2]\n", "error RW710: resource 'manager_log:n1' must be a mapping"),
    ("relatons: []\n", ":1:1: error RW710: unknown section 'relatons'"),
    ("- a\n", "error RW008"),
])
def test_cli_can_bad_facts_are_diagnostics_not_tracebacks(tmp_path: Path, text: str, expected: str) -> None:
    """A malformed facts file is a usage error (exit 2) with file:line:col, never a traceback (exit 1)."""
    from regelwerk.permissions.cli import can_command

    facts = tmp_path / "facts.yaml"
    facts.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(can_command, [str(SHIPPED), "--matrix", "step2hr", "--as", "dirk", "--action", "read",
                                              "--resource", "manager_log:n1", "--facts", str(facts)])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_relations_from_facts_name_the_row() -> None:
    from regelwerk.permissions.relations import relations_from_facts

    with pytest.raises(ValueError, match="relation 2 needs a non-empty 'object'"):
        relations_from_facts({"relations": [{"kind": "member_of", "subject": "b", "object": "c"},
                                            {"kind": "member_of", "subject": "b"}]})
    with pytest.raises(ValueError, match="relation 1 must be a mapping"):
        relations_from_facts({"relations": ["x"]})


def test_a_relation_of_a_kind_no_scope_reads_is_refused_with_did_you_mean(tmp_path: Path) -> None:
    """A typo in a relation's kind (member_off) was a fact no scope reads: a location manager without location in
    a scenario, whose 'expect: denied' then passed for the wrong reason. Refused in scenario facts and in a facts
    file (RW710)."""
    from regelwerk.permissions.facts import check_facts
    from regelwerk.permissions.relations import relations_from_facts

    with pytest.raises(ValueError, match=r"relation 1 has kind 'member_off', which no scope reads \(did you mean "
                                         r"'member_of'\?\)"):
        relations_from_facts({"relations": [{"kind": "member_off", "subject": "lm-a", "object": "loc-a"}]})
    problems = check_facts({"relations": [{"kind": "member_off", "subject": "lm-a", "object": "loc-a"}]},
                                "facts.yaml")
    assert [(p.code, p.pointer, p.hint) for p in problems] == [("RW710", "/relations/0/kind",
                                                                "did you mean 'member_of'?")]
