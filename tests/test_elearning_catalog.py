"""E-learning content as data: a quiz without an answer key is an error at its line, never a silent 0; the
standard's `key: customer` placeholder validates but cannot be planned or started until a customer delivers it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle, validate_bundle
from regelwerk.registry import load_registry

ROOT = Path(__file__).resolve().parent.parent
STANDARD = ROOT / "definitions" / "standard"


def customer(tmp_path: Path, *documents: str) -> Path:
    root = tmp_path / "klant"
    root.mkdir()
    (root / "bundle.yaml").write_text("apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: klant}\n"
                                      "spec: {extends: standard}\n", encoding="utf-8")
    (root / "lms.yaml").write_text("---\n".join(documents), encoding="utf-8")
    return root


OVERLAY = "apiVersion: regelwerk/v1\nkind: ElearningCatalog\nmetadata: {name: elearning, merge: patch}\nspec:\n"


def test_the_standard_ships_structure_and_two_keys() -> None:
    compiled = compile_bundle(load_bundle(STANDARD), load_registry())
    catalog = compiled.get("ElearningCatalog", "elearning")
    assert len(catalog.modules) == 42 and len(catalog.pending()) == 40
    assert set(m.id for m in catalog.modules) - set(catalog.pending()) == {"samenwerken", "luisteren"}
    score = compiled.get("DecisionTable", "elearning-quiz-score")
    assert len(score.rows) == 10


def test_a_missing_or_wrong_key_is_an_error_at_its_line(tmp_path: Path) -> None:
    root = customer(tmp_path, OVERLAY + "  modules:\n"
                    "    - {id: ambitie, key: [a, b, c]}\n"
                    "    - {id: visie, key: [a, b, c, d, z]}\n"
                    "    - {id: eigen_module, label: Onze eigen module}\n"
                    "    - {id: energie, key: [a, b, c, d, a], questions: [Een?]}\n")
    found = [(d.code, d.line, d.pointer, d.message) for d in validate_bundle(load_bundle(root), load_registry())]
    # each at its line of the customer's file; pointers are into the merged catalog (42 standard modules + 1)
    assert found == [
        ("S2H002", 6, "/spec/modules/1/key",
         "the answer key of module 'ambitie' has 3 answer(s); the quiz has 5 question(s)"),
        ("S2H003", 7, "/spec/modules/39/key/4", "answer 'z' is not one of the choices"),
        ("S2H001", 8, "/spec/modules/42", "the quiz of module 'eigen_module' has no answer key"),
        ("S2H004", 9, "/spec/modules/12/questions", "module 'energie' lists 1 question(s); the quiz has 5"),
    ]
    assert all(d.file.endswith("lms.yaml") for d in validate_bundle(load_bundle(root), load_registry()))


def test_planning_a_module_without_its_key_is_an_error_at_the_schedule(tmp_path: Path) -> None:
    plan = ("apiVersion: regelwerk/v1\nkind: Schedule\nmetadata: {name: toets-ambitie}\nspec:\n"
            "  item_type: toets\n  when: {dates: ['2027-04-01'], at: '08:00'}\n"
            "  start:\n    workflow: elearning_assignment\n"
            "    data: {subject: {field: employee.id}, module: ambitie}\n")
    root = customer(tmp_path, plan)
    (diagnostic,) = validate_bundle(load_bundle(root), load_registry())
    assert (diagnostic.code, diagnostic.line, diagnostic.pointer) == ("S2H005", 9, "/spec/start/data/module")
    assert "deliver the key with an ElearningCatalog overlay" in diagnostic.hint
    # the customer delivers the key: the plan validates and the module scores
    shutil.rmtree(root)
    root = customer(tmp_path, plan, OVERLAY + "  modules:\n    - {id: ambitie, key: [d, d, c, b, a]}\n")
    compiled = compile_bundle(load_bundle(root), load_registry())
    score = compiled.get("DecisionTable", "elearning-quiz-score")
    answers = {"q1": "d", "q2": "d", "q3": "c", "q4": "a", "q5": "a"}
    assert score.decide({"module": "ambitie", "answers": answers}, None).outputs == {"score": 4}
    assert compiled.get("DecisionTable", "elearning-modules").decide(
        {"module": "ambitie"}, None).outputs["answer_key"] == "delivered"


@pytest.mark.parametrize("example", ["scholengroep-horizon", "retail-noorderlicht"])
def test_examples_deliver_their_keys(example: str) -> None:
    compiled = compile_bundle(load_bundle(ROOT / "examples" / example), load_registry())
    assert len(compiled.get("ElearningCatalog", "elearning").pending()) == 38


def test_a_pass_mark_as_a_percentage_and_one_nobody_can_reach(tmp_path: Path) -> None:
    """"Pass mark 70%" (Zorggroep Meander): written `pass_mark: 70` it validated and nobody could ever pass a quiz of
    5 questions; now that is S2H006 with the percentage form as hint, and `pass_mark: 70%` is 4 of 5 (rounded up)."""
    root = customer(tmp_path, OVERLAY + "  modules:\n"
                    "    - {id: ambitie, key: [a, b, c, d, a], pass_mark: 70}\n"
                    "    - {id: visie, key: [a, b, c, d, a], pass_mark: 6}\n")
    found = [(d.code, d.line, d.pointer, d.hint) for d in validate_bundle(load_bundle(root), load_registry())]
    assert found == [
        ("S2H006", 6, "/spec/modules/1/pass_mark",
         "a percentage is written with %: pass_mark: 70% (4 of 5, rounded up)"),
        ("S2H006", 7, "/spec/modules/39/pass_mark",
         "a percentage is written with %: pass_mark: 6% (1 of 5, rounded up)"),
    ]
    shutil.rmtree(root)
    root = customer(tmp_path, OVERLAY + "  pass_mark: 60%\n  modules:\n"
                    "    - {id: ambitie, key: [a, b, c, d, a], pass_mark: 70%}\n"
                    "    - {id: visie, key: [a, b, c, d, a], pass_mark: 100%}\n")
    compiled = compile_bundle(load_bundle(root), load_registry())
    marks = {m.id: m.pass_mark for m in compiled.get("ElearningCatalog", "elearning").modules}
    assert (marks["ambitie"], marks["visie"], marks["samenwerken"]) == (4, 5, 3)
