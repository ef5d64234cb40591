"""Mail to a role (``send_template`` with ``to: {role: ...}``) on a real SQLite file store: one outbox row per holder
of the role who may read the instance, addressed by their account or the employee directory, audited once; nobody
to mail is a typed refusal that leaves the store as it was; an unknown role is RW303 at its line."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.diagnostics import DefinitionError
from regelwerk.errors import NoRecipients
from regelwerk.runtime import Engine

NOW = datetime(2027, 2, 24, 9, 0, tzinfo=UTC)
FAST = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)  # real Argon2id, cheap enough for tests

MATRIX = """\
apiVersion: regelwerk/v1
kind: PermissionMatrix
metadata: {name: m}
spec:
  roles:
    - {id: hr, label: HR}
    - {id: locatiemanager, label: Locatiemanager}
    - {id: medewerker, label: Medewerker}
  resources:
    - {id: onboarding, label: Indiensttreding, department: location, actions: [start, read, remind]}
  grants:
    - {id: hr_all, roles: [hr], resource: onboarding, actions: [start, read, remind]}
    - {id: lm_own_location, roles: [locatiemanager], resource: onboarding, actions: [read], scope: department}
"""

WORKFLOW = """\
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: onboarding}
spec:
  resource_type: onboarding
  start_permission: start
  data_schema:
    type: object
    required: [subject, location]
    properties:
      subject: {type: string}
      location: {type: string}
      email: {type: string}
  states:
    - {id: open, initial: true}
    - {id: reminded}
    - {id: told, final: true}
  transitions:
    - id: remind
      from: open
      to: reminded
      permission: remind
      actions:
        - {action: send_template, with: {template: herinnering, to: {ROLE}, about: data.subject}}
    - id: tell
      from: reminded
      to: told
      permission: remind
      actions:
        - {action: send_template, with: {template: herinnering, to: data.email, about: data.subject}}
---
apiVersion: regelwerk/v1
kind: MailContext
metadata: {name: ctx}
spec:
  fields:
    - {path: data.subject}
    - {path: data.location}
---
apiVersion: regelwerk/v1
kind: Template
metadata: {name: herinnering}
spec:
  context: ctx
  subject: "VOG van {{ data.subject }}"
  body: "De VOG van {{ data.subject }} (locatie {{ data.location }}) ontbreekt."
"""

HR = {"id": "hr1", "roles": ["hr"]}


def _bundle(tmp_path: Path, role: str = "role: hr") -> Path:
    root = tmp_path / "bundle"
    root.mkdir()
    (root / "matrix.yaml").write_text(MATRIX, encoding="utf-8")
    (root / "workflow.yaml").write_text(WORKFLOW.replace("{ROLE}", "{" + role + "}"), encoding="utf-8")
    return root


@pytest.fixture
def engine(tmp_path: Path, registry: Any) -> Iterator[Engine]:
    compiled = compile_bundle(load_bundle(_bundle(tmp_path)), registry)
    eng = Engine(compiled, store=f"sqlite:///{tmp_path / 'store.sqlite'}", registry=registry, permissions="m",
                 clock=lambda: NOW)
    yield eng
    eng.close()


def _people(engine: Engine, holders: dict[str, str], *, accounts: dict[str, str] | None = None,
            employees: dict[str, str] | None = None, members: dict[str, str] | None = None) -> None:
    """Role holders (``has_role`` facts), their addresses (an account, or the employee directory) and departments."""
    from regelwerk.permissions.accounts import Accounts
    from regelwerk.scheduling.employees import EmployeeDirectory

    relations = engine.permissions.relationships  # type: ignore[attr-defined]
    for person, role in holders.items():
        relations.relate("has_role", person, role, now=NOW)
    for person, group in (members or {}).items():
        relations.relate("member_of", person, group, now=NOW)
    sa_engine = engine.store.engine  # type: ignore[attr-defined]
    for person, email in (accounts or {}).items():
        Accounts(sa_engine, hasher=FAST).create(f"user-{person}", subject=person, email=email, by="admin", now=NOW)
    EmployeeDirectory(sa_engine).upsert([{"id": p, "name": p, "email": e} for p, e in (employees or {}).items()], NOW)


def _snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    sa_engine = engine.store.engine  # type: ignore[attr-defined]
    with sa_engine.connect() as conn:
        return {table: [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY 1"))]
                for table in ("rw_instances", "rw_history", "rw_outbox", "rw_timers", "rw_relations", "rw_accounts",
                              "rw_employees")}


def _audits(engine: Engine) -> list[tuple[str, str]]:
    return [(a.action, a.actor) for a in engine.audit("ob1")]


def test_one_outbox_row_per_holder_in_scope_audited_and_erasable(engine: Engine) -> None:
    _people(engine, {"hr1": "hr", "hr2": "hr", "lm-a": "locatiemanager", "lm-b": "locatiemanager"},
            accounts={"hr1": "hanna@vlinder.example"},
            employees={"hr2": "henk@vlinder.example", "lm-a": "lotte@vlinder.example", "e1": "eva@vlinder.example"},
            members={"lm-a": "loc-a", "lm-b": "loc-b"})
    engine.start("onboarding", {"subject": "e1", "location": "loc-a", "email": "eva@vlinder.example"}, HR, "ob1")
    engine.fire("ob1", "remind", HR)
    with engine.store.read() as tx:
        rows = tx.outbox(instance_id="ob1")
    assert sorted(r.recipient for r in rows) == ["hanna@vlinder.example", "henk@vlinder.example"]
    assert {(r.template, r.subject_ref, r.subject) for r in rows} == {("herinnering", "e1", "VOG van e1")}
    [audit] = [a for a in engine.audit("ob1") if a.action == "outbox.role_mail"]
    assert audit.detail["recipients"] == ["hr1", "hr2"] and audit.detail["role"] == "hr"
    assert sorted(audit.detail["messages"]) == sorted(r.id for r in rows)
    # to: data.x is unchanged: one mail to the address in the data
    engine.fire("ob1", "tell", HR)
    with engine.store.read() as tx:
        assert sorted(r.recipient for r in tx.outbox(instance_id="ob1")) == [
            "eva@vlinder.example", "hanna@vlinder.example", "henk@vlinder.example"]
    # AVG: every message about the employee goes, the role mails included
    with engine.store.transaction() as tx:
        tx.erase_personal_data([], ["e1"], actor="dpo", at=NOW)
        assert tx.outbox(instance_id="ob1") == []


LISTS = ["eva@vlinder.example,boss@evil.example", "eva@vlinder.example;boss@evil.example",
         "Eva <eva@vlinder.example>,boss@evil.example", '"eva"<boss@evil.example>', "eva@vlinder.example\tboss@e.x"]


@pytest.mark.parametrize("address", LISTS)
def test_an_address_field_holding_several_mailboxes_is_refused_and_nothing_is_written(engine: Engine,
                                                                                      address: str) -> None:
    """Found by attack: the outbox took any text without a line break, and delivery put it in the To header, from
    which smtplib mails every address: a person's own ``email`` of ``eva@...,boss@evil.example`` sent her mail to a
    second mailbox too. Now InvalidData, the transition rolls back, nothing is queued."""
    from regelwerk.errors import InvalidData

    _people(engine, {"hr1": "hr"}, accounts={"hr1": "hanna@vlinder.example"})
    engine.start("onboarding", {"subject": "e1", "location": "loc-a", "email": address}, HR, "ob1")
    engine.fire("ob1", "remind", HR)
    before = _snapshot(engine)
    with pytest.raises(InvalidData, match="not the address of one mailbox"):
        engine.fire("ob1", "tell", HR)
    assert _snapshot(engine) == before and engine.get("ob1").state == "reminded"


@pytest.mark.parametrize("address", LISTS[:2] + LISTS[3:4])  # (a space made no usable address before either)
def test_a_holder_whose_directory_address_is_a_list_has_no_usable_address(engine: Engine, address: str) -> None:
    """The employee directory's address of a role holder (the organisation import's E-mailadres) that holds several
    mailboxes is no address: the holder is without one and the mail refuses (fail closed), none is queued."""
    _people(engine, {"hr1": "hr", "hr2": "hr"}, accounts={"hr1": "hanna@vlinder.example"},
            employees={"hr2": address})
    engine.start("onboarding", {"subject": "e1", "location": "loc-a"}, HR, "ob1")
    before = _snapshot(engine)
    with pytest.raises(NoRecipients) as caught:
        engine.fire("ob1", "remind", HR)
    assert caught.value.without_address == ("hr2",)
    assert {k: v for k, v in _snapshot(engine).items() if k != "rw_audit"} == before


def test_a_scoped_role_mails_only_the_holders_the_policy_lets_read_the_instance(tmp_path: Path, registry: Any) -> None:
    compiled = compile_bundle(load_bundle(_bundle(tmp_path, "role: locatiemanager")), registry)
    with Engine(compiled, store=f"sqlite:///{tmp_path / 'store.sqlite'}", registry=registry, permissions="m",
                clock=lambda: NOW) as engine:
        _people(engine, {"hr1": "hr", "lm-a": "locatiemanager", "lm-b": "locatiemanager"},
                employees={"lm-a": "lotte@vlinder.example", "lm-b": "bram@vlinder.example"},
                members={"lm-a": "loc-a", "lm-b": "loc-b"})
        engine.start("onboarding", {"subject": "e1", "location": "loc-a"}, HR, "ob1")
        engine.fire("ob1", "remind", HR)
        with engine.store.read() as tx:
            assert [r.recipient for r in tx.outbox(instance_id="ob1")] == ["lotte@vlinder.example"]
        [audit] = [a for a in engine.audit("ob1") if a.action == "outbox.role_mail"]
        assert audit.detail["recipients"] == ["lm-a"] and audit.detail["out_of_scope"] == ["lm-b"]


def test_a_holder_in_scope_without_an_address_refuses_the_transition_and_leaves_the_store(engine: Engine) -> None:
    _people(engine, {"hr1": "hr", "hr3": "hr", "lm-b": "locatiemanager"},
            accounts={"hr1": "hanna@vlinder.example"}, members={"lm-b": "loc-b"})
    engine.start("onboarding", {"subject": "e1", "location": "loc-a"}, HR, "ob1")
    before, audits = _snapshot(engine), _audits(engine)
    with pytest.raises(NoRecipients) as caught:
        engine.fire("ob1", "remind", HR)
    assert caught.value.without_address == ("hr3",) and caught.value.holders == ("hr1", "hr3")
    assert caught.value.to_dict()["error"] == "no_recipients" and caught.value.role == "hr"
    assert _snapshot(engine) == before
    # the refusal is audited once (kept while the transition rolled back), with its data
    assert _audits(engine) == [*audits, ("outbox.no_recipients", "hr1")]
    refusal = engine.audit("ob1")[-1].detail
    assert refusal["without_address"] == ["hr3"] and refusal["event"] == "remind"
    assert engine.get("ob1").state == "open"


def test_nobody_holding_the_role_or_no_directory_is_a_typed_refusal(engine: Engine, tmp_path: Path,
                                                                    registry: Any) -> None:
    engine.start("onboarding", {"subject": "e1", "location": "loc-a"}, HR, "ob1")
    before, audits = _snapshot(engine), _audits(engine)
    with pytest.raises(NoRecipients, match="nobody holds the role"):
        engine.fire("ob1", "remind", HR)
    assert _snapshot(engine) == before
    assert _audits(engine) == [*audits, ("outbox.no_recipients", "hr1")]
    from regelwerk.permissions.policies import UnsafeAllowAll

    engine.permissions = UnsafeAllowAll()  # a policy without relationship facts: nowhere to find holders
    with pytest.raises(NoRecipients, match="no role directory"):
        engine.fire("ob1", "remind", HR)
    assert _snapshot(engine) == before


def test_holders_all_out_of_scope_are_a_refusal_naming_why(tmp_path: Path, registry: Any) -> None:
    compiled = compile_bundle(load_bundle(_bundle(tmp_path, "role: locatiemanager")), registry)
    with Engine(compiled, store=f"sqlite:///{tmp_path / 'store.sqlite'}", registry=registry, permissions="m",
                clock=lambda: NOW) as engine:
        _people(engine, {"lm-b": "locatiemanager"}, employees={"lm-b": "bram@vlinder.example"},
                members={"lm-b": "loc-b"})
        engine.start("onboarding", {"subject": "e1", "location": "loc-a"}, HR, "ob1")
        before = _snapshot(engine)
        with pytest.raises(NoRecipients) as caught:
            engine.fire("ob1", "remind", HR)
        assert list(caught.value.out_of_scope) == ["lm-b"] and "lm_own_location" in caught.value.out_of_scope["lm-b"]
        assert "no holder of the role may read this onboarding" in str(caught.value)
        assert _snapshot(engine) == before


def test_if_nobody_skip_skips_a_mail_nobody_in_scope_may_get_but_never_one_a_holder_lacks_an_address_for(
        tmp_path: Path, registry: Any) -> None:
    """``if_nobody: skip`` (a monthly overview about a nurse who withdrew her consent): nobody holding the role, or
    nobody holding it who may read the instance, skips the mail with an audit row and the transition goes on; a holder
    in scope without an address still refuses (fail closed: that one would never hear of it)."""
    compiled = compile_bundle(load_bundle(_bundle(tmp_path, "role: locatiemanager, if_nobody: skip")), registry)
    with Engine(compiled, store=f"sqlite:///{tmp_path / 'store.sqlite'}", registry=registry, permissions="m",
                clock=lambda: NOW) as engine:
        engine.start("onboarding", {"subject": "e1", "location": "loc-a"}, HR, "ob1")
        assert engine.fire("ob1", "remind", HR).state == "reminded"  # nobody holds the role: skipped
        skipped = [a for a in engine.audit("ob1") if a.action == "outbox.role_mail_skipped"]
        assert len(skipped) == 1 and skipped[0].detail["role"] == "locatiemanager"
        assert "nobody holds the role" in skipped[0].detail["reason"]
        _people(engine, {"lm-b": "locatiemanager", "lm-a": "locatiemanager"}, employees={"lm-b": "bram@x.example"},
                members={"lm-b": "loc-b", "lm-a": "loc-a"})
        engine.start("onboarding", {"subject": "e2", "location": "loc-b"}, HR, "ob2")
        engine.start("onboarding", {"subject": "e3", "location": "loc-c"}, HR, "ob3")
        assert engine.fire("ob3", "remind", HR).state == "reminded"  # both out of scope: skipped, naming them
        detail = next(a for a in engine.audit("ob3") if a.action == "outbox.role_mail_skipped").detail
        assert detail["out_of_scope"] == ["lm-a", "lm-b"]
        assert engine.fire("ob2", "remind", HR).state == "reminded"  # lm-b in scope with an address: mailed
        with engine.store.read() as tx:
            assert [m.recipient for m in tx.outbox(instance_id="ob2")] == ["bram@x.example"]
            assert tx.outbox(instance_id="ob1") == [] and tx.outbox(instance_id="ob3") == []
        engine.start("onboarding", {"subject": "e4", "location": "loc-a"}, HR, "ob4")
        before = _snapshot(engine)
        with pytest.raises(NoRecipients) as caught:  # lm-a may read it and has no address: never skipped
            engine.fire("ob4", "remind", HR)
        assert caught.value.without_address == ("lm-a",) and not caught.value.nobody
        assert _snapshot(engine) == before


def test_a_role_held_through_a_task_is_mailed(tmp_path: Path, registry: Any) -> None:
    """A matrix role with ``tasks`` (HR as a task of some employees) is held by whoever has the task: they are
    mailed like has_role holders (before, nobody held it for the mail and the transition was refused)."""
    root = _bundle(tmp_path)
    (root / "matrix.yaml").write_text(MATRIX.replace("{id: hr, label: HR}", "{id: hr, label: HR, tasks: [hr-taak]}"),
                                      encoding="utf-8")
    compiled = compile_bundle(load_bundle(root), registry)
    with Engine(compiled, store=f"sqlite:///{tmp_path / 'store.sqlite'}", registry=registry, permissions="m",
                clock=lambda: NOW) as engine:
        relations = engine.permissions.relationships  # type: ignore[attr-defined]
        relations.relate("has_task", "hr2", "hr-taak", now=NOW)
        _people(engine, {"hr1": "hr"}, employees={"hr1": "hanna@x.example", "hr2": "henk@x.example"})
        engine.start("onboarding", {"subject": "e1", "location": "loc-a"}, HR, "ob1")
        engine.fire("ob1", "remind", HR)
        with engine.store.read() as tx:
            assert sorted(m.recipient for m in tx.outbox(instance_id="ob1")) == ["hanna@x.example", "henk@x.example"]


def test_an_unknown_role_is_rw303_at_its_line(tmp_path: Path, registry: Any) -> None:
    with pytest.raises(DefinitionError) as caught:
        compile_bundle(load_bundle(_bundle(tmp_path, "role: hrr")), registry)
    [diag] = [d for d in caught.value.diagnostics if d.code == "RW303"]
    assert diag.file.endswith("workflow.yaml") and (diag.line, diag.column) == (24, 76)
    assert diag.pointer == "/spec/transitions/0/actions/0/with/to/role"
    assert "'hrr'" in diag.message and "did you mean 'hr'" in diag.hint
    assert [d.code for d in caught.value.diagnostics] == ["RW303"]


SCENARIO = """\
apiVersion: regelwerk/v1
kind: Scenario
metadata: {name: NAME}
spec:
  bundle: ..
  now: "2027-02-24T10:00:00+01:00"
  facts:
    actors: {hr1: {roles: [hr]}}
    relations: [{kind: has_role, subject: hr1, object: hr}, {kind: has_role, subject: hr2, object: hr}]
  steps:
    - use_permissions: {matrix: m}
    - import_employees: {file: ../people.csv, expect: 2}
    - start: {workflow: onboarding, id: ob1, actor: hr1, data: {subject: e1, location: loc-a}}
    - fire: {instance: ob1, event: remind, actor: hr1}
    - expect_outbox: EXPECT
"""


@pytest.mark.parametrize(("expect", "failure"), [
    ("{instance: ob1, template: herinnering, about: e1, to: [henk@vlinder.example, hanna@vlinder.example]}", ""),
    ("{instance: ob1, to: [hanna@vlinder.example]}", "the outbox has ['hanna@vlinder.example', 'henk@vlinder"),
    ("{instance: ob1, to: [hanna@vlinder.example, henk@vlinder.example], about: e2}", "some are about ['e1']"),
    ("{instance: ob1, template: welkom, to: [hanna@vlinder.example, henk@vlinder.example]}", "the outbox has []"),
])
def test_the_expect_outbox_step_checks_recipients_template_and_subject(tmp_path: Path, registry: Any, expect: str,
                                                                       failure: str) -> None:
    from regelwerk.scenarios import run_scenario_file

    root = _bundle(tmp_path)
    (root / "people.csv").write_text("id,name,email\nhr1,Hanna,hanna@vlinder.example\nhr2,Henk,henk@vlinder.example\n",
                                     encoding="utf-8")
    (root / "scenarios").mkdir()
    file = root / "scenarios" / "mail.scenario.yaml"
    file.write_text(SCENARIO.replace("NAME", "mail").replace("EXPECT", expect), encoding="utf-8")
    [result] = run_scenario_file(file, registry)
    assert result.passed == (not failure), result.failures()
    if failure:
        assert failure in result.failures()[0]
