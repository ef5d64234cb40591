"""``regelwerk accounts create|reset|list`` through click's CliRunner on a real SQLite file and a real SMTP server:
the exit-code table, the welcome mail's password and the reset link made on delivery, and no password, hash or
token in anything the commands print or log."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from regelwerk.cli import EXIT_FINDINGS, EXIT_USAGE, build_cli

ROOT = Path(__file__).resolve().parent.parent
STANDARD = str(ROOT / "definitions" / "standard")
BASE_URL = "https://hr.example.nl/wachtwoord?token="
CLI = build_cli()


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


class Session:
    """Every command run against one store, with everything they printed kept."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.printed: list[str] = []

    def run(self, *args: str) -> Any:
        result = CliRunner().invoke(CLI, [*args, "--store", self.url], catch_exceptions=False)
        self.printed.append(result.output)
        assert "Traceback" not in result.output
        return result


def _body(message: Any) -> str:
    return str(message.get_payload(decode=True).decode("utf-8"))


def test_create_reset_list_and_no_secret_printed_or_logged(tmp_path: Path, smtp: tuple[Inbox, int],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    from regelwerk.permissions.accounts import Accounts
    from regelwerk.permissions.invitations import InvitationUsed

    inbox, port = smtp
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # every statement the commands run
    db_file = tmp_path / "accounts.sqlite"
    s = Session(f"sqlite:///{db_file}")
    secrets: list[str] = []

    created = s.run("accounts", "create", STANDARD, "tom", "--subject", "e2", "--email", "tom@example.nl",
                    "--name", "Tom Teamleider", "--company", "Zorggroep Oost", "--sender", "P&O")
    assert created.exit_code == 0, created.output
    assert "account tom created for e2 <tom@example.nl>" in created.output and "welcome mail queued" in created.output
    # the welcome mail is delivered by the outbox: the password is made then, and only the mail holds it
    sent = s.run("outbox", "send", "--smtp", f"127.0.0.1:{port}", "--from", "hr@example.nl")
    assert sent.exit_code == 0, sent.output
    mail = _body(inbox.messages[-1])
    password = re.search(r"Wachtwoord: (\S+)", mail)
    assert password is not None and "Gebruikersnaam: tom" in mail and "Zorggroep Oost" in mail
    secrets.append(password[1])
    sa_engine = sa.create_engine(s.url, hide_parameters=True)  # the test itself logs no parameters either
    accounts = Accounts(sa_engine)
    assert accounts.authenticate("tom", password[1], _now()).subject == "e2"

    # refusals and usage errors
    assert s.run("accounts", "create", STANDARD, "tom", "--subject", "e9", "--email", "x@example.nl",
                 "--no-welcome").exit_code == EXIT_FINDINGS  # the username is taken
    bad = s.run("accounts", "create", STANDARD, "ann", "--subject", "e3", "--email", "geen-adres")
    assert bad.exit_code == EXIT_USAGE and "not an e-mail address" in bad.output
    assert s.run("accounts", "create", STANDARD, "ann", "--subject", "e3", "--email", "ann@example.nl",
                 "--template", "bestaat-niet").exit_code == EXIT_USAGE
    other = s.run("accounts", "create", STANDARD, "ann", "--subject", "e3", "--email", "ann@example.nl",
                  "--template", "afwijzing")  # a recruitment mail, not an account mail
    assert other.exit_code == EXIT_USAGE and "not an account mail" in other.output
    # a reset must not go out in the welcome template: its token would be shown as a password
    swapped = s.run("accounts", "reset", STANDARD, "tom", "--base-url", BASE_URL, "--template", "welkomstbericht")
    assert swapped.exit_code == EXIT_USAGE and "must show reset.link" in swapped.output
    assert s.run("accounts", "reset", STANDARD, "nobody", "--base-url", BASE_URL).exit_code == EXIT_USAGE
    assert s.run("accounts", "reset", STANDARD, "tom", "--base-url", "hr.example.nl").exit_code == EXIT_USAGE
    assert s.run("accounts", "create", STANDARD, "ann", "--subject", "e3", "--email", "ann@example.nl",
                 "--at", "10000-01-01").exit_code == EXIT_USAGE
    with sa_engine.connect() as conn:  # nothing of the refused commands was written
        assert conn.execute(sa.text("select count(*) from rw_accounts")).scalar_one() == 1
        assert conn.execute(sa.text("select count(*) from rw_outbox where status = 'pending'")).scalar_one() == 0

    # an account without a welcome mail: the user sets the password through the reset link
    quiet = s.run("accounts", "create", STANDARD, "ann", "--subject", "e3", "--email", "ann@example.nl",
                  "--no-welcome", "--format", "json")
    assert quiet.exit_code == 0, quiet.output
    data = json.loads(quiet.stdout)
    assert data["welcome_message"] is None and data["account"]["username"] == "ann"
    assert data["account"]["has_password"] is True
    reset = s.run("accounts", "reset", STANDARD, "ann", "--base-url", BASE_URL, "--format", "json")
    assert reset.exit_code == 0, reset.output
    assert json.loads(reset.stdout)["reset_message"]
    assert s.run("outbox", "send", "--smtp", f"127.0.0.1:{port}").exit_code == 0
    link = re.search(re.escape(BASE_URL) + r"(\S+)", _body(inbox.messages[-1]))
    assert link is not None and inbox.messages[-1]["To"] == "ann@example.nl"
    secrets.append(link[1])
    new_password = "Herfst-2027-lang-genoeg"
    secrets.append(new_password)
    assert accounts.reset_password(link[1], new_password, _now()).username == "ann"
    with pytest.raises(InvitationUsed):
        accounts.reset_password(link[1], "nog-een-wachtwoord", _now())
    assert accounts.authenticate("ann", new_password, _now()).username == "ann"

    listed = s.run("accounts", "list", "--format", "json")
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    assert [r["username"] for r in rows] == ["ann", "tom"]
    assert set(rows[0]) == {"username", "subject", "email", "name", "status", "has_password", "password_set_at"}
    text = s.run("accounts", "list")
    assert text.exit_code == 0 and re.search(r"^tom\s+e2\s+active\s+tom@example.nl\s+password set ", text.stdout,
                                             re.M)

    # no password, hash or token in what the commands printed or logged
    with sa_engine.connect() as conn:
        hashes = [h for (h,) in conn.execute(sa.text("select password_hash from rw_accounts"))]
        digests = [d for (d,) in conn.execute(sa.text("select token_hash from rw_invitations"))]
    sa_engine.dispose()
    assert all(h.startswith("$argon2id$") for h in hashes) and len(digests) == 1
    printed = "\n".join(s.printed)
    logs = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records if not r.name.startswith("mail.log"))
    assert "INSERT INTO rw_accounts" in logs and "UPDATE rw_accounts" in logs  # the SQL log was on
    for secret in [*secrets, *hashes, *digests, "$argon2"]:
        assert secret not in printed, secret
        assert secret not in logs, secret
    raw = db_file.read_bytes()
    for secret in secrets:
        assert secret.encode() not in raw


def test_list_of_an_empty_store_and_the_help(tmp_path: Path) -> None:
    s = Session(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    empty = s.run("accounts", "list", "--format", "json")
    assert empty.exit_code == 0 and json.loads(empty.stdout) == []
    assert "0 account(s)" in s.run("accounts", "list").output
    help_text = CliRunner().invoke(CLI, ["accounts", "--help"]).output
    assert all(verb in help_text for verb in ("create", "reset", "list"))


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
