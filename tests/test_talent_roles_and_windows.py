"""A moment for some of a work year's roles, once per person where it says so; a moment open in a window; their
diagnostics (RW817, RW818) and where a stored moment stands on a day. The customer:
tests/scenarios/kinderopvang-de-vlinder."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from regelwerk.bundle import load_bundle
from regelwerk.compiler import CompiledBundle, compile_bundle
from regelwerk.diagnostics import DefinitionError
from regelwerk.scheduling.employees import EmployeeDirectory, EmployeeFacts
from regelwerk.scheduling.tables import scheduled_items
from regelwerk_packs.talent.progress import moment_state

ROOT = Path(__file__).resolve().parent.parent
VLINDER = ROOT / "tests" / "scenarios" / "kinderopvang-de-vlinder"
TZ = ZoneInfo("Europe/Amsterdam")
PREFIX = "talent/standaard-ontwikkelcyclus/2027"


@pytest.fixture(scope="module")
def vlinder(registry: Any) -> CompiledBundle:
    return compile_bundle(load_bundle(VLINDER), registry)


def lead(ident: str = "tl") -> EmployeeFacts:
    return EmployeeFacts(ident, hire_date=date(2019, 1, 1), function="teamleider", department="loc-a",
                         attributes={"employment_type": "vast", "feedback_peers": "a;b;c"})


def staff(ident: str = "pm") -> EmployeeFacts:
    return EmployeeFacts(ident, hire_date=date(2020, 1, 1), function="pedagogisch-medewerker", department="loc-a",
                         manager="tl", attributes={"employment_type": "vast"})


def planned(compiled: CompiledBundle, employee: EmployeeFacts, now: datetime, item_type: str) -> dict[str, Any]:
    cycle = compiled.get("DevelopmentCycle", "standaard-ontwikkelcyclus")
    return {i.key: i for i in cycle.plan(employee, now).items if i.item_type == item_type and i.period == "2027"}


def test_a_person_holding_two_roles_of_the_year_gets_a_once_per_person_moment_once(vlinder: CompiledBundle) -> None:
    now = datetime(2027, 10, 2, tzinfo=UTC)
    # a trajectory per role (each keeps its role's competencies), the jaargesprek (once_per_person) in the first
    # role's (the work year's order), the 360 (roles: [teamleider]) in the team lead's
    assert set(planned(vlinder, lead(), now, "trajectory")) == {f"{PREFIX}/tl/medewerker", f"{PREFIX}/tl/teamleider"}
    assert set(planned(vlinder, lead(), now, "moment")) == {f"{PREFIX}/tl/medewerker/jaargesprek",
                                                            f"{PREFIX}/tl/teamleider/teamleider-360"}
    # one role: the keys of before (nothing stored is planned again), and no moment of a role not held
    assert set(planned(vlinder, staff(), now, "trajectory")) == {f"{PREFIX}/pm/medewerker"}
    assert set(planned(vlinder, staff(), now, "moment")) == {f"{PREFIX}/pm/medewerker/jaargesprek"}


def test_by_default_a_moment_arises_in_every_trajectory_of_a_role_it_is_for(vlinder: CompiledBundle) -> None:
    """One trajectory per work year and role, each with its moments (AFAS: "per werkjaar en gekoppelde rol het
    juiste ontwikkeltraject"): without once_per_person the team lead has a jaargesprek in both; a moment's roles
    still keep it out of the trajectories of other roles."""
    import dataclasses

    cycle = vlinder.get("DevelopmentCycle", "standaard-ontwikkelcyclus")
    per_role = dataclasses.replace(cycle, moments=tuple(dataclasses.replace(m, once_per_person=False)
                                                        for m in cycle.moments))
    keys = {i.key for i in per_role.plan(lead(), datetime(2027, 10, 2, tzinfo=UTC)).items
            if i.item_type == "moment" and i.period == "2027"}
    assert keys == {f"{PREFIX}/tl/medewerker/jaargesprek", f"{PREFIX}/tl/teamleider/jaargesprek",
                    f"{PREFIX}/tl/teamleider/teamleider-360"}


def test_the_first_role_of_the_year_that_a_moment_is_for_owns_it(vlinder: CompiledBundle) -> None:
    import dataclasses

    cycle = vlinder.get("DevelopmentCycle", "standaard-ontwikkelcyclus")
    # the same cycle with the work year's roles the other way round: the team lead's jaargesprek moves along
    spec = cycle.work_years[0]
    turned = dataclasses.replace(cycle, work_years=(dataclasses.replace(spec, roles=spec.roles[::-1]),))
    keys = {i.key for i in turned.plan(lead(), datetime(2027, 10, 2, tzinfo=UTC)).items if i.item_type == "moment"
            and i.period == "2027"}
    assert keys == {f"{PREFIX}/tl/teamleider/jaargesprek", f"{PREFIX}/tl/teamleider/teamleider-360"}


def test_a_window_opens_on_its_first_day_and_is_due_on_its_last(vlinder: CompiledBundle) -> None:
    item = planned(vlinder, staff(), datetime(2027, 10, 2, tzinfo=UTC), "moment")[f"{PREFIX}/pm/medewerker/jaargesprek"]
    assert item.appears_at == item.due_at == datetime(2027, 10, 1, 9, 0, tzinfo=TZ)
    assert item.deadline == datetime(2027, 12, 31, 9, 0, tzinfo=TZ)
    assert (item.payload["appears"], item.payload["due_date"]) == ("2027-10-01", "2027-12-31")
    # not missed while it is open: a tick that first sees it on 31 December creates it, the catch-up policy decides
    # only after the window (before, the schedule's grace of a day)
    missed_from = item.due_at + timedelta(seconds=item.grace_seconds)
    assert missed_from == datetime(2028, 1, 1, 0, 0, tzinfo=TZ)
    # the window has no lead time to pin in a trajectory (a moment with arises has)
    assert "jaargesprek" not in vlinder.get("DevelopmentCycle", "standaard-ontwikkelcyclus").timing()


def test_a_window_the_tick_first_sees_while_open_is_not_missed(registry: Any, tmp_path: Path) -> None:
    """With ``catch_up: skip`` a moment first seen after its day + grace is skipped; one in a window that is still
    open is not missed and starts (its due day is the window's end)."""
    from regelwerk.runtime import Engine
    from regelwerk.scheduling.tick import tick

    bundle = skip_bundle(tmp_path)
    compiled = compile_bundle(load_bundle(bundle, bases={"standard": ROOT / "definitions" / "standard"}), registry)
    url = f"sqlite:///{tmp_path / 'tick.sqlite'}"
    first_seen = datetime(2027, 12, 20, 10, 0, tzinfo=TZ)
    engine = Engine(compiled, store=url, registry=registry, clock=lambda: first_seen)
    try:
        EmployeeDirectory(engine.store.engine).upsert([staff(), lead()], first_seen)
        tick(engine, compiled, first_seen)
        with engine.store.engine.connect() as conn:
            status = dict(conn.execute(sa.select(scheduled_items.c.key, scheduled_items.c.status)).all())
    finally:
        engine.close()
    assert status[f"{PREFIX}/pm/medewerker/jaargesprek"] == "started"
    assert status[f"{PREFIX}/tl/medewerker/jaargesprek"] == "started"
    assert status[f"{PREFIX}/tl/teamleider/teamleider-360"] == "skipped"  # due 1 October, a day's grace
    # where they stand: open up to 31 December, late the day after (neither conversation was held)
    import json

    from click.testing import CliRunner
    from regelwerk.cli import build_cli

    def moments(*args: str) -> Any:
        return CliRunner().invoke(build_cli(), ["talent", "moments", str(bundle), "--store", url, *args],
                                  catch_exceptions=False)

    jaargesprekken = {f"{PREFIX}/pm/medewerker/jaargesprek", f"{PREFIX}/tl/medewerker/jaargesprek"}
    open_ = json.loads(moments("--at", "2027-12-31", "--state", "open", "--format", "json").output)
    assert {m["key"] for m in open_} == jaargesprekken
    assert {(m["appears"], m["due"]) for m in open_} == {("2027-10-01", "2027-12-31")}  # the window, not the tick
    late = json.loads(moments("--at", "2028-01-01", "--state", "late", "--format", "json").output)
    assert {m["key"] for m in late} == jaargesprekken
    assert moments("--at", "1 januari").exit_code == 2


def skip_bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "vlinder"
    shutil.copytree(VLINDER, bundle, ignore=shutil.ignore_patterns("scenarios"))
    cycle = bundle / "talent" / "cycle.yaml"
    text = cycle.read_text(encoding="utf-8")
    text = text.replace('        at: "09:00"\n', '        at: "09:00"\n        catch_up: skip\n', 1)
    the_360 = '      arises: {anchor: work_year.start, plus: P9M, at: "09:00"}\n      start: automatic\n      roles:'
    text = text.replace(the_360, the_360.replace('"09:00"}', '"09:00", catch_up: skip}'), 1)
    assert text.count("catch_up: skip") == 2
    cycle.write_text(text, encoding="utf-8")
    return bundle


def test_where_a_moment_stands_on_a_day() -> None:
    due = date(2027, 12, 31)
    assert moment_state("started", due, date(2027, 10, 1), moved_on=False) == "open"
    assert moment_state("started", due, due, moved_on=False) == "open"
    assert moment_state("started", due, due + timedelta(days=1), moved_on=False) == "late"
    assert moment_state("ready", due, due + timedelta(days=1), moved_on=False) == "late"  # never started
    assert moment_state("started", due, due + timedelta(days=1), moved_on=True) == "done"
    assert moment_state("planned", due, date(2027, 9, 1), moved_on=False) == "waiting"
    assert moment_state("closed", due, due + timedelta(days=9), moved_on=False) == "closed"


CYCLE = """\
apiVersion: regelwerk/v1
kind: DevelopmentCycle
metadata: {name: fouten}
spec:
  label: Fouten
  calendar: kalenderjaar
  roles: [medewerker, bhv-er]
  work_years:
    - {from: "2026"}
  moments:
    - id: voor-een-onbekende-rol
      label: Onbekende rol
      dossier_item_type: gesprek
      arises: {anchor: work_year.end}
      roles: [medewerker, bhv]
    - id: venster-achterstevoren
      label: Achterstevoren
      dossier_item_type: gesprek
      window:
        from: {anchor: work_year.end, minus: P1M}
        until: {anchor: work_year.start, plus: P10M}
    - id: venster-buiten-het-jaar
      label: Buiten het jaar
      dossier_item_type: gesprek
      window:
        from: {anchor: work_year.end, minus: P1M}
        until: {anchor: work_year.end, plus: P1M}
    - id: venster-en-vervaldatum
      label: Beide
      dossier_item_type: gesprek
      arises: {anchor: work_year.end}
      appears_before: P2W
      window:
        from: {anchor: work_year.middle}
        until: {anchor: work_year.end}
    - id: zonder-datum
      label: Geen datum
      dossier_item_type: gesprek
    - id: venster-na-indiensttreding
      label: Na indiensttreding
      dossier_item_type: gesprek
      window:
        from: {anchor: employee.hire_date, plus: P8W}
        until: {anchor: employee.hire_date, plus: P4W}
"""


def test_diagnostics_of_roles_and_windows(registry: Any, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(ROOT / "definitions" / "standard" / "talent", bundle)
    (bundle / "fouten.yaml").write_text(CYCLE, encoding="utf-8")
    with pytest.raises(DefinitionError) as err:
        compile_bundle(load_bundle(bundle), registry)
    found = [(d.code, Path(d.file).name, d.line, d.column, d.pointer) for d in err.value.diagnostics if d.is_error]
    assert found == [
        ("RW817", "fouten.yaml", 15, 27, "/spec/moments/0/roles/1"),
        ("RW818", "fouten.yaml", 21, 16, "/spec/moments/1/window/until"),
        ("RW818", "fouten.yaml", 27, 16, "/spec/moments/2/window/until"),
        ("RW818", "fouten.yaml", 31, 15, "/spec/moments/3/arises"),
        ("RW818", "fouten.yaml", 32, 23, "/spec/moments/3/appears_before"),
        ("RW818", "fouten.yaml", 36, 7, "/spec/moments/4"),
        ("RW818", "fouten.yaml", 44, 16, "/spec/moments/5/window/until"),
    ]
    by_pointer = {d.pointer: d for d in err.value.diagnostics}
    unknown = by_pointer["/spec/moments/0/roles/1"]
    assert "'bhv'" in unknown.message and unknown.hint == "did you mean 'bhv-er'?"
    backwards = by_pointer["/spec/moments/1/window/until"]
    assert "ends on 2026-11-01, before it opens on 2026-11-30" in backwards.message and backwards.hint
    assert "outside work year 2026" in by_pointer["/spec/moments/2/window/until"].message
    assert "employee.hire_date" in by_pointer["/spec/moments/5/window/until"].message


def test_a_round_before_a_window_moment_prepares_its_first_day(registry: Any, tmp_path: Path) -> None:
    """The conversation may be held on any day of its window, so feedback asked for it is due when it opens (not
    at its end, as the due date of a moment without a window)."""
    bundle = tmp_path / "vlinder"
    shutil.copytree(VLINDER, bundle, ignore=shutil.ignore_patterns("scenarios"))
    cycle_file = bundle / "talent" / "cycle.yaml"
    text = cycle_file.read_text(encoding="utf-8")
    cycle_file.write_text(text.replace("      start: automatic\n", "      start: automatic\n"
                                       "      feedback_round: feedback-360-teamleider\n", 1), encoding="utf-8")
    compiled = compile_bundle(load_bundle(bundle, bases={"standard": ROOT / "definitions" / "standard"}), registry)
    cycle = compiled.get("DevelopmentCycle", "standaard-ontwikkelcyclus")
    peers = [staff(p) for p in "abc"]
    plan = cycle.plan_batch([lead(), *peers], datetime(2027, 10, 2, tzinfo=UTC))[0]
    request = {i.key: i for i in plan.items}[f"{PREFIX}/tl/medewerker/jaargesprek/feedback/feedback-360-teamleider/"
                                              "nominated/a"]
    assert request.appears_at is not None and request.deadline is not None
    assert request.appears_at.astimezone(TZ).date() == date(2027, 9, 17)  # 14 days (days_ahead) before 1 October
    assert request.deadline == datetime(2027, 10, 1, 9, 0, tzinfo=TZ)


def test_a_full_plan_closes_only_its_own_trajectories_when_another_id_extends_its_own(
        vlinder: CompiledBundle) -> None:
    """Employee ids may hold a slash: ``x``'s trajectory keys are a prefix of ``x/y``'s. A full plan of both in one
    batch (the first after a bundle change) closes no trajectory: each still holds its role. Before, ``x``'s plan
    found ``x/y``'s trajectory under its own prefix, not among its roles, and closed it (transfer close_and_open)."""
    from regelwerk.scheduling.directory import MemoryDirectory

    now = datetime(2027, 10, 2, tzinfo=UTC)
    people = [staff("x"), staff("x/y"), staff("x/yz")]
    cycle = vlinder.get("DevelopmentCycle", "standaard-ontwikkelcyclus")
    trajectories = {i.key: i for e in people for i in cycle.plan(e, now).items if i.item_type == "trajectory"}
    assert {key.split("/")[3] for key in trajectories} == {"x"} and len(trajectories) == 3

    class Stored(MemoryDirectory):
        def stored(self, source: str, item_type: str, subjects: Any, fields: Any = None, keys: Any = None) -> Any:
            return {k: {"timing": {}} for k, i in trajectories.items() if item_type == "trajectory"
                    and i.subject in subjects and (keys is None or k in keys)}

    plans = cycle.plan_batch(people, now, Stored(people))
    assert [plan.closes for plan in plans] == [(), (), ()]
    # x led a team before (a trajectory of that role stored): its own is still closed, and only that
    trajectories.update({i.key: i for i in cycle.plan(lead("x"), now).items if i.item_type == "trajectory"})
    plans = cycle.plan_batch(people, now, Stored(people))
    assert [plan.closes for plan in plans] == [(f"{PREFIX}/x/teamleider",), (), ()]
