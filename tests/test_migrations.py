"""The shipped Alembic revisions create exactly the tables every area declares (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from regelwerk.store.sql import upgrade
from regelwerk.store.tables import all_tables


def _differences(url: str) -> list[object]:
    upgrade(url)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            diff = compare_metadata(context, all_tables())
    finally:
        engine.dispose()
    # the version table is Alembic's own; an index declared for another dialect (``ddl_if``) is not created here
    return [d for d in diff if not (isinstance(d, tuple) and d[0] == "remove_table"
                                    and d[1].name == "rw_alembic_version")
            and not (isinstance(d, tuple) and d[0] == "add_index" and _for_another_dialect(d[1], url))]


def _for_another_dialect(index: sa.Index, url: str) -> bool:
    """Whether the declared index of this name is for another dialect only (Alembic compares a copy of it)."""
    declared = {i.name: i for t in all_tables().tables.values() for i in t.indexes}.get(index.name)
    only = getattr(declared, "_ddl_if", None)
    return only is not None and only.dialect is not None and only.dialect != sa.make_url(url).get_backend_name()


def test_migrations_match_every_table_on_sqlite(sqlite_url: str) -> None:
    assert _differences(sqlite_url) == []


def test_migrations_match_every_table_on_postgresql(pg_url: str) -> None:
    assert _differences(pg_url) == []


def _core_head() -> str:
    """The one head of the core's own revisions (a second head would be a fork in the core's history)."""
    from alembic.script import ScriptDirectory
    from regelwerk.registry import load_registry
    from regelwerk.store.sql import alembic_config

    heads = ScriptDirectory.from_config(alembic_config("sqlite://", load_registry(use_entry_points=False))).get_heads()
    assert len(heads) == 1, f"the core's revisions fork: {heads}"
    return heads[0]


def test_upgrade_twice_is_a_no_op(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    upgrade(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        versions = conn.execute(sa.text("select version_num from rw_alembic_version")).scalars().all()
    engine.dispose()
    assert sorted(versions) == sorted([_core_head(), "recruitment_0002"])  # the core's head, the pack's


def test_each_pack_keeps_its_tables_in_a_branch_of_its_own() -> None:
    """The core's revisions create only the core's tables; a pack's tables come from the pack's own branch."""
    from alembic.script import ScriptDirectory
    from regelwerk.registry import load_registry
    from regelwerk.store.sql import alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert set(script.get_heads()) == {_core_head(), "recruitment_0002"}
    assert script.get_revision("recruitment_0001").branch_labels == {"recruitment"}
    core_only = ScriptDirectory.from_config(alembic_config("sqlite://", load_registry(use_entry_points=False)))
    assert core_only.get_heads() == [_core_head()]


def test_a_database_from_before_the_pack_branches_is_adopted(sqlite_url: str) -> None:
    """Databases upgraded when the core's revision 0002 still created the recruitment tables keep them: the
    pack's first revision adopts them (if_not_exists) instead of failing."""
    from regelwerk_packs.recruitment import tables

    engine = sa.create_engine(sqlite_url)
    tables.vacancies.create(engine)
    tables.candidates.create(engine)
    with engine.begin() as conn:
        conn.execute(tables.vacancies.insert().values(
            id="v1", title="Docent", function="docent", department="onderwijs", manager="m", workflow="w",
            templates={}, team=[], status="open", opened_at=sa.func.current_timestamp(), opened_by="hr"))
    engine.dispose()
    assert _differences(sqlite_url) == []
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select id from rw_vacancies")).scalars().all() == ["v1"]
    engine.dispose()


def _at_once(url: str, what: str, count: int = 3) -> list[int | None]:
    """Run ``what`` (``db``: ``upgrade``; ``tenants``: ``upgrade_all``; ``store``: ``SqlStore(url)``; ``mixed``: a
    store opened and two simulations creating their tables) in ``count`` forked processes released together; their
    exit codes."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    go = context.Event()

    def run(job: str) -> None:
        from regelwerk.simulation.lease import create_tables
        from regelwerk.store.sql import SqlStore, create_sa_engine
        from regelwerk.tenancy.hub import upgrade_all

        go.wait(30)
        if job == "db":
            upgrade(url)
        elif job == "tenants":
            upgrade_all(url)
        elif job == "simulate":
            create_tables(create_sa_engine(url))
        else:
            SqlStore(url).close()

    jobs = ["store", "simulate", "simulate"] if what == "mixed" else [what] * count
    processes = [context.Process(target=run, args=(job,)) for job in jobs]
    for process in processes:
        process.start()
    go.set()
    for process in processes:
        process.join(120)
    return [process.exitcode for process in processes]


@pytest.mark.postgres
@pytest.mark.parametrize("what", ["db", "tenants", "store", "mixed"])
def test_processes_migrating_one_postgresql_database_at_once_all_succeed(pg_url: str, what: str) -> None:
    """Pods that run ``regelwerk db upgrade`` (or ``tenants upgrade``, or open a store that creates its missing
    tables) as they start, on an empty database: each revision and table is made once, under one advisory lock;
    the processes that wait find the work done. Before, one of two failed on ``CREATE TABLE`` (the row type's
    unique index, ``pg_type_typname_nsp_index``)."""
    assert _at_once(pg_url, what) == [0, 0, 0]
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            present = set(sa.inspect(conn).get_table_names())
            versions = (conn.execute(sa.text("select version_num from rw_alembic_version")).scalars().all()
                        if what in ("db", "tenants") else [])
    finally:
        engine.dispose()
    assert set(all_tables().tables) <= present
    if what in ("db", "tenants"):
        assert sorted(versions) == sorted([_core_head(), "recruitment_0002"])


def test_the_stale_plan_index_replaces_the_one_before_and_back(sqlite_url: str) -> None:
    """Revision 0011 on SQLite: the index (id, plan_version, next_due) becomes (plan_version, next_due, id), the
    employees and their plans stay; the downgrade puts the one before back."""
    from alembic import command
    from regelwerk.store.sql import alembic_config

    def indexes() -> dict[str, list[str]]:
        with engine.connect() as conn:
            return {i["name"]: list(i["column_names"]) for i in sa.inspect(conn).get_indexes("rw_employees")}

    upgrade(sqlite_url, "0010_outbox_parts")
    engine = sa.create_engine(sqlite_url)
    try:
        assert indexes() == {"ix_rw_employees_plan": ["id", "plan_version", "next_due"]}
        with engine.begin() as conn:
            conn.execute(sa.text("insert into rw_employees (id, roles, groups, attributes, plan_version, next_due, "
                                 "updated_at) values ('e1', '[]', '[]', '{}', 'v1', '2026-02-01 06:00:00.000000', "
                                 "'2026-01-01 00:00:00.000000')"))
        upgrade(sqlite_url)
        assert indexes() == {"ix_rw_employees_stale": ["plan_version", "next_due", "id"]}
        command.downgrade(alembic_config(sqlite_url), "0010_outbox_parts")
        assert indexes() == {"ix_rw_employees_plan": ["id", "plan_version", "next_due"]}
        with engine.connect() as conn:
            assert conn.execute(sa.text("select id, plan_version from rw_employees")).all() == [("e1", "v1")]
    finally:
        engine.dispose()
