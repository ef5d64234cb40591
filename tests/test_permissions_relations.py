"""Relationships contract (memory, SQLite, PostgreSQL), the closure index, invitations, the adapter's audit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from regelwerk.actors import Actor
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.errors import PermissionDenied
from regelwerk.permissions import MatrixPermissions, MemoryRelationships, RelationIndex, Relationships
from regelwerk.permissions.invitations import (
    InvitationExpired,
    InvitationSuperseded,
    InvitationUsed,
    MemoryInvitations,
    SqlInvitations,
    UnknownInvitation,
)
from regelwerk.registry import load_registry

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _sql(url: str) -> Any:
    from regelwerk.permissions.sql import SqlRelationships

    return SqlRelationships(url, create=True)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryRelationships()
        return
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    rel = _sql(url)
    yield rel
    rel.close()


class TestRelationshipsContract:
    """Every Relationships store behaves the same."""

    def test_is_a_relationships_port(self, store: Any) -> None:
        assert isinstance(store, Relationships)

    def test_reporting_line_and_closure(self, store: Any) -> None:
        for person, manager in [("b", "a"), ("c", "b"), ("d", "c"), ("e", "c")]:
            store.relate("reports_to", person, manager)
        assert store.managers_of("d") == {"c"}
        assert store.ancestors("d") == {"a", "b", "c"}
        store.unrelate("reports_to", "c", "b", at=NOW)
        assert store.ancestors("d") == {"c"} and store.ancestors("e") == {"c"}
        store.relate("reports_to", "c", "x")
        store.relate("reports_to", "x", "a")
        assert store.ancestors("e") == {"c", "x", "a"}

    def test_consent_window_inclusive_end_and_withdrawal(self, store: Any) -> None:
        link = store.relate("consent", "pim", "mo", valid_from="2026-03-01", valid_to="2026-03-31", by="pim", now=NOW)
        assert link.valid_to == date(2026, 3, 31)
        # dates count in the organisation's zone (Europe/Amsterdam, summer time from 29 March)
        assert store.consent_link("pim", ["mo"], datetime(2026, 3, 31, 21, 59, 59, tzinfo=UTC)) is not None
        assert store.consent_link("pim", ["mo"], datetime(2026, 3, 31, 22, 0, tzinfo=UTC)) is None
        assert store.consent_link("pim", ["mo"], datetime(2026, 2, 28, 22, 59, 59, tzinfo=UTC)) is None
        assert store.consent_link("pim", ["mo"], datetime(2026, 2, 28, 23, 0, tzinfo=UTC)) is not None
        ended = store.unrelate("consent", "pim", "mo", at=datetime(2026, 3, 10, tzinfo=UTC), by="pim")
        assert len(ended) == 1 and ended[0].withdrawn_by == "pim"
        assert store.consent_link("pim", ["mo"], datetime(2026, 3, 9, tzinfo=UTC)) is not None
        assert store.consent_link("pim", ["mo"], datetime(2026, 3, 10, tzinfo=UTC)) is None
        assert "withdrawn" in store.consent_links("pim", "mo")[0].why_inactive(datetime(2026, 3, 11, tzinfo=UTC))

    def test_roles_rights_groups(self, store: Any) -> None:
        store.relate("has_right", "u", "r1", valid_to="2026-03-31")
        store.relate("has_role", "u", "admin")
        store.relate("member_of", "u", "sales")
        store.relate("represents", "w", "org")
        assert store.rights_of("u", NOW) == ("r1",)
        assert store.rights_of("u", datetime(2026, 3, 31, 21, 59, 59, tzinfo=UTC)) == ("r1",)
        assert store.rights_of("u", datetime(2026, 3, 31, 22, 0, tzinfo=UTC)) == ()
        assert store.roles_of("u", NOW) == ("admin",)
        assert store.groups_of("u", NOW) == {"sales"}
        assert store.represented_by("w", NOW) == {"org"}
        assert [r.kind for r in store.relations(subject="u")] == ["has_right", "has_role", "member_of"]

    def test_rejects_an_inverted_window(self, store: Any) -> None:
        with pytest.raises(ValueError, match="before"):
            store.relate("consent", "a", "b", valid_from="2026-04-01", valid_to="2026-03-01")


@pytest.mark.parametrize("which", ["sqlite", "postgresql"])
def test_sql_store_survives_a_restart(which: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("sqlite_url" if which == "sqlite" else "pg_url")
    first = _sql(url)
    first.relate("reports_to", "b", "a")
    first.relate("reports_to", "c", "b")
    first.relate("consent", "p", "m", valid_to="2026-12-31", now=NOW)
    first.unrelate("consent", "p", "m", at=NOW + timedelta(days=1))
    first.close()
    again = _sql(url)
    assert again.ancestors("c") == {"a", "b"}
    link = again.consent_links("p", "m")[0]
    assert link.withdrawn_at == NOW + timedelta(days=1) and link.created_at == NOW
    again.close()


def test_an_index_loaded_from_sql_holds_each_repeated_value_once(sqlite_url: str) -> None:
    """The index lives as long as the process (a simulated year of 100,000 people, a server): the rows of one
    import repeat their kind, manager, author and creation moment, and each is one object, not one per row;
    the managers of a person are a tuple, not a dict per person (what made the index twice as large)."""
    first = _sql(url=sqlite_url)
    for i in range(50):
        first.relate("reports_to", f"p{i}", "boss" if i % 2 else "chief", by="import", now=NOW)
    first.relate("reports_to", "p1", "chief", by="import", now=NOW)  # a second manager for p1
    first.close()
    again = _sql(url=sqlite_url)
    rows = again.relations("reports_to")
    assert len(rows) == 51
    for field in ("kind", "created_by", "created_at", "withdrawn_by"):
        assert len({id(getattr(r, field)) for r in rows}) == 1, field
    assert len({id(r.object) for r in rows}) == 2
    assert again.index._managers["p3"] == ("boss",)
    assert again.managers_of("p1") == {"boss", "chief"} and again.ancestors("p1") == {"boss", "chief"}
    again.unrelate("reports_to", "p1", "chief", at=NOW + timedelta(days=1))
    assert again.managers_of("p1") == {"boss"} and again.ancestors("p1") == {"boss"}
    assert again.relations("reports_to", "p1")[0].created_at == NOW
    again.close()


def test_closure_updates_only_the_moved_subtree() -> None:
    rel = MemoryRelationships()
    index: RelationIndex = rel.index
    for i in range(1, 200):
        rel.relate("reports_to", f"p{i}", f"p{(i - 1) // 3}")
    before = index.recomputed
    rel.relate("reports_to", "p150", "p1")  # a second manager for one leaf
    assert index.recomputed - before == 1
    assert "p1" in rel.ancestors("p150") and "p0" in rel.ancestors("p150")


def test_cycles_in_the_data_do_not_hang() -> None:
    rel = MemoryRelationships([{"kind": "reports_to", "subject": "a", "object": "b"},
                               {"kind": "reports_to", "subject": "b", "object": "a"}])
    assert "b" in rel.ancestors("a")


# --- invitations ----------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def invitations(request: pytest.FixtureRequest) -> Any:
    tokens = iter(f"t{i}" for i in range(100))
    if request.param == "memory":
        return MemoryInvitations("PT48H", token_factory=lambda: next(tokens))
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return SqlInvitations(url, "PT48H", token_factory=lambda: next(tokens), create=True)


def test_invitation_lifecycle(invitations: Any) -> None:
    first = invitations.invite("jan@example.nl", "recruiter", "acme", "ahmed", NOW)
    assert first.expires_at == NOW + timedelta(hours=48) and first.token == "t0"
    assert invitations.accept("t0", NOW + timedelta(hours=47, minutes=59)).status == "used"
    with pytest.raises(InvitationUsed):
        invitations.accept("t0", NOW + timedelta(hours=48))
    second = invitations.invite("piet@example.nl", "recruiter", "acme", "ahmed", NOW)
    with pytest.raises(InvitationExpired) as info:
        invitations.accept(second.token, NOW + timedelta(hours=48))
    assert info.value.to_dict()["error"] == "invitation_expired" and "expires_at" in info.value.to_dict()
    third = invitations.resend(second.id, "ahmed", NOW + timedelta(hours=50))
    with pytest.raises(InvitationSuperseded):
        invitations.accept(second.token, NOW + timedelta(hours=51))
    assert invitations.accept(third.token, NOW + timedelta(hours=51)).email == "piet@example.nl"
    with pytest.raises(UnknownInvitation):
        invitations.accept("nope", NOW)


# --- the adapter -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled() -> Any:
    return compile_bundle(load_bundle(ROOT / "definitions" / "standard" / "permissions"),
                          load_registry(use_entry_points=False))


def test_adapter_audits_denied_writes_only(compiled: Any) -> None:
    rel = MemoryRelationships([{"kind": "reports_to", "subject": "eva", "object": "mark"}])
    records: list[Any] = []
    port = MatrixPermissions(compiled, rel, "step2hr", audit=records.append, clock=lambda: NOW)
    note = {"id": "n1", "subject": "eva", "author": "mark"}
    assert not port.check("eva", "read", "manager_log", note).allowed  # a denied read: not audited
    hanna = Actor("hanna", ("beheerder",))
    decision = port.check(hanna, "write", "manager_log", note, {"instance_id": "i-1"})
    assert not decision.allowed and decision.explain["considered"]
    assert len(records) == 1
    assert records[0]["actor"] == "hanna" and records[0]["detail"]["by"] == "manager_log_only_author_edits"
    assert records[0]["instance_id"] == "i-1" and records[0]["at"] == NOW
    with pytest.raises(PermissionDenied) as info:
        port.require(hanna, "delete", "manager_log", note)
    assert info.value.to_dict()["explain"]["by"] == "manager_log_only_author_edits"


def test_store_audit_writes_to_the_workflow_store(compiled: Any) -> None:
    memory = pytest.importorskip("regelwerk.store.memory")
    from regelwerk.permissions import store_audit

    store = memory.MemoryStore()
    port = MatrixPermissions(compiled, MemoryRelationships(), "step2hr", audit=store_audit(store), clock=lambda: NOW)
    port.check(Actor("sam", ("medewerker",)), "create", "vacancy", {"id": "v1"})
    with store.read() as tx:
        rows = tx.audit()
    assert [(r.actor, r.action, r.detail["resource_type"]) for r in rows] == [("sam", "permission.denied", "vacancy")]


def test_link_is_the_professionals_initiative(compiled: Any) -> None:
    from regelwerk_packs.registerplein import remove_professional

    rel = MemoryRelationships([{"kind": "represents", "subject": "wendy", "object": "zorg-bv"},
                               {"kind": "member_of", "subject": "zorg-bv-utrecht", "object": "zorg-bv"},
                               {"kind": "member_of", "subject": "mo", "object": "zorg-bv-utrecht"}])
    port = MatrixPermissions(compiled, rel, "registerplein", clock=lambda: NOW)
    wendy = Actor("wendy", ("employer",), {"employer_status": "approved"})
    with pytest.raises(PermissionDenied):
        port.link(wendy, "pim", "zorg-bv")
    assert port.audited[-1]["detail"]["by"] == "link_initiative_is_professionals"
    pim = Actor("pim", ("professional",))
    port.link(pim, "pim", "zorg-bv")
    port.link(pim, "pim", "mo", valid_to="2026-12-31")
    assert port.check("mo", "read", "dossier", {"subject": "pim"}).allowed is False  # mo holds no role here
    assert port.check(Actor("mo", ("manager",)), "read", "dossier", {"subject": "pim"}).allowed
    ended = remove_professional(port, wendy, "pim", "zorg-bv", NOW)
    assert sorted(r.object for r in ended) == ["mo", "zorg-bv"]
    assert not port.check(Actor("mo", ("manager",)), "read", "dossier", {"subject": "pim"}).allowed


def test_which_branches_belong_to_the_organisation_is_a_relation(compiled: Any) -> None:
    """No id prefix: a branch counts when the store says it is (transitively) member_of the organisation."""
    from regelwerk_packs.registerplein import remove_professional

    rel = MemoryRelationships([
        {"kind": "represents", "subject": "wendy", "object": "zorg-bv"},
        {"kind": "member_of", "subject": "regio-oost", "object": "zorg-bv"},
        {"kind": "member_of", "subject": "vestiging-deventer", "object": "regio-oost"},  # nested, other name
        {"kind": "member_of", "subject": "max", "object": "vestiging-deventer"},
        {"kind": "member_of", "subject": "zorg-bv-nep", "object": "ander-bv"},  # the prefix lies
        {"kind": "member_of", "subject": "nina", "object": "zorg-bv-nep"},
    ])
    port = MatrixPermissions(compiled, rel, "registerplein", clock=lambda: NOW)
    pim = Actor("pim", ("professional",))
    for target in ("zorg-bv", "max", "nina"):
        port.link(pim, "pim", target)
    ended = remove_professional(port, Actor("wendy", ("employer",), {"employer_status": "approved"}), "pim",
                                "zorg-bv", NOW)
    assert sorted(r.object for r in ended) == ["max", "zorg-bv"]
    assert not port.check(Actor("max", ("manager",)), "read", "dossier", {"subject": "pim"}).allowed
    assert port.check(Actor("nina", ("manager",)), "read", "dossier", {"subject": "pim"}).allowed


def test_closure_index_stays_exact_through_moves_with_shared_sets() -> None:
    """Direct reports of one manager share one ancestor set; every move (and a cycle) keeps each set exact."""
    import random
    from datetime import UTC, datetime

    from regelwerk.permissions import MemoryRelationships

    rnd = random.Random(11)
    at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    people = [f"p{i}" for i in range(120)]
    store = MemoryRelationships()
    manager: dict[str, str] = {}
    for i, person in enumerate(people[1:], 1):
        manager[person] = people[rnd.randrange(0, max(1, i // 3))]
        store.relate("reports_to", person, manager[person])

    def naive(person: str) -> set[str]:
        seen: set[str] = set()
        todo = [m for s, m in manager.items() if s == person]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            todo.extend(m for s, m in manager.items() if s == current)
        seen.discard(person)
        return seen

    for step in range(60):
        mover = rnd.choice(people[1:])
        target = rnd.choice(people)
        if target == mover:
            continue
        store.unrelate("reports_to", mover, manager[mover], at=at)
        manager[mover] = target  # may make a cycle: the index must stop, not loop, and stay exact elsewhere
        store.relate("reports_to", mover, target)
        for person in people:
            assert set(store.ancestors(person)) == naive(person), (step, person)
    siblings = [p for p in people if manager.get(p) == manager[people[-1]]]
    if len(siblings) > 1:  # the same object, not equal copies
        assert len({id(store.ancestors(p)) for p in siblings if people[-1] not in naive(p)}) <= 2
