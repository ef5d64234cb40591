"""Facts data for the CLI's ``--facts`` file and for scenarios: actors, relations, resources, context.

Shape (YAML or JSON)::

    actors:
      anna: {roles: [leidinggevende], department: verkoop}
    relations:
      - {kind: reports_to, subject: bram, object: anna}
      - {kind: consent, subject: pim, object: manager-1, from: 2026-01-01, until: 2026-03-31}
    resources:
      manager_log:n1: {subject: bram, author: anna}
    context:
      settings: {support_access: true}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regelwerk.actors import actor_from_facts
from regelwerk.diagnostics import Diagnostic
from regelwerk.errors import UsageError

__all__ = ["FACTS_CODE", "actor_from_facts", "check_facts", "parse_resource", "pick_matrix", "resource_from_facts"]

#: The diagnostic code of a problem in a facts file (documented in docs/kinds/permissionmatrix.md).
FACTS_CODE = "RW710"
_SECTIONS = ("actors", "relations", "resources", "context")
_RELATION_KEYS = {"kind", "subject", "object", "from", "until", "valid_from", "valid_to", "by"}


def check_facts(data: Any, file: str = "") -> list[Diagnostic]:
    """Every problem of a facts document at once, each with file:line:col and a JSON pointer.

    Checked: the top level is a mapping of the four sections; ``actors`` maps ids to ``{roles: [..], ...}``;
    every relation is a mapping with non-empty ``kind``, ``subject`` and ``object`` (no relation to
    nobody) of a kind a scope reads (INDEXED_KINDS), ISO dates, and an end not before its start; ``resources``
    maps ``TYPE:ID`` to mappings; ``context`` is a mapping.
    """
    from regelwerk.diagnostics import did_you_mean
    from regelwerk.permissions.relations import INDEXED_KINDS, as_date
    from regelwerk.source import locate

    problems: list[Diagnostic] = []

    def report(message: str, pointer: str, hint: str = "", key: bool = False) -> None:
        where = locate(data, pointer, key=key)
        problems.append(Diagnostic(FACTS_CODE, message, where.file or file, where.line, where.column, pointer,
                                   hint))

    if not isinstance(data, Mapping):
        report("a facts file holds one mapping: actors, relations, resources, context", "")
        return problems
    for key in data:
        if key not in _SECTIONS:
            report(f"unknown section {key!r}", f"/{key}", did_you_mean(str(key), _SECTIONS)
                   or "sections: " + ", ".join(_SECTIONS), key=True)
    actors = data.get("actors")
    if actors is not None and not isinstance(actors, Mapping):
        report("actors must map each actor id to {roles: [...], attributes...}", "/actors")
    elif actors:
        for actor_id, spec in actors.items():
            pointer = f"/actors/{actor_id}"
            if spec is None:
                continue
            if not isinstance(spec, Mapping):
                report(f"actor {actor_id!r} must be a mapping such as {{roles: [medewerker]}}", pointer)
                continue
            roles = spec.get("roles")
            if roles is not None and not (isinstance(roles, list) and all(isinstance(r, str) for r in roles)):
                report(f"roles of actor {actor_id!r} must be a list of role ids", f"{pointer}/roles")
    relations = data.get("relations")
    if relations is not None and not isinstance(relations, list):
        report("relations must be a list of {kind, subject, object, from, until}", "/relations")
    elif relations:
        for i, item in enumerate(relations):
            pointer = f"/relations/{i}"
            if not isinstance(item, Mapping):
                report(f"relation {i + 1} must be a mapping {{kind, subject, object, from, until}}", pointer)
                continue
            for key in item:
                if key not in _RELATION_KEYS:
                    report(f"relation {i + 1}: unknown key {key!r}", f"{pointer}/{key}",
                           did_you_mean(str(key), _RELATION_KEYS), key=True)
            for key in ("kind", "subject", "object"):
                value = item.get(key)
                if not isinstance(value, str) or not value.strip():
                    report(f"relation {i + 1} needs a non-empty {key!r}" + (" (a relation to nobody)"
                                                                              if key == "object" else ""),
                           f"{pointer}/{key}" if key in item else pointer)
            kind = item.get("kind")
            if isinstance(kind, str) and kind.strip() and kind not in INDEXED_KINDS:
                report(f"relation {i + 1}: kind {kind!r} is no relation any scope reads", f"{pointer}/kind",
                       did_you_mean(kind, INDEXED_KINDS) or "kinds: " + ", ".join(INDEXED_KINDS))
            dates = {}
            for key in ("from", "valid_from", "until", "valid_to"):
                if item.get(key) in (None, ""):
                    continue
                try:
                    dates[key] = as_date(item[key])
                except ValueError:
                    report(f"relation {i + 1}: {key} {item[key]!r} is not an ISO date (YYYY-MM-DD)",
                           f"{pointer}/{key}")
            start = dates.get("from") or dates.get("valid_from")
            end = dates.get("until") or dates.get("valid_to")
            if start is not None and end is not None and end < start:
                report(f"relation {i + 1}: ends ({end}) before it starts ({start})",
                       f"{pointer}/{'until' if 'until' in dates else 'valid_to'}")
    resources = data.get("resources")
    if resources is not None and not isinstance(resources, Mapping):
        report("resources must map TYPE:ID to the resource's fields", "/resources")
    elif resources:
        for name, fields in resources.items():
            if not isinstance(fields, Mapping):
                report(f"resource {name!r} must be a mapping of its fields", f"/resources/{name}")
            elif not str(name).partition(":")[0]:
                report(f"resource {name!r} must be named TYPE or TYPE:ID", f"/resources/{name}", key=True)
    context = data.get("context")
    if context is not None and not isinstance(context, Mapping):
        report("context must be a mapping", "/context")
    return problems


def parse_resource(text: str) -> tuple[str, str | None]:
    """``TYPE[:ID]`` into its parts."""
    resource_type, sep, resource_id = str(text).partition(":")
    if not resource_type:
        raise UsageError(f"resource {text!r} must be TYPE or TYPE:ID")
    return resource_type, (resource_id if sep else None)


def resource_from_facts(text: str, facts: Mapping[str, Any], data: Mapping[str, Any] | None = None
                        ) -> tuple[str, dict[str, Any]]:
    """The resource type and data: ``facts.resources["TYPE:ID"]`` merged with inline ``data`` and ``id``."""
    resource_type, resource_id = parse_resource(text)
    stored = (facts.get("resources") or {}).get(str(text)) or {}
    resource: dict[str, Any] = dict(stored) if isinstance(stored, Mapping) else {}
    if resource_id is not None:
        resource.setdefault("id", resource_id)
    resource.update(dict(data or {}))
    return resource_type, resource


def pick_matrix(compiled: Any, name: str | None) -> Any:
    """The named PermissionMatrix of a compiled bundle, or the only one."""
    if name:
        return compiled.get("PermissionMatrix", name)
    matrices = compiled.of_kind("PermissionMatrix")
    if len(matrices) != 1:
        raise UsageError("name the matrix (--matrix / matrix:)",
                         hint="matrices in this bundle: " + (", ".join(matrices) or "none"))
    return next(iter(matrices.values()))
