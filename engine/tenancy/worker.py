"""``regelwerk worker``: tick every tenant's due work; many workers side by side on one PostgreSQL.

A tenant is due when its ``rw_tenant_ticks.next_tick_at`` has passed. A worker claims one due tenant with
``SELECT .. FOR UPDATE SKIP LOCKED`` and keeps that row lock (its lease) while it ticks the tenant, then moves
``next_tick_at`` on by the interval and commits. Another worker skips the locked row and takes the next tenant;
a killed worker's connection ends, PostgreSQL drops its lock, and the tenant is due again at once. The tick
itself commits in small units and claims its items with SKIP LOCKED (``regelwerk.scheduling.tick``), so a
tenant ticked twice still does each item once, and a tick killed half-way loses nothing the next one will not
redo.

On SQLite (one process) the claim is a plain update of ``next_tick_at`` before the tick.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from regelwerk.tenancy.tables import rw_tenant_ticks, rw_tenants

__all__ = ["Worker"]


class Worker:
    """One worker process's loop (see the module docstring)."""

    def __init__(self, hub: Any, interval: float = 60.0, poll: float = 1.0, name: str | None = None,
                 log: Callable[[str], None] | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.hub = hub
        self.interval = timedelta(seconds=interval)
        self.poll = poll
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.log = log or (lambda _line: None)
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.stopping = threading.Event()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT: finish the tenant at hand, then stop."""
        def stop(signum: int, _frame: Any) -> None:
            self.log(f"{self.name}: signal {signum}, stopping after the current tenant")
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def run(self, once: bool = False) -> int:
        """Tick due tenants until stopped (``once``: until none is due); how many tenant ticks were done."""
        done = 0
        while not self.stopping.is_set():
            tenant = self.tick_one()
            if tenant is not None:
                done += 1
                continue
            if once:
                break
            self.stopping.wait(self.poll)
        return done

    def tick_one(self) -> str | None:
        """Claim one due tenant, tick it, move its next tick on; the tenant's id, or None when none was due."""
        now = self.clock()
        t = rw_tenant_ticks.c
        due = (sa.select(t.tenant).join(rw_tenants, rw_tenants.c.id == t.tenant)
               .where(t.next_tick_at <= now, rw_tenants.c.active_version.is_not(None))
               .order_by(t.next_tick_at, t.tenant).limit(1))
        if not self.hub.postgres:
            with self.hub.root.begin() as conn:
                tenant = conn.execute(due).scalar()
                if tenant is None:
                    return None
                self._advance(conn, tenant, now)
            self._tick(tenant, now)
            return str(tenant)
        with self.hub.root.connect() as conn, conn.begin():
            tenant = conn.execute(due.with_for_update(skip_locked=True, of=rw_tenant_ticks)).scalar()
            if tenant is None:
                return None
            self._tick(tenant, now)  # the row lock is this worker's lease on the tenant
            self._advance(conn, tenant, now)
        return str(tenant)

    def _advance(self, conn: sa.Connection, tenant: str, now: datetime) -> None:
        conn.execute(rw_tenant_ticks.update().where(rw_tenant_ticks.c.tenant == tenant)
                     .values(next_tick_at=now + self.interval, last_tick_at=now, last_worker=self.name[:200]))

    def _tick(self, tenant: str, now: datetime) -> None:
        started = time.perf_counter()
        try:
            summary = self.hub.engine(tenant).tick(now)
        except Exception as exc:  # noqa: BLE001 - one tenant's failure must not stop the others; it is logged
            self.log(f"{self.name}: tick of {tenant} failed: {type(exc).__name__}: {exc}")
            return
        self.log(f"{self.name}: ticked {tenant} in {time.perf_counter() - started:.3f}s: "
                 f"{summary.timers_fired} timer(s), {summary.total_created} item(s)")
