"""User accounts: a generated password kept only as an Argon2id hash, the welcome mail, and a reset link.

step2HR: *"Wanneer een nieuwe gebruiker wordt aangemaakt, wordt automatisch een wachtwoord voor die gebruiker
aangemaakt. De beheerder kan via het Mailcenter een welkomstbericht met de inloggegevens aan de gebruiker
sturen"* and *"Wachtwoord aanvragen?"*: the user gets an e-mail to set the password.

No plain-text password (and no usable reset token) is ever stored or logged:

- :meth:`Accounts.create` generates a password, stores its hash and hands the password back once (a host may
  show it on screen once; regelwerk keeps nothing of it).
- :meth:`Accounts.send_welcome` writes the welcome mail to the outbox with ``{{ account.password }}`` as a
  marker, not a password. The outbox sender makes a *fresh* password when it delivers the mail (the secret
  ``password:<username>``), stores its hash, and puts the password into that mail only. The password in the
  last delivered welcome mail is the one that works.
- :meth:`Accounts.request_reset` writes the reset mail the same way: the secret ``reset:<username>`` makes a
  single-use invitation token (``rw_invitations``, only its SHA-256 stored, valid ``reset_valid_for``) when
  the mail is sent; an earlier open link stops working. An unknown address queues nothing, and the caller
  shows the same message either way (nobody learns which addresses have an account).
- :meth:`Accounts.reset_password` uses the token and sets the new password in one transaction.

Hashing: argon2-cffi's ``PasswordHasher`` (Argon2id, RFC 9106's low-memory profile: time cost 3, 64 MiB,
parallelism 4; about 0.1 s per hash on the project's machine). The parameters are part of each stored hash;
a login with a hash made with weaker parameters re-hashes it.
"""

from __future__ import annotations

import secrets as _secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from regelwerk.errors import InvalidData, RegelwerkError

__all__ = [
    "ALPHABET",
    "RESET_ROLE",
    "Account",
    "AccountExists",
    "Accounts",
    "InvalidCredentials",
    "NewAccount",
    "generate_password",
]

#: Generated passwords use letters and digits that cannot be mistaken for each other (no 0/O, 1/l/I).
ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
#: The invitation role of a password reset link.
RESET_ROLE = "password_reset"
_MIN_LENGTH = 10
_MAX_LENGTH = 1024  # hashing is deliberately slow: refuse absurd input before it is hashed


def generate_password(length: int = 16) -> str:
    """A random password (16 characters of :data:`ALPHABET`: about 93 bits)."""
    return "".join(_secrets.choice(ALPHABET) for _ in range(length))


class InvalidCredentials(RegelwerkError):
    """Username or password is wrong (the message never says which)."""

    code = "invalid_credentials"

    def __init__(self) -> None:
        super().__init__("unknown user or wrong password")


class AccountExists(InvalidData):
    """The username is taken (a finding, not a usage error: exit 1 on the CLI)."""

    code = "account_exists"

    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"username: {username!r} exists already")


@dataclass(frozen=True, slots=True)
class Account:
    """One account (never with its password or hash)."""

    username: str
    subject: str
    email: str
    name: str | None
    status: str
    has_password: bool
    password_set_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewAccount:
    """A created account and its generated password (handed back once; regelwerk keeps only the hash)."""

    account: Account
    password: str

    def __repr__(self) -> str:
        return f"NewAccount(account={self.account!r}, password='***')"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Accounts:
    """Accounts in ``rw_accounts`` (SQLite or PostgreSQL), with their mails written to the outbox."""

    def __init__(self, sa_engine: Any, *, hasher: Any = None, reset_valid_for: str | timedelta = "PT2H",
                 create: bool = False, password_factory: Callable[[], str] = generate_password) -> None:
        from argon2 import PasswordHasher
        from regelwerk.permissions.invitations import SqlInvitations
        from regelwerk.permissions.tables import rw_accounts, rw_invitations

        self.engine = sa_engine
        self.hasher = hasher or PasswordHasher()
        self.table = rw_accounts
        self.invitations = SqlInvitations(sa_engine, reset_valid_for)
        self.password_factory = password_factory
        self._dummy_hash = ""
        if create:
            from regelwerk.outbox.tables import outbox
            from regelwerk.store.sql import create_missing

            create_missing(sa_engine, (rw_accounts, rw_invitations, outbox))

    def _dummy(self) -> str:
        """A hash verified against for unknown users, so a wrong username takes as long as a wrong password."""
        if not self._dummy_hash:
            self._dummy_hash = self.hasher.hash(self.password_factory())
        return self._dummy_hash

    # --- accounts -----------------------------------------------------------------------------

    def _account(self, row: Mapping[str, Any]) -> Account:
        stamp = row["password_set_at"]
        return Account(row["username"], row["subject"], row["email"], row["name"], row["status"],
                       row["password_hash"] is not None, _utc(stamp) if stamp is not None else None)

    def _row(self, conn: Any, username: str) -> Mapping[str, Any] | None:
        import sqlalchemy as sa

        row = conn.execute(sa.select(self.table).where(self.table.c.username == username)).mappings().first()
        return dict(row) if row is not None else None

    def get(self, username: str) -> Account | None:
        """One account, or None."""
        with self.engine.connect() as conn:
            row = self._row(conn, username)
        return self._account(row) if row is not None else None

    def list_accounts(self) -> list[Account]:
        """Every account, by username (never with a password or its hash)."""
        import sqlalchemy as sa

        columns = [c for c in self.table.c if c.name != "password_hash"]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*columns, (self.table.c.password_hash.is_not(None)).label("has_hash"))
                                .order_by(self.table.c.username)).mappings().all()
        return [self._account({**row, "password_hash": True if row["has_hash"] else None}) for row in rows]

    def create(self, username: str, *, subject: str, email: str, by: str, now: datetime, name: str | None = None,
               connection: Any = None) -> NewAccount:
        """Create an account with a generated password (its hash stored); the password is returned once."""
        from regelwerk.imports.values import convert

        try:
            email = convert(email, "email", 320)
        except ValueError as exc:
            raise InvalidData(f"email: {exc}") from None
        if not username or len(username) > 200:
            raise InvalidData("username: 1 to 200 characters")
        password = self.password_factory()
        values = {"username": username, "subject": subject, "email": email, "name": name,
                  "password_hash": self.hasher.hash(password), "password_set_at": _utc(now), "status": "active",
                  "created_by": by, "created_at": _utc(now)}
        import sqlalchemy as sa

        try:
            if connection is not None:
                connection.execute(self.table.insert(), values)
            else:
                with self.engine.begin() as conn:
                    conn.execute(self.table.insert(), values)
        except sa.exc.IntegrityError:
            raise AccountExists(username) from None
        account = Account(username, subject, email, name, "active", True, _utc(now))
        return NewAccount(account, password)

    def authenticate(self, username: str, password: str, now: datetime) -> Account:
        """The account when the password is right; :class:`InvalidCredentials` otherwise (same time either way)."""
        from argon2.exceptions import InvalidHashError, VerificationError

        with self.engine.connect() as conn:
            row = self._row(conn, username)
        stored = row["password_hash"] if row is not None and row["status"] == "active" else None
        try:
            self.hasher.verify(stored or self._dummy(), password[:_MAX_LENGTH])
        except (VerificationError, InvalidHashError):
            raise InvalidCredentials() from None
        if stored is None or row is None:
            raise InvalidCredentials()
        if self.hasher.check_needs_rehash(stored):
            self._set_hash(username, self.hasher.hash(password), now)
        return self._account(row)

    def _set_hash(self, username: str, hashed: str, now: datetime, conn: Any = None) -> None:
        statement = self.table.update().where(self.table.c.username == username).values(
            password_hash=hashed, password_set_at=_utc(now))
        if conn is not None:
            conn.execute(statement)
            return
        with self.engine.begin() as own:
            own.execute(statement)

    # --- mails through the outbox -------------------------------------------------------------

    def _enqueue(self, conn: Any, template: Any, account: Mapping[str, Any], values: Mapping[str, Any],
                 secret: str, now: datetime) -> str:
        from regelwerk.outbox.queue import SECRET_MARKER, enqueue

        # the marker becomes a password (welcome) or a token (reset): a template must show the one its mail
        # makes and never the other, so a reset token is never shown as a password (or a password as a link)
        shown, other = ("account.password", "reset.link") if secret.startswith("password:") else (
            "reset.link", "account.password")
        used = set(template.fields())
        if other in used or shown not in used:
            raise InvalidData(f"template {template.name!r} must show {shown} and not {other} "
                              f"(it is a {'welcome' if shown == 'account.password' else 'password reset'} mail)")
        scope = {**values, "account": {"username": account["username"], "name": account["name"] or account["username"],
                                       "email": account["email"], "password": SECRET_MARKER}}
        reset = dict(values.get("reset") or {})
        reset.setdefault("link", str(reset.get("base_url", "")) + SECRET_MARKER)
        reset.setdefault("valid_for", self._validity_text())
        scope["reset"] = reset
        mail = template.render(scope)
        if SECRET_MARKER not in mail.body:
            raise InvalidData(f"template {template.name!r} shows neither account.password nor reset.link")
        return enqueue(conn, mail, recipient=account["email"], now=now, subject_ref=f"employee:{account['subject']}",
                       secret=secret)

    def _validity_text(self) -> str:
        hours = self.invitations.valid_for.total_seconds() / 3600
        return f"{hours:g} uur" if hours < 48 else f"{hours / 24:g} dagen"

    def send_welcome(self, username: str, template: Any, *, now: datetime, values: Mapping[str, Any] | None = None,
                     connection: Any = None) -> str:
        """Queue the welcome mail (``template``: a compiled Template over ``account_mail``); the password is
        made when the mail is delivered. Returns the outbox message id."""
        def run(conn: Any) -> str:
            row = self._row(conn, username)
            if row is None:
                raise InvalidData(f"no account {username!r}")
            return self._enqueue(conn, template, row, values or {}, f"password:{username}", now)

        if connection is not None:
            return run(connection)
        with self.engine.begin() as conn:
            return run(conn)

    def request_reset(self, email: str, template: Any, *, base_url: str, now: datetime,
                      values: Mapping[str, Any] | None = None) -> bool:
        """"Wachtwoord aanvragen?": queue a reset mail to the active account with this address (True), or
        nothing (False). Show the user the same message either way."""
        import sqlalchemy as sa

        with self.engine.begin() as conn:
            row = conn.execute(sa.select(self.table).where(
                sa.func.lower(self.table.c.email) == email.strip().lower(), self.table.c.status == "active",
            ).order_by(self.table.c.username)).mappings().first()
            if row is None:
                return False
            self._enqueue_reset(conn, template, dict(row), base_url, values, now)
        return True

    def send_reset(self, username: str, template: Any, *, base_url: str, now: datetime,
                   values: Mapping[str, Any] | None = None) -> str:
        """The administrator's reset: queue a reset mail to the account ``username`` (its own address);
        :class:`InvalidData` when there is no such active account. Returns the outbox message id. The token is
        made when the mail is delivered, exactly as for :meth:`request_reset`."""
        with self.engine.begin() as conn:
            row = self._row(conn, username)
            if row is None or row["status"] != "active":
                raise InvalidData(f"no active account {username!r}")
            return self._enqueue_reset(conn, template, row, base_url, values, now)

    def _enqueue_reset(self, conn: Any, template: Any, row: Mapping[str, Any], base_url: str,
                       values: Mapping[str, Any] | None, now: datetime) -> str:
        extra = dict(values or {})
        extra["reset"] = {**dict(extra.get("reset") or {}), "base_url": base_url}
        return self._enqueue(conn, template, row, extra, f"reset:{row['username']}", now)

    def reset_password(self, token: str, new_password: str, now: datetime) -> Account:
        """Use a reset link once and set the new password (one transaction); the invitation errors
        (unknown, used, superseded, expired) are raised as they are."""
        if not _MIN_LENGTH <= len(new_password) <= _MAX_LENGTH:
            raise InvalidData(f"password: {_MIN_LENGTH} to {_MAX_LENGTH} characters")
        from regelwerk.permissions.invitations import UnknownInvitation

        hashed = self.hasher.hash(new_password)
        with self.engine.begin() as conn:
            invitation = self.invitations.accept_in(conn, token, now)
            if invitation.role != RESET_ROLE:
                raise UnknownInvitation("this link is not a password reset link", invitation.id)
            row = self._row(conn, invitation.account)
            if row is None or row["status"] != "active":
                raise UnknownInvitation("the account of this link no longer exists", invitation.id)
            self._set_hash(invitation.account, hashed, now, conn)
            row = self._row(conn, invitation.account)
        assert row is not None
        return self._account(row)

    # --- the outbox's secrets -----------------------------------------------------------------

    def resolve_secret(self, secret: str, now: datetime) -> str:
        """Make the secret of an outbox mail as it is sent: ``password:<username>`` (a fresh password, its hash
        stored) or ``reset:<username>`` (a fresh single-use token; the earlier link stops working).
        ``LookupError`` for an unknown kind or a missing account."""
        kind, _, username = secret.partition(":")
        with self.engine.begin() as conn:
            row = self._row(conn, username)
            if row is None or row["status"] != "active":
                raise LookupError(f"no active account {username!r}")
            if kind == "password":
                password = self.password_factory()
                self._set_hash(username, self.hasher.hash(password), now, conn)
                return password
            if kind == "reset":
                invitation = self.invitations.invite_in(conn, row["email"], RESET_ROLE, username, "self-service", now)
                return invitation.token
        raise LookupError(f"unknown secret kind {kind!r}")
