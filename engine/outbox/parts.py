"""The parts of a stored mail that are about one data subject each, and how an AVG erasure cuts them out.

A digest (docs/scheduling.md, "Digests") lists several cases in one mail: it has no single ``subject_ref``. It
records, in the unit of work that queues the mail, one ``rw_outbox_parts`` row per case line (the case's
``subject_ref`` and ``instance_id``, and where the body shows it). ``StoreTx.erase_personal_data`` (every store)
finds a mail by each subject and instance it erases through these rows and, in its own unit of work, cuts the erased
lines out of the stored body (a mail not yet sent then goes out without them; a sent one keeps no name either) and
moves the later lines' offsets; a mail not yet sent whose every line went is deleted (it would list nobody).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

__all__ = ["PARTS", "add_parts", "cut", "redact_parts"]

#: The table (``regelwerk.outbox.tables.outbox_parts``).
PARTS = "rw_outbox_parts"


def add_parts(tx: Any, message_id: str, parts: Sequence[tuple[str | None, str | None, int, int]]) -> None:
    """Record ``(subject_ref, instance_id, start, end)`` parts of a queued message, in the caller's unit of work
    (every part, also one about neither: the erasure then knows whether a message still lists anything)."""
    import regelwerk.outbox.tables  # noqa: F401  # declares rw_outbox_parts on the shared metadata

    rows = tx.rows(PARTS)
    for position, (subject_ref, instance_id, start, end) in enumerate(parts):
        rows.insert({"message_id": message_id, "position": position, "subject_ref": subject_ref,
                     "instance_id": instance_id, "char_from": start, "char_to": end})


def cut(body: str, spans: Collection[tuple[int, int]]) -> str:
    """``body`` without the characters of ``spans`` (``[start, end)``; overlapping spans are cut once)."""
    out: list[str] = []
    at = 0
    for start, end in sorted(spans):
        if start > at:
            out.append(body[at:start])
        at = max(at, end)
    out.append(body[at:])
    return "".join(out)


def _shift(offset: int, spans: Collection[tuple[int, int]]) -> int:
    """Where ``offset`` is once ``spans`` (disjoint from the part it belongs to) are cut."""
    return offset - sum(max(0, min(end, offset) - start) for start, end in spans if start < offset)


def _find(rows: Any, instance_ids: Collection[str], subject_refs: Collection[str]) -> list[tuple[str, int]]:
    hits: list[dict[str, Any]] = []
    if subject_refs:
        hits += rows.find({"subject_ref": sorted(set(subject_refs))})
    if instance_ids:
        hits += rows.find({"instance_id": sorted(set(instance_ids))})
    return [(str(h["message_id"]), int(h["position"])) for h in hits]


def redact_parts(tx: Any, instance_ids: Collection[str], subject_refs: Collection[str],
                 load: Callable[[Sequence[str]], Mapping[str, tuple[str, str]]],
                 save: Callable[[str, str | None], None],
                 find: Callable[[Collection[str], Collection[str]], Sequence[tuple[str, int]]] | None = None) -> int:
    """Cut every part about ``instance_ids`` or ``subject_refs`` out of its message, in the erasure's unit of work
    ``tx``; how many messages changed. ``load(message ids)`` gives each stored message's ``(body, status)`` (a
    message no longer stored is left out), ``save(id, body)`` writes a body, ``save(id, None)`` deletes a message;
    ``find(instance_ids, subject_refs)`` the ``(message_id, position)`` of their parts, if the store has a faster
    way than two ``Rows.find`` (a retention sweep asks it once per chunk of a thousand candidates)."""
    import regelwerk.outbox.tables  # noqa: F401  # declares rw_outbox_parts on the shared metadata

    rows = tx.rows(PARTS)
    hits = find(instance_ids, subject_refs) if find is not None else _find(rows, instance_ids, subject_refs)
    if not hits:
        return 0
    erased: dict[str, set[int]] = {}
    for message_id, position in hits:
        erased.setdefault(message_id, set()).add(position)
    messages = sorted(erased)
    stored = load(messages)
    parts: dict[str, list[dict[str, Any]]] = {}
    for row in rows.find({"message_id": messages}, order_by="position"):
        parts.setdefault(str(row["message_id"]), []).append(row)
    changed = 0
    for message_id in messages:
        gone = erased[message_id]
        rows.delete({"message_id": message_id, "position": sorted(gone)})
        if message_id not in stored:  # deleted already (by this erasure, or the outbox's own clean-up)
            continue
        body, status = stored[message_id]
        mine = parts.get(message_id, [])
        spans = [(int(p["char_from"]), int(p["char_to"])) for p in mine if int(p["position"]) in gone]
        kept = [p for p in mine if int(p["position"]) not in gone]
        changed += 1
        if not kept and status != "sent":  # it would list nobody: never send it
            save(message_id, None)
            continue
        save(message_id, cut(body, spans))
        for part in kept:
            start, end = int(part["char_from"]), int(part["char_to"])
            moved = (_shift(start, spans), _shift(end, spans))
            if moved != (start, end):
                rows.update({"message_id": message_id, "position": int(part["position"])},
                            {"char_from": moved[0], "char_to": moved[1]})
    return changed
