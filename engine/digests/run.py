"""Sending a digest: per recipient, the cases they may read, one mail and its bookkeeping in one unit of work.

Exactly once per recipient per period: the bookkeeping is a row of ``rw_scheduled_items`` (the tick's own
exactly-once table: a UNIQUE deterministic ``key`` ``digest:<name>:<period>:<person>``, item type ``digest``) written
in the same unit of work as the outbox row and the audit row. A tick killed before the commit leaves nothing (the
next tick sends it); after the commit the row is there and no tick sends it again. Two ticks at once: the second
finds the row, or its insert of the same key fails and its unit rolls back (mail included).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from regelwerk.actors import SYSTEM, Actor
from regelwerk.digests.model import Digest, DigestPeriod, due_period
from regelwerk.errors import InvalidData, NoRecipients, UsageError
from regelwerk.registry import DigestCase

__all__ = ["ITEM_TYPE", "digest_key", "list_cases", "run_digest"]

#: The item type of a digest's bookkeeping rows in ``rw_scheduled_items``.
ITEM_TYPE = "digest"
_ITEMS = "rw_scheduled_items"


def digest_key(digest: Digest, period: DigestPeriod, person: str) -> str:
    """The bookkeeping row's key: one per digest, period and recipient (``person`` empty: nobody to mail)."""
    return f"digest:{digest.name}:{period.key}:{person}"


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def list_cases(digest: Digest, engine: Any, tx: Any, now: datetime) -> dict[str, list[DigestCase]]:
    """Every list's cases at ``now`` for everyone (before the permission policy), read through ``tx``."""
    sources = engine.registry.digest_sources
    found: dict[str, list[DigestCase]] = {}
    for part in digest.lists:
        spec = sources.get(part.source)
        if spec is None:  # the bundle compiled with another registry (RW830 otherwise)
            raise UsageError(f"digest {digest.name!r}: no digest source {part.source!r} is registered")
        found[part.name] = list(spec.list_cases(engine, tx, now, dict(part.params)))
    return found


def _book(tx: Any, digest: Digest, period: DigestPeriod, person: str, status: str, now: datetime,
          payload: Mapping[str, Any]) -> None:
    stamp = _naive(now)
    tx.rows(_ITEMS).insert({
        "key": digest_key(digest, period, person), "source": f"digest:{digest.name}", "item_type": ITEM_TYPE,
        "subject": person, "period": period.key, "parent_key": None, "series": f"digest:{digest.name}:{person}",
        "due_at": _naive(period.moment), "status": status, "start_mode": "none", "catch_up": "once",
        "grace_seconds": 0, "workflow": None, "instance_id": None, "version": "",
        "payload": json.dumps(dict(payload), sort_keys=True), "created_at": stamp, "updated_at": stamp})


def _done(engine: Any, key: str) -> bool:
    with engine.store.read() as tx:
        return tx.rows(_ITEMS).first({"key": key}) is not None


def run_digest(digest: Digest, engine: Any, now: datetime) -> dict[str, int]:
    """Send what ``digest`` owes at ``now``; counts ``sent``, ``empty`` (nothing to list: no mail), ``done``
    (sent before). Recipients with cases but no usable address are :class:`NoRecipients`, and a recipient whose mail
    cannot be rendered its ``InvalidData``, raised after the others were sent (the tick records it as the task's
    incident; the next tick in the period or a retry sends them once fixed)."""
    import regelwerk.scheduling.tables  # noqa: F401  # declares rw_scheduled_items on the shared metadata
    from regelwerk.outbox.recipients import directory_of, usable_address
    from regelwerk.store.records import AuditEntry
    from regelwerk.store.unit import UnitOfWork

    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    period = due_period(digest.schedule, digest.once_per, now)
    counts = {"sent": 0, "empty": 0, "done": 0}
    if period is None:
        return {}
    nobody_key = digest_key(digest, period, "")
    if _done(engine, nobody_key):
        return {"done": 1}
    directory = directory_of(engine)
    if directory is None:
        raise NoRecipients(digest.role, digest.template, digest.task_id,
                           "the engine has no role directory: its permission policy keeps no relationship facts "
                           "(build the Engine with permissions='<matrix>', or pass recipients=<a RoleDirectory>)")
    with engine.store.read() as tx:  # no write lock while the lists are read
        holders = list(dict.fromkeys(directory.holders(digest.role, now, tx)))
        cases = list_cases(digest, engine, tx, now)
    if not holders:
        reason = f"nobody holds the role {digest.role!r} (no active has_role fact)"
        if digest.if_nobody != "skip":
            raise NoRecipients(digest.role, digest.template, digest.task_id, reason, nobody=True)
        with UnitOfWork(engine.store) as uow:
            _book(uow.tx, digest, period, "", "skipped", now, {"reason": reason})
            uow.audit(AuditEntry(now, SYSTEM.id, "digest.skipped", None, {
                "digest": digest.name, "period": period.key, "role": digest.role, "reason": reason}))
        return {"skipped": 1}
    template = engine.bundle.get("Template", digest.template)
    port = engine.permissions
    without_address: list[str] = []
    failed: list[InvalidData] = []
    for person in holders:
        key = digest_key(digest, period, person)
        if _done(engine, key):
            counts["done"] += 1
            continue
        shown, left_out, malformed = _visible(port, person, cases, now)
        try:
            with UnitOfWork(engine.store) as uow:
                if uow.tx.rows(_ITEMS).first({"key": key}) is not None:  # another tick, since
                    counts["done"] += 1
                    continue
                shown = _not_erased(uow.tx, shown)
                if not any(shown.values()):
                    _book(uow.tx, digest, period, person, "skipped", now, {"cases": 0})
                    counts["empty"] += 1
                    continue
                address = directory.addresses([person], uow.tx).get(person)
                if not usable_address(address):
                    without_address.append(person)
                    continue
                message = _send(uow.tx, digest, period, template, person, str(address), shown, now)
                # the cases the mail lists, by id (never their contents), and how many each list had
                ids = {name: [c.id for c in found[:digest.limit]] for name, found in shown.items()}
                totals = {name: len(found) for name, found in shown.items()}
                _book(uow.tx, digest, period, person, "active", now,
                      {"message": message, "cases": ids, "counts": totals})
                uow.audit(AuditEntry(now, SYSTEM.id, "digest.sent", None, {
                    "digest": digest.name, "period": period.key, "role": digest.role, "recipient": person,
                    "message": message, "template": digest.template, "cases": ids, "counts": totals,
                    "not_readable": left_out, "malformed": malformed}))
                counts["sent"] += 1
        except InvalidData as exc:  # this recipient's mail cannot be made (a value its template needs is missing)
            failed.append(exc)
            continue
        except Exception:
            if _done(engine, key):  # a concurrent tick committed this recipient first: its unit is the one
                counts["done"] += 1
                continue
            raise
    if failed and not without_address:  # after the others were sent: the first is the task's incident
        raise failed[0]
    if without_address:
        raise NoRecipients(digest.role, digest.template, digest.task_id,
                           f"no usable mail address for {', '.join(without_address)} (an active account or the "
                           "employee directory's e-mail); their digest waits for one", holders=holders,
                           without_address=without_address)
    return counts


def _not_erased(tx: Any, shown: Mapping[str, Sequence[DigestCase]]) -> dict[str, list[DigestCase]]:
    """``shown`` without the cases whose instance an AVG erasure erased since the lists were read (outside this
    unit): their instances are locked first (the core's lock order), so an erasure either committed before (the
    case is left out here) or waits for this unit and then finds the lines it writes (``rw_outbox_parts``)."""
    from regelwerk.store.records import is_erased

    ids = sorted({c.instance_id for found in shown.values() for c in found if c.instance_id})
    if not ids:
        return {name: list(found) for name, found in shown.items()}
    tx.lock_instances(ids)
    live = tx.get_many(ids)
    erased = {i for i, record in live.items() if is_erased(record.data)}
    return {name: [c for c in found if c.instance_id not in erased] for name, found in shown.items()}


def _visible(port: Any, person: str, cases: Mapping[str, Sequence[DigestCase]],
             now: datetime) -> tuple[dict[str, list[DigestCase]], int, list[str]]:
    """Per list the cases the policy lets ``person`` read (deny by default), how many it did not, and the ids of
    cases whose data the policy found malformed (left out: whether they may read it is unknown)."""
    actor = Actor(person)
    context = {"now": now}
    check_many = getattr(port, "check_many", None)  # one batch per recipient: the same answers as check, faster
    shown: dict[str, list[DigestCase]] = {}
    left_out = 0
    malformed: list[str] = []
    for name, found in cases.items():
        keep = []
        questions = [("read", case.resource_type, dict(case.resource)) for case in found]
        decisions = check_many(actor, questions, context) if callable(check_many) else [
            port.check(actor, action, resource_type, resource, context)
            for action, resource_type, resource in questions]
        for case, decision in zip(found, decisions, strict=True):
            if decision.allowed:
                keep.append(case)
                continue
            left_out += 1
            if isinstance(decision.explain, Mapping) and decision.explain.get("by") == "malformed":
                malformed.append(case.id)
        shown[name] = keep
    return shown, left_out, malformed


def _send(tx: Any, digest: Digest, period: DigestPeriod, template: Any, person: str, address: str,
          shown: Mapping[str, Sequence[DigestCase]], now: datetime) -> str:
    """Render the digest's template for ``person`` and enqueue it in ``tx``; the outbox id."""
    import regelwerk.scheduling.tables  # noqa: F401  # declares rw_employees on the shared metadata
    from regelwerk.outbox.parts import add_parts
    from regelwerk.outbox.queue import enqueue

    row = tx.rows("rw_employees").first({"id": person})
    name = (row or {}).get("name") or person
    values: dict[str, Any] = {
        "recipient": {"id": person, "name": name},
        "period": {"key": period.key, "date": period.day},
        "digest": {"label": digest.label},
        "counts": {key: len(found) for key, found in shown.items()},
    }
    for key, found in shown.items():
        values[key] = [dict(case.values) for case in found[:digest.limit]]
    mail = template.render(values)
    message: str = enqueue(tx, mail, recipient=address, now=now)
    # where each listed case's lines are, by its subject and instance: what an AVG erasure cuts out of the body
    parts = [(case.subject_ref, case.instance_id, start, end)
             for key, found in shown.items()
             for case, spans in zip(found[:digest.limit], mail.spans.get(key, ()), strict=False)
             for start, end in spans]
    add_parts(tx, message, parts)
    return message
