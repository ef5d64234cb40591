"""The recruitment pack's store port: its contract on SQLite and PostgreSQL, the memory store without one,
row locks on PostgreSQL, and no SQL in the pack outside its one implementation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from regelwerk.store.base import Store
from regelwerk.store.memory import MemoryStore
from regelwerk.store.sql import SqlStore
from regelwerk_packs.recruitment.contract import NOW, POLICY, REJECTED, SEEDED, CandidateStoreContract
from regelwerk_packs.recruitment.ports import candidate_store

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "plugins" / "recruitment"
STANDARD = ROOT / "definitions" / "standard" / "recruitment"


class TestSqliteCandidateStore(CandidateStoreContract):
    @pytest.fixture(autouse=True)
    def _url(self, sqlite_url: str) -> None:
        self.url = sqlite_url

    def make_store(self) -> Store:
        return SqlStore(self.url)


@pytest.mark.postgres
class TestPostgresCandidateStore(CandidateStoreContract):
    @pytest.fixture(autouse=True)
    def _url(self, pg_url: str) -> None:
        self.url = pg_url

    def make_store(self) -> Store:
        return SqlStore(self.url)


@pytest.mark.postgres
def test_a_chunk_stays_locked_until_its_transaction_ends_on_postgresql(pg_url: str) -> None:
    import sqlalchemy as sa
    from sqlalchemy.exc import OperationalError

    store = SqlStore(pg_url)
    try:
        with store.transaction() as tx:
            for row in SEEDED:
                tx.rows("rw_candidates").insert(row)
        with store.transaction() as holder:
            port = candidate_store(holder)
            assert port is not None
            [taken] = port.next_due(POLICY, REJECTED, NOW, 1)
            for attempt in ("take", "delete"):
                with pytest.raises(OperationalError, match="lock timeout"), store.transaction() as other:
                    other.connection.execute(sa.text("SET LOCAL lock_timeout = '300ms'"))
                    rival = candidate_store(other)
                    assert rival is not None
                    if attempt == "take":
                        rival.next_due(POLICY, REJECTED, NOW, 5)  # FOR UPDATE waits for the held row
                    else:
                        rival.erase([taken.id])
            assert port.erase([taken.id]) == 1
        with store.transaction() as tx:  # committed: the next chunk is the other due candidate
            port = candidate_store(tx)
            assert port is not None
            assert [r.id for r in port.next_due(POLICY, REJECTED, NOW, 5)] == [{"c1": "c3", "c3": "c1"}[taken.id]]
    finally:
        store.close()


@pytest.mark.postgres
def test_rows_locked_ahead_are_all_or_nothing_never_waited_for_and_stay_locked_until_the_end(pg_url: str) -> None:
    """A simulated day's moves read ahead on PostgreSQL (``candidates_locked_ahead``): their instances, then their
    candidate rows, locked in id order without waiting. When another transaction holds one of them (c2's instance;
    c4's candidate row) the read fails at once (``rows_busy``) and the reader's rollback to its savepoint lets go of
    what it had locked; with every row free, the rows read stay locked until the reading transaction ends: a rival's
    update of a candidate row or of an instance (a fire) waits for it (here: its lock timeout)."""
    from datetime import UTC, datetime

    import sqlalchemy as sa
    from regelwerk.store.workflow_tables import rw_instances
    from regelwerk_packs.recruitment.sqlstore import rows_busy
    from sqlalchemy.exc import OperationalError

    store = SqlStore(pg_url)
    moment = datetime(2026, 6, 1, tzinfo=UTC)
    try:
        with store.transaction() as tx:
            for row in SEEDED:
                tx.rows("rw_candidates").insert(row)
            tx.connection.execute(rw_instances.insert(), [
                {"id": row["instance_id"], "workflow": "recruitment.standard", "definition_version": "1",
                 "state": row["status"], "data": {}, "version": 1, "timers_pending": False, "created_by": "t",
                 "created_at": moment, "updated_at": moment} for row in SEEDED])
        wanted = ["c4", "c3", "c2", "c1", "nobody"]
        with store.transaction() as plain:  # unlocked, for comparison
            port = candidate_store(plain)
            assert port is not None
            expected = port.candidates_ahead(wanted)
        assert set(expected) == {"c1", "c2", "c3", "c4"}
        for held in ("SELECT id FROM rw_instances WHERE id = 'cand-c2' FOR UPDATE",
                     "SELECT id FROM rw_candidates WHERE id = 'c4' FOR UPDATE"):
            with store.transaction() as rival, store.transaction() as reader:
                rival.connection.execute(sa.text("SET LOCAL lock_timeout = '300ms'"))
                rival.connection.execute(sa.text(held))
                port = candidate_store(reader)
                assert port is not None
                with pytest.raises(OperationalError) as failed, reader.connection.begin_nested():
                    port.candidates_locked_ahead(wanted)  # at once, not after a wait
                assert rows_busy(failed.value)
                # rolled back to the savepoint: c1's instance (locked before c2's was found held) is free again
                rival.connection.execute(sa.text("UPDATE rw_instances SET version = 1 WHERE id = 'cand-c1'"))
        with store.transaction() as rival, store.transaction() as reader:
            rival.connection.execute(sa.text("SET LOCAL lock_timeout = '300ms'"))
            port = candidate_store(reader)
            assert port is not None
            assert port.candidates_locked_ahead(wanted) == expected
            with pytest.raises(OperationalError, match="lock timeout"), rival.connection.begin_nested():
                rival.connection.execute(sa.text("UPDATE rw_candidates SET status = 'x' WHERE id = 'c3'"))
            with pytest.raises(OperationalError, match="lock timeout"), rival.connection.begin_nested():
                rival.connection.execute(sa.text("UPDATE rw_instances SET version = 9 WHERE id = 'cand-c1'"))
            assert not rows_busy(ValueError())
    finally:
        store.close()


def test_the_memory_store_has_no_candidate_store_and_the_sweep_skips_it(registry: Any) -> None:
    from datetime import UTC, datetime

    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.errors import UsageError
    from regelwerk.runtime import Engine
    from regelwerk_packs.recruitment.service import Recruitment, retention_sweep

    store = MemoryStore()
    with store.read() as tx:
        assert candidate_store(tx) is None
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    engine = Engine(compile_bundle(load_bundle(STANDARD), registry), store=store, registry=registry,
                    clock=lambda: now)
    report = retention_sweep(engine, engine.bundle, now)
    assert (report.deleted, report.renewals_requested, report.by_rule) == (0, 0, {})
    rec = Recruitment(engine)
    vid = rec.open_vacancy({"id": "bea", "roles": ["beheerder"]}, title="Kok", function="kok", department="keuken",
                           manager="mo")
    with pytest.raises(UsageError, match="SQL store"):
        rec.candidates("mo", vid)
    with pytest.raises(UsageError, match="SQL store"):
        rec.retention_overview()
    # a memory store that holds candidates (the pack's rows through tx.rows): the AVG sweep never skips silently
    from regelwerk_packs.recruitment.tables import candidates

    with store.transaction() as tx:
        tx.rows(candidates.name).insert({"id": "c1", "vacancy_id": vid, "instance_id": "i1", "status": "new",
                                         "status_group": "new"})
    with pytest.raises(UsageError, match="SQL store"):
        retention_sweep(engine, engine.bundle, now)


# --- no SQL in the pack outside its store implementation ----------------------------------------------------

ALLOWED = {"sqlstore.py", "tables.py"}  # and migrations/, which the scan does not enter
FORBIDDEN = (
    ("tx.connection", re.compile(r"\btx\.connection\b")),
    (".connection.execute", re.compile(r"\.connection\.execute\b")),
    ("sa.select/update/delete/insert", re.compile(r"\bsa\.(?:select|update|delete|insert)\s*\(")),
    ("imports sqlalchemy", re.compile(r"^\s*(?:import sqlalchemy\b|from sqlalchemy\b)", re.MULTILINE)),
)


def offences(text: str) -> list[str]:
    """What a module's source does that only the pack's store implementation may do, with line numbers."""
    found = []
    for label, pattern in FORBIDDEN:
        for match in pattern.finditer(text):
            found.append(f"{text.count(chr(10), 0, match.start()) + 1}: {label}")
    return found


def test_the_scan_finds_sql() -> None:
    source = ("import sqlalchemy as sa\n\ndef f(tx):\n"
              "    tx.connection.execute(sa.select(t))\n    conn.execute(sa.update(t).values(a=1))\n")
    assert offences(source) == ["4: tx.connection", "4: .connection.execute", "4: sa.select/update/delete/insert",
                                "5: sa.select/update/delete/insert", "1: imports sqlalchemy"]
    assert offences((PACK / "sqlstore.py").read_text(encoding="utf-8"))  # the implementation does build queries


@pytest.mark.parametrize("module", sorted(p.name for p in PACK.glob("*.py") if p.name not in ALLOWED))
def test_no_sql_outside_the_pack_store(module: str) -> None:
    problems = offences((PACK / module).read_text(encoding="utf-8"))
    assert not problems, (f"plugins/recruitment/{module} reaches SQL itself ({', '.join(problems)}): "
                          "add what it needs to ports.CandidateStore and implement it in sqlstore.py")


def test_retention_commands_through_the_port(tmp_path: Path, registry: Any) -> None:
    """``regelwerk retention overview|preview|apply`` on a SQLite store: the CLI reaches the pack's port."""
    import json
    from datetime import UTC, datetime

    from click.testing import CliRunner
    from regelwerk.bundle import load_bundle
    from regelwerk.cli import build_cli
    from regelwerk.compiler import compile_bundle
    from regelwerk.runtime import Engine
    from regelwerk.workflows.ports import RoleTable
    from regelwerk_packs.recruitment.service import Recruitment

    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    store = SqlStore(url)
    then = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)  # long enough ago for the rejected rule at any test date
    engine = Engine(compile_bundle(load_bundle(STANDARD), registry), store=store, registry=registry,
                    clock=lambda: then, permissions=RoleTable({"register": ["intake"]}))
    rec = Recruitment(engine)
    vid = rec.open_vacancy({"id": "bea", "roles": ["beheerder"]}, title="Kok", function="kok",
                           department="keuken", manager="mo", team=["tom"])
    for cid in ("weg", "blijft"):
        rec.apply(vid, first_name=cid, last_name="Test", email=f"{cid}@example.nl", candidate_id=cid)
    rec.move("tom", "weg", "rejected")
    store.close()
    cli = build_cli()

    def run(*args: str) -> Any:
        result = CliRunner().invoke(cli, ["retention", *args, "--store", url, str(STANDARD), "--format", "json"],
                                    catch_exceptions=False)
        return json.loads(result.stdout)

    assert {r["group"]: r["candidates"] for r in run("overview")} == {"new": 1, "rejected": 1}
    assert [(r["candidate"], r["action"]) for r in run("preview")] == [("weg", "delete")]
    assert run("apply", "--yes")["deleted"] == 1
    assert {r["group"]: r["candidates"] for r in run("overview")} == {"new": 1}


def test_the_sweeps_and_the_simulations_statements_run_at_the_driver_on_sqlite() -> None:
    """On SQLite the statements the retention sweep and a simulated day run again and again are ones
    ``regelwerk.store.single`` plans (the rules' value lists as plain parameters, the id lists as one JSON
    parameter: no expanding IN, which it refuses and SQLAlchemy renders anew per call); PostgreSQL's keep their
    expanding IN, as before."""
    import sqlalchemy as sa
    from regelwerk.store import single
    from regelwerk_packs.recruitment import sqlstore
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = sqlite.dialect()
    moments = frozenset(f"{name}_{i}" for i in range(len(POLICY.rules)) for name in ("cutoff", "window"))
    planned = {
        "due_rules": (sqlstore._due_rules_statement(POLICY, True), moments),
        "next_due": (sqlstore._sweep_statement(POLICY, REJECTED, "due-unlocked", True),
                     frozenset({"cutoff", "lim"})),
        "erase questionnaires": (sqlstore._ERASE[True][0], frozenset({"ids"})),
        "erase candidates": (sqlstore._ERASE[True][1], frozenset({"ids"})),
        "candidates_ahead": (sqlstore._AHEAD[True], frozenset({"ids"})),
        "existing_ids": (sqlstore._EXISTING[True], frozenset({"ids"})),
        "vacancies_by_id": (sqlstore._VACANCIES_OF[True], frozenset({"ids"})),
    }
    for name, (statement, keys) in planned.items():
        assert single._plan(statement, dialect, keys) is not None, name
    postgres = postgresql.psycopg.dialect()  # type: ignore[attr-defined]
    for statement in (sqlstore._due_rules_statement(POLICY), sqlstore._ERASE[False][1], sqlstore._AHEAD[False],
                      sqlstore._VACANCIES_OF[False],
                      sqlstore._EXISTING[False]):
        assert "POSTCOMPILE" in str(statement.compile(dialect=postgres))
    assert sqlstore._sweep_statement(POLICY, REJECTED, "due-unlocked") is not \
        sqlstore._sweep_statement(POLICY, REJECTED, "due-unlocked", True)
    assert isinstance(sqlstore._due_rules_statement(POLICY, True), sa.Select)
