"""The Relationships contract against every shipped relationship store: memory, SQLite, PostgreSQL."""

from __future__ import annotations

import pytest
from regelwerk.permissions.contract import RelationshipsContract
from regelwerk.permissions.relations import MemoryRelationships, Relationships
from regelwerk.permissions.sql import SqlRelationships


class TestMemoryRelationships(RelationshipsContract):
    def make_relationships(self) -> Relationships:
        return MemoryRelationships()


class TestStoreOfferedMemoryRelationships(RelationshipsContract):
    def make_relationships(self) -> Relationships:
        from regelwerk.store.memory import MemoryStore

        store = MemoryStore()
        facts: Relationships = store.relationships()
        assert store.relationships() is facts  # one set of facts per store
        return facts


class TestSqliteRelationships(RelationshipsContract):
    @pytest.fixture(autouse=True)
    def _url(self, sqlite_url: str) -> None:
        self.url = sqlite_url

    def make_relationships(self) -> Relationships:
        return SqlRelationships(self.url, create=True)

    def reopen(self, store: Relationships) -> Relationships:
        return SqlRelationships(self.url)


@pytest.mark.postgres
class TestPostgresRelationships(RelationshipsContract):
    @pytest.fixture(autouse=True)
    def _url(self, pg_url: str) -> None:
        self.url = pg_url

    def make_relationships(self) -> Relationships:
        return SqlRelationships(self.url, create=True)

    def reopen(self, store: Relationships) -> Relationships:
        return SqlRelationships(self.url)
