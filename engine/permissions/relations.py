"""Relationship facts that permission scopes read: reporting lines, departments, consent links, roles, rights.

The host application feeds them (from its own HR data) through a :class:`Relationships` store.
Decisions never walk the reporting tree: :class:`RelationIndex` keeps, per person, the frozen set of
everyone above them in the line (an ancestor/closure index) and updates it incrementally when a
``reports_to`` fact is added or ended: only the moved person's subtree is recomputed.

Relation kinds the permission scopes understand (others are stored and listed, but not interpreted):

- ``reports_to``   subject reports to object (the direct manager); current-state (end it with ``unrelate``).
- ``member_of``    subject belongs to the group object (a department, a branch, an organisation).
- ``represents``   subject acts for the organisation object (the employer account's contact person).
- ``consent``      subject (the professional) gives object (a person or an organisation) insight.
- ``has_role``     subject holds the role object (per user, optionally dated).
- ``has_right``    subject holds the extra right object (per user, optionally dated).
- ``authored``     subject wrote the resource object (when the resource does not carry its author).

``valid_from`` and ``valid_to`` are dates and both inclusive, in the organisation's time zone (the
bundle's ``timezone``, default Europe/Amsterdam; each store is given it): a link "until 31 March" holds
until 31 March 23:59:59 there and no longer at 1 April 00:00, whatever time zone the caller's ``now``
carries (a naive ``now`` is UTC). ``withdrawn_at`` is a moment: the relation ends at that instant.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, tzinfo
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from regelwerk.conditions import to_temporal

__all__ = [
    "CURRENT_STATE_KINDS",
    "DEFAULT_TIMEZONE",
    "INDEXED_KINDS",
    "NO_EXTRAS",
    "TASK_ROLE",
    "MemoryRelationships",
    "Relation",
    "RelationIndex",
    "Relationships",
    "as_date",
    "check_fact",
    "check_window",
    "checked_facts",
    "local_date",
    "relate_all",
    "relations_from_facts",
    "window_refusal",
    "zone",
]

#: The organisation's time zone when the bundle declares none.
DEFAULT_TIMEZONE = "Europe/Amsterdam"
_DEFAULT_ZONE = ZoneInfo(DEFAULT_TIMEZONE)


def zone(name: str | tzinfo | None) -> tzinfo:
    """The time zone named ``name`` (a tzinfo passes through; None or "" is the default zone)."""
    if isinstance(name, tzinfo):
        return name
    return ZoneInfo(name) if name else _DEFAULT_ZONE


def local_date(now: datetime, tz: tzinfo) -> date:
    """The date at ``now`` in the organisation's time zone ``tz`` (a naive ``now`` is taken as UTC)."""
    return (now if now.tzinfo is not None else now.replace(tzinfo=UTC)).astimezone(tz).date()

#: Relation kinds with a meaning for the permission scopes.
INDEXED_KINDS = ("reports_to", "member_of", "represents", "consent", "has_role", "has_right", "has_task", "authored")

_EMPTY: frozenset[str] = frozenset()
#: What :meth:`Relationships.personal` returns for someone without per-user roles or rights.
NO_EXTRAS: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
#: How an active ``has_task`` fact appears among a person's roles (:meth:`RelationIndex.personal`): ``task:<task>``,
#: held by the matrix roles that list the task in their ``tasks``
TASK_ROLE = "task:"


def as_date(value: Any) -> date | None:
    """A date from a date, a datetime (its own local date) or ISO text; None stays None."""
    if value is None or value == "":
        return None
    temporal = to_temporal(value)
    if temporal is None:
        raise ValueError(f"not an ISO date: {value!r}")
    return temporal.date() if isinstance(temporal, datetime) else temporal


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Relation:
    """One relationship fact, with its validity window and (if ended early) the moment it was withdrawn."""

    id: int
    kind: str
    subject: str
    object: str
    valid_from: date | None = None
    valid_to: date | None = None
    withdrawn_at: datetime | None = None
    created_by: str = "system"
    created_at: datetime | None = None
    withdrawn_by: str = ""
    zone: tzinfo = field(default=_DEFAULT_ZONE, compare=False, repr=False)

    def active(self, now: datetime) -> bool:
        """True when the relation holds at ``now`` (dates inclusive in :attr:`zone`, withdrawal exclusive)."""
        if self.withdrawn_at is not None and _aware(now) >= self.withdrawn_at:
            return False
        if self.valid_from is None and self.valid_to is None:
            return True
        today = local_date(now, self.zone)
        if self.valid_from is not None and today < self.valid_from:
            return False
        return self.valid_to is None or today <= self.valid_to

    def why_inactive(self, now: datetime) -> str:
        """Why the relation does not hold at ``now`` (empty when it does)."""
        if self.withdrawn_at is not None and _aware(now) >= self.withdrawn_at:
            return f"withdrawn at {self.withdrawn_at.isoformat()}" + (f" by {self.withdrawn_by}"
                                                                       if self.withdrawn_by else "")
        today = local_date(now, self.zone)
        if self.valid_from is not None and today < self.valid_from:
            return f"starts on {self.valid_from.isoformat()}"
        if self.valid_to is not None and today > self.valid_to:
            return f"ended on {self.valid_to.isoformat()}"
        return ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for explanations, the CLI and audit rows)."""
        return {
            "id": self.id, "kind": self.kind, "subject": self.subject, "object": self.object,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
            "withdrawn_at": self.withdrawn_at.isoformat() if self.withdrawn_at else None,
            "created_by": self.created_by,
        }


@runtime_checkable
class Relationships(Protocol):
    """The port permission decisions read relationship facts through (and hosts write them into).

    The query methods are called on every decision and must be cheap (no I/O, no tree walks).
    """

    def relate(self, kind: str, subject: str, object: str, *, valid_from: Any = None, valid_to: Any = None,
               by: str = "system", now: datetime | None = None) -> Relation:
        """Add a fact."""

    def unrelate(self, kind: str, subject: str, object: str, *, at: datetime, by: str = "system") -> list[Relation]:
        """End the active facts ``kind(subject, object)`` at the moment ``at`` (withdrawal); returns them."""

    def relations(self, kind: str | None = None, subject: str | None = None,
                  object: str | None = None) -> list[Relation]:
        """Every stored fact matching the filters (active or not), oldest first."""

    def managers_of(self, person: str) -> frozenset[str]:
        """The direct managers of ``person`` (current reporting line)."""

    def ancestors(self, person: str) -> frozenset[str]:
        """Everyone above ``person`` in the reporting line (from the closure index, no walk)."""

    def groups_of(self, person: str, now: datetime) -> frozenset[str]:
        """The groups (departments, branches) ``person`` is a member of at ``now``."""

    def represented_by(self, person: str, now: datetime) -> frozenset[str]:
        """The organisations ``person`` represents at ``now``."""

    def consent_link(self, subject: str, targets: Iterable[str], now: datetime) -> Relation | None:
        """An active consent link from ``subject`` to one of ``targets`` at ``now``, if any."""

    def consent_links(self, subject: str, target: str) -> list[Relation]:
        """Every consent link (active or not) from ``subject`` to ``target`` (for explanations)."""

    def roles_of(self, person: str, now: datetime) -> tuple[str, ...]:
        """Roles assigned to ``person`` through ``has_role`` facts active at ``now`` (sorted)."""

    def rights_of(self, person: str, now: datetime) -> tuple[str, ...]:
        """Extra rights assigned to ``person`` through ``has_right`` facts active at ``now`` (sorted)."""

    def authored(self, person: str, resource: str) -> bool:
        """True when an ``authored`` fact says ``person`` wrote ``resource``."""

    def personal(self, person: str, now: datetime) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``(roles_of + tasks as task:<t>, rights_of)`` in one call (:data:`NO_EXTRAS` when there are none): asked
        per decision. A task is a role named ``task:<task>``, held by the matrix roles that list it in ``tasks``."""

    #: Everyone who may have per-user roles, rights or tasks (``has_role``/``has_right``/``has_task`` facts),
    #: kept current as facts are added. A superset is allowed, never a subset: a decision asks
    #: :meth:`personal` only for people in it, so someone missing here would lose their own roles and rights.
    personal_holders: Container[str]


class _Closure(dict[str, frozenset[str]]):
    """The ancestor index: a missing person has no one above (answered without storing the key), so
    ``closure.__getitem__`` can serve as a C-level ``ancestors`` function on the decision path."""

    __slots__ = ()

    def __missing__(self, person: str) -> frozenset[str]:
        return _EMPTY


class RelationIndex:
    """In-memory indexes over relations, shared by every :class:`Relationships` implementation.

    ``ancestors`` is a closure index: ``person -> frozenset(everyone above)``. Adding or ending a
    ``reports_to`` edge recomputes only the subtree below the moved person (``O(subtree x depth)``).
    """

    def __init__(self) -> None:
        self.by_id: dict[int, Relation] = {}
        # person -> their managers, one entry per active edge (a manager twice: two active edges). A tuple, not a
        # {manager: count} dict: one per person for the life of the index (48 bytes instead of 184 for one manager)
        self._managers: dict[str, tuple[str, ...]] = {}
        self._children: dict[str, set[str]] = {}
        self._ancestors: _Closure = _Closure()
        # manager -> frozenset({manager} | everyone above the manager): what each of the manager's direct reports
        # with no other manager has above them, shared by all of them (one set per manager, not per person)
        self._under: dict[str, frozenset[str]] = {}
        # kind -> subject -> relations (nested rather than keyed by (kind, subject): no tuple per person)
        self._by_subject: dict[str, dict[str, list[Relation]]] = {}
        self._consent: dict[tuple[str, str], list[Relation]] = {}
        self._authored: set[tuple[str, str]] = set()
        self._personal: set[str] = set()  # people with has_role / has_right facts
        self.recomputed = 0  # closure entries recomputed so far (reported by the benchmark)

    # --- writes --------------------------------------------------------------------------------

    def add(self, relation: Relation) -> None:
        """Index a relation (new or loaded from storage). A fact with an empty subject or object names nobody and is
        not indexed: one stored before :func:`check_fact` refused it (the service took ``reports_to("", m)``) must
        not make missing data read as a relation after an upgrade."""
        if not relation.subject.strip() or not relation.object.strip():
            return
        self.by_id[relation.id] = relation
        self._by_subject.setdefault(relation.kind, {}).setdefault(relation.subject, []).append(relation)
        if relation.kind in ("has_role", "has_right", "has_task"):
            self._personal.add(relation.subject)
        if relation.kind == "consent":
            self._consent.setdefault((relation.subject, relation.object), []).append(relation)
        elif relation.kind == "authored" and relation.withdrawn_at is None:
            self._authored.add((relation.subject, relation.object))
        elif relation.kind == "reports_to" and relation.withdrawn_at is None:
            self._managers[relation.subject] = self._managers.get(relation.subject, ()) + (relation.object,)
            self._children.setdefault(relation.object, set()).add(relation.subject)
            self._recompute_below(relation.subject)

    def end(self, relation: Relation, ended: Relation) -> None:
        """Replace ``relation`` by its ended form ``ended`` in every index."""
        self.by_id[ended.id] = ended
        by_subject = self._by_subject.get(relation.kind, {})
        if relation.subject in by_subject:
            by_subject[relation.subject] = [ended if r.id == relation.id else r for r in by_subject[relation.subject]]
        key = (relation.subject, relation.object)
        if key in self._consent:
            self._consent[key] = [ended if r.id == relation.id else r for r in self._consent[key]]
        if relation.kind == "authored":
            self._authored.discard((relation.subject, relation.object))
        if relation.kind == "reports_to" and relation.withdrawn_at is None:
            edges = list(self._managers.get(relation.subject, ()))
            if relation.object in edges:
                edges.remove(relation.object)
            if edges:
                self._managers[relation.subject] = tuple(edges)
            else:
                self._managers.pop(relation.subject, None)
            if relation.object not in edges:
                self._children.get(relation.object, set()).discard(relation.subject)
            self._recompute_below(relation.subject)

    def _recompute_below(self, person: str) -> None:
        affected: list[str] = []
        seen: set[str] = set()
        stack = [person]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            affected.append(current)
            stack.extend(self._children.get(current, ()))
        for node in affected:
            self._ancestors.pop(node, None)
            self._under.pop(node, None)
        for node in affected:
            self._compute(node, set())

    def _compute(self, person: str, visiting: set[str]) -> frozenset[str]:
        cached = self._ancestors.get(person)
        if cached is not None:
            return cached
        if person in visiting:  # a cycle in the data: stop rather than loop
            return _EMPTY
        visiting.add(person)
        managers = self._managers.get(person, ())
        # the common case, one manager: share the set with the manager's other direct reports
        if len(managers) == 1 or (len(managers) > 1 and len(set(managers)) == 1):
            manager = managers[0]
            shared = self._under.get(manager)
            if shared is None:
                shared = frozenset({manager, *self._compute(manager, visiting)})
                self._under[manager] = shared
            if person not in shared:  # (in a cycle the person would be above itself: computed on its own)
                self._ancestors[person] = shared
                self.recomputed += 1
                return shared
        result: set[str] = set()
        for manager in managers:
            result.add(manager)
            result.update(self._compute(manager, visiting))
        result.discard(person)
        frozen = frozenset(result)
        self._ancestors[person] = frozen
        self.recomputed += 1
        return frozen

    # --- queries -------------------------------------------------------------------------------

    def managers_of(self, person: str) -> frozenset[str]:
        """Direct managers."""
        edges = self._managers.get(person)
        return frozenset(edges) if edges else _EMPTY

    def ancestors(self, person: str) -> frozenset[str]:
        """Everyone above in the line (closure index lookup)."""
        return self._ancestors.get(person, _EMPTY)

    def _objects(self, kind: str, person: str, now: datetime) -> frozenset[str]:
        items = self._by_subject.get(kind, {}).get(person)
        if not items:
            return _EMPTY
        return frozenset(r.object for r in items if r.active(now))

    def groups_of(self, person: str, now: datetime) -> frozenset[str]:
        """Active ``member_of`` groups."""
        return self._objects("member_of", person, now)

    def represented_by(self, person: str, now: datetime) -> frozenset[str]:
        """Active ``represents`` organisations."""
        return self._objects("represents", person, now)

    def consent_link(self, subject: str, targets: Iterable[str], now: datetime) -> Relation | None:
        """An active consent link to any target."""
        for target in targets:
            for relation in self._consent.get((subject, target), ()):
                if relation.active(now):
                    return relation
        return None

    def consent_links(self, subject: str, target: str) -> list[Relation]:
        """Every consent link between the two."""
        return list(self._consent.get((subject, target), ()))

    def roles_of(self, person: str, now: datetime) -> tuple[str, ...]:
        """Active per-user roles."""
        items = self._by_subject.get("has_role", {}).get(person)
        # a has_role object of the form task:<t> is no role (a matrix role id has no ':'): it would read as the
        # has_task fact of <t> among personal() and give the roles that list the task
        return tuple(sorted({r.object for r in items if r.active(now) and not r.object.startswith(TASK_ROLE)})) \
            if items else ()

    def rights_of(self, person: str, now: datetime) -> tuple[str, ...]:
        """Active per-user rights."""
        items = self._by_subject.get("has_right", {}).get(person)
        return tuple(sorted({r.object for r in items if r.active(now)})) if items else ()

    def authored(self, person: str, resource: str) -> bool:
        """An ``authored`` fact exists."""
        return (person, resource) in self._authored

    def tasks_of(self, person: str, now: datetime) -> tuple[str, ...]:
        """Active tasks (``has_task`` facts: BHV-er, praktijkopleider)."""
        items = self._by_subject.get("has_task", {}).get(person)
        return tuple(sorted({r.object for r in items if r.active(now)})) if items else ()

    def personal(self, person: str, now: datetime) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Per-user roles and rights at ``now``; an active task ``t`` is among the roles as ``task:t``
        (:data:`TASK_ROLE`), which a matrix role holds through its ``tasks``."""
        if person not in self._personal:
            return NO_EXTRAS
        roles, rights = self.roles_of(person, now), self.rights_of(person, now)
        tasks = self.tasks_of(person, now)
        if tasks:
            roles = roles + tuple(TASK_ROLE + task for task in tasks)
        return (roles, rights) if roles or rights else NO_EXTRAS

    def select(self, kind: str | None, subject: str | None, object: str | None) -> list[Relation]:
        """Filter every indexed relation (oldest first). With a ``kind`` only that kind's relations are looked at,
        not every fact (a mail to a role asks for one role's ``has_role`` facts among tens of thousands)."""
        if kind is not None:
            by_subject = self._by_subject.get(kind, {})
            pool = by_subject.get(subject, []) if subject is not None else [r for rs in by_subject.values() for r in rs]
            return sorted((r for r in pool if object is None or r.object == object), key=lambda r: r.id)
        return [r for _, r in sorted(self.by_id.items())
                if (subject is None or r.subject == subject) and (object is None or r.object == object)]


class _IndexedQueries:
    """The query half of :class:`Relationships`, delegating to a :class:`RelationIndex`.

    :meth:`_bind` copies the index's hot query methods onto the instance, so a decision calls the
    index directly (one call less per scope check).
    """

    index: RelationIndex
    personal_holders: Container[str]

    def _bind(self) -> None:
        index = self.index
        self.ancestors = index._ancestors.__getitem__  # type: ignore[method-assign,assignment]
        self.managers_of = index.managers_of  # type: ignore[method-assign]
        self.personal = index.personal  # type: ignore[method-assign]
        self.consent_link = index.consent_link  # type: ignore[method-assign]
        self.groups_of = index.groups_of  # type: ignore[method-assign]
        self.represented_by = index.represented_by  # type: ignore[method-assign]
        self.personal_holders = index._personal  # the index's live set: later facts are in it

    def personal(self, person: str, now: datetime) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Per-user roles and rights at ``now``."""
        return self.index.personal(person, now)

    def managers_of(self, person: str) -> frozenset[str]:
        """The direct managers of ``person``."""
        return self.index.managers_of(person)

    def ancestors(self, person: str) -> frozenset[str]:
        """Everyone above ``person`` (closure index)."""
        return self.index.ancestors(person)

    def groups_of(self, person: str, now: datetime) -> frozenset[str]:
        """Groups of ``person`` at ``now``."""
        return self.index.groups_of(person, now)

    def represented_by(self, person: str, now: datetime) -> frozenset[str]:
        """Organisations ``person`` represents at ``now``."""
        return self.index.represented_by(person, now)

    def consent_link(self, subject: str, targets: Iterable[str], now: datetime) -> Relation | None:
        """An active consent link from ``subject`` to one of ``targets``."""
        return self.index.consent_link(subject, targets, now)

    def consent_links(self, subject: str, target: str) -> list[Relation]:
        """Every consent link from ``subject`` to ``target``."""
        return self.index.consent_links(subject, target)

    def roles_of(self, person: str, now: datetime) -> tuple[str, ...]:
        """Per-user roles at ``now``."""
        return self.index.roles_of(person, now)

    def rights_of(self, person: str, now: datetime) -> tuple[str, ...]:
        """Per-user rights at ``now``."""
        return self.index.rights_of(person, now)

    def authored(self, person: str, resource: str) -> bool:
        """True when ``person`` wrote ``resource`` (an ``authored`` fact)."""
        return self.index.authored(person, resource)

    def relations(self, kind: str | None = None, subject: str | None = None,
                  object: str | None = None) -> list[Relation]:
        """Every fact matching the filters, oldest first."""
        return self.index.select(kind, subject, object)


def check_fact(kind: Any, subject: Any, object: Any) -> None:
    """A fact names its kind and two ids: non-empty texts. ``UsageError`` otherwise, before anything is stored.

    An empty id names nobody: a fact ``reports_to("", m)`` made ``m`` the manager of every resource whose subject
    field was left empty (found by attack: missing data read as a reporting line), and ``member_of(x, "")`` put
    ``x`` in the department of every resource whose department was left empty."""
    from regelwerk.errors import UsageError

    for name, value in (("kind", kind), ("subject", subject), ("object", object)):
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"a relationship fact needs a non-empty {name} (an id), not {value!r}")


#: the kinds that hold as they are until ended with ``unrelate`` (their index is not dated)
CURRENT_STATE_KINDS = frozenset({"reports_to", "authored"})


def window_refusal(kind: Any, valid_from: Any, valid_to: Any) -> str | None:
    """Why a fact of ``kind`` may not carry this validity window, or None. ``reports_to`` and ``authored`` are
    current-state: a window on them was stored and ignored (found by attack: ``reports_to(e, m, valid_to=2020-12-31)``
    left m reading e's notes for ever)."""
    if kind in CURRENT_STATE_KINDS and (valid_from is not None or valid_to is not None):
        return (f"{kind} is current-state: it holds from when it is stored until it is ended with unrelate; "
                f"a valid_from or valid_to on it would be ignored")
    return None


def check_window(kind: Any, valid_from: Any, valid_to: Any) -> None:
    """``UsageError`` when :func:`window_refusal` has a reason, before anything is stored."""
    from regelwerk.errors import UsageError

    why = window_refusal(kind, valid_from, valid_to)
    if why is not None:
        raise UsageError(why, hint="store the fact when it starts and end it with unrelate when it ends")


def _check_window(valid_from: date | None, valid_to: date | None) -> None:
    if valid_from is not None and valid_to is not None and valid_to < valid_from:
        raise ValueError(f"valid_to {valid_to} is before valid_from {valid_from}")


class MemoryRelationships(_IndexedQueries):
    """An in-memory :class:`Relationships` store (tests, scenarios, the CLI's ``--facts``)."""

    def __init__(self, relations: Iterable[Mapping[str, Any]] = (), timezone: str | tzinfo | None = None) -> None:
        self.zone = zone(timezone)
        self.index = RelationIndex()
        self._bind()
        self._next = 1
        for item in relations:
            self.relate(str(item["kind"]), str(item["subject"]), str(item["object"]),
                        valid_from=item.get("valid_from", item.get("from")),
                        valid_to=item.get("valid_to", item.get("until")), by=str(item.get("by", "system")))

    def relate(self, kind: str, subject: str, object: str, *, valid_from: Any = None, valid_to: Any = None,
               by: str = "system", now: datetime | None = None) -> Relation:
        """Add a fact."""
        check_fact(kind, subject, object)
        check_window(kind, valid_from, valid_to)
        start, end = as_date(valid_from), as_date(valid_to)
        _check_window(start, end)
        relation = Relation(self._next, kind, subject, object, start, end, None, by,
                            _aware(now) if now is not None else None, zone=self.zone)
        self._next += 1
        self.index.add(relation)
        return relation

    def relate_many(self, facts: Sequence[Mapping[str, Any]], *, by: str = "system",
                    now: datetime | None = None) -> list[Relation]:
        """Add every fact (``{kind, subject, object, valid_from?, valid_to?}``), all or none: each is checked before
        any is added."""
        return [self.relate(kind, subject, object, valid_from=start, valid_to=end, by=by, now=now)
                for kind, subject, object, start, end in checked_facts(facts)]

    def unrelate(self, kind: str, subject: str, object: str, *, at: datetime, by: str = "system") -> list[Relation]:
        """Withdraw the active facts at ``at``."""
        at = _aware(at)
        ended = []
        for relation in self.index.select(kind, subject, object):
            if relation.withdrawn_at is None and relation.active(at):
                new = replace(relation, withdrawn_at=at, withdrawn_by=by)
                self.index.end(relation, new)
                ended.append(new)
        return ended


def relate_all(port: Relationships, facts: Sequence[Mapping[str, Any]], *, by: str = "system",
               now: datetime | None = None) -> list[Relation]:
    """Add ``facts`` through ``port`` all or none where the port can (its ``relate_many``: the core's SQL and
    memory stores, one transaction); a port without it gets them one by one after every fact has been checked, so
    only its own refusal can stop a batch half-way."""
    many = getattr(port, "relate_many", None)
    if many is not None:
        added: list[Relation] = many(facts, by=by, now=now)
        return added
    return [port.relate(kind, subject, object, valid_from=start, valid_to=end, by=by, now=now)
            for kind, subject, object, start, end in checked_facts(facts)]


def checked_facts(facts: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str, date | None, date | None]]:
    """Every fact (``{kind, subject, object, valid_from?, valid_to?}``) checked as ``relate`` checks one
    (:func:`check_fact`, :func:`check_window`, a window that ends before it starts), before any of a batch is
    stored: ``(kind, subject, object, valid_from, valid_to)`` with the dates read."""
    checked = []
    for fact in facts:
        kind, subject, object = fact["kind"], fact["subject"], fact["object"]
        check_fact(kind, subject, object)
        check_window(kind, fact.get("valid_from"), fact.get("valid_to"))
        start, end = as_date(fact.get("valid_from")), as_date(fact.get("valid_to"))
        _check_window(start, end)
        checked.append((kind, subject, object, start, end))
    return checked


def relations_from_facts(facts: Mapping[str, Any], timezone: str | tzinfo | None = None) -> MemoryRelationships:
    """Build an in-memory store from facts data: ``{relations: [{kind, subject, object, from, until}]}``.

    Dates are evaluated in ``timezone`` (the bundle's; default Europe/Amsterdam).
    """
    items = facts.get("relations") or []
    if not isinstance(items, list):
        raise ValueError("facts 'relations' must be a list of {kind, subject, object, from, until}")
    for i, item in enumerate(items, 1):
        if not isinstance(item, Mapping):
            raise ValueError(f"relation {i} must be a mapping {{kind, subject, object, from, until}}, got {item!r}")
        for key in ("kind", "subject", "object"):
            value = item.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"relation {i} needs a non-empty {key!r}: {dict(item)!r}")
        if item["kind"] not in INDEXED_KINDS:  # a typo (member_off) would be a fact no scope ever reads
            from regelwerk.diagnostics import did_you_mean

            hint = did_you_mean(str(item["kind"]), INDEXED_KINDS) or "kinds: " + ", ".join(INDEXED_KINDS)
            raise ValueError(f"relation {i} has kind {item['kind']!r}, which no scope reads ({hint})")
    return MemoryRelationships(items, timezone)
