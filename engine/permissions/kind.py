"""The ``PermissionMatrix`` kind: schema, declared ids and references, and the compiler.

Diagnostic codes (RW7xx, documented in docs/kinds/permissionmatrix.md):

- RW701 a role inherits from itself (directly or through other roles)
- RW702 a grant or deny names an action its resource does not have
- RW703 a field group its resource does not have
- RW704 the same rule id is used twice across grants, denies and rights
- RW705 valid_to before valid_from in user_rights
- RW706 ``read_actions`` names an action the resource does not have
- RW707 a condition reads something other than actor.*, resource.* or context.* (warning)
- RW708 a valid_from or valid_to in user_rights that is no calendar date

Undefined roles, resources, actions and rights are reported by the core (RW301) from the
references declared here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from regelwerk.compiler import CompileContext
from regelwerk.conditions import field_paths
from regelwerk.diagnostics import did_you_mean
from regelwerk.permissions.model import PermissionMatrix, ResourceType, Right, Role, Rule, UserRight
from regelwerk.permissions.relations import DEFAULT_TIMEZONE, TASK_ROLE, as_date, zone
from regelwerk.registry import IdDecl, KindSpec, RefDecl, Registry
from regelwerk.source import SourceDocument

__all__ = ["DEFAULT_READ_ACTIONS", "KIND", "compile_matrix", "kind_spec", "register"]

KIND = "PermissionMatrix"
DEFAULT_READ_ACTIONS = ("read", "view", "list", "consult", "export")
_ROOTS = ("actor", "resource", "context")


def _resource_type(item: Any) -> dict[str, Any]:
    """What ``resource.*`` is in a condition on rules of this resource: its fact type, its declared fields
    (plus the fields naming its id, subject, author and department), or open."""
    from regelwerk.facts_kind import attributes_type

    if not isinstance(item, Mapping):
        return {"type": "object"}
    if item.get("fact"):
        return {"$fact": str(item["fact"])}
    if not isinstance(item.get("fields"), Mapping):
        return {"type": "object", "description": "open: declare the resource's fact or fields to check it"}
    out = attributes_type(item["fields"], f"resource {item.get('id', '')}")
    for key, default in (("", "id"), ("subject", "subject"), ("author", "author"), ("department", "department")):
        name = str(item.get(key, default)) if key else default
        out["properties"].setdefault(name, {"type": "string"})
    return out


def _field_kinds(schema: Mapping[str, Any] | None, expand: Any = None,
                 prefix: str = "") -> dict[str, tuple[str, str, tuple[Any, ...]]]:
    """name -> (kind, item kind, allowed values) of a resource's declared fields (nothing for an open resource); the
    allowed values are a scalar field's ``enum`` (empty: any value of its kind). A declared object's own declared
    properties are there too, by dotted name (``meta.visible_to``: a fact type of a plugin may nest), and an
    ``integer`` is its own kind (2.5 is no integer)."""
    from regelwerk.facts import schema_kind

    if expand is not None:
        schema = expand(schema)
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    out: dict[str, tuple[str, str, tuple[Any, ...]]] = {}
    for name, raw in (properties or {}).items():
        prop = expand(raw) if expand is not None else raw
        kind = schema_kind(prop)
        if kind == "any":
            continue
        if kind == "number" and isinstance(prop, Mapping) and prop.get("type") == "integer":
            kind = "integer"
        items = schema_kind(prop.get("items")) if kind == "list" and isinstance(prop, Mapping) else "any"
        allowed = prop.get("enum") if isinstance(prop, Mapping) and kind != "list" else None
        out[prefix + str(name)] = (kind, "" if items == "any" else items,
                                   tuple(allowed) if isinstance(allowed, list) else ())
        if kind == "object" and prefix.count(".") < 8:
            out.update(_field_kinds(prop, expand, f"{prefix}{name}."))
    return out


def condition_scope(data: Any, pointer: str) -> dict[str, Any]:
    """What a grant's or deny's ``condition`` reads: ``actor`` (the actor fact type), ``resource`` (the
    resource's fact type or declared fields) and ``context`` (what the host passes: the matrix's declared
    ``context`` fields, else open). Other roots are left to RW707."""
    from regelwerk.facts_kind import attributes_type

    spec = data.get("spec") if isinstance(data, Mapping) else None
    node: Any = spec
    for part in pointer.strip("/").split("/")[1:-1]:  # the rule holding the condition
        node = node.get(part) if isinstance(node, Mapping) else (
            node[int(part)] if isinstance(node, list) and part.isdigit() and int(part) < len(node) else None)
    resource_id = node.get("resource") if isinstance(node, Mapping) else None
    resources = spec.get("resources") if isinstance(spec, Mapping) else None
    item = next((r for r in resources or () if isinstance(r, Mapping) and r.get("id") == resource_id), None)
    return {"type": "object", "additionalProperties": True, "required": ["actor", "resource"],
            "properties": {"actor": {"$fact": "actor"}, "resource": _resource_type(item),
                           "context": attributes_type(spec["context"], "what the host passes (declared)")
                           if isinstance(spec, Mapping) and isinstance(spec.get("context"), Mapping)
                           else {"type": "object", "description": "what the host passes (open)"}}}


def _rule(ctx: CompileContext, data: Any, pointer: str, effect: str, resources: dict[str, ResourceType],
          right: str = "") -> Rule | None:
    resource = resources.get(str(data["resource"]))
    actions = tuple(str(a) for a in data["actions"])
    # names defined nowhere are reported by the core (RW301); here: defined, but not on this resource
    all_actions = {a for r in resources.values() for a in r.actions}
    all_groups = {g for r in resources.values() for g in r.field_groups}
    if resource is not None:
        for i, action in enumerate(actions):
            if action != "*" and action not in resource.actions and action in all_actions:
                ctx.report("RW702", f"resource {resource.id!r} has no action {action!r}", f"{pointer}/actions/{i}",
                           hint=did_you_mean(action, resource.actions) or "actions: " + ", ".join(resource.actions))
        for i, group in enumerate(data.get("field_groups", [])):
            if group not in resource.field_groups and group in all_groups:
                ctx.report("RW703", f"resource {resource.id!r} has no field group {group!r}",
                           f"{pointer}/field_groups/{i}",
                           hint=did_you_mean(group, resource.field_groups) or
                           ("field groups: " + ", ".join(resource.field_groups) if resource.field_groups
                            else "the resource defines no field_groups"))
    condition = None
    if "condition" in data:
        condition = ctx.condition(data["condition"], f"{pointer}/condition")
        odd = sorted({path[0] for path in field_paths(condition.model) if path} - set(_ROOTS))
        if odd:
            ctx.warn("RW707", f"the condition reads {', '.join(odd)}: only actor.*, resource.* and context.* "
                              "are set in permission conditions", f"{pointer}/condition")
    return Rule(
        id=str(data["id"]), effect=effect, resource=str(data["resource"]), actions=actions,
        roles=tuple(str(r) for r in data.get("roles", ())), scope=str(data.get("scope", "organisation")),
        of=str(data.get("of", "")), condition=condition,
        field_groups=tuple(str(g) for g in data.get("field_groups", ())),
        except_scope=str(data.get("except", "")), except_roles=tuple(str(r) for r in data.get("except_roles", ())),
        label=str(data.get("label", "")), reason=str(data.get("reason", "")), right=right,
    )


def _effective_roles(ctx: CompileContext, roles: dict[str, Role],
                     pointers: dict[str, str]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    reported: set[str] = set()

    def walk(role: str, path: tuple[str, ...]) -> tuple[str, ...]:
        if role in out:
            return out[role]
        if role in path:
            if role not in reported:
                reported.add(role)
                ctx.report("RW701", f"role {role!r} inherits from itself: {' -> '.join(path + (role,))}",
                           pointers[role] + "/inherits")
            return ()
        result = [role]
        for parent in roles[role].inherits if role in roles else ():
            for r in walk(parent, path + (role,)):
                if r not in result:
                    result.append(r)
        out[role] = tuple(result)
        return out[role]

    for role in roles:
        walk(role, ())
    return out


def compile_matrix(ctx: CompileContext, doc: SourceDocument) -> PermissionMatrix:
    """Compile a PermissionMatrix document into its frozen model."""
    from regelwerk.facts_kind import attributes_type

    spec = doc.spec
    roles: dict[str, Role] = {}
    pointers: dict[str, str] = {}
    for i, item in enumerate(spec["roles"]):
        roles[item["id"]] = Role(item["id"], item.get("label", item["id"]), tuple(item.get("inherits", ())),
                                 tuple(item.get("rights", ())), item.get("description", ""),
                                 tuple(dict.fromkeys(str(t) for t in item.get("tasks", ()))))
        pointers[item["id"]] = f"/spec/roles/{i}"
    resources: dict[str, ResourceType] = {}
    for i, item in enumerate(spec["resources"]):
        actions = tuple(item["actions"])
        if "read_actions" in item:
            reads = tuple(item["read_actions"])
            for j, action in enumerate(reads):
                if action not in actions:
                    ctx.report("RW706", f"read action {action!r} is not one of the resource's actions",
                               f"/spec/resources/{i}/read_actions/{j}",
                               hint=did_you_mean(action, actions) or "actions: " + ", ".join(actions))
        else:
            reads = tuple(a for a in actions if a in DEFAULT_READ_ACTIONS)
        if item.get("fact") and ctx.facts.fact(str(item["fact"])) is None:
            known = sorted(ctx.facts.types)
            ctx.report("RW413", f"there is no fact type {item['fact']!r}", f"/spec/resources/{i}/fact",
                       hint=did_you_mean(str(item["fact"]), known) or "fact types: " + ", ".join(known))
        if item.get("fact") and item.get("fields"):
            ctx.report("RW413", "a resource names its fact type or declares its fields, not both",
                       f"/spec/resources/{i}/fields", hint="drop 'fields' or 'fact'")
        resources[item["id"]] = ResourceType(
            id=item["id"], label=item.get("label", item["id"]), actions=actions, read_actions=reads,
            subject_field=item.get("subject", "subject"), author_field=item.get("author", "author"),
            department_field=item.get("department", "department"),
            field_groups={g["id"]: tuple(g.get("fields", ())) for g in item.get("field_groups", ())},
            action_labels=dict(item.get("action_labels", {})), description=item.get("description", ""),
            field_kinds=_field_kinds(_resource_type(item), ctx.facts.expand),
        )
    seen: dict[str, str] = {}

    def unique(rule_id: str, pointer: str) -> None:
        if rule_id in seen:
            ctx.report("RW704", f"rule id {rule_id!r} is used twice (first at {seen[rule_id]})", f"{pointer}/id",
                       hint="grants, denies and the grants of rights share one id space: explanations name them")
        else:
            seen[rule_id] = pointer

    grants: list[Rule] = []
    for i, item in enumerate(spec.get("grants", [])):
        unique(item["id"], f"/spec/grants/{i}")
        rule = _rule(ctx, item, f"/spec/grants/{i}", "allow", resources)
        if rule is not None:
            grants.append(rule)
    denies: list[Rule] = []
    for i, item in enumerate(spec.get("denies", [])):
        unique(item["id"], f"/spec/denies/{i}")
        rule = _rule(ctx, item, f"/spec/denies/{i}", "deny", resources)
        if rule is not None:
            denies.append(rule)
    rights: dict[str, Right] = {}
    for i, item in enumerate(spec.get("rights", [])):
        rule_list: list[Rule] = []
        for j, grant in enumerate(item["grants"]):
            unique(grant["id"], f"/spec/rights/{i}/grants/{j}")
            rule = _rule(ctx, grant, f"/spec/rights/{i}/grants/{j}", "allow", resources, right=item["id"])
            if rule is not None:
                rule_list.append(rule)
        rights[item["id"]] = Right(item["id"], item.get("label", item["id"]), tuple(rule_list),
                                   item.get("description", ""))
    timezone = getattr(ctx.bundle, "timezone", "") or DEFAULT_TIMEZONE
    user_rights: list[UserRight] = []
    for i, item in enumerate(spec.get("user_rights", [])):
        days: dict[str, date | None] = {}
        for key in ("valid_from", "valid_to"):
            try:
                days[key] = as_date(item.get(key))
            except ValueError:  # the schema's pattern lets 2027-02-30 through: no such day
                ctx.report("RW708", f"{key} {item.get(key)!r} is not a calendar date",
                           f"/spec/user_rights/{i}/{key}", hint="a date as YYYY-MM-DD that exists")
                days[key] = None
        start, end = days["valid_from"], days["valid_to"]
        if start is not None and end is not None and end < start:
            ctx.report("RW705", f"valid_to {end} is before valid_from {start}", f"/spec/user_rights/{i}/valid_to")
        user_rights.append(UserRight(str(item["user"]), str(item["right"]), start, end, zone(timezone)))
    effective = _effective_roles(ctx, roles, pointers)
    # a task's holders (has_task facts, among a person's roles as task:<task>) hold the roles that list it
    for role in roles.values():
        for task in role.tasks:
            held = list(effective.get(TASK_ROLE + task, ()))
            held.extend(r for r in effective.get(role.id, (role.id,)) if r not in held)
            effective[TASK_ROLE + task] = tuple(held)
    invitations = spec.get("invitations") or {}
    return PermissionMatrix(
        name=doc.name, roles=roles, resources=resources, grants=tuple(grants), denies=tuple(denies),
        rights=rights, user_rights=tuple(user_rights), effective_roles=effective,
        invitation_valid_for=str(invitations.get("valid_for", "")), label=str(spec.get("label", doc.name)),
        timezone=timezone,
        context_kinds=_field_kinds(attributes_type(spec["context"], "what the host passes"))
        if isinstance(spec.get("context"), Mapping) else {},
    )


def kind_spec(plugin: str) -> KindSpec:
    """The KindSpec of PermissionMatrix (ids and references are checked by the core)."""
    from regelwerk.validation import load_shipped_schema

    role_ids = "/spec/roles/*/id"
    resource_ids = "/spec/resources/*/id"
    actions = "/spec/resources/*/actions/*"
    groups = "/spec/resources/*/field_groups/*/id"
    rights = "/spec/rights/*/id"
    refs = [
        RefDecl("/spec/roles/*/inherits", target=role_ids, what="role"),
        RefDecl("/spec/roles/*/rights", target=rights, what="right"),
        RefDecl("/spec/user_rights/*/right", target=rights, what="right"),
    ]
    for section in ("grants", "denies", "rights/*/grants"):
        base = f"/spec/{section}/*"
        refs += [
            RefDecl(f"{base}/resource", target=resource_ids, what="resource"),
            RefDecl(f"{base}/actions", target=actions, what="action", allow=("*",)),
            RefDecl(f"{base}/field_groups", target=groups, what="field group"),
        ]
        if section != "rights/*/grants":
            refs.append(RefDecl(f"{base}/roles", target=role_ids, what="role", allow=("*",)))
    refs.append(RefDecl("/spec/denies/*/except_roles", target=role_ids, what="role"))
    return KindSpec(
        kind=KIND, plugin=plugin, schema=load_shipped_schema("permissionmatrix.json"), compile=compile_matrix,
        ids=(IdDecl(role_ids, "role"), IdDecl(resource_ids, "resource"), IdDecl(rights, "right")),
        refs=tuple(refs),
        description="who may see and do what: roles, scopes, consent, explicit denies and per-user rights",
    )


def register(registry: Registry, plugin: str) -> None:
    """Register the kind, its scenario steps and its CLI commands (called from the core plugin)."""
    from regelwerk.permissions import cli, steps
    from regelwerk.registry import PlaceSpec

    registry.add_kind(kind_spec(plugin))
    scope = condition_scope({}, "/spec/grants/0/condition")
    for pattern in ("/spec/grants/*/condition", "/spec/denies/*/condition", "/spec/rights/*/grants/*/condition"):
        registry.add_place(PlaceSpec(KIND, pattern, plugin, scope, "a rule's condition: the actor, the resource "
                                     "(its 'fact' or 'fields'; else open) and the host's context",
                                     scope_of=condition_scope))
    steps.register(registry, plugin)
    cli.register(registry)
