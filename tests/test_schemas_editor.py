"""What a consultant's editor shows equals what ``regelwerk validate`` shows.

An independent checker (``tests/js/ajv_check.mjs``: the ``yaml`` parser yaml-language-server uses and Ajv for
JSON Schema 2020-12, installed by ``.ci/run`` with ``npm ci`` in tests/js) reads every shipped YAML file through
the schema its ``yaml-language-server`` modeline names. Skips without node or the npm packages, fails in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from regelwerk.schemafiles import UMBRELLA_FILE, schema_files

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "tests" / "js"
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")
SHIPPED = sorted(p for d in ("definitions", "examples", "plugins") for p in (ROOT / d).rglob("*")
                 if p.suffix in (".yaml", ".yml"))
TYPO_KEYWORDS = {"additionalProperties": "RW104", "enum": "RW105", "required": "RW103"}


def _node_missing() -> str:
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs)"
    if not (JS / "node_modules" / "ajv").is_dir() or not (JS / "node_modules" / "yaml").is_dir():
        return "tests/js/node_modules missing: run `npm ci --prefix tests/js`"
    return ""


def ajv_check(files: list[Path], cwd: Path = ROOT) -> list[dict[str, Any]]:
    """Run the independent checker over ``files``; the core's schemas are the fallback for $id references."""
    reason = _node_missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason + " -- the editor check must not skip in CI")
        pytest.skip(reason)
    proc = subprocess.run(["node", str(JS / "ajv_check.mjs"), str(ROOT / "schemas" / "v1"), "--",
                           *[str(f) for f in files]], capture_output=True, text=True, cwd=cwd, check=False)
    assert proc.returncode == 0, proc.stderr
    result: list[dict[str, Any]] = json.loads(proc.stdout)
    return result


def test_every_shipped_yaml_file_starts_with_a_modeline_to_an_existing_schema() -> None:
    assert len(SHIPPED) > 70
    for path in SHIPPED:
        first = path.read_text(encoding="utf-8").split("\n", 1)[0]
        match = MODELINE.match(first)
        assert match, f"{path.relative_to(ROOT)}: the first line must be the yaml-language-server modeline"
        assert (path.parent / match.group(1)).is_file(), f"{path.relative_to(ROOT)}: {match.group(1)} missing"
        # the umbrella checks every document of a file by its kind, and a merge: patch document by its partial form
        assert match.group(1).endswith("/regelwerk.json"), (
            f"{path.relative_to(ROOT)}: name the umbrella schema, not {match.group(1)} (docs/authoring.md)")


def test_every_shipped_document_is_valid_for_an_independent_validator() -> None:
    results = ajv_check(SHIPPED)
    assert sum(r["documents"] for r in results) >= 137
    problems = [f"{r['file']}:{p['line']}:{p['column']}: {p['keyword']} {p['pointer']} {p['message']}"
                for r in results for p in r["problems"]]
    assert problems == []


def _tree(directory: Path) -> dict[str, Any]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))}


def test_shipped_schema_set_is_what_regelwerk_schema_write_writes() -> None:
    from regelwerk.registry import load_registry

    expected = schema_files(load_registry())
    assert _tree(ROOT / "schemas" / "v1") == expected, "run `regelwerk schema --write schemas/v1`"
    for name, data in expected.items():
        assert data["$id"] == "https://schemas.regelwerk.invalid/v1/" + name


def test_plugin_example_schema_set_is_current(registry: Any) -> None:
    # the example plugin's own schema names the core's by $id; its written set is side by side
    plugin_schema = json.loads((ROOT / "examples/plugin-checklist/regelwerk_checklist/checklist.json").read_text())
    refs = re.findall(r'"\$ref": "([^"#]*)', json.dumps(plugin_schema))
    assert refs and all(r.startswith("https://schemas.regelwerk.invalid/v1/") for r in refs)
    assert _tree(ROOT / "examples" / "plugin-checklist" / "schemas") == schema_files(registry)


def test_umbrella_dispatches_patch_documents_to_the_partial_form() -> None:
    umbrella = schema_files(__import__("regelwerk.registry").registry.load_registry())[UMBRELLA_FILE]
    kinds = umbrella["properties"]["kind"]["enum"]
    assert {"Bundle", "Scenario", "Story", "Workflow", "TalentMatrix"} <= set(kinds)
    workflow = next(b for b in umbrella["allOf"] if b["if"]["properties"]["kind"]["const"] == "Workflow")
    assert workflow["then"]["then"] == {"$ref": "workflow.patch.json"}
    partial = schema_files(__import__("regelwerk.registry").registry.load_registry())["workflow.patch.json"]
    state = partial["$defs"]["state"]
    assert state["required"] == ["id"] and state["properties"]["$remove"]["const"] is True
    assert "required" not in partial["properties"]["spec"]


def _regelwerk(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("regelwerk")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, check=False)


def test_three_typos_are_reported_at_the_same_line_and_column(tmp_path: Path) -> None:
    customer = tmp_path / "customer"
    shutil.copytree(ROOT / "examples" / "scholengroep-horizon", customer)
    written = _regelwerk("schema", "--write", "schemas", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == "# yaml-language-server: $schema=schemas/regelwerk.json"
    assert (tmp_path / "schemas" / UMBRELLA_FILE).is_file()
    for path in customer.rglob("*.yaml"):  # point the customer's files at the written set
        text = path.read_text(encoding="utf-8").split("\n", 1)
        rel = os.path.relpath(tmp_path / "schemas" / UMBRELLA_FILE, path.parent)
        path.write_text(f"# yaml-language-server: $schema={rel}\n{text[1]}", encoding="utf-8")
    cycle = customer / "talent" / "cycle.yaml"  # a merge: patch document
    text = cycle.read_text(encoding="utf-8")
    text = text.replace("      start: manual\n", "      start: handmatig\n", 1)
    text = text.replace("    - id: werkplekbezoek\n", "    - id: werkplekbezoek\n      lable: Lesbezoek\n", 1)
    cycle.write_text(text, encoding="utf-8")
    vog = customer / "workflows" / "vog.yaml"  # a whole document
    text = vog.read_text(encoding="utf-8")
    text = text.replace("from: requested, to: reminded, system_only: true}",  # the remind transition: no 'to'
                        "from: requested, system_only: true}")
    text = text.replace("  label: Verklaring Omtrent het Gedrag", "  label: Verklaring Omtrent het Gedrag\n  lable: x")
    vog.write_text(text, encoding="utf-8")

    validated = _regelwerk("validate", "customer", "--format", "json", cwd=tmp_path)
    assert validated.returncode == 1, validated.stdout + validated.stderr
    ours = {(Path(d["file"]).name, d["line"], d["column"], d["code"])
            for d in json.loads(validated.stdout)["diagnostics"] if d["code"] in TYPO_KEYWORDS.values()}
    results = ajv_check([cycle, vog], cwd=tmp_path)
    theirs = {(Path(r["file"]).name, p["line"], p["column"], TYPO_KEYWORDS[p["keyword"]])
              for r in results for p in r["problems"] if p["keyword"] in TYPO_KEYWORDS}
    assert {code for *_, code in ours} == {"RW103", "RW104", "RW105"}
    assert len(ours) == 4
    assert ours == theirs
