"""step2HR accounts: a generated password kept only as an Argon2id hash, the welcome mail whose password is
made when a real SMTP server receives it, and a single-use, expiring reset link; no password or usable token
is ever in the store or the logs."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from regelwerk.outbox.queue import SECRET_MARKER, list_messages
from regelwerk.outbox.sender import SmtpTransport, deliver_pending
from regelwerk.permissions.accounts import Accounts, InvalidCredentials
from regelwerk.permissions.invitations import InvitationExpired, InvitationSuperseded, InvitationUsed


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        from email import message_from_bytes

        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on a free local port."""
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
FAST = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)  # real Argon2id, cheap enough for tests


@pytest.fixture(scope="module")
def templates() -> Any:
    from regelwerk.cli import load_compiled

    compiled = load_compiled(str(ROOT / "definitions" / "standard"))
    return compiled.get("Template", "welkomstbericht"), compiled.get("Template", "wachtwoord-instellen")


@pytest.fixture
def db(tmp_path: Path) -> Any:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'accounts.sqlite'}")
    yield engine
    engine.dispose()


def deliver(db: Any, port: int, accounts: Accounts, now: datetime = NOW) -> Any:
    with SmtpTransport("127.0.0.1", port) as transport:
        return deliver_pending(db, transport, now=now, default_sender="hr@example.nl",
                               secrets=accounts.resolve_secret)


def body(message: Any) -> str:
    return str(message.get_payload(decode=True).decode("utf-8"))


def test_welcome_mail_reset_link_and_nothing_in_store_or_logs(db: Any, smtp: tuple[Inbox, int], templates: Any,
                                                              tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                              ) -> None:
    inbox, port = smtp
    welcome, reset = templates
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # every SQL statement with its parameters
    secrets: list[str] = []
    accounts = Accounts(db, hasher=FAST, create=True)
    created = accounts.create("tom", subject="e2", email="tom@example.nl", name="Tom Teamleider", by="beheerder",
                              now=NOW)
    secrets.append(created.password)
    assert "***" in repr(created) and created.password not in repr(created)
    assert accounts.authenticate("tom", created.password, NOW).subject == "e2"
    for user, password in (("tom", "wrong-password"), ("nobody", created.password)):
        with pytest.raises(InvalidCredentials, match="unknown user or wrong password"):
            accounts.authenticate(user, password, NOW)

    # the welcome mail via the outbox: the stored body holds a marker; the password is made on delivery
    accounts.send_welcome("tom", welcome, now=NOW, values={"company": {"name": "Zorggroep Oost"},
                                                           "sender": {"name": "P&O"}})
    with db.connect() as conn:
        (queued,) = list_messages(conn)
    assert SECRET_MARKER in queued.body and queued.secret == "password:tom"
    assert deliver(db, port, accounts).sent == [queued.id]
    mail = body(inbox.messages[-1])
    sent_password = re.search(r"Wachtwoord: (\S+)", mail)
    assert sent_password is not None and "Gebruikersnaam: tom" in mail and SECRET_MARKER not in mail
    secrets.append(sent_password[1])
    assert accounts.authenticate("tom", sent_password[1], NOW).username == "tom"
    with pytest.raises(InvalidCredentials):
        accounts.authenticate("tom", created.password, NOW)  # the mail's password replaced the first one

    # "Wachtwoord aanvragen?": an unknown address queues nothing; a known one a single-use link
    assert accounts.request_reset("onbekend@example.nl", reset, base_url="https://hr.example/reset?t=", now=NOW) \
        is False
    assert accounts.request_reset("Tom@Example.nl", reset, base_url="https://hr.example/reset?t=", now=NOW)
    assert deliver(db, port, accounts).sent
    first = re.search(r"https://hr\.example/reset\?t=(\S+)", body(inbox.messages[-1]))
    assert first is not None and "2 uur geldig" in body(inbox.messages[-1])
    secrets.append(first[1])
    later = NOW + timedelta(minutes=5)
    assert accounts.request_reset("tom@example.nl", reset, base_url="https://hr.example/reset?t=", now=later)
    assert deliver(db, port, accounts, later).sent
    second = re.search(r"https://hr\.example/reset\?t=(\S+)", body(inbox.messages[-1]))
    assert second is not None
    secrets.append(second[1])
    with pytest.raises(InvitationSuperseded):
        accounts.reset_password(first[1], "nieuw-wachtwoord-1", later)
    new_password = "Zomer-2027-lang-genoeg"
    secrets.append(new_password)
    with pytest.raises(InvitationExpired):
        accounts.reset_password(second[1], new_password, later + timedelta(hours=2))
    account = accounts.reset_password(second[1], new_password, later)
    assert account.username == "tom" and accounts.authenticate("tom", new_password, later)
    with pytest.raises(InvitationUsed):
        accounts.reset_password(second[1], "nog-een-wachtwoord", later)

    # nothing secret in the store (every table, and the database file's bytes) or in the logs
    db.dispose()
    raw = (tmp_path / "accounts.sqlite").read_bytes()
    with db.connect() as conn:
        dump = "\n".join(str(tuple(row)) for table in ("rw_accounts", "rw_invitations", "rw_outbox")
                         for row in conn.execute(sa.text(f"select * from {table}")))
    # every log record of this process except the receiving test SMTP server's own ("mail.log": aiosmtpd logs the
    # DATA it receives, as the recipient's mail server would)
    logs = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records if not r.name.startswith("mail.log"))
    assert "INSERT INTO rw_accounts" in logs and "$argon2id$" in dump
    for secret in secrets:
        where = raw.find(secret.encode())
        assert where < 0, (secrets.index(secret), raw[max(0, where - 200):where + 60])
        assert secret not in dump and secret not in logs


def test_login_rehashes_weaker_hashes_and_refuses_bad_input(db: Any) -> None:
    weak = Accounts(db, hasher=FAST, create=True)
    created = weak.create("els", subject="1", email="els@example.nl", by="beheerder", now=NOW)
    strong = Accounts(db)  # argon2-cffi's defaults: Argon2id, t=3, 64 MiB, p=4
    strong.authenticate("els", created.password, NOW)
    with db.connect() as conn:
        stored = conn.execute(sa.text("select password_hash from rw_accounts")).scalar_one()
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    from regelwerk.errors import InvalidData

    with pytest.raises(InvalidData, match="exists already"):
        weak.create("els", subject="1", email="els@example.nl", by="beheerder", now=NOW)
    with pytest.raises(InvalidData, match="not an e-mail address"):
        weak.create("x", subject="1", email="els", by="beheerder", now=NOW)
    with pytest.raises(InvalidData, match="10 to 1024 characters"):
        weak.reset_password("whatever", "kort", NOW)


def test_a_secret_without_resolver_or_account_fails_for_good(db: Any, smtp: tuple[Inbox, int],
                                                              templates: Any) -> None:
    inbox, port = smtp
    accounts = Accounts(db, hasher=FAST, create=True)
    accounts.create("kim", subject="e4", email="kim@example.nl", by="beheerder", now=NOW)
    accounts.send_welcome("kim", templates[0], now=NOW)
    with SmtpTransport("127.0.0.1", port) as transport:
        report = deliver_pending(db, transport, now=NOW, default_sender="hr@example.nl")
    assert report.failed and not inbox.messages
    with db.connect() as conn:
        assert "no resolver for the secret 'password'" in (list_messages(conn)[0].last_error or "")
    with pytest.raises(LookupError, match="no active account 'nobody'"):
        accounts.resolve_secret("password:nobody", NOW)
