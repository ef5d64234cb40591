"""Attacks of the seventeenth round on ``regelwerk serve`` over real HTTP (the running server of ``test_service``,
SQLite and PostgreSQL) and on the engine's own API: payloads nested deep enough to break the server's recursion, an
explanation that said yes to a payload the fire refuses, and free text about a person that outlived the erasure of
her instance."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import test_service
from _stores import STORES, Clock, compile_texts, store_urls
from regelwerk.errors import InvalidData, PermissionDenied, PluginError
from regelwerk.permissions.policies import UnsafeAllowAll
from regelwerk.registry import Registry, load_registry
from regelwerk.runtime import Engine
from regelwerk.tenancy.hub import TenantHub
from test_attack_reads import EVA, NOTEBOOK, QUIZ
from test_service import Service, _problem

service = test_service.service  # the module-scoped running server (SQLite and PostgreSQL)

JSON = {"content-type": "application/json"}


def _nested(depth: int) -> str:
    """A JSON array nested ``depth`` levels deep (as text: ``json.dumps`` of such a value itself recurses)."""
    return "[" * depth + "]" * depth


def _tenant(service: Service) -> tuple[str, httpx.Client]:
    """A fresh tenant on the test bundle plus the notebook, with eva's note n1 (salary 4000)."""
    tenant = f"s17-{uuid.uuid4().hex[:8]}"
    with TenantHub(service.location) as hub:
        hub.create_tenant(tenant)
        hub.deploy(tenant, {**test_service.bundle_files(), "notebook.yaml": NOTEBOOK, "quiz.yaml": QUIZ},
                   matrix="service")
        key = hub.issue_key(tenant, "test")[0]
        hub.engine(tenant).start("notebook", {"author": "eva", "salary": 4000}, actor=EVA, instance_id="n1")
    return tenant, httpx.Client(base_url=service.base, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_a_deeply_nested_payload_is_refused_at_the_door_and_never_stored(service: Service) -> None:
    """Data nested 300 levels deep in a start was stored, then the answer failed (500 ``PydanticSerializationError``
    after the commit) and from then on ``GET /v1/instances`` was a 500 for the whole tenant; 500 levels in a fire
    or a permission question were a 500 ``RecursionError``. A body nested deeper than the service takes is now a 422
    with its pointer, before anything is read or written; the tenant's reads go on."""
    tenant, client = _tenant(service)
    with client:
        for depth in (120, 300, 900):
            deep = _nested(depth)
            eva = '"actor": {"id": "eva", "roles": ["medewerker"]}'
            start = f'{{"workflow": "notebook", {eva}, "data": {{"author": "eva", "x": {deep}}}}}'
            fire = f'{{"event": "finish", {eva}, "data": {{"x": {deep}}}}}'
            note = f'{{"type": "note", "data": {{"author": "eva", "x": {deep}}}}}'
            can = f'{{{eva}, "action": "read", "resource": {note}}}'

            for path, body in (("/v1/instances", start), ("/v1/instances/n1/fire", fire),
                               ("/v1/instances/n1/explain", fire), ("/v1/can", can)):
                refused = _problem(client.post(path, content=body, headers=JSON), 422, "invalid_request")
                assert "nested deeper than" in refused["detail"] and "/x/0/0" in refused["detail"], refused
        listed = client.get("/v1/instances")
        assert listed.status_code == 200, listed.text
        assert [(i["id"], i["version"]) for i in listed.json()] == [("n1", 1)]
    with TenantHub(service.location) as hub:
        assert [h.event for h in hub.engine(tenant).history("n1")] == ["$start"]


@pytest.fixture(scope="module")
def core() -> Registry:
    return load_registry(use_entry_points=False)


@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    yield from store_urls(request, tmp_path, "s17")


DEEP = """
    apiVersion: regelwerk/v1
    kind: Workflow
    metadata: {name: deep}
    spec:
      states:
        - {id: open, initial: true}
        - {id: done, final: true}
      transitions:
        - {id: note, from: open, internal: true, guard: {field: actor.id, eq: hr}}
        - {id: close, from: open, to: done, guard: {field: actor.id, eq: hr}}
"""


def test_the_engine_refuses_data_nested_deeper_than_it_keeps(tmp_path: Path, core: Registry, url: str) -> None:
    """The engine's own API (a host, the CLI): a start or fire with data nested 2 000 deep raised ``RecursionError``
    out of the data check (a crash, not a refusal); data 200 deep was stored, and no service could answer it. Now
    both are ``InvalidData`` with the pointer, nothing written; 64 levels are kept."""
    (tmp_path / "deep").mkdir()
    bundle = compile_texts(tmp_path / "deep", {"deep.yaml": DEEP}, core)

    def nested(depth: int) -> Any:
        value: Any = []
        for _ in range(depth - 1):
            value = [value]
        return value

    with Engine(bundle, store=url, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
        eng.start("deep", {"x": nested(63)}, "hr", "ok")  # 64 levels with the data object itself
        for depth in (65, 200, 2000):
            with pytest.raises(InvalidData) as start:
                eng.start("deep", {"x": nested(depth)}, "hr", f"d{depth}")
            assert start.value.pointer.startswith("/x/0/0") and "levels" in str(start.value)
            with pytest.raises(InvalidData):
                eng.fire("ok", "note", "hr", {"y": nested(depth)})
        assert [i.id for i in eng.instances()] == ["ok"]
        assert eng.get("ok").version == 1


TYPED = """
    apiVersion: regelwerk/v1
    kind: Workflow
    metadata: {name: typed}
    spec:
      data_schema:
        type: object
        properties: {amount: {type: integer}}
      states:
        - {id: open, initial: true}
        - {id: done, final: true}
      transitions:
        - {id: close, from: open, to: done, guard: {field: actor.id, eq: hr}}
"""


def test_explain_says_no_to_a_payload_the_fire_refuses(tmp_path: Path, core: Registry, url: str) -> None:
    """``explain`` evaluated the guard on a payload the fire refuses as ``InvalidData`` (not the workflow's
    ``data_schema``, infinity, nested too deep): it answered ``allowed: true`` for a fire that could never happen.
    It now checks the payload as the fire does and says why not."""
    (tmp_path / "typed").mkdir()
    bundle = compile_texts(tmp_path / "typed", {"typed.yaml": TYPED}, core)
    with Engine(bundle, store=url, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
        eng.start("typed", {"amount": 1}, "hr", "t1")
        for payload in ({"amount": "a lot"}, {"amount": float("inf")}, {"x": _deep(70)}):
            with pytest.raises(InvalidData) as fired:
                eng.fire("t1", "close", "hr", payload)
            answer = eng.explain("t1", "close", "hr", payload)
            assert (answer["allowed"], answer["to"]) == (False, None), answer
            assert answer["reasons"][0] == str(fired.value), answer
        assert eng.explain("t1", "close", "hr", {"amount": 2})["allowed"] is True
        assert eng.get("t1").version == 1


def _deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_an_incidents_note_is_erased_with_its_instance(service: Service) -> None:
    """``erase_personal_data`` scrubbed an incident's message and data but kept the note the person who resolved it
    wrote (``called Eva Jansen on 06-12345678``): free text about the erased person, read out by
    ``GET /v1/incidents``. The note goes with the rest."""
    tenant, client = _tenant(service)
    manager = {"id": "m1", "roles": ["leidinggevende"]}
    with TenantHub(service.location) as hub:
        incident = hub.engine(tenant).record_incident(PluginError("action 'mail'", KeyError("Eva Jansen"), "n1",
                                                                  "finish")).id
    with client:
        resolved = client.post(f"/v1/incidents/{incident}/resolve",
                               json={"actor": manager, "note": "called Eva Jansen on 06-12345678"})
        assert resolved.status_code == 200, resolved.text
        with TenantHub(service.location) as hub, hub.engine(tenant).store.transaction() as tx:
            assert tx.erase_personal_data(["n1"], actor="hr-ops").incidents == 1
        shown = client.get(f"/v1/incidents/{incident}").json()
        listed = client.get("/v1/incidents", params={"status": "resolved"}).json()
        for text in (str(shown), str(listed), str(client.get("/v1/instances/n1/history").json())):
            assert "Jansen" not in text and "0612" not in text and "06-12" not in text, text
        assert shown["status"] == "resolved" and shown["message"] == "(erased)"


def test_a_moment_out_of_range_is_a_422_not_a_500(service: Service) -> None:
    """A tick at ``0001-01-01`` (the chained-fire sweep subtracts its grace period), a schedule preview from there,
    and a ``can`` at ``9999-12-31T23:59:59-12:00`` (its denial's audit row is written in UTC) were 500
    ``OverflowError``, and that refused question was audited nowhere. A request's moments lie in the years 1900 to
    9000 (UTC): anything else is a 422 naming the field, nothing run; the tenant's audit is as it was."""
    tenant, client = _tenant(service)
    manager = {"id": "m1", "roles": ["leidinggevende"]}
    question = {"actor": manager, "action": "read", "resource": {"type": "note", "data": {"author": "e1"}}}
    with client:
        for moment in ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00",
                       "1899-12-31T23:00:00Z"):
            for path, body, field in (
                    ("/v1/can", {**question, "at": moment}, "/at"),
                    ("/v1/can/batch", {"actor": manager, "at": moment, "resources": [
                        {**question["resource"], "actions": ["read"]}]}, "/at"),
                    ("/v1/tick", {"now": moment}, "/now"),
                    ("/v1/schedules/preview", {"start": moment, "end": "2027-01-01T00:00:00Z"}, "/start")):
                refused = _problem(client.post(path, json=body), 422, "invalid_request")
                assert refused["errors"][0]["pointer"] == field, refused
        at = client.post("/v1/can", json={**question, "at": "2026-06-01T12:00:00Z"})
        assert at.status_code == 200 and at.json()["allowed"] is False, at.text
    with TenantHub(service.location) as hub:
        assert [a.action for a in hub.engine(tenant).audit() if a.actor == "m1"] == ["permission.denied"]


def test_an_id_longer_than_the_store_keeps_is_a_usage_error_on_every_store(tmp_path: Path, core: Registry,
                                                                            url: str) -> None:
    """Through the engine's own API (a host, the CLI's ``--actor`` and ``--id``) an instance id over 64 characters or
    an actor id over 200 was a raw ``DataError`` carrying the SQL statement on PostgreSQL, and was stored as it was
    on SQLite and in memory: one store refused what the others kept. Both are now ``UsageError`` before anything
    is read or written, on every store (the service refused them already: 422)."""
    from regelwerk.errors import UsageError

    (tmp_path / "ids").mkdir()
    bundle = compile_texts(tmp_path / "ids", {"deep.yaml": DEEP}, core)
    long_actor = {"id": "h" * 201, "roles": []}
    with Engine(bundle, store=url, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
        eng.start("deep", {}, "hr", "i" * 64)  # the longest id kept
        eng.start("deep", {}, "h" * 200, "ok")
        for attempt in (lambda: eng.start("deep", {}, "hr", "i" * 65),
                        lambda: eng.start("deep", {}, long_actor, "new"),
                        lambda: eng.start("deep", {}, "h" * 201, "new"),
                        lambda: eng.fire("ok", "note", long_actor, {"n": 1})):
            with pytest.raises(UsageError) as refused:
                attempt()
            assert "SQL" not in str(refused.value) and "characters" in str(refused.value)
        assert sorted(i.id for i in eng.instances()) == ["i" * 64, "ok"]
        assert eng.get("ok").version == 1 and eng.audit() == []


@pytest.mark.parametrize("condition", [{"not": {"field": "resource.amount", "gt": 1000}},
                                       {"not": {"field": "resource.amount", "eq": 5}},
                                       {"field": "resource.amount", "ne": 5},
                                       {"not": {"field": "resource.amount", "in": [1, 2]}},
                                       {"field": "resource.amount", "not_in": [1, 2]}])
def test_not_a_number_satisfies_no_comparison_as_missing_data_does(condition: dict[str, Any]) -> None:
    """A missing amount satisfies no comparison, not even under ``not``; NaN (what pandas and many exports give
    for a missing number, and what Python's JSON reader makes of ``NaN``) answered a definite false to every
    comparison, so ``not amount gt 1000`` held and a grant or guard written as "at most 1000" allowed it. NaN is
    now unknown, as missing data is."""
    from regelwerk.conditions import compile_condition

    compiled, problems = compile_condition(condition, "/condition")
    assert problems == []
    now = datetime(2026, 12, 7, tzinfo=UTC)
    assert compiled({"resource": {}}, now) is False  # missing: does not hold
    assert compiled({"resource": {"amount": float("nan")}}, now) is False
    assert compiled({"resource": {"amount": 7}}, now) is True  # a number: it does


def test_a_number_json_does_not_have_is_refused_at_the_door(service: Service) -> None:
    """``NaN``, ``Infinity`` and ``1e309`` are no JSON numbers (RFC 8259), but Python's reader took them: in an
    actor's attributes, a resource's data or a question's context they reached the conditions (where NaN held
    under ``not``) and the audit. Any of them anywhere in a body is a 422 with its pointer now."""
    _tenant_id, client = _tenant(service)
    with client:
        for text in ("NaN", "Infinity", "-Infinity", "1e309"):
            for body, pointer in (
                    ('{"actor": {"id": "eva", "roles": ["medewerker"], "attributes": {"level": %s}}, '
                     '"action": "read", "resource": {"type": "note", "data": {"author": "eva"}}}',
                     "/actor/attributes/level"),
                    ('{"actor": {"id": "eva", "roles": []}, "action": "read", '
                     '"resource": {"type": "note", "data": {"author": "eva", "amount": [%s]}}}',
                     "/resource/data/amount/0"),
                    ('{"actor": {"id": "eva", "roles": []}, "action": "read", "resource": {"type": "note"}, '
                     '"context": {"limit": %s}}', "/context/limit")):
                refused = _problem(client.post("/v1/can", content=body.replace("%s", text), headers=JSON), 422,
                                   "invalid_request")
                assert pointer in refused["detail"] and "JSON" in refused["detail"], refused


def test_nobody_erases_an_instance_by_writing_the_erasure_mark(tmp_path: Path, core: Registry, url: str) -> None:
    """An instance whose data is exactly ``{"erased": true}`` is taken as erased: it takes no event from anyone, its
    timers are refused, a migration checks it against no schema. A start with that data, or a fire with that payload
    on an instance without other data, made it so without an erasure (no ``$erase`` row): a person with any event
    froze the instance for everyone, the system's timers included. Such data is now ``InvalidData``, nothing
    written; only ``erase_personal_data`` erases."""
    (tmp_path / "mark").mkdir()
    bundle = compile_texts(tmp_path / "mark", {"deep.yaml": DEEP}, core)
    with Engine(bundle, store=url, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
        with pytest.raises(InvalidData):
            eng.start("deep", {"erased": True}, "hr", "s1")
        eng.start("deep", {}, "hr", "e1")
        with pytest.raises(InvalidData):
            eng.fire("e1", "note", "hr", {"erased": True})
        assert [i.id for i in eng.instances()] == ["e1"]
        assert eng.fire("e1", "close", "hr").state == "done"  # not frozen
        assert [h.event for h in eng.history("e1")] == ["$start", "close"]
        eng.start("deep", {"erased": True, "why": "a field of that name with others is data"}, "hr", "s2")


SCHEMAED = """
    apiVersion: regelwerk/v1
    kind: Workflow
    metadata: {name: dossier}
    spec:
      data_schema:
        type: object
        maxProperties: 4
        anyOf: [{required: [salary], properties: {salary: {type: integer}}}, {required: [grade]}]
      states:
        - {id: open, initial: true}
        - {id: done, final: true}
      transitions:
        - {id: close, from: open, to: done, permission: dossier.close}
"""


def test_a_refused_payload_does_not_echo_the_stored_data(tmp_path: Path, core: Registry, url: str) -> None:
    """The data check ran before the permission, and a schema rule about the whole object (``maxProperties``,
    ``anyOf`` at its root) answered with the merged data itself: anyone's fire with a payload, a stranger's
    included, read ``{'subject': 'eva', 'salary': 4000, 'note': 'ziek sinds maart', ...} has too many properties``.
    A refusal names the rule and where it failed, never an object's or array's contents; and the schema is asked
    after the permission, so a stranger gets ``PermissionDenied`` and learns nothing from the data check."""
    (tmp_path / "dossier").mkdir()
    bundle = compile_texts(tmp_path / "dossier", {"dossier.yaml": SCHEMAED}, core)
    with Engine(bundle, store=url, registry=core, clock=Clock(), permissions=UnsafeAllowAll()) as eng:
        eng.start("dossier", {"subject": "eva", "salary": 4000, "note": "ziek sinds maart"}, "hr", "d1")
        stranger = Engine(bundle, store=eng.store, registry=core, clock=Clock())  # no policy: refuses everyone
        for payload in ({"x": 1, "y": 2}, {"salary": "a lot"}):
            for engine, actor, expected in ((stranger, "mallory", PermissionDenied), (eng, "hr", InvalidData)):
                with pytest.raises(expected) as refused:
                    engine.fire("d1", "close", actor, payload)
                text = str(refused.value) + str(refused.value.to_dict())
                assert "4000" not in text and "ziek" not in text and "eva" not in text, text
                if expected is InvalidData:
                    assert "maxProperties" in text or "anyOf" in text, text
                else:  # the data check is not asked for whom the policy refuses
                    assert "maxProperties" not in text and "anyOf" not in text, text
            why = stranger.explain("d1", "close", "mallory", payload)
            assert "4000" not in str(why) and "ziek" not in str(why), why
            assert "maxProperties" not in str(why) and "anyOf" not in str(why), why
            assert "maxProperties" in str(eng.explain("d1", "close", "hr", payload)) or "anyOf" in str(
                eng.explain("d1", "close", "hr", payload))
        assert eng.get("d1").version == 1


def test_a_window_on_a_current_state_fact_is_refused_not_ignored(service: Service, tmp_path: Path) -> None:
    """``reports_to`` and ``authored`` are current-state facts (ended with ``unrelate``); their ``valid_from`` and
    ``valid_to`` were stored and then ignored. An integrator who recorded the end of a reporting line as
    ``reports_to(e, m1, valid_to=2020-12-31)`` left m1 reading e's notes for ever (and one dated 2030 already let
    him read them now). Such a window is now refused (422 over the service, ``UsageError`` in the Python API of
    both relationship stores), nothing of the request stored."""
    import sqlalchemy as sa
    from regelwerk.errors import UsageError
    from regelwerk.permissions.relations import MemoryRelationships
    from regelwerk.permissions.sql import SqlRelationships
    from regelwerk.store.sql import SqlStore

    tenant, client = _tenant(service)
    manager = {"id": "m1", "roles": ["leidinggevende"]}
    with client:
        for kind, window in (("reports_to", {"valid_to": "2020-12-31"}), ("reports_to", {"valid_from": "2030-01-01"}),
                             ("authored", {"valid_from": "2020-01-01", "valid_to": "2020-12-31"})):
            subject = f"w-{uuid.uuid4().hex[:6]}"
            body = {"relations": [{"kind": "member_of", "subject": subject, "object": "unit"},
                                  {"kind": kind, "subject": subject, "object": "m1", **window}]}
            refused = _problem(client.post("/v1/relations", json=body), 422, "invalid_request")
            assert "unrelate" in refused["detail"] and "/relations/1" in refused["detail"], refused
            answer = client.post("/v1/can", json={"actor": manager, "action": "read", "resource": {
                "type": "note", "data": {"author": subject}}}).json()
            assert answer["allowed"] is False, answer
            with TenantHub(service.location) as hub:
                assert hub.runtime(tenant).permissions.relationships.relations(subject=subject) == []
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    SqlStore(url).setup()
    engine = sa.create_engine(url)
    for relations in (MemoryRelationships(), SqlRelationships(engine)):
        with pytest.raises(UsageError):
            relations.relate("reports_to", "e1", "m1", valid_to="2020-12-31", by="test")
        assert relations.managers_of("e1") == frozenset()
        relations.relate("member_of", "e1", "unit", valid_to="2020-12-31", by="test")  # a window it honours
    engine.dispose()


def test_not_a_number_matches_no_row_of_a_decision_table(core: Registry) -> None:
    """A row ``amount <= 1000`` matched NaN (every bound test ``v > 1000`` is false for it), in a table's own tests
    and in a compiled decision graph's inline ones: a missing amount exported as NaN was routed as a small one. NaN
    now matches no number row, as a missing amount."""
    import sys

    from test_decisions_table import compile_table, table_yaml

    rows = """\
- id: small
  when: {amount: {le: 1000}}
  then: {approver: manager}
- id: mid
  when: {amount: {ge: 1000, lt: 5000}}
  then: {approver: director}
"""
    table = compile_table(table_yaml("FIRST", rows), core)
    missing = table.decide({"dept": "x"})
    nan = table.decide({"dept": "x", "amount": float("nan")})
    assert (nan.outputs, nan.matched) == (missing.outputs, missing.matched) == ({"approver": "none"}, ())
    assert table.decide({"dept": "x", "amount": 10}).matched == ("small",)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from bench_decisions import GRAPH, compile_text

    top = compile_text(GRAPH).get("DecisionTable", "approver")
    for department in ("finance", "sales", "it"):
        by_nan = top.decide({"department": department, "amount": float("nan")})
        by_none = top.decide({"department": department})
        assert (dict(by_nan.outputs), by_nan.matched) == (dict(by_none.outputs), by_none.matched), department
