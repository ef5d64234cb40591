"""``regelwerk accounts create|reset|list``: step2HR's user accounts from the command line (docs/accounts.md).

No command prints or logs a password, a password hash or a reset token:

- ``create`` stores the account with the hash of a generated password nobody sees and queues the welcome
  mail; ``regelwerk outbox send`` makes the password the mail shows when it delivers it (and stores only its
  hash). ``--no-welcome`` queues nothing: the user sets a password through ``reset`` or "Wachtwoord
  aanvragen?".
- ``reset`` queues the reset mail; its single-use token is made when the outbox delivers it.
- ``list`` shows the accounts with *whether* they have a password and since when, never the hash.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import click
from regelwerk.cli import EXIT_FINDINGS, EXIT_USAGE, ISO_MOMENT, echo_json, fail, format_option

__all__ = ["accounts_group"]


def _engine(url: str) -> Any:
    from regelwerk.store.sql import create_sa_engine

    # hide_parameters: an SQL log (sqlalchemy.engine at INFO) shows the statements, never the hash they write
    return create_sa_engine(url, hide_parameters=True)


def _now(at: str | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    from regelwerk.scheduling.kind import local_moment

    return local_moment(at)


def _template(path: str, name: str, purpose: str) -> Any:
    from regelwerk.cli import load_definition

    template = load_definition(path, "Template", name)
    if getattr(template, "context", None) != "account_mail":
        fail(f"template {name!r} is not an account mail (its context is {template.context!r}, not "
             f"'account_mail'); the standard's is {purpose!r}", EXIT_USAGE)
    return template


def _values(company: str | None, sender: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if company:
        values["company"] = {"name": company}
    if sender:
        values["sender"] = {"name": sender}
    return values


def _plain(account: Any) -> dict[str, Any]:
    return {"username": account.username, "subject": account.subject, "email": account.email, "name": account.name,
            "status": account.status, "has_password": account.has_password,
            "password_set_at": account.password_set_at.isoformat() if account.password_set_at else None}


@click.group("accounts")
def accounts_group() -> None:
    """User accounts: create with a welcome mail, send a reset link, list (never a password or its hash)."""


@accounts_group.command("create")
@click.argument("path", type=click.Path(exists=True))
@click.argument("username")
@click.option("--store", "store_url", required=True, help="Database URL (sqlite:///file, postgresql+psycopg://...).")
@click.option("--subject", required=True, help="The employee id the account belongs to.")
@click.option("--email", required=True, help="Where the welcome mail and reset links go.")
@click.option("--name", default=None, help="The user's name in the mails (default: the username).")
@click.option("--by", "by", default="cli", show_default=True, help="Who creates the account (kept on the row).")
@click.option("--welcome/--no-welcome", default=True, show_default=True,
              help="Queue the welcome mail; its password is made when `regelwerk outbox send` delivers it.")
@click.option("--template", "template_name", default="welkomstbericht", show_default=True,
              help="The welcome mail's Template (context account_mail) in the bundle at PATH.")
@click.option("--company", default=None, help="company.name in the mail.")
@click.option("--sender", "sender", default=None, help="sender.name in the mail.")
@click.option("--at", default=None, type=ISO_MOMENT, help="The moment of creation (default now).")
@format_option()
def create_command(path: str, username: str, store_url: str, subject: str, email: str, name: str | None, by: str,
                   welcome: bool, template_name: str, company: str | None, sender: str | None, at: str | None,
                   fmt: str) -> None:
    """Create the account USERNAME with a generated password (only its Argon2id hash is stored) and queue the
    welcome mail from the bundle at PATH. Exit 1 when the username is taken, 2 for a bad address or template."""
    from regelwerk.errors import InvalidData
    from regelwerk.permissions.accounts import AccountExists, Accounts

    template = _template(path, template_name, "welkomstbericht") if welcome else None
    now = _now(at)
    sa_engine = _engine(store_url)
    try:
        accounts = Accounts(sa_engine, create=True)
        try:
            with sa_engine.begin() as conn:
                # the password create() hands back is dropped here: nobody is shown it, the welcome mail
                # (or a reset link) gives the user the password that works
                created = accounts.create(username, subject=subject, email=email, by=by, now=now, name=name,
                                          connection=conn).account
                message = (accounts.send_welcome(username, template, now=now, values=_values(company, sender),
                                                 connection=conn) if template is not None else None)
        except AccountExists as exc:
            fail(str(exc), EXIT_FINDINGS)
        except InvalidData as exc:
            fail(str(exc), EXIT_USAGE)
    finally:
        sa_engine.dispose()
    if fmt == "json":
        echo_json({"account": _plain(created), "welcome_message": message})
        return
    click.echo(f"account {created.username} created for {created.subject} <{created.email}>")
    if message is not None:
        click.echo(f"welcome mail queued ({message}); `regelwerk outbox send` delivers it with the password")
    else:
        click.echo("no welcome mail: the user sets a password with `regelwerk accounts reset` or "
                   "'Wachtwoord aanvragen?'", err=True)


@accounts_group.command("reset")
@click.argument("path", type=click.Path(exists=True))
@click.argument("username")
@click.option("--store", "store_url", required=True, help="Database URL.")
@click.option("--base-url", required=True,
              help="The link up to the token, e.g. https://hr.example.nl/wachtwoord?token=")
@click.option("--template", "template_name", default="wachtwoord-instellen", show_default=True,
              help="The reset mail's Template (context account_mail) in the bundle at PATH.")
@click.option("--company", default=None, help="company.name in the mail.")
@click.option("--sender", "sender", default=None, help="sender.name in the mail.")
@click.option("--at", default=None, type=ISO_MOMENT, help="The moment of the request (default now).")
@format_option()
def reset_command(path: str, username: str, store_url: str, base_url: str, template_name: str, company: str | None,
                  sender: str | None, at: str | None, fmt: str) -> None:
    """Queue a mail with a single-use link to set the password of USERNAME (the token is made, and earlier
    links stop working, when `regelwerk outbox send` delivers it). Exit 2 when there is no such active account."""
    from regelwerk.errors import InvalidData
    from regelwerk.permissions.accounts import Accounts

    template = _template(path, template_name, "wachtwoord-instellen")
    if not base_url.startswith(("https://", "http://")):
        fail(f"--base-url must be an http(s) address, got {base_url!r}", EXIT_USAGE)
    now = _now(at)
    sa_engine = _engine(store_url)
    try:
        accounts = Accounts(sa_engine, create=True)
        try:
            message = accounts.send_reset(username, template, base_url=base_url, now=now,
                                          values=_values(company, sender))
        except InvalidData as exc:
            fail(str(exc), EXIT_USAGE)
        account = accounts.get(username)
    finally:
        sa_engine.dispose()
    assert account is not None
    if fmt == "json":
        echo_json({"account": _plain(account), "reset_message": message})
        return
    click.echo(f"reset mail for {account.username} <{account.email}> queued ({message}); "
               "`regelwerk outbox send` delivers it with the link")


@accounts_group.command("list")
@click.option("--store", "store_url", required=True, help="Database URL.")
@format_option()
def list_command(store_url: str, fmt: str) -> None:
    """Show the accounts: username, employee, address, status and whether (since when) a password is set."""
    from regelwerk.permissions.accounts import Accounts

    sa_engine = _engine(store_url)
    try:
        accounts = Accounts(sa_engine, create=True).list_accounts()
    finally:
        sa_engine.dispose()
    if fmt == "json":
        echo_json([_plain(a) for a in accounts])
        return
    for a in accounts:
        since = f"password set {a.password_set_at:%Y-%m-%d %H:%M} UTC" if a.password_set_at else "no password"
        click.echo(f"{a.username:<20} {a.subject:<12} {a.status:<8} {a.email:<32} {since}")
    click.echo(f"{len(accounts)} account(s)", err=True)
    sys.exit(0)
