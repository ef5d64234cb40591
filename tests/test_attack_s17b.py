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


def test_if_nobody_skip_never_hides_a_malformed_instance(tmp_path: Path, registry: Any) -> None:
    """A role holder refused ``by: malformed`` (the instance carries a declared field of another type) is not out of
    scope: nobody knows whom the mail is for. ``if_nobody: skip`` skipped it as "nobody in scope", so a person whose
    payload wrote ``closed: "no"`` (a boolean in the matrix, untyped in the data_schema) silenced the mail to every
    location manager. Now a typed refusal (not nobody), nothing written; well-typed data is mailed as before."""
    import sqlalchemy as sa
    from regelwerk.errors import NoRecipients
    from regelwerk.runtime import Engine

    from tests.test_outbox_roles import MATRIX, _bundle, _people
    from tests.test_outbox_roles import NOW as MAIL_NOW

    root = _bundle(tmp_path, "role: locatiemanager, if_nobody: skip")
    (root / "matrix.yaml").write_text(MATRIX.replace(
        "department: location, actions: [start, read, remind]}",
        "department: location, actions: [start, read, remind], fields: {closed: {type: boolean}}}").replace(
        "  grants:\n", "  denies:\n    - {id: not_closed, roles: ['*'], resource: onboarding, actions: [read],\n"
                      "       condition: {field: resource.closed, eq: true}}\n  grants:\n"), encoding="utf-8")
    compiled = compile_bundle(load_bundle(root), registry)
    hr = {"id": "hr1", "roles": ["hr"]}
    with Engine(compiled, store=f"sqlite:///{tmp_path / 'store.sqlite'}", registry=registry, permissions="m",
                clock=lambda: MAIL_NOW) as engine:
        _people(engine, {"lm-a": "locatiemanager"}, employees={"lm-a": "anna@x.example"}, members={"lm-a": "loc-a"})
        engine.start("onboarding", {"subject": "e1", "location": "loc-a", "closed": "no"}, hr, "ob1")
        sa_engine = engine.store.engine  # type: ignore[attr-defined]

        def rows() -> list[Any]:
            with sa_engine.connect() as conn:
                return [tuple(r) for t in ("rw_instances", "rw_history", "rw_outbox")
                        for r in conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY 1"))]

        before = rows()
        with pytest.raises(NoRecipients) as caught:
            engine.fire("ob1", "remind", hr)
        assert not caught.value.nobody and "malformed" in caught.value.reason
        assert rows() == before
        engine.start("onboarding", {"subject": "e2", "location": "loc-a", "closed": False}, hr, "ob2")
        assert engine.fire("ob2", "remind", hr).state == "reminded"  # well-typed: mailed as before
        with engine.store.read() as tx:
            assert [m.recipient for m in tx.outbox(instance_id="ob2")] == ["anna@x.example"]



_ENUM_MATRIX = """apiVersion: regelwerk/v1
kind: PermissionMatrix
metadata: {name: m}
spec:
  roles: [{id: stagiair}]
  resources:
    - id: dossier
      actions: [read]
      fields:
        classification: {type: string, enum: [public, confidential]}
        level: {type: integer, enum: [1, 2, 3]}
      field_groups:
        - {id: notes, fields: [classification]}
  grants:
    - {id: reads, roles: [stagiair], resource: dossier, actions: [read]}
    - {id: reads_notes, roles: [stagiair], resource: dossier, actions: [read], field_groups: [notes]}
  denies:
    - {id: not_confidential, roles: [stagiair], resource: dossier, actions: [read],
       condition: {any: [{field: resource.classification, eq: confidential}, {field: resource.level, ge: 3}]}}
"""


@pytest.mark.parametrize(("resource", "allowed", "by"), [
    ({"classification": "public", "level": 1}, True, "reads"),
    ({"classification": "confidential"}, False, "not_confidential"),
    ({"classification": "Confidential"}, False, "malformed"),  # outside the enum: escaped the deny, read it
    ({"classification": "confidential "}, False, "malformed"),
    ({"level": 3}, False, "not_confidential"),
    ({"level": -7}, False, "malformed"),  # a number outside the declared values: no bound test decides it
    ({"level": True}, False, "malformed"),  # True == 1, but a boolean is no number
])
def test_a_value_outside_a_declared_enum_is_malformed(tmp_path: Path, resource: dict[str, Any], allowed: bool,
                                                      by: str) -> None:
    """A declared field's ``enum`` is part of its type: a host sending ``"Confidential"`` where the resource declares
    ``enum: [public, confidential]`` passed the kind check (a text), missed the deny ``classification eq
    confidential`` and the intern read the dossier. Now denied as malformed on every path."""
    (tmp_path / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: t}\nspec: {}\n")
    (tmp_path / "m.yaml").write_text(_ENUM_MATRIX)
    port = MatrixPermissions(compile_bundle(load_bundle(tmp_path), load_registry()), MemoryRelationships(), "m")
    actor = {"id": "s1", "roles": ["stagiair"]}
    fast = port.check(actor, "read", "dossier", resource, {"now": NOW})
    many = port.check_many(actor, [("read", "dossier", resource)], {"now": NOW})[0]
    explained = port.matrix.decide(actor, "read", "dossier", resource, None, NOW, explain=True)
    for decision in (fast, many, explained):
        assert (decision.allowed, decision.explain["by"]) == (allowed, by), decision.explain
    groups = port.matrix.readable_field_groups(actor, "dossier", resource, None, NOW)
    assert groups == (("notes",) if allowed else ())


@pytest.mark.parametrize(("resource", "allowed", "by"), [
    ({"retain_until": "2030-12-31"}, True, "reads"),
    ({"retain_until": "2020-12-31"}, False, "expired"),
    ({"retain_until": "31-12-2020"}, False, "malformed"),  # a Dutch export's date: any text was a 'date'
    ({"retain_until": "gisteren"}, False, "malformed"),
    ({"retain_until": "P1D"}, False, "malformed"),  # a duration is no date
    ({"seen_at": "2020-01-01T10:00:00Z"}, False, "expired"),
    ({"seen_at": "01-01-2020 10:00"}, False, "malformed"),
    ({"slot": "25:99"}, False, "malformed"),
    ({"slot": "09:30"}, True, "reads"),
    ({"wait": "two weeks"}, False, "malformed"),
    ({"wait": "P2W"}, True, "reads"),
])
def test_a_date_text_the_conditions_cannot_read_is_malformed(tmp_path: Path, resource: dict[str, Any],
                                                             allowed: bool, by: str) -> None:
    """A declared date, datetime, time or duration field took any text: ``retain_until: "31-12-2020"`` compared as
    unknown, so the deny ``retain_until lt now`` never applied and the grant under it let anyone read a dossier
    past its retention. The text must be ISO text of its kind, as the conditions read it."""
    (tmp_path / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: t}\nspec: {}\n")
    (tmp_path / "m.yaml").write_text("""apiVersion: regelwerk/v1
kind: PermissionMatrix
metadata: {name: m}
spec:
  roles: [{id: lid}]
  resources:
    - id: dossier
      actions: [read]
      fields:
        retain_until: {type: date}
        seen_at: {type: datetime}
        slot: {type: time}
        wait: {type: duration}
  grants:
    - {id: reads, roles: [lid], resource: dossier, actions: [read]}
  denies:
    - {id: expired, roles: [lid], resource: dossier, actions: [read],
       condition: {any: [{field: resource.retain_until, lt: {now: {}}}, {field: resource.seen_at, lt: {now: {}}},
                         {field: resource.slot, lt: "08:00"}, {field: resource.wait, gt: P4W}]}}
""")
    port = MatrixPermissions(compile_bundle(load_bundle(tmp_path), load_registry()), MemoryRelationships(), "m")
    actor = {"id": "s1", "roles": ["lid"]}
    fast = port.check(actor, "read", "dossier", resource, {"now": NOW})
    many = port.check_many(actor, [("read", "dossier", resource)], {"now": NOW})[0]
    explained = port.matrix.decide(actor, "read", "dossier", resource, None, NOW, explain=True)
    for decision in (fast, many, explained):
        assert (decision.allowed, decision.explain["by"]) == (allowed, by), decision.explain


@pytest.mark.parametrize(("amount", "allowed", "by"), [
    (500, True, "approves"), (500.5, True, "approves"), (5000, False, "too_much"), (float("inf"), False, "too_much"),
    (None, False, "default"),
    (float("nan"), False, "malformed"),  # 'exists' held and 'gt 1000' was unknown: a junior approved it
])
def test_nan_in_a_declared_number_field_is_malformed(tmp_path: Path, amount: Any, allowed: bool, by: str) -> None:
    """NaN (a missing number as pandas exports it, in-process; the service refuses it in a body) is a float, so it
    fit ``{type: number}``: the grant's ``amount exists`` held for it while the deny ``amount gt 1000`` was unknown,
    so a junior approved a claim of unknown amount, which a missing amount (None) never allowed."""
    (tmp_path / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: t}\nspec: {}\n")
    (tmp_path / "m.yaml").write_text("""apiVersion: regelwerk/v1
kind: PermissionMatrix
metadata: {name: m}
spec:
  roles: [{id: junior}]
  resources:
    - id: claim
      actions: [approve]
      fields:
        amount: {type: number}
  grants:
    - {id: approves, roles: [junior], resource: claim, actions: [approve],
       condition: {field: resource.amount, exists: true}}
  denies:
    - {id: too_much, roles: [junior], resource: claim, actions: [approve],
       condition: {field: resource.amount, gt: 1000}}
""")
    port = MatrixPermissions(compile_bundle(load_bundle(tmp_path), load_registry()), MemoryRelationships(), "m")
    actor, resource = {"id": "j1", "roles": ["junior"]}, {"amount": amount}
    fast = port.check(actor, "approve", "claim", resource, {"now": NOW})
    many = port.check_many(actor, [("approve", "claim", resource)], {"now": NOW})[0]
    explained = port.matrix.decide(actor, "approve", "claim", resource, None, NOW, explain=True)
    for decision in (fast, many, explained):
        assert (decision.allowed, decision.explain["by"]) == (allowed, by), decision.explain
    # an open resource (no declared fields): nothing is typed, and NaN is missing to 'exists' as to 'gt'
    (tmp_path / "m.yaml").write_text((tmp_path / "m.yaml").read_text().replace(
        "      fields:\n        amount: {type: number}\n", ""))
    port = MatrixPermissions(compile_bundle(load_bundle(tmp_path), load_registry()), MemoryRelationships(), "m")
    assert port.matrix.resources["claim"].field_kinds == {}
    open_by = "default" if by == "malformed" else by
    for decision in (port.check(actor, "approve", "claim", resource, {"now": NOW}),
                     port.matrix.decide(actor, "approve", "claim", resource, None, NOW, explain=True)):
        assert (decision.allowed, decision.explain["by"]) == (allowed, open_by), decision.explain


@pytest.mark.parametrize("value", [None, float("nan")])
def test_nan_is_missing_to_exists_and_eq_null_in_conditions_and_tables(value: Any) -> None:
    """'NaN is unknown like a missing value' (this round's first attack) held for comparisons but not for ``exists``
    or ``eq: null``: NaN 'existed', so the guard or grant ``amount exists`` passed for a number nobody knows."""
    from regelwerk.conditions import compile_condition
    from regelwerk.decisions.compile import _exists_test

    def holds(spec: dict[str, Any]) -> bool:
        condition, problems = compile_condition({"field": "data.amount", **spec}, "/when")
        assert not problems
        return condition({"data": {"amount": value}}, NOW) is True

    assert not holds({"exists": True}) and holds({"exists": False})
    assert holds({"eq": None}) and not holds({"ne": None})
    assert _exists_test(True)(value) is False and _exists_test(False)(value) is True


@pytest.mark.parametrize(("context", "allowed", "by"), [
    ({"modules": ["roosters"]}, True, "roster_plan"),
    ({"modules": "roosters_light"}, False, "malformed"),  # one text: 'contains roosters' was a substring test
    ({"modules": [["roosters"]]}, False, "malformed"),
    ({"modules": ["roosters"], "tier": "gold"}, False, "malformed"),  # outside the declared enum
    ({"modules": ["roosters"], "tier": "basic"}, False, "basic_tier"),
    ({}, False, "default"),  # missing: unknown, never grants
])
def test_a_declared_context_field_of_another_type_is_malformed(tmp_path: Path, context: dict[str, Any],
                                                               allowed: bool, by: str) -> None:
    """A matrix's declared ``context`` (what the host passes with a question, ``/v1/can``'s ``context``) was checked
    when the bundle loads only: ``modules: "roosters_light"`` made ``contains roosters`` a substring test and the
    team lead planned rosters of a module not bought. Typed at decision time now, as a resource's fields are."""
    (tmp_path / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: t}\nspec: {}\n")
    (tmp_path / "m.yaml").write_text("""apiVersion: regelwerk/v1
kind: PermissionMatrix
metadata: {name: m}
spec:
  context:
    modules: {type: list, items: string}
    tier: {type: string, enum: [basic, plus]}
  roles: [{id: teamleider}]
  resources:
    - {id: roster, actions: [read]}
  grants:
    - {id: roster_plan, roles: [teamleider], resource: roster, actions: [read],
       condition: {field: context.modules, contains: roosters}}
  denies:
    - {id: basic_tier, roles: [teamleider], resource: roster, actions: [read],
       condition: {field: context.tier, eq: basic}}
""")
    port = MatrixPermissions(compile_bundle(load_bundle(tmp_path), load_registry()), MemoryRelationships(), "m")
    actor = {"id": "t1", "roles": ["teamleider"]}
    fast = port.check(actor, "read", "roster", {}, {"now": NOW, **context})
    many = port.check_many(actor, [("read", "roster", {})], {"now": NOW, **context})[0]
    explained = port.matrix.decide(actor, "read", "roster", {}, None, NOW, context, explain=True)
    for decision in (fast, many, explained):
        assert (decision.allowed, decision.explain["by"]) == (allowed, by), decision.explain
    if by == "malformed":
        assert explained.explain["reason"].startswith("context.")
