"""The store contract against every shipped store: SQLite file, PostgreSQL, memory."""

from __future__ import annotations

import pytest
from regelwerk.store.base import Store
from regelwerk.store.contract import StoreContract
from regelwerk.store.memory import MemoryStore
from regelwerk.store.sql import SqlStore


class TestMemoryStore(StoreContract):
    def make_store(self) -> Store:
        return MemoryStore()


class TestSqliteStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _url(self, sqlite_url: str) -> None:
        self.url = sqlite_url

    def make_store(self) -> Store:
        return SqlStore(self.url)


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _url(self, pg_url: str) -> None:
        self.url = pg_url

    def make_store(self) -> Store:
        return SqlStore(self.url)


def test_every_store_fits_the_protocol(sqlite_url: str) -> None:
    for store in (MemoryStore(), SqlStore(sqlite_url)):
        assert isinstance(store, Store)
        store.close()


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    store = SqlStore(sqlite_url)
    with store.read() as tx:
        assert tx.connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert tx.connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    store.close()


def test_a_pack_row_with_an_unknown_column_is_a_typed_error_naming_it(sqlite_url: str) -> None:
    from datetime import UTC, datetime

    from regelwerk.errors import UsageError

    store = SqlStore(sqlite_url)
    row = {"kind": "Workflow", "name": "a", "version": "v1", "source": {}, "created_at": datetime.now(UTC)}
    with store.transaction() as tx:
        tx.rows("rw_definitions").insert(row)
        with pytest.raises(UsageError, match=r"no column.*colour"):
            tx.rows("rw_definitions").insert({**row, "name": "b", "colour": "red"})
        with pytest.raises(UsageError, match=r"no column.*colour"):
            tx.rows("rw_definitions").update({"name": "a"}, {"colour": "red"})
    with store.read() as tx:
        assert [r["name"] for r in tx.rows("rw_definitions").find()] == ["a"]
    store.close()


def test_claimed_timers_share_their_state_event_status_and_due_moment(sqlite_url: str) -> None:
    """A tick's timer service keeps what it fired for the whole call (a burst: hundreds of thousands of timers):
    the few names and the due moment a batch of claimed timers repeat are one object each, not one per row."""
    from datetime import timedelta

    from regelwerk.store.contract import T0, _record
    from regelwerk.store.records import TimerRecord

    store = SqlStore(sqlite_url)
    with store.transaction() as tx:
        for i in range(5):
            tx.insert(_record(f"i{i}"))
            tx.add_timer(TimerRecord(f"i{i}", "submitted", "remind", T0))
    with store.transaction() as tx:
        claimed = tx.claim_due_timers(T0 + timedelta(days=1), 10)
    assert [t.instance_id for t in claimed] == [f"i{i}" for i in range(5)]
    assert claimed[0].due_at == T0
    for field in ("state", "event", "status", "due_at"):
        assert len({id(getattr(t, field)) for t in claimed}) == 1, field
