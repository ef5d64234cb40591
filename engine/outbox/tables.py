"""The outbox table: mails written in the same transaction as the state change that caused them."""

from __future__ import annotations

from regelwerk.store.tables import metadata
from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text

__all__ = ["outbox", "outbox_parts"]

outbox = Table(
    "rw_outbox",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", DateTime(), nullable=False),
    Column("template", String(200), nullable=False, server_default=""),
    # The data subject the mail is about ("candidate:<id>"): what an AVG erasure deletes by.
    Column("subject_ref", String(200), nullable=True),
    Column("instance_id", String(64), nullable=True),
    Column("recipient", String(320), nullable=False),
    Column("sender", String(320), nullable=True),
    Column("subject", Text(), nullable=False),
    Column("body", Text(), nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer(), nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(), nullable=False),
    Column("claimed_at", DateTime(), nullable=True),
    Column("sent_at", DateTime(), nullable=True),
    Column("last_error", Text(), nullable=True),
    # A secret filled in only when the mail is delivered ("password:<username>", "reset:<username>"): the body
    # holds SECRET_MARKER in its place, so the store never holds the password or the reset link.
    Column("secret", String(200), nullable=True),
    Index("ix_rw_outbox_status_next", "status", "next_attempt_at"),
    Index("ix_rw_outbox_subject_ref", "subject_ref"),
    Index("ix_rw_outbox_instance", "instance_id"),  # erasure of an instance's mails (AVG)
)

# The parts of a mail that are about one data subject each (a digest's lines: one per case it lists), so an AVG
# erasure finds a mail by every subject it names, not only by its one ``subject_ref``: the erasure cuts the erased
# subject's characters ``char_from`` .. ``char_to`` (of the stored body) out and moves the later parts' offsets.
outbox_parts = Table(
    "rw_outbox_parts",
    metadata,
    Column("message_id", String(32), primary_key=True),
    Column("position", Integer(), primary_key=True),  # the part's order in the body (from 0)
    Column("subject_ref", String(200), nullable=True),  # the data subject the part is about ("candidate:<id>")
    Column("instance_id", String(64), nullable=True),  # the workflow instance it shows, if any
    Column("char_from", Integer(), nullable=False),
    Column("char_to", Integer(), nullable=False),
    Index("ix_rw_outbox_parts_subject_ref", "subject_ref"),
    Index("ix_rw_outbox_parts_instance", "instance_id"),
)
"""Times are stored as naive UTC (portable between SQLite and PostgreSQL)."""
