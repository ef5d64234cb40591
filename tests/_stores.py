"""Shared by the runtime tests that run on every store: a clock the test moves, and the store URL per backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    """The engine's clock: ``now`` starts at :data:`T0`; a test sets it."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def store_urls(request: pytest.FixtureRequest, tmp_path: Path, name: str) -> Iterator[str]:
    """The body of a ``url`` fixture parametrised ``memory``, ``sqlite`` and ``postgres`` (skipped without a server)."""
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / (name + '.sqlite')}"
    else:
        yield request.getfixturevalue("pg_url")


#: the ``params`` of such a fixture
STORES = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def compile_texts(folder: Path, files: dict[str, str], registry: object) -> object:
    """Write ``files`` (name -> YAML text, dedented) into ``folder`` and compile it with ``registry``."""
    import textwrap

    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle

    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return compile_bundle(load_bundle(folder), registry)  # type: ignore[arg-type]
