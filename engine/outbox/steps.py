"""The outbox's scenario steps: ``expect_outbox`` (the mails the scenario's workflow engine queued, by recipient) and
``expect_mail`` (what the mails to one address say)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regelwerk.registry import Registry, StepSpec

if TYPE_CHECKING:
    from regelwerk.scenarios import ScenarioContext

__all__ = ["register", "step_expect_mail", "step_expect_outbox"]


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


def step_expect_mail(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """The mails queued to ``to`` (of one ``template``): exactly ``count`` of them when given; the last one's subject
    and body together contain every text of ``contains`` and none of ``lacks``."""
    from regelwerk.scenarios import StepFailure
    from regelwerk.workflows.steps import get_engine

    with get_engine(ctx).store.read() as tx:
        messages = [m for m in tx.outbox() if m.recipient == args["to"]
                    and ("template" not in args or m.template == args["template"])]
    what = f"mails to {args['to']!r}" + (f" of template {args['template']!r}" if "template" in args else "")
    if "count" in args and len(messages) != args["count"]:
        raise StepFailure(f"expected {args['count']} {what}, the outbox has {len(messages)}")
    if not messages:
        if args.get("contains") or args.get("lacks"):
            raise StepFailure(f"expected {what}, the outbox has none")
        return
    last = messages[-1]
    text = f"{last.subject}\n{last.body}"
    missing = [t for t in args.get("contains", ()) if t not in text]
    present = [t for t in args.get("lacks", ()) if t in text]
    if missing or present:
        raise StepFailure(f"the last of the {what} " + "; ".join(
            ([f"lacks {missing}"] if missing else []) + ([f"contains {present}"] if present else []))
            + f":\n{text}")


def register(registry: Registry, plugin: str) -> None:
    """Add ``expect_outbox`` and ``expect_mail``."""
    text = {"type": "string", "minLength": 1}
    registry.add_step(StepSpec("expect_mail", plugin, step_expect_mail, {
        "type": "object", "required": ["to"], "additionalProperties": False,
        "properties": {"to": text, "template": text, "count": {"type": "integer", "minimum": 0},
                       "contains": {"type": "array", "items": text, "description": "texts the last mail has"},
                       "lacks": {"type": "array", "items": text, "description": "texts the last mail has not"}},
    }, "the mails to one address (of a template): how many, and what the last one says"))
    registry.add_step(StepSpec("expect_outbox", plugin, step_expect_outbox, {
        "type": "object", "required": ["to"], "additionalProperties": False,
        "properties": {"to": {"type": "array", "items": text, "description": "every recipient address, once per mail"},
                       "instance": text, "template": text, "about": text},
    }, "the mails the workflow engine queued (of an instance, of a template) and their recipients"))
