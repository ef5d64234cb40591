"""Deny by default in the runtime (issue 12): no policy no access, starting is an action, facts come from the store.

The README's embedding line (``Engine(bundle, store=..., permissions="declaration")``) on memory, a SQLite
file and PostgreSQL (when configured): every attack below is refused with ``PermissionDenied``, fast,
audited once, and the store is left as it was.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from regelwerk.actors import Actor
from regelwerk.bundle import load_bundle
from regelwerk.compiler import CompiledBundle, compile_bundle
from regelwerk.errors import PermissionDenied
from regelwerk.permissions.policies import NO_POLICY_REASON, NoPolicy, UnsafeAllowAll
from regelwerk.registry import Registry, load_registry
from regelwerk.runtime import Engine
from regelwerk.workflows.ports import RoleTable

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "definitions" / "standard" / "workflows"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ANNA = Actor("anna", ("medewerker",))
CARL = Actor("carl", ("medewerker",))
BERT = Actor("bert", ("leidinggevende",))
DIRK = Actor("dirk", ("leidinggevende",))  # a manager, but not anna's
STRANGER = Actor("x", ())


@pytest.fixture(scope="module")
def core() -> Registry:
    return load_registry(use_entry_points=False)


@pytest.fixture(scope="module")
def bundle(core: Registry) -> CompiledBundle:
    return compile_bundle(load_bundle(WORKFLOWS), core)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: Any, sqlite_url: str) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return sqlite_url
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def engine(bundle: CompiledBundle, core: Registry, store_url: str) -> Any:
    eng = Engine(bundle, store=store_url, registry=core, clock=lambda: NOW, permissions="declaration")
    eng.permissions.relationships.relate("reports_to", "anna", "bert", now=NOW)  # type: ignore[attr-defined]
    eng.permissions.relationships.relate("reports_to", "carl", "dirk", now=NOW)  # type: ignore[attr-defined]
    yield eng
    eng.close()


def _refused(engine: Any, call: Any) -> PermissionDenied:
    """Run ``call``; it must raise PermissionDenied within a second and leave the instances unchanged."""
    before = {r.id: (r.state, r.version, dict(r.data)) for r in engine.instances()}
    started = time.perf_counter()
    with pytest.raises(PermissionDenied) as caught:
        call()
    assert time.perf_counter() - started < 1.0, "a refusal must not wait for a lock"
    assert {r.id: (r.state, r.version, dict(r.data)) for r in engine.instances()} == before
    return caught.value


def _denials(engine: Any, instance_id: str) -> list[Any]:
    return [a for a in engine.audit(instance_id) if "denied" in a.action]


def test_facts_come_from_the_stored_instance(engine: Any) -> None:
    engine.start("declaration", {"employee": "anna", "amount": 20}, ANNA, "d1")
    engine.fire("d1", "submit", ANNA)
    # a self-approval stays refused whatever the payload says the employee is
    self_approver = Actor("anna", ("leidinggevende",))
    for payload in (None, {"employee": "nobody"}, {"employee": "carl"}):
        exc = _refused(engine, lambda p=payload: engine.fire("d1", "approve", self_approver, p))
        assert exc.explanation["by"] == "declaration_no_self_approval"
    # a colleague's payload does not make anna's declaration his own
    engine.start("declaration", {"employee": "anna", "amount": 5}, ANNA, "d2")
    _refused(engine, lambda: engine.fire("d2", "submit", CARL, {"employee": "carl"}))
    # another manager cannot approve by naming his own report
    _refused(engine, lambda: engine.fire("d1", "approve", DIRK, {"employee": "carl"}))
    # anna's manager may approve, but not move the declaration out of his scope while doing so
    exc = _refused(engine, lambda: engine.fire("d1", "approve", BERT, {"employee": "carl"}))
    assert exc.explanation["by"] == "guarded-change" and exc.explanation["changed_fields"] == ["employee"]
    assert engine.fire("d1", "approve", BERT).state == "approved"
    assert len(_denials(engine, "d1")) == 5 and len(_denials(engine, "d2")) == 1  # each refusal audited once


def test_starting_is_an_action(engine: Any) -> None:
    _refused(engine, lambda: engine.start("declaration", {"employee": "anna", "amount": 20}, STRANGER, "s1"))
    _refused(engine, lambda: engine.start("declaration", {"employee": "anna", "amount": 20}, CARL, "s2"))
    _refused(engine, lambda: engine.start("declaration", {"employee": "anna", "amount": 20}, "system", "s3"))
    assert engine.instances() == []
    audited = [a for a in engine.audit() if a.action == "workflow.permission_denied"]
    assert [(a.actor, a.detail["event"], a.detail["action"]) for a in audited] == [
        ("x", "$start", "declaration.start"), ("carl", "$start", "declaration.start"),
        ("system", "$start", "declaration.start")]
    assert engine.start("declaration", {"employee": "carl", "amount": 20}, CARL, "s4").state == "draft"


def test_no_policy_no_access(bundle: CompiledBundle, core: Registry, sqlite_url: str) -> None:
    with Engine(bundle, store=sqlite_url, registry=core, clock=lambda: NOW) as bare:
        assert isinstance(bare.permissions, NoPolicy)
        exc = _refused(bare, lambda: bare.start("declaration", {"employee": "anna", "amount": 20}, ANNA, "d1"))
        assert exc.explanation["reason"] == NO_POLICY_REASON and "permissions=" in str(exc.explanation)
    # an instance started under a policy: the bare engine still refuses every guarded event on it
    with Engine(bundle, store=sqlite_url, registry=core, clock=lambda: NOW,
                permissions=RoleTable({"declaration.start": ["medewerker"]})) as allowed:
        allowed.start("declaration", {"employee": "anna", "amount": 20}, ANNA, "d1")
    with Engine(bundle, store=sqlite_url, registry=core, clock=lambda: NOW) as bare:
        for event, actor in (("submit", ANNA), ("withdraw", ANNA), ("submit", Actor("system", ("system",)))):
            exc = _refused(bare, lambda e=event, a=actor: bare.fire("d1", e, a))
            assert exc.explanation["by"] == "no-policy"
        assert not any(o.allowed for o in bare.available_events("d1", ANNA))


def test_unsafe_allow_all_says_so_in_the_history(bundle: CompiledBundle, core: Registry) -> None:
    with Engine(bundle, store="memory://", registry=core, clock=lambda: NOW, permissions=UnsafeAllowAll()) as eng:
        eng.start("declaration", {"employee": "anna", "amount": 20}, STRANGER, "d1")
        eng.fire("d1", "submit", STRANGER)
        entry = eng.history("d1")[-1]
        assert entry.explain["permission"]["explain"]["by"] == "UNSAFE-allow-all"


def test_explain_reads_the_stored_instance_too(engine: Any) -> None:
    engine.start("declaration", {"employee": "anna", "amount": 20}, ANNA, "d1")
    engine.fire("d1", "submit", ANNA)
    lying = engine.explain("d1", "approve", Actor("anna", ("leidinggevende",)), {"employee": "nobody"})
    assert lying["allowed"] is False
    assert engine.explain("d1", "approve", BERT)["allowed"] is True
