"""Digests: one mail per recipient per period listing the cases they may read (``kind: Digest``).

A digest is declared in data (which lists, from which registered case sources, to whom, on which schedule, with
which template), planned by the tick as a tick task and sent exactly once per recipient per period: the mail and
its bookkeeping row commit in one unit of work. The cases come from :class:`regelwerk.registry.DigestSourceSpec`
entries that packs register (the core names none); each recipient gets only the cases the engine's permission
policy lets them ``read``. See docs/scheduling.md ("Digests") and docs/templates.md ("Loops").
"""

from __future__ import annotations

from regelwerk.digests.model import Digest, DigestList, DigestPeriod, due_period

__all__ = ["Digest", "DigestList", "DigestPeriod", "due_period"]
