"""The Relationships contract: one test class every relationship store must pass.

Subclass it and implement ``make_relationships`` (and ``reopen`` when the store persists)::

    from regelwerk.permissions.contract import RelationshipsContract

    class TestMyRelationships(RelationshipsContract):
        def make_relationships(self):
            return MyRelationships(...)

pytest collects the inherited ``test_*`` methods; they use only the
:class:`~regelwerk.permissions.relations.Relationships` protocol.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from regelwerk.permissions.relations import NO_EXTRAS, Relationships, relate_all

__all__ = ["RelationshipsContract"]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class RelationshipsContract:
    """Behaviour every relationship store shows: facts, validity windows, withdrawal, the closure index."""

    def make_relationships(self) -> Relationships:
        """A fresh, empty store."""
        raise NotImplementedError

    def reopen(self, store: Relationships) -> Relationships | None:
        """The same facts read back by a new instance (persistent stores); None for memory-only stores."""
        return None

    def _store(self) -> Relationships:
        store = self.make_relationships()
        assert isinstance(store, Relationships)
        return store

    def test_relate_and_list_in_order(self) -> None:
        store = self._store()
        first = store.relate("reports_to", "eva", "mark", by="hr", now=T0)
        store.relate("member_of", "eva", "keuken", valid_from="2026-01-01")
        store.relate("reports_to", "mark", "lotte")
        assert first.kind == "reports_to" and first.created_by == "hr" and first.withdrawn_at is None
        assert [(r.subject, r.object) for r in store.relations("reports_to")] == [("eva", "mark"), ("mark", "lotte")]
        assert [r.object for r in store.relations(subject="eva")] == ["mark", "keuken"]
        assert [r.subject for r in store.relations(object="lotte")] == ["mark"]
        assert store.relations(kind="consent") == []

    def test_the_reporting_line_and_its_closure(self) -> None:
        store = self._store()
        store.relate("reports_to", "eva", "mark")
        store.relate("reports_to", "mark", "lotte")
        store.relate("reports_to", "lotte", "ceo")
        assert store.managers_of("eva") == frozenset({"mark"})
        assert store.ancestors("eva") == frozenset({"mark", "lotte", "ceo"})
        assert store.ancestors("nobody") == frozenset()
        store.unrelate("reports_to", "mark", "lotte", at=T0)
        store.relate("reports_to", "mark", "piet")
        assert store.ancestors("eva") == frozenset({"mark", "piet"})
        assert store.ancestors("lotte") == frozenset({"ceo"})

    def test_validity_windows_are_inclusive_dates(self) -> None:
        store = self._store()
        store.relate("member_of", "eva", "keuken", valid_from="2026-03-01", valid_to=date(2026, 3, 31))
        assert store.groups_of("eva", datetime(2026, 2, 28, 12, tzinfo=UTC)) == frozenset()
        assert store.groups_of("eva", datetime(2026, 3, 31, 21, 30, tzinfo=UTC)) == frozenset({"keuken"})
        # (21:30 UTC is 23:30 on the last day in Europe/Amsterdam, the default organisation zone: dates count there)
        assert store.groups_of("eva", datetime(2026, 4, 1, 8, tzinfo=UTC)) == frozenset()
        try:
            store.relate("member_of", "eva", "bar", valid_from="2026-04-01", valid_to="2026-03-01")
        except ValueError:
            pass
        else:
            raise AssertionError("a window that ends before it starts must be refused")
        assert store.relations(object="bar") == []

    def test_a_window_on_a_current_state_fact_is_refused(self) -> None:
        # reports_to and authored hold until they are ended (unrelate); a valid_to on them was stored and ignored,
        # so a line recorded as ended in 2020 still let the manager read: a store refuses it, storing nothing
        from regelwerk.errors import UsageError

        store = self._store()
        for kind in ("reports_to", "authored"):
            for start, end in ((None, "2020-12-31"), ("2030-01-01", None)):
                window = {"valid_from": start, "valid_to": end}
                try:
                    store.relate(kind, "eva", "mark", valid_from=start, valid_to=end)
                except UsageError:
                    pass
                else:
                    raise AssertionError(f"a window on {kind} must be refused: {window}")
        assert store.relations(subject="eva") == [] and store.ancestors("eva") == frozenset()
        store.relate("member_of", "eva", "keuken", valid_to="2030-01-01")  # other kinds keep their windows

    def test_withdrawal_ends_at_a_moment_and_keeps_the_row(self) -> None:
        store = self._store()
        store.relate("consent", "eva", "bakkerij", valid_from="2026-01-01")
        assert store.consent_link("eva", ["elders", "bakkerij"], T0) is not None
        ended = store.unrelate("consent", "eva", "bakkerij", at=T0, by="eva")
        assert [(r.withdrawn_at, r.withdrawn_by) for r in ended] == [(T0, "eva")]
        assert store.consent_link("eva", ["bakkerij"], T0 - timedelta(seconds=1)) is not None
        assert store.consent_link("eva", ["bakkerij"], T0) is None
        assert [r.withdrawn_at for r in store.consent_links("eva", "bakkerij")] == [T0]
        assert store.unrelate("consent", "eva", "bakkerij", at=T0 + timedelta(days=1)) == []

    def test_roles_rights_representation_and_authorship(self) -> None:
        store = self._store()
        assert store.personal("eva", T0) == NO_EXTRAS
        store.relate("has_role", "eva", "beheerder", valid_from="2026-03-01")
        store.relate("has_right", "eva", "approve_training")
        store.relate("has_role", "eva", "auditor", valid_to="2026-02-01")
        store.relate("represents", "bea", "bakkerij")
        store.relate("authored", "eva", "doc-1")
        assert store.roles_of("eva", T0) == ("beheerder",)
        assert store.rights_of("eva", T0) == ("approve_training",)
        assert store.personal("eva", T0) == (("beheerder",), ("approve_training",))
        assert store.represented_by("bea", T0) == frozenset({"bakkerij"})
        assert store.authored("eva", "doc-1") and not store.authored("eva", "doc-2")

    def test_an_active_task_is_a_personal_role_named_task(self) -> None:
        # has_task facts (the organisation import's Taken) are among a person's roles as task:<task>, which the
        # matrix roles listing the task in 'tasks' hold; only while the task is active
        store = self._store()
        store.relate("has_task", "pia", "praktijkopleider", valid_from="2026-03-01")
        store.relate("has_task", "pia", "bhv", valid_to="2026-02-01")
        store.relate("has_role", "pia", "medewerker")
        assert "pia" in store.personal_holders
        assert store.personal("pia", T0) == (("medewerker", "task:praktijkopleider"), ())
        assert store.roles_of("pia", T0) == ("medewerker",)  # roles_of stays the has_role facts
        store.relate("has_task", "kees", "bhv")
        assert "kees" in store.personal_holders and store.personal("kees", T0) == (("task:bhv",), ())
        store.unrelate("has_task", "kees", "bhv", at=T0)
        assert store.personal("kees", T0 + timedelta(seconds=1)) == NO_EXTRAS

    def test_personal_holders_cover_everyone_with_roles_or_rights(self) -> None:
        # decisions ask personal() only for holders: a holder missing here would lose their own roles
        store = self._store()
        holders = store.personal_holders
        store.relate("has_role", "eva", "beheerder")
        store.relate("has_right", "piet", "approve_training", valid_from="2026-03-01")
        store.relate("reports_to", "kees", "mark")
        assert "eva" in store.personal_holders and "piet" in store.personal_holders
        assert "eva" in holders, "personal_holders must stay current as facts are added"
        for person in ("kees", "mark", "nobody"):
            assert person in store.personal_holders or store.personal(person, T0) == NO_EXTRAS
        again: Any = self.reopen(store)
        if again is not None:
            assert "eva" in again.personal_holders and "piet" in again.personal_holders

    def test_a_batch_is_stored_all_or_none(self) -> None:
        """``relate_all`` (the service's ``POST /v1/relations``): a batch with one fact the store refuses stores none
        of it; a batch it accepts is stored whole, in order."""
        from regelwerk.errors import UsageError

        store = self._store()
        good = [{"kind": "reports_to", "subject": "eva", "object": "mark"},
                {"kind": "member_of", "subject": "eva", "object": "keuken", "valid_from": "2026-01-01"}]
        for bad in ({"kind": "member_of", "subject": "eva", "object": ""},
                    {"kind": "reports_to", "subject": "piet", "object": "mark", "valid_to": "2026-12-31"},
                    {"kind": "member_of", "subject": "eva", "object": "bar", "valid_from": "2026-04-01",
                     "valid_to": "2026-03-01"}):
            try:
                relate_all(store, [*good, bad], by="hr", now=T0)
            except (UsageError, ValueError):
                pass
            else:
                raise AssertionError(f"{bad} must be refused")
            assert store.relations() == [] and store.managers_of("eva") == frozenset()
        added = relate_all(store, good, by="hr", now=T0)
        assert [(r.kind, r.object, r.created_by) for r in added] == [("reports_to", "mark", "hr"),
                                                                     ("member_of", "keuken", "hr")]
        assert [r.id for r in store.relations()] == [r.id for r in added]
        assert store.managers_of("eva") == frozenset({"mark"})
        again = self.reopen(store)
        if again is not None:
            assert [(r.kind, r.object) for r in again.relations()] == [("reports_to", "mark"), ("member_of", "keuken")]

    def test_facts_persist(self) -> None:
        store = self._store()
        store.relate("reports_to", "eva", "mark", now=T0)
        store.relate("consent", "eva", "bakkerij")
        store.unrelate("consent", "eva", "bakkerij", at=T0)
        again: Any = self.reopen(store)
        if again is None:
            return
        assert again.ancestors("eva") == frozenset({"mark"})
        assert [(r.kind, r.withdrawn_at) for r in again.relations(subject="eva")] == [
            ("reports_to", None), ("consent", T0)]
