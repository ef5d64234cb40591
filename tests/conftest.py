"""Shared fixtures: the registry (with the example plugin), SQLite files and PostgreSQL."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "plugin-checklist"))

PG_ENV = "REGELWERK_TEST_PG_URL"


@pytest.fixture(scope="session")
def registry():  # type: ignore[no-untyped-def]
    """Every installed plugin plus the example checklist plugin."""
    from regelwerk.registry import load_registry
    from regelwerk_checklist import plugin as checklist

    base = load_registry()
    if "Checklist" in base.kinds:
        return base
    return load_registry(extra=[checklist])


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'regelwerk.sqlite'}"


def pg_base_url() -> str | None:
    """The PostgreSQL URL from the environment, if any."""
    return os.environ.get(PG_ENV)


def _pg_reachable(url: str) -> str | None:
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"; the reason is reported
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The PostgreSQL server URL; skip with a reason when none is reachable (fail in CI)."""
    url = pg_base_url()
    if not url:
        reason = f"PostgreSQL not configured: set {PG_ENV} (CI starts a server and sets it)"
    else:
        problem = _pg_reachable(url)
        reason = f"PostgreSQL at {url} not reachable: {problem}" if problem else ""
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason + " -- PostgreSQL tests must not skip in CI")
        pytest.skip(reason)
    assert url is not None
    return url


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema per test (dropped afterwards), as a URL with search_path set."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_server_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg_server_url else "?"
    yield f"{pg_server_url}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
