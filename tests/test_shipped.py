"""Every shipped file validates and compiles; shipped schemas match what the registry generates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.diagnostics import DefinitionError, format_diagnostics
from regelwerk.scenarios import scenario_schema
from regelwerk.schemafiles import with_id
from regelwerk.validation import umbrella_schema

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_BUNDLES = sorted(p.parent for p in (ROOT / "examples").glob("*/bundle.yaml"))


def _compile(path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    try:
        compile_bundle(load_bundle(path), registry)
    except DefinitionError as exc:
        pytest.fail(f"{path} does not compile:\n{format_diagnostics(exc.diagnostics)}")


def test_standard_bundle_compiles(registry) -> None:  # type: ignore[no-untyped-def]
    _compile(ROOT / "definitions" / "standard", registry)


@pytest.mark.parametrize("path", EXAMPLE_BUNDLES, ids=[str(p.relative_to(ROOT)) for p in EXAMPLE_BUNDLES])
def test_example_bundle_compiles(path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    _compile(path, registry)


def test_example_plugin_definitions_compile(registry) -> None:  # type: ignore[no-untyped-def]
    _compile(ROOT / "examples" / "plugin-checklist" / "definitions", registry)


def _shipped_registry():  # type: ignore[no-untyped-def]
    from regelwerk.registry import load_registry

    return load_registry()


def test_umbrella_schema_is_current() -> None:
    shipped = json.loads((ROOT / "schemas" / "v1" / "regelwerk.json").read_text(encoding="utf-8"))
    assert shipped == umbrella_schema(_shipped_registry()), (
        "schemas/v1/regelwerk.json is stale: run `regelwerk schema --write schemas/v1`")


def test_scenario_schema_is_current() -> None:
    shipped = json.loads((ROOT / "schemas" / "v1" / "scenario.json").read_text(encoding="utf-8"))
    assert shipped == with_id(scenario_schema(_shipped_registry()), "scenario.json"), (
        "schemas/v1/scenario.json is stale: run `regelwerk schema --write schemas/v1`")


def test_every_kind_schema_is_shipped() -> None:
    from regelwerk.validation import document_schema, schema_file_name

    registry = _shipped_registry()
    for spec in registry.kinds.values():
        path = ROOT / "schemas" / "v1" / schema_file_name(spec)
        assert path.exists(), f"{spec.kind}: {path} missing"
        assert json.loads(path.read_text(encoding="utf-8")) == document_schema(spec), spec.kind
