"""Cell values as the types an import declares: text, date, list, integer, number, boolean, email.

Dates are ISO (``2027-03-01``) or Dutch ``dd-mm-jjjj`` (``1-3-2027``, ``01-03-2027``), and nothing else:
week dates (``2027-W52-7``), ordinal dates, compact ``20270301`` and ``03/01/2027`` (which order?) are
refused. A spreadsheet's own date cell is a date. Numbers where text is expected (an employee number typed
into a number cell) become their digits when whole; a fraction or a date there is refused, never guessed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from datetime import date, datetime, time
from typing import Any

__all__ = ["TYPES", "convert", "id_problem", "parse_date", "split_list"]

#: From here on a number cell (a workbook's; a CSV cell is text) is not the number typed: a spreadsheet keeps 15
#: significant digits.
NUMBER_CELL_EXACT = 10**15
#: The value types a column may declare.
TYPES = ("text", "date", "list", "integer", "number", "boolean", "email")

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}")
_DUTCH = re.compile(r"(\d{1,2})-(\d{1,2})-(\d{4})")
_EMAIL = re.compile(r"[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\".]+")
_TRUE = {"ja", "j", "yes", "y", "true", "waar", "1", "x"}
_FALSE = {"nee", "n", "no", "false", "onwaar", "0"}
#: List cells: items separated by ``;``, ``|`` or ``,`` (the first of these that occurs).
LIST_SEPARATORS = (";", "|", ",")


def parse_date(value: Any) -> date:
    """A date from a date/datetime cell or ISO / ``dd-mm-jjjj`` text; ``ValueError`` otherwise."""
    if isinstance(value, datetime):
        if value.time() != time(0, 0):
            raise ValueError(f"{value.isoformat(sep=' ')} has a time of day; a date is expected")
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD or DD-MM-YYYY)")
    text = value.strip()
    try:
        if _ISO.fullmatch(text):
            return date.fromisoformat(text)
        match = _DUTCH.fullmatch(text)
        if match:
            return date(int(match[3]), int(match[2]), int(match[1]))
    except ValueError:
        pass
    raise ValueError(f"{text!r} is not a date (YYYY-MM-DD or DD-MM-YYYY)")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a true/false cell; text is expected")
    if isinstance(value, (int, float)) and abs(value) >= NUMBER_CELL_EXACT:
        # a spreadsheet keeps 15 digits of a number: 1234567890123456 typed into a number cell is stored as
        # 1234567890123450 (found by attack: imported as that, digits nobody typed, another person's number or nobody's)
        raise ValueError(f"{value:.15g} is a number cell of more than 15 digits, which a spreadsheet does not keep "
                         "exactly; text is expected (format the column as text and type the number again)")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))  # a number cell holding an employee number: 101.0 is "101"
        raise ValueError(f"{value!r} is a number with a fraction; text is expected "
                         "(format the column as text in the spreadsheet)")
    if isinstance(value, (date, datetime, time)):
        raise ValueError(f"{value.isoformat()} is a date cell; text is expected "
                         "(format the column as text in the spreadsheet)")
    raise ValueError(f"{value!r} cannot be read as text")


def split_list(value: Any) -> tuple[str, ...]:
    """Items of a list cell (``a; b``, ``a|b``, ``a, b``), stripped, empty items dropped."""
    text = _text(value)
    for separator in LIST_SEPARATORS:
        if separator in text:
            return tuple(part.strip() for part in text.split(separator) if part.strip())
    return (text,) if text else ()


def convert(value: Any, type_name: str, max_length: int = 0) -> Any:
    """``value`` (a cell, not blank) as ``type_name``; ``ValueError`` with a message that names the value."""
    if type_name == "date":
        return parse_date(value)
    if type_name == "list":
        items = split_list(value)
        for item in items:
            if max_length and len(item) > max_length:
                raise ValueError(f"an item is longer than {max_length} characters")
        return items
    if type_name == "integer":
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a whole number")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        text = str(value).strip()
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        raise ValueError(f"{text!r} is not a whole number")
    if type_name == "number":
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a number")
        if isinstance(value, (int, float)):
            return value
        text = str(value).strip().replace(",", ".")
        if re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", text):
            return float(text)
        raise ValueError(f"{str(value).strip()!r} is not a number")
    if type_name == "boolean":
        if isinstance(value, bool):
            return value
        text = _text(value).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{text!r} is not ja/nee (yes/no)")
    text = _text(value)
    if max_length and len(text) > max_length:
        raise ValueError(f"{len(text):,} characters, more than the {max_length:,} allowed")
    if type_name == "email" and not _EMAIL.fullmatch(text):
        raise ValueError(f"{text!r} is not an e-mail address")
    return text


def _folded(ident: str) -> str:
    """How an id looks to a person: without case, width or compatibility forms (NFKC) and invisible characters."""
    return "".join(c for c in unicodedata.normalize("NFKC", ident) if unicodedata.category(c) != "Cf").casefold()


def id_problem(ident: str, row: int, looks: dict[str, tuple[str, str]], stored: Collection[str]) -> str | None:
    """Why a row's id cannot be taken as written, or None (``looks``: the folded ids met so far, filled in here;
    ``stored``: the ids of this kind the store has).

    Ids are compared exactly (docs/threat-model.md), so the file is where one person or unit gets one id: a new id
    holding a control or invisible character (a line break typed into the cell, a zero-width space, a direction
    mark) is refused, and so is a new id that differs from another of the file or the store only in case, width or
    such characters (``E1`` beside ``e1``: two employees, each with half of the person's roles and links). An id the
    store has is taken as it is (it already is the one the other systems use). Found by attack in the eighteenth
    round: both were imported as separate people."""
    if not looks and stored:
        for other in stored:
            looks.setdefault(_folded(other), (other, "the store"))
    folded = _folded(ident)
    if ident in stored:
        looks.setdefault(folded, (ident, "the store"))
        return None
    for char in ident:
        if unicodedata.category(char) in ("Cc", "Cf"):
            return (f"id: {ident!r} holds a control or invisible character (U+{ord(char):04X}); an id is what the "
                    "other systems send as it is")
    found = looks.get(folded)
    if found is None:
        looks[folded] = (ident, f"row {row}")
        return None
    other, where = found
    if other == ident:
        return None
    return (f"id: {ident!r} differs from {other!r} ({where}) only in case or look: write the one id the other "
            "systems use for both")
