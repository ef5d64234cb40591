"""The fact model: every place that reads data knows what it can read; typos and type mismatches are errors.

The property test renames one field path in one place of every shipped definition to a random near-miss
and expects an error (RW410) at that line.
"""

from __future__ import annotations

import json
import random
import shutil
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from regelwerk.bundle import load_bundle
from regelwerk.compiler import validate_bundle
from regelwerk.facts import FactModel, check_path, param_paths
from regelwerk.facts_kind import bundle_fact_model, place_scope
from regelwerk.registry import Registry, load_registry
from regelwerk.source import iter_pattern, locate, to_plain

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [ROOT / "definitions" / "standard", ROOT / "examples" / "scholengroep-horizon",
           ROOT / "examples" / "retail-noorderlicht"]


@pytest.fixture(scope="module")
def full_registry() -> Registry:
    return load_registry()


def errors_of(path: Path, registry: Registry) -> list[Any]:
    return [d for d in validate_bundle(load_bundle(path), registry) if d.is_error]


def test_the_issue_example_is_an_error_at_its_line(tmp_path: Path, full_registry: Registry) -> None:
    """`{field: employe.hire_dat}` in a DevelopmentCycle's when used to validate clean and match nobody."""
    bundle = tmp_path / "klant"
    bundle.mkdir()
    (bundle / "bundle.yaml").write_text(textwrap.dedent("""\
        apiVersion: regelwerk/v1
        kind: Bundle
        metadata: {name: klant}
        spec: {extends: standard}
        """))
    (bundle / "cycle.yaml").write_text(textwrap.dedent("""\
        apiVersion: regelwerk/v1
        kind: DevelopmentCycle
        metadata: {name: standaard-ontwikkelcyclus, merge: patch}
        spec:
          when:
            all:
              - {field: employe.hire_dat, le: {now: {}}}
              - {field: employee.hire_dat, le: {now: {}}}
              - {field: employee.hire_date, gt: 5}
          moments:
            - {id: doelstellingsgesprek, arises: {anchor: work_year.begin, at: "09:00"}}
        """))
    found = [(d.code, d.line, d.message, d.hint) for d in errors_of(bundle, full_registry)]
    assert ("RW410", 7, "unknown fact 'employe' (in employe.hire_dat)", "did you mean 'employee'?") in found
    assert ("RW410", 8, "'employee' has no field 'hire_dat' (in employee.hire_dat)", "did you mean 'hire_date'?") \
        in found
    assert any(code == "RW411" and line == 9 for code, line, _, _ in found)
    assert any(code == "RW410" and line == 11 and "'work_year' has no field 'begin'" in msg
               for code, line, msg, _ in found)


def test_declared_attributes_and_the_facts_command(tmp_path: Path, full_registry: Registry) -> None:
    bundle = tmp_path / "klant"
    bundle.mkdir()
    (bundle / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: klant}\n"
                                        "spec: {extends: standard}\n")
    (bundle / "facts.yaml").write_text(textwrap.dedent("""\
        apiVersion: regelwerk/v1
        kind: Facts
        metadata: {name: employee}
        spec:
          attributes:
            contract_hours: {type: number, aliases: [uren]}
            location: {type: string, enum: [noord, zuid]}
        ---
        apiVersion: regelwerk/v1
        kind: Schedule
        metadata: {name: parttimers}
        spec:
          when: {dates: ["2026-09-15"]}
          applies_to:
            all:
              - {field: employee.contract_hours, lt: 32}
              - {field: employee.location, in: [noord, zuidd]}
        """))
    found = [(d.code, d.line, d.hint) for d in errors_of(bundle, full_registry)]
    assert found == [("RW411", 17, "did you mean 'zuid'?")]
    facts = full_registry.commands["facts"]
    result = CliRunner().invoke(facts, ["Schedule", "--bundle", str(bundle), "--format", "json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    paths = {row["path"]: row for row in listing["Schedule /spec/applies_to"]["paths"]}
    assert paths["employee.contract_hours"]["type"] == "number"
    assert paths["employee.hire_date"] == {"path": "employee.hire_date", "type": "date", "optional": True,
                                           "description": "First day of employment."}
    text = CliRunner().invoke(facts, ["DevelopmentCycle"])
    assert text.exit_code == 0 and "work_year.start: date" in text.output
    assert CliRunner().invoke(facts, ["Nope"]).exit_code == 2


def test_pack_places_and_fact_types(tmp_path: Path, full_registry: Registry) -> None:
    """The packs' fact types (vacancy, candidate, trajectory) and places: a moment's when, the mail contexts
    recruitment fills, a RuleSet's declared context and a permission resource's fact type."""
    bundle = tmp_path / "klant"
    bundle.mkdir()
    (bundle / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: klant}\n"
                                        "spec: {extends: standard}\n")
    mail = (ROOT / "definitions" / "standard" / "recruitment" / "mail-contexts.yaml").read_text(encoding="utf-8")
    first = mail.split("---")[0].replace("name: candidate_mail\n", "name: candidate_mail\n  merge: replace\n")
    (bundle / "mail.yaml").write_text(first.replace("candidate.last_name", "candidate.last_nam"), encoding="utf-8")
    (bundle / "defs.yaml").write_text(textwrap.dedent("""\
        apiVersion: regelwerk/v1
        kind: DevelopmentCycle
        metadata: {name: standaard-ontwikkelcyclus, merge: patch}
        spec:
          moments:
            - id: doelstellingsgesprek
              when: {field: employment.months_in_werkjaar, ge: 4}
        ---
        apiVersion: regelwerk/v1
        kind: RuleSet
        metadata: {name: werving}
        spec:
          event: {type: {type: string}}
          context: {vacancy: vacancy, candidate: candidate, trajectory: trajectory}
          rules:
            - id: r
              when:
                all:
                  - {field: vacancy.titel, eq: x}
                  - {field: candidate.status_group, eq: hird}
                  - {field: trajectory.opened, lt: 3}
              then: [{action: rules.signal, with: {signal: s, jaar: {field: trajectory.work_yaer}}}]
        ---
        apiVersion: regelwerk/v1
        kind: PermissionMatrix
        metadata: {name: kandidaten}
        spec:
          roles: [{id: recruiter}]
          resources: [{id: candidate, actions: [read], fact: candidate}]
          grants:
            - {id: g, roles: [recruiter], resource: candidate, actions: [read],
               condition: {field: resource.consnt, eq: true}}
        """))
    found = [(d.code, Path(d.file).name, d.line, d.message, d.hint) for d in errors_of(bundle, full_registry)]
    assert ("RW410", "mail.yaml", 14, "'candidate' has no field 'last_nam' (in candidate.last_nam): not a field "
            "recruitment fills in its mails", "did you mean 'last_name'?") in found
    assert ("RW410", "defs.yaml", 7, "'employment' has no field 'months_in_werkjaar' (in "
            "employment.months_in_werkjaar)", "did you mean 'months_in_work_year'?") in found
    assert ("RW410", "defs.yaml", 19, "'vacancy' has no field 'titel' (in vacancy.titel)",
            "did you mean 'title'?") in found
    assert any(c == "RW411" and line == 20 and h == "did you mean 'hired'?" for c, _, line, _, h in found), found
    assert any(c == "RW411" and line == 21 for c, _, line, _, _ in found), found
    assert ("RW410", "defs.yaml", 22, "'trajectory' has no field 'work_yaer' (in trajectory.work_yaer)",
            "did you mean 'work_year'?") in found
    assert ("RW410", "defs.yaml", 32, "'resource' has no field 'consnt' (in resource.consnt)",
            "did you mean 'consent'?") in found
    assert len(found) == 7, found
    listing = CliRunner().invoke(full_registry.commands["facts"], ["types", "--format", "json"])
    types = json.loads(listing.output)
    assert {"vacancy", "candidate", "trajectory"} <= set(types)
    assert {"path": "candidate.status_group", "type": "string (one of new, in_progress, interview, offer, hired, "
            "rejected, other)", "optional": False, "description": ""} in types["candidate"]


def test_check_path_reports_the_first_unknown_part() -> None:
    model = FactModel.build({})
    scope = {"type": "object", "additionalProperties": False, "required": ["employee"],
             "properties": {"employee": {"$fact": "employee"}}}
    assert check_path(model, scope, ["employee", "hire_date"]).schema == {"type": "string", "format": "date",
                                                                         "description": "First day of employment."}
    assert check_path(model, scope, ["employee", "hire_date"]).optional
    assert not check_path(model, scope, ["employee", "roles"]).optional
    assert check_path(model, scope, ["employee", "roles", "0"]).error == ""
    assert "is a list" in check_path(model, scope, ["employee", "roles", "x"]).error
    assert "has no field 'year'" in check_path(model, scope, ["employee", "hire_date", "year"]).error


# --- the property: a near-miss of any checked path is an error at its line ------------------------------


def _condition_paths(data: Any, pointer: str) -> Iterator[tuple[str, str]]:
    if isinstance(data, Mapping):
        for key, value in data.items():
            if key == "field" and isinstance(value, str):
                yield f"{pointer}/field", value
            else:
                yield from _condition_paths(value, f"{pointer}/{key}")
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from _condition_paths(item, f"{pointer}/{i}")


def _closed_parent(model: FactModel, scope: Mapping[str, Any], parts: list[str]) -> list[str] | None:
    """The sibling names when the path's parent is a closed object (so a near-miss must be unknown)."""
    if len(parts) == 1:
        node: Any = scope
    else:
        found = check_path(model, scope, parts[:-1])
        if found.error or found.schema is None:
            return None
        node = model.expand(found.schema)
    if not isinstance(node, Mapping) or "properties" not in node or node.get("additionalProperties", False):
        return None
    return list(node["properties"])


def checked_occurrences(path: Path, registry: Registry) -> tuple[list[tuple[Path, int, str, list[str]]], int]:
    """Every field path at a registered place whose parent type is closed: (file, line, path, siblings)."""
    bundle = load_bundle(path)
    model = bundle_fact_model(registry, bundle.documents)
    out = []
    total = 0
    for doc in bundle.documents:
        for place in registry.places.values():
            if place.kind != doc.kind:
                continue
            for pointer, value in iter_pattern(doc.data, place.place):
                scope = place_scope(place, doc.data, pointer)
                if scope is None:
                    continue  # nothing declared there (a RuleSet without spec.event)
                pairs = ([(pointer, value)] if place.form == "path" else param_paths(to_plain(value), pointer)
                         if place.form == "params" else list(_condition_paths(to_plain(value), pointer)))
                for where, text in pairs:
                    if not isinstance(text, str):
                        continue
                    total += 1
                    siblings = _closed_parent(model, scope, text.split("."))
                    at = locate(doc.data, where)
                    file = Path(at.file).resolve()
                    if siblings is None or path.resolve() not in file.parents:
                        continue
                    out.append((file, at.line, text, siblings))
    return out, total


def near_miss(name: str, taken: list[str], rng: random.Random) -> str:
    for _ in range(100):
        chars = list(name)
        how = rng.choice(("drop", "swap", "add", "change"))
        i = rng.randrange(len(chars))
        if how == "drop" and len(chars) > 1:
            del chars[i]
        elif how == "swap" and len(chars) > 1:
            j = min(i + 1, len(chars) - 1)
            chars[i], chars[j] = chars[j], chars[i]
        elif how == "add":
            chars.insert(i, rng.choice("abcdefghijklmnopqrstuvwxyz_"))
        else:
            chars[i] = rng.choice("abcdefghijklmnopqrstuvwxyz")
        candidate = "".join(chars)
        if candidate and candidate not in taken and not candidate[0].isdigit():
            return candidate
    raise AssertionError(f"no near-miss for {name}")


@pytest.mark.parametrize("bundle", SHIPPED, ids=[str(p.relative_to(ROOT)) for p in SHIPPED])
def test_a_near_miss_in_any_checked_place_is_an_error_at_its_line(bundle: Path, tmp_path: Path,
                                                                 full_registry: Registry) -> None:
    occurrences, total = checked_occurrences(bundle, full_registry)
    if bundle.name == "standard":
        assert len(occurrences) >= 10, (len(occurrences), total)
    rng = random.Random(f"{bundle.name}-13")
    copy = tmp_path / bundle.name
    for file, line, text, siblings in occurrences:
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(bundle, copy)
        target = copy / file.relative_to(bundle.resolve())
        lines = target.read_text(encoding="utf-8").split("\n")
        parts = text.split(".")
        wrong = ".".join([*parts[:-1], near_miss(parts[-1], siblings, rng)])
        assert text in lines[line - 1], (file, line, text)
        lines[line - 1] = lines[line - 1].replace(text, wrong, 1)
        target.write_text("\n".join(lines), encoding="utf-8")
        found = [(d.code, d.line, Path(d.file).name) for d in errors_of(copy, full_registry)]
        assert ("RW410", line, target.name) in found, f"{file}:{line}: {text} -> {wrong}: {found}"
