"""The permission scenarios, run with the core plus the three permission packs (independent of other packs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from regelwerk.registry import load_registry
from regelwerk.scenarios import find_scenario_files, run_scenario_file

ROOT = Path(__file__).resolve().parent.parent
FILES = find_scenario_files([ROOT / "tests" / "scenarios" / "permissions"])


@pytest.fixture(scope="module")
def packs_registry():  # type: ignore[no-untyped-def]
    import regelwerk_packs.hroffice
    import regelwerk_packs.registerplein
    import regelwerk_packs.step2hr

    return load_registry(extra=[regelwerk_packs.step2hr.plugin, regelwerk_packs.hroffice.plugin,
                                regelwerk_packs.registerplein.plugin],
                         use_entry_points=False)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_permission_scenario(path: Path, packs_registry) -> None:  # type: ignore[no-untyped-def]
    results = run_scenario_file(path, packs_registry)
    assert results
    failures = [line for r in results for line in r.failures()]
    assert not failures, "\n".join(failures)


def test_the_seed_edges_are_covered() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in FILES)
    for edge in ("a link on its end date", "a withdrawn link", "a manager two levels up",
                 "the HR beheerder trying to edit a manager's log", "the report trying to read the log about her",
                 "the employer cannot create the link"):
        assert edge in text, edge
