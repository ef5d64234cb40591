"""The ``Story`` document: dated events a simulation plays into the calendar, validated at file:line.

A story file holds ONE document ``apiVersion: regelwerk/v1, kind: Story``; ``spec.events`` is a list of
``{on: DATE, <type>: {...}}`` with exactly one type key (schema: ``schemas/v1/story.json``). Problems
are :class:`~engine.diagnostics.Diagnostic` s (schema codes RW1xx from the shared translation, the
story's own SIM0xx codes), raised together as one :class:`~engine.diagnostics.DefinitionError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from engine.diagnostics import DefinitionError, Diagnostic, did_you_mean

__all__ = ["EVENT_TYPES", "Story", "StoryEvent", "load_story", "parse_story"]

#: Every event type a story may hold (each is documented in docs/simulation.md).
EVENT_TYPES = (
    "hire", "leave", "update_employee", "open_vacancy", "close_vacancy", "apply", "move", "consent",
    "activate_product", "sign_addendum", "link", "unlink", "fire", "start",
)


@dataclass(frozen=True, slots=True)
class StoryEvent:
    """One dated event: its index in the file (the resume key), type, arguments and source position."""

    index: int
    day: date
    type: str
    args: Mapping[str, Any]
    file: str = ""
    line: int = 0

    @property
    def key(self) -> str:
        """The key under which the simulation records that this event was applied."""
        return f"story:{self.index}"

    def where(self) -> str:
        """``file:line`` of the event."""
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Story:
    """A validated story: its name and events in file order."""

    name: str
    file: str
    events: tuple[StoryEvent, ...] = field(default_factory=tuple)


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    from engine.validation import inline_refs, load_shipped_schema

    files = {"common.json": load_shipped_schema("common.json"), "story.json": load_shipped_schema("story.json")}
    schema = inline_refs("story.json", files)
    assert schema is not None  # the shipped schema only refers to common.json
    return Draft202012Validator(schema)


def _plain(value: Any) -> Any:
    from engine.source import to_plain

    return to_plain(value)


def parse_story(text: str, file: str) -> Story:
    """Parse and validate a story's text; ``DefinitionError`` with every problem at its line."""
    from engine.source import load_text, locate
    from engine.validation import _translate

    documents, problems = load_text(text, file)
    if problems:
        raise DefinitionError(problems)
    stories = [d for d in documents if d.kind == "Story"]
    if len(documents) != 1 or len(stories) != 1:
        where = documents[0].location if documents else None
        raise DefinitionError([Diagnostic(
            "SIM001", "a story file holds exactly one document of kind Story", file,
            where.line if where else 1, where.column if where else 1,
            hint="apiVersion: regelwerk/v1, kind: Story, metadata: {name: ...}, spec: {events: [...]}")])
    doc = stories[0]
    diagnostics: list[Diagnostic] = []
    for error in _validator().iter_errors(doc.data):
        diagnostics.extend(_translate(error, doc))
    raw_events = (doc.spec or {}).get("events") if isinstance(doc.spec, Mapping) else None
    events: list[StoryEvent] = []
    for index, raw in enumerate(raw_events if isinstance(raw_events, list) else []):
        if not isinstance(raw, Mapping):
            continue
        pointer = f"/spec/events/{index}"
        where = locate(doc.data, pointer)
        kinds = [k for k in raw if k != "on"]
        known = [k for k in kinds if k in EVENT_TYPES]
        if len(known) != 1 or len(kinds) != 1:
            unknown = [k for k in kinds if k not in EVENT_TYPES]
            hint = did_you_mean(unknown[0], EVENT_TYPES) if unknown else ""
            if not diagnostics or not any(d.pointer.startswith(pointer) for d in diagnostics):
                diagnostics.append(Diagnostic(
                    "SIM002", f"an event has `on` and exactly one event type; found {', '.join(kinds) or 'none'}",
                    where.file, where.line, where.column, pointer,
                    hint=hint or "event types: " + ", ".join(EVENT_TYPES)))
            continue
        try:
            day = date.fromisoformat(str(raw.get("on")))
        except ValueError:
            continue  # reported by the schema (pattern) or not a real date:
        kind = known[0]
        body = raw[kind]
        if not isinstance(body, Mapping):
            continue
        body_where = locate(doc.data, f"{pointer}/{kind}")
        events.append(StoryEvent(index, day, kind, _plain(body), where.file, body_where.line))
    for index, raw in enumerate(raw_events if isinstance(raw_events, list) else []):
        on = raw.get("on") if isinstance(raw, Mapping) else None
        if isinstance(on, str) and len(on) == 10:
            try:
                date.fromisoformat(on)
            except ValueError:
                at = locate(doc.data, f"/spec/events/{index}/on")
                diagnostics.append(Diagnostic("SIM003", f"{on!r} is not a calendar date", at.file, at.line, at.column,
                                              f"/spec/events/{index}/on"))
    if diagnostics:
        raise DefinitionError(diagnostics)
    return Story(doc.name, file, tuple(events))


def load_story(path: str | Path, display: str | None = None) -> Story:
    """Read and validate a story file (``DefinitionError`` with file:line diagnostics)."""
    from engine.source import read_source

    shown = display or str(path)
    text, problems = read_source(str(path), shown)
    if text is None:
        raise DefinitionError(problems)
    return parse_story(text, shown)
