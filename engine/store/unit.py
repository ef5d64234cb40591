"""The unit of work: one per transaction, the single road every part of a state change takes.

A :class:`UnitOfWork` wraps one store transaction (``uow.tx``, a :class:`~regelwerk.store.base.StoreTx`)
and carries what belongs to that transaction but is not a row yet:

- ``after_commit``: callbacks that run once the transaction committed (never after a rollback);
- refusals: audit rows of refused decisions (a permission denial). They must survive the rollback
  of the change they refused, so they are written in the unit's own transaction when it commits,
  or, when it rolls back, in one short transaction of their own right after it ended. Never
  twice, and never in a second write transaction while the first is still open (on SQLite that
  waits for its own lock);
- savepoints: a part of the unit (one timer of a batch) can fail and be rolled back alone.

Everything else (the transition, history, timers, outbox, audit, erasure, a pack's rows) is written
through ``uow.tx`` and commits together or not at all. ``current_unit(store)`` is the unit open on
this thread (or task) for ``store``: a permission port's audit sink uses it to join the fire's unit.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from regelwerk.store.base import Store, StoreTx
from regelwerk.store.records import AuditEntry

__all__ = ["UnitOfWork", "current_unit", "erased", "run_after_commit", "watch_erasures"]

_CURRENT: ContextVar[UnitOfWork | None] = ContextVar("regelwerk_unit_of_work", default=None)

#: per store: who keeps copies of its instances in memory and must drop those of erased ones (weakly held)
_WATCHERS: weakref.WeakKeyDictionary[Any, list[weakref.WeakMethod[Callable[[Sequence[str]], object]]]] = \
    weakref.WeakKeyDictionary()
_WATCHERS_LOCK = threading.Lock()


def watch_erasures(store: Any, forget: Callable[[Sequence[str]], object]) -> None:
    """Have ``forget`` (a bound method, held weakly) called with the ids of every erasure on ``store``: the
    workflow runtime drops its cached records of them (their personal data must not stay in a process's memory;
    a decision on such a record would fail its version check all the same)."""
    with _WATCHERS_LOCK:
        try:
            refs = _WATCHERS.setdefault(store, [])
            refs[:] = [ref for ref in refs if ref() is not None]  # engines closed and gone
            refs.append(weakref.WeakMethod(forget))
        except TypeError:  # a host's store that cannot be weakly referenced or hashed: its version check suffices
            pass


def erased(store: Any, instance_ids: Sequence[str]) -> None:
    """Called by a store's ``erase_personal_data`` (in its unit of work, once the instances are written): every
    watcher of ``store`` forgets these instances (the erased ones; the ids asked for that are no instance may be
    among them). Forgetting is always safe (a cache is filled again from the store), so it need not wait for the
    commit."""
    if not instance_ids:
        return
    with _WATCHERS_LOCK:
        try:
            watchers = list(_WATCHERS.get(store, ()))
        except TypeError:  # not a key it could be (see watch_erasures)
            return
    for ref in watchers:
        forget = ref()
        if forget is not None:
            forget(instance_ids)


def run_after_commit(callbacks: list[Callable[[], None]], failed: Callable[[Exception], None] | None) -> None:
    """Run every after-commit callback, in order, also when one raises.

    The unit committed: a callback's failure (a chained fire refused or raising) must neither look like a
    failure of the committed change to its caller nor keep the later callbacks from running. Each failure
    goes to ``failed`` (the runtime records it as an incident; it may re-raise what must stop the work);
    without ``failed``, the first failure is raised once all callbacks ran.
    """
    from regelwerk.errors import PluginError, is_plugin_fault

    first: Exception | None = None
    for callback in callbacks:
        try:
            callback()
        except BaseException as exc:  # isolated: handed to ``failed`` (or raised after the others ran)
            if not is_plugin_fault(exc):
                raise  # KeyboardInterrupt, SystemExit: the process stops
            # a plugin's GeneratorExit or own BaseException is a plugin failure like any other (typed, chained)
            error = exc if isinstance(exc, Exception) else PluginError.wrap("after-commit work", exc)
            if failed is not None:
                failed(error)
            elif first is None:
                first = error
    if first is not None:
        raise first


def current_unit(store: Any) -> UnitOfWork | None:
    """The unit of work open on this thread for ``store`` (None outside one)."""
    unit = _CURRENT.get()
    return unit if unit is not None and unit.store is store else None


class UnitOfWork:
    """One transaction on a store and what rides with it (see the module docstring)."""

    __slots__ = ("_cm", "_token", "post", "refusals", "store", "tx")

    def __init__(self, store: Store) -> None:
        self.store = store
        self.post: list[Callable[[], None]] = []
        self.refusals: list[AuditEntry] = []
        self._cm: Any = None
        self._token: Token[UnitOfWork | None] | None = None
        self.tx: StoreTx = None  # type: ignore[assignment]  # set by __enter__

    def __enter__(self) -> UnitOfWork:
        cm = self._cm = self.store.transaction()
        self.tx = cm.__enter__()
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _CURRENT.reset(self._token)  # type: ignore[arg-type]  # set by __enter__
        refusals = self.refusals
        if exc_type is None:
            if refusals:
                try:
                    self.tx.add_audits(refusals)
                except BaseException as error:
                    self._cm.__exit__(type(error), error, error.__traceback__)
                    raise
            self._cm.__exit__(None, None, None)
            return
        self._cm.__exit__(exc_type, exc, tb)
        self.post.clear()
        if refusals:
            with self.store.transaction() as tx:
                tx.add_audits(refusals)

    # --- what rides with the transaction ------------------------------------------------------

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the unit committed."""
        self.post.append(callback)

    def refuse(self, entry: AuditEntry) -> None:
        """Audit a refused decision: kept whether the unit commits or rolls back (written once)."""
        self.refusals.append(entry)

    def audit(self, entry: AuditEntry) -> None:
        """Audit an act that is part of the change (rolled back with it)."""
        self.tx.add_audit(entry)

    def run_post(self, failed: Callable[[Exception], None] | None = None) -> None:
        """Run (and forget) the after-commit callbacks; call after the ``with`` block ended normally.

        See :func:`run_after_commit`: every callback runs, each failure goes to ``failed``.
        """
        if self.post:
            post, self.post = self.post, []
            run_after_commit(post, failed)

    @contextmanager
    def savepoint(self) -> Iterator[StoreTx]:
        """A part of the unit that rolls back alone on an exception (with its after-commit callbacks).

        Refusals recorded inside it stay: a refusal is audited even when what it refused rolled back.
        """
        post_mark = len(self.post)
        try:
            with self.tx.savepoint():
                yield self.tx
        except BaseException:
            del self.post[post_mark:]
            raise
