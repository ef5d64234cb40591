"""The JSON text of the store's JSON columns: ``orjson`` where it gives what the standard library would accept.

Every instance, history row, timer, scheduled item, outbox message and audit row carries a JSON column; a year of
10,000 employees serialises about 180,000 of them and reads back about 150,000 (``json.dumps`` and ``json.loads``
were 8 % of that year's time). ``orjson`` does the same in a tenth (dumps) and a third (loads) of the time.

Same values in, same values out, as with SQLAlchemy's default (``json.dumps`` / ``json.loads``):

- ``dumps``: ``orjson``'s own support for datetimes, dates, times and dataclasses is switched off (``PASSTHROUGH``),
  so such a value reaches the standard library, which raises its ``TypeError`` as before. Whatever ``orjson``
  refuses (an integer beyond 64 bits, a key of another type than ``str``, ``int``, ``float``, ``bool`` or ``None``)
  is serialised by ``json.dumps`` as before. Subclasses of ``dict``, ``list``, ``str`` and ``int`` (the frozen
  mappings, a ``StrEnum``) are written by their contents, as ``json.dumps`` does. The one widening: a plain
  ``Enum`` member and a ``UUID`` are written as their value and text, where ``json.dumps`` raised; a NaN or an
  infinity as ``null``, where ``json.dumps`` wrote a ``NaN`` no JSON reader (PostgreSQL's included) accepts.
  Only the text differs: compact (``{"a":1}``), and UTF-8 instead of ``\\u`` escapes; both databases read it
  as the same JSON (PostgreSQL's ``json`` keeps the text, SQLite's JSON functions read either).
- ``loads`` reads what ``orjson`` reads (strict RFC 8259); anything else (``NaN``, rows written by another
  writer) goes to ``json.loads``, and so does a text with a run of 19 or more digits: ``orjson`` reads an integer
  beyond 64 bits as a float (``2**64`` came back as ``1.8446744073709552e+19``), ``json.loads`` exactly.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "dumps_sorted", "loads"]

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_orjson_dumps = orjson.dumps
_orjson_loads = orjson.loads
_JSONEncodeError = orjson.JSONEncodeError
_JSONDecodeError = orjson.JSONDecodeError


def dumps(value: Any) -> str:
    """``value`` as JSON text (see the module: what ``json.dumps`` accepts, and only that)."""
    try:
        return _orjson_dumps(value, option=_OPTIONS).decode()
    except _JSONEncodeError:
        return json.dumps(value)


_SORTED = _OPTIONS | orjson.OPT_SORT_KEYS
#: the standard library's form of :func:`dumps_sorted`, for what ``orjson`` refuses
_SORTED_STDLIB = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def dumps_sorted(value: Any) -> str:
    """``value`` as compact JSON text with sorted keys, anything JSON has no form for as its ``str()`` (a scheduled
    item's payload: ``json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)``)."""
    try:
        return _orjson_dumps(value, default=str, option=_SORTED).decode()
    except _JSONEncodeError:
        return _SORTED_STDLIB.encode(value)


#: a number orjson might read as a float although it is an integer: 19 digits in a row (inside a string too: such a
#: text only takes the slower way). Found by mapping every digit to one and looking for the run in the bytes (C
#: speed: 0.5 us for a 400-character row, where a regular expression took 4-9 us, more than the parse it guards)
_DIGITS_AS_NINES = bytes.maketrans(b"0123456789", b"9999999999")
_LONG_RUN = b"9" * 19


def loads(text: str | bytes) -> Any:
    """The value of JSON ``text`` (``json.loads`` for what strict JSON does not allow, and for long numbers)."""
    try:
        raw = text.encode() if isinstance(text, str) else text
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 for orjson
        return json.loads(text)
    if _LONG_RUN not in raw.translate(_DIGITS_AS_NINES):
        try:
            return _orjson_loads(raw)
        except _JSONDecodeError:
            pass
    return json.loads(text)
