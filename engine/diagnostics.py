"""One diagnostic shape for everything an author can get wrong."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum

__all__ = [
    "CODES",
    "DefinitionError",
    "Diagnostic",
    "Location",
    "Severity",
    "did_you_mean",
    "format_diagnostics",
    "sort_diagnostics",
]


class Severity(StrEnum):
    """How bad a diagnostic is: errors make a bundle invalid, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a source file (1-based line and column)."""

    file: str
    line: int = 0
    column: int = 0


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A problem found in a definition, with where it is and how to fix it."""

    code: str
    message: str
    file: str = ""
    line: int = 0
    column: int = 0
    pointer: str = ""
    hint: str = ""
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        """True for errors, False for warnings."""
        return self.severity is Severity.ERROR

    def to_dict(self) -> dict[str, object]:
        """The JSON shape printed by ``regelwerk validate --format json``."""
        data = asdict(self)
        data["severity"] = self.severity.value
        return {
            key: data[key]
            for key in ("code", "severity", "message", "file", "line", "column", "pointer", "hint")
        }

    def format(self) -> str:
        """``file:line:col: severity code: message`` plus the pointer and hint."""
        where = f"{self.file or '<input>'}:{self.line}:{self.column}"
        text = f"{where}: {self.severity.value} {self.code}: {self.message}"
        if self.pointer:
            text += f" [at {self.pointer}]"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Deduplicate and sort by file, line, column, code."""
    unique = set(diagnostics)
    return sorted(unique, key=lambda d: (d.file, d.line, d.column, d.code, d.pointer, d.message))


class DefinitionError(Exception):
    """Raised once with every diagnostic of a load/validate/compile run."""

    exit_code = 1

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(sort_diagnostics(diagnostics))
        errors = [d for d in self.diagnostics if d.is_error]
        first = errors[0].format() if errors else "no errors"
        super().__init__(f"{len(errors)} definition error(s); first: {first}")


def format_diagnostics(diagnostics: Sequence[Diagnostic], fmt: str = "text") -> str:
    """Render diagnostics as text, json or GitHub workflow annotations."""
    ordered = sort_diagnostics(diagnostics)
    if fmt == "json":
        valid = not any(d.is_error for d in ordered)
        return json.dumps(
            {"valid": valid, "diagnostics": [d.to_dict() for d in ordered]}, indent=2, ensure_ascii=False
        )
    if fmt == "github":
        lines = []
        for d in ordered:
            level = "error" if d.is_error else "warning"
            message = f"{d.code}: {d.message}" + (f" (hint: {d.hint})" if d.hint else "")
            message = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            lines.append(f"::{level} file={d.file},line={d.line},col={d.column},title={d.code}::{message}")
        return "\n".join(lines)
    return "\n".join(d.format() for d in ordered)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A 'did you mean' hint, or an empty string when nothing is close."""
    matches = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else ""


#: Every stable diagnostic code with a one-line description (documented in docs/diagnostics.md).
CODES: dict[str, str] = {
    # loading
    "RW001": "YAML syntax error",
    "RW002": "duplicate key in a mapping",
    "RW003": "tab character used for indentation",
    "RW004": "file is not valid UTF-8 text (or is binary)",
    "RW005": "file is larger than the size limit",
    "RW006": "too many aliases or too large an expansion (alias bomb)",
    "RW007": "nesting deeper than the limit",
    "RW008": "document is not a mapping",
    "RW009": "file or path cannot be read",
    "RW010": "unsupported YAML tag",
    "RW011": "too many documents in one file",
    # envelope and schema
    "RW100": "unknown apiVersion",
    "RW101": "unknown kind",
    "RW102": "schema violation: wrong type",
    "RW103": "schema violation: required field missing",
    "RW104": "schema violation: unknown key",
    "RW105": "schema violation: value not allowed",
    "RW106": "schema violation",
    # bundles and overlays
    "RW200": "duplicate document (same kind and name)",
    "RW201": "overlay targets a document that the base does not have",
    "RW202": "bundle manifest problem",
    "RW203": "extends cycle",
    "RW204": "patch problem",
    "RW206": "patch adds an item whose id is close to one the base has (a typo that would append)",
    # references and ids
    "RW300": "duplicate id",
    "RW301": "reference to an id that does not exist",
    "RW302": "reference to a document that does not exist",
    "RW303": "action parameter names a role no permission matrix defines",
    "RW305": "action parameters (`with:`) do not fit the action",
    "RW306": "action used in a kind of definition it does not run in (workflows or rules)",
    # conditions
    "RW400": "condition problem",
    "RW401": "unknown condition function",
    "RW402": "invalid ISO-8601 duration",
    "RW403": "invalid regular expression",
    # the fact model (what each place can read)
    "RW410": "unknown fact path",
    "RW411": "values of incompatible types compared",
    "RW412": "an optional fact read where its absence changes the answer",
    "RW413": "Facts for a fact type that does not exist",
    "RW414": "Facts redeclares a standard field",
    # compile (kind specific codes are documented by the kinds: RW5xx workflows, RW6xx rules,
    # RW7xx permissions, RW8xx schedules/talent, RW9xx recruitment and templates)
    "RW500": "compile problem",
    # scenarios
    "RW050": "scenario problem",
}
