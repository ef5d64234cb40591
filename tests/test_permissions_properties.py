"""Property tests (hypothesis): deny by default holds for random actors, roles, data, relations and times.

1. No decision is ``allow`` unless a grant (or a right's grant) the actor holds names this resource type and
   action, and no deny of the plan applied; an actor without roles, rights or relations is never allowed.
2. The fast and the explained paths agree.
3. Arbitrary event data never turns a deny into an allow: the runtime decides on the stored instance, and
   a payload can only add refusals (explain and fire, on the four shipped matrices' resources).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from regelwerk.actors import Actor
from regelwerk.bundle import load_bundle
from regelwerk.compiler import CompiledBundle, compile_bundle
from regelwerk.errors import RegelwerkError
from regelwerk.permissions import MemoryRelationships, PermissionMatrix
from regelwerk.permissions.policytests import rule_ids
from regelwerk.registry import load_registry
from regelwerk.runtime import Engine

ROOT = Path(__file__).resolve().parent.parent
PEOPLE = ["eva", "mark", "lotte", "bea", "pim", "wendy", "mo", "x", ""]
ORGS = ["sales", "zorg-bv", "zorg-bv-utrecht", "acme"]
KINDS = ["reports_to", "member_of", "represents", "consent", "has_role", "has_right", "authored"]
START = datetime(2025, 10, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def bundle() -> CompiledBundle:
    return compile_bundle(load_bundle(ROOT / "definitions" / "standard"), load_registry())


def _matrices(bundle: CompiledBundle) -> dict[str, PermissionMatrix]:
    return dict(bundle.of_kind("PermissionMatrix"))


values = st.one_of(st.none(), st.sampled_from(PEOPLE + ORGS + ["approved", "entered", "requested"]),
                   st.integers(-1, 200), st.booleans(), st.lists(st.sampled_from(PEOPLE), max_size=3))
field_names = st.sampled_from(["subject", "author", "employee", "employer", "department", "responsible_manager",
                               "state", "status", "role", "team", "vacancy_team", "id", "employer_status"])
resources = st.dictionaries(field_names, values, max_size=6)
moments = st.integers(0, 24 * 400).map(lambda h: START + timedelta(hours=h, seconds=h % 7))
dates = st.one_of(st.none(), st.dates(date(2025, 9, 1), date(2026, 12, 31)))


@st.composite
def relation_sets(draw: Any, roles: list[str], rights: list[str]) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(KINDS))
        subject = draw(st.sampled_from(PEOPLE[:-1]))
        target = {"has_role": roles, "has_right": rights}.get(kind) or PEOPLE[:-1] + ORGS
        start, end = draw(dates), draw(dates)
        if start and end and end < start:
            start, end = end, start
        if kind in ("reports_to", "authored"):  # current-state: a window on them is refused (ended with unrelate)
            start = end = None
        out.append({"kind": kind, "subject": subject, "object": draw(st.sampled_from(target)),
                    "from": start, "until": end})
    return out


def _grants_by_id(matrix: PermissionMatrix) -> dict[str, Any]:
    rules = {r.id: r for r in matrix.grants}
    for right in matrix.rights.values():
        rules.update({r.id: r for r in right.grants})
    return rules


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_no_allow_without_a_grant_that_names_it(bundle: CompiledBundle, data: Any) -> None:
    matrices = _matrices(bundle)
    matrix = matrices[data.draw(st.sampled_from(sorted(matrices)))]
    role_pool = sorted(matrix.roles) + ["ghost"]
    right_pool = sorted(matrix.rights) + ["nonsense"]
    actor = Actor(data.draw(st.sampled_from(PEOPLE[:-1])),
                  tuple(data.draw(st.lists(st.sampled_from(role_pool), max_size=2, unique=True))),
                  data.draw(st.dictionaries(st.sampled_from(["employer_status", "department"]), values, max_size=2)))
    resource_type = data.draw(st.sampled_from(sorted(matrix.resources) + ["unknown_type"]))
    known = matrix.resources.get(resource_type)
    action = data.draw(st.sampled_from((list(known.actions) if known else []) + ["fly", "*"]))
    groups = list(known.field_groups) if known else []
    field_group = data.draw(st.one_of(st.none(), st.sampled_from(groups + ["nope"])))
    resource = data.draw(resources)
    relation_items = data.draw(relation_sets(role_pool, right_pool))
    rel = MemoryRelationships(relation_items)
    now = data.draw(moments)
    context = data.draw(st.one_of(st.just({}), st.just({"company_profile": {"support_access": True}})))

    fast = matrix.decide(actor, action, resource_type, resource, rel, now, context, field_group=field_group)
    full = matrix.decide(actor, action, resource_type, resource, rel, now, context, field_group=field_group,
                         explain=True)
    assert (fast.allowed, fast.by) == (full.allowed, full.by)
    if not full.allowed:
        return
    grants = _grants_by_id(matrix)
    assert full.by in grants, f"allowed by {full.by!r}, which is not a grant"
    rule = grants[full.by]
    assert rule.resource == resource_type and (action in rule.actions or "*" in rule.actions)
    assert action in matrix.resources[resource_type].actions  # never an action the resource does not have
    if not rule.right:  # a role grant: the actor holds one of its roles (directly, by has_role, inherited)
        held = set(actor.roles) | set(rel.roles_of(actor.id, now))
        effective = set(matrix._expand(tuple(held)))
        assert "*" in rule.roles or effective & set(rule.roles)
    else:  # a right: held by a role, a has_right fact or the matrix's user rights
        by_roles = {r for role in matrix._expand(tuple(set(actor.roles) | set(rel.roles_of(actor.id, now))))
                    for r in matrix.roles[role].rights}
        by_user = {u.right for u in matrix.user_rights if u.user == actor.id and u.active(now)}
        assert rule.right in by_roles | set(rel.rights_of(actor.id, now)) | by_user
    denies = {r for r, effect in rule_ids(matrix).items() if effect == "deny"}
    assert not [c for c in full.explain["considered"] if c["rule"] in denies and c["applies"]]
    if not actor.roles and not any(r["subject"] == actor.id and r["kind"] in ("has_role", "has_right")
                                   for r in relation_items) and not matrix.user_rights:
        pytest.fail("an actor without roles, rights or role facts was allowed")


# --- the runtime: event data never turns a deny into an allow ----------------------------------------------

WORKFLOW_CASES = {
    # workflow: (matrix, stored data, instance state reached by events as the system)
    "declaration": ("declaration", {"employee": "anna", "amount": 20}),
    "training_record": ("step2hr", {"subject": "eva", "title": "BHV"}),
}


@pytest.fixture(scope="module")
def engines(bundle: CompiledBundle) -> dict[str, Any]:
    from regelwerk.permissions.policies import UnsafeAllowAll

    made = {}
    for workflow, (matrix, stored) in WORKFLOW_CASES.items():
        seeding = Engine(bundle, store="memory://", clock=lambda: START, permissions=UnsafeAllowAll())
        seeding.start(workflow, stored, "seed", "i1")
        engine = Engine(bundle, store=seeding.store, clock=lambda: START, permissions=matrix)
        rel = engine.permissions.relationships  # type: ignore[attr-defined]
        for person, manager in (("anna", "bert"), ("eva", "mark"), ("mark", "lotte")):
            rel.relate("reports_to", person, manager)
        made[workflow] = engine
    return made


ACTOR_IDS = ["anna", "bert", "carl", "eva", "mark", "lotte", "petra", "system"]
payloads = st.dictionaries(
    st.sampled_from(["subject", "employee", "author", "state", "status", "id", "created_by", "data", "amount",
                     "title", "reason", "rating", "receipt"]),
    st.one_of(st.sampled_from(ACTOR_IDS + ["nobody", "approved", "entered"]), st.none(), st.integers(1, 5),
              st.booleans()), min_size=1, max_size=4)
actors = st.builds(lambda who, roles: Actor(who, tuple(roles)), st.sampled_from(ACTOR_IDS),
                   st.lists(st.sampled_from(["medewerker", "leidinggevende", "directie", "beheerder", "system"]),
                            max_size=2, unique=True))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(workflow=st.sampled_from(sorted(WORKFLOW_CASES)), actor=actors, payload=payloads)
def test_event_data_never_turns_a_deny_into_an_allow(engines: dict[str, Any], workflow: str, actor: Actor,
                                                     payload: dict[str, Any]) -> None:
    engine = engines[workflow]
    record = engine.get("i1")
    for option in engine.available_events("i1", actor):
        plain = engine.explain("i1", option.event, actor)
        attacked = engine.explain("i1", option.event, actor, payload)
        for before, after in zip(plain["candidates"], attacked["candidates"], strict=True):
            if "permission" in before and not before["permission"]["allowed"]:
                assert not after["permission"]["allowed"], (option.event, payload)
        if not any(c.get("permission", {}).get("allowed", True) for c in plain["candidates"]):
            with pytest.raises(RegelwerkError):
                engine.fire("i1", option.event, actor, payload)
    assert engine.get("i1").version == record.version  # nothing a refused payload did stuck
