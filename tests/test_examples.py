"""The customer examples under examples/: they compile on the standard, their data files keep the fixed
formats `regelwerk simulate` reads, and their ids refer to each other.

The scenario suites of the examples run in tests/test_scenarios.py (every scenario file found under
examples/ is run there).
"""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.scheduling.employees import EMPLOYEE_COLUMNS, parse_employee
from regelwerk.source import load_text, to_plain

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("scholengroep-horizon", "retail-noorderlicht")

VACANCY_COLUMNS = ("id", "title", "function", "department", "entity", "manager", "deadline", "team", "opened_on")
CANDIDATE_COLUMNS = ("id", "vacancy", "first_name", "last_name", "email", "phone", "applied_on", "consent",
                     "consent_until")
RELATION_COLUMNS = ("kind", "subject", "object", "valid_from", "valid_to")
RELATION_KINDS = {"reports_to", "member_of", "represents", "consent", "has_role", "has_right", "authored"}
EVENT_TYPES = {"hire", "leave", "update_employee", "open_vacancy", "close_vacancy", "apply", "move", "consent",
               "activate_product", "sign_addendum", "link", "unlink", "fire", "start"}
#: Fields each event type must have (the Story format; optional fields are not listed).
EVENT_REQUIRED = {
    "hire": {"id", "hire_date"}, "leave": {"employee", "date"}, "update_employee": {"id"},
    "open_vacancy": {"id", "title", "function", "department", "manager"}, "close_vacancy": {"vacancy", "actor"},
    "apply": {"id", "vacancy", "first_name", "email"}, "move": {"candidate", "to", "actor"},
    "consent": {"candidate", "until"}, "activate_product": {"employer", "product"}, "sign_addendum": {"employer"},
    "link": {"subject", "object", "kind"}, "unlink": {"subject", "object", "kind"},
    "fire": {"instance", "event", "actor"}, "start": {"workflow", "id", "actor", "data"},
}
#: The story's period per example (issue 8).
STORY_PERIOD = {"scholengroep-horizon": ("2026-08-01", "2027-07-31"),
                "retail-noorderlicht": ("2027-01-01", "2027-12-31")}


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(";") if part.strip()]


def _story(name: str) -> dict[str, Any]:
    path = ROOT / "examples" / name / "story.yaml"
    documents, diagnostics = load_text(path.read_text(encoding="utf-8"), str(path))
    assert not diagnostics, diagnostics
    assert len(documents) == 1, "story.yaml holds exactly one document"
    return dict(to_plain(documents[0].data))


@pytest.fixture(scope="module", params=EXAMPLES)
def example(request: pytest.FixtureRequest, registry: Any) -> tuple[str, Any]:
    name = request.param
    bundle = load_bundle(ROOT / "examples" / name)
    assert not bundle.diagnostics, "\n".join(str(d) for d in bundle.diagnostics)
    return name, compile_bundle(bundle, registry)


def test_example_compiles_without_warnings(example: tuple[str, Any]) -> None:
    name, compiled = example
    bundle = load_bundle(ROOT / "examples" / name)
    assert len(bundle.chain) == 2 and bundle.chain[-1] == name, bundle.chain  # standard -> the customer
    assert compiled.get("RecruitmentSettings", "default") is not None


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_installed_kind_is_customised(name: str, registry: Any) -> None:
    """Each example adds, patches or replaces a document of every kind the engine ships."""
    bundle = load_bundle(ROOT / "examples" / name)
    overlay_kinds = set()
    for path in sorted((ROOT / "examples" / name).rglob("*.yaml")):
        documents, _ = load_text(path.read_text(encoding="utf-8"), str(path))
        overlay_kinds.update(doc.kind for doc in documents)
    # Checklist: the example plugin. Digest: the examples' data has neither has_role facts nor mail addresses, so a
    # digest there could only be an incident every night; the Bouwbedrijf Van Dijk fixture
    # (tests/scenarios/bouwbedrijf-van-dijk) is the customer that uses one, and the examples' year stays as it was
    shipped = {kind for kind in registry.kinds if kind not in {"Checklist", "Digest"}}
    missing = sorted(shipped - overlay_kinds)
    assert not missing, f"{name} has no overlay document of kind(s) {missing}"
    assert bundle.overlay_changes, "the example changes nothing in the standard"


@pytest.mark.parametrize("name", EXAMPLES)
def test_employees_csv(name: str) -> None:
    header, rows = _rows(ROOT / "examples" / name / "data" / "employees.csv")
    assert tuple(header) == EMPLOYEE_COLUMNS
    assert 40 <= len(rows) <= 80
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids))
    for row in rows:
        parse_employee(row)  # the importer's own checks (dates, leaving after hire)
        assert not row["manager"] or row["manager"] in ids, f"{row['id']}: unknown manager {row['manager']}"
    tops = [row["id"] for row in rows if not row["manager"]]
    assert len(tops) == 1, f"one top of the reporting tree, found {tops}"
    managers = {row["id"]: row["manager"] for row in rows}
    for ident in ids:  # the reporting tree has no cycles
        seen, current = set(), ident
        while current:
            assert current not in seen, f"reporting cycle through {ident}"
            seen.add(current)
            current = managers[current]
    assert any(row["hire_date"][5:] == "02-29" for row in rows), "someone hired on 29 February"
    assert any(row["leaving_date"] for row in rows), "someone leaving"
    assert any(len(_split(row["roles"])) > 1 for row in rows), "roles as a ;-separated list"


@pytest.mark.parametrize("name", EXAMPLES)
def test_employees_import(name: str, tmp_path: Path) -> None:
    from regelwerk.scheduling.employees import EmployeeDirectory, import_employees
    from sqlalchemy import create_engine

    directory = EmployeeDirectory(create_engine(f"sqlite:///{tmp_path / 'x.sqlite'}"))
    directory.setup()
    result = import_employees(directory, ROOT / "examples" / name / "data" / "employees.csv")
    assert result.ok, result.errors
    assert result.imported == directory.count()


@pytest.mark.parametrize("name", EXAMPLES)
def test_vacancies_and_candidates_csv(name: str, registry: Any) -> None:
    data = ROOT / "examples" / name / "data"
    _, employees = _rows(data / "employees.csv")
    employee_ids = {row["id"] for row in employees}
    compiled = compile_bundle(load_bundle(ROOT / "examples" / name), registry)
    settings = compiled.get("RecruitmentSettings", "default")
    organisation = compiled.get("OrganisationStructure", settings.organisation)
    entities = {entity.id for entity in organisation.entities}

    header, vacancies = _rows(data / "vacancies.csv")
    assert tuple(header) == VACANCY_COLUMNS
    vacancy_ids = [row["id"] for row in vacancies]
    assert len(vacancy_ids) == len(set(vacancy_ids))
    for row in vacancies:
        assert row["entity"] in entities, f"{row['id']}: unknown entity {row['entity']}"
        assert row["manager"] in employee_ids, f"{row['id']}: unknown manager {row['manager']}"
        assert all(member in employee_ids for member in _split(row["team"])), row
        assert date.fromisoformat(row["opened_on"]) <= date.fromisoformat(row["deadline"])

    header, candidates = _rows(data / "candidates.csv")
    assert tuple(header) == CANDIDATE_COLUMNS
    assert 20 <= len(candidates) <= 40
    ids = [row["id"] for row in candidates]
    assert len(ids) == len(set(ids))
    opened = {row["id"]: date.fromisoformat(row["opened_on"]) for row in vacancies}
    for row in candidates:
        assert row["vacancy"] in opened, f"{row['id']}: unknown vacancy {row['vacancy']}"
        assert date.fromisoformat(row["applied_on"]) >= opened[row["vacancy"]]
        assert row["email"].endswith(("@example.org", "@example.com")), row["email"]
        assert row["consent"] in ("ja", "nee")
        assert bool(row["consent_until"]) == (row["consent"] == "ja"), row
    assert any(row["consent"] == "ja" for row in candidates)


@pytest.mark.parametrize("name", EXAMPLES)
def test_relations_csv(name: str) -> None:
    data = ROOT / "examples" / name / "data"
    path = data / "relations.csv"
    if not path.exists():
        pytest.skip("relations.csv is optional")
    _, employees = _rows(data / "employees.csv")
    employee_ids = {row["id"] for row in employees}
    header, rows = _rows(path)
    assert tuple(header) == RELATION_COLUMNS
    for row in rows:
        assert row["kind"] in RELATION_KINDS, row
        assert row["subject"] in employee_ids, row
        if row["kind"] == "reports_to":
            assert row["object"] in employee_ids, row
        if row["valid_from"] and row["valid_to"]:
            assert date.fromisoformat(row["valid_from"]) <= date.fromisoformat(row["valid_to"]), row


@pytest.mark.parametrize("name", EXAMPLES)
def test_story_format(name: str) -> None:
    """A simple structural check of the Story format (the simulate command owns the full schema)."""
    story = _story(name)
    assert story["apiVersion"] == "regelwerk/v1"
    assert story["kind"] == "Story"
    assert story["metadata"]["name"]
    assert set(story["spec"]) == {"events"}
    events = story["spec"]["events"]
    assert events
    begin, end = (date.fromisoformat(d) for d in STORY_PERIOD[name])
    previous = begin
    for index, event in enumerate(events):
        assert set(event) - {"on"}, f"event {index}: no type"
        day = date.fromisoformat(str(event["on"]))
        assert begin <= day <= end, f"event {index} on {day} is outside the story's year"
        assert day >= previous, f"event {index} on {day} is before the event above it"
        previous = day
        types = set(event) - {"on"}
        assert len(types) == 1 and types <= EVENT_TYPES, f"event {index}: exactly one type key, got {sorted(types)}"
        kind = types.pop()
        body = event[kind]
        assert isinstance(body, dict), f"event {index}: {kind} needs a mapping"
        missing = EVENT_REQUIRED[kind] - set(body)
        assert not missing, f"event {index} ({kind}): missing {sorted(missing)}"


@pytest.mark.parametrize("name", EXAMPLES)
def test_story_refers_to_known_ids(name: str, registry: Any) -> None:
    data = ROOT / "examples" / name / "data"
    compiled = compile_bundle(load_bundle(ROOT / "examples" / name), registry)
    employees = {row["id"] for row in _rows(data / "employees.csv")[1]}
    vacancies = {row["id"] for row in _rows(data / "vacancies.csv")[1]}
    candidates = {row["id"] for row in _rows(data / "candidates.csv")[1]}
    workflows = set(compiled.of_kind("Workflow"))
    settings = compiled.get("RecruitmentSettings", "default")
    entities = {e.id: e for e in compiled.get("OrganisationStructure", settings.organisation).entities}

    def statuses_of(vacancy_entity: str) -> set[str]:
        """The statuses of the recruitment workflow a vacancy of this entity runs (nearest entity, else default)."""
        entity = entities.get(vacancy_entity)
        while entity is not None and not entity.workflow:
            entity = entities.get(entity.parent) if entity.parent else None
        workflow = compiled.get("Workflow", "recruitment." + (entity.workflow if entity else settings.workflow))
        return {state.id for state in workflow.states}

    vacancy_rows = _rows(data / "vacancies.csv")[1]
    candidate_rows = _rows(data / "candidates.csv")[1]
    entity_of = {row["id"]: row["entity"] for row in vacancy_rows}
    vacancy_of = {row["id"]: row["vacancy"] for row in candidate_rows}
    consent_until = {row["id"]: row["consent_until"] for row in candidate_rows}
    instances: set[str] = set()
    for event in _story(name)["spec"]["events"]:
        kind, body = next((k, v) for k, v in event.items() if k != "on")
        if kind == "hire":
            assert body["id"] not in employees, f"{body['id']} hired twice"
            parse_employee(body)
            assert body["manager"] in employees
            employees.add(body["id"])
        elif kind in ("leave", "update_employee"):
            assert body.get("employee", body.get("id")) in employees
        elif kind == "open_vacancy":
            vacancies.add(body["id"])
            entity_of[body["id"]] = body.get("entity", "")
        elif kind == "close_vacancy":
            assert body["vacancy"] in vacancies
        elif kind == "apply":
            assert body["vacancy"] in vacancies and body["id"] not in candidates
            assert body["email"].endswith(("@example.org", "@example.com"))
            candidates.add(body["id"])
            vacancy_of[body["id"]] = body["vacancy"]
        elif kind in ("move", "consent"):
            assert body["candidate"] in candidates, body
            if kind == "move":
                assert body["to"] in statuses_of(entity_of[vacancy_of[body["candidate"]]]), body
                assert body["actor"] in employees, body
            elif consent_until.get(body["candidate"]):  # renewed before the data is deleted
                assert str(event["on"]) <= consent_until[body["candidate"]], event
        elif kind == "start":
            assert body["workflow"] in workflows
            instances.add(body["id"])
        elif kind == "fire":
            assert body["instance"] in instances
        elif kind in ("link", "unlink"):
            assert body["subject"] in employees and body["kind"] == "consent"


def test_school_story_covers_the_year() -> None:
    kinds = [next(k for k in e if k != "on") for e in _story("scholengroep-horizon")["spec"]["events"]]
    for wanted in ("hire", "leave", "move", "consent", "link", "unlink", "start", "fire", "update_employee", "apply"):
        assert wanted in kinds, wanted


def test_retail_story_activates_mijnloket_plus(registry: Any) -> None:
    events = _story("retail-noorderlicht")["spec"]["events"]
    kinds = [next(k for k in e if k != "on") for e in events]
    assert kinds.index("sign_addendum") < kinds.index("activate_product")
    compiled = compile_bundle(load_bundle(ROOT / "examples" / "retail-noorderlicht"), registry)
    catalog = compiled.get("ProductCatalog", "mijnloket")
    products = [e["activate_product"]["product"] for e in events if "activate_product" in e]
    answer = catalog.tier(products, True)
    assert answer.tier == "Plus"
    assert not answer.warnings, answer.warnings  # every supporting product was activated too
    assert [event["to"] for event in answer.events] == ["Plus"]


@pytest.mark.parametrize(("name", "schedule", "expected"), [
    ("scholengroep-horizon", "registerplein-peilmomenten", ["2026-09-15", "2027-02-15", "2027-05-03"]),
    ("retail-noorderlicht", "maandelijkse-contractcheck", [f"2027-{m:02d}-01" for m in range(1, 13)]),
])
def test_named_schedules(name: str, schedule: str, expected: list[str], registry: Any) -> None:
    """Named Schedule documents have no scenario step; check their occurrences here."""
    from regelwerk.scheduling.preview import preview_schedules

    compiled = compile_bundle(load_bundle(ROOT / "examples" / name), registry)
    zone = ZoneInfo("Europe/Amsterdam")
    begin = datetime(int(expected[0][:4]), 1, 1, tzinfo=zone) if name == "retail-noorderlicht" else \
        datetime(2026, 8, 1, tzinfo=zone)
    end = begin.replace(year=begin.year + 1)
    found = sorted(moment.astimezone(zone).date().isoformat() for n, moment in preview_schedules(compiled, begin, end)
                   if n.split(" (")[0] == schedule)
    assert found == expected
