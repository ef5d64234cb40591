"""Talent planning rules beyond the scenarios: invitee sets, employment facts for per-moment conditions,
diagnostics of the new keys, and what the tick writes for a round."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from regelwerk.bundle import load_bundle
from regelwerk.compiler import CompiledBundle, compile_bundle
from regelwerk.diagnostics import DefinitionError
from regelwerk.scheduling.directory import MemoryDirectory
from regelwerk.scheduling.employees import EmployeeFacts
from regelwerk_packs.talent.feedback import invitees, visible_to
from regelwerk_packs.talent.model import WorkYear, moment_scope

ROOT = Path(__file__).resolve().parent.parent
VENSTERS = ROOT / "tests" / "scenarios" / "talent" / "vensters"
YEAR = WorkYear("2026", date(2026, 1, 1), date(2026, 12, 31), date(2026, 7, 1))


@pytest.fixture(scope="module")
def vensters(registry: Any) -> CompiledBundle:
    return compile_bundle(load_bundle(VENSTERS), registry)


def team(n: int, **extra: Any) -> list[EmployeeFacts]:
    boss = EmployeeFacts("boss", hire_date=date(2000, 1, 1), manager="top")
    top = EmployeeFacts("top", hire_date=date(2000, 1, 1))
    return [boss, top, *(EmployeeFacts(f"e{i:02d}", hire_date=date(2020, 1, 1), manager="boss", **extra)
                         for i in range(n))]


def test_months_in_work_year_by_the_due_date() -> None:
    due = date(2026, 11, 30)
    exactly_four = EmployeeFacts("a", hire_date=date(2026, 8, 1))
    one_day_short = EmployeeFacts("b", hire_date=date(2026, 8, 2))
    assert moment_scope(exactly_four, YEAR, "x", due)["employment"]["months_in_work_year"] == 4
    assert moment_scope(one_day_short, YEAR, "x", due)["employment"]["months_in_work_year"] == 3
    long_ago = moment_scope(EmployeeFacts("c", hire_date=date(2019, 4, 1)), YEAR, "x", due)["employment"]
    assert long_ago["months_in_work_year"] == 11 and long_ago["days_in_work_year"] == 334
    assert long_ago["months_of_service"] == 7 * 12 + 7
    leap = WorkYear("2028", date(2028, 1, 1), date(2028, 12, 31), date(2028, 7, 1))
    feb29 = moment_scope(EmployeeFacts("d", hire_date=date(2028, 2, 29)), leap, "x", date(2028, 6, 27))
    assert feb29["employment"]["months_in_work_year"] == 3  # 29 Feb - 27 Jun: a day short of four months
    assert moment_scope(EmployeeFacts("d", hire_date=date(2028, 2, 29)), leap, "x",
                        date(2028, 6, 28))["employment"]["months_in_work_year"] == 4
    left = EmployeeFacts("e", hire_date=date(2020, 1, 1), leaving_date=date(2026, 3, 1))
    assert moment_scope(left, YEAR, "x", due)["employment"] == {
        "days_in_work_year": 59, "months_in_work_year": 2, "months_of_service": 82, "employed_on_due_date": False}


def test_colleague_sets_choose_a_stable_maximum_and_report_a_shortfall(vensters: CompiledBundle) -> None:
    fround = vensters.get("DevelopmentCycle", "standaard-ontwikkelcyclus").rounds_by_name["feedback-voor-beoordeling"]
    people = team(8)
    directory = MemoryDirectory(people)
    subject = people[2]
    chosen, short = invitees(fround, subject, date(2026, 11, 2), "2026", directory)
    colleagues = [i.invitee for i in chosen if i.set == "colleagues"]
    assert len(colleagues) == 4 and subject.id not in colleagues and not short
    again, _ = invitees(fround, subject, date(2026, 11, 2), "2026", MemoryDirectory(reversed(people)))
    assert again == chosen  # the same choice, whatever order the directory reads
    other_year, _ = invitees(fround, subject, date(2026, 11, 2), "2027", directory)
    assert [i.invitee for i in other_year if i.set == "colleagues"] != colleagues
    assert [i.set for i in chosen][:3] == ["self", "manager", "managers_manager"]
    small = team(3)
    _, short = invitees(fround, small[2], date(2026, 11, 2), "2026", MemoryDirectory(small))
    assert short == [{"set": "colleagues", "minimum": 3, "found": 2}]


def test_nobody_outside_employment_is_invited(vensters: CompiledBundle) -> None:
    fround = vensters.get("DevelopmentCycle", "standaard-ontwikkelcyclus").rounds_by_name["feedback-voor-beoordeling"]
    people = team(2)
    people.append(EmployeeFacts("later", hire_date=date(2026, 12, 1), manager="boss"))
    people.append(EmployeeFacts("gone", hire_date=date(2020, 1, 1), leaving_date=date(2026, 11, 2), manager="boss"))
    subject = EmployeeFacts("me", hire_date=date(2020, 1, 1), manager="boss", attributes={"feedback_peers": "later;x"})
    chosen, short = invitees(fround, subject, date(2026, 11, 2), "2026", MemoryDirectory([*people, subject]))
    assert {i.invitee for i in chosen} == {"me", "boss", "top", "e00", "e01"}
    assert short == [{"set": "colleagues", "minimum": 3, "found": 2}]


def test_requests_never_before_the_hire_date(registry: Any) -> None:
    """The old bug: a request some weeks before a moment was created before the employee's hire date."""
    from zoneinfo import ZoneInfo

    school = compile_bundle(load_bundle(ROOT / "tests" / "scenarios" / "talent" / "schooljaar"), registry)
    cycle = school.get("DevelopmentCycle", "docenten")
    late = EmployeeFacts("late", hire_date=date(2027, 6, 25), function="docent", manager="dir",
                         groups=("onderwijzend",))
    items = cycle.plan(late, datetime(2027, 8, 1, tzinfo=UTC)).items
    requests = [i for i in items if i.item_type == "feedback_request"]
    # the appraisal on 30 June is prepared three weeks ahead: that would be 9 June, before the hire date
    assert [i.due_at.astimezone(ZoneInfo("Europe/Amsterdam")).date() for i in requests] == [date(2027, 6, 25)]
    for item in items:
        assert item.due_at.astimezone(ZoneInfo("Europe/Amsterdam")).date() >= late.hire_date, item.key


def test_visibility_deny_by_default_and_payload(vensters: CompiledBundle) -> None:
    cycle = vensters.get("DevelopmentCycle", "standaard-ontwikkelcyclus")
    fround = cycle.rounds_by_name["feedback-voor-beoordeling"]
    assert visible_to(fround, "colleagues") == ["manager", "hr"]
    assert visible_to(fround, "role-vertrouwenspersoon") == ["hr"]
    assert visible_to(fround, "self") == ["subject", "manager"]
    people = team(4)
    subject = EmployeeFacts("s", hire_date=date(2020, 1, 1), function="adviseur", manager="boss")
    from regelwerk_packs.talent.model import DevelopmentCycle

    assert isinstance(cycle, DevelopmentCycle)
    plans = cycle.plan_batch([subject], datetime(2026, 11, 25, tzinfo=UTC),
                             directory=MemoryDirectory([*people, subject]))
    requests = {i.key.rsplit("/feedback-voor-beoordeling/", 1)[1]: i for i in plans[0].items
                if i.item_type == "feedback_request"}
    assert requests["colleagues/e00"].payload["visible_to"] == ["manager", "hr"]
    assert requests["colleagues/e00"].deadline is not None
    assert requests["self"].payload["due_date"] == "2026-11-30"


def test_diagnostics_of_invitee_sets(registry: Any, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(VENSTERS, bundle)
    (bundle / "bundle.yaml").write_text((VENSTERS / "bundle.yaml").read_text(encoding="utf-8").replace(
        "extends: standard", f"extends: {ROOT / 'definitions' / 'standard'}"), encoding="utf-8")
    text = (bundle / "cycle.yaml").read_text(encoding="utf-8")
    text = text.replace("{set: colleagues, same: team, min: 3, max: 4}",
                        "{set: colleagues, same: team, min: 5, max: 4}")
    text = text.replace("    nominated: [subject, manager]", "    nominees: [subject]")
    text = text.replace("appears_before: P3W", "appears_before: drie weken")
    (bundle / "cycle.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(DefinitionError) as err:
        compile_bundle(load_bundle(bundle), registry)
    found = sorted((d.code, d.message) for d in err.value.diagnostics if d.is_error)
    codes = [c for c, _ in found]
    assert "RW816" in codes and any("max 4 is below min 5" in m for _, m in found)
    assert any("'nominees'" in m for _, m in found)
    assert any("drie weken" in m for _, m in found)


def test_conversation_and_feedback_request_events_are_decided_by_the_talent_matrix(registry: Any) -> None:
    """Who may hold, sign off or cancel a conversation moment and answer or withdraw a feedback request is the
    ``talent-feedback`` matrix's to decide (deny by default); what the tick's start gave them (who it is about,
    the invitee, ``visible_to``) is never an answer's to change. Before, their events had no permission: anyone who
    could call the engine held any conversation and answered any request, widening who reads the answer."""
    from regelwerk.actors import SYSTEM
    from regelwerk.errors import InvalidData, PermissionDenied
    from regelwerk.runtime import Engine

    standard = compile_bundle(load_bundle(ROOT / "definitions" / "standard"), registry)
    now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    with Engine(standard, store="memory://", registry=registry, permissions="talent-feedback",
                clock=lambda: now) as engine:
        engine.store.relationships().relate("reports_to", "e1", "boss")
        with engine.store.transaction() as tx:
            post: list[Any] = []
            for workflow, iid, data in (
                    ("talent-conversation", "conv", {"employee": "e1", "manager": "boss", "moment": "beoordeling"}),
                    ("talent-feedback-request", "req", {"employee": "e1", "manager": "boss", "invitee": "e2",
                                                        "visible_to": ["manager", "hr"]})):
                engine._start_tx(tx, engine._current(workflow), data, SYSTEM, iid, now, post)
        employee, colleague = {"id": "e1", "roles": ["medewerker"]}, {"id": "e2", "roles": ["medewerker"]}
        boss, stranger = {"id": "boss", "roles": ["leidinggevende"]}, {"id": "x", "roles": ["leidinggevende"]}
        for actor in (employee, stranger):
            with pytest.raises(PermissionDenied):
                engine.fire("conv", "hold", actor)
        assert engine.fire("conv", "hold", boss).state == "held"
        with pytest.raises(PermissionDenied):
            engine.fire("conv", "sign_off", stranger)
        assert engine.fire("conv", "sign_off", employee).state == "signed_off"
        for actor in (employee, boss, stranger):
            with pytest.raises(PermissionDenied):
                engine.fire("req", "answer", actor)
        with pytest.raises(InvalidData, match="visible_to"):
            engine.fire("req", "answer", colleague, {"visible_to": ["manager", "hr", "colleagues"]})
        answered = engine.fire("req", "answer", colleague, {"answers": {"q1": 4}})
        assert answered.state == "answered" and answered.data["visible_to"] == ["manager", "hr"]
