"""Attacks of the eighteenth round on ``regelwerk serve`` over real HTTP (the running server of ``test_service``,
SQLite and PostgreSQL) and on the engine's own API: half a character (a lone UTF-16 surrogate, JSON's ``\\ud83d``
escape alone) in a request, which the service stored and then could not answer with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import test_service
from _stores import STORES, Clock, compile_texts, store_urls
from regelwerk.errors import InvalidData
from regelwerk.permissions.policies import UnsafeAllowAll
from regelwerk.registry import Registry, load_registry
from regelwerk.runtime import Engine
from regelwerk.tenancy.hub import TenantHub
from test_attack_s17 import DEEP, JSON, _tenant
from test_service import Service, _problem

service = test_service.service  # the module-scoped running server (SQLite and PostgreSQL)

EVA = '"actor": {"id": "eva", "roles": ["medewerker"]}'


def test_a_lone_surrogate_is_refused_at_the_door_and_never_stored(service: Service) -> None:
    """A start with ``{"x": "\\ud83d"}`` in its data was stored (SQLite), then its answer failed (500
    ``PydanticSerializationError`` after the commit) and from then on ``GET /v1/instances`` was a 500 for the whole
    tenant. Pydantic refuses such a text where a field is typed ``str``, not inside free data (instance data, a
    resource's fields, a context, a table's inputs) nor in a key. Now a 422 with its pointer, before anything is read
    or written, on every route; the tenant's reads go on."""
    tenant, client = _tenant(service)
    half = '"\\ud83d"'  # JSON text: the escape of a high surrogate without its low half
    bodies = {
        "/v1/instances": (f'{{"workflow": "notebook", {EVA}, "data": {{"author": "eva", "x": {half}}}}}', "/data/x"),
        "/v1/instances/n1/fire": (f'{{"event": "finish", {EVA}, "data": {{"x": [1, {half}]}}}}', "/data/x/1"),
        "/v1/instances/n1/explain": (f'{{"event": "finish", {EVA}, "data": {{{half}: 1}}}}', "/data/"),
        "/v1/can": (f'{{{EVA}, "action": "read", "resource": {{"type": "note", "data": {{"author": {half}}}}}}}',
                    "/resource/data/author"),
        "/v1/can/batch": (f'{{{EVA}, "context": {{"k": {half}}}, "resources": [{{"type": "note", "actions": '
                          '["read"]}]}', "/context/k"),
        "/v1/decide": (f'{{"table": "x", "inputs": {{"a": {half}}}}}', "/inputs/a"),
    }
    with client:
        for path, (body, pointer) in bodies.items():
            refused = _problem(client.post(path, content=body, headers=JSON), 422, "invalid_request")
            assert f"{pointer}" in refused["detail"] and "lone surrogate" in refused["detail"], (path, refused)
        # a whole character (the pair) is text like any other
        whole = client.post("/v1/instances", content=f'{{"workflow": "notebook", {EVA}, "data": {{"author": "eva", '
                                                     '"x": "\\ud83d\\ude00"}}', headers=JSON)
        assert whole.status_code == 201 and whole.json()["data"]["x"] == "\U0001f600", whole.text
        listed = client.get("/v1/instances")
        assert listed.status_code == 200, listed.text
        assert sorted(i["data"].get("x", "") for i in listed.json()) == ["", "\U0001f600"]
    with TenantHub(service.location) as hub:
        assert [h.event for h in hub.engine(tenant).history("n1")] == ["$start"]
        assert [e.action for e in hub.engine(tenant).audit()] == []  # refused before any decision


@pytest.fixture(scope="module")
def core() -> Registry:
    return load_registry(use_entry_points=False)


@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    yield from store_urls(request, tmp_path, "s18")


def test_the_engine_refuses_a_text_with_a_lone_surrogate(tmp_path: Path, core: Registry, url: str) -> None:
    """The engine's own API (a host, the CLI): a start or fire whose data held a lone surrogate was stored, on every
    store (no answer of the service could carry it afterwards). Now ``InvalidData`` with the pointer, nothing
    written."""
    (tmp_path / "deep").mkdir()
    bundle = compile_texts(tmp_path / "deep", {"deep.yaml": DEEP}, core)
    with Engine(bundle, store=url, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
        eng.start("deep", {"x": "\U0001f600 ok"}, "hr", "ok")
        for data, pointer in (({"x": "\ud83d"}, "/x"), ({"x": {"y": ["a", "b\udc00c"]}}, "/x/y/1"),
                              ({"x": {"\ud800": 1}}, "/x/\\ud800")):
            with pytest.raises(InvalidData, match="lone surrogate") as start:
                eng.start("deep", data, "hr", "bad")
            assert start.value.pointer == pointer
            with pytest.raises(InvalidData, match="lone surrogate"):
                eng.fire("ok", "note", "hr", data)
        assert [i.id for i in eng.instances()] == ["ok"]
        assert eng.get("ok").version == 1


def test_a_relation_of_a_kind_no_scope_reads_is_refused_with_the_whole_request(service: Service) -> None:
    """``reports_too`` (or ``Member_of``) was stored and answered 201: a fact no scope ever reads, so the host's
    manager stayed refused without a word (scenario facts and facts files refuse it: RW710). Now a 422 at the kind,
    with did-you-mean, before any fact of the request is stored."""
    tenant, client = _tenant(service)
    with client:
        for typo, hint in (("reports_too", "did you mean 'reports_to'?"), ("Member_of", "did you mean 'member_of'?"),
                           ("manages", "kinds: reports_to, member_of")):
            body = {"relations": [{"kind": "member_of", "subject": "s18-ok", "object": "g"},
                                  {"kind": typo, "subject": "e1", "object": "m1"}]}
            refused = _problem(client.post("/v1/relations", json=body), 422, "invalid_request")
            assert refused["errors"][0]["pointer"] == "/relations/1/kind" and hint in refused["detail"], refused
    with TenantHub(service.location) as hub:
        assert hub.runtime(tenant).permissions.relationships.relations() == []


def test_a_relations_request_the_database_refuses_half_way_stores_none_of_it(service: Service,
                                                                             request: pytest.FixtureRequest) -> None:
    """``POST /v1/relations`` wrote each fact in its own transaction: the database refusing the third (a full disk, a
    lock timeout; here a trigger or a check constraint) left the first two stored behind an error answer, and the
    caller, retrying the request, stored them twice. Now the request is one transaction."""
    import re

    import sqlalchemy as sa

    tenant, client = _tenant(service)
    if "://" not in service.location:  # SQLite: the tenant's own file
        with TenantHub(service.location) as hub:
            owner = hub.runtime(tenant).permissions.relationships.engine
            refuse, allow = ("CREATE TRIGGER refuse BEFORE INSERT ON rw_relations WHEN NEW.subject = 'boom' "
                             "BEGIN SELECT RAISE(ABORT, 'refused'); END", "DROP TRIGGER refuse")
            with owner.begin() as conn:
                conn.execute(sa.text(refuse))
    else:  # PostgreSQL: the schema's owner (the application's role may not change a table)
        schema = re.search(r"search_path%3D(\w+)", service.location)
        assert schema is not None
        server = request.getfixturevalue("pg_server_url")
        owner = sa.create_engine(f"{server}{'&' if '?' in server else '?'}options=-csearch_path%3D{schema.group(1)}")
        refuse, allow = ("ALTER TABLE rw_relations ADD CONSTRAINT refuse CHECK (subject <> 'boom')",
                         "ALTER TABLE rw_relations DROP CONSTRAINT refuse")
        with owner.begin() as conn:
            conn.execute(sa.text(refuse))
    body = {"relations": [{"kind": "reports_to", "subject": "eva", "object": "mark"},
                          {"kind": "member_of", "subject": "eva", "object": "keuken"},
                          {"kind": "member_of", "subject": "boom", "object": "keuken"}]}
    try:
        with client:
            refused = _problem(client.post("/v1/relations", json=body), 400, "relation_store")
            assert "none was stored" in refused["detail"], refused
            with TenantHub(service.location) as hub:
                assert hub.runtime(tenant).permissions.relationships.relations(subject="eva") == []
            assert client.post("/v1/relations", json={"relations": body["relations"][:2]}).status_code == 201
    finally:
        with owner.begin() as conn:
            conn.execute(sa.text(allow))
        owner.dispose()
    with TenantHub(service.location) as hub:
        facts = hub.runtime(tenant).permissions.relationships.relations(subject="eva")
        assert [(r.kind, r.subject) for r in facts] == [("reports_to", "eva"), ("member_of", "eva")]


def test_the_services_own_writes_name_the_key_that_asked(service: Service) -> None:
    """A deployment, a migration's history rows and a relation were all by ``api``: with two keys of a tenant (two
    integrations, or a rotation) nobody could tell which wrote what. Now ``api:<key id>``."""
    from test_attack_reads import NOTEBOOK, QUIZ
    from test_tenancy import EMPLOYEE, changed_files

    tenant, client = _tenant(service)
    with TenantHub(service.location) as hub:
        second, second_id = hub.issue_key(tenant, "second integration")
        hub.engine(tenant).start("reminder", {}, actor=EMPLOYEE, instance_id="old")
    other = {"Authorization": f"Bearer {second}"}
    with client:
        first_id = client.get("/v1/whoami").json()["key"]
        assert client.post("/v1/relations", json={"relations": [
            {"kind": "member_of", "subject": "eva", "object": "g"}]}).status_code == 201
        files = {**changed_files(), "notebook.yaml": NOTEBOOK, "quiz.yaml": QUIZ}
        deployed = client.post("/v1/deployments", headers=other, json={"files": files, "matrix": "service"})
        assert deployed.status_code == 201, deployed.text
        moved = client.post("/v1/migrations/apply", headers=other, json={"workflow": "reminder"})
        assert [i["applied"] for i in moved.json()] == [True], moved.text
    with TenantHub(service.location) as hub:
        assert [d["created_by"] for d in hub.deployments(tenant)] == [f"api:{second_id}", "api"]
        [fact] = hub.runtime(tenant).permissions.relationships.relations(subject="eva")
        assert fact.created_by == f"api:{first_id}"
        assert hub.engine(tenant).history("old")[-1].actor == f"api:{second_id}"


MAIL = """
    apiVersion: regelwerk/v1
    kind: Workflow
    metadata: {name: mailer}
    spec:
      states:
        - {id: open, initial: true}
        - {id: sent, final: true}
      transitions:
        - id: send
          from: open
          to: sent
          guard: {field: actor.id, eq: hr}
          actions:
            - {action: send_template, with: {template: t, to: data.email}}
    ---
    apiVersion: regelwerk/v1
    kind: MailContext
    metadata: {name: ctx}
    spec:
      fields:
        - {path: data.name}
    ---
    apiVersion: regelwerk/v1
    kind: Template
    metadata: {name: t}
    spec:
      context: ctx
      subject: "Hallo {{ data.name }}"
      body: "Beste {{ data.name }}"
"""


@pytest.mark.parametrize("name", [{"first": "Eva"}, ["Eva", {"x": 1}]])
def test_a_person_whose_data_a_mail_cannot_show_is_refused_without_an_incident(tmp_path: Path, core: Registry,
                                                                               url: str, name: Any) -> None:
    """A person's data with an object where the template shows text (``name: {first: Eva}``) made the core action
    raise a bare ``TypeError``: the fire was ``ActionFailed`` and left an incident for the operators, which no retry
    could ever resolve (anyone whose data reaches a mail could fill the incident list). Now the render's typed
    refusal (``template_render``, an ``InvalidData`` naming the field): nothing written, no incident."""
    from regelwerk.templates import TemplateRenderError

    (tmp_path / "mail").mkdir()
    bundle = compile_texts(tmp_path / "mail", {"mail.yaml": MAIL}, core)
    with Engine(bundle, store=url, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
        eng.start("mailer", {"name": name, "email": "eva@example.nl"}, "hr", "m1")
        with pytest.raises(TemplateRenderError, match=r"data\.name holds") as caught:
            eng.fire("m1", "send", "hr")
        assert caught.value.to_dict()["error"] == "template_render"
        assert eng.incidents(None) == [] and eng.get("m1").state == "open" and eng.get("m1").version == 1
        with eng.store.read() as tx:
            assert tx.outbox(instance_id="m1") == []
