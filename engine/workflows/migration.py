"""Moving running instances to the current definition version: a plan, then audited moves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from regelwerk.actors import SYSTEM, Actor
from regelwerk.errors import ConflictError, InvalidData
from regelwerk.store.records import (
    AuditEntry,
    HistoryEntry,
    InstanceRecord,
    is_erased,
)
from regelwerk.store.unit import UnitOfWork
from regelwerk.workflows.gate import Version
from regelwerk.workflows.incidents import cancel_timers
from regelwerk.workflows.runtime import WorkflowRuntime

__all__ = ["MIGRATE_EVENT", "MigrationItem", "MigrationService"]

MIGRATE_EVENT = "$migrate"
_CHANGED = "changed while planning; plan again"
ActorLike = Actor | str | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class MigrationItem:
    """One instance on an older definition version: where it would go, and what stops it."""

    instance_id: str
    workflow: str
    from_version: str
    to_version: str
    state: str
    target_state: str
    problems: tuple[str, ...] = ()
    applied: bool = False

    @property
    def action(self) -> str:
        """``keep`` (same state), ``map`` (mapped state) or ``blocked``."""
        if self.problems:
            return "blocked"
        return "keep" if self.state == self.target_state else "map"

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {"instance": self.instance_id, "workflow": self.workflow, "from_version": self.from_version,
                "to_version": self.to_version, "state": self.state, "target_state": self.target_state,
                "action": self.action, "problems": list(self.problems), "applied": self.applied}


class MigrationService:
    """Plans and applies version migrations through the workflow runtime."""

    def __init__(self, runtime: WorkflowRuntime) -> None:
        self.runtime = runtime

    def migrate_plan(self, workflow: str | None = None,
                     mapping: Mapping[str, str] | None = None) -> list[MigrationItem]:
        """Instances on an older version of ``workflow`` (or of every workflow) and what ``migrate_apply`` would do."""
        names = [workflow] if workflow else sorted(self.runtime.workflows())
        items: list[MigrationItem] = []
        with self.runtime.store.read() as tx:
            for name in names:
                rt = self.runtime._current(name)
                for rec in tx.instances(workflow=name):
                    if rec.definition_version != rt.version:
                        items.append(self._plan_item(rec, rt, mapping or {}))
        return items

    @staticmethod
    def _plan_item(rec: InstanceRecord, rt: Version, mapping: Mapping[str, str]) -> MigrationItem:
        target = mapping.get(rec.state, rec.state)
        problems = []
        if target not in rt.model.state_ids:
            problems.append(f"state {target!r} does not exist in the new version; map it "
                            f"(e.g. --map {rec.state}=<state>); states: {', '.join(rt.model.state_ids)}")
        try:
            if not is_erased(rec.data):  # what an erasure left is checked against no schema
                rt.check_data(rec.data)
        except InvalidData as exc:
            problems.append(f"data: {exc}")
        return MigrationItem(rec.id, rec.workflow, rec.definition_version, rt.version, rec.state, target,
                             tuple(problems))

    def migrate_apply(self, workflow: str | None = None, mapping: Mapping[str, str] | None = None,
                      actor: ActorLike = SYSTEM, instance_ids: Iterable[str] | None = None) -> list[MigrationItem]:
        """Move instances to the current version (blocked ones stay); each move is audited and in the history."""
        who = Actor.of(actor)
        wanted = set(instance_ids) if instance_ids is not None else None
        done: list[MigrationItem] = []
        for item in self.migrate_plan(workflow, mapping):
            if (wanted is not None and item.instance_id not in wanted) or item.problems:
                done.append(item)
                continue
            now = self.runtime.clock()
            rt = self.runtime._current(item.workflow)
            try:
                with UnitOfWork(self.runtime.store) as uow:
                    tx = uow.tx
                    rec = tx.get(item.instance_id)
                    if rec is None or rec.definition_version != item.from_version or rec.state != item.state:
                        done.append(replace(item, problems=(_CHANGED,)))
                        continue
                    self.runtime._remember_definition(tx, rt, now)
                    state = rt.machine.state(item.target_state)
                    # an erased instance takes no more events: no timers of its new state
                    after = () if is_erased(rec.data) else state.after
                    record = replace(rec, definition_version=rt.version, state=item.target_state,
                                     version=rec.version + 1, updated_at=now, timers_pending=bool(after))
                    tx.update(record, rec.version)  # the lock order: the instance row first, then its timers
                    if rec.timers_pending:
                        cancel_timers(tx, rec.id, now, who.id, f"{rec.id} was migrated to {rt.version}")
                    self.runtime._schedule(tx, record, after, now)
                    detail = {"from_version": item.from_version, "to_version": rt.version, "from": rec.state,
                              "to": item.target_state, "mapping": dict(mapping or {})}
                    tx.add_history(HistoryEntry(rec.id, MIGRATE_EVENT, rec.state, item.target_state, who.id, now,
                                                rt.version, record.version, detail))
                    uow.audit(AuditEntry(now, who.id, "workflow.migrate", rec.id, detail))
            except ConflictError:
                # another fire (another process) changed it between the read and the version-checked update:
                # rolled back, reported like a change seen at the read; the other instances are still migrated
                self.runtime._forget((item.instance_id,))
                done.append(replace(item, problems=(_CHANGED,)))
                continue
            self.runtime._stored_versions.add((rt.model.name, rt.version))
            self.runtime._forget((item.instance_id,))
            done.append(replace(item, applied=True))
        return done
