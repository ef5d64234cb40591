"""User invitations: a single-use link valid for a fixed time (HROffice: 48 hours).

Only a hash of the token is stored. Accepting checks, in this order: the token exists, it was not
superseded by a re-sent invitation, it was not used before, and it has not expired
(``now >= expires_at`` is expired). A validity in hours (``PT48H``) is that many hours; one in days
(``P2D``) counts calendar days on the organisation's wall clock (``timezone``, default Europe/Amsterdam),
so an invitation sent on the Saturday before the clocks go back at 12:00 expires on Monday at 12:00
(49 hours). Each refusal is its own typed error carrying the data a host needs
to show a clear message. Re-sending makes a new token and supersedes the old one.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol

from regelwerk.conditions import parse_duration
from regelwerk.errors import RegelwerkError
from regelwerk.permissions.relations import zone

__all__ = [
    "Invitation",
    "InvitationError",
    "InvitationExpired",
    "InvitationStore",
    "InvitationSuperseded",
    "InvitationUsed",
    "MemoryInvitations",
    "SqlInvitations",
    "UnknownInvitation",
    "validity",
]


class InvitationError(RegelwerkError):
    """An invitation link cannot be used."""

    code = "invitation"

    def __init__(self, message: str, invitation_id: int | None = None, **data: Any) -> None:
        self.invitation_id = invitation_id
        self.data = data
        super().__init__(message)

    def to_dict(self) -> dict[str, Any]:
        """Include the invitation id and the moments involved."""
        return {**super().to_dict(), "invitation": self.invitation_id,
                **{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.data.items()}}


class UnknownInvitation(InvitationError):
    """No invitation has this token."""

    code = "invitation_unknown"


class InvitationExpired(InvitationError):
    """The link's validity (e.g. 48 hours) has passed: ask for a new invitation."""

    code = "invitation_expired"


class InvitationUsed(InvitationError):
    """The link was used already (single use)."""

    code = "invitation_used"


class InvitationSuperseded(InvitationError):
    """The invitation was sent again: only the newest link works."""

    code = "invitation_superseded"


@dataclass(frozen=True, slots=True)
class Invitation:
    """One invitation; ``token`` is only known right after creating it (the store keeps a hash)."""

    id: int
    email: str
    role: str
    account: str
    invited_by: str
    created_at: datetime
    expires_at: datetime
    status: str = "open"  # open | used | superseded
    used_at: datetime | None = None
    superseded_by: int | None = None
    token: str = ""


def validity(text: str) -> timedelta:
    """A fixed-length ISO duration (``PT48H``, ``P2D``) as a timedelta; months and years are refused."""
    duration = parse_duration(text)
    if duration is None or duration.years or duration.months:
        raise ValueError(f"invitation validity must be a fixed ISO duration such as PT48H, got {text!r}")
    return timedelta(weeks=duration.weeks, days=duration.days, hours=duration.hours, minutes=duration.minutes,
                     seconds=duration.seconds)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class InvitationStore(Protocol):
    """Where invitations live."""

    def invite(self, email: str, role: str, account: str, invited_by: str, now: datetime) -> Invitation:
        """Create an invitation; the result carries the token to mail."""

    def resend(self, invitation_id: int, by: str, now: datetime) -> Invitation:
        """Make a new invitation for the same person and supersede the old one."""

    def accept(self, token: str, now: datetime) -> Invitation:
        """Use a token once; raises an :class:`InvitationError` subclass when it cannot be used."""

    def get(self, invitation_id: int) -> Invitation:
        """One invitation by id."""


class _Base:
    """The rules shared by the memory and SQL stores."""

    def __init__(self, valid_for: str | timedelta = "PT48H",
                 token_factory: Callable[[], str] = lambda: secrets.token_urlsafe(32),
                 timezone: str | tzinfo | None = None) -> None:
        self.valid_for = valid_for if isinstance(valid_for, timedelta) else validity(valid_for)
        self.zone = zone(timezone)
        # calendar days (on the organisation's wall clock) and the exact rest (hours, minutes, seconds)
        parsed = None if isinstance(valid_for, timedelta) else parse_duration(valid_for)
        self._days = 0 if parsed is None else parsed.weeks * 7 + parsed.days  # PT48H: no calendar days
        self._rest = self.valid_for - timedelta(days=self._days)
        self.token_factory = token_factory

    def expires(self, now: datetime) -> datetime:
        """When an invitation made at ``now`` expires (UTC): calendar days in the zone, then exact time."""
        start = _utc(now)
        if self._days:
            wall = start.astimezone(self.zone).replace(tzinfo=None) + timedelta(days=self._days)
            start = wall.replace(tzinfo=self.zone).astimezone(UTC)
        return start + self._rest

    @staticmethod
    def check(invitation: Invitation | None, now: datetime) -> Invitation:
        """Raise the typed refusal for a token that cannot be used at ``now``."""
        if invitation is None:
            raise UnknownInvitation("this invitation link is not known")
        if invitation.status == "superseded":
            raise InvitationSuperseded("this invitation was sent again; use the newest link",
                                       invitation.id, superseded_by=invitation.superseded_by)
        if invitation.status == "used":
            raise InvitationUsed("this invitation link was used already", invitation.id, used_at=invitation.used_at)
        if _utc(now) >= invitation.expires_at:
            raise InvitationExpired(
                f"this invitation link expired at {invitation.expires_at.isoformat()}; ask for a new invitation",
                invitation.id, expires_at=invitation.expires_at, now=_utc(now))
        return invitation


class MemoryInvitations(_Base):
    """Invitations in memory (scenarios and tests)."""

    def __init__(self, valid_for: str | timedelta = "PT48H",
                 token_factory: Callable[[], str] = lambda: secrets.token_urlsafe(32),
                 timezone: str | tzinfo | None = None) -> None:
        super().__init__(valid_for, token_factory, timezone)
        self._items: dict[int, Invitation] = {}
        self._by_hash: dict[str, int] = {}

    def invite(self, email: str, role: str, account: str, invited_by: str, now: datetime) -> Invitation:
        """Create an invitation."""
        token = self.token_factory()
        now = _utc(now)
        invitation = Invitation(len(self._items) + 1, email, role, account, invited_by, now, self.expires(now))
        self._items[invitation.id] = invitation
        self._by_hash[_hash(token)] = invitation.id
        return replace(invitation, token=token)

    def resend(self, invitation_id: int, by: str, now: datetime) -> Invitation:
        """Supersede and re-issue."""
        old = self.get(invitation_id)
        new = self.invite(old.email, old.role, old.account, by, now)
        if old.status == "open":
            self._items[old.id] = replace(old, status="superseded", superseded_by=new.id)
        return new

    def accept(self, token: str, now: datetime) -> Invitation:
        """Use a token once."""
        found = self._by_hash.get(_hash(token))
        invitation = self.check(self._items.get(found) if found is not None else None, now)
        used = replace(invitation, status="used", used_at=_utc(now))
        self._items[used.id] = used
        return used

    def get(self, invitation_id: int) -> Invitation:
        """One invitation."""
        try:
            return self._items[invitation_id]
        except KeyError:
            raise UnknownInvitation(f"no invitation {invitation_id}", invitation_id) from None


class SqlInvitations(_Base):
    """Invitations in ``rw_invitations`` (SQLite or PostgreSQL)."""

    def __init__(self, url_or_engine: Any, valid_for: str | timedelta = "PT48H",
                 token_factory: Callable[[], str] = lambda: secrets.token_urlsafe(32), create: bool = False,
                 timezone: str | tzinfo | None = None) -> None:
        from regelwerk.permissions.tables import rw_invitations
        from regelwerk.store.sql import create_sa_engine

        super().__init__(valid_for, token_factory, timezone)
        self.engine = create_sa_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        self.table = rw_invitations
        if create:
            from regelwerk.store.sql import create_missing

            create_missing(self.engine, (rw_invitations,))

    def _from_row(self, row: Any) -> Invitation:
        used = row["used_at"]
        return Invitation(int(row["id"]), row["email"], row["role"], row["account"], row["invited_by"],
                          _utc(row["created_at"]), _utc(row["expires_at"]), row["status"],
                          _utc(used) if used is not None else None, row["superseded_by"])

    def _insert(self, conn: Any, email: str, role: str, account: str, invited_by: str,
                now: datetime) -> Invitation:
        token = self.token_factory()
        now = _utc(now)
        expires_at = self.expires(now)
        values = {"token_hash": _hash(token), "email": email, "role": role, "account": account,
                  "invited_by": invited_by, "created_at": now, "expires_at": expires_at, "status": "open"}
        new_id = conn.execute(self.table.insert().returning(self.table.c.id), values).scalar_one()
        return Invitation(int(new_id), email, role, account, invited_by, now, expires_at, token=token)

    def invite(self, email: str, role: str, account: str, invited_by: str, now: datetime) -> Invitation:
        """Create an invitation."""
        with self.engine.begin() as conn:
            return self._insert(conn, email, role, account, invited_by, now)

    def resend(self, invitation_id: int, by: str, now: datetime) -> Invitation:
        """Supersede and re-issue in one transaction."""
        with self.engine.begin() as conn:
            old = self._get(conn, invitation_id)
            new = self._insert(conn, old.email, old.role, old.account, by, now)
            conn.execute(self.table.update().where(self.table.c.id == old.id, self.table.c.status == "open")
                         .values(status="superseded", superseded_by=new.id))
            return new

    def accept(self, token: str, now: datetime) -> Invitation:
        """Use a token once (the status update is conditional, so two concurrent accepts cannot both win)."""
        with self.engine.begin() as conn:
            return self.accept_in(conn, token, now)

    def accept_in(self, conn: Any, token: str, now: datetime) -> Invitation:
        """:meth:`accept` on the caller's connection (so using the token commits with what it unlocks)."""
        import sqlalchemy as sa

        row = conn.execute(sa.select(self.table).where(self.table.c.token_hash == _hash(token))).mappings().first()
        invitation = self.check(self._from_row(row) if row is not None else None, now)
        done = conn.execute(self.table.update().where(self.table.c.id == invitation.id,
                                                      self.table.c.status == "open")
                            .values(status="used", used_at=_utc(now)))
        if done.rowcount != 1:
            raise InvitationUsed("this invitation link was used already", invitation.id)
        return replace(invitation, status="used", used_at=_utc(now))

    def invite_in(self, conn: Any, email: str, role: str, account: str, invited_by: str,
                  now: datetime) -> Invitation:
        """:meth:`invite` on the caller's connection; earlier open invitations with the same role for the same
        account are superseded (only the newest link works)."""
        new = self._insert(conn, email, role, account, invited_by, now)
        conn.execute(self.table.update().where(self.table.c.account == account, self.table.c.role == role,
                                               self.table.c.status == "open", self.table.c.id != new.id)
                     .values(status="superseded", superseded_by=new.id))
        return new

    def _get(self, conn: Any, invitation_id: int) -> Invitation:
        import sqlalchemy as sa

        row = conn.execute(sa.select(self.table).where(self.table.c.id == invitation_id)).mappings().first()
        if row is None:
            raise UnknownInvitation(f"no invitation {invitation_id}", invitation_id)
        return self._from_row(row)

    def get(self, invitation_id: int) -> Invitation:
        """One invitation."""
        with self.engine.connect() as conn:
            return self._get(conn, invitation_id)
