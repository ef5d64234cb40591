"""Attacks through instance data the workflow keeps for itself (``system_fields``).

Instance data is one shallow dict: a person's start data and every event payload are merged into it. Fields the
workflow's own work sets and its guards, actions or host then trust were therefore a person's to choose:

- MijnLoket: an employer's contact (``mijnloket-employer.start``) started the employer's instance with
  ``{"products": [...], "addendum_signed": true, "tier": "Pro"}``, and any payload ``{"products": [...]}`` on
  ``activate`` moved the employer up to the tier those products demand without their rules ever running;
- recruitment: ``{"team": ["me"]}`` on a move passed the guard ``actor.id in data.team``: a stranger moved
  any candidate through the generic engine (and ``POST /v1/instances/{id}/fire``);
- e-learning: the employee's own ``submit_answers`` with ``{"pass_mark": 0}`` passed any quiz.

A definition now names such fields (``spec.system_fields``); a person's data that names one is ``InvalidData``
with the field's pointer, audited (``workflow.system_fields_refused``), and nothing is written. Actions and timers
set them as before; the host's own code passes what it computed as ``system_data``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from regelwerk.actors import Actor
from regelwerk.bundle import load_bundle
from regelwerk.compiler import CompiledBundle, compile_bundle
from regelwerk.errors import InvalidData, PermissionDenied, TransitionNotAllowed
from regelwerk.registry import Registry
from regelwerk.runtime import Engine
from regelwerk.store import open_store
from regelwerk.workflows.ports import RoleTable

ROOT = Path(__file__).resolve().parent.parent
STANDARD = ROOT / "definitions" / "standard"
NOW = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
BEA = Actor("bea", ("werkgevergebruiker",))  # represents the employer "bakkerij"
STRANGER = Actor("x", ())
IID = "mijnloket-employer:bakkerij"


def _refusals(engine: Engine, instance_id: str) -> list[Any]:
    return [a for a in engine.audit(instance_id) if a.action == "workflow.system_fields_refused"]


def _unchanged(engine: Engine, instance_id: str, call: Any) -> InvalidData:
    before = engine.get(instance_id)
    with pytest.raises(InvalidData) as caught:
        call()
    after = engine.get(instance_id)
    assert (after.state, after.version, dict(after.data)) == (before.state, before.version, dict(before.data))
    assert len(engine.history(instance_id)) == before.version  # no history row either
    return caught.value


# --- MijnLoket ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def standard(registry: Registry) -> CompiledBundle:
    return compile_bundle(load_bundle(STANDARD), registry)


@pytest.fixture
def mijnloket(standard: CompiledBundle, registry: Registry, sqlite_url: str) -> Iterator[Engine]:
    store = open_store(sqlite_url, registry)
    store.relationships().relate("represents", "bea", "bakkerij", now=NOW)
    engine = Engine(standard, store=store, registry=registry, clock=lambda: NOW, permissions="mijnloket")
    yield engine
    engine.close()
    store.close()


def test_an_employer_contact_cannot_start_mijnloket_with_a_tier_products_or_a_signed_addendum(
        mijnloket: Engine) -> None:
    from regelwerk_packs.mijnloket.products import EmployerProducts

    forged = {"employer": "bakkerij", "products": ["preboarding", "assistent"], "addendum_signed": True,
              "tier": "Pro"}
    with pytest.raises(InvalidData) as caught:
        mijnloket.start("mijnloket-employer", forged, BEA, IID)
    assert caught.value.pointer == "/products"
    assert caught.value.system_fields == ("products", "addendum_signed", "tier")
    assert [e["pointer"] for e in caught.value.errors] == ["/products", "/addendum_signed", "/tier"]
    assert caught.value.to_dict()["system_fields"] == ["products", "addendum_signed", "tier"]
    assert mijnloket.instances() == []  # nothing written ...
    refused = _refusals(mijnloket, IID)  # ... but the refusal is audited, once
    assert [(a.actor, a.detail["event"], a.detail["fields"]) for a in refused] == [
        ("bea", "$start", ["products", "addendum_signed", "tier"])]
    # one field is enough, whatever its value (also the value the pack itself would start with)
    for data in ({"employer": "bakkerij", "tier": None}, {"employer": "bakkerij", "catalog": "mijnloket"},
                 {"employer": "bakkerij", "warnings": []}):
        with pytest.raises(InvalidData):
            mijnloket.start("mijnloket-employer", data, BEA, IID)
    assert mijnloket.instances() == [] and len(_refusals(mijnloket, IID)) == 4
    # the pack's own start, for the same person: the person names the employer, the pack adds the rest
    record = EmployerProducts(mijnloket).record("bakkerij", actor=BEA)
    assert (record.id, record.state, record.created_by) == (IID, "not_activated", "bea")
    assert dict(record.data) == {"employer": "bakkerij", "catalog": "mijnloket", "products": [], "warnings": [],
                                 "addendum_signed": False, "tier": None}
    # and who may start it is still the policy's: a stranger may not, with or without data of the pack
    with pytest.raises(PermissionDenied):
        EmployerProducts(mijnloket).record("other-employer", actor=STRANGER)


def test_a_payload_cannot_set_what_mijnloket_decides(mijnloket: Engine) -> None:
    from regelwerk_packs.mijnloket.products import EmployerProducts

    werkgever = EmployerProducts(mijnloket).employer("bakkerij")
    werkgever.activate("Verlofregistratie", actor=BEA)  # a supporting product, before the addendum
    # before the addendum: a signed addendum, or MijnLoket products, smuggled in with a supporting product
    for payload in ({"product": "verlofregeling", "addendum_signed": True},
                    {"product": "verlofregeling", "products": ["preboarding"]}):
        exc = _unchanged(mijnloket, IID, lambda p=payload: mijnloket.fire(IID, "activate", BEA, p))
        assert exc.pointer in ("/addendum_signed", "/products")
    werkgever.sign_addendum(actor=BEA)
    # Pro through one Start product and a list of Pro products that never got their rules; a tier; no warnings
    for payload in ({"product": "documenten", "products": ["preboarding", "assistent"]},
                    {"product": "documenten", "tier": "Pro"}, {"product": "documenten", "warnings": []}):
        _unchanged(mijnloket, IID, lambda p=payload: mijnloket.fire(IID, "activate", BEA, p))
    with pytest.raises(InvalidData) as batch:
        mijnloket.fire_batch([(IID, "activate", BEA, {"product": "documenten", "products": ["preboarding"]})])
    assert batch.value.batch_index == 0  # type: ignore[attr-defined]
    assert len(_refusals(mijnloket, IID)) == 6
    assert all(a.actor == "bea" and a.detail["event"] == "activate" for a in _refusals(mijnloket, IID))
    why = mijnloket.explain(IID, "activate", BEA, {"product": "documenten", "products": ["preboarding"]})
    assert why["allowed"] is False and "system field" in why["reasons"][0]
    assert mijnloket.explain(IID, "activate", BEA, {"product": "documenten"})["allowed"] is True
    # the pack's way still works: the tier is the table's answer for the products the workflow activated
    done = werkgever.activate("Verlofaanvragen", actor=BEA)
    assert (done.tier_before, done.tier_after) == ("Start", "Plus")
    assert werkgever.active == ["verlofregistratie", "verlofaanvragen"]
    assert mijnloket.get(IID).data["tier"] == "Plus" and mijnloket.get(IID).data["addendum_signed"] is True


# --- recruitment -------------------------------------------------------------------------------------


@pytest.fixture
def recruitment(registry: Registry, sqlite_url: str) -> Iterator[Any]:
    from regelwerk.store.sql import SqlStore
    from regelwerk_packs.recruitment.service import Recruitment

    store = SqlStore(sqlite_url)
    store.setup()
    engine = Engine(compile_bundle(load_bundle(STANDARD / "recruitment"), registry), store=store, registry=registry,
                    clock=lambda: NOW, permissions=RoleTable({"register": ["intake"]}))
    counter = iter(range(1, 100))
    yield Recruitment(engine, id_factory=lambda: f"id{next(counter)}")
    store.close()


def test_a_stranger_cannot_join_a_vacancy_team_through_a_payload(recruitment: Any) -> None:
    engine = recruitment.engine
    beheerder = {"id": "bea", "roles": ["beheerder"]}
    vid = recruitment.open_vacancy(beheerder, title="Kok", function="kok", department="keuken", manager="mo",
                                   team=["tom"])
    cid = recruitment.apply(vid, first_name="Anna", last_name="Jansen", email="anna@example.nl")
    iid = recruitment.candidate(cid)["instance_id"]
    assert engine.get(iid).data["team"] == ["mo", "tom"]
    mallory = Actor("mallory", ())
    for payload in ({"team": ["mallory"]}, {"manager": "mallory"}, {"team": ["mallory"], "note": "hoi"}):
        exc = _unchanged(engine, iid, lambda p=payload: engine.fire(iid, "to_screening", mallory, p))
        assert exc.pointer in ("/team", "/manager")
    with pytest.raises(TransitionNotAllowed):  # without the payload the guard reads the stored team
        engine.fire(iid, "to_screening", mallory)
    assert recruitment.candidate(cid)["status"] == "new"
    # a start through the generic engine cannot name its own team either (the web form's role may start)
    with pytest.raises(InvalidData):
        engine.start(engine.get(iid).workflow, {"team": ["mallory"], "applicant": {"first_name": "M"}},
                     {"id": "form", "roles": ["intake"]}, "cand-forged")
    assert [i.id for i in engine.instances()] == [iid]
    # the service passes the vacancy's team as the system's data: the team moves, a new member too
    assert recruitment.move("tom", cid, "screening", note="eerste indruk goed") == "screening"
    recruitment.set_team(beheerder, vid, ["tom", "nina"])
    assert recruitment.move("nina", cid, "interview_1") == "interview_1"
    assert engine.get(iid).data["team"] == ["mo", "nina", "tom"]
    assert [h.explain.get("input") for h in engine.history(iid)][1]["note"] == "eerste indruk goed"


# --- a YAML workflow: the shipped e-learning quiz ----------------------------------------------------


def test_an_employee_cannot_pass_a_quiz_by_sending_the_pass_mark(registry: Registry, sqlite_url: str) -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    engine = Engine(compile_bundle(load_bundle(STANDARD / "lms"), registry), store=sqlite_url, registry=registry,
                    clock=lambda: now, permissions=RoleTable({"plan": ["beheerder"]}))
    hanna = {"id": "hanna", "roles": ["beheerder"]}
    try:
        engine.start("elearning_assignment", {"subject": "eva", "module": "samenwerken"}, hanna, "a1")
        wrong = {"q1": "a", "q2": "a", "q3": "b", "q4": "a", "q5": "a"}
        exc = _unchanged(engine, "a1", lambda: engine.fire("a1", "submit_answers", "eva",
                                                           {"answers": wrong, "pass_mark": 0}))
        assert exc.pointer == "/pass_mark"
        with pytest.raises(InvalidData):  # nor does the planner start it with a score or the workbook available
            engine.start("elearning_assignment", {"subject": "eva", "module": "samenwerken", "score": 5}, hanna, "a2")
        assert engine.fire("a1", "submit_answers", "eva", {"answers": wrong}).state == "answered"
        assert engine.get("a1").state == "failed"  # evaluate, fired by the workflow itself, read the table's mark
        assert engine.get("a1").data["pass_mark"] == 4
    finally:
        engine.close()


# --- the language: declaration, diagnostics, stored form, timers --------------------------------------

APPROVAL = """\
apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: approval}
spec:
  start_permission: create
  data_schema:
    type: object
    properties:
      subject: {type: string}
      approved: {type: boolean}
      reminded: {type: boolean}
  system_fields: [approved, reminded]
  states:
    - {id: open, initial: true, after: [{duration: P1D, event: remind, data: {reminded: true}}]}
    - {id: waiting}
    - {id: approved, final: true}
  transitions:
    - {id: remind, from: open, to: waiting, system_only: true}
    - id: approve
      from: [open, waiting]
      to: approved
      permission: approve
      actions: [{action: workflow.set, with: {field: approved, value: true}}]
    - {id: use, from: approved, to: approved, guard: {field: data.approved, eq: true}}
"""


def _approval(registry: Registry, tmp_path: Path, text: str = APPROVAL) -> CompiledBundle:
    (tmp_path / "defs").mkdir(exist_ok=True)
    (tmp_path / "defs" / "approval.yaml").write_text(text, encoding="utf-8")
    return compile_bundle(load_bundle(tmp_path / "defs"), registry)


def test_system_fields_of_a_yaml_workflow(registry: Registry, tmp_path: Path, sqlite_url: str) -> None:
    from regelwerk.workflows.model import workflow_from_dict, workflow_to_dict

    compiled = _approval(registry, tmp_path)
    model = compiled.get("Workflow", "approval")
    assert model.system_fields == ("approved", "reminded")
    stored = workflow_to_dict(model)
    assert stored["system_fields"] == ["approved", "reminded"]
    assert workflow_from_dict(stored, registry.function_table()).system_fields == ("approved", "reminded")
    clock = {"now": NOW}
    engine = Engine(compiled, store=sqlite_url, registry=registry, clock=lambda: clock["now"],
                    permissions=RoleTable({"create": ["medewerker"], "approve": ["leidinggevende"]}))
    piet = Actor("piet", ("medewerker",))
    try:
        with pytest.raises(InvalidData) as caught:
            engine.start("approval", {"subject": "piet", "approved": True}, piet, "p0")
        assert caught.value.pointer == "/approved"
        engine.start("approval", {"subject": "piet"}, piet, "p1")
        # "use" has no permission and trusts data.approved: the payload that would open it is refused
        _unchanged(engine, "p1", lambda: engine.fire("p1", "use", piet, {"approved": True}))
        # the timer's data is the definition's own: it sets its system field
        clock["now"] = NOW + timedelta(days=2)
        engine.fire_due_timers(clock["now"])
        assert (engine.get("p1").state, engine.get("p1").data["reminded"]) == ("waiting", True)
        # the action sets it; the host's own code may too (system_data), decided by the same policy
        assert engine.fire("p1", "approve", Actor("lea", ("leidinggevende",))).data["approved"] is True
        assert engine.fire("p1", "use", piet).state == "approved"
        hosted = engine.start("approval", {"subject": "piet"}, piet, "p2", system_data={"approved": False})
        assert hosted.data["approved"] is False
        with pytest.raises(PermissionDenied):  # system_data is no way around the start permission
            engine.start("approval", None, STRANGER, "p3", system_data={"approved": True})
        assert [i.id for i in engine.instances()] == ["p1", "p2"]
        assert [(a.instance_id, a.detail["fields"]) for a in engine.audit()
                if a.action == "workflow.system_fields_refused"] == [("p0", ["approved"]), ("p1", ["approved"])]
    finally:
        engine.close()


def test_a_system_field_the_data_schema_does_not_declare_is_a_warning(registry: Registry, tmp_path: Path) -> None:
    compiled = _approval(registry, tmp_path, APPROVAL.replace("system_fields: [approved, reminded]",
                                                              "system_fields: [aproved, reminded]"))
    found = [(d.code, d.pointer, d.hint) for d in compiled.warnings if d.code == "RW518"]
    assert found == [("RW518", "/spec/system_fields/0", "did you mean 'approved'?")]
    # a workflow without the declaration is stored as before (its definition versions keep their content)
    from regelwerk.workflows.model import workflow_to_dict

    plain = _approval(registry, tmp_path, APPROVAL.replace("  system_fields: [approved, reminded]\n", ""))
    assert "system_fields" not in workflow_to_dict(plain.get("Workflow", "approval"))
