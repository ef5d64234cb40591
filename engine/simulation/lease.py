"""One live ``regelwerk simulate`` per store and customer: a lease row, and table creation under a lock.

A run takes the lease (a row in ``rw_simulation_leases``) before it writes anything else and renews it
in every day's transaction. A second run on the same store and customer refuses with
:class:`SimulationBusy` (who holds it, since when, until when) and changes nothing. A lease is stale when
it expired (``LEASE_SECONDS`` after its last renewal) or when its process is gone (same host, and the pid no
longer runs, e.g. after ``kill -9``, or is a zombie not yet reaped, or is this very process, which does not hold
that lease: the pid was reused, as a restarted container's job is pid 1 again); a new run takes a stale lease
over and resumes.

The tables are created under a lock (PostgreSQL: the transaction-scoped advisory lock of every migration and
table creation, ``store.sql.create_missing``; SQLite: the database's write lock), so two runs (or a run and a
store being opened) starting at once do not both issue ``CREATE TABLE``.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from regelwerk.errors import RegelwerkError

__all__ = ["LEASE_SECONDS", "Lease", "SimulationBusy", "create_tables"]

#: A lease not renewed for this long is stale (a day's transaction renews it).
LEASE_SECONDS = 600
_LEASE_LOCK = 0x7265_6778  # the advisory lock id of taking a lease
_RENEW: list[Any] = []  # the lease renewal, built once (it runs with every step of a run)


class SimulationBusy(RegelwerkError):
    """Another ``simulate`` holds the store's lease for this customer (nothing was changed)."""

    code = "simulation_busy"
    stops_work = True

    def __init__(self, name: str, host: str, pid: int, since: datetime, until: datetime) -> None:
        self.name, self.host, self.pid, self.since, self.until = name, host, pid, since, until
        if not pid:  # the run that took this one's lease over has finished and given it back
            super().__init__(f"simulation {name!r}: another run took this run's lease over (it was stale) and has "
                             "finished since; this run stopped without writing: run it again to go on")
            return
        super().__init__(f"simulation {name!r} is running in process {pid} on {host} (since {since:%Y-%m-%d %H:%M:%S} "
                         f"UTC; its lease runs until {until:%H:%M:%S} UTC): wait for it to finish, or use "
                         "another --store")

    def to_dict(self) -> dict[str, Any]:
        """The refusal with the holder's data."""
        return {**super().to_dict(), "simulation": self.name, "host": self.host, "pid": self.pid,
                "since": self.since.isoformat(), "until": self.until.isoformat()}


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def create_tables(sa_engine: Any, registry: Any = None) -> None:
    """Create every missing regelwerk table, one process at a time."""
    from regelwerk.store.tables import all_tables

    metadata = all_tables(registry)
    import sqlalchemy as sa

    # a read first (a deferred transaction on SQLite: no write lock): a run on a store in use needs no lock
    with sa_engine.connect().execution_options(regelwerk_begin="DEFERRED") as conn:
        present = set(sa.inspect(conn).get_table_names())
    if all(name in present for name in metadata.tables):
        return
    from regelwerk.store.sql import create_missing

    # SQLite: BEGIN IMMEDIATE (the write lock) via the store's engine; PostgreSQL: the lock every creation of tables
    # and every migration takes (a store opened or a db upgrade run at the same moment waits, or is waited for)
    create_missing(sa_engine, metadata)


#: the owners of the leases this process holds now (a lease naming this pid and none of them is a dead
#: earlier process that had the same pid: a restarted container's job is pid 1 again)
_HELD: set[str] = set()


def _process_gone(host: str, pid: int, owner: str = "") -> bool:
    """True when the lease's process certainly no longer runs: same host, and the pid is free, a zombie (killed,
    not yet reaped), or this very process without that lease (the pid was reused after a restart)."""
    if host != socket.gethostname():
        return False
    if pid == os.getpid():
        return owner not in _HELD
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # Linux: a zombie still has its pid but runs no more
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[:1] == ["Z"]
    except OSError:
        return False


@dataclass
class Lease:
    """This run's lease on ``name`` (see the module docstring)."""

    sa_engine: Any
    name: str
    owner: str = ""
    took_over: str = ""

    def acquire(self) -> None:
        """Take the lease, or a stale one over; :class:`SimulationBusy` when a live run holds it."""
        import sqlalchemy as sa
        from regelwerk.simulation.tables import simulation_leases as t

        self.owner = uuid.uuid4().hex
        now = _now()
        # a read first (no lock: SQLite's WAL readers do not wait for its writer): a live holder is refused at
        # once, not after waiting for the write lock that holder's day transaction has (busy_timeout, then
        # "database is locked")
        with self.sa_engine.connect().execution_options(regelwerk_begin="DEFERRED") as conn:
            held = conn.execute(sa.select(t).where(t.c.simulation == self.name)).first()
        if held is not None and held.expires_at > now and not _process_gone(held.host, held.pid, held.owner):
            raise SimulationBusy(self.name, held.host, held.pid, held.acquired_at, held.expires_at)
        mine = {"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(), "acquired_at": now,
                "expires_at": now + timedelta(seconds=LEASE_SECONDS)}
        with self.sa_engine.begin() as conn:
            query = sa.select(t).where(t.c.simulation == self.name)
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LEASE_LOCK)))
            row = conn.execute(query).first()
            if row is None:
                conn.execute(t.insert().values(simulation=self.name, **mine))
            elif row.expires_at > now and not _process_gone(row.host, row.pid, row.owner):
                raise SimulationBusy(self.name, row.host, row.pid, row.acquired_at, row.expires_at)
            else:
                conn.execute(t.update().where(t.c.simulation == self.name).values(**mine))
                self.took_over = f"process {row.pid} on {row.host}"
        _HELD.add(self.owner)

    def renew(self, conn: Any) -> None:
        """Extend the lease in the caller's transaction; raises :class:`SimulationBusy` when it was taken over."""
        import sqlalchemy as sa
        from regelwerk.simulation.tables import simulation_leases as t
        from regelwerk.store.single import execute

        if not _RENEW:
            _RENEW.append(t.update()
                          .where(t.c.simulation == sa.bindparam("p_name"), t.c.owner == sa.bindparam("p_owner"))
                          .values(expires_at=sa.bindparam("p_expires")))
        done = execute(conn, _RENEW[0], {"p_name": self.name, "p_owner": self.owner,
                                         "p_expires": _now() + timedelta(seconds=LEASE_SECONDS)}).rowcount
        if done != 1:
            row = conn.execute(sa.select(t).where(t.c.simulation == self.name)).first()
            if row is None:
                raise SimulationBusy(self.name, "?", 0, _now(), _now())
            raise SimulationBusy(self.name, row.host, row.pid, row.acquired_at, row.expires_at)

    def release(self) -> None:
        """Give the lease back (the run ended, also after an error)."""
        from regelwerk.simulation.tables import simulation_leases as t

        if not self.owner:
            return
        try:
            with self.sa_engine.begin() as conn:
                conn.execute(t.delete().where(t.c.simulation == self.name, t.c.owner == self.owner))
        finally:
            _HELD.discard(self.owner)
            self.owner = ""
