"""Fault injection at transaction boundaries: the hook the kill -9 harness uses.

Every transaction boundary of the simulation (each import chunk, each story event, each day's tick and,
inside it, every unit of the scheduler and of the timers) calls :func:`boundary` with a label, once just
before its commit and once just after. By default that costs one global lookup. Two ways to use it:

- ``REGELWERK_FAULT_AT=N`` (environment): the process kills itself with a real ``SIGKILL`` at the
  N-th boundary (1-based), so the database sees exactly what a power cut or ``kill -9`` leaves behind;
- ``REGELWERK_FAULT_TRACE=FILE``: every boundary appends its number and label to FILE (to count the
  boundaries of a run and pick which ones to kill at);
- :func:`set_hook` installs a callback ``hook(number, label)`` (in-process tests).

``tests/test_simulation_faults.py`` runs a simulation in a child process killed at sampled boundaries,
resumes it and compares the store row by row with an uninterrupted run's.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

__all__ = ["Hook", "boundary", "reset", "set_hook"]

#: ``hook(number, label)``: called at every boundary (``number`` counts from 1 per process).
Hook = Callable[[int, str], None]



class _State:
    count = 0
    hook: Hook | None = None
    env: Hook | None = None
    env_read = False


_state = _State()


def _from_environment() -> Hook | None:
    kill_at = os.environ.get("REGELWERK_FAULT_AT", "").strip()
    trace = os.environ.get("REGELWERK_FAULT_TRACE", "").strip()
    if not kill_at and not trace:
        return None
    target = int(kill_at) if kill_at else 0

    def hook(number: int, label: str) -> None:
        if trace:
            with open(trace, "a", encoding="utf-8") as out:
                out.write(f"{number}\t{label}\n")
        if number == target:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def set_hook(hook: Hook | None) -> None:
    """Install (or remove, with None) an in-process hook; the boundary count starts again."""
    _state.hook = hook
    _state.count = 0


def reset() -> None:
    """Forget the hook and the count (the environment is read again at the next boundary)."""
    _state.count, _state.hook, _state.env, _state.env_read = 0, None, None, False


def boundary(label: str) -> None:
    """One transaction boundary (``label`` e.g. ``before-commit:day:2026-03-02``)."""
    hook = _state.hook
    if hook is None:
        if not _state.env_read:
            _state.env, _state.env_read = _from_environment(), True
        hook = _state.env
        if hook is None:
            return
    _state.count += 1
    hook(_state.count, label)
