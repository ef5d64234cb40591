"""The request and response bodies of the HTTP API (pydantic: validation and the OpenAPI document)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "MAX_BODY_DEPTH", "MOMENT_YEARS", "ActorIn", "AvailableIn", "BatchCanIn", "BatchResourceIn", "CanIn",
    "DecideIn", "DeployIn", "ExplainIn", "FireIn", "IncidentActIn", "KeyIn", "MigrateIn", "RelationIn", "RelationsIn",
    "ResourceIn", "SchedulePreviewIn", "StartIn", "TenantIn", "TickIn", "TierIn",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: how deep a request body may nest (the body itself is level 1); instance data in it is held to the engine's own
#: limit (``regelwerk.workflows.gate.MAX_DATA_DEPTH``, 64 levels) after that
MAX_BODY_DEPTH = 100


#: a UTF-16 surrogate code point: JSON's ``\\ud800`` escapes give one to Python's reader, and no UTF-8 text holds it
_SURROGATE = re.compile("[\ud800-\udfff]")


def _text_problem(text: str) -> str | None:
    """What a text of a request may not hold (a NUL character, a lone surrogate), or None."""
    if "\x00" in text:
        return "a NUL character is not allowed in a request"
    if not text.isascii() and _SURROGATE.search(text) is not None:
        return "a lone surrogate (a \\ud800-\\udfff escape without its pair) is no Unicode text"
    return None


def body_problem(value: Any, pointer: str = "", depth: int = MAX_BODY_DEPTH) -> tuple[str, str] | None:
    """``(JSON pointer, what is wrong)`` of the first part of a request body the service does not take: a text (a
    key or a string) holding a NUL character or a lone surrogate, a number JSON does not have (NaN, Infinity:
    Python's JSON reader takes them, and ``1e309`` is read as infinity), or an object or array nested deeper than
    ``depth`` levels. Walked without recursion, so no body, however deep, makes the walk itself fail. Found by
    attack: data nested 300 levels deep was stored by a start whose answer then failed (a 500 after the commit), and
    from then on every listing of the tenant's instances was a 500; 500 levels in a fire or a permission question
    were a 500 ``RecursionError``. The same for a lone surrogate (``"\\ud83d"``, half an emoji) in a start's data
    (eighteenth round): stored, then no answer carrying it could be written as UTF-8."""
    if _clean(value, depth):  # nearly every body: no pointers built
        return None
    stack: list[tuple[Any, str, int]] = [(value, pointer, 1)]
    while stack:
        item, here, level = stack.pop()
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem is not None:
                return here, problem
            continue
        if isinstance(item, float) and not math.isfinite(item):  # NaN, Infinity, 1e309: no JSON numbers (RFC 8259)
            return here, f"{item!r} is no JSON number"
        if not isinstance(item, (dict, list)):
            continue
        if level > depth:
            return here, f"the body is nested deeper than {depth} levels"
        if isinstance(item, dict):
            children = []
            for key, child in item.items():
                inner = f"{here}/{key}"
                problem = _text_problem(key) if isinstance(key, str) else None
                if problem is not None:
                    return inner.encode("utf-8", "backslashreplace").decode(), problem
                children.append((child, inner, level + 1))
        else:
            children = [(child, f"{here}/{index}", level + 1) for index, child in enumerate(item)]
        stack.extend(reversed(children))  # the first part first, as the pointer of the first problem
    return None


def _clean(value: Any, room: int) -> bool:
    """True when :func:`body_problem` finds nothing in ``value`` (the walk of nearly every body: no pointers built);
    ``room``: the levels of objects and arrays it may still nest. Recursive, but never deeper than ``room`` (the
    service's limit, far below Python's)."""
    kind = type(value)
    if kind is str:
        return "\x00" not in value and (value.isascii() or _SURROGATE.search(value) is None)
    if kind is float:
        return math.isfinite(value)
    if kind is not dict and kind is not list:
        return True
    if room < 1:
        return False
    if kind is dict:
        for key in value:
            if type(key) is not str or "\x00" in key or not (key.isascii() or _SURROGATE.search(key) is None):
                return False
        items = value.values()
    else:
        items = value
    inner = room - 1
    for item in items:
        of = type(item)
        if of is str:
            if "\x00" in item or not (item.isascii() or _SURROGATE.search(item) is None):
                return False
        elif not (of is int or of is bool or item is None) and not _clean(item, inner):
            return False
    return True


#: the years a moment in a request may fall in (UTC; a moment without a zone is UTC, as the service reads it)
MOMENT_YEARS = (1900, 9000)


def _in_range(value: datetime) -> datetime:
    """A moment the engine can compute with: found by attack, a tick at ``0001-01-01`` and a ``can`` at
    ``9999-12-31T23:59:59-12:00`` were 500 ``OverflowError`` (a grace period subtracted, the audit row's UTC time),
    and the refused question was then audited nowhere."""
    try:
        utc = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        utc = None
    low, high = MOMENT_YEARS
    if utc is None or not low <= utc.year <= high:
        raise ValueError(f"a moment from {low} to {high} (UTC), not {value.isoformat()}")
    return value


#: a moment in a request (``at``, ``now``, ``start``, ``end``): years :data:`MOMENT_YEARS` only (422 otherwise)
Moment = Annotated[datetime, AfterValidator(_in_range)]


class _Request(_Strict):
    """A request body: no text in it, at any depth, may hold a NUL character, no number may be NaN or infinite, and
    it nests :data:`MAX_BODY_DEPTH` levels at most (422 with the pointer)."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        found = body_problem(value)
        if found is not None:
            raise ValueError(f"{found[0] or '/'}: {found[1]}")
        return value


class ActorIn(_Strict):
    """Who acts: the host application's user (the API key says which tenant and application asks)."""

    id: str = Field(min_length=1, max_length=200)
    roles: list[str] = Field(default_factory=list, max_length=100)
    attributes: dict[str, Any] = Field(default_factory=dict, description="department, entity, ... (read by rules)")

    def plain(self) -> dict[str, Any]:
        """The engine's actor mapping."""
        return {**self.attributes, "id": self.id, "roles": list(self.roles)}


class ResourceIn(_Strict):
    """What the question is about: its type and its fields (subject, author, department...)."""

    type: str = Field(min_length=1, max_length=200)
    id: str | None = Field(default=None, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)

    def plain(self) -> dict[str, Any]:
        """The permission matrix's resource mapping."""
        return {**self.data, "id": self.id} if self.id is not None else dict(self.data)


class CanIn(_Request):
    """May ``actor`` do ``action`` on ``resource``?"""

    actor: ActorIn
    action: str = Field(min_length=1, max_length=200)
    resource: ResourceIn
    field_group: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    at: Moment | None = Field(default=None, description="decide at this moment (default: now)")
    matrix: str | None = Field(default=None, description="another PermissionMatrix of the bundle (default: the "
                                                         "deployment's)")
    explain: bool = Field(default=False, description="always explain (a denial is always explained)")


class BatchResourceIn(ResourceIn):
    """One resource of a batch and the actions asked about it."""

    actions: list[str] = Field(min_length=1, max_length=100)


class BatchCanIn(_Request):
    """Many questions for one actor in one call (as Cerbos' CheckResources): every action on every resource."""

    actor: ActorIn
    resources: list[BatchResourceIn] = Field(min_length=1, max_length=1000)
    context: dict[str, Any] = Field(default_factory=dict)
    at: Moment | None = None
    matrix: str | None = None
    explain: bool = Field(default=False, description="explain every denial in full (every rule considered); "
                                                     "by default a denial names its deciding rule and reason")


class DecideIn(_Request):
    """Decide a DecisionTable for inputs."""

    table: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    at: Moment | None = None


class TierIn(_Request):
    """The tier a product catalog demands for activating products in order."""

    products: list[str] = Field(max_length=200)
    addendum_signed: bool = True
    catalog: str | None = None


class StartIn(_Request):
    """Start a workflow instance."""

    workflow: str
    data: dict[str, Any] = Field(default_factory=dict)
    actor: ActorIn
    id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")


class FireIn(_Request):
    """Fire an event on an instance."""

    event: str
    actor: ActorIn
    data: dict[str, Any] = Field(default_factory=dict)
    expected_version: int | None = Field(default=None, description="refuse with 409 when the instance moved on")


class ExplainIn(_Request):
    """Why would (not) ``event`` fire now for ``actor``?"""

    event: str
    actor: ActorIn
    data: dict[str, Any] = Field(default_factory=dict)


class AvailableIn(_Request):
    """Which events may ``actor`` fire now?"""

    actor: ActorIn


class SchedulePreviewIn(_Request):
    """Occurrences of the bundle's Schedule documents in ``[start, end)``."""

    start: Moment
    end: Moment
    limit: int = Field(default=50, ge=1, le=1000)


class TickIn(_Request):
    """Run everything due for this tenant now (workers do this for every tenant)."""

    now: Moment | None = Field(default=None, description="the moment to tick at (default: now); never more than a "
                                                           "minute ahead of the server's clock (usage error)")


class DeployIn(_Request):
    """A bundle version: its files (relative path -> text) and the PermissionMatrix that guards its workflows."""

    files: dict[str, str] = Field(min_length=1)
    matrix: str = Field(default="", description="needed when the bundle has several PermissionMatrix documents")


class IncidentActIn(_Request):
    """Who retries or resolves an incident (audited with the incident; a retried fire runs as this actor)."""

    actor: ActorIn
    note: str = Field(default="", max_length=2000, description="why it is resolved (resolve only)")


class MigrateIn(_Request):
    """Move instances of older definition versions to the active one (plan first, then apply)."""

    workflow: str | None = None
    mapping: dict[str, str] = Field(default_factory=dict, description="old state -> new state")
    instances: list[str] | None = None


class RelationIn(_Strict):
    """A relationship fact (manager_of, member_of, consent...)."""

    kind: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=200, description="an id: never empty (an empty id names nobody)")
    object: str = Field(min_length=1, max_length=200)
    valid_from: str | None = Field(default=None, description="ISO date (YYYY-MM-DD)")
    valid_to: str | None = Field(default=None, description="ISO date (YYYY-MM-DD), on or after valid_from")

    @field_validator("kind")
    @classmethod
    def _read_kind(cls, value: str) -> str:
        """A kind some scope reads (``regelwerk.permissions.relations.INDEXED_KINDS``), as scenario facts and facts
        files demand (RW710): found by attack, ``reports_too`` or ``Member_of`` was stored and answered 201, a fact
        nothing ever reads (the manager stayed refused, a deny's exception never applied)."""
        from regelwerk.diagnostics import did_you_mean
        from regelwerk.permissions.relations import INDEXED_KINDS

        if value not in INDEXED_KINDS:
            hint = did_you_mean(value, INDEXED_KINDS) or "kinds: " + ", ".join(INDEXED_KINDS)
            raise ValueError(f"{value[:80]!r} is a kind no scope reads ({hint})")
        return value

    @field_validator("valid_from", "valid_to")
    @classmethod
    def _iso_date(cls, value: str | None) -> str | None:
        """Refuse what is not a date before any fact of the request is stored."""
        from regelwerk.permissions.relations import as_date

        try:
            as_date(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not an ISO date: {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _ordered(self) -> RelationIn:
        """``valid_to`` on or after ``valid_from``."""
        from regelwerk.permissions.relations import as_date

        start, end = as_date(self.valid_from), as_date(self.valid_to)
        if start is not None and end is not None and end < start:
            raise ValueError(f"valid_to {end} is before valid_from {start}")
        from regelwerk.permissions.relations import window_refusal

        why = window_refusal(self.kind, self.valid_from, self.valid_to)
        if why is not None:  # before any fact of the request is stored
            raise ValueError(why)
        return self


class RelationsIn(_Request):
    """Facts to add."""

    relations: list[RelationIn] = Field(min_length=1, max_length=10_000)


class TenantIn(_Request):
    """A new tenant."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str = ""


class KeyIn(_Request):
    """A new API key."""

    label: str = Field(default="", max_length=200)
