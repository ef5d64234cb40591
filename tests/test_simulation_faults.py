"""kill -9 at transaction boundaries of ``simulate``: the resumed store equals an uninterrupted run's.

The harness (``regelwerk.simulation.faults``) numbers every transaction boundary of a run: before and
after the commit of each import chunk, day's story events (also a day with a refused one) and day's tick, and every
savepoint inside them (the scheduler's batches, each workflow timer, each port's own transaction). A
forked child process runs the fixture customer with a hook that sends itself a real ``SIGKILL`` at the
N-th boundary; a second child resumes with the same command; then every table of the store is compared
row by row (every column, so a duplicated or missing row fails) with the store of an uninterrupted run.
Only what is not the simulation's to decide is left out: surrogate integer ids, random outbox ids, and
wall-clock bookkeeping times. Boundaries are sampled (a fixed seed), every kind of boundary at least once.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

FIXTURE = Path(__file__).parent / "fixtures" / "simulation"
START, END = date(2026, 1, 1), date(2026, 3, 31)
#: Columns whose values are not the simulation's to decide (wall clock, random or sequence ids).
IGNORED = {"rw_outbox": {"id"}, "rw_simulation_events": {"applied_at"}, "rw_simulations": {"updated_at"}}
SKIPPED_TABLES = {"rw_simulation_leases"}  # released at the end of every finished run

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the harness forks child processes")


#: (customer, first day, last day) of a run
_Run = tuple[Path, date, date]
RUN: _Run = (FIXTURE, START, END)


def _simulate(url: str, kill_at: int | None, run: _Run = RUN) -> None:
    from regelwerk.simulation import faults, simulate

    if kill_at is not None:
        def hook(number: int, _label: str) -> None:
            if number == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        faults.set_hook(hook)
    simulate(run[0], run[1], run[2], store=url)


def _child(url: str, kill_at: int | None, run: _Run = RUN) -> int:
    """Run the simulation in a forked child; its exit code (-9 when it was killed)."""
    process = multiprocessing.get_context("fork").Process(target=_simulate, args=(url, kill_at, run))
    process.start()
    process.join(120)
    assert process.exitcode is not None, "the child hangs"
    return process.exitcode


def _labels(url: str, run: _Run = RUN) -> list[str]:
    """The boundaries of an uninterrupted run, in order (run in a child, so this process stays clean)."""
    queue: Any = multiprocessing.get_context("fork").Queue()

    def play() -> None:
        from regelwerk.simulation import faults, simulate

        seen: list[str] = []
        faults.set_hook(lambda _n, label: seen.append(label))
        simulate(run[0], run[1], run[2], store=url)
        queue.put(seen)

    process = multiprocessing.get_context("fork").Process(target=play)
    process.start()
    labels: list[str] = queue.get(timeout=120)
    process.join(30)
    assert process.exitcode == 0
    return labels


def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    from regelwerk.store.tables import all_tables

    engine = sa.create_engine(url)
    out: dict[str, list[tuple[Any, ...]]] = {}
    try:
        with engine.connect() as conn:
            for table in all_tables().sorted_tables:
                if table.name in SKIPPED_TABLES:
                    continue
                auto = table.autoincrement_column
                columns = [c for c in table.columns if c is not auto and c.name not in IGNORED.get(table.name, ())]
                out[table.name] = sorted((tuple(repr(v) for v in row) for row in
                                          conn.execute(sa.select(*columns))), key=repr)
    finally:
        engine.dispose()
    return out


def _difference(expected: dict[str, list[tuple[Any, ...]]], got: dict[str, list[tuple[Any, ...]]]) -> list[str]:
    problems = []
    for name, rows in expected.items():
        want, have = Counter(rows), Counter(got.get(name, []))
        missing, extra = want - have, have - want
        if missing or extra:
            problems.append(f"{name}: missing {sorted(missing.elements())[:3]}, extra (duplicated or wrong) "
                            f"{sorted(extra.elements())[:3]}")
    return problems


def _refused_days(url: str) -> set[str]:
    """The days of the reference run with a refused story event (their records are in the day's transaction)."""
    from regelwerk.simulation.tables import simulation_events as t

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {str(d) for d in conn.execute(sa.select(t.c.day).where(t.c.status == "refused")).scalars()}
    finally:
        engine.dispose()


def _sample(labels: list[str], size: int, seed: int, refused_days: set[str]) -> list[int]:
    """Boundary numbers to kill at: one of every kind of boundary, then random ones (fixed seed).

    A day whose story events include a refused one is a kind of its own (its refusal's record is written
    with the day's, after the refused event's savepoint was rolled back)."""
    rnd = random.Random(seed)
    kinds: dict[str, list[int]] = {}
    for number, label in enumerate(labels, start=1):
        where, _, step = label.partition(":")
        kind = step.split(":")[0]
        if step.startswith("day:") and step.partition(":")[2] in refused_days:
            kind = "refused"
        kinds.setdefault(f"{where}:{kind}", []).append(number)
    chosen = {rnd.choice(numbers) for _, numbers in sorted(kinds.items())}
    rest = [n for n in range(1, len(labels) + 1) if n not in chosen]
    chosen.update(rnd.sample(rest, max(0, min(len(rest), size - len(chosen)))))
    return sorted(chosen)


def _check_kills(fresh: Any, size: int, seed: int) -> None:
    reference_url = fresh()
    labels = _labels(reference_url)
    kinds = {label.split(":")[0] + ":" + label.split(":")[1] for label in labels}
    assert {"before-commit:import", "savepoint:day", "before-commit:day", "after-commit:day"} <= kinds
    expected = _dump(reference_url)
    assert expected["rw_simulation_events"] and expected["rw_relations"] and expected["rw_history"]
    refused = _refused_days(reference_url)
    assert refused, "the fixture's story has a refused event"
    failures = []
    for number in _sample(labels, size, seed, refused):
        url = fresh()
        assert _child(url, number) == -signal.SIGKILL, f"boundary {number} ({labels[number - 1]}) did not kill"
        assert _child(url, None) == 0, f"the resume after boundary {number} failed"
        problems = _difference(expected, _dump(url))
        if problems:
            failures.append(f"killed at boundary {number} ({labels[number - 1]}):\n  " + "\n  ".join(problems))
    assert not failures, "\n".join(failures)


def test_kill_at_sampled_boundaries_then_resume_equals_an_uninterrupted_run_on_sqlite(tmp_path: Path) -> None:
    counter = iter(range(1000))

    def fresh() -> str:
        return f"sqlite:///{tmp_path / f'store-{next(counter)}.sqlite'}"

    _check_kills(fresh, size=14, seed=17)


@pytest.mark.postgres
def test_kill_at_sampled_boundaries_then_resume_equals_an_uninterrupted_run_on_postgresql(pg_url: str) -> None:
    from regelwerk.store.tables import all_tables

    def fresh() -> str:
        engine = sa.create_engine(pg_url)
        try:
            all_tables().drop_all(engine)
        finally:
            engine.dispose()
        return pg_url

    _check_kills(fresh, size=8, seed=23)


def _workbook_and_csv(tmp_path: Path) -> _Run:
    """A customer with both an organisation workbook and an ``employees.csv`` (docs/simulation.md): the
    example's, plus three people of the file whose reporting lines come from their ``manager`` column."""
    import shutil

    root = tmp_path / "de-linde-and-csv"
    shutil.copytree(Path(__file__).parent.parent / "examples" / "zorggroep-de-linde", root)
    (root / "data" / "employees.csv").write_text(
        "id,name,hire_date,function,department,manager\n"
        "N001,Nina Een,2020-01-01,teamleider-zorg,lindehof-a,L001\n"
        "N002,Nico Twee,2020-01-01,teamleider-zorg,lindehof-a,N001\n"
        "N003,Noor Drie,2021-01-01,teamleider-zorg,lindehof-a,L010\n", encoding="utf-8")
    return root, date(2026, 1, 1), date(2026, 1, 3)


def test_a_kill_at_any_import_boundary_of_a_workbook_and_csv_customer_then_resume_equals_an_uninterrupted_run(
        tmp_path: Path) -> None:
    """The import of the workbook, the employee chunks and the relation chunks: every one of their boundaries.
    A resume after the employees of ``employees.csv`` were committed derived no reporting lines for them (it
    took every employee the store held, theirs too, for the workbook's): their ``reports_to`` facts were lost."""
    run = _workbook_and_csv(tmp_path)
    counter = iter(range(1000))

    def fresh() -> str:
        return f"sqlite:///{tmp_path / f'store-{next(counter)}.sqlite'}"

    reference = fresh()
    labels = _labels(reference, run)
    expected = _dump(reference)
    lines = {(row[1], row[2]) for row in expected["rw_relations"] if row[0] == repr("reports_to")}  # reprs
    assert {(repr(a), repr(b)) for a, b in (("N001", "L001"), ("N002", "N001"), ("N003", "L010"))} <= lines
    imports = [n for n, label in enumerate(labels, start=1) if ":import:" in label]
    assert len(imports) >= 6 and any("import:employees" in labels[n - 1] for n in imports)
    failures = []
    for number in imports:
        url = fresh()
        assert _child(url, number, run) == -signal.SIGKILL
        assert _child(url, None, run) == 0
        problems = _difference(expected, _dump(url))
        if problems:
            failures.append(f"killed at boundary {number} ({labels[number - 1]}):\n  " + "\n  ".join(problems))
    assert not failures, "\n".join(failures)


def test_the_hook_counts_boundaries_and_kills_from_the_environment(tmp_path: Path) -> None:
    """``REGELWERK_FAULT_AT`` / ``REGELWERK_FAULT_TRACE``: the CLI's way to the same harness."""
    import subprocess
    import sys

    trace = tmp_path / "trace.tsv"
    env = {**os.environ, "REGELWERK_FAULT_AT": "40", "REGELWERK_FAULT_TRACE": str(trace)}
    cli = [sys.executable, "-c", "from regelwerk.cli import main; main()", "simulate", str(FIXTURE)]
    done = subprocess.run([*cli, "--from", "2026-01-01", "--to", "2026-01-31", "--store",
                           f"sqlite:///{tmp_path / 's.sqlite'}", "--quiet"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    lines = trace.read_text(encoding="utf-8").splitlines()
    assert [int(line.split("\t")[0]) for line in lines] == list(range(1, 41))
