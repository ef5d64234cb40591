"""Attacks on ``regelwerk serve`` over real HTTP (the running server of ``test_service``): bodies the API must
refuse as problems, never a 500 with a traceback in the server's log, and never half-applied."""

from __future__ import annotations

from typing import Any

import httpx
import test_service
from regelwerk.tenancy.hub import TenantHub
from test_service import Service, _problem

service = test_service.service  # the module-scoped running server (SQLite and PostgreSQL)


def _stored(service: Service, subject: str) -> int:
    with TenantHub(service.location) as hub:
        return len(hub.runtime("a").permissions.relationships.relations(subject=subject))


def test_relations_with_a_bad_date_are_refused_whole_as_a_problem(service: Service) -> None:
    with service.client("a") as a:
        for n, bad in enumerate(({"valid_from": "garbage"}, {"valid_to": "2026-13-45"},
                                 {"valid_from": "2026-05-01", "valid_to": "2026-04-01"}, {"valid_to": 17})):
            body = {"relations": [{"kind": "member_of", "subject": f"probe-ok{n}", "object": "probe-unit"},
                                  {"kind": "member_of", "subject": "probe-bad", "object": "probe-unit", **bad}]}
            problem = _problem(a.post("/v1/relations", json=body), 422, "invalid_request")
            assert problem["errors"][0]["pointer"].startswith("/relations/1"), problem
            assert _stored(service, f"probe-ok{n}") == 0  # the valid fact before the bad one was not stored
        ok = a.post("/v1/relations", json={"relations": [
            {"kind": "member_of", "subject": "probe-good", "object": "probe-unit", "valid_from": "2026-01-01",
             "valid_to": "2026-12-31"}]})
        assert ok.status_code == 201, ok.text
        assert _stored(service, "probe-good") == 1


def test_resource_fields_that_are_not_ids_are_denials_not_500s(service: Service) -> None:
    """A note whose author (its subject field) is a list or an object (``direct_reports`` looks the manager
    up by it) was a 500 with ``TypeError: unhashable type`` in the server log; it names nobody: no scope holds."""
    manager = {"id": "m1", "roles": ["leidinggevende"]}
    with service.client("a") as a:
        for subject in (["e1"], {"id": "e1"}, 7, True):
            resource = {"type": "note", "data": {"author": subject}}  # the note's subject field
            for explain in (False, True):
                single = a.post("/v1/can", json={"actor": manager, "action": "read", "resource": resource,
                                                 "explain": explain})
                assert single.status_code == 200 and single.json()["allowed"] is False, single.text
            batch = a.post("/v1/can/batch", json={"actor": manager, "explain": True,
                                                  "resources": [{**resource, "actions": ["read", "write"]}]})
            assert batch.status_code == 200, batch.text
            assert not any(v["allowed"] for v in batch.json()["results"][0]["actions"].values())


def test_every_error_of_the_http_layer_is_a_problem(service: Service) -> None:
    """Unknown routes, wrong methods, bodies that are no JSON (nested 100 000 deep) and oversized bodies were
    FastAPI's plain ``{"detail": ...}`` (or nothing: a body of any size was read into memory)."""
    with service.client("a") as a:
        _problem(a.get("/v1/nope"), 404, "not_found")
        _problem(a.delete("/v1/can"), 405, "method_not_allowed")
        deep = b'{"actor":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        _problem(a.post("/v1/can", content=deep, headers={"content-type": "application/json"}), 400, "usage")
        huge = b'{"relations": [' + b",".join([b'{"kind":"member_of","subject":"s","object":"o"}'] * 700_000) + b"]}"
        assert len(huge) > 32 * 1024 * 1024
        _problem(a.post("/v1/relations", content=huge, headers={"content-type": "application/json"}), 413,
                 "payload_too_large")
        # the same without a Content-Length (chunked): counted while it streams
        def chunks() -> Any:
            for start in range(0, len(huge), 1 << 20):
                yield huge[start:start + (1 << 20)]
        _problem(a.post("/v1/relations", content=chunks(), headers={"content-type": "application/json"}), 413,
                 "payload_too_large")
        assert a.get("/v1/whoami").status_code == 200  # the server is still serving


def test_an_upload_with_a_file_that_is_another_files_folder_is_a_definition_error(service: Service) -> None:
    """Was a 500 (``FileExistsError`` writing ``x.yaml/y.yaml`` under the file ``x.yaml``)."""
    from test_tenancy import bundle_files

    files = {**bundle_files(), "x.yaml": "a: 1", "x.yaml/y.yaml": "b: 2"}
    with service.client("a") as a:
        before = a.get("/v1/deployments").json()
        problem = _problem(a.post("/v1/deployments", json={"files": files, "matrix": "service"}), 422,
                           "definition_error")
        assert [d["file"] for d in problem["diagnostics"]] == ["x.yaml"]
        checked = a.post("/v1/deployments/validate", json={"files": files})
        assert checked.status_code == 200 and checked.json()["valid"] is False
        assert a.get("/v1/deployments").json() == before


def test_a_start_may_not_take_the_id_the_engine_gives_a_scheduled_item(service: Service) -> None:
    """``sched-...`` is the id of the instance the tick starts for a scheduled item: a caller that took one first
    would have its instance (its data, its people) taken for someone else's moment. A usage problem, nothing
    stored; the same start without the id is created."""
    from test_service import EMPLOYEE

    with service.client("a") as a:
        body = {"workflow": "reminder", "data": {"scheduled_item": "probe/e1"}, "actor": EMPLOYEE,
                "id": "sched-0123456789abcdef0123456789abcdef"}
        problem = _problem(a.post("/v1/instances", json=body), 400, "usage")
        assert "reserved" in problem["detail"], problem
        _problem(a.get(f"/v1/instances/{body['id']}"), 404, "unknown_instance")
        made = a.post("/v1/instances", json={**body, "id": "probe-not-scheduled"})
        assert made.status_code == 201, made.text


def test_a_request_cannot_set_a_workflows_system_fields(service: Service) -> None:
    """``POST /v1/instances`` and ``.../fire`` hand the body's data to the engine as a person's data: a field the
    workflow keeps for itself (``system_fields``; here the guard of ``use`` trusts ``data.approved``) is a 422
    ``invalid_data`` with its pointer and nothing is written. Before, the body set it: ``{"approved": true}``
    opened a transition no policy decides."""
    from test_attack_system_fields import APPROVAL

    files = {**test_service.bundle_files(), "approval.yaml": APPROVAL}
    files["permissions.yaml"] = files["permissions.yaml"].replace(
        "    - {id: incident, ", "    - {id: approval, actions: [create, approve]}\n    - {id: incident, ").replace(
        "  grants:\n", "  grants:\n    - {id: approval_create, roles: [medewerker], resource: approval, "
                       "actions: [create]}\n")
    with TenantHub(service.location) as hub:
        hub.create_tenant("sysfields")
        hub.deploy("sysfields", files, matrix="service")
        key = hub.issue_key("sysfields", "test")[0]
    employee = {"id": "e1", "roles": ["medewerker"]}
    with httpx.Client(base_url=service.base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        refused = _problem(c.post("/v1/instances", json={"workflow": "approval", "id": "p1", "actor": employee,
                                                         "data": {"subject": "e1", "approved": True}}),
                           422, "invalid_data")
        assert refused["pointer"] == "/approved" and refused["system_fields"] == ["approved"]
        assert c.get("/v1/instances").json() == []
        started = c.post("/v1/instances", json={"workflow": "approval", "id": "p1", "actor": employee,
                                                "data": {"subject": "e1"}})
        assert started.status_code == 201, started.text
        fired = _problem(c.post("/v1/instances/p1/fire", json={"event": "use", "actor": employee,
                                                               "data": {"approved": True}}), 422, "invalid_data")
        assert fired["pointer"] == "/approved"
        after = c.get("/v1/instances/p1").json()
        assert (after["state"], after["version"], after["data"]) == ("open", 1, {"subject": "e1"})
