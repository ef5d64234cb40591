"""The store contract against every shipped store: SQLite file, PostgreSQL, memory."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


def test_many_updates_write_the_rows_one_update_writes(sql_url: str) -> None:
    """``update_many`` of several instances (on PostgreSQL one statement over arrays, the data sent as JSON text)
    leaves each row as ``update`` leaves it, the data's stored text included; a stale one among them is the error
    and the unit writes none."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from regelwerk.errors import ConflictError
    from regelwerk.store.records import InstanceRecord

    at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    data = {"z": 1, "a": [1.5, {"é": "ß\u2603"}, None, True], "n": 12345678901234567, "s": "x\ny"}
    store = SqlStore(sql_url)
    names = ["one", "many1", "many2", "many3"]
    with store.transaction() as tx:
        for name in names:
            tx.insert(InstanceRecord(name, "w", "v1", "draft", {"old": True}, 1, at, at, "anna"))
    later = datetime(2026, 1, 6, 9, 30, tzinfo=UTC)

    def moved(name: str) -> InstanceRecord:
        return InstanceRecord(name, "w", "v2", "done", data, 2, at, later, "anna", True)

    with store.transaction() as tx:
        tx.update(moved("one"), 1, True, definition_changed=True)
        tx.update_many([(moved(name), 1, True) for name in names[1:]], definition_changed=True)
    with store.read() as tx:
        raw = {row[0]: tuple(row[1:]) for row in tx.connection.execute(sa.text(
            "SELECT id, " + ("CAST(data AS TEXT)" if sql_url.startswith("postgresql") else "data") +
            ", definition_version, state, version, timers_pending, updated_at FROM rw_instances"))}
        assert all(raw[name] == raw["one"] for name in names[1:]), raw
        assert all(tx.get(name) == moved(name) for name in names)
    with pytest.raises(ConflictError) as stale, store.transaction() as tx:
        tx.update_many([(replace(moved("many1"), version=3), 2, False), (replace(moved("many2"), version=3), 1,
                                                                         False)], definition_changed=False)
    assert (stale.value.instance_id, stale.value.expected_version, stale.value.current_version) == ("many2", 1, 2)
    with store.read() as tx:
        assert [r.version for r in map(tx.get, names) if r is not None] == [2, 2, 2, 2]
    store.close()
