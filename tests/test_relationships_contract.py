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


def test_a_batch_the_database_refuses_half_way_stores_none_of_it(sqlite_url: str) -> None:
    """The database refusing the third fact of a batch (here a trigger; in life a full disk, a lock timeout) leaves
    none of the batch, in the table or in the index: ``POST /v1/relations`` stored the first two, one transaction
    each, and answered with an error."""
    import sqlalchemy as sa
    from regelwerk.permissions.relations import relate_all
    from regelwerk.permissions.sql import RelationStoreError

    store = SqlRelationships(sqlite_url, create=True)
    with store.engine.begin() as conn:
        conn.execute(sa.text("CREATE TRIGGER refuse BEFORE INSERT ON rw_relations WHEN NEW.subject = 'boom' "
                             "BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    facts = [{"kind": "reports_to", "subject": "eva", "object": "mark"},
             {"kind": "member_of", "subject": "eva", "object": "keuken"},
             {"kind": "member_of", "subject": "boom", "object": "keuken"}]
    with pytest.raises(RelationStoreError, match="none was stored"):
        relate_all(store, facts, by="hr")
    assert store.relations() == [] and store.managers_of("eva") == frozenset()
    assert SqlRelationships(sqlite_url).relations() == []
    assert len(relate_all(store, facts[:2], by="hr")) == 2
    assert [r.subject for r in SqlRelationships(sqlite_url).relations()] == ["eva", "eva"]


def test_an_account_whose_authorship_the_database_refuses_makes_no_super_admin(sqlite_url: str) -> None:
    """HROffice's ``create_account`` writes two facts, the creator's Super Admin role and their authorship: the
    database refusing the second left the role stored alone, a Super Admin of an account nothing named."""
    from datetime import UTC, datetime

    import sqlalchemy as sa
    from regelwerk.permissions.sql import RelationStoreError
    from regelwerk_packs.hroffice import create_account

    store = SqlRelationships(sqlite_url, create=True)
    with store.engine.begin() as conn:
        conn.execute(sa.text("CREATE TRIGGER refuse BEFORE INSERT ON rw_relations WHEN NEW.kind = 'authored' "
                             "BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    with pytest.raises(RelationStoreError):
        create_account(store, "eva", "acct-1", datetime(2026, 3, 2, 9, tzinfo=UTC))
    assert store.relations() == [] and SqlRelationships(sqlite_url).relations() == []
