"""MijnLoket's employer instances under concurrent workers: the first use of an employer started by several at once,
products activated at the same moment by several engines (threads; a SQLite file and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.permissions.policies import UnsafeAllowAll
from regelwerk.runtime import Engine
from regelwerk.store.sql import SqlStore
from regelwerk_packs.mijnloket.products import EmployerProducts

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "definitions" / "standard" / "mijnloket"
NOW = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
PRODUCTS = ["verlofaanvragen", "preboarding", "documenten", "declaraties", "verlofregeling", "verlofkaart"]


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


def test_products_activated_at_once_by_several_workers_are_all_kept(url: str, registry: Any) -> None:
    """Three engines (workers) on one store; six threads start with the same barrier: the employer's instance is
    started once, every product ends up active, the tier is what all of them demand, and the history has every
    version once (each activation decided on the row the one before it committed)."""
    compiled = compile_bundle(load_bundle(SHIPPED), registry)
    stores = [SqlStore(url) for _ in range(3)]
    stores[0].setup()
    workers = [EmployerProducts(Engine(compiled, store=s, registry=registry, clock=lambda: NOW,
                                       permissions=UnsafeAllowAll())) for s in stores]
    try:
        workers[0].sign_addendum("acme")
        barrier = threading.Barrier(len(PRODUCTS))
        errors: list[BaseException] = []

        def activate(index: int, product: str) -> None:
            try:
                barrier.wait(10)
                workers[index % len(workers)].activate("acme", product, actor="consultant")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        def activate_for(index: int, product: str, employer: str, barrier: threading.Barrier,
                         errors: list[BaseException]) -> None:
            try:
                barrier.wait(10)
                workers[index % len(workers)].activate(employer, product, actor="consultant")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=activate, args=(i, p)) for i, p in enumerate(PRODUCTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        acme = workers[1].employer("acme")
        assert sorted(acme.active) == sorted(PRODUCTS)
        assert acme.tier == compiled.get("ProductCatalog", "mijnloket").tier(PRODUCTS, addendum_signed=True).tier
        history = acme.history()
        assert [h.version for h in history] == list(range(1, len(PRODUCTS) + 3))
        assert sorted((h.explain.get("input") or {}).get("product") for h in history if h.event == "activate") \
            == sorted(PRODUCTS)
        # an employer's first use by several workers at once: one instance, started once
        supporting = ["verlofregistratie", "verlofregeling", "dossiervorming", "preboarding_module"]
        barrier = threading.Barrier(len(supporting))
        threads = [threading.Thread(target=activate_for, args=(i, p, "beta", barrier, errors))
                   for i, p in enumerate(supporting)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        beta = workers[0].employer("beta")
        assert sorted(beta.active) == sorted(supporting) and beta.tier is None
        assert [h.version for h in beta.history()] == list(range(1, len(supporting) + 2))
        assert [h.event for h in beta.history()].count("$start") == 1
        assert workers[2].engine.incidents() == []
    finally:
        for worker in workers:
            worker.engine.close()
        for store in stores:
            store.close()
