"""Chained fires (``workflow.fire``) that run exactly once, also when the process dies just after its commit.

A transition's ``workflow.fire`` action fires another event (on another instance, or its own) after the
transition committed. Kept only in memory, that fire was lost without a trace when the process was killed between
the commit and the chained fire (a chaos soak with SIGKILL on PostgreSQL: one or two per two-minute run). Now the
action writes a :class:`~regelwerk.store.records.PendingFire` row in the transition's own unit of work, and
:func:`run` fires it in a unit of work that first takes that row (``StoreTx.take_pending_fire``); a refused or
failed chained fire takes it in the unit that records its incident. So the chained fire commits at most once (a
second runner finds the row gone and decides nothing), and the tick's timers (``TimerService``) sweep the rows a
dead process left behind, older than :data:`GRACE`, so it runs at least once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from regelwerk.actors import SYSTEM, Actor
from regelwerk.errors import PluginError, RegelwerkError
from regelwerk.limits import critical
from regelwerk.store.records import PendingFire

if TYPE_CHECKING:
    from regelwerk.store.base import StoreTx
    from regelwerk.workflows.runtime import WorkflowRuntime

__all__ = ["GRACE", "keep", "run", "sweep"]

#: how old a kept chained fire is before the sweep runs it: its own process runs it just after its commit, and only
#: one runner commits it either way (this keeps a live process and the sweep from both trying)
GRACE = timedelta(seconds=30)
#: at most this many kept chained fires per sweep
_SWEEP = 100


class _Taken(Exception):
    """The kept chained fire was taken by another unit of work (it ran, or its failure was recorded): not again."""


def keep(tx: StoreTx, target: str, event: str, actor: Actor, system: bool, source: str, after: str,
         now: datetime) -> PendingFire:
    """Keep a chained fire in the chaining transition's transaction; the kept row (with its id)."""
    fire = PendingFire(target, event, actor.to_dict(), system, source, after, now)
    return replace(fire, id=tx.add_pending_fire(fire))


def _take(fire_id: int) -> Callable[[StoreTx], None]:
    """What takes the kept row in a unit of work; ``_Taken`` (the unit rolls back) when another already had."""
    def take(tx: StoreTx) -> None:
        if not tx.take_pending_fire(fire_id):
            raise _Taken
    return take


@critical  # the engine's own work after a commit: run to its end (its actions are limited as any)
def run(runtime: WorkflowRuntime, fire: PendingFire) -> None:
    """Fire a kept chained fire, exactly once: as the system (a timer's transition chained it: guards apply) or
    decided for the person it was chained for. Refused or failed, it is an incident on its target (its retry fires
    it again, as the person who retries it), never an error of the committed fire it followed; raised as that
    (``PluginError``) for the caller's after-commit bookkeeping. A fire another runner took: nothing."""
    assert fire.id is not None
    take = _take(fire.id)
    actor = SYSTEM if fire.system else Actor.of(dict(fire.actor))
    try:
        # the row is taken first, before the target is read: a second runner (on PostgreSQL its DELETE waits for the
        # first's commit) finds it gone and decides nothing, so it audits no refusal of a fire that ran. Lock order:
        # the kept row, then the target instance, as every runner takes them
        runtime._fire_one(fire.target, fire.event, actor, None, None, not fire.system, on_incident=take, first=take)
    except _Taken:
        return
    except RegelwerkError as exc:
        if exc.stops_work or (isinstance(exc, PluginError) and exc.incident_id is not None):
            raise  # stops the work around it, or recorded already (with the kept row taken in its unit)
        from regelwerk.workflows.incidents import record_incident

        error = PluginError.wrap(f"workflow.fire {fire.event!r} after {fire.after!r}", exc, fire.target, fire.event)
        try:
            record_incident(runtime.store, error, runtime.clock(), actor.id, also=take)
        except _Taken:
            return
        if error is exc:
            raise
        raise error from exc


def sweep(runtime: WorkflowRuntime, now: datetime) -> int:
    """Run the kept chained fires older than :data:`GRACE` at ``now`` (a process died before it ran them); how many
    were found. A failure is its incident (recorded by :func:`run`); the sweep goes on."""
    with runtime.store.read() as tx:
        found = tx.pending_fires(now - GRACE, _SWEEP)
    for fire in found:
        try:
            run(runtime, fire)
        except PluginError:
            continue  # its incident is recorded, the kept row taken with it
    return len(found)
