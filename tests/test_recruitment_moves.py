"""A recruitment move's condition (``when``) over the vacancy's and the candidate's declared facts and the move's input.

Written from Hogeschool Noorderlicht's brief (tests/scenarios/hogeschool-noorderlicht): an offer only with the budget
approved and the reference check done, invitations only while the vacancy is open, internal candidates may skip the
first interview, a rejection needs a reason from a list. Before, a RecruitmentWorkflow move could only say who moves
(Gemeente Waterland's workaround was a second workflow the engine did not link to the candidate).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from regelwerk.actors import Actor
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle, validate_bundle
from regelwerk.errors import InvalidData, PermissionDenied, TransitionNotAllowed, UnknownInstance
from regelwerk.registry import Registry
from regelwerk.runtime import Engine
from regelwerk.scenarios import find_scenario_files, run_scenario_file
from regelwerk.store.sql import SqlStore
from regelwerk.workflows.ports import RoleTable
from regelwerk_packs.recruitment.kinds import SYSTEM_FIELDS
from regelwerk_packs.recruitment.service import MoveRefused, Recruitment

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "scenarios" / "hogeschool-noorderlicht"
HR = Actor("hanna", ("recruiter",))
NOW = datetime(2027, 2, 1, 8, 0, tzinfo=UTC)


def test_the_fixture_validates_without_a_diagnostic_and_its_scenarios_pass(registry: Registry) -> None:
    assert [str(d) for d in validate_bundle(load_bundle(FIXTURE), registry)] == []
    results = [r for path in find_scenario_files([FIXTURE]) for r in run_scenario_file(path, registry)]
    assert sorted(r.name for r in results) == [
        "noorderlicht-aanbod-budget-en-referenties", "noorderlicht-afwijzen-met-reden",
        "noorderlicht-uitnodigen-en-interne-kandidaten"]
    failures = [line for r in results for line in r.failures()]
    assert failures == [], "\n".join(failures)


# --- diagnostics: a fact the vacancy or candidate does not declare, at its line, all at once ---------------------

BROKEN = """\
apiVersion: regelwerk/v1
kind: Facts
metadata: {name: vacancy}
spec:
  attributes:
    budget_approved: {type: boolean}
---
apiVersion: regelwerk/v1
kind: Facts
metadata: {name: candidate}
spec:
  attributes:
    internal: {type: boolean}
---
apiVersion: regelwerk/v1
kind: RecruitmentWorkflow
metadata: {name: broken}
spec:
  statuses: standard
  active: [new, screening, offer]
  archive: [rejected]
  moves:
    - from: "*"
      to: [offer]
      when:
        all:
          - {field: vacancy.budget_aproved, eq: true}
          - {field: candidate.referencecheck, eq: done}
          - {field: candidate.internal, eq: ja}
    - from: "*"
      to: [rejected]
      input: [reason]
      when: {field: input.reasn, in: [a, b]}
    - {from: "*", to: [screening], when: {field: data.team, contains: x}}
    - {from: "*", to: [new], input: [team], when: {field: vacancy, exists: true}}
    - {from: "*", to: "*"}
"""


def test_a_condition_on_an_undeclared_fact_is_rw915_at_its_line_with_all_problems_at_once(
        tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: b}\n"
                                          "spec: {extends: standard}\n", encoding="utf-8")
    (tmp_path / "moves.yaml").write_text(BROKEN, encoding="utf-8")
    problems = [d for d in validate_bundle(load_bundle(tmp_path), registry) if d.file.endswith("moves.yaml")]
    found = sorted((d.line, d.column, d.code, d.pointer, d.message) for d in problems)
    assert found == [
        (27, 21, "RW915", "/spec/moves/0/when/all/0/field",
         "move 0: 'vacancy' has no field 'budget_aproved' (in vacancy.budget_aproved)"),
        (28, 21, "RW915", "/spec/moves/0/when/all/1/field",
         "move 0: 'candidate' has no field 'referencecheck' (in candidate.referencecheck)"),
        (29, 45, "RW411", "/spec/moves/0/when/all/2/eq",
         "candidate.internal is a boolean; 'ja' is a string: they never compare"),
        (33, 21, "RW915", "/spec/moves/1/when/field", "move 1: 'input' has no field 'reasn' (in input.reasn)"),
        (34, 50, "RW915", "/spec/moves/2/when/field", "move 2: unknown fact 'data' (in data.team)"),
        (35, 38, "RW518", "/spec/moves/3/input/0", "move 3's input 'team' is set by the recruitment service (from "
                                                   "the vacancy and the candidate), never by the mover's data: it can "
                                                   "never be given"),
        (35, 59, "RW915", "/spec/moves/3/when/field",
         "move 3: reads all of vacancy; a condition reads one of its fields"),
    ]
    hints = {d.pointer: d.hint for d in problems}
    assert hints["/spec/moves/0/when/all/0/field"] == (
        "did you mean 'budget_approved'?; declare it as an attribute of a Facts document named vacancy "
        "(kind: Facts, metadata: {name: vacancy})")
    assert hints["/spec/moves/0/when/all/1/field"].endswith(
        "internal, last_name, phone, source, status, status_group, status_since, vacancy_id; declare it as an "
        "attribute of a Facts document named candidate (kind: Facts, metadata: {name: candidate})")
    assert hints["/spec/moves/1/when/field"] == "did you mean 'reason'?; list it in the move's input (input: [reason])"
    assert hints["/spec/moves/2/when/field"] == (
        "known: actor, candidate, input, vacancy; a move's condition reads vacancy.*, candidate.*, input.* or actor.*")


# --- at run time: refused as data, audited once, nothing written; missing never permits ----------------------------

@pytest.fixture(params=["sqlite", "postgres"])
def rec(request: pytest.FixtureRequest, tmp_path: Path, registry: Registry) -> Iterator[Recruitment]:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    store = SqlStore(url)
    store.setup()
    engine = Engine(compile_bundle(load_bundle(FIXTURE), registry), store=store, registry=registry,
                    clock=lambda: NOW, permissions=RoleTable({"register": ["intake"]}))
    counter = iter(range(1, 1000))
    service = Recruitment(engine, id_factory=lambda: f"id{next(counter)}")
    yield service
    store.close()


def _open(rec: Recruitment) -> str:
    vid = rec.open_vacancy(HR, title="Docent", function="docent", department="ict", manager="mila",
                           team=["sven"], vacancy_id="v1")
    rec.apply(vid, first_name="Eva", last_name="Smit", email="eva@example.nl", candidate_id="eva")
    rec.move("sven", "eva", "screening")
    return vid


def _rows(rec: Recruitment) -> dict[str, Any]:
    from regelwerk_packs.recruitment.tables import candidates

    with rec.engine.store.read() as tx:
        outbox = [(m.recipient, m.template) for m in tx.outbox()]
        candidate = dict(tx.rows(candidates.name).first({"id": "eva"}) or {})
    record = rec.engine.get("cand-eva")
    return {"state": record.state, "version": record.version, "data": dict(record.data), "outbox": outbox,
            "history": len(rec.engine.history("cand-eva")), "candidate": candidate}


def _refusals(rec: Recruitment) -> list[Any]:
    return [a for a in rec.engine.audit() if a.action == "recruitment.move_refused"]


def test_a_refused_move_names_what_failed_is_audited_once_and_writes_nothing(rec: Recruitment) -> None:
    _open(rec)
    rec.set_candidate_facts("sven", "eva", {"reference_check": "requested"})
    before = _rows(rec)
    with pytest.raises(MoveRefused) as refused:
        rec.move(HR, "eva", "offer")
    assert isinstance(refused.value, TransitionNotAllowed)
    assert refused.value.move == 0 and refused.value.to_dict()["failed"] == [
        {"pointer": "/spec/moves/0/when/all/0", "condition": "vacancy.budget_approved eq True", "result": "unknown"},
        {"pointer": "/spec/moves/0/when/all/1", "condition": "candidate.reference_check eq 'done'",
         "result": "false"}]
    assert _rows(rec) == before
    [audit] = _refusals(rec)
    assert (audit.actor, audit.instance_id, audit.detail["to"], audit.detail["from"]) == (
        "hanna", "cand-eva", "offer", "screening")
    assert [f["result"] for f in audit.detail["failed"]] == ["unknown", "false"]
    # who is no party of the move learns that, and nothing of what its condition reads
    with pytest.raises(MoveRefused) as stranger:
        rec.move("sven", "eva", "offer")
    assert stranger.value.failed == ({"pointer": "/spec/moves/0/by", "condition": "by recruiter", "result": "false"},)
    assert "budget" not in str(stranger.value)
    assert len(_refusals(rec)) == 2 and _rows(rec) == before


def test_missing_facts_never_permit_and_the_facts_a_move_read_are_not_left_in_the_instance(rec: Recruitment) -> None:
    _open(rec)
    rec.set_vacancy_facts(HR, "v1", {"budget_approved": True})
    rec.set_candidate_facts("sven", "eva", {"reference_check": "done"})
    # the generic engine (a host's HTTP fire) passes no facts: the condition is unknown, the move refused
    with pytest.raises(TransitionNotAllowed):
        rec.engine.fire("cand-eva", "to_offer", HR)
    # and a person cannot hand them in
    with pytest.raises(InvalidData) as named:
        rec.engine.fire("cand-eva", "to_offer", HR, {"vacancy": {"budget_approved": True},
                                                     "candidate": {"reference_check": "done"}})
    assert set(named.value.system_fields) == {"vacancy", "candidate"}
    assert rec.move(HR, "eva", "offer") == "offer"
    data = rec.engine.get("cand-eva").data
    assert "vacancy" not in data and "candidate" not in data  # decided on, then dropped: never stale
    last = rec.engine.history("cand-eva")[-1]
    # kept in the history of the move: what every condition of the workflow reads (the status too)
    assert last.explain["input"]["vacancy"] == {"budget_approved": True, "status": "open"}
    assert last.explain["input"]["candidate"] == {"reference_check": "done"}


def test_facts_are_declared_and_typed_and_set_by_whom_may(rec: Recruitment) -> None:
    _open(rec)
    with pytest.raises(InvalidData) as unknown:
        rec.set_vacancy_facts(HR, "v1", {"budget_aproved": True, "budget_approved": "ja"})
    assert unknown.value.pointer == "/budget_aproved" and len(unknown.value.errors) == 2
    assert "did you mean 'budget_approved'?" in unknown.value.errors[0]["message"]
    with pytest.raises(PermissionDenied):
        rec.set_vacancy_facts("sven", "v1", {"budget_approved": True})
    with pytest.raises(PermissionDenied):
        rec.set_candidate_facts(Actor("wout", ("medewerker",)), "eva", {"internal": True})
    assert rec.set_candidate_facts("sven", "eva", {"internal": True, "reference_check": "done"}) == {
        "internal": True, "reference_check": "done"}
    assert rec.set_candidate_facts("sven", "eva", {"internal": None}) == {"reference_check": "done"}
    assert rec.candidate("eva")["facts"] == {"reference_check": "done"}
    assert rec.vacancy("v1").get("facts") is None
    facts = [a for a in rec.engine.audit("cand-eva") if a.action == "recruitment.candidate_facts"]
    assert [a.detail["facts"] for a in facts] == [{"internal": True, "reference_check": "done"}, {"internal": None}]


def test_a_workflow_without_conditions_compiles_as_before(registry: Registry) -> None:
    compiled = compile_bundle(load_bundle(ROOT / "definitions" / "standard"), registry)
    model = compiled.get("RecruitmentWorkflow", "standard")
    assert model.reads == {} and all(m.when is None and m.input is None for m in model.moves)
    workflow = compiled.get("Workflow", model.workflow)
    assert workflow.system_fields == SYSTEM_FIELDS
    assert all(t.input is None and set(t.guard_source) == {"any"} for t in workflow.transitions)


def test_the_reason_is_the_moves_input_and_nothing_else_rides_along(rec: Recruitment) -> None:
    _open(rec)
    with pytest.raises(MoveRefused):
        rec.move("sven", "eva", "rejected", input={"reason": "geen_zin"})
    with pytest.raises(InvalidData):
        rec.move("sven", "eva", "rejected", input={"reason": "andere_kandidaat", "manager_ok": True})
    rec.move("sven", "eva", "rejected", input={"reason": "andere_kandidaat"})
    assert rec.engine.get("cand-eva").data["reason"] == "andere_kandidaat"
    with rec.engine.store.read() as tx:
        rows = tx.connection.execute(sa.text("select count(*) from rw_audit where action = 'recruitment.move_refused'"))
        assert rows.scalar_one() == 1


@pytest.mark.parametrize(("when", "expected"), [
    ("{field: vacancy.budget_approved, eq: true}", {"vacancy": {"budget_approved": True}}),
    ("{all: [{field: vacancy.status, eq: open}, {field: candidate.applied_at, lt: {now: {}}}]}",
     {"vacancy": {"status": "open"}, "candidate": {"applied_at": "2027-01-01T09:00:00+00:00"}}),
])
def test_only_the_fields_a_condition_reads_are_handed_to_the_guard(tmp_path: Path, registry: Registry,
                                                                   when: str, expected: dict[str, Any]) -> None:
    (tmp_path / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: b}\n"
                                          "spec: {extends: standard}\n", encoding="utf-8")
    (tmp_path / "moves.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: regelwerk/v1
        kind: Facts
        metadata: {{name: vacancy}}
        spec: {{attributes: {{budget_approved: {{type: boolean}}}}}}
        ---
        apiVersion: regelwerk/v1
        kind: RecruitmentWorkflow
        metadata: {{name: standard, merge: replace}}
        spec:
          statuses: standard
          active: [new, offer]
          archive: [rejected]
          moves:
            - {{from: "*", to: [offer], when: {when}}}
            - {{from: "*", to: "*"}}
        """), encoding="utf-8")
    from regelwerk_packs.recruitment.service import move_facts

    model = compile_bundle(load_bundle(tmp_path), registry).get("RecruitmentWorkflow", "standard")
    candidate = {"id": "c", "first_name": "Eva", "email": "eva@example.nl", "facts": {"internal": True},
                 "applied_at": datetime(2027, 1, 1, 9, 0)}  # a stored moment: naive UTC
    vacancy = {"id": "v", "status": "open", "team": ["sven"], "facts": {"budget_approved": True}}
    # no personal data (nor any other fact) the conditions do not read enters the instance; moments as ISO text
    assert move_facts(model, candidate, vacancy) == expected


STORY = """\
apiVersion: regelwerk/v1
kind: Story
metadata: {name: noorderlicht-voorjaar}
spec:
  events:
    - on: 2027-02-01
      open_vacancy: {id: v1, title: Docent, function: docent, department: ict, manager: mila, team: [mila, sven]}
    - on: 2027-02-02
      apply: {id: eva, vacancy: v1, first_name: Eva, email: eva@example.nl}
    - on: 2027-02-03
      move: {candidate: eva, to: interview_1, actor: sven}
    - on: 2027-02-04
      move: {candidate: eva, to: offer, actor: {id: hanna, roles: [recruiter]}}
    - on: 2027-02-05
      vacancy_facts: {vacancy: v1, facts: {budget_approved: true}}
    - on: 2027-02-05
      candidate_facts: {candidate: eva, facts: {reference_check: done}, actor: sven}
    - on: 2027-02-06
      move: {candidate: eva, to: offer, actor: {id: hanna, roles: [recruiter]}}
    - on: 2027-02-07
      move: {candidate: eva, to: rejected, actor: sven, input: {reason: andere_kandidaat}}
"""


def test_the_simulation_sets_facts_gives_the_reason_and_reports_a_refused_move(tmp_path: Path) -> None:
    from datetime import date

    from regelwerk.simulation.runner import simulate

    customer = tmp_path / "noorderlicht"
    customer.mkdir()
    for path in FIXTURE.rglob("*.yaml"):
        if "scenarios" not in path.relative_to(FIXTURE).parts:
            target = customer / path.relative_to(FIXTURE)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (customer / "story.yaml").write_text(STORY, encoding="utf-8")
    result = simulate(customer, date(2027, 2, 1), date(2027, 2, 8), store=f"sqlite:///{tmp_path / 's.sqlite'}")
    events = result.summary["events"]
    assert (events["applied"], events["refused"]) == (7, 1)
    [refusal] = events["refusals"]
    assert refusal["day"] == "2027-02-04" and refusal["type"] == "move"
    assert "vacancy.budget_approved eq True is unknown" in refusal["message"]


def test_the_sign_off_report_shows_each_moves_condition_and_input(registry: Registry) -> None:
    from datetime import date

    from regelwerk.report.command import build_report

    html, _ = build_report(FIXTURE, registry, date(2027, 2, 1))
    section = html[html.rindex("Werving: wie mag kandidaten verplaatsen"):]
    section = section[:section.index("Standaard werving en selectie")]
    assert "<th>Voorwaarde</th>" in section and "<th>Invoer</th>" in section
    # a declared fact by its label (before, candidate.internal read as "blijft in de status (intern) van de
    # kandidaat": the glossary's word for an internal transition)
    assert "Budget goedgekeurd (HR) is ja" in section and "Interne kandidaat is ja" in section
    assert "intern)" not in section
    assert "status van de vacature is open" in section and ">reason<" in section


@pytest.mark.parametrize("what", ["candidate", "vacancy"])
def test_two_people_setting_facts_at_once_lose_neither_change(pg_url: str, registry: Registry, what: str) -> None:
    """HR withdraws a fact while a colleague sets another: the second merges into what the first wrote, never into
    what it read before (PostgreSQL: the row is locked for update). Before, the withdrawal was lost and the move the
    withdrawn fact allowed was allowed again."""
    import threading
    import time

    from regelwerk_packs.recruitment.ports import candidate_store
    from regelwerk_packs.recruitment.tables import candidates, vacancies

    store = SqlStore(pg_url)
    store.setup()
    (tmp := Path(__import__("tempfile").mkdtemp())).joinpath("bundle.yaml").write_text(
        "apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: b}\nspec: {extends: standard}\n", encoding="utf-8")
    tmp.joinpath("facts.yaml").write_text(textwrap.dedent("""\
        apiVersion: regelwerk/v1
        kind: Facts
        metadata: {name: vacancy}
        spec: {attributes: {budget_approved: {type: boolean}, remote: {type: boolean}}}
        ---
        apiVersion: regelwerk/v1
        kind: Facts
        metadata: {name: candidate}
        spec: {attributes: {reference_check: {type: string}, internal: {type: boolean}}}
        """), encoding="utf-8")
    engine = Engine(compile_bundle(load_bundle(tmp), registry), store=store, registry=registry, clock=lambda: NOW,
                    permissions=RoleTable({"register": ["intake"]}))
    rec = Recruitment(engine)
    bea = Actor("bea", ("beheerder",))
    rec.open_vacancy(bea, title="Docent", function="docent", department="ict", manager="mila", team=["sven"],
                     vacancy_id="v1")
    rec.apply("v1", first_name="Eva", last_name="Smit", email="eva@example.nl", candidate_id="eva")
    first, second = ({"reference_check": "done"}, {"internal": True}) if what == "candidate" else (
        {"budget_approved": True}, {"remote": True})
    if what == "candidate":
        rec.set_candidate_facts("sven", "eva", first)
    else:
        rec.set_vacancy_facts(bea, "v1", first)
    done: list[Any] = []

    def colleague() -> None:
        done.append(rec.set_candidate_facts("sven", "eva", second) if what == "candidate"
                    else rec.set_vacancy_facts(bea, "v1", second))

    with store.transaction() as tx:  # the first person withdraws the fact (locks the row as the service does)
        port = candidate_store(tx)
        assert port is not None
        if what == "candidate":
            port.candidates_by_id(["eva"], lock=True)
            tx.rows(candidates.name).update({"id": "eva"}, {"facts": {}})
        else:
            port.vacancies_by_id(["v1"], lock=True)
            tx.rows(vacancies.name).update({"id": "v1"}, {"facts": {}})
        thread = threading.Thread(target=colleague)
        thread.start()
        time.sleep(0.5)  # the colleague's change waits for this one
    thread.join(30)
    row = rec.candidate("eva") if what == "candidate" else rec.vacancy("v1")
    assert done == [second] and row["facts"] == second  # the withdrawal stands
    store.close()


def test_the_moves_a_host_can_offer_are_decided_as_the_moves_are(rec: Recruitment) -> None:
    _open(rec)
    rec.set_vacancy_facts(HR, "v1", {"budget_approved": True})

    def offered(actor: Any) -> dict[str, Any]:
        return {m["to"]: m for m in rec.moves_for(actor, "eva")}

    # the engine's own list cannot see the facts: every conditioned move looks refused there
    engine_view = {o.event: o.allowed for o in rec.engine.available_events("cand-eva", HR)}
    assert engine_view["to_offer"] is False
    hr = offered(HR)
    assert hr["offer"]["allowed"] is False and hr["offer"]["failed"] == [
        {"pointer": "/spec/moves/0/when/all/1", "condition": "candidate.reference_check eq 'done'",
         "result": "unknown"}]
    rec.set_candidate_facts("sven", "eva", {"reference_check": "done"})
    assert offered(HR)["offer"]["allowed"] is True
    assert rec.move(HR, "eva", "offer") == "offer"
    sven = offered("sven")
    assert sven["rejected"] == {"to": "rejected", "label": "Afgewezen", "allowed": True, "failed": [],
                                "input": ["reason"]}  # its reason is given with the move
    assert sven["hired"]["allowed"] is True and "offer" not in sven
    with pytest.raises(PermissionDenied):
        rec.moves_for(Actor("wout", ("medewerker",)), "eva")
    with pytest.raises(PermissionDenied):  # "not there" answers as "not yours"
        rec.moves_for(Actor("wout", ("medewerker",)), "nobody")
    with pytest.raises(UnknownInstance):
        rec.moves_for(HR, "nobody")


#: 4 February of the read-ahead story
READ_AHEAD_DAY_FOUR = """    - on: 2027-02-04
      move: {candidate: eva, to: rejected, actor: sven, input: {reason: andere_kandidaat}}
    - on: 2027-02-04
      vacancy_facts: {vacancy: v2, facts: {budget_approved: true}}
    - on: 2027-02-04
      candidate_facts: {candidate: piet, facts: {reference_check: done}, actor: sven}
    - on: 2027-02-04
      move: {candidate: piet, to: offer, actor: {id: hanna, roles: [recruiter]}}
    - on: 2027-02-04
      move: {candidate: ans, to: offer, actor: {id: hanna, roles: [recruiter]}}
"""

READ_AHEAD_STORY = """\
apiVersion: regelwerk/v1
kind: Story
metadata: {name: noorderlicht-read-ahead}
spec:
  events:
    - on: 2027-02-01
      open_vacancy: {id: v1, title: Docent, function: docent, department: ict, manager: mila, team: [mila, sven]}
    - on: 2027-02-01
      open_vacancy: {id: v2, title: Lector, function: lector, department: ict, manager: mila, team: [mila, sven]}
    - on: 2027-02-02
      apply: {id: eva, vacancy: v1, first_name: Eva, email: eva@example.nl}
    - on: 2027-02-02
      apply: {id: piet, vacancy: v2, first_name: Piet, email: piet@example.nl}
    - on: 2027-02-02
      apply: {id: ans, vacancy: v1, first_name: Ans, email: ans@example.nl, consent: ja}
    - on: 2027-02-03
      move: {candidate: eva, to: interview_1, actor: sven}
    - on: 2027-02-03
      move: {candidate: piet, to: interview_1, actor: sven}
    - on: 2027-02-03
      move: {candidate: ans, to: interview_1, actor: sven}
""" + READ_AHEAD_DAY_FOUR + """    - on: 2027-02-05
      apply: {id: kim, vacancy: v1, first_name: Kim, email: kim@example.nl}
    - on: 2027-02-05
      close_vacancy: {vacancy: v2}
    - on: 2027-02-05
      consent: {candidate: eva}
    - on: 2027-02-05
      apply: {id: jan, vacancy: v1, first_name: Jan, email: jan@example.nl}
    - on: 2027-02-05
      apply: {id: lot, vacancy: v2, first_name: Lot, email: lot@example.nl}
"""


def _story_statements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, story: str,
                      store: str) -> tuple[Any, dict[str, list[str]]]:
    """The noorderlicht fixture with ``story`` simulated from 1 to 5 February 2027 into ``store``: the result and, per
    day, the SQL of that day's story events (what the tick runs is not counted)."""
    from datetime import date

    from regelwerk.simulation import runner

    customer = tmp_path / "noorderlicht"
    for path in FIXTURE.rglob("*.yaml"):
        if "scenarios" not in path.relative_to(FIXTURE).parts:
            target = customer / path.relative_to(FIXTURE)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (customer / "story.yaml").write_text(story, encoding="utf-8")
    statements: dict[str, list[str]] = {}
    day: list[str] = []
    original = runner._Run.apply

    def apply(self: Any, event: Any, on: Any) -> None:
        day.append(on.isoformat())
        try:
            original(self, event, on)
        finally:
            day.pop()

    def spy(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if day:
            statements.setdefault(day[-1], []).append(statement)

    monkeypatch.setattr(runner._Run, "apply", apply)
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", spy)
    try:
        result = runner.simulate(customer, date(2027, 2, 1), date(2027, 2, 5), store=store)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", spy)
    return result, statements


def test_the_simulation_reads_a_days_moves_and_applications_ahead_and_never_a_row_changed_since(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A day's moves read their candidates in one statement, its applications their vacancies in one (and which of
    their ids have a row, so that their rows are written behind), and an application with consent writes its row
    once (before: a statement per move and per vacancy, and the consent written again); a candidate or vacancy
    changed by an earlier event of the day is read again, so the move is decided on the facts set that day (read
    ahead at the day's first move, piet's facts were still missing)."""
    result, statements = _story_statements(tmp_path, monkeypatch, READ_AHEAD_STORY,
                                           f"sqlite:///{tmp_path / 's.sqlite'}")
    events = result.summary["events"]
    assert (events["applied"], events["refusals"][1:]) == (16, [
        {"day": "2027-02-05", "type": "apply", "key": "story:17", "where": events["refusals"][1]["where"],
         "message": "vacancy 'v2' is closed"}])  # v2 was read ahead open at kim's application, then closed
    refusal = events["refusals"][0]  # ans: no budget for v1, no reference check
    assert refusal["day"] == "2027-02-04" and "budget_approved eq True is unknown" in refusal["message"]

    def count(on: str, start: str) -> int:
        return sum(s.startswith(start) for s in statements.get(on, []))

    assert count("2027-02-02", "SELECT rw_vacancies") == 1  # v1 and v2 in one read (before: 2)
    assert count("2027-02-02", "UPDATE rw_candidates") == 0  # ans's consent is in the row written (before: 1)
    # no row has the three applications' ids (one read): their rows are written behind, in one executemany after the
    # day's events, not one INSERT per application
    assert count("2027-02-02", "SELECT rw_candidates.id \nFROM") == 1
    assert count("2027-02-02", "INSERT INTO rw_candidates") == 0
    # kim's row is written behind; eva's consent then writes a candidate (and first kim's row, which it could read):
    # jan's id is no longer known to be free, so jan's row is inserted at once
    assert count("2027-02-05", "SELECT rw_candidates.id \nFROM") == 1
    assert count("2027-02-05", "INSERT INTO rw_candidates") == 2
    assert count("2027-02-03", "SELECT rw_candidates") == 1  # three moves, one read (before: 3)
    # their statuses are written behind (read ahead in the day's transaction, each its instance's only row): in one
    # executemany after the day's events, not one UPDATE per move
    assert count("2027-02-03", "UPDATE rw_candidates") == 0
    # piet's facts and v2's were set after the day's read ahead: read again, and the offer is allowed
    with sa.create_engine(f"sqlite:///{tmp_path / 's.sqlite'}").connect() as conn:
        found = dict(conn.execute(sa.text("SELECT id, status FROM rw_candidates")).all())
        consent = conn.execute(sa.text("SELECT consent, consent_at IS NOT NULL FROM rw_candidates "
                                       "WHERE id = 'ans'")).one()
    assert found == {"eva": "rejected", "piet": "offer", "ans": "interview_1", "kim": "new", "jan": "new"}
    assert tuple(consent) == (1, 1)


#: the read-ahead story with 4 February's moves in one run after the facts, the refused one (ans) first
REFUSED_FIRST_STORY = READ_AHEAD_STORY.replace(READ_AHEAD_DAY_FOUR, """    - on: 2027-02-04
      vacancy_facts: {vacancy: v2, facts: {budget_approved: true}}
    - on: 2027-02-04
      candidate_facts: {candidate: piet, facts: {reference_check: done}, actor: sven}
    - on: 2027-02-04
      move: {candidate: ans, to: offer, actor: {id: hanna, roles: [recruiter]}}
    - on: 2027-02-04
      move: {candidate: piet, to: offer, actor: {id: hanna, roles: [recruiter]}}
    - on: 2027-02-04
      move: {candidate: eva, to: rejected, actor: sven, input: {reason: andere_kandidaat}}
""")


@pytest.mark.postgres
@pytest.mark.parametrize("refused_first", [False, True], ids=["as-written", "refused-first"])
def test_on_postgresql_a_run_of_moves_reads_its_rows_ahead_under_locks_and_writes_the_statuses_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str, refused_first: bool) -> None:
    """On PostgreSQL a day's run of moves (the move being applied and the moves right after it) locks its instances,
    then its candidate rows, in id order without waiting, and reads them in that one statement (before: a statement
    per move), and their statuses are written behind in one executemany (before: an UPDATE per move); a move alone in
    its run reads its own row, and the rows of the day's later run are read when that run begins, after the facts
    set in between (piet's offer is allowed). A refused move that took the run's locks lets them go with its savepoint
    (and the rows read): the moves after it lock and read theirs again. What the store holds is what SQLite's run
    holds."""
    result, statements = _story_statements(
        tmp_path, monkeypatch, REFUSED_FIRST_STORY if refused_first else READ_AHEAD_STORY, pg_url)
    events = result.summary["events"]
    assert events["applied"] == 16 and len(events["refusals"]) == 2
    assert "budget_approved eq True is unknown" in events["refusals"][0]["message"]  # ans: refused, as on SQLite

    def count(on: str, start: str, part: str = "") -> int:
        return sum(s.startswith(start) and part in s for s in statements.get(on, []))

    # three moves: one statement locks their instances, one their candidate rows (read with their vacancies)
    assert count("2027-02-03", "SELECT rw_instances.id", "FOR UPDATE NOWAIT") == 1
    assert count("2027-02-03", "SELECT rw_candidates", "FOR UPDATE OF rw_candidates NOWAIT") == 1
    assert count("2027-02-03", "SELECT rw_candidates") == 1
    assert count("2027-02-03", "UPDATE rw_candidates SET status") == 0  # written behind, after the day's events
    if refused_first:  # ans's refusal let the run's locks go: piet and eva lock and read theirs again
        assert count("2027-02-04", "SELECT rw_instances.id", "FOR UPDATE NOWAIT") == 2
        assert count("2027-02-04", "SELECT rw_candidates", "FOR UPDATE OF rw_candidates") == 2
        assert count("2027-02-04", "UPDATE rw_candidates SET status") == 0
    else:  # eva's move is a run of one (then the facts events): its own read and update, as before; piet and ans are
        # the next run, read when it begins (after the facts were set)
        assert count("2027-02-04", "SELECT rw_instances.id", "FOR UPDATE NOWAIT") == 1
        assert count("2027-02-04", "SELECT rw_candidates", "FOR UPDATE OF rw_candidates") == 1
        assert count("2027-02-04", "UPDATE rw_candidates SET status") == 1  # eva's, at once
    with sa.create_engine(pg_url).connect() as conn:
        found = dict(conn.execute(sa.text("SELECT id, status FROM rw_candidates")).all())
    assert found == {"eva": "rejected", "piet": "offer", "ans": "interview_1", "kim": "new", "jan": "new"}


@pytest.mark.postgres
def test_on_postgresql_a_run_whose_row_another_transaction_holds_reads_nothing_ahead_and_waits_as_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str) -> None:
    """Another transaction holds ans's instance when 3 February's run of moves begins: the locked read ahead fails at
    once (NOWAIT), its unit rolls back (letting go of eva's and piet's instances, locked before ans's was found held)
    and the day goes on: each move reads and updates its own rows, ans's waits for the holder's commit (a second
    later), as without the read ahead. What the store holds is the same."""
    import threading
    from datetime import date

    from regelwerk.simulation import runner

    customer = tmp_path / "noorderlicht"
    for path in FIXTURE.rglob("*.yaml"):
        if "scenarios" not in path.relative_to(FIXTURE).parts:
            target = customer / path.relative_to(FIXTURE)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (customer / "story.yaml").write_text(READ_AHEAD_STORY, encoding="utf-8")
    statements: list[str] = []
    day: list[str] = []
    holder = sa.create_engine(pg_url)
    held: list[Any] = []
    original = runner._Run.apply

    def release(conn: Any) -> None:
        conn.commit()
        conn.close()

    def apply(self: Any, event: Any, on: Any) -> None:
        if on.isoformat() == "2027-02-03" and not held:
            conn = holder.connect()
            conn.execute(sa.text("SELECT id FROM rw_instances WHERE id = 'cand-ans' FOR UPDATE"))
            held.append(threading.Timer(1.0, release, (conn,)))
            held[0].start()
        day.append(on.isoformat())
        try:
            original(self, event, on)
        finally:
            day.pop()

    def spy(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if day and day[-1] == "2027-02-03":
            statements.append(statement)

    monkeypatch.setattr(runner._Run, "apply", apply)
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", spy)
    try:
        result = runner.simulate(customer, date(2027, 2, 1), date(2027, 2, 5), store=pg_url)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", spy)
        for timer in held:
            timer.join()
        holder.dispose()
    assert result.summary["events"]["applied"] == 16

    def count(start: str, part: str = "") -> int:
        return sum(s.startswith(start) and part in s for s in statements)

    assert count("SELECT rw_instances.id", "FOR UPDATE NOWAIT") == 1  # tried once: ans's instance was held
    assert count("SELECT rw_candidates", "FOR UPDATE") == 0
    assert count("SELECT rw_candidates") == 3 and count("UPDATE rw_candidates SET status") == 3  # each its own
    with sa.create_engine(pg_url).connect() as conn:
        found = dict(conn.execute(sa.text("SELECT id, status FROM rw_candidates")).all())
    assert found == {"eva": "rejected", "piet": "offer", "ans": "interview_1", "kim": "new", "jan": "new"}
