"""Relationship facts in SQL (SQLite or PostgreSQL), table ``rw_relations``.

Every write goes to the database first and then into an in-memory :class:`RelationIndex`, so a
decision never queries the database and never walks the reporting tree. On open the index is built
from the table (one query; cost measured in benchmarks/bench_permissions.py). A host running several
processes calls :meth:`SqlRelationships.refresh` when another process changed facts (or after its own
change notification).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from typing import Any

import sqlalchemy as sa
from regelwerk.errors import RegelwerkError
from regelwerk.permissions.relations import (
    Relation,
    RelationIndex,
    _IndexedQueries,
    as_date,
    check_fact,
    check_window,
    checked_facts,
    zone,
)
from regelwerk.permissions.tables import rw_relations
from sqlalchemy.exc import SQLAlchemyError

__all__ = ["RelationStoreError", "SqlRelationships"]


class RelationStoreError(RegelwerkError):
    """The relationship store could not read or write (database problem)."""

    code = "relation_store"


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _row(row: Any, zone: tzinfo, shared: dict[Any, Any] | None = None) -> Relation:
    """The relation of a ``rw_relations`` row. ``shared``: the values seen before (of this load), by column, whose
    objects equal values reuse: the index keeps every row for the life of the process, and most rows repeat a kind,
    a manager, an author and a creation moment (an import's rows share all of them), so a 100,000-person index
    holds each of those once instead of one copy per row (about 40 % of its memory)."""
    if shared is None:
        shared = {}

    def one(column: str, value: Any) -> Any:
        if value is None:
            return None
        seen = shared.get(column)
        if seen is None:
            seen = shared[column] = {}
        return seen.setdefault(value, value)

    return Relation(
        int(row["id"]), one("kind", row["kind"]), row["subject"], one("object", row["object"]),
        one("valid_from", row["valid_from"]), one("valid_to", row["valid_to"]),
        one("withdrawn_at", _utc(row["withdrawn_at"])), one("created_by", row["created_by"]),
        one("created_at", _utc(row["created_at"])), one("withdrawn_by", row["withdrawn_by"] or ""), zone=zone,
    )


class SqlRelationships(_IndexedQueries):
    """A :class:`~regelwerk.permissions.relations.Relationships` store on ``rw_relations``."""

    def __init__(self, url_or_engine: str | sa.Engine, create: bool = False,
                 timezone: str | tzinfo | None = None) -> None:
        self.zone = zone(timezone)
        from regelwerk.store.sql import create_sa_engine

        # a URL: the store's connection settings (SQLite's busy timeout and WAL, PostgreSQL's custom plans)
        self.engine = create_sa_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        self._owns_engine = isinstance(url_or_engine, str)
        if create:
            from regelwerk.store.sql import create_missing

            create_missing(self.engine, (rw_relations,))
        self.index = RelationIndex()
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the in-memory index from the table."""
        index = RelationIndex()
        shared: dict[Any, Any] = {}  # equal values of the rows read share one object (see _row)
        try:
            with self.engine.connect() as conn:
                for row in conn.execute(sa.select(rw_relations).order_by(rw_relations.c.id)).mappings():
                    index.add(_row(row, self.zone, shared))
        except SQLAlchemyError as exc:
            raise RelationStoreError(f"cannot load relationship facts: the database refused ({type(exc).__name__})"
                                     ) from exc
        self.index = index
        self._bind()

    def relate(self, kind: str, subject: str, object: str, *, valid_from: Any = None, valid_to: Any = None,
               by: str = "system", now: datetime | None = None) -> Relation:
        """Insert a fact and index it (``UsageError`` for an empty kind or id, see ``check_fact``, and for a window
        on a current-state kind, see ``check_window``)."""
        check_fact(kind, subject, object)
        check_window(kind, valid_from, valid_to)
        start, end = as_date(valid_from), as_date(valid_to)
        if start is not None and end is not None and end < start:
            raise ValueError(f"valid_to {end} is before valid_from {start}")
        values = {"kind": kind, "subject": subject, "object": object, "valid_from": start, "valid_to": end,
                  "withdrawn_at": None, "withdrawn_by": "", "created_by": by, "created_at": _utc(now)}
        try:
            with self.engine.begin() as conn:
                new_id = conn.execute(rw_relations.insert().returning(rw_relations.c.id), values).scalar_one()
        except SQLAlchemyError as exc:
            # the cause is chained (the server's log); the message carries no SQL statement and no parameters
            raise RelationStoreError(f"cannot store relation {kind}({subject!r}, {object!r}): the database refused "
                                     f"it ({type(exc).__name__})") from exc
        relation = Relation(int(new_id), kind, subject, object, start, end, None, by, _utc(now), zone=self.zone)
        self.index.add(relation)
        return relation

    def relate_many(self, facts: Sequence[Mapping[str, Any]], *, by: str = "system",
                    now: datetime | None = None) -> list[Relation]:
        """Insert every fact (``{kind, subject, object, valid_from?, valid_to?}``) in one transaction, all or none:
        each is checked as :meth:`relate` checks it before any is written, and a database refusal of any rolls back
        all of them (the service's ``POST /v1/relations`` stored the facts before the one the database refused, one
        transaction each). Indexed once the transaction has committed."""
        checked = checked_facts(facts)
        ids: list[int] = []
        try:
            with self.engine.begin() as conn:
                statement = rw_relations.insert().returning(rw_relations.c.id)
                for kind, subject, object, start, end in checked:
                    ids.append(int(conn.execute(statement, {
                        "kind": kind, "subject": subject, "object": object, "valid_from": start, "valid_to": end,
                        "withdrawn_at": None, "withdrawn_by": "", "created_by": by, "created_at": _utc(now)},
                    ).scalar_one()))
        except SQLAlchemyError as exc:
            raise RelationStoreError(f"cannot store {len(checked)} relations: the database refused one of them "
                                     f"({type(exc).__name__}); none was stored") from exc
        added = [Relation(new_id, kind, subject, object, start, end, None, by, _utc(now), zone=self.zone)
                 for new_id, (kind, subject, object, start, end) in zip(ids, checked, strict=True)]
        for relation in added:
            self.index.add(relation)
        return added

    def unrelate(self, kind: str, subject: str, object: str, *, at: datetime, by: str = "system") -> list[Relation]:
        """Withdraw the active facts at ``at`` (rows are kept: the history stays auditable)."""
        moment = _utc(at)
        assert moment is not None
        targets = [r for r in self.index.select(kind, subject, object)
                   if r.withdrawn_at is None and r.active(moment)]
        if not targets:
            return []
        try:
            with self.engine.begin() as conn:
                conn.execute(rw_relations.update().where(rw_relations.c.id.in_([r.id for r in targets]))
                             .values(withdrawn_at=moment, withdrawn_by=by))
        except SQLAlchemyError as exc:
            raise RelationStoreError(f"cannot end relation {kind}({subject!r}, {object!r}): the database refused it "
                                     f"({type(exc).__name__})") from exc
        ended = []
        for relation in targets:
            new = replace(relation, withdrawn_at=moment, withdrawn_by=by)
            self.index.end(relation, new)
            ended.append(new)
        return ended

    def close(self) -> None:
        """Dispose of the engine if this store created it."""
        if self._owns_engine:
            self.engine.dispose()
