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


def test_a_can_step_about_what_the_matrix_does_not_have_fails(tmp_path: Path, packs_registry) -> None:  # type: ignore[no-untyped-def]
    """A question about an action, resource or field group the matrix does not have, or for an actor whose role no
    matrix has, was denied by default, so 'expect: denied' passed for the wrong reason (a typo 'aprove' "proved"
    that a location manager of another location cannot approve). It fails the step now, with did-you-mean; a step
    that names the reason it expects ('has no action') still asks on purpose."""
    standard = ROOT / "definitions" / "standard" / "permissions"
    scenario = tmp_path / "s.scenario.yaml"
    steps = [
        "{matrix: step2hr, actor: anna, action: aprove, resource: training_record, data: {subject: bob},"
        " expect: denied}",
        "{matrix: step2hr, actor: anna, action: read, resource: training_recrd, data: {subject: bob}, expect: denied}",
        "{matrix: step2hr, actor: anna, action: read, resource: employee, data: {subject: bob}, field_group: salaris,"
        " expect: denied}",
        "{matrix: step2hr, actor: lm, action: read, resource: employee, data: {subject: bob}, expect: denied}",
        "{matrix: step2hr, actor: anna, action: import, resource: organisation, expect: denied, reason: has no action}",
    ]
    docs = []
    for i, step in enumerate(steps):
        docs.append(f"""apiVersion: regelwerk/v1
kind: Scenario
metadata: {{name: s{i}}}
spec:
  bundle: {standard}
  now: "2026-03-02T09:00:00+01:00"
  facts:
    actors:
      anna: {{roles: [leidinggevende]}}
      lm: {{roles: [locatiemanger]}}
  steps:
    - can: {step}
""")
    scenario.write_text("---\n".join(docs), encoding="utf-8")
    results = run_scenario_file(scenario, packs_registry)
    failures = [" ".join(r.failures()) for r in results]
    assert "has no action 'aprove' (did you mean 'approve'?)" in failures[0]
    assert "has no resource 'training_recrd' (did you mean 'training_record'?)" in failures[1]
    assert "has no field group 'salaris' (did you mean 'salary'?)" in failures[2]
    assert "has role 'locatiemanger', which no permission matrix of the bundle has" in failures[3]
    assert failures[4] == ""


def test_a_has_role_fact_for_a_role_no_matrix_has_fails(tmp_path: Path, packs_registry) -> None:  # type: ignore[no-untyped-def]
    """A has_role fact naming a role no matrix has (praktijkopleidr) gave nobody anything: the person was refused
    everywhere and 'expect: denied' or an expected PermissionDenied passed for the wrong reason (Zorggroep
    Meander's praktijkopleider). The fact fails the scenario's first permission step now, with did-you-mean; so
    does a relate step; a role the matrix has passes."""
    standard = ROOT / "definitions" / "standard" / "permissions"
    scenario = tmp_path / "s.scenario.yaml"
    docs = []
    for i, (relations, step) in enumerate([
        ("[{kind: has_role, subject: bob, object: beheerdr}]",
         "can: {matrix: step2hr, actor: bob, action: read, resource: employee, data: {subject: eva}, expect: denied}"),
        ("[]", "relate: {kind: has_role, subject: bob, object: leidinggevnde}"),
        ("[{kind: has_role, subject: bob, object: beheerder}]",
         "can: {matrix: step2hr, actor: bob, action: read, resource: employee, data: {subject: eva}, expect: allowed}"),
    ]):
        docs.append(f"""apiVersion: regelwerk/v1
kind: Scenario
metadata: {{name: s{i}}}
spec:
  bundle: {standard}
  now: "2026-03-02T09:00:00+01:00"
  facts:
    actors:
      bob: {{roles: [medewerker]}}
    relations: {relations}
  steps:
    - {step}
""")
    scenario.write_text("---\n".join(docs), encoding="utf-8")
    results = run_scenario_file(scenario, packs_registry)
    failures = [" ".join(r.failures()) for r in results]
    assert ("relation 1 (has_role 'bob') names role 'beheerdr', which no permission matrix of the bundle has "
            "(did you mean 'beheerder'?)") in failures[0]
    assert "names role 'leidinggevnde', which no permission matrix of the bundle has" in failures[1]
    assert failures[2] == ""
