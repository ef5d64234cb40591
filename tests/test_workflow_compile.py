"""Workflow kind: compiling, the pure transitions config, diagrams, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from regelwerk.bundle import load_bundle
from regelwerk.compiler import CompiledBundle, compile_bundle
from regelwerk.registry import Registry, load_registry
from regelwerk.workflows.machine import WorkflowMachine, to_transitions_config
from regelwerk.workflows.model import Workflow, workflow_from_dict, workflow_to_dict
from regelwerk.workflows.render import render

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "definitions" / "standard" / "workflows"


@pytest.fixture(scope="module")
def core() -> Registry:
    return load_registry(use_entry_points=False)


@pytest.fixture(scope="module")
def compiled(core: Registry) -> CompiledBundle:
    return compile_bundle(load_bundle(WORKFLOWS), core)


def test_declaration_compiles_without_warnings(compiled: CompiledBundle) -> None:
    model: Workflow = compiled.get("Workflow", "declaration")
    assert model.initial == "draft"
    assert model.state_ids == ("draft", "submitted", "approved", "rejected", "withdrawn")
    assert model.state("submitted").after[0].duration.text == "P14D"
    assert [t.permission for t in model.transitions_from("submitted")] == [
        "declaration.approve", "declaration.approve", "", "declaration.submit"]
    assert compiled.warnings == ()


def test_transitions_config_is_pure_data(compiled: CompiledBundle) -> None:
    config = to_transitions_config(compiled.get("Workflow", "declaration"))
    json.dumps(config)
    assert config["initial"] == "draft" and config["auto_transitions"] is False
    assert config["transitions"][4] == {"trigger": "withdraw", "source": ["draft", "submitted"],
                                        "dest": "withdrawn", "conditions": ["admit:4"]}


def test_model_round_trips_through_stored_form(compiled: CompiledBundle, core: Registry) -> None:
    model = compiled.get("Workflow", "declaration")
    stored = json.loads(json.dumps(workflow_to_dict(model)))
    assert workflow_from_dict(stored, core.function_table()) == model


def test_machine_translates_machine_error(compiled: CompiledBundle) -> None:
    from regelwerk.errors import TransitionNotAllowed

    machine = WorkflowMachine(compiled.get("Workflow", "declaration"), "v")

    class Open:
        def admit(self, transition: object) -> bool:
            return True

    assert machine.step("x", "submitted", "approve", Open()) == "approved"
    with pytest.raises(TransitionNotAllowed) as info:
        machine.step("x", "approved", "approve", Open())
    assert isinstance(info.value.__cause__, Exception) and "MachineError" in type(info.value.__cause__).__name__


def test_render_mermaid_and_dot(compiled: CompiledBundle) -> None:
    model = compiled.get("Workflow", "declaration")
    mermaid = render(model, "mermaid")
    assert mermaid.startswith("stateDiagram-v2")
    assert "[*] --> draft" in mermaid and "submitted --> approved: Goedkeuren (declaration.approve)" in mermaid
    assert "note right of submitted: na P14D naar expire" in mermaid
    dot = render(model, "dot")
    assert dot.startswith('digraph "declaration"') and '"draft" -> "withdrawn"' in dot and "peripheries=2" in dot
    with pytest.raises(ValueError):
        render(model, "svg")


def _cli(core: Registry) -> object:
    from regelwerk.cli import cli

    for name, command in core.commands.items():
        if name not in cli.commands:
            cli.add_command(command, name)
    return cli


def test_cli_instance_life_cycle(tmp_path: Path, core: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    import regelwerk.cli

    monkeypatch.setattr(regelwerk.cli, "registry", lambda: core)
    cli = _cli(core)
    runner = CliRunner()
    store = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    base = ["--store", store, str(WORKFLOWS)]
    out = runner.invoke(cli, ["instance", "start", *base, "declaration", "--data",
                              '{"employee": "anna", "amount": 20}', "--actor", "anna", "--id", "d1"])
    assert out.exit_code == 1 and json.loads(out.output)["error"] == "permission_denied"  # no role: refused
    out = runner.invoke(cli, ["instance", "start", *base, "declaration", "--data",
                              '{"employee": "bram", "amount": 20}', "--actor", "anna", "--role", "medewerker"])
    assert out.exit_code == 1 and "declaration_own" in out.output  # not her own declaration
    out = runner.invoke(cli, ["instance", "start", *base, "declaration", "--data", '{"employee": "anna", "amount": 20}',
                              "--actor", "anna", "--role", "medewerker", "--id", "d1", "--matrix", "declaration"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["state"] == "draft"
    out = runner.invoke(cli, ["instance", "fire", *base, "d1", "submit", "--actor", "bram", "--role", "medewerker",
                              "--data", '{"employee": "bram"}'])
    assert out.exit_code == 1 and json.loads(out.output)["error"] == "permission_denied"  # the stored employee counts
    out = runner.invoke(cli, ["instance", "start", *base, "declaration", "--data", "{}", "--matrix", "nope"])
    assert out.exit_code == 2 and "known: declaration" in out.output
    out = runner.invoke(cli, ["instance", "fire", *base, "d1", "submit", "--actor", "anna", "--role", "medewerker"])
    assert out.exit_code == 0 and json.loads(out.output)["state"] == "submitted"
    for attempt in ([], ["--data", '{"employee": "bram"}']):  # payload cannot lift the no-self-approval deny
        out = runner.invoke(cli, ["instance", "fire", *base, "d1", "approve", "--actor", "anna", "--role",
                                  "leidinggevende", *attempt])
        assert out.exit_code == 1 and "declaration_no_self_approval" in out.output, out.output
    out = runner.invoke(cli, ["instance", "fire", *base, "d1", "submit", "--actor", "anna", "--role", "medewerker"])
    assert out.exit_code == 1 and json.loads(out.output)["error"] == "transition_not_allowed"
    out = runner.invoke(cli, ["instance", "show", *base, "d1", "--actor", "bert", "--role", "leidinggevende"])
    shown = json.loads(out.output)
    # expire is the timer's alone (system_only): not among bert's events
    assert out.exit_code == 0 and {e["event"] for e in shown["events"]} == {"approve", "reject", "withdraw"}
    assert shown["timers"][0]["event"] == "expire"
    out = runner.invoke(cli, ["instance", "history", *base, "d1"])
    assert [h["event"] for h in json.loads(out.output)] == ["$start", "submit"]
    out = runner.invoke(cli, ["migrate", "plan", *base])
    assert out.exit_code == 0 and json.loads(out.output) == []
    out = runner.invoke(cli, ["render", "workflow", str(WORKFLOWS), "declaration", "--format", "dot"])
    assert out.exit_code == 0 and out.output.startswith("digraph")
    out = runner.invoke(cli, ["render", "workflow", str(WORKFLOWS), "nope"])
    assert out.exit_code == 2 and "known: declaration" in out.output  # an unknown name is a usage error


def test_cli_db_upgrade(tmp_path: Path, core: Registry) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'up.sqlite'}"
    out = CliRunner().invoke(_cli(core), ["db", "upgrade", url])
    assert out.exit_code == 0, out.output
    engine = sa.create_engine(url)
    names = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert {"rw_instances", "rw_history", "rw_timers", "rw_audit", "rw_definitions", "rw_alembic_version"} <= names


def test_migration_matches_the_metadata(tmp_path: Path) -> None:
    """The shipped Alembic revision creates the same workflow tables as the metadata (columns and indexes)."""
    import sqlalchemy as sa
    from regelwerk.store import workflow_tables
    from regelwerk.store.sql import upgrade

    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    upgrade(url)
    engine = sa.create_engine(url)
    inspector = sa.inspect(engine)
    for table in (workflow_tables.rw_instances, workflow_tables.rw_history, workflow_tables.rw_timers,
                  workflow_tables.rw_audit, workflow_tables.rw_definitions):
        assert [c["name"] for c in inspector.get_columns(table.name)] == [c.name for c in table.columns]
        assert {i["name"] for i in inspector.get_indexes(table.name)} == {i.name for i in table.indexes}
    engine.dispose()


def test_a_data_schema_skips_the_metaschema_only_when_it_is_plainly_valid() -> None:
    """The compiler skips the 2020-12 metaschema check for plain data schemas (cold validate speed): every
    schema it skips must pass that check, and every invalid one must still reach it (RW502 names it)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from regelwerk.workflows.kind import _plainly_valid

    plain = [
        {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number", "minimum": 0},
                                                                  "kind": {"type": "string", "enum": ["a", "b"]},
                                                                  "due": {"type": "string", "format": "date"},
                                                                  "tags": {"type": "array", "items": {"type": "string"},
                                                                           "maxItems": 3}}},
        {"type": ["string", "null"], "minLength": 1, "description": "x", "default": None},
        True, {"additionalProperties": False}, {"properties": {"x": False}}, {"const": 3, "title": "t"},
    ]
    for schema in plain:
        assert _plainly_valid(schema), schema
        Draft202012Validator.check_schema(schema)
    left_to_the_metaschema = [
        {"type": "text"}, {"type": ["string", "string"]}, {"type": []}, {"required": ["a", "a"]},
        {"required": "a"}, {"minLength": -1}, {"minLength": 1.5}, {"minimum": "3"}, {"enum": "a"},
        {"properties": {"x": {"type": "nope"}}}, {"items": [{"type": "string"}]}, {"format": 3},
        {"pattern": "("}, {"minLength": True}, {"$ref": "#/x"}, {"allOf": [{"type": "string"}]}, 3,
    ]
    for schema in left_to_the_metaschema:
        assert not _plainly_valid(schema), schema
    invalid = [s for s in left_to_the_metaschema if s not in ({"$ref": "#/x"}, {"allOf": [{"type": "string"}]})]
    for schema in invalid:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError:
            continue
        raise AssertionError(f"{schema} is valid: the list above is wrong")
