"""Every scenario file shipped in the repository runs through pytest, one test per scenario file."""

from __future__ import annotations

from pathlib import Path

import pytest
from regelwerk.scenarios import find_scenario_files, run_scenario_file

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_FILES = find_scenario_files([ROOT / "tests" / "scenarios", ROOT / "definitions", ROOT / "examples"])


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=[str(p.relative_to(ROOT)) for p in SCENARIO_FILES])
def test_scenario_file(path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    results = run_scenario_file(path, registry)
    assert results, f"{path} holds no scenario"
    failures = [line for r in results for line in r.failures()]
    assert not failures, "\n".join(failures)


def test_scenarios_were_found() -> None:
    assert len(SCENARIO_FILES) >= 1
