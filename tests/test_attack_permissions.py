"""Attacks on the permission matrix with resource values that are not ids (lists, mappings, numbers): every
scope (own, authored, direct_reports, all_reports, department, consent, represented) answers "does not hold"
on the fast path, the batch path and the explained path, never a ``TypeError``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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


def _matrix_with_fields(tmp_path: Path, fields: str) -> Any:
    """A bundle with one resource declaring ``fields`` and grants whose conditions read them."""
    (tmp_path / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: t}\nspec: {}\n")
    (tmp_path / "m.yaml").write_text(f"""apiVersion: regelwerk/v1
kind: PermissionMatrix
metadata: {{name: m}}
spec:
  roles: [{{id: lid}}]
  resources:
    - id: answer{fields}
      actions: [read]
  grants:
    - {{id: by_list, roles: [lid], resource: answer, actions: [read],
       condition: {{field: resource.visible_to, contains: manager}}}}
    - {{id: by_level, roles: [lid], resource: answer, actions: [read], condition: {{field: resource.level, ge: 3}}}}
  denies:
    - {{id: not_secret, roles: [lid], resource: answer, actions: [read],
       condition: {{field: resource.secret, eq: true}}}}
""")
    compiled = compile_bundle(load_bundle(tmp_path), load_registry())
    return MatrixPermissions(compiled, MemoryRelationships(), "m")


@pytest.mark.parametrize(("resource", "allowed", "by"), [
    ({"visible_to": ["manager"]}, True, "by_list"),
    ({"visible_to": "managers_manager"}, False, "malformed"),  # one text: 'contains' would be a substring test
    ({"visible_to": ["managers_manager"]}, False, "default"),
    ({"visible_to": [["manager"]]}, False, "malformed"),  # an item that is not a text
    ({"level": 3}, True, "by_level"),
    ({"level": "9"}, False, "malformed"),  # a number sent as a text
    ({"level": True}, False, "malformed"),  # a boolean is not a number
    ({"visible_to": ["manager"], "secret": "yes"}, False, "malformed"),  # a deny's field too: never skipped
    ({"visible_to": ["manager"], "secret": True}, False, "not_secret"),
    ({"visible_to": None, "level": None}, False, "default"),  # missing or null: unknown, which never grants
])
def test_a_declared_field_of_another_type_is_denied_as_malformed(tmp_path: Path, resource: dict[str, Any],
                                                                 allowed: bool, by: str) -> None:
    port = _matrix_with_fields(tmp_path, "\n      fields:\n        visible_to: {type: list, items: string}\n"
                                         "        level: {type: number}\n        secret: {type: boolean}")
    actor = {"id": "u1", "roles": ["lid"]}
    fast = port.check(actor, "read", "answer", resource, {"now": NOW})
    many = port.check_many(actor, [("read", "answer", resource)], {"now": NOW})[0]
    explained = port.matrix.decide(actor, "read", "answer", resource, None, NOW, explain=True)
    for decision in (fast, many, explained):
        assert decision.allowed is allowed, (decision, resource)
        assert decision.explain["by"] == by, decision.explain
    if by == "malformed":
        assert "declared" in explained.explain["reason"]
        assert explained.explain["considered"] == []


def test_an_open_resource_keeps_contains_as_the_condition_language_says(tmp_path: Path) -> None:
    """Without declared fields nothing is checked (the resource is open): documented, not a silent change."""
    port = _matrix_with_fields(tmp_path, "")
    decision = port.check({"id": "u1", "roles": ["lid"]}, "read", "answer", {"visible_to": "managers"},
                          {"now": NOW})
    assert decision.allowed and decision.explain["by"] == "by_list"


@pytest.mark.parametrize(("status", "allowed"), [("published", True), ("draft", False), (0, False), (["x"], False),
                                               (None, False)])
def test_an_open_resource_value_of_another_kind_never_grants_through_ne(tmp_path: Path, status: Any,
                                                                        allowed: bool) -> None:
    """Without declared fields a value of another kind still never grants: ``0 ne draft`` is unknown, not true (a
    host sending a status code for the text the policy reads was let through)."""
    (tmp_path / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: t}\nspec: {}\n")
    (tmp_path / "m.yaml").write_text("""apiVersion: regelwerk/v1
kind: PermissionMatrix
metadata: {name: m}
spec:
  roles: [{id: lid}]
  resources: [{id: page, actions: [read]}]
  grants:
    - {id: not_draft, roles: [lid], resource: page, actions: [read],
       condition: {field: resource.status, ne: draft}}
""")
    port = MatrixPermissions(compile_bundle(load_bundle(tmp_path), load_registry()), MemoryRelationships(), "m")
    actor = {"id": "u1", "roles": ["lid"]}
    resource = {"status": status}
    fast = port.check(actor, "read", "page", resource, {"now": NOW})
    many = port.check_many(actor, [("read", "page", resource)], {"now": NOW})[0]
    explained = port.matrix.decide(actor, "read", "page", resource, None, NOW, explain=True)
    assert [d.allowed for d in (fast, many, explained)] == [allowed] * 3


def _nested_fact_port(tmp_path: Path) -> Any:
    """A resource typed by a plugin's fact type that nests an object (``meta.visible_to``) and has an integer."""
    from regelwerk.registry import FactSpec

    registry = load_registry()
    registry.add_fact(FactSpec("dossier", "test", {"type": "object", "properties": {
        "id": {"type": "string"}, "grade": {"type": "integer"},
        "meta": {"type": "object", "properties": {"visible_to": {"type": "array", "items": {"type": "string"}}}}}}))
    (tmp_path / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: t}\nspec: {}\n")
    (tmp_path / "m.yaml").write_text("""apiVersion: regelwerk/v1
kind: PermissionMatrix
metadata: {name: m}
spec:
  roles: [{id: lid}]
  resources: [{id: dossier, fact: dossier, actions: [read, grade]}]
  grants:
    - {id: listed, roles: [lid], resource: dossier, actions: [read],
       condition: {field: resource.meta.visible_to, contains: manager}}
    - {id: graded, roles: [lid], resource: dossier, actions: [grade], condition: {field: resource.grade, ge: 3}}
""")
    return MatrixPermissions(compile_bundle(load_bundle(tmp_path), registry), MemoryRelationships(), "m")


@pytest.mark.parametrize(("action", "resource", "allowed", "by"), [
    ("read", {"meta": {"visible_to": ["manager"]}}, True, "listed"),
    ("read", {"meta": {"visible_to": "managers_manager"}}, False, "malformed"),  # a substring test otherwise
    ("read", {"meta": "visible_to manager"}, False, "malformed"),  # the object itself of another kind
    ("read", {"meta": {}}, False, "default"),
    ("grade", {"grade": 3}, True, "graded"),
    ("grade", {"grade": 3.0}, True, "graded"),
    ("grade", {"grade": 3.5}, False, "malformed"),  # no integer
])
def test_a_nested_declared_field_and_an_integer_are_checked(tmp_path: Path, action: str, resource: dict[str, Any],
                                                            allowed: bool, by: str) -> None:
    """Typed fields reach into declared objects and tell an integer from a number (left alone last round: a fact
    type's nested list sent as one text turned ``contains`` into a substring test)."""
    port = _nested_fact_port(tmp_path)
    actor = {"id": "u1", "roles": ["lid"]}
    fast = port.check(actor, action, "dossier", resource, {"now": NOW})
    many = port.check_many(actor, [(action, "dossier", resource)], {"now": NOW})[0]
    explained = port.matrix.decide(actor, action, "dossier", resource, None, NOW, explain=True)
    for decision in (fast, many, explained):
        assert decision.allowed is allowed, (decision, resource)
        assert decision.explain["by"] == by, decision.explain


def test_a_role_held_through_a_task_grants_while_the_task_is_active(tmp_path: Path) -> None:
    """``tasks: [praktijkopleider]`` on a role: whoever has an active ``has_task`` fact for it holds the role (and
    what it inherits); a has_task for another task, an ended task or a has_role of the task's name do not."""
    (tmp_path / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: t}\nspec: {}\n")
    (tmp_path / "m.yaml").write_text("""apiVersion: regelwerk/v1
kind: PermissionMatrix
metadata: {name: m}
spec:
  roles:
    - {id: medewerker}
    - {id: opleider, tasks: [praktijkopleider], inherits: [medewerker]}
  resources:
    - {id: record, actions: [read, approve]}
  grants:
    - {id: opleider_approves, roles: [opleider], resource: record, actions: [approve], scope: department}
    - {id: staff_reads, roles: [medewerker], resource: record, actions: [read], scope: department}
  denies:
    - {id: not_own, roles: [opleider], resource: record, actions: [approve], scope: own}
""")
    compiled = compile_bundle(load_bundle(tmp_path), load_registry())
    rel = MemoryRelationships()
    for person in ("pia", "nina", "kees", "olga"):
        rel.relate("member_of", person, "team", now=NOW)
    rel.relate("has_task", "pia", "praktijkopleider", now=NOW)
    rel.relate("has_task", "kees", "bhv", now=NOW)
    rel.relate("has_role", "olga", "praktijkopleider", now=NOW)  # a role of that name does not exist: nothing
    port = MatrixPermissions(compiled, rel, "m")
    record = {"subject": "nina", "department": "team"}

    def check(person: str, action: str, resource: dict[str, Any] = record) -> Any:
        return port.check({"id": person, "roles": []}, action, "record", resource, {"now": NOW})

    assert check("pia", "approve").allowed and check("pia", "approve").explain["by"] == "opleider_approves"
    assert check("pia", "read").allowed  # inherited through the task's role
    assert check("pia", "approve", {"subject": "pia", "department": "team"}).explain["by"] == "not_own"
    for person in ("kees", "olga", "nina"):
        assert not check(person, "approve").allowed, person
    rel.unrelate("has_task", "pia", "praktijkopleider", at=NOW)
    assert not port.check({"id": "pia", "roles": []}, "approve", "record", record,
                          {"now": NOW + timedelta(seconds=1)}).allowed


@pytest.mark.parametrize("kind", ["has_role", "has_right", "has_task", "reports_to", "member_of", "represents"])
def test_a_person_links_only_consent_never_a_role_or_a_line(compiled: Any, kind: str) -> None:
    """``link``/``unlink`` (the scenario step ``relate as``, the story event ``link``) decide ``create`` on a consent
    link for whom the actor may link, not which fact it becomes: ``kind: has_role`` was decided as the professional
    linking herself and wrote ``has_role(nina, employer)``, and she read every linked professional's dossier. A kind
    other than consent is ``PermissionDenied`` (``by: kind``), audited, nothing stored."""
    from regelwerk.errors import PermissionDenied

    rel = MemoryRelationships()
    port = MatrixPermissions(compiled, rel, "registerplein")
    nina = {"id": "nina", "roles": ["professional"]}
    port.link(nina, "nina", "org1", context={"now": NOW})  # her own consent: allowed
    before = [r.to_dict() for r in rel.relations()]
    with pytest.raises(PermissionDenied) as refused:
        port.link(nina, "nina", "employer", kind=kind, context={"now": NOW})
    assert refused.value.explanation["by"] == "kind"
    assert [r.to_dict() for r in rel.relations()] == before
    assert port.audited[-1]["detail"]["by"] == "kind" and port.audited[-1]["actor"] == "nina"
    with pytest.raises(PermissionDenied):
        port.unlink(nina, "nina", "org1", kind=kind, context={"now": NOW})
    assert rel.personal("nina", NOW) == ((), ())
