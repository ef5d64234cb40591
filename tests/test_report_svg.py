"""The pure-Python SVG layout of workflows and the cycle timeline."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date
from typing import Any

import pytest
from regelwerk.report.svg import is_wildcard, layer_states, layout_workflow, workflow_svg
from regelwerk.workflows.model import State, Transition, Workflow
from regelwerk_packs.talent.timeline import cycle_rows, reference_year, timeline_svg

SVG = "{http://www.w3.org/2000/svg}"


def wf(states: list[State], transitions: list[tuple[str, tuple[str, ...], str]], **kw: Any) -> Workflow:
    return Workflow("w", kw.pop("label", "W"), states[0].id, tuple(states),
                    tuple(Transition(i, ev, src, dest, kw.get("labels", {}).get(ev, ""))
                          for i, (ev, src, dest) in enumerate(transitions)), groups=kw.get("groups", ()))


def chain(n: int) -> Workflow:
    states = [State(f"s{i}", f"Status {i}", initial=i == 0, final=i == n - 1) for i in range(n)]
    return wf(states, [(f"e{i}", (f"s{i}",), f"s{i + 1}") for i in range(n - 1)])


@pytest.fixture(scope="module")
def standard(registry: Any) -> Any:
    from regelwerk.bundle import load_bundle, shipped_standard
    from regelwerk.compiler import compile_bundle

    return compile_bundle(load_bundle(shipped_standard()), registry)


def test_longest_path_layers_from_the_initial_state_with_cycles_broken() -> None:
    states = [State("a", "A", initial=True), State("b", "B"), State("c", "C"), State("d", "D")]
    model = wf(states, [("x", ("a",), "b"), ("y", ("b",), "c"), ("z", ("a",), "c"), ("back", ("c",), "a"),
                        ("loop", ("b",), "b"), ("w", ("c",), "d")])
    assert layer_states(model) == {"a": 0, "b": 1, "c": 2, "d": 3}


def test_every_state_and_every_transition_is_drawn(standard: Any) -> None:
    for name, model in standard.of_kind("Workflow").items():
        svg = workflow_svg(model)
        root = ET.fromstring(svg)  # well-formed XML
        drawn = [g.get("data-state") for g in root.iter(f"{SVG}g") if "state" in (g.get("class") or "").split()]
        assert sorted(drawn) == sorted(model.state_ids), name
        edges = {(g.get("data-event"), g.get("data-source"), g.get("data-dest"))
                 for g in root.iter(f"{SVG}g") if "edge" in (g.get("class") or "").split()}
        for t in model.transitions:
            if is_wildcard(model, t):
                assert (t.event, "*", t.dest) in edges, (name, t.event)
            else:
                for source in t.sources:  # an internal transition: a loop on each state it stays in
                    assert (t.event, source, t.target(source)) in edges, (name, t.event, source)


def test_layout_is_deterministic_and_boxes_do_not_overlap(standard: Any) -> None:
    for model in standard.of_kind("Workflow").values():
        assert workflow_svg(model) == workflow_svg(model)
        boxes = layout_workflow(model).boxes
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                apart = a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y
                assert apart, (model.name, a.state, b.state)


def test_groups_become_labelled_bands_in_definition_order(standard: Any) -> None:
    model = standard.get("Workflow", "recruitment.standard")
    lay = layout_workflow(model)
    assert [b.group for b in lay.bands] == [g for g, _ in model.groups]
    assert [b.label for b in lay.bands] == [label for _, label in model.groups]
    by_state = {b.state: b for b in lay.boxes}
    for band in lay.bands:
        for state in model.states:
            if state.group == band.group:
                box = by_state[state.id]
                assert band.x <= box.x and box.x + box.w <= band.x + band.w
    # a complete graph is drawn as one stub per transition, not 90 arrows
    assert len(lay.edges) == len(model.transitions) and all(e.stub for e in lay.edges)


def test_final_archive_and_initial_states_are_marked(standard: Any) -> None:
    svg = workflow_svg(standard.get("Workflow", "declaration"))
    root = ET.fromstring(svg)
    classes = {g.get("data-state"): (g.get("class") or "").split() for g in root.iter(f"{SVG}g")
               if g.get("data-state")}
    assert "initial" in classes["draft"]
    assert "final" in classes["approved"] and "archive" not in classes["approved"]
    assert {"final", "archive"} <= set(classes["withdrawn"])
    inner = next(g for g in root.iter(f"{SVG}g") if g.get("data-state") == "approved")
    assert len(inner.findall(f"{SVG}rect")) == 2  # the double border
    assert "(na 14 dagen)" in svg  # the timer is shown on its transition


def test_labels_are_escaped() -> None:
    evil = '<script>alert("x")</script> & "quotes"'
    states = [State("a", evil, initial=True), State("b", "B & C", final=True)]
    model = wf(states, [("go", ("a",), "b")], labels={"go": f"<b>{evil}</b>"}, label=evil)
    svg = workflow_svg(model, id_prefix='x"><script>')
    assert "<script" not in svg and "<b>" not in svg
    root = ET.fromstring(svg)
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert any(t.startswith("<script>") for t in texts)  # the label survives as text
    assert root.find(f"{SVG}title") is not None and "<script>" in (root.find(f"{SVG}title").text or "")


def test_fifteen_states_stay_on_a_readable_canvas() -> None:
    model = chain(15)
    lay = layout_workflow(model)
    assert len(lay.boxes) == 15
    assert all(b.w >= 120 for b in lay.boxes)
    xs = [b.x for b in lay.boxes]
    assert xs == sorted(xs)  # a chain reads left to right
    assert lay.height < 200


def test_parallel_edges_in_both_directions_do_not_coincide() -> None:
    states = [State("a", "A", initial=True), State("b", "B")]
    model = wf(states, [("go", ("a",), "b"), ("back", ("b",), "a")])
    paths = [e.path for e in layout_workflow(model).edges]
    assert len(paths) == 2 and paths[0] != paths[1]


def test_timeline_of_the_standard_cycle(standard: Any) -> None:
    cycle = standard.get("DevelopmentCycle", "standaard-ontwikkelcyclus")
    year = reference_year(cycle, date(2026, 3, 15))
    assert (year.start, year.end) == (date(2026, 1, 1), date(2026, 12, 31))
    assert reference_year(cycle, date(2020, 1, 1)).id == "2026"  # before the cycle starts: its first year
    rows = {r.label: r for r in cycle_rows(cycle, year)}
    assert rows["Doelstellingsgesprek"].dates == (date(2026, 1, 1),)
    assert rows["Voortgangsgesprek"].dates == (date(2026, 7, 1),)
    assert rows["Beoordelingsgesprek"].dates == (date(2026, 11, 30),)
    assert rows["Feedback voor het beoordelingsgesprek"].dates == (date(2026, 11, 16),)
    assert rows["Nulmeting"].dates == () and "6 weken na datum in dienst" in rows["Nulmeting"].when
    assert rows["Trajecten aangemaakt"].dates == (date(2025, 12, 1),)
    svg = timeline_svg(cycle, year)
    root = ET.fromstring(svg)
    assert root.get("data-rows") == str(len(rows))
    assert svg == timeline_svg(cycle, year)


def test_an_internal_transition_is_a_loop_on_each_state_it_stays_in(registry: Any) -> None:
    """The report's diagram, its table ('blijft in de status', not an empty state) and the mermaid/dot renders draw
    an internal transition as a loop on each of its sources, never as a wildcard stub."""
    from pathlib import Path

    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.report.command import build_report
    from regelwerk.report.graphviz import report_dot
    from regelwerk.workflows.render import render

    folder = Path(__file__).resolve().parent / "scenarios" / "workflow" / "vog"
    model = compile_bundle(load_bundle(folder), registry).get("Workflow", "vog")
    root = ET.fromstring(workflow_svg(model))
    edges = {(g.get("data-event"), g.get("data-source"), g.get("data-dest"))
             for g in root.iter(f"{SVG}g") if "edge" in (g.get("class") or "").split()}
    assert {("remind_hr", "waiting_for_vog", "waiting_for_vog"), ("add_note", "waiting_for_vog", "waiting_for_vog"),
            ("add_note", "blocked", "blocked")} <= edges
    assert not any(is_wildcard(model, t) for t in model.transitions)
    dashed = {(g.get("data-event"), g.get("data-source")) for g in root.iter(f"{SVG}g")
              if "internal" in (g.get("class") or "").split()}
    assert dashed == {("remind_hr", "waiting_for_vog"), ("add_note", "waiting_for_vog"), ("add_note", "blocked")}
    html, _ = build_report(folder, registry, date(2026, 5, 4))
    assert html.count("blijft in de status") >= 2
    assert '"waiting_for_vog" -> "waiting_for_vog" [label="Herinnering aan HR (intern)", style=dashed]' in render(
        model, "dot")
    assert "blocked --> blocked: Notitie (intern)" in render(model, "mermaid")
    dot = report_dot(model)
    assert "s0 -> s0 [label=\"Herinnering aan HR\", tooltip=\"Herinnering aan HR\", style=dashed];" in dot
