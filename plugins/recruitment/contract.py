"""The candidate-store contract: one test class every ``CandidateStore`` implementation must pass.

Subclass it in a test module and implement ``make_store`` (a fresh core ``Store`` with the pack's tables,
whose transactions give a :class:`~regelwerk_packs.recruitment.ports.CandidateStore` through
:func:`~regelwerk_packs.recruitment.ports.candidate_store`)::

    class TestMyCandidateStore(CandidateStoreContract):
        def make_store(self):
            return MyStore(...)

Rows are seeded through the core port (``tx.rows``), so the suite needs no SQL. The retention cases use one
policy of three rules (afgewezen after 4 weeks; with consent a year from consent, renewal asked a month
before; everyone else two years after applying) and candidates on each side of every boundary.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from regelwerk.conditions import Duration
from regelwerk.store.base import Store
from regelwerk_packs.recruitment.model import RetentionPolicy, RetentionRule
from regelwerk_packs.recruitment.ports import CandidateStore, RetentionLogRow, candidate_store

__all__ = ["CandidateStoreContract"]

NOW = datetime(2026, 6, 1, 12, 0)
"""Naive UTC, as the pack's tables store time."""

REJECTED = RetentionRule("afgewezen", "Afgewezen", ("rejected",), (), None, Duration(weeks=4, text="P4W"))
CONSENT = RetentionRule("toestemming", "Met toestemming", (), (), True, Duration(years=1, text="P1Y"),
                        counts_from="consent", renew_before=Duration(months=1, text="P1M"))
REST = RetentionRule("overig", "Overig", (), (), None, Duration(years=2, text="P2Y"), counts_from="applied")
POLICY = RetentionPolicy("avg", "AVG", (REJECTED, CONSENT, REST))
YEAR = NOW.replace(year=NOW.year - 1) - NOW  # a calendar year back, as Duration(years=1) counts


class _Boom(Exception):
    pass


def _candidate(cid: str, *, vacancy: str = "v1", group: str = "in_progress", consent: bool = False,
               status_since: datetime = NOW, applied_at: datetime = NOW, consent_at: datetime | None = None,
               renewal_requested_at: datetime | None = None) -> dict[str, Any]:
    return {"id": cid, "vacancy_id": vacancy, "instance_id": f"cand-{cid}", "first_name": cid.upper(),
            "last_name": "Test", "email": f"{cid}@example.nl", "phone": None, "details": {}, "source": "web",
            "status": group, "status_group": group, "archived": False, "status_since": status_since,
            "applied_at": applied_at, "consent": consent, "consent_at": consent_at,
            "renewal_requested_at": renewal_requested_at}


def _vacancy(vid: str) -> dict[str, Any]:
    return {"id": vid, "title": f"Vacature {vid}", "function": "kok", "department": "keuken", "manager": "mo",
            "deadline": None, "entity": None, "workflow": "standard", "templates": {}, "team": ["mo"],
            "status": "open", "opened_at": NOW, "opened_by": "bea"}


SEEDED = [
    # afgewezen 5 weeks ago: due under the first rule
    _candidate("c1", group="rejected", status_since=NOW - timedelta(weeks=5)),
    # afgewezen 2 weeks ago, applied 3 years ago: the first rule decides (not due), the last never sees it
    _candidate("c2", group="rejected", status_since=NOW - timedelta(weeks=2), applied_at=NOW - 3 * timedelta(365)),
    # afgewezen with fresh consent: the first rule still decides
    _candidate("c3", vacancy="v2", group="rejected", consent=True, status_since=NOW - timedelta(weeks=5),
               consent_at=NOW - timedelta(weeks=1)),
    # consent a year and a day ago: due under the consent rule
    _candidate("c4", consent=True, consent_at=NOW + YEAR - timedelta(days=1), applied_at=NOW - timedelta(days=800)),
    # consent ends in 10 days, not asked: renewal
    _candidate("c5", vacancy="v2", consent=True, consent_at=NOW + YEAR + timedelta(days=10)),
    # consent ends in 10 days, asked after it was given: no renewal
    _candidate("c6", consent=True, consent_at=NOW + YEAR + timedelta(days=10),
               renewal_requested_at=NOW - timedelta(days=5)),
    # consent without a date counts from the application (ends in 5 days); asked before that: renewal
    _candidate("c7", consent=True, applied_at=NOW + YEAR + timedelta(days=5), renewal_requested_at=NOW + YEAR),
    # no consent, applied 3 years ago: due under the last rule
    _candidate("c8", applied_at=NOW - 3 * timedelta(365)),
    # no consent, applied a year ago: kept
    _candidate("c9", group="new", applied_at=NOW + YEAR),
]


class CandidateStoreContract:
    """Behaviour every candidate store must show (lists, aggregates, retention rules, chunks, erasure)."""

    def make_store(self) -> Store:
        """Return a fresh, empty store (the pack's tables created)."""
        raise NotImplementedError

    def _open(self) -> Iterator[Store]:
        store = self.make_store()
        store.setup()
        try:
            yield store
        finally:
            store.close()

    def _store(self, seeded: bool = True) -> Store:
        gen = self._open()
        store = next(gen)
        self._cleanups = [*getattr(self, "_cleanups", []), gen]
        if seeded:
            with store.transaction() as tx:
                for vid in ("v1", "v2"):
                    tx.rows("rw_vacancies").insert(_vacancy(vid))
                for row in SEEDED:
                    tx.rows("rw_candidates").insert(row)
                for cid in ("c1", "c2"):
                    tx.rows("rw_questionnaires").insert({"id": f"q-{cid}", "candidate_id": cid, "vacancy_id": "v1",
                                                         "competencies": ["koken"], "sent_at": NOW})
        return store

    def teardown_method(self, method: Any = None) -> None:
        """Close the stores a test opened."""
        for gen in getattr(self, "_cleanups", []):
            for _ in gen:
                pass
        self._cleanups = []

    @staticmethod
    def _port(tx: Any) -> CandidateStore:
        found = candidate_store(tx)
        assert found is not None, "this store gives no CandidateStore"
        assert isinstance(found, CandidateStore)
        return found

    # --- lists and aggregates ------------------------------------------------------------------

    def test_candidates_of_a_vacancy_in_order_of_application(self) -> None:
        store = self._store()
        with store.read() as tx:
            rows = self._port(tx).candidates_of_vacancy("v1")
            assert self._port(tx).candidates_of_vacancy("nope") == []
        # by applied_at, then id (c2 and c8 applied at the same moment)
        expected = sorted((r for r in SEEDED if r["vacancy_id"] == "v1"), key=lambda r: (r["applied_at"], r["id"]))
        assert [r["id"] for r in rows] == [r["id"] for r in expected]
        assert rows[0]["email"] == f"{rows[0]['id']}@example.nl" and rows[0]["details"] == {}

    def test_candidates_by_id_gives_those_that_exist_by_id(self) -> None:
        store = self._store()
        with store.read() as tx:
            rows = self._port(tx).candidates_by_id(["c8", "gone", "c2"])
            assert self._port(tx).candidates_by_id([]) == []
        assert [r["id"] for r in rows] == ["c2", "c8"]
        assert rows[1]["vacancy_id"] == "v1" and rows[1]["consent"] is False

    def test_vacancies_by_id_and_their_count(self) -> None:
        store = self._store()
        with store.read() as tx:
            port = self._port(tx)
            found = port.vacancies_by_id(["v2", "v9"])
            assert port.vacancy_count() == 2
        assert list(found) == ["v2"] and found["v2"]["team"] == ["mo"] and found["v2"]["title"] == "Vacature v2"
        with store.transaction() as tx:  # locked for update: the same rows
            assert self._port(tx).vacancies_by_id(["v9", "v2"], lock=True) == found

    def test_candidate_with_vacancy_in_one_read(self) -> None:
        store = self._store()
        with store.read() as tx:
            port = self._port(tx)
            found = port.candidate_with_vacancy("c2")
            assert port.candidate_with_vacancy("gone") is None
            tx.rows("rw_candidates").insert({**SEEDED[0], "id": "orphan", "instance_id": "cand-orphan",
                                             "vacancy_id": "v9"})
            orphan = port.candidate_with_vacancy("orphan")
        assert found is not None
        candidate, vacancy = found
        seeded = next(r for r in SEEDED if r["id"] == "c2")
        assert candidate["id"] == "c2" and candidate["email"] == seeded["email"]
        assert candidate["status"] == seeded["status"] and candidate["details"] == {}
        assert vacancy is not None and vacancy["id"] == seeded["vacancy_id"] == candidate["vacancy_id"]
        assert vacancy["title"] == f"Vacature {vacancy['id']}" and vacancy["status"] == "open"
        assert orphan is not None and orphan[0]["id"] == "orphan" and orphan[1] is None

    def test_candidates_with_vacancies_in_one_read(self) -> None:
        store = self._store()
        with store.read() as tx:
            port = self._port(tx)
            tx.rows("rw_candidates").insert({**SEEDED[0], "id": "orphan", "instance_id": "cand-orphan",
                                             "vacancy_id": "v9"})
            found = port.candidates_with_vacancies(["c2", "gone", "orphan", "c2"])
            one_by_one = {cid: port.candidate_with_vacancy(cid) for cid in ("c2", "orphan")}
            assert port.candidates_with_vacancies([]) == {}
        assert set(found) == {"c2", "orphan"}  # those that exist, each once
        assert found == one_by_one  # the same rows as one read per candidate
        assert found["orphan"][1] is None

    def test_candidates_ahead_tell_whether_a_candidate_is_its_instances_only_row(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            port = self._port(tx)
            plain = port.candidates_with_vacancies(["c1", "c2", "nobody"])
            ahead = port.candidates_ahead(["c1", "c2", "nobody"])
            assert {cid: (c, v) for cid, (c, v, _sole) in ahead.items()} == plain
            assert {cid: sole for cid, (_c, _v, sole) in ahead.items()} == {"c1": True, "c2": True}
            tx.rows("rw_candidates").insert(_candidate("c1-copy") | {"instance_id": "cand-c1"})
            assert port.candidates_ahead(["c1"])["c1"][2] is False

    def test_a_status_is_written_behind_only_where_the_transaction_writes_rows_behind(self) -> None:
        store = self._store()
        with store.transaction() as tx:  # a store's own transaction writes nothing behind: the caller updates now
            port = self._port(tx)
            values = {"status": "offer", "status_group": "in_progress", "archived": False, "status_since": NOW}
            assert port.set_status_behind("cand-c1", values) is False
            assert port.set_status_behind("cand-c1", {"status": "offer"}) is False
            assert port.candidates_by_id(["c1"])[0]["status"] != "offer"

    def test_existing_ids_and_an_application_written_behind_only_where_the_transaction_writes_rows_behind(
            self) -> None:
        from regelwerk_packs.recruitment.ports import APPLICATION_COLUMNS

        store = self._store()
        with store.transaction() as tx:
            port = self._port(tx)
            assert port.existing_ids(["c1", "c2", "nobody", "c1"]) == {"c1", "c2"}
            assert port.existing_ids([]) == set()
            row = {name: value for name, value in _candidate("new").items() if name in APPLICATION_COLUMNS}
            assert set(row) == set(APPLICATION_COLUMNS)
            # a store's own transaction writes nothing behind: the caller inserts now (nothing done here)
            assert port.insert_behind(row) is False
            assert port.insert_behind({**row, "facts": {}}) is False
            assert port.existing_ids(["new"]) == set()

    def test_kept_per_group(self) -> None:
        store = self._store()
        with store.read() as tx:
            groups = {g.group: g for g in self._port(tx).kept_per_group()}
        assert set(groups) == {"rejected", "in_progress", "new"}
        assert (groups["rejected"].candidates, groups["rejected"].with_consent) == (3, 1)
        assert groups["rejected"].oldest_application == NOW - 3 * timedelta(365)
        assert (groups["in_progress"].candidates, groups["in_progress"].with_consent) == (5, 4)
        assert groups["new"].oldest_application == NOW + YEAR

    def test_an_empty_store_has_no_groups(self) -> None:
        store = self._store(seeded=False)
        with store.read() as tx:
            assert self._port(tx).kept_per_group() == []
            assert self._port(tx).vacancy_count() == 0
            assert self._port(tx).retention_deletions() == 0

    # --- retention rules -----------------------------------------------------------------------

    def test_the_first_matching_rule_decides_what_is_due(self) -> None:
        store = self._store()
        with store.read() as tx:
            port = self._port(tx)
            due = {rule.id: port.retention_due(POLICY, rule, NOW) for rule in POLICY.rules}
        assert {k: [r.id for r in v] for k, v in due.items()} == {
            "afgewezen": ["c1", "c3"], "toestemming": ["c4"], "overig": ["c8"]}
        c1 = due["afgewezen"][0]
        assert (c1.instance_id, c1.vacancy_id, c1.status, c1.status_group) == ("cand-c1", "v1", "rejected", "rejected")
        assert c1.retention_start == NOW - timedelta(weeks=5)  # counts from the status change
        assert due["toestemming"][0].retention_start == NOW + YEAR - timedelta(days=1)  # from the consent
        assert due["overig"][0].retention_start == due["overig"][0].applied_at == NOW - 3 * timedelta(365)

    def test_consent_renewal_window_and_asked_once_per_consent(self) -> None:
        store = self._store()
        with store.read() as tx:
            port = self._port(tx)
            renewals = [r.id for r in port.renewal_due(POLICY, CONSENT, NOW)]
            others = port.renewal_due(POLICY, REJECTED, NOW) + port.renewal_due(POLICY, REST, NOW)
            c7 = port.renewal_due(POLICY, CONSENT, NOW, ["c7"])
        assert renewals == ["c5", "c7"]
        assert others == []  # rules without renew_before ask nothing
        assert c7[0].retention_start == NOW + YEAR + timedelta(days=5)  # no consent date: from the application

    def test_a_rule_counting_from_the_vacancys_closing_waits_for_it(self) -> None:
        closing = RetentionRule("na_sluiting", "Na sluiting", ("rejected",), (), None, Duration(weeks=4, text="P4W"),
                                counts_from="vacancy_closed")
        policy = RetentionPolicy("sluiting", "Sluiting", (closing,))
        store = self._store()
        with store.read() as tx:  # both vacancies open: rejected long ago, nobody is due
            assert self._port(tx).retention_due(policy, closing, NOW) == []
        with store.transaction() as tx:
            tx.rows("rw_vacancies").update({"id": "v1"}, {"status": "closed", "closed_at": NOW - timedelta(weeks=4)})
            tx.rows("rw_vacancies").update({"id": "v2"}, {"status": "closed", "closed_at": NOW - timedelta(weeks=3)})
        with store.read() as tx:
            port = self._port(tx)
            due = port.retention_due(policy, closing, NOW)
            later = [r.id for r in port.retention_due(policy, closing, NOW + timedelta(weeks=1))]
            first = [r.id for r in port.next_due(policy, closing, NOW, 10, lock=False)]
        # c1 and c2 (v1, rejected) are due four weeks after v1 closed, however long ago they were rejected;
        # c3 (v2) a week later
        assert [(r.id, r.retention_start) for r in due] == [("c1", NOW - timedelta(weeks=4)),
                                                            ("c2", NOW - timedelta(weeks=4))]
        assert later == ["c1", "c2", "c3"] and sorted(first) == ["c1", "c2"]

    def test_among_limits_to_the_given_ids(self) -> None:
        store = self._store()
        with store.read() as tx:
            port = self._port(tx)
            assert [r.id for r in port.retention_due(POLICY, REJECTED, NOW, ["c3", "c8"])] == ["c3"]
            assert port.retention_due(POLICY, REST, NOW, []) == []

    def test_time_decides_due(self) -> None:
        store = self._store()
        with store.read() as tx:
            port = self._port(tx)
            earlier = [r.id for r in port.retention_due(POLICY, REJECTED, NOW - timedelta(weeks=2))]
            later = [r.id for r in port.retention_due(POLICY, REJECTED, NOW + timedelta(weeks=2, hours=1))]
        assert earlier == []
        assert later == ["c1", "c2", "c3"]

    def test_a_rule_of_another_policy_is_refused(self) -> None:
        store = self._store()
        other = RetentionRule("x", "X", (), (), None, Duration(days=1, text="P1D"))
        with store.read() as tx:
            try:
                self._port(tx).retention_due(POLICY, other, NOW)
            except ValueError as exc:
                assert "'x'" in str(exc)
            else:
                raise AssertionError("a rule outside the policy was accepted")

    # --- the sweep's chunks --------------------------------------------------------------------

    def test_next_due_in_chunks_until_erased(self) -> None:
        store = self._store()
        taken: list[str] = []
        for _ in range(10):
            with store.transaction() as tx:
                port = self._port(tx)
                chunk = port.next_due(POLICY, REJECTED, NOW, 1)
                if not chunk:
                    break
                assert len(chunk) == 1
                assert port.erase([r.id for r in chunk]) == 1
                taken += [r.id for r in chunk]
        assert sorted(taken) == ["c1", "c3"]
        with store.read() as tx:
            port = self._port(tx)
            assert port.candidates_by_id(["c1", "c2", "c3"])[0]["id"] == "c2"
            assert len(port.candidates_by_id(["c1", "c2", "c3"])) == 1
            # the erased candidate's questionnaire went, the kept one's stayed
            assert tx.rows("rw_questionnaires").find(order_by="id") == [
                {"id": "q-c2", "candidate_id": "c2", "vacancy_id": "v1", "competencies": ["koken"], "sent_at": NOW}]
            assert port.next_due(POLICY, REJECTED, NOW, 10) == []

    def test_due_rules_names_the_rules_with_deletions_and_with_renewals(self) -> None:
        store = self._store()
        with store.read() as tx:  # every rule has a deletion due (c1, c3 / c4 / c8); the consent rule asks c5, c7
            assert self._port(tx).due_rules(POLICY, NOW) == (frozenset({0, 1, 2}), frozenset({1}))
        with store.transaction() as tx:
            port = self._port(tx)
            assert port.erase(["c1", "c3", "c8"]) == 3
            assert port.due_rules(POLICY, NOW) == (frozenset({1}), frozenset({1}))
            assert port.mark_renewal_requested(["c5", "c7"], NOW) == 2
            assert port.due_rules(POLICY, NOW) == (frozenset({1}), frozenset())
            assert port.erase(["c4"]) == 1
            assert port.due_rules(POLICY, NOW) == (frozenset(), frozenset())
            assert port.due_rules(RetentionPolicy("none", "None", ()), NOW) == (frozenset(), frozenset())
            # two weeks on, c2's rejection (two weeks old now) has been kept four weeks: due
            assert 0 in port.due_rules(POLICY, NOW + timedelta(weeks=2, hours=1))[0]

    def test_still_due_keeps_what_the_rule_still_deletes_by_id(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            port = self._port(tx)
            found = port.next_due(POLICY, REJECTED, NOW, 5, lock=False)
            tx.lock_instances(sorted(r.instance_id for r in found))
            still = port.still_due(POLICY, REJECTED, NOW, found)
            assert still == port.retention_due(POLICY, REJECTED, NOW, ["c1", "c3"], lock=True)
            assert [r.id for r in still] == ["c1", "c3"]
            assert port.still_due(POLICY, REJECTED, NOW, []) == []

    def test_next_due_respects_the_limit_and_the_rule(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            port = self._port(tx)
            assert {r.id for r in port.next_due(POLICY, REJECTED, NOW, 5)} == {"c1", "c3"}
            assert len(port.next_due(POLICY, REJECTED, NOW, 1)) == 1
            assert [r.id for r in port.next_due(POLICY, REST, NOW, 5)] == ["c8"]

    def test_erase_counts_only_what_existed(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            port = self._port(tx)
            assert port.erase([]) == 0
            assert port.erase(["c8", "gone"]) == 1
            assert port.erase(["c8"]) == 0

    def test_erase_rolls_back_with_the_transaction(self) -> None:
        store = self._store()
        try:
            with store.transaction() as tx:
                assert self._port(tx).erase(["c1", "c2"]) == 2
                raise _Boom
        except _Boom:
            pass
        with store.read() as tx:
            assert [r["id"] for r in self._port(tx).candidates_by_id(["c1", "c2"])] == ["c1", "c2"]
            assert len(tx.rows("rw_questionnaires").find()) == 2

    def test_next_renewals_then_marked_asked(self) -> None:
        store = self._store()
        with store.transaction() as tx:
            port = self._port(tx)
            rows = sorted(port.next_renewals(POLICY, CONSENT, NOW, 10), key=lambda r: r["id"])
            assert port.next_renewals(POLICY, REJECTED, NOW, 10) == []
            assert [r["id"] for r in rows] == ["c5", "c7"]
            assert rows[0]["email"] == "c5@example.nl" and rows[0]["vacancy_id"] == "v2"
            assert rows[0]["retention_start"] == NOW + YEAR + timedelta(days=10)
            assert len(port.next_renewals(POLICY, CONSENT, NOW, 1)) == 1
            assert port.mark_renewal_requested([r["id"] for r in rows], NOW) == 2
            assert port.mark_renewal_requested([], NOW) == 0
        with store.read() as tx:
            port = self._port(tx)
            assert port.renewal_due(POLICY, CONSENT, NOW) == []
            assert port.candidates_by_id(["c5"])[0]["renewal_requested_at"] == NOW

    def test_consent_given_again_is_asked_again_a_year_later(self) -> None:
        store = self._store()
        again = NOW - timedelta(days=2)  # c6 renews two days ago (after it was asked, five days ago)
        with store.transaction() as tx:
            port = self._port(tx)
            assert port.set_consent_at("c6", again) == 1
            assert port.set_consent_at("gone", NOW) == 0
        later = again - YEAR - timedelta(days=10)  # ten days before the new consent ends
        with store.read() as tx:
            port = self._port(tx)
            assert port.candidates_by_id(["c6"])[0]["consent_at"] == again
            assert [r.id for r in port.renewal_due(POLICY, CONSENT, NOW)] == ["c5", "c7"]
            assert [r.id for r in port.renewal_due(POLICY, CONSENT, later)] == ["c6"]

    # --- the anonymous log ---------------------------------------------------------------------

    def test_retention_log_counts_deletions_not_by_hand(self) -> None:
        store = self._store(seeded=False)
        row: RetentionLogRow = {
            "at": NOW, "actor": "system", "action": "retention", "policy": "avg", "rule": "afgewezen",
            "status": "rejected", "status_group": "rejected", "vacancy_id": "v1", "applied_month": "2026-04",
            "kept_days": 40}
        with store.transaction() as tx:
            port = self._port(tx)
            port.log_retention([])
            port.log_retention([row, {**row, "vacancy_id": None}, {**row, "action": "bulk_delete", "rule": "manual"}])
            port.log_retention([{**row, "kept_days": 41}])  # one row: one statement, not an executemany
        with store.read() as tx:
            assert self._port(tx).retention_deletions() == 3
            logged = tx.rows("rw_retention_log").find(order_by="id")
        assert [(r["id"], r["action"], r["vacancy_id"], r["kept_days"]) for r in logged] == [
            (1, "retention", "v1", 40), (2, "retention", None, 40), (3, "bulk_delete", "v1", 40),
            (4, "retention", "v1", 41)]
