"""The outbox: written in the caller's transaction, delivered to a real SMTP server, retried, given up."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from typing import Any

import pytest
import sqlalchemy as sa
from regelwerk.outbox.queue import enqueue, list_messages
from regelwerk.outbox.sender import RetryPolicy, SmtpTransport, deliver_pending
from regelwerk.store.tables import all_tables
from regelwerk.templates.model import RenderedMail

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MAIL = RenderedMail("afwijzing", "Je sollicitatie: Kok", "Beste Anna,\n\nHelaas.\n")


class Inbox:
    """An aiosmtpd handler that keeps every message; refuses recipients at refused.example."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.endswith("@refused.example"):
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[sa.Engine]:
    url = f"sqlite:///{tmp_path / 'outbox.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    engine = sa.create_engine(url)
    all_tables().create_all(engine)
    yield engine
    engine.dispose()


def test_rolled_back_change_sends_nothing_committed_change_loses_nothing(db: sa.Engine) -> None:
    with pytest.raises(RuntimeError), db.begin() as conn:
        enqueue(conn, MAIL, recipient="anna@example.nl", now=NOW)
        raise RuntimeError("the state change failed")
    with db.begin() as conn:
        enqueue(conn, MAIL, recipient="anna@example.nl", now=NOW, subject_ref="candidate:1")
    with db.connect() as conn:
        rows = list_messages(conn)
    assert [(m.recipient, m.status, m.subject_ref) for m in rows] == [("anna@example.nl", "pending", "candidate:1")]


def test_delivers_over_real_smtp(db: sa.Engine, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    with db.begin() as conn:
        message_id = enqueue(conn, MAIL, recipient="anna@example.nl", now=NOW)
    with SmtpTransport("127.0.0.1", port) as transport:
        report = deliver_pending(db, transport, now=NOW, default_sender="vacatures@example.nl")
    assert report.sent == [message_id]
    [mail] = inbox.messages
    assert mail["To"] == "anna@example.nl" and mail["From"] == "vacatures@example.nl"
    assert mail["Subject"] == "Je sollicitatie: Kok" and mail["X-Regelwerk-Outbox-Id"] == message_id
    assert "Helaas." in mail.get_payload(decode=True).decode()
    with db.connect() as conn:
        [row] = list_messages(conn)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 1, NOW)
    with SmtpTransport("127.0.0.1", port) as transport:
        assert deliver_pending(db, transport, now=NOW, default_sender="x@example.nl").sent == []
    assert len(inbox.messages) == 1


def test_unreachable_server_is_retried_with_backoff_then_given_up(db: sa.Engine) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    with db.begin() as conn:
        enqueue(conn, MAIL, recipient="anna@example.nl", now=NOW)
    policy = RetryPolicy(max_attempts=3, initial_delay=timedelta(minutes=1), factor=4)
    transport = SmtpTransport("127.0.0.1", dead_port, timeout=2)
    moment = NOW
    outcomes = []
    for _ in range(4):
        report = deliver_pending(db, transport, now=moment, default_sender="x@example.nl", policy=policy)
        outcomes.append((len(report.retried), len(report.failed)))
        with db.connect() as conn:
            [row] = list_messages(conn)
        moment = row.next_attempt_at
        if row.status == "failed":
            break
        assert row.status == "pending" and row.last_error
    assert outcomes == [(1, 0), (1, 0), (0, 1)]
    assert row.attempts == 3 and row.next_attempt_at == NOW + timedelta(minutes=1) + timedelta(minutes=4)
    assert deliver_pending(db, transport, now=moment + timedelta(days=1), default_sender="x@example.nl").failed == []


def test_not_due_yet_is_left_alone(db: sa.Engine, smtp: tuple[Inbox, int]) -> None:
    _, port = smtp
    with db.begin() as conn:
        enqueue(conn, MAIL, recipient="anna@example.nl", now=NOW)
    report = deliver_pending(db, SmtpTransport("127.0.0.1", port), now=NOW - timedelta(seconds=1),
                             default_sender="x@example.nl")
    assert report.sent == [] and report.retried == []


def test_refused_recipient_fails_at_once(db: sa.Engine, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    with db.begin() as conn:
        enqueue(conn, MAIL, recipient="ghost@refused.example", now=NOW)
        enqueue(conn, MAIL, recipient="anna@example.nl", now=NOW + timedelta(seconds=1))
    with SmtpTransport("127.0.0.1", port) as transport:
        report = deliver_pending(db, transport, now=NOW + timedelta(minutes=1), default_sender="x@example.nl")
    assert len(report.failed) == 1 and len(report.sent) == 1
    assert [m["To"] for m in inbox.messages] == ["anna@example.nl"]


def test_recipient_with_line_break_is_refused(db: sa.Engine) -> None:
    from regelwerk.errors import InvalidData

    with pytest.raises(InvalidData), db.begin() as conn:
        enqueue(conn, MAIL, recipient="a@example.nl\r\nBcc: b@example.nl", now=NOW)


@pytest.mark.parametrize("recipient", ["a@example.nl,b@evil.example", "a@example.nl;b@evil.example",
                                       "A <a@example.nl>", "a@example.nl b@evil.example", "a@", "@example.nl",
                                       "a@b@example.nl", "a" * 320 + "@example.nl", "a@example.nl\x85"])
def test_a_recipient_that_is_not_one_mailbox_is_refused(db: sa.Engine, recipient: str) -> None:
    from regelwerk.errors import InvalidData

    with pytest.raises(InvalidData, match="not the address of one mailbox"), db.begin() as conn:
        enqueue(conn, MAIL, recipient=recipient, now=NOW)
    with db.connect() as conn:
        assert list_messages(conn) == []


def test_a_stored_row_whose_recipient_is_a_list_is_sent_to_nobody(db: sa.Engine, smtp: tuple[Inbox, int]) -> None:
    """A row queued before the outbox checked its recipient (``a@...,b@...``): smtplib would mail both addresses of
    the To header; it fails for good, and nobody gets it."""
    from regelwerk.outbox.tables import outbox

    inbox, port = smtp
    with db.begin() as conn:
        enqueue(conn, MAIL, recipient="anna@example.nl", now=NOW, new_id=lambda: "m1")
        conn.execute(outbox.update().where(outbox.c.id == "m1").values(
            recipient="anna@example.nl,boss@evil.example"))
    with SmtpTransport("127.0.0.1", port) as transport:
        report = deliver_pending(db, transport, now=NOW + timedelta(minutes=1), default_sender="x@example.nl")
    assert report.failed == ["m1"] and report.sent == [] and inbox.messages == []
    with db.connect() as conn:
        [message] = list_messages(conn)
    assert message.status == "failed" and "one mailbox" in (message.last_error or "")


def test_cli_send(tmp_path: Any, smtp: tuple[Inbox, int]) -> None:
    from click.testing import CliRunner
    from regelwerk.outbox.commands import outbox_group

    inbox, port = smtp
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    engine = sa.create_engine(url)
    all_tables().create_all(engine)
    with engine.begin() as conn:
        enqueue(conn, MAIL, recipient="anna@example.nl", now=NOW)
    engine.dispose()
    result = CliRunner().invoke(outbox_group, ["send", "--store", url, "--smtp", f"127.0.0.1:{port}",
                                               "--from", "vacatures@example.nl"])
    assert result.exit_code == 0, result.output
    assert "sent 1" in result.output and len(inbox.messages) == 1
    listed = CliRunner().invoke(outbox_group, ["list", "--store", url, "--format", "json"])
    assert '"status": "sent"' in listed.output


def _send_then_die(url: str, port: int, now: datetime, policy: RetryPolicy) -> None:
    """A sender whose process is killed (SIGKILL) right after the SMTP server accepted the mail."""
    import os
    import signal

    class KillAfterSend(SmtpTransport):
        def send(self, message: Any) -> None:
            super().send(message)
            os.kill(os.getpid(), signal.SIGKILL)

    deliver_pending(sa.create_engine(url), KillAfterSend("127.0.0.1", port), now=now, default_sender="x@example.nl",
                    policy=policy)


def _killed_sender(db: sa.Engine, port: int, now: datetime, policy: RetryPolicy) -> None:
    import multiprocessing
    import signal

    url = db.url.render_as_string(hide_password=False)
    process = multiprocessing.get_context("fork").Process(target=_send_then_die, args=(url, port, now, policy))
    process.start()
    process.join(60)
    assert process.exitcode == -signal.SIGKILL


def test_a_stale_claim_two_senders_listed_at_once_is_sent_again_once(db: sa.Engine, smtp: tuple[Inbox, int]) -> None:
    """A sender killed after the server accepted the mail leaves its claim; once the lease is over, two senders
    (overlapping cron runs) both list the message before either claims it. The claim counts the attempt, so only
    one of them claims and sends it: one retry, one more mail (before, both claimed it and sent it twice, and a
    mail with a secret made at delivery went out with two different secrets)."""
    import threading

    inbox, port = smtp
    policy = RetryPolicy()
    with db.begin() as conn:
        message_id = enqueue(conn, MAIL, recipient="anna@example.nl", now=NOW)
    _killed_sender(db, port, NOW, policy)
    with db.connect() as conn:
        [row] = list_messages(conn)
    assert (row.status, row.attempts, len(inbox.messages)) == ("sending", 1, 1)  # the attempt is counted
    later = NOW + policy.lease + timedelta(minutes=1)
    barrier = threading.Barrier(2)
    reports: dict[str, Any] = {}

    def run(name: str) -> None:
        calls = iter(range(100))

        def clock() -> datetime:
            if next(calls) == 1:  # after listing the due messages, before claiming the first
                barrier.wait(10)
            return later

        with SmtpTransport("127.0.0.1", port) as transport:
            reports[name] = deliver_pending(db, transport, now=clock, default_sender="x@example.nl", policy=policy)

    threads = [threading.Thread(target=run, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(len(r.sent) for r in reports.values()) == [0, 1]
    assert sorted(r.skipped for r in reports.values()) == [0, 1]
    with db.connect() as conn:
        [row] = list_messages(conn)
    assert (row.status, row.attempts) == ("sent", 2)
    assert [m["X-Regelwerk-Outbox-Id"] for m in inbox.messages] == [message_id, message_id]


def test_a_message_whose_sender_dies_in_every_attempt_fails_after_max_attempts(db: sa.Engine,
                                                                               smtp: tuple[Inbox, int]) -> None:
    """Each claim is an attempt, also one whose sender is killed before it writes the outcome: after
    ``max_attempts`` such claims the message is ``failed``, not sent again after every lease for ever."""
    inbox, port = smtp
    policy = RetryPolicy(max_attempts=3)
    with db.begin() as conn:
        enqueue(conn, MAIL, recipient="anna@example.nl", now=NOW)
    moment = NOW
    for _ in range(policy.max_attempts):
        _killed_sender(db, port, moment, policy)
        moment += policy.lease + timedelta(seconds=1)
    with SmtpTransport("127.0.0.1", port) as transport:
        report = deliver_pending(db, transport, now=moment, default_sender="x@example.nl", policy=policy)
    assert (report.sent, len(report.failed)) == ([], 1)
    with db.connect() as conn:
        [row] = list_messages(conn)
    assert (row.status, row.attempts, len(inbox.messages)) == ("failed", 3, 3)
    assert row.last_error and "stopped during attempt 3 of 3" in row.last_error
    with SmtpTransport("127.0.0.1", port) as transport:
        assert deliver_pending(db, transport, now=moment + timedelta(days=1), default_sender="x@example.nl",
                               policy=policy).failed == []


class _Odd(BaseException):
    """A plugin's own BaseException subclass (not a process stop)."""


class _RaisingTransport:
    """A custom transport (plugin code) that raises what it is given for the first recipient, sends the others."""

    def __init__(self, raised: BaseException | None) -> None:
        self.raised = raised
        self.sent: list[str] = []

    def send(self, message: Any) -> None:
        if self.raised is not None and message["To"] == "anna@example.nl":
            raise self.raised
        self.sent.append(message["To"])


@pytest.mark.parametrize("raised", [_Odd("odd\x00 text"), GeneratorExit(), KeyError("no")],
                         ids=["own-base-exception", "generator-exit", "key-error"])
def test_a_custom_transport_raising_any_plugin_fault_retries_that_message_and_sends_the_others(
        db: sa.Engine, raised: BaseException) -> None:
    """Before, a transport raising a ``BaseException`` that is not an ``Exception`` left the loop: its message
    stayed claimed ("sending" until the lease ran out) and the messages after it were not sent by this call."""
    with db.begin() as conn:
        for who in ("anna", "bob", "cem"):
            enqueue(conn, MAIL, recipient=f"{who}@example.nl", now=NOW)
    transport = _RaisingTransport(raised)
    report = deliver_pending(db, transport, now=NOW, default_sender="x@example.nl")
    assert (len(report.sent), len(report.retried)) == (2, 1) and sorted(transport.sent) == [
        "bob@example.nl", "cem@example.nl"]
    with db.connect() as conn:
        anna = next(m for m in list_messages(conn) if m.recipient == "anna@example.nl")
    assert anna.status == "pending" and anna.attempts == 1 and type(raised).__name__ in (anna.last_error or "")
    assert "\x00" not in (anna.last_error or "")


def test_a_process_stop_from_a_transport_passes_through_and_the_lease_brings_the_message_back(db: sa.Engine) -> None:
    with db.begin() as conn:
        enqueue(conn, MAIL, recipient="anna@example.nl", now=NOW)
    with pytest.raises(KeyboardInterrupt):
        deliver_pending(db, _RaisingTransport(KeyboardInterrupt()), now=NOW, default_sender="x@example.nl")
    with db.connect() as conn:
        assert [m.status for m in list_messages(conn)] == ["sending"]
    fixed = _RaisingTransport(None)
    later = NOW + RetryPolicy().lease + timedelta(seconds=1)
    assert len(deliver_pending(db, fixed, now=later, default_sender="x@example.nl").sent) == 1
    assert fixed.sent == ["anna@example.nl"]


def test_a_custom_transport_that_hangs_fails_its_message_within_the_time_limit(db: sa.Engine) -> None:
    import time

    with db.begin() as conn:
        for who in ("anna", "bob"):
            enqueue(conn, MAIL, recipient=f"{who}@example.nl", now=NOW)

    class Hanging(_RaisingTransport):
        def send(self, message: Any) -> None:
            if message["To"] == "anna@example.nl":
                time.sleep(60)
            self.sent.append(message["To"])

    transport = Hanging(None)
    started = time.perf_counter()
    report = deliver_pending(db, transport, now=NOW, default_sender="x@example.nl", time_limit=0.3)
    assert time.perf_counter() - started < 10
    assert (len(report.sent), len(report.retried), transport.sent) == (1, 1, ["bob@example.nl"])
    with db.connect() as conn:
        anna = next(m for m in list_messages(conn) if m.recipient == "anna@example.nl")
    assert anna.status == "pending" and "TimeLimitExceeded" in (anna.last_error or "")


def test_a_mail_sent_again_after_its_sender_was_killed_has_the_same_message_id(db: sa.Engine,
                                                                                 smtp: tuple[Inbox, int]) -> None:
    """At-least-once: a sender killed (SIGKILL) after the server accepted the mail and before it wrote ``sent``
    leaves the claim, and the message goes out again once the lease is over. The second copy has the first's
    Message-ID, so a receiver (or any mail store that deduplicates on it) can drop it. Before, the Message-ID
    was made anew for every send (``make_msgid``: time, process id, random), and only the pack's own
    ``X-Regelwerk-Outbox-Id`` header was the same."""
    inbox, port = smtp
    policy = RetryPolicy()
    with db.begin() as conn:
        message_id = enqueue(conn, MAIL, recipient="anna@example.nl", now=NOW, sender="vacatures@example.nl")
    _killed_sender(db, port, NOW, policy)
    with SmtpTransport("127.0.0.1", port) as transport:
        report = deliver_pending(db, transport, now=NOW + policy.lease + timedelta(seconds=1),
                                 default_sender="x@example.nl", policy=policy)
    assert report.sent == [message_id]
    first, second = inbox.messages
    assert first["Message-ID"] == second["Message-ID"] == f"<{message_id}.outbox@example.nl>"


def test_a_mail_with_a_secret_made_at_delivery_sent_again_has_a_new_message_id(db: sa.Engine,
                                                                               smtp: tuple[Inbox, int]) -> None:
    """A mail whose secret is made as it is sent (a fresh password, a reset link) is not the same mail when it
    is sent again: the new secret replaced the first (that password no longer works). It gets a Message-ID of its
    own attempt, so a receiver that deduplicates keeps the copy that works."""
    inbox, port = smtp
    policy = RetryPolicy()
    with db.begin() as conn:
        message_id = enqueue(conn, MAIL, recipient="anna@example.nl", now=NOW, sender="hr@example.nl",
                             secret="password:anna")
    made = iter(["first-secret", "second-secret"])

    def secrets(secret: str, moment: datetime) -> str:
        return next(made)

    class Killed(SmtpTransport):
        def send(self, message: Any) -> None:
            super().send(message)
            raise KeyboardInterrupt  # the process stops after the server accepted the mail

    with pytest.raises(KeyboardInterrupt):
        deliver_pending(db, Killed("127.0.0.1", port), now=NOW, default_sender="x@example.nl", policy=policy,
                        secrets=secrets)
    with SmtpTransport("127.0.0.1", port) as transport:
        report = deliver_pending(db, transport, now=NOW + policy.lease + timedelta(seconds=1),
                                 default_sender="x@example.nl", policy=policy, secrets=secrets)
    assert report.sent == [message_id]
    first, second = inbox.messages
    assert first["Message-ID"] == f"<{message_id}.outbox.1@example.nl>"
    assert second["Message-ID"] == f"<{message_id}.outbox.2@example.nl>"


def _send_all(url: str, port: int, now: datetime, ready: Any) -> None:
    """One sender process: waits for the others, then delivers everything due."""
    ready.wait(20)
    engine = sa.create_engine(url)
    with SmtpTransport("127.0.0.1", port) as transport:
        deliver_pending(engine, transport, now=now, default_sender="x@example.nl", limit=1000)
    engine.dispose()


def test_three_sender_processes_at_once_send_every_message_exactly_once(db: sa.Engine,
                                                                         smtp: tuple[Inbox, int]) -> None:
    """Overlapping cron runs: three processes list the same 60 due messages at the same moment; each message is
    claimed by one of them and reaches the server once."""
    import multiprocessing

    inbox, port = smtp
    with db.begin() as conn:
        ids = [enqueue(conn, MAIL, recipient=f"p{i}@example.nl", now=NOW) for i in range(60)]
    url = db.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(3)
    processes = [context.Process(target=_send_all, args=(url, port, NOW, ready)) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    assert sorted(m["X-Regelwerk-Outbox-Id"] for m in inbox.messages) == sorted(ids)
    with db.connect() as conn:
        assert {(m.status, m.attempts) for m in list_messages(conn)} == {("sent", 1)}
