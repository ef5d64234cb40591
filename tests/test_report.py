"""The configuration report: overlay differences, the page's contents and escaping, and the CLI."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from regelwerk.bundle import load_bundle
from regelwerk.cli import cli
from regelwerk.report.command import build_report, report_command
from regelwerk.report.diff import base_path, diff_documents, load_base, overlay_differences, root_base_path

ROOT = Path(__file__).resolve().parent.parent
DAY = date(2026, 3, 15)
EVIL = '<script>alert("x")</script>'

ONBOARDING_STATES = [
    ("aangemaakt", "Aangemaakt", "voorbereiding"), ("contract_verstuurd", "Contract verstuurd", "voorbereiding"),
    ("contract_getekend", "Contract getekend", "voorbereiding"),
    ("account_aangevraagd", "Account aangevraagd", "voorbereiding"),
    ("account_actief", "Account actief", "eerste_week"), ("werkplek_klaar", "Werkplek klaar", "eerste_week"),
    ("eerste_dag", "Eerste werkdag", "eerste_week"), ("buddy", "Buddy toegewezen", "inwerken"),
    ("week_klaar", "Eerste week afgerond", "inwerken"), ("evaluatie_gepland", "Evaluatie gepland", "inwerken"),
    ("evaluatie_gehouden", "Evaluatie gehouden", "afronding"), ("afgerond", "Afgerond", "afronding"),
    ("afgebroken", f"Afgebroken {EVIL}", "afronding"),
]
ONBOARDING_TRANSITIONS = [
    ("verstuur", "contract_verstuurd", ["aangemaakt"]), ("teken", "contract_getekend", ["contract_verstuurd"]),
    ("herinner", "contract_verstuurd", ["contract_verstuurd"]),
    ("vraag_account", "account_aangevraagd", ["contract_getekend"]),
    ("activeer", "account_actief", ["account_aangevraagd"]), ("werkplek", "werkplek_klaar", ["account_actief"]),
    ("start", "eerste_dag", ["werkplek_klaar", "account_actief"]), ("koppel_buddy", "buddy", ["eerste_dag"]),
    ("week_af", "week_klaar", ["buddy"]), ("plan_evaluatie", "evaluatie_gepland", ["week_klaar"]),
    ("evalueer", "evaluatie_gehouden", ["evaluatie_gepland"]), ("rond_af", "afgerond", ["evaluatie_gehouden"]),
    ("heropen", "buddy", ["evaluatie_gehouden"]),
    ("breek_af", "afgebroken", ["aangemaakt", "contract_verstuurd", "contract_getekend", "eerste_dag"]),
]


def _yaml_list(items: list[str], indent: int) -> str:
    return "".join(" " * indent + item + "\n" for item in items)


def onboarding_yaml(name: str = "klant-onboarding") -> str:
    """A 13-state grouped workflow with a self-loop, a back edge and a many-source transition."""
    groups = ["voorbereiding", "eerste_week", "inwerken", "afronding"]
    states = []
    for sid, label, group in ONBOARDING_STATES:
        extra = ", initial: true" if sid == "aangemaakt" else ", final: true" if sid == "afgerond" else ""
        extra = ", final: true, archive: true" if sid == "afgebroken" else extra
        label_yaml = label.replace('"', '\\"')
        states.append(f'- {{id: {sid}, label: "{label_yaml}", group: {group}{extra}}}')
    transitions = [f"- {{id: {ev}, label: \"{ev.replace('_', ' ').capitalize()}\", from: [{', '.join(src)}], "
                   f"to: {dest}}}" for ev, dest, src in ONBOARDING_TRANSITIONS]
    return ("apiVersion: regelwerk/v1\nkind: Workflow\nmetadata:\n  name: " + name + "\nspec:\n"
            f'  label: "Onboarding {EVIL.replace(chr(34), chr(92) + chr(34))}"\n'
            "  groups:\n" + _yaml_list([f"- {{id: {g}, label: {g.replace('_', ' ').capitalize()}}}" for g in groups],
                                       4)
            + "  states:\n" + _yaml_list(states, 4) + "  transitions:\n" + _yaml_list(transitions, 4))


PATCH = f"""apiVersion: regelwerk/v1
kind: Workflow
metadata:
  name: declaration
  merge: patch
spec:
  label: 'Declaratie {EVIL}'
  states:
    - id: submitted
      label: Ingediend bij P&O
      after:
        - {{duration: P7D, event: expire}}
"""

REPLACE = """apiVersion: regelwerk/v1
kind: RetentionPolicy
metadata:
  name: standard
  merge: replace
spec:
  label: Klantbewaartermijnen
  rules:
    - id: rejected
      label: Acht weken na afwijzing verwijderen
      groups: [rejected, other]
      keep: P8W
"""


def write_overlay(root: Path, name: str = "klant-test") -> Path:
    """A small customer bundle extending ``standard``: one patch, one replace, one added workflow."""
    bundle = root / name
    (bundle / "overlay").mkdir(parents=True)
    (bundle / "bundle.yaml").write_text(
        f"apiVersion: regelwerk/v1\nkind: Bundle\nmetadata:\n  name: {name}\nspec:\n  extends: standard\n",
        encoding="utf-8")
    (bundle / "overlay" / "declaration.yaml").write_text(PATCH, encoding="utf-8")
    (bundle / "overlay" / "retention.yaml").write_text(REPLACE, encoding="utf-8")
    (bundle / "overlay" / "onboarding.yaml").write_text(onboarding_yaml(), encoding="utf-8")
    return bundle


@pytest.fixture(scope="module")
def overlay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_overlay(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def page(overlay: Path, registry: Any) -> str:
    html, _ = build_report(overlay, registry, DAY)
    return html


# --- differences ------------------------------------------------------------------------------

def test_diff_of_plain_values_lists_pointers_old_and_new() -> None:
    old = {"spec": {"label": "A", "states": [{"id": "a", "label": "x"}, {"id": "b", "label": "y"}], "n": 1,
                    "gone": True, "tags": ["p", "q"]}}
    new = {"spec": {"label": "B", "states": [{"id": "b", "label": "y"}, {"id": "a", "label": "z"},
                                             {"id": "c", "label": "w"}], "n": 1, "tags": ["p"], "new/key": 2}}
    changes = {(c.pointer, c.change): (c.old, c.new) for c in diff_documents(old, new)}
    assert changes[("/spec/label", "changed")] == ("A", "B")
    assert changes[("/spec/states/1/label", "changed")] == ("x", "z")  # matched by id, effective index
    assert changes[("/spec/states/2", "added")] == (None, {"id": "c", "label": "w"})
    assert changes[("/spec/states", "changed")] == (["a", "b"], ["b", "a", "c"])  # order changed
    assert changes[("/spec/gone", "removed")] == (True, None)
    assert changes[("/spec/tags", "changed")] == (["p", "q"], ["p"])
    assert changes[("/spec/new~1key", "added")] == (None, 2)  # RFC 6901 escaping
    assert ("/spec/n", "changed") not in changes
    assert diff_documents(old, old) == []


def test_diff_ignores_the_merge_mode_and_reports_removed_list_items() -> None:
    old = {"metadata": {"name": "x"}, "spec": {"rules": [{"id": "a"}, {"id": "b"}]}}
    new = {"metadata": {"name": "x", "merge": "patch"}, "spec": {"rules": [{"id": "b"}]}}
    changes = diff_documents(old, new)
    assert [(c.pointer, c.change, c.path) for c in changes] == [("/spec/rules/0", "removed", "spec.rules[a]")]


def test_base_of_an_overlay_is_the_shipped_standard(overlay: Path) -> None:
    from regelwerk.bundle import shipped_standard

    assert base_path(overlay) == shipped_standard()
    assert root_base_path(overlay) == shipped_standard()
    assert base_path(shipped_standard()) is None
    assert load_base(shipped_standard()) is None


def test_root_base_follows_a_chain_of_overlays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from regelwerk.bundle import shipped_standard

    first = write_overlay(tmp_path, "regio")
    second = tmp_path / "vestiging"
    second.mkdir()
    (second / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata:\n  name: vestiging\n"
                                        "spec:\n  extends: regio\n", encoding="utf-8")
    assert base_path(second) is None  # an unknown base
    monkeypatch.setenv("REGELWERK_BASES", f"regio={first}")
    assert base_path(second) == first
    assert root_base_path(second) == shipped_standard()
    assert first.exists()


def test_overlay_differences_of_a_customer_bundle(overlay: Path) -> None:
    bundle = load_bundle(overlay)
    assert not [d for d in bundle.diagnostics if d.is_error]
    changes = {(c.kind, c.name): c for c in overlay_differences(bundle.documents, bundle.overlay_changes,
                                                                load_base(overlay))}
    assert {k: c.mode for k, c in changes.items()} == {
        ("Workflow", "declaration"): "patched", ("RetentionPolicy", "standard"): "replaced",
        ("Workflow", "klant-onboarding"): "added"}
    fields = {f.pointer: (f.old, f.new) for f in changes[("Workflow", "declaration")].fields}
    assert fields["/spec/label"] == ("Declaratie", f"Declaratie {EVIL}")
    assert fields["/spec/states/1/label"] == ("Ingediend", "Ingediend bij P&O")
    assert fields["/spec/states/1/after/0/duration"] == ("P14D", "P7D")
    assert "/metadata/merge" not in fields
    retention = {f.pointer for f in changes[("RetentionPolicy", "standard")].fields}
    assert {"/spec/label", "/spec/rules/0/keep"} <= retention
    assert overlay_differences(bundle.documents, bundle.overlay_changes, None) == []


# --- the page -----------------------------------------------------------------------------------

def test_report_escapes_every_definition_string(page: str) -> None:
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "Ingediend bij P&amp;O" in page
    assert "P&O" not in page  # every ampersand from a definition is escaped


def test_report_highlights_the_overlay(page: str) -> None:
    section = page.split('id="afwijkingen"')[1].split("</section>", maxsplit=1)[0]
    assert "/spec/states/1/after/0/duration" in section
    assert '<span class="old">P14D</span>' in section and '<span class="new">P7D</span>' in section
    assert "Vervangen" in section and "Toegevoegd" in section and "Aangepast" in section
    assert re.search(r'<div class="item changed"[^>]*data-kind="Workflow" data-name="declaration"', page)
    assert re.search(r'<div class="item changed"[^>]*data-kind="RetentionPolicy" data-name="standard"', page)
    assert re.search(r'<div class="item"[^>]*data-kind="PermissionMatrix"', page)  # unchanged: not highlighted
    assert "<h1>klant-test</h1>" in page and "de standaard (versie regelwerk " in page  # no customer name given


def test_report_shows_every_section_of_the_effective_configuration(page: str, overlay: Path, registry: Any) -> None:
    from regelwerk.compiler import compile_bundle

    compiled = compile_bundle(load_bundle(overlay), registry)
    for section in ("statussen", "workflows", "ontwikkelcyclus", "feedback", "rechten", "mijnloket",
                    "bewaartermijnen", "beslistabellen", "regels", "akkoord"):
        assert f'<section id="{section}">' in page, section
    workflows = compiled.of_kind("Workflow")
    assert page.count('class="diagram workflow-diagram"') == len(workflows)
    for name, wf in workflows.items():
        svg = page.split(f'data-workflow="{name}"')[1].split("</svg>", maxsplit=1)[0]
        assert svg.count('<g class="state') == len(wf.states), name
    assert 'class="diagram timeline"' in page
    assert "Acht weken na afwijzing verwijderen" in page and "8 weken" in page
    assert "Salarisgrafiek" in page and "Addendum vereist" in page  # MijnLoket tier table
    assert "(na 7 dagen)" in page  # the patched timer reaches the diagram
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page


def test_report_of_the_standard_has_no_differences(registry: Any) -> None:
    from regelwerk.bundle import shipped_standard

    html, compiled = build_report(shipped_standard(), registry, DAY)
    assert "dit is de standaardconfiguratie" in html
    assert 'class="item changed"' not in html
    assert html.count('class="diagram workflow-diagram"') == len(compiled.of_kind("Workflow"))


def test_report_is_deterministic(overlay: Path, registry: Any, page: str) -> None:
    again, _ = build_report(overlay, registry, DAY)
    assert again == page


# --- the CLI ------------------------------------------------------------------------------------

def test_cli_writes_index_html_into_a_new_directory(overlay: Path, tmp_path: Path) -> None:
    out = tmp_path / "nested" / "report"
    result = CliRunner().invoke(report_command, [str(overlay), "-o", str(out), "--date", "2026-03-15"])
    assert result.exit_code == 0, result.output
    assert (out / "index.html").is_file()
    assert "index.html" in result.output


def test_cli_is_registered_on_the_regelwerk_group(registry: Any) -> None:
    assert registry.commands["report"] is report_command
    assert "report" in cli.commands or report_command.name == "report"


def test_cli_exit_codes(tmp_path: Path, overlay: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(report_command, [str(tmp_path / "nope"), "-o", str(tmp_path / "out")])
    assert missing.exit_code == 2
    no_output = runner.invoke(report_command, [str(overlay)])
    assert no_output.exit_code == 2
    bad_date = runner.invoke(report_command, [str(overlay), "-o", str(tmp_path / "out"), "--date", "15-3-2026"])
    assert bad_date.exit_code == 2 and "not a date" in bad_date.output
    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")
    into_file = runner.invoke(report_command, [str(overlay), "-o", str(a_file)])
    assert into_file.exit_code == 2
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "wf.yaml").write_text("apiVersion: regelwerk/v1\nkind: Workflow\nmetadata:\n  name: x\n"
                                    "spec:\n  states: []\n  transitions: []\n  colour: red\n", encoding="utf-8")
    invalid = runner.invoke(report_command, [str(broken), "-o", str(tmp_path / "out2")])
    assert invalid.exit_code == 1
    assert not (tmp_path / "out2" / "index.html").exists()


@pytest.mark.parametrize("bundle", ["definitions/standard"] + sorted(
    p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "examples").glob("*/bundle.yaml")))
def test_report_of_the_standard_and_every_customer_example(bundle: str, registry: Any) -> None:
    html, compiled = build_report(ROOT / bundle, registry, DAY)
    assert html.count('class="diagram workflow-diagram"') == len(compiled.of_kind("Workflow"))


def test_an_overlay_that_makes_a_transition_internal_reads_as_dutch() -> None:
    from regelwerk.report.words import Words, sentence_for

    assert sentence_for(Words(), "Overgang 'Herinnering'", "internal", "transitions", "added", None, True) == (
        "Overgang 'Herinnering', blijft in de status (intern): ja (de standaard heeft dit niet).")
