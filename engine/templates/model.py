"""Compiled mail templates and mail contexts: frozen values, rendering without code execution."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from regelwerk.errors import InvalidData
from regelwerk.templates._syntax import MAX_LOOP_ITEMS, TextTemplate, format_value, one_line

__all__ = ["MailContext", "MailField", "RenderedMail", "Template", "TemplateRenderError"]


class TemplateRenderError(InvalidData):
    """The values handed to a template lack fields its context promised (a host bug, not an author's), or hold what
    a mail cannot show (an object where text was expected: ``unusable``, path and what it holds)."""

    code = "template_render"

    def __init__(self, template: str, missing: tuple[str, ...], unusable: tuple[tuple[str, str], ...] = ()) -> None:
        self.template = template
        self.missing = missing
        self.unusable = unusable
        why = [f"no value for {', '.join(missing)}"] if missing else []
        why += [f"{path} holds {what}, which a mail cannot show" for path, what in unusable]
        super().__init__(f"template {template!r} cannot be rendered: {'; '.join(why)}",
                         errors=[{"field": m, "message": "missing"} for m in missing]
                         + [{"field": path, "message": f"{what}: not text, a date, a number, yes/no or a list of them"}
                            for path, what in unusable])


@dataclass(frozen=True, slots=True)
class MailField:
    """One field a mail context provides (``candidate.first_name``), optional ones may be empty."""

    path: str
    label: str = ""
    optional: bool = False
    #: a list (of entries with the fields declared under it): a template repeats text over it with a loop
    list: bool = False


@dataclass(frozen=True, slots=True)
class MailContext:
    """The fields a kind of mail can use (declared in data, e.g. ``candidate_mail``)."""

    name: str
    label: str
    fields: tuple[MailField, ...]

    def field(self, path: str) -> MailField | None:
        """The declared field at ``path``, if any."""
        for item in self.fields:
            if item.path == path:
                return item
        return None

    @property
    def paths(self) -> tuple[str, ...]:
        """Every declared field path, sorted."""
        return tuple(sorted(f.path for f in self.fields))


@dataclass(frozen=True, slots=True)
class RenderedMail:
    """A rendered subject and body (plain text)."""

    template: str
    subject: str
    body: str
    #: per list path, per entry, where the body shows that entry (``[start, end)`` offsets, one per loop over it):
    #: what a digest records so an AVG erasure can cut one case's lines out of the stored body
    spans: Mapping[str, tuple[tuple[tuple[int, int], ...], ...]] = field(default_factory=dict, compare=False)


def _lookup(values: Mapping[str, Any], path: str) -> Any:
    """Follow a dotted path through mappings only: no attribute access, no indexing, no calls."""
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _what(value: Any) -> str:
    """What a value a mail cannot show is, in the refusal's words."""
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list holding an object"
    return f"a {type(value).__name__}"


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled e-mail template: subject and body over one mail context."""

    name: str
    label: str
    context: str
    purpose: str
    subject: TextTemplate
    body: TextTemplate
    optional: frozenset[str] = frozenset()

    def fields(self) -> tuple[str, ...]:
        """Every field path the subject or body uses, sorted."""
        return tuple(sorted(set(self.subject.fields()) | set(self.body.fields())))

    def render(self, values: Mapping[str, Any]) -> RenderedMail:
        """Fill in the fields; a missing required value raises ``TemplateRenderError`` (never a blank)."""
        formatted: dict[str, str] = {}
        missing: list[str] = []
        unusable: list[tuple[str, str]] = []
        for path in self.fields():
            value = _lookup(values, path)
            if (value is None or value == "") and path not in self.optional:
                missing.append(path)
                continue
            try:
                formatted[path] = format_value(value)
            except TypeError:
                # a person's data holding an object where the mail shows text: their refusal (InvalidData), never
                # the action's failure (found by attack: it was ActionFailed and an incident for the operators,
                # which no retry could ever resolve)
                unusable.append((path, _what(value)))
        entries: dict[str, list[dict[str, str]]] = {}
        for loop in self.body.loops:
            entries[loop.path] = self._entries(loop.path, loop.fields(), _lookup(values, loop.path), missing)
        if missing or unusable:
            raise TemplateRenderError(self.name, tuple(missing), tuple(unusable))
        # A subject is a mail header: no value may smuggle a line break (header injection).
        subject_values = {k: " ".join(v.split()) for k, v in formatted.items()}
        subject = " ".join(self.subject.render(subject_values).split())
        spans: dict[str, list[list[tuple[int, int]]]] = {}
        body = self.body.render(formatted, entries, spans)
        return RenderedMail(self.name, subject, body,
                            {path: tuple(tuple(found) for found in per_entry) for path, per_entry in spans.items()})

    def _entries(self, path: str, fields: tuple[str, ...], value: Any, missing: list[str]) -> list[dict[str, str]]:
        """A loop's entries, each field formatted on one line; a list that is absent, not a list of mappings or longer
        than :data:`MAX_LOOP_ITEMS`, or an entry without a required field, is a render error (never a blank)."""
        if value is None and path in self.optional:
            return []
        if not isinstance(value, (list, tuple)) or not all(isinstance(e, Mapping) for e in value):
            missing.append(path)
            return []
        if len(value) > MAX_LOOP_ITEMS:
            raise TemplateRenderError(self.name, (f"{path} (more than {MAX_LOOP_ITEMS} entries)",))
        out: list[dict[str, str]] = []
        for entry in value:
            formatted: dict[str, str] = {}
            for name in fields:
                item = _lookup(entry, name)
                if (item is None or item == "") and f"{path}.{name}" not in self.optional:
                    if f"{path}.{name}" not in missing:
                        missing.append(f"{path}.{name}")
                    continue
                formatted[name] = one_line(format_value(item))
            out.append(formatted)
        return out
