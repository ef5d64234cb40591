"""Attacks on the seventeenth round's additions (task-held roles, typed resource fields, role mail's if_nobody,
transition input): each test failed on the code before its fix."""

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

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

_TASK_MATRIX = """apiVersion: regelwerk/v1
kind: PermissionMatrix
metadata: {name: m}
spec:
  roles:
    - {id: medewerker}
    - {id: opleider, tasks: [praktijkopleider], inherits: [medewerker]}
  resources:
    - {id: record, actions: [read, approve]}
  grants:
    - {id: opleider_approves, roles: [opleider], resource: record, actions: [approve]}
    - {id: staff_reads, roles: [medewerker], resource: record, actions: [read]}
  denies:
    - {id: no_reads_for_guests, roles: ['*'], except_roles: [opleider], resource: record, actions: [read],
       condition: {field: resource.closed, eq: true}}
"""


def _task_port(tmp_path: Path) -> tuple[MatrixPermissions, MemoryRelationships]:
    (tmp_path / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: t}\nspec: {}\n")
    (tmp_path / "m.yaml").write_text(_TASK_MATRIX)
    compiled = compile_bundle(load_bundle(tmp_path), load_registry())
    rel = MemoryRelationships()
    rel.relate("has_task", "pia", "praktijkopleider", now=NOW)
    rel.relate("has_role", "olga", "task:praktijkopleider", now=NOW)  # written by a careless host or import
    rel.relate("has_role", "mo", "medewerker", now=NOW)
    return MatrixPermissions(compiled, rel, "m"), rel


@pytest.mark.parametrize("explain", [False, True])
def test_task_role_is_held_only_through_a_has_task_fact(tmp_path: Path, explain: bool) -> None:
    """``task:<t>`` is how an active has_task fact appears among a person's stored roles. An actor role of that form
    (the host's own role names, ``/v1/can``'s ``actor.roles``) or a has_role fact naming it gave the roles that list
    the task: anyone whose host role or has_role read ``task:praktijkopleider`` approved as a praktijkopleider, and
    escaped a deny that excepts that role."""
    port, _ = _task_port(tmp_path)

    def ask(actor: dict[str, Any], action: str, resource: dict[str, Any] | None = None) -> Any:
        if explain:
            return port.matrix.decide(actor, action, "record", resource or {}, port.relationships, NOW, explain=True)
        return port.check(actor, action, "record", resource or {}, {"now": NOW})

    assert ask({"id": "pia", "roles": []}, "approve").allowed  # the real task holder
    assert ask({"id": "pia", "roles": []}, "read", {"closed": True}).allowed  # excepted from the deny
    forged = {"id": "x", "roles": ["task:praktijkopleider"]}
    assert not ask(forged, "approve").allowed
    assert not ask(forged, "read").allowed  # no role at all: not even medewerker through the task's role
    assert not ask({"id": "olga", "roles": []}, "approve").allowed
    # the excepted role through a forged task does not lift the deny for a medewerker
    mo = ask({"id": "mo", "roles": ["task:praktijkopleider"]}, "read", {"closed": True})
    assert not mo.allowed and mo.explain["by"] == "no_reads_for_guests"
    assert port.matrix.readable_field_groups(forged, "record", {}, port.relationships, NOW) == ()


def test_task_role_forged_in_a_batch_question_is_refused(tmp_path: Path) -> None:
    """The batch path (``/v1/can/batch``, check_many) the same: a forged task role beside a real role is dropped."""
    port, _ = _task_port(tmp_path)
    decisions = port.check_many({"id": "x", "roles": ["task:praktijkopleider", "medewerker"]},
                                [("approve", "record", {}), ("read", "record", {})], {"now": NOW})
    assert [d.allowed for d in decisions] == [False, True]
