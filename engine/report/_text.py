"""Small text helpers of the report: escaping, Dutch durations and dates, text width estimates."""

from __future__ import annotations

import html
import json
from datetime import date
from typing import Any

from regelwerk.conditions import Duration

__all__ = ["MONTHS", "dutch_date", "esc", "human_duration", "short_json", "text_width", "wrap"]

MONTHS = ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
          "november", "december")

_UNITS = (("years", "jaar", "jaar"), ("months", "maand", "maanden"), ("weeks", "week", "weken"),
          ("days", "dag", "dagen"), ("hours", "uur", "uur"), ("minutes", "minuut", "minuten"),
          ("seconds", "seconde", "seconden"))

_NARROW = set("iljtfrI.,:;!'|() []-")
_WIDE = set("mwMWOQGDHNU@%")


def esc(value: Any) -> str:
    """HTML/XML-escape any value (quotes too, so the result is safe in attributes)."""
    return html.escape(str(value), quote=True)


def human_duration(duration: Duration | None) -> str:
    """``P6W`` -> ``6 weken``; ``P1Y2M`` -> ``1 jaar en 2 maanden`` (empty for None)."""
    if duration is None:
        return ""
    parts = []
    for attr, one, many in _UNITS:
        count = getattr(duration, attr)
        if count:
            parts.append(f"{count} {one if count == 1 else many}")
    if not parts:
        return duration.text or "0 dagen"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " en " + parts[-1]


def dutch_date(day: date) -> str:
    """``2026-03-01`` -> ``1 maart 2026``."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def short_json(value: Any, limit: int = 160) -> str:
    """A compact JSON rendering of a definition value, cut at ``limit`` characters."""
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def text_width(text: str, size: float = 12.0) -> float:
    """An estimate of the rendered width of ``text`` in a sans-serif font of ``size`` px."""
    units = 0.0
    for char in text:
        if char in _NARROW:
            units += 0.32
        elif char in _WIDE:
            units += 0.82
        elif char.isupper() or char.isdigit():
            units += 0.64
        else:
            units += 0.55
    return units * size


def wrap(text: str, width: float, size: float = 12.0, max_lines: int = 2) -> list[str]:
    """Greedy word wrap by estimated width; the last line is cut with an ellipsis if needed."""
    words = text.split()
    if not words:
        return [""]
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}".strip()
        if current and text_width(candidate, size) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    lines.append(current)
    if len(lines) > max_lines:
        kept = lines[: max_lines - 1]
        rest = " ".join(lines[max_lines - 1:])
        lines = kept + [rest]
    last = lines[-1]
    while text_width(last, size) > width and len(last) > 1:
        last = last[:-2] + "…"
    lines[-1] = last
    return lines
