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
``statement_timeout``). Nor in the engine's bookkeeping that plugin code set going (a tick task's ``engine.fire``):
raised as a unit of work opens or ends, or between a commit and the work that follows it (the fire a
``workflow.fire`` chained), it would leave the transaction open or lose that work; it is raised just after.

Limits do not nest: inside a limited call (an action a tick task fires), the outer limit governs; so does an
alarm the host armed itself (``signal.alarm``/``setitimer``), which is never replaced.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import CodeType, FrameType, TracebackType
from typing import Any, ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")
_F = TypeVar("_F", bound=Callable[..., Any])

__all__ = ["TimeLimitExceeded", "available", "critical", "is_critical", "limited", "time_limit"]

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
#: while a piece of work runs on past its limit, the limit strikes again every ``_REPEAT`` seconds (plugin code that
#: catches the strike, or a strike Python ignored, is interrupted again)
_REPEAT = 1.0
#: the engine's own bookkeeping, which once started must run to its end: a unit of work opening, committing or
#: rolling back, its after-commit work (the fire a ``workflow.fire`` chained), the in-memory store's writes and their
#: undo entries, clearing a limit. Modules here, and functions marked with :func:`critical`
_CRITICAL_MODULES = ("regelwerk.store.unit", "regelwerk.store.memory", "regelwerk.limits")
_CRITICAL: set[CodeType] = set()


def critical(fn: _F) -> _F:
    """Mark ``fn`` as the engine's bookkeeping that must run to its end: a limit that expires in it (or in what it
    calls, up to plugin code it calls) waits until it has returned."""
    _CRITICAL.add(fn.__code__)
    return fn


def is_critical(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is marked with :func:`critical` (the engine's own work, not a plugin's)."""
    return getattr(fn, "__code__", None) in _CRITICAL


def _in_database(frame: FrameType | None) -> bool:
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(_DATABASE):
            return True
        frame = frame.f_back
    return False


def _in_bookkeeping(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs the engine's bookkeeping (for a plugin that called the engine, a tick task's
    ``engine.fire``): walking out from it to the nearest limited call (the plugin's own call), a critical frame
    comes first. What bookkeeping calls runs to its end with it (a library such as ``transitions``, the host's
    clock or permission port), except plugin code it calls through :func:`limited` (an action, a guard): that is
    the plugin's, even when it ships with regelwerk (``SmtpTransport.send``, an action of the core plugin)."""
    while frame is not None:
        code = frame.f_code
        if code is _LIMITED:  # the plugin's call (it returned, or runs a built-in function)
            return False
        if code in _CRITICAL or str(frame.f_globals.get("__name__", "")).startswith(_CRITICAL_MODULES):
            return True
        frame = frame.f_back
    return False


class _Collection:
    """Whether the cyclic garbage collector is collecting (set by its start and stop callbacks, registered while a
    limit is armed): the weak references' callbacks and finalizers it runs are Python code whose exceptions are
    ignored, without a mark in their frames."""

    running = False

    @staticmethod
    def phase(phase: str, info: dict[str, int]) -> None:
        _Collection.running = phase == "start"


def _in_finalizer(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs where Python ignores what is raised (a ``__del__``, a callback of the cyclic garbage
    collector, anything the collector runs while it collects (a weak reference's callback of an object in a cycle),
    which may run inside any allocation): raised there, the limit would be lost (printed as an ignored exception)
    until it is raised again a second later, and a piece of work that ended within that second was not limited."""
    if _Collection.running:
        return True
    callbacks = {getattr(cb, "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or code in callbacks:
            return True
        frame = frame.f_back
    return False


def available() -> bool:
    """Whether a limit can be set here: a POSIX interval timer, in the process's main thread."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


class _Limit:
    """One armed limit (:func:`time_limit`): its handler raises only while it is armed and plugin code runs."""

    __slots__ = ("armed", "hook", "previous", "seconds", "what")

    def __init__(self, seconds: float | None, what: str) -> None:
        self.seconds, self.what = seconds, what
        self.armed = False
        self.previous: Any = None
        self.hook: Any = None

    def ignored(self, unraisable: Any) -> None:
        """``sys.unraisablehook`` while armed: Python ignored an error where nothing can raise (a weak reference's
        callback run as the last plain reference went, which no frame marks, or a finalizer). When it is this
        limit's strike, the limit strikes again just after (``_AGAIN``), in whatever runs then, instead of a second
        later (its repeat): a piece of work that ended within that second was not limited at all. Every other
        error goes to the hook that was installed before."""
        if self.armed and isinstance(unraisable.exc_value, TimeLimitExceeded):
            signal.setitimer(signal.ITIMER_REAL, _AGAIN, _REPEAT)
            return
        (self.hook or sys.__unraisablehook__)(unraisable)

    def expired(self, signum: int, frame: FrameType | None) -> None:
        if not self.armed:  # a signal still pending as the limit was cleared: nothing left to limit
            return
        if _in_database(frame) or _in_bookkeeping(frame) or _in_finalizer(frame):
            # raised inside SQLAlchemy or a driver, it would leave the connection mid-statement (invalidated, its
            # transaction unusable for the isolation that follows); in the engine's bookkeeping it would leave a unit
            # open or lose the work that follows a commit; in a finalizer it would be ignored: tried again just after
            signal.setitimer(signal.ITIMER_REAL, _AGAIN, _REPEAT)
            return
        raise TimeLimitExceeded(self.what, self.seconds or 0)

    def __enter__(self) -> None:
        # an armed real-time timer is an outer limit (or the host's own alarm): it governs, and is left alone
        seconds = self.seconds
        if not seconds or seconds <= 0 or not available() or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
            return
        self.previous = signal.signal(signal.SIGALRM, self.expired)
        _Collection.running = False
        gc.callbacks.append(_Collection.phase)  # only while armed: no cost to a collection without a limit
        self.hook, sys.unraisablehook = sys.unraisablehook, self.ignored
        self.armed = True
        # raised again every second until the block has ended: plugin code that catches it (a bare ``except:`` in a
        # loop) is interrupted again
        signal.setitimer(signal.ITIMER_REAL, seconds, _REPEAT)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not self.armed:
            return
        # disarmed first; the handler does nothing from here on (a signal the kernel delivered just before is
        # handled at the next check, which may be in this method: it must not re-arm the timer, nor raise before
        # the host's handler is back). A limit that expires just as the block ends still counts: the work is
        # failed and rolled back, which is consistent either way
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(_Collection.phase)
        _Collection.running = False
        if sys.unraisablehook == self.ignored:  # put back, unless someone installed another meanwhile
            sys.unraisablehook = self.hook
        self.hook = None


def time_limit(seconds: float | None, what: str) -> AbstractContextManager[None]:
    """Run the block with at most ``seconds`` of wall time (None or 0: no limit; see the module for where a limit
    applies); past it, :class:`TimeLimitExceeded` is raised inside the block."""
    return _Limit(seconds, what)


def limited(seconds: float | None, what: str, fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """``fn(*args, **kwargs)`` under :func:`time_limit` (no limit: a plain call, nothing else on the hot path)."""
    if not seconds:
        return fn(*args, **kwargs)
    with time_limit(seconds, what):
        return fn(*args, **kwargs)


#: the code of :func:`limited`: the frame that calls plugin code
_LIMITED = limited.__code__
