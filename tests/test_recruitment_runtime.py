"""Recruitment on the workflow engine: one transaction per change, visibility, real erasure (SQLite + PostgreSQL)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.diagnostics import DefinitionError
from regelwerk.errors import ActionFailed, PermissionDenied
from regelwerk.runtime import Engine
from regelwerk.store.sql import SqlStore
from regelwerk.workflows.ports import RoleTable
from regelwerk_packs.recruitment.service import Recruitment

ROOT = Path(__file__).resolve().parent.parent
STANDARD = ROOT / "definitions" / "standard" / "recruitment"
BEA = {"id": "bea", "roles": ["beheerder"]}
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path: Path, registry: Any) -> Iterator[tuple[Recruitment, Clock]]:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    yield from _world(url, registry, STANDARD)


def _world(url: str, registry: Any, bundle: Path) -> Iterator[tuple[Recruitment, Clock]]:
    store = SqlStore(url)
    store.setup()
    clock = Clock()
    # the web form (role intake) registers candidates; everything else is the service's own checks
    intake = RoleTable({"register": ["intake"]})
    engine = Engine(compile_bundle(load_bundle(bundle), registry), store=store, registry=registry, clock=clock,
                    permissions=intake)
    counter = iter(range(1, 1000))
    yield Recruitment(engine, id_factory=lambda: f"id{next(counter)}"), clock
    store.close()


def _dump(rec: Recruitment) -> str:
    """Every row of every table, as text (to look for personal data anywhere)."""
    from regelwerk.store.tables import all_tables

    out = []
    with rec.engine.store.read() as tx:
        for table in all_tables().sorted_tables:
            for row in tx.connection.execute(sa.select(table)):
                out.append(json.dumps([str(v) for v in row]))
    return "\n".join(out)


def test_the_whole_change_is_one_transaction(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rec, _ = world
    vid = rec.open_vacancy(BEA, title="Kok", function="kok", department="keuken", manager="mo", team=["tom"])

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("smtp table full")

    monkeypatch.setattr("regelwerk_packs.recruitment.actions.enqueue", broken)
    with pytest.raises(ActionFailed) as failed:
        rec.apply(vid, first_name="Anna", last_name="Jansen", email="anna@example.nl", candidate_id="anna")
    assert isinstance(failed.value.__cause__, RuntimeError)
    dump = _dump(rec)
    assert "anna@example.nl" not in dump and "Jansen" not in dump
    assert rec.engine.instances() == []
    monkeypatch.undo()
    rec.apply(vid, first_name="Anna", last_name="Jansen", email="anna@example.nl", candidate_id="anna")
    assert rec.candidate("anna")["status"] == "new"
    assert "Bedankt voor je sollicitatie: Kok" in _dump(rec)


def test_erasure_removes_personal_data_everywhere_and_logs_anonymously(world: Any) -> None:
    rec, clock = world
    vid = rec.open_vacancy(BEA, title="Kok", function="kok", department="keuken", manager="mo", team=["tom"])
    rec.apply(vid, first_name="Zoë", last_name="Uniekenaam", email="zoe@example.nl", phone="0612345678",
              candidate_id="zoe")
    rec.move("tom", "zoe", "interview_1", note="Zoë Uniekenaam belt terug op 0612345678")
    rec.move("tom", "zoe", "rejected")
    assert "Uniekenaam" in _dump(rec)
    clock.now = START + timedelta(weeks=4, days=1)
    preview = rec.retention_preview()
    assert [(i.candidate_id, i.rule) for i in preview.deletions] == [("zoe", "rejected")]
    report = rec.retention_sweep()
    assert (report.deleted, report.outbox_rows_erased) == (1, 3)
    dump = _dump(rec)
    for personal in ("Uniekenaam", "zoe@example.nl", "0612345678", "Zoë"):
        assert personal not in dump, personal
    with rec.engine.store.read() as tx:
        log = tx.connection.execute(sa.text("SELECT action, rule, status_group, kept_days FROM rw_retention_log"))
        assert [tuple(r) for r in log] == [("retention", "rejected", "rejected", 29)]
    # the core's record of the erasure: once, by the sweep's actor at the sweep's moment, why, and nothing of hers
    [instance] = rec.engine.instances()
    last = rec.engine.history(instance.id)[-1]
    assert (last.event, last.from_state, last.to_state, last.actor, last.at, last.version, dict(last.explain)) == (
        "$erase", "rejected", "rejected", "system", clock.now, instance.version, {"reason": "retention"})


def test_sweep_streams_in_chunks_and_asks_renewal_once(world: Any) -> None:
    """Chunks smaller than the work: every due candidate goes, consented ones are asked once, the rest stays."""
    rec, clock = world
    vid = rec.open_vacancy(BEA, title="Kok", function="kok", department="keuken", manager="mo", team=["tom"])
    for i in range(7):
        rec.apply(vid, first_name=f"Weg{i}", last_name="Wegnaam", email=f"weg{i}@example.nl",
                  candidate_id=f"r{i}")
        rec.move("tom", f"r{i}", "rejected")
    for i in range(5):
        rec.apply(vid, first_name=f"Pool{i}", last_name="Poolnaam", email=f"pool{i}@example.nl",
                  consent=True, candidate_id=f"p{i}")
        rec.move("tom", f"p{i}", "rejected")
    rec.apply(vid, first_name="Blijft", last_name="Actief", email="blijft@example.nl", candidate_id="busy")
    clock.now = START + timedelta(weeks=49)  # rejected: long gone; consented: inside the 4-week renewal window
    report = rec.retention_sweep(chunk=2)
    assert (report.deleted, report.renewals_requested, report.by_rule) == (7, 5, {"rejected": 7})
    assert rec.retention_sweep(chunk=2).renewals_requested == 0  # asked once per consent
    dump = _dump(rec)
    assert "Wegnaam" not in dump and "weg3@example.nl" not in dump
    assert "Poolnaam" in dump and "Blijft" in dump
    with rec.engine.store.read() as tx:
        log = list(tx.connection.execute(sa.text("SELECT rule, status FROM rw_retention_log")))
        asked = tx.connection.execute(sa.text(
            "SELECT count(*) FROM rw_candidates WHERE renewal_requested_at IS NOT NULL")).scalar()
    assert sorted(tuple(r) for r in log) == [("rejected", "rejected")] * 7 and asked == 5
    clock.now = START + timedelta(weeks=53)  # the consent year is over: the pool goes too
    assert rec.retention_sweep(chunk=3).by_rule == {"consented": 5}
    assert "Poolnaam" not in _dump(rec)


def test_team_decides_visibility_and_admins_open_vacancies(world: Any) -> None:
    rec, _ = world
    with pytest.raises(PermissionDenied):
        rec.open_vacancy("tom", title="Kok", function="kok", department="keuken", manager="mo")
    vid = rec.open_vacancy(BEA, title="Kok", function="kok", department="keuken", manager="mo", team=["tom"])
    rec.apply(vid, first_name="Anna", last_name="Jansen", email="anna@example.nl")
    assert len(rec.candidates("tom", vid)) == 1
    assert len(rec.candidates(BEA, vid)) == 1
    with pytest.raises(PermissionDenied):
        rec.candidates("eve", vid)
    with pytest.raises(PermissionDenied):
        rec.close_vacancy("tom", vid)
    rec.close_vacancy(BEA, vid)
    from regelwerk.errors import UsageError

    with pytest.raises(UsageError):
        rec.apply(vid, first_name="Late", last_name="X", email="late@example.nl")


def test_a_vacancy_that_is_not_there_answers_as_one_that_is_not_yours_and_refusals_are_audited(world: Any) -> None:
    """Found by attack: ``candidates`` (and ``close_vacancy``, ``set_team``, ``send``) looked the vacancy or candidate
    up before the decision, so an outsider told "no vacancy" (UsageError) from "not yours" (PermissionDenied), and no
    refusal of the pack was audited. Now both are ``PermissionDenied``, each audited once with actor and time; only
    whom the policy allows learns that the id is unknown."""
    from regelwerk.errors import UnknownInstance, UsageError

    rec, _ = world
    vid = rec.open_vacancy(BEA, title="Kok", function="kok", department="keuken", manager="mo", team=["tom"])
    cid = rec.apply(vid, first_name="Anna", last_name="Jansen", email="anna@example.nl")
    before = len(rec.engine.audit())
    for call in (lambda v: rec.candidates("eve", v), lambda v: rec.close_vacancy("eve", v),
                 lambda v: rec.set_team("eve", v, ["eve"])):
        for vacancy in (vid, "no-such-vacancy"):
            with pytest.raises(PermissionDenied):
                call(vacancy)
    for candidate in (cid, "no-such-candidate"):
        with pytest.raises(PermissionDenied):
            rec.send("eve", candidate, "general")
    refusals = [a for a in rec.engine.audit()[before:] if a.actor == "eve"]
    assert [(a.action, a.detail["action"]) for a in refusals] == [
        ("permission.denied", action) for action in ("view", "view", "close", "close", "open", "open", "move", "move")]
    assert all(a.at is not None for a in refusals)
    assert rec.vacancy(vid)["team"] == ["mo", "tom"] and rec.vacancy(vid)["status"] == "open"  # nothing changed
    with pytest.raises(UsageError):
        rec.candidates(BEA, "no-such-vacancy")
    with pytest.raises(UnknownInstance):
        rec.send(BEA, "no-such-candidate", "general")


def test_bulk_delete_previews_then_deletes(world: Any) -> None:
    rec, _ = world
    vid = rec.open_vacancy(BEA, title="Kok", function="kok", department="keuken", manager="mo")
    a = rec.apply(vid, first_name="A", last_name="A", email="a@example.nl")
    b = rec.apply(vid, first_name="B", last_name="B", email="b@example.nl")
    with pytest.raises(PermissionDenied):
        rec.bulk_delete("mo", [a])
    assert rec.bulk_delete(BEA, [a, b, "nobody"]) == sorted([a, b])
    assert len(rec.candidates(BEA, vid)) == 2
    rec.bulk_delete(BEA, [a], preview=False)
    assert [c["id"] for c in rec.candidates(BEA, vid)] == [b]


def _competency(name: str, label: str, questions: list[str] | None) -> str:
    scores = "".join(f'    "{i}": {label} {i}\n' for i in range(1, 6))
    asked = f"  questions: {json.dumps(questions)}\n" if questions else ""
    return (f"apiVersion: regelwerk/v1\nkind: TalentCompetency\nmetadata: {{name: {name}}}\nspec:\n"
            f"  label: {label}\n  type: core\n  scores:\n{scores}{asked}---\n")


def test_questionnaire_asks_about_function_and_department(tmp_path: Path, registry: Any) -> None:
    """One competency model: the questionnaire reads the talent pack's roles, profiles and competencies."""
    bundle = tmp_path / "bundle"
    shutil.copytree(STANDARD, bundle)
    (bundle / "competencies.yaml").write_text(
        _competency("klantgerichtheid", "Klantgerichtheid", ["Hoe help je een boze klant?"])
        + _competency("samenwerken", "Samenwerken", ["Wanneer werkte je goed samen?"])
        + _competency("visie", "Visie", ["Waar sta je over vijf jaar?"])
        + _competency("stiptheid", "Stiptheid", None)  # no questions: never asked
        + """\
apiVersion: regelwerk/v1
kind: TalentCompetencyProfile
metadata: {name: sales}
spec: {label: Sales, competencies: [samenwerken, klantgerichtheid], departments: [sales]}
---
apiVersion: regelwerk/v1
kind: TalentRole
metadata: {name: verkoper}
spec: {label: Verkoper, origin: function, functions: [verkoper], competencies: [klantgerichtheid, stiptheid]}
---
apiVersion: regelwerk/v1
kind: TalentRole
metadata: {name: directeur}
spec: {label: Directeur, origin: function, functions: [directeur], competencies: [visie]}
---
apiVersion: regelwerk/v1
kind: TalentRole
metadata: {name: oud}
spec: {label: Oud, origin: function, functions: [verkoper], blocked: true, competencies: [visie]}
""", encoding="utf-8")
    workflow = (bundle / "workflow.yaml").read_text(encoding="utf-8")
    (bundle / "workflow.yaml").write_text(workflow.replace(
        "  on_enter:\n", "  on_enter:\n    screening:\n      - recruitment.send_questionnaire\n"))
    rec, _ = next(_world(f"sqlite:///{tmp_path / 'q.sqlite'}", registry, bundle))
    vid = rec.open_vacancy(BEA, title="Verkoper", function="verkoper", department="sales", manager="mo")
    cid = rec.apply(vid, first_name="Anna", last_name="Jansen", email="anna@example.nl")
    rec.move("mo", cid, "screening")
    from regelwerk.outbox import list_messages

    with rec.engine.store.read() as tx:
        [mail] = [m for m in list_messages(tx.connection) if m.template == "vragenlijst-competenties"]
    assert "Klantgerichtheid, Samenwerken" in mail.body
    assert "1. Hoe help je een boze klant?\n2. Wanneer werkte je goed samen?" in mail.body
    assert "Visie" not in mail.body and "Stiptheid" not in mail.body
    settings = rec.engine.bundle.get("RecruitmentSettings", "default")
    assert [c.name for c in settings.questionnaire.for_vacancy("kassier", "sales")] == ["samenwerken",
                                                                                      "klantgerichtheid"]
    assert [c.name for c in settings.questionnaire.for_vacancy("directeur", "hr")] == ["visie"]
    assert settings.questionnaire.for_vacancy("onbekend", None) == ()


def test_questionnaire_without_talent_documents_is_skipped(tmp_path: Path, registry: Any) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(STANDARD, bundle)
    workflow = (bundle / "workflow.yaml").read_text(encoding="utf-8")
    (bundle / "workflow.yaml").write_text(workflow.replace(
        "  on_enter:\n", "  on_enter:\n    screening:\n      - recruitment.send_questionnaire\n"))
    rec, _ = next(_world(f"sqlite:///{tmp_path / 'q.sqlite'}", registry, bundle))
    vid = rec.open_vacancy(BEA, title="Verkoper", function="verkoper", department="sales", manager="mo")
    cid = rec.apply(vid, first_name="Anna", last_name="Jansen", email="anna@example.nl")
    rec.move("mo", cid, "screening")
    assert "questionnaire_skipped" in _dump(rec)
    assert "vragenlijst-competenties" not in _dump(rec)


@pytest.mark.parametrize(("patch", "code"), [
    (("workflow.yaml", "active: [new,", "active: [nieuw,"), "RW910"),
    (("workflow.yaml", "archive: [hired,", "archive: [screening, hired,"), "RW911"),
    (("workflow.yaml", "active: [new, screening,", "active: [new, rejected, screening,"), "RW912"),
    (("templates.yaml", "context: consent_mail", "context: unknown_ctx"), "RW302"),
    (("settings.yaml", "receipt: ontvangstbevestiging", "receipt: toestemming-verlengen"), "RW930"),
])
def test_definition_problems_are_diagnostics(tmp_path: Path, registry: Any, patch: tuple[str, str, str],
                                             code: str) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(STANDARD, bundle)
    file, old, new = patch
    text = (bundle / file).read_text(encoding="utf-8")
    assert old in text
    (bundle / file).write_text(text.replace(old, new, 1), encoding="utf-8")
    try:
        compiled = compile_bundle(load_bundle(bundle), registry)
        found = [d.code for d in compiled.warnings]
    except DefinitionError as exc:
        found = [d.code for d in exc.diagnostics]
    assert code in found


def test_organisation_cycle_and_unfillable_context(tmp_path: Path, registry: Any) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(STANDARD, bundle)
    (bundle / "org.yaml").write_text("""\
apiVersion: regelwerk/v1
kind: OrganisationStructure
metadata: {name: org}
spec:
  entities:
    - {id: hq}
    - {id: a, parent: b}
    - {id: b, parent: a, templates: {receipt: eigen}}
---
apiVersion: regelwerk/v1
kind: MailContext
metadata: {name: salaris_mail}
spec:
  fields: [{path: salary.amount}]
---
apiVersion: regelwerk/v1
kind: Template
metadata: {name: eigen}
spec: {context: salaris_mail, purpose: receipt, subject: x, body: "{{ salary.amount }}"}
""", encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        compile_bundle(load_bundle(bundle), registry)
    codes = sorted({d.code for d in caught.value.diagnostics})
    assert codes == ["RW920", "RW931"]


def test_emitted_workflow_carries_status_groups(registry: Any) -> None:
    compiled = compile_bundle(load_bundle(STANDARD), registry)
    workflow = compiled.get("Workflow", "recruitment.standard")
    groups = {s.id: s.group for s in workflow.states}
    assert groups["screening"] == "in_progress" and groups["rejected"] == "rejected"
    assert {s.id for s in workflow.states if s.archive} == {"hired", "rejected", "withdrawn", "talent_pool"}
    assert workflow.initial == "new"


def test_a_move_reads_candidate_and_vacancy_once_and_its_mail_sees_the_new_status(
        world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's rows are handed to the fire's mail action (known_rows) instead of being read again."""
    from regelwerk_packs.recruitment import actions

    rec, _ = world
    vid = rec.open_vacancy(BEA, title="Kok", function="kok", department="keuken", manager="mo", team=["tom"])
    rec.apply(vid, first_name="Anna", last_name="Jansen", email="anna@example.nl", candidate_id="anna")
    mailed: list[tuple[str, str]] = []
    original = actions.mail_candidate

    def spy(tx: Any, compiled: Any, settings: Any, candidate: Any, vacancy: Any, template: str, *rest: Any) -> str:
        mailed.append((str(candidate["status"]), str(vacancy["title"])))
        return original(tx, compiled, settings, candidate, vacancy, template, *rest)

    monkeypatch.setattr(actions, "mail_candidate", spy)
    selects: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    engine = rec.engine.store.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        assert rec.move("tom", "anna", "interview_1") == "interview_1"
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert mailed == [("interview_1", "Kok")]
    # one read of both (the candidate port's outer join), none in the fire
    assert sum("rw_candidates" in s or "rw_vacancies" in s for s in selects) == 1
    with rec.engine.store.read() as tx:
        assert len(tx.outbox(subject_ref="candidate:anna")) == 2  # receipt + interview invitation


def test_a_candidate_gone_between_the_services_read_and_the_fire_is_not_mailed(
        world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The handed-over candidate counts only once sync_status found its row in the fire's own transaction."""
    from regelwerk.errors import UsageError

    rec, _ = world
    vid = rec.open_vacancy(BEA, title="Kok", function="kok", department="keuken", manager="mo", team=["tom"])
    rec.apply(vid, first_name="Anna", last_name="Jansen", email="anna@example.nl", candidate_id="anna")
    read = Recruitment._candidate_with_vacancy

    def read_then_erase(self: Recruitment, candidate_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        rows = read(self, candidate_id)
        with self.engine.store.transaction() as tx:  # e.g. another process's retention sweep, just now
            tx.rows("rw_candidates").delete({"id": candidate_id})
        return rows

    monkeypatch.setattr(Recruitment, "_candidate_with_vacancy", read_then_erase)
    with pytest.raises(UsageError, match="no candidate for instance"):
        rec.move("tom", "anna", "interview_1")
    with rec.engine.store.read() as tx:
        assert len(tx.outbox(subject_ref="candidate:anna")) == 1  # the receipt only
        assert tx.get("cand-anna").state != "interview_1"


def test_an_application_never_writes_the_applicant_into_the_instance(world: Any) -> None:
    """Recruitment.apply hands the applicant to sync_status: the instance row is inserted without it, so there
    is no UPDATE to take it out again (and the personal data never reaches rw_instances, not even in the WAL)."""
    rec, _ = world
    vid = rec.open_vacancy(BEA, title="Kok", function="kok", department="keuken", manager="mo", team=["tom"])
    seen: list[tuple[str, str]] = []

    def spy(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if "rw_instances" in statement:
            seen.append((statement.split(maxsplit=1)[0], str(parameters)))

    engine = rec.engine.store.engine
    sa.event.listen(engine, "before_cursor_execute", spy)
    try:
        rec.apply(vid, first_name="Anna", last_name="Uniekenaam", email="anna@example.nl", candidate_id="anna")
    finally:
        sa.event.remove(engine, "before_cursor_execute", spy)
    assert [kind for kind, _ in seen] == ["INSERT"]
    assert "Uniekenaam" not in seen[0][1] and "anna@example.nl" not in seen[0][1]
    assert rec.candidate("anna")["last_name"] == "Uniekenaam"
    with rec.engine.store.read() as tx:
        instance = tx.get("cand-anna")
        assert instance is not None and "applicant" not in instance.data
        assert len(tx.outbox(subject_ref="candidate:anna")) == 1  # the receipt
