"""``regelwerk serve`` over real HTTP (a uvicorn subprocess on 127.0.0.1), on SQLite and PostgreSQL:
tenant A's key never reaches tenant B's data through any endpoint, a broken deployment leaves the running
version serving, refusals are problem+json with the typed exceptions' codes and data, the OpenAPI document in
docs/ is the one served."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from _service_server import running_server
from _tenancy_pg import tenant_schema
from regelwerk.tenancy.hub import TenantHub
from test_tenancy import EMPLOYEE, MANAGER, bundle_files

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Service:
    """A running server and the keys of tenants a and b and of an admin."""

    base: str
    keys: dict[str, str]
    location: str = ""  # what TenantHub opens: the SQLite data directory or the PostgreSQL app URL

    def client(self, who: str) -> httpx.Client:
        """An HTTP client presenting ``who``'s key."""
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.keys[who]}"}, timeout=30)


def _prepare(location: str) -> dict[str, str]:
    with TenantHub(location) as hub:
        keys = {"admin": hub.issue_key(None, "test admin")[0]}
        for tenant in ("a", "b"):
            hub.create_tenant(tenant)
            hub.deploy(tenant, bundle_files(), matrix="service")
            keys[tenant] = hub.issue_key(tenant, "test")[0]
    return keys


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], scope="module")
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The server with tenants a and b deployed (module-scoped: starting it is the slow part)."""
    log = tmp_path_factory.mktemp("log") / "serve.log"
    if request.param == "sqlite":
        location = str(tmp_path_factory.mktemp("service") / "data")
        keys = _prepare(location)
        with running_server(location, log=log) as base:
            yield Service(base, keys, location)
        return
    with tenant_schema(request.getfixturevalue("pg_server_url")) as (_owner, app):
        keys = _prepare(app)
        with running_server(app, log=log) as base:
            yield Service(base, keys, app)


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status and body["type"].endswith(code)
    return body


def test_a_tenants_key_never_reaches_another_tenants_data(service: Service) -> None:
    exercised: set[tuple[str, str]] = set()

    def call(client: httpx.Client, method: str, template: str, path: str | None = None, **kw: Any) -> httpx.Response:
        exercised.add((method.lower(), template))
        return client.request(method, path or template, **kw)

    with service.client("a") as a, service.client("b") as b, service.client("admin") as admin:
        # tenant b's data
        made = call(b, "POST", "/v1/instances", json={"workflow": "reminder", "data": {"secret": "B"},
                                                      "actor": EMPLOYEE, "id": "shared-id"})
        assert made.status_code == 201, made.text
        fact = {"kind": "reports_to", "subject": "e-b", "object": "m-b"}
        call(b, "POST", "/v1/relations", json={"relations": [fact]})
        b_key_id = b.get("/v1/keys").json()[0]["id"]
        # tenant a with the same instance id: its own row
        made = call(a, "POST", "/v1/instances", json={"workflow": "reminder", "data": {"secret": "A"},
                                                      "actor": EMPLOYEE, "id": "shared-id"})
        assert made.json()["data"] == {"secret": "A"}
        call(b, "POST", "/v1/instances", json={"workflow": "reminder", "data": {}, "actor": EMPLOYEE, "id": "only-b"})
        for method, template, body in (
            ("GET", "/v1/instances/{instance_id}", None),
            ("POST", "/v1/instances/{instance_id}/fire", {"event": "close", "actor": MANAGER}),
            ("POST", "/v1/instances/{instance_id}/available", {"actor": MANAGER}),
            ("POST", "/v1/instances/{instance_id}/explain", {"event": "close", "actor": MANAGER}),
            ("GET", "/v1/instances/{instance_id}/history", None),
        ):
            response = call(a, method, template, template.replace("{instance_id}", "only-b"), json=body)
            _problem(response, 404, "unknown_instance")
        listed = call(a, "GET", "/v1/instances").json()
        assert [(i["id"], i["data"]) for i in listed] == [("shared-id", {"secret": "A"})]
        assert call(a, "GET", "/v1/instances/{instance_id}", "/v1/instances/shared-id").json()["data"] == {
            "secret": "A"}
        # b's incident is b's: a lists none, and reaches it by no id
        b_incident = _record_fire_incident(service, "b", "only-b", "close")
        assert call(a, "GET", "/v1/incidents", params={"status": "all"}).json() == []
        assert [i["id"] for i in b.get("/v1/incidents").json()] == [b_incident]
        for method, template, body in (("GET", "/v1/incidents/{incident_id}", None),
                                       ("POST", "/v1/incidents/{incident_id}/retry", {"actor": MANAGER}),
                                       ("POST", "/v1/incidents/{incident_id}/resolve", {"actor": MANAGER})):
            response = call(a, method, template, template.replace("{incident_id}", str(b_incident)), json=body)
            _problem(response, 404, "unknown_incident")
        assert b.get(f"/v1/incidents/{b_incident}").json()["status"] == "open"
        # b's instance is untouched by a's attempts
        assert b.get("/v1/instances/only-b").json()["state"] == "waiting"
        assert [h["event"] for h in b.get("/v1/instances/only-b/history").json()] == ["$start"]
        # keys: a cannot see or revoke b's, nor act as admin
        assert b_key_id not in {k["id"] for k in call(a, "GET", "/v1/keys").json()}
        _problem(call(a, "DELETE", "/v1/keys/{key_id}", f"/v1/keys/{b_key_id}"), 404, "unknown_key")
        assert b.get("/v1/whoami").json()["tenant"] == "b"  # b's key still works
        for method, template, path, body in (
            ("GET", "/v1/tenants", None, None),
            ("POST", "/v1/tenants", None, {"id": "c"}),
            ("POST", "/v1/tenants/{tenant}/keys", "/v1/tenants/b/keys", {}),
            ("DELETE", "/v1/tenants/{tenant}/keys/{key_id}", f"/v1/tenants/b/keys/{b_key_id}", None),
            ("GET", "/metrics", None, None),
        ):
            _problem(call(a, method, template, path, json=body), 403, "forbidden")
        # the admin key is no tenant
        _problem(admin.get("/v1/instances"), 403, "forbidden")
        # deployments, migrations, tick and decisions only see a's own
        versions = call(a, "GET", "/v1/deployments").json()
        assert len(versions) == 1 and versions[0]["active"]
        assert call(a, "POST", "/v1/migrations/plan", json={}).json() == []
        assert call(a, "POST", "/v1/migrations/apply", json={}).json() == []
        # a tick may not run ahead of the server's clock: it would fire timers and delete (AVG) early
        _problem(call(a, "POST", "/v1/tick", json={"now": "2100-01-01T00:00:00Z"}), 400, "usage")
        fired = 0
        for _ in range(40):  # a's reminder is due one second after its start
            fired = call(a, "POST", "/v1/tick", json={}).json()["timers_fired"]
            if fired:
                break
            time.sleep(0.1)
        assert fired == 1  # a's one reminder; b's two are b's
        assert b.get("/v1/instances/only-b").json()["state"] == "waiting"
        # relation facts are per tenant: e-b reports to m-b in b, not in a
        question = {"actor": {"id": "m-b", "roles": ["leidinggevende"]}, "action": "read",
                    "resource": {"type": "note", "data": {"author": "e-b"}}}
        assert b.post("/v1/can", json=question).json()["allowed"] is True
        assert call(a, "POST", "/v1/can", json=question).json()["allowed"] is False
        call(a, "POST", "/v1/can/batch", json={"actor": EMPLOYEE, "resources": [{"type": "reminder",
                                                                               "actions": ["read"]}]})
        _problem(call(a, "POST", "/v1/decide", json={"table": "no-such-table"}), 404, "unknown_definition")
        _problem(call(a, "POST", "/v1/tier", json={"products": [], "catalog": "none"}), 400, "usage")
        preview = call(a, "POST", "/v1/schedules/preview", json={"start": "2027-01-01T00:00:00Z",
                                                                 "end": "2027-02-01T00:00:00Z"})
        assert preview.status_code == 200
        validated = call(a, "POST", "/v1/deployments/validate", json={"files": bundle_files()}).json()
        assert validated["valid"] is True
        rotated = call(a, "POST", "/v1/keys", json={"label": "rotated"}).json()
        assert httpx.get(service.base + "/v1/whoami", headers={"X-API-Key": rotated["key"]}).json()["tenant"] == "a"
        exercised.add(("get", "/v1/whoami"))
        deployed = call(a, "POST", "/v1/deployments", json={"files": bundle_files(), "matrix": "service"})
        assert deployed.status_code == 201
        assert b.get("/v1/deployments").json()[0]["version"] == deployed.json()["version"]  # same content, b's row
    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    every = {(method, path) for path, ops in document["paths"].items() for method in ops} - {("get", "/healthz")}
    assert every - exercised == set(), "endpoints the isolation test does not try"


def _record_fire_incident(service: Service, tenant: str, instance_id: str, event: str) -> int:
    """An incident as a failing action of a fire leaves it (recorded through the tenant's engine)."""
    from regelwerk.errors import PluginError

    with TenantHub(service.location) as hub:
        record = hub.engine(tenant).record_incident(PluginError("action 'x'", KeyError("broken"), instance_id, event))
    assert record.id is not None
    return record.id


def test_incidents_are_listed_retried_as_the_actor_who_asks_and_resolved_once(service: Service) -> None:
    with service.client("a") as a:
        inst = a.post("/v1/instances", json={"workflow": "reminder", "actor": EMPLOYEE}).json()["id"]
        first = _record_fire_incident(service, "a", inst, "close")
        listed = a.get("/v1/incidents", params={"instance": inst}).json()
        assert [(i["id"], i["status"], i["event"], i["error_type"]) for i in listed] == [
            (first, "open", "close", "builtins.KeyError")]
        # a retry fires the event as the actor who asks it: the employee may not close, so it is refused (audited),
        # and the incident stays open; the manager may
        denied = _problem(a.post(f"/v1/incidents/{first}/retry", json={"actor": EMPLOYEE}), 403, "permission_denied")
        assert denied["action"] == "close" and denied["actor"] == EMPLOYEE["id"]
        assert a.get(f"/v1/incidents/{first}").json()["status"] == "open"
        # closing an incident by hand is the manager's only (deny by default: the matrix grants it)
        denied = _problem(a.post(f"/v1/incidents/{first}/resolve", json={"actor": EMPLOYEE}), 403,
                          "permission_denied")
        assert denied["action"] == "incident.resolve" and a.get(f"/v1/incidents/{first}").json()["status"] == "open"
        retried = a.post(f"/v1/incidents/{first}/retry", json={"actor": MANAGER})
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "resolved" and retried.json()["note"] == f"fired on retry by {MANAGER['id']}"
        assert a.get(f"/v1/instances/{inst}").json()["state"] == "closed"
        assert a.get(f"/v1/instances/{inst}/history").json()[-1]["actor"] == MANAGER["id"]
        # resolved by hand once; the second time, and a retry afterwards, are refused
        second = _record_fire_incident(service, "a", inst, "close")
        done = a.post(f"/v1/incidents/{second}/resolve", json={"actor": MANAGER, "note": "fixed in the HR system"})
        assert (done.json()["status"], done.json()["note"]) == ("resolved", "fixed in the HR system")
        for action in ("resolve", "retry"):
            _problem(a.post(f"/v1/incidents/{second}/{action}", json={"actor": MANAGER}), 400, "usage")
        assert a.get("/v1/incidents", params={"instance": inst}).json() == []
        assert {i["id"] for i in a.get("/v1/incidents", params={"instance": inst, "status": "all"}).json()} == {
            first, second}
        _problem(a.get("/v1/incidents", params={"status": "broken"}), 422, "invalid_request")
        for huge in ("2147483648", "9223372036854775808"):  # beyond the id column: a clean 422, never a 500
            _problem(a.get(f"/v1/incidents/{huge}"), 422, "invalid_request")
            _problem(a.post(f"/v1/incidents/{huge}/resolve", json={"actor": MANAGER}), 422, "invalid_request")
        _problem(a.post(f"/v1/incidents/{second}/resolve", json={}), 422, "invalid_request")  # who resolves
    with TenantHub(service.location) as hub:
        audit = [(e.actor, e.action) for e in hub.engine("a").audit() if e.instance_id == inst]
    assert (EMPLOYEE["id"], "permission.denied") in audit
    assert [x for x in audit if x[1].startswith("incident.")] == [(MANAGER["id"], "incident.retry"),
                                                                 (MANAGER["id"], "incident.resolve")]


def test_a_broken_deployment_leaves_the_running_version_serving(service: Service) -> None:
    with service.client("a") as a:
        before = [d["version"] for d in a.get("/v1/deployments").json() if d["active"]]
        started = a.post("/v1/instances", json={"workflow": "reminder", "actor": EMPLOYEE}).json()
        broken = bundle_files()
        broken["reminder.yaml"] = broken["reminder.yaml"].replace("label: Wacht", "lable: Wacht").replace(
            "label: Gesloten", "labl: Gesloten")
        body = _problem(a.post("/v1/deployments", json={"files": broken, "matrix": "service"}), 422,
                        "definition_error")
        assert {(d["code"], d["file"]) for d in body["diagnostics"]} == {("RW104", "reminder.yaml")}
        assert len(body["diagnostics"]) == 2 and all(d["line"] > 0 for d in body["diagnostics"])
        assert [d["version"] for d in a.get("/v1/deployments").json() if d["active"]] == before
        fired = a.post(f"/v1/instances/{started['id']}/fire", json={"event": "close", "actor": MANAGER})
        assert fired.status_code == 200 and fired.json()["state"] == "closed"
        assert a.post("/v1/deployments/validate", json={"files": broken}).json()["valid"] is False


def test_refusals_are_problems_with_the_typed_errors_data(service: Service) -> None:
    with service.client("a") as a:
        inst = a.post("/v1/instances", json={"workflow": "reminder", "actor": EMPLOYEE}).json()
        denied = _problem(a.post(f"/v1/instances/{inst['id']}/fire", json={"event": "close", "actor": EMPLOYEE}),
                          403, "permission_denied")
        assert denied["action"] == "close" and denied["actor"] == EMPLOYEE["id"]
        assert "deny by default" in denied["explain"]["reason"]
        options = {o["event"]: o for o in a.post(f"/v1/instances/{inst['id']}/available",
                                                  json={"actor": EMPLOYEE}).json()}
        assert options["close"]["allowed"] is False and "remind" not in options  # remind: the timer's alone
        system = _problem(a.post(f"/v1/instances/{inst['id']}/fire", json={"event": "remind", "actor": MANAGER}),
                          403, "permission_denied")
        assert system["explain"]["by"] == "system-only"
        why = a.post(f"/v1/instances/{inst['id']}/explain", json={"event": "close", "actor": EMPLOYEE}).json()
        assert why["allowed"] is False and why["candidates"][0]["permission"]["allowed"] is False
        _problem(a.post(f"/v1/instances/{inst['id']}/fire", json={"event": "close", "actor": MANAGER,
                                                                  "expected_version": 7}), 409, "conflict")
        closed = a.post(f"/v1/instances/{inst['id']}/fire", json={"event": "close", "actor": MANAGER}).json()
        assert closed["state"] == "closed"
        refused = _problem(a.post(f"/v1/instances/{inst['id']}/fire", json={"event": "remind", "actor": MANAGER}),
                           409, "transition_not_allowed")
        assert refused["state"] == "closed" and refused["reasons"]
        _problem(a.post("/v1/instances", json={"workflow": "nope", "actor": EMPLOYEE}), 404, "unknown_definition")
        bad = _problem(a.post("/v1/instances", json={"workflow": "reminder"}), 422, "invalid_request")
        assert bad["errors"][0]["pointer"] == "/actor"
        _problem(httpx.get(service.base + "/v1/instances"), 401, "unauthenticated")


def test_batch_answers_what_single_questions_answer(service: Service) -> None:
    actors = [EMPLOYEE, MANAGER, {"id": "n1", "roles": []}]
    resources = [{"type": "reminder", "id": f"r{i}", "actions": ["read", "close"]} for i in range(3)]
    resources += [{"type": "note", "id": "n", "data": {"author": "e1"}, "actions": ["read", "write"]}]
    with service.client("a") as a:
        for actor in actors:
            batch = a.post("/v1/can/batch", json={"actor": actor, "resources": resources}).json()["results"]
            full = a.post("/v1/can/batch", json={"actor": actor, "resources": resources,
                                                 "explain": True}).json()["results"]
            for resource, result, explained in zip(resources, batch, full, strict=True):
                for action in resource["actions"]:
                    single = a.post("/v1/can", json={"actor": actor, "action": action, "resource": {
                        k: v for k, v in resource.items() if k != "actions"}}).json()
                    assert result["actions"][action]["allowed"] == single["allowed"], (actor, resource, action)
                    assert explained["actions"][action]["allowed"] == single["allowed"]
                    if not single["allowed"]:  # the deciding rule always; every rule considered when asked
                        short = result["actions"][action]["explain"]
                        assert set(short) == {"by", "reason"} and short["by"] == single["explain"]["by"]
                        assert single["explain"]["reason"].startswith(short["reason"])
                        assert explained["actions"][action]["explain"]["reason"] == single["explain"]["reason"]
                        assert "considered" in explained["actions"][action]["explain"]
        assert a.post("/v1/can", json={"actor": MANAGER, "action": "close", "resource": {"type": "reminder"},
                                       "explain": True}).json()["explain"]["by"] != "default"


def test_batch_denials_are_audited_once_each_with_actor_and_time(service: Service) -> None:
    probe = {"id": f"probe-{uuid.uuid4().hex[:8]}", "roles": ["medewerker"]}
    resources = [{"type": "reminder", "id": f"r{i}", "actions": ["read", "close"]} for i in range(3)]
    with service.client("a") as a:
        results = a.post("/v1/can/batch", json={"actor": probe, "resources": resources}).json()["results"]
    denied = [(r["id"], action) for r in results for action, answer in r["actions"].items() if not answer["allowed"]]
    assert denied == [(f"r{i}", "close") for i in range(3)]
    with TenantHub(service.location) as hub:  # the tenant's own store, as the server wrote it
        rows = [a for a in hub.runtime("a").engine.audit() if a.actor == probe["id"]]
    assert [(a.action, a.detail["resource_id"], a.detail["action"]) for a in rows] == [
        ("permission.denied", f"r{i}", "close") for i in range(3)]
    assert all(a.at is not None for a in rows)


def test_openapi_document_is_shipped_current_and_served(service: Service) -> None:
    from regelwerk.service.app import openapi_document

    shipped = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert shipped == json.loads(json.dumps(openapi_document())), "run: regelwerk openapi -o docs/openapi.json"
    assert httpx.get(service.base + "/openapi.json").json() == shipped


def test_metrics_in_prometheus_text_format(service: Service) -> None:
    with service.client("a") as a:
        a.get("/v1/whoami")
    with service.client("admin") as admin:
        response = admin.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert any(line.startswith('regelwerk_http_requests_total{method="GET",route="/v1/whoami",status="200"}')
               for line in lines)
    assert "# TYPE regelwerk_http_request_seconds histogram" in lines
    assert any(line.startswith("regelwerk_tenants_loaded ") for line in lines)


def test_serve_a_bundle_with_one_command_prints_its_key_once(tmp_path: Path) -> None:
    bundle = ROOT / "examples" / "scholengroep-horizon"
    data = str(tmp_path / "data")
    log = tmp_path / "serve.log"
    with running_server(data, str(bundle), log=log) as base:
        lines = log.read_text().splitlines()
        key = next(line.split()[-1] for line in lines if line.startswith("API key of tenant scholengroep-horizon"))
        assert any(line.startswith("admin key") for line in lines)
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(base + "/v1/whoami", headers=headers).json()["tenant"] == "scholengroep-horizon"
        decided = httpx.post(base + "/v1/decide", headers=headers, json={
            "table": "training-repayment", "inputs": {"leaving_reason": "resignation", "completed_on": "2026-09-01"},
            "at": "2027-03-01T00:00:00Z"}).json()
        assert decided["outputs"] == {"repayment_percentage": 100} and decided["matched"] == ["year_1"]
        tier = httpx.post(base + "/v1/tier", headers=headers, json={"products": ["declaraties"]}).json()
        assert tier["tier"] == "Plus"
    with running_server(data, str(bundle), log=log):  # a second start: same tenant, no new key printed
        assert not any(line.startswith("API key") for line in log.read_text().splitlines())
