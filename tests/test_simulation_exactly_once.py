"""simulate: one live run per store (a lease), an event's effects and its record in one transaction, pragmas."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from regelwerk.errors import UsageError
from regelwerk.simulation import simulate
from regelwerk.simulation.lease import SimulationBusy

FIXTURE = Path(__file__).parent / "fixtures" / "simulation"
START = date(2026, 1, 1)
CLI = [sys.executable, "-c", "from regelwerk.cli import main; main()", "simulate", str(FIXTURE)]


def _rows(url: str, query: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(query)))
    finally:
        engine.dispose()


def _hold_lease(url: str, pid: int, host: str, expires_in: float) -> None:
    from regelwerk.simulation.lease import create_tables
    from regelwerk.simulation.tables import simulation_leases as t

    engine = sa.create_engine(url)
    try:
        create_tables(engine)
        now = datetime.now(UTC).replace(tzinfo=None)
        with engine.begin() as conn:
            conn.execute(t.insert().values(simulation="sim-fixture", owner="other", host=host, pid=pid,
                                           acquired_at=now, expires_at=now + timedelta(seconds=expires_in)))
    finally:
        engine.dispose()


def test_a_live_lease_refuses_a_second_run_and_changes_nothing(sqlite_url: str) -> None:
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _hold_lease(sqlite_url, alive.pid, socket.gethostname(), 600)  # another process that runs
        with pytest.raises(SimulationBusy) as caught:
            simulate(FIXTURE, START, date(2026, 1, 31), store=sqlite_url)
    finally:
        alive.kill()
        alive.wait()
    assert caught.value.pid == alive.pid and caught.value.to_dict()["error"] == "simulation_busy"
    assert "is running in process" in str(caught.value)
    assert _rows(sqlite_url, "SELECT count(*) FROM rw_simulation_events")[0][0] == 0
    assert _rows(sqlite_url, "SELECT count(*) FROM rw_employees")[0][0] == 0
    assert _rows(sqlite_url, "SELECT owner FROM rw_simulation_leases") == [("other",)]


def test_a_lease_of_this_pid_not_held_here_or_of_a_zombie_is_stale(tmp_path: Path) -> None:
    """The same pid on the same host but not this process's lease: a dead earlier process whose pid was reused (a
    restarted container's job is pid 1 again). A killed process not yet reaped (a zombie) runs no more either."""
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{zombie.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    try:
        for name, pid in (("reused", os.getpid()), ("zombie", zombie.pid)):
            url = f"sqlite:///{tmp_path / (name + '.sqlite')}"
            _hold_lease(url, pid, socket.gethostname(), 600)
            assert simulate(FIXTURE, START, date(2026, 1, 10), store=url).days == 10
    finally:
        zombie.wait()


def test_a_run_whose_lease_was_taken_over_stops_before_its_next_import_chunk_writes(sqlite_url: str) -> None:
    """Paused during its import, its stale lease taken over: woken, it refuses cleanly before writing more."""
    from regelwerk.simulation import faults
    from regelwerk.simulation.tables import simulation_events as events
    from regelwerk.simulation.tables import simulation_leases as t

    def steal(number: int, label: str) -> None:
        if label == "after-commit:import:employees:0":  # between two import transactions
            engine = sa.create_engine(sqlite_url)
            try:
                with engine.begin() as conn:  # the run that took over has done the next chunk already
                    conn.execute(t.update().values(owner="thief"))
                    conn.execute(events.insert().values(
                        simulation="sim-fixture", key="import:relations:0", day=START, type="import",
                        status="applied", message="by the run that took over", detail={},
                        applied_at=datetime.now(UTC).replace(tzinfo=None)))
            finally:
                engine.dispose()

    faults.set_hook(steal)
    try:
        with pytest.raises(SimulationBusy):
            simulate(FIXTURE, START, date(2026, 1, 10), store=sqlite_url)
    finally:
        faults.set_hook(None)
    assert _rows(sqlite_url, "SELECT count(*) FROM rw_relations")[0][0] == 0  # the next chunk wrote nothing


def test_a_story_changed_under_a_resume_is_refused_with_every_changed_event(tmp_path: Path) -> None:
    from regelwerk.diagnostics import DefinitionError

    folder = tmp_path / "customer"
    shutil.copytree(FIXTURE, folder)
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    simulate(folder, START, date(2026, 2, 15), store=url)
    before = _rows(url, "SELECT count(*) FROM rw_simulation_events")[0][0]
    story = folder / "story.yaml"
    text = story.read_text(encoding="utf-8")
    # one event inserted at the front: every later story index shifts by one (those played now name other events)
    hire = ("    - on: 2026-01-02\n"
            "      hire: {id: e9, name: Eva Smit, function: verkoper, department: verkoop, manager: m1, "
            "roles: [medewerker]}\n")
    assert "  events:\n" in text
    story.write_text(text.replace("  events:\n", "  events:\n" + hire, 1), encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        simulate(folder, START, date(2026, 3, 31), store=url)
    codes = {d.code for d in caught.value.diagnostics}
    assert codes == {"SIM004"} and len(caught.value.diagnostics) >= 2
    assert all(d.file.endswith("story.yaml") and d.line > 0 and d.hint for d in caught.value.diagnostics)
    assert _rows(url, "SELECT count(*) FROM rw_simulation_events")[0][0] == before  # nothing played


def test_a_stale_lease_is_taken_over_dead_process_or_expired(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    for name, pid, host, expires_in in (("dead", int(dead.stdout), socket.gethostname(), 600),
                                        ("expired", 1, "another-host", -1)):
        url = f"sqlite:///{tmp_path / (name + '.sqlite')}"
        _hold_lease(url, pid, host, expires_in)
        result = simulate(FIXTURE, START, date(2026, 1, 31), store=url)
        assert result.days == 31
        assert _rows(url, "SELECT count(*) FROM rw_simulation_leases")[0][0] == 0  # released at the end


@pytest.mark.parametrize("pause", ["after-commit:day:2026-01-03", "savepoint:day:2026-01-03"])
def test_a_second_process_refuses_cleanly_while_the_first_runs(tmp_path: Path, pause: str) -> None:
    """The first run pauses (the harness hook) between two days, or inside a day's transaction, where it holds
    SQLite's write lock; the second one meanwhile exits 1 with a message, at once: before, inside a transaction it
    waited for the write lock (the busy timeout, 30 s) and then failed with "database is locked"."""
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    flag, woke = tmp_path / "paused", tmp_path / "woke"
    first = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, pathlib\n"
         "from datetime import date\n"
         "from regelwerk.simulation import faults, simulate\n"
         f"flag, woke = pathlib.Path({str(flag)!r}), pathlib.Path({str(woke)!r})\n"
         "def hook(n, label):\n"
         f"    if label == {pause!r} and not flag.exists():  # the lease is held\n"
         "        flag.write_text('x'); time.sleep(8); woke.write_text('x')\n"
         "faults.set_hook(hook)\n"
         f"simulate({str(FIXTURE)!r}, date(2026, 1, 1), date(2026, 1, 31), store={url!r})\n"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not flag.exists():
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = subprocess.run([*CLI, "--from", "2026-01-01", "--to", "2026-01-31", "--store", url, "--quiet"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert not woke.exists(), "the second run waited for the first"
    assert second.returncode == 1, second.stdout + second.stderr
    assert "is running in process" in second.stderr and "Traceback" not in second.stderr
    _out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert _rows(url, "SELECT count(*) FROM rw_relations")[0][0] == 7  # 3 from the file + 4 reporting lines


def _start_together(url: str) -> list[subprocess.CompletedProcess[str]]:
    runs = [subprocess.Popen([*CLI, "--from", "2026-01-01", "--to", "2026-01-10", "--store", url, "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done = []
    for run in runs:
        out, err = run.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(run.args, run.returncode, out, err))
    return done


@pytest.mark.postgres
def test_two_runs_starting_together_on_postgresql_do_not_race_on_create_table(pg_url: str) -> None:
    runs = _start_together(pg_url)
    assert all("Traceback" not in r.stderr for r in runs), [r.stderr for r in runs]
    assert sorted(r.returncode for r in runs)[0] == 0
    assert all(r.returncode == 0 or "is running in process" in r.stderr for r in runs)
    assert _rows(pg_url, "SELECT count(*) FROM rw_relations")[0][0] == 7


def test_two_runs_starting_together_on_sqlite_do_not_race(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    runs = _start_together(url)
    assert all("Traceback" not in r.stderr for r in runs), [r.stderr for r in runs]
    assert all(r.returncode == 0 or "is running in process" in r.stderr for r in runs), [
        (r.returncode, r.stderr[-2000:]) for r in runs]
    assert _rows(url, "SELECT count(*) FROM rw_relations")[0][0] == 7


class _HalfPack:
    """A story event that writes (starts a workflow instance, adds a relation), then refuses."""

    name = "half"

    def register(self, registry: Any) -> None:
        from regelwerk.registry import StoryEventSpec

        def half(sim: Any, args: Any) -> tuple[str, dict[str, Any]]:
            sim.relations.relate("member_of", "e1", "half-team", by="test", now=sim.now)
            sim.directory.upsert([{"id": "ghost", "name": "Ghost"}], sim.now)
            if args["fail"]:
                raise UsageError("refused after writing")
            return "half done", {}

        schema = {"type": "object", "properties": {"fail": {"type": "boolean"}}, "required": ["fail"]}
        registry.add_story_event(StoryEventSpec("half", self.name, half, schema, "Writes, then maybe refuses."))


def test_a_refused_event_leaves_nothing_of_what_it_wrote_and_its_refusal_is_recorded(tmp_path: Path) -> None:
    from regelwerk.registry import load_registry

    customer = tmp_path / "klant"
    shutil.copytree(FIXTURE, customer)
    story = (customer / "story.yaml").read_text(encoding="utf-8")
    (customer / "story.yaml").write_text(story + "    - on: 2026-01-02\n      half: {fail: true}\n",
                                         encoding="utf-8")
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    result = simulate(customer, START, date(2026, 1, 5), store=url, registry=load_registry(extra=[_HalfPack()]))
    assert [r["message"] for r in result.summary["events"]["refusals"]] == ["refused after writing"]
    assert _rows(url, "SELECT count(*) FROM rw_relations WHERE object = 'half-team'")[0][0] == 0
    assert _rows(url, "SELECT count(*) FROM rw_employees WHERE id = 'ghost'")[0][0] == 0


def test_busy_timeout_comes_before_wal_so_a_locked_fresh_file_waits_instead_of_failing(tmp_path: Path) -> None:
    """A file not yet in WAL mode while another connection writes: opening it waits for the lock."""
    from regelwerk.store.sql import SQLITE_PRAGMAS, create_sa_engine

    assert SQLITE_PRAGMAS.index("PRAGMA busy_timeout=30000") < SQLITE_PRAGMAS.index("PRAGMA journal_mode=WAL")
    path = tmp_path / "fresh.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE x (a INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO x VALUES (1)")
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    engine = create_sa_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:  # switches the file to WAL: must wait for the holder, not fail
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        release.join()
        engine.dispose()
        holder.close()
