"""The unit of work at the centre: refusals audited once on every store, tick and timers on the memory store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from _stores import STORES, store_urls
from regelwerk.compiler import CompiledBundle
from regelwerk.errors import PermissionDenied
from regelwerk.permissions.policies import UnsafeAllowAll
from regelwerk.runtime import Engine
from regelwerk.store.memory import MemoryStore
from regelwerk.store.records import AuditEntry
from regelwerk.store.unit import UnitOfWork, current_unit

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DENIALS = ("permission.denied", "workflow.permission_denied")


@pytest.fixture(scope="module")
def standard() -> CompiledBundle:
    from pathlib import Path

    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.definitions import __file__ as definitions_init
    from regelwerk.registry import load_registry

    return compile_bundle(load_bundle(Path(definitions_init).parent / "standard"), load_registry())


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    yield from store_urls(request, tmp_path, "uow")


def _engine(bundle: CompiledBundle, url: str) -> Engine:
    engine = Engine(bundle, store=url, permissions="step2hr", clock=lambda: NOW)
    relations = engine.permissions.relationships  # type: ignore[attr-defined]
    relations.relate("reports_to", "eva", "mark", now=NOW)
    return engine


def test_a_refused_fire_is_audited_once_and_returns_at_once(standard: CompiledBundle, store_url: str) -> None:
    with _engine(standard, store_url) as engine:
        engine.start("training_record", {"subject": "eva", "title": "BHV"}, {"id": "eva", "roles": ["medewerker"]},
                     "t1")
        started = time.perf_counter()
        with pytest.raises(PermissionDenied):
            engine.fire("t1", "approve", {"id": "eva", "roles": ["medewerker"]})
        assert time.perf_counter() - started < 2.0  # SQLite used to wait 30 s on its own lock
        with pytest.raises(PermissionDenied):
            engine.fire_batch([("t1", "approve", {"id": "petra", "roles": ["medewerker"]})])
        denials = [a for a in engine.audit("t1") if a.action in DENIALS]
        assert [(a.actor, a.detail.get("event")) for a in denials] == [("eva", "approve"), ("petra", "approve")]
        assert engine.get("t1").state == "entered" and engine.get("t1").version == 1
        done = engine.fire("t1", "approve", {"id": "mark", "roles": ["leidinggevende"]})
        assert done.state == "approved"
        assert len([a for a in engine.audit("t1") if a.action in DENIALS]) == 2


def test_a_stale_cached_refusal_is_decided_again_and_audited_once(standard: CompiledBundle, tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'stale.sqlite'}"
    with _engine(standard, url) as first, _engine(standard, url) as second:
        first.start("training_record", {"subject": "eva", "title": "BHV"}, {"id": "eva", "roles": ["medewerker"]},
                    "t1")
        first.fire("t1", "reject", {"id": "mark", "roles": ["leidinggevende"]}, {"reason": "x"})
        second.fire("t1", "resubmit", {"id": "eva", "roles": ["medewerker"]})  # first's cache is now stale
        with pytest.raises(PermissionDenied):
            first.fire("t1", "approve", {"id": "eva", "roles": ["medewerker"]})
        assert len([a for a in first.audit("t1") if a.action in DENIALS]) == 1


def test_refusals_survive_the_rollback_and_callbacks_do_not() -> None:
    store = MemoryStore()
    ran: list[str] = []
    with pytest.raises(RuntimeError), UnitOfWork(store) as uow:
        assert current_unit(store) is uow and current_unit(MemoryStore()) is None
        uow.refuse(AuditEntry(NOW, "eva", "permission.denied", "t1"))
        uow.audit(AuditEntry(NOW, "eva", "part.of.the.change", "t1"))
        uow.after_commit(lambda: ran.append("post"))
        raise RuntimeError("rolled back")
    assert current_unit(store) is None
    with store.read() as tx:
        assert [a.action for a in tx.audit()] == ["permission.denied"]
    assert ran == []
    with UnitOfWork(store) as uow:
        uow.after_commit(lambda: ran.append("post"))
        uow.refuse(AuditEntry(NOW, "eva", "permission.denied", "t2"))
    uow.run_post()
    assert ran == ["post"]
    with store.read() as tx:
        assert [a.instance_id for a in tx.audit()] == ["t1", "t2"]


def test_tick_timers_and_migrations_run_on_the_memory_store(standard: CompiledBundle) -> None:
    clock = {"now": NOW}
    engine = Engine(standard, store=MemoryStore(), clock=lambda: clock["now"], permissions=UnsafeAllowAll())
    engine.start("certificate", {"subject": "eva", "title": "BHV", "expires_on": "2026-04-01"}, "hanna", "c1")
    pending = [t for t in engine.timers("c1") if t.status == "pending"]
    assert pending, "the certificate plans its expiry"
    later = max(t.due_at for t in pending) + timedelta(days=1)
    clock["now"] = later
    summary = engine.tick(later)
    assert summary.timers_fired >= 1
    assert engine.get("c1").state != "valid"
    assert engine.migrate_plan() == [] and engine.migrate_apply() == []
