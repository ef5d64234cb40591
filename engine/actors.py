"""Who does something: the actor of every decision, transition and audit record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from regelwerk.errors import UsageError

__all__ = ["ACTOR_ID_LENGTH", "SYSTEM", "Actor", "actor_from_facts"]

#: the longest actor id the stores keep (the ``actor`` and ``created_by`` columns): a longer one is a ``UsageError``
#: on every store (found by attack: PostgreSQL raised a ``DataError`` carrying the SQL, SQLite and memory kept it)
ACTOR_ID_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Actor:
    """A user (or the system) acting: an id, the roles held, and free attributes (department, entity...)."""

    id: str
    roles: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # whichever way it was made (Actor.of, Actor(...), the CLI's --actor)
        if isinstance(self.id, str) and len(self.id) > ACTOR_ID_LENGTH:
            raise _too_long(self.id)

    @classmethod
    def of(cls, value: Actor | str | Mapping[str, Any]) -> Actor:
        """Accept an Actor, a plain id, or a mapping ``{id, roles, ...}``."""
        if isinstance(value, Actor):
            return value
        if isinstance(value, str):
            return cls(value)
        data = dict(value)
        raw_id = data.pop("id", None)
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or raw_id == "":
            raise UsageError(f"an actor needs an 'id' (a non-empty text), not {raw_id!r}",
                             hint='an actor is {"id": "...", "roles": ["..."], attributes...}')
        raw_roles = data.pop("roles", None) or ()
        if not isinstance(raw_roles, (list, tuple)) or not all(isinstance(r, str) for r in raw_roles):
            raise UsageError(f"the roles of actor {raw_id!r} must be a list of role ids, not {raw_roles!r}",
                             hint='an actor is {"id": "...", "roles": ["..."], attributes...}')
        return cls(str(raw_id), tuple(raw_roles), data)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for audit rows and condition scopes."""
        return {"id": self.id, "roles": list(self.roles), **dict(self.attributes)}


def _too_long(actor_id: str) -> UsageError:
    return UsageError(f"an actor id has at most {ACTOR_ID_LENGTH} characters, not {len(actor_id)} "
                      f"({actor_id[:40]!r}...)", hint="use the id your identity provider gives, not a name or a text")


#: The engine itself (timers, schedules, migrations started by an administrator's command).
SYSTEM = Actor("system", ("system",))


def actor_from_facts(value: Actor | str | Mapping[str, Any] | None, facts: Mapping[str, Any],
                     extra_roles: tuple[str, ...] = ()) -> Actor:
    """An actor by id, with roles and attributes from ``facts["actors"][id]`` (the scenario and CLI
    convention), or from an inline mapping; ``None`` is the system."""
    if value is None:
        return SYSTEM
    if isinstance(value, (Actor, Mapping)):
        actor = Actor.of(value)
    else:
        actor_id = str(value)
        known = (facts.get("actors") or {}).get(actor_id)
        actor = Actor.of({**dict(known), "id": actor_id}) if isinstance(known, Mapping) else Actor(actor_id)
    if extra_roles:
        actor = Actor(actor.id, tuple(dict.fromkeys(actor.roles + extra_roles)), actor.attributes)
    return actor
