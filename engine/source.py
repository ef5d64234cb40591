"""Safe YAML loading that remembers where every node came from.

PyYAML's event stream is folded into plain ``dict``/``list`` subclasses (``YMap``,
``YSeq``) that carry the file, line and column of each value and key, so any
later phase (schema, references, compile) can point at the right place, even
after a customer overlay has been merged onto a base.

Limits (documented in docs/authoring.md): see ``Limits``. Scalars follow the
YAML 1.2 core schema (only ``true``/``false`` are booleans, so ``no``/``ja`` stay
strings, and dates stay ISO strings).
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from regelwerk.diagnostics import Diagnostic, Location
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)

__all__ = [
    "DATA_LIMITS",
    "DEFAULT_LIMITS",
    "Limits",
    "ParsedFile",
    "SourceDocument",
    "YMap",
    "YSeq",
    "decode_source",
    "document_kinds",
    "dump_yaml",
    "escape_pointer",
    "iter_pattern",
    "load_text",
    "locate",
    "read_source",
    "to_plain",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard limits that keep hostile or accidental input bounded."""

    max_file_bytes: int = 2 * 1024 * 1024
    max_depth: int = 64
    max_aliases: int = 1000
    max_expanded_nodes: int = 250_000
    max_documents: int = 2000


DEFAULT_LIMITS = Limits()
#: Data files (stories, employee and organisation files) are read with the same guards but a much larger size and
#: node budget than definitions: a 50,000-employee story is data, not a definition.
DATA_LIMITS = Limits(max_file_bytes=256 * 1024 * 1024, max_expanded_nodes=50_000_000, max_aliases=1000,
                     max_documents=2000)


class YMap(dict[str, Any]):
    """A mapping that knows where it, its keys and its values are in the source."""

    __slots__ = ("key_locs", "loc", "value_locs")  # no instance dict: a 100,000-employee story has 100,000s of maps
    loc: Location
    key_locs: dict[str, Location]
    value_locs: dict[str, Location]

    def __init__(self, loc: Location | None = None) -> None:
        super().__init__()
        self.loc = loc or Location("")
        self.key_locs = {}
        self.value_locs = {}

    def put(self, key: str, value: Any, key_loc: Location, value_loc: Location) -> None:
        """Set a key together with its locations."""
        self[key] = value
        self.key_locs[key] = key_loc
        self.value_locs[key] = value_loc


class YSeq(list[Any]):
    """A sequence that knows where it and its items are in the source."""

    __slots__ = ("item_locs", "loc")
    loc: Location
    item_locs: list[Location]

    def __init__(self, loc: Location | None = None) -> None:
        super().__init__()
        self.loc = loc or Location("")
        self.item_locs = []

    def push(self, value: Any, loc: Location) -> None:
        """Append an item with its location."""
        self.append(value)
        self.item_locs.append(loc)


#: what :func:`load_text` streams: the key path of a sequence in a document (``("spec", "events")``) and a callback
#: that gets each of its items (index, value, location) as soon as the item is parsed, instead of the sequence
Stream = tuple[tuple[str, ...], Callable[[int, Any, "Location"], None]]


class _StreamedSeq(YSeq):
    """A sequence whose items go to a callback as they are parsed and are not kept (see :data:`Stream`): a large data
    file's list is never in memory whole, only its items one at a time and what the callback keeps of them."""

    __slots__ = ("seen", "sink")

    def __init__(self, loc: Location, sink: Callable[[int, Any, Location], None]) -> None:
        super().__init__(loc)
        self.sink = sink
        self.seen = 0

    def push(self, value: Any, loc: Location) -> None:
        """Hand the item to the callback."""
        self.sink(self.seen, value, loc)
        self.seen += 1


@dataclass(slots=True)
class SourceDocument:
    """One YAML document of a definition file, with its position-carrying data."""

    file: str
    index: int
    data: YMap
    origin: tuple[str, ...] = field(default_factory=tuple)

    @property
    def kind(self) -> str:
        """The document's ``kind`` (empty if missing or not a string)."""
        value = self.data.get("kind")
        return value if isinstance(value, str) else ""

    @property
    def name(self) -> str:
        """The document's ``metadata.name`` (empty if missing)."""
        meta = self.data.get("metadata")
        value = meta.get("name") if isinstance(meta, dict) else None
        return value if isinstance(value, str) else ""

    @property
    def spec(self) -> Any:
        """The document's ``spec`` (None if missing)."""
        return self.data.get("spec")

    @property
    def location(self) -> Location:
        """Where the document starts."""
        return self.data.loc


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """A file's text and the documents :func:`load_text` made of it without any diagnostic.

    Kept so that a second reader of the same file (``regelwerk simulate`` loads the customer directory as a
    bundle, which parses ``story.yaml`` to see its kind, and then the story) need not parse it again.
    """

    text: str
    file: str
    limits: Limits
    documents: tuple[SourceDocument, ...]

    def serves(self, text: str, limits: Limits) -> bool:
        """Whether ``load_text(text, name, limits)`` gives these documents (shown as ``file``) and no diagnostic.

        The text is the same, and every limit is at least the one this parse kept within (a parse that stayed
        within smaller limits gives the same documents under larger ones). The locations name ``file``.
        """
        mine, theirs = self.limits, limits
        return (self.text == text
                and theirs.max_file_bytes >= mine.max_file_bytes and theirs.max_depth >= mine.max_depth
                and theirs.max_aliases >= mine.max_aliases
                and theirs.max_expanded_nodes >= mine.max_expanded_nodes
                and theirs.max_documents >= mine.max_documents)


def escape_pointer(token: str | int) -> str:
    """Escape one JSON pointer reference token (RFC 6901)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def locate(root: Any, pointer: str, key: bool = False) -> Location:
    """The best-known location of ``pointer`` inside ``root`` (the key's, if ``key``)."""
    node = root
    best = getattr(root, "loc", Location(""))
    if not pointer:
        return best
    tokens = [_unescape(t) for t in pointer.lstrip("/").split("/")]
    for i, token in enumerate(tokens):
        last = i == len(tokens) - 1
        if isinstance(node, YMap):
            if token not in node:
                return best
            locs = node.key_locs if (key and last) else node.value_locs
            best = locs.get(token, best)
            node = node[token]
        elif isinstance(node, YSeq):
            try:
                index = int(token)
                node_loc = node.item_locs[index]
            except (ValueError, IndexError):
                return best
            best = node_loc
            node = node[index]
        else:
            return best
    return best


def iter_pattern(root: Any, pattern: str) -> Iterator[tuple[str, Any]]:
    """Yield ``(pointer, value)`` for every match of a pointer pattern (``*`` matches any key or index)."""
    tokens = [_unescape(t) for t in pattern.lstrip("/").split("/")] if pattern.strip("/") else []

    def walk(node: Any, index: int, pointer: str) -> Iterator[tuple[str, Any]]:
        if index == len(tokens):
            yield pointer, node
            return
        token = tokens[index]
        if isinstance(node, dict):
            keys = list(node) if token == "*" else ([token] if token in node else [])
            for k in keys:
                yield from walk(node[k], index + 1, f"{pointer}/{escape_pointer(k)}")
        elif isinstance(node, list):
            if token == "*":
                for i, item in enumerate(node):
                    yield from walk(item, index + 1, f"{pointer}/{i}")
            elif token.isdigit() and int(token) < len(node):
                yield from walk(node[int(token)], index + 1, f"{pointer}/{token}")

    yield from walk(root, 0, "")


def to_plain(value: Any, *, intern: bool = False) -> Any:
    """Strip location wrappers: plain dicts and lists, for dumping and hashing. ``intern``: every text (keys and
    values) as ``sys.intern`` gives it, so texts that repeat across documents kept for long are one object each."""
    if isinstance(value, dict):
        return {to_plain(k, intern=intern): to_plain(v, intern=intern) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v, intern=intern) for v in value]
    return sys.intern(value) if intern and type(value) is str else value


class _Dumper(yaml.SafeDumper):
    """PyYAML's dumper resolves scalars by YAML 1.1; quote every string our 1.2 loader would not read back."""


def _reads_back_otherwise(value: str) -> bool:
    try:
        return bool(_plain_scalar(value) != value)
    except _NumberError:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    node = dumper.represent_str(value)
    if any(ch in value for ch in "\x85\u2028\u2029"):
        node.style = '"'  # YAML 1.1 line breaks: only the double-quoted style escapes them (as \N, \L, \P)
    elif node.style is None and _reads_back_otherwise(value):  # e.g. "0o17" or "1e3": numbers in YAML 1.2
        node.style = "'"
    return node


_Dumper.add_representer(str, _represent_str)


def dump_yaml(documents: list[Any]) -> str:
    """Plain data (see ``to_plain``) as a YAML stream that ``load_text`` reads back to the same values."""
    text: str = yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                              default_flow_style=False)
    return text


def _read_bounded(handle: Any, most: int) -> bytes:
    """Up to ``most`` bytes, in 1 MiB chunks: ``read(most)`` would allocate ``most`` bytes up front, and the
    data limit is 256 MiB (a 200 KB story file cost a 256 MiB buffer and seconds of page faults)."""
    parts: list[bytes] = []
    size = 0
    while size < most:
        chunk = handle.read(min(1 << 20, most - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def read_source(path: str, display: str, limits: Limits = DEFAULT_LIMITS) -> tuple[str | None, list[Diagnostic]]:
    """Read a file as UTF-8 text without reading more than the size limit."""
    try:
        # O_NONBLOCK: opening a FIFO named *.yaml must not block; fstat then refuses anything but a regular file
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return None, [Diagnostic("RW009", f"cannot read file: {exc.strerror or exc}", display, 1, 1)]
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            return None, [Diagnostic("RW009", "cannot read file: it is a directory", display, 1, 1)]
        if not stat.S_ISREG(mode):
            return None, [Diagnostic("RW012", "not a regular file (a FIFO, device or socket): not read", display, 1, 1,
                                     hint="definitions and data are read from regular files only")]
        with os.fdopen(fd, "rb") as handle:
            fd = -1
            raw = _read_bounded(handle, limits.max_file_bytes + 1)
    except OSError as exc:
        return None, [Diagnostic("RW009", f"cannot read file: {exc.strerror or exc}", display, 1, 1)]
    finally:
        if fd >= 0:
            os.close(fd)
    if len(raw) > limits.max_file_bytes:
        return None, [Diagnostic(
            "RW005", f"file is larger than {limits.max_file_bytes} bytes", display, 1, 1,
            hint="split the definitions over several files in the bundle directory",
        )]
    return decode_source(raw, display)


def decode_source(raw: bytes, display: str) -> tuple[str | None, list[Diagnostic]]:
    """Decode bytes as UTF-8 (with optional BOM); binary and non-UTF-8 input is a diagnostic."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        line, col = _line_col(raw, nul)
        return None, [Diagnostic("RW004", "file contains NUL bytes: it is binary, not YAML text",
                                 display, line, col)]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, col = _line_col(raw, exc.start)
        return None, [Diagnostic(
            "RW004", f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})", display, line, col,
            hint="save the file as UTF-8",
        )]
    return text, []


def _line_col(raw: bytes, offset: int) -> tuple[int, int]:
    before = raw[:offset]
    line = before.count(b"\n") + 1
    col = offset - (before.rfind(b"\n") + 1) + 1
    return line, col


# --- scalar resolution: the YAML 1.2 core schema --------------------------------------------

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_TRUE = re.compile(r"^(?:true|True|TRUE)$")
_BOOL_FALSE = re.compile(r"^(?:false|False|FALSE)$")
_INT = re.compile(r"^[-+]?[0-9]+$")
_INT_OCT = re.compile(r"^0o[0-7]+$")
_INT_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")

_STANDARD_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


_TAG_TYPES: dict[str, type | tuple[type, ...]] = {
    "tag:yaml.org,2002:int": int, "tag:yaml.org,2002:float": (int, float),
    "tag:yaml.org,2002:bool": bool, "tag:yaml.org,2002:null": type(None),
}


class _TagError(ValueError):
    pass


def _short_tag(tag: str | None) -> str:
    """``tag:yaml.org,2002:python/object`` as the author wrote it: ``!!python/object``."""
    text = tag or ""
    return "!!" + text[len("tag:yaml.org,2002:"):] if text.startswith("tag:yaml.org,2002:") else text


#: The first characters of every plain scalar that is not a string in the core schema (null ``~``/``null``,
#: booleans, numbers, ``.inf``/``.nan``); any other plain scalar is a string without trying the patterns.
_NOT_TEXT_START = frozenset("~nNtTfF0123456789+-.")


#: The most digits a plain integer may have (Python refuses to convert more than 4,300; no HR value needs 100).
MAX_INT_DIGITS = 1000


class _NumberError(ValueError):
    """A plain integer too long to be a value (``RW013``)."""


def _plain_scalar(text: str) -> Any:
    if text and text[0] not in _NOT_TEXT_START:
        return text
    if len(text) > MAX_INT_DIGITS and (_INT.match(text) or _INT_OCT.match(text) or _INT_HEX.match(text)):
        raise _NumberError(f"an integer of {len(text)} characters (at most {MAX_INT_DIGITS})")
    if _NULL.match(text):
        return None
    if _BOOL_TRUE.match(text):
        return True
    if _BOOL_FALSE.match(text):
        return False
    if _INT.match(text):
        return int(text)
    if _INT_OCT.match(text):
        return int(text[2:], 8)
    if _INT_HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        return float(text)
    if _INF.match(text):
        return float("-inf") if text.startswith("-") else float("inf")
    if _NAN.match(text):
        return float("nan")
    return text


def _scalar(event: ScalarEvent) -> Any:
    tag = event.tag
    if tag == "!":
        return event.value  # the non-specific tag "!" makes a scalar a string (YAML 1.2, 6.9.1)
    if tag is None:
        if event.implicit[0] and not event.style:  # plain: None from PyYAML, "" from libyaml
            return _plain_scalar(event.value)
        return event.value
    if tag not in _STANDARD_TAGS:
        raise _TagError(_short_tag(tag))
    if tag == "tag:yaml.org,2002:str":
        return event.value
    value = _plain_scalar(event.value)
    expected = _TAG_TYPES.get(tag)
    if expected is not None and not isinstance(value, expected):
        raise _TagError(f"{_short_tag(tag)} cannot hold {event.value!r}")
    return float(value) if tag == "tag:yaml.org,2002:float" else value


class _Abort(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


@dataclass
class _Frame:
    node: YMap | YSeq
    size: int = 1
    height: int = 1
    anchor: str | None = None
    key: str | None = None
    key_loc: Location | None = None
    merges: list[tuple[YMap, Location]] = field(default_factory=list)
    path: tuple[str, ...] = ()  # the keys down to this node (a list's items are "*"); kept only for a stream


#: libyaml's event parser, when PyYAML was built with it (about ten times faster than the pure-Python one)
_CParser: Any
try:
    from yaml._yaml import CParser as _CParser  # yaml.cyaml's re-export is not in its __all__
except ImportError:  # pragma: no cover - PyYAML built without libyaml: the pure-Python parser does it all
    _CParser = None


# libyaml and PyYAML differ on tabs (libyaml accepts them as separators), on byte order marks after the
# start and on YAML 1.1 line breaks; text with any of them takes the pure-Python parser, whose behaviour
# the tests pin down
_SLOW_PATH_CHARS = re.compile("[\t\ufeff\x85\u2028\u2029]")


class _Fallback(Exception):
    """The fast parser met a YAML error: rerun the pure-Python parser for its exact, tested diagnostics."""


def load_text(text: str, file: str, limits: Limits = DEFAULT_LIMITS,
              stream: Stream | None = None) -> tuple[list[SourceDocument], list[Diagnostic]]:
    """Parse every YAML document in ``text``; return the mapping documents and all problems found.

    ``stream``: the sequence at that key path of each document is handed to the callback item by item and left empty
    in the document (a large story's events); with a YAML problem the callback may have seen some items, and a
    caller that needs the diagnostics exactly as a parse without ``stream`` gives them parses again without it."""
    return _load_text(text, file, limits, fast=_CParser is not None, stream=stream)


def document_kinds(text: str) -> list[str] | None:
    """Each YAML document's top-level ``kind`` (empty when it has none), read from the parser's events without
    building anything: what a large file is, before deciding how to read it. None when the text is no YAML the fast
    parser reads (the caller then reads it the usual way)."""
    if _CParser is None or _SLOW_PATH_CHARS.search(text):
        return None
    parser = _CParser(text)
    kinds: list[str] = []
    depth = 0  # 1: in a document's top-level mapping
    key: Any = None  # the top-level key whose value comes next (None: a key comes next)
    mapping = False
    try:
        while True:
            event = parser.get_event()
            if event is None or isinstance(event, StreamEndEvent):
                return kinds
            if isinstance(event, DocumentStartEvent):
                kinds.append("")
                depth, key, mapping = 0, None, False
            elif isinstance(event, (MappingStartEvent, SequenceStartEvent)):
                if depth == 0:  # the document itself: only a mapping has a kind
                    mapping = isinstance(event, MappingStartEvent)
                depth += 1
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                depth -= 1
                if depth == 1:  # a top-level value (or a collection as a key) ended
                    key = None
            elif depth == 1 and mapping and isinstance(event, (ScalarEvent, AliasEvent)):
                if key is None:
                    key = event.value if isinstance(event, ScalarEvent) else ""
                else:
                    if key == "kind" and isinstance(event, ScalarEvent) and not kinds[-1]:
                        kinds[-1] = event.value
                    key = None
    except yaml.YAMLError:
        return None


def _load_text(text: str, file: str, limits: Limits, fast: bool,
               stream: Stream | None = None) -> tuple[list[SourceDocument], list[Diagnostic]]:
    if len(text) > limits.max_file_bytes:  # characters <= bytes: callers that skip read_source stay bounded
        return [], [Diagnostic("RW005", f"file is larger than {limits.max_file_bytes} bytes", file, 1, 1,
                               hint="split the definitions over several files in the bundle directory")]
    bad = yaml.reader.Reader.NON_PRINTABLE.search(text)  # the same check for both parsers, before parsing
    if bad is not None:
        return [], [_control_diagnostic(text, bad.start(), file)]
    if fast and not _SLOW_PATH_CHARS.search(text):
        try:
            return _parse(text, file, limits, _CParser(text), fast=True, stream=stream)
        except _Fallback:
            pass
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        return [], [_reader_diagnostic(exc, text, file)]
    return _parse(text, file, limits, loader, fast=False, stream=stream)


def _parse(text: str, file: str, limits: Limits, loader: Any, fast: bool,
           stream: Stream | None = None) -> tuple[list[SourceDocument], list[Diagnostic]]:
    documents: list[SourceDocument] = []
    diagnostics: list[Diagnostic] = []

    def loc(mark: Any) -> Location:
        return Location(file, mark.line + 1, mark.column + 1)

    anchors: dict[str, tuple[Any, int, int]] = {}  # value, expanded size, nesting height
    alias_count = 0
    expanded = 0
    stack: list[_Frame] = []
    root: list[tuple[Any, Location]] = []

    max_nodes = limits.max_expanded_nodes

    def count(size: int, value_loc: Location) -> None:
        nonlocal expanded
        expanded += size
        if expanded > limits.max_expanded_nodes:
            raise _Abort(Diagnostic("RW006", f"document expands to more than {limits.max_expanded_nodes} nodes",
                                    file, value_loc.line, value_loc.column,
                                    hint="aliases that nest other aliases multiply; write the data out"))

    def attach(value: Any, value_loc: Location, size: int, height: int = 0) -> None:
        if not stack:
            root.append((value, value_loc))
            return
        frame = stack[-1]
        frame.size += size
        frame.height = max(frame.height, height + 1)
        if isinstance(frame.node, YSeq):
            frame.node.push(value, value_loc)
            return
        if frame.key is None:
            if not isinstance(value, str):
                raise _Abort(Diagnostic("RW001", "mapping keys must be plain scalars", file,
                                        value_loc.line, value_loc.column))
            frame.key, frame.key_loc = value, value_loc
            return
        key, key_loc = frame.key, frame.key_loc or value_loc
        frame.key = None
        if key == "<<" and isinstance(value, (YMap, YSeq)):
            sources = [value] if isinstance(value, YMap) else list(value)
            for source in sources:
                if not isinstance(source, YMap):
                    raise _Abort(Diagnostic("RW001", "a merge key (<<) takes a mapping or a list of mappings",
                                            file, value_loc.line, value_loc.column))
                frame.merges.append((source, key_loc))
            return
        if key in frame.node:
            first = frame.node.key_locs[key]
            diagnostics.append(Diagnostic(
                "RW002", f"duplicate key {key!r} (first defined at line {first.line})", file,
                key_loc.line, key_loc.column, hint="YAML would silently keep only the last value; remove one",
            ))
            return
        frame.node.put(key, value, key_loc, value_loc)

    try:
        while True:
            event = loader.get_event()
            # the most frequent events first (scalars, then collections); the classes are disjoint
            if isinstance(event, ScalarEvent):
                mark: Any = event.start_mark
                mark_loc = Location(file, mark.line + 1, mark.column + 1)
                expecting_key = bool(stack) and isinstance(stack[-1].node, YMap) and stack[-1].key is None
                try:
                    value = event.value if expecting_key and event.tag is None else _scalar(event)
                except _TagError as exc:
                    diagnostics.append(Diagnostic("RW010", f"unsupported YAML tag: {exc}", file,
                                                  mark_loc.line, mark_loc.column,
                                                  hint="only plain YAML data is allowed; remove the tag"))
                    value = event.value
                except _NumberError as exc:
                    diagnostics.append(Diagnostic("RW013", f"number too long: {exc}", file, mark_loc.line,
                                                  mark_loc.column, hint="quote it if it is text (an id or a code)"))
                    value = event.value
                if expecting_key and not isinstance(value, str):
                    value = event.value
                if event.anchor:
                    anchors[event.anchor] = (value, 1, 0)
                expanded += 1
                if expanded > max_nodes:
                    count(0, mark_loc)  # raises RW006
                if stack:  # what attach() does with a scalar inside a collection, without the calls
                    frame = stack[-1]
                    into = frame.node
                    if expecting_key:  # a key (a string, see above); a frame's height is at least 1 already
                        frame.size += 1
                        frame.key, frame.key_loc = value, mark_loc
                        continue
                    if isinstance(into, YSeq):
                        frame.size += 1
                        into.push(value, mark_loc)
                        continue
                    key = frame.key
                    if key is not None and key not in into:  # not a duplicate (a scalar is never merged)
                        frame.size += 1
                        frame.key = None
                        into.put(key, value, frame.key_loc or mark_loc, mark_loc)
                        continue
                attach(value, mark_loc, 1)
                continue
            if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
                mark_loc = loc(event.start_mark)
                if event.tag not in (None, "!") and event.tag not in _STANDARD_TAGS:
                    diagnostics.append(Diagnostic("RW010", f"unsupported YAML tag: {_short_tag(event.tag)}", file,
                                                  mark_loc.line, mark_loc.column,
                                                  hint="only plain YAML data is allowed; remove the tag"))
                if stack and isinstance(stack[-1].node, YMap) and stack[-1].key is None:
                    raise _Abort(Diagnostic("RW001", "mapping keys must be plain scalars", file,
                                            mark_loc.line, mark_loc.column))
                if len(stack) >= limits.max_depth:
                    raise _Abort(Diagnostic("RW007", f"nesting deeper than {limits.max_depth} levels", file,
                                            mark_loc.line, mark_loc.column))
                node: YMap | YSeq = YMap(mark_loc) if isinstance(event, MappingStartEvent) else YSeq(mark_loc)
                if stream is None:
                    stack.append(_Frame(node, anchor=event.anchor))
                    continue
                path = stack[-1].path + (str(stack[-1].key),) if stack and isinstance(stack[-1].node, YMap) else (
                    stack[-1].path + ("*",) if stack else ())
                if path == stream[0] and isinstance(node, YSeq):
                    node = _StreamedSeq(mark_loc, stream[1])
                stack.append(_Frame(node, anchor=event.anchor, path=path))
                continue
            if isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                frame = stack.pop()
                if isinstance(frame.node, YMap):
                    for source, merge_loc in frame.merges:
                        for k, v in source.items():
                            if k not in frame.node:
                                frame.node.put(k, v, source.key_locs.get(k, merge_loc),
                                               source.value_locs.get(k, merge_loc))
                if frame.anchor:
                    anchors[frame.anchor] = (frame.node, frame.size, frame.height)
                count(1, frame.node.loc)
                attach(frame.node, frame.node.loc, frame.size, frame.height)
                continue
            if isinstance(event, AliasEvent):
                mark_loc = loc(event.start_mark)
                alias_count += 1
                if alias_count > limits.max_aliases:
                    raise _Abort(Diagnostic("RW006", f"more than {limits.max_aliases} aliases in one document",
                                            file, mark_loc.line, mark_loc.column))
                if event.anchor not in anchors:
                    raise _Abort(Diagnostic("RW001", f"unknown alias *{event.anchor}", file,
                                            mark_loc.line, mark_loc.column))
                value, size, height = anchors[event.anchor]
                if len(stack) + height > limits.max_depth:
                    # an alias nests its whole anchor here: aliases of aliases must not bypass the depth limit
                    raise _Abort(Diagnostic("RW007", f"nesting deeper than {limits.max_depth} levels "
                                            f"(through alias *{event.anchor})", file, mark_loc.line, mark_loc.column))
                count(size, mark_loc)
                attach(value, mark_loc, size, height)
                continue
            if isinstance(event, (StreamStartEvent, DocumentStartEvent)):
                continue
            if isinstance(event, StreamEndEvent):
                break
            if isinstance(event, DocumentEndEvent):
                anchors.clear()
                alias_count = 0
                expanded = 0
                for value, value_loc in root:
                    index = len(documents)
                    if len(documents) >= limits.max_documents:
                        raise _Abort(Diagnostic("RW011", f"more than {limits.max_documents} documents in one file",
                                                file, value_loc.line, value_loc.column))
                    if value is None:
                        continue
                    if not isinstance(value, YMap):
                        diagnostics.append(Diagnostic(
                            "RW008", f"a definition document must be a mapping, not {_type_name(value)}",
                            file, value_loc.line, value_loc.column,
                            hint="start with 'apiVersion: regelwerk/v1' and 'kind: ...'",
                        ))
                        continue
                    documents.append(SourceDocument(file, index, value))
                root.clear()
                continue
    except _Abort as abort:
        diagnostics.append(abort.diagnostic)
        return [], diagnostics
    except yaml.MarkedYAMLError as exc:
        if fast:
            raise _Fallback from exc
        diagnostics.append(_syntax_diagnostic(exc, file))
        return [], diagnostics
    except yaml.YAMLError as exc:  # reader errors (control characters) carry no mark
        if fast:
            raise _Fallback from exc
        diagnostics.append(Diagnostic("RW001", f"YAML error: {exc}", file, 1, 1))
        return [], diagnostics
    except RecursionError:
        diagnostics.append(Diagnostic("RW007", "nesting too deep to parse", file, 1, 1))
        return [], diagnostics
    return documents, diagnostics


def _reader_diagnostic(exc: yaml.reader.ReaderError, text: str, file: str) -> Diagnostic:
    position = exc.position if isinstance(exc.position, int) else 0
    return _control_diagnostic(text, position, file)


def _control_diagnostic(text: str, position: int, file: str) -> Diagnostic:
    before = text[:position]
    line = before.count("\n") + 1
    column = position - (before.rfind("\n") + 1) + 1
    char = ord(text[position]) if position < len(text) else 0
    return Diagnostic("RW004", f"file contains the control character U+{char:04X}, which YAML does not allow",
                      file, line, column, hint="remove the character (or save the file as plain UTF-8 text)")


def _syntax_diagnostic(exc: yaml.MarkedYAMLError, file: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = exc.problem or "syntax error"
    if "'\\t'" in problem or "\t" in problem:
        return Diagnostic("RW003", "tab character used for indentation", file, line, col,
                          hint="YAML indents with spaces only; replace the tab with spaces")
    message = problem
    if exc.context:
        message = f"{exc.context}: {problem}"
    return Diagnostic("RW001", f"YAML syntax error: {message}", file, line, col)


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return type(value).__name__
