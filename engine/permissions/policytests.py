"""Permission test tables in the shape Cerbos and OpenFGA use, as scenario steps.

``permission_table`` is one table of (principal, action, resource, relationship tuples, time) -> allow/deny
for one matrix, written like a Cerbos test suite (``principals``, ``resources`` with ``kind``/``id``/``attr``,
``tests`` with ``input`` combinations and ``expected`` results; every combination not listed as allowed is
expected to be denied) with OpenFGA-style relationship ``tuples`` (per table and per test) and a ``now``
per table or test (Cerbos ``options.now``). Each case is decided twice (the fast path and the explained
path must agree) and the deciding rule is recorded; ``permission_coverage`` then fails when a grant or
deny of the matrix decided no case (every rule and every deny covered)::

    - permission_table:
        matrix: step2hr
        principals: {eva: {roles: [medewerker]}, mark: {roles: [leidinggevende]}}
        resources: {note: {kind: personal_log, id: n1, attr: {author: eva}}}
        tuples: [{kind: reports_to, subject: eva, object: mark}]
        tests:
          - name: only the author
            input: {principals: [eva, mark], resources: [note], actions: [read, write]}
            expected:
              - {principal: eva, resource: note, actions: {read: allow, write: allow}}
              - {principal: mark, resource: note, actions: {read: deny}, by: {read: personal_log_only_author}}
    - permission_coverage: {matrix: step2hr}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regelwerk.actors import Actor
from regelwerk.permissions.facts import pick_matrix
from regelwerk.permissions.model import PermissionMatrix
from regelwerk.permissions.relations import MemoryRelationships, relations_from_facts
from regelwerk.registry import Registry, StepSpec
from regelwerk.scenarios import ScenarioContext, StepFailure, parse_moment

__all__ = ["register", "rule_ids"]

_ALLOW = {"allow", "EFFECT_ALLOW", True}
_DENY = {"deny", "EFFECT_DENY", False}
_COVERED = "permissions.coverage"


def rule_ids(matrix: PermissionMatrix) -> dict[str, str]:
    """Every rule of the matrix by id, with its effect: grants, denies and the grants of rights."""
    out = {r.id: "allow" for r in matrix.grants}
    out.update({r.id: "deny" for r in matrix.denies})
    for right in matrix.rights.values():
        out.update({r.id: "allow" for r in right.grants})
    return out


def _principal(alias: str, spec: Any, facts: Mapping[str, Any]) -> Actor:
    from regelwerk.actors import actor_from_facts

    if spec is None:
        return actor_from_facts(alias, facts)
    spec = dict(spec)
    attributes = dict(spec.get("attr") or {})
    return Actor(str(spec.get("id", alias)), tuple(str(r) for r in spec.get("roles") or ()), attributes)


def _relations(ctx: ScenarioContext, *tuple_lists: Any) -> MemoryRelationships:
    items = [*list(ctx.facts.get("relations") or [])]
    for extra in tuple_lists:
        items.extend(extra or [])
    try:
        return relations_from_facts({"relations": items}, getattr(ctx.compiled, "timezone", None))
    except ValueError as exc:
        raise StepFailure(f"tuples: {exc}") from None


def _effect(value: Any, where: str) -> bool:
    if value in _ALLOW:
        return True
    if value in _DENY:
        return False
    raise StepFailure(f"{where}: expected allow or deny (or EFFECT_ALLOW/EFFECT_DENY), got {value!r}")


def step_permission_table(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Decide every (principal, resource, action) combination of every test; compare with the expectations."""
    try:
        matrix: PermissionMatrix = pick_matrix(ctx.compiled, args.get("matrix"))
    except Exception as exc:  # noqa: BLE001 - a usage problem of the step: reported as its failure
        raise StepFailure(str(exc)) from None
    principals = {alias: _principal(alias, spec, ctx.facts) for alias, spec in (args.get("principals") or {}).items()}
    resources: dict[str, tuple[str, dict[str, Any]]] = {}
    for alias, spec in (args.get("resources") or {}).items():
        data = dict(spec.get("attr") or {})
        if spec.get("id") is not None:
            data.setdefault("id", spec["id"])
        resources[alias] = (str(spec["kind"]), data)
    table_now = parse_moment(args["now"]) if "now" in args else ctx.now
    covered: dict[str, set[str]] = ctx.services.setdefault(_COVERED, {})
    seen = covered.setdefault(matrix.name, set())
    problems: list[str] = []
    cases = 0
    for number, test in enumerate(args["tests"], 1):
        name = str(test.get("name", f"test {number}"))
        now = parse_moment(test["now"]) if "now" in test else table_now
        rel = _relations(ctx, args.get("tuples"), test.get("tuples"))
        context = {**dict(ctx.facts.get("context") or {}), **dict(args.get("context") or {}),
                   **dict(test.get("context") or {})}
        given = test["input"]
        wanted: dict[tuple[str, str, str], bool] = {}
        wanted_by: dict[tuple[str, str, str], str] = {}
        for item in test.get("expected") or ():
            for action, effect in dict(item["actions"]).items():
                key = (str(item["principal"]), str(item["resource"]), str(action))
                wanted[key] = _effect(effect, f"{name}: {key}")
            for action, rule in dict(item.get("by") or {}).items():
                wanted_by[(str(item["principal"]), str(item["resource"]), str(action))] = str(rule)
        for key in wanted:
            if key[0] not in given["principals"] or key[1] not in given["resources"] or \
                    key[2] not in given["actions"]:
                problems.append(f"{name}: expectation {key} is not part of the input")
        for p_alias in given["principals"]:
            if p_alias not in principals:
                principals[p_alias] = _principal(p_alias, None, ctx.facts)
            actor = principals[p_alias]
            for r_alias in given["resources"]:
                if r_alias not in resources:
                    raise StepFailure(f"{name}: resource {r_alias!r} is not in this table's resources")
                resource_type, data = resources[r_alias]
                for action in given["actions"]:
                    cases += 1
                    key = (p_alias, r_alias, str(action))
                    fast = matrix.decide(actor, str(action), resource_type, data, rel, now, context,
                                         field_group=test.get("field_group"))
                    full = matrix.decide(actor, str(action), resource_type, data, rel, now, context,
                                         field_group=test.get("field_group"), explain=True)
                    seen.add(full.by)
                    where = f"{name}: {p_alias} {action} {r_alias}"
                    if fast.allowed != full.allowed or fast.by != full.by:
                        problems.append(f"{where}: the fast and explained paths differ ({fast.by} vs {full.by})")
                    expected = wanted.get(key, False)  # Cerbos: what is not listed as allowed is denied
                    if full.allowed != expected:
                        why = full.explain.get("reason") or ""
                        problems.append(f"{where}: expected {'allow' if expected else 'deny'}, got "
                                        f"{'allow' if full.allowed else 'deny'} by {full.by}"
                                        + (f" ({why})" if why else ""))
                    if key in wanted_by and full.by != wanted_by[key]:
                        problems.append(f"{where}: expected the decision by {wanted_by[key]!r}, got {full.by!r}")
    if problems:
        raise StepFailure(f"{len(problems)} of {cases} cases wrong: " + "; ".join(problems))


def step_permission_coverage(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Every grant and deny of the matrix (and deny by default) decided at least one case of the tables."""
    matrix: PermissionMatrix = pick_matrix(ctx.compiled, args.get("matrix"))
    seen = ctx.services.get(_COVERED, {}).get(matrix.name, set())
    rules = rule_ids(matrix)
    missing = sorted(r for r in rules if r not in seen and r not in set(args.get("except") or ()))
    if "default" not in seen:
        missing.append("default (deny by default)")
    if missing:
        raise StepFailure(f"{len(missing)} rule(s) of {matrix.name} decided no case of the permission tables: "
                          + ", ".join(f"{r} ({rules.get(r, 'deny')})" for r in missing))


def register(registry: Registry, plugin: str) -> None:
    """Add ``permission_table`` and ``permission_coverage``."""
    name = {"type": "string", "minLength": 1}
    names = {"type": "array", "minItems": 1, "items": name}
    effect = {"enum": ["allow", "deny", "EFFECT_ALLOW", "EFFECT_DENY"]}
    tuples = {"type": "array", "items": {"type": "object"},
              "description": "relationship facts {kind, subject, object, from, until} (OpenFGA tuples)"}
    moment = {"$ref": "common.json#/$defs/dateTime"}
    registry.add_step(StepSpec("permission_table", plugin, step_permission_table, {
        "type": "object", "required": ["tests"], "additionalProperties": False,
        "properties": {
            "matrix": name, "now": moment, "tuples": tuples, "context": {"type": "object"},
            "principals": {"type": "object", "additionalProperties": {
                "type": "object", "additionalProperties": False,
                "properties": {"id": name, "roles": {"type": "array", "items": name}, "attr": {"type": "object"}}}},
            "resources": {"type": "object", "additionalProperties": {
                "type": "object", "required": ["kind"], "additionalProperties": False,
                "properties": {"kind": name, "id": name, "attr": {"type": "object"}}}},
            "tests": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["input"], "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"}, "description": {"type": "string"}, "now": moment,
                    "tuples": tuples, "context": {"type": "object"}, "field_group": name,
                    "input": {"type": "object", "required": ["principals", "resources", "actions"],
                              "additionalProperties": False,
                              "properties": {"principals": names, "resources": names, "actions": names}},
                    "expected": {"type": "array", "items": {
                        "type": "object", "required": ["principal", "resource", "actions"],
                        "additionalProperties": False,
                        "properties": {"principal": name, "resource": name,
                                       "actions": {"type": "object", "additionalProperties": effect},
                                       "by": {"type": "object", "additionalProperties": name}}}},
                }}},
        },
    }, "a permission test table (Cerbos/OpenFGA shape): every combination decided; unlisted ones must deny"))
    registry.add_step(StepSpec("permission_coverage", plugin, step_permission_coverage, {
        "type": "object", "additionalProperties": False,
        "properties": {"matrix": name, "except": {"type": "array", "items": name}},
    }, "every grant and deny of the matrix decided at least one case of this scenario's permission tables"))
