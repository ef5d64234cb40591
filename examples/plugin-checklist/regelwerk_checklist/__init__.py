"""An example regelwerk plugin: a ``Checklist`` kind (onboarding tasks with dependencies).

It shows every extension point a plugin author uses: a kind with its JSON Schema,
declared ids and references (checked by the core), a compiler into a frozen model
using the shared condition language, a condition function, an action and a
scenario step. See docs/plugins.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from regelwerk.conditions import Condition
from regelwerk.registry import ActionSpec, FunctionSpec, IdDecl, KindSpec, RefDecl, Registry, StepSpec
from regelwerk.scenarios import StepFailure

__all__ = ["Checklist", "ChecklistPlugin", "Task", "plugin"]


@dataclass(frozen=True, slots=True)
class Task:
    """One task of a checklist."""

    id: str
    label: str
    depends_on: tuple[str, ...]
    when: Condition | None


@dataclass(frozen=True, slots=True)
class Checklist:
    """A compiled checklist."""

    name: str
    tasks: tuple[Task, ...]

    def open_tasks(self, done: set[str], facts: dict[str, Any], now: Any) -> list[str]:
        """Tasks that apply, are not done, and whose dependencies are done."""
        out = []
        for task in self.tasks:
            if task.id in done or any(d not in done for d in task.depends_on):
                continue
            if task.when is not None and not task.when(facts, now):
                continue
            out.append(task.id)
        return out


def compile_checklist(ctx: Any, doc: Any) -> Checklist:
    """Compile a Checklist document (the core already checked schema, ids and references)."""
    tasks = []
    for i, task in enumerate(doc.spec["tasks"]):
        when = ctx.condition(task["when"], f"/spec/tasks/{i}/when") if "when" in task else None
        if task["id"] in task.get("depends_on", []):
            ctx.report("CHK001", f"task {task['id']!r} depends on itself", f"/spec/tasks/{i}/depends_on")
        tasks.append(Task(task["id"], task.get("label", task["id"]), tuple(task.get("depends_on", [])), when))
    return Checklist(doc.name, tuple(tasks))


def step_open_tasks(ctx: Any, args: Any, info: Any) -> None:
    """Scenario step: the open tasks of a checklist given done tasks and the scenario facts."""
    checklist = ctx.compiled.get("Checklist", args["checklist"])
    actual = checklist.open_tasks(set(args.get("done", [])), ctx.facts, ctx.now)
    if actual != args["expect"]:
        raise StepFailure(f"expected open tasks {args['expect']}, got {actual}")


class ChecklistPlugin:
    """Registers the Checklist kind."""

    name = "checklist"

    def register(self, registry: Registry) -> None:
        """Add the kind, a function, an action and a step."""
        schema = json.loads((resources.files(__name__) / "checklist.json").read_text(encoding="utf-8"))
        registry.add_kind(KindSpec(
            kind="Checklist", plugin=self.name, schema=schema, compile=compile_checklist,
            ids=(IdDecl("/spec/tasks/*/id", "task"),),
            refs=(RefDecl("/spec/tasks/*/depends_on", target="/spec/tasks/*/id", what="task"),),
            description="an onboarding checklist (example plugin)",
        ))
        registry.add_function(FunctionSpec("has_laptop_budget", self.name,
                                           lambda amount: isinstance(amount, (int, float)) and amount >= 800))
        registry.add_action(ActionSpec("checklist.notify", self.name, lambda **kw: None, "notify the buddy"))
        registry.add_step(StepSpec("open_tasks", self.name, step_open_tasks, {
            "type": "object", "required": ["checklist", "expect"], "additionalProperties": False,
            "properties": {"checklist": {"type": "string"}, "done": {"type": "array", "items": {"type": "string"}},
                           "expect": {"type": "array", "items": {"type": "string"}}},
        }, "the open tasks of a checklist"))


plugin = ChecklistPlugin()
