"""The logic-less template language: literal text, ``{{ field.path }}`` placeholders and one bounded loop.

``{{ for item in list.path }} ... {{ end }}`` repeats its text once per entry of a list field (a digest's cases);
inside it ``{{ item.field }}`` names a field of the entry. There are no filters, conditions, calls, indexes or
attribute access beyond dotted names, loops do not nest, and a loop renders at most :data:`MAX_LOOP_ITEMS`
entries, so rendering cannot execute code, its work is bounded by the data's size, and every field a template uses
is known statically (the compiler checks them against the template's declared context at load time: a field used
in a loop as ``list.field``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["MAX_LOOP_ITEMS", "Loop", "Placeholder", "SyntaxProblem", "TextTemplate", "format_value", "one_line",
           "parse_text"]

_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_TOKEN = re.compile(r"\{\{|\}\}|\{%|\{#")
_FOR = re.compile(r"^for\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\s+(\S+)$")
#: The most entries one loop renders; a longer list is a render error (a digest caps its lists below it).
MAX_LOOP_ITEMS = 1000


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A ``{{ dotted.path }}`` in a template; ``offset`` is where it starts in the text."""

    path: str
    offset: int = 0
    #: the loop variable's name when the placeholder sits in a loop and names its entry (``item`` of ``item.x``)
    var: str = ""

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
class Loop:
    """``{{ for var in path }} body {{ end }}``: ``body`` once per entry of the list at ``path``."""

    var: str
    path: str
    body: tuple[str | Placeholder, ...]
    offset: int = 0

    def fields(self) -> tuple[str, ...]:
        """The entry fields the body uses (``field`` of ``{{ var.field }}``), sorted."""
        return tuple(sorted({p.path for p in self.body if isinstance(p, Placeholder) and p.var}))


@dataclass(frozen=True, slots=True)
class TextTemplate:
    """A parsed template text: literal strings, placeholders and loops, in order."""

    segments: tuple[str | Placeholder | Loop, ...]

    @property
    def loops(self) -> tuple[Loop, ...]:
        """Every loop, in order of appearance."""
        return tuple(s for s in self.segments if isinstance(s, Loop))

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        """Every placeholder, in order of appearance; one naming a loop's entry as the context's path of it
        (``{{ c.name }}`` in ``{{ for c in cases }}`` is ``cases.name``)."""
        found: list[Placeholder] = []
        for segment in self.segments:
            if isinstance(segment, Placeholder):
                found.append(segment)
            elif isinstance(segment, Loop):
                found.extend(Placeholder(f"{segment.path}.{p.path}" if p.var else p.path, p.offset)
                             for p in segment.body if isinstance(p, Placeholder))
        return tuple(found)

    def fields(self) -> tuple[str, ...]:
        """The distinct field paths used that are not a loop's entry fields, sorted."""
        found = {s.path for s in self.segments if isinstance(s, Placeholder)}
        for loop in self.loops:
            found.update(p.path for p in loop.body if isinstance(p, Placeholder) and not p.var)
        return tuple(sorted(found))

    def render(self, lookup: Mapping[str, str],
               entries: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
               spans: dict[str, list[list[tuple[int, int]]]] | None = None) -> str:
        """Substitute already-formatted values by path, and each loop's already-formatted entries by its path
        (the caller checked that every path is present). With ``spans``, record per loop path and entry where in
        the result that entry's text is (``[start, end)`` character offsets; one span per loop over the path)."""
        out: list[str] = []
        length = 0
        for segment in self.segments:
            if isinstance(segment, str):
                out.append(segment)
                length += len(segment)
            elif isinstance(segment, Placeholder):
                out.append(lookup[segment.path])
                length += len(out[-1])
            else:
                found = (entries or {}).get(segment.path, ())
                per_entry = spans.setdefault(segment.path, [[] for _ in found]) if spans is not None else None
                for index, entry in enumerate(found):
                    text = "".join(s if isinstance(s, str) else entry[s.path] if s.var else lookup[s.path]
                                   for s in segment.body)
                    out.append(text)
                    if per_entry is not None:
                        per_entry[index].append((length, length + len(text)))
                    length += len(text)
        return "".join(out)


def parse_text(text: str) -> tuple[TextTemplate, list[SyntaxProblem]]:
    """Parse template text; problems carry the offset of the offending token."""
    top: list[str | Placeholder | Loop] = []
    segments: list[Any] = top
    loop: tuple[str, str, int] | None = None  # the open loop's variable, list path and offset
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
        opening = _FOR.match(expression)
        if opening is not None or expression.startswith("for "):
            if opening is None or not _PATH.match(opening.group(2)):
                problems.append(SyntaxProblem(f"{{{{ {expression} }}}} is not a loop", start,
                                              "write {{ for item in list.path }} ... {{ end }}"))
            elif loop is not None:
                problems.append(SyntaxProblem("loops do not nest", start,
                                              "close the loop opened before with {{ end }} first"))
            else:
                segments.append("".join(literal))
                literal = []
                loop = (opening.group(1), opening.group(2), start)
                segments = []
            pos = end + 2
            continue
        if expression == "end":
            if loop is None:
                problems.append(SyntaxProblem("{{ end }} without a loop", start,
                                              "remove it, or open a loop with {{ for item in list.path }}"))
            else:
                segments.append("".join(literal))
                literal = []
                body = tuple(s for s in segments if s != "")
                top.append(Loop(loop[0], loop[1], body, loop[2]))
                loop = None
                segments = top
            pos = end + 2
            continue
        if not _PATH.match(expression):
            problems.append(SyntaxProblem(
                f"{{{{ {expression} }}}} is not a field path", start,
                "templates are logic-less: only dotted field names such as {{ candidate.first_name }} "
                "(no filters, calls, operators or indexes)"))
        else:
            segments.append("".join(literal))
            literal = []
            head, _, rest = expression.partition(".")
            if loop is not None and head == loop[0]:
                if not rest:
                    problems.append(SyntaxProblem(f"{{{{ {expression} }}}} is a whole entry of the loop", start,
                                                  f"name one of its fields: {{{{ {head}.field }}}}"))
                else:
                    segments.append(Placeholder(rest, start, head))
            else:
                segments.append(Placeholder(expression, start))
        pos = end + 2
    segments.append("".join(literal))
    if loop is not None:
        problems.append(SyntaxProblem(f"the loop over {loop[1]!r} is not closed", loop[2], "end it with {{ end }}"))
        top.append(Loop(loop[0], loop[1], tuple(s for s in segments if s != ""), loop[2]))
    return TextTemplate(tuple(s for s in top if s != "")), problems


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


def one_line(text: str) -> str:
    """``text`` with every run of white space (line breaks too) as one space: a value in a loop's entry cannot
    add lines of its own (a name with a line break forging an extra entry of the list)."""
    return " ".join(text.split())
