"""The README's two commands stay true: CI runs the test command verbatim."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines[:12] if line.startswith("    ")]


def test_readme_starts_with_two_commands() -> None:
    commands = _commands()
    assert len(commands) == 2
    assert all(c.startswith("python3 -m venv .venv") for c in commands)


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _commands()[1] in ci.splitlines()


def test_the_tour_overlay_reports_what_the_readme_shows(tmp_path: Path) -> None:
    """The five-minute tour's overlay and its diagnostic are real output, not prose."""
    import re

    from click.testing import CliRunner
    from regelwerk.cli import cli

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    manifest = next(b for b in blocks if b.startswith("# customers/acme/bundle.yaml"))
    overlay = next(b for b in blocks if b.startswith("# customers/acme/workflows.yaml"))
    shown = re.search(r"\$ regelwerk validate customers/acme\n(.*?)\n```", text, re.S)
    assert shown is not None
    acme = tmp_path / "customers" / "acme"
    acme.mkdir(parents=True)
    (acme / "bundle.yaml").write_text(manifest, encoding="utf-8")
    (acme / "workflows.yaml").write_text(overlay, encoding="utf-8")
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(cli, ["validate", "customers/acme"])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 1
    assert shown.group(1).strip() in result.output
    (acme / "workflows.yaml").write_text(overlay.replace("lable:", "label:"), encoding="utf-8")
    os.chdir(tmp_path)
    try:
        fixed = CliRunner().invoke(cli, ["validate", "customers/acme"])
    finally:
        os.chdir(cwd)
    assert fixed.exit_code == 0, fixed.output
