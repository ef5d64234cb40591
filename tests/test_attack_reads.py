"""Attacks on the read paths of ``regelwerk serve`` over real HTTP (the running server of ``test_service``): what an
actor the policy refuses learns from a fire, an explanation, the available events and the incidents. A refusal is a
403 with the deciding rule, audited once, and tells nothing about the stored data; "not there" and "not yours"
answer the same to someone without rights."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import test_service
from regelwerk.tenancy.hub import TenantHub
from test_service import Service, _problem

service = test_service.service  # the module-scoped running server (SQLite and PostgreSQL)

#: A note's workflow whose guard reads a stored value (what a stranger must not learn); the note is its author's
#: (``note`` in the test matrix: ``subject: author``, ``write`` only on one's own).
NOTEBOOK = """apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: notebook}
spec:
  label: Notitie
  resource_type: note
  start_permission: write
  states:
    - {id: draft, label: Concept, initial: true}
    - {id: done, label: Klaar, final: true}
  transitions:
    - {id: finish, label: Afronden, from: draft, to: done, permission: write,
       guard: {field: data.salary, gt: 5000}}
"""
#: A quiz the employee evaluates herself: no permission, a guard about who acts and one about her stored score (as the
#: standard e-learning's ``evaluate``); the score is not a stranger's to learn.
QUIZ = """apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: quiz}
spec:
  label: Toets
  resource_type: reminder
  start_permission: create
  system_fields: [score]
  states:
    - {id: answered, label: Beantwoord, initial: true}
    - {id: passed, label: Geslaagd, final: true}
  transitions:
    - id: evaluate
      label: Beoordelen
      from: answered
      to: passed
      guard:
        all:
          - {field: actor.id, eq: {field: data.subject}}
          - {field: data.score, ge: 55}
"""
EVA = {"id": "eva", "roles": ["medewerker"]}
STRANGERS = ({"id": "mallory", "roles": ["medewerker"]}, {"id": "nobody", "roles": []},
             {"id": "m1", "roles": ["leidinggevende"]})


def _tenant(service: Service) -> tuple[str, httpx.Client]:
    """A fresh tenant on the test bundle plus the notebook, with eva's note n1 (salary 4000)."""
    tenant = f"reads-{uuid.uuid4().hex[:8]}"
    with TenantHub(service.location) as hub:
        hub.create_tenant(tenant)
        hub.deploy(tenant, {**test_service.bundle_files(), "notebook.yaml": NOTEBOOK, "quiz.yaml": QUIZ},
                   matrix="service")
        key = hub.issue_key(tenant, "test")[0]
        hub.engine(tenant).start("notebook", {"author": "eva", "salary": 4000}, actor=EVA, instance_id="n1")
    return tenant, httpx.Client(base_url=service.base, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _audit(service: Service, tenant: str, actor: str) -> list[Any]:
    with TenantHub(service.location) as hub:
        return [a for a in hub.engine(tenant).audit() if a.actor == actor]


def test_a_refused_fire_explanation_or_event_list_shows_no_stored_value(service: Service) -> None:
    """The guard was decided before the permission: a stranger's fire was a 409 whose reasons read
    ``data.salary gt 5000 is false (data.salary = 4000)`` (and no refusal was audited), and ``explain`` and
    ``available`` showed every stranger the same. Now the permission decides first: a 403, audited once, and the
    guard is evaluated and shown only to whom the permission allows."""
    tenant, client = _tenant(service)
    with client:
        for stranger in STRANGERS:
            denied = _problem(client.post("/v1/instances/n1/fire", json={"event": "finish", "actor": stranger}),
                              403, "permission_denied")
            assert denied["action"] == "write" and denied["actor"] == stranger["id"]
            rows = _audit(service, tenant, stranger["id"])  # the refused fire: once, with its event and time
            assert [(r.action, r.instance_id, r.detail.get("event")) for r in rows] == [
                ("permission.denied", "n1", "finish")], rows
            assert rows[0].at is not None
            why = client.post("/v1/instances/n1/explain", json={"event": "finish", "actor": stranger})
            options = client.post("/v1/instances/n1/available", json={"actor": stranger})
            for response in (denied, why.json(), options.json()):
                assert "4000" not in str(response) and "salary" not in str(response), response
            assert why.json()["allowed"] is False and "guard" not in why.json()["candidates"][0]
            assert [(o["event"], o["allowed"]) for o in options.json()] == [("finish", False)]
            # each question is a decision too, its denial audited once (as a ``can``'s)
            assert len(_audit(service, tenant, stranger["id"])) == 3
        # the author is allowed to write: she is told why the guard fails, with the value she may see
        own = _problem(client.post("/v1/instances/n1/fire", json={"event": "finish", "actor": EVA}), 409,
                       "transition_not_allowed")
        assert "data.salary = 4000" in own["reasons"][0]
        mine = client.post("/v1/instances/n1/explain", json={"event": "finish", "actor": EVA}).json()
        assert mine["candidates"][0]["guard"]["passed"] is False
        assert client.get("/v1/instances/n1").json()["state"] == "draft"  # nothing changed
        assert [h["event"] for h in client.get("/v1/instances/n1/history").json()] == ["$start"]


def test_an_incident_that_is_not_there_answers_as_one_that_is_not_yours(service: Service) -> None:
    """``retry``/``resolve`` answered 404 ``unknown_incident`` before the policy was asked: an actor with no right on
    incidents told the ids that exist (403) from those that do not (404). Now both are 403 ``permission_denied``,
    each audited once; only an actor the policy allows learns that an id is unknown (404)."""
    from regelwerk.errors import PluginError

    tenant, client = _tenant(service)
    with TenantHub(service.location) as hub:
        there = hub.engine(tenant).record_incident(PluginError("action 'x'", KeyError("broken"), "n1", "finish")).id
    missing = 4242
    nobody = {"id": "nobody", "roles": []}
    employee = {"id": "mallory", "roles": ["medewerker"]}  # may retry (the test matrix), not resolve
    manager = {"id": "m1", "roles": ["leidinggevende"]}
    with client:
        for action, actor in (("retry", nobody), ("resolve", nobody), ("resolve", employee)):
            answers = [_problem(client.post(f"/v1/incidents/{incident}/{action}", json={"actor": actor}), 403,
                                "permission_denied") for incident in (there, missing)]
            assert [(a["action"], a["resource"]) for a in answers] == [
                (f"incident.{action}", f"incident:{there}"), (f"incident.{action}", f"incident:{missing}")]
        assert len(_audit(service, tenant, "nobody")) == 4 and len(_audit(service, tenant, "mallory")) == 2
        _problem(client.post(f"/v1/incidents/{missing}/resolve", json={"actor": manager}), 404, "unknown_incident")
        _problem(client.post(f"/v1/incidents/{missing}/retry", json={"actor": employee}), 404, "unknown_incident")
        assert client.get(f"/v1/incidents/{there}").json()["status"] == "open"  # nothing changed


def test_a_denied_read_question_is_audited_once_with_actor_and_time(service: Service) -> None:
    """``/v1/can`` and ``/v1/can/batch`` audited denied writes only: a stranger asking, note by note, to read other
    people's notes left no trace. Every denial is now one ``permission.denied`` row (the allowed answers are the
    host's to log when it grants the access)."""
    tenant, client = _tenant(service)
    probe = {"id": f"probe-{uuid.uuid4().hex[:8]}", "roles": ["medewerker"]}
    note = {"type": "note", "id": "n-eva", "data": {"author": "eva"}}
    with client:
        single = client.post("/v1/can", json={"actor": probe, "action": "read", "resource": note}).json()
        batch = client.post("/v1/can/batch", json={"actor": probe, "resources": [
            {**note, "actions": ["read", "write"]}, {"type": "note", "id": "n-own", "data": {"author": probe["id"]},
                                                     "actions": ["read"]}]}).json()
    assert single["allowed"] is False
    assert [(r["id"], a, v["allowed"]) for r in batch["results"] for a, v in r["actions"].items()] == [
        ("n-eva", "read", False), ("n-eva", "write", False), ("n-own", "read", True)]
    rows = _audit(service, tenant, probe["id"])
    assert [(r.action, r.detail["action"], r.detail["resource_id"]) for r in rows] == [
        ("permission.denied", "read", "n-eva"), ("permission.denied", "read", "n-eva"),
        ("permission.denied", "write", "n-eva")]
    assert all(r.at is not None for r in rows)


def test_a_nul_character_anywhere_in_a_request_is_refused_before_the_database_sees_it(service: Service) -> None:
    """On PostgreSQL an id, filter or actor holding a NUL character was a 500 (``DataError`` in the server log; a
    fire's connection was reset), and a relation with one was a 400 whose body carried the SQL statement and its
    parameters, after the relations before it in the request were stored. Now: 400 for the path or query, 422 with
    the pointer for a body, nothing stored, on every store."""
    tenant, client = _tenant(service)
    manager = {"id": "m1", "roles": ["leidinggevende"]}
    with client:
        answers = [_problem(client.get("/v1/instances/n1%00x"), 400, "usage"),
                   _problem(client.post("/v1/instances/n1%00x/fire", json={"event": "finish", "actor": manager}),
                            400, "usage"),
                   _problem(client.get("/v1/instances", params={"workflow": "notebook\x00"}), 400, "usage"),
                   _problem(client.get("/v1/incidents", params={"instance": "n1\x00"}), 400, "usage")]
        for body, path, pointer in (
                ({"actor": {"id": "a\x00", "roles": []}, "action": "write", "resource": {"type": "note"}}, "/v1/can",
                 "/actor/id"),
                ({"workflow": "notebook", "actor": EVA, "data": {"author": "eva", "x\x00": 1}}, "/v1/instances",
                 "/data/x\x00"),
                ({"relations": [{"kind": "member_of", "subject": "probe-nul-ok", "object": "unit"},
                                {"kind": "member_of", "subject": "probe\x00", "object": "unit"}]}, "/v1/relations",
                 "/relations/1/subject")):
            refused = _problem(client.post(path, json=body), 422, "invalid_request")
            assert pointer in refused["detail"], refused
            answers.append(refused)
        for answer in answers:
            assert not any(word in str(answer) for word in ("SQL", "INSERT", "SELECT", "Traceback", "psycopg")), answer
        assert [i["id"] for i in client.get("/v1/instances").json()] == ["n1"]
        assert client.post("/v1/can", json={"actor": EVA, "action": "read", "resource": {
            "type": "note", "data": {"author": "eva"}}}).json()["allowed"] is True  # the server serves on
    with TenantHub(service.location) as hub:
        assert hub.runtime(tenant).permissions.relationships.relations(subject="probe-nul-ok") == []


def test_a_relation_the_database_refuses_is_reported_without_its_sql(tmp_path: Any) -> None:
    """``RelationStoreError`` carried the driver's message: the SQL statement and its parameters, into the problem
    body of ``/v1/relations``. It names the fact and the kind of failure; the cause stays chained for the log."""
    import sqlalchemy as sa
    from regelwerk.permissions.sql import SqlRelationships
    from regelwerk.store.sql import SqlStore

    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    SqlStore(url).setup()
    engine = sa.create_engine(url)
    relations = SqlRelationships(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE rw_relations"))
    from regelwerk.errors import RegelwerkError

    for attempt in (lambda: relations.relate("member_of", "eva", "unit", by="t"),):
        try:
            attempt()
        except RegelwerkError as exc:
            text = str(exc) + str(exc.to_dict())
            assert "member_of('eva', 'unit')" in text and "OperationalError" in text, text
            assert not any(word in text for word in ("SQL", "INSERT", "rw_relations (", "[parameters")), text
            assert exc.__cause__ is not None
        else:
            raise AssertionError("the store refused nothing")
    engine.dispose()


def test_an_empty_id_in_a_fact_is_refused_so_missing_data_names_nobody(service: Service) -> None:
    """``POST /v1/relations`` stored ``reports_to("", m1)``: from then on m1 read every note whose author field was
    left empty (``direct_reports`` of the person ""). A fact's kind, subject and object must be non-empty ids: 422
    over the service, ``UsageError`` in the Python API of both relationship stores; nothing is stored."""
    from regelwerk.errors import UsageError
    from regelwerk.permissions.relations import MemoryRelationships

    tenant, client = _tenant(service)
    manager = {"id": "m1", "roles": ["leidinggevende"]}
    question = {"actor": manager, "action": "read", "resource": {"type": "note", "data": {"author": ""}}}
    with client:
        for fact in ({"kind": "reports_to", "subject": "", "object": "m1"},
                     {"kind": "member_of", "subject": "m1", "object": ""}, {"kind": "", "subject": "a", "object": "b"}):
            _problem(client.post("/v1/relations", json={"relations": [fact]}), 422, "invalid_request")
        assert client.post("/v1/can", json=question).json()["allowed"] is False
    with TenantHub(service.location) as hub:
        stored = hub.runtime(tenant).permissions.relationships
        assert stored.relations(object="m1") == [] and stored.relations(subject="m1") == []
        for relations in (stored, MemoryRelationships()):
            for kind, subject, obj in (("reports_to", "", "m1"), ("reports_to", " ", "m1"), ("member_of", "m1", "")):
                try:
                    relations.relate(kind, subject, obj, by="test")
                except UsageError:
                    continue
                raise AssertionError(f"{type(relations).__name__} stored {kind}({subject!r}, {obj!r})")
        assert stored.relations(object="m1") == []


def test_a_guard_about_who_acts_tells_a_stranger_that_and_nothing_of_the_data(service: Service) -> None:
    """A transition without a permission whose guard compares the actor (the e-learning's ``evaluate``: ``actor.id eq
    data.subject and data.score ge ...``): a stranger's fire was a 409 listing every failing part, so it read
    ``data.score = 40``, and ``explain`` and ``available`` showed the same. A person is now told only the failing
    comparison with the actor; the subject herself still learns why her own quiz did not pass."""
    tenant, client = _tenant(service)
    with TenantHub(service.location) as hub:
        hub.engine(tenant).start("quiz", {"subject": "eva"}, actor=EVA, instance_id="q1", system_data={"score": 40})
    mallory = {"id": "mallory", "roles": ["medewerker"]}
    with client:
        refused = _problem(client.post("/v1/instances/q1/fire", json={"event": "evaluate", "actor": mallory}), 409,
                           "transition_not_allowed")
        why = client.post("/v1/instances/q1/explain", json={"event": "evaluate", "actor": mallory}).json()
        options = client.post("/v1/instances/q1/available", json={"actor": mallory}).json()
        for answer in (refused, why, options):
            assert "= 40" not in str(answer) and "data.score =" not in str(answer), answer  # the rule text is no data
            assert "actor.id" in str(answer)
        own = _problem(client.post("/v1/instances/q1/fire", json={"event": "evaluate", "actor": EVA}), 409,
                       "transition_not_allowed")
        assert "data.score = 40" in str(own["reasons"])
        assert client.get("/v1/instances/q1").json()["state"] == "answered"


def test_a_stored_fact_with_an_empty_id_names_nobody(service: Service) -> None:
    """A fact the service stored before empty ids were refused (``reports_to("", m1)`` in ``rw_relations``) is not
    read as a relation: m1 does not read a note whose author field is empty (before, he did)."""
    from regelwerk.permissions.tables import rw_relations

    tenant, client = _tenant(service)
    with TenantHub(service.location) as hub, hub.runtime(tenant).engine.store.transaction() as tx:
        tx.connection.execute(rw_relations.insert(), [
            {"kind": "reports_to", "subject": "", "object": "m1", "withdrawn_by": "", "created_by": "legacy"},
            {"kind": "reports_to", "subject": "e-legacy", "object": "m1", "withdrawn_by": "", "created_by": "legacy"}])
    manager = {"id": "m1", "roles": ["leidinggevende"]}
    with client:
        def may_read(author: str) -> bool:
            answer = client.post("/v1/can", json={"actor": manager, "action": "read", "resource": {
                "type": "note", "data": {"author": author}}})
            assert answer.status_code == 200, answer.text
            return bool(answer.json()["allowed"])

        assert may_read("e-legacy") is True  # the facts were read (the well-formed one counts)
        assert may_read("") is False
