"""The outbox: mails written in the transaction of the change that caused them, delivered over SMTP later.

See docs/templates.md.
"""

from __future__ import annotations

from regelwerk.outbox.queue import OutboxMessage, enqueue, erase_subjects, list_messages

__all__ = ["OutboxMessage", "enqueue", "erase_subjects", "list_messages"]
