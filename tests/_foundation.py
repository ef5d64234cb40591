"""A registry of the core plus the example Checklist plugin only, for the foundation's own tests.

The foundation tests must not fail because a pack elsewhere in the tree is half-written, so they
do not load the installed entry points (the conftest ``registry`` fixture does).
"""

from __future__ import annotations

from functools import cache

from regelwerk.registry import Registry, load_registry


@cache
def foundation_registry() -> Registry:
    """Core plugin plus the example Checklist plugin (no other installed packs)."""
    from regelwerk_checklist import plugin as checklist

    return load_registry(extra=[checklist], use_entry_points=False)
