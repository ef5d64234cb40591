"""Bundles: directories of definition files, customer overlays on a base, the effective result.

Merge rules for an overlay document with the same kind and name as a base document
(``metadata.merge``):

- ``add`` (the default): a new document; naming an existing one is an error (RW200).
- ``replace``: the overlay document replaces the base document whole.
- ``patch``: the overlay is merged into the base: mappings merge key by key; a key set to
  ``null`` is removed (RFC 7396); lists whose items are mappings with an ``id`` merge by id
  (an item with ``$remove: true`` removes that id, a new id is appended); other lists and
  scalars are replaced.
- ``remove``: the base document is dropped.

Every merged value keeps the location of the file that supplied it, so diagnostics point at
the overlay or the base, whichever caused them.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from regelwerk.diagnostics import Diagnostic, Severity
from regelwerk.source import (
    DATA_LIMITS,
    DEFAULT_LIMITS,
    Limits,
    ParsedFile,
    SourceDocument,
    YMap,
    YSeq,
    document_kinds,
    load_text,
    locate,
    read_source,
)

__all__ = [
    "BASES_ENV",
    "BUNDLE_MANIFEST",
    "NON_DEFINITION_KINDS",
    "Bundle",
    "base_directory",
    "env_bases",
    "load_bundle",
    "merge_patch",
    "shipped_standard",
]

BUNDLE_MANIFEST = "bundle.yaml"
#: The organisation's time zone when no bundle.yaml declares ``timezone``.
DEFAULT_TIMEZONE = "Europe/Amsterdam"
#: Documents of these kinds live beside definitions but are not part of a bundle.
NON_DEFINITION_KINDS = frozenset({"Scenario", "Bundle", "Story"})
REMOVE_MARK = "$remove"
YAML_SUFFIXES = (".yaml", ".yml")
#: ``NAME=PATH`` pairs separated by ``os.pathsep``: the bases a bundle may extend by name besides ``standard``
#: (``regelwerk --base NAME=PATH`` sets it for one command).
BASES_ENV = "REGELWERK_BASES"


@dataclass
class Bundle:
    """The effective documents of a bundle (base and overlays merged) and the problems found loading it."""

    name: str
    root: str
    documents: list[SourceDocument] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    chain: tuple[str, ...] = ()
    overlay_changes: dict[tuple[str, str], str] = field(default_factory=dict)
    #: The organisation's IANA time zone (bundle.yaml ``spec.timezone``; an overlay inherits its base's);
    #: empty when no manifest declares one (then :data:`DEFAULT_TIMEZONE`).
    timezone: str = ""
    #: The files of this bundle's own directory that hold only documents of :data:`NON_DEFINITION_KINDS`
    #: (a story, scenarios) and parsed without a diagnostic, by resolved path: their readers (``regelwerk
    #: simulate``'s story) take the parse from here instead of parsing the file again.
    set_aside: dict[str, ParsedFile] = field(default_factory=dict, repr=False, compare=False)

    def find(self, kind: str, name: str) -> SourceDocument | None:
        """The document of this kind and name, if any."""
        for doc in self.documents:
            if doc.kind == kind and doc.name == name:
                return doc
        return None

    def of_kind(self, kind: str) -> list[SourceDocument]:
        """All documents of one kind, in bundle order."""
        return [doc for doc in self.documents if doc.kind == kind]


def shipped_standard() -> Path:
    """The shipped standard bundle directory (``definitions/standard``), via importlib.resources."""
    return Path(str(resources.files("regelwerk.definitions") / "standard"))


def _display(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return rel if not rel.startswith("../../..") else str(path)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _files_of(directory: Path, include: Iterable[str], exclude: Iterable[str]
              ) -> tuple[list[Path], list[Diagnostic]]:
    """The YAML files of a bundle: regular files inside its root only (links out, FIFOs, devices: RW012)."""
    include = list(include)
    exclude = list(exclude)
    root = directory.resolve()
    found: list[Path] = []
    refused: list[Diagnostic] = []

    def refuse(path: Path, why: str) -> None:
        refused.append(Diagnostic("RW012", why, _display(path), 1, 1,
                                  hint="a bundle reads only regular files inside its own directory; copy the file "
                                       "in, or extend a base by name"))

    for current, dirs, files in os.walk(directory):
        for name in list(dirs):
            path = Path(current) / name
            if path.is_symlink():
                dirs.remove(name)  # never followed: what it holds is either inside (read there) or outside (refused)
                if not _inside(path.resolve(), root) and not name.startswith("."):
                    refuse(path, f"the folder link {name!r} leads outside the bundle: not read")
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.endswith(YAML_SUFFIXES) or name == BUNDLE_MANIFEST:
                continue
            path = Path(current) / name
            rel = path.relative_to(directory).as_posix()
            if include and not any(fnmatch.fnmatch(rel, pat) for pat in include):
                continue
            if any(fnmatch.fnmatch(rel, pat) for pat in exclude):
                continue
            why = why_not_read(path, root)
            if why is not None:
                refuse(path, why)
            else:
                found.append(path)
    return found, refused


def why_not_read(path: Path, root: Path) -> str | None:
    """Why a bundle whose (resolved) folder is ``root`` must not read the file ``path`` (``RW012``): a broken
    link, a link that leads outside ``root``, or not a regular file (a FIFO would block the read, a device never
    end); None when it may. Used for the definitions and for the customer's ``data/`` files alike."""
    name = path.name
    try:
        mode = os.stat(path).st_mode  # follows a link: what would be read
    except OSError:
        return f"{name!r} is a broken link: not read"
    if path.is_symlink() and not _inside(path.resolve(), root):
        return f"{name!r} is a link to {path.resolve()}, outside the bundle: not read"
    if not stat.S_ISREG(mode):
        return f"{name!r} is not a regular file (a FIFO, device or socket): not read"
    return None


def _load_files(paths: Iterable[Path], limits: Limits, aside: dict[str, ParsedFile] | None = None
                ) -> tuple[list[SourceDocument], list[Diagnostic]]:
    documents: list[SourceDocument] = []
    diagnostics: list[Diagnostic] = []
    for path in paths:
        display = _display(path)
        text, problems = read_source(str(path), display, limits)
        if text is None and any(p.code == "RW005" for p in problems) and _data_file(path, display, limits):
            continue
        diagnostics.extend(problems)
        if text is None:
            continue
        docs, problems = load_text(text, display, limits)
        diagnostics.extend(problems)
        kept = [d for d in docs if d.kind not in NON_DEFINITION_KINDS]
        documents.extend(kept)
        if aside is not None and docs and not kept and not problems:  # nothing of it enters the bundle
            aside[str(path.resolve())] = ParsedFile(text, display, limits, tuple(docs))
    return documents, diagnostics


def _data_file(path: Path, display: str, limits: Limits) -> bool:
    """Whether a file larger than a definition may be is a data file beside the definitions (a story, scenarios:
    only :data:`NON_DEFINITION_KINDS` but ``Bundle``): then it is no part of the bundle and its reader reads it under
    :data:`DATA_LIMITS` (and reports its problems). Its kinds are read from the parser's events, nothing built: a
    100,000-employee story is not parsed whole here. A 50,000-employee story was refused with RW005 by the
    definition limit, as every file of a bundle's folder was."""
    if limits.max_file_bytes >= DATA_LIMITS.max_file_bytes:
        return False
    text, problems = read_source(str(path), display, DATA_LIMITS)
    if text is None or problems:
        return False
    kinds = document_kinds(text)
    if kinds is None:  # text the fast parser does not take (a tab, a BOM further on): parsed, its events not kept
        docs, problems = load_text(text, display, DATA_LIMITS, stream=(("spec", "events"), lambda *_: None))
        kinds = None if problems else [d.kind for d in docs]
    return bool(kinds) and all(k in NON_DEFINITION_KINDS and k != "Bundle" for k in kinds or ())


def _manifest(directory: Path, limits: Limits) -> tuple[dict[str, Any], YMap | None, list[Diagnostic]]:
    path = directory / BUNDLE_MANIFEST
    if not path.exists():
        return {}, None, []
    display = _display(path)
    if path.is_symlink() and not _inside(path.resolve(), directory.resolve()):
        return {}, None, [Diagnostic("RW012", f"bundle.yaml is a link to {path.resolve()}, outside the bundle: "
                                     "not read", display, 1, 1)]
    text, problems = read_source(str(path), display, limits)
    if text is None:
        return {}, None, problems
    docs, more = load_text(text, display, limits)
    problems = problems + more
    manifests = [d for d in docs if d.kind == "Bundle"]
    if len(manifests) != 1:
        problems.append(Diagnostic("RW202", "bundle.yaml must hold exactly one document of kind Bundle",
                                   display, 1, 1, hint="apiVersion: regelwerk/v1, kind: Bundle, metadata, spec"))
        return {}, None, problems
    data = manifests[0].data
    spec = data.get("spec") or {}
    if not isinstance(spec, dict):
        where = locate(data, "/spec")
        problems.append(Diagnostic("RW202", "spec of a Bundle must be a mapping", where.file, where.line,
                                   where.column, "/spec"))
        return {}, data, problems
    allowed = {"extends", "include", "exclude", "description", "customer", "uses",  # customer, uses: the report
               "timezone"}
    for key in spec:
        if key not in allowed:
            from regelwerk.diagnostics import did_you_mean

            where = locate(data, f"/spec/{key}", key=True)
            problems.append(Diagnostic("RW104", f"unknown key {key!r}", where.file, where.line, where.column,
                                       f"/spec/{key}", hint=did_you_mean(key, allowed)))
    for key in ("include", "exclude"):
        value = spec.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            where = locate(data, f"/spec/{key}")
            problems.append(Diagnostic("RW102", f"{key} must be a list of glob patterns", where.file, where.line,
                                       where.column, f"/spec/{key}"))
    timezone = spec.get("timezone")
    if timezone is not None and not _known_zone(timezone):
        where = locate(data, "/spec/timezone")
        problems.append(Diagnostic("RW202", f"timezone {timezone!r} is not a known IANA time zone", where.file,
                                   where.line, where.column, "/spec/timezone",
                                   hint=f"for example {DEFAULT_TIMEZONE}"))
    extends = spec.get("extends")
    if extends is not None and not isinstance(extends, str):
        where = locate(data, "/spec/extends")
        problems.append(Diagnostic("RW102", "extends must be a string: 'standard' or a path", where.file,
                                   where.line, where.column, "/spec/extends"))
    out = dict(spec)
    if timezone is not None and not _known_zone(timezone):
        out.pop("timezone")
    return out, data, problems


def _known_zone(name: Any) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str) or not name or name.startswith(("/", ".")):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def load_bundle(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS, *,
                bases: Mapping[str, str | os.PathLike[str]] | None = None) -> Bundle:
    """Load a file or a bundle directory (following ``extends``) into its effective documents.

    A bundle reads only regular files inside its own directory and the directories of the bases it extends by
    name: ``standard`` (the shipped one) or a name in ``bases`` (default: the ``REGELWERK_BASES`` environment
    variable, ``NAME=PATH`` pairs separated by ``os.pathsep``). ``extends`` never takes a path (RW205).
    """
    named = env_bases() if bases is None else {name: Path(p) for name, p in bases.items()}
    return _load(Path(path), limits, (), named)


def env_bases() -> dict[str, Path]:
    """The named bases of the ``REGELWERK_BASES`` environment variable."""
    out: dict[str, Path] = {}
    for pair in os.environ.get(BASES_ENV, "").split(os.pathsep):
        name, sep, where = pair.partition("=")
        if sep and name.strip() and where.strip():
            out[name.strip()] = Path(where.strip())
    return out


def base_directory(extends: str, bases: Mapping[str, str | os.PathLike[str]] | None = None) -> Path | None:
    """The folder a bundle's ``extends`` name stands for (None for a path or an unknown name)."""
    named = env_bases() if bases is None else {name: Path(p) for name, p in bases.items()}
    found = _base_of(extends, named)
    return found if isinstance(found, Path) else None


def _base_of(extends: str, named: Mapping[str, Path]) -> Path | str:
    """The directory a name extends, or why it cannot be extended."""
    if extends in named:
        return named[extends]
    if extends == "standard":
        return shipped_standard()
    if os.path.isabs(extends) or "/" in extends or "\\" in extends or extends in (".", ".."):
        return "path"
    return "unknown"


def _load(path: Path, limits: Limits, seen: tuple[str, ...], named: Mapping[str, Path]) -> Bundle:
    resolved = str(path.resolve())
    bundle = Bundle(name=path.stem if path.is_file() else path.resolve().name, root=str(path))
    if resolved in seen:
        bundle.diagnostics.append(Diagnostic("RW203", "bundle extends itself (cycle: "
                                             + " -> ".join(seen + (resolved,)) + ")", _display(path), 1, 1))
        return bundle
    if not path.exists():
        bundle.diagnostics.append(Diagnostic("RW009", f"no such file or directory: {path}", _display(path), 0, 0))
        return bundle
    if not path.is_dir():
        docs, problems = _load_files([path], limits)
        bundle.documents = docs
        bundle.diagnostics = problems
        _check_duplicates(bundle)
        return bundle
    spec, manifest, problems = _manifest(path, limits)
    bundle.diagnostics.extend(problems)
    if manifest is not None and isinstance(manifest.get("metadata"), dict):
        name = manifest["metadata"].get("name")
        bundle.name = name if isinstance(name, str) else bundle.name
    bundle.timezone = str(spec.get("timezone") or "")
    include = spec.get("include") or []
    exclude = spec.get("exclude") or []
    files, refused = _files_of(path, include if isinstance(include, list) else [],
                               exclude if isinstance(exclude, list) else [])
    bundle.diagnostics.extend(refused)
    docs, problems = _load_files(files, limits, bundle.set_aside)
    bundle.diagnostics.extend(problems)
    extends = spec.get("extends")
    if not isinstance(extends, str):
        bundle.documents = docs
        bundle.chain = (bundle.name,)
        _check_duplicates(bundle)
        return bundle
    assert manifest is not None  # extends comes from the manifest
    base_path = _base_of(extends, named)
    if isinstance(base_path, str) or not base_path.exists():
        where = locate(manifest, "/spec/extends")
        known = ", ".join(sorted({"standard", *named})) or "standard"
        if base_path == "path":
            bundle.diagnostics.append(Diagnostic(
                "RW205", f"extends names a path ({extends!r}); a bundle extends a base by name", where.file,
                where.line, where.column, "/spec/extends",
                hint=f"use one of: {known}; pass another base explicitly: regelwerk --base NAME=PATH, "
                     "or load_bundle(..., bases={NAME: PATH})"))
        else:
            what = "which is not a known base" if base_path == "unknown" else f"whose folder {base_path} does not exist"
            bundle.diagnostics.append(Diagnostic(
                "RW202", f"extends names {extends!r}, {what}", where.file, where.line, where.column,
                "/spec/extends", hint=f"known bases: {known}; pass another base explicitly: regelwerk --base "
                                      "NAME=PATH, or load_bundle(..., bases={NAME: PATH})"))
        bundle.documents = docs
        return bundle
    if str(base_path.resolve()) in seen + (resolved,):
        where = locate(manifest, "/spec/extends")
        chain = " -> ".join(_display(Path(p)) for p in seen + (resolved, str(base_path.resolve())))
        bundle.diagnostics.append(Diagnostic("RW203", f"extends cycle: {chain}", where.file, where.line,
                                             where.column, "/spec/extends",
                                             hint="a bundle may extend another only if that one does not "
                                                  "extend it back"))
        bundle.documents = docs
        return bundle
    base = _load(base_path, limits, seen + (resolved,), named)
    bundle.diagnostics.extend(base.diagnostics)
    bundle.chain = base.chain + (bundle.name,)
    bundle.timezone = bundle.timezone or base.timezone
    bundle.overlay_changes = dict(base.overlay_changes)
    bundle.documents = list(base.documents)
    _apply_overlay(bundle, docs)
    return bundle


def _check_duplicates(bundle: Bundle) -> None:
    seen: dict[tuple[str, str], SourceDocument] = {}
    for doc in bundle.documents:
        key = (doc.kind, doc.name)
        if not doc.kind or not doc.name:
            continue
        if key in seen:
            first = seen[key].location
            where = locate(doc.data, "/metadata/name")
            bundle.diagnostics.append(Diagnostic(
                "RW200", f"{doc.kind} {doc.name!r} is defined twice (first at {first.file}:{first.line})",
                where.file, where.line, where.column, "/metadata/name",
            ))
        else:
            seen[key] = doc


def _merge_mode(doc: SourceDocument) -> str:
    meta = doc.data.get("metadata")
    mode = meta.get("merge", "add") if isinstance(meta, dict) else "add"
    return mode if isinstance(mode, str) else "add"


def _apply_overlay(bundle: Bundle, overlay: list[SourceDocument]) -> None:
    index = {(d.kind, d.name): i for i, d in enumerate(bundle.documents)}
    seen_overlay: set[tuple[str, str]] = set()
    removed: set[int] = set()
    for doc in overlay:
        key = (doc.kind, doc.name)
        mode = _merge_mode(doc)
        where = locate(doc.data, "/metadata/name")
        if key in seen_overlay and doc.kind and doc.name:
            bundle.diagnostics.append(Diagnostic("RW200", f"{doc.kind} {doc.name!r} is defined twice in the overlay",
                                                 where.file, where.line, where.column, "/metadata/name"))
            continue
        seen_overlay.add(key)
        existing = index.get(key)
        if mode == "add":
            if existing is not None:
                base_loc = bundle.documents[existing].location
                bundle.diagnostics.append(Diagnostic(
                    "RW200", f"{doc.kind} {doc.name!r} already exists in the base ({base_loc.file}:{base_loc.line})",
                    where.file, where.line, where.column, "/metadata/name",
                    hint="set metadata.merge to 'replace' or 'patch' to change the base document",
                ))
                continue
            index[key] = len(bundle.documents)
            bundle.documents.append(doc)
            bundle.overlay_changes[key] = "added"
            continue
        if existing is None or existing in removed:
            mode_loc = locate(doc.data, "/metadata/merge")
            bundle.diagnostics.append(Diagnostic(
                "RW201", f"merge: {mode} names {doc.kind} {doc.name!r}, which the base does not have",
                mode_loc.file, mode_loc.line, mode_loc.column, "/metadata/merge",
                hint="remove 'merge' to add it as a new document",
            ))
            continue
        if mode == "remove":
            removed.add(existing)
            bundle.overlay_changes[key] = "removed"
        elif mode == "replace":
            bundle.documents[existing] = _strip_merge(doc)
            bundle.overlay_changes[key] = "replaced"
        else:
            merged, problems = merge_patch(bundle.documents[existing].data, doc.data, "")
            bundle.diagnostics.extend(problems)
            if isinstance(merged, YMap):
                base_doc = bundle.documents[existing]
                bundle.documents[existing] = _strip_merge(
                    SourceDocument(base_doc.file, base_doc.index, merged, base_doc.origin + (doc.file,)))
            bundle.overlay_changes[key] = "patched"
    bundle.documents = [d for i, d in enumerate(bundle.documents) if i not in removed]


def _strip_merge(doc: SourceDocument) -> SourceDocument:
    meta = doc.data.get("metadata")
    if isinstance(meta, YMap) and "merge" in meta:
        clean = YMap(meta.loc)
        for key, value in meta.items():
            if key != "merge":
                clean.put(key, value, meta.key_locs[key], meta.value_locs[key])
        data = YMap(doc.data.loc)
        for key, value in doc.data.items():
            data.put(key, clean if key == "metadata" else value, doc.data.key_locs[key], doc.data.value_locs[key])
        return SourceDocument(doc.file, doc.index, data, doc.origin)
    return doc


def _keyed(items: Any) -> bool:
    return isinstance(items, list) and bool(items) and all(isinstance(i, dict) and "id" in i for i in items)


def merge_patch(base: Any, patch: Any, pointer: str) -> tuple[Any, list[Diagnostic]]:
    """Merge ``patch`` into ``base`` by the documented rules; never mutates either."""
    problems: list[Diagnostic] = []
    if isinstance(base, YMap) and isinstance(patch, YMap):
        out = YMap(base.loc)
        for key, value in base.items():
            if key in patch:
                continue
            out.put(key, value, base.key_locs[key], base.value_locs[key])
        for key, value in patch.items():
            if key == "metadata" and pointer == "":
                value = _without(value, "merge")  # keeps locations; base labels/description survive the patch
            if value is None:
                continue  # RFC 7396: null removes the key
            if key in base:
                merged, more = merge_patch(base[key], value, f"{pointer}/{key}")
                problems.extend(more)
                out.put(key, merged, patch.key_locs[key], patch.value_locs[key] if not isinstance(merged, YMap)
                        else merged.loc)
            else:
                cleaned, _ = merge_patch(None, value, f"{pointer}/{key}")
                out.put(key, cleaned, patch.key_locs[key], patch.value_locs[key])
        # keep the base's key order where possible
        ordered = YMap(out.loc)
        for key in list(base.keys()) + [k for k in out if k not in base]:
            if key in out:
                ordered.put(key, out[key], out.key_locs[key], out.value_locs[key])
        return ordered, problems
    if isinstance(base, YSeq) and isinstance(patch, YSeq) and _keyed(base):
        out_seq = YSeq(patch.loc)
        positions = {item["id"]: i for i, item in enumerate(base)}
        replacements: dict[int, tuple[Any, Any]] = {}
        drops: set[int] = set()
        appended: list[tuple[Any, Any]] = []
        for j, item in enumerate(patch):
            loc = patch.item_locs[j]
            if not isinstance(item, dict) or "id" not in item:
                problems.append(Diagnostic("RW204", "items of an id-keyed list need an 'id' in a patch",
                                           loc.file, loc.line, loc.column, f"{pointer}/{j}"))
                continue
            target = positions.get(item["id"])
            if item.get(REMOVE_MARK) is True:
                if target is None:
                    problems.append(Diagnostic("RW204", f"cannot remove {item['id']!r}: the base has no such id",
                                               loc.file, loc.line, loc.column, f"{pointer}/{j}"))
                else:
                    drops.add(target)
                continue
            clean = _without(item, REMOVE_MARK)
            if target is None:
                close = difflib.get_close_matches(str(item["id"]), [str(k) for k in positions], n=1, cutoff=0.85)
                if close:  # {id: answerd, on_enter: [...]} appended a new state and left 'answered' as it was
                    problems.append(Diagnostic(
                        "RW206", f"the patch adds a new item {item['id']!r}; the base has {close[0]!r}", loc.file,
                        loc.line, loc.column, f"{pointer}/{j}", f"did you mean {close[0]!r}? an id the base does not "
                        "have is appended as a new item, it changes nothing of the base's", Severity.WARNING))
                appended.append((merge_patch(None, clean, f"{pointer}/{j}")[0], loc))
            else:
                merged, more = merge_patch(base[target], clean, f"{pointer}/{target}")
                problems.extend(more)
                replacements[target] = (merged, loc)
        for i, item in enumerate(base):
            if i in drops:
                continue
            if i in replacements:
                value, loc = replacements[i]
                out_seq.push(value, getattr(value, "loc", loc))
            else:
                out_seq.push(item, base.item_locs[i])
        for value, loc in appended:
            out_seq.push(value, loc)
        return out_seq, problems
    if isinstance(patch, YMap):
        # RFC 7396: a patch mapping that meets no mapping in the base still has its nulls removed
        return merge_patch(YMap(patch.loc), patch, pointer)
    return patch, problems


def _without(item: Any, key: str) -> Any:
    if isinstance(item, YMap) and key in item:
        out = YMap(item.loc)
        for k, v in item.items():
            if k != key:
                out.put(k, v, item.key_locs[k], item.value_locs[k])
        return out
    return item
