"""Attacks on the permission matrix with resource values that are not ids (lists, mappings, numbers): every
scope (own, authored, direct_reports, all_reports, department, consent, represented) answers "does not hold"
on the fast path, the batch path and the explained path, never a ``TypeError``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.permissions.adapter import MatrixPermissions
from regelwerk.permissions.relations import MemoryRelationships
from regelwerk.registry import load_registry

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ODD: tuple[Any, ...] = (["e1"], {"id": "e1"}, ("e1",), 7, 1.5, True)


@pytest.fixture(scope="module")
def compiled() -> Any:
    return compile_bundle(load_bundle(ROOT / "examples" / "scholengroep-horizon"), load_registry())


def _relationships() -> Any:
    rel = MemoryRelationships()
    for kind, subject, obj in (("member_of", "l1", "school1"), ("member_of", "e1", "school1"),
                               ("reports_to", "e1", "m1"), ("represents", "w1", "org1"),
                               ("member_of", "org1", "org2"), ("member_of", "org2", "org1"),
                               ("consent", "e1", "w1")):
        rel.relate(kind, subject, obj, now=NOW)
    return rel


@pytest.mark.parametrize("matrix", ["step2hr", "registerplein", "mijnloket", "hroffice", "declaration"])
def test_no_scope_holds_for_a_value_that_is_not_an_id(compiled: Any, matrix: str) -> None:
    port = MatrixPermissions(compiled, _relationships(), matrix)
    model = port.matrix
    actors = [{"id": a, "roles": list(model.roles)} for a in ("l1", "m1", "w1", "e1")]
    asked = 0
    for resource_type, rt in model.resources.items():
        fields = {rt.subject_field, rt.author_field, rt.department_field}
        for action in rt.actions:
            for odd in ODD:
                for field in fields:
                    resource = {field: odd}
                    for actor in actors:
                        for group in (None, *list(rt.field_groups)[:1]):
                            context = {"now": NOW, "field_group": group}
                            single = port.check(actor, action, resource_type, resource, context)
                            many = port.check_many(actor, [(action, resource_type, resource)], context)[0]
                            named = {**resource, field: "nobody-at-all"}
                            plain = port.check(actor, action, resource_type, named, context)
                            # an odd value is never better than naming a stranger
                            assert single.allowed == many.allowed
                            assert not single.allowed or plain.allowed, (actor, action, resource_type, resource)
                            asked += 1
    assert asked > 0
