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
