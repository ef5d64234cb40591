"""Writing to and reading from the outbox: always on a connection the caller's transaction owns."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from regelwerk.templates.model import RenderedMail

__all__ = ["SECRET_MARKER", "OutboxMessage", "address_problem", "enqueue", "erase_subjects", "list_messages", "to_utc",
           "utc_naive"]

#: Stands in a stored body for a secret made only at delivery (see the ``secrets`` of ``deliver_pending``).
SECRET_MARKER = "[[regelwerk:secret]]"

#: The longest recipient address taken (RFC 5321: 64 + 1 + 255).
ADDRESS_LENGTH = 320
#: Characters an address of one mailbox never holds outside quotes: a ``To`` header splits a text at ``,`` (and
#: smtplib's ``send_message`` then mails every part), ``<>`` and ``()`` make a display name or comment beside another
#: address, ``;`` ends an address group, ``"`` and ``\`` quote, ``:`` opens a group.
_NOT_IN_ADDRESS = frozenset(',;<>()[]:"\\')


def address_problem(value: object) -> str | None:
    """Why ``value`` is not the address of exactly one mailbox (``local@domain``, no display name, no list), or None.

    Found by attack: the outbox took any text without a line break as its recipient, and delivery writes it into the
    ``To`` header, from which smtplib takes every address: ``anna@example.nl,boss@evil.example`` in a candidate's
    or employee's own ``email`` field sent her letter (or her new password) to a second mailbox as well."""
    if not isinstance(value, str) or not value:
        return "no address"
    if len(value) > ADDRESS_LENGTH:
        return f"longer than {ADDRESS_LENGTH} characters"
    if any(c.isspace() or not c.isprintable() for c in value):
        return "it holds a space, a line break or a control character"
    if any(c in _NOT_IN_ADDRESS for c in value):
        return "it holds a character of an address list or display name (, ; < > ( ) [ ] : \" \\)"
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or "@" in local or domain.startswith(".") or domain.endswith("."):
        return "it is not one local@domain address"
    return None


def utc_naive(moment: datetime) -> datetime:
    """A moment as naive UTC (how the outbox and recruitment tables store time)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def to_utc(moment: datetime | None) -> datetime | None:
    """A stored naive-UTC moment as an aware UTC datetime."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One outbox row as a value."""

    id: str
    created_at: datetime
    template: str
    subject_ref: str | None
    instance_id: str | None
    recipient: str
    sender: str | None
    subject: str
    body: str
    status: str
    attempts: int
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None
    secret: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> OutboxMessage:
        """Build from a SQLAlchemy row of ``rw_outbox``."""
        m = row._mapping
        return cls(m["id"], to_utc(m["created_at"]) or m["created_at"], m["template"], m["subject_ref"],
                   m["instance_id"], m["recipient"], m["sender"], m["subject"], m["body"], m["status"],
                   m["attempts"], to_utc(m["next_attempt_at"]) or m["next_attempt_at"], to_utc(m["sent_at"]),
                   m["last_error"], m.get("secret"))


def enqueue(connection: Any, mail: RenderedMail, *, recipient: str, now: datetime, sender: str | None = None,
            subject_ref: str | None = None, instance_id: str | None = None,
            new_id: Callable[[], str] | None = None, secret: str | None = None) -> str:
    """Queue a pending message in the caller's transaction; return its id.

    ``connection`` is the store's transaction (a ``StoreTx``: ``add_outbox``, any store) or, for a pack's
    own SQL code, a SQLAlchemy connection. Nothing is committed here: if the caller's transaction
    rolls back, the message never existed.
    ``secret`` names a value made only when the mail is sent (the body holds :data:`SECRET_MARKER`).
    """
    from regelwerk.outbox.tables import outbox

    why = address_problem(recipient)
    if why is not None:  # one mailbox per row: never a list a To header would split into several recipients
        from regelwerk.errors import InvalidData

        raise InvalidData(f"not the address of one mailbox ({why}): {recipient[:80]!r}")
    message_id = (new_id or (lambda: uuid.uuid4().hex))()
    if hasattr(connection, "add_outbox"):
        from regelwerk.store.records import OutboxEntry

        connection.add_outbox(OutboxEntry(message_id, now, recipient, mail.subject, mail.body, mail.template,
                                          sender, subject_ref, instance_id, secret=secret))
        return message_id
    stamp = utc_naive(now)
    connection.execute(outbox.insert().values(
        id=message_id, created_at=stamp, template=mail.template, subject_ref=subject_ref,
        instance_id=instance_id, recipient=recipient, sender=sender, subject=mail.subject, body=mail.body,
        status="pending", attempts=0, next_attempt_at=stamp, secret=secret,
    ))
    return message_id


def list_messages(connection: Any, *, status: str | None = None, subject_ref: str | None = None,
                  recipient: str | None = None) -> list[OutboxMessage]:
    """Messages in creation order, optionally filtered."""
    from regelwerk.outbox.tables import outbox

    query = outbox.select().order_by(outbox.c.created_at, outbox.c.id)
    if status is not None:
        query = query.where(outbox.c.status == status)
    if subject_ref is not None:
        query = query.where(outbox.c.subject_ref == subject_ref)
    if recipient is not None:
        query = query.where(outbox.c.recipient == recipient)
    return [OutboxMessage.from_row(row) for row in connection.execute(query)]


def erase_subjects(connection: Any, subject_refs: Iterable[str], chunk: int = 500) -> int:
    """Delete every message whose ``subject_ref`` is one of these (AVG erasure); return how many rows went. A digest
    that lists them is not reached (it has no ``subject_ref``): erase through ``StoreTx.erase_personal_data``."""
    from regelwerk.outbox.tables import outbox

    refs: Sequence[str] = list(subject_refs)
    total = 0
    for start in range(0, len(refs), chunk):
        part = refs[start:start + chunk]
        total += connection.execute(outbox.delete().where(outbox.c.subject_ref.in_(part))).rowcount or 0
    return total
