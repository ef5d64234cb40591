"""The report an HR manager signs: Dutch sentences, no JSON outside the consultant's folded detail, only what the
customer uses, sections from the registry, atomic writes."""

from __future__ import annotations

import ast
import re
import shutil
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from regelwerk.diagnostics import DefinitionError
from regelwerk.registry import Registry, ReportSectionSpec, load_registry
from regelwerk.report.command import build_report, write_report

ROOT = Path(__file__).resolve().parent.parent
SCHOOL = ROOT / "examples" / "scholengroep-horizon"
RETAIL = ROOT / "examples" / "retail-noorderlicht"
CARE = ROOT / "examples" / "zorggroep-de-linde"
POINTER = re.compile(r"(?<![\w.:/])/(spec|metadata|kind|apiVersion)(/[\w~.-]+)*")
RAW_JSON = re.compile(r'[{\[]\s*"[^"]*"\s*[:,\]]|"\s*:\s*[{\["\d]')


class _Visible(HTMLParser):
    """The text a reader sees without opening <details> (style and svg text are not prose)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("details", "style", "svg", "title"):
            self.hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("details", "style", "svg", "title"):
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def visible_text(page: str) -> str:
    parser = _Visible()
    parser.feed(page)
    return " ".join(parser.parts)


@pytest.fixture(scope="module")
def reports() -> dict[str, str]:
    registry = load_registry()
    # with the scenarios' coverage, as `regelwerk report` writes it by default
    return {"school": build_report(SCHOOL, registry, date(2026, 10, 1), scenarios=[SCHOOL])[0],
            "retail": build_report(RETAIL, registry, date(2027, 3, 1), scenarios=[RETAIL])[0],
            "care": build_report(CARE, registry, date(2027, 5, 1), scenarios=[CARE])[0]}


@pytest.mark.parametrize("name", ["school", "retail", "care"])
def test_no_json_pointer_or_raw_json_outside_the_consultant_detail(reports: dict[str, str], name: str) -> None:
    page = reports[name]
    text = visible_text(page)
    assert POINTER.findall(text) == []
    assert RAW_JSON.findall(text) == []
    assert not re.search(r"\bP\d+[YMWD]\b", text)  # durations in words, not P6W
    assert not re.search(r"\b(le|ge|eq|ne|lt|gt) (True|False|\d)", text)  # conditions in words, not code
    details = re.findall(r"<details class=\"tech\">.*?</details>", page, re.S)
    assert details and all("JSON pointer" in d for d in details)  # the detail is there, folded
    untested = re.findall(r"<details class=\"tech coverage\">.*?</details>", page, re.S)
    assert untested and all("Kenmerk" in d for d in untested)  # and the coverage's ids too


def test_differences_read_as_sentences(reports: dict[str, str]) -> None:
    text = visible_text(reports["school"])
    assert ("Gespreksmoment ‘Beoordelingsgesprek’ valt 3 maanden voor het einde van het werkjaar in plaats van "
            "1 maand.") in text
    retail = visible_text(reports["retail"])
    assert "Gespreksmoment ‘Nulmeting’ valt 4 weken na de datum in dienst in plaats van 6 weken." in retail
    assert "de bewaartermijn is 6 maanden in plaats van 1 jaar" in retail


def test_cover_names_the_customer_and_the_standard_version(reports: dict[str, str]) -> None:
    assert "<h1>Stichting Scholengroep Horizon</h1>" in reports["school"]
    assert "<title>Configuratierapport Noorderlicht Wonen B.V.</title>" in reports["retail"]
    for page in (reports["school"], reports["retail"]):
        assert re.search(r"<dt>Standaard</dt><dd>de standaard \(versie regelwerk [\w.]+, inhoud [0-9a-f]{16}\)", page)


def test_only_what_the_customer_uses(reports: dict[str, str]) -> None:
    retail, school = reports["retail"], reports["school"]
    assert 'data-name="registerplein_norm"' in school
    assert 'data-name="registerplein_norm"' not in retail and "Registerplein werkgeversaccount" not in retail
    assert re.search(r'<section id="niet-gebruikt">.*registerplein', retail, re.S)


def test_permission_matrix_in_dutch(reports: dict[str, str]) -> None:
    section = reports["school"].split('<section id="rechten">')[1].split("</section>")[0]
    headers = re.findall(r"<th>(.*?)</th>", section)
    assert "Onderdeel" in headers and "Handeling" in headers
    assert not {"Resource", "Action"} & set(headers)
    assert "(wijzigen)" not in section and "(lezen)" not in section and "(recht " not in section


def _overlay(tmp_path: Path, matrix: str, matrix_label: str) -> Path:
    bundle = tmp_path / "klant"
    bundle.mkdir()
    (bundle / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: klant}\n"
                                        "spec: {extends: standard, customer: Klant B.V.}\n", encoding="utf-8")
    (bundle / "matrix.yaml").write_text(
        f"apiVersion: regelwerk/v1\nkind: TalentMatrix\nmetadata: {{name: {matrix}, merge: patch}}\n"
        f"spec: {{label: {matrix_label}}}\n", encoding="utf-8")
    return bundle


def test_a_changed_but_identical_definition_is_not_marked(tmp_path: Path) -> None:
    from regelwerk.bundle import load_bundle, shipped_standard

    matrix = load_bundle(shipped_standard()).of_kind("TalentMatrix")[0]
    label = matrix.data["spec"]["label"]
    page, _ = build_report(_overlay(tmp_path, matrix.name, f'"{label}"'), load_registry(), date(2026, 3, 1))
    assert re.search(r'<div class="item"[^>]*data-kind="TalentMatrix"', page)
    assert "Aangepast" not in page.split('<section id="talentmatrix">')[1].split("</section>")[0]
    assert "Geen afwijkingen van de standaard." in page


def test_sections_come_from_the_registry(tmp_path: Path) -> None:
    registry = load_registry()
    extended = Registry()
    for attr in ("kinds", "actions", "functions", "steps", "story_events", "simulation_parts", "stores", "commands"):
        getattr(extended, attr).update(getattr(registry, attr))
    extended.report_sections.update(registry.report_sections)
    extended.add_report_section(ReportSectionSpec(
        "eigen", "outside", "Eigen sectie", lambda page: f"<p>{len(page.of_kind('Workflow'))} workflows</p>",
        ("Workflow",), 1))
    page, compiled = build_report(SCHOOL, extended, date(2026, 10, 1))
    assert f'<section id="eigen"><h2>Eigen sectie</h2><p>{len(compiled.of_kind("Workflow"))} workflows</p>' in page
    assert page.index('id="eigen"') < page.index('id="statussen"')
    plugins = {s.plugin for s in registry.report_sections.values()}
    assert {"core", "talent", "recruitment", "mijnloket"} <= plugins


def test_the_report_code_names_no_pack_kind() -> None:
    registry = load_registry()
    pack_kinds = {k for k, s in registry.kinds.items() if s.plugin != "core"}
    named = []
    for path in sorted((ROOT / "engine" / "report").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                named += [f"{path.name}: {k}" for k in pack_kinds if k in node.value]
    assert named == []


def test_the_report_is_written_atomically(tmp_path: Path) -> None:
    registry = load_registry()
    out = tmp_path / "rapport"
    out.mkdir()
    (out / "index.html").write_text("vorige versie", encoding="utf-8")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "wf.yaml").write_text("apiVersion: regelwerk/v1\nkind: Workflow\nmetadata: {name: x}\nspec: {}\n",
                                    encoding="utf-8")
    with pytest.raises(DefinitionError):
        write_report(broken, out, registry, date(2026, 3, 1))
    assert (out / "index.html").read_text(encoding="utf-8") == "vorige versie"
    written = write_report(SCHOOL, out, registry, date(2026, 3, 1))
    assert written == out / "index.html" and "Stichting Scholengroep Horizon" in written.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "rapport"]  # no staging dirs left behind


def test_a_failed_write_leaves_the_previous_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "rapport"
    out.mkdir()
    (out / "index.html").write_text("vorige versie", encoding="utf-8")

    def full_disk(self: Path, *args: Any, **kwargs: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError):
        write_report(SCHOOL, out, load_registry(), date(2026, 3, 1))
    monkeypatch.undo()
    assert (out / "index.html").read_text(encoding="utf-8") == "vorige versie"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rapport"]
    shutil.rmtree(out)


def test_a_workflow_wider_than_the_page_is_laid_out_by_graphviz(reports: dict[str, str]) -> None:
    from regelwerk.report.graphviz import graphviz_available
    from regelwerk.report.sections import PAGE_WIDTH

    if not graphviz_available():
        import os

        if os.environ.get("CI"):
            pytest.fail("Graphviz (dot) is missing -- must not skip in CI")
        pytest.skip("Graphviz (dot) is not installed (apt-get install graphviz)")
    page = reports["school"]
    svg = page.split('data-workflow="recruitment.standard"')[0].rsplit("<svg", 1)[1] + \
        page.split('data-workflow="recruitment.standard"')[1].split("</svg>")[0]
    assert "graphviz" in svg
    width = float(re.search(r'width="([\d.]+)"', svg).group(1))  # type: ignore[union-attr]
    assert width <= PAGE_WIDTH
    assert svg.count('<g class="state node"') == 11
