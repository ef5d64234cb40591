"""The core ``send_template`` action: render a Template and write it to the outbox in the caller's transaction.

Usable from any workflow (``on_enter``, transition ``actions``) and from rules. Parameters::

    {action: send_template, with: {template: afwijzing, to: data.email, about: data.employee_id}}

``to`` (default ``data.email``) and ``about`` (optional: the data subject, used for AVG erasure)
are dotted paths into the action scope (``data``, ``actor``, ``instance``, ``event``); the
template is rendered over that same scope, so its MailContext lists ``data.*`` fields.

``to: {role: hr}`` addresses everyone holding a role of the bundle's permission matrices, within the
instance's scope, resolved when the action runs (:mod:`regelwerk.outbox.recipients`): one outbox row per
recipient, each with the same ``about``, and one audit row ``outbox.role_mail`` naming them; nobody to mail is
:class:`~regelwerk.errors.NoRecipients` (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regelwerk.errors import InvalidData, NoRecipients, UsageError

__all__ = ["PARAMS_SCHEMA", "compiled_bundle_of", "send_template"]

PARAMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["template"],
    "additionalProperties": False,
    "properties": {
        "template": {"type": "string", "description": "The Template to render.", "x-document": "Template"},
        "to": {
            "description": "Dotted path of the recipient address (default data.email), or {role: ROLE}: everyone "
                           "holding that role of the bundle's permission matrices who may read the instance.",
            "anyOf": [
                {"type": "string"},
                {"type": "object", "required": ["role"], "additionalProperties": False,
                 "properties": {"role": {"type": "string", "minLength": 1, "x-role": True,
                                         "description": "A role id of the bundle's permission matrices."},
                                "if_nobody": {"enum": ["refuse", "skip"],
                                              "description": "When nobody holds the role or nobody holding it may "
                                                             "read the instance: refuse the transition (default) or "
                                                             "skip the mail (audited as outbox.role_mail_skipped). "
                                                             "A holder without an address always refuses."}}},
            ],
        },
        "about": {"type": "string", "description": "Dotted path of the data subject's id (for AVG erasure)."},
        "from": {"type": "string", "description": "The sender address (default: the sender's configured address)."},
    },
}


def compiled_bundle_of(engine: Any) -> Any:
    """The compiled bundle an engine runs (``engine.compiled``)."""
    compiled = getattr(engine, "compiled", None) or getattr(engine, "bundle", None)
    if compiled is None:
        raise UsageError("send_template needs an engine that exposes its compiled bundle as .compiled")
    return compiled


def send_template(ctx: Any) -> None:
    """Render ``params.template`` over the action scope and enqueue it in the transition's transaction."""
    from regelwerk.conditions import resolve_path
    from regelwerk.outbox.queue import enqueue

    params = ctx.params
    name = params.get("template")
    if not isinstance(name, str) or not name:
        raise UsageError("send_template needs 'template' (a Template name)")
    template = compiled_bundle_of(ctx.engine).get("Template", name)
    scope = ctx.scope()
    to = params.get("to", "data.email")
    if isinstance(to, Mapping):
        _send_to_role(ctx, name, template, scope, str(to.get("role") or ""), to.get("if_nobody") == "skip")
        return
    recipient = resolve_path(scope, str(params.get("to", "data.email")).split("."))
    if not isinstance(recipient, str) or not recipient:
        raise InvalidData(f"send_template: no recipient address at {params.get('to', 'data.email')!r}")
    about = resolve_path(scope, str(params["about"]).split(".")) if params.get("about") else None
    mail = template.render(scope)
    enqueue(ctx.tx, mail, recipient=recipient, now=ctx.now, sender=params.get("from"),
            subject_ref=str(about) if about is not None else None, instance_id=ctx.instance.id)


def _send_to_role(ctx: Any, name: str, template: Any, scope: Mapping[str, Any], role: str,
                  skip_nobody: bool = False) -> None:
    """One outbox row per recipient holding ``role`` in the instance's scope (a shared address once), and one audit
    row naming them, all in the transition's unit of work. With ``skip_nobody`` (``if_nobody: skip``) a mail that
    nobody in scope holds the role for is skipped with an audit row ``outbox.role_mail_skipped`` instead of refusing
    the transition (a holder in scope without an address still refuses)."""
    from regelwerk.conditions import resolve_path
    from regelwerk.outbox.queue import enqueue
    from regelwerk.outbox.recipients import role_recipients

    if not role:
        raise UsageError("send_template: 'to' as a mapping needs 'role' (a role id)")
    params = ctx.params
    try:
        recipients, out_of_scope = role_recipients(ctx, role, name)
    except NoRecipients as exc:
        if skip_nobody and exc.nobody:
            ctx.audit("outbox.role_mail_skipped", {"template": name, "role": role, "reason": exc.reason,
                                                   "holders": list(exc.holders),
                                                   "out_of_scope": sorted(exc.out_of_scope)})
            return
        _audit_refusal(ctx, exc)
        raise
    about = resolve_path(scope, str(params["about"]).split(".")) if params.get("about") else None
    mail = template.render(scope)
    messages: dict[str, str] = {}
    for recipient in recipients:
        if recipient.address in messages:  # a shared mailbox gets the mail once
            continue
        messages[recipient.address] = enqueue(
            ctx.tx, mail, recipient=recipient.address, now=ctx.now, sender=params.get("from"),
            subject_ref=str(about) if about is not None else None, instance_id=ctx.instance.id)
    ctx.audit("outbox.role_mail", {"template": name, "role": role, "recipients": [r.person for r in recipients],
                                   "messages": list(messages.values()), "out_of_scope": sorted(out_of_scope)})


def _audit_refusal(ctx: Any, exc: NoRecipients) -> None:
    """A person's fire refused for want of recipients is audited once (``outbox.no_recipients``), kept when the
    transition rolls back; a timer's becomes an incident, which is its record."""
    from regelwerk.store.records import AuditEntry
    from regelwerk.store.unit import current_unit

    unit = current_unit(getattr(ctx.engine, "store", None))
    if ctx.system or unit is None:
        return
    detail = {k: v for k, v in exc.to_dict().items() if k not in ("error", "message")}
    unit.refuse(AuditEntry(ctx.now, ctx.actor.id, "outbox.no_recipients", ctx.instance.id,
                           {**detail, "event": ctx.event}))
