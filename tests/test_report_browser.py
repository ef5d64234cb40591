"""The report in a real headless Chromium (Debian's chromium driven by Playwright's Python package).

Skips with a reason when chromium or playwright is missing, except under CI (then it fails).
Never runs ``playwright install``: the browser is the system's ``/usr/bin/chromium``.
"""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from regelwerk.report.command import write_report
from test_report import write_overlay

CHROMIUM = os.environ.get("REGELWERK_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _missing() -> str:
    if not Path(CHROMIUM).exists():
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401 - only checking that it imports
    except ImportError:
        return "the playwright package is not installed (pip install playwright; never `playwright install`)"
    return ""


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory: pytest.TempPathFactory) -> Any:
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason + " -- the browser test must not skip in CI")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1280, "height": 900}, offline=True)
        try:
            yield context.new_page()
        finally:
            context.close()


def test_report_renders_in_chromium(browser_page: Any, registry: Any, tmp_path: Path,
                                    request: pytest.FixtureRequest) -> None:
    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle

    bundle = write_overlay(tmp_path)
    index = write_report(bundle, tmp_path / "report", registry, date(2026, 3, 15))
    compiled = compile_bundle(load_bundle(bundle), registry)

    page = browser_page
    errors: list[str] = []
    failed: list[str] = []
    requests: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda req: failed.append(req.url))
    page.on("request", lambda req: requests.append(req.url))
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(index.as_uri(), wait_until="load")

    assert errors == []
    assert failed == []
    assert [u for u in requests if not u.startswith("file://")] == []  # self-contained: nothing fetched
    assert dialogs == []  # the label '<script>alert("x")</script>' stayed text
    assert page.title() == "Configuratierapport klant-test"

    diagrams = page.evaluate("""() => Array.from(document.querySelectorAll('svg.workflow-diagram')).map(svg => {
        const r = svg.getBoundingClientRect();
        const boxes = Array.from(svg.querySelectorAll('g.state')).map(g => g.getBBox());
        return {name: svg.dataset.workflow, width: r.width, height: r.height, states: boxes.length,
                empty: boxes.filter(b => b.width === 0 || b.height === 0).length};
    })""")
    workflows = compiled.of_kind("Workflow")
    assert sorted(d["name"] for d in diagrams) == sorted(workflows)
    for diagram in diagrams:
        assert diagram["width"] > 0 and diagram["height"] > 0, diagram
        assert diagram["states"] == len(workflows[diagram["name"]].states), diagram
        assert diagram["empty"] == 0, diagram
    timelines = page.evaluate("""() => Array.from(document.querySelectorAll('svg.timeline')).map(svg => {
        const r = svg.getBoundingClientRect(); return r.width * r.height; })""")
    assert timelines and all(area > 0 for area in timelines)
    # the overlay is highlighted: changed items carry the highlight colour
    highlighted = page.evaluate("""() => Array.from(document.querySelectorAll('.item.changed')).map(
        e => getComputedStyle(e).borderLeftColor)""")
    assert len(highlighted) >= 3 and len(set(highlighted)) == 1 and highlighted[0] != "rgb(0, 0, 0)"

    shot = tmp_path / "report-screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    keep = Path(str(request.config.getoption("basetemp") or tmp_path.parent))
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, keep / "report-screenshot.png")


ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / ".ci" / "artifacts"
EXAMPLES = {"scholengroep-horizon": date(2026, 10, 1), "retail-noorderlicht": date(2027, 3, 1),
            "zorggroep-de-linde": date(2027, 5, 1)}

MEASURE = """() => {
  const small = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.textContent.trim()) continue;
    const el = node.parentElement;
    if (el.closest('details:not([open])') || el.closest('title')) continue;
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden') continue;
    let size = parseFloat(style.fontSize);
    const svgText = el.closest('text');
    if (svgText && svgText.getScreenCTM) {
      const m = svgText.getScreenCTM();
      size = size * Math.sqrt(m.a * m.a + m.b * m.b);
    }
    if (size < 10 - 1e-6) small.push({text: node.textContent.trim().slice(0, 40), size});
  }
  const overlaps = [];
  for (const svg of document.querySelectorAll('svg')) {
    const boxes = Array.from(svg.querySelectorAll('text'))
      .map(t => ({t: t.textContent.trim(), r: t.getBoundingClientRect()}))
      .filter(b => b.t && b.r.width > 0);
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i].r, b = boxes[j].r;
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 1 && h > 1) overlaps.push([svg.dataset.workflow || svg.getAttribute('class'), boxes[i].t, boxes[j].t]);
    }
  }
  return {small, overlaps};
}"""


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_example_reports_are_readable_in_chromium(browser_page: Any, registry: Any, tmp_path: Path,
                                                  example: str) -> None:
    bundle = ROOT / "examples" / example
    index = write_report(bundle, tmp_path / "report", registry, EXAMPLES[example], scenarios=[bundle])
    page = browser_page
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(index.as_uri(), wait_until="load")
    assert errors == []
    found = page.evaluate(MEASURE)
    assert found["small"] == [], found["small"][:10]  # no text under 10 px
    assert found["overlaps"] == [], found["overlaps"][:10]  # no label covers another
    assert page.locator("#getest").count() == 1  # the scenario coverage is part of what was measured
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"report-{example}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    page.emulate_media(media="print")
    printed = page.evaluate(MEASURE)
    assert printed["overlaps"] == []
    page.emulate_media(media=None)  # back to the browser's default (print for pdf(), screen otherwise)


def test_the_printed_report_has_page_numbers(browser_page: Any, registry: Any, tmp_path: Path) -> None:
    """"Afdrukken als PDF": Chromium's own PDF of the report numbers its pages ("Pagina 2 van 30")."""
    import re
    import subprocess

    if shutil.which("pdftotext") is None:
        if os.environ.get("CI"):
            pytest.fail("pdftotext missing (apt-get install poppler-utils) -- must not skip in CI")
        pytest.skip("pdftotext is not installed (apt-get install poppler-utils)")
    retail = ROOT / "examples" / "retail-noorderlicht"
    index = write_report(retail, tmp_path / "report", registry, date(2027, 3, 1), scenarios=[retail])
    browser_page.goto(index.as_uri(), wait_until="load")
    pdf = tmp_path / "rapport.pdf"
    browser_page.emulate_media(media="print")
    browser_page.pdf(path=str(pdf), prefer_css_page_size=True)
    browser_page.emulate_media(media=None)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    numbers = [(int(a), int(b)) for a, b in re.findall(r"Pagina (\d+) van (\d+)", text)]
    total = numbers[0][1]
    assert total > 5 and numbers == [(n, total) for n in range(1, total + 1)]
    assert "Technische details voor de consultant" not in text  # the consultant's detail is not printed
