"""The HTTP/JSON API: ``create_app(hub)`` builds the FastAPI application ``regelwerk serve`` runs.

- Authentication: ``Authorization: Bearer <key>`` (or ``X-API-Key``). A tenant's key reaches that tenant's data
  only (the tenant is never taken from the URL or the body); an admin key manages tenants and keys and reads
  ``/metrics``.
- Errors are ``application/problem+json`` (RFC 9457) with the typed exception's ``code`` and data
  (``regelwerk.errors``): ``permission_denied`` 403 with the explanation, ``transition_not_allowed`` 409 with the
  reasons, ``conflict`` 409 with the versions, ``no_recipients`` 409 (a mail to a role that reaches nobody),
  ``invalid_data`` 422 with the pointer, ``definition_error`` 422 with every diagnostic, ``unknown_*`` 404,
  ``usage`` 400, ``unauthenticated`` 401, ``forbidden`` 403.
- Endpoints are plain (synchronous) functions: they run in the server's thread pool, and the engine is
  thread-safe.
"""

# no "from __future__ import annotations": FastAPI reads the endpoints' annotations, local aliases included

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from regelwerk.errors import RegelwerkError, UsageError
from regelwerk.service.metrics import Metrics
from regelwerk.service.models import (
    AvailableIn,
    BatchCanIn,
    CanIn,
    DecideIn,
    DeployIn,
    ExplainIn,
    FireIn,
    IncidentActIn,
    KeyIn,
    MigrateIn,
    RelationsIn,
    SchedulePreviewIn,
    StartIn,
    TenantIn,
    TickIn,
    TierIn,
)
from regelwerk.tenancy.hub import Principal, TenantHub, TenantRuntime
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["API_VERSION", "MAX_BODY_BYTES", "STATUS", "create_app", "openapi_document"]

API_VERSION = "1.0.0"
#: The largest request body read (a deployment's files are at most 10 MB; JSON escaping adds some).
MAX_BODY_BYTES = 32 * 1024 * 1024
T = TypeVar("T")

#: HTTP status per error code (anything else that is a RegelwerkError: 400).
STATUS: dict[str, int] = {
    "usage": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "permission_denied": 403,
    "unknown_definition": 404,
    "unknown_instance": 404,
    "unknown_incident": 404,
    "unknown_tenant": 404,
    "unknown_key": 404,
    "transition_not_allowed": 409,
    "conflict": 409,
    "decision_conflict": 409,
    "no_recipients": 409,
    "invalid_data": 422,
    "definition_error": 422,
    "invalid_request": 422,
    "not_found": 404,
    "method_not_allowed": 405,
    "payload_too_large": 413,
    "internal": 500,
}

#: The code of an error of the HTTP layer (routing, body parsing, body size) by its status.
HTTP_CODES: dict[int, str] = {400: "usage", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}

PROBLEM_TYPE = "https://regelwerk.dev/problems/"


class ApiError(RegelwerkError):
    """An error of the HTTP layer itself (authentication, authorization, unknown key)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def problem(status: int, code: str, title: str, data: dict[str, Any]) -> JSONResponse:
    """An RFC 9457 problem document carrying the error's code and data."""
    body = {"type": PROBLEM_TYPE + code, "title": title, "status": status, "detail": data.get("message", title),
            "code": code, **{k: v for k, v in data.items() if k not in ("error", "message")}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


class Json(Response):
    """A JSON response serialized once with the standard library (datetimes as ISO text); the hot endpoints
    return it directly, which spares FastAPI's generic validation of a loosely typed return value."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Compact UTF-8 JSON."""
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"), default=_iso).encode()


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


#: How far a tick's ``now`` may run ahead of the server's clock (clock skew between a host and the service).
TICK_SKEW = timedelta(minutes=1)

_ALLOWED: dict[str, Any] = {"allowed": True}  # one shared answer (serialized, never changed)


def _moment(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class NoNul:
    """Refuse a request whose path or query holds a NUL character (``%00``) as a 400 ``usage`` problem before any
    endpoint runs: no id, filter or name may hold one (PostgreSQL stores none; such an id was a 500)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string") or b""
            if "\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query:
                await problem(400, "usage", "UsageError", {"message": "a NUL character (%00) is not allowed in the "
                                                                      "path or query"})(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes (413) before they are read into memory: at once by their
    ``Content-Length``, else while they stream (chunked)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await problem(413, "payload_too_large", "PayloadTooLarge",
                          {"message": self._message()})(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise StarletteHTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"the request body is larger than {self.limit} bytes"


def create_app(hub: TenantHub, threads: int = 40, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The application over ``hub`` (see the module docstring); ``threads`` request threads at most, request
    bodies of ``max_body_bytes`` at most."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    app = FastAPI(title="regelwerk", version=API_VERSION, lifespan=lifespan,
                  description="Decisions and workflows for every tenant of an HR vendor: permission questions "
                              "(single and batch), decision tables, workflow instances, schedules, deployments. "
                              "Authenticate with `Authorization: Bearer <key>`; errors are problem+json.")
    app.state.hub = hub
    app.state.metrics = metrics
    app.add_middleware(metrics.middleware_class())
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    app.add_middleware(NoNul)

    @app.exception_handler(RegelwerkError)
    def _regelwerk_error(_request: Request, exc: RegelwerkError) -> JSONResponse:
        data = exc.to_dict()
        return problem(STATUS.get(exc.code, 400), exc.code, type(exc).__name__, data)

    @app.exception_handler(StarletteHTTPException)
    def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "usage" if exc.status_code < 500 else "internal")
        return problem(exc.status_code, code, type(exc).__name__, {"message": str(exc.detail)})

    @app.exception_handler(Exception)
    def _internal(_request: Request, exc: Exception) -> JSONResponse:
        # the traceback goes to the server's log (uvicorn logs it); the client gets no internals
        return problem(500, "internal", "InternalError",
                       {"message": f"internal error ({type(exc).__name__}); the server's log has the details"})

    @app.exception_handler(RequestValidationError)
    def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"pointer": "/" + "/".join(str(p) for p in e.get("loc", ())[1:]), "message": e.get("msg", "")}
                  for e in exc.errors()]
        return problem(422, "invalid_request", "InvalidRequest",
                       {"message": "the request does not fit the API: " + "; ".join(
                           f"{e['pointer']}: {e['message']}" for e in errors[:5]), "errors": errors})

    # --- authentication ----------------------------------------------------------------------

    # The dependencies are coroutines: on the hot path they answer from this process's caches without a
    # thread hop; a cache miss (a key lookup, loading a tenant's version) goes to the thread pool.

    async def principal(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        presented = header[7:] if header[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
        found: Principal | None = None
        if presented:
            fresh, found = hub.cached_principal(presented)
            if not fresh:
                found = await run_in_threadpool(hub.authenticate, presented)
        if found is None:
            raise ApiError("unauthenticated", "a valid API key is required (Authorization: Bearer <key>)")
        return found

    async def tenant_of(who: Annotated[Principal, Depends(principal)]) -> str:
        if who.tenant is None:
            raise ApiError("forbidden", "an admin key cannot act as a tenant; use the tenant's key")
        return who.tenant

    async def tenant_key(who: Annotated[Principal, Depends(principal)]) -> Principal:
        await tenant_of(who)
        return who

    async def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if not who.admin:
            raise ApiError("forbidden", "this needs an admin key")
        return who

    async def runtime(tenant: Annotated[str, Depends(tenant_of)]) -> TenantRuntime:
        found = hub.cached_runtime(tenant)
        if found is not None:
            return found
        return await run_in_threadpool(hub.runtime, tenant)

    Tenant = Annotated[str, Depends(tenant_of)]
    #: the tenant's key that asks (its id names who wrote a deployment, a migration's history rows, a relation)
    Who = Annotated[Principal, Depends(tenant_key)]
    Runtime = Annotated[TenantRuntime, Depends(runtime)]
    Admin = Annotated[Principal, Depends(admin)]

    def audited(rt: TenantRuntime, call: Callable[[], T]) -> T:
        """Run an engine call, then write the denied decisions it audited (after its unit of work ended)."""
        try:
            return call()
        finally:
            rt.audit.flush()

    # --- service ------------------------------------------------------------------------------

    @app.get("/healthz", tags=["service"], summary="Liveness and the control plane's reachability")
    def healthz() -> dict[str, Any]:
        hub.ping()
        return {"status": "ok", "tenants_loaded": len(hub.loaded())}

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse,
             summary="Prometheus text format (admin key)")
    def prometheus(_who: Admin) -> PlainTextResponse:
        return PlainTextResponse(metrics.render(len(hub.loaded())), media_type="text/plain; version=0.0.4")

    @app.get("/v1/whoami", tags=["service"], summary="The tenant of the presented key (the trivial endpoint)",
             response_class=Json)
    def whoami(who: Annotated[Principal, Depends(principal)]) -> Json:
        return Json({"tenant": who.tenant, "admin": who.admin, "key": who.key_id})

    # --- admin: tenants and keys --------------------------------------------------------------

    @app.post("/v1/tenants", tags=["admin"], status_code=201, summary="Add a tenant")
    def create_tenant(body: TenantIn, _who: Admin) -> dict[str, Any]:
        return hub.create_tenant(body.id, body.name)

    @app.get("/v1/tenants", tags=["admin"], summary="Every tenant")
    def list_tenants(_who: Admin) -> list[dict[str, Any]]:
        return hub.tenants()

    @app.post("/v1/tenants/{tenant}/keys", tags=["admin"], status_code=201,
              summary="Issue a key for a tenant (the plaintext is returned once)")
    def admin_issue_key(tenant: str, body: KeyIn, _who: Admin) -> dict[str, Any]:
        key, key_id = hub.issue_key(tenant, body.label)
        return {"key": key, "id": key_id, "tenant": tenant}

    @app.delete("/v1/tenants/{tenant}/keys/{key_id}", tags=["admin"], summary="Revoke a tenant's key")
    def admin_revoke_key(tenant: str, key_id: str, _who: Admin) -> dict[str, Any]:
        if not hub.revoke_key(key_id, tenant):
            raise ApiError("unknown_key", f"no live key {key_id!r} of tenant {tenant!r}")
        return {"revoked": key_id}

    # --- the tenant's own keys ----------------------------------------------------------------

    @app.get("/v1/keys", tags=["keys"], summary="The tenant's keys (no secrets)")
    def list_keys(tenant: Tenant) -> list[dict[str, Any]]:
        return hub.keys(tenant)

    @app.post("/v1/keys", tags=["keys"], status_code=201, summary="Rotate: issue another key for this tenant")
    def issue_key(body: KeyIn, tenant: Tenant) -> dict[str, Any]:
        key, key_id = hub.issue_key(tenant, body.label)
        return {"key": key, "id": key_id, "tenant": tenant}

    @app.delete("/v1/keys/{key_id}", tags=["keys"], summary="Revoke one of this tenant's keys")
    def revoke_key(key_id: str, tenant: Tenant) -> dict[str, Any]:
        if not hub.revoke_key(key_id, tenant):
            raise ApiError("unknown_key", f"no live key {key_id!r} of this tenant")
        return {"revoked": key_id}

    # --- deployments --------------------------------------------------------------------------

    @app.post("/v1/deployments", tags=["deployments"], status_code=201,
              summary="Validate, compile and activate a bundle version (a broken one changes nothing: 422)")
    def deploy(body: DeployIn, who: Who) -> dict[str, Any]:
        return hub.deploy(tenant_id(who), body.files, body.matrix, actor=by_key(who))

    @app.post("/v1/deployments/validate", tags=["deployments"], summary="Diagnostics of a bundle, nothing stored")
    def validate(body: DeployIn, tenant: Tenant) -> dict[str, Any]:
        version, compiled, diagnostics = hub.compile_files(tenant, body.files)
        return {"valid": compiled is not None, "version": version, "diagnostics": diagnostics}

    @app.get("/v1/deployments", tags=["deployments"], summary="The tenant's versions, the active one marked")
    def deployments(tenant: Tenant) -> list[dict[str, Any]]:
        return hub.deployments(tenant)

    @app.post("/v1/migrations/plan", tags=["deployments"],
              summary="Instances on older versions and where they would go")
    def migrate_plan(body: MigrateIn, rt: Runtime) -> list[dict[str, Any]]:
        return [i.to_dict() for i in rt.engine.migrate_plan(body.workflow, body.mapping)]

    @app.post("/v1/migrations/apply", tags=["deployments"], summary="Move instances to the active version")
    def migrate_apply(body: MigrateIn, rt: Runtime, who: Who) -> list[dict[str, Any]]:
        return [i.to_dict() for i in rt.engine.migrate_apply(body.workflow, body.mapping, actor=by_key(who),
                                                             instance_ids=body.instances)]

    # --- decisions ----------------------------------------------------------------------------

    @app.post("/v1/can", tags=["decisions"], summary="May the actor do the action on the resource?",
              response_class=Json)
    def can(body: CanIn, rt: Runtime) -> Json:
        port = rt.port(body.matrix)
        context = {**body.context, "now": _moment(body.at)}
        if body.field_group:
            context["field_group"] = body.field_group
        decision = audited(rt, lambda: port.check(body.actor.plain(), body.action, body.resource.type,
                                                  body.resource.plain(), context))
        metrics.decision(decision.allowed)
        out: dict[str, Any] = {"allowed": decision.allowed}
        if body.explain or not decision.allowed:
            out["explain"] = decision.explain if not body.explain or not decision.allowed else port.matrix.decide(
                body.actor.plain(), body.action, body.resource.type, body.resource.plain(), port.relationships,
                context["now"], context, field_group=body.field_group, explain=True).explain
        return Json(out)

    @app.post("/v1/can/batch", tags=["decisions"], response_class=Json,
              summary="Every action on every resource for one actor in one call (as Cerbos' CheckResources)")
    def can_batch(body: BatchCanIn, rt: Runtime) -> Json:
        port = rt.port(body.matrix)
        actor = body.actor.plain()
        context = {**body.context, "now": _moment(body.at)}

        def answer() -> list[dict[str, Any]]:
            plain = [resource.plain() for resource in body.resources]
            questions = [(action, resource.type, data) for resource, data in zip(body.resources, plain, strict=True)
                         for action in resource.actions]
            decisions = iter(port.check_many(actor, questions, context, explain=body.explain))
            results = []
            allowed = 0
            for resource in body.resources:
                actions = {}
                for action in resource.actions:
                    decision = next(decisions)
                    if decision.allowed:
                        allowed += 1
                        actions[action] = _ALLOWED
                    elif body.explain:
                        actions[action] = {"allowed": False, "explain": decision.explain}
                    else:
                        why = decision.explain
                        actions[action] = {"allowed": False, "explain": {"by": why.get("by", "default"),
                                                                         "reason": why.get("reason", "")}}
                results.append({"type": resource.type, "id": resource.id, "actions": actions})
            metrics.decisions_made(allowed, len(questions) - allowed)
            return results

        return Json({"results": audited(rt, answer)})

    @app.post("/v1/decide", tags=["decisions"], summary="Decide a DecisionTable")
    def decide(body: DecideIn, rt: Runtime) -> dict[str, Any]:
        table = rt.compiled.get("DecisionTable", body.table)
        result: dict[str, Any] = table.decide(body.inputs, _moment(body.at)).to_dict()
        return result

    @app.post("/v1/tier", tags=["decisions"],
              summary="The tier a product catalog demands for activating products in order, with warnings")
    def tier(body: TierIn, rt: Runtime) -> dict[str, Any]:
        catalogs = {name: obj for (_kind, name), obj in rt.compiled.objects.items()
                    if callable(getattr(obj, "tier", None)) and callable(getattr(obj, "resolve", None))}
        if body.catalog is not None:
            chosen = catalogs.get(body.catalog)
        elif len(catalogs) == 1:
            chosen = next(iter(catalogs.values()))
        else:
            chosen = None
        if chosen is None:
            raise ApiError("usage", "name the catalog ('catalog'); catalogs: " + (", ".join(sorted(catalogs))
                                                                                  or "none"))
        answer: Any = chosen.tier(body.products, body.addendum_signed)
        data: dict[str, Any] = answer.to_dict()
        return data

    # --- workflow instances -------------------------------------------------------------------

    @app.post("/v1/instances", tags=["workflows"], status_code=201, summary="Start a workflow instance")
    def start(body: StartIn, rt: Runtime) -> dict[str, Any]:
        rec = audited(rt, lambda: rt.engine.start(body.workflow, body.data, actor=body.actor.plain(),
                                                  instance_id=body.id))
        result: dict[str, Any] = rec.to_dict()
        return result

    @app.get("/v1/instances", tags=["workflows"], summary="Instances (optionally of one workflow / state)")
    def instances(rt: Runtime, workflow: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        return [r.to_dict() for r in rt.engine.instances(workflow=workflow, state=state)]

    @app.get("/v1/instances/{instance_id}", tags=["workflows"], summary="One instance")
    def get_instance(instance_id: str, rt: Runtime) -> dict[str, Any]:
        result: dict[str, Any] = rt.engine.get(instance_id).to_dict()
        return result

    @app.post("/v1/instances/{instance_id}/fire", tags=["workflows"], summary="Fire an event")
    def fire(instance_id: str, body: FireIn, rt: Runtime) -> dict[str, Any]:
        rec = audited(rt, lambda: rt.engine.fire(instance_id, body.event, actor=body.actor.plain(),
                                                 data=body.data or None, expected_version=body.expected_version))
        result: dict[str, Any] = rec.to_dict()
        return result

    @app.post("/v1/instances/{instance_id}/available", tags=["workflows"],
              summary="Events possible now, whether this actor may fire each, and why not")
    def available(instance_id: str, body: AvailableIn, rt: Runtime) -> list[dict[str, Any]]:
        options = audited(rt, lambda: rt.engine.available_events(instance_id, body.actor.plain()))
        return [o.to_dict() for o in options]

    @app.post("/v1/instances/{instance_id}/explain", tags=["workflows"],
              summary="Why an event would (not) fire now: every candidate's guard and permission")
    def explain(instance_id: str, body: ExplainIn, rt: Runtime) -> dict[str, Any]:
        result: dict[str, Any] = audited(rt, lambda: rt.engine.explain(instance_id, body.event, body.actor.plain(),
                                                                      body.data or None))
        return result

    @app.get("/v1/instances/{instance_id}/history", tags=["workflows"], summary="Every state change, oldest first")
    def history(instance_id: str, rt: Runtime) -> list[dict[str, Any]]:
        return [h.to_dict() for h in rt.engine.history(instance_id)]

    # --- incidents ------------------------------------------------------------------------------

    # an incident id is a positive 32-bit integer (the column on PostgreSQL): a larger one is a 422, never a 500
    IncidentId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]

    @app.get("/v1/incidents", tags=["incidents"], summary="Failures of plugin code (actions, timers, tick tasks)")
    def incidents(rt: Runtime, status: Literal["open", "resolved", "all"] = "open",
                  instance: str | None = None) -> list[dict[str, Any]]:
        return [i.to_dict() for i in rt.engine.incidents(None if status == "all" else status, instance)]

    @app.get("/v1/incidents/{incident_id}", tags=["incidents"], summary="One incident")
    def get_incident(incident_id: IncidentId, rt: Runtime) -> dict[str, Any]:
        result: dict[str, Any] = rt.engine.incident(incident_id).to_dict()
        return result

    @app.post("/v1/incidents/{incident_id}/retry", tags=["incidents"],
              summary="Try the failed work again now (a fire runs as the actor who retries, by their permission)")
    def retry_incident(incident_id: IncidentId, body: IncidentActIn, rt: Runtime) -> dict[str, Any]:
        result: dict[str, Any] = audited(rt, lambda: rt.engine.retry_incident(incident_id, body.actor.plain())
                                         ).to_dict()
        return result

    @app.post("/v1/incidents/{incident_id}/resolve", tags=["incidents"],
              summary="Close an open incident by hand, once (its work is not retried); audited")
    def resolve_incident(incident_id: IncidentId, body: IncidentActIn, rt: Runtime) -> dict[str, Any]:
        result: dict[str, Any] = rt.engine.resolve_incident(incident_id, body.actor.plain(), body.note).to_dict()
        return result

    # --- schedules and relations --------------------------------------------------------------

    @app.post("/v1/schedules/preview", tags=["schedules"], summary="Occurrences of the bundle's schedules")
    def schedule_preview(body: SchedulePreviewIn, rt: Runtime) -> list[dict[str, Any]]:
        from regelwerk.scheduling.preview import preview_schedules

        rows = preview_schedules(rt.compiled, _moment(body.start), _moment(body.end), body.limit)
        return [{"schedule": label, "at": moment.isoformat()} for label, moment in rows]

    @app.post("/v1/tick", tags=["schedules"], summary="Run this tenant's due work now (workers do it for all)")
    def tick(body: TickIn, rt: Runtime) -> dict[str, Any]:
        moment = _moment(body.now)
        if moment > datetime.now(UTC) + TICK_SKEW:
            # a tick "in the future" would fire timers and run the AVG retention sweep early: deletions
            raise UsageError(f"a tick's now may not be later than the server's clock (asked {moment.isoformat()})",
                             hint="leave 'now' out; rehearse the future with 'regelwerk simulate'")
        started = time.perf_counter()
        summary = rt.engine.tick(moment)
        metrics.tick(time.perf_counter() - started)
        result: dict[str, Any] = summary.as_dict()
        return result

    @app.post("/v1/relations", tags=["decisions"], status_code=201,
              summary="Add relationship facts (managers, groups, consent) the permission matrix reads")
    def relations(body: RelationsIn, rt: Runtime, who: Who) -> dict[str, Any]:
        from regelwerk.permissions.relations import relate_all

        port = rt.port(None)
        # all or none: the database refusing one fact stores none of the request (each was its own transaction)
        added = relate_all(port.relationships, [r.model_dump() for r in body.relations], by=by_key(who))
        return {"added": len(added)}

    return app


def by_key(who: Principal) -> str:
    """Who the service's own writes are by: ``api:<key id>`` (found by attack: every deployment, migration and relation
    was by ``api``, so with two keys, or after a rotation, nobody could tell which key wrote it)."""
    return f"api:{who.key_id}"


def tenant_id(who: Principal) -> str:
    """The tenant of a tenant's key (:func:`tenant_key` checked that it has one)."""
    assert who.tenant is not None
    return who.tenant


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the API (``docs/openapi.json``), built without a store."""
    app = create_app(_NoHub())  # type: ignore[arg-type]
    document: dict[str, Any] = app.openapi()
    return document


class _NoHub:
    """Stands in for the hub when only the route table is needed (the OpenAPI document)."""
