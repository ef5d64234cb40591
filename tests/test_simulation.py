"""regelwerk simulate: the fixture customer played over four months, resume, JSON, bad stories, usage errors."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from regelwerk.diagnostics import DefinitionError
from regelwerk.errors import UsageError
from regelwerk.simulation import simulate
from regelwerk.simulation.command import simulate_command
from regelwerk.simulation.story import parse_story

FIXTURE = Path(__file__).parent / "fixtures" / "simulation"
START, END = date(2026, 1, 1), date(2026, 4, 30)


def _cli(*args: str, cwd: Path | None = None) -> Any:
    """``regelwerk simulate ...`` (the command object itself), optionally from another directory."""
    import os

    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(simulate_command, list(args[1:]), catch_exceptions=False)
    finally:
        os.chdir(old)


def _expect_fixture_summary(summary: dict[str, Any]) -> None:
    # 5 employees imported + e4 hired on 2026-02-02; one trajectory each in work year 2026
    assert summary["employees"] == 6
    assert summary["trajectories"] == 6
    moments = summary["moments"]
    # moments appear on their own dates: by April the doelstelling (1 Jan) for the 4 employed then and the
    # nulmeting for e3 and e4; voortgang (July) and beoordeling (November) have not appeared yet
    assert moments["by_type"] == {"Doelstellingsgesprek": 4, "Nulmeting": 2}
    assert moments["by_status"] == {"started": 6}
    assert summary["feedback_requests"] == 0  # they appear two weeks before the appraisal, in November
    # c1 (rejected 6 Jan, +4 weeks), c2 (consent until 20 Mar), c4 (rejected 3 Mar, +4 weeks) are erased
    assert summary["retention"] == {"deleted": 3, "renewals_requested": 1}
    assert summary["candidates"] == {"total": 1, "by_group": {"interview": 1}}
    # what remains of c3: the receipt and the interview invitation; the rest was erased with its candidates
    assert summary["mails"] == {"total": 2, "by_template": {"ontvangstbevestiging": 1, "uitnodiging-interview": 1}}
    assert [(t["employer"], t["from"], t["to"], t["day"]) for t in summary["tier_changes"]] == [
        ("testbedrijf", "Start", "Plus", "2026-02-06")]
    events = summary["events"]
    assert (events["applied"], events["refused"], events["data_rows_applied"]) == (11, 2, 6)
    assert [(r["day"], r["type"]) for r in events["refusals"]] == [("2026-02-04", "move"), ("2026-02-11", "link")]
    assert events["refusals"][0]["where"].endswith("story.yaml:17")


def test_fixture_customer_four_months_on_sqlite(tmp_path: Path) -> None:
    result = simulate(FIXTURE, START, END, store=f"sqlite:///{tmp_path / 'sim.sqlite'}")
    assert result.days == 120
    _expect_fixture_summary(result.summary)
    kinds = [(e["day"], e["kind"]) for e in result.timeline]
    assert ("2026-01-01", "import") in kinds
    assert ("2026-02-03", "deleted") in kinds  # c1: rejected on 6 January, erased four weeks later
    assert ("2026-02-20", "renewal") in kinds  # c2: consent until 20 March, renewal asked four weeks ahead
    assert ("2026-02-06", "tier") in kinds
    due = [e for e in result.timeline if e["kind"] == "due" and e["day"] == "2026-02-26"]
    assert due and due[0]["by_type"] == {"Nulmeting": 1}  # e3 hired 15 January + 6 weeks
    text = "\n".join(result.lines())
    assert "tier changes: 1 (testbedrijf Start -> Plus on 2026-02-06)" in text
    assert "deletions under retention: 3" in text


#: Moment payloads the database must label as activated_label does (all valid JSON), and ones that are not JSON.
ODD_JSON = ['{"label": "Eigen", "moment": "x"}', '{"moment": "alleen-moment"}', '{"label": "", "moment": "leeg"}',
            '{"label": null, "moment": null}', "{}", "[1, 2]", '"tekst"', '{"label": 7}', '{"label": 1.5}',
            '{"label": true}', '{"label": ["a", 1]}', '{"label": {"b": 2}}', '{"moment": "\\u00e9t\\u00e9"}',
            ' {"label": "spaties"} ', "null", '{"label": 1e400}']
NOT_JSON = ["", "niet json", '{"label": NaN}']


def _summary_moments_match_activated_label(url: str, payloads: list[str]) -> dict[str, Any]:
    import sqlalchemy as sa
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.registry import load_registry
    from regelwerk.scheduling.tables import scheduled_items
    from regelwerk.scheduling.tick import activated_label
    from regelwerk.simulation.runner import _Run, summarise

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        row = dict(conn.execute(sa.select(scheduled_items).where(scheduled_items.c.item_type == "moment")
                                .order_by(scheduled_items.c.id)).first()._mapping)
        row.pop("id")
        for n, payload in enumerate(payloads):
            status = "planned" if n % 2 else row["status"]
            conn.execute(scheduled_items.insert(), {**row, "key": f"odd-{len(payload)}-{n}-{payload[:8]}",
                                                    "payload": payload, "status": status})
        expected_types: dict[str, int] = {}
        expected_status: dict[str, int] = {}
        for payload, status in conn.execute(sa.select(scheduled_items.c.payload, scheduled_items.c.status)
                                            .where(scheduled_items.c.item_type == "moment")):
            label = activated_label("moment", payload)[1] or "moment"
            expected_types[label] = expected_types.get(label, 0) + 1
            expected_status[status] = expected_status.get(status, 0) + 1
    engine.dispose()
    registry = load_registry()
    run = _Run(compile_bundle(load_bundle(str(FIXTURE)), registry), "sim-fixture", url, registry)
    try:
        moments: dict[str, Any] = summarise(run)["moments"]
    finally:
        run.close()
    assert moments["by_type"] == dict(sorted(expected_types.items()))
    assert moments["by_status"] == dict(sorted(expected_status.items()))
    return moments


def test_the_summary_counts_moment_labels_as_activated_label_does_for_any_payload(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sim.sqlite'}"
    simulate(FIXTURE, START, date(2026, 1, 31), store=url)
    moments = _summary_moments_match_activated_label(url, ODD_JSON + NOT_JSON)
    import sqlalchemy as sa
    from regelwerk.scheduling.tables import scheduled_items as items
    from regelwerk_packs.talent.simulation import moment_labels

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        counted, rest = moment_labels(conn, items.c.payload, items.c.status, items.c.item_type == "moment")
        assert counted and rest is not None
        assert len(conn.execute(sa.select(items.c.payload).where(rest)).all()) == len(NOT_JSON)  # read in Python
    engine.dispose()
    # the payload's label, else the item type (a payload's "moment" id is no label)
    assert {"inf", "7", "1.5", "True", "['a', 1]", "{'b': 2}", "Eigen", "spaties", "moment"} <= set(moments["by_type"])
    assert not {"alleen-moment", "leeg", "été"} & set(moments["by_type"])


def test_the_summary_counts_moment_labels_on_postgresql_too(pg_url: str) -> None:
    simulate(FIXTURE, START, date(2026, 1, 31), store=pg_url)
    moments = _summary_moments_match_activated_label(pg_url, ODD_JSON)  # counted by PostgreSQL
    import sqlalchemy as sa
    from regelwerk.scheduling.tables import scheduled_items as items
    from regelwerk_packs.talent.simulation import moment_labels

    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        counted, rest = moment_labels(conn, items.c.payload, items.c.status, items.c.item_type == "moment")
    engine.dispose()
    assert counted and rest is None  # nothing left to read in Python
    assert {"inf", "7", "['a', 1]", "{'b': 2}", "Eigen", "spaties", "moment"} <= set(moments["by_type"])
    _summary_moments_match_activated_label(pg_url, NOT_JSON)  # one payload is not JSON: all read in Python


def test_resume_continues_and_the_same_run_again_does_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sim.sqlite'}"
    calls: list[tuple[int, int]] = []
    first = simulate(FIXTURE, START, date(2026, 2, 28), store=url, progress=lambda done, total: calls.append((done,
                                                                                                             total)))
    assert first.days == 59 and first.resumed_after is None
    assert calls[0] == (1, 59) and calls[-1] == (59, 59) and len(calls) == 59
    assert first.summary["retention"]["deleted"] == 1
    second = simulate(FIXTURE, START, END, store=url)
    assert second.resumed_after == date(2026, 2, 28)
    assert second.days == 61 and second.first_day == date(2026, 3, 1)
    assert all(e["day"] >= "2026-03-01" for e in second.timeline)
    _expect_fixture_summary(second.summary)  # the same as one run over the whole period
    again = simulate(FIXTURE, START, END, store=url)
    assert again.days == 0 and again.timeline == []
    assert again.summary == second.summary
    assert "nothing new to simulate" in "\n".join(again.lines())


def test_cli_text_json_and_default_store_under_the_current_directory(tmp_path: Path) -> None:
    result = _cli("simulate", str(FIXTURE), "--from", "2026-01-01", "--to", "2026-01-31", "--format", "json",
                  cwd=tmp_path)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) >= {"timeline", "summary"}
    assert data["summary"]["trajectories"] == 5
    assert data["timeline"][0]["kind"] == "import"
    assert (tmp_path / ".regelwerk" / "sim-fixture.sqlite").exists()
    text = _cli("simulate", str(FIXTURE), "--from", "2026-01-01", "--to", "2026-02-10", cwd=tmp_path)
    assert text.exit_code == 0
    assert "resuming sim-fixture: days up to 2026-01-31" in text.output
    assert "2026-02-06  tier of testbedrijf: Start -> Plus" in text.output


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "2026-13-01", "--to", "2026-12-31"], "is not a date"),
    (["--from", "2026-05-01", "--to", "2026-04-30"], "before --from"),
    (["--to", "2026-04-30"], "Missing option '--from'"),
])
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = _cli("simulate", str(FIXTURE), *args, "--store", f"sqlite:///{tmp_path / 's.sqlite'}")
    assert result.exit_code == 2
    assert message in result.output
    with pytest.raises(UsageError):
        simulate(FIXTURE, END, START, store=f"sqlite:///{tmp_path / 's.sqlite'}")


def test_the_events_of_a_story_share_their_repeated_texts_and_days() -> None:
    """A story's events are kept until their day is played (52,000 of them at 100,000 employees): the keys, the
    values that repeat (a status, an actor, a candidate) and the days are one object each, not one per event."""
    text = "apiVersion: regelwerk/v1\nkind: Story\nmetadata: {name: moves}\nspec:\n  events:\n" + "".join(
        f"    - on: 2026-03-0{1 + i % 2}\n      move: {{candidate: c{i % 3}, to: interview_1, actor: e00001, "
        f"note: 'nummer {i}'}}\n" for i in range(12))
    events = parse_story(text, "story.yaml").events
    assert len(events) == 12 and events[0].args["note"] == "nummer 0"
    assert len({id(e.day) for e in events}) == 2
    for key in ("to", "actor"):
        assert len({id(e.args[key]) for e in events}) == 1, key
    assert len({id(e.args["candidate"]) for e in events}) == 3
    assert len({id(k) for e in events for k in e.args}) == 4


BAD_STORY = """\
apiVersion: regelwerk/v1
kind: Story
metadata: {name: bad}
spec:
  events:
    - on: 2026-01-05
      hire: {id: x1, name: X}
    - on: 2026-01-06
      hier: {id: x2}
    - on: 2026-01-07
      move: {candidate: c1, to: rejected, actr: hr1}
    - on: 2026-02-30
      leave: {employee: x1}
"""


def test_bad_story_is_exit_1_with_file_line_diagnostics(tmp_path: Path) -> None:
    story = tmp_path / "story.yaml"
    story.write_text(BAD_STORY, encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        parse_story(BAD_STORY, "story.yaml")
    found = {(d.code, d.line) for d in caught.value.diagnostics}
    assert ("RW104", 9) in found  # unknown key 'hier' (did you mean 'hire'?)
    assert any(d.line == 11 and "actr" in d.message for d in caught.value.diagnostics)
    assert ("SIM003", 12) in found  # 30 February
    result = _cli("simulate", str(FIXTURE), "--from", "2026-01-01", "--to", "2026-01-31", "--story", str(story),
                  "--store", f"sqlite:///{tmp_path / 's.sqlite'}")
    assert result.exit_code == 1
    assert "story.yaml:9:7: error RW104: unknown key 'hier'" in result.output
    assert "did you mean 'hire'?" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "s.sqlite").exists()  # nothing is written for a bad story


def test_a_story_larger_than_a_definition_may_be_is_read_as_data(tmp_path: Path) -> None:
    """A story over the 2 MB definition limit (a 50,000-employee company's) is data: the bundle leaves it to the
    story's reader, which reads it under the data limit; a definition file that large in the same folder is still
    RW005. Before, the bundle refused every file of the folder over 2 MB, the story too, so simulate stopped."""
    from regelwerk.bundle import load_bundle
    from regelwerk.source import DEFAULT_LIMITS

    customer = tmp_path / "klant"
    shutil.copytree(FIXTURE, customer)
    story = (customer / "story.yaml").read_text(encoding="utf-8")
    # the size of a large company's story (a comment: the parse stays quick)
    padding = "".join(f"# gebeurtenis {k:06d} van een groot bedrijf, hier als commentaar\n" for k in range(40_000))
    (customer / "story.yaml").write_text(story + padding, encoding="utf-8")
    assert (customer / "story.yaml").stat().st_size > DEFAULT_LIMITS.max_file_bytes
    bundle = load_bundle(str(customer))
    assert not bundle.diagnostics and not bundle.set_aside  # its kind read from the parser's events, nothing built
    result = simulate(customer, START, date(2026, 1, 31), store=f"sqlite:///{tmp_path / 'sim.sqlite'}")
    assert result.days == 31 and result.summary["events"]["applied"] == 2  # the story's two January moves
    (customer / "big.yaml").write_text("apiVersion: regelwerk/v1\nkind: Template\nmetadata: {name: big}\n"
                                       "spec:\n  body: |\n" + "    tekst\n" * 300_000, encoding="utf-8")
    problems = load_bundle(str(customer)).diagnostics
    assert [d.code for d in problems] == ["RW005"] and problems[0].file.endswith("big.yaml")


def test_a_story_read_with_its_events_streamed_equals_the_whole_parse_and_a_bad_one_says_the_same() -> None:
    """Stories are read with their events streamed (each kept as it is parsed, not the whole tree: a 4.3 MB story
    took 140 MB of parse tree, now the events only); the result is the whole parse's, and a story with a problem is
    parsed whole again, so its diagnostics are exactly those of the whole parse."""
    from regelwerk.registry import load_registry
    from regelwerk.simulation import story as stories
    from regelwerk.source import DATA_LIMITS, load_text

    registry = load_registry()
    for path in (FIXTURE / "story.yaml", *Path(__file__).parent.parent.glob("examples/*/story.yaml")):
        text = path.read_text(encoding="utf-8")
        streamed = stories._streamed_story(text, "s.yaml", registry)
        documents, problems = load_text(text, "s.yaml", DATA_LIMITS)
        assert not problems and streamed is not None and streamed.events
        assert streamed == stories._story_of(documents, "s.yaml", registry)
    assert stories._streamed_story(BAD_STORY, "story.yaml", registry) is None
    with pytest.raises(DefinitionError) as caught:
        parse_story(BAD_STORY, "story.yaml")
    documents, _ = load_text(BAD_STORY, "story.yaml", DATA_LIMITS)
    with pytest.raises(DefinitionError) as whole:
        stories._story_of(documents, "story.yaml", registry)
    assert caught.value.diagnostics == whole.value.diagnostics


def test_the_story_parse_of_the_bundle_is_reused_with_the_same_result_and_diagnostics(tmp_path: Path) -> None:
    from regelwerk.bundle import load_bundle
    from regelwerk.simulation.story import load_story

    customer = tmp_path / "klant"
    shutil.copytree(FIXTURE, customer)
    bundle = load_bundle(str(customer))
    key = str((customer / "story.yaml").resolve())
    assert set(bundle.set_aside) == {key}  # the story: parsed to see its kind, kept out of the bundle
    assert not any(d.kind == "Story" for d in bundle.documents)
    fresh = load_story(customer / "story.yaml", "shown/story.yaml")
    reused = load_story(customer / "story.yaml", "shown/story.yaml", parsed=bundle.set_aside)
    assert reused == fresh and reused.events and all(e.file == "shown/story.yaml" for e in reused.events)
    # the file changed after the bundle read it: the parse is not reused
    (customer / "story.yaml").write_text(BAD_STORY, encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        load_story(customer / "story.yaml", "shown/story.yaml", parsed=bundle.set_aside)
    assert {(d.file, d.code, d.line) for d in caught.value.diagnostics} >= {("shown/story.yaml", "RW104", 9)}
    # a bad story parsed by the bundle under another name: the diagnostics name the story's own display
    bundle = load_bundle(str(customer))
    assert bundle.set_aside  # no YAML problem: kept, though the story does not validate
    with pytest.raises(DefinitionError) as again:
        load_story(customer / "story.yaml", "shown/story.yaml", parsed=bundle.set_aside)
    assert again.value.diagnostics == caught.value.diagnostics


def test_the_compiled_story_check_agrees_with_jsonschema_on_every_variant() -> None:
    import copy
    import itertools

    from regelwerk.registry import load_registry
    from regelwerk.simulation.story import _check, _validator
    from regelwerk.source import DATA_LIMITS, load_text, to_plain

    registry = load_registry()
    check, validator = _check(registry), _validator(registry)
    assert check is not None  # the shipped story schema is inlined: the fast path is taken
    docs, problems = load_text((FIXTURE / "story.yaml").read_text(encoding="utf-8"), "story.yaml", DATA_LIMITS)
    bad, more = load_text(BAD_STORY, "bad.yaml", DATA_LIMITS)
    assert not problems and not more
    base = to_plain(docs[0].data)
    odd: list[object] = [None, True, 0, 1.5, 2.0, "", "x", "2026-02-30", "2026-1-1", [], ["a"], [1], {}, {"id": "a"},
                         {"id": ""}, {"roles": ["r"]}, {"id": "a", "roles": [""]}, {"id": "a", "roles": "r"}]
    variants: list[object] = [base, {}, [], None, {**base, "kind": "Scenario"}, {**base, "extra": 1},
                              {**base, "spec": {"events": []}}, {**base, "spec": {"events": None}},
                              {**base, "spec": {"events": [], "x": 1}}, {**base, "metadata": {}}, docs[0].data,
                              bad[0].data]
    for index, event in enumerate(base["spec"]["events"]):
        for key in event:
            for value in odd:
                variant = copy.deepcopy(base)
                variant["spec"]["events"][index][key] = value
                variants.append(variant)
            body = event[key]
            if isinstance(body, dict):
                for field_name, value in itertools.product([*body, "unknown", "id", "actor", "roles"], odd):
                    variant = copy.deepcopy(base)
                    variant["spec"]["events"][index][key][field_name] = value
                    variants.append(variant)
                for field_name in body:
                    variant = copy.deepcopy(base)
                    del variant["spec"]["events"][index][key][field_name]
                    variants.append(variant)
    valid = 0
    for variant in variants:
        expected = not any(True for _ in validator.iter_errors(variant))
        assert check(variant) == expected, variant
        valid += expected
    assert 100 < valid < len(variants) - 100  # both outcomes are exercised


def test_bad_data_row_is_a_diagnostic(tmp_path: Path) -> None:
    customer = tmp_path / "klant"
    shutil.copytree(FIXTURE, customer)
    with (customer / "data" / "candidates.csv").open("a", encoding="utf-8") as handle:
        handle.write("c9,v9,Piet,Pan,piet@example.nl,,2026-01-03,misschien,\n")
    result = _cli("simulate", str(customer), "--from", "2026-01-01", "--to", "2026-01-31", "--store",
                  f"sqlite:///{tmp_path / 's.sqlite'}")
    assert result.exit_code == 1
    assert "candidates.csv:6:1: error SIM010: 'misschien' is not ja or nee" in result.output


def test_fixture_customer_on_postgresql(pg_url: str) -> None:
    result = simulate(FIXTURE, START, END, store=pg_url)
    _expect_fixture_summary(result.summary)
    again = simulate(FIXTURE, START, END, store=pg_url)
    assert again.days == 0 and again.summary == result.summary


def test_shipped_story_schema_is_generated_from_the_registered_story_events() -> None:
    from regelwerk.registry import load_registry
    from regelwerk.simulation.story import story_schema

    registry = load_registry()
    shipped = json.loads((Path(__file__).parent.parent / "schemas" / "v1" / "story.json").read_text(encoding="utf-8"))
    assert shipped == story_schema(registry), (
        "schemas/v1/story.json is stale: run `regelwerk schema Story > schemas/v1/story.json`")
    events = shipped["properties"]["spec"]["properties"]["events"]["items"]["properties"]
    assert set(events) == {"on", *registry.story_events}
    plugins = {spec.plugin for spec in registry.story_events.values()}
    assert {"core", "recruitment", "mijnloket"} <= plugins  # the packs contribute theirs like anyone else


def test_unknown_event_type_hint_lists_the_registered_types() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_story(BAD_STORY, "story.yaml")
    hint = next(d.hint for d in caught.value.diagnostics if d.line == 9)
    assert hint.startswith("did you mean 'hire'? (event types: activate_product, apply, candidate_facts, "
                           "close_vacancy")
    assert "sign_addendum" in hint and "update_employee" in hint


class _BadgePack:
    """A third-party pack: a story event ``award_badge``, a data file ``badges.csv`` and a summary line."""

    name = "badges"

    def register(self, registry: Any) -> None:
        from regelwerk.registry import SimulationPartSpec, StoryEventSpec

        def award(sim: Any, args: Any) -> tuple[str, dict[str, Any]]:
            who = sim.actor(args["to"])
            if not who.roles:
                raise UsageError(f"{who.id} is not an employee with roles")
            sim.totals["badges"] += 1
            sim.note("badge", f"{who.id} has {sim.totals['badges']} badge(s) in this store")
            return f"badge {args['badge']} for {who.id}", {"employee": who.id}

        def read(data: Path) -> tuple[list[Any], list[Any]]:
            from regelwerk.simulation.data import DatedEvent

            path = data / "badges.csv"
            rows = path.read_text(encoding="utf-8").splitlines()[1:] if path.exists() else []
            return [DatedEvent(f"data:badges:{n}", date.fromisoformat(day), "award_badge", {"badge": b, "to": to},
                               f"badges.csv:{n + 2}", (0, n))
                    for n, (day, b, to) in enumerate(r.split(",") for r in rows)], []

        schema = {"type": "object", "additionalProperties": False, "required": ["badge", "to"],
                  "properties": {"badge": {"type": "string"}, "to": {"type": "string"}}}
        registry.add_story_event(StoryEventSpec("award_badge", self.name, award, schema, "Award a badge."))
        registry.add_simulation_part(SimulationPartSpec(
            "badges", self.name, read_data=read, summary=lambda sim: {"badges": int(sim.totals["badges"])},
            lines=lambda s: [f"  badges: {s['badges']}"], order=450))


def test_a_third_party_pack_adds_a_story_event_a_data_file_and_a_summary_line(tmp_path: Path) -> None:
    from regelwerk.registry import load_registry
    from regelwerk.simulation.story import story_schema

    registry = load_registry(extra=[_BadgePack()])
    assert "award_badge" in story_schema(registry)["properties"]["spec"]["properties"]["events"]["items"][
        "properties"]
    customer = tmp_path / "klant"
    shutil.copytree(FIXTURE, customer)
    (customer / "data" / "badges.csv").write_text("day,badge,to\n2026-01-02,welkom,e1\n", encoding="utf-8")
    story = (customer / "story.yaml").read_text(encoding="utf-8")
    (customer / "story.yaml").write_text(story + "    - on: 2026-01-07\n      award_badge: {badge: held, to: e3}\n"
                                                 "    - on: 2026-01-08\n      award_badge: {badge: held, to: x9}\n",
                                         encoding="utf-8")
    result = simulate(customer, START, date(2026, 1, 31), store=f"sqlite:///{tmp_path / 's.sqlite'}",
                      registry=registry)
    texts = [(e["day"], e["kind"], e["text"]) for e in result.timeline]
    assert ("2026-01-02", "badge", "e1 has 1 badge(s) in this store") in texts
    at = texts.index(("2026-01-07", "event", "badge held for e3"))
    assert texts[at + 1] == ("2026-01-07", "badge", "e3 has 2 badge(s) in this store")  # after its event's line
    assert result.summary["badges"] == 2
    assert result.summary["events"]["refusals"][-1]["message"] == "x9 is not an employee with roles"
    lines = result.lines()
    assert lines.index("  badges: 2") == lines.index(next(x for x in lines if "deletions under retention" in x)) + 1
    # the story is validated against the registry the run uses: without the pack, award_badge is unknown
    with pytest.raises(DefinitionError) as caught:
        simulate(customer, START, date(2026, 1, 31), store=f"sqlite:///{tmp_path / 't.sqlite'}")
    assert any("award_badge" in d.message for d in caught.value.diagnostics)


def test_a_vacancy_closed_during_a_day_refuses_that_days_later_applications(tmp_path: Path) -> None:
    """The day's events share one transaction and reuse the vacancy rows read in it (the step memo); closing
    the vacancy drops its row, so a later application on the same day sees it closed."""
    customer = tmp_path / "klant"
    shutil.copytree(FIXTURE, customer)
    (customer / "story.yaml").write_text("\n".join([
        "apiVersion: regelwerk/v1", "kind: Story", "metadata: {name: closing-day}", "spec:", "  events:",
        "    - on: 2026-01-07",
        "      apply: {id: c8, vacancy: v1, first_name: Eva, email: eva@example.nl}",
        "    - on: 2026-01-07",
        "      close_vacancy: {vacancy: v1, actor: hr1}",
        "    - on: 2026-01-07",
        "      apply: {id: c9, vacancy: v1, first_name: Piet, email: piet@example.nl}",
        ""]), encoding="utf-8")
    result = simulate(customer, START, date(2026, 1, 8), store=f"sqlite:///{tmp_path / 's.sqlite'}")
    events = result.summary["events"]
    assert [(r["day"], r["message"]) for r in events["refusals"]] == [("2026-01-07", "vacancy 'v1' is closed")]
    assert events["applied"] == 2


def test_every_data_file_problem_is_shown_at_once_and_nothing_is_written(tmp_path: Path) -> None:
    """An employee row, a relation row and a pack's row that are wrong: one run shows all three (the employee
    file is checked with the others, before the store is touched)."""
    customer = tmp_path / "klant"
    shutil.copytree(FIXTURE, customer)
    data = customer / "data"
    with (data / "employees.csv").open("a", encoding="utf-8") as handle:
        handle.write("e99,Eva Fout,geen-datum,,docent,verkoop,m1,medewerker,\n")
    with (data / "relations.csv").open("a", encoding="utf-8") as handle:
        handle.write("represents,hr1,testbedrijf,2026-05-01,2026-04-01\n")
    with (data / "candidates.csv").open("a", encoding="utf-8") as handle:
        handle.write("c9,v9,Piet,Pan,piet@example.nl,,2026-01-03,misschien,\n")
    store = tmp_path / "s.sqlite"
    result = _cli("simulate", str(customer), "--from", "2026-01-01", "--to", "2026-01-31", "--store",
                  f"sqlite:///{store}")
    assert result.exit_code == 1
    employees_row = len((data / "employees.csv").read_text(encoding="utf-8").splitlines())
    relations_row = len((data / "relations.csv").read_text(encoding="utf-8").splitlines())
    assert f"employees.csv:{employees_row}:1: error SIM014:" in result.output
    assert f"relations.csv:{relations_row}:1: error SIM010: valid_to is before valid_from" in result.output
    assert "candidates.csv:6:1: error SIM010: 'misschien' is not ja or nee" in result.output
    assert not store.exists() or _tables_empty(store)
    # every file shown the same way (one folder, as display_path gives it)
    folders = {line.split(":", 1)[0].rsplit("/", 1)[0] for line in result.output.splitlines() if ".csv:" in line}
    assert len(folders) == 1, result.output


def test_a_relation_row_the_engine_would_not_keep_is_a_diagnostic_and_nothing_is_written(tmp_path: Path) -> None:
    """relations.csv is written straight into ``rw_relations``, past ``relate``'s checks: a kind no scope reads
    (``reports_too``) and a window on a current-state fact (``reports_to`` until 2026-01-10; production refuses it,
    stored it was ignored, so the manager read for the whole run) went into the rehearsal the customer signs off.
    Now SIM010 at each row, with a hint, and the store is not touched."""
    customer = tmp_path / "klant"
    shutil.copytree(FIXTURE, customer)
    data = customer / "data"
    with (data / "relations.csv").open("a", encoding="utf-8") as handle:
        handle.write("reports_too,e1,m1,,\nreports_to,e2,m1,,2026-01-10\nauthored,e1,n1,2026-01-01,\n")
    store = tmp_path / "s.sqlite"
    result = _cli("simulate", str(customer), "--from", "2026-01-01", "--to", "2026-01-31", "--store",
                  f"sqlite:///{store}")
    assert result.exit_code == 1
    last = len((data / "relations.csv").read_text(encoding="utf-8").splitlines())
    assert f"relations.csv:{last - 2}:1: error SIM010: kind 'reports_too' is one no scope reads" in result.output
    assert "did you mean 'reports_to'?" in result.output
    for row, kind in ((last - 1, "reports_to"), (last, "authored")):
        assert f"relations.csv:{row}:1: error SIM010: {kind} is current-state" in result.output
    assert not store.exists() or _tables_empty(store)


def test_due_items_are_named_by_their_words_and_only_labelled_types_by_their_payload_label() -> None:
    """A plan of a Schedule carries its workflow's data as payload: a ``label`` there names nothing (it is no
    conversation moment's name); only the item types a part lists in ``labelled`` are named by it."""
    from regelwerk.simulation.runner import _activated_labels

    named = _activated_labels({("toets", "7", ""): 5, ("toets", "trajectory", ""): 2, ("trajectory", "", ""): 4,
                               ("moment", "Doelstellingsgesprek", ""): 3, ("moment", "", ""): 1,
                               ("moment", "Nulmeting", "2026-03-01"): 2}, "2026-02-01", {"moment"})
    assert named == {("toets", ("toets", "", "")): 7, ("trajectory", ("trajectory", "", "")): 4,
                     ("Doelstellingsgesprek", ("", "Doelstellingsgesprek", "")): 3, ("moment", ("moment", "", "")): 1,
                     ("Nulmeting (due 2026-03-01)", ("", "Nulmeting", "2026-03-01")): 2}


def test_a_simulation_part_names_its_item_types_once_and_with_two_texts() -> None:
    from regelwerk.registry import Registry, SimulationPartSpec, load_registry

    registry: Registry = load_registry()
    with pytest.raises(ValueError, match="pair of texts"):
        registry.add_simulation_part(SimulationPartSpec("x", "x", item_words={"toets": "toetsen"}))  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="named by simulation parts 'talent'"):
        registry.add_simulation_part(SimulationPartSpec("y", "y", item_words={"moment": ("gesprek", "gesprekken")}))
    registry.add_simulation_part(SimulationPartSpec("z", "z", item_words={"toets": ("toets", "toetsen")}))


def test_checked_employee_rows_are_let_go_when_closed_unused() -> None:
    """A resume does not import the employees again: the rows its check kept are let go at once."""
    import gc
    import weakref

    from regelwerk.simulation.data import _handed_over

    class Chunks(list):  # type: ignore[type-arg]
        pass

    chunks = Chunks([[1], [2]])
    alive = weakref.ref(chunks)
    handed = _handed_over(chunks)
    del chunks
    assert alive() is not None
    handed.close()
    gc.collect()
    assert alive() is None


def _tables_empty(store: Path) -> bool:
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{store}")
    try:
        with engine.connect() as conn:
            names = [n for n in sa.inspect(conn).get_table_names() if n in ("rw_employees", "rw_relations")]
            return all(conn.execute(sa.text(f"SELECT count(*) FROM {n}")).scalar_one() == 0 for n in names)
    finally:
        engine.dispose()


def test_the_simulation_permissions_work_out_declaring_and_scope_fields_once_per_resource_type(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Both are read from the compiled (frozen) matrices the port was made with, so they are worked out once per
    resource type (before: for every decision, twice per fire), with the same answers."""
    from datetime import UTC, datetime

    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.permissions.adapter import MatrixPermissions
    from regelwerk.registry import load_registry
    from regelwerk.simulation.context import SimulationPermissions

    compiled = compile_bundle(load_bundle(Path(__file__).parent.parent / "definitions" / "standard"), load_registry())
    permissions = SimulationPermissions(compiled, None, None, lambda: datetime.now(UTC))
    types = sorted({r for port in permissions.ports.values() for r in port.matrix.resources}) + ["no_such_type"]
    declaring = {t: [n for n, port in permissions.ports.items() if t in port.matrix.resources] for t in types}
    expected = {t: (declaring[t], tuple(sorted({f for n in declaring[t]
                                                for f in permissions.ports[n].scope_fields(t)}))) for t in types}
    assert any(fields for _names, fields in expected.values())
    asked: list[str] = []
    original = MatrixPermissions.scope_fields

    def counted(self: Any, resource_type: str) -> tuple[str, ...]:
        asked.append(resource_type)
        return original(self, resource_type)

    monkeypatch.setattr(MatrixPermissions, "scope_fields", counted)
    for _ in range(3):
        assert {t: (permissions.declaring(t), permissions.scope_fields(t)) for t in types} == expected
    assert sorted(asked) == sorted(t for t in types for _name in declaring[t])  # once per declaring matrix


@pytest.mark.parametrize("fails", [False, True])
def test_the_young_generation_is_collected_less_often_while_a_run_plays_and_put_back_after(
        tmp_path: Path, fails: bool) -> None:
    import gc

    from regelwerk.simulation.runner import _YOUNG_THRESHOLD

    before = gc.get_threshold()
    seen: list[tuple[int, ...]] = []

    def progress(done: int, total: int) -> None:
        seen.append(gc.get_threshold())
        if fails and done == 3:
            raise RuntimeError("the host's progress callback failed")

    url = f"sqlite:///{tmp_path / 'sim.sqlite'}"
    if fails:
        with pytest.raises(RuntimeError, match="progress callback"):
            simulate(FIXTURE, START, date(2026, 1, 10), store=url, progress=progress)
    else:
        simulate(FIXTURE, START, date(2026, 1, 10), store=url, progress=progress)
    assert seen and all(t == (max(before[0], _YOUNG_THRESHOLD), *before[1:]) for t in seen)
    assert gc.get_threshold() == before  # the host's own setting again, also when the run failed
