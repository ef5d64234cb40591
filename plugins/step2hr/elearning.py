"""The ``ElearningCatalog`` kind: step2HR's e-learning modules and their quizzes as data, with their checks.

step2HR: *"42 competentiegerichte e-learning modules met bijbehorende werkboeken ... aan het eind van iedere
module een korte quiz met 5 meerkeuze vragen"*, *"Toetsen met meerkeuze vragen worden automatisch beoordeeld"*
and *"Het is mogelijk om bij step2HR e-learning modules en ook toetsen aan te leveren"*: the standard ships the
modules and the structure of their quizzes; the customer delivers the answer keys.

Checks (diagnostics at the module's line):

- S2H001 a module's quiz has no answer key (``key`` missing): never a quiz that silently scores 0.
- S2H002 an answer key with another number of answers than the quiz has questions.
- S2H003 an answer that is not one of the choices.
- S2H004 question texts that do not match the number of questions.
- S2H005 a Schedule plans tests (``start.data.module``) of a module whose key has not been delivered (reported
  at the Schedule: the tick would otherwise fail on the day the tests start).
- S2H006 a pass mark above the number of questions (nobody could pass; ``pass_mark: 70`` meant as ``70%``).

``key: customer`` is the declared placeholder: the module validates, its ``answer_key`` output is
``pending``, and the workflow refuses to plan (start) a test of it (``elearning.require_key``,
:class:`~regelwerk.errors.InvalidData`) until a customer overlay fills the key in.

The catalog compiles into two core DecisionTables (emitted, so the workflow's ``decisions.decide`` uses
them): ``elearning-modules`` (module -> label, workbook, pass mark, answer_key delivered/pending) and
``elearning-quiz-score`` (COLLECT SUM, one row ``<module>_q<n>`` per correct answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ElearningCatalog", "ElearningModule", "compile_elearning", "require_key"]

CUSTOMER = "customer"


@dataclass(frozen=True, slots=True)
class ElearningModule:
    """One module: its quiz's answer key (empty while the customer has not delivered it)."""

    id: str
    label: str
    workbook: str
    pass_mark: int
    key: tuple[str, ...]
    questions: tuple[str, ...] = ()

    @property
    def key_delivered(self) -> bool:
        """True when the quiz can be scored."""
        return bool(self.key)


@dataclass(frozen=True, slots=True)
class ElearningCatalog:
    """The compiled catalog and the names of the tables it emitted."""

    name: str
    label: str
    choices: tuple[str, ...]
    questions: int
    modules: tuple[ElearningModule, ...]
    modules_table: str
    score_table: str

    def pending(self) -> tuple[str, ...]:
        """The modules whose answer key the customer has yet to deliver."""
        return tuple(m.id for m in self.modules if not m.key_delivered)


def _pass_mark(ctx: Any, raw: Any, count: int, pointer: str) -> int | None:
    """Correct answers needed: a number, or a percentage of the ``count`` questions (``"70%"``), rounded up to whole
    answers (70% of 5 is 3.5: 4). More than ``count`` is S2H006: nobody could ever pass (``pass_mark: 70`` meant as
    70%). None after reporting."""
    if isinstance(raw, str) and raw.endswith("%"):
        percent = int(raw[:-1])
        return (count * percent + 99) // 100
    mark = int(raw)
    if mark > count:
        ctx.report("S2H006", f"pass mark {mark} is more than the {count} question(s) of the quiz: nobody can pass",
                   pointer, hint=f"a percentage is written with %: pass_mark: {min(mark, 100)}% "
                                 f"({(count * min(mark, 100) + 99) // 100} of {count}, rounded up)")
        return None
    return mark


def compile_elearning(ctx: Any, doc: Any) -> ElearningCatalog | None:
    """Check every module's quiz and emit the module and answer-key tables."""
    from regelwerk.compiler import content_hash
    from regelwerk.decisions.compile import build_decision_table

    spec = doc.spec
    choices = tuple(str(c) for c in spec.get("choices", ("a", "b", "c", "d")))
    count = int(spec.get("questions", 5))
    default_pass = _pass_mark(ctx, spec.get("pass_mark", 4), count, "/spec/pass_mark")
    tables = dict(spec.get("tables") or {})
    modules: list[ElearningModule] = []
    errors = 0
    for index, raw in enumerate(spec.get("modules", [])):
        pointer = f"/spec/modules/{index}"
        key = raw.get("key")
        answers: tuple[str, ...] = ()
        if key is None:
            errors += 1
            ctx.report("S2H001", f"the quiz of module {raw['id']!r} has no answer key", pointer,
                       hint=f"give `key:` with the {count} correct choices in order, or `key: customer` when the "
                            "customer delivers it (an overlay fills it in; tests cannot be planned until then)")
        elif key != CUSTOMER:
            answers = tuple(str(a) for a in key)
            if len(answers) != count:
                errors += 1
                ctx.report("S2H002", f"the answer key of module {raw['id']!r} has {len(answers)} answer(s); "
                                     f"the quiz has {count} question(s)", f"{pointer}/key")
            for n, answer in enumerate(answers):
                if answer not in choices:
                    errors += 1
                    ctx.report("S2H003", f"answer {answer!r} is not one of the choices", f"{pointer}/key/{n}",
                               hint="choices: " + ", ".join(choices))
        texts = tuple(str(q) for q in raw.get("questions", ()))
        if texts and len(texts) != count:
            errors += 1
            ctx.report("S2H004", f"module {raw['id']!r} lists {len(texts)} question(s); the quiz has {count}",
                       f"{pointer}/questions")
        label = str(raw.get("label", raw["id"]))
        own = _pass_mark(ctx, raw["pass_mark"], count, f"{pointer}/pass_mark") if "pass_mark" in raw else default_pass
        if own is None or default_pass is None:
            errors += 1
            continue
        modules.append(ElearningModule(raw["id"], label, str(raw.get("workbook", f"Werkboek {label}")),
                                       own, answers, texts))
    if errors or default_pass is None:
        return None
    modules_name = str(tables.get("modules", "elearning-modules"))
    score_name = str(tables.get("score", "elearning-quiz-score"))
    modules_table = build_decision_table(ctx, modules_name, {
        "label": str(spec.get("label", doc.name)),
        "description": "De e-learning modules met hun werkboek, de cesuur en of de antwoordsleutel er is.",
        "hitPolicy": "UNIQUE",
        "inputs": [{"id": "module", "label": "Module", "type": "string"}],
        "outputs": [{"id": "module_label", "label": "Module"}, {"id": "workbook", "label": "Werkboek"},
                    {"id": "pass_mark", "label": "Cesuur (aantal goed)"},
                    {"id": "answer_key", "label": "Antwoordsleutel", "values": ["delivered", "pending"]}],
        "rows": [{"id": m.id, "when": {"module": m.id},
                  "then": {"module_label": m.label, "workbook": m.workbook, "pass_mark": m.pass_mark,
                           "answer_key": "delivered" if m.key_delivered else "pending"}} for m in modules],
    })
    questions = [{"id": f"q{n}", "field": f"answers.q{n}", "label": f"Vraag {n}", "values": list(choices)}
                 for n in range(1, count + 1)]
    rows = [{"id": f"{m.id}_q{n}", "when": {"module": m.id, f"q{n}": answer}, "then": {"score": 1},
             **({"description": m.questions[n - 1]} if m.questions else {})}
            for m in modules for n, answer in enumerate(m.key, start=1)]
    score_table = build_decision_table(ctx, score_name, {
        "label": "Quiz beoordelen",
        "description": "Antwoordsleutel: COLLECT SUM telt de goede antwoorden van de quiz van de module.",
        "hitPolicy": "COLLECT", "aggregation": "SUM",
        "inputs": [{"id": "module", "label": "Module", "type": "string"}, *questions],
        "outputs": [{"id": "score", "label": "Aantal goed"}],
        "rows": rows,
    })
    if modules_table is None or score_table is None:
        return None
    _check_plans(ctx, {m.id for m in modules if not m.key_delivered})
    version = content_hash(doc.data)
    ctx.emit("DecisionTable", modules_name, modules_table, version)
    ctx.emit("DecisionTable", score_name, score_table, version)
    return ElearningCatalog(doc.name, str(spec.get("label", doc.name)), choices, count, tuple(modules),
                            modules_name, score_name)


def _check_plans(ctx: Any, pending: set[str]) -> None:
    """S2H005 at every Schedule whose start data names a module without a delivered answer key."""
    if not pending:
        return
    for schedule in ctx.documents("Schedule"):
        start = schedule.spec.get("start") if hasattr(schedule.spec, "get") else None
        data = start.get("data") if hasattr(start, "get") else None
        module = data.get("module") if hasattr(data, "get") else None
        if isinstance(module, str) and module in pending:
            ctx.report("S2H005", f"schedule {schedule.name!r} plans tests of module {module!r}, whose answer key "
                                 "has not been delivered", "/spec/start/data/module", doc=schedule,
                       hint="deliver the key with an ElearningCatalog overlay (modules: [{id: "
                            f"{module}, key: [...]}}]) or plan another module")


def require_key(ctx: Any) -> None:
    """Workflow action ``elearning.require_key``: refuse (and so roll back) a test of a module whose answer key
    the customer has not delivered (``data.answer_key`` from the module table is not ``delivered``)."""
    from regelwerk.errors import InvalidData

    if ctx.data.get("answer_key") != "delivered":
        module = ctx.data.get("module")
        raise InvalidData(f"module {module!r}: the answer key of its quiz has not been delivered, so it cannot be "
                          "scored; the customer delivers it (ElearningCatalog `key:` in an overlay)",
                          errors=[{"field": "module", "message": "answer key not delivered"}])
