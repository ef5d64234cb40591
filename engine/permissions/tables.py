"""The permission area's tables: relationship facts and user invitations (on the shared metadata)."""

from __future__ import annotations

import sqlalchemy as sa
from regelwerk.store.tables import metadata

__all__ = ["rw_accounts", "rw_invitations", "rw_relations"]

_TS = sa.DateTime(timezone=True)

#: Relationship facts (reports_to, member_of, represents, consent, has_role, has_right, authored).
rw_relations = sa.Table(
    "rw_relations", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("object", sa.String(200), nullable=False),
    sa.Column("valid_from", sa.Date, nullable=True),
    sa.Column("valid_to", sa.Date, nullable=True),
    sa.Column("withdrawn_at", _TS, nullable=True),
    sa.Column("withdrawn_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", _TS, nullable=True),
    sa.Index("ix_rw_relations_kind_subject", "kind", "subject"),
    sa.Index("ix_rw_relations_kind_object", "kind", "object"),
)

#: User invitations: a single-use token valid until ``expires_at``; re-sending supersedes the old token.
rw_invitations = sa.Table(
    "rw_invitations", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("role", sa.String(100), nullable=False),
    sa.Column("account", sa.String(200), nullable=False),
    sa.Column("invited_by", sa.String(200), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("expires_at", _TS, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("used_at", _TS, nullable=True),
    sa.Column("superseded_by", sa.Integer, nullable=True),
    sa.Index("ix_rw_invitations_email", "email"),
)

#: User accounts (step2HR: "Wanneer een nieuwe gebruiker wordt aangemaakt, wordt automatisch een wachtwoord
#: voor die gebruiker aangemaakt"): only an Argon2id hash of the password is kept, never the password.
rw_accounts = sa.Table(
    "rw_accounts", metadata,
    sa.Column("username", sa.String(200), primary_key=True),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.String(300), nullable=True),
    sa.Column("password_hash", sa.String(255), nullable=True),
    sa.Column("password_set_at", _TS, nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Index("ix_rw_accounts_email", "email"),
)
