"""Attacks on the CLI (exit codes: 0 ok, 1 refusal, 2 usage, 3 internal with a log, never a traceback):
a hostile ``--actor`` object and a store URL that is not one are usage errors, not internal errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from regelwerk.actors import Actor
from regelwerk.cli import EXIT_USAGE, build_cli
from regelwerk.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
SCHOOL = str(ROOT / "examples" / "scholengroep-horizon")
VOG = json.dumps({"subject": "eva", "first_name": "E", "email": "e@x.nl", "school": "s", "start_date": "2026-04-01"})
CLI = build_cli()


@pytest.mark.parametrize("actor", ['{"roles": ["po_adviseur"]}', '{"id": "", "roles": ["po_adviseur"]}',
                                   '{"id": {"a": 1}, "roles": ["po_adviseur"]}',
                                   '{"id": "p1", "roles": "po_adviseur"}', '{"id": "p1", "roles": [["po_adviseur"]]}'])
def test_a_malformed_actor_object_is_a_usage_error(actor: str, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 's.sqlite'}"
    result = CliRunner().invoke(CLI, ["instance", "start", SCHOOL, "vog", "--store", store, "--data", VOG,
                                      "--actor", actor, "--matrix", "step2hr"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert "actor" in result.output


def test_actor_of_refuses_what_is_not_an_actor() -> None:
    for value in ({"roles": []}, {"id": None}, {"id": ""}, {"id": "x", "roles": "beheerder"},
                  {"id": "x", "roles": [1]}):
        with pytest.raises(UsageError):
            Actor.of(value)  # type: ignore[arg-type]
    assert Actor.of({"id": "x", "roles": ["a"], "department": "d"}) == Actor("x", ("a",), {"department": "d"})


@pytest.mark.parametrize("url", ["bogus://x", "not a url"])
def test_a_store_url_that_is_not_one_is_a_usage_error(url: str) -> None:
    result = CliRunner().invoke(CLI, ["instance", "start", SCHOOL, "vog", "--store", url, "--data", VOG,
                                      "--actor", "p1", "--role", "po_adviseur", "--matrix", "step2hr"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "internal error" not in result.output


def test_a_facts_files_actor_entry_cannot_rename_the_actor(tmp_path: Path) -> None:
    """``--as x`` decides for x: an ``id`` inside the facts file's entry for x does not make it someone else."""
    from regelwerk.actors import actor_from_facts

    assert actor_from_facts("x", {"actors": {"x": {"id": "y", "roles": ["beheerder"]}}}).id == "x"


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


@pytest.mark.parametrize("raised", [_Unprintable(), GeneratorExit("closed"), ValueError("x" * 2_000_000)],
                         ids=["str-raises", "generator-exit", "2-MB-message"])
def test_what_plugin_code_raises_is_one_short_line_and_the_internal_exit_code(
        raised: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: an exception whose ``__str__`` raises, or a GeneratorExit, escaped as a traceback (exit 1); a 2 MB
    message was echoed whole."""
    import click
    from regelwerk.cli import EXIT_INTERNAL, LOG_DIR_ENV, RegelwerkGroup

    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path))

    @click.group(cls=RegelwerkGroup)
    def group() -> None:
        pass

    @group.command()
    def boom() -> None:
        raise raised

    result = CliRunner().invoke(group, ["boom"])
    assert result.exit_code == EXIT_INTERNAL, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("internal error: ") and len(lines[0]) < 600, lines[:2]
    assert "Traceback" not in result.output and list(tmp_path.glob("regelwerk-*.log"))


@pytest.mark.parametrize(("option", "value"), [("--actor", '{"id": "p1", roles: []}'), ("--actor", "h" * 201),
                                                ("--data", '{"x": ' + "[" * 5000 + "]" * 5000 + "}")])
def test_an_actor_or_data_the_engine_cannot_take_is_a_usage_error(option: str, value: str, tmp_path: Path) -> None:
    """``--actor`` that starts like a JSON object but is none, and ``--data`` nested deeper than the JSON parser goes,
    were internal errors (exit 3, ``JSONDecodeError``/``RecursionError`` in the log); an actor id over 200
    characters was kept on SQLite and a ``DataError`` on PostgreSQL. All are usage errors now, nothing stored."""
    store = f"sqlite:///{tmp_path / 's.sqlite'}"
    args = {"--actor": "p1", "--data": VOG, option: value}
    result = CliRunner().invoke(CLI, ["instance", "start", SCHOOL, "vog", "--store", store, "--data", args["--data"],
                                      "--actor", args["--actor"], "--role", "po_adviseur", "--matrix", "step2hr"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    assert "actor" in result.output or "--data" in result.output, result.output
    if (tmp_path / "s.sqlite").exists():
        from regelwerk.store.sql import SqlStore

        kept = SqlStore(store)
        with kept.read() as tx:
            assert tx.instances() == []
        kept.close()
    ok = CliRunner().invoke(CLI, ["instance", "start", SCHOOL, "vog", "--store", store, "--data", VOG, "--actor", "p1",
                                  "--role", "po_adviseur", "--matrix", "step2hr"])
    assert ok.exit_code == 0, ok.output  # the same start with a good actor and data goes through
