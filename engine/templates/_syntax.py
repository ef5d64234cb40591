"""The logic-less template language: literal text and ``{{ field.path }}`` placeholders, nothing else.

There are no filters, loops, conditions, calls or attribute access beyond dotted names,
so rendering cannot execute code and every field a template uses is known statically
(the compiler checks them against the template's declared context at load time).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["Placeholder", "SyntaxProblem", "TextTemplate", "format_value", "parse_text"]

_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_TOKEN = re.compile(r"\{\{|\}\}|\{%|\{#")


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A ``{{ dotted.path }}`` in a template; ``offset`` is where it starts in the text."""

    path: str
    offset: int = 0

    @property
    def parts(self) -> tuple[str, ...]:
        """The path split at dots."""
        return tuple(self.path.split("."))


@dataclass(frozen=True, slots=True)
class SyntaxProblem:
    """A syntax error at ``offset`` of the template text."""

    message: str
    offset: int
    hint: str = ""


@dataclass(frozen=True, slots=True)
class TextTemplate:
    """A parsed template text: literal strings and placeholders, in order."""

    segments: tuple[str | Placeholder, ...]

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        """Every placeholder, in order of appearance."""
        return tuple(s for s in self.segments if isinstance(s, Placeholder))

    def fields(self) -> tuple[str, ...]:
        """The distinct field paths used, sorted."""
        return tuple(sorted({p.path for p in self.placeholders}))

    def render(self, lookup: Mapping[str, str]) -> str:
        """Substitute already-formatted values by path (the caller checked that every path is present)."""
        return "".join(s if isinstance(s, str) else lookup[s.path] for s in self.segments)


def parse_text(text: str) -> tuple[TextTemplate, list[SyntaxProblem]]:
    """Parse template text; problems carry the offset of the offending token."""
    segments: list[str | Placeholder] = []
    problems: list[SyntaxProblem] = []
    pos = 0
    literal: list[str] = []
    while True:
        match = _TOKEN.search(text, pos)
        if match is None:
            literal.append(text[pos:])
            break
        token = match.group(0)
        start = match.start()
        literal.append(text[pos:start])
        if token == "}}":
            problems.append(SyntaxProblem("'}}' without a matching '{{'", start,
                                          "remove it, or open the placeholder with '{{'"))
            literal.append(token)
            pos = match.end()
            continue
        if token in ("{%", "{#"):
            problems.append(SyntaxProblem(f"{token!r}: templates are logic-less (no tags or comments)", start,
                                          "only {{ field.path }} placeholders are allowed"))
            literal.append(token)
            pos = match.end()
            continue
        end = text.find("}}", match.end())
        nested = text.find("{{", match.end())
        if end < 0 or (0 <= nested < end):
            problems.append(SyntaxProblem("'{{' is not closed with '}}'", start, "write {{ field.path }}"))
            literal.append(token)
            pos = match.end()
            continue
        expression = text[match.end():end].strip()
        if not _PATH.match(expression):
            problems.append(SyntaxProblem(
                f"{{{{ {expression} }}}} is not a field path", start,
                "templates are logic-less: only dotted field names such as {{ candidate.first_name }} "
                "(no filters, calls, operators or indexes)"))
        else:
            segments.append("".join(literal))
            literal = []
            segments.append(Placeholder(expression, start))
        pos = end + 2
    segments.append("".join(literal))
    return TextTemplate(tuple(s for s in segments if s != "")), problems


def format_value(value: Any) -> str:
    """A field value as mail text: dates as DD-MM-YYYY (Dutch), booleans as ja/nee, lists joined by lines."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "ja" if value else "nee"
    if isinstance(value, datetime):
        return value.strftime("%d-%m-%Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d-%m-%Y")
    if isinstance(value, (int, float, Decimal, str)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "\n".join(format_value(v) for v in value)
    raise TypeError(f"a template field cannot hold {type(value).__name__}")
