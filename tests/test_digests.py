"""Digests (``kind: Digest``): one mail per recipient per period listing the cases the permission policy lets them
read, from case sources plugins register (``DigestSourceSpec``); sent exactly once per recipient per period in the
unit of work of its bookkeeping, through the real outbox and a real SMTP server; definition problems at their line
(RW830-RW834, RW903); the template language's bounded loop. The Bouwbedrijf Van Dijk fixture
(tests/scenarios/bouwbedrijf-van-dijk) plays the customer's brief with the talent and recruitment packs."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.diagnostics import DefinitionError
from regelwerk.registry import DigestCase, DigestSourceSpec, Registry, load_registry
from regelwerk.runtime import Engine
from regelwerk.scenarios import find_scenario_files, run_scenario_file
from regelwerk.templates import parse_text
from regelwerk.templates.model import MailContext, MailField, Template, TemplateRenderError

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "scenarios" / "bouwbedrijf-van-dijk"
MONDAY = datetime(2027, 3, 1, 6, 30, tzinfo=UTC)  # 07:30 in Amsterdam, a Monday

#: The cases the outside plugin's source lists (a test sets them).
CASES: list[dict[str, Any]] = []


def _cases(engine: Any, tx: Any, now: datetime, params: Mapping[str, Any]) -> Iterator[DigestCase]:
    for case in CASES:
        if case["priority"] >= params.get("min", 0):
            yield DigestCase(case["id"], "case", {"id": case["id"], "employee": case["employee"]},
                             {"title": case["title"], "due": case["due"]}, subject_ref=f"employee:{case['employee']}",
                             instance_id=case.get("instance"))


class CasesPlugin:
    """An outside plugin: a digest source, registered as the packs register theirs."""

    name = "cases"

    def register(self, registry: Registry) -> None:
        registry.add_digest_source(DigestSourceSpec(
            "test.cases", self.name, _cases, fields={"title": "the case's title", "due": "its due day"},
            params_schema={"type": "object", "additionalProperties": False,
                           "properties": {"min": {"type": "integer"}}}))


BUNDLE = """\
apiVersion: regelwerk/v1
kind: PermissionMatrix
metadata: {name: m}
spec:
  roles:
    - {id: boss, label: Leidinggevende}
    - {id: hr, label: HR}
  resources:
    - {id: case, label: Zaak, subject: employee, actions: [read]}
  grants:
    - {id: boss_team, roles: [boss], resource: case, actions: [read], scope: direct_reports}
    - {id: hr_all, roles: [hr], resource: case, actions: [read]}
---
apiVersion: regelwerk/v1
kind: MailContext
metadata: {name: overzicht}
spec:
  fields:
    - {path: recipient.name}
    - {path: counts.zaken}
    - {path: zaken, list: true}
    - {path: zaken.title}
    - {path: zaken.due}
---
apiVersion: regelwerk/v1
kind: Template
metadata: {name: overzicht}
spec:
  context: overzicht
  subject: "{{ counts.zaken }} zaken voor {{ recipient.name }}"
  body: |
    Beste {{ recipient.name }},
    {{ for z in zaken }}- {{ z.title }} (uiterlijk {{ z.due }})
    {{ end }}Groet
---
apiVersion: regelwerk/v1
kind: Digest
metadata: {name: week}
spec:
  schedule: {cron: "0 7 * * MON"}
  to: {role: ROLE}
  template: overzicht
  lists:
    zaken: {source: test.cases, with: {min: 1}}
"""


@pytest.fixture
def cases_registry() -> Registry:
    return load_registry(extra=[CasesPlugin()])


def _engine(tmp_path: Path, registry: Registry, bundle: str = BUNDLE, role: str = "boss",
            store: str = "") -> Engine:
    root = tmp_path / "bundle"
    root.mkdir(parents=True, exist_ok=True)
    (root / "all.yaml").write_text(bundle.replace("ROLE", role), encoding="utf-8")
    compiled = compile_bundle(load_bundle(root), registry)
    return Engine(compiled, store=store or f"sqlite:///{tmp_path / 'store.sqlite'}", registry=registry,
                  permissions="m", clock=lambda: MONDAY)


def _people(engine: Engine, roles: dict[str, str], reports: dict[str, str], emails: dict[str, str]) -> None:
    from regelwerk.scheduling.employees import EmployeeDirectory

    relations = engine.permissions.relationships  # type: ignore[attr-defined]
    for person, role in roles.items():
        relations.relate("has_role", person, role, now=MONDAY - timedelta(days=30))
    for person, boss in reports.items():
        relations.relate("reports_to", person, boss, now=MONDAY - timedelta(days=30))
    people = sorted(set(roles) | set(reports))
    EmployeeDirectory(engine.store.engine).upsert(  # type: ignore[attr-defined]
        [{"id": p, "name": p.upper(), **({"email": emails[p]} if p in emails else {})} for p in people], MONDAY)


def _outbox(engine: Engine) -> list[tuple[str, str]]:
    with engine.store.read() as tx:
        return [(m.recipient, m.body) for m in tx.outbox() if m.template == "overzicht"]


def _team_cases() -> None:
    CASES[:] = [
        {"id": "c1", "employee": "ali", "title": "Verlof\nAli", "due": "2027-03-05", "priority": 1},
        {"id": "c2", "employee": "bo", "title": "Verzuim Bo", "due": "2027-03-08", "priority": 2, "instance": "i-bo"},
        {"id": "c3", "employee": "cor", "title": "Contract Cor", "due": "2027-03-09", "priority": 1},
        {"id": "c4", "employee": "ali", "title": "Laag", "due": "2027-03-09", "priority": 0},
    ]


def _team_people(engine: Engine) -> None:
    _people(engine, {"piet": "boss", "kees": "boss", "lotte": "boss"},
            {"ali": "piet", "bo": "piet", "cor": "kees"},
            {"piet": "piet@example.nl", "kees": "kees@example.nl", "lotte": "lotte@example.nl"})


@pytest.fixture
def team(tmp_path: Path, cases_registry: Registry) -> Iterator[Engine]:
    _team_cases()
    engine = _engine(tmp_path, cases_registry)
    _team_people(engine)
    yield engine
    engine.close()
    CASES.clear()


# --- the mail: who gets which list, through the real outbox and SMTP --------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def test_each_manager_gets_one_mail_with_what_he_may_read_through_real_smtp(team: Engine,
                                                                             smtp: tuple[Inbox, int]) -> None:
    from regelwerk.outbox.sender import SmtpTransport, deliver_pending

    summary = team.tick(MONDAY)
    assert summary.tasks["digest.week"] == {"sent": 2, "empty": 1, "done": 0}
    inbox, port = smtp
    with SmtpTransport("127.0.0.1", port) as transport:
        report = deliver_pending(team.store.engine, transport, now=MONDAY,  # type: ignore[attr-defined]
                                 default_sender="hr@example.nl")
    assert len(report.sent) == 2
    mails = {m["To"]: m for m in inbox.messages}
    assert sorted(mails) == ["kees@example.nl", "piet@example.nl"]  # lotte: no team, nothing to list, no mail
    piet = mails["piet@example.nl"].get_payload(decode=True).decode().replace("\r\n", "\n")
    # his team only, above the source's `min` (c4 is left out by its parameter); a value's line break cannot add a line
    assert piet == ("Beste PIET,\n- Verlof Ali (uiterlijk 2027-03-05)\n- Verzuim Bo (uiterlijk 2027-03-08)\nGroet\n")
    assert mails["piet@example.nl"]["Subject"] == "2 zaken voor PIET"
    assert "Contract Cor" in mails["kees@example.nl"].get_payload(decode=True).decode()
    assert "Verlof" not in mails["kees@example.nl"].get_payload(decode=True).decode()
    # audited once per mail, with the case ids (never their contents), by the system
    sent = [a for a in team.audit() if a.action == "digest.sent"]
    assert sorted((a.detail["recipient"], tuple(a.detail["cases"]["zaken"])) for a in sent) == [
        ("kees", ("c3",)), ("piet", ("c1", "c2"))]
    assert all(a.actor == "system" and "Verlof" not in str(a.detail) for a in sent)


def test_a_second_tick_in_the_same_period_sends_nothing(team: Engine) -> None:
    team.tick(MONDAY)
    first = _outbox(team)
    assert len(first) == 2
    assert team.tick(MONDAY + timedelta(hours=2)).tasks["digest.week"] == {"sent": 0, "empty": 0, "done": 3}
    team.tick(MONDAY + timedelta(days=2))  # Wednesday: still Monday's period
    assert _outbox(team) == first
    team.tick(MONDAY + timedelta(days=7))  # the next Monday: a new period
    assert len(_outbox(team)) == 4


def test_the_period_due_is_the_latest_occurrence_or_the_first_of_its_week_or_month() -> None:
    from regelwerk.digests import due_period
    from regelwerk.scheduling.schedule import compile_schedule

    def local(text: str) -> datetime:
        return datetime.fromisoformat(text + "+01:00")

    weekly = compile_schedule({"cron": "0 7 * * MON"}, "", lambda *a: None)
    weekdays = compile_schedule({"cron": "0 7 * * MON-FRI"}, "", lambda *a: None)
    assert weekly is not None and weekdays is not None
    before = due_period(weekly, "occurrence", local("2027-03-01T06:59:00"))
    assert before is not None and before.key == "2027-02-22T07:00"  # still last Monday's
    assert due_period(weekly, "occurrence", local("2027-03-01T07:00:00")).key == "2027-03-01T07:00"  # type: ignore[union-attr]
    # the first weekday of January 2027 is Friday the 1st; of February, Monday the 1st
    assert due_period(weekdays, "month", local("2027-01-01T06:59:00")) is None
    january = due_period(weekdays, "month", local("2027-01-04T07:30:00"))
    assert january is not None and (january.key, str(january.day)) == ("2027-01", "2027-01-01")
    assert due_period(weekdays, "month", local("2027-01-31T23:00:00")).key == "2027-01"  # type: ignore[union-attr]
    week = due_period(weekdays, "week", local("2027-01-10T12:00:00"))  # a Sunday: that week's Monday
    assert week is not None and (week.key, str(week.day)) == ("2027-W01", "2027-01-04")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_ticks_at_once_send_each_digest_once(backend: str, tmp_path: Path, cases_registry: Registry,
                                                 request: pytest.FixtureRequest) -> None:
    import threading

    url = request.getfixturevalue("pg_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'store.sqlite'}"
    _team_cases()
    try:
        first = _engine(tmp_path / "a", cases_registry, store=url)
        _team_people(first)
        second = _engine(tmp_path / "b", cases_registry, store=url)  # another process's engine on the same store
        barrier = threading.Barrier(2)
        results: list[Any] = []

        def run(engine: Engine) -> None:
            barrier.wait()
            results.append(engine.tick(MONDAY).tasks["digest.week"])

        threads = [threading.Thread(target=run, args=(e,)) for e in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(r for r, _ in _outbox(first)) == ["kees@example.nl", "piet@example.nl"]
        assert sum(r.get("sent", 0) for r in results) == 2 and len(results) == 2
        first.close()
        second.close()
    finally:
        CASES.clear()


def test_a_tick_killed_mid_way_neither_sends_twice_nor_loses_a_mail(team: Engine,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from regelwerk.digests import run

    real = run._book
    calls: list[str] = []

    def dies_on_the_second(tx: Any, digest: Any, period: Any, person: str, status: str, now: datetime,
                           payload: Mapping[str, Any]) -> None:
        if status == "active":
            calls.append(person)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")  # the process stops inside the unit of work, after the enqueue
        real(tx, digest, period, person, status, now, payload)

    monkeypatch.setattr(run, "_book", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        team.tick(MONDAY)
    assert [r for r, _ in _outbox(team)] == ["kees@example.nl"]  # the one committed; the killed one rolled back
    monkeypatch.setattr(run, "_book", real)
    team.tick(MONDAY + timedelta(minutes=5))
    assert sorted(r for r, _ in _outbox(team)) == ["kees@example.nl", "piet@example.nl"]


def test_a_manager_with_cases_and_no_address_is_the_ticks_incident_until_he_has_one(team: Engine) -> None:
    from regelwerk.scheduling.employees import EmployeeDirectory

    EmployeeDirectory(team.store.engine).upsert(  # type: ignore[attr-defined]
        [{"id": "piet", "name": "PIET"}], MONDAY)
    summary = team.tick(MONDAY)
    assert summary.tasks["digest.week"] == {"incident": "regelwerk.errors.NoRecipients"}
    assert [r for r, _ in _outbox(team)] == ["kees@example.nl"]  # the others are not held back
    [incident] = team.incidents()
    assert incident.event == "tick:digest.week" and "piet" in incident.message
    EmployeeDirectory(team.store.engine).upsert(  # type: ignore[attr-defined]
        [{"id": "piet", "name": "PIET", "email": "piet@example.nl"}], MONDAY)
    # the retry (by the system here; a person as the policy allows) runs the digest again: piet's mail, once
    retried = team.retry_incident(incident.id)
    assert retried.status == "resolved" and team.incidents() == []
    team.tick(MONDAY + timedelta(hours=1))
    assert sorted(r for r, _ in _outbox(team)) == ["kees@example.nl", "piet@example.nl"]


def test_a_mail_that_cannot_be_rendered_is_the_incident_and_holds_back_no_other(team: Engine) -> None:
    CASES[2] = {**CASES[2], "title": ""}  # cor's case (kees's list) has no title: never a blank in a sent mail
    summary = team.tick(MONDAY)
    assert summary.tasks["digest.week"] == {"incident": "regelwerk.templates.model.TemplateRenderError"}
    assert [r for r, _ in _outbox(team)] == ["piet@example.nl"]
    [incident] = team.incidents()
    assert "zaken.title" in incident.message
    CASES[2] = {**CASES[2], "title": "Contract Cor"}
    team.retry_incident(incident.id)
    assert sorted(r for r, _ in _outbox(team)) == ["kees@example.nl", "piet@example.nl"]


def test_nobody_holding_the_role_refuses_or_is_skipped_once(tmp_path: Path, cases_registry: Registry) -> None:
    CASES[:] = [{"id": "c1", "employee": "ali", "title": "T", "due": "2027-03-05", "priority": 1}]
    try:
        with _engine(tmp_path / "a", cases_registry, role="hr") as engine:
            assert engine.tick(MONDAY).tasks["digest.week"] == {"incident": "regelwerk.errors.NoRecipients"}
        skipping = BUNDLE.replace("to: {role: ROLE}", "to: {role: ROLE, if_nobody: skip}")
        with _engine(tmp_path / "b", cases_registry, skipping, role="hr") as engine:
            assert engine.tick(MONDAY).tasks["digest.week"] == {"skipped": 1}
            assert engine.tick(MONDAY + timedelta(hours=1)).tasks["digest.week"] == {"done": 1}
            assert [a.detail["role"] for a in engine.audit() if a.action == "digest.skipped"] == ["hr"]
            assert engine.incidents() == []
    finally:
        CASES.clear()


def test_a_bundle_without_digests_runs_no_digest_task(tmp_path: Path, cases_registry: Registry) -> None:
    from regelwerk.scheduling.sources import tick_tasks

    plain = BUNDLE[:BUNDLE.index("---\napiVersion: regelwerk/v1\nkind: Digest")]
    with _engine(tmp_path, cases_registry, plain) as engine:
        assert tick_tasks(engine.bundle.objects) == []
        assert engine.tick(MONDAY).tasks == {}


# --- AVG erasure reaches the digest mails ------------------------------------------------------------------------


def _bodies(engine: Engine) -> dict[str, tuple[str, str]]:
    with engine.store.read() as tx:
        return {m.recipient: (m.body, m.status) for m in tx.outbox() if m.template == "overzicht"}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_erasing_a_listed_person_cuts_their_line_from_every_digest_sent_or_not(
        backend: str, tmp_path: Path, cases_registry: Registry, request: pytest.FixtureRequest,
        smtp: tuple[Inbox, int]) -> None:
    from regelwerk.outbox.sender import SmtpTransport, deliver_pending

    url = request.getfixturevalue("pg_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'store.sqlite'}"
    _team_cases()
    try:
        with _engine(tmp_path, cases_registry, store=url) as engine:
            _team_people(engine)
            engine.tick(MONDAY)
            inbox, port = smtp
            assert "Verlof Ali" in _bodies(engine)["piet@example.nl"][0]
            # ali is erased before piet's digest is sent; cor after kees's was
            with engine.store.transaction() as tx:
                counts = tx.erase_personal_data([], ["employee:ali"], reason="avg")
            assert counts.redacted == 1
            assert _bodies(engine)["piet@example.nl"] == (
                "Beste PIET,\n- Verzuim Bo (uiterlijk 2027-03-08)\nGroet\n", "pending")
            with SmtpTransport("127.0.0.1", port) as transport:
                report = deliver_pending(engine.store.engine, transport, now=MONDAY,  # type: ignore[attr-defined]
                                         default_sender="hr@example.nl")
            assert len(report.sent) == 2
            mails = {m["To"]: m.get_payload(decode=True).decode().replace("\r\n", "\n") for m in inbox.messages}
            assert mails["piet@example.nl"] == "Beste PIET,\n- Verzuim Bo (uiterlijk 2027-03-08)\nGroet\n"
            with engine.store.transaction() as tx:  # after delivery: the stored copy keeps no name either
                assert tx.erase_personal_data([], ["employee:cor"]).redacted == 1
            assert _bodies(engine)["kees@example.nl"] == ("Beste KEES,\nGroet\n", "sent")
            with engine.store.transaction() as tx:  # by the case's workflow instance: bo's line goes too
                assert tx.erase_personal_data(["i-bo"]).redacted == 1
            assert _bodies(engine)["piet@example.nl"] == ("Beste PIET,\nGroet\n", "sent")
            # the audit and the bookkeeping kept ids only, never a name
            sent = [a for a in engine.audit() if a.action == "digest.sent"]
            assert sorted(a.detail["recipient"] for a in sent) == ["kees", "piet"]
            assert not any(name in str(a.detail) for a in sent for name in ("Verlof", "Ali", "Cor", "Bo"))
    finally:
        CASES.clear()


def test_a_case_erased_between_reading_the_lists_and_writing_the_mail_is_left_out(
        team: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from regelwerk.digests import run
    from regelwerk.store.records import InstanceRecord

    with team.store.transaction() as tx:  # bo's case shows this instance
        tx.insert(InstanceRecord("i-bo", "verzuim", "v1", "open", {"name": "Bo"}, 1, MONDAY, MONDAY))
    real = run._visible

    def erased_meanwhile(*args: Any) -> Any:
        found = real(*args)  # the lists were read (outside any unit of work); now an erasure commits
        if args[1] == "piet":
            with team.store.transaction() as tx:
                tx.erase_personal_data(["i-bo"], ["employee:bo"])
        return found

    monkeypatch.setattr(run, "_visible", erased_meanwhile)
    team.tick(MONDAY)
    assert _bodies(team)["piet@example.nl"] == ("Beste PIET,\n- Verlof Ali (uiterlijk 2027-03-05)\nGroet\n",
                                                "pending")
    [sent] = [a for a in team.audit() if a.action == "digest.sent" and a.detail["recipient"] == "piet"]
    assert (sent.detail["cases"], sent.detail["counts"]) == ({"zaken": ["c1"]}, {"zaken": 1})


def _erase_people(ctx: Any, args: Any, info: Any) -> None:
    """A test step: the recruitment pack's bulk delete of ``candidates`` and an employee's AVG erasure (the core's
    ``erase_personal_data`` by ``employee:<id>``) of ``employees``, each in its own unit of work."""
    from regelwerk.workflows.steps import get_engine
    from regelwerk_packs.recruitment.steps import _service

    if args.get("candidates"):
        _service(ctx).bulk_delete({"id": "bea", "roles": ["beheerder"]}, args["candidates"], preview=False)
    if args.get("employees"):
        with get_engine(ctx).store.transaction() as tx:
            tx.erase_personal_data([], [f"employee:{e}" for e in args["employees"]], reason="avg")


class ErasePlugin:
    name = "erase-step"

    def register(self, registry: Registry) -> None:
        from regelwerk.registry import StepSpec

        registry.add_step(StepSpec("erase_people", self.name, _erase_people, {"type": "object"},
                                   "erase candidates and employees"))


def test_the_packs_erasures_reach_the_van_dijk_overviews(tmp_path: Path) -> None:
    """The recruitment pack's bulk delete of a candidate and an employee's erasure cut their lines out of the
    managers' and HR's stored overviews (the talent and recruitment sources give each case its subject); the
    other lines stay."""
    from regelwerk_checklist import plugin as checklist

    registry = load_registry(extra=[ErasePlugin(), checklist])
    source = (FIXTURE / "scenarios" / "overzichten.scenario.yaml").read_text(encoding="utf-8")
    head = source[:source.index("    - name: HR waits for January")].replace("bundle: ..", f"bundle: {FIXTURE}")
    steps = """\
    - erase_people: {candidates: [anna], employees: [cor]}
    - expect_mail:
        to: piet@vandijk.example
        template: weekoverzicht
        count: 2
        contains: ["- Ali Yilmaz: Beoordelingsgesprek, uiterlijk 30-11-2026 (te laat: ja)", "Beste Piet de Vries"]
        lacks: [Anna, de Boer]
    - expect_mail:
        to: kees@vandijk.example
        template: weekoverzicht
        count: 2
        contains: ["- Dirk Hendriks: Nulmeting", "- Bram Kok (Uitvoerder)", "- Carla Peters (Uitvoerder)"]
        lacks: [Cor Mulder, Mulder]
    - expect_mail:
        to: hanna@vandijk.example
        template: weekoverzicht
        count: 2
        contains: ["Ali Yilmaz", "Bo Jansen", "- Piet de Vries: Beoordelingsgesprek"]
        lacks: [Cor Mulder]
"""
    path = tmp_path / "erase.scenario.yaml"
    path.write_text(head + steps, encoding="utf-8")
    [result] = run_scenario_file(path, registry)
    assert result.failures() == [], "\n".join(result.failures())


# --- definition problems at their line ---------------------------------------------------------------------------


def _diagnostics(tmp_path: Path, registry: Registry, text: str) -> list[tuple[str, int]]:
    root = tmp_path / "broken"
    root.mkdir()
    (root / "all.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        compile_bundle(load_bundle(root), registry)
    return sorted((d.code, d.line) for d in caught.value.diagnostics)


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(("change", "code", "needle"), [
    (("source: test.cases", "source: test.case"), "RW830", "source: test.case"),
    (("{{ z.title }}", "{{ z.titel }}"), "RW901", "z.titel"),
    (('{cron: "0 7 * * MON"}', "{anchor: employee.hire_date, plus: P1Y}"), "RW832", "schedule:"),
    (('{cron: "0 7 * * MON"}', '{cron: "0 7 * * MAANDAG"}'), "RW801", "schedule:"),
    (("with: {min: 1}", "with: {minimum: 1}"), "RW833", "zaken: {source"),
    (("to: {role: ROLE}", "to: {role: bos}"), "RW834", "to: {role: bos}"),
    (("{{ for z in zaken }}", "{{ for z in recipient.name }}"), "RW903", "for z in recipient.name"),
    (("Beste {{ recipient.name }}", "Beste {{ zaken.title }}"), "RW903", "Beste {{ zaken.title"),
    (("{{ end }}Groet", "Groet"), "RW900", "for z in zaken"),
])
def test_a_digest_definition_problem_is_a_diagnostic_at_its_line(tmp_path: Path, cases_registry: Registry,
                                                                 change: tuple[str, str], code: str,
                                                                 needle: str) -> None:
    text = BUNDLE.replace(*change).replace("ROLE", "boss")
    assert text != BUNDLE.replace("ROLE", "boss")
    found = _diagnostics(tmp_path, cases_registry, text)
    assert (code, _line(text, needle)) in found, found


def test_a_template_field_no_digest_list_provides_is_rw831_at_the_template(tmp_path: Path,
                                                                           cases_registry: Registry) -> None:
    # the mail context declares it, the digest's source does not provide it
    text = (BUNDLE.replace("ROLE", "boss").replace("    - {path: zaken.due}", "    - {path: zaken.due}\n"
                                                    "    - {path: zaken.salary}\n    - {path: period.week}")
            .replace("(uiterlijk {{ z.due }})", "(uiterlijk {{ z.due }}, {{ z.salary }}, {{ period.week }})"))
    found = _diagnostics(tmp_path, cases_registry, text)
    assert found == [("RW831", _line(text, "z.salary")), ("RW831", _line(text, "z.salary"))]


def test_the_van_dijk_fixture_validates_and_its_scenario_passes(registry: Registry) -> None:
    from regelwerk.compiler import validate_bundle

    assert [str(d) for d in validate_bundle(load_bundle(FIXTURE), registry)] == []
    results = [r for path in find_scenario_files([FIXTURE]) for r in run_scenario_file(path, registry)]
    assert [r.name for r in results] == ["van-dijk-week-en-maandoverzicht"]
    failures = [line for r in results for line in r.failures()]
    assert failures == [], "\n".join(failures)


# --- the template loop ---------------------------------------------------------------------------------------------


def _template(body: str, optional: frozenset[str] = frozenset()) -> Template:
    parsed, problems = parse_text(body)
    assert problems == []
    subject, _ = parse_text("Overzicht")
    return Template("t", "t", "c", "general", subject, parsed, optional)


def test_a_loop_repeats_its_text_per_entry_on_one_line_each() -> None:
    template = _template("Hallo {{ who }}:\n{{ for c in cases }}* {{ c.name }} [{{ who }}]\n{{ end }}.")
    mail = template.render({"who": "Piet", "cases": [{"name": "A\nB"}, {"name": "C  D"}]})
    assert mail.body == "Hallo Piet:\n* A B [Piet]\n* C D [Piet]\n."
    assert template.render({"who": "Piet", "cases": []}).body == "Hallo Piet:\n."


def test_a_render_says_where_each_entry_is_in_the_body() -> None:
    template = _template("Hallo {{ who }}:\n{{ for c in cases }}* {{ c.name }}\n{{ end }}--\n"
                         "{{ for c in cases }}[{{ c.name }}]{{ end }}.")
    mail = template.render({"who": "Piet", "cases": [{"name": "Anna"}, {"name": "Bob"}]})
    assert mail.body == "Hallo Piet:\n* Anna\n* Bob\n--\n[Anna][Bob]."
    # per entry, one span per loop over its list: exactly that entry's text (what an erasure cuts out)
    assert [[mail.body[a:b] for a, b in spans] for spans in mail.spans["cases"]] == [
        ["* Anna\n", "[Anna]"], ["* Bob\n", "[Bob]"]]


@settings(max_examples=150, deadline=None)
@given(names=st.lists(st.text(alphabet="ab \n{}", max_size=6), min_size=1, max_size=6),
       rounds=st.lists(st.sets(st.integers(0, 5), max_size=3), max_size=4))
def test_erasing_lines_in_any_order_leaves_what_a_render_without_them_gives(names: list[str],
                                                                           rounds: list[set[int]]) -> None:
    """Whatever the entries and however the erasures come (several lines at once, one after another), the stored
    body is exactly the template rendered without the erased entries (two loops over the list: both lines go)."""
    from regelwerk.outbox.parts import add_parts
    from regelwerk.store.memory import MemoryStore
    from regelwerk.store.records import OutboxEntry

    template = _template("Hoi {{ who }}\n{{ for c in cases }}- {{ c.name }}\n{{ end }}en\n"
                         "{{ for c in cases }}({{ c.name }}){{ end }}.", frozenset({"cases.name"}))
    entries = [{"name": name} for name in names]
    mail = template.render({"who": "Piet", "cases": entries})
    store = MemoryStore()
    with store.transaction() as tx:
        tx.add_outbox(OutboxEntry("m", MONDAY, "piet@example.nl", mail.subject, mail.body, "t", status="sent"))
        add_parts(tx, "m", [(f"employee:e{i}", None, start, end)
                            for i, spans in enumerate(mail.spans["cases"]) for start, end in spans])
    gone: set[int] = set()
    for erased in rounds:
        with store.transaction() as tx:
            tx.erase_personal_data([], [f"employee:e{i}" for i in sorted(erased)])
        gone |= erased
        kept = [e for i, e in enumerate(entries) if i not in gone]
        with store.read() as tx:
            [stored] = tx.outbox()
        assert stored.body == template.render({"who": "Piet", "cases": kept}).body


def test_a_loop_is_bounded_and_never_blank() -> None:
    from regelwerk.templates._syntax import MAX_LOOP_ITEMS

    template = _template("{{ for c in cases }}{{ c.name }}{{ end }}")
    with pytest.raises(TemplateRenderError):
        template.render({"cases": [{"name": "x"}] * (MAX_LOOP_ITEMS + 1)})
    with pytest.raises(TemplateRenderError) as caught:
        template.render({"cases": [{"name": "x"}, {"other": 1}]})
    assert caught.value.missing == ("cases.name",)
    with pytest.raises(TemplateRenderError):
        template.render({"cases": "not a list"})
    assert _template("{{ for c in cases }}{{ c.name }}{{ end }}", frozenset({"cases"})).render({}).body == ""


@pytest.mark.parametrize(("text", "message"), [
    ("{{ for a in xs }}{{ for b in ys }}{{ end }}{{ end }}", "loops do not nest"),
    ("{{ for a in xs }}open", "is not closed"),
    ("{{ end }}", "without a loop"),
    ("{{ for a in }}", "is not a loop"),
    ("{{ for a in xs }}{{ a }}{{ end }}", "whole entry"),
])
def test_loop_syntax_problems(text: str, message: str) -> None:
    _, problems = parse_text(text)
    assert any(message in p.message for p in problems), problems


def test_a_loops_fields_are_checked_as_the_lists_fields() -> None:
    parsed, _ = parse_text("{{ for c in cases }}{{ c.name }}{{ who }}{{ end }}")
    assert [p.path for p in parsed.placeholders] == ["cases.name", "who"]
    context = MailContext("c", "c", (MailField("cases", list=True), MailField("cases.name")))
    assert context.field("cases") is not None and context.field("cases").list  # type: ignore[union-attr]


def test_the_report_says_who_gets_which_overview_when(registry: Registry) -> None:
    from datetime import date

    from regelwerk.report.command import build_report

    html, _ = build_report(FIXTURE, registry, date(2027, 1, 4))
    section = html[html.index('id="overzichtsmails"'):]
    section = section[:section.index("</section>")]
    assert "Weekoverzicht leidinggevenden" in section and "Maandoverzicht HR" in section
    assert "rol <b>leidinggevende</b>" in section and "0 7 * * MON-FRI" in section
    assert "één keer per maand" in section and "talent.conversations" in section


def test_expect_mail_fails_on_a_wrong_count_a_missing_or_a_present_text(tmp_path: Path, registry: Registry) -> None:
    source = (FIXTURE / "scenarios" / "overzichten.scenario.yaml").read_text(encoding="utf-8")
    head = source[:source.index("    - name: >-\n        piet's overview")]
    checks = [
        "{to: piet@vandijk.example, template: weekoverzicht, count: 2}",
        "{to: piet@vandijk.example, template: weekoverzicht, contains: [Cor Mulder]}",
        "{to: piet@vandijk.example, template: weekoverzicht, lacks: [Ali Yilmaz]}",
        "{to: lotte@vandijk.example, template: weekoverzicht, contains: [Beste]}",
    ]
    for number, check in enumerate(checks):
        path = tmp_path / f"s{number}.scenario.yaml"
        path.write_text(head.replace("bundle: ..", f"bundle: {FIXTURE}") + f"    - expect_mail: {check}\n",
                        encoding="utf-8")
        [result] = run_scenario_file(path, registry)
        assert any("expect_mail" in line for line in result.failures()), (check, result.failures())
    path = tmp_path / "ok.scenario.yaml"
    path.write_text(head.replace("bundle: ..", f"bundle: {FIXTURE}") + "    - expect_mail: {to: piet@vandijk.example, "
                    "template: weekoverzicht, count: 1, contains: [Ali Yilmaz], lacks: [Cor Mulder]}\n",
                    encoding="utf-8")
    [result] = run_scenario_file(path, registry)
    assert result.failures() == []
