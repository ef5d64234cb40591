"""step2HR pack: the rights levels, the notes' visibility and the e-learning catalog (seed 000_1dc775011ec2e028.txt).

The matrix itself is shipped as YAML (``definitions/standard/permissions/step2hr.yaml``); this pack
adds what a host needs around it: filtering lists of notes to the ones an actor may see, as a helper
and as the scenario step ``visible_notes``; and the ``ElearningCatalog`` kind (modules and their quizzes'
answer keys, :mod:`regelwerk_packs.step2hr.elearning`) with its workflow action ``elearning.require_key``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from regelwerk.registry import ActionSpec, IdDecl, KindSpec, Registry, StepSpec

__all__ = ["MATRIX", "NOTE_TYPES", "Step2HRPlugin", "plugin", "visible_notes"]

#: The shipped matrix's name.
MATRIX = "step2hr"
#: The three kinds of notes (resource types of the matrix).
NOTE_TYPES = ("personal_log", "manager_log", "p_and_o_note")


def visible_notes(matrix: Any, actor: Any, notes: Iterable[Mapping[str, Any]], relations: Any,
                  now: datetime) -> list[str]:
    """The ids of ``notes`` (each ``{id, type, subject, author}``) the actor may read, in input order."""
    return [str(note["id"]) for note in notes
            if matrix.decide(actor, "read", str(note["type"]), note, relations, now).allowed]


def step_visible_notes(ctx: Any, args: Any, info: Any) -> None:
    """Scenario step: the notes (from facts.resources of the three note types) an actor sees."""
    from regelwerk.permissions.facts import actor_from_facts, pick_matrix, resource_from_facts
    from regelwerk.permissions.relations import relations_from_facts
    from regelwerk.scenarios import StepFailure

    matrix = pick_matrix(ctx.compiled, args.get("matrix", MATRIX))
    notes = []
    for key in (ctx.facts.get("resources") or {}):
        note_type, resource = resource_from_facts(key, ctx.facts)
        if note_type in NOTE_TYPES:
            notes.append({**resource, "type": note_type})
    rel = ctx.service("permissions.relations", lambda c: relations_from_facts(c.facts))
    actual = visible_notes(matrix, actor_from_facts(args["actor"], ctx.facts), notes, rel, ctx.now)
    if sorted(actual) != sorted(args["expect"]):
        raise StepFailure(f"expected {args['actor']} to see {sorted(args['expect'])}, got {sorted(actual)}")


class Step2HRPlugin:
    """Registers the step2HR pack's scenario step."""

    name = "step2hr"

    def register(self, registry: Registry) -> None:
        """Add the ``visible_notes`` step, the ElearningCatalog kind and ``elearning.require_key``."""
        from regelwerk.validation import load_shipped_schema
        from regelwerk_packs.step2hr.elearning import compile_elearning, require_key

        registry.add_kind(KindSpec(
            kind="ElearningCatalog", plugin=self.name, schema=load_shipped_schema("elearningcatalog.json"),
            compile=compile_elearning, ids=(IdDecl("/spec/modules/*/id", "module"),),
            description="step2HR e-learning modules, their workbooks and their quizzes' answer keys",
            schema_file="elearningcatalog.json",
        ))
        registry.add_action(ActionSpec(
            "elearning.require_key", self.name, require_key,
            "refuse a test of a module whose answer key the customer has not delivered yet",
            {"type": "object", "additionalProperties": False, "properties": {}},
        ))
        registry.add_step(StepSpec("visible_notes", self.name, step_visible_notes, {
            "type": "object", "required": ["actor", "expect"], "additionalProperties": False,
            "properties": {"matrix": {"type": "string"}, "actor": {"type": "string"},
                           "expect": {"type": "array", "items": {"type": "string"}}},
        }, "step2HR: the ids of the notes (personal log, manager's log, P&O) an actor can read"))


plugin = Step2HRPlugin()
