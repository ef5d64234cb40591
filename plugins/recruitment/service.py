"""The recruitment API a host calls: vacancies, applications (by hand or from the web form), moves,
visibility, consent, retention. Every change runs through the workflow engine's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from functools import partial
from typing import Any

from regelwerk.actors import SYSTEM, Actor
from regelwerk.errors import (
    InvalidData,
    PermissionDenied,
    PluginError,
    RegelwerkError,
    TransitionNotAllowed,
    UnknownInstance,
    UsageError,
    is_plugin_fault,
)
from regelwerk.outbox.queue import utc_naive
from regelwerk_packs.recruitment.actions import known_rows, mail_candidate
from regelwerk_packs.recruitment.kinds import PROVIDED_FIELDS
from regelwerk_packs.recruitment.mail import resolve_template, resolve_workflow, settings_of
from regelwerk_packs.recruitment.model import RecruitmentSettings, RecruitmentWorkflow, RetentionPolicy
from regelwerk_packs.recruitment.ports import candidate_store, require_candidate_store
from regelwerk_packs.recruitment.retention import (
    RetentionPlan,
    RetentionReport,
    erase_candidates,
    overview,
    plan_retention,
)
from regelwerk_packs.recruitment.tables import candidates, vacancies, vacancy_audit
from regelwerk_packs.recruitment.tables import candidates as candidates_table

__all__ = ["MoveRefused", "Recruitment", "move_facts"]

ActorLike = Actor | str | Mapping[str, Any]
WEB_FORM = Actor("web-form", ("intake",))


class Recruitment:
    """Recruitment on top of an ``regelwerk.runtime.Engine`` whose store is a SQL store.

    ``permissions`` is the permission port (``check(actor, action, resource_type, resource, context)``)
    asked for ``open``/``close``/``view``/``delete`` on ``vacancy``/``candidate``; without one, the
    settings' ``vacancy_admins`` roles (beheerder, administrator) may do them (deny by default).
    """

    def __init__(self, engine: Any, *, settings: str | None = None, permissions: Any = None,
                 id_factory: Callable[[], str] | None = None,
                 vacancy_memo: dict[str, dict[str, Any]] | None = None, read_ahead: Any = None) -> None:
        from regelwerk.workflows.ports import RoleTable

        self.engine = engine
        # vacancy rows by id, reused while the caller's transaction lasts (the simulation's step memo, which it
        # empties when the transaction ends); this service's own writes drop their entry
        self._vacancy_memo = vacancy_memo
        # rows of candidates the caller read ahead in its transaction (the simulation's day of moves):
        # ``take(candidate_id)`` -> (candidate, vacancy) or None (read them now), ``moved(instance_id, confirmed)``
        # after each move (its own write of the candidate's row), optionally ``known_absent(candidate_id)``: whether
        # provably no candidate row has an application's id (see regelwerk_packs.recruitment.simulation)
        self._read_ahead = read_ahead
        self.compiled = engine.bundle
        self.settings: RecruitmentSettings = settings_of(self.compiled, settings)
        admins = self.settings.vacancy_admins
        self.permissions = permissions if permissions is not None else RoleTable(
            {"open": admins, "close": admins, "view": admins, "delete": admins, "move": admins})
        self.id_factory = id_factory or (lambda: uuid.uuid4().hex)

    # --- helpers ------------------------------------------------------------------------------

    def _now(self) -> datetime:
        moment: datetime = self.engine.clock()
        return moment

    def _require(self, actor: Actor, action: str, resource_type: str, resource: Mapping[str, Any]) -> None:
        """Decide ``action``; a refusal is ``PermissionDenied``, audited once in ``rw_audit`` (``permission.denied``
        with the actor, the time and the deciding rule): in the caller's unit of work when one is open (unless the
        port already audited it there), else in one of its own. Before, the pack's refusals were audited nowhere."""
        from regelwerk.store.records import AuditEntry
        from regelwerk.store.unit import UnitOfWork, current_unit

        unit = current_unit(self.engine.store)
        mark = len(unit.refusals) if unit is not None else 0
        now = self._now()
        decision = self.permissions.check(actor, action, resource_type, dict(resource), {"now": now})
        if decision.allowed:
            return
        explain = decision.explain if isinstance(decision.explain, Mapping) else {"reason": str(decision.explain)}
        target = f"{resource_type}:{resource.get('id', '')}"
        refused = PermissionDenied(actor.id, action, target, decision.explain)
        entry = AuditEntry(now, actor.id, "permission.denied", None, {
            "action": action, "resource_type": resource_type, "resource_id": resource.get("id"),
            "by": explain.get("by", "default"), "reason": explain.get("reason", ""), "roles": list(actor.roles)})
        if unit is not None:
            if len(unit.refusals) == mark:
                unit.refuse(entry)
        else:
            with UnitOfWork(self.engine.store) as uow:
                uow.refuse(entry)
        raise refused

    def _decided_vacancy(self, who: Actor, action: str, vacancy_id: str) -> dict[str, Any]:
        """:meth:`vacancy` for an act decided by ``action``: a vacancy that does not exist is decided as a bare
        ``{"id"}`` first, so whom the policy refuses gets ``PermissionDenied`` as for one that exists ("not there"
        and "not yours" answer the same); only an actor it allows learns ``UsageError`` (no such vacancy)."""
        try:
            return self.vacancy(vacancy_id)
        except UsageError:
            self._require(who, action, "vacancy", {"id": vacancy_id})
            raise

    def _audit(self, tx: Any, actor: Actor, action: str, vacancy_id: str, detail: Mapping[str, Any]) -> None:
        tx.rows(vacancy_audit.name).insert({"at": utc_naive(self._now()), "actor": actor.id, "action": action,
                                            "vacancy_id": vacancy_id, "detail": dict(detail)})

    _candidates = staticmethod(require_candidate_store)

    def vacancy(self, vacancy_id: str) -> dict[str, Any]:
        """A vacancy as plain data (``UsageError`` if unknown)."""
        memo = self._vacancy_memo
        row = memo.get(vacancy_id) if memo is not None else None
        if row is None:
            with self.engine.store.read() as tx:
                row = tx.rows(vacancies.name).first({"id": vacancy_id})
            if row is None:
                raise UsageError(f"no vacancy {vacancy_id!r}")
            if memo is not None:
                memo[vacancy_id] = row
        return dict(row)

    def _forget_vacancy(self, vacancy_id: str) -> None:
        if self._vacancy_memo is not None:
            self._vacancy_memo.pop(vacancy_id, None)

    def candidate(self, candidate_id: str) -> dict[str, Any]:
        """A candidate as plain data (``UnknownInstance`` if unknown or deleted)."""
        with self.engine.store.read() as tx:
            row = tx.rows(candidates.name).first({"id": candidate_id})
        if row is None:
            raise UnknownInstance(candidate_id)
        return dict(row)

    def _candidate_with_vacancy(self, candidate_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """:meth:`candidate` and its :meth:`vacancy`, in one read where the store has the candidate port (or as the
        caller read them ahead in its transaction, see ``read_ahead``)."""
        ahead = self._read_ahead.take(candidate_id) if self._read_ahead is not None else None
        if ahead is not None:
            candidate, vacancy = ahead
            if vacancy is None:
                raise UsageError(f"no vacancy {candidate['vacancy_id']!r}")
            if self._vacancy_memo is not None:
                self._vacancy_memo[vacancy["id"]] = vacancy
            return dict(candidate), dict(vacancy)
        with self.engine.store.read() as tx:
            port = candidate_store(tx)
            found = port.candidate_with_vacancy(candidate_id) if port is not None else None
        if port is None:
            candidate = self.candidate(candidate_id)
            return candidate, self.vacancy(candidate["vacancy_id"])
        if found is None:
            raise UnknownInstance(candidate_id)
        candidate, vacancy = found
        if vacancy is None:
            raise UsageError(f"no vacancy {candidate['vacancy_id']!r}")
        if self._vacancy_memo is not None:
            self._vacancy_memo[vacancy["id"]] = vacancy
        return candidate, dict(vacancy)

    def workflow_of(self, vacancy: Mapping[str, Any]) -> RecruitmentWorkflow:
        """The vacancy's recruitment workflow."""
        return self.compiled.get("RecruitmentWorkflow", vacancy["workflow"])  # type: ignore[no-any-return]

    # --- vacancies ----------------------------------------------------------------------------

    def open_vacancy(self, actor: ActorLike, *, title: str, function: str, department: str, manager: str,
                     deadline: date | str | None = None, entity: str | None = None, workflow: str | None = None,
                     templates: Mapping[str, str] | None = None, team: Iterable[str] = (),
                     vacancy_id: str | None = None) -> str:
        """Open a vacancy (needs the ``open`` right: beheerder/administrator by default); its id."""
        who = Actor.of(actor)
        vid = vacancy_id or self.id_factory()
        self._require(who, "open", "vacancy", {"id": vid, "department": department, "entity": entity})
        if entity is not None and self.settings.organisation:
            self.compiled.get("OrganisationStructure", self.settings.organisation).entity(entity)
        chosen = resolve_workflow(self.compiled, self.settings, entity, workflow)
        own = dict(templates or {})
        for purpose, name in own.items():
            template = self.compiled.get("Template", name)
            if template.context not in PROVIDED_FIELDS:
                raise UsageError(f"template {name!r} ({purpose}) uses mail context {template.context!r}, "
                                 "which recruitment cannot fill")
        day = date.fromisoformat(deadline) if isinstance(deadline, str) else deadline
        members = sorted(set(team) | {manager})
        with self.engine.store.transaction() as tx:
            tx.rows(vacancies.name).insert({
                "id": vid, "title": title, "function": function, "department": department, "manager": manager,
                "deadline": day, "entity": entity, "workflow": chosen, "templates": own, "team": members,
                "status": "open", "opened_at": utc_naive(self._now()), "opened_by": who.id})
            self._audit(tx, who, "vacancy.open", vid, {"workflow": chosen})
        self._forget_vacancy(vid)
        return vid

    def close_vacancy(self, actor: ActorLike, vacancy_id: str) -> None:
        """Close a vacancy (needs the ``close`` right); applications are refused afterwards."""
        who = Actor.of(actor)
        vacancy = self._decided_vacancy(who, "close", vacancy_id)
        self._require(who, "close", "vacancy", vacancy)
        with self.engine.store.transaction() as tx:
            tx.rows(vacancies.name).update({"id": vacancy_id}, {
                "status": "closed", "closed_at": utc_naive(self._now()), "closed_by": who.id})
            self._audit(tx, who, "vacancy.close", vacancy_id, {})
        self._forget_vacancy(vacancy_id)

    def set_team(self, actor: ActorLike, vacancy_id: str, team: Iterable[str]) -> None:
        """Replace the vacancy's team (who sees and moves its candidates)."""
        who = Actor.of(actor)
        vacancy = self._decided_vacancy(who, "open", vacancy_id)
        self._require(who, "open", "vacancy", vacancy)
        members = sorted(set(team) | {vacancy["manager"]})
        with self.engine.store.transaction() as tx:
            tx.rows(vacancies.name).update({"id": vacancy_id}, {"team": members})
            self._audit(tx, who, "vacancy.team", vacancy_id, {"team": members})
        self._forget_vacancy(vacancy_id)

    # --- applications -------------------------------------------------------------------------

    def apply(self, vacancy_id: str, *, first_name: str, last_name: str, email: str, phone: str | None = None,
              consent: bool = False, details: Mapping[str, Any] | None = None, source: str = "web",
              actor: ActorLike | None = None, candidate_id: str | None = None) -> str:
        """An application arrives (``source`` web: the host's intake form; manual: entered by a user).

        The candidate row, the workflow instance and the receipt confirmation in the outbox are written
        in ONE transaction. Returns the candidate id.
        """
        who = Actor.of(actor) if actor is not None else WEB_FORM
        vacancy = self.vacancy(vacancy_id)
        if vacancy["status"] != "open":
            raise UsageError(f"vacancy {vacancy_id!r} is closed")
        if source == "manual" and who.id not in vacancy["team"]:
            self._require(who, "move", "candidate", {"vacancy": vacancy_id})
        if "@" not in email or any(c in email for c in "\r\n "):
            raise InvalidData(f"not an e-mail address: {email!r}", "/email")
        if not first_name.strip():
            raise InvalidData("first_name is empty", "/first_name")
        cid = candidate_id or self.id_factory()
        applicant = {"id": cid, "vacancy_id": vacancy_id, "first_name": first_name, "last_name": last_name,
                     "email": email, "phone": phone, "details": dict(details or {}), "source": source,
                     "consent": consent}
        workflow = self.workflow_of(vacancy)
        data = {"candidate_id": cid, "vacancy_id": vacancy_id, "team": list(vacancy["team"]),
                "manager": vacancy["manager"]}
        instance_id = f"cand-{cid}"
        # sync_status stores the applicant (its data never enters the instance), the on_apply mail reuses the vacancy;
        # the row may be written behind where the caller proves that no candidate row has its id (read_ahead)
        absent = getattr(self._read_ahead, "known_absent", None)
        with known_rows(instance_id, vacancy, applicant=applicant,
                        absent=partial(absent, cid) if absent is not None else None):
            self.engine.start(workflow.workflow, None, actor=who, instance_id=instance_id, system_data=data)
        return cid

    def move(self, actor: ActorLike, candidate_id: str, status: str, note: str | None = None,
             input: Mapping[str, Any] | None = None) -> str:
        """Move a candidate to ``status`` (allowed moves, who may make them and when come from the workflow).

        ``input`` is what the mover gives with the move (``{"reason": "no_match"}``; the fields the move lists in its
        ``input``), kept in the instance data and the move's history row. A move its workflow refuses (no such move,
        not the mover's, its condition false or unknown) is :class:`MoveRefused` (a ``TransitionNotAllowed``) naming
        the failed parts as data, audited once (``recruitment.move_refused``); nothing else is written."""
        who = Actor.of(actor)
        candidate, vacancy = self._candidate_with_vacancy(candidate_id)
        workflow = self.workflow_of(vacancy)
        try:
            workflow.status(status)
        except KeyError:
            raise UsageError(f"status {status!r} is not in workflow {workflow.name!r}",
                             hint="statuses: " + ", ".join(s.id for s in workflow.statuses)) from None
        # team and manager come from the vacancy row (system fields: the guards trust them); the note is the person's
        current: dict[str, Any] = {"team": list(vacancy["team"]), "manager": vacancy["manager"]}
        if workflow.reads:  # a move has a condition: the facts it reads, from the rows (system fields too)
            current.update(move_facts(workflow, candidate, vacancy))
        data = {**(input or {}), **({"note": note} if note else {})} or None
        try:
            proof = self._read_ahead.still_current if self._read_ahead is not None else None
            with known_rows(candidate["instance_id"], vacancy, candidate, current=proof) as known:  # the mail
                record = self.engine.fire(candidate["instance_id"], f"to_{status}", who, data,  # actions reuse these
                                          system_data=current)
        except TransitionNotAllowed as exc:
            raise self._move_refused(exc, who, workflow, candidate, vacancy, status, current, input) from None
        if self._read_ahead is not None:  # confirmed: sync_status updated this candidate's row (one row matched)
            self._read_ahead.moved(str(candidate["instance_id"]), known.confirmed, known.behind)
        return str(record.state)

    def moves_for(self, actor: ActorLike, candidate_id: str) -> list[dict[str, Any]]:
        """The moves the candidate's workflow offers ``actor`` now, for a host's screen: per status the candidate
        could go to, ``allowed``, what fails (``failed``, as :class:`MoveRefused` names it) and what the mover gives
        (``input``). Decided as :meth:`move` decides (the deciding move's ``by`` and its condition over the same
        facts); a part of the condition that reads only the input is the move's to decide once it is given. The
        engine's ``available_events`` cannot say it: the facts are not in the instance data. Visible to the
        vacancy's team and whom the policy lets ``view`` the vacancy (as :meth:`candidates`)."""
        from regelwerk.conditions import field_paths

        who = Actor.of(actor)
        try:
            candidate, vacancy = self._candidate_with_vacancy(candidate_id)
        except UnknownInstance:  # "not there" answers as "not yours" to whom the policy refuses
            self._require(who, "view", "vacancy", {"id": ""})
            raise
        if who.id not in vacancy["team"]:
            self._require(who, "view", "vacancy", vacancy)
        workflow = self.workflow_of(vacancy)
        facts = move_facts(workflow, candidate, vacancy) if workflow.reads else {}
        scope = {"vacancy": facts.get("vacancy", {}), "candidate": facts.get("candidate", {}), "input": {},
                 "actor": who.to_dict()}
        now = self._now()
        out = []
        for status in workflow.statuses:
            move = workflow.deciding_move(str(candidate["status"]), status.id)
            if move is None:
                continue
            failed: list[dict[str, Any]] = []
            if not _is_party(who, move.by, vacancy):
                failed.append({"pointer": f"/spec/moves/{move.index}/by", "condition": "by " + ", ".join(move.by),
                               "result": "false"})
            else:
                for pointer, part in move.parts:
                    if all(path[0] == "input" for path in field_paths(part.model)) and field_paths(part.model):
                        continue  # about what the mover gives: decided with the move
                    result = part.truth(scope, now)
                    if result is not True:
                        failed.append({"pointer": pointer, "condition": part.text,
                                       "result": "unknown" if result is None else "false"})
            out.append({"to": status.id, "label": status.label, "allowed": not failed, "failed": failed,
                        "input": list(move.input or ())})
        return out

    def _move_refused(self, exc: TransitionNotAllowed, who: Actor, workflow: RecruitmentWorkflow,
                      candidate: Mapping[str, Any], vacancy: Mapping[str, Any], status: str,
                      facts: Mapping[str, Any], given: Mapping[str, Any] | None) -> MoveRefused:
        """The refusal of a move as data (which move decided, which of its parts failed), audited once."""
        from regelwerk.store.records import AuditEntry
        from regelwerk.store.unit import UnitOfWork, current_unit

        now = self._now()
        move = workflow.deciding_move(exc.state, status)
        failed: list[dict[str, Any]] = []
        if move is None:
            if exc.state != status:
                failed.append({"pointer": "/spec/moves", "condition": f"a move from {exc.state} to {status}",
                               "result": "false"})
        elif not _is_party(who, move.by, vacancy):
            # who may not make the move learns that, never what its condition reads
            failed.append({"pointer": f"/spec/moves/{move.index}/by", "condition": "by " + ", ".join(move.by),
                           "result": "false"})
        else:
            scope = {"vacancy": facts.get("vacancy", {}), "candidate": facts.get("candidate", {}),
                     "input": dict(given or {}), "actor": who.to_dict()}
            for pointer, part in move.parts:
                result = part.truth(scope, now)
                if result is not True:
                    failed.append({"pointer": pointer, "condition": part.text,
                                   "result": "unknown" if result is None else "false"})
        refused = MoveRefused(exc, str(candidate["id"]), status, move.index if move is not None else None, failed)
        entry = AuditEntry(now, who.id, "recruitment.move_refused", exc.instance_id, {
            "candidate": candidate["id"], "vacancy": vacancy["id"], "from": exc.state, "to": status,
            "move": refused.move, "failed": failed, "reasons": list(exc.reasons)})
        unit = current_unit(self.engine.store)
        if unit is not None:
            unit.refuse(entry)
        else:
            with UnitOfWork(self.engine.store) as uow:
                uow.refuse(entry)
        return refused

    def set_vacancy_facts(self, actor: ActorLike, vacancy_id: str, facts: Mapping[str, Any]) -> dict[str, Any]:
        """Set (or, with ``None``, remove) the vacancy's declared facts (``{"budget_approved": True}``): the attributes
        of ``Facts`` documents named ``vacancy``, which moves' conditions read as ``vacancy.<name>``. Needs the right to
        manage the vacancy (``open``, as :meth:`set_team`); an undeclared fact or a value of another type is
        ``InvalidData`` (nothing written). Audited in ``rw_vacancy_audit`` (``vacancy.facts``). The vacancy's facts."""
        who = Actor.of(actor)
        vacancy = self._decided_vacancy(who, "open", vacancy_id)
        self._require(who, "open", "vacancy", vacancy)
        with self.engine.store.transaction() as tx:
            # merged into the row as it is now, locked (where the database has row locks): two people setting
            # facts at once follow each other, so neither change (a withdrawn approval) is lost
            port = candidate_store(tx)
            current = (port.vacancies_by_id([vacancy_id], lock=True).get(vacancy_id) if port is not None
                       else tx.rows(vacancies.name).first({"id": vacancy_id}))
            if current is None:
                raise UsageError(f"no vacancy {vacancy_id!r}")
            merged = _merged_facts("vacancy", self.settings.vacancy_facts, current.get("facts"), facts)
            tx.rows(vacancies.name).update({"id": vacancy_id}, {"facts": merged})
            self._audit(tx, who, "vacancy.facts", vacancy_id, {"facts": dict(facts)})
        self._forget_vacancy(vacancy_id)
        return merged

    def set_candidate_facts(self, actor: ActorLike, candidate_id: str, facts: Mapping[str, Any]) -> dict[str, Any]:
        """Set (or, with ``None``, remove) the candidate's declared facts (``{"reference_check": "done"}``): the
        attributes of ``Facts`` documents named ``candidate`` (``candidate.<name>`` in a move's condition). The
        vacancy's team may, or whom the policy allows to ``move`` its candidates (as :meth:`send`); an undeclared fact
        or a value of another type is ``InvalidData``. Audited in ``rw_audit`` (``recruitment.candidate_facts``, on the
        candidate's instance: an AVG erasure erases it with the candidate). The candidate's facts."""
        from regelwerk.store.records import AuditEntry

        who = Actor.of(actor)
        candidate, _vacancy = self._team_candidate(who, candidate_id)
        with self.engine.store.transaction() as tx:
            # as set_vacancy_facts: merged into the row as it is now, locked where the database has row locks
            port = candidate_store(tx)
            rows = (port.candidates_by_id([candidate_id], lock=True) if port is not None
                    else [r for r in [tx.rows(candidates.name).first({"id": candidate_id})] if r is not None])
            if not rows:  # erased meanwhile
                raise UnknownInstance(candidate_id)
            merged = _merged_facts("candidate", self.settings.candidate_facts, rows[0].get("facts"), facts)
            tx.rows(candidates.name).update({"id": candidate_id}, {"facts": merged})
            tx.add_audit(AuditEntry(self._now(), who.id, "recruitment.candidate_facts",
                                        str(candidate["instance_id"]),
                                        {"candidate": candidate_id, "facts": dict(facts)}))
        return merged

    def candidates(self, actor: ActorLike, vacancy_id: str) -> list[dict[str, Any]]:
        """The vacancy's candidates, for its team (and the vacancy admins) only."""
        who = Actor.of(actor)
        vacancy = self._decided_vacancy(who, "view", vacancy_id)
        if who.id not in vacancy["team"]:
            self._require(who, "view", "vacancy", vacancy)
        with self.engine.store.read() as tx:
            return self._candidates(tx).candidates_of_vacancy(vacancy_id)

    def _team_candidate(self, who: Actor, candidate_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The candidate and its vacancy, for the vacancy's team or whom the policy allows to ``move`` its candidates
        (``PermissionDenied`` otherwise; an unknown candidate answers as "not yours" to whom the policy refuses)."""
        try:
            candidate = self.candidate(candidate_id)
        except UnknownInstance:
            self._require(who, "move", "candidate", {"vacancy": ""})
            raise
        vacancy = self.vacancy(candidate["vacancy_id"])
        if who.id not in vacancy["team"]:
            self._require(who, "move", "candidate", {"vacancy": vacancy["id"]})
        return candidate, vacancy

    def send(self, actor: ActorLike, candidate_id: str, template: str) -> str:
        """Send a template by hand (e.g. the general mail); the outbox message id."""
        who = Actor.of(actor)
        candidate, vacancy = self._team_candidate(who, candidate_id)
        with self.engine.store.transaction() as tx:
            return mail_candidate(tx, self.compiled, self.settings, candidate, vacancy, template,
                                  self._now())

    def give_consent(self, candidate_id: str, actor: ActorLike = SYSTEM) -> None:
        """The candidate consents (again) to longer storage: the retention period restarts now.

        ``UnknownInstance`` if there is no such candidate (the update matched no row: nothing changed)."""
        with self.engine.store.transaction() as tx:
            matched = tx.rows(candidates.name).update({"id": candidate_id}, {
                "consent": True, "consent_at": utc_naive(self._now()), "renewal_requested_at": None})
            if not matched:
                raise UnknownInstance(candidate_id)

    # --- retention ----------------------------------------------------------------------------

    def policy(self) -> RetentionPolicy | None:
        """The retention policy of the settings (None: nothing is deleted automatically)."""
        if not self.settings.retention:
            return None
        return self.compiled.get("RetentionPolicy", self.settings.retention)  # type: ignore[no-any-return]

    def retention_overview(self) -> list[dict[str, Any]]:
        """How long candidates have been kept, per status group."""
        with self.engine.store.read() as tx:
            return overview(self._candidates(tx), self._now())

    def retention_preview(self, candidate_ids: Sequence[str] | None = None) -> RetentionPlan:
        """What the sweep would delete or ask now (nothing changes)."""
        policy = self.policy()
        if policy is None:
            return RetentionPlan("", self._now())
        with self.engine.store.read() as tx:
            return plan_retention(self._candidates(tx), policy, self._now(), candidate_ids)

    def retention_sweep(self, actor: ActorLike = SYSTEM, chunk: int = 1000) -> RetentionReport:
        """Apply the policy now: delete what is due (in chunks), ask consent renewals; the report."""
        return retention_sweep(self.engine, self.compiled, self._now(), actor=actor, chunk=chunk,
                               settings=self.settings)

    def bulk_delete(self, actor: ActorLike, candidate_ids: Sequence[str], *, preview: bool = True) -> list[str]:
        """Delete candidates by hand (AVG bulk action); ``preview`` only lists who would go."""
        who = Actor.of(actor)
        self._require(who, "delete", "candidate", {"ids": list(candidate_ids)})
        from regelwerk.outbox.queue import to_utc
        from regelwerk_packs.recruitment.retention import RetentionItem

        with self.engine.store.transaction() as tx:
            rows = self._candidates(tx).candidates_by_id(candidate_ids)
            if preview:
                return [str(r["id"]) for r in rows]
            # locked when they go, in the core's lock order (their instances, then the candidate rows: a move claims
            # the instance before it updates the candidate): a retention sweep erasing some of them at the same
            # moment (another worker) waits, or this waits for it and finds them gone; each erasure is logged once
            # (PostgreSQL; SQLite's write units are serial)
            tx.lock_instances(sorted({str(r["instance_id"]) for r in rows}))
            rows = self._candidates(tx).candidates_by_id(candidate_ids, lock=True)
            now = self._now()
            items = [RetentionItem(r["id"], r["vacancy_id"], r["instance_id"], r["status"], r["status_group"],
                                   "manual", "delete", now, to_utc(r["applied_at"]) or now) for r in rows]
            erase_candidates(tx, items, now=now, actor=who, policy="manual", reason="bulk_delete")
        return [i.candidate_id for i in items]


class MoveRefused(TransitionNotAllowed):
    """A candidate's move its workflow refuses: ``failed`` lists, as data, what failed (``{"pointer":
    "/spec/moves/0/when/all/0", "condition": "vacancy.budget_approved eq true", "result": "unknown"}``: the first
    move from the candidate's status to ``status`` decides; ``by`` when the mover is not one of its parties, else
    each top-level part of its ``when`` that is false or unknown); ``move`` is that move's index (None: no move)."""

    def __init__(self, cause: TransitionNotAllowed, candidate_id: str, status: str, move: int | None,
                 failed: Sequence[Mapping[str, Any]]) -> None:
        reasons = [f"{item['condition']} is {item['result']} (at {item['pointer']})" for item in failed]
        super().__init__(cause.instance_id, cause.state, cause.event, reasons or cause.reasons)
        self.candidate_id = candidate_id
        self.status = status
        self.move = move
        self.failed = tuple(dict(item) for item in failed)

    def to_dict(self) -> dict[str, Any]:
        """Include the candidate, the target status, the deciding move and what failed."""
        return {**super().to_dict(), "candidate": self.candidate_id, "to": self.status, "move": self.move,
                "failed": [dict(item) for item in self.failed]}


def _is_party(who: Actor, parties: Sequence[str], vacancy: Mapping[str, Any]) -> bool:
    """Whether ``who`` is one of a move's parties (as the emitted guard's first part decides it)."""
    for party in parties:
        if party == "team" and who.id in (vacancy.get("team") or ()):
            return True
        if party == "manager" and who.id == vacancy.get("manager"):
            return True
        if party not in ("team", "manager") and party in who.roles:
            return True
    return False


def _fact_value(value: Any) -> Any:
    """A row's value as instance data (JSON): moments as ISO text in UTC, days as ISO dates."""
    from regelwerk.outbox.queue import to_utc

    if isinstance(value, datetime):
        moment = to_utc(value)
        return moment.isoformat() if moment is not None else None
    if isinstance(value, date):
        return value.isoformat()
    return value


def move_facts(workflow: RecruitmentWorkflow, candidate: Mapping[str, Any],
               vacancy: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What the moves' conditions of ``workflow`` read of the vacancy and the candidate (only that: no other
    personal data enters the instance), from their rows: the pack's own fields from the columns, the declared facts
    from ``facts``. A fact that is not set is absent, so a condition on it is unknown and refuses."""
    out: dict[str, dict[str, Any]] = {}
    for root, row in (("vacancy", vacancy), ("candidate", candidate)):
        names = workflow.reads.get(root)
        if not names:
            continue
        own = row.get("facts") or {}
        values = {}
        for name in names:
            value = _fact_value(row[name] if name in row and name != "facts" else own.get(name))
            if value is not None:
                values[name] = value
        out[root] = values
    return out


def _merged_facts(root: str, declared: Mapping[str, Mapping[str, Any]], stored: Mapping[str, Any] | None,
                  given: Mapping[str, Any]) -> dict[str, Any]:
    """``stored`` facts with ``given`` over them (None removes one), every given fact declared and of its type
    (else ``InvalidData`` with a pointer to it and every problem in ``errors``)."""
    from jsonschema import Draft202012Validator, FormatChecker

    if not isinstance(given, Mapping):
        raise InvalidData(f"the {root}'s facts are an object of fact names and values", "")
    errors: list[dict[str, str]] = []
    for name, value in given.items():
        pointer = "/" + str(name).replace("~", "~0").replace("/", "~1")
        schema = declared.get(name)
        if schema is None:
            from regelwerk.diagnostics import did_you_mean

            hint = did_you_mean(str(name), declared) or ("declared: " + ", ".join(sorted(declared)) if declared
                                                         else f"no Facts document named {root} declares any")
            errors.append({"pointer": pointer, "message": f"{name!r} is not a declared fact of the {root} ({hint})"})
            continue
        if value is None:
            continue
        for problem in Draft202012Validator(dict(schema), format_checker=FormatChecker()).iter_errors(value):
            errors.append({"pointer": pointer, "message": f"{name}: {str(problem.message)[:200]}"})
    if errors:
        raise InvalidData(f"the {root}'s facts do not fit: {errors[0]['message']}", errors[0]["pointer"], errors)
    merged = {**dict(stored or {}), **dict(given)}
    return {name: value for name, value in merged.items() if value is not None}


def retention_sweep(engine: Any, compiled: Any, now: datetime, *, actor: ActorLike = SYSTEM, chunk: int = 1000,
                    settings: RecruitmentSettings | None = None) -> RetentionReport:
    """The scheduler hook: enforce the settings' RetentionPolicy at ``now`` on the engine's store.

    Streams: deletions go per rule in chunks of ``chunk`` candidates, each chunk erased set-based in
    its own transaction (``retention.erase_due``); then consent-renewal requests, chunk by chunk: the
    mails are written to the outbox and the chunk is marked asked with one UPDATE, in one transaction.
    Idempotent: what was deleted is gone, a consent is asked to be renewed once. A candidate whose mail cannot be
    written (plugin code raised: an address the outbox refuses, a template gone) rolls back alone (savepoints,
    only once its chunk failed) and is an incident on its instance (event ``recruitment:consent_renewal``); it is
    not marked, so the next sweep asks it again, and the sweep that asks it resolves the incident.
    """
    from regelwerk_packs.recruitment.retention import erase_due

    who = Actor.of(actor)
    settings = settings or settings_of(compiled)
    report = RetentionReport()
    if not settings.retention:
        return report
    policy: RetentionPolicy = compiled.get("RetentionPolicy", settings.retention)
    with engine.store.read() as tx:
        candidates = candidate_store(tx)
        if candidates is None:  # a store without the pack's candidate store (memory)
            if tx.rows(candidates_table.name).first({}) is not None:  # it holds candidates: never skip silently
                require_candidate_store(tx)  # UsageError: the AVG sweep cannot run on this store
            return report
        # most days nothing is due: one read instead of a write transaction per rule (and per consent rule); on
        # the others only the rules with something due run (erasing or asking cannot make another rule's due)
        deletions, renewals = candidates.due_rules(policy, now)
        if not deletions and not renewals:
            return report
    if deletions:
        erase_due(engine.store, policy, now, actor=who, chunk=chunk, report=report, rules=deletions)
    for index, rule in enumerate(policy.rules):
        if rule.renew_before is None or rule.consent is not True or index not in renewals:
            continue
        keep = rule.keep.delta()
        asked: set[str] = set()  # guards against a row that still matches after being marked (clock skew)
        while True:
            failures: list[tuple[dict[str, Any], BaseException]] = []
            with engine.store.transaction() as tx:
                store = Recruitment._candidates(tx)
                fetched = store.next_renewals(policy, rule, now, chunk)
                rows = [r for r in fetched if r["id"] not in asked]
                if not rows:
                    break
                asked.update(r["id"] for r in rows)
                by_id = store.vacancies_by_id(sorted({r["vacancy_id"] for r in rows}))
                ask = partial(_ask_renewal, tx, compiled, settings, rule.renew_template, keep, by_id, now)
                done = _each_isolated(tx, rows, ask, failures)
                store.mark_renewal_requested([r["id"] for r in done], now)
                _resolve_renewal_incidents(tx, [str(r["instance_id"]) for r in done], now)
            report.renewals_requested += len(done)
            for candidate, exc in failures:  # after the chunk committed, each in its own unit of work
                error = PluginError.wrap(f"consent renewal of candidate {candidate['id']!r}", exc,
                                         str(candidate["instance_id"]), RENEWAL_EVENT)
                record = getattr(engine, "record_incident", None)
                if record is None:  # an engine that keeps no incidents: the sweep fails as before
                    raise error from exc
                record(error, now)
                report.renewals_failed += 1
            if len(fetched) < chunk:  # the read found every candidate to ask: one more would find none but these
                break
    return report


def _ask_renewal(tx: Any, compiled: Any, settings: RecruitmentSettings, template: str | None, keep: Any,
                 vacancies_by_id: Mapping[str, Mapping[str, Any]], now: datetime, candidate: dict[str, Any]) -> None:
    """Write one candidate's consent-renewal mail (the rule's template, else the vacancy's) to the outbox."""
    from regelwerk.outbox.queue import to_utc

    vacancy = vacancies_by_id[candidate["vacancy_id"]]
    name = template or resolve_template(compiled, settings, vacancy, "consent_renewal")
    if name:
        given = to_utc(candidate["consent_at"]) or now
        until = (to_utc(candidate["retention_start"]) or now) + keep
        mail_candidate(tx, compiled, settings, candidate, vacancy, name, now,
                       {"consent": {"given_on": given.date(), "until": until.date()}})


#: The event of a candidate's incident when its consent-renewal mail could not be written.
RENEWAL_EVENT = "recruitment:consent_renewal"


def _isolable(exc: BaseException) -> bool:
    """Plugin code's failure that is one row's (not a process stop, nor an error that spoils the whole run)."""
    return is_plugin_fault(exc) and not (isinstance(exc, RegelwerkError) and exc.stops_work)


def _each_isolated(tx: Any, rows: list[dict[str, Any]], work: Callable[[dict[str, Any]], None],
                   failures: list[tuple[dict[str, Any], BaseException]]) -> list[dict[str, Any]]:
    """Run ``work`` for every row in one savepoint; when that fails, again row by row, each in its own savepoint
    (a failing row rolls back alone, also a statement PostgreSQL refused): the rows that went. ``failures`` gets
    each failing row with its error. One bad row (an address the outbox refuses, a template gone from the bundle)
    so no longer stops its whole chunk, every tick."""
    try:
        with tx.savepoint():
            for row in rows:
                work(row)
        return rows
    except BaseException as exc:
        if not _isolable(exc):
            raise
    done = []
    for row in rows:
        try:
            with tx.savepoint():
                work(row)
        except BaseException as exc:
            if not _isolable(exc):
                raise
            failures.append((row, exc))
            continue
        done.append(row)
    return done


def _resolve_renewal_incidents(tx: Any, instance_ids: Sequence[str], now: datetime) -> None:
    """Resolve the open renewal incidents of candidates whose renewal went (in the chunk's transaction)."""
    if not instance_ids:
        return
    for incident in tx.incidents("open", event=RENEWAL_EVENT, instance_ids=list(instance_ids)):
        if incident.id is not None:
            tx.set_incident(incident.id, "resolved", now, "consent renewal asked on a later tick", expected="open")
