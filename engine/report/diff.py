"""The overlay's differences from the standard: which documents changed and, for each, which fields.

The base is the root of the bundle's ``extends`` chain (usually the shipped ``standard``), so a
customer bundle that extends another customer bundle is compared with the standard as a whole,
like ``Bundle.overlay_changes``, which accumulates along the chain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regelwerk.bundle import BUNDLE_MANIFEST, Bundle, base_directory, load_bundle
from regelwerk.source import SourceDocument, load_text, read_source, to_plain

__all__ = ["DocumentChange", "FieldChange", "base_path", "diff_documents", "load_base", "overlay_differences",
           "root_base_path"]

#: Keys that differ between base and overlay for bookkeeping only.
_IGNORED = frozenset({"/metadata/merge"})


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One changed value: its JSON pointer in the effective document (or the base's, when removed)."""

    pointer: str
    path: str
    old: Any
    new: Any
    change: str  # added | removed | changed


@dataclass(frozen=True, slots=True)
class DocumentChange:
    """A document the overlay added, replaced, patched or removed, with its field changes."""

    kind: str
    name: str
    mode: str
    label: str
    fields: tuple[FieldChange, ...] = ()


def base_path(bundle_dir: str | Path) -> Path | None:
    """The directory named by ``extends`` in a bundle directory's manifest (None without one)."""
    directory = Path(bundle_dir)
    manifest = directory / BUNDLE_MANIFEST
    if not directory.is_dir() or not manifest.is_file():
        return None
    text, problems = read_source(str(manifest), str(manifest))
    if text is None or problems:
        return None
    docs, problems = load_text(text, str(manifest))
    for doc in docs:
        if doc.kind != "Bundle":
            continue
        spec = doc.data.get("spec")
        extends = spec.get("extends") if isinstance(spec, dict) else None
        if isinstance(extends, str):
            return base_directory(extends)
    return None


def root_base_path(bundle_dir: str | Path) -> Path | None:
    """The first bundle of the ``extends`` chain (the standard), None when the bundle extends nothing."""
    current = base_path(bundle_dir)
    seen: set[str] = set()
    while current is not None:
        key = str(current.resolve())
        if key in seen:
            return None
        seen.add(key)
        nxt = base_path(current)
        if nxt is None:
            return current
        current = nxt
    return None


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _keyed(items: Any) -> bool:
    return isinstance(items, list) and bool(items) and all(isinstance(i, dict) and "id" in i for i in items)


def diff_documents(old: Any, new: Any, pointer: str = "", path: str = "") -> list[FieldChange]:
    """Changed leaves between two plain JSON-like values; lists of mappings with ``id`` are matched by id."""
    if pointer in _IGNORED:
        return []
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[FieldChange] = []
        for key in list(old) + [k for k in new if k not in old]:
            ptr, sub = f"{pointer}/{_escape(str(key))}", f"{path}.{key}" if path else str(key)
            if key not in new:
                if ptr not in _IGNORED:
                    out.append(FieldChange(ptr, sub, old[key], None, "removed"))
            elif key not in old:
                if ptr not in _IGNORED:
                    out.append(FieldChange(ptr, sub, None, new[key], "added"))
            else:
                out.extend(diff_documents(old[key], new[key], ptr, sub))
        return out
    if _keyed(old) and _keyed(new):
        out = []
        new_pos = {item["id"]: i for i, item in enumerate(new)}
        old_pos = {item["id"]: i for i, item in enumerate(old)}
        for i, item in enumerate(old):
            label = f"{path}[{item['id']}]"
            if item["id"] not in new_pos:
                out.append(FieldChange(f"{pointer}/{i}", label, item, None, "removed"))
            else:
                j = new_pos[item["id"]]
                out.extend(diff_documents(item, new[j], f"{pointer}/{j}", label))
        for j, item in enumerate(new):
            if item["id"] not in old_pos:
                out.append(FieldChange(f"{pointer}/{j}", f"{path}[{item['id']}]", None, item, "added"))
        if [i["id"] for i in old if i["id"] in new_pos] != [i["id"] for i in new if i["id"] in old_pos]:
            out.append(FieldChange(pointer, f"{path} (volgorde)", [i["id"] for i in old], [i["id"] for i in new],
                                   "changed"))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and not _keyed(old):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out.extend(diff_documents(a, b, f"{pointer}/{i}", f"{path}[{i}]"))
        return out
    if old != new or type(old) is not type(new):
        return [FieldChange(pointer or "/", path or "(document)", old, new, "changed")]
    return []


def _label(doc: SourceDocument | None) -> str:
    if doc is None:
        return ""
    spec = doc.data.get("spec")
    meta = doc.data.get("metadata")
    for source in (spec, meta):
        if isinstance(source, dict) and isinstance(source.get("label"), str):
            return str(source["label"])
    return ""


def _find(documents: Iterable[SourceDocument], kind: str, name: str) -> SourceDocument | None:
    return next((d for d in documents if d.kind == kind and d.name == name), None)


def overlay_differences(documents: Iterable[SourceDocument], overlay_changes: Mapping[tuple[str, str], str],
                        base: Bundle | None) -> list[DocumentChange]:
    """Every document in ``overlay_changes`` with its field changes against ``base``.

    ``documents`` are the effective documents (``Bundle.documents`` or ``CompiledBundle.documents``);
    ``base`` is the standard the bundle extends (``load_base``); without one there is nothing to compare.
    """
    if base is None:
        return []
    effective = list(documents)
    out: list[DocumentChange] = []
    for (kind, name), mode in sorted(overlay_changes.items()):
        old_doc = base.find(kind, name)
        new_doc = _find(effective, kind, name)
        if old_doc is None and new_doc is None:
            continue
        if old_doc is None:
            out.append(DocumentChange(kind, name, "added", _label(new_doc)))
            continue
        if new_doc is None:
            out.append(DocumentChange(kind, name, "removed", _label(old_doc)))
            continue
        fields = tuple(diff_documents(to_plain(old_doc.data), to_plain(new_doc.data)))
        out.append(DocumentChange(kind, name, mode if mode in ("replaced", "patched") else "patched",
                                  _label(new_doc), fields))
    return out


def load_base(bundle_dir: str | Path) -> Bundle | None:
    """The standard bundle at the root of ``bundle_dir``'s extends chain, loaded (None without one)."""
    root = root_base_path(bundle_dir)
    return load_bundle(root) if root is not None else None
