"""One transaction for everything a step does, whichever port does it: the simulation's unit of work.

A story event reaches the database through several ports (the workflow store's ``transaction()``, the
employee directory and the relationship facts on the SQLAlchemy engine, a pack's service); each opens
its own transaction. To apply the event **and** record it in one transaction, :func:`shared_unit` opens
one connection and transaction on the SQLAlchemy engine and, while it is open, every
``engine.connect()`` / ``engine.begin()`` of this thread joins it: their ``begin`` is a SAVEPOINT, their
``commit`` releases it, their ``rollback`` rolls back to it (so a port that catches its own failure and
goes on, such as the timers marking a timer failed, still undoes only its own part), and their ``close``
leaves the shared connection open. The shared transaction commits when the ``with`` block ends and
rolls back as a whole when it raises: then nothing of the step is in the store, its record included.

Every begin/commit inside and around the unit is a transaction boundary of
:mod:`regelwerk.simulation.faults` (the kill -9 harness).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from regelwerk.simulation.faults import boundary

__all__ = ["joinable", "shared_unit"]

_ATTR = "_regelwerk_shared"


class _Shared(threading.local):
    connection: Any = None
    label = ""


class _SavepointTx:
    """What ``begin()`` returns inside the unit: a savepoint, as a context manager."""

    def __init__(self, joined: _Joined) -> None:
        self._joined = joined

    @property
    def is_active(self) -> bool:
        return self._joined.savepoint is not None

    def commit(self) -> None:
        self._joined.commit()

    def rollback(self) -> None:
        self._joined.rollback()

    def __enter__(self) -> _SavepointTx:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()


class _Joined:
    """What ``engine.connect()`` returns while a shared unit is open (delegates to the unit's connection)."""

    def __init__(self, connection: Any, label: str) -> None:
        self._connection = connection
        self._label = label
        self.savepoint: Any = None

    def begin(self) -> _SavepointTx:
        self.savepoint = self._connection.begin_nested()
        return _SavepointTx(self)

    def commit(self) -> None:
        savepoint, self.savepoint = self.savepoint, None
        if savepoint is not None and savepoint.is_active:
            boundary(f"savepoint:{self._label}")
            savepoint.commit()

    def rollback(self) -> None:
        savepoint, self.savepoint = self.savepoint, None
        if savepoint is not None and savepoint.is_active:
            savepoint.rollback()

    def close(self) -> None:
        self.rollback()

    def in_transaction(self) -> bool:
        return True

    def execution_options(self, **_options: Any) -> _Joined:
        return self  # the shared transaction already began (with the write lock on SQLite)

    def __enter__(self) -> _Joined:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def joinable(sa_engine: Any) -> _Shared:
    """Make ``sa_engine``'s ``connect()`` join an open shared unit (once per engine; idempotent)."""
    shared: _Shared | None = getattr(sa_engine, _ATTR, None)
    if shared is not None:
        return shared
    shared = _Shared()
    original = sa_engine.connect

    def connect() -> Any:
        connection = shared.connection
        return original() if connection is None else _Joined(connection, shared.label)

    sa_engine.connect = connect
    setattr(sa_engine, _ATTR, shared)
    return shared


@contextmanager
def shared_unit(sa_engine: Any, label: str) -> Iterator[Any]:
    """One transaction on ``sa_engine`` that every connection of this thread joins until the block ends.

    Yields the shared connection. Nested use joins the outer unit (a savepoint).
    """
    shared = joinable(sa_engine)
    if shared.connection is not None:
        with sa_engine.begin() as joined:
            yield joined
        return
    conn = type(sa_engine).connect(sa_engine)  # a connection of its own (the class's, not the joining one)
    try:
        conn.begin()
        shared.connection, shared.label = conn, label
        try:
            yield conn
            boundary(f"before-commit:{label}")
        finally:
            shared.connection = None
        conn.commit()
    finally:
        conn.close()  # rolls back what was not committed
    boundary(f"after-commit:{label}")
