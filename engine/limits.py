"""A time limit for plugin code: a hanging action, tick task, item source or mail transport becomes that piece of
work's failure (an incident, a retried message) instead of stalling every piece of work after it.

Python cannot stop a thread from outside, so the limit is a POSIX interval timer (``SIGALRM``) whose handler
raises :class:`TimeLimitExceeded` in the code that runs when it expires: a pure-Python loop, a ``sleep`` or a
blocking socket read are interrupted there. It applies in the main thread of a process (the CLI's ``tick``,
``worker`` and ``outbox send``); elsewhere (a thread of a host application, Windows) it is not set, and the
host keeps its own watchdog. :class:`TimeLimitExceeded` is a ``BaseException``, so plugin code's own
``except Exception`` cannot swallow it; :func:`~regelwerk.errors.is_plugin_fault` counts it as the plugin's
failure, so the boundary that called the plugin types and isolates it as any other.

The limit is never raised inside SQLAlchemy or a database driver (there it would leave the connection in the middle
of a statement): it is raised just after the statement returns, so plugin code stuck in one database call is
bounded by the database's own timeouts (SQLite's ``busy_timeout``, PostgreSQL's ``lock_timeout`` and
``statement_timeout``).

Limits do not nest: inside a limited call (an action a tick task fires), the outer limit governs; so does an
alarm the host armed itself (``signal.alarm``/``setitimer``), which is never replaced.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")

__all__ = ["TimeLimitExceeded", "available", "limited", "time_limit"]

class TimeLimitExceeded(BaseException):
    """Plugin code ran longer than its limit (raised inside it, where it was when the limit expired)."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"{what} ran longer than its time limit of {seconds:g} s")
        self.what = what
        self.seconds = seconds


#: modules in which the limit is not raised (it is tried again ``_AGAIN`` seconds later): the database layers, and
#: the store's bulk writer (between the rows of a PostgreSQL ``COPY`` it is the innermost frame)
_DATABASE = ("sqlalchemy.", "psycopg", "sqlite3", "pg8000", "asyncpg", "regelwerk.store.bulk")
_AGAIN = 0.01


def _in_database(frame: FrameType | None) -> bool:
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(_DATABASE):
            return True
        frame = frame.f_back
    return False


def available() -> bool:
    """Whether a limit can be set here: a POSIX interval timer, in the process's main thread."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Run the block with at most ``seconds`` of wall time (None or 0: no limit; see the module for where a limit
    applies); past it, :class:`TimeLimitExceeded` is raised inside the block."""
    # an armed real-time timer is an outer limit (or the host's own alarm): it governs, and is left alone
    if not seconds or seconds <= 0 or not available() or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        if _in_database(frame):
            # raised inside SQLAlchemy or a driver, it would leave the connection mid-statement (invalidated, its
            # transaction unusable for the isolation that follows): tried again just after the statement
            signal.setitimer(signal.ITIMER_REAL, _AGAIN, 1.0)
            return
        raise TimeLimitExceeded(what, seconds)

    previous = signal.signal(signal.SIGALRM, expired)
    # raised again every second until the block has ended: plugin code that catches it (a bare ``except:`` in a
    # loop) is interrupted again
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        # disarmed first (a limit that expires just as the block ends still counts: the work is failed and rolled
        # back, which is consistent either way)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def limited(seconds: float | None, what: str, fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """``fn(*args, **kwargs)`` under :func:`time_limit` (no limit: a plain call, nothing else on the hot path)."""
    if not seconds:
        return fn(*args, **kwargs)
    with time_limit(seconds, what):
        return fn(*args, **kwargs)
