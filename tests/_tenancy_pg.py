"""PostgreSQL for the tenancy and service tests: a fresh schema migrated by the owner, an application role
that is neither owner nor superuser (``regelwerk_app``, created by ``.ci/run``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

APP_ROLE = "regelwerk_app"


def app_url_of(server_url: str) -> str:
    """The server URL with the application role's credentials."""
    url = sa.make_url(server_url).set(username=APP_ROLE, password=os.environ.get("REGELWERK_TEST_PG_APP_PASSWORD",
                                                                                 APP_ROLE))
    return url.render_as_string(hide_password=False)


@contextmanager
def tenant_schema(server_url: str) -> Iterator[tuple[str, str]]:
    """``(owner URL, app URL)`` on a fresh schema with every table, row-level security and grants."""
    from regelwerk.tenancy.hub import upgrade_all

    app = app_url_of(server_url)
    try:
        probe = sa.create_engine(app)
        with probe.connect() as conn:
            conn.execute(sa.text("select 1"))
        probe.dispose()
    except sa.exc.OperationalError as exc:
        reason = f"the application role {APP_ROLE} cannot connect ({exc.orig}); .ci/run creates it"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in server_url else "?"
    options = f"{sep}options=-csearch_path%3D{schema}"
    owner_url = server_url + options
    upgrade_all(owner_url, APP_ROLE)
    try:
        yield owner_url, app + options
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
