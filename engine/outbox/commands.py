"""``regelwerk outbox send|list``: deliver pending mail over SMTP, or show the outbox."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

import click
from regelwerk.cli import echo_json, format_option

__all__ = ["outbox_group"]


def _sa_engine(url: str) -> Any:
    """The store's engine; an SQL log never shows parameters (the password hashes and invitation digests
    written while secrets are made on delivery, the mail bodies)."""
    try:
        from regelwerk.store.sql import create_sa_engine
    except ImportError:  # pragma: no cover - the SQL store is part of the core
        import sqlalchemy as sa

        return sa.create_engine(url, hide_parameters=True)
    return create_sa_engine(url, hide_parameters=True)


@click.group("outbox")
def outbox_group() -> None:
    """The mail outbox: messages written with the state change that caused them."""


@outbox_group.command("send")
@click.option("--store", "store_url", required=True, help="The store's database URL (SQLAlchemy form).")
@click.option("--smtp", "smtp", required=True, help="HOST:PORT of the SMTP server.")
@click.option("--from", "sender", default="noreply@example.invalid", show_default=True,
              help="From address for messages without their own.")
@click.option("--limit", default=100, show_default=True, help="At most this many messages per run.")
@click.option("--max-attempts", default=5, show_default=True, help="Give a message up after this many tries.")
@click.option("--starttls", is_flag=True, help="Upgrade the connection with STARTTLS.")
@click.option("--user", default=None, help="SMTP user (the password comes from $REGELWERK_SMTP_PASSWORD).")
@format_option()
def send_command(store_url: str, smtp: str, sender: str, limit: int, max_attempts: int, starttls: bool,
                 user: str | None, fmt: str) -> None:
    """Deliver due messages; failed tries are retried later with backoff."""
    from regelwerk.outbox.sender import RetryPolicy, SmtpTransport, deliver_pending
    from regelwerk.permissions.accounts import Accounts

    host, _, port = smtp.rpartition(":")
    if not host or not port.isdigit():
        click.echo(f"error: --smtp must be HOST:PORT, got {smtp!r}", err=True)
        sys.exit(2)
    sa_engine = _sa_engine(store_url)
    policy = RetryPolicy(max_attempts=max_attempts)
    with SmtpTransport(host, int(port), starttls=starttls, username=user,
                       password=os.environ.get("REGELWERK_SMTP_PASSWORD")) as transport:
        report = deliver_pending(sa_engine, transport, now=lambda: datetime.now(UTC), default_sender=sender,
                                 policy=policy, limit=limit, secrets=Accounts(sa_engine).resolve_secret)
    sa_engine.dispose()
    if fmt == "json":
        echo_json({"sent": report.sent, "retried": report.retried, "failed": report.failed,
                   "skipped": report.skipped, "summary": report.summary()})
    else:
        click.echo(report.summary())
    sys.exit(1 if report.failed else 0)


@outbox_group.command("list")
@click.option("--store", "store_url", required=True, help="The store's database URL (SQLAlchemy form).")
@click.option("--status", default=None, type=click.Choice(["pending", "sending", "sent", "failed"]))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_command(store_url: str, status: str | None, fmt: str) -> None:
    """Show the outbox (newest last)."""
    from regelwerk.outbox.queue import list_messages

    sa_engine = _sa_engine(store_url)
    with sa_engine.connect() as conn:
        messages = list_messages(conn, status=status)
    sa_engine.dispose()
    if fmt == "json":
        click.echo(json.dumps([{"id": m.id, "status": m.status, "to": m.recipient, "subject": m.subject,
                                "template": m.template, "attempts": m.attempts, "error": m.last_error,
                                "created_at": m.created_at.isoformat()} for m in messages], indent=2))
        return
    for m in messages:
        click.echo(f"{m.created_at:%Y-%m-%d %H:%M}  {m.status:<8} {m.attempts}x  {m.recipient:<30} {m.subject}")
    click.echo(f"{len(messages)} message(s)", err=True)

