"""The compiled permission matrix and its decision function.

Precedence (see docs/kinds/permissionmatrix.md):

1. Deny by default: nothing is allowed unless a grant allows it.
2. An explicit deny that applies (role, resource, action, scope, condition, ``except`` clauses) beats every
   allow, including per-user rights: it is checked first and decides.
3. Otherwise the first allow that applies decides, in document order: role grants, then the grants of
   the actor's rights (role rights, ``has_right`` facts, ``user_rights`` of the matrix).
4. No applicable allow: denied, and the explanation lists why each candidate did not apply.

A decision is computed from a per-(roles, rights, resource type, action, field group) plan that is built
once and cached; the fast path allocates nothing and returns a shared :class:`Decision` per rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from regelwerk.actors import Actor
from regelwerk.conditions import Condition, field_paths
from regelwerk.permissions.relations import NO_EXTRAS, TASK_ROLE, MemoryRelationships, Relationships, local_date
from regelwerk.permissions.relations import zone as relation_zone
from regelwerk.values import DaysTime, YearsMonths, parse_typed

__all__ = [
    "SCOPES",
    "Decision",
    "PermissionMatrix",
    "ResourceType",
    "Right",
    "Role",
    "Rule",
    "UserRight",
]

#: Scopes relating the actor to the resource (see the module docs of regelwerk.permissions).
SCOPES = ("own", "authored", "direct_reports", "all_reports", "department", "organisation", "consent",
          "represented")

#: How far ``represented`` follows ``member_of`` upwards (branch -> region -> organisation ...).
MAX_UNIT_DEPTH = 16

_EMPTY_RELATIONS = MemoryRelationships()


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one permission question: allowed or not, and a JSON-able explanation."""

    allowed: bool
    explain: Mapping[str, Any]

    @property
    def by(self) -> str:
        """The id of the deciding grant or deny (``default`` when nothing applied)."""
        return str(self.explain.get("by", "default"))

    def to_dict(self) -> dict[str, Any]:
        """``{"allowed": ..., "explain": ...}`` as printed by ``regelwerk can``."""
        return {"allowed": self.allowed, "explain": dict(self.explain)}


@dataclass(frozen=True, slots=True)
class Role:
    """A permission level; ``inherits`` lists roles whose grants it also gets; ``rights`` bundles rights; ``tasks``
    are tasks (``has_task`` facts: praktijkopleider, BHV-er) whose holders hold this role."""

    id: str
    label: str
    inherits: tuple[str, ...] = ()
    rights: tuple[str, ...] = ()
    description: str = ""
    tasks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResourceType:
    """A kind of resource: its actions (``read_actions`` are the reading ones), field groups and fields."""

    id: str
    label: str
    actions: tuple[str, ...]
    read_actions: tuple[str, ...]
    subject_field: str = "subject"
    author_field: str = "author"
    department_field: str = "department"
    field_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    action_labels: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    #: the declared fields' kinds (``fields:`` or the ``fact:`` type): name -> (kind, item kind of a list, the
    #: ``enum`` of a scalar or ()); a condition's field whose value is not of its kind, or not one of its enum's
    #: values, makes the decision a deny (:func:`malformed_field`)
    field_kinds: Mapping[str, tuple[str, str, tuple[Any, ...]]] = field(default_factory=dict)

    def is_write(self, action: str) -> bool:
        """True for actions that change something (everything that is not a read action)."""
        return action not in self.read_actions


@dataclass(frozen=True, slots=True)
class Rule:
    """A grant (effect ``allow``) or an explicit deny (effect ``deny``)."""

    id: str
    effect: str
    resource: str
    actions: tuple[str, ...]
    roles: tuple[str, ...] = ()
    scope: str = "organisation"
    of: str = ""
    condition: Condition | None = None
    field_groups: tuple[str, ...] = ()
    except_scope: str = ""
    except_roles: tuple[str, ...] = ()
    label: str = ""
    reason: str = ""
    right: str = ""

    def describe(self) -> dict[str, Any]:
        """Plain data for explanations and rendering."""
        out: dict[str, Any] = {"rule": self.id, "effect": self.effect, "scope": self.scope}
        if self.of:
            out["of"] = self.of
        if self.right:
            out["right"] = self.right
        if self.label:
            out["label"] = self.label
        if self.reason:
            out["reason"] = self.reason
        if self.condition is not None:
            out["condition"] = self.condition.text
        if self.except_scope:
            out["except"] = self.except_scope
        if self.except_roles:
            out["except_roles"] = list(self.except_roles)
        if self.field_groups:
            out["field_groups"] = list(self.field_groups)
        return out


@dataclass(frozen=True, slots=True)
class Right:
    """An extra right that can be given to individual users (or bundled into roles)."""

    id: str
    label: str
    grants: tuple[Rule, ...]
    description: str = ""


@dataclass(frozen=True, slots=True)
class UserRight:
    """A right given to one user in the matrix itself, optionally between two dates (inclusive, in ``zone``)."""

    user: str
    right: str
    valid_from: date | None = None
    valid_to: date | None = None
    zone: tzinfo = field(default_factory=lambda: relation_zone(None), compare=False, repr=False)

    def active(self, now: datetime) -> bool:
        """True when the right holds at ``now`` (the dates are days in the organisation's time zone)."""
        today = local_date(now, self.zone)
        return (self.valid_from is None or self.valid_from <= today) and (
            self.valid_to is None or today <= self.valid_to)


# A test: (actor, actor id, resource, relations, now, context) -> bool. One per rule and plan, built once.
Test = Callable[[Actor, str, Mapping[str, Any], Any, datetime, Any], bool]

_NO_RESOURCE: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class _Step:
    rule: Rule
    scope_test: Test | None
    except_test: Test | None
    decision: Decision
    person_field: str
    except_field: str
    test: Test


@dataclass(frozen=True, slots=True)
class _Plan:
    steps: tuple[_StepRow, ...]  # denies first, then allows, in document order (adjacent pairs fused)
    denies: tuple[_Step, ...]
    allows: tuple[_Step, ...]
    default: Decision
    resource: ResourceType | None
    roles: tuple[str, ...]
    rights: tuple[str, ...]
    #: (field, kind, item kind, enum) of the resource's declared fields that the steps' conditions read
    checks: tuple[tuple[str, str, str, tuple[Any, ...]], ...] = ()
    #: the same for the matrix's declared ``context`` fields the conditions read (what the host passes)
    context_checks: tuple[tuple[str, str, str, tuple[Any, ...]], ...] = ()
    #: either is there: the decision checks them before any step
    checked: bool = False


_KIND_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "list": (list, tuple), "object": (Mapping,), "date": (str, date),
    "datetime": (str, datetime), "time": (str, time), "duration": (str, timedelta)}


#: what the ISO text of a date, datetime, time or duration field must parse to (parse_typed, as the conditions'
#: comparisons read it): a text they cannot read compares as unknown, so a deny on it never applied
_TEXT_TYPES: dict[str, tuple[type, ...]] = {
    "date": (date,), "datetime": (date,), "time": (time,), "duration": (YearsMonths, DaysTime)}


def _fits(kind: str, value: Any) -> bool:
    if kind == "number":  # NaN (a missing number from pandas) is none: every bound test is unknown for it
        return type(value) is int or (type(value) is float and not math.isnan(value))
    if kind == "integer":  # 3.0 is what some JSON writers make of 3; 2.5 is no integer
        return type(value) is int or (type(value) is float and value.is_integer())
    if kind == "boolean":
        return type(value) is bool
    types = _KIND_TYPES.get(kind)
    if types is None:
        return True
    if type(value) is str and kind in _TEXT_TYPES:
        return isinstance(parse_typed(value), _TEXT_TYPES[kind])
    return isinstance(value, types)


def malformed_field(checks: Iterable[tuple[str, str, str, tuple[Any, ...]]],
                    resource: Mapping[str, Any], root: str = "resource") -> str | None:
    """The first checked field of ``resource`` whose value is not of its declared kind, as a text (None: all fit).

    A missing or null value fits (conditions treat it as unknown, which never grants). Why it matters: a list
    field sent as one text would turn ``contains`` into a substring test (``"managers_manager"`` contains
    ``"manager"``), so a value of another type than declared never reaches the conditions. Nor does a value outside
    a declared ``enum``: ``"Confidential"`` beside ``enum: [public, confidential]`` escaped a deny on
    ``classification eq confidential``."""
    for name, kind, items, allowed in checks:
        value = resource.get(name) if "." not in name else _dotted(resource, name)
        if value is None:
            continue
        if not _fits(kind, value):
            return f"{root}.{name} is {type(value).__name__} {value!r:.60}, declared {kind}"
        if allowed and value not in allowed:
            return f"{root}.{name} is {value!r:.60}, not one of its declared values"
        if items and kind == "list":
            for item in value:
                if not _fits(items, item):
                    return f"{root}.{name} has an item {item!r:.60}, declared a list of {items}"
    return None


def _dotted(resource: Mapping[str, Any], name: str) -> Any:
    """A declared object's declared property (``meta.visible_to``); None when an object on the way is missing or no
    mapping (that object's own check, which comes first in the sorted checks, reports a value of another kind)."""
    value: Any = resource
    for part in name.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def held(actor_roles: tuple[str, ...], personal_roles: tuple[str, ...]) -> tuple[str, ...]:
    """The roles a decision expands: the actor's own (the host's) and the person's stored ones (:meth:`Relationships.
    personal`). ``task:<t>`` is how a stored ``has_task`` fact appears among the latter only: an actor role of that
    form (a host's role name, ``/v1/can``'s ``actor.roles``) is no task and is dropped, or anyone could hold a
    task-held role by naming it. Called when a plan is built or explained (and by a rule with ``except_roles``,
    which expands the roles per decision anyway)."""
    if any(r.startswith(TASK_ROLE) for r in actor_roles):
        actor_roles = tuple(r for r in actor_roles if not r.startswith(TASK_ROLE))
    return actor_roles + personal_roles


def plan_problem(plan: _Plan, resource: Mapping[str, Any], context: Mapping[str, Any] | None) -> str | None:
    """The first declared resource or context field a plan's conditions read whose value does not fit (None: all
    fit); asked only for a plan that is ``checked``."""
    problem = malformed_field(plan.checks, resource) if plan.checks else None
    if problem is None and plan.context_checks and context:
        problem = malformed_field(plan.context_checks, context, "context")
    return problem


def _malformed(plan: _Plan, problem: str) -> Decision:
    return Decision(False, {**plan.default.explain, "by": "malformed", "candidates": [],
                            "reason": f"{problem} (deny: a value of another type than declared never grants)"})


def _person(scope: str, of: str, resource_type: ResourceType) -> str:
    if of:
        return of
    if scope == "represented":  # the field naming the organisation unit, not a person
        return resource_type.department_field
    return resource_type.author_field if scope == "authored" else resource_type.subject_field


# Step kinds the decision loop evaluates inline (no function call) when a rule is nothing but its scope.
_GENERIC, _ALWAYS, _OWN, _AUTHORED, _LINE, _SELF_OR_LINE = 0, 1, 2, 3, 4, 5

# (kind, person field, test, decision, second decision): ``second`` is the fused all_reports step's decision
# for _SELF_OR_LINE and the step's own decision otherwise.
_StepRow = tuple[int, str, "Test", "Decision", "Decision"]


def _always(actor: Actor, aid: str, res: Mapping[str, Any], rel: Any, now: datetime, ctx: Any) -> bool:
    return True


def _scope_test(scope: str, field_name: str, resource_type: ResourceType) -> Test | None:
    """A small function deciding a scope for the person in ``field_name``; None for ``organisation``."""
    department_field = resource_type.department_field
    if scope == "organisation":
        return None
    if scope == "own":
        def own(actor: Actor, aid: str, res: Mapping[str, Any], rel: Any, now: datetime, ctx: Any) -> bool:
            return bool(res.get(field_name) == aid)
        return own
    if scope == "authored":
        def authored(actor: Actor, aid: str, res: Mapping[str, Any], rel: Any, now: datetime, ctx: Any) -> bool:
            person = res.get(field_name)
            if person is not None:
                return bool(person == aid)
            rid = res.get("id")
            return rid is not None and bool(rel.authored(aid, str(rid)))
        return authored
    if scope == "direct_reports":
        def direct(actor: Actor, aid: str, res: Mapping[str, Any], rel: Any, now: datetime, ctx: Any) -> bool:
            person = res.get(field_name)
            return isinstance(person, str) and aid in rel.managers_of(person)
        return direct
    if scope == "all_reports":
        def line(actor: Actor, aid: str, res: Mapping[str, Any], rel: Any, now: datetime, ctx: Any) -> bool:
            person = res.get(field_name)
            return isinstance(person, str) and aid in rel.ancestors(person)
        return line
    if scope == "department":
        def department(actor: Actor, aid: str, res: Mapping[str, Any], rel: Any, now: datetime, ctx: Any) -> bool:
            mine = rel.groups_of(aid, now)
            if not mine:
                return False
            dept = res.get(department_field)
            if dept is not None:  # an id; anything else (a list, a mapping) names no group: no scope
                return isinstance(dept, str) and dept in mine
            person = res.get(field_name)
            return isinstance(person, str) and not mine.isdisjoint(rel.groups_of(person, now))
        return department
    if scope == "consent":
        def consent(actor: Actor, aid: str, res: Mapping[str, Any], rel: Any, now: datetime, ctx: Any) -> bool:
            person = res.get(field_name)
            if not isinstance(person, str):
                return False
            return rel.consent_link(person, (aid, *sorted(rel.represented_by(aid, now))), now) is not None
        return consent
    if scope == "represented":
        def represented(actor: Actor, aid: str, res: Mapping[str, Any], rel: Any, now: datetime, ctx: Any) -> bool:
            unit = res.get(field_name)
            if not isinstance(unit, str) or not unit:
                return False
            mine = rel.represented_by(aid, now)
            return bool(mine) and _within(unit, mine, rel, now)
        return represented
    raise ValueError(f"unknown scope {scope!r}")


def _within(unit: str, organisations: frozenset[str], rel: Any, now: datetime) -> bool:
    """True when ``unit`` is one of ``organisations`` or part of one through active ``member_of`` relations."""
    seen = {unit}
    frontier = [unit]
    for _ in range(MAX_UNIT_DEPTH):
        if not organisations.isdisjoint(frontier):
            return True
        frontier = [g for u in frontier for g in rel.groups_of(u, now) if g not in seen]
        if not frontier:
            return False
        seen.update(frontier)
    return False


def _fuse(rows: list[_StepRow]) -> tuple[_StepRow, ...]:
    """Peephole: an ``authored`` allow directly followed by an ``all_reports`` allow on the same person field
    becomes one _SELF_OR_LINE step (one field lookup, one loop turn). Both are allows and adjacent, so the
    first that applies still decides, with its own decision; denies are never fused."""
    out: list[_StepRow] = []
    i = 0
    while i < len(rows):
        kind, field_name, test, decision, _ = rows[i]
        if (kind == _AUTHORED and i + 1 < len(rows) and rows[i + 1][0] == _LINE
                and rows[i + 1][1] == field_name and decision.allowed and rows[i + 1][3].allowed):
            out.append((_SELF_OR_LINE, field_name, test, decision, rows[i + 1][3]))
            i += 2
            continue
        out.append(rows[i])
        i += 1
    return tuple(out)


@dataclass(frozen=True, slots=True)
class PermissionMatrix:
    """A compiled ``PermissionMatrix`` document: ask it with :meth:`decide`."""

    name: str
    roles: Mapping[str, Role]
    resources: Mapping[str, ResourceType]
    grants: tuple[Rule, ...]
    denies: tuple[Rule, ...]
    rights: Mapping[str, Right]
    user_rights: tuple[UserRight, ...] = ()
    effective_roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    invitation_valid_for: str = ""
    label: str = ""
    #: The organisation's IANA time zone (the bundle's): user rights' dates and invitation days count in it.
    timezone: str = "Europe/Amsterdam"
    #: the declared ``context`` fields' kinds, as :attr:`ResourceType.field_kinds`: a value the host passes of
    #: another kind (or outside an enum) is a deny ``by: malformed``, as a resource field's is
    context_kinds: Mapping[str, tuple[str, str, tuple[Any, ...]]] = field(default_factory=dict)
    _plans: dict[tuple[Any, ...], _Plan] = field(default_factory=dict, compare=False, repr=False, hash=False)
    _deciders: dict[tuple[Any, ...], Callable[..., Decision]] = field(default_factory=dict, compare=False,
                                                                       repr=False, hash=False)

    # --- the question ------------------------------------------------------------------------

    def decide(self, actor: Actor | str | Mapping[str, Any], action: str, resource_type: str,
               resource: Mapping[str, Any] | None, relations: Relationships | None, now: datetime,
               context: Mapping[str, Any] | None = None, *, field_group: str | None = None,
               explain: bool = False) -> Decision:
        """May ``actor`` do ``action`` on ``resource`` (of ``resource_type``) at ``now``?

        ``resource`` is the resource's data (its subject/author/department fields and whatever
        conditions read); ``relations`` the relationship facts; ``context`` extra data for conditions
        (``context.*``); ``field_group`` asks about one part of the resource. ``explain=True`` returns a
        full explanation listing every rule considered.
        """
        if not explain:
            key0 = (resource_type, action, field_group)
            fast = self._deciders.get(key0)
            if fast is None:
                fast = self._deciders[key0] = self.decider(resource_type, action, field_group)
            return fast(actor, resource, relations, now, context)
        if type(actor) is not Actor:
            actor = Actor.of(actor)
        rel: Any = relations if relations is not None else _EMPTY_RELATIONS
        aid = actor.id
        extra = rel.personal(aid, now)
        if self.user_rights:
            mine = tuple(u.right for u in self.user_rights if u.user == aid and u.active(now))
            if mine:
                extra = (extra[0], extra[1] + mine)
        if field_group is None and not (extra[0] or extra[1]):
            key: tuple[Any, ...] = (actor.roles, resource_type, action)
        else:
            key = (actor.roles, extra, resource_type, action, field_group)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(held(actor.roles, extra[0]), extra[1], resource_type, action, field_group)
            self._plans[key] = plan
        res = resource if resource is not None else _NO_RESOURCE
        return self._explained(plan, actor, action, resource_type, res, rel, now, context, field_group)

    def bound(self, resource_type: str, action: str, field_group: str | None = None) -> Callable[..., Decision]:
        """The matrix's own cached :meth:`decider` for one question (built once, shared by every caller)."""
        key = (resource_type, action, field_group)
        fast = self._deciders.get(key)
        if fast is None:
            fast = self._deciders[key] = self.decider(resource_type, action, field_group)
        return fast

    def decider(self, resource_type: str, action: str, field_group: str | None = None
                ) -> Callable[..., Decision]:
        """A compiled decision function for one question, ``fn(actor, resource, relations, now, context=None)``.

        Same answers as :meth:`decide` (without ``explain``), with the resource type and action bound in
        advance: the per-call work is the actor's per-user facts, one plan lookup by role set and the
        plan's steps. Hosts asking one question many times (lists, API filters) use this.
        """
        plans: dict[Any, _Plan] = {}
        build = self._plan
        user_rights = self.user_rights

        def decide_fast(actor: Actor, resource: Mapping[str, Any] | None, relations: Any, now: datetime,
                        context: Mapping[str, Any] | None = None) -> Decision:
            if type(actor) is not Actor:
                actor = Actor.of(actor)
            rel = relations if relations is not None else _EMPTY_RELATIONS
            aid = actor.id
            extra = rel.personal(aid, now) if aid in rel.personal_holders else NO_EXTRAS
            if user_rights:
                mine = tuple(u.right for u in user_rights if u.user == aid and u.active(now))
                if mine:
                    extra = (extra[0], extra[1] + mine)
            key = actor.roles if extra is NO_EXTRAS else (actor.roles, extra)
            plan = plans.get(key)
            if plan is None:
                plan = plans[key] = build(held(actor.roles, extra[0]), extra[1], resource_type, action, field_group)
            # The one place the plan's steps are walked (denies first, then allows; the first that applies
            # decides). Inlined with literal kinds: this loop is the hot path of every decision.
            res = resource if resource is not None else _NO_RESOURCE
            if plan.checked:
                problem = plan_problem(plan, res, context)
                if problem is not None:
                    return _malformed(plan, problem)
            get = res.get
            for kind, field_name, test, decision, second in plan.steps:
                if kind == 2:  # _OWN
                    if get(field_name) == aid:
                        return decision
                elif kind == 5:  # _SELF_OR_LINE: an authored step fused with the all_reports step after it
                    person = get(field_name)
                    if person is not None:
                        if person == aid:
                            return decision
                        if type(person) is str and aid in rel.ancestors(person):
                            return second
                    elif test(actor, aid, res, rel, now, context):
                        return decision
                elif kind == 4:  # _LINE
                    person = get(field_name)
                    if type(person) is str and aid in rel.ancestors(person):
                        return decision
                elif kind == 3:  # _AUTHORED
                    person = get(field_name)
                    if person is not None:
                        if person == aid:
                            return decision
                    elif test(actor, aid, res, rel, now, context):
                        return decision
                elif kind == 1 or test(actor, aid, res, rel, now, context):  # 1: _ALWAYS
                    return decision
            return plan.default

        return decide_fast

    # --- plans ---------------------------------------------------------------------------------

    def _expand(self, roles: Iterable[str]) -> tuple[str, ...]:
        out: list[str] = []
        for role in roles:
            for r in self.effective_roles.get(role, (role,) if role in self.roles else ()):
                if r not in out:
                    out.append(r)
        return tuple(out)

    def _plan(self, roles: tuple[str, ...], rights: tuple[str, ...], resource_type: str, action: str,
              field_group: str | None) -> _Plan:
        effective = self._expand(roles)
        all_rights: list[str] = []
        for role in effective:
            for right in self.roles[role].rights:
                if right not in all_rights:
                    all_rights.append(right)
        for right in rights:
            if right in self.rights and right not in all_rights:
                all_rights.append(right)
        base = {"actor_roles": list(effective), "rights": list(all_rights), "resource": resource_type,
                "action": action}
        if field_group is not None:
            base["field_group"] = field_group
        rt = self.resources.get(resource_type)
        if rt is None:
            default = Decision(False, {**base, "decision": "deny", "by": "default",
                                       "reason": f"unknown resource type {resource_type!r} (deny by default); "
                                                 f"known: {', '.join(sorted(self.resources))}"})
            return _Plan((), (), (), default, None, effective, tuple(all_rights))
        if action not in rt.actions:
            default = Decision(False, {**base, "decision": "deny", "by": "default",
                                       "reason": f"{resource_type} has no action {action!r} (deny by default); "
                                                 f"known: {', '.join(rt.actions)}"})
            return _Plan((), (), (), default, rt, effective, tuple(all_rights))
        if field_group is not None and field_group not in rt.field_groups:
            default = Decision(False, {**base, "decision": "deny", "by": "default",
                                       "reason": f"{resource_type} has no field group {field_group!r}"})
            return _Plan((), (), (), default, rt, effective, tuple(all_rights))
        base["kind"] = "read" if action in rt.read_actions else "write"

        def matches(rule: Rule, via_right: bool) -> bool:
            if rule.resource != resource_type or (action not in rule.actions and "*" not in rule.actions):
                return False
            if rule.effect == "allow" and rule.field_groups and (field_group is None
                                                                 or field_group not in rule.field_groups):
                return False
            if rule.effect == "deny" and rule.field_groups and field_group is not None \
                    and field_group not in rule.field_groups:
                return False
            if via_right:
                return True
            return "*" in rule.roles or not set(rule.roles).isdisjoint(effective)

        def step(rule: Rule) -> _Step:
            person_field = _person(rule.scope, rule.of, rt)
            except_field = _person(rule.except_scope, "", rt)
            scope_test = _scope_test(rule.scope, person_field, rt)
            except_test = _scope_test(rule.except_scope, except_field, rt) if rule.except_scope else None
            info = {**base, "decision": rule.effect, "by": rule.id, **rule.describe()}
            return _Step(rule, scope_test, except_test, Decision(rule.effect == "allow", info), person_field,
                         except_field, self._compose(rule, scope_test, except_test))

        denies = tuple(step(r) for r in self.denies if matches(r, False))
        allows = [step(r) for r in self.grants if matches(r, False)]
        for right in all_rights:
            allows.extend(step(r) for r in self.rights[right].grants if matches(r, True))
        if allows:
            reason = "no grant applied (deny by default)"
        else:
            who = ", ".join(effective) or "no roles"
            reason = f"no grant for {who} on {resource_type}.{action}" + (
                f" (field group {field_group})" if field_group else "") + " (deny by default)"
        default = Decision(False, {**base, "decision": "deny", "by": "default", "reason": reason,
                                   "candidates": [s.rule.id for s in allows]})
        steps = _fuse([(self._kind(s), s.person_field, s.test, s.decision, s.decision)
                       for s in denies + tuple(allows)])
        read: set[str] = set()
        read_context: set[str] = set()
        for s in denies + tuple(allows):
            if s.rule.condition is not None:
                for path in field_paths(s.rule.condition.model):
                    if len(path) > 1 and path[0] in ("resource", "context"):
                        # the field and, into declared objects, each of its parents (meta, meta.visible_to)
                        names = read if path[0] == "resource" else read_context
                        names.update(".".join(path[1:i]) for i in range(2, len(path) + 1))
        checks = tuple((name, *rt.field_kinds[name]) for name in sorted(read) if name in rt.field_kinds)
        kinds = self.context_kinds
        context_checks = tuple((name, *kinds[name]) for name in sorted(read_context) if name in kinds)
        return _Plan(steps, denies, tuple(allows), default, rt, effective, tuple(all_rights), checks, context_checks,
                     bool(checks or context_checks))

    # --- explanations --------------------------------------------------------------------------

    @staticmethod
    def _kind(step: _Step) -> int:
        """How the decision loop evaluates a step: inline for bare own/authored/all_reports scopes."""
        if step.test is not step.scope_test and step.test is not _always:
            return _GENERIC
        return {"organisation": _ALWAYS, "own": _OWN, "authored": _AUTHORED,
                "all_reports": _LINE}.get(step.rule.scope, _GENERIC)

    def _compose(self, rule: Rule, scope_test: Test | None, except_test: Test | None) -> Test:
        """One test per rule: excepted roles, scope, except-scope, condition (only the parts it has)."""
        condition = rule.condition
        except_roles = frozenset(rule.except_roles)
        if not except_roles and except_test is None and condition is None:
            return scope_test or _always
        expand = self._expand

        def test(actor: Actor, aid: str, res: Mapping[str, Any], rel: Any, now: datetime, ctx: Any) -> bool:
            if except_roles and not except_roles.isdisjoint(expand(held(actor.roles, rel.personal(aid, now)[0]))):
                return False
            if scope_test is not None and not scope_test(actor, aid, res, rel, now, ctx):
                return False
            if except_test is not None and except_test(actor, aid, res, rel, now, ctx):
                return False
            if condition is not None:
                return condition({"actor": actor.to_dict(), "resource": res, "context": ctx or {}}, now)
            return True

        return test

    def _why(self, step: _Step, actor: Actor, res: Mapping[str, Any], rel: Any, now: datetime,
             context: Mapping[str, Any] | None) -> tuple[bool, str]:
        rule = step.rule
        aid = actor.id
        if rule.except_roles:
            holding = set(self._expand(held(actor.roles, rel.personal(aid, now)[0]))) & set(rule.except_roles)
            if holding:
                return False, f"actor holds excepted role(s) {', '.join(sorted(holding))}"
        parts: list[str] = []
        if step.scope_test is not None:
            person = res.get(step.person_field)
            ok = step.scope_test(actor, aid, res, rel, now, context)
            parts.append(self._scope_text(rule.scope, step.person_field, person, aid, ok, rel, now))
            if not ok:
                return False, "; ".join(parts)
        else:
            parts.append("scope organisation holds")
        if step.except_test is not None:
            person = res.get(step.except_field)
            if step.except_test(actor, aid, res, rel, now, context):
                return False, f"except {rule.except_scope}: it holds ({step.except_field} = {person!r})"
            parts.append(f"except {rule.except_scope}: it does not hold ({step.except_field} = {person!r})")
        if rule.condition is not None:
            scope = {"actor": actor.to_dict(), "resource": res, "context": context or {}}
            ok, reasons = rule.condition.explain(scope, now)
            parts.append("condition " + ("holds: " if ok else "fails: ") + "; ".join(reasons))
            if not ok:
                return False, "; ".join(parts)
        return True, "; ".join(parts)

    @staticmethod
    def _scope_text(scope: str, person_field: str, person: Any, aid: str, ok: bool, rel: Any,
                    now: datetime) -> str:
        verdict = "holds" if ok else "does not hold"
        if person is None:
            return f"scope {scope} {verdict}: the resource has no {person_field!r}"
        if not isinstance(person, str):
            return f"scope {scope} {verdict}: {person_field} = {person!r} is not an id"
        text = f"scope {scope} {verdict} ({person_field} = {person!r}, actor = {aid!r}"
        if scope == "direct_reports":
            text += f", managers of {person}: {sorted(rel.managers_of(person))}"
        elif scope == "all_reports":
            text += f", above {person}: {sorted(rel.ancestors(person))}"
        elif scope == "represented":
            text += f", represents: {sorted(rel.represented_by(aid, now))}"
        elif scope == "consent":
            targets = [aid, *sorted(rel.represented_by(aid, now))]
            link = rel.consent_link(person, targets, now)
            if link is not None:
                text += f", consent link #{link.id} {link.subject} -> {link.object}"
            else:
                past = [r for t in targets for r in rel.consent_links(person, t)]
                text += ", no active consent link" + (
                    ": " + "; ".join(f"#{r.id} to {r.object} {r.why_inactive(now)}" for r in past) if past else "")
        return text + ")"

    def _explained(self, plan: _Plan, actor: Actor, action: str, resource_type: str, res: Mapping[str, Any],
                   rel: Any, now: datetime, context: Mapping[str, Any] | None, field_group: str | None) -> Decision:
        considered: list[dict[str, Any]] = []
        decided: _Step | None = None
        problem = plan_problem(plan, res, context) if plan.checked else None
        for step in () if problem is not None else plan.denies + plan.allows:
            ok, why = self._why(step, actor, res, rel, now, context)
            considered.append({"rule": step.rule.id, "effect": step.rule.effect, "applies": ok, "why": why})
            if ok:
                decided = step
                break
        if problem is not None:
            info = dict(_malformed(plan, problem).explain)
        elif decided is None:
            info = dict(plan.default.explain)
            if plan.allows:
                info["reason"] = "no grant applied (deny by default): " + " | ".join(
                    f"{c['rule']}: {c['why']}" for c in considered if c["effect"] == "allow")
        else:
            info = dict(decided.decision.explain)
        info["actor"] = actor.id
        if res.get("id") is not None:
            info["resource_id"] = res.get("id")
        info["at"] = now.isoformat()
        info["considered"] = considered
        return Decision(decided is not None and decided.rule.effect == "allow", info)

    # --- helpers for hosts ---------------------------------------------------------------------

    def readable_field_groups(self, actor: Actor | str | Mapping[str, Any], resource_type: str,
                              resource: Mapping[str, Any] | None, relations: Relationships | None,
                              now: datetime, context: Mapping[str, Any] | None = None,
                              action: str = "read") -> tuple[str, ...]:
        """The field groups of ``resource`` the actor may ``action`` (to filter a form or an API answer)."""
        rt = self.resources.get(resource_type)
        if rt is None:
            return ()
        return tuple(g for g in rt.field_groups
                     if self.decide(actor, action, resource_type, resource, relations, now, context,
                                    field_group=g).allowed)

    def scope_fields(self, resource_type: str) -> tuple[str, ...]:
        """The resource fields the scopes of ``resource_type`` read: its subject, author and department fields and
        every field a grant, deny or right's grant names with ``of`` (sorted)."""
        rt = self.resources.get(resource_type)
        if rt is None:
            return ()
        rules = (*self.grants, *self.denies, *(rule for right in self.rights.values() for rule in right.grants))
        named = {rule.of for rule in rules if rule.of and rule.resource in (resource_type, "*", "")}
        return tuple(sorted({rt.subject_field, rt.author_field, rt.department_field, *named}))

    def is_write(self, resource_type: str, action: str) -> bool:
        """True when ``action`` changes a resource of this type (unknown types count as writes)."""
        rt = self.resources.get(resource_type)
        return rt is None or rt.is_write(action)
