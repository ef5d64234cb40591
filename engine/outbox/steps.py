"""The outbox's scenario step: ``expect_outbox`` (the mails the scenario's workflow engine queued)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regelwerk.registry import Registry, StepSpec

if TYPE_CHECKING:
    from regelwerk.scenarios import ScenarioContext

__all__ = ["register", "step_expect_outbox"]


def step_expect_outbox(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """The mails queued (of one ``instance``, of one ``template``) went to exactly the addresses ``to`` (in any order;
    ``[]``: none), each ``about`` that data subject when given."""
    from regelwerk.scenarios import StepFailure
    from regelwerk.workflows.steps import get_engine

    with get_engine(ctx).store.read() as tx:
        messages = tx.outbox(instance_id=args.get("instance"))
    if "template" in args:
        messages = [m for m in messages if m.template == args["template"]]
    what = " ".join(f"{key} {args[key]!r}" for key in ("instance", "template") if key in args) or "any"
    actual = sorted(m.recipient for m in messages)
    wanted = sorted(str(a) for a in args["to"])
    if actual != wanted:
        raise StepFailure(f"expected mails ({what}) to {wanted}, the outbox has {actual}")
    if "about" in args:
        wrong = sorted({str(m.subject_ref) for m in messages if m.subject_ref != args["about"]})
        if wrong:
            raise StepFailure(f"expected every mail ({what}) about {args['about']!r}, some are about {wrong}")


def register(registry: Registry, plugin: str) -> None:
    """Add ``expect_outbox``."""
    text = {"type": "string", "minLength": 1}
    registry.add_step(StepSpec("expect_outbox", plugin, step_expect_outbox, {
        "type": "object", "required": ["to"], "additionalProperties": False,
        "properties": {"to": {"type": "array", "items": text, "description": "every recipient address, once per mail"},
                       "instance": text, "template": text, "about": text},
    }, "the mails the workflow engine queued (of an instance, of a template) and their recipients"))
