"""The foundation's CLI: validate (text/json/github), show --effective, schema, kinds, test; exit codes 0/1/2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import regelwerk.cli
import yaml
from _foundation import foundation_registry
from click.testing import CliRunner, Result
from regelwerk.cli import cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "plugin-checklist"

GOOD = ("apiVersion: regelwerk/v1\nkind: Checklist\nmetadata:\n  name: onboarding\nspec:\n  tasks:\n"
        "    - id: contract\n    - id: laptop\n      depends_on: [contract]\n")
BAD = ("apiVersion: regelwerk/v1\nkind: Checklist\nmetadata:\n  name: onboarding\nspec:\n  tasks:\n"
       "    - id: contract\n      lable: x\n    - id: laptop\n      depends_on: [contrakt]\n")


@pytest.fixture(autouse=True)
def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(regelwerk.cli, "registry", foundation_registry)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def write(name: str, text: str) -> Path:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- validate ---------------------------------------------------------------------------------------


def test_validate_valid_bundle_exits_0() -> None:
    write("ok/a.yaml", GOOD)
    result = run("validate", "ok")
    assert result.exit_code == 0, result.output
    assert "ok: valid (0 error(s), 0 warning(s))" in result.output


def test_validate_text_format_exits_1_with_every_problem() -> None:
    write("b/a.yaml", BAD)
    result = run("validate", "b")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "b/a.yaml:8:7: error RW104: unknown key 'lable' [at /spec/tasks/0/lable]"
    assert lines[1] == "    hint: did you mean 'label'?"
    assert "b/a.yaml:10:20: error RW301: task 'contrakt' does not exist [at /spec/tasks/1/depends_on/0]" in lines
    assert lines[-1] == "b: invalid (2 error(s), 0 warning(s))"  # the unknown key no longer hides the reference


def test_validate_json_format() -> None:
    write("b/a.yaml", GOOD.replace("depends_on: [contract]", "depends_on: [contrakt]"))
    result = run("validate", "--format", "json", "b")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report == {"valid": False, "diagnostics": [{
        "code": "RW301", "severity": "error", "message": "task 'contrakt' does not exist", "file": "b/a.yaml",
        "line": 9, "column": 20, "pointer": "/spec/tasks/1/depends_on/0", "hint": "did you mean 'contract'?"}]}
    write("ok/a.yaml", GOOD)
    ok = run("validate", "--format", "json", "ok")
    assert ok.exit_code == 0 and json.loads(ok.output) == {"valid": True, "diagnostics": []}


def test_validate_github_format() -> None:
    write("b/a.yaml", BAD)
    result = run("validate", "--format", "github", "b")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "::error file=b/a.yaml,line=8,col=7,title=RW104::RW104: unknown key 'lable' (hint: did you mean 'label'?)",
        "::error file=b/a.yaml,line=10,col=20,title=RW301::RW301: task 'contrakt' does not exist "
        "(hint: did you mean 'contract'?)"]


def test_validate_several_paths_reports_all() -> None:
    write("a.yaml", "x: 1\nx: 2\n")
    write("b.yaml", GOOD.replace("Checklist", "Cheklist"))
    result = run("validate", "--format", "json", "a.yaml", "b.yaml")
    assert result.exit_code == 1
    assert [(d["file"], d["code"]) for d in json.loads(result.output)["diagnostics"]] == [
        ("a.yaml", "RW100"), ("a.yaml", "RW101"), ("a.yaml", "RW002"), ("b.yaml", "RW101")]


@pytest.mark.parametrize("args", [["validate", "--format", "xml", "."], ["validate", "--bogus", "."],
                                  ["validate", "does-not-exist"], ["validate"], ["nonsense"],
                                  ["test", "does-not-exist"], ["show", "nowhere"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output


# --- show --effective -------------------------------------------------------------------------------


def test_show_effective_merges_the_overlay() -> None:
    write("base/a.yaml", GOOD)
    write("klant/bundle.yaml", "apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: klant}\n"
                               "spec: {extends: base}\n")
    write("klant/o.yaml", "apiVersion: regelwerk/v1\nkind: Checklist\nmetadata: {name: onboarding, merge: patch}\n"
                          "spec:\n  tasks:\n    - {id: laptop, $remove: true}\n    - {id: badge, label: '0o17'}\n")
    result = run("--base", "base=base", "show", "--effective", "klant")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# effective bundle klant: base -> klant\n")
    (doc,) = yaml.safe_load_all(result.output)
    assert [t["id"] for t in doc["spec"]["tasks"]] == ["contract", "badge"]


def test_show_effective_output_reads_back_unchanged() -> None:
    from regelwerk.source import load_text, to_plain

    write("b/a.yaml", GOOD.replace("    - id: contract\n", "    - id: contract\n      label: '0o17'\n"))
    result = run("show", "--effective", "b")
    body = result.output.partition("\n")[2]
    docs, problems = load_text(body, "shown.yaml")
    assert problems == [] and to_plain(docs[0].data)["spec"]["tasks"][0]["label"] == "0o17"


# --- schema and kinds ---------------------------------------------------------------------------------


def test_schema_of_a_kind_the_umbrella_and_scenario() -> None:
    one = run("schema", "Checklist")
    assert one.exit_code == 0 and json.loads(one.output)["title"] == "Checklist"
    umbrella = run("schema")
    assert umbrella.exit_code == 0 and "Checklist" in json.loads(umbrella.output)["properties"]["kind"]["enum"]
    scenario = run("schema", "Scenario")
    assert scenario.exit_code == 0 and "expect_diagnostics" in scenario.output
    common = run("schema", "common")
    assert common.exit_code == 0 and "condition" in json.loads(common.output)["$defs"]


def test_schema_of_an_unknown_kind_exits_2_with_a_hint() -> None:
    result = run("schema", "Cheklist")
    assert result.exit_code == 2
    assert "unknown kind 'Cheklist'" in result.output and "did you mean 'Checklist'?" in result.output


def test_kinds_lists_kinds_with_their_plugin() -> None:
    result = run("kinds")
    assert result.exit_code == 0
    assert any(line.split()[:2] == ["Checklist", "checklist"] for line in result.output.splitlines())
    rows = json.loads(run("kinds", "--format", "json").output)
    assert {"kind": "Checklist", "plugin": "checklist",
            "description": "an onboarding checklist (example plugin)"} in rows


# --- test -------------------------------------------------------------------------------------------------


SCENARIO = """\
apiVersion: regelwerk/v1
kind: Scenario
metadata: {name: %s}
spec:
  bundle: defs
  steps:
    - open_tasks: {checklist: onboarding, expect: [contract]}
    - open_tasks: {checklist: onboarding, done: [contract], expect: %s}
"""


def test_test_command_passes_and_writes_junit(tmp_path: Path) -> None:
    write("defs/a.yaml", GOOD)
    write("s/ok.scenario.yaml", SCENARIO.replace("bundle: defs", "bundle: ../defs") % ("goed", "[laptop]"))
    result = run("test", "s", "--junit", "report.xml")
    assert result.exit_code == 0, result.output
    assert "PASS s/ok.scenario.yaml::goed" in result.output
    assert "scenarios: 1 passed, 0 failed" in result.output
    xml = Path("report.xml").read_text(encoding="utf-8")
    assert 'tests="1"' in xml and 'failures="0"' in xml


def test_test_command_fails_with_file_and_line(tmp_path: Path) -> None:
    write("defs/a.yaml", GOOD)
    write("s/bad.scenario.yaml", SCENARIO.replace("bundle: defs", "bundle: ../defs") % ("fout", "[intro]"))
    result = run("test", "s", "--junit", "report.xml")
    assert result.exit_code == 1
    assert "FAIL s/bad.scenario.yaml::fout" in result.output
    assert "s/bad.scenario.yaml:8: fout: step 2 (open_tasks): expected open tasks ['intro'], got ['laptop']" \
        in result.output
    assert "scenarios: 0 passed, 1 failed" in result.output
    xml = Path("report.xml").read_text(encoding="utf-8")
    assert 'failures="1"' in xml and "<failure" in xml


def test_test_command_reports_an_ill_formed_scenario() -> None:
    write("s/x.scenario.yaml", "apiVersion: regelwerk/v1\nkind: Scenario\nmetadata: {name: x}\n"
                               "spec:\n  steps:\n    - open_taks: {}\n")
    result = run("test", "s")
    assert result.exit_code == 1
    assert "unknown: open_taks" in result.output and "did you mean 'open_tasks'?" in result.output


def test_test_command_without_scenarios_exits_0_with_a_note() -> None:
    Path("empty").mkdir()
    result = run("test", "empty")
    assert result.exit_code == 0 and "no scenario files" in result.output


# --- a real process ----------------------------------------------------------------------------------------


def plugin_env(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH that makes the example plugin discoverable through its entry point, without installing it."""
    site = tmp_path / "site"
    info = site / "regelwerk_checklist_example-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: regelwerk-checklist-example\nVersion: 0.1\n",
                                   encoding="utf-8")
    (info / "entry_points.txt").write_text("[regelwerk.plugins]\nchecklist = regelwerk_checklist:plugin\n",
                                           encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(EXAMPLE), env.get("PYTHONPATH", "")])
    return env


def regelwerk_script() -> list[str]:
    script = shutil.which("regelwerk", path=str(Path(sys.executable).parent)) or shutil.which("regelwerk")
    assert script, "the regelwerk console script is installed with the package"
    return [script]


def test_console_script_in_a_real_process(tmp_path: Path) -> None:
    write("b/a.yaml", BAD)
    env = plugin_env(tmp_path)
    bad = subprocess.run([*regelwerk_script(), "validate", "b"], capture_output=True, text=True, env=env,
                         timeout=120, check=False)
    assert bad.returncode == 1, bad.stderr
    assert bad.stdout.splitlines()[0] == "b/a.yaml:8:7: error RW104: unknown key 'lable' [at /spec/tasks/0/lable]"
    assert "Traceback" not in bad.stderr
    examples = subprocess.run([*regelwerk_script(), "validate", str(EXAMPLE / "definitions")], capture_output=True,
                              text=True, env=env, timeout=120, check=False)
    assert examples.returncode == 0, examples.stdout + examples.stderr
    usage = subprocess.run([*regelwerk_script(), "validate", "--format", "yaml", "b"], capture_output=True,
                           text=True, env=env, timeout=120, check=False)
    assert usage.returncode == 2 and "Invalid value for '--format'" in usage.stderr
    scenario = subprocess.run([*regelwerk_script(), "test", str(EXAMPLE / "definitions")], capture_output=True,
                              text=True, env=env, timeout=120, check=False)
    assert scenario.returncode == 0, scenario.stdout + scenario.stderr


def test_main_with_argv_in_a_subprocess(tmp_path: Path) -> None:
    code = "import sys; from regelwerk.cli import main; main(sys.argv[1:])"
    result = subprocess.run([sys.executable, "-c", code, "schema", "Nope"], capture_output=True, text=True,
                            env=plugin_env(tmp_path), timeout=120, check=False)
    assert result.returncode == 2
    assert "unknown kind 'Nope'" in result.stderr


def test_plugins_are_found_as_importlib_metadata_finds_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry reads entry_points.txt itself (a cold validate does not import importlib.metadata): the
    same entry points, the first distribution of a name on the path winning, other groups and comments
    ignored, extras dropped."""
    from regelwerk import registry

    first, second = tmp_path / "first", tmp_path / "second"
    for site, target in ((first, "regelwerk_checklist:plugin [extra]"), (second, "elsewhere:plugin")):
        info = site / "Regelwerk.Checklist_Example-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: Regelwerk.Checklist-Example\nVersion: 0.1\n",
                                       encoding="utf-8")
        (info / "entry_points.txt").write_text(
            f"# a comment\n[console_scripts]\nchecklist = nope:main\n\n[regelwerk.plugins]\n"
            f"checklist = {target}\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    found = registry._discover()
    assert found == registry._discover_with_metadata()
    assert ("checklist", "regelwerk_checklist:plugin [extra]") in found
    assert not any(value == "elsewhere:plugin" for _, value in found)
    assert found[0][0] == "core"
    assert registry._load_entry_point("regelwerk_checklist:plugin [extra]").name == "checklist"
