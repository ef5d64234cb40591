"""Delivering the outbox over SMTP: claim, send, mark sent; retry with backoff; give up after a limit.

Every message is claimed with a conditional UPDATE before sending, which counts the attempt: the claim
matches only the status and attempt count its sender read, and changes the count, so of two senders that
read the same row (pending, or a stale claim) exactly one claims it, and a sender that dies during its
attempt has used that attempt. The outcome is written in its own short transaction, only while the claim
is still the sender's own (status ``sending`` and its attempt count). A claim whose sender died is retried
after ``RetryPolicy.lease`` (at-least-once: a sender killed after the server accepted the mail and before it wrote
``sent`` cannot be told from one killed before sending, so the mail goes out again; every send of a message carries
the same Message-ID, ``<id.outbox@domain>``, and ``X-Regelwerk-Outbox-Id``, so a receiver can deduplicate; a mail
with a secret made at delivery has a Message-ID per attempt, since a later attempt's secret replaced the earlier
one); one that died in its last attempt is ``failed``, not sent again.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from types import TracebackType
from typing import Any, Protocol

from regelwerk.errors import is_plugin_fault, storable_text
from regelwerk.limits import limited
from regelwerk.outbox.queue import OutboxMessage, address_problem, to_utc, utc_naive

__all__ = ["DeliveryReport", "PermanentFailure", "RetryPolicy", "SecretResolver", "SmtpTransport", "Transport",
           "deliver_pending", "message_id", "to_email"]

#: Makes the secret a message names (``"password:anna"``) at the moment it is sent, e.g. a fresh password whose
#: hash it stores: ``resolver(secret, now) -> text``. The text goes into the mail and nowhere else.
SecretResolver = Callable[[str, datetime], str]


class PermanentFailure(Exception):
    """The receiving side refused the mail for good (5xx): retrying will not help."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how late to retry: exponential backoff, a cap, a maximum number of attempts."""

    max_attempts: int = 5
    initial_delay: timedelta = timedelta(minutes=1)
    factor: float = 4.0
    max_delay: timedelta = timedelta(hours=6)
    lease: timedelta = timedelta(minutes=10)

    def delay(self, attempts: int) -> timedelta:
        """The wait before the next try after ``attempts`` failed tries (1, 4, 16, 64 minutes... capped)."""
        seconds = self.initial_delay.total_seconds() * (self.factor ** max(attempts - 1, 0))
        return min(timedelta(seconds=seconds), self.max_delay)


class Transport(Protocol):
    """Something that delivers one e-mail or raises (``PermanentFailure`` for a definite refusal)."""

    def send(self, message: EmailMessage) -> None:
        """Deliver one message."""


class SmtpTransport:
    """SMTP via smtplib: one connection reused for a run, reopened when the server hangs up."""

    def __init__(self, host: str, port: int = 25, *, timeout: float = 10.0, starttls: bool = False,
                 username: str | None = None, password: str | None = None, local_hostname: str | None = None) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.starttls = starttls
        self.username = username
        self.password = password
        self.local_hostname = local_hostname
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout, local_hostname=self.local_hostname)
        if self.starttls:
            smtp.starttls()
        if self.username:
            smtp.login(self.username, self.password or "")
        return smtp

    def send(self, message: EmailMessage) -> None:
        """Send one message; SMTP 5xx answers become ``PermanentFailure``."""
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            refused = self._smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            self.close()
            if codes and all(code >= 500 for code in codes):
                raise PermanentFailure(f"recipient refused: {exc.recipients}") from exc
            raise
        except smtplib.SMTPResponseException as exc:
            self.close()
            if exc.smtp_code >= 500:
                raise PermanentFailure(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
            raise
        except (smtplib.SMTPException, OSError):
            self.close()
            raise
        if refused:
            raise PermanentFailure(f"recipient refused: {refused}")

    def close(self) -> None:
        """Quit the connection (if open)."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


@dataclass
class DeliveryReport:
    """What one delivery run did."""

    sent: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: int = 0

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (f"sent {len(self.sent)}, to retry {len(self.retried)}, failed {len(self.failed)}"
                + (f", skipped {self.skipped} (claimed elsewhere)" if self.skipped else ""))


def message_id(message: OutboxMessage, sender: str, domain: str | None = None, attempt: int | None = None) -> str:
    """The Message-ID of an outbox row: the same for every send of it (a receiver deduplicates a mail sent again
    after its sender died between the server's answer and writing ``sent``), made of the row's id and ``domain``
    (default: the From address's domain). ``attempt`` (a mail with a secret made at delivery) makes each attempt's
    Message-ID its own: the secret of a later attempt replaced the earlier one, so that copy is not a duplicate."""
    host = domain or parseaddr(sender)[1].rpartition("@")[2].strip() or "regelwerk.invalid"
    local = f"{message.id}.outbox" + (f".{attempt}" if attempt is not None else "")
    return f"<{local}@{host}>"


def to_email(message: OutboxMessage, default_sender: str, domain: str | None = None,
             secret: str | None = None, attempt: int | None = None) -> EmailMessage:
    """The RFC 5322 message for an outbox row (``secret`` replaces the body's ``SECRET_MARKER``; ``attempt``: see
    :func:`message_id`, given for a mail with a secret)."""
    mail = EmailMessage()
    sender = message.sender or default_sender
    mail["From"] = sender
    mail["To"] = message.recipient
    mail["Subject"] = message.subject
    mail["Date"] = format_datetime(to_utc(message.created_at) or message.created_at)
    mail["Message-ID"] = message_id(message, sender, domain, attempt)
    mail["X-Regelwerk-Outbox-Id"] = message.id
    if secret is not None:
        from regelwerk.outbox.queue import SECRET_MARKER

        mail.set_content(message.body.replace(SECRET_MARKER, secret))
    else:
        mail.set_content(message.body)
    return mail


def deliver_pending(sa_engine: Any, transport: Transport, *, now: datetime | Callable[[], datetime],
                    default_sender: str, policy: RetryPolicy | None = None, limit: int = 100,
                    domain: str | None = None, secrets: SecretResolver | None = None,
                    time_limit: float | None = None) -> DeliveryReport:
    """Send due messages (pending and due, or claimed longer than the lease ago); return what happened.

    ``time_limit``: seconds one send may take (:mod:`regelwerk.limits`; a custom transport that hangs fails that
    message, retried later); ``SmtpTransport`` has its own socket timeout.

    A message that names a secret gets it from ``secrets`` right before it is sent; without a resolver,
    or when the resolver refuses (``LookupError``: the account is gone), the message fails for good.
    """
    import sqlalchemy as sa
    from regelwerk.outbox.tables import outbox

    policy = policy or RetryPolicy()
    clock: Callable[[], datetime] = now if callable(now) else (lambda: now)
    start = utc_naive(clock())
    report = DeliveryReport()
    due = sa.or_(
        sa.and_(outbox.c.status == "pending", outbox.c.next_attempt_at <= start),
        sa.and_(outbox.c.status == "sending", outbox.c.claimed_at <= start - policy.lease),
    )
    with sa_engine.begin() as conn:
        rows = conn.execute(outbox.select().where(due).order_by(outbox.c.next_attempt_at, outbox.c.id)
                            .limit(limit)).fetchall()
    for row in rows:
        message = OutboxMessage.from_row(row)
        moment = utc_naive(clock())
        # the claim is conditional on what was read and changes it (the attempt is counted here): of two senders
        # that read this row, the second changes nothing
        read = (outbox.c.id == message.id, outbox.c.status == row._mapping["status"],
                outbox.c.attempts == message.attempts)
        attempts = message.attempts + 1
        if row._mapping["status"] == "sending" and message.attempts >= policy.max_attempts:
            # its sender died during the last attempt (the lease ran out): given up, not sent once more
            with sa_engine.begin() as conn:
                gave_up = conn.execute(outbox.update().where(*read).values(
                    status="failed", claimed_at=None, last_error=f"the sender stopped during attempt "
                    f"{message.attempts} of {policy.max_attempts} (no outcome within the lease)")).rowcount
            if gave_up == 1:
                report.failed.append(message.id)
            else:
                report.skipped += 1
            continue
        with sa_engine.begin() as conn:
            claimed = conn.execute(outbox.update().where(*read).values(
                status="sending", claimed_at=moment, attempts=attempts)).rowcount
        if claimed != 1:
            report.skipped += 1
            continue
        try:
            why = address_problem(message.recipient)
            if why is not None:  # queued before the outbox checked it: never split into several recipients
                raise PermanentFailure(f"the recipient is not the address of one mailbox ({why})")
            secret = None
            if message.secret:
                if secrets is None:
                    raise PermanentFailure(f"no resolver for the secret {message.secret.split(':')[0]!r}")
                try:
                    secret = secrets(message.secret, clock())
                except LookupError as exc:
                    raise PermanentFailure(f"secret {message.secret!r}: {exc}") from None
            limited(time_limit, "mail transport", transport.send,
                    to_email(message, default_sender, domain, secret, attempts if message.secret else None))
        except PermanentFailure as exc:
            _finish(sa_engine, message.id, status="failed", attempts=attempts, error=storable_text(exc), moment=moment)
            report.failed.append(message.id)
            continue
        except BaseException as exc:  # any transport failure is retried; the error text is kept
            if not is_plugin_fault(exc):  # a process stop passes through (the claim's lease brings it back)
                raise
            error = storable_text(f"{type(exc).__name__}: {exc}", 1000)
            if attempts >= policy.max_attempts:
                _finish(sa_engine, message.id, status="failed", attempts=attempts, error=error, moment=moment)
                report.failed.append(message.id)
            else:
                _finish(sa_engine, message.id, status="pending", attempts=attempts, error=error, moment=moment,
                        next_attempt=moment + policy.delay(attempts))
                report.retried.append(message.id)
            continue
        _finish(sa_engine, message.id, status="sent", attempts=attempts, error=None, moment=moment, sent=True)
        report.sent.append(message.id)
    return report


def _finish(sa_engine: Any, message_id: str, *, status: str, attempts: int, error: str | None, moment: datetime,
            next_attempt: datetime | None = None, sent: bool = False) -> None:
    from regelwerk.outbox.tables import outbox

    values: dict[str, Any] = {"status": status, "last_error": error, "claimed_at": None}
    if next_attempt is not None:
        values["next_attempt_at"] = next_attempt
    if sent:
        values["sent_at"] = moment
    with sa_engine.begin() as conn:
        # only while the claim is this sender's (its attempt): a sender that outlived its lease, whose message
        # another sender claimed since, changes nothing
        conn.execute(outbox.update().where(outbox.c.id == message_id, outbox.c.status == "sending",
                                           outbox.c.attempts == attempts).values(**values))
