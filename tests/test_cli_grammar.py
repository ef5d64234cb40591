"""One CLI grammar (docs/cli.md): every command walked with --help, --format json and a bad argument.

The exit-code table: 0 ok, 1 findings or refusals, 2 usage or input errors, 3 internal errors (a short line on
stderr, the traceback in a log file). Runs in process through ``build_cli()`` (the group that maps errors), so
commands other helpers add are walked too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from regelwerk.cli import EXIT_INTERNAL, EXIT_USAGE, IsoDate, IsoMoment, build_cli

ROOT = Path(__file__).resolve().parent.parent
SCHOOL = str(ROOT / "examples" / "scholengroep-horizon")
STANDARD = str(ROOT / "definitions" / "standard")
#: Commands whose output is a document in its own notation rather than a result (documented in docs/cli.md).
DOCUMENT_OUTPUT = {"render workflow": {"mermaid", "dot"}, "render matrix": {"markdown", "html"}, "schema": set(),
                   "openapi": set(),  # the OpenAPI document is JSON by definition
                   "serve": set()}  # a long-running server: it prints where it listens and the keys, once


def _leaves(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _leaves(command, (*prefix, name))
        else:
            yield " ".join((*prefix, name)), command


CLI = build_cli()
LEAVES = dict(_leaves(CLI))


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(CLI, list(args), env=env, catch_exceptions=False)


def test_the_walk_covers_every_command() -> None:
    assert {"validate", "show", "schema", "kinds", "test", "report", "render workflow", "render matrix", "decide",
            "tick", "schedule preview", "simulate", "instance start", "can"} <= set(LEAVES)


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_help_exits_0(name: str) -> None:
    result = run(*name.split(), "--help")
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_an_unknown_option_is_a_usage_error(name: str) -> None:
    result = run(*name.split(), "--no-such-option")
    assert result.exit_code == EXIT_USAGE, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_every_command_that_prints_results_has_format_json(name: str) -> None:
    command = LEAVES[name]
    fmt = next((p for p in command.params if p.name == "fmt"), None)
    if name in DOCUMENT_OUTPUT:
        assert fmt is None or set(fmt.type.choices) == DOCUMENT_OUTPUT[name]  # type: ignore[attr-defined]
        return
    assert fmt is not None, f"`regelwerk {name}` has no --format (docs/cli.md: every result as json too)"
    assert "json" in fmt.type.choices, name  # type: ignore[attr-defined]
    if "text" not in fmt.type.choices:  # type: ignore[attr-defined]
        assert set(fmt.type.choices) == {"yaml", "json"}, name  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(n for n, c in LEAVES.items()
                                        if any(isinstance(p.type, (IsoDate, IsoMoment)) for p in c.params)))
def test_dates_outside_0001_9998_are_usage_errors(name: str, tmp_path: Path) -> None:
    command = LEAVES[name]
    args = [*name.split()]
    for param in command.params:
        if isinstance(param, click.Argument):
            args.append(STANDARD if param.name == "path" else "x")
    for param in command.params:
        if isinstance(param, click.Option) and isinstance(param.type, (IsoDate, IsoMoment)):
            args += [param.opts[-1], "9999-12-31"]
        elif isinstance(param, click.Option) and param.required:
            args += [param.opts[-1], f"sqlite:///{tmp_path / 'x.sqlite'}" if param.name == "store_url" else "x"]
    result = run(*args)
    assert result.exit_code == EXIT_USAGE, (args, result.output)
    assert "9998-12-31" in result.output and "Traceback" not in result.output


def _json(result: Any) -> Any:
    return json.loads(result.stdout)


def test_format_json_prints_json(tmp_path: Path) -> None:
    cases = [
        (["validate", SCHOOL, "--format", "json"], 0),
        (["show", STANDARD, "--kind", "Workflow", "--format", "json"], 0),
        (["kinds", "--format", "json"], 0),
        (["test", SCHOOL + "/scenarios/gesprekscyclus.scenario.yaml", "--format", "json"], 0),
        (["decide", SCHOOL, "registratie-bespreken", "--format", "json", "-i", "x=1"], None),
        (["schedule", "preview", SCHOOL, "--from", "2026-09-15", "--to", "2026-09-15", "--format", "json"], 0),
        (["report", STANDARD, "-o", str(tmp_path / "r"), "--date", "2026-03-15", "--format", "json"], 0),
        (["tick", STANDARD, "--store", f"sqlite:///{tmp_path / 't.sqlite'}", "--at", "2026-03-15", "-q",
          "--format", "json"], 0),
    ]
    for args, code in cases:
        result = run(*args)
        assert code is None or result.exit_code == code, (args, result.output)
        assert result.exit_code in (0, 1), (args, result.output)
        _json(result)


def test_schedule_preview_includes_its_last_day() -> None:
    result = run("schedule", "preview", SCHOOL, "--from", "2026-09-01", "--to", "2026-09-15", "--format", "json")
    assert result.exit_code == 0, result.output
    assert [s["at"][:10] for s in _json(result)["schedules"]] == ["2026-09-15"]
    before = run("schedule", "preview", SCHOOL, "--from", "2026-09-01", "--to", "2026-09-14", "--format", "json")
    assert _json(before)["schedules"] == []
    backwards = run("schedule", "preview", SCHOOL, "--from", "2026-09-15", "--to", "2026-09-14")
    assert backwards.exit_code == EXIT_USAGE


def test_unknown_names_are_usage_errors_everywhere(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'i.sqlite'}"
    for args in (["render", "workflow", STANDARD, "nope"], ["render", "matrix", STANDARD, "nope"],
                 ["decide", STANDARD, "nope"], ["instance", "start", STANDARD, "nope", "--store", store]):
        result = run(*args)
        assert result.exit_code == EXIT_USAGE, (args, result.output)
        assert "nope" in result.output


def test_render_takes_path_then_name_and_the_old_order_warns() -> None:
    new = run("render", "workflow", STANDARD, "declaration", "--format", "dot")
    old = run("render", "workflow", "declaration", STANDARD, "--format", "dot")
    assert new.exit_code == old.exit_code == 0
    assert new.stdout == old.stdout
    assert "deprecated" in old.stderr and "deprecated" not in new.stderr


def test_test_without_scenarios_exits_0_with_a_note(tmp_path: Path) -> None:
    result = run("test", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "no scenario files" in result.stderr


def test_definition_errors_exit_1(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text("apiVersion: regelwerk/v1\nkind: Workflow\nmetadata: {name: x}\n"
                                      "spec: {states: [], transitons: []}\n", encoding="utf-8")
    assert run("validate", str(tmp_path)).exit_code == 1
    assert run("report", str(tmp_path), "-o", str(tmp_path / "out")).exit_code == 1
    assert not (tmp_path / "out").exists()


def test_an_internal_error_exits_3_with_a_short_message_and_a_log_file(tmp_path: Path) -> None:
    @CLI.command("boom-for-test")
    def boom() -> None:
        raise ZeroDivisionError("division by zero")

    try:
        result = run("boom-for-test", env={"REGELWERK_LOG_DIR": str(tmp_path)})
    finally:
        del CLI.commands["boom-for-test"]
    assert result.exit_code == EXIT_INTERNAL
    assert "internal error: ZeroDivisionError: division by zero" in result.stderr
    assert "Traceback" not in result.output
    logs = list(tmp_path.glob("regelwerk-*.log"))
    assert len(logs) == 1 and str(logs[0]) in result.stderr
    assert "Traceback" in logs[0].read_text(encoding="utf-8")


def test_test_reports_failures_as_github_annotations(tmp_path: Path) -> None:
    (tmp_path / "x.scenario.yaml").write_text(
        f"apiVersion: regelwerk/v1\nkind: Scenario\nmetadata: {{name: faalt}}\nspec:\n  bundle: {STANDARD}\n"
        "  steps:\n    - decide: {table: nope}\n", encoding="utf-8")
    result = run("test", str(tmp_path), "--format", "github")
    assert result.exit_code == 1
    assert result.stdout.startswith("::error file=") and ",line=7," in result.stdout
